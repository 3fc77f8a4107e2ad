"""The risk rules' settings for this console: ``[rms]`` in its config.toml (sync.rms.settings
says what each key means).  Read with tomllib: the agent's and the CLI's start-up path
imports no Textual."""

from __future__ import annotations

import tomllib
from pathlib import Path

from localstore.trustfile import _config_path
from sync.rms.settings import RmsConfigError, RmsSettings, parse

__all__ = ["RmsConfigError", "load"]


def load(home: Path) -> RmsSettings:
    """The [rms] settings (the defaults without a config or an [rms] table); a bad value
    raises RmsConfigError naming the file and the setting."""
    path = _config_path(home)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return RmsSettings()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RmsConfigError(f"{path}: cannot read the console's config ({exc})") from None
    return parse(data.get("rms"), where=str(path))
