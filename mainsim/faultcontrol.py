"""The supervisor's fault switch (``--allow-faults``): sets the front proxy's mode
and, with ``duration_s``, lets the outage end by itself.

Two ways in, one rule: the caller always gets its reply.

- Through the control URL (the inner listener, ``control_url`` in the ready file): the
  fault never touches it, so the mode is in force before the reply is sent; a client
  that reads the reply and then calls the public URL meets the fault.
- Through the public URL (the front proxy): the fault would cut the very connection
  carrying the reply.  So the reply is sent first, with ``connection: close``, and the
  mode changes once the proxy has delivered it and closed that connection (a few ms).
  Ending an outage this way is not possible (``refuse`` and ``hang`` leave nothing to
  carry the request, ``error`` answers it with a 503): use the control URL, or
  ``duration_s``.

The price control (``POST /admin/prices``, also ``--allow-faults`` only, supervisor only) sets
one instrument's last price, as a tick would: the stream carries it to every console, resting
orders it reaches fill, positions are marked at it.  For drills and tests of the risk rules (an
MTM loss driven to a known percent of its limit); run mainsim with a long ``--tick-ms`` to keep
the random walk from moving it again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from decimal import Decimal

from contract import wire
from contract.wire import ExactPrice, Exchange, FaultMode
from mainsim.book import ApiError, Book
from mainsim.faultproxy import FaultProxy
from mainsim.tradingday import utcnow

log = logging.getLogger(__name__)


class FaultControl:
    def __init__(self, proxy: FaultProxy):
        self.proxy = proxy
        self.until: datetime | None = None
        self.mode = proxy.mode  # as asked: the proxy's own mode follows once the reply is out
        self._timer: asyncio.TimerHandle | None = None
        self._pending: asyncio.Task | None = None

    def state(self) -> wire.FaultState:
        return wire.FaultState(mode=self.mode, until=self.until)

    async def set(
        self, mode: FaultMode, duration_s: float | None, *, peer=None, response=None
    ) -> wire.FaultState:
        """``peer``: the request's client address as the server saw it; ``response``: the reply's
        headers (FastAPI's Response parameter), given ``connection: close`` when the proxy carries it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
        self._pending = None
        link = self.proxy.link_of(peer)
        self.mode = mode
        if link is None:
            await self.proxy.set_mode(mode)
        else:
            if response is not None:
                response.headers["connection"] = "close"
            self._pending = asyncio.ensure_future(self._after_reply(link, mode))
        self.until = None
        if duration_s and mode is not FaultMode.NONE:
            self.until = utcnow() + timedelta(seconds=duration_s)
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(
                duration_s, lambda: asyncio.ensure_future(self.set(FaultMode.NONE, None))
            )
        return self.state()

    async def _after_reply(self, link, mode: FaultMode) -> None:
        if not await self.proxy.ended(link):
            log.warning(
                "fault %s: the reply's connection did not close within 2 s; starting it anyway", mode.value
            )
        await self.proxy.set_mode(mode)


class PriceSet(wire.Wire):
    """Body of ``POST /admin/prices``: one instrument's new last price."""

    exchange: Exchange
    symbol: str
    last_price: ExactPrice


def set_last_price(book: Book, market, body: PriceSet) -> wire.Instrument:
    """Move one instrument's last price as a market tick would (inside its band, on its tick):
    broadcast the tick, then fill what the price reaches.  ``market``: mainsim.market.Market."""
    inst = book.instruments.get((body.exchange, body.symbol.upper()))
    if inst is None:
        raise ApiError(404, "not_found", f"No instrument {body.symbol} on {body.exchange.value}.", "symbol")
    price = Decimal(body.last_price)
    if not inst.lower_band <= price <= inst.upper_band:
        raise ApiError(
            422,
            "price_out_of_band",
            f"Price {price} is outside the band {inst.lower_band} - {inst.upper_band}.",
            "last_price",
        )
    if price % inst.tick_size != 0:
        raise ApiError(
            422,
            "invalid_tick",
            f"Price {price} is not a multiple of the tick {inst.tick_size}.",
            "last_price",
        )
    inst.last_price = price
    if market is not None:
        market.broadcast(market.tick_message([inst]))
    book.on_prices([inst])
    log.info("price of %s %s set to %s", inst.exchange.value, inst.symbol, price)
    return inst
