"""Trading, routed by mode: place / modify / cancel / square-off / kill switch online
(through main) or journaled (backup, recovering), and the supervisor's decisions that
are checked locally in every mode (mode override, backup policy, locked users).

Functions of the Service (console.service.core), which exposes them as its methods.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from backend_client import errors as be
from console import eventlog
from console.service.errors import ADVICE_LOGIN, ADVICE_PASSWORD, NotLoggedIn, Refused, ServiceError, inside
from console.service.results import ActionResult, Lockout, ModeState, PolicyState, UserReleased, sends
from contract import clock

if TYPE_CHECKING:
    from backend_client.client import BackendClient
    from console.service.core import Service
    from sync.trading.desk import Actor
    from sync.trading.policy import OrderTicket

log = logging.getLogger("lifeboat.service")


def _target_dict(t: Any) -> dict[str, Any]:
    if isinstance(t, dict):
        return t
    return {
        "client_id": t.client_id,
        "exchange": t.exchange,
        "symbol": t.symbol,
        "order_id": t.order_id,
        "client_order_id": t.client_order_id,
        "journaled_order": t.journaled,
    }


async def _actor(svc: Service, mode: str, password: str | None) -> Actor:
    """Backup and RECOVERING: offline login (the signed grant gives the scope).
    ONLINE: the main system's session (its role and clients, kept at login)."""
    from sync import offline
    from sync.trading.desk import Actor

    user = svc.current_user()
    eventlog.set_context(user=user)
    if not sends(mode):
        if password is None:
            raise NotLoggedIn(
                "the main system is down: offline login needs your password", advice=ADVICE_PASSWORD
            )
        sess = await asyncio.to_thread(
            offline.login, svc.store, user, password, mode=mode, early=svc._early_check
        )
        return Actor(user, sess.role, sess.client_ids, sess.trading_date, mode=mode)
    scope = offline.stored_scope(svc.store, user)
    if scope is None:
        raise NotLoggedIn(f"{user} has not logged in on this console", advice=ADVICE_LOGIN, advice_user=user)
    role, clients = scope
    td = svc._mode.probe.trading_date if svc._mode and svc._mode.probe.trading_date else clock.today_ist()
    return Actor(user, role, frozenset(clients), td, mode=mode)


def _log_result(svc: Service, res: ActionResult) -> None:
    for leg in res.legs or ([res.order] if res.order else []):
        log.info(
            res.action,
            extra={
                "event": res.action,
                "client_order_id": leg.get("client_order_id"),
                "outcome": leg.get("outcome"),
                "client_id": leg.get("client_id"),
            },
        )


async def _route(
    svc: Service,
    password: str | None,
    online: Callable[[BackendClient, Actor], Awaitable[ActionResult]],
    backup: Callable[[Actor, str], ActionResult],
    action: str,
) -> ActionResult:
    """Act online through main, or journal the action (backup, recovering)."""
    decision = await svc.decide_mode()
    try:
        if decision.sends:  # main, or the DR site once it is primary (the same contract)
            async with svc.session_client(password) as c:
                actor = await _actor(svc, decision.mode, password)
                res = await online(c, actor)
                res.mode = decision.mode
        else:
            actor = await _actor(svc, decision.mode, password)
            res = await asyncio.to_thread(backup, actor, decision.mode)
    except ServiceError:
        raise
    except Exception as exc:  # backend, policy, offline-login and journal errors as the service's own
        if decision.sends and isinstance(exc, (be.Unavailable, be.ProtocolError)):
            kind = exc.kind if isinstance(exc, be.Unavailable) else "protocol"
            for hook in svc.request_error_hooks:  # the console's runtime hears it (detector input)
                hook(kind, exc.message)
        problem = inside(exc)
        if problem is None:  # not one we know: the boundary reports it as unexpected
            raise
        raise problem from exc
    res.user = actor.user_id
    _log_result(svc, res)
    return res


def acknowledge(svc: Service, result: Any) -> None:
    """Call once the answer has been shown: stamps acknowledged_at (never un-accepts)."""
    from sync.trading import journal

    try:
        journal.acknowledge(svc.store, result.journal_seqs)
    except Exception as exc:  # noqa: BLE001 - the entries are durable; only the stamp is missing
        eventlog.log_error("acknowledge_failed", exc)


async def place(
    svc: Service,
    ticket: OrderTicket,
    *,
    validity: str = "DAY",
    disclosed_quantity: int | None = None,
    password: str | None = None,
) -> ActionResult:
    from console.service import risk
    from contract import wire
    from sync.trading import desk

    await asyncio.to_thread(risk.check_cutoff, svc, ticket)

    async def online(c: BackendClient, actor: Actor) -> ActionResult:
        from sync.trading import online_desk  # the ORM models: only the ONLINE route needs them

        order = await online_desk.place(
            svc.store, c, actor, ticket, validity=validity, disclosed_quantity=disclosed_quantity
        )
        o = order.model_dump(mode="json")
        o["outcome"] = "rejected" if order.status is wire.OrderStatus.REJECTED else order.status.value.lower()
        return ActionResult("order_place", "ONLINE", actor.user_id, order=o)

    def backup(actor: Actor, mode: str) -> ActionResult:
        journaled = risk.protect_market(svc, ticket)  # a MARKET order is journaled with protection only
        r = desk.place(
            svc.store, actor, journaled, mode=mode, validity=validity, disclosed_quantity=disclosed_quantity
        )
        o = {
            "client_order_id": r.client_order_id,
            "seq": r.seq,
            "client_id": ticket.client_id,
            "exchange": ticket.exchange,
            "symbol": ticket.symbol.upper(),
            "side": ticket.side.value,
            "quantity": ticket.quantity,
            "product": ticket.product,
            "order_type": journaled.order_type.value,
            "price": None if journaled.price is None else float(journaled.price),
            "outcome": "journaled",
        }
        return ActionResult("order_place", mode, actor.user_id, order=o, journal_seqs=[r.seq])

    return await _route(svc, password, online, backup, "order_place")


def _journaled_on_target(
    action: str, mode: str, actor: Actor, r, order_id: str | None, client_order_id: str | None
) -> ActionResult:
    """A modify or cancel journaled in backup: the entry and the order it targets."""
    return ActionResult(
        action,
        mode,
        actor.user_id,
        journal_seqs=[r.seq],
        order={
            "client_order_id": r.client_order_id,
            "seq": r.seq,
            "target_order_id": order_id,
            "target_client_order_id": client_order_id,
            "outcome": "journaled",
        },
    )


async def modify(
    svc: Service,
    *,
    order_id: str | None = None,
    client_order_id: str | None = None,
    quantity: int | None = None,
    price: Decimal | None = None,
    trigger_price: Decimal | None = None,
    password: str | None = None,
) -> ActionResult:
    from sync.trading import desk

    async def online(c: BackendClient, actor: Actor) -> ActionResult:
        from sync.trading import online_desk  # the ORM models: only the ONLINE route needs them

        order = await online_desk.modify(
            svc.store,
            c,
            actor,
            order_id=order_id,
            client_order_id=client_order_id,
            quantity=quantity,
            price=price,
            trigger_price=trigger_price,
        )
        return ActionResult(
            "order_modify",
            "ONLINE",
            actor.user_id,
            order={**order.model_dump(mode="json"), "outcome": "modified"},
        )

    def backup(actor: Actor, mode: str) -> ActionResult:
        r = desk.modify(
            svc.store,
            actor,
            order_id=order_id,
            client_order_id=client_order_id,
            quantity=quantity,
            price=price,
            trigger_price=trigger_price,
            mode=mode,
        )
        return _journaled_on_target("order_modify", mode, actor, r, order_id, client_order_id)

    return await _route(svc, password, online, backup, "order_modify")


async def cancel(
    svc: Service,
    *,
    order_id: str | None = None,
    client_order_id: str | None = None,
    password: str | None = None,
) -> ActionResult:
    from sync.trading import desk

    async def online(c: BackendClient, actor: Actor) -> ActionResult:
        from sync.trading import online_desk  # the ORM models: only the ONLINE route needs them

        order = await online_desk.cancel(
            svc.store, c, actor, order_id=order_id, client_order_id=client_order_id
        )
        return ActionResult(
            "order_cancel",
            "ONLINE",
            actor.user_id,
            order={**order.model_dump(mode="json"), "outcome": order.status.value.lower()},
        )

    def backup(actor: Actor, mode: str) -> ActionResult:
        r = desk.cancel(svc.store, actor, order_id=order_id, client_order_id=client_order_id, mode=mode)
        return _journaled_on_target("order_cancel", mode, actor, r, order_id, client_order_id)

    return await _route(svc, password, online, backup, "order_cancel")


async def squareoff(
    svc: Service,
    *,
    client_id: str | None = None,
    symbol: str | None = None,
    keep_orders: bool = False,
    dry_run: bool = False,
    password: str | None = None,
) -> ActionResult:
    from sync.trading import desk

    async def online(c: BackendClient, actor: Actor) -> ActionResult:
        from sync.trading import online_desk  # the ORM models: only the ONLINE route needs them

        legs, cancels = await online_desk.squareoff(
            svc.store,
            c,
            actor,
            client_id=client_id,
            symbol=symbol,
            keep_orders=keep_orders,
            dry_run=dry_run,
        )
        return ActionResult(
            "squareoff",
            "ONLINE",
            actor.user_id,
            legs=[leg.as_dict() for leg in legs],
            cancels=cancels,
            dry_run=dry_run,
        )

    def backup(actor: Actor, mode: str) -> ActionResult:
        legs, cancels, receipts = desk.squareoff(
            svc.store,
            actor,
            client_id=client_id,
            symbol=symbol,
            keep_orders=keep_orders,
            mode=mode,
            dry_run=dry_run,
        )
        ctargets = [_target_dict(t) for t in cancels]
        for t, r in zip(ctargets, receipts, strict=False):
            t["cancel_client_order_id"], t["outcome"] = r.client_order_id, "journaled"
        return ActionResult(
            "squareoff",
            mode,
            actor.user_id,
            legs=[leg.as_dict() for leg in legs],
            cancels=ctargets,
            journal_seqs=[r.seq for r in receipts],
            dry_run=dry_run,
        )

    return await _route(svc, password, online, backup, "squareoff")


async def killswitch(svc: Service, *, off: bool = False, password: str | None = None) -> ActionResult:
    from sync.trading import desk, online_desk

    if off:  # a supervisor's decision, checked locally in every mode (audited)
        decision = await svc.decide_mode()
        actor = await _supervisor(svc, password, "release the kill switch", decision.mode)
        _check_cooldown(svc)
        await asyncio.to_thread(online_desk.set_killswitch, svc.store, actor, False, mode=decision.mode)
        return ActionResult("killswitch_off", decision.mode, actor.user_id)

    async def online(c: BackendClient, actor: Actor) -> ActionResult:
        cancels = await online_desk.killswitch(svc.store, c, actor)
        return ActionResult("killswitch", "ONLINE", actor.user_id, cancels=cancels)

    def backup(actor: Actor, mode: str) -> ActionResult:
        cancels, receipts = desk.killswitch(svc.store, actor, mode=mode)
        ctargets = [_target_dict(t) for t in cancels]
        for t, r in zip(ctargets, receipts, strict=False):
            t["cancel_client_order_id"], t["outcome"] = r.client_order_id, "journaled"
        return ActionResult(
            "killswitch", mode, actor.user_id, cancels=ctargets, journal_seqs=[r.seq for r in receipts]
        )

    return await _route(svc, password, online, backup, "killswitch")


def _check_cooldown(svc: Service) -> None:
    """``[rms] killswitch_cooldown_minutes``: the kill switch is not released sooner than that
    after it was set (the policy row's last change: a later change restarts the wait)."""
    from datetime import timedelta

    from console.service import risk

    minutes = risk.settings(svc).killswitch_cooldown_minutes
    pol = policy_show(svc)
    if not minutes or not pol.killswitch or pol.updated_at is None:
        return
    until = pol.updated_at + timedelta(minutes=minutes)
    if clock.utcnow() < until:
        raise Refused(
            f"the kill switch was set at {pol.updated_at:%H:%M:%S} UTC; it can be released from "
            f"{until:%H:%M:%S} UTC ([rms] killswitch_cooldown_minutes = {minutes:g})",
            "killswitch_cooldown",
        )


async def _supervisor(svc: Service, password: str | None, what: str, mode: str) -> Actor:
    """A supervisor proves who they are against this console's local verifier and
    signed grant (works whether or not main is up)."""
    from sync.trading.policy import check_supervisor

    try:
        actor = await _actor(svc, "LOCAL", password)
        check_supervisor(actor.role, what)
    except ServiceError:
        raise
    except Exception as exc:
        problem = inside(exc)
        if problem is None:
            raise
        raise problem from exc
    return actor


def mode_show(svc: Service) -> ModeState:
    from localstore import book

    return ModeState(**book.console_mode(svc.store))


async def mode_force(svc: Service, mode: str | None, *, password: str | None = None) -> ModeState:
    """Force ONLINE/BACKUP/RECOVERING (or None: back to automatic); audited."""
    from backend_client.detector import Mode
    from localstore import book

    if mode is not None:
        try:
            mode = Mode(mode.upper()).value
        except ValueError:
            raise Refused(f"unknown mode {mode!r}: ONLINE, BACKUP or RECOVERING", "invalid_mode") from None
        if mode == "SUSPECT":
            raise Refused("SUSPECT is the detector's own state and cannot be forced", "invalid_mode")
    actor = await _supervisor(svc, password, "override the mode", "LOCAL")
    now = clock.utcnow()

    await asyncio.to_thread(book.force_mode, svc.store, mode, by=actor.user_id, now=now)
    log.info("mode_change", extra={"event": "mode_change", "forced_mode": mode})
    return mode_show(svc)


def policy_show(svc: Service) -> PolicyState:
    from localstore import book

    return PolicyState(**book.policy(svc.store))


async def policy_set(svc: Service, *, allow_new_exposure: bool, password: str | None = None) -> PolicyState:
    from localstore import book

    actor = await _supervisor(svc, password, "change the backup policy", "LOCAL")
    now = clock.utcnow()

    await asyncio.to_thread(book.set_new_exposure, svc.store, allow_new_exposure, by=actor.user_id, now=now)
    log.info("policy_change", extra={"event": "policy_change", "allow_new_exposure": allow_new_exposure})
    return policy_show(svc)


async def user_release(svc: Service, user_id: str, *, password: str | None = None) -> UserReleased:
    """A supervisor lifts ``user_id``'s offline lockout and failure delay on this console
    (localstore.credentials; audited ``user_released``).  Checked locally: works offline."""
    from localstore import book
    from sync.offline import throttle_anchors

    actor = await _supervisor(svc, password, "release a locked user", "LOCAL")
    anchors = throttle_anchors(svc.store)
    before = await asyncio.to_thread(book.release_user, svc.store, anchors, user_id, by=actor.user_id)
    log.info(
        "user_released", extra={"event": "user_released", "user_id": user_id, "was_locked": before.locked}
    )
    return UserReleased(user_id, actor.user_id, before.locked, before.count, before.lock_after)


def user_lockout_show(svc: Service) -> Lockout:
    from localstore import credentials
    from sync.offline import throttle_anchors

    return Lockout(credentials.lock_after(throttle_anchors(svc.store)))


async def user_lockout_set(svc: Service, n: int, *, password: str | None = None) -> Lockout:
    """A supervisor sets how many password attempts in a row without the right one lock
    a user offline (0: never), kept in the trust anchors, not the store; audited."""
    from localstore import book
    from sync.offline import throttle_anchors

    if n < 0 or n > 1000:
        raise Refused(f"the lockout count is 0 (off) to 1000, not {n}", "invalid_value")
    actor = await _supervisor(svc, password, "change the offline lockout", "LOCAL")
    anchors = throttle_anchors(svc.store)
    await asyncio.to_thread(book.set_lockout, svc.store, anchors, n, by=actor.user_id)
    return Lockout(n, actor.user_id)
