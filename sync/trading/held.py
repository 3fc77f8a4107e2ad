"""Entries held for a person: stale ones (policy window, earlier trading day) and
conflicts (main's state contradicts the intent).  A supervisor releases one (back to
pending: the next replay sends it, after looking it up) or discards it (moot,
"discarded by <user>").  Both are audited in the same transaction as the change.
Blocking functions: call them from a worker thread in the runtime or the TUI."""

from __future__ import annotations

import json

from sqlalchemy import select

from contract import clock
from localstore import audit
from localstore.db import Store
from localstore.models import JournalEntry, JournalState

HELD_STATES = (JournalState.HELD, JournalState.CONFLICT)
RELEASED_PREFIX = "released by "  # the replay does not hold a released entry as stale again
DISCARDED_PREFIX = "discarded by "  # a discarded entry is moot without reaching main


class NotHeld(Exception):
    """The entry does not exist or is not waiting for a person."""


def _row(e: JournalEntry) -> dict:
    return {
        "seq": e.seq,
        "kind": e.kind.value,
        "client_order_id": e.client_order_id,
        "client_id": e.client_id,
        "exchange": getattr(e.exchange, "value", e.exchange),
        "symbol": e.symbol,
        "product": getattr(e.product, "value", e.product),
        "state": e.state.value,
        "reason": e.state_reason,
        "user_id": e.user_id,
        "created_at": e.created_at.isoformat(),
        "trading_date": e.trading_date.isoformat(),
        "payload": json.loads(e.payload or "{}"),
    }


def held_entries(store: Store) -> list[dict]:
    with store.read() as s:
        rows = s.scalars(
            select(JournalEntry).where(JournalEntry.state.in_(HELD_STATES)).order_by(JournalEntry.seq)
        )
        return [_row(e) for e in rows]


def _decide(store: Store, seq: int, user_id: str, mode: str, release: bool) -> dict:
    now = clock.utcnow()
    with store.write() as s:
        e = s.get(JournalEntry, seq)
        if e is None:
            raise NotHeld(f"no journal entry with seq {seq}")
        if e.state not in HELD_STATES:
            raise NotHeld(f"entry {seq} is {e.state.value}, not held for a decision")
        before, why = e.state.value, e.state_reason
        if release:
            # A released entry is looked up on main before anything is sent (it may have
            # reached main before it was held), so it goes back as SENT when it ever was.
            e.state = JournalState.SENT if e.attempts > 0 else JournalState.PENDING
            e.state_reason = f"{RELEASED_PREFIX}{user_id} (was {before}: {why})"
        else:
            e.state = JournalState.MOOT
            e.state_reason = f"{DISCARDED_PREFIX}{user_id} (was {before}: {why})"
        e.updated_at = now
        audit.append(
            s,
            user_id=user_id,
            mode=mode,
            action="replay_release" if release else "replay_discard",
            payload={
                "seq": seq,
                "client_order_id": e.client_order_id,
                "kind": e.kind.value,
                "client_id": e.client_id,
                "before": before,
                "reason": why,
            },
        )
        return _row(e)


def release(store: Store, seq: int, *, user_id: str, mode: str) -> dict:
    return _decide(store, seq, user_id, mode, True)


def discard(store: Store, seq: int, *, user_id: str, mode: str) -> dict:
    return _decide(store, seq, user_id, mode, False)
