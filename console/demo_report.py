"""The DR drill's report: what happened, when, and whether the book ended flat and reconciled.

Why a file of its own: a broker keeps this as the evidence of a disaster-recovery drill,
so its shape (JSON for machines, Markdown for people) must not change when the screen
does.  No Textual here: the drill's driver fills it in, and tests read it back.

Timings (seconds) are differences of the report's own step instants, nothing else: each
step carries ``t``, seconds since the drill started (one monotonic clock), and ``at``,
the drill's start time plus ``t``; every timing is ``t(last) - t(first)`` of two named
steps (TIMING_SPANS), so a reader can check them against the step table.

- ``detection_s``: outage staged (the fault switch answered) -> the console in BACKUP.
- ``squareoff_journal_s``: square-off asked -> durably journaled (includes the offline
  login check against the local verifier).
- ``replay_s``: replay started -> replay ended (the replayer's own stamps, placed on the
  drill's time line).
- ``reconciliation_s``: replay ended -> reconciliation stored.
- ``recovering_after_end_s`` / ``online_after_end_s``: outage ended -> RECOVERING / ONLINE.
- ``total_s``: drill started -> drill ended.

The DR drill (``lifeboat demo --drill --dr``, DRDrillReport) has the same shape with its own
steps and timings (DR_TIMING_SPANS) and a "DR sites" section: both sites' databases read by
client_order_id (no order twice, no accepted action missing, the same orders on both).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

from console.exitcodes import ExitCode
from contract import clock

JSON_NAME = "drill-report.json"
MD_NAME = "drill-report.md"
TIMING_LABELS = {
    "detection_s": "Detection (outage staged -> BACKUP)",
    "squareoff_journal_s": "Square-off journaled (asked -> durable)",
    "replay_s": "Replay (pass start -> end)",
    "reconciliation_s": "Reconciliation (replay end -> report stored)",
    "recovering_after_end_s": "Outage ended -> RECOVERING",
    "online_after_end_s": "Outage ended -> ONLINE",
    "total_s": "Whole drill",
}
# timing -> (first step, last step): the timing is the difference of their instants
TIMING_SPANS = {
    "detection_s": ("outage staged", "BACKUP"),
    "squareoff_journal_s": ("square-off asked", "square-off journaled"),
    "replay_s": ("replay started", "replay ended"),
    "reconciliation_s": ("replay ended", "reconciliation stored"),
    "recovering_after_end_s": ("outage ended", "RECOVERING"),
    "online_after_end_s": ("outage ended", "ONLINE"),
    "total_s": ("drill started", "drill ended"),
}


def now() -> datetime:
    return clock.utcnow()


@dataclass
class DrillStep:
    name: str
    at: str  # UTC, to the millisecond: the drill's start time plus t
    ok: bool
    detail: str = ""
    t: float = 0.0  # seconds since the drill started, to the millisecond


@dataclass
class DrillReport:
    backend_url: str = ""
    data_dir: str = ""
    user: str = ""
    started_at: str = field(default_factory=lambda: now().isoformat())
    finished_at: str | None = None
    client_id: str | None = None
    legs: int = 0
    steps: list[DrillStep] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    flat: bool = False
    reconciled: bool = False
    held_for_a_person: int = 0
    reconciliation: dict | None = None  # counts, mismatch counts, id of the stored report
    failure: str | None = None

    SPANS: ClassVar[dict[str, tuple[str, str]]] = TIMING_SPANS
    LABELS: ClassVar[dict[str, str]] = TIMING_LABELS

    def __post_init__(self) -> None:
        self._mono0: float | None = None  # the drill's start on the monotonic clock
        self._wall0: datetime | None = None  # the same instant in UTC, to the millisecond

    def begin(self, mono: float | None = None, wall: datetime | None = None) -> None:
        """The drill starts now (or at the given instant): every step's ``t`` counts from here."""
        self._mono0 = time.monotonic() if mono is None else mono
        wall = now() if wall is None else wall
        self._wall0 = wall.replace(microsecond=wall.microsecond // 1000 * 1000)
        self.started_at = self._wall0.isoformat(timespec="milliseconds")

    def _origin(self) -> tuple[float, datetime]:
        """The drill's start (monotonic, UTC): ``begin`` now if it has not begun."""
        if self._mono0 is None or self._wall0 is None:
            self.begin()
        assert self._mono0 is not None and self._wall0 is not None  # begin() set both
        return self._mono0, self._wall0

    def instant(self, wall: datetime) -> float:
        """A wall-clock stamp (the replayer's, say) as a monotonic instant on the drill's time line."""
        mono0, wall0 = self._origin()
        if wall.tzinfo is None:
            wall = wall.replace(tzinfo=UTC)
        return mono0 + (wall - wall0).total_seconds()

    def step(self, name: str, ok: bool = True, detail: str = "", *, mono: float | None = None) -> DrillStep:
        """Record a step at monotonic instant ``mono`` (default: now).  Steps are kept in time order."""
        mono0, wall0 = self._origin()
        t = round((time.monotonic() if mono is None else mono) - mono0, 3)
        at = (wall0 + timedelta(seconds=t)).isoformat(timespec="milliseconds")
        s = DrillStep(name, at, ok, detail, t)
        i = len(self.steps)
        while i and self.steps[i - 1].t > t:
            i -= 1
        self.steps.insert(i, s)
        if not ok and self.failure is None:
            self.failure = f"{name}: {detail}" if detail else name
        return s

    def find(self, name: str) -> DrillStep | None:
        return next((s for s in self.steps if s.name == name), None)

    def span(self, timing: str) -> float | None:
        """Set ``timing`` (a TIMING_SPANS key) from its two steps' instants; None if either is missing."""
        first, last = (self.find(n) for n in self.SPANS[timing])
        if first is None or last is None:
            return None
        self.timings_s[timing] = round(last.t - first.t, 3)
        return self.timings_s[timing]

    @property
    def ok(self) -> bool:
        return self.failure is None and self.flat and self.reconciled

    @property
    def exit_code(self) -> int:
        """0 flat and reconciled; 6 something waits for a person; 1 anything else."""
        if self.ok:
            return int(ExitCode.OK)
        if self.held_for_a_person:
            return int(ExitCode.HELD)
        return int(ExitCode.UNEXPECTED)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        d["exit_code"] = self.exit_code
        return d

    def markdown(self) -> str:
        verdict = (
            "PASSED: the book ended flat and reconciled"
            if self.ok
            else f"FAILED: {self.failure or self._why()}"
        )
        lines = [
            "# Lifeboat DR drill report",
            "",
            f"- {verdict}",
            f"- started {self.started_at}, finished {self.finished_at or '-'}",
            f"- main backend {self.backend_url} (mainsim, loopback); console data dir `{self.data_dir}`",
            *self._head_lines(),
            "",
            "## Timings",
            "",
            "| what | seconds |",
            "|---|---:|",
        ]
        for key, label in self.LABELS.items():
            if key in self.timings_s:
                lines.append(f"| {label} | {self.timings_s[key]:.3f} |")
        lines += [
            "",
            "Each timing is the difference of two step times below (t, seconds since the drill started).",
        ]
        lines += ["", "## Steps", "", "| at (UTC) | t (s) | step | ok | detail |", "|---|---:|---|---|---|"]
        for s in self.steps:
            detail = s.detail.replace("|", "/")
            lines.append(f"| {s.at[11:23]} | {s.t:.3f} | {s.name} | {'yes' if s.ok else 'NO'} | {detail} |")
        if self.reconciliation:
            r = self.reconciliation
            counts = ", ".join(f"{k} {v}" for k, v in (r.get("counts") or {}).items() if v) or "none"
            lines += [
                "",
                "## Reconciliation",
                "",
                f"- report #{r.get('id')}: {r.get('headline') or 'entries ' + counts}",
                f"- mismatches: {r.get('mismatch_counts')}",
                f"- held for a person: {self.held_for_a_person}",
            ]
        lines += self._extra_sections()
        lines += ["", f"Exit code {self.exit_code}.", ""]
        return "\n".join(lines)

    def _head_lines(self) -> list[str]:
        return [f"- dealer {self.user}; square-off of client {self.client_id or '-'} ({self.legs} open legs)"]

    def _extra_sections(self) -> list[str]:
        return []

    def _why(self) -> str:
        if not self.flat:
            return "the client's book did not end flat on main"
        return "the reconciliation found something to look at"

    def write(self, directory: Path) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        jpath, mpath = directory / JSON_NAME, directory / MD_NAME
        jpath.write_text(json.dumps(self.as_dict(), indent=2, default=str) + "\n", encoding="utf-8")
        mpath.write_text(self.markdown(), encoding="utf-8")
        return jpath, mpath


def judge_reconciliation(report: dict | None) -> tuple[bool, int]:
    """(reconciled, held for a person) from a reconciliation report dict: reconciled only
    when the report's verdict is clean (sync/verdict.py, the rule `sync report` exits by)."""
    from sync.verdict import CLEAN, verdict

    if not report:
        return False, 0
    return verdict(report) == CLEAN, int(report.get("for_a_person") or 0)


# --------------------------------------------------------------------------- the DR drill (--drill --dr)

DR_TIMING_LABELS = {
    "main_lost_s": "Main killed -> BACKUP",
    "promotion_seen_s": "DR promoted -> DR on the banner",
    "dr_squareoff_s": "Square-off at DR (asked -> every leg accepted by DR)",
    "dr_lost_s": "DR killed -> BACKUP",
    "squareoff_journal_s": "Square-off journaled (asked -> durable)",
    "dr_restart_s": "DR restarted -> serving again",
    "recovering_after_dr_back_s": "DR back -> RECOVERING",
    "replay_s": "Replay to DR (pass start -> end)",
    "reconciliation_s": "Reconciliation against DR (replay end -> report stored)",
    "dr_again_after_back_s": "DR back -> DR on the banner",
    "main_catchup_s": "Main restarted as a standby -> caught up with DR",
    "switch_back_s": "Switch-back (main promoted -> ONLINE at main)",
    "total_s": "Whole drill",
}
DR_TIMING_SPANS = {
    "main_lost_s": ("main killed", "BACKUP"),
    "promotion_seen_s": ("DR promoted", "DR"),
    "dr_squareoff_s": ("square-off at DR asked", "square-off at DR accepted"),
    "dr_lost_s": ("DR killed", "BACKUP (DR lost)"),
    "squareoff_journal_s": ("square-off asked", "square-off journaled"),
    "dr_restart_s": ("DR restarted", "DR back"),
    "recovering_after_dr_back_s": ("DR back", "RECOVERING"),
    "replay_s": ("replay started", "replay ended"),
    "reconciliation_s": ("replay ended", "reconciliation stored"),
    "dr_again_after_back_s": ("DR back", "DR again"),
    "main_catchup_s": ("main restarted as standby", "main caught up"),
    "switch_back_s": ("main promoted", "ONLINE"),
    "total_s": ("drill started", "drill ended"),
}


@dataclass
class DRDrillReport(DrillReport):
    """The DR drill's report: the plain one's shape, its own steps and timings, and the sites.

    ``client_id`` is squared off at the DR site (accepted there, never journaled);
    ``journal_client_id`` in BACKUP once DR is lost too (journaled, then replayed to DR).
    ``sites`` is the last reading of both databases (demo.check_sites); the drill passes only
    when it is ok, both clients ended flat on main and the replay reconciled clean."""

    dr_url: str = ""
    journal_client_id: str | None = None
    journal_legs: int = 0
    dr_legs: list[str] = field(default_factory=list)  # client_order_ids of the legs DR accepted
    journaled_legs: list[str] = field(default_factory=list)  # those journaled, then replayed to DR
    sites: dict | None = None
    sites_ok: bool = False

    SPANS: ClassVar[dict[str, tuple[str, str]]] = DR_TIMING_SPANS
    LABELS: ClassVar[dict[str, str]] = DR_TIMING_LABELS

    @property
    def ok(self) -> bool:
        return super().ok and self.sites_ok

    def _why(self) -> str:
        if not self.flat:
            return "the clients' books did not end flat on main"
        if not self.reconciled:
            return "the reconciliation found something to look at"
        return "the sites' databases do not agree (an order twice, one missing, or on one site only)"

    def _head_lines(self) -> list[str]:
        return [
            f"- DR site {self.dr_url or '-'} (mainsim standby following main, loopback)",
            f"- dealer {self.user}; square-off at DR of client {self.client_id or '-'} ({self.legs} open legs); "
            f"square-off journaled with DR lost too of client {self.journal_client_id or '-'} "
            f"({self.journal_legs} open legs)",
        ]

    def _extra_sections(self) -> list[str]:
        lines = ["", "## DR sites", ""]
        s = self.sites
        if not s:
            return [*lines, "- not checked (the drill ended before)"]
        orders = ", ".join(f"{k} {v}" for k, v in (s.get("orders") or {}).items())
        twice = {k: v for k, v in (s.get("twice") or {}).items() if v}
        missing = {k: v for k, v in (s.get("missing") or {}).items() if v}
        lines += [
            f"- {'AGREE' if s.get('ok') else 'DISAGREE'}: orders with a client_order_id: {orders}",
            f"- accepted actions checked on both sites: {s.get('accepted_checked')} "
            f"({len(self.dr_legs)} legs accepted by DR, {len(self.journaled_legs)} journaled and replayed)",
            f"- an order twice: {twice or 'none'}",
            f"- an accepted action missing: {missing or 'none'}",
            f"- on one site only: {s.get('on_one_site_only') or 'none'}",
        ]
        return lines
