"""The risk rules' settings: ``[rms]`` in the console's config.toml, checked whole.

Example (every key optional; these are the defaults)::

    [rms]
    timezone = "Asia/Kolkata"          # exchange time
    intraday_cutoff.NSE = "15:20"      # MIS positions of the segment squared off at this time
    intraday_cutoff.BSE = "15:20"
    intraday_cutoff.NFO = "15:25"
    market_close = "15:30"             # after it, a late start does not square off any more
    warn_before_minutes = [10, 5]      # warnings on screen and in the log before the cut-off
    mtm_alert_percent = [60, 75, 90]   # alerts as a client's MTM loss nears its limit
    mtm_auto_squareoff = false         # at 100%: square the client off (else reduce-only only)
    stale_price_seconds = 30           # prices older than this are stale: no automatic action
    squareoff_protection = "limit_pct" # square-off legs: "limit_pct", "band_edge" or "market"
    protection_percent = 2.0           # limit_pct: at most this far through the last price
    killswitch_cooldown_minutes = 0    # the kill switch cannot be released sooner

Why checked up front: a dealer's risk rules must never be half-read.  A bad value is one
sentence naming the setting and what is allowed, before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SEGMENTS = ("NSE", "BSE", "NFO")
PROTECTIONS = ("limit_pct", "band_edge", "market")
_KEYS = {
    "timezone",
    "intraday_cutoff",
    "market_close",
    "warn_before_minutes",
    "mtm_alert_percent",
    "mtm_auto_squareoff",
    "stale_price_seconds",
    "squareoff_protection",
    "protection_percent",
    "killswitch_cooldown_minutes",
}


class RmsConfigError(ValueError):
    """A bad [rms] setting; the message names it and what is allowed."""


def _default_cutoffs() -> dict[str, time]:
    return {"NSE": time(15, 20), "BSE": time(15, 20), "NFO": time(15, 25)}


@dataclass(frozen=True)
class RmsSettings:
    timezone: str = "Asia/Kolkata"
    intraday_cutoff: dict[str, time] = field(default_factory=_default_cutoffs)
    market_close: time = time(15, 30)
    warn_before_minutes: tuple[int, ...] = (10, 5)
    mtm_alert_percent: tuple[int, ...] = (60, 75, 90)
    mtm_auto_squareoff: bool = False
    stale_price_seconds: float = 30.0
    squareoff_protection: str = "limit_pct"
    protection_percent: float = 2.0
    killswitch_cooldown_minutes: float = 0.0

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def as_dict(self) -> dict:
        return {
            "timezone": self.timezone,
            "intraday_cutoff": {k: v.strftime("%H:%M") for k, v in self.intraday_cutoff.items()},
            "market_close": self.market_close.strftime("%H:%M"),
            "warn_before_minutes": list(self.warn_before_minutes),
            "mtm_alert_percent": list(self.mtm_alert_percent),
            "mtm_auto_squareoff": self.mtm_auto_squareoff,
            "stale_price_seconds": self.stale_price_seconds,
            "squareoff_protection": self.squareoff_protection,
            "protection_percent": self.protection_percent,
            "killswitch_cooldown_minutes": self.killswitch_cooldown_minutes,
        }


def _hhmm(where: str, value) -> time:
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0)
    if isinstance(value, str):
        try:
            hh, mm = value.split(":")
            return time(int(hh), int(mm))
        except ValueError:
            pass
    raise RmsConfigError(f"{where} must be an exchange time as \"HH:MM\" (e.g. \"15:20\"), not {value!r}")


def _number(where: str, value, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise RmsConfigError(f"{where} must be a number from {lo:g} to {hi:g}, not {value!r}")
    return float(value)


def _ints(where: str, value, lo: int, hi: int) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi for v in value
    ):
        raise RmsConfigError(f"{where} must be a list of whole numbers from {lo} to {hi}, not {value!r}")
    return tuple(sorted(set(value)))


def parse(data: dict | None, where: str = "[rms]") -> RmsSettings:
    """The settings from the ``[rms]`` table (None or empty: the defaults)."""
    data = data or {}
    if not isinstance(data, dict):
        raise RmsConfigError(f"{where} must be a table")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise RmsConfigError(
            f"{where}: unknown setting rms.{unknown[0]} (allowed: {', '.join(sorted(_KEYS))})"
        )
    kw: dict = {}
    if "timezone" in data:
        tz = data["timezone"]
        try:
            ZoneInfo(str(tz))
        except (ZoneInfoNotFoundError, ValueError):
            raise RmsConfigError(
                f"{where}: rms.timezone {tz!r} is not a time zone (e.g. \"Asia/Kolkata\")"
            ) from None
        kw["timezone"] = str(tz)
    if "intraday_cutoff" in data:
        table = data["intraday_cutoff"]
        if not isinstance(table, dict):
            raise RmsConfigError(
                f"{where}: rms.intraday_cutoff must be a table such as intraday_cutoff.NSE = \"15:20\""
            )
        cutoffs = _default_cutoffs()
        for seg, value in table.items():
            if seg not in SEGMENTS:
                raise RmsConfigError(
                    f"{where}: rms.intraday_cutoff.{seg}: no such segment (allowed: {', '.join(SEGMENTS)})"
                )
            cutoffs[seg] = _hhmm(f"{where}: rms.intraday_cutoff.{seg}", value)
        kw["intraday_cutoff"] = cutoffs
    if "market_close" in data:
        kw["market_close"] = _hhmm(f"{where}: rms.market_close", data["market_close"])
    if "warn_before_minutes" in data:
        kw["warn_before_minutes"] = tuple(
            sorted(
                _ints(f"{where}: rms.warn_before_minutes", data["warn_before_minutes"], 1, 120), reverse=True
            )
        )
    if "mtm_alert_percent" in data:
        kw["mtm_alert_percent"] = _ints(f"{where}: rms.mtm_alert_percent", data["mtm_alert_percent"], 1, 99)
    if "mtm_auto_squareoff" in data:
        if not isinstance(data["mtm_auto_squareoff"], bool):
            raise RmsConfigError(f"{where}: rms.mtm_auto_squareoff must be true or false")
        kw["mtm_auto_squareoff"] = data["mtm_auto_squareoff"]
    if "stale_price_seconds" in data:
        kw["stale_price_seconds"] = _number(
            f"{where}: rms.stale_price_seconds", data["stale_price_seconds"], 1, 3600
        )
    if "squareoff_protection" in data:
        rule = data["squareoff_protection"]
        if rule not in PROTECTIONS:
            raise RmsConfigError(
                f"{where}: rms.squareoff_protection must be one of {', '.join(PROTECTIONS)}, not {rule!r}"
            )
        kw["squareoff_protection"] = rule
    if "protection_percent" in data:
        kw["protection_percent"] = _number(
            f"{where}: rms.protection_percent", data["protection_percent"], 0.1, 20
        )
    if "killswitch_cooldown_minutes" in data:
        kw["killswitch_cooldown_minutes"] = _number(
            f"{where}: rms.killswitch_cooldown_minutes", data["killswitch_cooldown_minutes"], 0, 24 * 60
        )
    settings = RmsSettings(**kw)
    for seg, at in settings.intraday_cutoff.items():
        if at >= settings.market_close:
            raise RmsConfigError(
                f"{where}: rms.intraday_cutoff.{seg} ({at:%H:%M}) must be before rms.market_close "
                f"({settings.market_close:%H:%M})"
            )
    return settings
