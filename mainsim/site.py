"""What a site is in the DR tier (mainsim/replication.py runs it): its role, its epoch (the
fencing number that grows at each promotion), what it follows and how far behind it is.

Kept apart from the replication machinery so the API reads it without importing that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

SiteRole = Literal["primary", "standby"]


@dataclass
class SiteState:
    role: SiteRole = "primary"
    epoch: int = 0
    following: str | None = None
    # the standby's replication lag in seconds (None on a primary); set by the follower
    lag: Callable[[], float | None] = field(default=lambda: None)
    synced: bool = True  # False on a standby that has not installed its first snapshot

    @property
    def primary(self) -> bool:
        return self.role == "primary"

    def replication_lag_s(self) -> float | None:
        return None if self.primary else self.lag()
