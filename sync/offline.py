"""Offline login: who may act while the main system is down.

Why these checks, in this order:

1. The user logged in online on this console (an OfflineCredential exists), else
   backup mode is not possible for them.
2. The clock: if now is before a time that has surely passed (main's newest time
   seen, or its time at the last online login plus the monotonic time since:
   localstore.credentials), the clock was set back and would extend the grant:
   refused.  A clock set forward moves nothing (only main's times do).
3. Once 2 and 4 passed (an unusable grant costs no attempt), the attempt is
   reserved (localstore.credentials.reserve_attempt: the count is
   kept in the trust anchors, outside the store, so neither a restart nor an edited
   store resets it): a locked user, or one inside the growing delay, is refused
   before any password work; else the attempt counts as wrong until proved right.
   This and checks 2 and 4 run in one write transaction (BEGIN IMMEDIATE), so
   parallel attempts are serialised and each sees the ones before it.
4. The trust anchors (localstore.anchors, outside the store): this store must be the
   console enrolled on this home (sync.identity), and the grant's Ed25519 signature
   must verify with the key PINNED for its key_id at an online login, never with the
   key stored beside it (whoever edits the store could write both).  Either failing
   is refused as an authentication failure (exit 3) and audited.  Then the grant must
   name this user, and valid_until is compared with max(now, watermark).
5. The scrypt verifier (about 0.5-0.8 s at OWASP parameters, done outside any write
   transaction so other writers are not blocked).  A script's CLI command knows the
   password before it knows the mode (``--password-stdin``), so it may start that
   work early (localstore.verifier) in a thread, beside its imports and health probe:
   hashlib's scrypt runs without the GIL.  The early answer is used only after checks
   1-4 passed and the attempt was reserved, and only for the same user, password and
   stored verifier.  Right: the count goes back to 0.  Wrong: it stays, and reaching
   the lockout count locks the user (audited ``user_locked``) until a supervisor's
   ``lifeboat user release`` or an online login of that user.

Failures and successes are audited (never the password).  Scope comes from the
signed grant (role, client_ids), not from anything editable in the store.

Every read and write here is a Core statement (``store.read_core()`` /
``store.write_core()``, ``audit.append_core``): offline login is on the path of a
backup-mode CLI command, which must not spend ~0.3 s importing the ORM (bench P3).
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime

from contract import clock
from contract.grants import GrantInvalid, GrantKeyUntrusted, StoredGrant
from localstore import access_reads, audit, credentials
from localstore.db import Store
from localstore.verifier import EarlyCheck
from localstore.verifier import start_check as start_scrypt_check


class OfflineDenied(Exception):
    """Wrong password or throttled: authentication denied (exit 3)."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, reason: str | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
        self.reason = reason  # "locked", "throttled", or None (the --json reason then is the service's)


class BackupImpossible(Exception):
    """No usable offline grant for this user on this console (exit 5).  ``local``: the
    check was a local password check (a supervisor's decision, an unlock) in any mode,
    not a login for backup mode; the message then says so."""

    def __init__(self, message: str, *, local: bool = False):
        super().__init__(message)
        self.message = message
        self.local = local


@dataclass(frozen=True)
class OfflineSession:
    user_id: str
    role: str
    client_ids: frozenset[str]
    trading_date: date
    valid_until: datetime


def start_check(store: Store, user_id: str, password: str) -> EarlyCheck | None:
    """Start the password's scrypt check in a daemon thread now (localstore.verifier);
    None when this user has no offline material here (login will say why)."""
    with store.read_core() as conn:
        cred = access_reads.credential(conn, user_id)
    if cred is None or not cred.verifier:
        return None
    return start_scrypt_check(user_id, password, cred.verifier)


# One offline login at a time per (console home, user) in this process.  An attempt counts as
# wrong until its password proves right (credentials.reserve_attempt), so the console's own
# concurrent actions (the screen's preview and its confirm, a status sample) would otherwise
# see each other's attempts in flight as failures: "too many failed logins" for a dealer who
# never typed a wrong password.  Across processes the reservation still bounds the checks.
_LOGINS_GUARD = threading.Lock()
_LOGINS: dict[tuple[str, str], threading.Lock] = {}


def _one_at_a_time(key: str, user_id: str) -> threading.Lock:
    with _LOGINS_GUARD:
        return _LOGINS.setdefault((key, user_id), threading.Lock())


def login(
    store: Store,
    user_id: str,
    password: str,
    *,
    now: datetime | None = None,
    mode: str = "BACKUP",
    early: EarlyCheck | None = None,
) -> OfflineSession:
    """Check ``password`` for ``user_id`` against this console's offline material
    (``early``: a check started ahead by ``start_check``; its answer is used only after
    this attempt was reserved, and only if it still applies)."""
    anchors = throttle_anchors(store)
    with _one_at_a_time(anchors.key, user_id):
        return _login(store, anchors, user_id, password, now=now, mode=mode, early=early)


def _login(
    store: Store,
    anchors,
    user_id: str,
    password: str,
    *,
    now: datetime | None,
    mode: str,
    early: EarlyCheck | None,
) -> OfflineSession:
    now = (now or clock.utcnow()).astimezone(UTC)
    with store.read_core() as conn:
        cred = access_reads.credential(conn, user_id)
    # the three columns are NOT NULL: a credential row has all of them, or there is none
    verifier, grant_json, public_key = cred if cred is not None else (None, "", "")

    local = mode == "LOCAL"
    cannot = "the password cannot be checked on this console" if local else "backup mode not possible"
    if verifier is None:
        _audit_failure(store, user_id, mode, "never_online_here")
        raise BackupImpossible(
            f"{cannot}: {user_id} has never logged in online on this console "
            f"(an online login is needed before an outage)",
            local=local,
        )
    pinned = trusted_grant_keys(store)
    refused: Exception | None = None
    # one write transaction (BEGIN IMMEDIATE) checks the clock and the grant and reserves the
    # attempt (credentials.reserve_attempt) before any password work: parallel attempts queue here
    with store.write_core() as conn:
        watermark = credentials.watermark(conn, anchors)
        try:
            grant = usable_grant(
                user_id,
                grant_json,
                public_key,
                pinned=pinned,
                now=now,
                watermark=watermark,
                rolled_back=credentials.clock_rolled_back(conn, now, anchors),
            )
            attempt = credentials.reserve_attempt(anchors, user_id, now)
        except GrantUnusable as exc:
            refused = exc
            _audit_failure(conn, user_id, mode, exc.reason)
        except credentials.AttemptRefused as exc:
            refused = exc
            _audit_failure(
                conn,
                user_id,
                mode,
                "locked" if exc.attempts.locked else "throttled",
                failures=exc.attempts.count,
            )
    if isinstance(refused, credentials.AttemptRefused):
        if refused.attempts.locked:
            raise OfflineDenied(f"{user_id} is locked: {_locked(refused.attempts)}", reason="locked")
        secs = math.ceil(refused.wait_s)
        raise OfflineDenied(
            f"too many failed logins for {user_id}: try again in {secs} s",
            retry_after_s=secs,
            reason="throttled",
        )
    if isinstance(refused, GrantUnusable):
        if refused.untrusted:  # not this console's store, or a grant key it never pinned: authentication
            raise OfflineDenied(
                f"{refused.detail}; log in online to enrol this console and pin the main system's keys"
            ) from None
        again = "log in online again" if local else "log in online when the main system is back"
        raise BackupImpossible(
            f"{cannot}: {refused.detail}" + (f"; {again}" if refused.relogin else ""), local=local
        ) from None

    if early is not None and early.matches(user_id, password, verifier):
        ok = early.answer.result()
    else:
        ok = credentials.check_verifier(verifier, password)  # CPU, ~0.5 s: no transaction is open across it
    with store.write_core() as conn:
        if not ok:  # the attempt stays counted
            audit.append_core(
                conn,
                user_id=user_id,
                mode=mode,
                action="login_failed",
                payload={"how": "offline", "reason": "wrong_password", "failures": attempt.count},
            )
            if attempt.locked:
                audit.append_core(
                    conn,
                    user_id=user_id,
                    mode=mode,
                    action="user_locked",
                    payload={"how": "offline", "failures": attempt.count, "lock_after": attempt.lock_after},
                )
        else:
            credentials.clear_attempts(anchors, user_id)
            if watermark is not None:  # main's time plus the monotonic time since: kept past a reboot
                credentials.observe_server_time(conn, watermark)
            audit.append_core(
                conn,
                user_id=user_id,
                mode=mode,
                action="login",
                payload={
                    "how": "offline",
                    "role": grant.role.value,
                    "clients": len(grant.client_ids),
                    "grant_valid_until": grant.valid_until.isoformat(),
                },
            )
    if not ok:
        if attempt.locked:
            raise OfflineDenied(
                f"wrong password for {user_id}; {user_id} is now locked: {_locked(attempt)}", reason="locked"
            )
        delay = credentials.throttle_delay(attempt.count)
        hint = f"; next attempt allowed in {math.ceil(delay)} s" if delay > 0 else ""
        if attempt.lock_after:
            left = attempt.lock_after - attempt.count
            hint += f"; {left} more wrong password{'s' if left > 1 else ''} lock{'s' if left == 1 else ''} it"
        raise OfflineDenied(f"wrong password for {user_id}{hint}", retry_after_s=delay or None)
    return OfflineSession(
        user_id, grant.role.value, frozenset(grant.client_ids), grant.trading_date, grant.valid_until
    )


def throttle_anchors(store: Store):
    """The anchors that count this console's password attempts (localstore.credentials):
    the store's home's, or the data dir's for a server database."""
    from localstore.anchors import Anchors
    from localstore.paths import data_dir
    from sync.identity import anchors_for

    return anchors_for(store) or Anchors(data_dir())


def _locked(attempts: credentials.Attempts) -> str:
    """Why a user is locked, who can release it, and how."""
    why = (
        "the count of its failed offline logins in this console's trust anchors is unreadable (edited?), "
        "which counts as locked"
        if attempts.unreadable
        else f"{attempts.count} password attempts in a row without the right one lock offline login "
        f"(after {attempts.lock_after})"
    )
    return (
        f"{why}; a supervisor releases it on this console with "
        f"`lifeboat user release {attempts.user_id}` (works offline), or an online login of "
        f"{attempts.user_id} does once the main system is back"
    )


class GrantUnusable(Exception):
    """The stored offline material cannot let its user act offline now, whatever the
    password: ``reason`` is the audit's word, ``detail`` says why for a person, and
    ``relogin`` is whether an online login fixes it (a clock set back does not).
    ``untrusted``: the store is not this console's or its grant key was not pinned here
    (offline login says so as an authentication failure, exit 3)."""

    def __init__(self, reason: str, detail: str, *, relogin: bool, untrusted: bool = False):
        super().__init__(detail)
        self.reason, self.detail, self.relogin, self.untrusted = reason, detail, relogin, untrusted


class _Untrusted:
    """What ``trusted_grant_keys`` found instead of keys: usable_grant raises it."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail


def trusted_grant_keys(store: Store, anchors=None) -> dict[str, str] | _Untrusted:
    """The grant keys this console pinned ({key_id: base64}), read from this home's trust
    anchors, if this store is the console enrolled here (sync.identity); else why not.
    With a broker's trust file configured (localstore.trustfile), only pins it lists."""
    from localstore import trustfile
    from localstore.anchors import AnchorError
    from sync.identity import NotEnrolled, anchors_for, check_enrolled

    anchors = anchors or anchors_for(store)
    if anchors is None:  # a server database: not bound to a home (sync.identity), nothing pinned
        return {}
    try:
        check_enrolled(store, anchors)
        pinned = anchors.grant_keys()
        vetted = trustfile.untrusted(anchors.home, pinned)
    except NotEnrolled as exc:
        return _Untrusted("console_not_enrolled", exc.why)
    except AnchorError as exc:
        return _Untrusted("anchors_unreadable", str(exc))
    except trustfile.TrustFileError as exc:
        return _Untrusted("trust_file_unreadable", str(exc))
    return pinned if vetted is None else {k: v for k, v in pinned.items() if k not in vetted[1]}


def usable_grant(
    user_id: str,
    grant_json: str,
    public_key: str,
    *,
    pinned: dict[str, str] | _Untrusted,
    now: datetime,
    watermark: datetime | None,
    rolled_back: bool,
) -> StoredGrant:
    """Checks 3 and 4 above (the clock, the anchors, then the grant's signature with the
    pinned key, its user and expiry), the same for offline login and for `lifeboat
    status` deciding whether backup is possible.  ``pinned`` is ``trusted_grant_keys``;
    ``watermark`` and ``rolled_back`` come from localstore.credentials."""
    if rolled_back:
        raise GrantUnusable(
            "clock_rolled_back",
            f"the clock reads {now.isoformat(timespec='seconds')}, "
            f"before the newest time this console has seen "
            f"({watermark.isoformat(timespec='seconds') if watermark else 'unknown'}); fix the clock",
            relogin=False,
        )
    if isinstance(pinned, _Untrusted):
        raise GrantUnusable(pinned.reason, pinned.detail, relogin=True, untrusted=True)
    try:
        grant = StoredGrant.verify(grant_json, pinned, public_key)
        if grant.user_id != user_id:
            raise GrantInvalid("the stored offline grant names another user")
        effective = max(now, watermark) if watermark is not None else now
        grant.check_validity(effective)
    except GrantKeyUntrusted as exc:
        raise GrantUnusable(exc.reason, str(exc), relogin=True, untrusted=True) from None
    except GrantInvalid as exc:
        raise GrantUnusable("grant_invalid", str(exc), relogin=True) from None
    except ValueError:  # a grant that does not parse: edited store
        raise GrantUnusable(
            "grant_invalid", "the stored offline grant is unreadable", relogin=False
        ) from None
    return grant


def _audit_failure(where, user_id: str, mode: str, reason: str, **more) -> None:
    """Audit a refused login (``where``: the caller's write Connection, or the Store)."""
    if isinstance(where, Store):
        with where.write_core() as conn:
            return _audit_failure(conn, user_id, mode, reason, **more)
    audit.append_core(
        where,
        user_id=user_id,
        mode=mode,
        action="login_failed",
        payload={"how": "offline", "reason": reason, **more},
    )


def stored_scope(store: Store, user_id: str) -> tuple[str, list[str]] | None:
    """(role, client_ids) the main system gave at the last online login, if any."""
    with store.read_core() as conn:
        u = access_reads.scope(conn, user_id)
    if u is None:
        return None
    return u.role.value, json.loads(u.client_ids or "[]")
