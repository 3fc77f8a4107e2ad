"""The journal's data access: every statement on the ``journal`` table and the id
counter, for sync.trading.journal (which decides what to journal) and its readers.

Why it is built this way (the reasons behind the shapes; sync/trading/journal.py says
why a journal write is one durable transaction):

* Hot statements are built once (building and cache-keying a statement costs about as
  much as running it) and, on SQLite, run on the sqlite3 cursor inside the caller's
  transaction (``localstore.prepared``): Core's per-statement bookkeeping was most of a
  backup action (bench P4).
* Many rows go in with one driver executemany (``insert_many``): the statement compiled
  once per dialect, the columns' own bind processors applied directly (about 40 us a
  row of SQLAlchemy parameter machinery saved: most of a 1,000-leg square-off).
* The acknowledgement stamp commits with ``synchronous=NORMAL``: in WAL mode that is
  still atomic and survives a process crash (only an OS crash could lose it, and then
  the entry merely shows as "never acknowledged", the conservative side); it costs no
  fsync of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any

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
from sqlalchemy.exc import StatementError

from localstore.core_tables import KIND_PLACE, KIND_SQUARE_OFF, UNFINISHED_STATES
from localstore.core_tables import audit_head as _AUDIT_HEAD
from localstore.core_tables import journal as _JOURNAL
from localstore.core_tables import order_id_counter as _COUNTER
from localstore.db import Store
from localstore.prepared import Prepared

if TYPE_CHECKING:  # the ORM is not imported on the fast paths (tests/integration/test_perf_paths.py)
    from sqlalchemy.orm import Session

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
ROW_KEYS = [
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
_INSERT_ONE = Prepared(insert(_JOURNAL).returning(_JOURNAL.c.seq), column_keys=ROW_KEYS)
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


def take_numbers(conn: Connection, count: int) -> int:
    """Reserve ``count`` order-id numbers in the caller's write transaction; returns the first."""
    last = conn.execute(_TAKE, {"count": count}).scalar_one()
    return last - count + 1


def take_numbers_and_audit_head(conn: Connection, count: int) -> tuple[int, tuple[int, str, int] | None]:
    """``take_numbers``, and on SQLite the audit chain's head (last_id, last_hash, count) read
    by the same statement (None elsewhere, or before the first audit row): the audit append
    in the same write transaction then needs no read of its own."""
    if conn.dialect.name != "sqlite":  # a server database locks the audit head with FOR UPDATE itself
        return take_numbers(conn, count), None
    last, *head = _TAKE_WITH_HEAD.first(conn, {"count": count})
    return last - count + 1, None if head[0] is None else (head[0], head[1], head[2])


def reserve_numbers(store: Store, count: int) -> int:
    """``take_numbers`` in a durable transaction of its own (ids for orders sent online:
    committed, so never reused); returns the first."""
    with store.write_core() as conn:
        return take_numbers(conn, count)


_MANY_PLANS: dict = {}  # (dialect name, column keys) -> (SQL, keys in bind order, bind processors)


def insert_many(conn: Connection, rows: list[dict]) -> None:
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
        order = tuple(compiled.positiontup or ()) if compiled.positional else keys
        procs = tuple(_JOURNAL.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in order)
        plan = _MANY_PLANS[(dialect.name, keys)] = (compiled.string, order, procs)
    sql, order, procs = plan
    values_of = itemgetter(*order)
    try:
        # column by column: a column's processor runs once per distinct value (the rows of one
        # write share their times, user, mode, kind ...), and the per-row work is C (zip, a dict
        # lookup in a comprehension): about a third of a 1,000-leg square-off was this loop, row by row
        columns: list[Sequence[Any]] = list(zip(*(values_of(r) for r in rows), strict=True))
        for i, proc in enumerate(procs):
            if proc is not None:
                columns[i] = _converted(columns[i], proc)
        params: list = list(zip(*columns, strict=True))
        if not dialect.positional:
            params = [dict(zip(order, values, strict=True)) for values in params]
    except (LookupError, ValueError, TypeError) as exc:  # a value its column refuses: as Core reports it
        raise StatementError(f"({type(exc).__name__}) {exc}", sql, None, exc) from exc
    conn.exec_driver_sql(sql, params)


def _converted(column: Sequence[Any], proc: Callable[[Any], Any]) -> list:
    """``proc`` applied to every value of ``column``, once per distinct value (as is for
    unhashable values)."""
    try:
        distinct = set(column)
    except TypeError:  # an unhashable value: each on its own
        return [proc(v) for v in column]
    done = {v: proc(v) for v in distinct}
    return [done[v] for v in column]


def insert_entries(conn: Connection, rows: list[dict]) -> list[int]:
    """Insert journal rows; their seqs in the same order.  One row: INSERT ... RETURNING.
    Many: one executemany (RETURNING with a guaranteed order would cost one statement
    per row on SQLite), then the seqs of the first and last rows: one executemany in a
    write transaction numbers its rows consecutively (SQLite under BEGIN IMMEDIATE),
    and when the span is exactly len(rows) - 1 the rows in between can only hold the
    numbers in between, in order.  Otherwise (a server database whose sequence another
    session also drew from) every seq is looked up by its unique client_order_id."""
    if len(rows) == 1:
        return [_INSERT_ONE.scalar(conn, rows[0])]
    insert_many(conn, rows)
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


def acknowledge(store: Store, seqs: list[int], now: datetime) -> None:
    """Stamp ``acknowledged_at`` on entries ``seqs`` in one transaction committed with
    ``synchronous=NORMAL`` (no fsync of its own: see the module docstring)."""
    with store.write_core(durable=False) as conn:
        if len(seqs) == 1:
            _ACK_ONE.execute(conn, {"ack_seq": seqs[0], "ack_at": now})
        else:
            for i in range(0, len(seqs), 500):
                conn.execute(_ACK_MANY, {"ack_seqs": seqs[i : i + 500], "ack_at": now})


# --------------------------------------------------------------------------- reading


def entries(session, *, limit: int = 1000, unfinished_only: bool = False) -> list[dict]:
    q = select(_JOURNAL).order_by(_JOURNAL.c.seq).limit(limit)
    if unfinished_only:
        q = q.where(_JOURNAL.c.state.in_(UNFINISHED_STATES))
    out = []
    for r in session.execute(q).mappings():
        d = {k: _plain(v) for k, v in r.items()}
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


def _plain(value):
    if isinstance(value, datetime):
        return value.isoformat()
    return getattr(value, "value", value)


def count_unfinished(store: Store) -> int:
    """Journal entries the replay still has to send or look up (PENDING, SENT); held and
    conflict entries wait for a person and do not count."""
    with store.read_core() as conn:
        return (
            conn.execute(
                select(func.count()).select_from(_JOURNAL).where(_JOURNAL.c.state.in_(UNFINISHED_STATES))
            ).scalar()
            or 0
        )


def for_report(store: Store, trading_date: date, outstanding: Iterable[str]) -> list[dict[str, Any]]:
    """Journal rows (all columns) of ``trading_date`` or later, and every older one in one
    of the ``outstanding`` states, in seq order."""
    with store.read_core() as conn:
        rows = conn.execute(
            select(_JOURNAL)
            .where(or_(_JOURNAL.c.trading_date >= trading_date, _JOURNAL.c.state.in_(list(outstanding))))
            .order_by(_JOURNAL.c.seq)
        ).mappings()
        return [dict(r) for r in rows]


def in_states(store: Store, states: Iterable[str]) -> list[dict[str, Any]]:
    """Journal rows (all columns) in one of ``states``, in seq order."""
    with store.read_core() as conn:
        rows = conn.execute(
            select(_JOURNAL).where(_JOURNAL.c.state.in_(list(states))).order_by(_JOURNAL.c.seq)
        ).mappings()
        return [dict(r) for r in rows]


def entry(conn: Connection | Session, seq: int) -> dict[str, Any] | None:
    """Journal row ``seq`` (all columns), in the caller's transaction."""
    row = conn.execute(select(_JOURNAL).where(_JOURNAL.c.seq == seq)).mappings().first()
    return None if row is None else dict(row)


def set_state(conn: Connection | Session, seq: int, state: str, reason: str | None, now: datetime) -> None:
    """Move journal row ``seq`` to ``state`` with ``reason`` (a person's decision), in the
    caller's transaction."""
    conn.execute(
        update(_JOURNAL).where(_JOURNAL.c.seq == seq).values(state=state, state_reason=reason, updated_at=now)
    )


def states_of(store: Store, client_order_ids: list[str]) -> dict[str, tuple[str, str | None]]:
    """{client_order_id: (state, reason)} of the journal entries with those ids."""
    if not client_order_ids:
        return {}
    j = _JOURNAL.c
    with store.read_core() as conn:
        rows = conn.execute(
            select(j.client_order_id, j.state, j.state_reason).where(j.client_order_id.in_(client_order_ids))
        )
        return {r.client_order_id: (str(getattr(r.state, "value", r.state)), r.state_reason) for r in rows}
