"""Pre-trade checks of a new or modified order, each with the reject code a
dealer's terminal shows (wire.REJECT_CODES).  Pure functions: no state changes.

Order of checks matters for hostile input: quantities are bounded first and
prices are compared with the band before any Decimal arithmetic on them.
"""

from __future__ import annotations

from decimal import Decimal

from backend_client import wire
from backend_client.wire import OrderType, Side


class Reject(Exception):
    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def _check_price(value: Decimal, inst: wire.Instrument, field: str) -> None:
    if not inst.lower_band <= value <= inst.upper_band:
        raise Reject("price_band", f"{field} {value} is outside today's band {inst.lower_band}-{inst.upper_band} "
                                   f"for {inst.symbol}.", field)
    if (value / inst.tick_size) % 1 != 0:
        raise Reject("tick_size", f"{field} {value} is not a multiple of the tick size {inst.tick_size}.", field)


def check_shape(req: wire.OrderRequest, inst: wire.Instrument | None) -> wire.Instrument:
    """Everything that depends only on the order and its instrument."""
    if inst is None:
        raise Reject("unknown_symbol", f"No instrument {req.symbol} on {req.exchange.value}.", "symbol")
    if req.product not in wire.PRODUCTS_BY_EXCHANGE[req.exchange]:
        raise Reject("product_exchange", f"Product {req.product.value} is not allowed on {req.exchange.value}.",
                     "product")
    if req.quantity <= 0:
        raise Reject("invalid_quantity", "Quantity must be greater than zero.", "quantity")
    if req.quantity % inst.lot_size:
        raise Reject("lot_size", f"Quantity {req.quantity} is not a multiple of the lot size {inst.lot_size}.",
                     "quantity")
    if req.quantity > inst.freeze_quantity:
        raise Reject("freeze_quantity", f"Quantity {req.quantity} is above the freeze quantity "
                                        f"{inst.freeze_quantity}.", "quantity")
    dq = req.disclosed_quantity
    if dq is not None and (dq < 0 or dq > req.quantity):
        raise Reject("disclosed_quantity", "Disclosed quantity must be between 0 and the order quantity.",
                     "disclosed_quantity")
    needs_price = req.order_type in (OrderType.LIMIT, OrderType.SL)
    needs_trigger = req.order_type in (OrderType.SL, OrderType.SL_M)
    if needs_price and req.price is None:
        raise Reject("price_required", f"A {req.order_type.value} order needs a price.", "price")
    if not needs_price and req.price not in (None, 0):
        raise Reject("invalid_request", f"A {req.order_type.value} order takes no price.", "price")
    if needs_trigger and req.trigger_price is None:
        raise Reject("trigger_required", f"A {req.order_type.value} order needs a trigger price.", "trigger_price")
    if not needs_trigger and req.trigger_price not in (None, 0):
        raise Reject("invalid_request", f"A {req.order_type.value} order takes no trigger price.", "trigger_price")
    if needs_price:
        _check_price(req.price, inst, "price")
    if needs_trigger:
        _check_price(req.trigger_price, inst, "trigger_price")
    if req.order_type is OrderType.SL:
        if req.side is Side.BUY and req.price < req.trigger_price:
            raise Reject("invalid_request", "A buy stop-loss needs price >= trigger price.", "price")
        if req.side is Side.SELL and req.price > req.trigger_price:
            raise Reject("invalid_request", "A sell stop-loss needs price <= trigger price.", "price")
    return inst


def check_limits(req: wire.OrderRequest, inst: wire.Instrument, limit: wire.ClientLimit | None,
                 positions: list[wire.Position], last_price_of) -> None:
    """Risk checks.  An order that only reduces its position (a square-off) skips the
    order-value check, and exposure is only refused when the order increases it."""
    if limit is None:
        return
    key = (req.exchange, req.symbol, req.product)
    signed = req.quantity if req.side is Side.BUY else -req.quantity
    current_net = next((p.net_quantity for p in positions if (p.exchange, p.symbol, p.product) == key), 0)
    reducing = current_net != 0 and (signed > 0) != (current_net > 0) and abs(signed) <= abs(current_net)
    ref_price = req.price if req.price else inst.last_price
    value = req.quantity * ref_price
    if not reducing and value > limit.max_order_value:
        raise Reject("order_value_limit", f"Order value {value:.2f} is above the client's limit "
                                          f"{limit.max_order_value}.", "quantity")
    before = sum(abs(p.net_quantity) * last_price_of(p) for p in positions)
    after = before - abs(current_net) * inst.last_price + abs(current_net + signed) * inst.last_price
    if after > before and after > limit.max_gross_exposure:
        raise Reject("exposure_limit", f"Gross exposure after this order ({after:.2f}) would be above the client's "
                                       f"limit {limit.max_gross_exposure}.", "quantity")
