"""The store reads behind the agent's Prometheus gauges (sync.metrics), done at scrape time.

Why at scrape time and not counted as things happen: the journal is written by every
process of the console (a CLI order in backup mode, the TUI, the agent's replay), so
only the store knows its real depth; a count kept in the agent would drift from it.
A scrape costs a few indexed counts; the offline-login counts read only the audit rows
appended since the previous scrape (it reads up to the audit log's end and starts there next time).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text

from localstore.coltypes import UtcDateTime
from localstore.db import Store
from localstore.journal_states import HELD_STATES, UNFINISHED_STATES, JournalState

_BY_STATE = text("SELECT state, count(*) AS n FROM journal GROUP BY state")
_MIRROR = text("SELECT last_applied_at FROM sync_state WHERE id = 1").columns(last_applied_at=UtcDateTime)
_LAST_REPORT = text("SELECT json FROM reconciliation_report ORDER BY id DESC LIMIT 1")
_AUDIT_END = text("SELECT coalesce(max(id), 0) FROM audit_log")
_LOGINS = text(
    "SELECT id, action, payload FROM audit_log WHERE id > :after AND id <= :upto "
    "AND action IN ('login', 'login_failed') ORDER BY id"
)


@dataclass
class StoreGauges:
    by_state: dict[str, int]
    pending: int
    held: int
    mirror_applied_at: datetime | None
    mismatches: int | None  # None: no reconciliation report yet


@dataclass
class LoginCounts:
    """Offline logins seen in the audit log, counted forward from ``after``."""

    after: int = 0
    ok: int = 0
    refused: int = field(default=0)


def gauges(store: Store) -> StoreGauges:
    with store.read_core() as conn:
        counts = {str(r.state): int(r.n) for r in conn.execute(_BY_STATE)}
        applied = conn.execute(_MIRROR).scalar()
        raw = conn.execute(_LAST_REPORT).scalar()
    by_state = {s.value: counts.get(s.value, 0) for s in JournalState}
    mismatches = None
    if raw is not None:
        try:
            report = json.loads(raw)
            mismatches = len(report.get("mismatches") or [])
        except (ValueError, AttributeError):
            mismatches = None
    return StoreGauges(
        by_state=by_state,
        pending=sum(by_state[s] for s in UNFINISHED_STATES),
        held=sum(by_state[s] for s in HELD_STATES),
        mirror_applied_at=applied,
        mismatches=mismatches,
    )


def count_offline_logins(store: Store, counts: LoginCounts) -> LoginCounts:
    """Add the offline logins (``login``) and refusals (``login_failed``) audited since
    ``counts.after`` to ``counts`` (online ones are not counted)."""
    with store.read_core() as conn:
        end = int(conn.execute(_AUDIT_END).scalar() or 0)  # the next scrape reads only rows after it
        for row in conn.execute(_LOGINS, {"after": counts.after, "upto": end}):
            try:
                how = json.loads(row.payload).get("how")
            except (ValueError, AttributeError):
                continue
            if how != "offline":
                continue
            if row.action == "login":
                counts.ok += 1
            else:
                counts.refused += 1
        counts.after = max(counts.after, end)
    return counts
