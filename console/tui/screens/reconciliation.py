"""The reconciliation report on screen: after a replay, line by line, do both sides agree?

Why here and modal: the drill and the demo show it the moment the automatic replay has
reconciled, over the desk, so a newcomer sees the end of the story without a keystroke;
Esc goes back to the desk.  It draws a report dict exactly as sync/reconcile.py stores it
(``lifeboat sync report --json`` prints the same), plus the drill's timings when given.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from console.demo_report import TIMING_LABELS
from console.service import VERDICT_CLEAN, report_headline, report_verdict
from console.styles import JOURNAL_STATE_STYLE


def headline(report: dict) -> str:
    """The verdict and the counts of what the screen lists below (sync/verdict.py through the service: the
    same words as `lifeboat sync report`); "equals" only when nothing is listed as differing."""
    return (
        f"Reconciliation #{report.get('id', '-')}  trading day {report.get('trading_date', '-')}  "
        f"({report.get('user', '-')}): {report_headline(report)}"
    )


def agrees(report: dict) -> bool:
    """Both sides agree and nothing waits for a person (the verdict is clean)."""
    return report_verdict(report) == VERDICT_CLEAN


def entries_table(report: dict, *, id: str = "recon-entries") -> DataTable:
    """The report's journal entries, one line each, the state coloured (also the replay screen's)."""
    entries: DataTable[str] = DataTable(id=id, cursor_type="row", zebra_stripes=True)
    entries.add_columns(
        "Seq", "Kind", "Client", "Symbol", "Prod", "Client order id", "State", "Main order", "Reason"
    )
    for e in report.get("entries") or []:
        entries.add_row(
            str(e.get("seq")),
            e.get("kind") or "",
            e.get("client_id") or "",
            e.get("symbol") or "",
            e.get("product") or "",
            e.get("client_order_id") or "",
            styled_state(e.get("state")),
            e.get("main_order_id") or "",
            e.get("reason") or "",
        )
    return entries


def styled_state(state) -> str:
    style = JOURNAL_STATE_STYLE.get(state, "")
    return f"[{style}]{state}[/]" if style else str(state)


def _rows_table(rows: list[dict], id: str, first: str, local_label: str, *, next_step: bool) -> DataTable:
    table: DataTable[str] = DataTable(id=id, cursor_type="row")
    table.add_columns(
        first, "Client", "Symbol", local_label, "Main", "Detail", *(["Next step"] if next_step else [])
    )
    for x in rows:
        table.add_row(
            x.get("kind", ""),
            x.get("client_id") or "",
            x.get("symbol") or "",
            str(x.get("expected", x.get("local", ""))),
            str(x.get("main", "")),
            x.get("detail", ""),
            *([x.get("next_step") or ""] if next_step else []),
        )
    return table


def mismatches_table(report: dict, *, id: str = "recon-mismatches") -> DataTable | None:
    """Every line where the local book and main disagree, or None when they agree."""
    mism = report.get("mismatches") or []
    return _rows_table(mism, id, "Mismatch", "Local / expected", next_step=True) if mism else None


def moved_table(report: dict, *, id: str = "recon-moved") -> DataTable | None:
    """What changed on main during the outage for clients the journal did not flatten:
    listed for information (the local book now shows main's), or None."""
    moved = report.get("moved_on_main") or []
    return (
        _rows_table(moved, id, "Changed on main (information)", "Local", next_step=False) if moved else None
    )


class ReconciliationScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    ReconciliationScreen #recon-box { height: 90%; }
    ReconciliationScreen #recon-title { text-style: bold; }
    ReconciliationScreen #recon-entries { height: 1fr; }
    ReconciliationScreen #recon-mismatches { height: auto; max-height: 8; }
    ReconciliationScreen #recon-moved { height: auto; max-height: 6; }
    ReconciliationScreen .recon-ok { color: $success; text-style: bold; }
    ReconciliationScreen .recon-bad { color: $error; text-style: bold; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter,q", "close", "Back to the desk", id="recon.close")
    ]

    def __init__(
        self, report: dict, *, timings: dict[str, float] | None = None, verdict: str | None = None
    ) -> None:
        super().__init__()
        self.report = report
        self.timings = timings or {}
        self.verdict = verdict

    def compose(self) -> ComposeResult:
        r = self.report
        with Vertical(classes="dialog", id="recon-box"):
            yield Static("REPLAY AND RECONCILIATION", id="recon-title")
            yield Static(headline(r), id="recon-headline", classes="recon-ok" if agrees(r) else "recon-bad")
            replay = r.get("replay") or {}
            if replay:
                yield Static(f"Replay: {replay.get('message', replay.get('status', '-'))}", id="recon-replay")
            yield entries_table(r)
            mism = mismatches_table(r)
            yield (
                mism
                if mism is not None
                else Static("No mismatches: main holds what the journal meant.", id="recon-nomismatch")
            )
            moved = moved_table(r)
            if moved is not None:
                yield moved
            if self.timings:
                parts = [
                    f"{TIMING_LABELS.get(k, k)} {v:.2f} s"
                    for k, v in self.timings.items()
                    if k in TIMING_LABELS
                ]
                yield Static("Drill timings: " + "  |  ".join(parts), id="recon-timings")
            if self.verdict:
                yield Static(self.verdict, id="recon-verdict")
            yield Static("Esc: back to the desk", id="recon-hint")

    def on_mount(self) -> None:
        self.query_one(
            "#recon-box"
        ).styles.width = "96%"  # wider than the console's dialogs: the entries table

    def action_close(self) -> None:
        self.dismiss(None)
