"""One verdict for a replay and its reconciliation report, and the headline that says it.

Why one place: `lifeboat sync replay`, `sync report`, the agent's log and the
console's screens must say the same thing, and a runbook acts on the exit code.  A
report once read "applied 28; local book equals main" above three mismatch rows and
the command exited 0; the verdict here is computed from exactly what the report lists,
so the headline, the JSON ``verdict`` and the exit code cannot disagree.

Verdicts, the first that applies (the CLI's exit code in brackets):

- ``busy`` (7): another process holds the replay lease; nothing was sent.
- ``refused`` (8): main refused the replay handshake: this console's audit chain does
  not extend the one main witnessed (a rewritten history); nothing was sent, the
  journal is kept.
- ``incomplete`` (5): the replay stopped before the end (main went away) or entries
  are still pending or sent: not everything has reached main yet.
- ``held`` (6): entries held for a person's decision (stale ones, conflicts).
- ``mismatches`` (6): reconciliation found main not holding what the journal meant
  (a square-off whose position is not flat on main, a missing order ...), a client
  this console squared off that moved on main while it could not see it, or a local
  book that still differs from main after the refresh.  Other changes on main during
  the outage (``moved_on_main`` in the report) are listed for information and do not
  change the verdict.
- ``rejected`` (4): main rejected an entry.
- ``clean`` (0): every entry ended applied or moot and nothing differs.

Pure functions over the report dict (sync/reconcile.py builds it); no imports, so the
CLI, the agent and the screens can all use them.
"""

from __future__ import annotations

CLEAN, MISMATCHES, HELD, REJECTED, INCOMPLETE, BUSY = (
    "clean",
    "mismatches",
    "held",
    "rejected",
    "incomplete",
    "busy",
)
REFUSED = "refused"
VERDICTS = (CLEAN, MISMATCHES, HELD, REJECTED, INCOMPLETE, BUSY, REFUSED)


def verdict(report: dict | None, replay_status: str | None = None) -> str:
    """The verdict of a report (and of the replay pass that produced it, when given)."""
    status = replay_status or ((report or {}).get("replay") or {}).get("status")
    if status == "busy":
        return BUSY
    if status == "refused":
        return REFUSED
    if report is None or status == "stopped":
        return INCOMPLETE
    counts = report.get("counts") or {}
    if counts.get("pending") or counts.get("sent"):
        return INCOMPLETE
    if report.get("for_a_person") or counts.get("held") or counts.get("conflict"):
        return HELD
    if report.get("mismatches"):
        return MISMATCHES
    if counts.get("rejected"):
        return REJECTED
    return CLEAN


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def headline(report: dict) -> str:
    """One line that counts what the report lists below it, verdict first.  It says the
    local book equals main only when the report lists no mismatch at all."""
    v = verdict(report)
    counts = report.get("counts") or {}
    parts = [", ".join(f"{k} {n}" for k, n in counts.items() if n) or "no journal entries"]
    mism = report.get("mismatches") or []
    if mism:
        kinds: dict[str, int] = {}
        for m in mism:
            kinds[m.get("kind", "?")] = kinds.get(m.get("kind", "?"), 0) + 1
        parts.append(
            _plural(len(mism), "mismatch", "mismatches")
            + " ("
            + ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in kinds.items())
            + ")"
        )
    held = int(report.get("for_a_person") or 0)
    if held:
        parts.append(_plural(held, "entry", "entries") + " held for a supervisor")
    waiting = int(counts.get("pending") or 0) + int(counts.get("sent") or 0)
    if waiting:
        parts.append(_plural(waiting, "entry", "entries") + " not replayed yet")
    if v == CLEAN:
        parts.append("no mismatches: main holds what the journal meant and the local book equals main")
    info = len(report.get("moved_on_main") or [])
    if info:
        parts.append(
            _plural(info, "change", "changes") + " on main during the outage, listed for information"
        )
    return f"{v.upper()}: " + "; ".join(parts)
