"""The local book's writer: the SQL behind the start-of-day snapshot (sync.bod) and the
live mirror (sync.mirror), which decide what to write; this module writes it.

Why Core statements inside the caller's Session transaction: a BOD replaces the whole
book and a busy stream is thousands of events a second; one executemany per table
costs a fraction of the ORM's unit of work per row, and the caller's transaction
(``Store.write()``: BEGIN IMMEDIATE, durable commit) keeps each snapshot or batch
all-or-nothing.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, delete, insert, select, tuple_, update

from contract.enums import OPEN_STATUSES
from localstore import core_tables as t
from localstore import credentials
from localstore.db import Store

if TYPE_CHECKING:  # the ORM is not imported on the fast paths (tests/integration/test_perf_paths.py)
    from sqlalchemy.orm import Session

# the book, children first (a delete in this order never trips a foreign key)
BOOK_TABLES = (t.trades, t.orders, t.positions, t.client_limits, t.clients, t.instruments)


# --------------------------------------------------------------------------- the sync marks


def sync_marks(store: Store) -> tuple[int | None, datetime | None, datetime | None, int | None]:
    """(last_event_seq, last_event_at, last_applied_at, bod_seq) of ``sync_state``."""
    s = t.sync_state
    with store.read_core() as conn:
        row = conn.execute(
            select(s.c.last_event_seq, s.c.last_event_at, s.c.last_applied_at, s.c.bod_seq).where(s.c.id == 1)
        ).one()
    return row.last_event_seq, row.last_event_at, row.last_applied_at, row.bod_seq


def record_events(
    session: Session, newest_seq: int | None, newest_at: datetime | None, now: datetime
) -> tuple[int | None, datetime | None]:
    """A batch of events was applied: move the resume point to ``newest_seq`` (only
    forward; main's time ``newest_at`` moves the clock watermark), stamp the mirror
    current at ``now``.  Returns the (last_event_seq, last_event_at) now stored."""
    s = t.sync_state
    row = session.execute(select(s.c.last_event_seq, s.c.last_event_at).where(s.c.id == 1)).one()
    seq, at = row.last_event_seq, row.last_event_at
    values: dict[str, Any] = {"last_applied_at": now}
    if newest_seq is not None and newest_at is not None and (seq is None or newest_seq > seq):
        seq, at = newest_seq, newest_at
        values.update(last_event_seq=seq, last_event_at=at)
        credentials.observe_server_time(session, at)  # main's time: the clock watermark
    session.execute(update(s).where(s.c.id == 1).values(**values))
    return seq, at


def mark_current(store: Store, at: datetime | None) -> None:
    """The mirror was known current at ``at`` (a heartbeat with nothing pending)."""
    with store.write() as session:
        session.execute(update(t.sync_state).where(t.sync_state.c.id == 1).values(last_applied_at=at))


# --------------------------------------------------------------------------- the live mirror


def known_clients(session: Session, client_ids: set[str]) -> set[str]:
    """The ids among ``client_ids`` the local book holds."""
    if not client_ids:
        return set()
    c = t.clients.c.client_id
    return set(session.scalars(select(c).where(c.in_(client_ids))))


def insert_new_trades(session: Session, rows_by_id: dict[str, dict[str, Any]]) -> int:
    """Insert the trades (trade_id -> row values) the book does not hold yet; how many."""
    if not rows_by_id:
        return 0
    tid = t.trades.c.trade_id
    known = set(session.scalars(select(tid).where(tid.in_(list(rows_by_id)))))
    rows = [r for k, r in rows_by_id.items() if k not in known]
    if rows:
        session.execute(insert(t.trades), rows)
    return len(rows)


def upsert_newer(session: Session, table_name: str, key_names: tuple[str, ...], rows: dict) -> int:
    """Insert or update rows of ``table_name`` keyed by ``key_names`` (rows: key tuple ->
    row values with ``updated_seq``), skipping a row whose stored ``updated_seq`` is at or
    above the new one (a late or re-delivered event never rolls a row back).  One
    executemany each for the inserts and the updates; how many rows changed."""
    if not rows:
        return 0
    table = t.metadata.tables[table_name]
    key_cols = tuple(table.c[n] for n in key_names)
    where = key_cols[0].in_([k[0] for k in rows]) if len(key_cols) == 1 else tuple_(*key_cols).in_(list(rows))
    seen = {
        tuple(r[:-1]): r[-1] for r in session.execute(select(*key_cols, table.c.updated_seq).where(where))
    }
    inserts, updates = [], []
    for k, values in rows.items():
        if k not in seen:
            inserts.append(values)
        elif seen[k] is None or seen[k] < values["updated_seq"]:
            updates.append({**values, **{f"key_{n}": v for n, v in zip(key_names, k, strict=True)}})
    if inserts:
        session.execute(insert(table), inserts)
    if updates:
        session.execute(
            update(table).where(and_(*(table.c[n] == bindparam(f"key_{n}") for n in key_names))), updates
        )
    return len(inserts) + len(updates)


# --------------------------------------------------------------------------- start of day


def login_scope(session: Session, user_id: str) -> set[str] | None:
    """The client ids of ``user_id``'s online login (its signed grant's claims), or None
    when this console holds no offline credential for that user."""
    oc = t.offline_credentials
    grant = session.execute(select(oc.c.grant_json).where(oc.c.user_id == user_id)).scalar()
    return None if grant is None else set(json.loads(grant)["claims"]["client_ids"])


def clear_book(session: Session) -> None:
    """Delete the whole book (instruments, clients, limits, positions, orders, trades)."""
    for table in BOOK_TABLES:
        session.execute(delete(table))


def insert_rows(session: Session, table_name: str, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``table_name`` with one Core executemany (the ORM's bulk path
    costs about twice as much per row)."""
    if rows:
        session.execute(insert(t.metadata.tables[table_name]), rows)


def put_user(session: Session, user_id: str, role: Any, client_ids: list[str]) -> None:
    """The user row of ``user_id`` as the snapshot has it (inserted or updated)."""
    u = t.users
    ids = json.dumps(sorted(client_ids))
    if session.execute(select(u.c.user_id).where(u.c.user_id == user_id)).first() is None:
        session.execute(insert(u).values(user_id=user_id, role=role, client_ids=ids))
    else:
        session.execute(update(u).where(u.c.user_id == user_id).values(role=role, client_ids=ids))


def record_bod(
    session: Session, *, trading_date: date, seq: int, generated_at: datetime, now: datetime
) -> None:
    """A snapshot of ``trading_date`` (consistent with event ``seq``, generated by main at
    ``generated_at``) replaced the book at ``now``: the resume point and the clock watermark."""
    s = t.sync_state
    session.execute(
        update(s)
        .where(s.c.id == 1)
        .values(
            trading_date=trading_date,
            bod_at=now,
            bod_seq=seq,
            last_event_seq=seq,
            last_event_at=generated_at,
            last_applied_at=now,
        )
    )
    credentials.observe_server_time(session, generated_at)  # main's time moves the clock watermark


# --------------------------------------------------------------------------- reading


def snapshot_day(store: Store) -> tuple[int | None, date | None]:
    """(bod_seq, trading_date) of the snapshot the local book holds ((None, None): none yet)."""
    s = t.sync_state
    with store.read_core() as conn:
        row = conn.execute(select(s.c.bod_seq, s.c.trading_date).where(s.c.id == 1)).first()
    return (None, None) if row is None else (row.bod_seq, row.trading_date)


def local_client_ids(store: Store) -> set[str]:
    """The client ids of the local book."""
    with store.read_core() as conn:
        return set(conn.scalars(select(t.clients.c.client_id)))


def book_for_reconciliation(store: Store) -> tuple[list[Any], list[Any], set[str]]:
    """The local book as a reconciliation compares it (columns, not objects: a book can hold
    thousands of rows): positions (client_id, exchange, symbol, product, net_quantity),
    open orders (order_id, client_order_id, client_id, symbol, status), and the trade ids,
    from one consistent read."""
    p, o = t.positions.c, t.orders.c
    with store.read_core() as conn:
        positions = list(conn.execute(select(p.client_id, p.exchange, p.symbol, p.product, p.net_quantity)))
        open_orders = list(
            conn.execute(
                select(o.order_id, o.client_order_id, o.client_id, o.symbol, o.status).where(
                    o.status.in_(sorted(OPEN_STATUSES))
                )
            )
        )
        trades = set(conn.scalars(select(t.trades.c.trade_id)))
    return positions, open_orders, trades
