"""ONLINE actions: sent to the main system, which makes the risk checks.

Why here and not in the service: the service only routes by mode; this module
knows how an online square-off is sent (cancel the scope's open orders, then each
leg as MARKET orders split at the freeze quantity, waiting for each outcome) and
how client_order_ids are reserved in the local store first, so a retry reuses the
id and main's idempotency makes it one order.  The kill switch is enforced
locally in every mode (main knows nothing of it), and so is an MTM-loss breach's square-off
mode (reduce-only for that client: main's live position says what reduces).
"""

from __future__ import annotations

from decimal import Decimal

from backend_client import errors as be
from backend_client.client import BackendClient
from contract import clock, wire
from contract.enums import OPEN_STATUSES
from localstore import audit, trading_store
from sync.trading import desk, journal, policy
from sync.trading.desk import Actor
from sync.trading.policy import OrderTicket, Refusal
from sync.trading.squareoff import Leg, position_legs, split_legs


def _audit(store, actor: Actor, action: str, payload: dict) -> None:
    with store.write() as s:
        audit.append(s, user_id=actor.user_id, mode=actor.mode, action=action, payload=payload)


def killswitch_on(store) -> bool:
    return trading_store.killswitch(store)


def squareoff_mode(store, actor: Actor, client_id: str) -> policy.SquareoffMode | None:
    """The client's square-off mode today (an MTM-loss breach, sync.rms.limits), or None."""
    with store.read_core() as conn:
        return desk.squareoff_mode(conn, actor, client_id)


async def _net(c: BackendClient, client_id: str, exchange: str, symbol: str, product: str) -> int:
    for p in await c.positions(client_id):
        if (p.exchange.value, p.symbol, p.product.value) == (exchange, symbol, product):
            return p.net_quantity
    return 0


async def place(
    store, c: BackendClient, actor: Actor, t: OrderTicket, *, validity: str, disclosed_quantity: int | None
) -> wire.Order:
    policy.check_scope(actor.role, actor.client_ids, t.client_id)
    mtm_mode = squareoff_mode(store, actor, t.client_id)
    killswitch = killswitch_on(store)
    if mtm_mode is not None or killswitch:
        net = await _net(c, t.client_id, t.exchange, t.symbol, t.product)  # main's live position
        policy.check_mtm_squareoff(t, net=net, journaled_reducing=0, state=mtm_mode)
    if killswitch:
        policy.check_exposure(
            t,
            net=net,
            journaled_reducing=0,
            policy=policy.PolicyView(allow_new_exposure=True, killswitch=True),
            backup=False,
        )
    coid = journal.allocate_ids(store, actor.trading_date)[0]
    req = wire.OrderRequest(
        client_order_id=coid,
        client_id=t.client_id,
        exchange=t.exchange,
        symbol=t.symbol,
        side=t.side,
        quantity=t.quantity,
        product=t.product,
        order_type=t.order_type,
        price=t.price,
        trigger_price=t.trigger_price,
        validity=validity,
        disclosed_quantity=disclosed_quantity,
    )
    try:
        res = await c.place_order(req)
    except (be.Unavailable, be.ProtocolError) as exc:
        if isinstance(exc, be.Unavailable) and not exc.sent:
            raise
        # it may have reached the site (sent, and no answer or an unreadable one): never placed
        # again blind, a switch to the DR site included
        exc.message = (
            f"order {coid} may have reached {c.base_url} but no readable answer came ({exc.message}): "
            f"look it up by its client_order_id before placing it again "
            f"(`lifeboat orders --client {t.client_id}`)"
        )
        exc.args = (exc.message,)
        raise
    finally:
        _audit(
            store,
            actor,
            "order_place",
            {
                "client_order_id": coid,
                "client_id": t.client_id,
                "symbol": t.symbol,
                "side": t.side.value,
                "quantity": t.quantity,
            },
        )
    return res.order


async def find_order(c: BackendClient, order_id: str | None, client_order_id: str | None) -> wire.Order:
    try:
        return await (c.order(order_id) if order_id else c.order_by_client_id(client_order_id or ""))
    except be.NotFound:
        which = f"order id {order_id}" if order_id else f"client order id {client_order_id}"
        raise Refusal("unknown_order", f"the main system has no order with {which}") from None


async def modify(
    store,
    c: BackendClient,
    actor: Actor,
    *,
    order_id,
    client_order_id,
    quantity: int | None,
    price: Decimal | None,
    trigger_price: Decimal | None,
) -> wire.Order:
    order = await find_order(c, order_id, client_order_id)
    policy.check_scope(actor.role, actor.client_ids, order.client_id)
    if quantity is None and price is None and trigger_price is None:
        raise Refusal("invalid_request", "nothing to change: give --quantity, --price or --trigger")
    if killswitch_on(store) and quantity is not None and quantity > order.quantity:
        raise Refusal("killswitch", "the kill switch is on: an order cannot be modified upwards")
    try:
        return await c.modify_order(
            order.order_id, wire.OrderModify(quantity=quantity, price=price, trigger_price=trigger_price)
        )
    finally:
        _audit(
            store,
            actor,
            "order_modify",
            {
                "order_id": order.order_id,
                "client_order_id": order.client_order_id,
                "quantity": quantity,
                "price": price,
                "trigger_price": trigger_price,
            },
        )


async def cancel(store, c: BackendClient, actor: Actor, *, order_id, client_order_id) -> wire.Order:
    order = await find_order(c, order_id, client_order_id)
    policy.check_scope(actor.role, actor.client_ids, order.client_id)
    try:
        return await c.cancel_order(order.order_id)
    finally:
        _audit(
            store,
            actor,
            "order_cancel",
            {"order_id": order.order_id, "client_order_id": order.client_order_id},
        )


async def _cancel_all(c: BackendClient, orders: list[wire.Order]) -> list[dict]:
    out = []
    for o in orders:
        row = {
            "order_id": o.order_id,
            "client_order_id": o.client_order_id,
            "client_id": o.client_id,
            "symbol": o.symbol,
        }
        try:
            done = await c.cancel_order(o.order_id)
            row["outcome"] = done.status.value.lower()
        except (be.Rejected, be.NotFound, be.IdempotencyConflict) as exc:
            row["outcome"], row["reason"] = "not_cancelled", exc.message
        out.append(row)
    return out


async def squareoff(
    store,
    c: BackendClient,
    actor: Actor,
    *,
    client_id: str | None,
    symbol: str | None,
    keep_orders: bool,
    dry_run: bool,
) -> tuple[list[Leg], list[dict]]:
    if client_id is not None:
        policy.check_scope(actor.role, actor.client_ids, client_id)
    else:
        policy.check_can_act(actor.role)
    instruments = {(i.exchange.value, i.symbol): i for i in await c.instruments()}
    if symbol is not None:
        symbol = symbol.upper()
        if symbol not in {s for _, s in instruments}:
            raise Refusal(
                "unknown_symbol",
                f"no instrument {symbol!r}{policy.suggest(symbol, sorted({s for _, s in instruments}))}",
            )
    legs = split_legs(
        position_legs(
            await c.positions(client_id), client_id=client_id, symbol=symbol, in_scope=actor.in_scope
        ),
        instruments,
    )
    orders = (
        []
        if keep_orders
        else [
            o
            for o in await c.orders(client_id)
            if o.status in OPEN_STATUSES
            and actor.in_scope(o.client_id)
            and (symbol is None or o.symbol == symbol)
        ]
    )
    if dry_run:
        for leg in legs:
            leg.outcome = "dry_run"
        return legs, [
            {
                "order_id": o.order_id,
                "client_order_id": o.client_order_id,
                "client_id": o.client_id,
                "symbol": o.symbol,
                "outcome": "dry_run",
            }
            for o in orders
        ]
    cancels = await _cancel_all(c, orders)
    ids = journal.allocate_ids(store, actor.trading_date, len(legs)) if legs else []
    down = None  # main stopped answering: the legs after that one are not sent at all
    for leg, coid in zip(legs, ids, strict=True):
        leg.client_order_id = coid
        if down is not None:  # (a hung main would cost a timeout per leg, and each answer is the same)
            leg.outcome, leg.reason = (
                "not_sent",
                (
                    f"not sent: main stopped answering ({down.kind}); square off "
                    f"again (with main down it is journaled and replayed)"
                ),
            )
            continue
        req = wire.OrderRequest(
            client_order_id=coid,
            client_id=leg.client_id,
            exchange=wire.Exchange(leg.exchange),  # a leg holds the stored strings; the request its enums
            symbol=leg.symbol,
            side=wire.Side(leg.side),
            quantity=leg.quantity,
            product=wire.Product(leg.product),
            order_type=wire.OrderType.MARKET,
            validity=wire.Validity.DAY,
        )
        try:
            order = (await c.place_order(req)).order
            leg.order_id = order.order_id
            leg.outcome = (
                "rejected" if order.status is wire.OrderStatus.REJECTED else order.status.value.lower()
            )
            leg.reason = order.status_reason if order.status is wire.OrderStatus.REJECTED else None
        except (be.Rejected, be.Forbidden, be.IdempotencyConflict) as exc:
            leg.outcome, leg.reason = "rejected", exc.message
        except be.ProtocolError as exc:  # main answered, unreadably: it may have taken the order
            down = be.Unavailable(exc.message, kind="protocol", sent=True)
            leg.outcome, leg.reason = (
                "unknown",
                ("main's answer was unreadable; look it up by client_order_id"),
            )
        except be.Unavailable as exc:
            down = exc
            if exc.sent:
                leg.outcome, leg.reason = (
                    "unknown",
                    (f"main stopped answering ({exc.kind}); look it up by client_order_id"),
                )
            else:  # refused before the request went out: it surely did not reach main
                leg.outcome, leg.reason = (
                    "not_sent",
                    (
                        f"not sent: main is unavailable ({exc.kind}); square off "
                        f"again (with main down it is journaled and replayed)"
                    ),
                )
    _audit(
        store,
        actor,
        "square_off",
        {
            "scope": client_id or "all",
            "symbol": symbol,
            "keep_orders": keep_orders,
            "legs": len(legs),
            "cancels": len(cancels),
            "client_order_ids": [leg.client_order_id for leg in legs[:50]],
        },
    )
    return legs, cancels


async def killswitch(store, c: BackendClient, actor: Actor) -> list[dict]:
    policy.check_can_act(actor.role)
    set_killswitch(store, actor, True, mode=actor.mode)
    orders = [o for o in await c.orders() if o.status in OPEN_STATUSES and actor.in_scope(o.client_id)]
    return await _cancel_all(c, orders)


def set_killswitch(store, actor: Actor, on: bool, *, mode: str) -> None:
    with store.write() as s:
        trading_store.set_killswitch(s, on=on, by=actor.user_id, at=clock.utcnow())
        audit.append(
            s,
            user_id=actor.user_id,
            mode=mode,
            action="killswitch_on" if on else "killswitch_off",
            payload={},
        )
