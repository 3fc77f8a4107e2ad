"""The supervisor's fault switch (``--allow-faults``): sets the front proxy's mode
and, with ``duration_s``, lets the outage end by itself."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from backend_client import wire
from backend_client.wire import FaultMode

from mainsim.faultproxy import FaultProxy
from mainsim.tradingday import utcnow


class FaultControl:
    def __init__(self, proxy: FaultProxy):
        self.proxy = proxy
        self.until = None
        self._timer: asyncio.TimerHandle | None = None

    def state(self) -> wire.FaultState:
        return wire.FaultState(mode=self.proxy.mode, until=self.until)

    async def set(self, mode: FaultMode, duration_s: float | None) -> wire.FaultState:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.proxy.set_mode(mode)
        self.until = None
        if duration_s and mode is not FaultMode.NONE:
            self.until = utcnow() + timedelta(seconds=duration_s)
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(duration_s, lambda: asyncio.ensure_future(self.set(FaultMode.NONE, None)))
        return self.state()
