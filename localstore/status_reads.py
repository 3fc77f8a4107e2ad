"""The reads behind `lifeboat status` and the CLI's one-shot mode decision (sync.status
shapes them).

Why plain SQL here: `status` is what support staff and scripts run first during an
outage, and it must start fast (bench P7).  These few reads use Core ``text()`` with
the store's column types (localstore.coltypes), so neither the ORM, the models nor the
pydantic wire schema is imported.  The journal states come from
localstore.journal_states.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Connection, text

from localstore.coltypes import UtcDateTime
from localstore.journal_states import FINAL_STATES, HELD_STATES, UNFINISHED_STATES


def _sql_list(states: tuple[str, ...]) -> str:
    return ", ".join(f"'{s}'" for s in states)


_MODE_INPUTS = text(
    "SELECT (SELECT forced_mode FROM console_state WHERE id = 1) AS forced_mode, "
    f"(SELECT count(*) FROM journal WHERE state IN ({_sql_list(UNFINISHED_STATES)})) AS unfinished"
)
_HEADS = text(
    "SELECT s.trading_date, s.bod_at, s.bod_seq, s.last_event_seq, s.last_event_at, s.last_applied_at, "
    "p.allow_new_exposure, p.killswitch, p.updated_by, c.forced_at, c.forced_by, "
    "c.mode AS recorded_mode, c.mode_since, c.mode_reason, "
    "l.holder AS lease_holder, l.acquired_at AS lease_acquired_at, l.expires_at AS lease_expires_at, "
    "(SELECT max(created_at) FROM reconciliation_report) AS last_report_at, "
    f"(SELECT count(*) FROM journal WHERE state NOT IN ({_sql_list(FINAL_STATES)})) AS depth, "
    f"(SELECT count(*) FROM journal WHERE state IN ({_sql_list(HELD_STATES)})) AS held, "
    "(SELECT count(*) FROM journal WHERE acknowledged_at IS NULL) AS unacknowledged "
    "FROM sync_state s, policy p, console_state c, replay_lease l "
    "WHERE s.id = 1 AND p.id = 1 AND c.id = 1 AND l.id = 1"
).columns(
    bod_at=UtcDateTime,
    last_event_at=UtcDateTime,
    last_applied_at=UtcDateTime,
    forced_at=UtcDateTime,
    mode_since=UtcDateTime,
    lease_acquired_at=UtcDateTime,
    lease_expires_at=UtcDateTime,
    last_report_at=UtcDateTime,
    allow_new_exposure=Boolean,
    killswitch=Boolean,
)
_UNACKNOWLEDGED = text(
    "SELECT seq, kind, client_order_id, client_id, symbol, state, created_at FROM journal "
    "WHERE acknowledged_at IS NULL ORDER BY seq LIMIT :limit"
).columns(created_at=UtcDateTime)
_LAST_REPORT = text("SELECT json FROM reconciliation_report ORDER BY id DESC LIMIT 1")
_CREDENTIALS = text(
    "SELECT user_id, verifier, grant_json, public_key FROM offline_credentials ORDER BY user_id"
)


_ANY_CREDENTIAL = text("SELECT EXISTS (SELECT 1 FROM offline_credentials)")


def mode_inputs(conn: Connection) -> tuple[str | None, int]:
    """(a supervisor's forced mode or None, how many journal entries are unfinished)."""
    row = conn.execute(_MODE_INPUTS).one()
    return row.forced_mode, int(row.unfinished or 0)


def heads(conn: Connection) -> Any:
    """One row: the sync marks, the policy, the console state, the replay lease, the newest
    report's time and the journal's counts (depth, held, unacknowledged)."""
    return conn.execute(_HEADS).one()


def unacknowledged(conn: Connection, limit: int) -> list[Any]:
    """Up to ``limit`` entries committed but never acknowledged, oldest first."""
    return list(conn.execute(_UNACKNOWLEDGED, {"limit": limit}))


def last_report_json(conn: Connection) -> str | None:
    """The newest reconciliation report's JSON text, or None."""
    return conn.execute(_LAST_REPORT).scalar()


def any_credential(conn: Connection) -> bool:
    """Somebody logged in online on this console (an offline credential is kept)."""
    return bool(conn.execute(_ANY_CREDENTIAL).scalar())


def credentials(conn: Connection) -> list[Any]:
    """(user_id, verifier, grant_json, public_key) of every offline credential, by user."""
    return list(conn.execute(_CREDENTIALS))
