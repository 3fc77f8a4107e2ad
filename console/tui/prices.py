"""How old each price on the desk is, and whether the desk's prices are stale at all.

Why here: once the stream is down, the prices the desk shows stop moving without looking any
different, and a dealer prices an order from them.  So the console remembers when it last saw
each instrument's price (``PriceBoard``: the desk records a drained batch of ticks with one
clock read, on the screen's loop, so the live session's thread does no extra work per tick),
and while the stream is down (``prices_stale``) every price shown carries its age
("1,520.35 · 4 m old"), and an order priced from one asks first (console/tui/screens/order_entry.py).

A price never ticked in this session is the local reference data's (the start-of-day
snapshot, or the re-snapshot that replaced it): it is as old as that snapshot (``base_at``).
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import datetime
from decimal import Decimal

# Modes whose actions are journaled here, not sent: the console's prices cannot be fresh there.
JOURNALED_MODES = ("BACKUP", "RECOVERING")


def prices_stale(live, mode: str) -> bool:
    """Whether the desk's prices have stopped following the market: BACKUP or UNAVAILABLE (main
    is down), or a hosted runtime whose stream is not connected (after its first connection:
    "starting" is the console's first second, not an outage)."""
    if mode in ("BACKUP", "UNAVAILABLE"):
        return True
    if not getattr(live, "hosted", False):
        return False
    return not live.connected and live.stream_reason != "starting"


def age_text(seconds: float | None) -> str:
    """A price's age as a dealer reads it: "45 s old", "4 m old", "1 h 05 m old", "2 d old";
    "age unknown" when nothing says when it was taken."""
    if seconds is None:
        return "age unknown"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s old"
    if s < 3600:
        return f"{s // 60} m old"
    if s < 86400:
        return f"{s // 3600} h {(s % 3600) // 60:02d} m old"
    return f"{s // 86400} d old"


AGE_WIDTH = len(" · 23 h 59 m old")  # the widest age suffix a price column grows by


class PriceBoard:
    """The newest price of each instrument the desk saw, and when (the app's clock)."""

    def __init__(self) -> None:
        self.prices: dict[Hashable, Decimal] = {}
        self.seen_at: dict[Hashable, datetime] = {}
        self.base_at: datetime | None = None  # when the local reference prices were taken

    def saw(self, ticks: dict, at: datetime) -> None:
        """A drained batch of ticks ((exchange, symbol) -> last price), seen at ``at``."""
        if ticks:
            self.prices.update(ticks)
            self.seen_at.update(dict.fromkeys(ticks, at))

    def quote(self, key: Hashable, fallback: Decimal | None) -> tuple[Decimal | None, datetime | None]:
        """(price, as of) for ``key``: the newest tick, else ``fallback`` (the reference data's
        price) as of the reference snapshot."""
        price = self.prices.get(key)
        if price is not None:
            return price, self.seen_at.get(key)
        return fallback, self.base_at

    def age_s(self, key: Hashable, now: datetime) -> float | None:
        at = self.seen_at.get(key, self.base_at)
        return None if at is None else max(0.0, (now - at).total_seconds())

    def age(self, key: Hashable, now: datetime) -> str:
        return age_text(self.age_s(key, now))
