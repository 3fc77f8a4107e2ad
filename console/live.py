"""The live session: the console's one event loop, its one HTTP client and its runtime.

Why one object: the dealer console and ``lifeboat agent`` both run the same headless
runtime (``sync.runtime.Runtime``: the live mirror, the failure detector, the automatic
replay).  The screen must not build a second copy of it, nor open a new event loop and a
new HTTP client for every key a dealer presses.  So the session owns ONE asyncio loop for
the console's lifetime (in its own thread for the TUI; the caller's loop for the agent)
and every service call of the console runs on it (``submit``/``call``/``call_blocking``),
login included, so the service's client lives on that one loop.

What a face sees, and nothing else of the runtime:

- ``subscribe(callback)``: events as they happen, on the session's loop thread (the
  callback must be quick and thread-safe: the TUI drops them into its coalescing Feed or
  posts a message): ``Ticks`` (as read from the stream), ``Committed`` (order, trade and
  position events after they are committed to the local store), ``ModeChange`` (after the
  change is committed), ``ReplayPassed`` (the end of an automatic replay pass, with its
  reconciliation report) and ``RuntimeEnded`` (the runtime stopped; ``error`` says why when
  it was refused).
- ``snapshot()``: a typed ``LiveSnapshot`` (mode, since when, connected, re-snapshots,
  replay progress), safe to take from any thread.

No Textual here: the session is the core's face for long-lived work, usable by any screen
or by none (the agent: ``await LiveSession(service).run_forever(password=...)``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from backend_client.detector import ProbeResult
from backend_client.stream import StreamClient, StreamItem
from contract import clock as wallclock
from contract import wire

if TYPE_CHECKING:
    from backend_client.client import BackendClient
    from console.service import Service
    from sync.monitoring import MonitorServer
    from sync.runtime import Runtime

__all__ = [
    "Committed",
    "LiveEvent",
    "LiveSession",
    "LiveSnapshot",
    "ModeChange",
    "ProbeResult",
    "ReplayPassed",
    "RiskNotice",
    "RuntimeEnded",
    "Ticks",
]

log = logging.getLogger("lifeboat.live")

T = TypeVar("T")


# ---------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Ticks:
    """A tick message as the stream delivered it (before any store write)."""

    msg: wire.TickMsg


@dataclass(frozen=True)
class Committed:
    """Order, trade and position events, after their batch was committed to the local store."""

    events: list
    at: datetime


@dataclass(frozen=True)
class ModeChange:
    """The console's mode changed (committed to the store); ``mode == previous`` is the start."""

    mode: str
    previous: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class ReplayPassed:
    """An automatic replay pass ended; ``report`` None: it did not reconcile (stopped or busy)."""

    result: Any
    report: dict | None


@dataclass(frozen=True)
class RuntimeEnded:
    """The runtime stopped: asked to (``error`` None) or refused / broken (``error``)."""

    error: BaseException | None


@dataclass(frozen=True)
class RiskNotice:
    """The risk rules (sync.rms) want a person to see this now: a cut-off warning, a cut-off
    run, a failure.  ``severity``: information, warning or error."""

    kind: str
    segment: str | None
    message: str
    severity: str
    detail: dict | None


LiveEvent = Ticks | Committed | ModeChange | ReplayPassed | RuntimeEnded | RiskNotice


@dataclass(frozen=True)
class LiveSnapshot:
    """The runtime as a screen may know it.  ``hosted``: a runtime was started in this
    session (it may have ended since: ``running``)."""

    hosted: bool = False
    running: bool = False
    mode: str = "ONLINE"
    since: datetime | None = None
    reason: str = ""
    connected: bool = False
    stream_reason: str = "starting"
    resnapshots: int = 0
    replaying: bool = False  # an automatic replay pass is running
    replay_done: int = 0  # entries the running pass has processed
    replay_seen: int = 0  # entries the running pass has seen so far
    probes: int = 0
    site_url: str = ""  # where actions go now (main, or the DR site while it is primary)
    sites: dict | None = None  # both sites as last surveyed (a DR site configured)


# ---------------------------------------------------------------------------- the stream tap


class _TappedStream(StreamClient):
    """The runtime's stream, with every tick message also offered to the session."""

    def __init__(self, *args: Any, on_ticks: Callable[[wire.TickMsg], None], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._on_ticks = on_ticks

    async def messages(self) -> AsyncGenerator[StreamItem, None]:  # the same items, observed on the way
        async for item in super().messages():
            if isinstance(item, wire.TickMsg):
                self._on_ticks(item)
            yield item


# ---------------------------------------------------------------------------- the session


class LiveSession:
    """One loop, one client, one runtime for a console (see the module's docstring)."""

    def __init__(self, service: Service, *, clock: Callable[[], datetime] | None = None) -> None:
        self.service = service
        self.clock = clock or wallclock.utcnow
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._own_loop = False  # True: the session's thread runs the loop (the TUI)
        self._started = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._subscribers: list[Callable[[LiveEvent], None]] = []
        self._runtime: Runtime | None = None
        self._runtime_task: concurrent.futures.Future | None = None
        self._monitor: MonitorServer | None = None  # the TUI's metrics port, when configured
        self.monitor_problem: str | None = None  # why it could not be served
        self.rms_problem: str | None = None  # why the risk rules do not run (a bad [rms] setting)
        self._running = False
        self._stopping = False
        self._mode: ModeChange | None = None
        self._client: BackendClient | None = None

    # ------------------------------------------------------------------ the loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The session's loop (started on first use)."""
        self._start()
        assert self._loop is not None
        return self._loop

    def _start(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the live session is closed")
            if self._loop is not None and not self._own_loop:
                return  # the agent's: the caller's loop (run_forever)
            if self._thread is None:
                self._own_loop = True
                self._thread = threading.Thread(target=self._thread_main, name="lifeboat-live", daemon=True)
                self._thread.start()
        self._started.wait()

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self._bind_client(loop)
        except Exception:  # no shared client: each service call opens its own, as without a session
            log.exception(
                "the live session's client could not be made", extra={"event": "live_client_failed"}
            )
        finally:
            self._started.set()
        try:
            loop.run_forever()
        finally:
            try:
                tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in tasks:
                    t.cancel()
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.run_until_complete(self._close_client())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

    def submit(self, fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(*args, **kw)`` (a coroutine function) on the session's loop; from any thread
        except the loop's own (there, await it)."""

        async def body() -> T:
            return await fn(*args, **kw)

        loop = self.loop  # first: a closed session raises before a coroutine is made
        return asyncio.run_coroutine_threadsafe(body(), loop)

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        """Await ``fn(*args, **kw)`` run on the session's loop, from another loop (a Textual
        worker).  Cancelling the caller does not cancel the call: an order once asked for
        gets its answer (as the thread workers' calls always did)."""
        return await asyncio.shield(asyncio.wrap_future(self.submit(fn, *args, **kw)))

    def call_blocking(self, fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        """``fn(*args, **kw)`` run on the session's loop, waited for in this (worker) thread."""
        return self.submit(fn, *args, **kw).result()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the runtime and the loop (its thread), closing the session's client."""
        self.stop_runtime()
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if not self._own_loop or loop is None or thread is None:
            return
        task = self._runtime_task
        if task is not None:
            try:
                task.result(timeout=timeout)
            except BaseException:
                log.debug("the runtime ended with an error", exc_info=True)
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:  # already closed
            pass
        thread.join(timeout)

    def _bind_client(self, loop: asyncio.AbstractEventLoop) -> None:
        """The session's one HTTP client: every service call on ``loop`` reuses it."""
        self._client = self.service.client()
        self.service.bind_client(self._client, loop)

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        self.service.bind_client(None)
        try:
            await client.aclose()
        except Exception:
            log.debug("closing the live session's client failed", exc_info=True)

    # ------------------------------------------------------------------ events

    def subscribe(self, callback: Callable[[LiveEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event (on the loop's thread); returns the unsubscribe."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _publish(self, event: LiveEvent) -> None:
        for cb in list(self._subscribers):
            try:
                cb(event)
            except Exception:
                log.exception("live subscriber failed", extra={"event": "live_subscriber_failed"})

    # ------------------------------------------------------------------ the runtime

    def start_runtime(
        self, user_id: str | None, *, metrics: tuple[str, int] | None = None
    ) -> concurrent.futures.Future[None]:
        """Start the runtime on the session's loop (the TUI, once logged in).  ``metrics``
        (host, port): also serve /metrics, /healthz and the Alertmanager webhook, as
        ``lifeboat agent --metrics-port`` does (off by default); when that port cannot be
        served the runtime starts without it and ``monitor_problem`` says why."""
        monitor = None
        self.monitor_problem = None
        if metrics is not None:
            from console.monitoring_config import MonitoringConfigError, alert_token
            from sync.monitoring import MonitorServer

            host, port = metrics
            try:
                token = alert_token(self.service.data_dir)
                monitor = self._monitor = MonitorServer(self.service.store, host=host, port=port, token=token)
            except MonitoringConfigError as exc:
                self.monitor_problem = str(exc)
            except OSError as exc:
                self.monitor_problem = f"cannot serve metrics on {host}:{port} ({exc.strerror or exc})"
        fut = self.submit(self._host, user_id=user_id, monitor=monitor)
        self._runtime_task = fut
        return fut

    async def run_forever(
        self,
        password: str | None = None,
        *,
        ready: Callable | None = None,
        monitor: MonitorServer | None = None,
    ) -> None:
        """The runtime on the caller's loop until stopped or refused (``lifeboat agent``).
        ``ready(runtime)`` once it is built; ``monitor`` (sync.monitoring) serves its
        metrics, health and the Alertmanager webhook; raises what the runtime raises."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._loop is not None:
                raise RuntimeError("the live session already runs on a loop")
            self._loop = loop
        self._started.set()
        self._bind_client(loop)
        try:
            await self._host(
                password=password, user_id=self.service.current_user(), ready=ready, monitor=monitor
            )
        finally:
            await self._close_client()
            with self._lock:
                self._closed = True

    async def _host(
        self,
        *,
        user_id: str | None,
        password: str | None = None,
        ready: Callable | None = None,
        monitor: MonitorServer | None = None,
    ) -> None:
        from sync.runtime import Runtime

        error: BaseException | None = None
        try:
            async with self.service.session_client(password) as c:
                holder: dict[str, Runtime] = {}

                def stream_factory(since: int | None) -> StreamClient:
                    return _TappedStream(
                        c.base_url,
                        c.token or "",
                        since=since,
                        silence_timeout=holder["rt"].silence_timeout,
                        on_ticks=self._ticks,
                    )

                rt = Runtime(
                    self.service.store,
                    c,
                    user_id=user_id,
                    stream_factory=stream_factory,
                    dr_url=self.service.dr_url,
                )
                holder["rt"] = rt
                rt.mode_callbacks.append(self._mode_changed)
                rt.applied_seq_callbacks.append(self._committed)
                rt.recovery.callbacks.append(self._replay_passed)
                self._attach_rms(rt, user_id)
                self._runtime = rt
                loop = asyncio.get_running_loop()

                def request_failed(kind: str, detail: str) -> None:  # any thread
                    try:
                        loop.call_soon_threadsafe(rt.request_failed, kind, detail)
                    except RuntimeError:  # the loop is closed: nobody to tell
                        pass

                self.service.request_error_hooks.append(request_failed)
                if monitor is not None:
                    monitor.attach(rt, loop)
                try:
                    if ready is not None:
                        ready(rt)
                    if self._stopping:
                        return
                    self._running = True
                    self._mode_changed(None)  # the starting mode
                    await rt.run()
                finally:
                    self._running = False
                    if monitor is not None:
                        monitor.detach()
                    if request_failed in self.service.request_error_hooks:
                        self.service.request_error_hooks.remove(request_failed)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if not isinstance(error, asyncio.CancelledError):
                self._publish(RuntimeEnded(error))

    def _attach_rms(self, rt: Runtime, user_id: str | None) -> None:
        """The risk rules' clock in this runtime ([rms] settings; a bad setting is reported,
        never half-applied: ``rms_problem`` says why the rules do not run)."""
        from console.rms_config import RmsConfigError, load
        from sync.rms.engine import RmsEngine

        try:
            settings = load(self.service.data_dir)
        except RmsConfigError as exc:
            self.rms_problem = f"risk rules not running: {exc}"
            log.error(self.rms_problem, extra={"event": "rms_config_error"})
            self._publish(RiskNotice("config_error", None, self.rms_problem, "error", None))
            return
        engine = RmsEngine(self.service.store, rt, settings, user_id=user_id)
        engine.callbacks.append(
            lambda n: self._publish(RiskNotice(n.kind, n.segment, n.message, n.severity, n.detail))
        )
        rt.rms = engine

    def rms_upcoming(self) -> list:
        """Each segment's next intraday cut-off (sync.rms.cutoff.Upcoming), soonest first; [] when
        no risk rules run here."""
        rt = self._runtime
        return rt.rms.upcoming() if rt is not None and rt.rms is not None else []

    def stop_runtime(self) -> None:
        """Ask the runtime to stop (from any thread); it ends within its stream's close."""
        self._stopping = True
        rt, loop = self._runtime, self._loop
        if rt is None or loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(rt.stop)
        except RuntimeError:  # loop already closed
            pass

    def _ticks(self, msg: wire.TickMsg) -> None:
        self._publish(Ticks(msg))

    def _committed(self, events: list, at: datetime) -> None:
        self._publish(Committed(events, at))

    def _mode_changed(self, change) -> None:
        rt = self._runtime
        if rt is None:
            return
        if change is None:
            event = ModeChange(rt.mode, rt.mode, rt.detector.reason, self.clock())
        else:
            event = ModeChange(change.to_mode.value, change.from_mode.value, change.reason, self.clock())
        self._mode = event
        self._publish(event)

    def _replay_passed(self, result, report: dict | None) -> None:
        self._publish(ReplayPassed(result, report))

    def snapshot(self) -> LiveSnapshot:
        """The runtime now (any thread: plain reads of values the loop sets whole)."""
        rt = self._runtime
        if rt is None:
            return LiveSnapshot()
        rec = rt.recovery
        replayer = rec.replayer
        replaying = rec.running and replayer is not None
        done, seen = replayer.progress if replaying and replayer is not None else (0, 0)
        status = rt.status
        mode = self._mode
        return LiveSnapshot(
            hosted=True,
            running=self._running,
            mode=rt.mode,
            since=mode.at if mode is not None else None,
            reason=rt.detector.reason,
            connected=status.connected,
            stream_reason=status.reason,
            resnapshots=status.resnapshots,
            replaying=replaying,
            replay_done=done,
            replay_seen=seen,
            probes=rt.probes,
            site_url=rt.client.base_url,
            sites=None if rt.sites is None else rt.sites.as_dict(),
        )

    # ------------------------------------------------------------------ helpers for a face

    async def probe(self, timeout: float = 0.8) -> ProbeResult:
        """One health probe of main (on the session's loop); never raises.  A probe of its own
        (a fresh connection each time: "main accepts connections" is what it tests); plain
        http:// loads no certificate store (tens of ms of the loop's time per probe)."""
        from backend_client.detector import probe_once

        url = self.service.backend_url
        return await probe_once(url, timeout=timeout, verify=url.startswith("https://"))

    def token_kept(self, user_id: str) -> bool:
        """Whether a session token for ``user_id`` is kept (the keyring): online actions need
        no password then."""
        from localstore import secrets

        try:
            return secrets.load_token(user_id) is not None
        except Exception:  # noqa: BLE001 - no keyring: no token
            return False
