"""Errors of the local store.

One exception type the faces (CLI, TUI) can catch and show as is: its message
names the file and tells a person what to do, because a refused store at 9:15 on
an outage morning must not need a developer to interpret a traceback.

What to do depends on what failed, so every refusal has a ``kind``.  A full disk
or a disk I/O error is not a damaged store: the advice for a corrupt store ("move
it aside and build a fresh one") would, on a full disk during an outage, orphan the
journal entries main has not seen yet.  ``disk_kind`` tells the disk's failures
apart from the data's, from SQLite's own error names (SQLITE_FULL, SQLITE_IOERR_*)
and errnos (ENOSPC, EDQUOT, EIO), wherever they sit in an exception's chain.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

# StoreError.kind: what failed, so a face can pick the advice and the exit code
CORRUPT = "corrupt"  # SQLITE_CORRUPT / SQLITE_NOTADB or a failed quick_check: exit 8
DISK_FULL = "disk_full"  # no space (or no inode, or over quota) on the store's filesystem
IO_ERROR = "io_error"  # the disk failed a read or write (EIO) with space to spare
LOCKED = "locked"  # another process holds the store
OTHER = "other"  # not SQLite, not a Lifeboat store, newer schema, missing, ...
DISK_KINDS = frozenset({DISK_FULL, IO_ERROR})

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class StoreError(Exception):
    """The store cannot be opened or used safely.  ``path`` is the file involved
    (None for a non-file URL); ``kind`` says what failed (the constants above);
    ``str(err)`` is a complete sentence for a person."""

    def __init__(self, message: str, *, path: Path | None = None, kind: str = OTHER) -> None:
        super().__init__(message)
        self.path = path
        self.kind = kind


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, the driver error a SQLAlchemy error wraps (``.orig``), and its causes."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        orig = getattr(e, "orig", None)
        todo += [orig if isinstance(orig, BaseException) else None, e.__cause__, e.__context__]


def disk_kind(exc: BaseException) -> str | None:
    """``DISK_FULL`` or ``IO_ERROR`` when ``exc`` (or what it wraps) is the disk failing
    rather than the data being wrong, else None.  SQLite's Python binding exposes no
    errno: SQLITE_IOERR_SHMSIZE (the WAL index could not be grown, which is what a
    store that was closed meets first on a full disk) counts as full, and another
    SQLITE_IOERR with less free space than the store needs is settled as full by
    ``localstore.db.disk_report``."""
    for e in _chain(exc):
        name = getattr(e, "sqlite_errorname", None) or ""
        if name in ("SQLITE_FULL", "SQLITE_IOERR_SHMSIZE"):
            return DISK_FULL
        if name.startswith("SQLITE_IOERR"):
            return IO_ERROR
        if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
            return DISK_FULL
        if isinstance(e, OSError) and e.errno == errno.EIO:
            return IO_ERROR
    return None


def is_corruption(exc: BaseException) -> bool:
    """SQLite says the file's content is wrong (not the disk, not a lock)."""
    return any(
        (getattr(e, "sqlite_errorname", None) or "").startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
        for e in _chain(exc)
    )


def tag_store(exc: BaseException, path: Path | None) -> None:
    """Remember on ``exc`` which store file it came from, so whoever turns it into a
    message later (console.service.translate) can look at that file's disk."""
    if path is not None and getattr(exc, "lifeboat_store", None) is None:
        try:
            exc.lifeboat_store = path  # type: ignore[attr-defined]
        except AttributeError:  # an exception type without a __dict__
            pass


def tagged_store(exc: BaseException) -> Path | None:
    """The store file ``tag_store`` put on ``exc`` or on anything in its chain."""
    for e in _chain(exc):
        path = getattr(e, "lifeboat_store", None)
        if path is not None:
            return path
    return None
