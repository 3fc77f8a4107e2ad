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
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from contract import wire
from contract.wire import FaultMode
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
