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
  ORM unit of work costs about 2 ms a row here (see FLOORS.md).  The statements
  themselves (hot ones compiled once and run on the sqlite3 cursor) are in
  localstore/journal_store.py.
* The acknowledgement commit runs with ``synchronous=NORMAL`` (journal_store.acknowledge):
  in WAL mode that is still atomic and survives a process crash (only an OS crash
  could lose it, and then the entry merely shows as "never acknowledged", the
  conservative side); it costs no fsync of its own.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from contract import clock
from contract.enums import value_of
from localstore import audit, journal_store
from localstore.core_tables import STATE_PENDING

# re-exported: the journal's readers (their SQL is localstore.journal_store's) and the states still to replay
from localstore.core_tables import UNFINISHED_STATES as UNFINISHED_STATES
from localstore.db import Store
from localstore.journal_store import entries as entries
from localstore.journal_store import position_reduced as position_reduced
from localstore.journal_store import position_reducers as position_reducers
from localstore.journal_store import reduced_by as reduced_by
from localstore.journal_store import unfinished_for as unfinished_for
from sync.identity import check_enrolled

# Kinds and states are localstore.journal_states' JournalKind / JournalState (StrEnum): reads
# return members, which compare, hash and format as the strings stored.


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
    # a rule's deterministic id (sync.rms: the same on every console of the dealer, so main's
    # idempotency makes a second sender a no-op); None: the console's next number
    client_order_id: str | None = None


@dataclass(frozen=True)
class Receipt:
    seq: int
    client_order_id: str
    kind: Any  # a JournalKind member or its value ("PLACE", "SQUARE_OFF" ...)
    client_id: str


def format_client_order_id(console_id: str, trading_date: date, n: int) -> str:
    return f"{console_id}-{trading_date:%y%m%d}-{n:06d}"


def allocate_ids(store: Store, trading_date: date, count: int = 1) -> list[str]:
    """client_order_ids for orders sent online (committed, so never reused).  Only from the
    console enrolled on this home (sync.identity: a copied store would issue its original's ids)."""
    check_enrolled(store)
    try:
        first = journal_store.reserve_numbers(store, count)
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
            first, head = journal_store.take_numbers_and_audit_head(conn, len(intents))
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
                        "kind": value_of(it.kind),
                        "client_order_id": it.client_order_id or f"{prefix}{first + i:06d}",
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
            seqs = journal_store.insert_entries(conn, rows)
            receipts = [
                Receipt(seq, r["client_order_id"], it.kind, r["client_id"])
                for seq, r, it in zip(seqs, rows, intents, strict=True)
            ]
            summary = {
                "entries": [
                    {
                        "seq": r.seq,
                        "kind": value_of(r.kind),
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


def acknowledge(store: Store, seqs: Iterable[int], now: datetime | None = None) -> None:
    """Stamp ``acknowledged_at`` on entries whose answer went out (cheap commit, see
    module docstring).  A failure here is logged by the caller, never un-accepts."""
    seqs = list(seqs)
    if not seqs:
        return
    journal_store.acknowledge(store, seqs, now or clock.utcnow())
