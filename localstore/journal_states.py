"""The journal's kinds and states: the one definition.

Standard library only, so readers that must start fast (`lifeboat status`, the backup
CLI path: localstore.core_tables, raw SQL) and the ORM models share them without
importing the ORM or the pydantic wire schema.  They are stored by value (VARCHAR +
CHECK); both are ``str`` enums, equal to (and hashing like) their stored strings, and
they format as those strings too (``f"{JournalState.PENDING}"`` is ``pending``), so a
value read back through Core or the ORM reads the same as the string that was stored.
"""

from __future__ import annotations

import enum


class JournalKind(enum.StrEnum):
    """What a journal row asks the main system to do."""

    PLACE = "PLACE"
    MODIFY = "MODIFY"
    CANCEL = "CANCEL"
    SQUARE_OFF = "SQUARE_OFF"  # "flatten client C in symbol S, product P": recomputed on replay


class JournalState(enum.StrEnum):
    """Where a journal row is in its life.  pending -> sent -> one of the final states;
    held waits for an operator's decision."""

    PENDING = "pending"  # durably journaled, not yet sent to main
    SENT = "sent"  # sent; outcome unknown until looked up by client_order_id
    APPLIED = "applied"  # main accepted it
    MOOT = "moot"  # nothing left to do (e.g. position already flat, order already closed)
    REJECTED = "rejected"  # main refused it
    CONFLICT = "conflict"  # main's state contradicts the intent; a person decides
    HELD = "held"  # stale (policy window, new trading day): held for a person


FINAL_JOURNAL_STATES = frozenset({JournalState.APPLIED, JournalState.MOOT, JournalState.REJECTED})

# the same, as the stored strings (for SQL text and plain comparisons)
KIND_PLACE, KIND_MODIFY, KIND_CANCEL, KIND_SQUARE_OFF = (k.value for k in JournalKind)
STATE_PENDING, STATE_SENT = JournalState.PENDING.value, JournalState.SENT.value
UNFINISHED_STATES = (STATE_PENDING, STATE_SENT)  # still to be replayed
FINAL_STATES = tuple(s.value for s in JournalState if s in FINAL_JOURNAL_STATES)  # nothing left to do
HELD_STATES = (JournalState.HELD.value, JournalState.CONFLICT.value)  # waiting for a person
