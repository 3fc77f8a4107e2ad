"""The dealer console (Textual).  Imported only when the screen opens: the CLI path never
imports Textual (console/cli.py imports this package inside the bare-command branch)."""

from __future__ import annotations

import sys
from pathlib import Path


def run_console(
    *, backend: str | None, home: Path | None, user: str | None, dr_backend: str | None = None
) -> int:
    """Open the console against the configured backend; returns the process exit code."""
    from console.exitcodes import ExitCode
    from console.service import Service
    from console.tui.app import LifeboatApp
    from console.tui.config import ConfigError, load_config

    try:
        config = load_config(home=home)
    except ConfigError as exc:
        print(f"lifeboat: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    from console.service import dr_site
    from console.shutdown import EndOnSignal, tell_unsent

    try:
        dr = dr_site(home, dr_backend, backend)
    except ValueError as exc:
        print(f"lifeboat: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    service = Service(backend_url=backend, home=home, user=user, dr_url=dr)
    app = LifeboatApp(service, config, user=user)
    # closing the terminal (SIGHUP) or kill (SIGTERM) ends the console within seconds
    ender = EndOnSignal(
        request_exit=lambda code: app.call_from_thread(app.exit, return_code=code), last=[service.close]
    ).install()
    try:
        app.run()
        tell_unsent(service)  # on stderr once the screen is gone: what is not yet on main, who sends it
    finally:
        app.live.close()  # the runtime, the loop and its client end before the store closes
        service.close()
    return ender.exit_code or int(ExitCode.OK)
