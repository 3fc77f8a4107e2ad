"""The service's errors: one exception family (``ServiceError``) that every public
service method raises instead of whatever failed underneath (``translate`` and the
``boundary`` decorator), so a face catches exactly one type.

A ``ServiceError`` carries:

* ``exit_code``: the CLI's documented exit code (console.exitcodes);
* ``code``: a machine-readable reason (the ``reason`` of a ``--json`` failure): the
  policy rule, the backend's kind of failure, else the class name in snake case;
* ``message`` (also ``reason``): one neutral sentence for a person, with no face's
  wording in it (no CLI flag, no command to run);
* ``advice``: None, or a neutral key saying what would help (``ADVICE_*`` below) and
  ``advice_user`` whom it concerns: each face words its own advice from it (the CLI in
  console/cli_advice.py, the TUI in its screens);
* ``error_id``: the id of the log line that recorded it (console.eventlog), or None
  when no log is set up or the line could not be written.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from backend_client import errors as be
from console import eventlog
from console.exitcodes import ExitCode
from localstore.errors import StoreError

# what would help (ServiceError.advice): neutral keys, each face words its own advice
ADVICE_PASSWORD = "password"  # offline login needs the user's password
ADVICE_LOGIN = "login"  # nobody (or this user) has logged in online on this console
ADVICE_LOGIN_OR_PASSWORD = "login_or_password"  # no saved session: log in online, or give the password


class ServiceError(Exception):
    exit_code: int = ExitCode.UNEXPECTED
    code: str | None = None
    advice: str | None = None

    def __init__(self, message: str, *, advice: str | None = None, advice_user: str | None = None):
        super().__init__(message)
        self.message = message
        if advice is not None:
            self.advice = advice
        self.advice_user = advice_user
        self.error_id: str | None = None
        self.logged = False  # the boundary logged it (error_id is then its id, or None if the log failed)

    @property
    def reason(self) -> str:
        """The neutral sentence for a person (the same as ``message``)."""
        return self.message


class NotLoggedIn(ServiceError):
    exit_code = ExitCode.DENIED


class Denied(ServiceError):
    exit_code = ExitCode.DENIED


class RejectedByMain(ServiceError):
    exit_code = ExitCode.REJECTED


class MainUnavailable(ServiceError):
    exit_code = ExitCode.UNAVAILABLE


class StoreProblem(ServiceError):
    """The store was refused.  Corrupt is an integrity failure (exit 8); a full or failing
    disk is not (exit 1, reason disk_full / io_error): its store is intact and must be kept."""

    exit_code = ExitCode.UNEXPECTED

    def __init__(self, message: str, kind: str = "other"):
        super().__init__(message)
        if kind != "other":
            self.code = kind  # the --json reason (else the class name: store_problem)
        if kind == "corrupt":
            self.exit_code = ExitCode.INTEGRITY


class Refused(ServiceError):
    """Refused locally by policy or a risk check (exit 4); ``code`` says which rule."""

    exit_code = ExitCode.REJECTED

    def __init__(self, message: str, code: str = "refused"):
        super().__init__(message)
        self.code = code


class NotAccepted(ServiceError):
    """The journal write failed: the action was NOT accepted and nothing was written."""

    exit_code = ExitCode.UNEXPECTED


_DENIED_CODES = frozenset({"out_of_scope", "read_only", "supervisor_only"})


def translate(exc: BaseException) -> ServiceError:
    """Backend and store errors as the service's own, with a message for a person."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, be.Unauthorized):
        return Denied(f"the main system refused the session: {exc.message}")
    if isinstance(exc, be.Forbidden):
        return Denied(f"not allowed: {exc.message}")
    if isinstance(exc, (be.Rejected, be.IdempotencyConflict, be.NotFound)):
        return RejectedByMain(f"the main system rejected it: {exc.message}")
    if isinstance(exc, be.Unavailable):
        return MainUnavailable(f"the main system is unavailable: {exc.message}")
    if isinstance(exc, be.ProtocolError):
        return MainUnavailable(f"the main system answered something unreadable: {exc.message}")
    if isinstance(exc, StoreError):
        return StoreProblem(str(exc), exc.kind)
    from localstore.db import disk_failure
    from sync.identity import NotEnrolled
    from sync.offline import BackupImpossible, OfflineDenied
    from sync.trading.journal import JournalWriteFailed
    from sync.trading.policy import Refusal

    if isinstance(exc, Refusal):
        if exc.code in _DENIED_CODES:
            return Denied(f"not allowed: {exc.message}")
        return Refused(f"refused ({exc.code}): {exc.message}", exc.code)
    if isinstance(exc, OfflineDenied):
        denied = Denied(f"offline login refused: {exc.message}")
        if exc.reason:  # the --json reason: locked, throttled
            denied.code = exc.reason
        return denied
    if isinstance(
        exc, NotEnrolled
    ):  # this console's identity is not established on this home (sync.identity)
        return Denied(f"refused: {exc.message}")
    if isinstance(exc, BackupImpossible):
        if exc.local:  # a supervisor's decision or an unlock, in any mode: an authentication problem
            return Denied(f"not allowed: {exc.message}")
        return MainUnavailable(f"the main system is unavailable and {exc.message}")
    disk = disk_failure(exc)  # a write the disk refused (full, I/O error): say so, with figures
    if disk is not None and isinstance(exc, JournalWriteFailed):
        return NotAccepted(f"NOT accepted, nothing was journaled: {disk.sentence()}")
    if disk is not None:
        return NotAccepted(f"NOT accepted, nothing was done: {disk.sentence()}")
    if isinstance(exc, JournalWriteFailed):
        return NotAccepted(f"NOT accepted: {exc}; nothing was journaled, try again once the disk is fixed")
    import sqlite3

    from sqlalchemy.exc import OperationalError

    # a commit outside the journal (login audit ...) failed the same way; the journal's hot
    # statements run on the sqlite3 cursor (localstore.prepared), so its own errors come raw
    if isinstance(exc, (OperationalError, sqlite3.OperationalError)):
        why = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        return NotAccepted(f"NOT accepted: the local store could not commit ({why}); nothing was done")
    return ServiceError(f"{type(exc).__name__}: {exc}")


def inside(exc: Exception) -> ServiceError | None:
    """``exc`` translated where it happened (inside a service function, ``raise problem from
    exc``), or None for an error the service does not know (left for the boundary, which
    then reports it as unexpected).  Where the translation happens decides which causes
    ``reason_of`` looks at, so the functions that translated before the boundary existed
    still do (the --json reasons stay as they were)."""
    problem = translate(exc)
    return None if type(problem) is ServiceError or problem is exc else problem


def reason_of(exc: BaseException, problem: ServiceError) -> str:
    """A machine-readable reason beside the exit code: the rule or the backend's code when
    one is known, else the kind of failure (the class name in snake case)."""
    for source in (problem, exc, exc.__cause__):
        code = getattr(source, "code", None) or getattr(source, "kind", None)
        if isinstance(code, str) and code:
            return code
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(problem).__name__).lower()


def settle(exc: BaseException) -> ServiceError:
    """``exc`` as the ServiceError a face sees: translated, with its ``code`` and, once the
    log is set up, logged once with an ``error_id`` (event ``command_failed``, the original
    exception's type, as the CLI logged it before the service had a boundary)."""
    problem = translate(exc)
    if problem is not exc and problem.__cause__ is None:
        problem.__cause__ = exc
    if not problem.code:
        problem.code = reason_of(exc, problem)
    if not problem.logged and eventlog.ready():
        problem.error_id = eventlog.log_error("command_failed", exc)
        problem.logged = True
    return problem


P = ParamSpec("P")
R = TypeVar("R")


def boundary(fn: Callable[P, R]) -> Callable[P, R]:
    """The one error boundary of the service: every failure escaping ``fn`` (sync or async)
    leaves as a ServiceError (``settle``).  KeyboardInterrupt and cancellation pass."""
    if asyncio.iscoroutinefunction(fn):
        afn = cast(Callable[..., Awaitable[Any]], fn)

        @functools.wraps(fn)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await afn(*args, **kwargs)
            except Exception as exc:
                problem = settle(exc)
                if problem is exc:
                    raise
                raise problem from exc

        return cast(Callable[P, R], awrapper)

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            problem = settle(exc)
            if problem is exc:
                raise
            raise problem from exc

    return wrapper
