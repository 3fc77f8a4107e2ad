"""`lifeboat audit verify [--json]`: check the local store's hash-chained audit log,
then the chain against every signed checkpoint (localstore.checkpoints: witnessed by
main or still queued for it) and, when main answers, main's latest witnessed one.

Why both: the chain's own links only show an edit nobody covered up; whoever edits
the store can recompute every later hash.  A signed checkpoint pins row ``seq``'s
hash with a key kept outside the store, and main keeps its own copy, so a rewritten
row before a checkpoint is found.  Rows after the newest checkpoint are reported as
not yet covered (nothing outside the store vouches for them), never as intact.

What it can name: the chain's own check names the exact row.  Against checkpoints it
names the stretch between the last signed head that still matches (row a) and the
first that does not (row b): "the first row that differs is one of rows a+1-b" (the
exact row when b = a+1); ``first_bad_row`` is a+1.

Exit codes (console.exitcodes.ExitCode, CONTRACT.md):

* 0 -- no row found broken: "audit chain intact: N rows, all covered ..." when a
  signed checkpoint covers the last row, else "rows 1-a match ...; rows a+1-N are not
  yet covered by a checkpoint" (``verdict`` "intact" or "uncovered" in --json).
* 8 integrity -- the chain is broken, a checkpoint does not match it, a checkpoint was
  deleted or refused by main ("audit chain broken at row N: <reason>" on stderr), or
  the store failed its own check (not SQLite, corrupt, newer schema: the store's own
  message on stderr).
* 7 busy -- another process holds the store locked; try again.
* 1 -- the disk under the store is full or failing (the message gives the free space
  and the journal entries the store holds): the chain could not be read, not found broken.
* 2 usage -- there is no store under --home (nothing to verify), or the data
  directory cannot be read.

With --json: one object on stdout, failures included (CONTRACT.md).  Main not
answering is not an error: the result says main was not asked and why.  Never a
traceback.  Only this module touches localstore for the command, and only when it
runs, so `lifeboat --help` stays fast.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

from console.exitcodes import ExitCode

MAIN_TIMEOUT_S = 3.0  # asking main is a bonus: a slow main must not hold the check up


def _emit(data: dict) -> None:
    sys.stdout.write(json.dumps(data, default=str) + "\n")


def _failure(
    code: ExitCode, reason: str, message: str, extra: dict | None = None, logs: Path | None = None
) -> dict:
    """The --json failure object; its error id names a line of the console's log
    (``logs``: none before a store was opened, so no id then)."""
    error_id = None
    if logs is not None:
        from console import eventlog

        eventlog.setup(logs)
        error_id = eventlog.new_error_id()
        logging.getLogger("lifeboat").warning(
            "%s", message, extra={"event": "audit_" + reason, "error_id": error_id}
        )
    return {
        "ok": False,
        "error": {
            "code": code.name.lower(),
            "exit_code": int(code),
            "reason": reason,
            "message": message,
            "error_id": error_id,
        },
        **(extra or {}),
    }


def verify_command(
    home: Path | None, *, backend: str | None = None, user: str | None = None, as_json: bool = False
) -> int:
    """Verify the audit chain of the store under ``home`` (or LIFEBOAT_HOME / the
    platform data dir); print the outcome and return the exit code."""
    if as_json:
        import contextlib
        import io

        said = io.StringIO()
        with contextlib.redirect_stderr(said):  # the store's own message goes into the JSON
            code = _open_and_verify(home, backend, user)
        if isinstance(code, int):
            reason = {ExitCode.USAGE: "no_store", ExitCode.BUSY: "store_locked"}.get(
                ExitCode(code), "store_refused"
            )
            _emit(_failure(ExitCode(code), reason, said.getvalue().strip().removeprefix("lifeboat: ")))
            return code
        return _report(*code, as_json=True)
    code = _open_and_verify(home, backend, user)
    return code if isinstance(code, int) else _report(*code, as_json=False)


def _open_and_verify(home: Path | None, backend: str | None, user: str | None):
    """The exit code when the store cannot be opened, else (chain result, coverage,
    what main said, the console's log folder)."""
    from localstore import audit, checkpoints
    from localstore.db import open_store
    from localstore.errors import DISK_KINDS, StoreError
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
        if exc.kind in DISK_KINDS:  # a full or failing disk: nothing is known to be wrong with the chain
            return int(ExitCode.UNEXPECTED)
        return int(ExitCode.INTEGRITY)
    except OSError as exc:
        print(f"lifeboat: cannot open the data directory: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    try:
        with store.read() as session:
            result = audit.verify(session)
        coverage, main_note = None, None
        if result.ok:
            main_latest, main_note = _ask_main(store, backend, user)
            with store.read_core() as conn:
                coverage = checkpoints.check(
                    conn, result.rows, trusted=checkpoints.trusted_keys(path.parent), main_latest=main_latest
                )
    finally:
        store.close()
    return result, coverage, main_note, path.parent / "logs"


def _ask_main(store, backend: str | None, user: str | None) -> tuple[dict | None, str]:
    """Main's latest witnessed checkpoint of this console (None when it has none or
    cannot be asked) and a sentence saying what happened."""
    from sqlalchemy import select

    from backend_client import checkpoints as wire_cp
    from backend_client.client import BackendClient
    from backend_client.errors import BackendError
    from localstore import secrets
    from localstore.models import UserRow

    if user is None:
        with store.read() as s:
            user = s.scalars(
                select(UserRow.user_id)
                .where(UserRow.last_online_login_at.is_not(None))
                .order_by(UserRow.last_online_login_at.desc())
                .limit(1)
            ).first()
    token = secrets.load_token(user) if user else None
    if token is None:
        return None, "main not asked: no saved session on this console (log in online to compare with main)"
    from console.service import DEFAULT_BACKEND

    async def ask():
        async with BackendClient(
            backend or DEFAULT_BACKEND,
            token=token,
            connect_timeout=MAIN_TIMEOUT_S,
            read_timeout=MAIN_TIMEOUT_S,
            retries=0,
        ) as c:
            return await wire_cp.latest(c, store.console_id)

    try:
        latest = asyncio.run(asyncio.wait_for(ask(), MAIN_TIMEOUT_S * 2))
    except (TimeoutError, BackendError) as exc:
        return None, f"main not asked: {getattr(exc, 'message', None) or 'no answer in time'}"
    if latest is None:
        return None, "main has witnessed no checkpoint of this console yet"
    return latest.model_dump(
        mode="json"
    ), f"main's latest witnessed checkpoint is #{latest.number} (row {latest.seq})"


def _report(result, coverage, main_note: str | None, logs: Path, *, as_json: bool) -> int:
    if not result.ok or not coverage.ok:
        bad = result if not result.ok else coverage
        message = f"audit chain broken at row {bad.first_bad_id}: {bad.reason}"
        if as_json:
            extra = {
                "verdict": "broken",
                "first_bad_row": bad.first_bad_id,
                "rows": bad.rows,
                "main": main_note,
                **({"coverage": coverage.as_dict()} if coverage is not None else {}),
            }
            _emit(_failure(ExitCode.INTEGRITY, "audit_chain_broken", message, extra, logs))
        else:
            print(message, file=sys.stderr)
            if main_note:
                print(main_note, file=sys.stderr)
        return int(ExitCode.INTEGRITY)
    if coverage.rows == 0:
        summary, verdict = "audit chain intact: no rows yet", "intact"
    elif coverage.uncovered is None:
        summary = (
            f"audit chain intact: {coverage.rows} rows, all covered by {coverage.covered_by} "
            f"(row {coverage.covered_to})"
        )
        verdict = "intact"
    else:
        from localstore.checkpoints import span

        first, last = coverage.uncovered
        to = coverage.covered_to
        done = f"{span(1, to)} {'matches' if to == 1 else 'match'} {coverage.covered_by}; " if to else ""
        summary = (
            f"audit chain: {coverage.rows} rows, links consistent; {done}{span(first, last)} "
            f"{'is' if first == last else 'are'} not yet covered by a checkpoint (nothing outside this "
            f"store vouches for {'it' if first == last else 'them'} yet)"
        )
        verdict = "uncovered"
    notes = [main_note] if main_note else []
    if coverage.untrusted:
        notes.append(
            f"checkpoint(s) #{', #'.join(map(str, coverage.untrusted))} are not signed by a key this "
            f"console holds: they prove nothing and were ignored"
        )
    if as_json:
        _emit(
            {
                "ok": True,
                "verdict": verdict,
                "exit_code": 0,
                "message": summary,
                "notes": notes,
                **coverage.as_dict(),
            }
        )
    else:
        print(summary)
        for note in notes:
            print(note, file=sys.stderr)
    return int(ExitCode.OK)
