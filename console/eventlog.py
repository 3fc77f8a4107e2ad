"""Structured JSON-lines logs under the data dir, ready for an ELK or Loki shipper.

One event per line: time, level, console_id, user, mode, event, message, and any
ids passed in ``extra=`` (client_order_id, seq, error_id ...).  People see short
messages with an error id; the same id is in the log line with the details.
Secrets never reach a line: keys that name one are redacted, and exception
tracebacks are logged as their type and message only through ``log_error``.

The lines name users, clients and orders, so the log folder is 0700 and every log
file, rotations included, 0600 (created so, not chmod-ed after: no moment when
another user could open one).  A log that cannot be written (a full disk) costs
one line on stderr, never a traceback over the command's own answer, and
``log_error`` then gives no error id, since no line holds it.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

_SECRET_WORDS = ("password", "token", "secret", "signature", "verifier", "grant")
_STD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_context: dict = {"console_id": None, "user": None, "mode": None}


def _clean(key: str, value):
    if any(w in key.lower() for w in _SECRET_WORDS):
        return "[redacted]"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            **_context,
            "event": getattr(record, "event", None) or record.getMessage(),
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and key != "event":
                line[key] = _clean(key, value)
        return json.dumps(line, ensure_ascii=False)


class _RotatingJsonLines(logging.handlers.RotatingFileHandler):
    """The stock rotating handler formats every record twice (once to decide on a
    rollover, once to write it): a 500-leg square-off logs 500 lines.  Here the second
    format reuses the first.  Files are opened 0600 (the new one after a rollover too);
    a failed write is one line on stderr for the whole process, and ``failed`` says
    whether the last record was lost."""

    _last: tuple | None = None
    failed = False
    _told = False

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)

    def emit(self, record: logging.LogRecord) -> None:
        self.failed = False
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        self.failed = True
        if not self._told:
            self._told = True
            why = sys.exc_info()[1]
            why = getattr(why, "strerror", None) or why
            sys.stderr.write(
                f"lifeboat: cannot write the log {self.baseFilename} ({why}); "
                f"its lines are lost until it can be written again\n"
            )

    def format(self, record: logging.LogRecord) -> str:
        last = self._last
        if last is not None and last[0] is record:
            return last[1]
        line = super().format(record)
        self._last = (record, line)
        return line


def setup(log_dir: Path, *, level: int = logging.INFO) -> Path:
    """Send the ``lifeboat`` and library loggers to ``log_dir/lifeboat.jsonl`` (rotating).
    ``log_dir`` is made 0700 if missing (localstore.paths.privacy_warnings tightens an
    older one)."""
    from localstore.paths import private_dir

    private_dir(log_dir)
    path = log_dir / "lifeboat.jsonl"
    root = logging.getLogger()
    if not any(getattr(h, "_lifeboat", False) for h in root.handlers):
        handler = _RotatingJsonLines(path, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8")
        handler._lifeboat = True  # type: ignore[attr-defined]
        handler.setFormatter(JsonLines())
        root.addHandler(handler)
        root.setLevel(level)
    return path


def set_context(**values) -> None:
    """Fields stamped on every line from now on (console_id, user, mode)."""
    _context.update({k: v for k, v in values.items() if k in _context})


def new_error_id() -> str:
    return "E-" + secrets.token_hex(3).upper()


def log_error(event: str, exc: BaseException, **extra) -> str | None:
    """Log an error with a fresh error id; returns the id to show the person, or None
    when the log file could not take the line (an id that points nowhere helps nobody)."""
    error_id = new_error_id()
    logging.getLogger("lifeboat").error(
        "%s: %s",
        type(exc).__name__,
        str(exc)[:500],
        extra={"event": event, "error_id": error_id, "error_type": type(exc).__name__, **extra},
    )
    if any(
        getattr(h, "_lifeboat", False) and getattr(h, "failed", False) for h in logging.getLogger().handlers
    ):
        return None
    return error_id


def ready() -> bool:
    """Whether ``setup`` has installed the log file's handler (an error id then points to a line)."""
    return any(getattr(h, "_lifeboat", False) for h in logging.getLogger().handlers)
