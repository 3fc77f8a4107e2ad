"""Replay and reconciliation (Ctrl+R, key ``replay``): the last report, and what waits for a person.

Why one screen: after an outage the question is "did everything reach main, once, and do
both sides agree?", and the answer has two parts - the last reconciliation report (the
same table as the drill's report) and the journal entries held for a person (stale ones,
and conflicts where main's position flipped sign).  A supervisor releases (sent on the
next replay, after a look-up on main) or discards (never sent) each one, after a
confirmation; both are audited by the service.  A dealer sees the same screen read only,
with a note saying whose decision it is.  "Replay now" runs the service's replay when
main answers.  Every service call runs in a worker (network calls on the live session's
loop); answers come back as messages.
"""

from __future__ import annotations

from datetime import UTC
from typing import ClassVar

from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, DataTable, Static

from console.tui.app import LifeboatApp
from console.tui.messages import HeldDecided, HeldLoaded, ReplayRan
from console.tui.outcome import said
from console.tui.screens.reconciliation import agrees, entries_table, headline, mismatches_table, styled_state

HELD_COLUMNS = ("Seq", "Kind", "Client", "Symbol", "Prod", "State", "Journaled (UTC)", "By", "Why held")
READ_ONLY_NOTE = (
    "Read only: releasing or discarding a held entry is a supervisor's decision. "
    "A supervisor logs in here, or runs `lifeboat sync release SEQ` / `sync discard SEQ`."
)
SUPERVISOR_NOTE = (
    "r: release the highlighted entry (sent on the next replay, looked up on main first)   "
    "x: discard it (never sent)   both audited"
)


class ReplayScreen(ModalScreen[None]):
    app = getters.app(LifeboatApp)  # typed: the console's own app
    DEFAULT_CSS = """
    ReplayScreen #replay-title { text-style: bold; }
    ReplayScreen .replay-section { text-style: bold; margin-top: 1; }
    ReplayScreen #replay-entries { height: 1fr; min-height: 4; }
    ReplayScreen #replay-mismatches { height: auto; max-height: 6; }
    ReplayScreen #replay-held { height: auto; max-height: 10; }
    ReplayScreen .recon-ok { color: $success; text-style: bold; }
    ReplayScreen .recon-bad { color: $error; text-style: bold; }
    ReplayScreen #replay-note.read-only { color: $warning; }
    ReplayScreen #replay-status { color: $accent; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "release", "Release held", id="replay.release"),
        Binding("x", "discard", "Discard held", id="replay.discard"),
        Binding("n", "replay_now", "Replay now", id="replay.now"),
        Binding("f5", "reload", "Refresh", id="replay.refresh"),
        Binding("escape,q", "close", "Back to the desk", id="replay.close"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.report: dict | None = None
        self.held: list[dict] = []
        self.loaded = 0  # how many answers arrived (tests, snapshots)
        self.busy = False
        self.last_decision: HeldDecided | None = None
        self.last_replay: ReplayRan | None = None

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="replay-box"):
            yield Static("REPLAY AND RECONCILIATION", id="replay-title")
            yield Static("Loading the last report…", id="replay-headline")
            yield Static("", id="replay-last")
            yield Vertical(id="replay-report")
            yield Static("Held for a person", classes="replay-section", id="replay-held-title")
            held: DataTable[str] = DataTable(id="replay-held", cursor_type="row", zebra_stripes=True)
            held.add_columns(*HELD_COLUMNS)
            yield held
            yield Static("", id="replay-note")
            yield Static("", id="replay-status")
            with Horizontal(classes="buttons"):
                yield Button("Release (r)", id="replay-release", variant="success", disabled=True)
                yield Button("Discard (x)", id="replay-discard", variant="error", disabled=True)
                yield Button("Replay now (n)", id="replay-now", variant="primary")
                yield Button("Close (Esc)", id="replay-close")

    def on_mount(self) -> None:
        box = self.query_one(
            "#replay-box"
        )  # the app's .dialog rule outranks DEFAULT_CSS: wider and taller here
        box.styles.width, box.styles.height = "96%", "90%"
        note = self.query_one("#replay-note", Static)
        if self.app.session.is_supervisor:
            note.update(SUPERVISOR_NOTE)
        else:
            note.update(READ_ONLY_NOTE)
            note.add_class("read-only")
        self.query_one("#replay-held", DataTable).focus()
        self.load()

    # ------------------------------------------------------------------ data

    @work(thread=True, exclusive=True, group="replay-load", exit_on_error=False)
    def load(self) -> None:
        from console.service import ServiceError

        svc = self.app.session.service
        try:
            self.post_message(HeldLoaded(svc.last_report(), svc.held_entries()))
        except ServiceError as exc:
            self.post_message(HeldLoaded(None, [], said(exc)))

    async def on_held_loaded(self, msg: HeldLoaded) -> None:
        self.report, self.held = msg.report, msg.held
        await self._show_report(msg.report)
        self._show_held(msg.held)
        self.loaded += 1
        if msg.error:
            self.say(msg.error)

    async def _show_report(self, report: dict | None) -> None:
        head = self.query_one("#replay-headline", Static)
        last = self.query_one("#replay-last", Static)
        box = self.query_one("#replay-report", Vertical)
        await box.remove_children()
        head.remove_class("recon-ok", "recon-bad")
        if report is None:
            head.update("No reconciliation on this console yet: one runs after every replay.")
            last.update("")
            return
        head.update(headline(report))
        head.add_class("recon-ok" if agrees(report) else "recon-bad")
        replay = report.get("replay") or {}
        last.update(
            f"Last replay: {replay.get('message', replay.get('status', '-'))}  "
            f"(report of {report.get('created_at', '-')})"
        )
        widgets: list[Widget] = [entries_table(report, id="replay-entries")]
        mism = mismatches_table(report, id="replay-mismatches")
        widgets.append(
            mism if mism is not None else Static("No mismatches: main holds what the journal meant.")
        )
        await box.mount_all(widgets)

    def _show_held(self, held: list[dict]) -> None:
        table = self.query_one("#replay-held", DataTable)
        table.clear()
        for e in held:
            table.add_row(
                str(e["seq"]),
                e.get("kind") or "",
                e.get("client_id") or "",
                e.get("symbol") or "",
                e.get("product") or "",
                styled_state(e.get("state")),
                _when(e.get("created_at")),
                e.get("user_id") or "",
                e.get("reason") or "",
                key=str(e["seq"]),
            )
        can = self.app.session.is_supervisor and bool(held)
        self.query_one("#replay-release", Button).disabled = not can
        self.query_one("#replay-discard", Button).disabled = not can
        self.query_one("#replay-held-title", Static).update(
            f"Held for a person: {len(held)}" if held else "Held for a person: none"
        )

    def say(self, text: str) -> None:
        self.query_one("#replay-status", Static).update(text)

    def highlighted(self) -> dict | None:
        table = self.query_one("#replay-held", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((e for e in self.held if str(e["seq"]) == key), None)

    # ------------------------------------------------------------------ a supervisor's decision

    @on(Button.Pressed, "#replay-release")
    def action_release(self) -> None:
        self._decide(release=True)

    @on(Button.Pressed, "#replay-discard")
    def action_discard(self) -> None:
        self._decide(release=False)

    def _decide(self, *, release: bool) -> None:
        from console.tui.screens.confirm import ConfirmScreen

        ident = self.app.session.identity
        if not self.app.session.is_supervisor:
            who = f"{ident.user_id} ({ident.role})" if ident else "nobody"
            self.say(f"Only a supervisor can release or discard a held entry; you are {who}.")
            return
        entry = self.highlighted()
        if entry is None:
            self.say("Nothing is held for a person: nothing to decide.")
            return
        if self.busy:
            return
        seq = entry["seq"]
        what = f"#{seq} {entry.get('kind')} {entry.get('client_id')} {entry.get('symbol') or ''}".rstrip()
        question = (
            f"RELEASE held entry {what}? It goes to main on the next replay (looked up there first)."
            if release
            else f"DISCARD held entry {what}? It will never be sent to main."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.busy = True
                self.say(("releasing " if release else "discarding ") + f"#{seq}…")
                self.decide(seq, release)

        self.app.push_screen(ConfirmScreen(question), answered)

    @work(exclusive=True, group="replay-decide", exit_on_error=False)
    async def decide(self, seq: int, release: bool) -> None:
        from console.service import ServiceError

        session = self.app.session
        try:
            fn = session.release_held if release else session.discard_held
            row = await self.app.live.call(fn, seq)
        except ServiceError as exc:
            self.post_message(HeldDecided(seq, release, None, said(exc)))
            return
        self.post_message(HeldDecided(seq, release, row, None))

    def on_held_decided(self, msg: HeldDecided) -> None:
        self.busy = False
        self.last_decision = msg
        if msg.error:
            self.say(f"#{msg.seq} not {'released' if msg.release else 'discarded'}: {msg.error}")
        else:
            self.say(
                f"#{msg.seq} {'released: sent on the next replay' if msg.release else 'discarded: never sent'}"
                f" ({(msg.row or {}).get('reason')})"
            )
            self.app.notify(
                f"Held entry #{msg.seq} {'released' if msg.release else 'discarded'} (audited).",
                title="Replay",
            )
        self.load()

    # ------------------------------------------------------------------ replay now

    @on(Button.Pressed, "#replay-now")
    def action_replay_now(self) -> None:
        if self.busy:
            return
        probe = self.app.session.last_probe
        if probe is not None and not probe.ok:
            self.say("The main system does not answer: the journal replays by itself once it is back.")
            return
        self.busy = True
        self.say("replaying the journal to main…")
        self.replay_now()

    @work(exclusive=True, group="replay-now", exit_on_error=False)
    async def replay_now(self) -> None:
        from console.service import ServiceError

        try:
            outcome = (await self.app.live.call(self.app.session.replay)).as_dict()
        except ServiceError as exc:
            self.post_message(ReplayRan(None, said(exc)))
            return
        self.post_message(ReplayRan(outcome, None))

    def on_replay_ran(self, msg: ReplayRan) -> None:
        self.busy = False
        self.last_replay = msg
        if msg.error:
            self.say(f"Replay not run: {msg.error}")
        else:
            outcome = msg.outcome or {}
            replay = outcome.get("replay") or {}
            self.say(f"Replay {replay.get('status', '-')}: {replay.get('message', '')}")
            desk = self.app.desk
            if outcome.get("report") is not None and desk is not None:
                desk.load_book()  # reconciliation replaced the local book with main's
        self.load()

    @on(Button.Pressed, "#replay-close")
    def action_close(self) -> None:
        self.dismiss(None)

    def action_reload(self) -> None:
        self.load()


def _when(iso: str | None) -> str:
    """When the entry was journaled, in UTC (the date matters: an earlier day's entry is held)."""
    if not iso:
        return ""
    from datetime import datetime

    at = datetime.fromisoformat(iso).astimezone(UTC)
    return f"{at:%Y-%m-%d %H:%M:%S}"
