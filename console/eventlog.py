"""Structured JSON-lines logs under the data dir, in Elastic Common Schema (ECS) field
names, so an ELK (or Loki) shipper reads them as they are.

One JSON object per line, made by ``ecs-logging``'s formatter: ``@timestamp``,
``log.level``, ``message`` (the text as the code wrote it), ``ecs.version``,
``service.name`` ("lifeboat"), ``log.logger``, ``log.origin``, ``process``, and
from what the code knows:

- ``event.action``: the ``event`` passed in ``extra=``;
- ``event.outcome``: ``failure`` for an error (level error or worse, an exception,
  an error id or type) or an action whose name says it failed or was refused;
  ``unknown`` for an action that only waits (busy, queued, stopped); otherwise from
  an ``outcome``/``status``/``state`` the line carries (rejected, not_sent, conflict,
  refused: failure; unknown, pending, sent, held, busy, stopped: unknown; any other:
  success); otherwise ``success`` for an info line that names an action, and
  ``unknown`` for the rest;
- ``user.name``: the user in the context (``set_context(user=...)``);
- ``error.id``, ``error.type``, ``error.message``: from ``log_error`` (or an
  ``error_id``/``error_type`` in ``extra=``, or the exception of ``log.exception``:
  its type and message, never its traceback);
- ``lifeboat.*``: our own fields: ``console_id`` and ``mode`` from the context, and
  every other ``extra=`` key as it is named there (``lifeboat.client_order_id``,
  ``lifeboat.seq``, ``lifeboat.reason``, ``lifeboat.from`` ...); a dict or a model
  stays nested under its key.

People see short messages with an error id; the same id is the line's ``error.id``.
Secrets never reach a line: any key that names one (password, token, secret,
signature, verifier, grant, authorization), at the top or nested at any depth in a
dict, a list, a dataclass or a pydantic model, is ``[redacted]``, and exceptions are
logged as their type and message only, never a traceback.

The lines name users, clients and orders, so the log folder is 0700 and every log
file, rotations included (10 MB x 5), 0600 (created so, not chmod-ed after: no
moment when another user could open one).  A log that cannot be written (a full
disk) costs one line on stderr, never a traceback over the command's own answer,
and ``log_error`` then gives no error id, since no line holds it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import logging.handlers
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ecs_logging import StdlibFormatter

SERVICE_NAME = "lifeboat"
_SECRET_WORDS = ("password", "token", "secret", "signature", "verifier", "grant", "authorization")
_context: dict = {"console_id": None, "user": None, "mode": None}
# ``extra=`` keys that are ECS error fields; ``event`` is event.action; every other key goes under lifeboat.*
_ERROR_KEYS = {"error_id": "id", "error_type": "type", "error_message": "message"}
_FAILED_WORDS = {"failed", "refused", "unreachable", "unreadable"}
_WAITING_WORDS = {"busy", "queued", "stopped"}
_FAILED_VALUES = {"rejected", "not_sent", "conflict", "refused", "failed", "error"}
_UNKNOWN_VALUES = {"unknown", "pending", "sent", "held", "busy", "stopped"}
_MAX_DEPTH = 8


@functools.lru_cache(maxsize=1024)
def _secret(key: str) -> bool:
    return any(w in key.lower() for w in _SECRET_WORDS)


def _clean(key: str, value: Any, depth: int = 0) -> Any:
    """A JSON-ready copy of ``value`` with every secret-named key redacted, however deep.
    Dots in keys become underscores (ECS reads a dot as one more level of nesting)."""
    if _secret(key):
        return "[redacted]"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if depth >= _MAX_DEPTH:
        return "[too deep]"
    if hasattr(value, "model_dump") and not isinstance(value, type):  # a pydantic model
        value = value.model_dump(mode="json")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k).replace(".", "_"): _clean(str(k), v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean("", v, depth + 1) for v in value]
    return str(value)


def _outcome(record: logging.LogRecord, action: str | None, ours: dict) -> str:
    if record.levelno >= logging.ERROR or record.exc_info or ours.get("error_id") or ours.get("error_type"):
        return "failure"
    words = set(action.split("_")) if action else set()
    if words & _FAILED_WORDS:
        return "failure"
    if words & _WAITING_WORDS:
        return "unknown"
    for key in ("outcome", "status", "state"):
        said = ours.get(key)
        if isinstance(said, str) and said:
            said = said.lower()
            if said in _FAILED_VALUES:
                return "failure"
            return "unknown" if said in _UNKNOWN_VALUES else "success"
    if action and record.levelno == logging.INFO:
        return "success"
    return "unknown"


class EcsLines(StdlibFormatter):
    """``ecs_logging.StdlibFormatter`` with our fields mapped to ECS names (see the module
    docstring), secrets redacted and no traceback.  The library makes the standard fields
    from a bare copy of the record (so no ``extra=`` key lands at the top, where it could
    collide with an ECS name); ours are then set as nested objects, which costs far less
    than the library's per-field de-dotting and merging (a 500-leg square-off logs 500 lines)."""

    def __init__(self) -> None:
        super().__init__(
            extra={"service.name": SERVICE_NAME},
            exclude_fields=("log.original",),  # the same text as ``message``
            ensure_ascii=False,
        )

    def format_to_ecs(self, record: logging.LogRecord) -> dict[str, Any]:
        std = self._LOGRECORD_DICT
        raw = vars(record)
        bare = logging.makeLogRecord({k: v for k, v in raw.items() if k in std})
        bare.exc_info = bare.exc_text = bare.stack_info = None  # never a traceback
        result = super().format_to_ecs(bare)  # the standard fields, nothing of ours
        ours = {k: v for k, v in raw.items() if k not in std and v is not None}
        lifeboat = {k: _clean(k, _context[k]) for k in ("console_id", "mode") if _context[k] is not None}
        error: dict[str, Any] = {}
        exc = record.exc_info[1] if isinstance(record.exc_info, tuple) else None
        if exc is not None:
            error["type"], error["message"] = type(exc).__name__, str(exc)[:500]
        action = None
        for key, value in ours.items():
            if key == "event":
                action = _clean(key, value)
            elif key in _ERROR_KEYS:
                error[_ERROR_KEYS[key]] = _clean(key, value)
            else:  # a dot would read as one more level of nesting
                lifeboat[key.replace(".", "_")] = _clean(key, value)
        event = {"outcome": _outcome(record, action if isinstance(action, str) else None, ours)}
        if action is not None:
            event["action"] = action
        result["event"] = event
        if error:
            result["error"] = error
        if _context["user"] is not None:
            result["user"] = {"name": _clean("user", _context["user"])}
        if lifeboat:
            result["lifeboat"] = lifeboat
        return result


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
        handler.setFormatter(EcsLines())
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
        extra={
            "event": event,
            "error_id": error_id,
            "error_type": type(exc).__name__,
            "error_message": str(exc)[:500],
            **extra,
        },
        stacklevel=2,  # log.origin: the caller, not this function
    )
    if any(
        getattr(h, "_lifeboat", False) and getattr(h, "failed", False) for h in logging.getLogger().handlers
    ):
        return None
    return error_id


def ready() -> bool:
    """Whether ``setup`` has installed the log file's handler (an error id then points to a line)."""
    return any(getattr(h, "_lifeboat", False) for h in logging.getLogger().handlers)
