"""The status bar: what support staff look at first.

Mode since, backend latency, journal depth, replay progress, mirror staleness, last BOD
sync, user and role.  The clock is injected (``clock`` returns an aware datetime) so a
snapshot with a frozen clock draws the same bar every time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from textual.widgets import Static


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


class StatusBar(Static):
    def __init__(self, clock: Callable[[], datetime], **kw) -> None:
        super().__init__("", **kw)
        self.clock = clock
        self.status: dict = {}
        self.mode_since: datetime | None = None

    def show(self, status: dict | None = None, mode_since: datetime | None = None) -> None:
        if status is not None:
            self.status = status
        if mode_since is not None:
            self.mode_since = mode_since
        self.update(self.line())

    def line(self) -> str:
        st, now = self.status, self.clock()
        parts = []
        if self.mode_since is not None:
            parts.append(
                f"since {self.mode_since.astimezone(UTC):%H:%M:%S}Z "
                f"({_ago((now - self.mode_since).total_seconds())})"
            )
        probe = st.get("probe") or {}
        if probe:
            parts.append(
                f"main {probe['latency_ms']:.0f} ms"
                if probe.get("ok") and probe.get("latency_ms") is not None
                else f"main down ({probe.get('kind', '?')})"
            )
        sites = st.get("sites") or {}
        for s in sites.get("sites", ()):  # the DR tier: the other site too, at a glance
            if s["name"] == "dr":
                parts.append(
                    f"DR {s['role']} e{s['epoch']}"
                    + (f" lag {s['replication_lag_s']:g} s" if s.get("replication_lag_s") is not None else "")
                    if s["reachable"]
                    else "DR down"
                )
        if sites.get("split_brain") or sites.get("fenced"):
            parts.append(f"ALARM {sites.get('reason', '')}")
        if "journal_depth" in st:
            parts.append(f"journal {st['journal_depth']}")
        parts.append(f"replay {st.get('replay', 'idle')}")
        mirror = st.get("mirror") or {}
        if mirror.get("current_at"):
            age = (now - datetime.fromisoformat(mirror["current_at"])).total_seconds()
            parts.append(f"mirror {_ago(age)} old")
        elif st:
            parts.append("mirror -")
        bod = st.get("last_bod")
        if bod:
            parts.append(
                f"BOD {datetime.fromisoformat(bod['at']).astimezone(UTC):%H:%M}Z {bod['trading_date']}"
            )
        elif st:
            parts.append("BOD none")
        user = st.get("user")
        if user:
            parts.append(f"{user['user_id']} ({user['role']}, {login_kind(st.get('mode'), user['how'])})")
        return "  |  ".join(parts)


def login_kind(mode: str | None, how: str) -> str:
    """How the dealer's actions are authenticated now.  In BACKUP and RECOVERING every
    action is an offline login against this console's grant and verifier (with the
    password kept from the login), whatever the first login was: "offline".  Otherwise
    (ONLINE, SUSPECT) how the session itself logged in."""
    if mode in ("BACKUP", "RECOVERING"):
        return "offline"
    return how.lower()
