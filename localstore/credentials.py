"""What offline login needs besides the store's verifier and grant: a failure throttle
with a lockout, and a clock watermark.

Why:

* The verifier is scrypt at OWASP parameters (N=2**17, r=8, p=1; about 0.8 s
  here), so a stolen store does not give passwords away cheaply.  Its parameters
  are stored in the verifier string and verification uses them, so the
  parameters can be raised later without breaking old verifiers.
* Password attempts are counted per user in the console's trust anchors
  (localstore.anchors: the OS keyring, or a 0600 file in the config dir), not in
  the store.  Whoever can edit the store must not be able to reset the count, and
  of the ways to make the count tamper-evident this is the one without a gap:

  - derived from the audit chain (login failures since the last login): cutting
    the chain's tail (delete the newest rows, point ``audit_head`` at the row
    before them) needs no hash to be recomputed and is caught only once a signed
    checkpoint covers those rows, so a few guesses, then a cut, then a few more;
  - a row in the store with an HMAC keyed from the anchors: an edited row is
    caught, but putting back an older row with a valid MAC (or deleting it, when
    "no row" must also mean "never failed") resets the count;
  - the count itself outside the store has neither problem, at the price of a
    small anchor write per attempt (a file rename, or a keyring call) and a
    second one after a correct password (figures in the issue-10 note).

  An attempt is *reserved* before the password work: under the anchors' lock
  (inside the store's ``BEGIN IMMEDIATE``, see sync.offline) the lock and the
  delay are checked and the count goes up by one, so parallel attempts each see
  the others and a killed attempt counts as a wrong password.  A correct password
  sets the count back to 0.  Delay before the next attempt after n = 0, 1, 2 ... attempts: 0,
  0, 1, 2, 4 ... s, capped at 300 s.  Lockout (the dealer terminals' rule):
  ``lock_after`` attempts in a row without the right password (3 unless a
  supervisor set another number, ``set_lock_after``; 0 turns it off) lock the
  user for offline login until an online login of that user or a supervisor's
  ``lifeboat user release`` (``clear_attempts``).
* A clock set back must not extend an offline grant, and a clock set forward must
  not poison the check: the watermark (sync_state.clock_watermark, never goes
  backwards) moves only with the main system's times (``observe_server_time``:
  the grant's issued_at at online login, the BOD's generated_at, the mirror's
  event times) and with monotonic time since one of them: at online login the
  anchors keep this boot's *epoch* (main's time minus CLOCK_BOOTTIME, with the
  kernel's boot id), so any process on the same boot knows a time that has
  surely passed (``watermark``); after a reboot only the stored server times
  count.  The local wall clock never moves it.  ``clock_rolled_back`` says when
  now is before the newest trusted time by more than ``CLOCK_TOLERANCE`` (the
  clocks of two machines differ a little).

The verifier itself lives in localstore.verifier (standard library only, so a
script's command can start checking a password before its heavy imports); its
names are re-exported here.  Verifier format: ``scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>``.

New verifiers use ``localstore.verifier.SCRYPT_N`` as it is at the call (the test
suite lowers it there, in-process or through tests/launcher.py, so it stays fast);
the ``SCRYPT_N`` re-exported here is the production default.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select, update

from localstore.anchors import Anchors
from localstore.core_tables import sync_state as _SYNC
from localstore.verifier import (  # noqa: F401 - the verifier's names, as callers know them
    SCRYPT_DKLEN,
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    check_verifier,
    make_verifier,
    parse_verifier,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

THROTTLE_CAP_S = 300.0
LOCK_AFTER_DEFAULT = 3  # the dealer terminals' rule: three wrong passwords in a row
# main's clock and this machine's differ by NTP's error or a little more; a rollback
# that stretches a grant is hours
CLOCK_TOLERANCE = timedelta(seconds=120)
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


# --------------------------------------------------------------------------- throttle and lockout


def throttle_delay(attempts: int) -> float:
    """Delay after ``attempts`` attempts in a row without the right password: 0, 0, 1, 2,
    4 ... capped at 300 s."""
    if attempts <= 1:
        return 0.0
    return float(min(THROTTLE_CAP_S, 2 ** min(attempts - 2, 20)))


@dataclass(frozen=True)
class Attempts:
    """A user's password attempts since the last correct one (or release)."""

    user_id: str
    count: int
    last_at: datetime | None  # when the newest was reserved
    lock_after: int  # 0: no lockout
    unreadable: bool = False  # the anchors' entry was not ours (edited): the worst case, locked

    @property
    def locked(self) -> bool:
        return self.unreadable or (self.lock_after > 0 and self.count >= self.lock_after)

    def wait(self, now: datetime) -> float:
        """Seconds before the next attempt is allowed; never more than the delay imposed,
        even if the clock was set back."""
        if self.last_at is None:
            return 0.0
        delay = throttle_delay(self.count)
        remaining = (self.last_at + timedelta(seconds=delay) - now).total_seconds()
        return max(0.0, min(remaining, delay))


class AttemptRefused(Exception):
    """No password check now: the user is locked, or inside the delay."""

    def __init__(self, attempts: Attempts, wait_s: float):
        super().__init__(f"{attempts.user_id}: {'locked' if attempts.locked else f'wait {wait_s:.0f} s'}")
        self.attempts = attempts
        self.wait_s = wait_s


def _lock_after(data: dict[str, Any]) -> int:
    value = data.get("offline_lock_after")
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else LOCK_AFTER_DEFAULT
    )


def _attempts(data: dict[str, Any], user_id: str) -> Attempts:
    entry = (data.get("attempts") or {}).get(user_id)
    if entry is None:
        return Attempts(user_id, 0, None, _lock_after(data))
    count = entry.get("count") if isinstance(entry, dict) else None
    try:
        last_at = (
            datetime.fromisoformat(entry["last_at"])
            if isinstance(entry, dict) and entry.get("last_at")
            else None
        )
    except (TypeError, ValueError):
        last_at = None
    if isinstance(count, bool) or not isinstance(count, int) or count < 0 or (count and last_at is None):
        # an unreadable entry is the worst case, not zero: locked (even with the lockout off)
        return Attempts(user_id, 0, None, _lock_after(data), unreadable=True)
    return Attempts(user_id, count, last_at, _lock_after(data))


def attempts(anchors: Anchors, user_id: str) -> Attempts:
    return _attempts(anchors.load(), user_id)


def reserve_attempt(anchors: Anchors, user_id: str, now: datetime) -> Attempts:
    """Count one password attempt before it is checked, or raise AttemptRefused (locked,
    or inside the delay) without counting.  Atomic across processes (the anchors' lock);
    returns the count including this attempt."""
    with anchors.locked():
        data = anchors.load()
        current = _attempts(data, user_id)
        wait = current.wait(now)
        if current.locked or wait > 0:
            raise AttemptRefused(current, wait)
        data.setdefault("attempts", {})[user_id] = {"count": current.count + 1, "last_at": now.isoformat()}
        anchors.save(data)
    return Attempts(user_id, current.count + 1, now, current.lock_after)


def clear_attempts(anchors: Anchors, user_id: str) -> Attempts:
    """A correct password, an online login or a supervisor's release: the count goes back
    to 0 (and a lock is lifted).  Returns what it was."""
    with anchors.locked():
        data = anchors.load()
        before = _attempts(data, user_id)
        if user_id in (data.get("attempts") or {}):
            del data["attempts"][user_id]
            anchors.save(data)
    return before


def online_login(anchors: Anchors, user_id: str, server_time: datetime) -> Attempts:
    """An online login of ``user_id`` (main's time ``server_time``): its count goes back to 0
    (a lock is lifted) and this boot's clock epoch is kept (``epoch_anchor``), in one
    write of the anchors.  Returns the attempts as they were."""
    with anchors.locked():
        data = anchors.load()
        before = _attempts(data, user_id)
        (data.get("attempts") or {}).pop(user_id, None)
        epoch = epoch_anchor(server_time)
        if epoch is not None:
            data["clock_epoch"] = epoch
        anchors.save(data)
    return before


def set_lock_after(anchors: Anchors, n: int) -> None:
    """How many attempts in a row without the right password lock a user (0: never)."""
    if n < 0:
        raise ValueError("the lockout count is 0 (off) or more")
    anchors.put(offline_lock_after=n)


def lock_after(anchors: Anchors) -> int:
    return _lock_after(anchors.load())


# --------------------------------------------------------------------------- clock watermark

_WATERMARK = select(_SYNC.c.clock_watermark).where(_SYNC.c.id == 1)
_WATERMARK_LOCK = _WATERMARK.with_for_update()
_WATERMARK_SET = update(_SYNC).where(_SYNC.c.id == 1).values(clock_watermark=bindparam("w_at"))


def _boot() -> tuple[str, float] | None:
    """(this boot's id, seconds since boot counting suspend), or None off Linux."""
    try:
        boot_id = _BOOT_ID.read_text().strip()
        return boot_id, time.clock_gettime(time.CLOCK_BOOTTIME)
    except (OSError, AttributeError):
        return None


def epoch_anchor(server_time: datetime) -> dict[str, str] | None:
    """What the anchors keep at online login (``clock_epoch``): this boot's id and main's
    time minus the time since boot, so a later process on the same boot can add the
    time elapsed since, whatever the wall clock says."""
    boot = _boot()
    if boot is None:
        return None
    boot_id, since_boot = boot
    return {"boot_id": boot_id, "epoch": (server_time - timedelta(seconds=since_boot)).isoformat()}


def _epoch_now(anchor: Any) -> datetime | None:
    """The trusted lower bound on now from an epoch anchor, if it is of this boot."""
    boot = _boot()
    if boot is None or not isinstance(anchor, dict) or anchor.get("boot_id") != boot[0]:
        return None
    try:
        return datetime.fromisoformat(anchor["epoch"]) + timedelta(seconds=boot[1])
    except (KeyError, TypeError, ValueError):
        return None


def watermark(conn: Connection | Session, anchors: Anchors | None = None) -> datetime | None:
    """A time that has surely passed (None before any): the newest server time stored,
    or, with ``anchors``, main's time at the last online login plus the monotonic time
    since (same boot), whichever is newer."""
    seen = conn.execute(_WATERMARK).scalar()
    bound = _epoch_now(anchors.get("clock_epoch")) if anchors is not None else None
    if seen is None or (bound is not None and bound > seen):
        return bound
    return seen


def observe_server_time(conn: Connection | Session, server_time: datetime) -> datetime:
    """Record a time the main system gave (aware) as seen, in the caller's write
    transaction; returns the watermark, which never moves back.  Never pass the local
    wall clock: a clock set ahead would then refuse offline login until it is reached."""
    if server_time.tzinfo is None:
        raise ValueError("observe_server_time needs a timezone-aware time")
    server_time = server_time.astimezone(UTC)
    dialect = (
        conn.get_bind().dialect if hasattr(conn, "get_bind") else conn.dialect
    )  # a Session or a Connection
    # FOR UPDATE serialises writers on a server database; on SQLite BEGIN IMMEDIATE already has
    row = conn.execute(_WATERMARK if dialect.name == "sqlite" else _WATERMARK_LOCK).first()
    if row is None:  # a store opened before its singletons: create the row
        conn.execute(insert(_SYNC).values(id=1, clock_watermark=server_time))
        return server_time
    if row.clock_watermark is None or server_time > row.clock_watermark:
        conn.execute(_WATERMARK_SET, {"w_at": server_time})
        return server_time
    return row.clock_watermark


def clock_rolled_back(
    conn: Connection | Session,
    now: datetime,
    anchors: Anchors | None = None,
    *,
    tolerance: timedelta = CLOCK_TOLERANCE,
) -> bool:
    """True when ``now`` is earlier than ``watermark`` by more than the tolerance: the
    clock was set back."""
    seen = watermark(conn, anchors)
    return seen is not None and now < seen - tolerance
