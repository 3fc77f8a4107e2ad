"""Where the console keeps its data.

Precedence: an explicit ``--home`` (passed in), then ``LIFEBOAT_HOME``, then the
platform's per-user data directory.  The directory holds the store, logs and
config of one console, so it is created private to the user (0700).

The store (offline grants, password verifiers, the journal) and the logs (users,
clients, orders) are for this user alone: files 0600, folders 0700.
``privacy_warnings`` checks a data directory made before that rule or by hand.
What Lifeboat alone writes (the store and its -wal/-shm, ``logs/`` and every log
file) is tightened, since nothing else has a reason to read it; the directory
itself is only warned about, because ``--home`` may name a folder the person uses
for other things too (even their own home), and everything Lifeboat keeps in it is
private on its own.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

STORE_FILENAME = "lifeboat.db"
LOGS_DIRNAME = "logs"
HOME_ENV = "LIFEBOAT_HOME"
_checked: dict[Path, list[str]] = {}  # data dir -> its warnings, checked once per process


def data_dir(home: Path | None = None) -> Path:
    """The console's data directory, created (mode 0700) if it does not exist yet."""
    if home is not None:
        path = Path(home)
    elif os.environ.get(HOME_ENV):
        path = Path(os.environ[HOME_ENV])
    else:
        from platformdirs import user_data_dir

        path = Path(user_data_dir("lifeboat", appauthor=False))
    path = path.expanduser()
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask
    return path


def store_path(home: Path | None = None) -> Path:
    """Path of the SQLite store inside the data directory (the directory is created)."""
    return data_dir(home) / STORE_FILENAME


def private_dir(path: Path) -> Path:
    """Make ``path`` (and missing parents) as a folder only this user can open (0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def privacy_warnings(home: Path) -> list[str]:
    """Sentences about the data directory ``home`` that others can read: the folder
    itself (warned about, left as it is) and anything of Lifeboat's inside it with a
    looser mode (tightened to 0600 / 0700, and said so).  Checked once per process;
    later calls return the first answer (the faces print it once)."""
    home = Path(home)
    if home in _checked:
        return _checked[home]
    warnings: list[str] = []
    mode = _mode(home)
    if mode is not None and mode & 0o077:
        warnings.append(
            f"the data directory {home} can be read by other users (mode {mode:04o}); "
            f"Lifeboat keeps its own files in it private, but run `chmod 700 {home}` to close it"
        )
    logs = home / LOGS_DIRNAME
    targets = [(logs, 0o700)] + [(f, 0o600) for f in sorted(logs.glob("lifeboat.jsonl*")) if f.is_file()]
    targets += [(home / (STORE_FILENAME + suffix), 0o600) for suffix in ("", "-wal", "-shm")]
    for path, private in targets:
        mode = _mode(path)
        if mode is None or not mode & 0o077:
            continue
        why = _tighten(path, private)
        if why is None:
            warnings.append(f"{path} could be read by other users (mode {mode:04o}); made it {private:04o}")
        else:
            warnings.append(
                f"{path} can be read by other users (mode {mode:04o}) and could not be made "
                f"{private:04o} ({why}); run `chmod {private:o} {path}`"
            )
    _checked[home] = warnings
    return warnings


def _tighten(path: Path, mode: int) -> str | None:
    """chmod a file of this user's; why not, or None when done.  Another user's file is
    left alone: it is not this console's to change."""
    try:
        if path.stat().st_uid != os.geteuid():
            return "it belongs to another user"
        os.chmod(path, mode)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
