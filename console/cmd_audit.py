"""`lifeboat audit verify`: check the local store's hash-chained audit log.

Exit codes (console.exitcodes.ExitCode, CONTRACT.md):

* 0 -- the chain is intact (prints "audit chain intact: N rows" on stdout).
* 8 integrity -- the chain is broken (prints "audit chain broken at row N: <reason>"
  on stderr), or the store failed its own check (not SQLite, corrupt, newer schema:
  the store's own message on stderr).
* 7 busy -- another process holds the store locked; try again.
* 2 usage -- there is no store under --home (nothing to verify), or the data
  directory cannot be read.

Never a traceback.  Only this module touches localstore for the command, and only
when it runs, so `lifeboat --help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

from console.exitcodes import ExitCode


def verify_command(home: Path | None) -> int:
    """Verify the audit chain of the store under ``home`` (or LIFEBOAT_HOME / the
    platform data dir); print the outcome and return the exit code."""
    from localstore import audit
    from localstore.db import open_store
    from localstore.errors import StoreError
    from localstore.paths import store_path

    try:
        path = store_path(home)
        missing = not path.exists()
        store = open_store(path, create=False)
    except StoreError as exc:
        print(f"lifeboat: {exc}", file=sys.stderr)
        if missing:
            return int(ExitCode.USAGE)
        if "locked by another process" in str(exc):
            return int(ExitCode.BUSY)
        return int(ExitCode.INTEGRITY)
    except OSError as exc:
        print(f"lifeboat: cannot open the data directory: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    try:
        with store.read() as session:
            result = audit.verify(session)
    finally:
        store.close()
    if result.ok:
        print(f"audit chain intact: {result.rows} rows")
        return int(ExitCode.OK)
    print(f"audit chain broken at row {result.first_bad_id}: {result.reason}", file=sys.stderr)
    return int(ExitCode.INTEGRITY)
