"""The console's settings: a TOML file, found, read and checked before the screen opens.

Why checked up front: a dealer who mistypes a key name in the config must get one clear
sentence naming the file, the setting and what is allowed, not a traceback mid-session.

Where: ``LIFEBOAT_CONFIG`` if set, else ``config.toml`` in ``--home``/``LIFEBOAT_HOME`` if
one is given, else the platform's per-user config dir (platformdirs).  A missing file
means the defaults.  Example::

    [console]
    idle_lock_minutes = 10      # 0 turns the idle lock off
    theme = "textual-dark"

    [market_watch]
    symbols = ["NSE:RELIANCE", "NSE:INFY", "NFO:NIFTY-FUT"]

    [keys]                      # rebind by id (see `?` in the console)
    "order.buy" = "f1"
    "squareoff" = "f10,ctrl+o"  # several keys: comma-separated

    [monitoring]                # off by default; `lifeboat agent --metrics-port` is the usual way
    metrics_port = 9465         # the console also serves /metrics, /healthz, /alertmanager
    alertmanager_token_file = "/etc/lifeboat/alertmanager-token"
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from console.tui.keymap import KEY_IDS

CONFIG_ENV = "LIFEBOAT_CONFIG"
CONFIG_FILENAME = "config.toml"
_SYMBOL = re.compile(r"^(NSE|BSE|NFO):[A-Z0-9&_.-]{1,40}$")
_KEY = re.compile(r"^[a-z0-9_+]+(,[a-z0-9_+]+)*$")
# [trust] is read by localstore.trustfile (the CLI path, without Textual); here it is only allowed
_SECTIONS = {
    "console": {"idle_lock_minutes", "theme"},
    "market_watch": {"symbols"},
    "keys": None,
    "trust": {"grant_keys_file"},
    # [monitoring] is read by console/monitoring_config.py (the agent, without Textual); allowed here
    "monitoring": {"alertmanager_token_file", "metrics_port", "metrics_host"},
    # [rms] is read and checked by console/rms_config.py (sync.rms.settings); allowed here
    # [backend] dr_url: the broker's DR site, read by console/site_config.py; allowed here
    "backend": {"dr_url"},
    "rms": None,
}


class ConfigError(Exception):
    """The config file is unreadable or has a bad setting; the message names both."""


@dataclass
class ConsoleConfig:
    idle_lock_minutes: float = 15.0
    theme: str = "textual-dark"
    watch_symbols: list[str] = field(default_factory=list)  # "EXCH:SYMBOL"; empty: the book's instruments
    keys: dict[str, str] = field(default_factory=dict)  # binding id -> key(s)
    metrics_port: int | None = None  # [monitoring] metrics_port: the console serves /metrics (off by default)
    metrics_host: str = "127.0.0.1"
    path: Path | None = None  # where it was read from (None: defaults)


def config_path(home: Path | None = None) -> Path:
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser()
    home = home or (Path(os.environ["LIFEBOAT_HOME"]) if os.environ.get("LIFEBOAT_HOME") else None)
    if home is not None:
        return Path(home).expanduser() / CONFIG_FILENAME
    from platformdirs import user_config_dir

    return Path(user_config_dir("lifeboat", appauthor=False)) / CONFIG_FILENAME


def load_config(path: Path | None = None, *, home: Path | None = None) -> ConsoleConfig:
    """Read and check the config; defaults when the file does not exist."""
    path = path or config_path(home)
    if not path.exists():
        return ConsoleConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from None
    return parse_config(data, path)


def _key_names(keys: str) -> str:
    """Keys as people type them (``?``, ``ctrl+?``) into Textual's names (``question_mark``),
    the inverse of keymap.key_label; anything else is left for the check to judge."""
    from textual.keys import _character_to_key

    out = []
    for key in keys.replace(" ", "").split(","):
        *mods, last = key.rsplit("+", 1) if not key.endswith("++") else (key[:-2], "+")
        if len(last) == 1 and not last.isalnum():
            last = _character_to_key(last)
        out.append("+".join([*mods, last]))
    return ",".join(out)


def parse_config(data: dict, path: Path | None = None) -> ConsoleConfig:
    where = str(path) if path else "config"
    cfg = ConsoleConfig(path=path)
    for section, value in data.items():
        if section not in _SECTIONS:
            raise ConfigError(
                f"{where}: unknown section [{section}] (allowed: {', '.join(sorted(_SECTIONS))})"
            )
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: [{section}] must be a table")
        allowed = _SECTIONS[section]
        if allowed is not None:
            for name in value:
                if name not in allowed:
                    raise ConfigError(
                        f"{where}: unknown setting {section}.{name} (allowed: {', '.join(sorted(allowed))})"
                    )
    console = data.get("console", {})
    if "idle_lock_minutes" in console:
        v = console["idle_lock_minutes"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 24 * 60:
            raise ConfigError(
                f"{where}: console.idle_lock_minutes must be a number of minutes from 0 "
                f"(off) to 1440, not {v!r}"
            )
        cfg.idle_lock_minutes = float(v)
    if "theme" in console:
        v = console["theme"]
        if not isinstance(v, str) or not v:
            raise ConfigError(f"{where}: console.theme must be a theme name such as \"textual-dark\"")
        cfg.theme = v
    monitoring = data.get("monitoring", {})
    if "metrics_port" in monitoring:
        v = monitoring["metrics_port"]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535:
            raise ConfigError(
                f"{where}: monitoring.metrics_port must be a port number from 1 to 65535, not {v!r}"
            )
        cfg.metrics_port = v
    if "metrics_host" in monitoring:
        v = monitoring["metrics_host"]
        if not isinstance(v, str) or not v:
            raise ConfigError(f"{where}: monitoring.metrics_host must be an address such as \"127.0.0.1\"")
        cfg.metrics_host = v
    symbols = data.get("market_watch", {}).get("symbols", [])
    if not isinstance(symbols, list):
        raise ConfigError(f"{where}: market_watch.symbols must be a list such as [\"NSE:INFY\"]")
    for s in symbols:
        if not isinstance(s, str) or not _SYMBOL.match(s.upper()):
            raise ConfigError(
                f"{where}: market_watch.symbols has {s!r}: write EXCHANGE:SYMBOL, "
                f"exchange NSE, BSE or NFO (e.g. \"NSE:INFY\")"
            )
    cfg.watch_symbols = [s.upper() for s in symbols]
    for binding_id, keys in data.get("keys", {}).items():
        if isinstance(keys, str):
            keys = _key_names(keys)
        if binding_id not in KEY_IDS:
            raise ConfigError(
                f"{where}: keys.{binding_id} is not a key id; ids: {', '.join(sorted(KEY_IDS))}"
            )
        if not isinstance(keys, str) or not _KEY.match(keys.replace(" ", "")):
            raise ConfigError(
                f"{where}: keys.{binding_id} = {keys!r}: write Textual key names, "
                f"comma-separated (e.g. \"f1\" or \"ctrl+b,f1\")"
            )
        cfg.keys[binding_id] = keys.replace(" ", "")
    return cfg
