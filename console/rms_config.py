"""The risk rules' settings for this console: ``[rms]`` in its config.toml (sync.rms.settings
says what each key means).  Read with tomllib: the agent's and the CLI's start-up path
imports no Textual."""

from __future__ import annotations

from pathlib import Path

from localstore.trustfile import config_section
from sync.rms.settings import RmsConfigError, RmsSettings, parse

__all__ = ["RmsConfigError", "load"]


def load(home: Path) -> RmsSettings:
    """The [rms] settings (the defaults without a config or an [rms] table); a bad value
    raises RmsConfigError naming the file and the setting."""
    try:
        path, section = config_section(home, "rms")
    except ValueError as exc:
        raise RmsConfigError(str(exc)) from None
    return parse(section, where=str(path))
