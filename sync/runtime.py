"""The console's long-running runtime, with no screen: ``lifeboat agent`` runs it
alone and the TUI hosts the same object.

It keeps the live mirror (stream -> batched transactions, resume by sequence, fresh
snapshot on a gap it cannot fill) and runs the failure detector: every stream item
feeds ``runtime.detector`` as it is read (before any disk write, so detection never
waits on a flush), a probe loop asks main's health (at once after a disconnect), an
evaluate timer notices silence, and every mode change is written (ConsoleState and an
audit row, one transaction) and announced to ``mode_callbacks``.  A supervisor's
override stored by ``lifeboat mode`` is read every probe cycle.  When main dies the
runtime keeps running: the stream keeps reconnecting and the detector keeps probing.
At RECOVERING the runtime starts the automatic replay (sync.recovery: replay the
journal, then reconcile); RECOVERING ends once the journal holds nothing left to
replay.  Store writes run in a worker thread
so the event loop (and the stream's silence timer) never waits on a disk flush.

Batching is natural: a reader task queues stream items; the writer takes everything
queued since its last commit (up to ``batch_max``) and commits it in one
transaction, so latency stays one commit under light load and throughput grows
with load.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from backend_client.client import BackendClient
from backend_client.detector import Detector, Mode, ProbeResult, Transition, probe_http_client, probe_once
from backend_client.errors import ProtocolError, Unavailable
from backend_client.sites import DR, MAIN, Site, SiteChoice, survey
from backend_client.stream import StreamClient, StreamStatus
from contract import clock, wire
from contract.aio import wait_event
from localstore import mirror_store
from localstore.db import Store
from sync import detector_store
from sync.bod import replace_book
from sync.mirror import Mirror
from sync.recovery import Recovery

if TYPE_CHECKING:
    from sync.rms.engine import RmsEngine

log = logging.getLogger("lifeboat.runtime")

_PERSIST_CURRENT_EVERY_S = 1.0


@dataclass
class RuntimeStatus:
    connected: bool = False
    reason: str = "starting"
    since: float = field(default_factory=time.monotonic)
    resnapshots: int = 0
    batches: int = 0


class Runtime:
    def __init__(
        self,
        store: Store,
        client: BackendClient,
        *,
        mode: str | None = None,
        batch_max: int = 1000,
        silence_timeout: float | None = None,
        stream_factory=None,
        detector: Detector | None = None,
        clock=time.monotonic,
        probe_timeout: float = 0.8,
        user_id: str | None = None,
        verify: bool | str = True,
        dr_url: str | None = None,
    ) -> None:
        self.store = store
        self.client = client
        # the DR tier: the broker's DR site, if any; ``site`` is where the client is aimed now
        # (main, or the DR site while it is the primary), ``sites`` the last survey of both
        self.main_url = client.base_url
        self.dr_url = dr_url.rstrip("/") if dr_url else None
        self.site = MAIN
        self.sites: SiteChoice | None = None
        self._site_changed = asyncio.Event()
        self.batch_max = batch_max
        self.clock = clock
        if detector is None:
            start = Mode(mode) if mode else detector_store.read_stored_mode(store)
            detector = Detector(
                now=clock(), initial_mode=Mode.ONLINE if start in (Mode.ONLINE, Mode.DR) else Mode.BACKUP
            )
        self.detector = detector
        # The stream's own silence timer only reconnects a hung stream; the detector's
        # evaluate timer must see the silence first, so the stream waits a little longer.
        self.silence_timeout = silence_timeout or detector.silence_limit + detector.heartbeat_interval
        self.probe_timeout = probe_timeout
        self.user_id = user_id
        self.verify = verify
        self.mode_callbacks: list = []  # f(Transition) after each mode change is committed (the TUI)
        self.probe_callbacks: list = []  # f(ProbeResult) after each probe (metrics)
        self.probes = 0
        self._wake_probe = asyncio.Event()
        self._wake_checkpoints = asyncio.Event()
        self._mode_queue: asyncio.Queue = asyncio.Queue()
        self._override_applied: tuple | None = None
        self._tasks: list[asyncio.Task] = []
        detector.callbacks.append(self._on_transition)
        self.mirror = Mirror(store)
        self.status = RuntimeStatus()
        self._stream_factory = stream_factory or self._default_stream
        self.stream: StreamClient | None = None
        self._stop = asyncio.Event()
        self._last_persist = 0.0
        self.applied_seq_callbacks: list = []  # f(seq, applied_at) after each committed batch (benches)
        self.recovery = Recovery(self)  # automatic replay + reconciliation at RECOVERING (issue 5)
        self.rms: RmsEngine | None = None  # the risk rules' clock, when the host gives one

    def _default_stream(self, since: int | None) -> StreamClient:
        return StreamClient(
            self.client.base_url, self.client.token or "", since=since, silence_timeout=self.silence_timeout
        )

    @property
    def mode(self) -> str:
        """The console's mode as the detector sees it now (ONLINE, SUSPECT, BACKUP, RECOVERING),
        DR while the DR site takes the actions."""
        return self._as_site(self.detector.mode).value

    def _as_site(self, mode: Mode) -> Mode:
        return Mode.DR if mode is Mode.ONLINE and self.site == DR else mode

    def stop(self) -> None:
        self._stop.set()
        self._wake_probe.set()
        if self.stream is not None:
            self.stream.stop()

    async def ensure_snapshot(self, reason: str) -> None:
        """Take a BOD snapshot when the store has none for the main system's trading day,
        or when it holds another scope (another user's book on a shared console: resuming
        it with this user's stream would mix the two)."""
        health = await self.client.health()
        bod_seq, trading_date = await asyncio.to_thread(mirror_store.snapshot_day, self.store)
        if bod_seq is None or trading_date != health.trading_date:
            await self.resnapshot(reason)
            return
        scope = {c.client_id for c in await self.client.clients()}
        if scope != await asyncio.to_thread(mirror_store.local_client_ids, self.store):
            await self.resnapshot(f"{reason}: the local book is another scope")

    async def resnapshot(self, reason: str) -> None:
        try:
            snap = await self.client.bod()
        except Unavailable as exc:
            self.detector.on_request_error(self.clock(), exc.kind, str(exc))
            raise
        await asyncio.to_thread(
            replace_book, self.store, snap, mode=self.mode, reason=reason, user_id=self.user_id
        )
        self.mirror.snapshot_taken(snap.seq)
        if self.stream is not None:
            self.stream.resync(snap.seq)
        self.status.resnapshots += 1
        log.info("snapshot taken", extra={"event": "resnapshot", "reason": reason, "seq": snap.seq})

    async def _resnapshot_while_up(self, reason: str) -> None:
        """A snapshot the stream asked for; if main went away meanwhile, the stream
        will ask again when it reconnects (its resume point is unchanged)."""
        try:
            await self.resnapshot(reason)
        except Unavailable as exc:
            log.warning(
                "snapshot failed: main unreachable", extra={"event": "resnapshot_failed", "reason": str(exc)}
            )
        except ProtocolError as exc:  # refused whole (sync.bod): the previous book stays, asked again later
            log.warning("snapshot refused", extra={"event": "resnapshot_refused", "reason": str(exc)})

    async def run(self) -> None:
        """Mirror the stream and watch main until ``stop()``.  Raises Unauthorized/
        Forbidden when the session is refused (retrying cannot fix that); main being
        down (at start or later) is not an error: the console is then in BACKUP."""
        self._tasks = [
            asyncio.create_task(self._record_modes(), name="lifeboat-modes"),
            asyncio.create_task(self._probe_loop(), name="lifeboat-probe"),
            asyncio.create_task(self._evaluate_loop(), name="lifeboat-evaluate"),
            asyncio.create_task(self._checkpoint_loop(), name="lifeboat-checkpoints"),
        ]
        if self.rms is not None:
            self._tasks.append(asyncio.create_task(self.rms.run(), name="lifeboat-rms"))
        reader: asyncio.Task | None = None
        await self._record_start()
        try:
            if self.dr_url:  # start at whichever site is primary now
                await self._check_sites()
            if not await self._first_snapshot():
                return
            while True:
                self.stream = self._stream_factory(self.mirror.state.last_event_seq)
                queue: asyncio.Queue = asyncio.Queue()
                reader = asyncio.create_task(self._read(self.stream, queue))
                await self._write(queue, reader)
                if self._stop.is_set() or not self._site_changed.is_set():
                    break
                # the client now aims at another site (_switch_site): its book, then its stream
                self._site_changed.clear()
                await asyncio.gather(reader, return_exceptions=True)
                await self._resnapshot_while_up(f"now at the {self.site} site")
        finally:
            if self.stream is not None:
                self.stream.stop()
            # a replay pass in flight stops too (its every step is committed: a later pass resumes
            # it exactly as after a crash), so a stopping agent never waits for a whole pass
            workers = [t for t in (reader, *self._tasks[1:], self.recovery.task) if t is not None]
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self._mode_queue.put_nowait(None)  # record what is queued, then end
            await asyncio.gather(self._tasks[0], return_exceptions=True)

    async def _record_start(self) -> None:
        """Make the stored mode agree with the detector's starting mode."""
        stored = await asyncio.to_thread(detector_store.read_stored_mode, self.store)
        if stored is not self.detector.mode:
            self._on_transition(
                Transition(
                    stored,
                    self.detector.mode,
                    self.clock(),
                    f"agent start: {self.detector.reason}",
                    cause="start",
                )
            )

    async def _first_snapshot(self) -> bool:
        """The start-of-agent snapshot, retried while main is unreachable."""
        while not self._stop.is_set():
            try:
                await self.ensure_snapshot("start of agent")
                return True
            except Unavailable as exc:
                self.detector.on_request_error(self.clock(), exc.kind, str(exc))
                self._wake_probe.set()
                log.warning("main unreachable at start; retrying", extra={"event": "start_unreachable"})
                await wait_event(self._stop, self.detector.probe_interval_backup * 2)
        return False

    async def _read(self, stream: StreamClient, queue: asyncio.Queue) -> None:
        try:
            async for item in stream.messages():
                self._observe(item)
                queue.put_nowait(item)
        finally:
            queue.put_nowait(None)  # end of stream (stopped, or refused: the task's exception says)

    # ------------------------------------------------------------------ failure detector

    def _observe(self, item) -> None:
        """Feed the detector as soon as an item is read (the writer may be mid-flush)."""
        now = self.clock()
        if isinstance(item, StreamStatus):
            if item.connected:
                self.detector.on_connect(now)
            else:
                self.detector.on_disconnect(now, item.reason)
                if self.detector.probe_wanted:
                    self._wake_probe.set()
        else:
            self.detector.on_message(now)

    def request_failed(self, kind: str, detail: str = "") -> None:
        """A real request to main (an order, a cancel ...) failed as unavailable: one
        more input for the detector, like a failed probe (it asks for a confirming
        probe; it never switches on its own).  Call it on the runtime's loop."""
        self.detector.on_request_error(self.clock(), kind, detail)
        if self.detector.probe_wanted:
            self._wake_probe.set()

    def alert(self, name: str) -> None:
        """The monitoring system's alert about main (sync.monitoring's webhook): SUSPECT and
        an immediate probe; the probe decides.  Call it on the runtime's loop."""
        self.detector.on_alert(self.clock(), name)
        if self.detector.probe_wanted:
            self._wake_probe.set()

    def _on_transition(self, change: Transition) -> None:
        """Detector callback (on the loop, at the instant of the change)."""
        if self.site == DR:  # the detector's ONLINE is the DR site taking the actions
            change = dataclasses.replace(
                change,
                from_mode=self._as_site(change.from_mode),
                to_mode=self._as_site(change.to_mode),
                reason=f"DR site {self.client.base_url}: {change.reason}",
            )
        self._mode_queue.put_nowait((change, clock.utcnow()))
        log.info(
            "mode change",
            extra={
                "event": "mode_change",
                "from": change.from_mode.value,
                "to": change.to_mode.value,
                "reason": change.reason,
            },
        )
        if change.to_mode is not Mode.ONLINE:
            self._wake_probe.set()  # probe at the new mode's pace from now on

    async def _record_modes(self) -> None:
        """Commit mode changes in order (worker thread), then tell the screens."""
        while True:
            entry = await self._mode_queue.get()
            if entry is None:
                return
            change, wall_at = entry
            try:
                await asyncio.to_thread(
                    detector_store.record_transition,
                    self.store,
                    change,
                    wall_at=wall_at,
                    user_id=self.user_id,
                )
            except Exception:
                log.exception("could not record a mode change", extra={"event": "mode_record_failed"})
            for cb in list(self.mode_callbacks):
                try:
                    cb(change)
                except Exception:
                    log.exception("mode callback failed", extra={"event": "mode_callback_failed"})
            # after the screens were told: a signed checkpoint of the head (local); the
            # checkpoint loop sends it, so main's round trips never delay a mode change
            await self._checkpoint("mode_change", send=False)
            self._wake_checkpoints.set()

    async def _checkpoint(self, reason: str, *, send: bool = True) -> None:
        """A signed checkpoint of the audit chain's head (localstore.checkpoints), and,
        with ``send`` while main is up, the queued ones sent to it.  Never stops the runtime."""
        from localstore import checkpoints
        from sync import checkpoint_send

        try:
            await asyncio.to_thread(checkpoints.make, self.store, mode=self.mode, reason=reason)
            if send and self.detector.mode is Mode.ONLINE:
                await checkpoint_send.flush(self.store, self.client)
        except checkpoint_send.ChainRefused as exc:
            log.error(
                "main refused an audit checkpoint",
                extra={"event": "checkpoint_refused", "reason": exc.message},
            )
        except Exception:
            log.exception("audit checkpoint failed", extra={"event": "checkpoint_failed"})

    async def _checkpoint_loop(self) -> None:
        """Every ``checkpoints.MINUTES`` minutes, and after each mode change: checkpoint a
        moving head and, while main is up, send the queue."""
        from localstore import checkpoints

        while True:
            await wait_event(self._wake_checkpoints, checkpoints.MINUTES * 60)
            self._wake_checkpoints.clear()
            await self._checkpoint("timer")

    async def _evaluate_loop(self) -> None:
        """Evaluate at least every half heartbeat, and exactly at the detector's next
        deadline (a hang is then seen when the silence limit is reached, not up to half
        an interval later)."""
        pause = self.detector.heartbeat_interval / 2
        while True:
            deadline = self.detector.next_deadline()
            wait = pause if deadline is None else min(pause, max(0.0, deadline - self.clock()))
            await asyncio.sleep(wait)
            self.detector.evaluate(self.clock())
            await self._finish_recovery()

    async def _probe_loop(self) -> None:
        async with probe_http_client(verify=self.verify) as http:
            while not self._stop.is_set():
                await wait_event(self._wake_probe, self._probe_pause())
                self._wake_probe.clear()
                if self._stop.is_set():
                    return
                # Probe first: after a disconnect this probe is the confirmation that
                # decides BACKUP, and the store read below would only delay it.
                result = await probe_once(self.client.base_url, timeout=self.probe_timeout, http=http)
                self.probes += 1
                for cb in self.probe_callbacks:
                    cb(result)
                self.detector.on_probe(self.clock(), result)
                if self.dr_url:
                    await self._check_sites(http, {self.site: result})
                await self._apply_override()
                await self._finish_recovery()

    # ------------------------------------------------------------------ the DR tier

    # how often both sites are surveyed while no site takes actions (BACKUP): a promotion of
    # the DR site is seen within this (P11: promotion seen -> first leg accepted, bench_dr_failover)
    SURVEY_INTERVAL_BACKUP_S = 0.2

    def _probe_pause(self) -> float:
        pause = self.detector.probe_interval
        if self.dr_url and self.detector.automatic is Mode.BACKUP:
            pause = min(pause, self.SURVEY_INTERVAL_BACKUP_S)
        return pause

    async def _check_sites(self, http=None, known: dict[str, ProbeResult] | None = None) -> None:
        """Survey both sites (the current one's probe is reused) and follow what they say of
        themselves: fence the detector on split brain or a stale primary, and move to the
        other site once the current one is given up (BACKUP) and the other one is primary."""
        sites = await survey(
            self.main_url, self.dr_url, timeout=self.probe_timeout, verify=self.verify, http=http, known=known
        )
        choice = await asyncio.to_thread(detector_store.decide_sites, self.store, sites)
        self.sites = choice
        now = self.clock()
        if choice.split_brain or choice.fenced is not None:
            if self.detector.fenced != choice.reason:
                log.error(
                    "DR tier alarm: %s; actions go to the local journal",
                    choice.reason,
                    extra={"event": "split_brain" if choice.split_brain else "stale_primary"},
                )
            self.detector.fence(now, choice.reason)
            return
        if self.detector.fenced is not None:
            log.warning("DR tier alarm cleared: %s", choice.reason, extra={"event": "sites_agree"})
            self.detector.unfence(now)
        target = choice.active
        if target is None or target.name == self.site:
            return
        if self.detector.automatic is Mode.BACKUP or self.stream is None:
            self._switch_site(target)

    def _switch_site(self, target: Site) -> None:
        """Aim the client (the live session's one client: the screens' actions follow) at
        ``target``; run() takes its book and its stream."""
        log.warning(
            "actions now go to the %s site %s (%s)",
            target.name,
            target.url,
            target.probe.detail,
            extra={"event": "site_switch", "site": target.name, "epoch": target.probe.epoch},
        )
        self.client.retarget(target.url)
        self.site = target.name
        self.detector.switched_site(
            self.clock(), f"the {target.name} site {target.url} is primary (epoch {target.probe.epoch})"
        )
        self._wake_probe.set()
        if self.stream is not None:
            self._site_changed.set()
            self.stream.stop()

    async def _apply_override(self) -> None:
        try:
            override = await asyncio.to_thread(detector_store.read_override, self.store)
        except Exception:
            log.exception("could not read the mode override", extra={"event": "override_read_failed"})
            return
        key = (override.mode, override.by)
        if key == self._override_applied:
            return
        self._override_applied = key
        self.detector.force(override.mode, override.by or "supervisor", self.clock())

    async def _finish_recovery(self) -> None:
        """At RECOVERING: start the replay (sync.recovery), and end RECOVERING when the
        journal has nothing left to replay (entries waiting keep it RECOVERING)."""
        if self.detector.automatic is not Mode.RECOVERING:
            return
        self.recovery.start()  # replays the journal, then calls replay_done and reconciles
        if await asyncio.to_thread(detector_store.replay_work, self.store) == 0:
            self.detector.replay_done(self.clock())

    async def _write(self, queue: asyncio.Queue, reader: asyncio.Task) -> None:
        while not self._stop.is_set():
            item = await queue.get()
            batch = [item]
            while not queue.empty() and len(batch) < self.batch_max:
                batch.append(queue.get_nowait())
            done = await self._handle(batch)
            if done:
                failed = reader.exception() if reader.done() else None
                if failed is not None:
                    raise failed
                return

    async def _handle(self, batch: list) -> bool:
        events: list = []
        for item in batch:
            if item is None:
                await self._flush(events)
                return True
            if isinstance(item, (wire.OrderEvent, wire.TradeEvent, wire.PositionEvent)):
                events.append(item)
            elif isinstance(item, wire.ResnapshotMsg):
                await self._flush(events)
                events = []
                await self._resnapshot_while_up(f"stream asked: {item.reason}")
            elif isinstance(item, wire.HelloMsg):
                _, trading_date = await asyncio.to_thread(mirror_store.snapshot_day, self.store)
                if trading_date != item.trading_date:
                    await self._flush(events)
                    events = []
                    await self._resnapshot_while_up("new trading day")
            elif isinstance(item, StreamStatus):
                self.status.connected = item.connected
                self.status.reason = item.reason
                self.status.since = item.at
        await self._flush(events)
        if self.status.connected:
            # Everything received so far (heartbeats included) is applied: the mirror is current.
            self.mirror.confirm_current()
            now = time.monotonic()
            if now - self._last_persist >= _PERSIST_CURRENT_EVERY_S:
                self._last_persist = now
                await asyncio.to_thread(self.mirror.persist_current)
        return False

    async def _flush(self, events: list) -> None:
        if not events:
            return
        await asyncio.to_thread(self.mirror.apply, events)
        self.status.batches += 1
        if self.applied_seq_callbacks:
            at = clock.utcnow()
            for cb in self.applied_seq_callbacks:
                cb(events, at)
