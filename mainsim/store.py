"""mainsim's durable book: one SQLite file, WAL + synchronous=FULL.

Every acknowledged change (orders, trades, positions and the events that announce
them) is written in ONE transaction before the HTTP reply or the broadcast, so a
kill -9 loses nothing that was acknowledged.  Rows hold the wire model's JSON:
the store never needs to know more about an order than the wire does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from contract import wire

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
"""

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


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # ----------------------------------------------------------------- meta
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))

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
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for k, v in meta.items():
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (k, v))
            db.executemany("INSERT INTO users VALUES(?,?,?,?)", list(users))
            db.executemany(
                "INSERT INTO clients VALUES(?,?)", [(c.client_id, c.model_dump_json()) for c in clients]
            )
            db.executemany(
                "INSERT INTO limits VALUES(?,?)", [(c.client_id, c.model_dump_json()) for c in limits]
            )
            db.executemany(
                "INSERT INTO instruments VALUES(?,?,?,?)",
                [(i.exchange.value, i.symbol, i.model_dump_json(), str(i.last_price)) for i in instruments],
            )
            self._write_changes(changes)
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('seeded', '1')")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

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
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._write_changes(changes)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _write_changes(self, ch: Changes) -> None:
        db = self.db
        for num, order, request in ch.orders.values():
            if request is not None:
                db.execute(
                    "INSERT INTO orders(num, order_id, client_order_id, request, data) VALUES(?,?,?,?,?) "
                    "ON CONFLICT(num) DO UPDATE SET data=excluded.data",
                    (num, order.order_id, order.client_order_id, request, order.model_dump_json()),
                )
            else:
                db.execute("UPDATE orders SET data=? WHERE num=?", (order.model_dump_json(), num))
        db.executemany(
            "INSERT INTO trades VALUES(?,?,?)", [(n, t.trade_id, t.model_dump_json()) for n, t in ch.trades]
        )
        db.executemany(
            "INSERT OR REPLACE INTO positions VALUES(?,?,?,?,?)",
            [(*k, p.model_dump_json()) for k, p in ch.positions.items()],
        )
        db.executemany("INSERT INTO events(seq, client_id, body) VALUES(?,?,?)", ch.events)

    # ----------------------------------------------------------------- witnessed audit checkpoints (mainsim.witness)
    def checkpoint_key(self, console_id: str) -> str | None:
        row = self.db.execute(
            "SELECT public_key FROM checkpoint_keys WHERE console_id=?", (console_id,)
        ).fetchone()
        return row[0] if row else None

    def register_checkpoint_key(self, console_id: str, public_key: str, user_id: str, at: str) -> None:
        """One key per console: a re-enrolled console's new key replaces the old one (one statement)."""
        self.db.execute(
            "INSERT OR REPLACE INTO checkpoint_keys VALUES(?,?,?,?)", (console_id, public_key, user_id, at)
        )

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
        self.db.execute(
            f"INSERT INTO checkpoints({', '.join(_CHECKPOINT_COLUMNS)}) "
            f"VALUES({', '.join('?' * len(_CHECKPOINT_COLUMNS))})",
            tuple(cp[c] for c in _CHECKPOINT_COLUMNS),
        )

    # ----------------------------------------------------------------- events and prices
    def events_between(self, after: int, upto: int) -> list[tuple[int, str, str]]:
        return self.db.execute(
            "SELECT seq, client_id, body FROM events WHERE seq > ? AND seq <= ? ORDER BY seq", (after, upto)
        ).fetchall()

    def prune_events(self, below_or_at: int) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("DELETE FROM events WHERE seq <= ?", (below_or_at,))
            self.db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES('events_pruned_to', ?)", (str(below_or_at),)
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def save_prices(self, prices: Iterable[tuple[str, str, str]]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(
                "UPDATE instruments SET last_price=? WHERE exchange=? AND symbol=?",
                [(p, e, s) for e, s, p in prices],
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
