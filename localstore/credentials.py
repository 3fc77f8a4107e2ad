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

Verifier format: ``scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>``.

TEST ONLY: ``LIFEBOAT_TEST_SCRYPT_N`` (a power of two, at least 2**10) lowers N
for *new* verifiers so the test suite stays fast.  Never set it in production.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, insert, select, update

from localstore.core_tables import login_throttle as _THROTTLE
from localstore.core_tables import sync_state as _SYNC

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
SALT_BYTES = 16
TEST_N_ENV = "LIFEBOAT_TEST_SCRYPT_N"  # TEST ONLY: see module docstring
_MIN_N = 2**10
_MAX_N = 2**20  # a tampered verifier must not make us allocate gigabytes

THROTTLE_CAP_S = 300.0
CLOCK_TOLERANCE = timedelta(seconds=2)  # NTP slews a little; a rollback is more than this


# --------------------------------------------------------------------------- verifier


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    maxmem = 128 * r * (n + p + 2) + 16 * 1024 * 1024
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=SCRYPT_DKLEN)


def _default_n() -> int:
    override = os.environ.get(TEST_N_ENV)
    if not override:
        return SCRYPT_N
    n = int(override)
    if n < _MIN_N or n > _MAX_N or n & (n - 1):
        raise ValueError(f"{TEST_N_ENV} must be a power of two between {_MIN_N} and {_MAX_N}")
    return n


def make_verifier(password: str, *, n: int | None = None) -> str:
    """A scrypt verifier for ``password`` (stores N, r, p and a random 16-byte salt)."""
    if not isinstance(password, str) or not password:
        raise ValueError("password must be a non-empty string")
    n = n or _default_n()
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, n, SCRYPT_R, SCRYPT_P)
    b64 = lambda raw: base64.b64encode(raw).decode("ascii")  # noqa: E731
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${b64(salt)}${b64(digest)}"


def parse_verifier(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """(N, r, p, salt, hash) of a verifier string; ValueError if malformed or out of bounds."""
    try:
        scheme, n_s, r_s, p_s, salt_s, hash_s = stored.split("$")
        n, r, p = int(n_s), int(r_s), int(p_s)
        salt = base64.b64decode(salt_s, validate=True)
        digest = base64.b64decode(hash_s, validate=True)
    except (ValueError, AttributeError) as exc:
        raise ValueError("malformed password verifier") from exc
    if scheme != "scrypt" or not (_MIN_N <= n <= _MAX_N) or n & (n - 1) or not (1 <= r <= 32) or not (1 <= p <= 16):
        raise ValueError("password verifier has unsupported parameters")
    if len(salt) < 8 or len(digest) < 16:
        raise ValueError("malformed password verifier")
    return n, r, p, salt, digest


def check_verifier(stored: str, password: str) -> bool:
    """True when ``password`` matches; uses the parameters stored in the verifier and a
    constant-time comparison.  A malformed verifier never matches."""
    try:
        n, r, p, salt, digest = parse_verifier(stored)
    except ValueError:
        return False
    candidate = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
        maxmem=128 * r * (n + p + 2) + 16 * 1024 * 1024, dklen=len(digest),
    )
    return hmac.compare_digest(candidate, digest)


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
