"""The CLI runner: what every command that goes through the service shares.

console/cli.py declares the flags (cheap to import); the console/cmd_*.py modules do the
work through ``run`` here, imported only when such a command runs.  Every failure becomes
a short message on stderr with an error id (the same id is in the JSON log) and the
documented exit code; data goes to stdout (``emit_json``, ``out``).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, overload

from console import cli_advice, eventlog
from console.exitcodes import ExitCode
from console.service import Service, ServiceError
from console.service.errors import settle


class _LazyConsole:
    """A rich Console made on first use: `status --json` and other data-only runs
    never import rich (bench P7)."""

    def __init__(self, **options):
        self._options = options
        self._console = None

    def __getattr__(self, name):
        if self._console is None:
            import os

            from rich.console import Console

            options = dict(self._options)
            stream = sys.stderr if options.get("stderr") else sys.stdout
            if not stream.isatty() and "COLUMNS" not in os.environ:
                # piped into a file or a pager: rich would cut tables at 80 columns, and a
                # cut client_order_id ("352VTD-…") is useless to whoever reads it later
                options["width"] = 200
            self._console = Console(**options)
        return getattr(self._console, name)


err = _LazyConsole(stderr=True, highlight=False, soft_wrap=True)
out = _LazyConsole(highlight=False)


class UsageProblem(ServiceError):
    exit_code = ExitCode.USAGE
    code = "usage"  # the JSON error's reason


@overload
def read_password(g: Any, *, required: Literal[True] = ...) -> str: ...
@overload
def read_password(g: Any, *, required: bool) -> str | None: ...
def read_password(g: Any, *, required: bool = True) -> str | None:
    """--password-stdin for scripts; a prompt only on a terminal; else a usage error."""
    if g.password_stdin:
        line = g.password if getattr(g, "password", None) is not None else sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise UsageProblem("--password-stdin given but standard input had no password")
        return line
    if not required:
        return None
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    raise UsageProblem("no password: pass --password-stdin (scripts) or run on a terminal")


def _data_dir(home: Path | None) -> Path:
    """The data directory, made if need be (localstore.paths.data_dir), with its logs
    directory (0700): else a usage error naming it, since --home or LIFEBOAT_HOME is the
    person's own input (a file there, a parent that cannot be created ...).  What others
    could read there is said on stderr (localstore.paths.privacy_warnings)."""
    from localstore.paths import LOGS_DIRNAME, data_dir, privacy_warnings, private_dir

    try:
        path = data_dir(home)
        private_dir(path / LOGS_DIRNAME)
        for warning in privacy_warnings(path):
            err.print(f"lifeboat: warning: {warning}", markup=False)
        return path
    except OSError as exc:
        where = Path(home) if home is not None else Path(exc.filename or "the data directory")
        why = "it is a file, not a directory" if where.is_file() else (exc.strerror or type(exc).__name__)
        raise UsageProblem(
            f"cannot use {where} as the data directory: {why} (see --home / LIFEBOAT_HOME)"
        ) from None


def _dr_url(g) -> str | None:
    """The DR site (console.site_config); a bad one is a usage problem (exit 2)."""
    from console.service import dr_site

    try:
        return dr_site(g.home, getattr(g, "dr_backend", None), g.backend)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None


def run(g, action: Callable[[Service], Any]) -> int:
    """Run one command: build the service, set up logs, map errors to exit codes.

    This is the error boundary of every service command: a failure is one short line on
    stderr with an error id (the same id is in the JSON log) and the documented exit
    code; with --json it is also one ``{"ok": false, "error": {...}}`` object on stdout.
    The service's own failures come as ServiceErrors already logged (console.service's
    boundary); a failure of the command itself (a usage problem ...) is settled here."""
    service = None
    try:
        logs = _data_dir(g.home) / "logs"
        service = Service(backend_url=g.backend, home=g.home, user=g.user, dr_url=_dr_url(g))
        eventlog.setup(logs)
        eventlog.set_context(user=g.user)
        result = action(service)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure ends as a message and an exit code, never a traceback
        # an id only for a line really logged: before the log is set up there is none to point to
        problem = settle(exc)
        code = ExitCode(problem.exit_code)
        text = cli_advice.message(problem)
        if getattr(g, "as_json", False):
            from console.cli import emit_error_json

            emit_error_json(code, problem.code or "unexpected", text, problem.error_id)
        err.print(f"lifeboat: {text}" + (f" [{problem.error_id}]" if problem.error_id else ""), markup=False)
        return int(code)
    finally:
        if service is not None:
            service.close()


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=None, default=str) + "\n")
