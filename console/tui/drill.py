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
import time
from datetime import datetime
from pathlib import Path

from textual import work

from console.demo import DEMO_PASSWORD, DEMO_USER, OutageSwitch, flat_on_main, pick_drill_client
from console.demo_report import DrillReport, judge_reconciliation, now
from console.tui import keymap
from console.tui.app import LifeboatApp
from console.tui.messages import ModeChanged

HINT = ("Demo: ctrl+o stages an outage (main refuses connections) and ends it again; F10 squares off, "
        "F9 shows the journal, ? lists every key, ctrl+q quits.")


HINT_LINE = (" DEMO   ctrl+o  stage / end an outage of the main system   |   F10  square off   |   F9  journal   |   "
             "?  every key   |   ctrl+q  quit (stops mainsim)")
DRILL_LINE = (" DRILL  plays by itself: outage -> BACKUP -> square-off journaled -> outage ended -> RECOVERING -> "
              "replay -> reconciliation -> ONLINE; the report is written at the end")


class DemoApp(LifeboatApp):
    BINDINGS = [*LifeboatApp.BINDINGS, *keymap.bindings(keymap.DEMO_KEYS)]

    def __init__(self, service, config=None, *, switch: OutageSwitch, password: str = DEMO_PASSWORD,
                 drill: "DrillDriver | None" = None, **kw) -> None:
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

        async def go():
            await self.session.login(DEMO_USER, self.demo_password, online=True)
            await self.service.sync_bod()

        try:
            asyncio.run(go())
        except ServiceError as exc:
            self.call_from_thread(self.notify, f"Demo login failed ({exc.message}); log in by hand as "
                                  f"{DEMO_USER} / {DEMO_PASSWORD}.", severity="error", timeout=30)
            return
        self.call_from_thread(self._signed_in)

    def _signed_in(self) -> None:
        self.open_desk()
        self.notify(HINT, title="Lifeboat demo", timeout=12)
        self.call_after_refresh(self._show_hint_line)
        if self.driver is not None:
            self.run_worker(self.driver.run(), group="drill", name="drill", exit_on_error=False)

    def _show_hint_line(self) -> None:
        """A line above the status bar that stays: the footer is too full to show the demo's key."""
        from textual.widgets import Static

        from console.tui.widgets.status_bar import StatusBar

        desk = self.desk
        if desk is None or not desk.is_mounted:
            self.call_after_refresh(self._show_hint_line)
            return
        text = DRILL_LINE if self.driver is not None else HINT_LINE
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
            self.call_from_thread(self.notify, f"mainsim's fault control did not answer: {exc}",
                                  severity="error", timeout=10)
            return
        if mode == "none":
            text = ("Outage ended: main answers again. The console goes RECOVERING, replays its journal, "
                    "reconciles and shows the report, then ONLINE.")
        else:
            text = ("OUTAGE STAGED: main now refuses connections. The banner turns BACKUP; square off with F10 "
                    "(journaled locally), see it with F9; ctrl+o ends the outage.")
        self.call_from_thread(self.notify, text, title="Demo", severity="warning" if mode != "none" else
                              "information", timeout=15)


class _StepFailed(Exception):
    pass


class DrillDriver:
    """Plays the DR drill on the demo console and writes its report.

    Staged outage -> BACKUP -> square-off of one client journaled (offline login) ->
    outage ended -> RECOVERING -> automatic replay -> reconciliation report on screen ->
    ONLINE; then the client's book on main is checked flat.  Every wait has a timeout;
    a step that does not happen is written into the report as the failure."""

    def __init__(self, report: DrillReport, report_dir: Path, *, pause_s: float = 1.5, linger_s: float = 6.0,
                 step_timeout_s: float = 30.0) -> None:
        self.app: DemoApp | None = None
        self.report = report
        self.report_dir = report_dir
        self.pause_s = pause_s
        self.linger_s = linger_s
        self.step_timeout_s = step_timeout_s
        self.finished = False
        self.paths: tuple[Path, Path] | None = None

    async def run(self) -> None:
        app = self.app
        t0 = time.monotonic()
        try:
            await self._story()
        except _StepFailed:
            pass
        except Exception as exc:  # noqa: BLE001 - any surprise is the drill's failure, in its report
            self.report.step("drill", ok=False, detail=f"{type(exc).__name__}: {exc}")
        finally:
            if app.switch.active:
                try:
                    await asyncio.to_thread(app.switch.end)
                except Exception:  # noqa: BLE001 - mainsim is stopped on exit anyway
                    pass
            self.report.timing("total_s", time.monotonic() - t0)
            self.report.finished_at = now().isoformat()
            self.paths = await asyncio.to_thread(self.report.write, self.report_dir)
            self.finished = True
        verdict = ("DRILL PASSED: flat and reconciled" if self.report.ok
                   else f"DRILL FAILED: {self.report.failure or 'see the report'}")
        app.notify(f"{verdict}. Report: {self.paths[1]}", title="Drill", timeout=max(self.linger_s, 5),
                   severity="information" if self.report.ok else "error")
        await asyncio.sleep(self.linger_s)
        app.exit(return_code=self.report.exit_code)

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

    @staticmethod
    async def blocking(fn):
        """A coroutine factory of the service, run on its own loop in a thread (as the console's actions)."""
        return await asyncio.to_thread(lambda: asyncio.run(fn()))

    def say(self, text: str) -> None:
        self.app.notify(text, title="Drill", timeout=max(self.pause_s * 3, 4))

    async def _story(self) -> None:
        app, rep = self.app, self.report
        svc = app.service
        await self.wait("console ONLINE on the desk",
                        lambda: app.desk is not None and app.desk.book is not None and app.host is not None
                        and app.host.runtime is not None and app.mode_now == "ONLINE")
        rep.step("console ONLINE", detail=f"{DEMO_USER} logged in online, BOD taken, runtime live")
        positions = await self.blocking(svc.positions)
        chosen = pick_drill_client(positions)
        if chosen is None:
            rep.step("client to square off", ok=False, detail="no client in scope has an open position")
            raise _StepFailed
        client, legs = chosen
        rep.client_id, rep.legs = client, legs
        rep.step("client to square off", detail=f"{client}: {legs} open legs on main")
        app.desk.action_show("positions")

        self.say("Staging an outage: main will refuse connections. Watch the banner.")
        await asyncio.sleep(self.pause_s)
        t_stage = time.monotonic()
        await asyncio.to_thread(app.switch.stage)
        rep.step("outage staged", detail="mainsim refuses connections (fault control, refuse)")
        mono, _ = await self.wait("BACKUP", lambda: app.entered("BACKUP", t_stage))
        rep.timing("detection_s", mono - t_stage)
        rep.step("BACKUP", detail=f"detected {mono - t_stage:.3f} s after the outage was staged")

        self.say(f"Main is down. Squaring off client {client} in backup: journaled locally (offline login).")
        await asyncio.sleep(self.pause_s)
        from console.service import ServiceError
        from console.tui.outcome import summarize

        t_sq = time.monotonic()
        try:
            res = await self.blocking(lambda: app.session.squareoff(client_id=client))
        except ServiceError as exc:
            rep.step("square-off journaled", ok=False, detail=exc.message)
            raise _StepFailed from None
        rep.timing("squareoff_journal_s", time.monotonic() - t_sq)
        text, ok = summarize(res)
        if res.mode != "BACKUP" or res.rejected or not res.journal_seqs:
            rep.step("square-off journaled", ok=False, detail=f"mode {res.mode}: {text}")
            raise _StepFailed
        await asyncio.to_thread(svc.acknowledge, res)
        rep.step("square-off journaled", detail=f"{len(res.legs)} legs, {len(res.cancels or [])} cancels, "
                                                 f"journal seqs {res.journal_seqs}")
        app.notify(text, title="Square-off (backup)", timeout=8)
        app.desk.action_show("journal")
        app.desk.sample_status()
        await asyncio.sleep(self.pause_s * 2)

        self.say("Ending the outage: main answers again. RECOVERING, replay, reconciliation, then ONLINE.")
        t_end = time.monotonic()
        await asyncio.to_thread(app.switch.end)
        rep.step("outage ended")
        mono, _ = await self.wait("RECOVERING", lambda: app.entered("RECOVERING", t_end))
        rep.timing("recovering_after_end_s", mono - t_end)
        rep.step("RECOVERING", detail=f"{mono - t_end:.3f} s after the outage ended")
        done = await self.wait("replay reconciled", lambda: next(
            (r for r in app.recoveries if r.seen >= t_end and r.report is not None), None), timeout=60)
        report = done.report
        replay = report.get("replay") or {}
        if replay.get("started_at") and replay.get("finished_at"):
            started = datetime.fromisoformat(replay["started_at"])
            finished = datetime.fromisoformat(replay["finished_at"])
            rep.timing("replay_s", (finished - started).total_seconds())
            rep.timing("reconciliation_s", (datetime.fromisoformat(report["created_at"]) - finished).total_seconds())
        rep.step("replayed", detail=replay.get("message", "-"))
        mono, _ = await self.wait("ONLINE again", lambda: app.entered("ONLINE", t_end))
        rep.timing("online_after_end_s", mono - t_end)
        rep.step("ONLINE", detail=f"{mono - t_end:.3f} s after the outage ended")

        rep.reconciled, rep.held_for_a_person = judge_reconciliation(report)
        rep.reconciliation = {"id": report.get("id"), "counts": report.get("counts"),
                              "mismatch_counts": report.get("mismatch_counts"),
                              "local_equals_main": report.get("local_equals_main")}
        positions = await self.blocking(lambda: svc.positions(client))
        rep.flat = flat_on_main(positions, client)
        left = [f"{p.symbol} {p.net_quantity}" for p in positions if p.client_id == client and p.net_quantity]
        rep.step("book flat on main", ok=rep.flat, detail=f"{client}: " + (", ".join(left) or "every leg 0"))
        rep.step("reconciled", ok=rep.reconciled,
                 detail=f"mismatches {report.get('mismatch_counts')}, held {rep.held_for_a_person}")
        from console.tui.drill_report import ReconciliationScreen

        verdict = ("DRILL PASSED: the book ended flat and reconciled" if rep.ok
                   else f"DRILL FAILED: {rep.failure}")
        app.push_screen(ReconciliationScreen(report, timings=dict(rep.timings_s), verdict=verdict))
