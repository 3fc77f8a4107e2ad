"""Every message the console's workers send to its screens, in one place.

Why typed messages: workers (threads running the service and the runtime) never touch
widgets; they post one of these (``post_message`` is thread-safe) and the screen that
cares handles it on the event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from textual.message import Message


class ModeChanged(Message):
    """The runtime's detector changed the console's mode (committed to the store)."""

    def __init__(self, mode: str, previous: str, reason: str, at: datetime) -> None:
        super().__init__()
        self.mode, self.previous, self.reason, self.at = mode, previous, reason, at


class LoginProbed(Message):
    """Login screen: whether main answered, so it can say ONLINE or OFFLINE."""

    def __init__(self, ok: bool, detail: str, latency_ms: float | None) -> None:
        super().__init__()
        self.ok, self.detail, self.latency_ms = ok, detail, latency_ms


class LoggedIn(Message):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how  # ONLINE | OFFLINE


class LoginFailed(Message):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


@dataclass
class Book:
    positions: list
    orders: list
    trades: list
    instruments: dict
    clients: list


class BookLoaded(Message):
    """The local book (positions, orders, trades, reference data) read in a worker."""

    def __init__(self, book: Book) -> None:
        super().__init__()
        self.book = book


class StatusSampled(Message):
    """A status sample for the status bar (service.status() plus the runtime's view)."""

    def __init__(self, status: dict) -> None:
        super().__init__()
        self.status = status


class JournalLoaded(Message):
    def __init__(self, entries: list[dict]) -> None:
        super().__init__()
        self.entries = entries


class ActionDone(Message):
    """A trading action came back (sent, journaled, or rejected with a reason)."""

    def __init__(self, result, summary: str, tag=None) -> None:
        super().__init__()
        self.result, self.summary, self.tag = result, summary, tag


class Unlocked(Message):
    pass


class UnlockFailed(Message):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


class Recovered(Message):
    """The runtime's automatic replay finished a pass (report None: it did not reconcile)."""

    def __init__(self, result, report: dict | None) -> None:
        super().__init__()
        self.result, self.report = result, report
        self.seen = time.monotonic()


class RuntimeStopped(Message):
    """The live session's runtime ended with an error (refused session, broken store ...)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class ReplayProgress(Message):
    """ "done/total" of the running replay pass (None: no pass runs), for the banner."""

    def __init__(self, progress: str | None) -> None:
        super().__init__()
        self.progress = progress


class HeldLoaded(Message):
    """The replay screen's data: the last reconciliation report and the entries held for a person."""

    def __init__(self, report: dict | None, held: list[dict], error: str | None = None) -> None:
        super().__init__()
        self.report, self.held, self.error = report, held, error


class HeldDecided(Message):
    """A supervisor's release or discard came back (row: the entry after; error: why not)."""

    def __init__(self, seq: int, release: bool, row: dict | None, error: str | None) -> None:
        super().__init__()
        self.seq, self.release, self.row, self.error = seq, release, row, error


class ReplayRan(Message):
    """ "Replay now" came back: the service's {"replay": ..., "report": ...} or why not."""

    def __init__(self, outcome: dict | None, error: str | None) -> None:
        super().__init__()
        self.outcome, self.error = outcome, error


class RiskNoticed(Message):
    """The risk rules (the runtime's RMS engine) want the dealer to see this now: a cut-off
    warning, the cut-off done or failed, an MTM alert (console/live.py RiskNotice)."""

    def __init__(
        self, kind: str, segment: str | None, message: str, severity: str, detail: dict | None
    ) -> None:
        super().__init__()
        self.kind, self.segment, self.message = kind, segment, message
        self.severity, self.detail = severity, detail


class RmsSampled(Message):
    """Service.rms_status() read in a worker: each segment's cut-off and what it will do, each
    client's MTM against its limit (``error``: why it could not be read)."""

    def __init__(self, status: dict | None, error: str | None = None) -> None:
        super().__init__()
        self.status, self.error = status, error
