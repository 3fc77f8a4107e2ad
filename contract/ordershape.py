"""The order-shape rules: whether an order is well formed for its instrument, as the
main system judges it.  ONE definition, used by the reference main system
(mainsim.orderchecks) and by the backup desk (sync.trading.policy, sync.trading.desk).

Why one module: with main down the backup desk journals what it accepts, and main
judges it on replay.  When the two sets of rules were written twice they drifted
(the desk journaled ``--quantity 1 --disclosed 1000000``, which main refused on
replay while the same order online was refused at once).  Now a rule changes in one
place for both, and tests/unit/test_order_shape.py holds them to the same verdict.

"Shape" is everything that depends only on the order and its instrument's
reference data (lot, tick, band, freeze quantity, product by exchange, price and
trigger by order type, disclosed quantity, validity); the risk checks (order value,
exposure) depend on a client's limits and positions and stay with each side.

Pure and standard library only (contract.enums, not wire): the backup path
must not import pydantic (bench P3).  ``check`` takes any object with the order's
attributes (a wire.OrderRequest, or ``Shape`` below) and any object with an
instrument's (a wire.Instrument, or a row of the local store).

Order of checks matters for hostile input: quantities are bounded first and prices
are compared with the band before any Decimal arithmetic on them.  The first rule
broken decides the code, so both sides must run the same sequence: this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from contract.enums import PRODUCTS_BY_EXCHANGE, OrderType, Product, Side, Validity

PRICED = frozenset({OrderType.LIMIT, OrderType.SL})  # order types that need a price
TRIGGERED = frozenset({OrderType.SL, OrderType.SL_M})  # order types that need a trigger price


class Reject(Exception):
    """An order main would refuse: ``code`` from wire.REJECT_CODES, ``message`` for a person,
    ``field`` the request field at fault."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


@dataclass(frozen=True)
class Shape:
    """An order's shape where no wire.OrderRequest is at hand (the backup desk)."""

    exchange: object  # Exchange (the instrument's exchange decides the products)
    symbol: str
    side: Side
    quantity: int
    product: Product | str  # text as a flag or a form gave it: check() refuses what is not one
    order_type: OrderType
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    validity: Validity | str = Validity.DAY
    disclosed_quantity: int | None = None


def member(enum: type[Enum], value, field: str):
    """``value`` as a member of ``enum`` (a member or its value), or a Reject as main's
    request validation gives (invalid_request): the backup desk gets these as text."""
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise Reject("invalid_request", f"{field} {value!r} is not one of {allowed}.", field) from None


def shown(value: Decimal) -> str:
    """A price as both sides print it, at least two places and no trailing zeros beyond:
    2900.5 (the wire), 2900.5000 (the store keeps four places) and 2900.50 read "2900.50"."""
    whole, _, frac = format(value, "f").partition(".")
    return f"{whole}.{frac.rstrip('0').ljust(2, '0')}"


def _check_price(value: Decimal, inst, field: str) -> None:
    if not value.is_finite():
        raise Reject("invalid_request", f"{field} {value} is not a number.", field)
    if not inst.lower_band <= value <= inst.upper_band:
        raise Reject(
            "price_band",
            f"{field} {shown(value)} is outside today's band {shown(inst.lower_band)}-"
            f"{shown(inst.upper_band)} for {inst.symbol}.",
            field,
        )
    if (value / inst.tick_size) % 1 != 0:
        raise Reject(
            "tick_size",
            f"{field} {shown(value)} is not a multiple of the tick size {shown(inst.tick_size)}.",
            field,
        )


def check(order, inst) -> None:
    """Raise ``Reject`` for the first shape rule ``order`` breaks on ``inst`` (None: no
    such instrument)."""
    if inst is None:
        exchange = getattr(order.exchange, "value", order.exchange)
        raise Reject("unknown_symbol", f"No instrument {order.symbol} on {exchange}.", "symbol")
    product = member(Product, order.product, "product")
    order_type = member(OrderType, order.order_type, "order_type")
    member(Validity, order.validity, "validity")
    if product not in PRODUCTS_BY_EXCHANGE[inst.exchange]:
        raise Reject(
            "product_exchange", f"Product {product.value} is not allowed on {inst.exchange.value}.", "product"
        )
    qty = order.quantity
    if qty <= 0:
        raise Reject("invalid_quantity", "Quantity must be greater than zero.", "quantity")
    if qty % inst.lot_size:
        raise Reject(
            "lot_size", f"Quantity {qty} is not a multiple of the lot size {inst.lot_size}.", "quantity"
        )
    if qty > inst.freeze_quantity:
        raise Reject(
            "freeze_quantity",
            f"Quantity {qty} is above the freeze quantity {inst.freeze_quantity}.",
            "quantity",
        )
    dq = order.disclosed_quantity
    if dq is not None and not 0 <= dq <= qty:
        raise Reject(
            "disclosed_quantity",
            f"Disclosed quantity {dq} must be between 0 and the order quantity {qty}.",
            "disclosed_quantity",
        )
    price, trigger = order.price, order.trigger_price
    if order_type in PRICED and price is None:
        raise Reject("price_required", f"A {order_type.value} order needs a price.", "price")
    if order_type not in PRICED and price not in (None, 0):
        raise Reject("invalid_request", f"A {order_type.value} order takes no price.", "price")
    if order_type in TRIGGERED and trigger is None:
        raise Reject(
            "trigger_required", f"A {order_type.value} order needs a trigger price.", "trigger_price"
        )
    if order_type not in TRIGGERED and trigger not in (None, 0):
        raise Reject(
            "invalid_request", f"A {order_type.value} order takes no trigger price.", "trigger_price"
        )
    if order_type in PRICED:
        _check_price(price, inst, "price")
    if order_type in TRIGGERED:
        _check_price(trigger, inst, "trigger_price")
    if order_type is OrderType.SL:
        side = member(Side, order.side, "side")
        if side is Side.BUY and price < trigger:
            raise Reject("invalid_request", "A buy stop-loss needs price >= trigger price.", "price")
        if side is Side.SELL and price > trigger:
            raise Reject("invalid_request", "A sell stop-loss needs price <= trigger price.", "price")
