"""Net-position arithmetic of the dealer's net-position screen: average price of
the open quantity, realised P&L on the closed part, and mark-to-market."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from contract import money, wire

AVG_Q = Decimal("0.0001")
MONEY_Q = Decimal("0.01")


def mark(pos: wire.Position, last_price: Decimal) -> wire.Position:
    """Refresh last price and MTM (realised + (last - average) x net) in place."""
    pos.last_price = last_price
    pos.mtm = money.mtm(pos.realised_pnl, pos.net_quantity, pos.average_price, last_price).quantize(MONEY_Q)
    return pos


def flat(
    client_id: str,
    exchange: wire.Exchange,
    symbol: str,
    product: wire.Product,
    last_price: Decimal,
    at: datetime,
) -> wire.Position:
    return wire.Position(
        client_id=client_id,
        exchange=exchange,
        symbol=symbol,
        product=product,
        net_quantity=0,
        average_price=Decimal(0),
        last_price=last_price,
        realised_pnl=Decimal(0),
        mtm=Decimal(0),
        buy_quantity=0,
        sell_quantity=0,
        updated_at=at,
    )


def apply_fill(
    pos: wire.Position, side: wire.Side, quantity: int, price: Decimal, at: datetime
) -> wire.Position:
    """Book one fill into a position (in place)."""
    sign = 1 if side is wire.Side.BUY else -1
    net, avg = pos.net_quantity, pos.average_price
    new_net = net + sign * quantity
    if net == 0 or (net > 0) == (sign > 0):  # opening or adding
        avg = (abs(net) * avg + quantity * price) / abs(new_net)
    else:  # reducing, maybe through zero
        closing = min(quantity, abs(net))
        pos.realised_pnl = (pos.realised_pnl + closing * (price - avg) * (1 if net > 0 else -1)).quantize(
            MONEY_Q
        )
        if new_net == 0:
            avg = Decimal(0)
        elif (new_net > 0) != (net > 0):
            avg = price
    pos.net_quantity = new_net
    pos.average_price = avg.quantize(AVG_Q).normalize() if avg else Decimal(0)
    if sign > 0:
        pos.buy_quantity += quantity
    else:
        pos.sell_quantity += quantity
    pos.updated_at = at
    return mark(pos, price)
