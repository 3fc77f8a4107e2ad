"""Who is acting: online login (grant verified, trust anchors enrolled, audited),
offline login and unlock against the local verifier and signed grant, logout.

Functions of the Service (console.service.core), which exposes them as its methods.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from backend_client import errors as be
from console import eventlog
from console.service.errors import Denied, translate
from console.service.results import LoginResult
from contract import clock

if TYPE_CHECKING:
    from backend_client.client import BackendClient
    from console.service.core import Service
    from contract import wire
    from localstore.verifier import EarlyCheck
    from sync.identity import Enrolment
    from sync.offline import OfflineSession

log = logging.getLogger("lifeboat.service")


def _fingerprints(keys: dict[str, str]) -> dict[str, str]:
    """{key_id: the first 16 hex digits of SHA-256 of the raw public key}: grant keys as the audit names them."""
    import base64
    import hashlib

    return {k: hashlib.sha256(base64.b64decode(v)).hexdigest()[:16] for k, v in sorted(keys.items())}


async def login(svc: Service, user_id: str, password: str) -> LoginResult:
    svc.user = user_id
    try:
        async with svc.any_client() as c:
            return await login_on(svc, c, user_id, password)
    except be.BackendError as exc:  # translated here, as before the boundary (reason_of's causes)
        raise translate(exc) from exc


async def login_on(svc: Service, c: BackendClient, user_id: str, password: str) -> LoginResult:
    from contract.grants import GrantInvalid, key_for, verify_grant
    from localstore import book, credentials, secrets
    from sync.offline import throttle_anchors

    session = await c.login(user_id, password)
    keys = await c.keys()
    grant = session.offline_grant
    try:
        key = key_for(grant, keys)
        verify_grant(grant, key.public_key)
    except GrantInvalid as exc:
        raise Denied(
            f"the main system's offline grant does not verify ({exc}); offline login will not be possible"
        ) from exc
    if grant.claims.user_id != session.user.user_id:
        raise Denied("the offline grant names another user; refusing it")
    # scrypt (about 0.5 s by design) off the loop: the live session's one loop keeps serving
    verifier = await asyncio.to_thread(credentials.make_verifier, password)
    now = clock.utcnow()
    store = svc.store
    # trust anchors (sync.identity, localstore.anchors): this store becomes the console
    # enrolled on this home (a copy gets a new console id) and main's grant keys are pinned
    # outside the store; offline login verifies grants with these pins only
    await asyncio.to_thread(_enrol, svc, keys, user_id, key.key_id)

    login = book.OnlineLogin(
        user_id=user_id,
        role=session.user.role,
        client_ids=list(session.user.client_ids),
        verifier=verifier,
        grant_json=grant.model_dump_json(),
        key_id=key.key_id,
        public_key=key.public_key,
        valid_until=grant.claims.valid_until,
        trading_date=grant.claims.trading_date,
        issued_at=grant.claims.issued_at,
        now=now,
    )
    payload = {
        "how": "online",
        "role": session.user.role.value,
        "console_id": store.console_id,
        "grant_keys": _fingerprints({k.key_id: k.public_key for k in keys.keys}),
        "clients": len(session.user.client_ids),
        "grant_valid_until": grant.claims.valid_until.isoformat(),
    }
    await asyncio.to_thread(lambda: book.record_online_login(store, throttle_anchors(store), login, payload))
    from sync import checkpoint_send  # the audit chain's signed checkpoints: key to main, queue sent

    await checkpoint_send.at_login(store, c)
    kept = secrets.save_token(user_id, session.access_token)
    log.info("login", extra={"event": "login", "user_id": user_id, "keyring_kept": kept})
    return LoginResult(session.user, kept, grant.claims.valid_until, store.console_id)


def _enrol(svc: Service, keys: wire.KeySet, user_id: str, grant_key_id: str) -> Enrolment:
    """At an online login: bind this store to this home (sync.identity.ensure_enrolled) and
    pin the grant keys main publishes now (``keys``: its /keys), replacing the old pins:
    only main, online, changes them.  A change of pins is audited.  With a broker's trust
    file (localstore.trustfile) only the keys it lists are pinned, and a grant signed by
    a key it does not list refuses the login."""
    from localstore import book, trustfile
    from localstore.anchors import AnchorError
    from sync.identity import anchors_for, ensure_enrolled

    store = svc.store
    anchors = anchors_for(store)
    published = {k.key_id: k.public_key for k in keys.keys}
    try:
        vetted = trustfile.untrusted(svc.data_dir, published)
    except trustfile.TrustFileError as exc:
        raise Denied(f"{exc}; refusing the login (nothing pinned)") from exc
    if vetted is not None:
        path, unlisted = vetted
        if grant_key_id in unlisted:
            raise Denied(
                f"the main system signs offline grants with key {grant_key_id!r} (SHA-256 "
                f"{trustfile.fingerprint(published[grant_key_id])}), which the broker's trust file "
                f"{path} does not list: refusing the login (nothing pinned; a man in the middle, "
                f"or the main system's keys changed: ask the broker)"
            )
        published = {k: v for k, v in published.items() if k not in unlisted}
    try:
        enrolment = ensure_enrolled(store, anchors, user_id=user_id)
        before = anchors.grant_keys() if anchors is not None else {}
        if anchors is not None and before != published:
            anchors.put(grant_keys=published)
            if (
                before
            ):  # a change (main's new keys, or pins put right): audited; the first pins are the login's
                book.record_event(
                    store,
                    user_id=user_id,
                    mode="ONLINE",
                    action="grant_keys_pinned",
                    payload={
                        "pinned": _fingerprints(published),
                        "before": _fingerprints(before),
                        "where": anchors.kind,
                    },
                )
    except AnchorError as exc:  # trust cannot be kept here: no offline login would be possible
        raise Denied(f"cannot keep this console's trust anchors: {exc}") from exc
    if enrolment.previous is not None:
        eventlog.set_context(console_id=enrolment.console_id)
        log.info(
            "console_enrolled",
            extra={
                "event": "console_enrolled",
                "console_id": enrolment.console_id,
                "previous": enrolment.previous,
            },
        )
    return enrolment


def logout(svc: Service) -> tuple[str, str]:
    """Forget the saved token: (user, what happened to the token: "removed", "none"
    or "no_keyring", localstore.secrets.delete_token)."""
    from localstore import book, secrets

    user = svc.current_user()
    token = secrets.delete_token(user)
    book.record_logout(svc.store, user, token)
    return user, token


async def _offline_check(svc: Service, user_id: str, password: str, mode: str) -> OfflineSession:
    from sync import offline

    try:
        return await asyncio.to_thread(
            offline.login, svc.store, user_id, password, mode=mode, early=svc._early_check
        )
    except Exception as exc:  # offline denial, no grant, store trouble: one sentence
        problem = translate(exc)
        if problem is exc:
            raise
        raise problem from exc


def start_password_check(svc: Service, password: str, early: EarlyCheck | None = None) -> None:
    """A script gave its password before the mode is known: start the offline check's
    scrypt (about half a second) now, in a thread beside the health probe, unless
    ``early`` (localstore.verifier.EarlyCheck, started by the CLI before its imports)
    already runs.  Used only if offline login then happens for the same user, password
    and stored verifier (sync.offline.login); harmless otherwise."""
    from sync import offline

    try:
        user = svc.current_user()
        if early is not None and early.user_id == user and early.password == password:
            svc._early_check = early
            return
        svc._early_check = offline.start_check(svc.store, user, password)
    except Exception:  # noqa: BLE001 - an optimisation only: login checks again and reports
        svc._early_check = None


async def login_offline(svc: Service, user_id: str, password: str) -> OfflineSession:
    """Log in while main is down, against this console's signed grant and local
    verifier (audited, throttled).  Returns the sync.offline.OfflineSession (role,
    client_ids from the grant); the user becomes this service's user."""
    sess = await _offline_check(svc, user_id, password, "BACKUP")
    svc.user = user_id
    eventlog.set_context(user=user_id)
    return sess


async def unlock(svc: Service, password: str) -> None:
    """The current user's password again (a locked console): the local verifier and
    signed grant, so it works in every mode.  Raises Denied on a wrong password."""
    from sync.offline import OfflineDenied

    try:
        await _offline_check(svc, svc.current_user(), password, "LOCAL")
    except Denied as exc:  # not a login, and not offline: in every mode it is an unlock that failed
        if isinstance(exc.__cause__, OfflineDenied):
            raise Denied(f"unlock refused: {exc.__cause__.message}") from exc.__cause__
        raise
