"""The console's one wall clock.

Every date the console shows or computes (journal timestamps, client_order_id dates, grant
expiry, BOD age, report times) is read here, never from ``datetime.now`` directly, so a
run can be moved in time as a whole: ``LIFEBOAT_CLOCK_OFFSET_S`` (seconds, may be negative)
shifts this clock, and mainsim reads the same variable for its own clock (its trading date
and contract months included).  The test suite uses it to pin its world to a fixed date and
CI runs the date-sensitive tests again months ahead (faketime cannot: it breaks
``time.sleep`` on these machines).  Timers and timeouts use ``time.monotonic`` and are not
affected.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta, timezone

OFFSET_ENV = "LIFEBOAT_CLOCK_OFFSET_S"
IST = timezone(timedelta(hours=5, minutes=30), "IST")


def offset() -> timedelta:
    text = os.environ.get(OFFSET_ENV)
    if not text:
        return timedelta(0)
    try:
        return timedelta(seconds=float(text))
    except ValueError:
        raise ValueError(f"{OFFSET_ENV} must be a number of seconds, not {text!r}") from None


def utcnow() -> datetime:
    return datetime.now(UTC) + offset()


def today_ist() -> date:
    """Today as the exchanges count it (Asia/Kolkata): the trading date when main gives none."""
    return utcnow().astimezone(IST).date()
