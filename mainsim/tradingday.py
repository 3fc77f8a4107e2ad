"""The trading day as the exchanges see it: Indian Standard Time, no DST.

Kept apart so the date rule (today in Asia/Kolkata unless told otherwise: ``--trading-date``)
and the end-of-day instant that bounds offline grants live in one place, with the one clock
every part of mainsim reads.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

# The one clock of the contract (contract/clock.py, LIFEBOAT_CLOCK_OFFSET_S): a drill or the
# test suite moves mainsim and the console in time together.
from contract.clock import IST, OFFSET_ENV, today_ist, utcnow

__all__ = ["IST", "OFFSET_ENV", "end_of_day_utc", "today_ist", "utcnow"]


def end_of_day_utc(trading_date: date) -> datetime:
    """23:59:59 IST of the trading date, as UTC: the end of an offline grant."""
    return datetime.combine(trading_date, time(23, 59, 59), IST).astimezone(UTC)


def market_open_utc(trading_date: date) -> datetime:
    """09:15 IST: the timestamp seeded (start-of-day) rows carry, so seeds are reproducible."""
    return datetime.combine(trading_date, time(9, 15), IST).astimezone(UTC)
