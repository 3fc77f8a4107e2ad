"""The trading day as the exchanges see it: Indian Standard Time, no DST.

Kept apart so the date rule (today in Asia/Kolkata unless told otherwise: ``--trading-date``)
and the end-of-day instant that bounds offline grants live in one place, with the one clock
every part of mainsim reads.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta, timezone

IST = timezone(timedelta(hours=5, minutes=30), "IST")
# The same variable as the console's clock (localstore/clock.py): a drill or the test suite
# moves both programs in time together.  mainsim is the stand-in for a separate system, so it
# reads the variable itself rather than importing the console's store package.
OFFSET_ENV = "LIFEBOAT_CLOCK_OFFSET_S"


def utcnow() -> datetime:
    text = os.environ.get(OFFSET_ENV)
    return datetime.now(UTC) + (timedelta(seconds=float(text)) if text else timedelta(0))


def today_ist(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(IST).date()


def end_of_day_utc(trading_date: date) -> datetime:
    """23:59:59 IST of the trading date, as UTC: the end of an offline grant."""
    return datetime.combine(trading_date, time(23, 59, 59), IST).astimezone(UTC)


def market_open_utc(trading_date: date) -> datetime:
    """09:15 IST: the timestamp seeded (start-of-day) rows carry, so seeds are reproducible."""
    return datetime.combine(trading_date, time(9, 15), IST).astimezone(UTC)
