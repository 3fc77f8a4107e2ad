"""mainsim's durable book: one SQLite file, WAL + synchronous=FULL.

Every acknowledged change (orders, trades, positions and the events that announce
them) is written in ONE transaction before the HTTP reply or the broadcast, so a
kill -9 loses nothing that was acknowledged.  Rows hold the wire model's JSON:
the store never needs to know more about an order than the wire does.

The replication log (the DR tier, mainsim/replication.py): every write appends, in the
SAME transaction, one ``rlog`` row holding the statements it ran (SQL + parameters as
JSON, bytes tagged ``{"b64": ...}``), so a standby that applies the rows in order holds
exactly the primary's database.  The statements are the fixed ones below (``WRITE_SQL``):
a standby executes no other.  The site's own state (role, epoch, what it follows) lives in
``site``, which the log never carries.  A standby's store is not ``writable``: only
``apply_rows`` changes it.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from contract import wire
from mainsim.tradingday import utcnow

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users(user_id TEXT PRIMARY KEY, role TEXT NOT NULL, salt BLOB NOT NULL, pw_hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS clients(client_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS limits(client_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instruments(
    exchange TEXT NOT NULL, symbol TEXT NOT NULL, data TEXT NOT NULL, last_price TEXT NOT NULL,
    PRIMARY KEY(exchange, symbol));
CREATE TABLE IF NOT EXISTS orders(
    num INTEGER PRIMARY KEY, order_id TEXT NOT NULL UNIQUE, client_order_id TEXT NOT NULL UNIQUE,
    request TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trades(num INTEGER PRIMARY KEY, trade_id TEXT NOT NULL UNIQUE, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS positions(
    client_id TEXT NOT NULL, exchange TEXT NOT NULL, symbol TEXT NOT NULL, product TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY(client_id, exchange, symbol, product));
CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY, client_id TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoint_keys(
    console_id TEXT PRIMARY KEY, public_key TEXT NOT NULL, registered_by TEXT NOT NULL, registered_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints(
    console_id TEXT NOT NULL, number INTEGER NOT NULL, seq INTEGER NOT NULL, head_hash TEXT NOT NULL,
    at TEXT NOT NULL, mode TEXT NOT NULL, reason TEXT NOT NULL, public_key TEXT NOT NULL, signature TEXT NOT NULL,
    witnessed_at TEXT NOT NULL, PRIMARY KEY(console_id, number));
CREATE INDEX IF NOT EXISTS ix_checkpoints_seq ON checkpoints(console_id, seq);
CREATE TABLE IF NOT EXISTS rlog(lsn INTEGER PRIMARY KEY, at TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS site(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# Every statement a logged write runs (and so the only ones a standby applies).
SQL_META = "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)"
SQL_USER = "INSERT INTO users VALUES(?,?,?,?)"
SQL_CLIENT = "INSERT INTO clients VALUES(?,?)"
SQL_LIMIT = "INSERT INTO limits VALUES(?,?)"
SQL_INSTRUMENT = "INSERT INTO instruments VALUES(?,?,?,?)"
SQL_ORDER_NEW = (
    "INSERT INTO orders(num, order_id, client_order_id, request, data) VALUES(?,?,?,?,?) "
    "ON CONFLICT(num) DO UPDATE SET data=excluded.data"
)
SQL_ORDER_UPDATE = "UPDATE orders SET data=? WHERE num=?"
SQL_TRADE = "INSERT INTO trades VALUES(?,?,?)"
SQL_POSITION = "INSERT OR REPLACE INTO positions VALUES(?,?,?,?,?)"
SQL_EVENT = "INSERT INTO events(seq, client_id, body) VALUES(?,?,?)"
SQL_PRUNE_EVENTS = "DELETE FROM events WHERE seq <= ?"
SQL_PRICE = "UPDATE instruments SET last_price=? WHERE exchange=? AND symbol=?"
SQL_CHECKPOINT_KEY = "INSERT OR REPLACE INTO checkpoint_keys VALUES(?,?,?,?)"

_CHECKPOINT_COLUMNS = (
    "console_id",
    "number",
    "seq",
    "head_hash",
    "at",
    "mode",
    "reason",
    "public_key",
    "signature",
    "witnessed_at",
)


@dataclass
class Changes:
    """What one acknowledged action changed; committed atomically by Store.commit."""

    orders: dict[str, tuple[int, wire.Order, str | None]] = field(
        default_factory=dict
    )  # id -> (num, order, request json)
    trades: list[tuple[int, wire.Trade]] = field(default_factory=list)
    positions: dict[tuple, wire.Position] = field(default_factory=dict)
    events: list[tuple[int, str, str]] = field(default_factory=list)  # (seq, client_id, message json)

    def __bool__(self) -> bool:
        return bool(self.orders or self.trades or self.positions or self.events)


def position_key(p: wire.Position) -> tuple[str, str, str, str]:
    return (p.client_id, p.exchange.value, p.symbol, p.product.value)


SQL_CHECKPOINT = (
    f"INSERT INTO checkpoints({', '.join(_CHECKPOINT_COLUMNS)}) "
    f"VALUES({', '.join('?' * len(_CHECKPOINT_COLUMNS))})"
)
WRITE_SQL = frozenset(
    {
        SQL_META,
        SQL_USER,
        SQL_CLIENT,
        SQL_LIMIT,
        SQL_INSTRUMENT,
        SQL_ORDER_NEW,
        SQL_ORDER_UPDATE,
        SQL_TRADE,
        SQL_POSITION,
        SQL_EVENT,
        SQL_PRUNE_EVENTS,
        SQL_PRICE,
        SQL_CHECKPOINT_KEY,
        SQL_CHECKPOINT,
    }
)
RLOG_RETENTION = 50_000  # rows kept for followers; one further behind takes a new base snapshot


class NotWritable(RuntimeError):
    """A write asked of a standby's store (only replication changes it)."""


def encode_param(value):
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value


def decode_param(value):
    if isinstance(value, dict):
        return base64.b64decode(value["b64"], validate=True)
    return value


class Store:
    def __init__(self, path: Path, rlog_retention: int = RLOG_RETENTION):
        self.path = Path(path)
        self.rlog_retention = max(1, rlog_retention)
        self.writable = True
        self.on_logged: Callable[[int], None] | None = None  # called with each new LSN, after COMMIT
        self._ops: list[list] | None = None
        self._open()

    def _open(self) -> None:
        self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # ----------------------------------------------------------------- the logged write path
    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One transaction whose statements (run through _x/_xm) are appended to rlog in it."""
        if not self.writable:
            raise NotWritable("this site is a standby: its store changes only by replication")
        self.db.execute("BEGIN IMMEDIATE")
        self._ops = []
        lsn = None
        try:
            yield
            if self._ops:
                cur = self.db.execute(
                    "INSERT INTO rlog(at, body) VALUES(?, ?)",
                    (utcnow().isoformat(), json.dumps(self._ops, separators=(",", ":"))),
                )
                lsn = cur.lastrowid
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        finally:
            self._ops = None
        if lsn is not None:
            self._logged(lsn)

    def _x(self, sql: str, params: tuple | list = ()) -> None:
        assert self._ops is not None and sql in WRITE_SQL, sql
        self.db.execute(sql, params)
        self._ops.append(["x", sql, [encode_param(v) for v in params]])

    def _xm(self, sql: str, rows: Iterable[tuple | list]) -> None:
        assert self._ops is not None and sql in WRITE_SQL, sql
        rows = list(rows)
        if not rows:
            return
        self.db.executemany(sql, rows)
        self._ops.append(["m", sql, [[encode_param(v) for v in r] for r in rows]])

    def _logged(self, lsn: int) -> None:
        if lsn % min(1000, self.rlog_retention) == 0:
            self.prune_rlog(lsn)
        if self.on_logged is not None:
            self.on_logged(lsn)

    def prune_rlog(self, head: int) -> None:
        """Keep the last rlog_retention rows (never fewer than one: the head gives the next LSN)."""
        self.db.execute("DELETE FROM rlog WHERE lsn <= ?", (head - self.rlog_retention,))

    # ----------------------------------------------------------------- replication reads and applies
    def head_lsn(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(lsn), 0) FROM rlog").fetchone()[0]

    def oldest_lsn(self) -> int:
        """The oldest LSN retained (0 when the log is empty)."""
        return self.db.execute("SELECT COALESCE(MIN(lsn), 0) FROM rlog").fetchone()[0]

    def rlog_after(self, after: int, limit: int) -> list[tuple[int, str, str]]:
        return self.db.execute(
            "SELECT lsn, at, body FROM rlog WHERE lsn > ? ORDER BY lsn LIMIT ?", (after, limit)
        ).fetchall()

    def rlog_at(self, lsn: int) -> str | None:
        row = self.db.execute("SELECT at FROM rlog WHERE lsn=?", (lsn,)).fetchone()
        return row[0] if row else None

    def apply_rows(self, rows: list[tuple[int, str, str, list]]) -> None:
        """A standby applies rows it validated (mainsim.replication): (lsn, at, body, ops); all of
        them in one transaction with the rows themselves, so its applied LSN is its rlog head."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for lsn, at, body, ops in rows:
                for kind, sql, params in ops:
                    if kind == "x":
                        self.db.execute(sql, params)
                    else:
                        self.db.executemany(sql, params)
                self.db.execute("INSERT INTO rlog(lsn, at, body) VALUES(?,?,?)", (lsn, at, body))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        every = min(1000, self.rlog_retention)
        if rows and rows[-1][0] // every > (rows[0][0] - 1) // every:  # crossed a multiple of it
            self.prune_rlog(rows[-1][0])

    def backup_to(self, dest: Path) -> int:
        """A consistent copy of the database in ``dest`` (sqlite3's backup API, on a connection of
        its own so it may run in another thread); returns the copy's LSN."""
        src = sqlite3.connect(str(self.path))
        try:
            dst = sqlite3.connect(str(dest))
            try:
                src.backup(dst)
                return dst.execute("SELECT COALESCE(MAX(lsn), 0) FROM rlog").fetchone()[0]
            finally:
                dst.close()
        finally:
            src.close()

    def install(self, snapshot: Path) -> None:
        """Replace this store's file by ``snapshot`` (same directory; already validated) and reopen."""
        self.db.close()
        for suffix in ("-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        os.replace(snapshot, self.path)
        self._open()

    # ----------------------------------------------------------------- the site's own state (never logged)
    def site(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM site WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_site(self, values: dict[str, str]) -> None:
        set_site(self.db, values)

    # ----------------------------------------------------------------- meta
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx():
            self._x(SQL_META, (key, value))

    def is_seeded(self) -> bool:
        return self.meta("seeded") == "1"

    # ----------------------------------------------------------------- seeding
    def write_seed(
        self,
        *,
        meta: dict[str, str],
        users: Iterable[tuple[str, str, bytes, bytes]],
        clients: list[wire.Client],
        limits: list[wire.ClientLimit],
        instruments: list[wire.Instrument],
        changes: Changes,
    ) -> None:
        with self._tx():
            self._xm(SQL_META, list(meta.items()))
            self._xm(SQL_USER, list(users))
            self._xm(SQL_CLIENT, [(c.client_id, c.model_dump_json()) for c in clients])
            self._xm(SQL_LIMIT, [(c.client_id, c.model_dump_json()) for c in limits])
            self._xm(
                SQL_INSTRUMENT,
                [(i.exchange.value, i.symbol, i.model_dump_json(), str(i.last_price)) for i in instruments],
            )
            self._write_changes(changes)
            self._x(SQL_META, ("seeded", "1"))

    # ----------------------------------------------------------------- loading
    def users(self) -> list[tuple[str, str, bytes, bytes]]:
        return self.db.execute("SELECT user_id, role, salt, pw_hash FROM users ORDER BY user_id").fetchall()

    def clients(self) -> list[wire.Client]:
        return [
            wire.Client.model_validate_json(r[0])
            for r in self.db.execute("SELECT data FROM clients ORDER BY client_id")
        ]

    def limits(self) -> list[wire.ClientLimit]:
        return [
            wire.ClientLimit.model_validate_json(r[0])
            for r in self.db.execute("SELECT data FROM limits ORDER BY client_id")
        ]

    def instruments(self) -> list[wire.Instrument]:
        out = []
        for data, last in self.db.execute(
            "SELECT data, last_price FROM instruments ORDER BY exchange, symbol"
        ):
            inst = wire.Instrument.model_validate_json(data)
            inst.last_price = Decimal(last)
            out.append(inst)
        return out

    def orders(self) -> list[tuple[int, wire.Order, wire.OrderRequest]]:
        return [
            (num, wire.Order.model_validate_json(data), wire.OrderRequest.model_validate_json(req))
            for num, data, req in self.db.execute("SELECT num, data, request FROM orders ORDER BY num")
        ]

    def trades(self) -> list[tuple[int, wire.Trade]]:
        return [
            (num, wire.Trade.model_validate_json(d))
            for num, d in self.db.execute("SELECT num, data FROM trades ORDER BY num")
        ]

    def positions(self) -> list[wire.Position]:
        return [
            wire.Position.model_validate_json(r[0]) for r in self.db.execute("SELECT data FROM positions")
        ]

    def max_seq(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]

    # ----------------------------------------------------------------- the one write path
    def commit(self, changes: Changes) -> None:
        if not changes:
            return
        with self._tx():
            self._write_changes(changes)

    def _write_changes(self, ch: Changes) -> None:
        for num, order, request in ch.orders.values():
            if request is not None:
                self._x(
                    SQL_ORDER_NEW,
                    (num, order.order_id, order.client_order_id, request, order.model_dump_json()),
                )
            else:
                self._x(SQL_ORDER_UPDATE, (order.model_dump_json(), num))
        self._xm(SQL_TRADE, [(n, t.trade_id, t.model_dump_json()) for n, t in ch.trades])
        self._xm(SQL_POSITION, [(*k, p.model_dump_json()) for k, p in ch.positions.items()])
        self._xm(SQL_EVENT, ch.events)

    # ----------------------------------------------------------------- witnessed audit checkpoints (mainsim.witness)
    def checkpoint_key(self, console_id: str) -> str | None:
        row = self.db.execute(
            "SELECT public_key FROM checkpoint_keys WHERE console_id=?", (console_id,)
        ).fetchone()
        return row[0] if row else None

    def register_checkpoint_key(self, console_id: str, public_key: str, user_id: str, at: str) -> None:
        """One key per console: a re-enrolled console's new key replaces the old one (one statement)."""
        with self._tx():
            self._x(SQL_CHECKPOINT_KEY, (console_id, public_key, user_id, at))

    def _checkpoint(self, where: str, args: tuple) -> dict | None:
        row = self.db.execute(
            f"SELECT {', '.join(_CHECKPOINT_COLUMNS)} FROM checkpoints WHERE {where}", args
        ).fetchone()
        return dict(zip(_CHECKPOINT_COLUMNS, row, strict=True)) if row else None

    def latest_checkpoint(self, console_id: str) -> dict | None:
        return self._checkpoint("console_id=? ORDER BY seq DESC, number DESC LIMIT 1", (console_id,))

    def checkpoint(self, console_id: str, number: int) -> dict | None:
        return self._checkpoint("console_id=? AND number=?", (console_id, number))

    def add_checkpoint(self, cp: dict) -> None:
        """Durable (synchronous=FULL, one statement) before main answers "witnessed"."""
        with self._tx():
            self._x(SQL_CHECKPOINT, tuple(cp[c] for c in _CHECKPOINT_COLUMNS))

    # ----------------------------------------------------------------- events and prices
    def events_between(self, after: int, upto: int) -> list[tuple[int, str, str]]:
        return self.db.execute(
            "SELECT seq, client_id, body FROM events WHERE seq > ? AND seq <= ? ORDER BY seq", (after, upto)
        ).fetchall()

    def prune_events(self, below_or_at: int) -> None:
        with self._tx():
            self._x(SQL_PRUNE_EVENTS, (below_or_at,))
            self._x(SQL_META, ("events_pruned_to", str(below_or_at)))

    def save_prices(self, prices: Iterable[tuple[str, str, str]]) -> None:
        with self._tx():
            self._xm(SQL_PRICE, [(p, e, s) for e, s, p in prices])


def set_site(db: sqlite3.Connection, values: dict[str, str]) -> None:
    """The site's own rows (role, epoch, following), on any connection (a snapshot's too)."""
    db.execute("CREATE TABLE IF NOT EXISTS site(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.executemany("INSERT OR REPLACE INTO site(key, value) VALUES(?, ?)", list(values.items()))
