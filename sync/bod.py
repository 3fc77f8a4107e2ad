"""Start-of-day (BOD) sync: replace the local book with the main system's snapshot.

Why one transaction: backup mode starts from whatever this leaves behind.  A
failure or a kill -9 halfway must leave the previous snapshot whole and usable,
never half of each; SQLite's atomic commit gives exactly that when the delete of
the old book and the insert of the new one share one BEGIN IMMEDIATE transaction.

Why a snapshot is checked before that transaction: main's reply is validated
field by field and for its own scope and keys (contract.wire.BodSnapshot);
here it must also be the snapshot of the user who asked, within the scope that
user's login was given.  A snapshot that fails is refused whole, as main's fault
(``SnapshotRefused``, a ProtocolError: exit 5), and the previous one stays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from backend_client.errors import ProtocolError
from contract import clock, wire
from localstore import audit, mirror_store
from localstore.db import Store
from localstore.models import (
    ClientLimitRow,
    ClientRow,
    InstrumentRow,
    OrderRow,
    PositionRow,
    RecordSource,
    TradeRow,
)
from sync.rows import to_row_values

# Test seam: called inside the replace transaction, after the old book is deleted and
# before the new one is inserted and committed (a test pauses here to kill -9 the process
# mid-sync).  None in production.
before_commit: Callable[[], None] | None = None


@dataclass(frozen=True)
class BodResult:
    trading_date: date
    seq: int
    synced_at: datetime
    instruments: int
    clients: int
    positions: int
    open_orders: int
    trades: int

    def as_dict(self) -> dict:
        return {
            "trading_date": self.trading_date.isoformat(),
            "seq": self.seq,
            "synced_at": self.synced_at.isoformat(),
            "instruments": self.instruments,
            "clients": self.clients,
            "positions": self.positions,
            "open_orders": self.open_orders,
            "trades": self.trades,
        }


class SnapshotRefused(ProtocolError):
    """Main's snapshot is not the asking user's, or reaches beyond that user's scope."""


def check_scope(snap: wire.BodSnapshot, user_id: str, login_scope: set[str] | None) -> None:
    """``snap`` is ``user_id``'s and names no client outside ``login_scope`` (the
    client ids of that user's online login; None when this console holds none, as
    for a runtime given a session directly: then the snapshot's own scope, checked
    by the wire model, is all there is)."""
    if snap.user.user_id != user_id:
        raise SnapshotRefused(f"GET /bod: the snapshot is user {snap.user.user_id!r}'s, not {user_id!r}'s")
    if login_scope is None:
        return
    wider = sorted(set(snap.user.client_ids) - login_scope)
    if wider:
        raise SnapshotRefused(
            f"GET /bod: the snapshot names {len(wider)} client(s) outside the scope "
            f"{user_id!r} logged in with ({', '.join(wider[:5])}{' ...' if len(wider) > 5 else ''});"
            f" if the scope changed, log in again"
        )


def replace_book(
    store: Store, snap: wire.BodSnapshot, *, mode: str, reason: str = "bod", user_id: str | None = None
) -> BodResult:
    """Replace instruments, clients, limits, positions, orders and trades with ``snap``
    in one durable transaction, record the sync in sync_state and the audit log.
    With ``user_id`` (who asked for it), the snapshot must be that user's, within
    the scope of its online login (``check_scope``), or nothing changes."""
    now = clock.utcnow()
    src = RecordSource.BOD
    with store.write() as s:
        if user_id is not None:  # the login's scope: its signed grant (this transaction rewrites users)
            check_scope(snap, user_id, mirror_store.login_scope(s, user_id))
        mirror_store.clear_book(s)
        if before_commit is not None:
            before_commit()
        put = mirror_store.insert_rows
        put(s, "instruments", [to_row_values(i, InstrumentRow, updated_at=now) for i in snap.instruments])
        put(s, "clients", [to_row_values(c, ClientRow) for c in snap.clients])
        put(s, "client_limits", [to_row_values(lim, ClientLimitRow) for lim in snap.limits])
        put(
            s,
            "positions",
            [to_row_values(p, PositionRow, source=src, updated_seq=snap.seq) for p in snap.positions],
        )
        put(
            s,
            "orders",
            [to_row_values(o, OrderRow, source=src, updated_seq=snap.seq) for o in snap.open_orders],
        )
        put(s, "trades", [to_row_values(t, TradeRow, source=src, updated_seq=snap.seq) for t in snap.trades])
        mirror_store.put_user(s, snap.user.user_id, snap.user.role, snap.user.client_ids)
        mirror_store.record_bod(
            s, trading_date=snap.trading_date, seq=snap.seq, generated_at=snap.generated_at, now=now
        )
        result = BodResult(
            snap.trading_date,
            snap.seq,
            now,
            len(snap.instruments),
            len(snap.clients),
            len(snap.positions),
            len(snap.open_orders),
            len(snap.trades),
        )
        audit.append(
            s,
            user_id=snap.user.user_id,
            mode=mode,
            action="bod_sync",
            payload={"reason": reason, **result.as_dict()},
        )
    return result
