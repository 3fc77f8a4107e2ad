"""What the failure detector reads from and writes to the local store.

Why it exists: the detector itself is pure logic; the runtime must persist every mode
change (ConsoleState for the one-shot CLI commands and the TUI, an audit row for the
record) in ONE transaction, pick up a supervisor's override written by another process
(`lifeboat mode`), and know whether the journal still has work for the replay before
RECOVERING may end.  All functions are blocking: call them in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from backend_client.detector import Mode, Transition
from localstore import audit
from localstore.db import Store
from localstore.models import ConsoleState, JournalEntry, JournalState

# Entries the replay still has to send (or look up); held/conflict wait for a person.
_REPLAY_WORK = (JournalState.PENDING, JournalState.SENT)


@dataclass(frozen=True)
class Override:
    mode: Mode | None
    by: str | None
    at: datetime | None


def record_transition(store: Store, change: Transition, *, wall_at: datetime, user_id: str | None) -> None:
    """ConsoleState (mode, since, reason) and the audit row, committed together."""
    with store.write() as s:
        state = s.get(ConsoleState, 1)
        if state is None:
            state = ConsoleState(id=1)
            s.add(state)
        state.mode = change.to_mode.value
        state.mode_since = wall_at
        state.mode_reason = change.reason
        audit.append(
            s,
            user_id=change.by or user_id,
            mode=change.to_mode,
            action="mode_change",
            payload={
                "from": change.from_mode.value,
                "to": change.to_mode.value,
                "reason": change.reason,
                "forced_by": change.by,
            },
            at=wall_at,
        )


def read_stored_mode(store: Store) -> Mode:
    """The mode the console was last in (a restart mid-outage must not start ONLINE)."""
    with store.read() as s:
        state = s.get(ConsoleState, 1)
    try:
        return Mode(state.mode) if state is not None else Mode.ONLINE
    except ValueError:
        return Mode.BACKUP  # unknown text: the safe side


def read_override(store: Store) -> Override:
    with store.read() as s:
        state = s.get(ConsoleState, 1)
        if state is None or not state.forced_mode:
            return Override(None, None, None)
        try:
            mode = Mode(state.forced_mode)
        except ValueError:
            return Override(None, state.forced_by, state.forced_at)
        return Override(mode, state.forced_by, state.forced_at)


def replay_work(store: Store) -> int:
    """Journal entries still to be replayed to main."""
    with store.read() as s:
        return (
            s.scalar(
                select(func.count()).select_from(JournalEntry).where(JournalEntry.state.in_(_REPLAY_WORK))
            )
            or 0
        )
