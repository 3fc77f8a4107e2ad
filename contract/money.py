"""The money formulas of the net-position screen, one definition for main (mainsim) and the
console's screens: unrealised P&L of the open quantity at a price, and mark-to-market."""

from __future__ import annotations

from decimal import Decimal


def unrealised(net_quantity: int, average_price: Decimal, last_price: Decimal) -> Decimal:
    """(last - average) x net: what the open quantity would realise at ``last_price``."""
    return (Decimal(last_price) - Decimal(average_price)) * net_quantity


def mtm(realised_pnl: Decimal, net_quantity: int, average_price: Decimal, last_price: Decimal) -> Decimal:
    """Mark-to-market: realised + unrealised at ``last_price`` (not rounded: callers quantize)."""
    return Decimal(realised_pnl) + unrealised(net_quantity, average_price, last_price)
