"""The live feed between the runtime (its own thread and loop) and the screen.

Why a coalescing buffer: the stream can deliver a thousand ticks a second, but a dealer
reads a few frames a second.  The runtime's thread drops every tick and committed event
into ``Feed`` (a lock and a few dicts, latest value wins per key); the desk drains it a
few times a second on the event loop and stages the changes into its grids.  The UI
thread therefore never does per-message work, and the runtime never waits on the UI.

``RuntimeHost`` runs the same ``sync.runtime.Runtime`` as ``lifeboat agent`` on a
private asyncio loop inside a Textual thread worker.  Ticks are tapped from the stream
with a ``StreamClient`` subclass passed as the runtime's ``stream_factory`` (no change
to the runtime); order/trade/position events come from ``applied_seq_callbacks`` after
they are committed to the local store; mode changes from ``mode_callbacks``; the end of
each automatic replay pass (result and reconciliation report) from ``recovery.callbacks``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime

from backend_client.stream import StreamClient
from contract import clock as wallclock
from contract import wire


class Feed:
    """Thread-safe, coalescing: producers ``tick``/``event``; the screen ``drain``s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ticks: dict[tuple[str, str], object] = {}
        self._positions: dict[tuple, wire.Position] = {}
        self._orders: dict[str, wire.Order] = {}
        self._trades: list[wire.Trade] = []
        self.received = 0  # items offered (ticks + events), for the bench

    def tick(self, exchange: str, symbol: str, price) -> None:
        with self._lock:
            self._ticks[(exchange, symbol)] = price
            self.received += 1

    def ticks(self, msg: wire.TickMsg) -> None:
        with self._lock:
            for t in msg.ticks:
                self._ticks[(t.exchange.value, t.symbol)] = t.last_price
            self.received += len(msg.ticks)

    def position(self, p: wire.Position) -> None:
        with self._lock:
            self._positions[position_key(p)] = p
            self.received += 1

    def order(self, o: wire.Order) -> None:
        with self._lock:
            self._orders[o.order_id] = o
            self.received += 1

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

    def drain(self):
        """(ticks, positions, orders, trades) since the last drain."""
        with self._lock:
            out = (self._ticks, self._positions, self._orders, self._trades)
            self._ticks, self._positions, self._orders, self._trades = {}, {}, {}, []
        return out


def position_key(p) -> tuple:
    return (p.client_id, _v(p.exchange), p.symbol, _v(p.product))


def _v(x):
    return getattr(x, "value", x)


class TappedStream(StreamClient):
    """The runtime's stream, with every tick also offered to the feed."""

    def __init__(self, *args, feed: Feed, **kw) -> None:
        super().__init__(*args, **kw)
        self._feed = feed

    async def messages(self):
        async for item in super().messages():
            if isinstance(item, wire.TickMsg):
                self._feed.ticks(item)
            yield item


class RuntimeHost:
    """Runs the console's Runtime in a worker thread on its own loop until ``stop``."""

    def __init__(
        self,
        service,
        feed: Feed,
        *,
        on_mode: Callable,
        user_id: str | None,
        clock: Callable[[], datetime] | None = None,
        on_recovered: Callable | None = None,
    ) -> None:
        self.service = service
        self.on_recovered = on_recovered  # f(result, report) after each automatic replay pass
        self.clock = clock or wallclock.utcnow
        self.feed = feed
        self.on_mode = on_mode
        self.user_id = user_id
        self.runtime = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    def run(self) -> None:
        """Thread body (Textual thread worker); raises when the session is refused."""
        asyncio.run(self._main())

    async def _main(self) -> None:
        from sync.runtime import Runtime

        self._loop = asyncio.get_running_loop()
        async with self.service.session_client(None) as c:
            holder: dict = {}

            def stream_factory(since):
                rt = holder["rt"]
                return TappedStream(
                    c.base_url, c.token or "", since=since, silence_timeout=rt.silence_timeout, feed=self.feed
                )

            rt = Runtime(self.service.store, c, user_id=self.user_id, stream_factory=stream_factory)
            holder["rt"] = rt
            rt.mode_callbacks.append(self._mode)
            rt.applied_seq_callbacks.append(self.feed.events)
            if self.on_recovered is not None:
                rt.recovery.callbacks.append(self.on_recovered)
            self.runtime = rt
            loop = self._loop

            def request_failed(kind: str, detail: str) -> None:  # from a worker thread
                try:
                    loop.call_soon_threadsafe(rt.request_failed, kind, detail)
                except RuntimeError:  # the runtime's loop is closed: nobody to tell
                    pass

            self.service.request_error_hooks.append(request_failed)
            if self._stopping:
                return
            self._mode(None)  # the starting mode
            await rt.run()

    def _mode(self, change) -> None:
        rt = self.runtime
        if change is None:
            self.on_mode(rt.mode, rt.mode, rt.detector.reason, self.clock())
        else:
            self.on_mode(change.to_mode.value, change.from_mode.value, change.reason, self.clock())

    def stop(self) -> None:
        self._stopping = True
        if self._loop is not None and self.runtime is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self.runtime.stop)
            except RuntimeError:  # loop already closed
                pass
