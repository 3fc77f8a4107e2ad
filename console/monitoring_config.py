"""The agent's monitoring settings: where the Alertmanager webhook's bearer token is.

``LIFEBOAT_ALERTMANAGER_TOKEN_FILE`` if set, else ``[monitoring] alertmanager_token_file``
in the console's config.toml (the file console/tui/config.py reads; a relative name is
relative to the config's folder).  The token is a secret: the file must not be readable
or writable by other users, the same rule ssh applies to a private key, and its text
never reaches a log line.  Read with tomllib (the agent's start-up path imports no Textual).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from localstore.trustfile import config_section

TOKEN_ENV = "LIFEBOAT_ALERTMANAGER_TOKEN_FILE"


class MonitoringConfigError(Exception):
    """The token file (or the config naming it) cannot be used; the message says why."""


def token_file(home: Path) -> Path | None:
    if os.environ.get(TOKEN_ENV):
        return Path(os.environ[TOKEN_ENV]).expanduser()
    try:
        path, section = config_section(home, "monitoring")
    except ValueError as exc:
        raise MonitoringConfigError(str(exc)) from None
    name = section.get("alertmanager_token_file") if isinstance(section, dict) else None
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise MonitoringConfigError(f"{path}: monitoring.alertmanager_token_file must be a file name")
    return (path.parent / Path(name).expanduser()).resolve()


def alert_token(home: Path) -> str | None:
    """The webhook's token, or None when none is configured (the webhook then refuses)."""
    path = token_file(home)
    if path is None:
        return None
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise MonitoringConfigError(f"the Alertmanager token file {path} cannot be read ({exc})") from None
    if st.st_mode & (stat.S_IROTH | stat.S_IWOTH | stat.S_IWGRP):
        raise MonitoringConfigError(
            f"the Alertmanager token file {path} is open to other users "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); make it 0600 (or 0640 for a group)"
        )
    if len(text) < 16 or not text.isprintable() or " " in text:
        raise MonitoringConfigError(
            f"the Alertmanager token file {path} must hold one token of at least 16 printable characters"
        )
    return text
