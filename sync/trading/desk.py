"""Backup-mode actions: check locally, then journal durably.

Why: in BACKUP (and RECOVERING, where new actions queue behind the replay) the
console is the only line of defence, so every action is checked against the
local book (BOD + live mirror), the journal's unfinished intents and the policy
*inside* the journal's write transaction (BEGIN IMMEDIATE): two consoles or two
CLI processes cannot both spend the same "reducible" quantity.  The checks read
with Core statements on that transaction's Connection (a PLACE reads everything
but the journal in one statement): an action costs about a millisecond, not tens.  A refusal raises
``policy.Refusal`` and nothing is written.

A PLACE, and the order a MODIFY leaves (after the MODIFYs already journaled for it),
must pass main's own shape rules (contract.ordershape, one definition for
both): what is journaled here is what main accepts on replay, risk limits aside.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from contract import clock
from contract.enums import OPEN_STATUSES, Exchange, OrderType, Product, Side, value_of
from contract.ordershape import Shape
from localstore import rms_store, trading_store
from localstore.core_tables import KIND_CANCEL, KIND_MODIFY, KIND_PLACE, KIND_SQUARE_OFF
from sync.trading import journal, policy
from sync.trading.journal import Intent, Receipt
from sync.trading.policy import OrderTicket, Refusal
from sync.trading.squareoff import Leg, check_legs, position_legs


@dataclass(frozen=True)
class Actor:
    """Who acts: from the signed grant (backup) or the main system's session (online)."""

    user_id: str
    role: str
    client_ids: frozenset[str]
    trading_date: date
    mode: str = "ONLINE"  # an online actor's mode: ONLINE (main) or DR (the DR site takes the actions)

    def in_scope(self, client_id: str) -> bool:
        return self.role == "supervisor" or client_id in self.client_ids


# --------------------------------------------------------------------------- lookups
# On the write Connection of the journal's transaction (the SQL: localstore.trading_store).

_PRODUCTS = frozenset(p.value for p in Product)


def known_client(s, client_id: str) -> None:
    if not trading_store.client_known(s, client_id):
        _unknown_client(s, client_id)


def _unknown_client(s, client_id: str):
    known = trading_store.client_ids(s)
    raise Refusal("unknown_client", f"unknown client {client_id!r}{policy.suggest(client_id, known)}")


def _exchange(exchange: str) -> Exchange:
    try:
        return Exchange(exchange)
    except ValueError:
        raise Refusal("unknown_exchange", f"unknown exchange {exchange!r} (NSE, BSE or NFO)") from None


def _unknown_symbol(s, exch: Exchange, symbol: str):
    known = trading_store.symbols(s, exch)
    raise Refusal(
        "unknown_symbol", f"no instrument {symbol!r} on {exch.value}{policy.suggest(symbol, known)}"
    )


def instrument(s, exchange: str, symbol: str):
    """The instrument's reference data (a row with InstrumentRow's attribute names)."""
    exch = _exchange(exchange)
    inst = trading_store.instrument(s, exch, symbol.upper())
    if inst is None:
        _unknown_symbol(s, exch, symbol)
    return inst


def net_of(s, client_id, exchange, symbol, product) -> int:
    return trading_store.net_quantity(s, client_id, exchange, symbol, product)


def place_facts(s, t: OrderTicket):
    """Everything a PLACE check reads from the book, in ONE statement: the instrument
    (with InstrumentRow's attribute names), whether the client is known, its
    order-value limit, the position's net quantity and the policy.  Refuses an unknown
    client, exchange or symbol (in that order)."""
    try:
        exch = Exchange(t.exchange)
    except ValueError:
        known_client(s, t.client_id)
        raise Refusal("unknown_exchange", f"unknown exchange {t.exchange!r} (NSE, BSE or NFO)") from None
    product = (
        Product(t.product) if t.product in _PRODUCTS else None
    )  # a bad one is refused by the shape check
    row = trading_store.place_facts(s, t.client_id, exch, t.symbol.upper(), product)
    if row is None:  # the policy row is made by the migrations: a store without it is damaged
        raise RuntimeError("the local store has no policy row")
    if row.known_client is None:
        _unknown_client(s, t.client_id)
    if row.symbol is None:
        _unknown_symbol(s, exch, t.symbol)
    return row


def squareoff_mode(s, actor: Actor, client_id: str) -> policy.SquareoffMode | None:
    """The client's square-off mode today (an MTM-loss breach, sync.rms.limits), or None."""
    row = rms_store.squareoff_mode_of(s, actor.trading_date, client_id)
    return None if row is None else policy.SquareoffMode(row.client_id, row.mtm, row.max_mtm_loss)


# --------------------------------------------------------------------------- actions


def place(
    store,
    actor: Actor,
    t: OrderTicket,
    *,
    mode: str,
    validity: str = "DAY",
    disclosed_quantity: int | None = None,
) -> Receipt:
    policy.check_scope(actor.role, actor.client_ids, t.client_id)

    def build(s):
        facts = place_facts(s, t)  # also the instrument (InstrumentRow's attribute names)
        policy.check_ticket_shape(t, facts, validity=validity, disclosed_quantity=disclosed_quantity)
        net = facts.net_quantity or 0
        journaled = journal.position_reduced(
            s, (t.client_id, facts.exchange, facts.symbol, Product(t.product)), net
        )
        policy.check_mtm_squareoff(
            t, net=net, journaled_reducing=journaled, state=squareoff_mode(s, actor, t.client_id)
        )
        reducing = policy.check_exposure(
            t,
            net=net,
            journaled_reducing=journaled,
            policy=policy.PolicyView(bool(facts.allow_new_exposure), bool(facts.killswitch)),
            backup=True,
        )
        policy.check_order_value(t, facts, facts.max_order_value, reducing)
        return [
            Intent(
                KIND_PLACE,
                t.client_id,
                facts.exchange,
                facts.symbol,
                Product(t.product),
                payload={
                    "side": t.side.value,
                    "quantity": t.quantity,
                    "order_type": t.order_type.value,
                    "price": t.price,
                    "trigger_price": t.trigger_price,
                    "validity": validity,
                    "disclosed_quantity": disclosed_quantity,
                    "reducing": reducing,
                    "net_at_intent": net,
                },
            )
        ]

    return journal.write(
        store,
        build,
        user_id=actor.user_id,
        mode=mode,
        trading_date=actor.trading_date,
        audit_action="order_place",
    )[0]


@dataclass
class Target:
    """An order to modify or cancel: a main order in the mirror, or a journaled PLACE."""

    client_id: str
    exchange: str
    symbol: str
    product: str
    side: Side
    quantity: int
    filled_quantity: int
    order_id: str | None
    client_order_id: str
    journaled: bool
    shape: Shape  # the whole order as main would judge a change of it (contract.ordershape)


def _money(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))  # journal payloads hold prices as text


def _mirror_target(r) -> Target:
    return Target(
        r.client_id,
        r.exchange.value,
        r.symbol,
        r.product.value,
        r.side,
        r.quantity,
        r.filled_quantity,
        r.order_id,
        r.client_order_id,
        False,
        Shape(
            r.exchange,
            r.symbol,
            r.side,
            r.quantity,
            r.product,
            r.order_type,
            r.price,
            r.trigger_price,
            r.validity,
            r.disclosed_quantity,
        ),
    )


def _journaled_target(e: dict) -> Target:
    p = e["payload"]
    side, quantity = Side(p["side"]), int(p["quantity"])
    exchange, product = str(value_of(e["exchange"])), str(value_of(e["product"]))  # a PLACE has both
    return Target(
        e["client_id"],
        exchange,
        e["symbol"],
        product,
        side,
        quantity,
        0,
        None,
        e["client_order_id"],
        True,
        Shape(
            exchange,
            e["symbol"],
            side,
            quantity,
            product,
            OrderType(p["order_type"]),
            _money(p.get("price")),
            _money(p.get("trigger_price")),
            p.get("validity") or "DAY",
            p.get("disclosed_quantity"),
        ),
    )


def resolve(s, *, order_id: str | None, client_order_id: str | None) -> Target:
    row = trading_store.order(s, order_id=order_id, client_order_id=client_order_id)
    if row is not None:
        if row.status not in OPEN_STATUSES:
            raise Refusal("order_not_open", f"order {row.order_id} is {row.status.value}, not open")
        return _mirror_target(row)
    if client_order_id:
        for e in journal.unfinished_for(s):
            if e["client_order_id"] == client_order_id and e["kind"] == KIND_PLACE:
                return _journaled_target(e)
    which = f"order id {order_id}" if order_id else f"client order id {client_order_id}"
    raise Refusal("unknown_order", f"no open order with {which} in the local book or the journal")


def target_intent(kind: str, tgt: Target, payload: dict) -> Intent:
    return Intent(
        kind,
        tgt.client_id,
        Exchange(tgt.exchange),
        tgt.symbol,
        Product(tgt.product),
        target_order_id=tgt.order_id,
        target_client_order_id=None if tgt.order_id else tgt.client_order_id,
        payload=payload,
    )


def _cancelled_targets(unfinished: list[dict]) -> set[str]:
    return {
        e["target_order_id"] or e["target_client_order_id"] for e in unfinished if e["kind"] == KIND_CANCEL
    }


def _as_journaled(tgt: Target, unfinished: list[dict]) -> Target:
    """The order as the MODIFYs already journaled for it leave it (main gets them first on replay)."""
    key = tgt.order_id or tgt.client_order_id
    shape = tgt.shape
    for e in unfinished:
        if e["kind"] == KIND_MODIFY and (e["target_order_id"] or e["target_client_order_id"]) == key:
            p = e["payload"]
            shape = policy.modified(
                shape,
                quantity=p.get("quantity"),
                price=_money(p.get("price")),
                trigger_price=_money(p.get("trigger_price")),
            )
    return replace(tgt, quantity=shape.quantity, shape=shape)


def modify(
    store,
    actor: Actor,
    *,
    order_id: str | None,
    client_order_id: str | None,
    quantity: int | None,
    price: Decimal | None,
    trigger_price: Decimal | None,
    mode: str,
) -> Receipt:
    def build(s):
        tgt = resolve(s, order_id=order_id, client_order_id=client_order_id)
        policy.check_scope(actor.role, actor.client_ids, tgt.client_id)
        unfinished = journal.unfinished_for(s, [tgt.client_id])
        if (tgt.order_id or tgt.client_order_id) in _cancelled_targets(unfinished):
            raise Refusal("order_not_open", "a cancel of this order is already journaled")
        tgt = _as_journaled(tgt, unfinished)
        inst = instrument(s, tgt.exchange, tgt.symbol)
        net = net_of(s, tgt.client_id, tgt.exchange, tgt.symbol, tgt.product)
        policy.check_modify_down(tgt, quantity=quantity, price=price, trigger_price=trigger_price, net=net)
        # what main will judge on replay: the whole order as this change leaves it
        policy.check_shape(
            policy.modified(tgt.shape, quantity=quantity, price=price, trigger_price=trigger_price), inst
        )
        return [
            target_intent(
                KIND_MODIFY, tgt, {"quantity": quantity, "price": price, "trigger_price": trigger_price}
            )
        ]

    return journal.write(
        store,
        build,
        user_id=actor.user_id,
        mode=mode,
        trading_date=actor.trading_date,
        audit_action="order_modify",
    )[0]


def cancel(store, actor: Actor, *, order_id: str | None, client_order_id: str | None, mode: str) -> Receipt:
    policy.check_can_act(actor.role)

    def build(s):
        tgt = resolve(s, order_id=order_id, client_order_id=client_order_id)
        policy.check_scope(actor.role, actor.client_ids, tgt.client_id)
        if (tgt.order_id or tgt.client_order_id) in _cancelled_targets(
            journal.unfinished_for(s, [tgt.client_id])
        ):
            raise Refusal("order_not_open", "a cancel of this order is already journaled")
        return [target_intent(KIND_CANCEL, tgt, {"reason": "dealer cancel"})]

    return journal.write(
        store,
        build,
        user_id=actor.user_id,
        mode=mode,
        trading_date=actor.trading_date,
        audit_action="order_cancel",
    )[0]


def open_orders_in_scope(s, actor: Actor, client_id: str | None, symbol: str | None = None) -> list[Target]:
    """Open mirror orders and journaled PLACEs of the scope that no journaled CANCEL targets yet."""
    unfinished = journal.unfinished_for(s, [client_id] if client_id else None)
    done = _cancelled_targets(unfinished)
    out = []
    for r in trading_store.open_orders(s, client_id):
        if actor.in_scope(r.client_id) and r.order_id not in done and (symbol is None or r.symbol == symbol):
            out.append(_mirror_target(r))
    for e in unfinished:
        if (
            e["kind"] == KIND_PLACE
            and e["client_order_id"] not in done
            and actor.in_scope(e["client_id"])
            and (symbol is None or e["symbol"] == symbol)
            and e["payload"].get("order_type") != OrderType.MARKET.value
        ):
            out.append(_journaled_target(e))
    return out


def squareoff_plan(
    s, actor: Actor, *, client_id: str | None, symbol: str | None, keep_orders: bool
) -> tuple[list[Leg], list[Target]]:
    if client_id is not None:
        known_client(s, client_id)
        policy.check_scope(actor.role, actor.client_ids, client_id)
    else:
        policy.check_can_act(actor.role)
    if symbol is not None:
        symbol = symbol.upper()
        if not trading_store.symbol_known(s, symbol):
            known = trading_store.symbols(s)
            raise Refusal("unknown_symbol", f"no instrument {symbol!r}{policy.suggest(symbol, known)}")
    rows = trading_store.open_positions(s, client_id)
    legs = position_legs(rows, client_id=client_id, symbol=symbol, in_scope=actor.in_scope)
    if legs:  # a position beyond any instrument's limits is refused before anything is journaled
        check_legs(
            legs,
            {(value_of(i.exchange), i.symbol): i for i in trading_store.instrument_limits(s)},
        )
    cancels = [] if keep_orders else open_orders_in_scope(s, actor, client_id, symbol)
    return legs, cancels


def squareoff(
    store,
    actor: Actor,
    *,
    client_id: str | None,
    symbol: str | None,
    keep_orders: bool,
    mode: str,
    dry_run: bool = False,
) -> tuple[list[Leg], list[Target], list[Receipt]]:
    """Journal CANCELs of the scope's open orders, then one SQUARE_OFF per position: ONE
    transaction.  Dry run: the same plan, nothing written."""
    plan: dict = {}

    def build(s):
        legs, cancels = squareoff_plan(s, actor, client_id=client_id, symbol=symbol, keep_orders=keep_orders)
        plan["legs"], plan["cancels"] = legs, cancels
        intents = [target_intent(KIND_CANCEL, t, {"reason": "square-off"}) for t in cancels]
        intents += [
            Intent(
                KIND_SQUARE_OFF,
                leg.client_id,
                leg.exchange,  # the stored strings (the column takes a member or its value alike)
                leg.symbol,
                leg.product,
                payload={"flatten": True, "side_at_intent": leg.side, "quantity_at_intent": leg.quantity},
            )
            for leg in legs
        ]
        return intents

    if dry_run:
        with store.read_core() as conn:
            build(conn)
        for leg in plan["legs"]:
            leg.outcome = "dry_run"
        return plan["legs"], plan["cancels"], []
    receipts = journal.write(
        store,
        build,
        user_id=actor.user_id,
        mode=mode,
        trading_date=actor.trading_date,
        audit_action="square_off",
        audit_payload={"scope": client_id or "all", "symbol": symbol, "keep_orders": keep_orders},
    )
    legs, cancels = plan["legs"], plan["cancels"]
    for leg, r in zip(legs, receipts[len(cancels) :], strict=False):
        leg.client_order_id, leg.outcome = r.client_order_id, "journaled"
    return legs, cancels, receipts


def killswitch(store, actor: Actor, *, mode: str) -> tuple[list[Target], list[Receipt]]:
    """Kill switch on (blocks new exposure in every mode) and CANCEL of every open order
    in scope: one transaction."""
    policy.check_can_act(actor.role)
    plan: dict = {}

    def build(s):
        trading_store.set_killswitch(s, by=actor.user_id, at=clock.utcnow())
        plan["cancels"] = cancels = open_orders_in_scope(s, actor, None)
        intents = [target_intent(KIND_CANCEL, t, {"reason": "kill switch"}) for t in cancels]
        if not intents:
            from localstore import audit

            audit.append_core(
                s, user_id=actor.user_id, mode=mode, action="killswitch_on", payload={"cancels": 0}
            )
        return intents

    receipts = journal.write(
        store,
        build,
        user_id=actor.user_id,
        mode=mode,
        trading_date=actor.trading_date,
        audit_action="killswitch_on",
    )
    return plan["cancels"], receipts
