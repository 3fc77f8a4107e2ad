"""The broker's trust file: the offline-grant keys this console may ever pin.

Why: the trust anchors (localstore.anchors) keep the grant keys outside the store, but
in the dealer's own keyring or config dir: whoever runs as the dealer can write them
too.  A broker who installs the console can name a file of key fingerprints that the
dealer cannot write (root-owned, e.g. ``/etc/lifeboat/grant-keys``), in the console's
config (``config.toml``, the file console/tui/config.py reads)::

    [trust]
    grant_keys_file = "/etc/lifeboat/grant-keys"

Each line of that file is ``KEY_ID SHA256`` (the hex SHA-256 of the raw 32-byte Ed25519
public key, as ``fingerprint`` gives it); ``#`` starts a comment.  Then an online login
pins only keys main publishes that the file lists (another key refuses the login,
exit 3: a man in the middle or a main system the broker did not vouch for), and offline
login uses only pins the file lists.  For the guarantee the config itself must be
where the dealer cannot write either (``LIFEBOAT_CONFIG`` pointing outside the home).

Read with tomllib and plain file reads: offline login is on the CLI's start-up path,
which must never import Textual (console/tui/config.py does).
"""

from __future__ import annotations

import base64
import hashlib
import os
import tomllib
from pathlib import Path
from typing import Any

CONFIG_ENV = "LIFEBOAT_CONFIG"  # the same setting console/tui/config.py reads
CONFIG_FILENAME = "config.toml"


class TrustFileError(Exception):
    """The trust file (or the config naming it) cannot be read, or main's keys are not in it."""


def fingerprint(public_key_b64: str) -> str:
    return hashlib.sha256(base64.b64decode(public_key_b64)).hexdigest()


def _config_path(home: Path) -> Path:
    """Where console/tui/config.py finds config.toml for this home (LIFEBOAT_CONFIG, else the home's)."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser()
    return Path(home) / CONFIG_FILENAME


def config_section(home: Path, name: str) -> tuple[Path, Any]:
    """(the config's path, its ``[name]`` table or None); no config file is no table.  A file
    that cannot be read or parsed raises ValueError saying so (each reader names its own error)."""
    path = _config_path(home)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return path, None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the console's config ({exc})") from None
    return path, data.get(name)


def configured(home: Path) -> Path | None:
    """The trust file the config names (relative to the config's folder), or None."""
    path = _config_path(home)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TrustFileError(
            f"{path}: cannot read the console's config for its [trust] section ({exc})"
        ) from None
    name = data.get("trust", {}).get("grant_keys_file") if isinstance(data.get("trust"), dict) else None
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise TrustFileError(f"{path}: trust.grant_keys_file must be a file name")
    return (path.parent / Path(name).expanduser()).resolve()


def listed(path: Path) -> dict[str, set[str]]:
    """{key_id: {fingerprints}} from the trust file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrustFileError(f"the broker's trust file {path} cannot be read ({exc})") from None
    keys: dict[str, set[str]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if (
            len(words) != 2
            or len(words[1]) != 64
            or any(c not in "0123456789abcdef" for c in words[1].lower())
        ):
            raise TrustFileError(
                f"{path} line {n}: write KEY_ID and the key's SHA-256 in hex, not {line.strip()!r}"
            )
        keys.setdefault(words[0], set()).add(words[1].lower())
    return keys


def untrusted(home: Path, keys: dict[str, str]) -> tuple[Path, list[str]] | None:
    """None when no trust file is configured; else (the file, the key ids of ``keys``
    ({key_id: base64}) it does not list with that very key)."""
    path = configured(home)
    if path is None:
        return None
    allowed = listed(path)
    return path, sorted(k for k, v in keys.items() if fingerprint(v) not in allowed.get(k, set()))
