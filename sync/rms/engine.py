"""The risk rules' clock inside the console's runtime (``lifeboat agent`` and the TUI's live
session): warnings before each segment's intraday cut-off, the cut-off itself at its time
(sync.rms.cutoff), whatever the mode.

It wakes twice a second and compares the injected wall clock (contract.clock, so a test or a
drill moves it) with each segment's cut-off in exchange time.  Warnings go to the log and to
``callbacks`` (the screens); the cut-off runs once per console and trading day (the store's
``rms_runs`` row), through the journal: replayed at once while main answers, waiting for the
replay in BACKUP.  Every automatic action is audited by the journal write that makes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from backend_client.detector import Mode
from contract import clock
from localstore import mirror_store
from localstore.db import Store
from sync.rms import cutoff, limits
from sync.rms.settings import RmsSettings
from sync.trading.desk import Actor

log = logging.getLogger("lifeboat.rms")


@dataclass(frozen=True)
class RmsNotice:
    """Something the risk rules want a person to see now."""

    kind: str  # cutoff_warning, cutoff_done, cutoff_failed; mtm_alert, mtm_breach, mtm_squareoff, stale_prices ...
    segment: str | None
    message: str
    severity: str = "warning"  # information, warning, error
    detail: dict | None = None


class RmsEngine:
    def __init__(
        self,
        store: Store,
        runtime,
        settings: RmsSettings,
        *,
        user_id: str | None,
        now: Callable[[], datetime] = clock.utcnow,
        interval: float = 0.5,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.settings = settings
        self.user_id = user_id
        self.now = now
        self.interval = interval
        self.callbacks: list[Callable[[RmsNotice], None]] = []
        self.results: list[cutoff.CutoffResult] = []  # every cut-off this engine ran (screens, tests)
        self._warned: set[tuple[date, str, int]] = set()
        self._done: set[tuple[date, str]] = set()
        self._failed_at: dict[tuple[date, str], float] = {}
        self.mtm = limits.MtmWatch()  # the MTM-loss rules (sync.rms.limits), evaluated in _mtm

    # ------------------------------------------------------------------ what screens ask

    def trading_date(self, now: datetime) -> date:
        """The BOD's trading date when it is today's, else today in exchange time."""
        _, td = mirror_store.snapshot_day(self.store)
        today = cutoff.local_time(self.settings, now).date()
        return td if td == today else today

    def upcoming(self) -> list[cutoff.Upcoming]:
        now = self.now()
        return cutoff.upcoming(self.settings, cutoff.local_time(self.settings, now).date(), now)

    # ------------------------------------------------------------------ loop

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("risk rules: tick failed", extra={"event": "rms_tick_failed"})
            await asyncio.sleep(self.interval)

    async def tick(self, now: datetime | None = None) -> None:
        now = now or self.now()
        td = await asyncio.to_thread(self.trading_date, now)
        for u in cutoff.upcoming(self.settings, td, now):
            key = (td, u.segment)
            if key in self._done:
                continue
            if cutoff.due(self.settings, u.segment, td, now):
                await self._cutoff(td, u.segment, now)
                continue
            self._warn(td, u, now)
        await self._mtm(td, now)

    def _warn(self, td: date, u: cutoff.Upcoming, now: datetime) -> None:
        passed = [
            m
            for m, w in zip(self.settings.warn_before_minutes, u.warnings_at, strict=True)
            if w <= now < u.cutoff
        ]
        if not passed:
            return
        minutes = min(passed)  # the nearest threshold passed (a console started at T-7 warns once, for T-10)
        if (td, u.segment, minutes) in self._warned:
            return
        self._warned.update((td, u.segment, m) for m in passed)
        local = cutoff.local_time(self.settings, u.cutoff)
        msg = (
            f"intraday cut-off {u.segment} at {local:%H:%M} ({int(u.seconds_left // 60)} min "
            f"{int(u.seconds_left % 60)} s): new MIS orders will be refused, pending MIS orders "
            f"cancelled and MIS positions squared off"
        )
        log.warning(msg, extra={"event": "rms_cutoff_warning", "segment": u.segment, "minutes": minutes})
        self._tell(RmsNotice("cutoff_warning", u.segment, msg, "warning", {"minutes": minutes}))

    def _actor(self, td: date) -> Actor | None:
        from sync import offline

        if self.user_id is None:
            return None
        scope = offline.stored_scope(self.store, self.user_id)
        if scope is None:
            return None
        role, clients = scope
        return Actor(self.user_id, role, frozenset(clients), td)

    async def _cutoff(self, td: date, segment: str, now: datetime) -> None:
        key = (td, segment)
        loop = asyncio.get_running_loop()
        if loop.time() - self._failed_at.get(key, float("-inf")) < 5.0:
            return  # a failed attempt is tried again every 5 s, not on every tick
        actor = await asyncio.to_thread(self._actor, td)
        if actor is None:
            self._failed_at[key] = loop.time()
            msg = f"intraday cut-off {segment}: nobody on this console logged in online; cannot act"
            log.error(msg, extra={"event": "rms_cutoff_failed", "segment": segment})
            self._tell(RmsNotice("cutoff_failed", segment, msg, "error"))
            return
        mode = self.runtime.detector.mode
        client = self.runtime.client if mode in (Mode.ONLINE, Mode.SUSPECT) else None
        try:
            result = await cutoff.run(
                self.store, actor, segment, self.settings, mode=mode.value, client=client, now=now
            )
        except Exception as exc:
            self._failed_at[key] = loop.time()
            msg = f"intraday cut-off {segment} failed: {exc}"
            log.exception(msg, extra={"event": "rms_cutoff_failed", "segment": segment})
            self._tell(RmsNotice("cutoff_failed", segment, msg, "error"))
            return
        self._done.add(key)
        self.results.append(result)
        if result.plan.already:  # a restart after the cut-off: it ran before, nothing is sent again
            log.info(
                f"intraday cut-off {segment} already done today: nothing to do",
                extra={"event": "rms_cutoff_already", "segment": segment},
            )
            return
        legs, cancels = len(result.plan.legs), len(result.plan.cancels)
        where = "sent to main" if client is not None else "journaled (replayed when main is back)"
        msg = f"intraday cut-off {segment}: {cancels} MIS order(s) cancelled, {legs} MIS position(s) squared off, {where}"
        if result.left_on_main:
            msg += f"; {len(result.left_on_main)} still open on main: check them"
        log.warning(
            msg,
            extra={
                "event": "rms_cutoff",
                "segment": segment,
                "legs": legs,
                "cancels": cancels,
                "replay_status": result.replay_status,
            },
        )
        self._tell(
            RmsNotice(
                "cutoff_done", segment, msg, "error" if result.left_on_main else "warning", result.as_dict()
            )
        )

    async def _mtm(self, td: date, now: datetime) -> None:
        """The MTM-loss rules every few seconds (``self.mtm.every_s``, not every tick), for the
        clients in the actor's scope: MTM from main's positions while main answers (ONLINE,
        SUSPECT, RECOVERING), else the local book; square-offs sent at once in ONLINE and
        SUSPECT, else journaled for the replay.  Never raises: a failure is logged and the next
        evaluation tries again (the cut-off above must keep its clock)."""
        if not self.mtm.due(now):
            return
        try:
            actor = await asyncio.to_thread(self._actor, td)
            if actor is None:
                self.mtm.last = now
                return
            mode = self.runtime.detector.mode
            client = self.runtime.client
            fetch = client if mode in (Mode.ONLINE, Mode.SUSPECT, Mode.RECOVERING) else None
            send = client if mode in (Mode.ONLINE, Mode.SUSPECT) else None
            events = await self.mtm.run(
                self.store, actor, self.settings, mode=mode.value, now=now, fetch=fetch, send=send
            )
        except Exception:
            self.mtm.last = now
            log.exception("risk rules: MTM evaluation failed", extra={"event": "rms_mtm_failed"})
            return
        for ev in events:
            self._tell(RmsNotice(ev.kind, None, ev.message, ev.severity, ev.detail))

    def _tell(self, notice: RmsNotice) -> None:
        for cb in list(self.callbacks):
            try:
                cb(notice)
            except Exception:
                log.exception("risk notice callback failed", extra={"event": "rms_callback_failed"})
