"""Durable journal writes: the promise behind "accepted" in backup mode.

Why it is built this way:

* An intent is committed (BEGIN IMMEDIATE, ``synchronous=FULL``) *before* anyone
  is told it was accepted; ``acknowledge`` then stamps ``acknowledged_at`` once the
  answer went out.  A row with ``acknowledged_at`` NULL after a crash is
  "committed, never acknowledged": it is still replayed, and ``status`` lists it.
* Every intent gets a deterministic client_order_id,
  ``{console_id}-{yymmdd}-{n:06d}``, with ``n`` taken from ``order_id_counter`` in
  the same transaction, so ids are unique across consoles and days and a retry of
  the same entry reuses its id.  Orders sent online use the same allocator.
* One call is one transaction: a multi-leg square-off journals all its legs (and
  the cancels of the scope's open orders, and its audit row) or nothing.  A failed
  write (disk full, I/O error) rolls back and raises ``JournalWriteFailed``.
* The whole write runs on a Core Connection (``store.write_core()``): the checks,
  the rows and the audit append (``audit.append_core``) are plain statements; the
  ORM unit of work costs about 2 ms a row here (see FLOORS.md).  On SQLite the hot
  statements are compiled once and run on the sqlite3 cursor inside that same
  transaction (``localstore.prepared``): Core's per-statement bookkeeping was most of
  an action (bench P4).
* The acknowledgement commit runs with ``synchronous=NORMAL``: in WAL mode that is
  still atomic and survives a process crash (only an OS crash could lose it, and
  then the entry merely shows as "never acknowledged", the conservative side); it
  saves one fsync per accepted action.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

from contract import clock
from localstore import audit
from localstore.core_tables import FINAL_STATES, KIND_PLACE, KIND_SQUARE_OFF, STATE_PENDING, UNFINISHED_STATES
from localstore.core_tables import audit_head as _AUDIT_HEAD
from localstore.core_tables import journal as _JOURNAL
from localstore.core_tables import order_id_counter as _COUNTER
from localstore.db import Store
from localstore.prepared import Prepared
from sync.identity import check_enrolled

# Kinds and states are their stored strings here (localstore.core_tables): a caller may
# pass localstore.models.JournalKind members (str enums, equal to those strings).


class JournalWriteFailed(Exception):
    """The intent was NOT accepted: the store could not commit it (nothing was written)."""


@dataclass
class Intent:
    """One row to journal.  ``payload`` is the intent itself (side, quantity, prices ...)."""

    kind: Any  # a JournalKind member or its value ("PLACE", "SQUARE_OFF" ...)
    client_id: str
    exchange: Any = None
    symbol: str | None = None
    product: Any = None
    target_order_id: str | None = None
    target_client_order_id: str | None = None
    payload: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Receipt:
    seq: int
    client_order_id: str
    kind: Any  # a JournalKind member or its value ("PLACE", "SQUARE_OFF" ...)
    client_id: str


def format_client_order_id(console_id: str, trading_date: date, n: int) -> str:
    return f"{console_id}-{trading_date:%y%m%d}-{n:06d}"


# Hot-path statements built once (building and cache-keying a statement costs about
# as much as running it); values come in as bound parameters.
_TAKE = (
    update(_COUNTER)
    .where(_COUNTER.c.id == 1)
    .values(last_value=_COUNTER.c.last_value + bindparam("count", type_=BigInteger))
    .returning(_COUNTER.c.last_value)
)
# SQLite: the same bump also returns the audit chain's head (scalar subqueries in
# RETURNING), so the audit append needs no read of its own: one statement fewer per
# action.  Under BEGIN IMMEDIATE nobody else can move either until the commit.
_TAKE_WITH_HEAD = Prepared(
    update(_COUNTER)
    .where(_COUNTER.c.id == 1)
    .values(last_value=_COUNTER.c.last_value + bindparam("count", type_=BigInteger))
    .returning(
        _COUNTER.c.last_value,
        *(
            select(c).where(_AUDIT_HEAD.c.id == 1).scalar_subquery()
            for c in (_AUDIT_HEAD.c.last_id, _AUDIT_HEAD.c.last_hash, _AUDIT_HEAD.c.count)
        ),
    )
)
_ROW_KEYS = [
    "created_at",
    "trading_date",
    "console_id",
    "user_id",
    "mode",
    "kind",
    "client_order_id",
    "client_id",
    "exchange",
    "symbol",
    "product",
    "target_order_id",
    "target_client_order_id",
    "payload",
    "state",
    "attempts",
    "updated_at",
]  # the keys of the rows ``write`` builds
_INSERT_ONE = Prepared(insert(_JOURNAL).returning(_JOURNAL.c.seq), column_keys=_ROW_KEYS)
_FIRST_LAST = select(_JOURNAL.c.seq).where(
    _JOURNAL.c.client_order_id.in_([bindparam("f_first"), bindparam("f_last")])
)
_INSERT_MANY = insert(_JOURNAL)
_SEQS_OF = select(_JOURNAL.c.client_order_id, _JOURNAL.c.seq).where(
    _JOURNAL.c.client_order_id.in_(bindparam("coids", expanding=True))
)
_ACK_ONE = Prepared(
    update(_JOURNAL).where(_JOURNAL.c.seq == bindparam("ack_seq")).values(acknowledged_at=bindparam("ack_at"))
)
_ACK_MANY = (
    update(_JOURNAL)
    .where(_JOURNAL.c.seq.in_(bindparam("ack_seqs", expanding=True)))
    .values(acknowledged_at=bindparam("ack_at"))
)
_UNFINISHED_COLS = (
    _JOURNAL.c.kind,
    _JOURNAL.c.client_id,
    _JOURNAL.c.exchange,
    _JOURNAL.c.symbol,
    _JOURNAL.c.product,
    _JOURNAL.c.target_order_id,
    _JOURNAL.c.target_client_order_id,
    _JOURNAL.c.client_order_id,
    _JOURNAL.c.payload,
)
_OF_POSITION = (
    _JOURNAL.c.client_id == bindparam("k_client"),
    _JOURNAL.c.exchange == bindparam("k_exchange"),
    _JOURNAL.c.symbol == bindparam("k_symbol"),
    _JOURNAL.c.product == bindparam("k_product"),
    or_(*(_JOURNAL.c.state == s for s in UNFINISHED_STATES)),  # not IN: Prepared refuses expanding lists
    or_(_JOURNAL.c.kind == KIND_PLACE, _JOURNAL.c.kind == KIND_SQUARE_OFF),
)
_REDUCERS_OF_POSITION = Prepared(select(_JOURNAL.c.kind, _JOURNAL.c.payload).where(*_OF_POSITION))
# SQLite: the same sum in SQL (json_extract), one row back however many entries a
# position has pending (an outage's journal grows; decoding each payload did not scale)
_PAYLOAD = type_coerce(_JOURNAL.c.payload, JSON)
_REDUCED_OF_POSITION = Prepared(
    select(
        func.max(case((_JOURNAL.c.kind == KIND_SQUARE_OFF, 1), else_=0)).label("square_off"),
        func.sum(
            case(
                (
                    and_(_JOURNAL.c.kind == KIND_PLACE, _PAYLOAD["side"].as_string() == bindparam("k_side")),
                    _PAYLOAD["quantity"].as_integer(),
                ),
                else_=0,
            )
        ).label("placed"),
    ).where(*_OF_POSITION)
)


def _take_numbers(conn, count: int) -> int:
    """Reserve ``count`` numbers in the caller's write transaction; returns the first."""
    last = conn.execute(_TAKE, {"count": count}).scalar_one()
    return last - count + 1


def allocate_ids(store: Store, trading_date: date, count: int = 1) -> list[str]:
    """client_order_ids for orders sent online (committed, so never reused).  Only from the
    console enrolled on this home (sync.identity: a copied store would issue its original's ids)."""
    check_enrolled(store)
    try:
        with store.write_core() as conn:
            first = _take_numbers(conn, count)
    except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
        raise JournalWriteFailed(f"could not reserve an order id in the local store: {_why(exc)}") from exc
    return [format_client_order_id(store.console_id, trading_date, first + i) for i in range(count)]


def _why(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) if isinstance(exc, DBAPIError) else None
    return str(orig or exc).splitlines()[0][:200]


def _json_default(value: Any):
    if hasattr(value, "value"):
        return value.value
    return str(value)


_PAYLOAD_JSON = json.JSONEncoder(sort_keys=True, default=_json_default)  # one encoder, not one per row


def write(
    store: Store,
    intents: list[Intent] | Callable[[Connection], list[Intent]],
    *,
    user_id: str,
    mode: str,
    trading_date: date,
    audit_action: str,
    audit_payload: dict | None = None,
    now: datetime | None = None,
) -> list[Receipt]:
    """Journal ``intents`` and one audit row in ONE durable transaction; returns their
    receipts in order.  ``intents`` may be a function of the write Connection (Core):
    it runs inside the transaction (BEGIN IMMEDIATE), so checks made there against the
    book and the journal cannot be raced by another writer; whatever it raises rolls
    the whole transaction back.  Raises JournalWriteFailed (nothing written) on any
    store error, sync.identity.NotEnrolled (nothing written) from a store that is not the
    console enrolled on this home."""
    check_enrolled(store)
    now = now or clock.utcnow()
    try:
        with store.write_core() as conn:
            if callable(intents):
                intents = intents(conn)
            if not intents:
                return []
            head = None
            if conn.dialect.name == "sqlite":
                last, *head = _TAKE_WITH_HEAD.first(conn, {"count": len(intents)})
                first = last - len(intents) + 1
                head = None if head[0] is None else tuple(head)
            else:  # a server database locks the audit head with FOR UPDATE in append_core
                first = _take_numbers(conn, len(intents))
            rows = []
            prefix = format_client_order_id(store.console_id, trading_date, 0)[:-6]  # "{console}-{yymmdd}-"
            for i, it in enumerate(intents):
                rows.append(
                    {
                        "created_at": now,
                        "trading_date": trading_date,
                        "console_id": store.console_id,
                        "user_id": user_id,
                        "mode": mode,
                        "kind": _v(it.kind),
                        "client_order_id": f"{prefix}{first + i:06d}",
                        "client_id": it.client_id,
                        "exchange": it.exchange,
                        "symbol": it.symbol,
                        "product": it.product,
                        "target_order_id": it.target_order_id,
                        "target_client_order_id": it.target_client_order_id,
                        "payload": _PAYLOAD_JSON.encode(it.payload),
                        "state": STATE_PENDING,
                        "attempts": 0,
                        "updated_at": now,
                    }
                )
            seqs = _insert(conn, rows)
            receipts = [
                Receipt(seq, r["client_order_id"], it.kind, r["client_id"])
                for seq, r, it in zip(seqs, rows, intents)
            ]
            summary = {
                "entries": [
                    {
                        "seq": r.seq,
                        "kind": _v(r.kind),
                        "client_order_id": r.client_order_id,
                        "client_id": r.client_id,
                    }
                    for r in receipts[:50]
                ],
                "count": len(receipts),
                **(audit_payload or {}),
            }
            audit.append_core(
                conn, user_id=user_id, mode=mode, action=audit_action, payload=summary, at=now, head=head
            )
    except JournalWriteFailed:
        raise
    except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
        raise JournalWriteFailed(f"the local store could not commit it: {_why(exc)}") from exc
    return receipts


_MANY_PLANS: dict = {}  # (dialect name, column keys) -> (SQL, keys in bind order, bind processors)


def _insert_many(conn: Connection, rows: list[dict]) -> None:
    """``_INSERT_MANY`` for many rows of the same keys: the statement is compiled once per
    dialect, each column's bind processor (the columns' own types: aware UTC times,
    enums by value, dates) is applied directly, and the driver's executemany gets plain
    tuples.  Same SQL and same stored values as ``conn.execute(_INSERT_MANY, rows)``,
    without SQLAlchemy's per-row parameter machinery (about 40 us a row here: most of
    a 1,000-leg square-off, bench P4)."""
    dialect = conn.dialect
    keys = tuple(rows[0])
    plan = _MANY_PLANS.get((dialect.name, keys))
    if plan is None:
        compiled = _INSERT_MANY.compile(dialect=dialect, column_keys=list(keys))
        order = tuple(compiled.positiontup) if compiled.positional else keys
        procs = tuple(_JOURNAL.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in order)
        plan = _MANY_PLANS[(dialect.name, keys)] = (compiled.string, order, procs)
    sql, order, procs = plan
    # a column's processor runs once per distinct value: the rows of one write share
    # their times, user, mode, kind ... (about a third of a 1,000-leg square-off)
    convert = [(i, _memo(p)) for i, p in enumerate(procs) if p is not None]
    values_of = itemgetter(*order)
    params = []
    try:
        for r in rows:
            values = list(values_of(r))
            for i, proc in convert:
                values[i] = proc(values[i])
            params.append(tuple(values) if dialect.positional else dict(zip(order, values)))
    except (LookupError, ValueError, TypeError) as exc:  # a value its column refuses: as Core reports it
        raise StatementError(f"({type(exc).__name__}) {exc}", sql, None, exc) from exc
    conn.exec_driver_sql(sql, params)


def _memo(proc):
    """``proc`` remembering its answers for hashable values (one call's worth)."""
    seen: dict = {}

    def run(value):
        try:
            return seen[value]
        except KeyError:
            out = seen[value] = proc(value)
            return out
        except TypeError:  # unhashable: as is
            return proc(value)

    return run


def _insert(conn: Connection, rows: list[dict]) -> list[int]:
    """Insert journal rows; their seqs in the same order.  One row: INSERT ... RETURNING.
    Many: one executemany (RETURNING with a guaranteed order would cost one statement
    per row on SQLite), then the seqs of the first and last rows: one executemany in a
    write transaction numbers its rows consecutively (SQLite under BEGIN IMMEDIATE),
    and when the span is exactly len(rows) - 1 the rows in between can only hold the
    numbers in between, in order.  Otherwise (a server database whose sequence another
    session also drew from) every seq is looked up by its unique client_order_id."""
    if len(rows) == 1:
        return [_INSERT_ONE.scalar(conn, rows[0])]
    _insert_many(conn, rows)
    ends = sorted(
        conn.scalars(
            _FIRST_LAST, {"f_first": rows[0]["client_order_id"], "f_last": rows[-1]["client_order_id"]}
        )
    )
    if len(ends) == 2 and ends[1] - ends[0] == len(rows) - 1:
        return list(range(ends[0], ends[1] + 1))
    coids = [r["client_order_id"] for r in rows]
    seq_of: dict[str, int] = {}
    for i in range(0, len(coids), 500):
        for coid, seq in conn.execute(_SEQS_OF, {"coids": coids[i : i + 500]}):
            seq_of[coid] = seq
    return [seq_of[c] for c in coids]


def acknowledge(store: Store, seqs: Iterable[int], now: datetime | None = None) -> None:
    """Stamp ``acknowledged_at`` on entries whose answer went out (cheap commit, see
    module docstring).  A failure here is logged by the caller, never un-accepts."""
    seqs = list(seqs)
    if not seqs:
        return
    now = now or clock.utcnow()
    with store.write_core(durable=False) as conn:
        if len(seqs) == 1:
            _ACK_ONE.execute(conn, {"ack_seq": seqs[0], "ack_at": now})
        else:
            for i in range(0, len(seqs), 500):
                conn.execute(_ACK_MANY, {"ack_seqs": seqs[i : i + 500], "ack_at": now})


# --------------------------------------------------------------------------- reading


def depth(session) -> int:
    return session.scalar(
        select(func.count()).select_from(_JOURNAL).where(_JOURNAL.c.state.not_in(FINAL_STATES))
    )


def unacknowledged(session, limit: int = 100) -> list[dict]:
    """Entries committed but never acknowledged (the process died before answering)."""
    rows = session.execute(
        select(
            _JOURNAL.c.seq,
            _JOURNAL.c.kind,
            _JOURNAL.c.client_order_id,
            _JOURNAL.c.client_id,
            _JOURNAL.c.symbol,
            _JOURNAL.c.state,
            _JOURNAL.c.created_at,
        )
        .where(_JOURNAL.c.acknowledged_at.is_(None))
        .order_by(_JOURNAL.c.seq)
        .limit(limit)
    )
    return [
        {
            "seq": r.seq,
            "kind": _v(r.kind),
            "client_order_id": r.client_order_id,
            "client_id": r.client_id,
            "symbol": r.symbol,
            "state": _v(r.state),
            "created_at": r.created_at.isoformat(),
        }
        for r in rows
    ]


def entries(session, *, limit: int = 1000, unfinished_only: bool = False) -> list[dict]:
    q = select(_JOURNAL).order_by(_JOURNAL.c.seq).limit(limit)
    if unfinished_only:
        q = q.where(_JOURNAL.c.state.in_(UNFINISHED_STATES))
    out = []
    for r in session.execute(q).mappings():
        d = {k: _v(v) for k, v in r.items()}
        d["payload"] = json.loads(r["payload"] or "{}")
        d["acknowledged"] = r["acknowledged_at"] is not None
        out.append(d)
    return out


def unfinished_for(session, client_ids: Iterable[str] | None = None, key: tuple | None = None) -> list[dict]:
    """Pending/sent intents (optionally for some clients, or one (client, exchange,
    symbol, product) position): what backup checks build on.  ``kind`` is the stored
    string ("PLACE" ...)."""
    q = select(*_UNFINISHED_COLS).where(_JOURNAL.c.state.in_(UNFINISHED_STATES))
    if client_ids is not None:
        q = q.where(_JOURNAL.c.client_id.in_(list(client_ids)))
    if key is not None:
        c, e, sym, p = key
        q = q.where(
            _JOURNAL.c.client_id == c,
            _JOURNAL.c.exchange == e,
            _JOURNAL.c.symbol == sym,
            _JOURNAL.c.product == p,
        )
    rows = session.execute(q.order_by(_JOURNAL.c.seq))
    return [{**dict(r._mapping), "payload": json.loads(r.payload or "{}")} for r in rows]


def reduced_by(reducers: list[tuple[str, dict]], net: int) -> int:
    """Quantity of a position already journaled to be reduced, from its unfinished
    (kind, payload) pairs (``position_reducers``): a pending SQUARE_OFF takes all of
    it; pending PLACEs on the reducing side add their quantity."""
    total = 0
    for kind, payload in reducers:
        if kind == KIND_SQUARE_OFF:
            return abs(net)
        if kind == KIND_PLACE:
            side = payload.get("side")
            if net and side == ("SELL" if net > 0 else "BUY"):
                total += int(payload.get("quantity", 0))
    return total


def position_reduced(conn, key: tuple, net: int) -> int:
    """``reduced_by`` for one (client, exchange, symbol, product) position with net
    quantity ``net``: on SQLite summed in one statement, elsewhere from the entries."""
    if conn.dialect.name != "sqlite":
        return reduced_by(position_reducers(conn, key), net)
    if not net:
        return 0
    c, e, sym, p = key
    row = _REDUCED_OF_POSITION.first(
        conn,
        {
            "k_client": c,
            "k_exchange": e,
            "k_symbol": sym,
            "k_product": p,
            "k_side": "SELL" if net > 0 else "BUY",
        },
    )
    if row is None or row.square_off is None:  # nothing pending
        return 0
    return abs(net) if row.square_off else int(row.placed or 0)


def position_reducers(conn, key: tuple) -> list[tuple[str, dict]]:
    """(kind, payload) of the unfinished PLACEs and SQUARE_OFFs of one (client, exchange,
    symbol, product) position: all a backup PLACE check needs from the journal (two
    columns, through the position index)."""
    c, e, sym, p = key
    return [
        (kind, json.loads(payload or "{}"))
        for kind, payload in _REDUCERS_OF_POSITION.all(
            conn, {"k_client": c, "k_exchange": e, "k_symbol": sym, "k_product": p}
        )
    ]


def _v(value):
    if isinstance(value, datetime):
        return value.isoformat()
    return getattr(value, "value", value)
