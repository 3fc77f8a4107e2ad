"""The RMS panel: the intraday cut-off coming, and the clients nearest their MTM-loss limit.

Why on the desk: the cut-off squares off every MIS position at a fixed time whatever the mode;
a dealer must see it coming (a countdown per segment, and what it will do: the pending MIS
orders it cancels, the MIS positions it squares off) and see which clients are close to their
MTM-loss limit or already in square-off mode (reduce-only).

Two sources, two paces.  The countdown is redrawn once a second from the live session's
``rms_upcoming()`` (the runtime's risk engine: pure arithmetic on the clock and the [rms]
settings, no store read) against the app's clock.  What the cut-off will do, when it ran, and
each client's MTM come from ``Service.rms_status()``, read every few seconds in the desk's
status worker (store reads, never on the screen's loop).  Without a runtime (no rules run on
this console), the countdown comes from that sample's cut-off times.

Collapsed (the default), one line: each segment's countdown, the client nearest its limit and
how many are in square-off mode.  Expanded (key ``view.risk``, F7): a line per segment, the
clients nearest their limit (every client in square-off mode marked on its row), and the last
risk notices.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

DEFAULT_ZONE = "Asia/Kolkata"
NEAREST = 6  # clients listed in the expanded panel (every one in square-off mode comes on top)
NOTICES = 3  # last risk notices listed in the expanded panel

_TITLE = "bold reverse"
_SOON = "bold yellow"
_VERY_SOON = "bold white on red"
_DONE = "green"
_SQ_MODE = "bold white on red"


@dataclass(frozen=True)
class Segment:
    """One segment's cut-off as the panel draws it."""

    segment: str
    at: datetime  # aware
    local: str  # "15:20", exchange time
    done_at: datetime | None
    will: dict | None


def countdown(seconds: float) -> str:
    """Time left as a dealer reads it: "in 53 s", "in 8 m 53 s", "in 5 h 58 m"."""
    s = max(0, int(seconds))
    if s < 60:
        return f"in {s} s"
    if s < 3600:
        return f"in {s // 60} m {s % 60:02d} s"
    return f"in {s // 3600} h {(s % 3600) // 60:02d} m"


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def will_text(will: dict | None) -> str:
    """What the cut-off would do now, from the local book (the sample's dry run)."""
    if not will:
        return "what it will do: not read yet"
    orders = int(will.get("cancel_mis_orders") or 0)
    positions = int(will.get("squareoff_mis_positions") or 0)
    if not orders and not positions:
        return "nothing to do (no MIS order or position)"
    parts = []
    if orders:
        parts.append(f"cancel {_plural(orders, 'pending MIS order', 'pending MIS orders')}")
    if positions:
        parts.append(f"square off {_plural(positions, 'MIS position', 'MIS positions')}")
    return "will " + ", then ".join(parts)


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def _money(v) -> str:
    return f"{Decimal(str(v)):,.2f}"


class RmsPanel(Static):
    """See the module's docstring.  ``expanded`` toggles with the desk's ``view.risk`` key."""

    expanded: reactive[bool] = reactive(False, layout=True)

    def __init__(self, **kw) -> None:
        super().__init__("", **kw)
        self.sample: dict | None = None
        self.error: str | None = None
        self.problem: str | None = None  # why no risk rules run in this console's runtime
        self.hosted = False  # a runtime runs the rules here
        self.upcoming: list = []  # the live session's Upcoming (segment, cutoff), soonest first
        self.now: datetime | None = None
        self.notices: list[tuple[datetime, str, str]] = []  # (at, severity, message), newest last
        self._drawn: Text | None = None

    # ------------------------------------------------------------------ inputs

    def set_sample(self, sample: dict | None, error: str | None) -> None:
        if sample is not None:
            self.sample = sample
        self.error = error
        self.redraw()

    def tick(self, now: datetime, upcoming: Iterable, *, hosted: bool, problem: str | None) -> None:
        """Once a second: the clock and the live cut-offs (no store read)."""
        self.now = now
        self.upcoming = list(upcoming)
        self.hosted = hosted
        self.problem = problem
        self.redraw()

    def add_notice(self, at: datetime, severity: str, message: str) -> None:
        self.notices = [*self.notices, (at, severity, message)][-NOTICES:]
        self.redraw()

    def watch_expanded(self, _old: bool, _new: bool) -> None:
        self.redraw()

    def redraw(self) -> None:
        """Draw again only when the text changed (the countdown's seconds, a new sample)."""
        if not self.is_mounted:
            return
        text = self.render_text()
        if text != self._drawn:
            self._drawn = text
            self.update(text)

    # ------------------------------------------------------------------ what is drawn

    @property
    def zone(self) -> ZoneInfo:
        return _zone((self.sample or {}).get("timezone"))

    def segments(self) -> list[Segment]:
        """Each segment's cut-off: the live engine's times when it runs here, else the sample's."""
        sample = self.sample or {}
        by_seg = {c["segment"]: c for c in sample.get("cutoffs") or []}
        zone = self.zone
        out: list[Segment] = []
        if self.upcoming:
            for u in self.upcoming:
                c = by_seg.get(u.segment, {})
                out.append(
                    Segment(
                        u.segment,
                        u.cutoff,
                        u.cutoff.astimezone(zone).strftime("%H:%M"),
                        _when(c.get("done_at")),
                        c.get("will"),
                    )
                )
            return out
        for c in sample.get("cutoffs") or []:
            at = _when(c.get("cutoff_at"))
            if at is None:
                continue
            out.append(
                Segment(c["segment"], at, c.get("cutoff") or "", _when(c.get("done_at")), c.get("will"))
            )
        return sorted(out, key=lambda s: s.at)

    def _close(self, seg: Segment) -> datetime | None:
        """The market close on the cut-off's day (after it, a missed cut-off never runs)."""
        text = ((self.sample or {}).get("settings") or {}).get("market_close")
        if not text:
            return None
        try:
            hh, mm = (int(x) for x in str(text).split(":"))
        except ValueError:
            return None
        local = seg.at.astimezone(self.zone)
        return datetime.combine(local.date(), time(hh, mm), self.zone)

    def _warn_minutes(self) -> list[int]:
        warn = ((self.sample or {}).get("settings") or {}).get("warn_before_minutes") or [10, 5]
        return sorted(int(m) for m in warn)

    def segment_state(self, seg: Segment) -> tuple[str, str | None]:
        """(text, style) of a segment's cut-off now: the countdown, done, due or closed."""
        now = self.now
        if seg.done_at is not None:
            return f"done {seg.done_at.astimezone(self.zone):%H:%M:%S}", _DONE
        if now is None:
            return "", None
        left = (seg.at - now).total_seconds()
        if left > 0:
            warn = self._warn_minutes()
            style = None
            if warn and left <= warn[-1] * 60:
                style = _VERY_SOON if left <= warn[0] * 60 else _SOON
            return countdown(left), style
        close = self._close(seg)
        if close is not None and now >= close:
            return "market closed", None
        if self.hosted and not self.problem:
            return "due now: the rules are running it", _VERY_SOON
        return "passed: no risk rules run on this console", _VERY_SOON

    def clients(self) -> list[dict]:
        """Every client in square-off mode, then the others nearest their limit (by % used)."""
        rows = list((self.sample or {}).get("clients") or [])
        sq = [c for c in rows if c.get("mode") == "squareoff"]
        rest = sorted(
            (c for c in rows if c.get("mode") != "squareoff" and c.get("used_pct") is not None),
            key=lambda c: (-float(c["used_pct"]), c.get("client_id", "")),
        )
        sq.sort(key=lambda c: (-float(c.get("used_pct") or 0), c.get("client_id", "")))
        return sq + rest[: max(NEAREST - len(sq), 0)]

    def render_text(self) -> Text:
        return self._expanded() if self.expanded else self._line()

    def _problem_text(self) -> str | None:
        if self.problem:
            return self.problem
        if self.sample is None and self.error:
            return f"risk status not read: {self.error}"
        return None

    def _line(self) -> Text:
        out = Text(" RISK ", style=_TITLE, no_wrap=True, overflow="ellipsis")
        problem = self._problem_text()
        if problem:
            out.append(f" {problem}", style="bold red")
        segs = self.segments()
        if segs:
            out.append("  cut-off")
            for n, seg in enumerate(segs):
                state, style = self.segment_state(seg)
                out.append(" ·" if n else "")
                out.append(f" {seg.segment} {seg.local} ")
                out.append(state, style=style)
        elif not problem:
            out.append("  cut-off: reading the risk status…")
        clients = self.clients()
        sq = [c for c in clients if c.get("mode") == "squareoff"]
        nearest = next((c for c in clients if c.get("mode") != "squareoff"), None)
        if sq:
            out.append("  │  ")
            names = ", ".join(c["client_id"] for c in sq)
            out.append(f"SQUARE-OFF MODE: {names}", style=_SQ_MODE)
        if nearest is not None:
            out.append("  │  nearest MTM limit ")
            out.append(f"{nearest['client_id']} {float(nearest['used_pct']):.0f}%", style=_pct_style(nearest))
        return out

    def _expanded(self) -> Text:
        zone = self.zone
        out = Text(" RISK ", style=_TITLE)
        now = self.now
        clock = f"  exchange time {now.astimezone(zone):%H:%M:%S} ({zone.key})" if now is not None else ""
        out.append(f"  intraday cut-off and MTM-loss limits{clock}")
        problem = self._problem_text()
        if problem:
            out.append(f"\n  {problem}", style="bold red")
        segs = self.segments()
        for seg in segs:
            state, style = self.segment_state(seg)
            out.append(f"\n  {seg.segment:<4} {seg.local:<7}")
            out.append(f"{state:<22}", style=style)
            close = self._close(seg)
            if seg.done_at is None and not (close is not None and now is not None and now >= close):
                out.append(f"  {will_text(seg.will)}")
        if not segs and not problem:
            out.append("\n  cut-off: reading the risk status…")
        clients = self.clients()
        if clients:
            out.append("\n  clients nearest their MTM-loss limit (MTM, limit, % used):")
        for c in clients:
            out.append(f"\n  {c['client_id']:<8}")
            out.append(f" MTM {_money(c.get('mtm') or 0):>14}")
            limit = c.get("max_mtm_loss")
            out.append(f"  limit {_money(limit) if limit is not None else '-':>12}")
            pct = c.get("used_pct")
            out.append(f"  {float(pct):6.1f}%" if pct is not None else "       -", style=_pct_style(c))
            if c.get("alert_level"):
                out.append(f"  alert {c['alert_level']}%")
            if c.get("mode") == "squareoff":
                out.append("  ")
                out.append("SQUARE-OFF MODE: reduce-only", style=_SQ_MODE)
            if c.get("stale"):
                out.append("  prices stale", style="bold yellow")
        for at, severity, message in self.notices:
            style = "red" if severity == "error" else ("yellow" if severity == "warning" else None)
            out.append(f"\n  {at.astimezone(zone):%H:%M:%S} ", style="dim")
            out.append(message, style=style)
        return out


def _pct_style(c: dict) -> str | None:
    pct = c.get("used_pct")
    if pct is None:
        return None
    pct = float(pct)
    if pct >= 100:
        return "bold white on red"
    if pct >= 90:
        return "bold red"
    if pct >= 60:
        return "bold yellow"
    return None
