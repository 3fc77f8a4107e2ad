"""What offline login needs from the store: a password verifier, a failure
throttle, and a clock watermark.

Why:

* The verifier is scrypt at OWASP parameters (N=2**17, r=8, p=1; about 0.8 s
  here), so a stolen store does not give passwords away cheaply.  Its parameters
  are stored in the verifier string and verification uses them, so the
  parameters can be raised later without breaking old verifiers.
* Failed attempts are counted in the database (login_throttle), so killing and
  restarting the console does not reset the delay: 0, 1, 2, 4, 8 ... s, capped
  at 300 s.
* A clock set back must not extend an offline grant: ``observe_clock`` keeps the
  newest wall-clock time the store has seen (sync_state.clock_watermark), which
  never goes backwards, and ``clock_rolled_back`` says when now is before it.

The verifier itself lives in localstore.verifier (standard library only, so a
script's command can start checking a password before its heavy imports); its
names are re-exported here.  Verifier format: ``scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>``.

TEST ONLY: ``LIFEBOAT_TEST_SCRYPT_N`` (a power of two, at least 2**10) lowers N
for *new* verifiers so the test suite stays fast.  Never set it in production.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, insert, select, update

from localstore.core_tables import login_throttle as _THROTTLE
from localstore.core_tables import sync_state as _SYNC
from localstore.verifier import (  # noqa: F401 - the verifier's names, as callers know them
    _MAX_N,
    _MIN_N,
    SCRYPT_DKLEN,
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    TEST_N_ENV,
    check_verifier,
    make_verifier,
    parse_verifier,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

THROTTLE_CAP_S = 300.0
CLOCK_TOLERANCE = timedelta(seconds=2)  # NTP slews a little; a rollback is more than this


# --------------------------------------------------------------------------- throttle


def throttle_delay(failures: int) -> float:
    """Delay after ``failures`` consecutive failures: 0, 1, 2, 4, 8 ... capped at 300 s."""
    if failures <= 1:
        return 0.0
    return float(min(THROTTLE_CAP_S, 2 ** min(failures - 2, 20)))


# Core statements on the caller's Connection (or Session: both execute them), so
# offline login needs neither the ORM nor the models (bench P3); built once.
_THROTTLE_ROW = select(_THROTTLE.c.failures, _THROTTLE.c.next_allowed_at).where(
    _THROTTLE.c.user_id == bindparam("t_user"))
_THROTTLE_BUMP = update(_THROTTLE).where(_THROTTLE.c.user_id == bindparam("t_user")).values(
    failures=bindparam("t_failures"), last_failure_at=bindparam("t_at"), next_allowed_at=bindparam("t_next"))
_THROTTLE_NEW = insert(_THROTTLE)
_THROTTLE_CLEAR = _THROTTLE.delete().where(_THROTTLE.c.user_id == bindparam("t_user"))
_WATERMARK = select(_SYNC.c.clock_watermark).where(_SYNC.c.id == 1)
_WATERMARK_LOCK = _WATERMARK.with_for_update()
_WATERMARK_SET = update(_SYNC).where(_SYNC.c.id == 1).values(clock_watermark=bindparam("w_at"))


def record_failure(conn: Connection | Session, user_id: str, now: datetime) -> float:
    """Count one failed attempt (in the caller's write transaction); returns the delay
    in seconds before the next attempt is allowed."""
    row = conn.execute(_THROTTLE_ROW, {"t_user": user_id}).first()
    count = (row.failures or 0) + 1 if row is not None else 1
    delay = throttle_delay(count)
    values = {"t_user": user_id, "t_failures": count, "t_at": now, "t_next": now + timedelta(seconds=delay)}
    if row is None:
        conn.execute(_THROTTLE_NEW, {"user_id": user_id, "failures": count, "last_failure_at": now,
                                     "next_allowed_at": values["t_next"]})
    else:
        conn.execute(_THROTTLE_BUMP, values)
    return delay


def record_success(conn: Connection | Session, user_id: str) -> None:
    """Reset the user's failure count after a successful login."""
    conn.execute(_THROTTLE_CLEAR, {"t_user": user_id})


def failures(conn: Connection | Session, user_id: str) -> int:
    row = conn.execute(_THROTTLE_ROW, {"t_user": user_id}).first()
    return row.failures if row is not None else 0


def delay_for(conn: Connection | Session, user_id: str, now: datetime) -> float:
    """Seconds the user must still wait before the next attempt (0 when allowed).
    Never more than the delay last imposed, even if the clock was set back."""
    row = conn.execute(_THROTTLE_ROW, {"t_user": user_id}).first()
    if row is None or row.next_allowed_at is None:
        return 0.0
    remaining = (row.next_allowed_at - now).total_seconds()
    return max(0.0, min(remaining, throttle_delay(row.failures)))


# --------------------------------------------------------------------------- clock watermark


def watermark(conn: Connection | Session) -> datetime | None:
    """The newest wall-clock time this store has seen (None before the first)."""
    return conn.execute(_WATERMARK).scalar()


def observe_clock(conn: Connection | Session, now: datetime) -> datetime:
    """Record ``now`` (aware) as seen; returns the effective time, max(now, watermark).
    Call in a write transaction.  The watermark never moves back."""
    if now.tzinfo is None:
        raise ValueError("observe_clock needs a timezone-aware time")
    now = now.astimezone(timezone.utc)
    dialect = conn.get_bind().dialect if hasattr(conn, "get_bind") else conn.dialect  # a Session or a Connection
    # FOR UPDATE serialises writers on a server database; on SQLite BEGIN IMMEDIATE already has
    row = conn.execute(_WATERMARK if dialect.name == "sqlite" else _WATERMARK_LOCK).first()
    if row is None:  # a store opened before its singletons: create the row
        conn.execute(insert(_SYNC).values(id=1, clock_watermark=now))
        return now
    if row.clock_watermark is None or now > row.clock_watermark:
        conn.execute(_WATERMARK_SET, {"w_at": now})
        return now
    return row.clock_watermark


def clock_rolled_back(conn: Connection | Session, now: datetime, *, tolerance: timedelta = CLOCK_TOLERANCE) -> bool:
    """True when ``now`` is earlier than the newest time this store has seen (minus a
    small tolerance for NTP slewing): the clock was set back."""
    seen = watermark(conn)
    return seen is not None and now < seen - tolerance
