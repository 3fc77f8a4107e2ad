"""Column types of the local store: exact money and timezone-aware UTC times.

Why a module of their own: the ORM models (localstore.models) use them, and so do
Core-only readers that must start fast (``lifeboat status`` reads a few rows with
plain SQL and needs the same conversions without importing the ORM).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import BigInteger, DateTime, TypeDecorator

from contract import clock

MONEY_SCALE = 10_000  # units per rupee: 4 decimal places, finer than any tick size
_MONEY_QUANTUM = Decimal("0.0001")
_BIGINT_MAX = 2**63 - 1


class Money(TypeDecorator):
    """A Decimal amount stored exactly as a BIGINT count of 1/10,000 units.

    Portable (every database has a 64-bit integer) and exact (no float ever).
    ``exact=True`` (prices, limits, tick sizes) refuses a value with more than four
    decimal places with ``ValueError`` rather than round it silently;
    ``exact=False`` (derived figures the main system computes, such as an average
    price or MTM) rounds half-even to four places.  Reads return ``Decimal`` with
    four decimal places (``Decimal("12.3400") == Decimal("12.34")``).
    """

    impl = BigInteger
    cache_ok = True

    def __init__(self, exact: bool = True) -> None:
        super().__init__()
        self.exact = exact

    def process_bind_param(self, value: Any, dialect: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, float):
            value = Decimal(repr(value))
        elif not isinstance(value, Decimal):
            try:
                value = Decimal(value)
            except (InvalidOperation, TypeError, ValueError) as exc:
                raise ValueError(f"not a money amount: {value!r}") from exc
        if not value.is_finite():
            raise ValueError(f"not a finite money amount: {value!r}")
        units = value * MONEY_SCALE
        if units != units.to_integral_value():
            if self.exact:
                raise ValueError(f"{value} has more than 4 decimal places; it cannot be stored exactly")
            units = units.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
        result = int(units)
        if abs(result) > _BIGINT_MAX:
            raise ValueError(f"{value} is too large to store")
        return result

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        return (Decimal(int(value)) / MONEY_SCALE).quantize(_MONEY_QUANTUM)


class UtcDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every database.

    SQLite has no timezone type: values are stored as naive UTC and given
    ``tzinfo=UTC`` back on read.  PostgreSQL stores ``timestamptz``.  Naive
    datetimes are refused: a time without a zone is a bug waiting for a DST day.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise ValueError(f"not a datetime: {value!r}")
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} (give it a timezone)")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return clock.utcnow()
