"""The console's own state row (``console_state``): the mode the failure detector last
decided and a supervisor's override, as stored text (sync.detector_store turns them into
modes; the store knows nothing of the detector)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, update

from localstore import core_tables as t
from localstore.db import Store

if TYPE_CHECKING:  # the ORM is not imported on the fast paths (tests/integration/test_perf_paths.py)
    from sqlalchemy.orm import Session

_S = t.console_state


def write_mode(session: Session, mode: str, since: datetime, reason: str | None) -> None:
    """Store the detector's ``mode`` (since when and why) in the caller's write transaction."""
    values = {"mode": mode, "mode_since": since, "mode_reason": reason}
    if session.execute(select(_S.c.id).where(_S.c.id == 1)).first() is None:
        session.execute(insert(_S).values(id=1, **values))
    else:
        session.execute(update(_S).where(_S.c.id == 1).values(**values))


def stored_mode(store: Store) -> str | None:
    """The mode last stored (None: no state row yet)."""
    with store.read_core() as conn:
        return conn.execute(select(_S.c.mode).where(_S.c.id == 1)).scalar()


def forced_mode(store: Store) -> tuple[str | None, str | None, datetime | None]:
    """A supervisor's override: (mode, by whom, when); (None, None, None) without a state row."""
    with store.read_core() as conn:
        row = conn.execute(
            select(_S.c.forced_mode, _S.c.forced_by, _S.c.forced_at).where(_S.c.id == 1)
        ).first()
    return (None, None, None) if row is None else (row.forced_mode, row.forced_by, row.forced_at)


def highest_epoch(store: Store) -> int:
    """The highest site epoch this console has seen (0: none yet)."""
    with store.read_core() as conn:
        return conn.execute(select(_S.c.highest_epoch).where(_S.c.id == 1)).scalar() or 0


def raise_epoch(store: Store, epoch: int) -> bool:
    """Keep ``epoch`` if it is higher than the highest seen (one statement: never lowered by a
    racing process); True when it was raised."""
    with store.write_core() as conn:
        if conn.execute(select(_S.c.id).where(_S.c.id == 1)).first() is None:
            conn.execute(insert(_S).values(id=1, mode="ONLINE", highest_epoch=epoch))
            return epoch > 0
        done = conn.execute(
            update(_S).where(_S.c.id == 1, _S.c.highest_epoch < epoch).values(highest_epoch=epoch)
        )
        return done.rowcount > 0
