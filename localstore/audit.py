"""Tamper-evident audit log: every action, in every mode, hash-chained.

Why a chain: an operator (or an intruder with the file) could edit the SQLite
file after an outage.  Each row stores ``hash = SHA-256(canonical JSON of
{id, at, user_id, mode, action, payload} + prev_hash)``; rows are numbered
1, 2, 3 ... with no gaps; and ``audit_head`` (updated in the same transaction as
each append) records the last id, last hash and count.  So an edit, a deleted or
inserted row, a reordering, or a cut-off tail is found, and ``verify`` names the
first row where the chain stops being provable.

Secrets never enter the log: keys such as ``password``, ``token``,
``access_token``, ``secret``, ``signature``, ``verifier`` are replaced with
``"[redacted]"`` (at any depth) before hashing and storing.

Call ``append`` inside the caller's write transaction (``store.write()``), or
``append_core`` inside ``store.write_core()``, so the action and its audit row
commit together or not at all.

The chain alone cannot stop someone who edits a row and recomputes every later hash
with ``row_hash`` (which is public by design: main recomputes it too).  Signed
checkpoints anchor it outside the store (localstore.checkpoints): every
``checkpoints.EVERY`` rows the append itself makes one.  ``row_hash`` and the
canonical form are contract.auditchain's, the one definition main shares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, insert, select, update

from contract import clock
from contract.auditchain import GENESIS_HASH, canonical_json, row_hash
from localstore import checkpoints
from localstore.core_tables import audit_head as _HEAD
from localstore.core_tables import audit_log as _ROWS
from localstore.prepared import Prepared

if TYPE_CHECKING:  # the ORM and the models are imported by append/verify, not by append_core's callers
    from sqlalchemy.orm import Session

    from localstore.models import AuditHead, AuditRow

REDACTED = "[redacted]"
SECRET_KEYS = frozenset(
    {
        "password",
        "passwd",
        "new_password",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "secret",
        "client_secret",
        "signature",
        "verifier",
        "authorization",
        "api_key",
        "private_key",
        "otp",
        "pin",
    }
)


@dataclass(frozen=True)
class AuditResult:
    """Outcome of ``verify``: ``ok`` and, when broken, the first bad row's id and why."""

    ok: bool
    first_bad_id: int | None
    reason: str
    rows: int


# --------------------------------------------------------------------------- canonical form


def _is_secret_key(key: str) -> bool:
    k = key.lower()
    return k in SECRET_KEYS or k.endswith(("_token", "_password", "_secret"))


def redact(value: Any) -> Any:
    """A copy of ``value`` with every secret-looking key's value replaced."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and _is_secret_key(k) else redact(v)) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


# --------------------------------------------------------------------------- append


def _prepare(
    user_id: str | None, mode: str | Enum, action: str, payload: dict[str, Any], at: datetime | None
) -> tuple[str, str, Any]:
    """(at_text, mode, clean payload): the exact values hashed and stored by both appenders."""
    if not isinstance(payload, dict):
        raise TypeError("audit payload must be a dict")
    when = (at or clock.utcnow()).astimezone(UTC)
    at_text = when.isoformat(timespec="microseconds")
    clean = json.loads(canonical_json(redact(payload)))  # the exact value verify will re-read
    mode = mode.value if isinstance(mode, Enum) else str(mode)  # str() of a str-Enum is "Mode.X" on 3.11
    return at_text, mode, clean


def append(
    session: Session,
    *,
    user_id: str | None,
    mode: str | Enum,
    action: str,
    payload: dict[str, Any],
    at: datetime | None = None,
) -> AuditRow:
    """Append one audited action in the caller's (write) transaction; returns the row.

    ``mode`` is the console mode at the time (ONLINE, BACKUP, ...), ``action`` a
    short verb (login, logout, bod_sync, order_place, square_off, mode_change,
    replay_decision, policy_change ...), ``payload`` any JSON-able dict (Decimal,
    datetime, enums and wire models are converted; secrets are redacted).
    """
    from localstore.models import AuditRow

    at_text, mode, clean = _prepare(user_id, mode, action, payload, at)
    head = _lock_head(session)
    new_id = head.last_id + 1
    digest = row_hash(
        id=new_id,
        at=at_text,
        user_id=user_id,
        mode=mode,
        action=action,
        payload=clean,
        prev_hash=head.last_hash,
    )
    row = AuditRow(
        id=new_id,
        at=at_text,
        user_id=user_id,
        mode=mode,
        action=action,
        payload=canonical_json(clean),
        prev_hash=head.last_hash,
        hash=digest,
    )
    session.add(row)
    head.last_id = new_id
    head.last_hash = digest
    head.count = head.count + 1
    if new_id % checkpoints.EVERY == 0:  # a signed checkpoint every N rows, same transaction
        checkpoints.on_append(session.connection(), seq=new_id, head_hash=digest, mode=mode)
    return row  # flushed with the caller's transaction (many appends become one executemany)


# built once: building and cache-keying a statement costs about as much as running it
# (localstore.prepared: compiled once and run on the cursor, the journal's hot path)
_HEAD_READ_STMT = select(_HEAD.c.last_id, _HEAD.c.last_hash, _HEAD.c.count).where(_HEAD.c.id == 1)
_HEAD_READ = Prepared(_HEAD_READ_STMT)
_HEAD_LOCK = Prepared(_HEAD_READ_STMT.with_for_update())
_ROW_INSERT = Prepared(
    insert(_ROWS), column_keys=["id", "at", "user_id", "mode", "action", "payload", "prev_hash", "hash"]
)
_HEAD_UPDATE = Prepared(
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(last_id=bindparam("h_id"), last_hash=bindparam("h_hash"), count=bindparam("h_count"))
)


def append_core(
    conn: Connection,
    *,
    user_id: str | None,
    mode: str | Enum,
    action: str,
    payload: dict[str, Any],
    at: datetime | None = None,
    head: tuple[int, str, int] | None = None,
) -> tuple[int, str]:
    """``append`` for a Core Connection in a write transaction (the journal's hot path:
    three statements, no unit of work).  Same row, same hash input; returns (id, hash).
    ``head``: the chain's (last_id, last_hash, count) when the caller already read it in
    this same SQLite write transaction (BEGIN IMMEDIATE: nobody can have moved it);
    saves the read."""
    at_text, mode, clean = _prepare(user_id, mode, action, payload, at)
    if head is None:
        # FOR UPDATE serialises appenders on a shared server database (SQLite: BEGIN IMMEDIATE)
        head = (_HEAD_READ if conn.dialect.name == "sqlite" else _HEAD_LOCK).first(conn)
    if head is None:
        conn.execute(insert(_HEAD).values(id=1, last_id=0, last_hash=GENESIS_HASH, count=0))
        last_id, last_hash, count = 0, GENESIS_HASH, 0
    else:
        last_id, last_hash, count = head
    new_id = last_id + 1
    digest = row_hash(
        id=new_id, at=at_text, user_id=user_id, mode=mode, action=action, payload=clean, prev_hash=last_hash
    )
    _ROW_INSERT.execute(
        conn,
        {
            "id": new_id,
            "at": at_text,
            "user_id": user_id,
            "mode": mode,
            "action": action,
            "payload": canonical_json(clean),
            "prev_hash": last_hash,
            "hash": digest,
        },
    )
    _HEAD_UPDATE.execute(conn, {"h_id": new_id, "h_hash": digest, "h_count": count + 1})
    if new_id % checkpoints.EVERY == 0:  # a signed checkpoint every N rows, same transaction
        checkpoints.on_append(conn, seq=new_id, head_hash=digest, mode=mode)
    return new_id, digest


def _lock_head(session: Session) -> AuditHead:
    from localstore.models import AuditHead

    if session.get_bind().dialect.name == "sqlite":
        # the write transaction is BEGIN IMMEDIATE: nobody else can append; after the
        # first append the head comes from the session's identity map, no SQL
        head = session.get(AuditHead, 1)
    else:
        # FOR UPDATE serialises appenders on a shared server database
        head = session.scalars(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one_or_none()
    if head is None:
        head = AuditHead(id=1, last_id=0, last_hash=GENESIS_HASH, count=0)
        session.add(head)
    return head


# --------------------------------------------------------------------------- verify


def verify(session: Session) -> AuditResult:
    """Walk the chain from row 1; report the first row that does not verify."""
    from localstore.models import AuditHead, AuditRow

    expected_prev = GENESIS_HASH
    expected_id = 1
    count = 0
    last_hash = GENESIS_HASH
    last_id = 0
    rows = session.execute(
        select(
            AuditRow.id,
            AuditRow.at,
            AuditRow.user_id,
            AuditRow.mode,
            AuditRow.action,
            AuditRow.payload,
            AuditRow.prev_hash,
            AuditRow.hash,
        ).order_by(AuditRow.id)
    )
    for row in rows:
        count += 1
        if row.id != expected_id:
            return AuditResult(
                False,
                expected_id,
                f"row {expected_id} is missing (the next row found is {row.id})",
                count - 1,
            )
        if row.prev_hash != expected_prev:
            return AuditResult(
                False,
                row.id,
                "its link to the row before does not match (a row was deleted, inserted or reordered here)",
                count - 1,
            )
        try:
            payload = json.loads(row.payload)
        except (TypeError, ValueError):
            return AuditResult(False, row.id, "its payload is not valid JSON (the row was edited)", count - 1)
        digest = row_hash(
            id=row.id,
            at=row.at,
            user_id=row.user_id,
            mode=row.mode,
            action=row.action,
            payload=payload,
            prev_hash=row.prev_hash,
        )
        if digest != row.hash:
            return AuditResult(
                False, row.id, "its content does not match its hash (the row was edited)", count - 1
            )
        expected_prev = row.hash
        expected_id += 1
        last_hash = row.hash
        last_id = row.id

    head = session.get(AuditHead, 1)
    if head is None:
        if count:
            return AuditResult(False, last_id, "the chain's head record is missing", count)
        return AuditResult(True, None, "no audit rows yet", 0)
    if head.last_id > last_id or head.count > count:
        return AuditResult(
            False,
            last_id + 1,
            f"row {last_id + 1} and after are missing (the head records {head.count} rows ending at row {head.last_id})",
            count,
        )
    if head.last_id != last_id or head.count != count or head.last_hash != last_hash:
        bad = head.last_id + 1 if head.last_id < last_id else last_id
        return AuditResult(
            False,
            bad,
            f"the chain does not end where the head says (head: {head.count} rows ending at row {head.last_id}; "
            f"found {count} ending at row {last_id})",
            count,
        )
    return AuditResult(True, None, f"{count} rows intact", count)
