"""What the failure detector reads from and writes to the local store.

Why it exists: the detector itself is pure logic; the runtime must persist every mode
change (the console state row for the one-shot CLI commands and the TUI, an audit row
for the record) in ONE transaction, pick up a supervisor's override written by another
process (`lifeboat mode`), and know whether the journal still has work for the replay
before RECOVERING may end.  The SQL is localstore's (console_state, journal_store); here
stored text becomes modes.  All functions are blocking: call them in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from backend_client.detector import Mode, Transition
from backend_client.sites import Site, SiteChoice, choose
from localstore import audit, console_state, journal_store
from localstore.db import Store


@dataclass(frozen=True)
class Override:
    mode: Mode | None
    by: str | None
    at: datetime | None


def record_transition(store: Store, change: Transition, *, wall_at: datetime, user_id: str | None) -> None:
    """The console state (mode, since, reason) and the audit row, committed together."""
    with store.write() as s:
        console_state.write_mode(s, change.to_mode.value, wall_at, change.reason)
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


def decide_sites(store: Store, sites: tuple[Site, ...]) -> SiteChoice:
    """Where actions go from one survey of the sites (backend_client.sites.choose), against the
    highest epoch this console has seen, which the survey may raise (kept in the store)."""
    highest = console_state.highest_epoch(store)
    choice = choose(sites, highest)
    if choice.highest_epoch > highest:
        console_state.raise_epoch(store, choice.highest_epoch)
    return choice


def read_stored_mode(store: Store) -> Mode:
    """The mode the console was last in (a restart mid-outage must not start ONLINE)."""
    text = console_state.stored_mode(store)
    try:
        return Mode(text) if text is not None else Mode.ONLINE
    except ValueError:
        return Mode.BACKUP  # unknown text: the safe side


def read_override(store: Store) -> Override:
    forced, by, at = console_state.forced_mode(store)
    if not forced:
        return Override(None, None, None)
    try:
        mode = Mode(forced)
    except ValueError:
        return Override(None, by, at)
    return Override(mode, by, at)


def replay_work(store: Store) -> int:
    """Journal entries still to be replayed to main."""
    return journal_store.count_unfinished(store)
