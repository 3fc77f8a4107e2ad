"""Entries held for a person: stale ones (policy window, earlier trading day) and
conflicts (main's state contradicts the intent).  A supervisor releases one (back to
pending: the next replay sends it, after looking it up) or discards it (moot,
"discarded by <user>").  Both are audited in the same transaction as the change.
Blocking functions: call them from a worker thread in the runtime or the TUI."""

from __future__ import annotations

import json
from typing import Any

from contract import clock
from contract.enums import value_of
from localstore import audit, journal_store
from localstore.db import Store
from localstore.journal_states import JournalState

HELD_STATES = (JournalState.HELD, JournalState.CONFLICT)
RELEASED_PREFIX = "released by "  # the replay does not hold a released entry as stale again
DISCARDED_PREFIX = "discarded by "  # a discarded entry is moot without reaching main


class NotHeld(Exception):
    """The entry does not exist or is not waiting for a person."""


def _row(e: dict[str, Any]) -> dict:
    return {
        "seq": e["seq"],
        "kind": value_of(e["kind"]),
        "client_order_id": e["client_order_id"],
        "client_id": e["client_id"],
        "exchange": value_of(e["exchange"]),
        "symbol": e["symbol"],
        "product": value_of(e["product"]),
        "state": value_of(e["state"]),
        "reason": e["state_reason"],
        "user_id": e["user_id"],
        "created_at": e["created_at"].isoformat(),
        "trading_date": e["trading_date"].isoformat(),
        "payload": json.loads(e["payload"] or "{}"),
    }


def held_entries(store: Store) -> list[dict]:
    return [_row(e) for e in journal_store.in_states(store, [s.value for s in HELD_STATES])]


def _decide(store: Store, seq: int, user_id: str, mode: str, release: bool) -> dict:
    now = clock.utcnow()
    with store.write() as s:
        e = journal_store.entry(s, seq)
        if e is None:
            raise NotHeld(f"no journal entry with seq {seq}")
        state = JournalState(e["state"])
        if state not in HELD_STATES:
            raise NotHeld(f"entry {seq} is {state.value}, not held for a decision")
        before, why = state.value, e["state_reason"]
        if release:
            # A released entry is looked up on main before anything is sent (it may have
            # reached main before it was held), so it goes back as SENT when it ever was.
            new = JournalState.SENT if e["attempts"] > 0 else JournalState.PENDING
            reason = f"{RELEASED_PREFIX}{user_id} (was {before}: {why})"
        else:
            new = JournalState.MOOT
            reason = f"{DISCARDED_PREFIX}{user_id} (was {before}: {why})"
        journal_store.set_state(s, seq, new.value, reason, now)
        e.update(state=new, state_reason=reason, updated_at=now)
        audit.append(
            s,
            user_id=user_id,
            mode=mode,
            action="replay_release" if release else "replay_discard",
            payload={
                "seq": seq,
                "client_order_id": e["client_order_id"],
                "kind": value_of(e["kind"]),
                "client_id": e["client_id"],
                "before": before,
                "reason": why,
            },
        )
        return _row(e)


def release(store: Store, seq: int, *, user_id: str, mode: str) -> dict:
    return _decide(store, seq, user_id, mode, True)


def discard(store: Store, seq: int, *, user_id: str, mode: str) -> dict:
    return _decide(store, seq, user_id, mode, False)
