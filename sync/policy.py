"""Backup-mode policy and local risk checks: what the console may accept on its own.

Why: with the main system down nothing checks an order but this module, so it
applies the exchanges' outage-facility rule (reduce-only: square off, cancel,
modify downwards) plus the pre-trade checks main would make from the BOD
reference data and limits.  Pure functions over plain values: no store, no
network, so every rule is exact to test.  Each refusal is a ``Refusal`` with a
reason code (the same codes as main's rejects where one exists) and a sentence.

Rules (documented choices):

* An order is *reducing* when it is on the opposite side of the position and its
  quantity is at most ``|net|`` minus the quantity already journaled to reduce that
  position (pending PLACEs on the reducing side; a pending SQUARE_OFF takes all).
  Anything else (same side, larger, or no position) adds exposure.
* New exposure is refused in BACKUP/RECOVERING unless ``allow_new_exposure``; the
  kill switch refuses it in every mode.
* The order-value limit is skipped for reducing orders (as mainsim does).
* MODIFY in backup: quantity may only go down (and stay above what has filled);
  side/product never change; a price change is allowed only on a reducing order
  (it can change when the exposure goes away, never how much there is).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from decimal import Decimal

from backend_client.enums import PRODUCTS_BY_EXCHANGE, OrderType, Side


class Refusal(Exception):
    """An action refused locally; ``code`` is machine-readable, ``message`` for a person."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PolicyView:
    allow_new_exposure: bool
    killswitch: bool


@dataclass(frozen=True)
class OrderTicket:
    client_id: str
    exchange: str
    symbol: str
    side: Side
    quantity: int
    product: str
    order_type: OrderType
    price: Decimal | None = None
    trigger_price: Decimal | None = None


# --------------------------------------------------------------------------- scope, reference data


def check_scope(role: str, client_ids: list[str] | set[str], client_id: str) -> None:
    if role == "viewer":
        raise Refusal("read_only", "a viewer cannot trade")
    if role != "supervisor" and client_id not in set(client_ids):
        raise Refusal("out_of_scope", f"client {client_id} is not in your scope")


def check_can_act(role: str) -> None:
    if role == "viewer":
        raise Refusal("read_only", "a viewer cannot trade")


def check_supervisor(role: str, what: str) -> None:
    if role != "supervisor":
        raise Refusal("supervisor_only", f"only a supervisor can {what}")


def suggest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word.upper(), known, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def check_ticket_shape(t: OrderTicket, inst) -> None:
    """Quantity, lot, freeze, product, price/trigger presence, tick and band (inst: InstrumentRow)."""
    if t.quantity <= 0:
        raise Refusal("invalid_quantity", "quantity must be greater than zero")
    if t.product not in {p.value for p in PRODUCTS_BY_EXCHANGE[inst.exchange]}:
        raise Refusal("product_exchange", f"product {t.product} is not allowed on {inst.exchange.value}")
    if t.quantity % inst.lot_size:
        raise Refusal("lot_size", f"quantity {t.quantity} is not a multiple of the lot size {inst.lot_size}")
    if t.quantity > inst.freeze_quantity:
        raise Refusal("freeze_quantity", f"quantity {t.quantity} is above the freeze quantity {inst.freeze_quantity}")
    needs_price = t.order_type in (OrderType.LIMIT, OrderType.SL)
    needs_trigger = t.order_type in (OrderType.SL, OrderType.SL_M)
    if needs_price and t.price is None:
        raise Refusal("price_required", f"a {t.order_type.value} order needs --price")
    if not needs_price and t.price not in (None, 0):
        raise Refusal("invalid_request", f"a {t.order_type.value} order takes no price")
    if needs_trigger and t.trigger_price is None:
        raise Refusal("trigger_required", f"a {t.order_type.value} order needs --trigger")
    if not needs_trigger and t.trigger_price not in (None, 0):
        raise Refusal("invalid_request", f"a {t.order_type.value} order takes no trigger price")
    if needs_price:
        check_price(t.price, inst, "price")
    if needs_trigger:
        check_price(t.trigger_price, inst, "trigger price")


def check_price(value: Decimal, inst, what: str = "price") -> None:
    if not inst.lower_band <= value <= inst.upper_band:
        raise Refusal("price_band", f"{what} {value} is outside today's band {inst.lower_band}-{inst.upper_band} "
                                    f"for {inst.symbol}")
    if (value / inst.tick_size) % 1 != 0:
        raise Refusal("tick_size", f"{what} {value} is not a multiple of the tick size {inst.tick_size}")


# --------------------------------------------------------------------------- exposure


def reducible(net: int, journaled_reducing: int) -> int:
    """How much of the position is still there to reduce after what is already journaled."""
    return max(0, abs(net) - journaled_reducing)


def is_reducing(side: Side, quantity: int, net: int, journaled_reducing: int) -> bool:
    if net == 0:
        return False
    opposite = (side is Side.SELL) if net > 0 else (side is Side.BUY)
    return opposite and quantity <= reducible(net, journaled_reducing)


def exposure_reason(side: Side, quantity: int, net: int, journaled_reducing: int) -> str:
    if net == 0:
        return "there is no position to reduce (a new position)"
    if (net > 0 and side is Side.BUY) or (net < 0 and side is Side.SELL):
        return f"it is on the same side as the position ({net:+d})"
    return (f"quantity {quantity} is more than what is left to reduce "
            f"({reducible(net, journaled_reducing)} of {abs(net)}; the rest is already journaled)")


def check_exposure(t: OrderTicket, *, net: int, journaled_reducing: int, policy: PolicyView, backup: bool) -> bool:
    """Refuse new exposure under the kill switch (any mode) or in backup unless allowed.
    Returns whether the order is reducing."""
    reducing = is_reducing(t.side, t.quantity, net, journaled_reducing)
    if reducing:
        return True
    why = exposure_reason(t.side, t.quantity, net, journaled_reducing)
    if policy.killswitch:
        raise Refusal("killswitch", f"the kill switch is on: new exposure is blocked ({why})")
    if backup and not policy.allow_new_exposure:
        raise Refusal("reduce_only", f"backup mode is reduce-only and this order adds exposure: {why}")
    return False


def check_order_value(t: OrderTicket, inst, max_order_value: Decimal | None, reducing: bool) -> None:
    if reducing or max_order_value is None:
        return
    value = t.quantity * (t.price if t.price else inst.last_price)
    if value > max_order_value:
        raise Refusal("order_value_limit", f"order value {value:.2f} is above the client's limit {max_order_value}")


# --------------------------------------------------------------------------- modify


def check_modify_down(order, *, quantity: int | None, price: Decimal | None, trigger_price: Decimal | None,
                      net: int, inst) -> None:
    """Backup-mode MODIFY of an open order (``order``: OrderRow or wire.Order)."""
    if quantity is None and price is None and trigger_price is None:
        raise Refusal("invalid_request", "nothing to change: give --quantity, --price or --trigger")
    if quantity is not None:
        if quantity <= 0:
            raise Refusal("invalid_quantity", "quantity must be greater than zero")
        if quantity > order.quantity:
            raise Refusal("modify_up", f"backup mode allows modifying downwards only: quantity {quantity} is "
                                       f"above the order's {order.quantity}")
        if quantity <= order.filled_quantity:
            raise Refusal("invalid_quantity", f"quantity {quantity} is not above what has filled "
                                              f"({order.filled_quantity}); cancel the order instead")
        if inst is not None and quantity % inst.lot_size:
            raise Refusal("lot_size", f"quantity {quantity} is not a multiple of the lot size {inst.lot_size}")
    if price is not None or trigger_price is not None:
        remaining = (quantity or order.quantity) - order.filled_quantity
        if not is_reducing(order.side, remaining, net, 0):
            raise Refusal("reduce_only", "backup mode allows a price change only on an order that reduces "
                                         "the position")
        if inst is not None:
            if price is not None:
                check_price(price, inst, "price")
            if trigger_price is not None:
                check_price(trigger_price, inst, "trigger price")
