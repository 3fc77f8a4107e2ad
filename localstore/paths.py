"""Where the console keeps its data.

Precedence: an explicit ``--home`` (passed in), then ``LIFEBOAT_HOME``, then the
platform's per-user data directory.  The directory holds the store, logs and
config of one console, so it is created private to the user (0700).
"""

from __future__ import annotations

import os
from pathlib import Path

STORE_FILENAME = "lifeboat.db"
HOME_ENV = "LIFEBOAT_HOME"


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
