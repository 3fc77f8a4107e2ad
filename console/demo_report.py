"""The DR drill's report: what happened, when, and whether the book ended flat and reconciled.

Why a file of its own: a broker keeps this as the evidence of a disaster-recovery drill,
so its shape (JSON for machines, Markdown for people) must not change when the screen
does.  No Textual here: the drill's driver fills it in, and tests read it back.

Timings (seconds, wall clock on this machine):

- ``detection_s``: outage staged (the fault switch answered) -> the console in BACKUP.
- ``squareoff_journal_s``: square-off asked -> durably journaled (includes the offline
  login check against the local verifier).
- ``replay_s``: the replay pass, from its start to its end (the replayer's own stamps).
- ``reconciliation_s``: replay ended -> reconciliation report stored.
- ``recovering_after_end_s`` / ``online_after_end_s``: outage ended -> RECOVERING / ONLINE.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from localstore import clock
from pathlib import Path

from console.exitcodes import ExitCode

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


def now() -> datetime:
    return clock.utcnow()


@dataclass
class DrillStep:
    name: str
    at: str
    ok: bool
    detail: str = ""


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

    def step(self, name: str, ok: bool = True, detail: str = "") -> DrillStep:
        s = DrillStep(name, now().isoformat(timespec="milliseconds"), ok, detail)
        self.steps.append(s)
        if not ok and self.failure is None:
            self.failure = f"{name}: {detail}" if detail else name
        return s

    def timing(self, name: str, seconds: float) -> None:
        self.timings_s[name] = round(max(0.0, seconds), 3)

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
        verdict = "PASSED: the book ended flat and reconciled" if self.ok else f"FAILED: {self.failure or self._why()}"
        lines = [
            "# Lifeboat DR drill report",
            "",
            f"- {verdict}",
            f"- started {self.started_at}, finished {self.finished_at or '-'}",
            f"- main backend {self.backend_url} (mainsim, loopback); console data dir `{self.data_dir}`",
            f"- dealer {self.user}; square-off of client {self.client_id or '-'} ({self.legs} open legs)",
            "",
            "## Timings",
            "",
            "| what | seconds |",
            "|---|---:|",
        ]
        for key, label in TIMING_LABELS.items():
            if key in self.timings_s:
                lines.append(f"| {label} | {self.timings_s[key]:.3f} |")
        lines += ["", "## Steps", "", "| at (UTC) | step | ok | detail |", "|---|---|---|---|"]
        for s in self.steps:
            lines.append(f"| {s.at[11:23]} | {s.name} | {'yes' if s.ok else 'NO'} | {s.detail.replace('|', '/')} |")
        if self.reconciliation:
            r = self.reconciliation
            counts = ", ".join(f"{k} {v}" for k, v in (r.get("counts") or {}).items() if v) or "none"
            lines += ["", "## Reconciliation", "",
                      f"- report #{r.get('id')}: entries {counts}",
                      f"- mismatches: {r.get('mismatch_counts')}",
                      f"- local book equals main: {'yes' if r.get('local_equals_main') else 'NO'}",
                      f"- held for a person: {self.held_for_a_person}"]
        lines += ["", f"Exit code {self.exit_code}.", ""]
        return "\n".join(lines)

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
    """(reconciled, held for a person) from a reconciliation report dict."""
    if not report:
        return False, 0
    held = int(report.get("for_a_person") or 0)
    counts = report.get("counts") or {}
    mm = report.get("mismatch_counts") or {}
    ok = (held == 0 and not counts.get("rejected") and not counts.get("pending") and not counts.get("sent")
          and not mm.get("journal_vs_main") and bool(report.get("local_equals_main")))
    return ok, held
