"""Market protection for square-off legs: the limit price a "market" exit is sent with.

Brokers now require a protection bound on market orders placed by API: an exit must not
fill at any price at all in a thin or runaway market.  The rule (``[rms]
squareoff_protection``):

- ``limit_pct``: a LIMIT at most ``pct`` percent through the last price (a SELL at
  last x (1 - pct/100) rounded down to the tick, a BUY at last x (1 + pct/100) rounded up),
  kept inside the day's price band;
- ``band_edge``: a LIMIT at the band's edge (the lower band for a SELL, the upper for a BUY):
  as close to a market order as the exchange accepts;
- ``market``: a plain MARKET order (no bound).

A marketable LIMIT fills at once like a market order while the market is within the bound;
beyond it, it rests, and the replay counts it as working (never sends more on top).
Pure, no I/O: the console's desks, its replay and mainsim may all use it.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

RULES = ("limit_pct", "band_edge", "market")


def protected_price(
    side: str,
    last_price: Decimal | None,
    *,
    tick: Decimal,
    lower_band: Decimal,
    upper_band: Decimal,
    rule: str = "limit_pct",
    pct: float = 2.0,
) -> Decimal | None:
    """The LIMIT price of a protected exit, or None for a MARKET order (rule ``market``, or
    no last price to protect from under ``limit_pct``: then the band's edge is used)."""
    if rule not in RULES:
        raise ValueError(f"unknown protection rule {rule!r} (allowed: {', '.join(RULES)})")
    if rule == "market":
        return None
    sell = side == "SELL"
    if rule == "band_edge" or last_price is None or last_price <= 0:
        return lower_band if sell else upper_band
    tick = tick if tick > 0 else Decimal("0.05")
    bound = Decimal(str(pct)) / 100
    raw = last_price * (1 - bound) if sell else last_price * (1 + bound)
    ticks = (raw / tick).to_integral_value(rounding=ROUND_FLOOR if sell else ROUND_CEILING)
    price = ticks * tick
    return max(price, lower_band) if sell else min(price, upper_band)
