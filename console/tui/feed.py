"""The live feed between the live session (its own thread and loop) and the screen.

Why a coalescing buffer: the stream can deliver a thousand ticks a second, but a dealer
reads a few frames a second.  The live session's thread drops every tick and committed
event into ``Feed`` (a lock and a few dicts, latest value wins per key: the app
subscribes it to console/live.py's events); the desk drains it a few times a second on
the event loop and stages the changes into its grids.  The UI thread therefore never
does per-message work, and the runtime never waits on the UI.
"""

from __future__ import annotations

import threading
from datetime import datetime

from contract import wire
from contract.enums import value_of


class Feed:
    """Thread-safe, coalescing: producers ``ticks``/``events``; the screen ``drain``s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ticks: dict[tuple[str, str], object] = {}
        self._positions: dict[tuple, wire.Position] = {}
        self._orders: dict[str, wire.Order] = {}
        self._trades: list[wire.Trade] = []
        self.received = 0  # items offered (ticks + events), for the bench

    def ticks(self, msg: wire.TickMsg) -> None:
        with self._lock:
            for t in msg.ticks:
                self._ticks[(t.exchange.value, t.symbol)] = t.last_price
            self.received += len(msg.ticks)

    def events(self, events: list, at: datetime | None = None) -> None:
        """Runtime callback: a committed batch of order/trade/position events."""
        with self._lock:
            for e in events:
                if isinstance(e, wire.PositionEvent):
                    self._positions[position_key(e.data)] = e.data
                elif isinstance(e, wire.OrderEvent):
                    self._orders[e.data.order_id] = e.data
                elif isinstance(e, wire.TradeEvent):
                    self._trades.append(e.data)
            self.received += len(events)

    def drain_ticks(self) -> dict:
        """The ticks since the last drain, leaving the events (a dialog is over the desk: the
        desk still notes when it saw each price, and stages the ticks when it is on top)."""
        with self._lock:
            out, self._ticks = self._ticks, {}
        return out

    def drain(self):
        """(ticks, positions, orders, trades) since the last drain."""
        with self._lock:
            out = (self._ticks, self._positions, self._orders, self._trades)
            self._ticks, self._positions, self._orders, self._trades = {}, {}, {}, []
        return out


def position_key(p) -> tuple:
    return (p.client_id, value_of(p.exchange), p.symbol, value_of(p.product))
