"""Square-off planning: which positions a "flatten" covers and how it is sent.

Why separate: the same plan serves both modes.  Online each position becomes one
or more MARKET orders (split at the instrument's freeze quantity, each slice a
whole number of lots); in backup each position becomes ONE journaled SQUARE_OFF
intent ("flatten client C in symbol S, product P"), recomputed on replay against
main's live position so it never overshoots.  Pure functions, no I/O.

A position beyond any instrument's limits (contract.limits: more than
MAX_QUANTITY, or more orders than MAX_SLICES at its freeze quantity) is refused
before anything is sliced, sent or journaled: slicing 10**30 at a freeze quantity
of 1,800 would never end.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.enums import Side, value_of
from contract.limits import MAX_QUANTITY, MAX_SLICES
from sync.trading.policy import Refusal


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
        d = {
            "client_id": self.client_id,
            "exchange": self.exchange,
            "symbol": self.symbol,
            "product": self.product,
            "side": self.side,
            "quantity": self.quantity,
            "client_order_id": self.client_order_id,
            "outcome": self.outcome,
        }
        if self.reason is not None:
            d["reason"] = self.reason
        if self.order_id is not None:
            d["order_id"] = self.order_id
        return d


def closing_side(net: int) -> str:
    return Side.SELL.value if net > 0 else Side.BUY.value


def _step(freeze_quantity: int, lot_size: int) -> int:
    """The largest slice: the freeze quantity rounded down to whole lots (one lot at least)."""
    lot = max(lot_size, 1)
    return max(lot, (freeze_quantity // lot) * lot)


def slice_count(quantity: int, freeze_quantity: int | None, lot_size: int = 1) -> int:
    """How many orders ``slices`` would make, by arithmetic (nothing is built)."""
    if quantity <= 0:
        return 0
    if not freeze_quantity or quantity <= freeze_quantity:
        return 1
    return -(-quantity // _step(freeze_quantity, lot_size))


def check_quantity(what: str, quantity: int, freeze_quantity: int | None, lot_size: int = 1) -> None:
    """Refuse (``quantity_limit``) a square-off of ``quantity`` that is beyond any
    instrument's limits or would take more than MAX_SLICES orders."""
    if quantity > MAX_QUANTITY:
        raise Refusal(
            "quantity_limit",
            f"{what}: a position of {quantity:,} is beyond any instrument's limits "
            f"(at most {MAX_QUANTITY:,}); nothing was sent or journaled: check it on "
            f"the main system",
        )
    count = slice_count(quantity, freeze_quantity, lot_size)
    if count > MAX_SLICES and freeze_quantity:  # (more than one order needs a freeze quantity)
        raise Refusal(
            "quantity_limit",
            f"{what}: squaring off {quantity:,} would take {count:,} orders of at most "
            f"{_step(freeze_quantity, lot_size):,} (the limit is {MAX_SLICES:,}); "
            f"nothing was sent or journaled: check it on the main system",
        )


def check_legs(legs: list[Leg], instruments: dict) -> None:
    """``check_quantity`` for every leg, before any is sliced or sent (instruments: (exchange,
    symbol) -> anything with freeze_quantity and lot_size)."""
    for leg in legs:
        inst = instruments.get((leg.exchange, leg.symbol))
        check_quantity(
            f"{leg.client_id} {leg.exchange}:{leg.symbol} {leg.product}",
            leg.quantity,
            getattr(inst, "freeze_quantity", None),
            getattr(inst, "lot_size", 1),
        )


def slices(quantity: int, freeze_quantity: int | None, lot_size: int = 1) -> list[int]:
    """Split ``quantity`` into orders no larger than the freeze quantity (whole lots);
    refused (``check_quantity``) before anything is built when it is too many."""
    if quantity <= 0:
        return []
    check_quantity("square-off", quantity, freeze_quantity, lot_size)
    if not freeze_quantity or quantity <= freeze_quantity:
        return [quantity]
    step = _step(freeze_quantity, lot_size)
    full, rest = divmod(quantity, step)
    return [step] * full + ([rest] if rest else [])


def position_legs(
    positions, *, client_id: str | None = None, symbol: str | None = None, in_scope=lambda c: True
) -> list[Leg]:
    """One leg per non-flat position in scope (positions: rows or wire models)."""
    legs = []
    for p in positions:
        if p.net_quantity == 0 or not in_scope(p.client_id):
            continue
        if client_id is not None and p.client_id != client_id:
            continue
        if symbol is not None and p.symbol.upper() != symbol.upper():
            continue
        legs.append(
            Leg(
                p.client_id,
                str(value_of(p.exchange)),
                p.symbol,
                str(value_of(p.product)),
                closing_side(p.net_quantity),
                abs(p.net_quantity),
            )
        )
    legs.sort(key=lambda leg: (leg.client_id, leg.exchange, leg.symbol, leg.product))
    return legs


def split_legs(legs: list[Leg], instruments: dict) -> list[Leg]:
    """Online: each leg split at its instrument's freeze quantity (every leg checked first)."""
    check_legs(legs, instruments)
    out = []
    for leg in legs:
        inst = instruments.get((leg.exchange, leg.symbol))
        freeze = getattr(inst, "freeze_quantity", None)
        lot = getattr(inst, "lot_size", 1)
        for q in slices(leg.quantity, freeze, lot):
            out.append(Leg(leg.client_id, leg.exchange, leg.symbol, leg.product, leg.side, q))
    return out
