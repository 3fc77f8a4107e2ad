"""Backup-mode policy and local risk checks: what the console may accept on its own.

Why: with the main system down nothing checks an order but this module, so it
applies the exchanges' outage-facility rule (reduce-only: square off, cancel,
modify downwards) plus the pre-trade checks main would make from the BOD
reference data and limits (the order-shape rules from their one definition with
main's, contract.ordershape).  Pure functions over plain values: no store, no
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
* A client in square-off mode after an MTM-loss breach (sync.rms.limits) may only reduce
  its position, in every mode (``check_mtm_squareoff``).
* MODIFY in backup: quantity may only go down (and stay above what has filled);
  side/product never change; a price change is allowed only on a reducing order
  (it can change when the exposure goes away, never how much there is).  The order
  as the MODIFY (after those already journaled) leaves it must pass the shape rules.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from dataclasses import dataclass, replace
from decimal import Decimal

from contract import ordershape
from contract.enums import OrderType, Side
from contract.ordershape import Shape


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


def check_scope(role: str, client_ids: Collection[str], client_id: str) -> None:
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


def check_shape(order, inst) -> None:
    """The order-shape rules main applies, from their one definition
    (contract.ordershape), refused with main's code and message."""
    try:
        ordershape.check(order, inst)
    except ordershape.Reject as r:
        raise Refusal(r.code, r.message) from None


def check_ticket_shape(
    t: OrderTicket, inst, *, validity: str = "DAY", disclosed_quantity: int | None = None
) -> None:
    """A new order's shape on its instrument (inst: InstrumentRow or a row with its names)."""
    check_shape(
        Shape(
            t.exchange,
            t.symbol,
            t.side,
            t.quantity,
            t.product,
            t.order_type,
            t.price,
            t.trigger_price,
            validity,
            disclosed_quantity,
        ),
        inst,
    )


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
    return (
        f"quantity {quantity} is more than what is left to reduce "
        f"({reducible(net, journaled_reducing)} of {abs(net)}; the rest is already journaled)"
    )


def check_exposure(
    t: OrderTicket, *, net: int, journaled_reducing: int, policy: PolicyView, backup: bool
) -> bool:
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


@dataclass(frozen=True)
class SquareoffMode:
    """A client in square-off mode today: its MTM loss reached its limit (sync.rms.limits)."""

    client_id: str
    mtm: Decimal | None  # the MTM the breach was recorded at
    max_mtm_loss: Decimal | None


def check_mtm_squareoff(
    t: OrderTicket, *, net: int, journaled_reducing: int, state: SquareoffMode | None
) -> None:
    """A client in square-off mode (its MTM loss reached its limit) may only reduce its
    position, in every mode: anything else is refused with the client, its MTM and limit."""
    if state is None or is_reducing(t.side, t.quantity, net, journaled_reducing):
        return
    why = exposure_reason(t.side, t.quantity, net, journaled_reducing)
    mtm = "unknown" if state.mtm is None else f"{state.mtm:,.2f}"
    limit = "unknown" if state.max_mtm_loss is None else f"{state.max_mtm_loss:,.2f}"
    raise Refusal(
        "mtm_squareoff_mode",
        f"client {state.client_id} is in square-off mode: its MTM loss reached its limit "
        f"(MTM {mtm} against an MTM-loss limit of {limit}); only orders that reduce its position "
        f"are accepted, and this one does not: {why}",
    )


def check_order_value(t: OrderTicket, inst, max_order_value: Decimal | None, reducing: bool) -> None:
    if reducing or max_order_value is None:
        return
    value = t.quantity * (t.price if t.price else inst.last_price)
    if value > max_order_value:
        raise Refusal(
            "order_value_limit", f"order value {value:.2f} is above the client's limit {max_order_value}"
        )


# --------------------------------------------------------------------------- modify


def check_modify_down(
    order, *, quantity: int | None, price: Decimal | None, trigger_price: Decimal | None, net: int
) -> None:
    """Backup mode's own rules for a MODIFY of an open order (``order``: desk.Target, as
    the journal leaves it); the resulting order's shape is checked apart (``modified``)."""
    if quantity is None and price is None and trigger_price is None:
        raise Refusal("invalid_request", "nothing to change: give --quantity, --price or --trigger")
    if quantity is not None:
        if quantity <= 0:
            raise Refusal("invalid_quantity", "quantity must be greater than zero")
        if quantity > order.quantity:
            raise Refusal(
                "modify_up",
                f"backup mode allows modifying downwards only: quantity {quantity} is "
                f"above the order's {order.quantity}",
            )
        if quantity <= order.filled_quantity:
            raise Refusal(
                "invalid_quantity",
                f"quantity {quantity} is not above what has filled "
                f"({order.filled_quantity}); cancel the order instead",
            )
    if price is not None or trigger_price is not None:
        remaining = (quantity or order.quantity) - order.filled_quantity
        if not is_reducing(order.side, remaining, net, 0):
            raise Refusal(
                "reduce_only", "backup mode allows a price change only on an order that reduces the position"
            )


def modified(
    shape: Shape,
    *,
    quantity: int | None = None,
    price: Decimal | None = None,
    trigger_price: Decimal | None = None,
) -> Shape:
    """The order as a MODIFY leaves it: the given fields change, as main merges them."""
    return replace(
        shape,
        quantity=shape.quantity if quantity is None else quantity,
        price=shape.price if price is None else price,
        trigger_price=shape.trigger_price if trigger_price is None else trigger_price,
    )
