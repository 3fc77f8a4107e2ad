"""Bounds of what the main system may send and the console will act on.

Why a module of its own: the reply models (contract.wire) refuse a reply
beyond these bounds before anything is stored, and the square-off planner
(sync.trading.squareoff, on the backup path that must not import pydantic) refuses a
position beyond them before it slices anything; both read the same numbers.
Standard library only.

The figures: no instrument's lot, freeze quantity or position comes near a billion
shares or contracts, and a billion is small enough that quantity x price stays far
inside the store's 64-bit money column; money is stored as a signed 64-bit count of
1/10,000 rupee (localstore.coltypes.Money), so 10**14 rupees is the most it can hold
with room to spare.
"""

from __future__ import annotations

from decimal import Decimal

MAX_QUANTITY = 10**9  # shares or contracts: any quantity, position or lot on the wire
MAX_MONEY = Decimal(10**14)  # rupees: any price or amount on the wire
MAX_SEQ = 2**63 - 1  # event sequences are stored in BIGINT columns
MAX_SLICES = 1000  # orders one square-off may take; a position needing more is surely wrong
