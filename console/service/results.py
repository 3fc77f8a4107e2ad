"""What the service's public methods return: typed results instead of bare dicts.

Each result with a JSON face has ``as_dict()``, the exact dict the CLI prints with
``--json`` (and the service returned before it had types).  ``DictView`` keeps
``result["key"]`` and ``result.get("key")`` working on those results for faces that
still read them as dicts (the TUI, until it reads the attributes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from console.exitcodes import ExitCode

if TYPE_CHECKING:
    from backend_client.detector import ProbeResult
    from backend_client.sites import SiteChoice
    from contract import wire
    from sync.replay import ReplayResult


# the modes in which actions go to a site: main (ONLINE) or the broker's DR site once it is primary (DR)
SENDING_MODES = frozenset({"ONLINE", "DR"})


def sends(mode: str) -> bool:
    """Actions in ``mode`` go to a site, not to the local journal."""
    return mode in SENDING_MODES


class DictView:
    """Read-only dict-style access to ``as_dict()`` (a bridge for faces that index results)."""

    def as_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.as_dict().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.as_dict()

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def keys(self) -> Any:
        return self.as_dict().keys()


@dataclass
class ModeDecision:
    mode: str  # ONLINE, DR, BACKUP, RECOVERING (SUSPECT only from a runtime)
    probe: ProbeResult  # the probe of the site that takes actions (main's when none does)
    forced: str | None
    sites: SiteChoice | None = None  # both sites as surveyed, when a DR site is configured

    @property
    def sends(self) -> bool:
        """Actions go to a site (main or the DR site), not to the local journal."""
        return sends(self.mode)


@dataclass(frozen=True)
class LoginResult:
    user: wire.UserInfo
    token_kept: bool
    grant_valid_until: datetime
    console_id: str


# --------------------------------------------------------------------------- trading


@dataclass
class ActionResult:
    """What one trading command did, for both faces.  ``journal_seqs`` are the entries
    to acknowledge once the answer has been shown (``Service.acknowledge``)."""

    action: str
    mode: str
    user: str
    legs: list = field(default_factory=list)
    cancels: list = field(default_factory=list)
    order: dict | None = None
    journal_seqs: list = field(default_factory=list)
    dry_run: bool = False

    @property
    def rejected(self) -> bool:
        """Not all done: a leg or the order refused, or a leg main never answered or was not sent."""
        return any(leg.get("outcome") in ("rejected", "unknown", "not_sent") for leg in self.legs) or (
            self.order is not None and self.order.get("outcome") == "rejected"
        )

    @property
    def cut_off(self) -> bool:
        """Not all done only because main stopped answering mid-way (no leg was refused): the
        main system's failure (exit 5), not a rejection."""
        outcomes = [leg.get("outcome") for leg in self.legs]
        return (
            self.rejected
            and "rejected" not in outcomes
            and not (self.order is not None and self.order.get("outcome") == "rejected")
        )

    @property
    def exit_code(self) -> int:
        if self.cut_off:
            return int(ExitCode.UNAVAILABLE)
        return int(ExitCode.REJECTED if self.rejected else ExitCode.OK)

    def as_dict(self) -> dict:
        d = {"action": self.action, "mode": self.mode, "user": self.user, "dry_run": self.dry_run}
        if self.order is not None:
            d["order"] = self.order
        if self.action in ("squareoff", "killswitch"):
            d["legs"] = self.legs
            d["cancels"] = self.cancels
        d["outcome"] = (
            "incomplete"
            if self.cut_off
            else "rejected"
            if self.rejected
            else ("dry_run" if self.dry_run else ("done" if sends(self.mode) else "journaled"))
        )
        d[
            "ok"
        ] = not self.rejected  # as in the failure object {"ok": false, "error": ...}: one key for scripts
        return d


# --------------------------------------------------------------------------- supervisor's settings


@dataclass(frozen=True)
class ModeState(DictView):
    """The mode recorded on this console and a supervisor's override (``mode show``)."""

    mode: str
    mode_since: datetime | None
    forced_mode: str | None
    forced_by: str | None
    forced_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "mode_since": self.mode_since.isoformat() if self.mode_since else None,
            "forced_mode": self.forced_mode,
            "forced_by": self.forced_by,
            "forced_at": self.forced_at.isoformat() if self.forced_at else None,
        }


@dataclass(frozen=True)
class PolicyState(DictView):
    """The backup policy (``policy show``): reduce-only unless new exposure is allowed."""

    allow_new_exposure: bool
    killswitch: bool
    stale_after_minutes: int | None
    updated_by: str | None
    updated_at: datetime | None

    @property
    def reduce_only(self) -> bool:
        return not self.allow_new_exposure

    def as_dict(self) -> dict[str, Any]:
        return {
            "reduce_only": self.reduce_only,
            "allow_new_exposure": self.allow_new_exposure,
            "killswitch": self.killswitch,
            "stale_after_minutes": self.stale_after_minutes,
            "updated_by": self.updated_by,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


@dataclass(frozen=True)
class UserReleased(DictView):
    """A supervisor lifted a user's offline lockout (``user release``)."""

    user: str
    released_by: str
    was_locked: bool
    failures: int
    lock_after: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "released_by": self.released_by,
            "was_locked": self.was_locked,
            "failures": self.failures,
            "lock_after": self.lock_after,
        }


@dataclass(frozen=True)
class Lockout(DictView):
    """How many wrong passwords in a row lock a user offline (0: never); ``set_by`` only
    when a supervisor has just set it."""

    lock_after: int
    set_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"lock_after": self.lock_after}
        if self.set_by is not None:
            d["set_by"] = self.set_by
        return d


# --------------------------------------------------------------------------- replay


@dataclass(frozen=True)
class ReplayOutcome(DictView):
    """One replay pass and the reconciliation after it (None: none was run)."""

    replay: ReplayResult
    report: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {"replay": self.replay.as_dict(), "report": self.report}
