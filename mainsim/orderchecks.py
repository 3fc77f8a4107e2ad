"""Pre-trade checks of a new or modified order, each with the reject code a
dealer's terminal shows (wire.REJECT_CODES).  Pure functions: no state changes.

The shape rules (lot, tick, band, freeze, product, price and trigger by order
type, disclosed quantity, validity) live in contract.ordershape, which the
backup desk applies too, so an order the console journals with main down gets
the verdict main gives it on replay.  The risk checks (order value, exposure) are
main's own and stay here.
"""

from __future__ import annotations

from contract import ordershape, wire
from contract.ordershape import Reject
from contract.wire import Side


def check_shape(req: wire.OrderRequest, inst: wire.Instrument | None) -> wire.Instrument:
    """Everything that depends only on the order and its instrument: the rules the
    backup desk applies too (contract.ordershape, one definition)."""
    ordershape.check(req, inst)
    assert inst is not None, "ordershape.check refuses an unknown instrument (unknown_symbol)"
    return inst


def check_limits(
    req: wire.OrderRequest,
    inst: wire.Instrument,
    limit: wire.ClientLimit | None,
    positions: list[wire.Position],
    last_price_of,
) -> None:
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
        raise Reject(
            "order_value_limit",
            f"Order value {value:.2f} is above the client's limit {limit.max_order_value}.",
            "quantity",
        )
    before = sum(abs(p.net_quantity) * last_price_of(p) for p in positions)
    after = before - abs(current_net) * inst.last_price + abs(current_net + signed) * inst.last_price
    if after > before and after > limit.max_gross_exposure:
        raise Reject(
            "exposure_limit",
            f"Gross exposure after this order ({after:.2f}) would be above the client's "
            f"limit {limit.max_gross_exposure}.",
            "quantity",
        )
