"""The dealer console (Textual).  Imported only when the screen opens: the CLI path never
imports Textual (console/cli.py imports this package inside the bare-command branch)."""

from __future__ import annotations

import sys
from pathlib import Path


def run_console(*, backend: str | None, home: Path | None, user: str | None) -> int:
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
    service = Service(backend_url=backend, home=home, user=user)
    try:
        LifeboatApp(service, config, user=user).run()
    finally:
        service.close()
    return int(ExitCode.OK)
