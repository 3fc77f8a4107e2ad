"""The replay's data access: its lease row, the journal entries it works through, and
its state moves (sync.replay and sync.lease decide; this module holds their SQL).

Why the state moves commit with ``synchronous=NORMAL`` (``Store.write_core(durable=False)``)
and renew the lease in the same transaction: see sync/replay.py's docstring (a lost
move is looked up on main by client_order_id again; a replayer that lost its lease
cannot commit anything).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import Integer, String, bindparam, case, func, insert, select, update

from contract.enums import Exchange
from localstore import core_tables as t
from localstore.db import Store
from localstore.journal_states import STATE_PENDING, STATE_SENT

DEFAULT_STALE_AFTER_MINUTES = 30  # a policy row is always there; this is only its absence

_J = t.journal
_L = t.replay_lease
_WORK = (STATE_PENDING, STATE_SENT)
# One state move: renew the lease (only while we still hold it), then move the entry,
# both built once (building and cache-keying a statement costs about as much as running it).
_RENEW = (
    update(_L)
    .where(_L.c.id == 1, _L.c.holder == bindparam("b_holder"))
    .values(expires_at=bindparam("b_expires_at"))
)
_MOVE = (
    update(_J)
    .where(_J.c.seq == bindparam("b_seq"))
    .values(
        state=bindparam("b_state"),
        updated_at=bindparam("b_at"),
        state_reason=case(
            (bindparam("b_keep_reason", type_=Integer) == 1, _J.c.state_reason),
            else_=bindparam("b_reason", type_=String),
        ),
        main_order_id=func.coalesce(bindparam("b_main_order_id", type_=String), _J.c.main_order_id),
        attempts=_J.c.attempts + bindparam("b_sent", type_=Integer),
        sent_to=func.coalesce(bindparam("b_sent_to", type_=String), _J.c.sent_to),
    )
)


# --------------------------------------------------------------------------- the lease


def claim_lease(
    store: Store,
    holder: str,
    now: datetime,
    expires_at: datetime,
    holder_is_gone: Callable[[str], bool],
) -> tuple[bool, str | None, datetime | None, str | None]:
    """Take the replay lease for ``holder`` in one BEGIN IMMEDIATE transaction when it is
    free: nobody holds it, ``holder`` already does, it expired by ``now``, or
    ``holder_is_gone(current holder)``.  Returns (taken, holder, since, taken over from):
    on refusal the current holder and since when it holds it."""
    with store.write_core() as conn:
        row = conn.execute(select(_L.c.holder, _L.c.acquired_at, _L.c.expires_at).where(_L.c.id == 1)).first()
        if row is None:
            conn.execute(insert(_L).values(id=1))
            current, acquired, expires = None, None, None
        else:
            current, acquired, expires = row.holder, row.acquired_at, row.expires_at
        free = (
            current is None
            or current == holder
            or expires is None
            or expires <= now
            or holder_is_gone(current)
        )
        if not free:
            return False, current, acquired, None
        conn.execute(
            update(_L).where(_L.c.id == 1).values(holder=holder, acquired_at=now, expires_at=expires_at)
        )
    return True, holder, now, current if current and current != holder else None


def release_lease(store: Store, holder: str) -> None:
    """Give the lease up (only if ``holder`` still holds it)."""
    with store.write_core() as conn:
        conn.execute(
            update(_L)
            .where(_L.c.id == 1, _L.c.holder == holder)
            .values(holder=None, acquired_at=None, expires_at=None)
        )


def lease_holder(store: Store) -> str | None:
    """Who holds the replay lease now (None: nobody)."""
    with store.read_core() as conn:
        return conn.execute(select(_L.c.holder).where(_L.c.id == 1)).scalar()


# --------------------------------------------------------------------------- reading


def stale_after_minutes(store: Store) -> int:
    """The policy's age after which a journal entry is held for a supervisor, not sent."""
    with store.read_core() as conn:
        minutes = conn.execute(select(t.policy.c.stale_after_minutes).where(t.policy.c.id == 1)).scalar()
    return int(minutes) if minutes is not None else DEFAULT_STALE_AFTER_MINUTES


def work_after(store: Store, after_seq: int, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` PENDING/SENT journal entries after ``after_seq``, in seq order, as
    dicts of their columns (``payload`` decoded)."""
    with store.read_core() as conn:
        rows = (
            conn.execute(
                select(_J).where(_J.c.state.in_(_WORK), _J.c.seq > after_seq).order_by(_J.c.seq).limit(limit)
            )
            .mappings()
            .all()
        )
    out = []
    for r in rows:
        d = dict(r)
        d["payload"] = json.loads(d["payload"] or "{}")
        out.append(d)
    return out


def entry_state(store: Store, client_order_id: str) -> tuple[int, Any, str | None] | None:
    """(seq, state, state_reason) of the entry with ``client_order_id``, or None."""
    with store.read_core() as conn:
        r = conn.execute(
            select(_J.c.seq, _J.c.state, _J.c.state_reason).where(_J.c.client_order_id == client_order_id)
        ).first()
    return None if r is None else (r.seq, r.state, r.state_reason)


def instrument_prices(store: Store, exchange: str, symbol: str) -> tuple[Any, Any, Any] | None:
    """(tick size, lower band, upper band) of an instrument of the local book, or None."""
    i = t.instruments
    with store.read_core() as conn:
        row = conn.execute(
            select(i.c.tick_size, i.c.lower_band, i.c.upper_band).where(
                i.c.exchange == Exchange(exchange), i.c.symbol == symbol
            )
        ).first()
    return None if row is None else (row.tick_size, row.lower_band, row.upper_band)


def instrument_refs(
    store: Store, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[Any, Any, Any, Any, Any]]:
    """(freeze quantity, lot size, tick size, lower band, upper band) of each (exchange,
    symbol) of ``keys`` the local book holds, in one read (the replay's lanes look them
    up without a store call each)."""
    i = t.instruments
    wanted = set(keys)
    symbols = sorted({symbol for _, symbol in wanted})
    out: dict[tuple[str, str], tuple[Any, Any, Any, Any, Any]] = {}
    with store.read_core() as conn:
        for k in range(0, len(symbols), 500):
            rows = conn.execute(
                select(
                    i.c.exchange,
                    i.c.symbol,
                    i.c.freeze_quantity,
                    i.c.lot_size,
                    i.c.tick_size,
                    i.c.lower_band,
                    i.c.upper_band,
                ).where(i.c.symbol.in_(symbols[k : k + 500]))
            )
            for r in rows:
                key = (str(Exchange(r.exchange).value), r.symbol)
                if key in wanted:
                    out[key] = (r.freeze_quantity, r.lot_size, r.tick_size, r.lower_band, r.upper_band)
    return out


def instrument_limits(store: Store, exchange: str, symbol: str) -> tuple[int, int] | None:
    """(freeze quantity, lot size) of an instrument of the local book, or None."""
    i = t.instruments
    with store.read_core() as conn:
        row = conn.execute(
            select(i.c.freeze_quantity, i.c.lot_size).where(
                i.c.exchange == Exchange(exchange), i.c.symbol == symbol
            )
        ).first()
    return None if row is None else (row.freeze_quantity, row.lot_size)


# --------------------------------------------------------------------------- moving an entry


@dataclass(frozen=True)
class Move:
    """One state move of entry ``seq`` (to the journal state ``state``).  ``keep_reason``:
    the entry keeps its reason instead of ``reason``; ``sent`` counts an attempt."""

    seq: int
    state: Enum
    reason: str | None
    keep_reason: bool
    main_order_id: str | None
    sent: bool
    sent_to: str | None = None  # the site a SENT goes to (its base URL)


def move_entries(
    store: Store, *, holder: str, lease_expires_at: datetime, moves: Sequence[Move], now: datetime
) -> bool:
    """State moves of distinct entries and the renewal of ``holder``'s lease, in one
    transaction committed with ``synchronous=NORMAL`` (several replay lanes' moves, each
    committed before its own entry's next step).  False (nothing written) when ``holder``
    no longer holds the lease."""
    rows = [
        {
            "b_seq": m.seq,
            "b_state": m.state.value,
            "b_at": now,
            "b_reason": m.reason,
            "b_keep_reason": int(m.keep_reason),
            "b_main_order_id": m.main_order_id,
            "b_sent": int(m.sent),
            "b_sent_to": m.sent_to,
        }
        for m in moves
    ]
    with store.write_core(durable=False) as conn:
        renewed = conn.execute(_RENEW, {"b_holder": holder, "b_expires_at": lease_expires_at}).rowcount
        if renewed != 1:
            return False
        conn.execute(_MOVE, rows[0] if len(rows) == 1 else rows)
    return True


def move_entry(
    store: Store,
    *,
    holder: str,
    lease_expires_at: datetime,
    seq: int,
    state: Enum,
    reason: str | None,
    keep_reason: bool,
    main_order_id: str | None,
    sent: bool,
    now: datetime,
) -> bool:
    """One state move of entry ``seq`` and the renewal of ``holder``'s lease, in one
    transaction (``move_entries`` with one move)."""
    return move_entries(
        store,
        holder=holder,
        lease_expires_at=lease_expires_at,
        moves=[Move(seq, state, reason, keep_reason, main_order_id, sent)],
        now=now,
    )
