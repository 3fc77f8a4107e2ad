"""Opening the local store: integrity first, then migrations, then durable sessions.

Why it is built this way:

* A store is refused, untouched, when it is not SQLite, is corrupt, or was written
  by a newer Lifeboat: all three are checked on a read-only connection
  (``file:...?mode=ro``) *before* anything writes, so a bad file is never
  "repaired" into an empty book on an outage morning.
* A full disk or a disk I/O error is not a corrupt store (localstore.errors): the
  refusal says how much space there is and is needed, and how many journal entries
  main has not seen yet, and never advises moving aside a store that may hold them.
  Errors raised inside a Store's transactions carry the store's path
  (``errors.tag_store``), so ``disk_failure`` can say the same for a failed write.
* SQLite runs in WAL with ``synchronous=FULL`` (a commit is on disk before
  ``write()`` returns), foreign keys on and a busy timeout.  Python 3.11's sqlite3
  starts transactions on its own (and not for SELECT), so the driver's transaction
  control is switched off (``isolation_level=None``) and SQLAlchemy's ``begin``
  event emits the BEGIN: ``BEGIN IMMEDIATE`` for ``write()`` sessions (a
  read-then-write transaction cannot fail with SQLITE_BUSY_SNAPSHOT), plain
  ``BEGIN`` for ``read()`` sessions (a consistent snapshot).
* The store is a URL: on any other database (PostgreSQL for a desk's shared DR
  store) the same code runs without the SQLite pragmas.

Usage::

    store = open_store(store_path(home))
    with store.write() as session:          # BEGIN IMMEDIATE ... COMMIT (durable)
        session.add(...)
        audit.append(session, user_id=..., mode=..., action=..., payload={...})
    with store.read() as session:
        session.scalars(select(PositionRow)).all()
    store.close()
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url

from localstore import errors
from localstore.errors import StoreError
from localstore.journal_states import FINAL_STATES

if TYPE_CHECKING:  # the ORM is imported when a Session is first needed, not to open a store
    from sqlalchemy.orm import Session

SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 5000
_WRITE_OPTION = "lifeboat_write"
_CONSOLE_ID_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud over a phone
_CONSOLE_ID_LENGTH = 6
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Every Alembic revision this version knows, oldest first (a test keeps it equal to
# migrations/versions).  Known here so a routine open of an up-to-date store does
# not import Alembic at all (~0.3 s of a CLI command's start).
KNOWN_REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004", "0005", "0006", "0007")
HEAD_REVISION = KNOWN_REVISIONS[-1]

_FIX_CORRUPT = "move it aside (keep it for support) and run `lifeboat sync bod` to build a fresh store"
# SQLite checkpoints the write-ahead log into the store every 1000 pages by default, so
# the WAL grows to about 1000 pages between checkpoints (disk_report's need estimate)
_WAL_AUTOCHECKPOINT_PAGES = 1000
_SHM_BYTES = 32 * 1024  # the WAL index (-shm) a connection maps first


@dataclass
class Store:
    """An open local store.  ``write()`` and ``read()`` give Sessions; objects stay
    usable after the block (``expire_on_commit=False``).  ``write_core()`` and
    ``read_core()`` give Core Connections (hot paths, and commands that must start
    fast: the ORM is imported only when a Session is first asked for)."""

    engine: Engine
    url: URL
    path: Path | None  # the SQLite file, or None for a server database
    console_id: str
    _write_engine: Engine
    _sessionmakers: tuple | None = None

    def _makers(self) -> tuple:
        if self._sessionmakers is None:
            from sqlalchemy.orm import sessionmaker

            self._sessionmakers = (
                sessionmaker(bind=self._write_engine, expire_on_commit=False),
                sessionmaker(bind=self.engine, expire_on_commit=False),
            )
        return self._sessionmakers

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A Session in one write transaction (``BEGIN IMMEDIATE`` on SQLite), committed
        durably when the block ends, rolled back if it raises."""
        try:
            with self._makers()[0]() as session, session.begin():
                yield session
        except Exception as exc:
            errors.tag_store(exc, self.path)
            raise

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A Session for reads (one consistent snapshot); never commits anything.  The
        block's end closes the session (its transaction is rolled back) without
        expiring loaded objects, so they stay readable after the block."""
        try:
            with self._makers()[1]() as session:
                yield session
        except Exception as exc:
            errors.tag_store(exc, self.path)
            raise

    @property
    def write_engine(self) -> Engine:
        """The engine whose transactions begin as writers (``BEGIN IMMEDIATE`` on SQLite)."""
        return self._write_engine

    @contextlib.contextmanager
    def write_core(self, *, durable: bool = True) -> Iterator[Connection]:
        """A Core Connection in one write transaction (``BEGIN IMMEDIATE`` on SQLite),
        committed when the block ends, rolled back if it raises.  For the hot paths
        (journal writes): no ORM unit of work, no identity map.

        ``durable=False`` commits with ``synchronous=NORMAL`` on SQLite: in WAL mode still
        atomic and safe against a process crash, only an OS crash or power cut can lose
        it.  Only for bookkeeping whose loss is harmless by design (an acknowledgement
        time, a replay state move that is looked up by client_order_id anyway); the
        pragma is put back to FULL before the connection returns to the pool."""
        try:
            if durable or self.engine.dialect.name != "sqlite":
                with self.write_engine.begin() as conn:
                    yield conn
                return
            with self.write_engine.connect() as conn:
                raw = conn.connection.dbapi_connection  # outside any transaction: pragmas apply
                assert raw is not None  # a checked-out connection always holds its DBAPI connection
                raw.execute("PRAGMA synchronous = NORMAL")
                try:
                    with conn.begin():
                        yield conn
                finally:
                    raw.execute("PRAGMA synchronous = FULL")
        except Exception as exc:
            errors.tag_store(exc, self.path)
            raise

    @contextlib.contextmanager
    def read_core(self) -> Iterator[Connection]:
        """A Core Connection in one read transaction (a consistent snapshot), rolled back
        at the end of the block."""
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except Exception as exc:
            errors.tag_store(exc, self.path)
            raise

    def close(self) -> None:
        self.engine.dispose()


# --------------------------------------------------------------------------- opening


def open_store(target: str | Path, *, create: bool = True) -> Store:
    """Open (and if needed create and migrate) the store at ``target``: a file path or
    a SQLAlchemy URL.  Raises ``StoreError`` for a file that is not SQLite, is
    corrupt, is not a Lifeboat store, or has a newer schema (the file is left
    untouched), and for a missing store when ``create`` is False."""
    url = _to_url(target)
    path: Path | None = None
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
            raise StoreError(
                f"the local store must be a file, not {url.render_as_string(hide_password=True)!r}"
            )
        path = Path(url.database).expanduser().resolve()
        url = url.set(database=str(path))
        current = _check_sqlite_file(path, create=create)
        engine = _sqlite_engine(url)
    else:
        engine = create_engine(url, pool_pre_ping=True)
        current = _check_server_revision(engine, url)

    # two processes opening a new store at once (two `lifeboat status` of a script): one creates and
    # migrates it while the other may be told "database is locked" (switching a new file to WAL does not
    # wait for the busy timeout); the loser waits and tries again (migrating and the singletons are
    # idempotent), for twice the busy timeout at most
    patience = time.monotonic() + 2 * BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if current != HEAD_REVISION:
                _migrate(engine)
            write_engine = engine.execution_options(**{_WRITE_OPTION: True})
            console_id = _ensure_singletons(write_engine)
            return Store(engine, url, path, console_id, write_engine)
        except StoreError:
            engine.dispose()
            raise
        except Exception as exc:
            engine.dispose()
            if path is not None and "database is locked" in str(exc) and time.monotonic() < patience:
                time.sleep(0.1)
                continue
            kind = errors.disk_kind(exc)
            if path is not None and kind is not None:
                report = disk_report(path, kind)
                raise StoreError(
                    f"cannot open the local store: {report.sentence()}", path=path, kind=report.kind
                ) from exc
            where = path or url.render_as_string(hide_password=True)
            raise StoreError(f"cannot open the local store {where}: {exc}", path=path) from exc


def _to_url(target: str | Path) -> URL:
    if isinstance(target, Path) or "://" not in str(target):
        return URL.create("sqlite", database=str(Path(target).expanduser()))
    try:
        return make_url(str(target))
    except Exception as exc:
        raise StoreError(f"not a database URL: {target!r} ({exc})") from exc


# --------------------------------------------------------------------------- integrity (read-only)


def _check_sqlite_file(path: Path, *, create: bool) -> str | None:
    """Refuse a file that must not be touched; create an empty private file if missing.
    Returns the store's schema revision (None for a new store)."""
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a Lifeboat store; give the path of a file", path=path)
    if not path.exists() or path.stat().st_size == 0:
        if not create:
            raise StoreError(
                f"no local store at {path}; run `lifeboat login` or `lifeboat sync bod` to create it",
                path=path,
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(
                path, os.O_CREAT | os.O_WRONLY, 0o600
            )  # private; SQLite gives -wal/-shm the same mode
            os.close(fd)
        except OSError as exc:
            kind = errors.disk_kind(exc)
            if kind is None:
                raise
            report = disk_report(path, kind)
            raise StoreError(
                f"cannot create the local store: {report.sentence()}", path=path, kind=report.kind
            ) from exc
        return None
    try:
        with open(path, "rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        if errors.disk_kind(exc) is not None:
            raise _refusal(path, exc) from exc
        raise StoreError(f"cannot read the local store {path}: {exc.strerror}", path=path) from exc
    if header != SQLITE_HEADER:
        raise StoreError(
            f"{path} is not a SQLite database (it may be another program's file); "
            f"nothing was changed. Point --home elsewhere, or move it aside and run `lifeboat sync bod`",
            path=path,
        )
    # A read-only open of a WAL-mode file may create empty -wal/-shm files beside it;
    # when the file is refused, those we created are removed again.
    side_files = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    pre_existing = {p for p in side_files if p.exists()}
    try:
        return _check_readonly(path)
    except StoreError:
        for side in side_files:
            if (
                side not in pre_existing
                and side.exists()
                and (side.name.endswith("-shm") or side.stat().st_size == 0)
            ):
                with contextlib.suppress(OSError):
                    side.unlink()
        raise


def _check_readonly(path: Path) -> str | None:
    """quick_check and the schema revision, on a read-only connection."""
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise _refusal(path, exc, "cannot open the local store {path} read-only") from exc
    try:
        try:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise _corrupt_store(path, "; ".join(str(p) for p in problems[:3]))
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "alembic_version" in tables:
                revisions = [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
            else:
                revisions = []
        except sqlite3.DatabaseError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreError(
                    f"the local store {path} is locked by another process; try again",
                    path=path,
                    kind=errors.LOCKED,
                ) from exc
            raise _refusal(path, exc) from exc
    finally:
        conn.close()
    if not revisions and tables - {"sqlite_sequence"}:
        raise StoreError(
            f"{path} is a SQLite database but not a Lifeboat store (tables: {', '.join(sorted(tables)[:5])}); "
            f"nothing was changed. Point --home elsewhere",
            path=path,
        )
    return _check_known_revisions(revisions, str(path), path)


def _refusal(
    path: Path, exc: BaseException, what: str = "the local store {path} cannot be read"
) -> StoreError:
    """A refusal at open that names what failed: the disk (full, I/O error), the data
    (corrupt) or something else, which is then only reported (nothing was changed)."""
    kind = errors.disk_kind(exc)
    if kind is not None:
        report = disk_report(path, kind)
        return StoreError(f"cannot open the local store: {report.sentence()}", path=path, kind=report.kind)
    if errors.is_corruption(exc):
        return _corrupt_store(path, str(exc))
    return StoreError(f"{what.format(path=path)} ({exc}); nothing was changed", path=path)


def _corrupt_store(path: Path, detail: str) -> StoreError:
    """A corrupt store: moved aside and rebuilt, unless it may still hold journal entries
    main has not seen (a fresh store would orphan them)."""
    unsent, exact = count_unsent(path)
    if unsent == 0 and exact:
        advice = _FIX_CORRUPT
    elif unsent:
        advice = (
            f"it still holds {_entries(unsent, exact)} not yet replayed to main, so do not move it aside or "
            f"build a fresh store: keep it as it is and call support to recover them first"
        )
    else:
        why = (
            "its journal cannot be read"
            if unsent is None
            else "its write-ahead log could not be read with it"
        )
        advice = (
            f"{why}, and it may hold entries not yet replayed to main: copy it (with any -wal file beside "
            f"it) somewhere safe for support first, then {_FIX_CORRUPT}"
        )
    return StoreError(
        f"the local store {path} is corrupt ({detail}); {advice}", path=path, kind=errors.CORRUPT
    )


# --------------------------------------------------------------------------- a full or failing disk


@dataclass
class DiskReport:
    """The disk under a store that failed to read or write: figures for a person.

    ``need`` is an estimate of the free space the store must have to work: its own size
    again (a BOD rewrites the book in one transaction, whose pages all go to the
    write-ahead log first) plus the write-ahead log SQLite lets grow between automatic
    checkpoints (1000 pages) and the WAL index.  Generous for one order, about right
    for a BOD or a whole-book square-off, and small beside any real disk."""

    path: Path
    kind: str  # errors.DISK_FULL or errors.IO_ERROR
    free: int | None  # bytes free to this user on the store's filesystem; None if unknown
    need: int
    store_bytes: int
    no_inodes: bool  # the filesystem has no free inode (ENOSPC with bytes to spare)
    unsent: int | None  # journal entries main has not seen; None when unreadable
    unsent_exact: bool  # False: read without the write-ahead log, which holds newer changes

    def sentence(self) -> str:
        """What happened and what to do, as one sentence for a person."""
        where = f"the disk holding the local store {self.path}"
        free = "unknown space" if self.free is None else _human(self.free)
        if self.kind == errors.DISK_FULL:
            need = (
                f"about {_human(self.need)} needed (the store's {_human(self.store_bytes)} again, plus "
                f"{_human(self.need - self.store_bytes)} for its write-ahead log)"
            )
            if self.no_inodes:
                head = f"{where} has no free inodes left ({free} free there; {need})"
            elif self.free is not None and self.free >= self.need:
                head = (
                    f"{where} refused to let the store grow although {free} is free there (a disk quota, "
                    f"perhaps; {need})"
                )
            else:
                head = f"{where} is full: {free} free there, {need}"
            fix = "free space on that disk, then try again"
            state = "The store is not damaged: SQLite refuses a write it has no room for, it does not half-write it"
        else:
            head = f"{where} reported an I/O error with {free} free there"
            fix = "check the disk (the system log names the device) and call support with the error id"
            state = "That is the disk or its device failing, not a sign that the store's content is wrong"
        if self.unsent is None:
            held = (
                "its journal cannot be read now, and it may hold entries not yet replayed to main: "
                "do not move or delete it"
            )
        elif self.unsent == 0 and self.unsent_exact:
            held = "it holds no journal entries waiting for main: do not move or delete it all the same"
        else:
            held = (
                f"it holds {_entries(self.unsent, self.unsent_exact)} not yet replayed to main: "
                f"do not move or delete it"
            )
        return f"{head}. {state}; {held}. To go on, {fix}"


def disk_report(path: Path, kind: str) -> DiskReport:
    """Look at the filesystem under ``path`` after a disk error of ``kind``.  An I/O error
    with less free space than the store needs is reported as a full disk: SQLite turns an
    ENOSPC while growing its WAL index into SQLITE_IOERR_SHMSIZE and hides the errno."""
    store_bytes = 0
    page_size = 4096
    with contextlib.suppress(OSError):
        store_bytes = path.stat().st_size
        with open(path, "rb") as fh:
            header = fh.read(18)
        if header[:16] == SQLITE_HEADER:
            raw = int.from_bytes(header[16:18], "big")
            page_size = 65536 if raw == 1 else raw or page_size
    need = store_bytes + _WAL_AUTOCHECKPOINT_PAGES * page_size + _SHM_BYTES
    free: int | None = None
    no_inodes = False
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(path.parent).free
        st = os.statvfs(path.parent)
        no_inodes = st.f_files > 0 and st.f_favail == 0
    if kind == errors.IO_ERROR and ((free is not None and free < need) or no_inodes):
        kind = errors.DISK_FULL
    unsent, exact = count_unsent(path)
    return DiskReport(path, kind, free, need, store_bytes, no_inodes, unsent, exact)


def disk_failure(exc: BaseException) -> DiskReport | None:
    """The disk report for an error raised while using an open store (a write that could
    not commit), or None when ``exc`` is not the disk failing or names no store file."""
    kind = errors.disk_kind(exc)
    path = errors.tagged_store(exc)
    if kind is None or path is None:
        return None
    return disk_report(Path(path), kind)


def count_unsent(path: Path) -> tuple[int | None, bool]:
    """(journal entries not yet final, exact?) read without writing anything, also on a
    full disk: a plain read-only connection when the WAL index exists (an open store),
    else ``immutable=1``, which reads the main file alone (exact only when the WAL is
    empty).  (None, False) when the journal cannot be read at all."""
    final = ", ".join(f"'{state}'" for state in FINAL_STATES)
    sql = f"SELECT count(*) FROM journal WHERE state NOT IN ({final})"
    wal = path.with_name(path.name + "-wal")
    wal_empty = True
    with contextlib.suppress(OSError):
        wal_empty = wal.stat().st_size == 0
    attempts = [("immutable=1", wal_empty)]
    if path.with_name(path.name + "-shm").exists():
        attempts.insert(0, ("", True))
    for extra, exact in attempts:
        try:
            conn = sqlite3.connect(
                f"{path.as_uri()}?mode=ro" + (f"&{extra}" if extra else ""), uri=True, timeout=0.5
            )
            try:
                return int(conn.execute(sql).fetchone()[0]), exact
            finally:
                conn.close()
        except (sqlite3.Error, OSError):
            continue
    return None, False


def _entries(count: int, exact: bool) -> str:
    noun = "journal entry" if count == 1 else "journal entries"
    if exact:
        return f"{count} {noun}"
    return f"{count} {noun} as of its last checkpoint (its write-ahead log holds newer changes)"


def _human(size: int) -> str:
    """Bytes as df -h shows them (powers of 1024), with the unit spelt out."""
    if size < 1024:
        return f"{size} bytes"
    units = ("KiB", "MiB", "GiB", "TiB")
    value, i = size / 1024, 0
    while value >= 1024 and i < len(units) - 1:
        value, i = value / 1024, i + 1
    return f"{value:.1f} {units[i]}"


def _check_server_revision(engine: Engine, url: URL) -> str | None:
    from sqlalchemy import inspect, text

    where = url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            revisions = [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]
    except Exception as exc:
        engine.dispose()
        raise StoreError(f"cannot open the local store {where}: {exc}") from exc
    try:
        return _check_known_revisions(revisions, where, None)
    except StoreError:
        engine.dispose()
        raise


def _check_known_revisions(revisions: list[str], where: str, path: Path | None) -> str | None:
    unknown = [r for r in revisions if r not in KNOWN_REVISIONS]
    if unknown:
        advice = "upgrade lifeboat, or move the file aside and run `lifeboat sync bod`"
        unsent, exact = count_unsent(path) if path is not None else (0, True)
        if unsent or not exact:  # a fresh store would orphan what main has not seen
            held = (
                f"it holds {_entries(unsent, exact)} not yet replayed to main"
                if unsent
                else "it may hold journal entries not yet replayed to main"
            )
            advice = f"upgrade lifeboat ({held}, so do not move it aside)"
        raise StoreError(
            f"the local store {where} has schema revision {', '.join(unknown)}, newer than this Lifeboat "
            f"knows (up to {HEAD_REVISION}); {advice}. Nothing was changed",
            path=path,
        )
    return revisions[0] if len(revisions) == 1 else None


# --------------------------------------------------------------------------- engine, migrations


def _sqlite_engine(url: URL) -> Engine:
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # the begin event below emits BEGIN, not the driver
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = cur.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"cannot switch {url.database} to WAL (journal_mode is {mode})")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        # straight on the driver: through exec_driver_sql this costs ~40 us of bookkeeping
        # per transaction, twice per backup action (bench P4); errors surface as sqlite3's
        raw = conn.connection.dbapi_connection
        raw.execute("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE_OPTION) else "BEGIN")

    return engine


def _alembic_config():
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _migrate(engine: Engine) -> None:
    """Bring the schema to head inside one write transaction (DDL is transactional
    on SQLite once BEGIN is ours: a failed migration leaves the old schema).  Under
    BEGIN IMMEDIATE a second process opening a new store at the same time waits,
    then finds the schema at head and does nothing."""
    from alembic import command

    cfg = _alembic_config()
    with engine.execution_options(**{_WRITE_OPTION: True}).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


_SINGLETON_TABLES = (
    "audit_head",
    "sync_state",
    "replay_lease",
    "console_state",
    "policy",
    "order_id_counter",
)
# One statement: the console id, if every single-row table has its row (plain SQL, so
# a routine open needs neither the ORM nor the models).
_SINGLETONS_PRESENT = text(
    "SELECT console_id FROM console_identity WHERE id = 1"
    + "".join(f" AND EXISTS (SELECT 1 FROM {t} WHERE id = 1)" for t in _SINGLETON_TABLES)
)


def _ensure_singletons(write_engine: Engine) -> str:
    """Create the single-row tables on first open; return the console id.  Checked with
    a read first so a routine open does not take the write lock."""
    with write_engine.connect() as conn:
        console_id = conn.execute(_SINGLETONS_PRESENT).scalar()
    if console_id is not None:
        return console_id
    from sqlalchemy.orm import Session

    from localstore.models import (
        GENESIS_HASH,
        AuditHead,
        ConsoleIdentity,
        ConsoleState,
        OrderIdCounter,
        Policy,
        ReplayLease,
        SyncState,
    )

    with Session(write_engine, expire_on_commit=False) as session, session.begin():
        identity = session.get(ConsoleIdentity, 1)
        if identity is None:
            identity = ConsoleIdentity(id=1, console_id=new_console_id())
            session.add(identity)
        if session.get(AuditHead, 1) is None:
            session.add(AuditHead(id=1, last_id=0, last_hash=GENESIS_HASH, count=0))
        if session.get(SyncState, 1) is None:
            session.add(SyncState(id=1))
        if session.get(ReplayLease, 1) is None:
            session.add(ReplayLease(id=1))
        if session.get(ConsoleState, 1) is None:
            session.add(ConsoleState(id=1, mode="ONLINE"))
        if session.get(Policy, 1) is None:
            session.add(Policy(id=1, allow_new_exposure=False, killswitch=False, stale_after_minutes=30))
        if session.get(OrderIdCounter, 1) is None:
            session.add(OrderIdCounter(id=1, last_value=0))
        return identity.console_id


def new_console_id() -> str:
    """A short random id, e.g. ``C7K2QX``: stable once stored, unambiguous read aloud."""
    return "".join(secrets.choice(_CONSOLE_ID_ALPHABET) for _ in range(_CONSOLE_ID_LENGTH))


def rebind_console_id(conn: Connection, new_id: str) -> str:
    """Give this store the console id ``new_id`` in the caller's write transaction
    (sync.identity, at enrolment: a copied store must not issue its original's
    client_order_ids); returns the old id.  The caller updates ``Store.console_id``
    once the transaction has committed.  Entries already journaled keep their ids."""
    old = conn.execute(text("SELECT console_id FROM console_identity WHERE id = 1")).scalar_one()
    conn.execute(text("UPDATE console_identity SET console_id = :new WHERE id = 1"), {"new": new_id})
    return old
