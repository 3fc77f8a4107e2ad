"""Square-off planning: which positions a "flatten" covers and how it is sent.

Why separate: the same plan serves both modes.  Online each position becomes one
or more MARKET orders (split at the instrument's freeze quantity, each slice a
whole number of lots); in backup each position becomes ONE journaled SQUARE_OFF
intent ("flatten client C in symbol S, product P"), recomputed on replay against
main's live position so it never overshoots.  Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend_client.enums import Side


@dataclass
class Leg:
    client_id: str
    exchange: str
    symbol: str
    product: str
    side: str
    quantity: int
    client_order_id: str | None = None
    outcome: str = "planned"
    reason: str | None = None
    order_id: str | None = None

    def as_dict(self) -> dict:
        d = {"client_id": self.client_id, "exchange": self.exchange, "symbol": self.symbol, "product": self.product,
             "side": self.side, "quantity": self.quantity, "client_order_id": self.client_order_id,
             "outcome": self.outcome}
        if self.reason is not None:
            d["reason"] = self.reason
        if self.order_id is not None:
            d["order_id"] = self.order_id
        return d


def closing_side(net: int) -> str:
    return Side.SELL.value if net > 0 else Side.BUY.value


def slices(quantity: int, freeze_quantity: int | None, lot_size: int = 1) -> list[int]:
    """Split ``quantity`` into orders no larger than the freeze quantity (whole lots)."""
    if quantity <= 0:
        return []
    if not freeze_quantity or quantity <= freeze_quantity:
        return [quantity]
    step = max(lot_size, (freeze_quantity // max(lot_size, 1)) * max(lot_size, 1))
    out = []
    left = quantity
    while left > 0:
        take = min(step, left)
        out.append(take)
        left -= take
    return out


def position_legs(positions, *, client_id: str | None = None, symbol: str | None = None,
                  in_scope=lambda c: True) -> list[Leg]:
    """One leg per non-flat position in scope (positions: rows or wire models)."""
    legs = []
    for p in positions:
        if p.net_quantity == 0 or not in_scope(p.client_id):
            continue
        if client_id is not None and p.client_id != client_id:
            continue
        if symbol is not None and p.symbol.upper() != symbol.upper():
            continue
        legs.append(Leg(p.client_id, _v(p.exchange), p.symbol, _v(p.product), closing_side(p.net_quantity),
                        abs(p.net_quantity)))
    legs.sort(key=lambda leg: (leg.client_id, leg.exchange, leg.symbol, leg.product))
    return legs


def split_legs(legs: list[Leg], instruments: dict) -> list[Leg]:
    """Online: each leg split at its instrument's freeze quantity."""
    out = []
    for leg in legs:
        inst = instruments.get((leg.exchange, leg.symbol))
        freeze = getattr(inst, "freeze_quantity", None)
        lot = getattr(inst, "lot_size", 1)
        for q in slices(leg.quantity, freeze, lot):
            out.append(Leg(leg.client_id, leg.exchange, leg.symbol, leg.product, leg.side, q))
    return out


def _v(value):
    return getattr(value, "value", value)
