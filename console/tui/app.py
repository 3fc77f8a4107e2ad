"""LifeboatApp: the dealer console's shell.

It owns what outlives a screen: the service session, the runtime (the same Runtime as
``lifeboat agent``, in a thread worker on its own loop), the live Feed, the config
(keymap, idle lock, market watch) and the clock.  Screens live in console/tui/screens,
widgets in console/tui/widgets, messages in console/tui/messages.py, CSS in app.tcss.

Every network call runs on the live session's one loop (console/live.py: one event loop
and one HTTP client for the console's lifetime, the runtime on it too), awaited by a
worker; store reads run in worker threads; results come back as typed messages; the one
``on_worker_state_changed`` turns an unexpected worker error into a notification, so
nothing blocks the screen's event loop and nothing dies with a traceback.

Risk notices (console/live.py RiskNotice: the intraday cut-off's warnings, the cut-off done or
failed, MTM alerts) are toasts with their severity, kept on the desk's RMS panel too.

Recovery is the console's own, not only the demo's: after each automatic replay pass
that reconciled, the desk reloads the (reconciled) local book by itself and the report
is shown over the desk (or announced, when the dealer is in a form or the screen is
locked: the replay screen, key ``replay``, shows it again).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import events
from textual.app import App, SystemCommand
from textual.binding import BindingType
from textual.command import CommandPalette
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from console.live import (
    Committed,
    LiveEvent,
    LiveSession,
    ModeChange,
    ReplayPassed,
    RiskNotice,
    RuntimeEnded,
    Ticks,
)
from console.service import ServiceError
from console.tui import keymap
from console.tui.config import ConsoleConfig
from console.tui.feed import Feed
from console.tui.messages import ActionDone, ModeChanged, Recovered, RiskNoticed, RuntimeStopped
from console.tui.outcome import said, summarize
from console.tui.prices import PriceBoard
from console.tui.session import DealerSession
from contract import clock as wallclock


class LifeboatApp(App):
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))  # absolute: subclasses elsewhere find it too
    TITLE = "Lifeboat"
    BINDINGS: ClassVar[list[BindingType]] = keymap.bindings(keymap.APP_KEYS)

    def __init__(
        self,
        service,
        config: ConsoleConfig | None = None,
        *,
        user: str | None = None,
        clock: Callable[[], datetime] | None = None,
        status_every: float = 2.0,
        start_runtime: bool = True,
    ) -> None:
        super().__init__()
        self.service = service
        self.config = config or ConsoleConfig()
        self.clock = clock or wallclock.utcnow
        self.live = LiveSession(service, clock=self.clock)  # the one loop, client and runtime
        self.session = DealerSession(service, self.live)
        self.feed = Feed()
        self.prices = PriceBoard()  # when the desk last saw each price (stale prices carry their age)
        self.rms_settings: dict = {}  # the [rms] settings as the last risk sample gave them
        self.risk_notices: list[RiskNoticed] = []  # every risk notice the runtime published, in order
        self.runtime_started = False
        self.live.subscribe(self._live_event)
        self.status_every = status_every
        self.start_runtime = start_runtime
        self.watch_symbols = list(self.config.watch_symbols)
        self.locked = False
        self.mode_history: list[str] = []  # every mode the banner showed, in order (drills, tests)
        self.recoveries: list[Recovered] = []  # every automatic replay pass the runtime reported
        self.show_recovery_report = True  # the drill shows its own report with its verdict
        self.last_input = time.monotonic()
        self._user = user or service.user
        self._quit_asked = False  # ctrl+q is checking the journal or asking: a second press waits
        self._held_notices: list[tuple] = []  # (message, title, severity, timeout, markup) while locked

    # ------------------------------------------------------------------ start

    def on_mount(self) -> None:
        if self.config.theme in self.available_themes:
            self.theme = self.config.theme
        else:
            self.notify(f"unknown theme {self.config.theme!r}; using the default", severity="warning")
        if self.config.keys:
            self.set_keymap(self.config.keys)
        minutes = self.config.idle_lock_minutes
        if minutes > 0:
            self.set_interval(min(max(minutes * 60 / 4, 0.05), 5.0), self.idle_lock_check, name="idle-lock")
        self.push_screen(self.first_screen())

    def first_screen(self) -> Screen:
        """The login screen; a subclass (the bench) may start elsewhere."""
        from console.tui.screens.login import LoginScreen

        return LoginScreen(self._user)

    def open_desk(self) -> None:
        from console.tui.screens.desk import DeskScreen

        self.switch_screen(DeskScreen())
        if self.start_runtime and not self.runtime_started:
            self.runtime_started = True
            ident = self.session.identity
            cfg = self.config
            metrics = (cfg.metrics_host, cfg.metrics_port) if cfg.metrics_port is not None else None
            self.live.start_runtime(ident.user_id if ident else None, metrics=metrics)
            if self.live.monitor_problem:
                self.notify(
                    f"metrics not served: {self.live.monitor_problem}", severity="warning", timeout=15
                )

    def _live_event(self, event: LiveEvent) -> None:
        """The live session's events (its loop's thread): ticks and committed events into the
        coalescing feed, the rest as messages (``post_message`` is thread-safe)."""
        if isinstance(event, Ticks):
            self.feed.ticks(event.msg)
        elif isinstance(event, Committed):
            self.feed.events(event.events, event.at)
        elif isinstance(event, ModeChange):
            self.post_message(ModeChanged(event.mode, event.previous, event.reason, event.at))
        elif isinstance(event, ReplayPassed):
            self.post_message(Recovered(event.result, event.report))
        elif isinstance(event, RuntimeEnded) and event.error is not None:
            self.post_message(RuntimeStopped(event.error))
        elif isinstance(event, RiskNotice):
            self.post_message(
                RiskNoticed(event.kind, event.segment, event.message, event.severity, event.detail)
            )

    def on_risk_noticed(self, msg: RiskNoticed) -> None:
        """A risk notice as a toast with its severity (errors stay longest), kept on the RMS
        panel too; the desk reads the risk status again (a cut-off ran, a client breached)."""
        self.risk_notices.append(msg)
        severity: SeverityLevel = SEVERITIES.get(msg.severity, "warning")
        timeout = {"error": 60.0, "warning": 20.0}.get(severity, 10.0)
        title = risk_title(msg.kind, msg.segment)
        if self.locked and msg.kind in PUBLIC_RISK_KINDS:  # the cut-off coming or done: over the lock too
            App.notify(self, msg.message, title=title, severity=severity, timeout=timeout)
        else:
            self.notify(msg.message, title=title, severity=severity, timeout=timeout)
        desk = self.desk
        if desk is not None:
            desk.risk_noticed(msg)

    def on_runtime_stopped(self, msg: RuntimeStopped) -> None:
        text = _error_text(msg.error)
        self.notify(f"live mirror stopped: {text}", title="Runtime", severity="error", timeout=30)

    def on_mode_changed(self, msg: ModeChanged) -> None:
        self.session.pin_mode(msg.mode)
        if not self.mode_history or self.mode_history[-1] != msg.mode:
            self.mode_history.append(msg.mode)
        desk = self.desk
        if desk is not None:
            desk.set_mode(msg)
        if msg.mode != msg.previous:
            self.notify(
                f"{msg.previous} -> {msg.mode}: {msg.reason}",
                title="Mode",
                severity="information" if msg.mode == "ONLINE" else "warning",
            )

    def on_recovered(self, msg: Recovered) -> None:
        """A replay pass ended.  Reconciled: reconciliation replaced the local book with main's,
        so the desk shows it now, without the dealer doing anything; then the report."""
        self.recoveries.append(msg)
        desk = self.desk
        if msg.report is None:  # stopped or busy: the runtime retries at the next RECOVERING
            return
        if desk is not None:
            desk.load_book()
            desk.sample_status()
        if not self.show_recovery_report:
            return
        from console.tui.screens.reconciliation import ReconciliationScreen, headline

        if desk is not None and self.screen is desk and not self.locked:
            self.push_screen(ReconciliationScreen(msg.report))
        else:
            key = self.binding_key("replay") or "the replay key"
            self.notify(f"{headline(msg.report)}. {key}: the replay screen.", title="Reconciled", timeout=15)

    def binding_key(self, binding_id: str) -> str | None:
        """The key bound to ``binding_id`` now (after the config's rebinding), for a hint."""
        from console.tui import keymap as km

        override = (self.config.keys or {}).get(binding_id)
        if override:
            return override
        return next((k.key for k in km.ALL_KEYS if k.id == binding_id), None)

    @property
    def desk(self):
        from console.tui.screens.desk import DeskScreen

        for screen in self.screen_stack:
            if isinstance(screen, DeskScreen):
                return screen
        return None

    # ------------------------------------------------------------------ actions through the service

    def run_trade(self, factory: Callable, reply_to, tag=None) -> Worker:
        """Run ``factory(session)`` (a coroutine: place, cancel, squareoff ...) on the live
        session's loop, awaited by a worker; reply with ActionDone (a ServiceError becomes its
        one-sentence reason), carrying ``tag`` so a screen can drop a late answer to an older
        question."""

        async def body() -> None:
            from console.service import ServiceError

            try:
                res = await self.live.call(factory, self.session)
            except ServiceError as exc:
                reply_to.post_message(ActionDone(None, said(exc), tag))
                return
            text, _ok = summarize(res)
            reply_to.post_message(ActionDone(res, text, tag))

        return self.run_worker(body(), group="actions", name="action", exit_on_error=False)

    def on_action_done(self, msg: ActionDone) -> None:
        """Bubbled up after the screen showed it: now stamp the journal entries acknowledged."""
        res = msg.result
        if res is not None and res.journal_seqs:
            self.run_worker(
                partial(self.service.acknowledge, res),
                thread=True,
                group="ack",
                name="acknowledge",
                exit_on_error=False,
            )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR:
            return
        text = _error_text(event.worker.error)
        self.notify(text, title=event.worker.name or "error", severity="error", timeout=10)

    # ------------------------------------------------------------------ market watch list (config)

    def watch_add(self, item: str) -> None:
        if item not in self.watch_symbols:
            self.watch_symbols.append(item)

    def watch_remove(self, item: str) -> None:
        if item in self.watch_symbols:
            self.watch_symbols.remove(item)

    # ------------------------------------------------------------------ lock, help, palette, quit

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseDown)):
            self.last_input = time.monotonic()
        await super().on_event(event)

    def idle_lock_check(self) -> None:
        idle = time.monotonic() - self.last_input
        if (
            not self.locked
            and self.session.identity is not None
            and idle >= self.config.idle_lock_minutes * 60
        ):
            self.action_lock()

    def action_lock(self) -> None:
        from console.tui.screens.lock import LockScreen

        if self.locked or self.session.identity is None:
            return
        self.locked = True
        # the notices on screen name clients and orders: they wait for the unlock, as do new ones
        self._held_notices.extend(
            (n.message, n.title, n.severity, n.timeout, n.markup) for n in self._notifications
        )
        self.clear_notifications()
        if CommandPalette.is_open(self):
            self.screen.dismiss()  # the palette (open over the desk) must not stay over the lock
        self.push_screen(LockScreen(self.session.identity.user_id))

    def notify(
        self,
        message,
        *,
        title: str = "",
        severity="information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """While locked a notice waits for the unlock (it may name a client or an order); a
        mode change is shown at once (it names none)."""
        if getattr(self, "locked", False) and title != "Mode":
            self._held_notices.append((message, title, severity, timeout, markup))
            return
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def release_held_notices(self) -> None:
        held, self._held_notices = self._held_notices, []
        for message, title, severity, timeout, markup in held:
            self.notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def action_command_palette(self) -> None:
        if self.locked:  # the palette offers nothing while locked
            return
        super().action_command_palette()

    def action_help(self) -> None:
        from console.tui.screens.help import HelpScreen, live_keys

        if self.locked:
            return
        self.push_screen(HelpScreen(live_keys(self.screen)))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette offers what fits the screen: the desk's trading keys on the desk."""
        if self.locked:
            return
        offer = getattr(screen, "palette_commands", None)
        if offer is not None:
            for title, action, help_text in offer():
                yield SystemCommand(title, help_text, partial(screen.run_action, action))
        if self.session.identity is not None:
            yield SystemCommand(
                "Lock screen", "lock the console until the password is given", self.action_lock
            )
        yield from super().get_system_commands(screen)

    async def action_quit(self) -> None:
        """ctrl+q.  With journal entries not yet on main, ask first, saying who will send
        them (the note on stderr after the screen closes lists them: console/shutdown.py)."""
        if self.session.identity is None:
            self.exit()
            return
        if not self._quit_asked:
            self._quit_asked = True
            self.run_worker(self._check_unsent, thread=True, group="quit", name="quit", exit_on_error=False)

    def _check_unsent(self) -> None:
        from console.shutdown import running_agent

        try:
            entries = self.service.journal_entries(limit=100_000, unfinished_only=True)
            agent = running_agent(self.service.data_dir)
        except Exception as exc:  # noqa: BLE001 - unreadable journal: ask, never quit silently
            entries, agent = exc, None
        self.call_from_thread(self._ask_quit, entries, agent)

    def _ask_quit(self, entries, agent: int | None) -> None:
        from console.tui.screens.confirm import ConfirmScreen

        if entries == []:
            self.exit()
            return
        if isinstance(entries, Exception):
            question = (
                f"The journal could not be read ({entries}): entries may not be on main yet. Quit anyway?"
            )
        else:
            n = len(entries)
            kinds: dict[str, int] = {}
            for e in entries:
                kinds[str(e.get("kind"))] = kinds.get(str(e.get("kind")), 0) + 1
            what = ", ".join(f"{c} {k}" for k, c in sorted(kinds.items()))
            it, they = ("it", "It stays") if n == 1 else ("them", "They stay")
            who = (
                f"the agent running on this store{f' (pid {agent})' if agent else ''} will send {it} once "
                "main answers"
                if agent is not None
                else f"no agent runs on this store: {it} will be sent at the next start of the console or agent"
            )
            question = (
                f"{n} journal entr{'y is' if n == 1 else 'ies are'} not yet on the main system ({what}). "
                f"{they} in the journal; {who}. Quit anyway?"
            )

        def answered(yes: bool | None) -> None:
            self._quit_asked = False
            if yes:
                self.exit()

        self.push_screen(ConfirmScreen(question), answered)

    def stop_runtime(self) -> None:
        self.live.stop_runtime()

    def on_unmount(self) -> None:
        self.stop_runtime()
        self.live.close()  # the runtime ends, then the session's loop and client

    def exit(self, *args, **kw) -> None:
        self.stop_runtime()
        self.session.forget()
        super().exit(*args, **kw)


CUTOFF_TITLE = "Intraday cut-off"
# Risk notices that name no client, order or price (a segment, a time, counts): shown over the
# lock screen at once, as a mode change is; the others wait for the unlock like any notice.
PUBLIC_RISK_KINDS = frozenset({"cutoff_warning", "cutoff_done"})
SEVERITIES: dict[str, SeverityLevel] = {"information": "information", "warning": "warning", "error": "error"}
RISK_TITLES = {
    "mtm_alert": "MTM-loss alert",
    "mtm_breach": "MTM-loss limit breached",
    "stale_prices": "Stale prices",
    "config_error": "Risk rules",
}


def risk_title(kind: str, segment: str | None) -> str:
    """A risk notice's toast title: the cut-off's with its segment, else by kind."""
    if kind.startswith("cutoff"):
        return f"{CUTOFF_TITLE} {segment}" if segment else CUTOFF_TITLE
    return RISK_TITLES.get(kind, "Risk")


def _error_text(err: BaseException | None) -> str:
    """A worker's or the runtime's error in one line (its own sentence when it has one)."""
    if isinstance(err, ServiceError):
        return said(err)
    return getattr(err, "message", None) or f"{type(err).__name__}: {err}"
