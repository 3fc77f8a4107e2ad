"""The demo console and the DR drill on screen.

Why a subclass of the real console and not a copy: a newcomer must see the product as a
dealer does (same desk, same runtime, same detector, same automatic replay); the demo
only adds what a demo needs - the login done for them, a key that stages an outage
through mainsim's fault control (keymap id ``outage``), and for ``--drill`` a driver that
plays the whole story by itself and writes the drill report (console/demo_report.py).
Reloading the desk and showing the reconciliation report after an automatic replay are
the console's own (LifeboatApp.on_recovered); the drill turns the report off and shows
its own, with the timings and the verdict.

Textual dispatches a message to the handler of every class in the MRO, so the handlers
here never call ``super()`` for messages: the console's own handlers run as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import ClassVar, NoReturn, TypeVar

from textual import work
from textual.binding import BindingType

from console.demo import (
    DEMO_PASSWORD,
    DEMO_USER,
    DemoBackend,
    OutageSwitch,
    SiteAdmin,
    check_sites,
    flat_on_main,
    holds,
    orders_by_coid,
    pick_drill_client,
    pick_drill_clients,
)
from console.demo_report import DRDrillReport, DrillReport, judge_reconciliation
from console.exitcodes import ExitCode
from console.tui import keymap
from console.tui.app import LifeboatApp
from console.tui.messages import ModeChanged
from console.tui.outcome import said

T = TypeVar("T")

HINT = (
    "Demo: ctrl+o stages an outage (main refuses connections) and ends it again; F10 squares off, "
    "F9 shows the journal, ? lists every key, ctrl+q quits."
)


HINT_LINE = (
    " DEMO   ctrl+o  stage / end an outage of the main system   |   F10  square off   |   F9  journal   |   "
    "?  every key   |   ctrl+q  quit (stops mainsim)"
)
DRILL_LINE = (
    " DRILL  plays by itself: outage -> BACKUP -> square-off journaled -> outage ended -> RECOVERING -> "
    "replay -> reconciliation -> ONLINE; the report is written at the end"
)

DR_DRILL_LINE = (
    " DR DRILL  plays by itself: main killed -> BACKUP -> DR promoted -> DR -> square-off at DR -> DR killed -> "
    "BACKUP, journaled -> DR back -> replay -> DR -> main back as standby -> switch-back -> ONLINE"
)


class DemoApp(LifeboatApp):
    BINDINGS: ClassVar[list[BindingType]] = [*LifeboatApp.BINDINGS, *keymap.bindings(keymap.DEMO_KEYS)]

    def __init__(
        self,
        service,
        config=None,
        *,
        switch: OutageSwitch,
        password: str = DEMO_PASSWORD,
        drill: DrillDriver | None = None,
        **kw,
    ) -> None:
        super().__init__(service, config, user=DEMO_USER, **kw)
        self.switch = switch
        self.demo_password = password
        self.mode_now: str | None = None
        self.mode_log: list[tuple[str, float, datetime]] = []  # (mode, monotonic, when) as the runtime said
        self.driver = drill
        if drill is not None:
            drill.app = self
            self.show_recovery_report = False  # the driver shows it, with the drill's timings and verdict

    # ------------------------------------------------------------------ start: logged in for the newcomer

    def on_mount(self) -> None:  # the console's own on_mount runs too (login screen underneath)
        self.sign_in()

    @work(thread=True, exclusive=True, group="demo-login", exit_on_error=False)
    def sign_in(self) -> None:
        from console.service import ServiceError

        async def go() -> None:
            await self.session.login(DEMO_USER, self.demo_password, online=True)
            await self.service.sync_bod()

        try:
            self.live.call_blocking(go)
        except Exception as exc:
            why = said(exc) if isinstance(exc, ServiceError) else f"{type(exc).__name__}: {exc}"
            if self.driver is not None:  # nobody to log in by hand: the drill fails now, and says why
                self.call_from_thread(self._start_drill, f"demo login failed: {why}")
                return
            if not isinstance(exc, ServiceError):
                raise
            self.call_from_thread(
                self.notify,
                f"Demo login failed ({why}); log in by hand as {DEMO_USER} / {DEMO_PASSWORD}.",
                severity="error",
                timeout=30,
            )
            return
        self.call_from_thread(self._signed_in)

    def _start_drill(self, cannot_start: str | None = None) -> None:
        if self.driver is not None:
            self.run_worker(self.driver.run(cannot_start), group="drill", name="drill", exit_on_error=False)

    def _signed_in(self) -> None:
        self.open_desk()
        self.notify(HINT, title="Lifeboat demo", timeout=12)
        self.call_after_refresh(self._show_hint_line)
        if self.driver is not None:
            self._start_drill()

    def _show_hint_line(self) -> None:
        """A line above the status bar that stays: the footer is too full to show the demo's key."""
        from textual.widgets import Static

        from console.tui.widgets.status_bar import StatusBar

        desk = self.desk
        if desk is None or not desk.is_mounted:
            self.call_after_refresh(self._show_hint_line)
            return
        text = self.driver.line if self.driver is not None else HINT_LINE
        line = Static(text, id="demo-hint")
        line.styles.height = 1
        line.styles.background = "#005f87"
        line.styles.color = "white"
        desk.mount(line, before=desk.query_one(StatusBar))

    # ------------------------------------------------------------------ what the runtime says

    def on_mode_changed(self, msg: ModeChanged) -> None:
        self.mode_now = msg.mode
        self.mode_log.append((msg.mode, time.monotonic(), msg.at))

    def entered(self, mode: str, after: float) -> tuple[float, datetime] | None:
        """When the console first entered ``mode`` after monotonic time ``after``."""
        for m, mono, at in self.mode_log:
            if m == mode and mono >= after:
                return mono, at
        return None

    # ------------------------------------------------------------------ the outage key

    def action_outage(self) -> None:
        if self.driver is not None:
            self.notify("The drill stages and ends the outage by itself.", severity="warning")
            return
        self.toggle_outage()

    @work(thread=True, exclusive=True, group="demo-outage", exit_on_error=False)
    def toggle_outage(self) -> None:
        try:
            mode = self.switch.toggle()
        except Exception as exc:  # noqa: BLE001 - the fault switch is the demo's; say so, keep going
            self.call_from_thread(
                self.notify, f"mainsim's fault control did not answer: {exc}", severity="error", timeout=10
            )
            return
        if mode == "none":
            text = (
                "Outage ended: main answers again. The console goes RECOVERING, replays its journal, "
                "reconciles and shows the report, then ONLINE."
            )
        else:
            text = (
                "OUTAGE STAGED: main now refuses connections. The banner turns BACKUP; square off with F10 "
                "(journaled locally), see it with F9; ctrl+o ends the outage."
            )
        self.call_from_thread(
            self.notify,
            text,
            title="Demo",
            severity="warning" if mode != "none" else "information",
            timeout=15,
        )


class _StepFailed(Exception):
    pass


class DrillDriver:
    """Plays the DR drill on the demo console and writes its report.

    Staged outage -> BACKUP -> square-off of one client journaled (offline login) ->
    outage ended -> RECOVERING -> automatic replay -> reconciliation report on screen ->
    ONLINE; then the client's book on main is checked flat.  Every wait has a timeout;
    a step that does not happen is written into the report as the failure, and a failed
    drill ends the app at once (a passed one lingers ``linger_s`` on its report).

    Every step is recorded at the instant it happened (the ask to the fault switch, the mode change
    as the app received it, the replayer's own stamps), and every timing is the difference
    of two of those instants (demo_report.TIMING_SPANS): the report agrees with itself."""

    line = DRILL_LINE  # the line above the status bar while it plays

    def __init__(
        self,
        report: DrillReport,
        report_dir: Path,
        *,
        pause_s: float = 1.5,
        linger_s: float = 6.0,
        step_timeout_s: float = 30.0,
    ) -> None:
        self._app: DemoApp | None = None
        self.report = report
        self.report_dir = report_dir
        self.pause_s = pause_s
        self.linger_s = linger_s
        self.step_timeout_s = step_timeout_s
        self.finished = False
        self.paths: tuple[Path, Path] | None = None
        self.write_error: str | None = None

    @property
    def app(self) -> DemoApp:
        """The demo console the drill plays on (DemoApp sets it)."""
        if self._app is None:
            raise RuntimeError("the drill is not attached to a demo console")
        return self._app

    @app.setter
    def app(self, app: DemoApp) -> None:
        self._app = app

    async def run(self, cannot_start: str | None = None) -> None:
        """The whole drill, then the app's exit: always reached, whatever happened on the way.
        ``cannot_start``: why the console never got online (the drill fails at once)."""
        app, rep = self.app, self.report
        code = int(ExitCode.UNEXPECTED)
        try:
            start = time.monotonic()
            rep.begin(mono=start)
            # at the very instant it began (t = 0), however long the line above took on a busy machine
            rep.step("drill started", detail=f"{DEMO_USER} on {rep.backend_url or '-'}", mono=start)
            try:
                if cannot_start is not None:
                    rep.step("console ONLINE", ok=False, detail=cannot_start)
                else:
                    await self._story()
            except _StepFailed:
                pass
            except Exception as exc:  # noqa: BLE001 - any surprise is the drill's failure, in its report
                rep.step("drill", ok=False, detail=f"{type(exc).__name__}: {exc}")
            await self._finish()
            code = rep.exit_code
            if rep.ok:
                app.notify(
                    f"DRILL PASSED: flat and reconciled. Report: {self.paths[1] if self.paths else '-'}",
                    title="Drill",
                    timeout=max(self.linger_s, 5),
                )
                await asyncio.sleep(self.linger_s)
        finally:  # a failed drill ends now (the reason is on stderr and in the report); an exit already
            if app.return_code is None:  # under way (a signal: 128 + its number) keeps its own code
                app.exit(return_code=code)

    async def _finish(self) -> None:
        app, rep = self.app, self.report
        if app.switch.active:
            with contextlib.suppress(Exception):  # mainsim is stopped on exit anyway
                await asyncio.to_thread(app.switch.end)
        end = rep.step("drill ended", detail="passed" if rep.ok else f"failed: {rep.failure or rep._why()}")
        for timing in rep.SPANS:
            rep.span(timing)
        rep.finished_at = end.at
        try:
            self.paths = await asyncio.to_thread(rep.write, self.report_dir)
        except OSError as exc:
            self.write_error = f"cannot write the drill report into {self.report_dir}: {exc.strerror or exc}"
        self.finished = True

    async def wait(self, what: str, predicate, timeout: float | None = None):
        timeout = timeout or self.step_timeout_s
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            await asyncio.sleep(0.02)
        self.report.step(what, ok=False, detail=f"not seen within {timeout:.0f} s")
        raise _StepFailed

    def fail(self, what: str, detail: str) -> NoReturn:
        self.report.step(what, ok=False, detail=detail)
        raise _StepFailed

    async def blocking(self, fn: Callable[[], Awaitable[T]]) -> T:
        """A coroutine factory of the service, run on the live session's loop (as the console's actions)."""
        return await self.app.live.call(fn)

    def say(self, text: str) -> None:
        self.app.notify(text, title="Drill", timeout=max(self.pause_s * 3, 4))

    def _book_loaded(self):
        """The desk's book once it has loaded (BOD taken, rows read), with the console ONLINE."""
        app = self.app
        desk = app.desk
        if desk is None or desk.book is None or not app.live.snapshot().hosted:
            return None
        return desk.book if app.mode_now == "ONLINE" else None

    async def _story(self) -> None:
        app, rep = self.app, self.report
        svc = app.service
        from console.service import ServiceError

        book = await self.wait("console ONLINE", self._book_loaded)
        rep.step(
            "console ONLINE",
            detail=f"{DEMO_USER} logged in online, BOD taken, book loaded "
            f"({len(book.positions)} positions), runtime live",
        )
        # picked only now, from main, once the desk shows the book it will square off from
        try:
            positions = await self.blocking(svc.positions)
        except ServiceError as exc:
            self.fail("client to square off", f"main did not list the positions: {said(exc)}")
        chosen = pick_drill_client(positions)
        if chosen is None:
            self.fail(
                "client to square off",
                f"no client of {DEMO_USER} has an open position on main "
                f"({len(positions)} positions, all flat)",
            )
        client, legs = chosen
        rep.client_id, rep.legs = client, legs
        rep.step("client to square off", detail=f"{client}: {legs} open legs on main")
        app.desk.action_show("positions")

        self.say("Staging an outage: main will refuse connections. Watch the banner.")
        try:
            await asyncio.to_thread(app.switch.prepare)  # the supervisor's login, before the clock starts
        except Exception as exc:  # noqa: BLE001 - the fault switch is the demo's own
            self.fail("outage staged", f"mainsim's fault control did not answer: {type(exc).__name__}: {exc}")
        await asyncio.sleep(self.pause_s)
        asked = time.monotonic()
        try:
            await asyncio.to_thread(app.switch.stage)
        except Exception as exc:  # noqa: BLE001
            self.fail("outage staged", f"mainsim's fault control did not answer: {type(exc).__name__}: {exc}")
        answered = time.monotonic()
        # the instant it was staged is the ask: the refusal begins inside the request (the console may be in
        # BACKUP before the answer is back in this thread), so the answer would come after the detection
        staged = rep.step(
            "outage staged",
            mono=asked,
            detail=f"mainsim's fault control set to refuse connections; "
            f"it answered in {answered - asked:.3f} s",
        )
        mono, _ = await self.wait("BACKUP", lambda: app.entered("BACKUP", asked))
        backup = rep.step("BACKUP", mono=mono)
        backup.detail = f"detected {backup.t - staged.t:.3f} s after the outage was staged"

        self.say(f"Main is down. Squaring off client {client} in backup: journaled locally (offline login).")
        await asyncio.sleep(self.pause_s)
        from console.tui.outcome import summarize

        rep.step("square-off asked", detail=f"client {client}, offline login")
        try:
            res = await self.blocking(lambda: app.session.squareoff(client_id=client))
        except ServiceError as exc:
            self.fail("square-off journaled", said(exc))
        done = time.monotonic()
        text, _ok = summarize(res)
        if res.mode != "BACKUP" or res.rejected or not res.journal_seqs:
            self.fail("square-off journaled", f"mode {res.mode}: {text}")
        await asyncio.to_thread(svc.acknowledge, res)
        rep.step(
            "square-off journaled",
            mono=done,
            detail=f"{len(res.legs)} legs, {len(res.cancels or [])} cancels, journal seqs {res.journal_seqs}",
        )
        app.notify(text, title="Square-off (backup)", timeout=8)
        app.desk.action_show("journal")
        app.desk.sample_status()
        await asyncio.sleep(self.pause_s * 2)

        self.say("Ending the outage: main answers again. RECOVERING, replay, reconciliation, then ONLINE.")
        asked = time.monotonic()
        try:
            await asyncio.to_thread(app.switch.end)
        except Exception as exc:  # noqa: BLE001
            self.fail("outage ended", f"mainsim's fault control did not answer: {type(exc).__name__}: {exc}")
        ended = rep.step("outage ended")
        mono, _ = await self.wait("RECOVERING", lambda: app.entered("RECOVERING", asked))
        step = rep.step("RECOVERING", mono=mono)
        step.detail = f"{step.t - ended.t:.3f} s after the outage ended"
        done = await self.wait(
            "replay reconciled",
            lambda: next((r for r in app.recoveries if r.seen >= asked and r.report is not None), None),
            timeout=60,
        )
        report = done.report
        replay = report.get("replay") or {}
        if replay.get("started_at"):
            rep.step("replay started", mono=rep.instant(datetime.fromisoformat(replay["started_at"])))
        if replay.get("finished_at"):
            rep.step(
                "replay ended",
                mono=rep.instant(datetime.fromisoformat(replay["finished_at"])),
                detail=replay.get("message", "-"),
            )
        else:  # no stamp, no timing: the step says what the replayer said, when the drill saw it
            rep.step("replayed", detail=replay.get("message", "-"))
        if report.get("created_at"):
            rep.step(
                "reconciliation stored",
                mono=rep.instant(datetime.fromisoformat(report["created_at"])),
                detail=f"report #{report.get('id')}",
            )
        mono, _ = await self.wait("ONLINE", lambda: app.entered("ONLINE", asked))
        step = rep.step("ONLINE", mono=mono)
        step.detail = f"{step.t - ended.t:.3f} s after the outage ended"

        rep.reconciled, rep.held_for_a_person = judge_reconciliation(report)
        rep.reconciliation = {
            "id": report.get("id"),
            "counts": report.get("counts"),
            "verdict": report.get("verdict"),
            "headline": report.get("headline"),
            "mismatch_counts": report.get("mismatch_counts"),
            "local_equals_main": report.get("local_equals_main"),
        }
        positions = await self.blocking(lambda: svc.positions(client))
        rep.flat = flat_on_main(positions, client)
        left = [f"{p.symbol} {p.net_quantity}" for p in positions if p.client_id == client and p.net_quantity]
        rep.step("book flat on main", ok=rep.flat, detail=f"{client}: " + (", ".join(left) or "every leg 0"))
        rep.step(
            "reconciled",
            ok=rep.reconciled,
            detail=f"mismatches {report.get('mismatch_counts')}, held {rep.held_for_a_person}",
        )
        from console.tui.screens.reconciliation import ReconciliationScreen

        for timing in rep.SPANS:
            rep.span(timing)
        verdict = (
            "DRILL PASSED: the book ended flat and reconciled"
            if rep.ok
            else f"DRILL FAILED: {rep.failure or rep._why()}"
        )
        app.push_screen(ReconciliationScreen(report, timings=dict(rep.timings_s), verdict=verdict))


class DRDrillDriver(DrillDriver):
    """The DR drill (``lifeboat demo --drill --dr``) on the demo console: main and the broker's
    DR site (a mainsim standby following main) on loopback, the console configured with both.

    main killed (kill -9) -> BACKUP -> DR promoted (super1) -> DR on the banner -> a client
    squared off at DR (accepted there, never journaled) -> DR killed too -> BACKUP -> another
    client's square-off journaled (offline login) -> DR restarted (still primary, its own
    database) -> RECOVERING -> replay to DR -> reconciliation against DR -> DR -> main back as a
    standby following DR, caught up -> switch-back (main promoted, DR demoted to follow it) ->
    ONLINE at main -> DR caught up; then both clients flat on main, the replay reconciled, and
    both sites' databases read by client_order_id (no order twice, no accepted action missing,
    the same orders on both).  Each mode is waited for as the banner shows it, each step timed
    as the plain drill's are (demo_report.DR_TIMING_SPANS)."""

    line = DR_DRILL_LINE

    def __init__(
        self,
        report: DRDrillReport,
        report_dir: Path,
        *,
        main: DemoBackend,
        dr: DemoBackend,
        admin: SiteAdmin | None = None,
        **kw,
    ) -> None:
        super().__init__(report, report_dir, **kw)
        self.dr_report = report
        self.main, self.dr = main, dr
        self.admin = admin or SiteAdmin()

    # ------------------------------------------------------------------ what the screen and the sites say

    def _banner(self) -> tuple[str, str]:
        """(mode, the line it shows) of the desk's banner now."""
        from textual.css.query import NoMatches

        from console.tui.widgets.banner import ModeBanner

        desk = self.app.desk
        if desk is None or not desk.is_mounted:
            return "", ""
        try:
            banner = desk.query_one(ModeBanner)
        except NoMatches:
            return "", ""
        return banner.mode, str(banner.render()).strip()

    def _shown(self, mode: str, after: float, site: DemoBackend | None = None) -> float | None:
        """When the console entered ``mode`` after ``after``, once the banner shows it and (``site``)
        the actions go to that site (DR: the banner names it)."""
        entered = self.app.entered(mode, after)
        if entered is None:
            return None
        shown, text = self._banner()
        if shown != mode:
            return None
        if site is not None:
            if self.app.live.snapshot().site_url.rstrip("/") != site.url.rstrip("/"):
                return None
            if mode == "DR" and site.url not in text:
                return None
        return entered[0]

    def _banner_text(self) -> str:
        return f"banner: {self._banner()[1]}"

    def _caught_up(self, site: DemoBackend, following: str, coids: set[str]) -> dict | None:
        """The standby's health once it follows ``following``, is caught up and holds ``coids``."""
        h = self.admin.health(site)
        if h.get("role") != "standby" or (h.get("following") or "").rstrip("/") != following.rstrip("/"):
            return None
        if h.get("replication_lag_s") != 0:
            return None
        return h if coids <= set(orders_by_coid(site.db_path)) else None

    async def wait_thread(
        self, what: str, predicate: Callable[[], T | None], timeout: float | None = None
    ) -> T:
        """``wait`` for a blocking predicate (HTTP, SQLite), run in a worker thread; an error is 'not yet'."""
        timeout = timeout or self.step_timeout_s
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                value = await asyncio.to_thread(predicate)
            except Exception as exc:  # noqa: BLE001 - a site restarting answers badly for a while
                value, last = None, exc
            if value:
                return value
            await asyncio.sleep(0.05)
        self.fail(what, f"not seen within {timeout:.0f} s" + (f" (last: {last})" if last else ""))

    async def _squareoff(self, client: str, expect: str):
        """Square off ``client`` through the console's session (as F10 does); the result, acknowledged."""
        from console.service import ServiceError
        from console.tui.outcome import summarize

        app = self.app
        what = "square-off at DR accepted" if expect == "DR" else "square-off journaled"
        try:
            res = await self.blocking(lambda: app.session.squareoff(client_id=client))
        except ServiceError as exc:
            self.fail(what, said(exc))
        done = time.monotonic()
        text, _ok = summarize(res)
        if res.mode != expect or res.rejected or not res.legs:
            self.fail(what, f"mode {res.mode}: {text}")
        await asyncio.to_thread(app.service.acknowledge, res)
        app.notify(text, title=f"Square-off ({expect})", timeout=8)
        return res, done

    # ------------------------------------------------------------------ the story

    async def _story(self) -> None:
        app, rep = self.app, self.dr_report
        main, dr = self.main, self.dr
        svc = app.service
        from console.service import ServiceError

        book = await self.wait("console ONLINE", self._book_loaded)
        rep.step(
            "console ONLINE",
            detail=f"{DEMO_USER} logged in online at main {main.url}, BOD taken, book loaded "
            f"({len(book.positions)} positions), runtime live; DR site {dr.url} configured",
        )
        h = await self.wait_thread("DR site following", lambda: self._caught_up(dr, main.url, set()))
        rep.step(
            "DR site following",
            detail=f"{dr.url}: role {h['role']}, epoch {h['epoch']}, following main, lag {h['replication_lag_s']} s",
        )
        try:
            positions = await self.blocking(svc.positions)
        except ServiceError as exc:
            self.fail("clients to square off", f"main did not list the positions: {said(exc)}")
        chosen = pick_drill_clients(positions, 2)
        if len(chosen) < 2:
            self.fail(
                "clients to square off", f"fewer than two clients of {DEMO_USER} have open positions on main"
            )
        (at_dr, legs_dr), (journaled, legs_j) = chosen
        rep.client_id, rep.legs = at_dr, legs_dr
        rep.journal_client_id, rep.journal_legs = journaled, legs_j
        rep.step(
            "clients to square off",
            detail=f"{at_dr}: {legs_dr} open legs (to square off at DR); {journaled}: {legs_j} (to journal)",
        )
        app.desk.action_show("positions")

        # ---- the disaster: main killed
        self.say("Killing main (kill -9). Watch the banner: BACKUP.")
        try:  # the supervisor's login at DR before the clock starts: the promotion is one request
            await asyncio.to_thread(self.admin.login, dr)
        except Exception as exc:  # noqa: BLE001
            self.fail(
                "DR promoted", f"cannot log in at the DR site as the supervisor: {type(exc).__name__}: {exc}"
            )
        await asyncio.sleep(self.pause_s)
        pid = main.pid
        asked = time.monotonic()
        await asyncio.to_thread(main.kill)
        killed = rep.step("main killed", mono=asked, detail=f"kill -9 of main (pid {pid}, {main.url})")
        mono = await self.wait("BACKUP", lambda: self._shown("BACKUP", asked))
        step = rep.step("BACKUP", mono=mono)
        step.detail = f"{step.t - killed.t:.3f} s after main was killed; {self._banner_text()}"

        # ---- the broker declares the disaster: DR promoted
        self.say("The broker declares the disaster: the DR site is promoted. Watch the banner: DR.")
        await asyncio.sleep(self.pause_s)
        asked = time.monotonic()
        try:
            h = await asyncio.to_thread(self.admin.promote, dr)
        except Exception as exc:  # noqa: BLE001
            self.fail("DR promoted", f"{type(exc).__name__}: {exc}")
        promoted = rep.step(
            "DR promoted",
            mono=asked,
            detail=f"super1: /admin/promote at {dr.url}: {h['role']}, epoch {h['epoch']}",
        )
        mono = await self.wait("DR", lambda: self._shown("DR", asked, site=dr))
        step = rep.step("DR", mono=mono)
        step.detail = f"{step.t - promoted.t:.3f} s after the promotion; {self._banner_text()}"

        # ---- a square-off at DR: accepted there, not journaled
        self.say(f"Squaring off client {at_dr} at the DR site: accepted by DR, nothing journaled.")
        await asyncio.sleep(self.pause_s)
        asked = time.monotonic()
        rep.step("square-off at DR asked", mono=asked, detail=f"client {at_dr}")
        res, done = await self._squareoff(at_dr, "DR")
        coids = [str(leg.get("client_order_id")) for leg in res.legs]
        journaled_legs = [
            c for c, leg in zip(coids, res.legs, strict=True) if leg.get("outcome") == "journaled"
        ]
        on_dr, on_main = await asyncio.to_thread(
            lambda: (orders_by_coid(dr.db_path), orders_by_coid(main.db_path))
        )
        wrong = [c for c in coids if on_dr[c] != 1 or on_main[c]]
        if journaled_legs or wrong:
            self.fail(
                "square-off at DR accepted",
                f"journaled {journaled_legs}; not exactly once at DR, or at main: {wrong}",
            )
        rep.dr_legs = coids
        rep.step(
            "square-off at DR accepted",
            mono=done,
            detail=f"{len(coids)} legs, {len(res.cancels or [])} cancels, accepted by DR: each once in DR's "
            f"database, none at main, none journaled",
        )
        app.desk.sample_status()
        await asyncio.sleep(self.pause_s)

        # ---- DR lost too: BACKUP, the journal
        self.say("The DR site is lost too (kill -9). BACKUP: the next square-off is journaled locally.")
        await asyncio.sleep(self.pause_s)
        pid = dr.pid
        asked = time.monotonic()
        await asyncio.to_thread(dr.kill)
        killed = rep.step("DR killed", mono=asked, detail=f"kill -9 of the DR site (pid {pid}, {dr.url})")
        mono = await self.wait("BACKUP (DR lost)", lambda: self._shown("BACKUP", asked))
        step = rep.step("BACKUP (DR lost)", mono=mono)
        step.detail = f"{step.t - killed.t:.3f} s after DR was killed; {self._banner_text()}"
        await asyncio.sleep(self.pause_s)
        rep.step("square-off asked", detail=f"client {journaled}, offline login")
        res, done = await self._squareoff(journaled, "BACKUP")
        if not res.journal_seqs:
            self.fail("square-off journaled", "no journal entry was written")
        jcoids = [str(leg.get("client_order_id")) for leg in res.legs]
        rep.journaled_legs = jcoids
        rep.step(
            "square-off journaled",
            mono=done,
            detail=f"{len(res.legs)} legs, {len(res.cancels or [])} cancels, journal seqs {res.journal_seqs}",
        )
        app.desk.action_show("journal")
        app.desk.sample_status()
        await asyncio.sleep(self.pause_s * 2)

        # ---- DR back (still primary, its own database): RECOVERING, replay to DR, DR
        self.say("The DR site comes back (still primary): RECOVERING, the journal replayed to DR, then DR.")
        asked = time.monotonic()
        dr.extra_args = []  # a primary: its database says epoch 1
        rep.step(
            "DR restarted", mono=asked, detail=f"mainsim as a primary on {dr.db_path.name}, port {dr.port}"
        )
        try:
            await asyncio.to_thread(dr.start)
        except Exception as exc:  # noqa: BLE001
            self.fail("DR back", f"{type(exc).__name__}: {exc}")
        h = await self.wait_thread("DR back", lambda: self.admin.health(dr))
        back = rep.step(
            "DR back", detail=f"{dr.url} (pid {dr.pid}) answers: {h.get('role')}, epoch {h.get('epoch')}"
        )
        if h.get("role") != "primary" or not h.get("epoch"):
            self.fail(
                "DR back", f"it answers {h.get('role')} at epoch {h.get('epoch')}, not primary at epoch >= 1"
            )
        mono, _ = await self.wait("RECOVERING", lambda: app.entered("RECOVERING", asked))
        step = rep.step("RECOVERING", mono=mono)
        step.detail = f"{step.t - back.t:.3f} s after DR was back"
        done_pass = await self.wait(
            "replay reconciled",
            lambda: next((r for r in app.recoveries if r.seen >= asked and r.report is not None), None),
            timeout=60,
        )
        report = done_pass.report
        replay = report.get("replay") or {}
        if replay.get("started_at"):
            rep.step("replay started", mono=rep.instant(datetime.fromisoformat(replay["started_at"])))
        if replay.get("finished_at"):
            rep.step(
                "replay ended",
                mono=rep.instant(datetime.fromisoformat(replay["finished_at"])),
                detail=f"to DR: {replay.get('message', '-')}",
            )
        else:
            rep.step("replayed", detail=replay.get("message", "-"))
        if report.get("created_at"):
            rep.step(
                "reconciliation stored",
                mono=rep.instant(datetime.fromisoformat(report["created_at"])),
                detail=f"report #{report.get('id')}, against DR",
            )
        mono = await self.wait("DR again", lambda: self._shown("DR", asked, site=dr))
        step = rep.step("DR again", mono=mono)
        step.detail = f"{step.t - back.t:.3f} s after DR was back; {self._banner_text()}"
        rep.reconciled, rep.held_for_a_person = judge_reconciliation(report)
        rep.reconciliation = {
            "id": report.get("id"),
            "counts": report.get("counts"),
            "verdict": report.get("verdict"),
            "headline": report.get("headline"),
            "mismatch_counts": report.get("mismatch_counts"),
            "local_equals_main": report.get("local_equals_main"),
        }
        on_dr = await asyncio.to_thread(orders_by_coid, dr.db_path)
        wrong = [c for c in jcoids if not holds(on_dr, c)]
        twice = sorted(c for c, n in on_dr.items() if n > 1)
        rep.step(
            "journal at DR",
            ok=not wrong and not twice,
            detail=f"{len(jcoids)} journaled legs in DR's database (as their replay slices), no order twice"
            if not wrong and not twice
            else f"missing at DR: {wrong}; twice at DR: {twice}",
        )
        await asyncio.sleep(self.pause_s)

        # ---- main back as a standby of DR, caught up
        self.say("Main comes back as a standby following the DR site, and catches up.")
        asked = time.monotonic()
        main.extra_args = ["--role", "standby", "--follow", dr.url]
        rep.step(
            "main restarted as standby",
            mono=asked,
            detail=f"mainsim --role standby --follow {dr.url} on its old database, port {main.port}",
        )
        try:
            await asyncio.to_thread(main.start)
        except Exception as exc:  # noqa: BLE001
            self.fail("main caught up", f"{type(exc).__name__}: {exc}")
        want = set(on_dr)
        h = await self.wait_thread("main caught up", lambda: self._caught_up(main, dr.url, want), timeout=60)
        rep.step(
            "main caught up",
            detail=f"standby at epoch {h['epoch']} following DR, lag 0, its database holds DR's {len(want)} orders",
        )

        # ---- the planned switch-back: main promoted, DR demoted to follow it
        self.say("The planned switch-back: main promoted, the DR site demoted to follow it. ONLINE at main.")
        try:
            await asyncio.to_thread(self.admin.login, main)
        except Exception as exc:  # noqa: BLE001
            self.fail(
                "main promoted", f"cannot log in at main as the supervisor: {type(exc).__name__}: {exc}"
            )
        await asyncio.sleep(self.pause_s)
        asked = time.monotonic()
        try:
            h = await asyncio.to_thread(self.admin.promote, main)
        except Exception as exc:  # noqa: BLE001
            self.fail("main promoted", f"{type(exc).__name__}: {exc}")
        rep.step(
            "main promoted",
            mono=asked,
            detail=f"super1: /admin/promote at {main.url}: {h['role']}, epoch {h['epoch']}",
        )
        try:
            h = await asyncio.to_thread(self.admin.demote, dr, main.url)
        except Exception as exc:  # noqa: BLE001
            self.fail("DR demoted", f"{type(exc).__name__}: {exc}")
        rep.step(
            "DR demoted", detail=f"super1: /admin/demote at {dr.url}: {h['role']}, following {h['following']}"
        )
        mono = await self.wait("ONLINE", lambda: self._shown("ONLINE", asked, site=main), timeout=60)
        step = rep.step("ONLINE", mono=mono)
        path = " -> ".join(m for m, at, _ in app.mode_log if at >= asked) or "ONLINE"
        step.detail = f"at main {main.url} (modes on the way: {path}); {self._banner_text()}"
        want = set(await asyncio.to_thread(orders_by_coid, main.db_path))
        h = await self.wait_thread("DR caught up", lambda: self._caught_up(dr, main.url, want), timeout=60)
        rep.step("DR caught up", detail=f"standby at epoch {h['epoch']} following main, lag 0")

        # ---- the verdict: flat on main, reconciled, both databases agree
        left = []
        for client in (at_dr, journaled):
            positions = await self.blocking(functools.partial(svc.positions, client))
            if not flat_on_main(positions, client):
                left += [
                    f"{client} {p.symbol} {p.net_quantity}"
                    for p in positions
                    if p.client_id == client and p.net_quantity
                ]
        rep.flat = not left
        rep.step(
            "books flat on main",
            ok=rep.flat,
            detail=", ".join(left) or f"{at_dr} and {journaled}: every leg 0",
        )
        rep.step(
            "reconciled",
            ok=rep.reconciled,
            detail=f"mismatches {report.get('mismatch_counts')}, held {rep.held_for_a_person}",
        )
        accepted = rep.dr_legs + rep.journaled_legs
        dbs = {"main": main.db_path, "dr": dr.db_path}
        sites: dict = {}

        def agree() -> bool:
            sites.update(check_sites(dbs, accepted))
            return bool(sites["ok"])

        end = time.monotonic() + 15
        while not await asyncio.to_thread(agree) and time.monotonic() < end:
            await asyncio.sleep(0.1)
        rep.sites, rep.sites_ok = dict(sites), bool(sites.get("ok"))
        rep.step(
            "sites agree",
            ok=rep.sites_ok,
            detail=f"orders {sites.get('orders')}; {len(accepted)} accepted actions on both; "
            f"twice {sites.get('twice')}, missing {sites.get('missing')}, "
            f"on one site only {sites.get('on_one_site_only') or 'none'}",
        )
        from console.tui.screens.reconciliation import ReconciliationScreen

        for timing in rep.SPANS:
            rep.span(timing)
        verdict = (
            "DR DRILL PASSED: flat on main, reconciled, both sites agree"
            if rep.ok
            else f"DR DRILL FAILED: {rep.failure or rep._why()}"
        )
        app.push_screen(ReconciliationScreen(report, timings=dict(rep.timings_s), verdict=verdict))
