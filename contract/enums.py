"""The contract's enumerations (exchanges, sides, products, order types and states,
roles), with nothing but the standard library.

Why apart from contract.wire: the backup-mode path (local checks, the journal,
the store's tables) needs these names but none of the pydantic models, and a CLI
command with main down should not pay for importing pydantic (bench P3).  wire
re-exports every name here, so ``wire.Exchange is enums.Exchange``.
"""

from __future__ import annotations

from enum import Enum


class Exchange(str, Enum):
    NSE = "NSE"
    BSE = "BSE"
    NFO = "NFO"


class Side(str, Enum):
    BUY = "BUY"
    SELL = "SELL"


class Product(str, Enum):
    MIS = "MIS"  # intraday, any exchange
    NRML = "NRML"  # carry-forward derivatives (NFO only)
    CNC = "CNC"  # cash and carry equity delivery (NSE/BSE only)


class OrderType(str, Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    SL = "SL"
    SL_M = "SL-M"


class Validity(str, Enum):
    DAY = "DAY"
    IOC = "IOC"


class OrderStatus(str, Enum):
    OPEN = "OPEN"  # resting limit order
    TRIGGER_PENDING = "TRIGGER_PENDING"  # SL / SL-M waiting for its trigger
    COMPLETE = "COMPLETE"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"


OPEN_STATUSES = frozenset({OrderStatus.OPEN, OrderStatus.TRIGGER_PENDING})


class Role(str, Enum):
    DEALER = "dealer"
    SUPERVISOR = "supervisor"
    VIEWER = "viewer"


# Which products each exchange accepts (product/exchange mismatch is a rejection).
PRODUCTS_BY_EXCHANGE: dict[Exchange, frozenset[Product]] = {
    Exchange.NSE: frozenset({Product.MIS, Product.CNC}),
    Exchange.BSE: frozenset({Product.MIS, Product.CNC}),
    Exchange.NFO: frozenset({Product.MIS, Product.NRML}),
}


def value_of(x: object) -> object:
    """The wire value of an enum member, or ``x`` itself when it is already plain (a row read
    back from the store, a dict from JSON): the one helper every layer uses to compare the two."""
    return x.value if isinstance(x, Enum) else x
