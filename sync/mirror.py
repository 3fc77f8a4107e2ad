"""The live mirror: order, trade and position events from the main system's stream,
applied to the local store in small batched transactions.

Why: when the main system dies, backup mode must start from a book that is seconds
old.  Rules that keep the mirror exact:

- an event whose seq is at or below the snapshot's seq (``floor``) is already in the
  snapshot and is ignored; so is an event older than the row it would overwrite
  (``updated_seq``), so a re-delivered or late event never rolls a row back;
- a batch of events and the new resume point (``last_event_seq``) commit together,
  so a crash between them cannot skip or double-apply anything;
- an event for a client the snapshot does not hold is refused (logged, counted in
  ``refused``, never stored): the snapshot's clients are the user's scope, checked
  when it was taken (sync.bod), and a stream must not widen it.  Each event is
  checked field by field before it gets here (contract.wire, via the stream).

Staleness: ``last_event_at`` is the server time of the newest applied event;
``last_applied_at`` is the local time the mirror was last known current (an event
applied, or a heartbeat received with nothing pending before it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, insert, select, tuple_, update

from contract import clock, wire
from localstore import credentials
from localstore.db import Store
from localstore.models import ClientRow, OrderRow, PositionRow, RecordSource, SyncState, TradeRow
from sync.rows import to_row_values

Event = wire.OrderEvent | wire.TradeEvent | wire.PositionEvent
log = logging.getLogger("lifeboat.mirror")


@dataclass
class MirrorState:
    last_event_seq: int | None
    last_event_at: datetime | None
    current_at: datetime | None  # local time the mirror was last known current
    floor: int  # events at or below this are in the snapshot already


class Mirror:
    def __init__(self, store: Store, *, clock=clock.utcnow):
        self.store = store
        self.clock = clock
        with store.read() as s:
            st = s.get(SyncState, 1)
            self.state = MirrorState(st.last_event_seq, st.last_event_at, st.last_applied_at, st.bod_seq or 0)
        self.applied = 0
        self.skipped = 0
        self.refused = 0  # events for clients outside the snapshot's scope

    def staleness(self, now: datetime | None = None) -> float | None:
        """Seconds since the mirror was last known current (None before any sync)."""
        if self.state.current_at is None:
            return None
        return max(0.0, ((now or self.clock()) - self.state.current_at).total_seconds())

    def snapshot_taken(self, seq: int) -> None:
        """A fresh snapshot (consistent with ``seq``) replaced the book."""
        self.state.floor = seq
        self.state.last_event_seq = seq
        self.state.current_at = self.clock()

    def apply(self, events: list[Event]) -> int:
        """Apply a batch in one durable transaction; returns how many changed a row."""
        fresh = [e for e in events if e.seq > self.state.floor]
        now = self.clock()
        changed = 0
        with self.store.write() as s:
            scoped = self._in_scope(s, fresh)
            changed += self._upsert_orders(s, [e for e in scoped if e.type == "order"])
            changed += self._insert_trades(s, [e for e in scoped if e.type == "trade"])
            changed += self._upsert_positions(s, [e for e in scoped if e.type == "position"])
            st = s.get(SyncState, 1)
            if fresh:
                newest = max(fresh, key=lambda e: e.seq)
                if st.last_event_seq is None or newest.seq > st.last_event_seq:
                    st.last_event_seq = newest.seq
                    st.last_event_at = _event_time(newest)
                    credentials.observe_server_time(s, st.last_event_at)  # main's time: the clock watermark
            st.last_applied_at = now
            self.state.last_event_seq = st.last_event_seq
            self.state.last_event_at = st.last_event_at
            self.state.current_at = now
        self.applied += changed
        self.skipped += len(events) - changed
        return changed

    def confirm_current(self) -> None:
        """A heartbeat arrived and nothing before it is pending: the mirror is current.
        Kept in memory; persisted with the next batch or by ``persist_current``."""
        self.state.current_at = self.clock()

    def persist_current(self) -> None:
        with self.store.write() as s:
            s.get(SyncState, 1).last_applied_at = self.state.current_at

    def _in_scope(self, s, events: list[Event]) -> list[Event]:
        """The events whose client the snapshot holds; the others are refused."""
        ids = {e.data.client_id for e in events}
        known = (
            set(s.scalars(select(ClientRow.client_id).where(ClientRow.client_id.in_(ids)))) if ids else set()
        )
        outside = [e for e in events if e.data.client_id not in known]
        if outside:
            self.refused += len(outside)
            log.warning(
                "stream events refused: client outside the snapshot's scope",
                extra={
                    "event": "mirror_refused",
                    "count": len(outside),
                    "seqs": [e.seq for e in outside[:20]],
                    "clients": sorted({e.data.client_id for e in outside})[:20],
                },
            )
            return [e for e in events if e.data.client_id in known]
        return events

    # ------------------------------------------------------------------ per table

    @staticmethod
    def _upsert_orders(s, events: list[wire.OrderEvent]) -> int:
        return _upsert(s, OrderRow, (OrderRow.order_id,), events)

    @staticmethod
    def _insert_trades(s, events: list[wire.TradeEvent]) -> int:
        if not events:
            return 0
        latest = _latest(events, lambda e: e.data.trade_id)
        known = set(s.scalars(select(TradeRow.trade_id).where(TradeRow.trade_id.in_(latest))))
        rows = [
            to_row_values(ev.data, TradeRow, source=RecordSource.STREAM, updated_seq=ev.seq)
            for tid, ev in latest.items()
            if tid not in known
        ]
        if rows:
            s.execute(insert(TradeRow.__table__), rows)
        return len(rows)

    @staticmethod
    def _upsert_positions(s, events: list[wire.PositionEvent]) -> int:
        cols = (PositionRow.client_id, PositionRow.exchange, PositionRow.symbol, PositionRow.product)
        return _upsert(s, PositionRow, cols, events)


def _upsert(s, row_cls, key_cols: tuple, events: list) -> int:
    """Insert or update ``row_cls`` rows keyed by ``key_cols`` from the newest event per
    key, skipping an event older than the row it would overwrite.  Core statements, one
    executemany each for the inserts and the updates: the ORM's unit of work cost about
    three times as much per event, and a busy stream is thousands of events a second."""
    if not events:
        return 0
    names = [c.key for c in key_cols]
    latest = _latest(events, lambda e: tuple(getattr(e.data, n) for n in names))
    where = (
        key_cols[0].in_([k[0] for k in latest]) if len(key_cols) == 1 else tuple_(*key_cols).in_(list(latest))
    )
    seen = {tuple(r[:-1]): r[-1] for r in s.execute(select(*key_cols, row_cls.updated_seq).where(where))}
    inserts, updates = [], []
    for k, ev in latest.items():
        if k not in seen:
            inserts.append(to_row_values(ev.data, row_cls, source=RecordSource.STREAM, updated_seq=ev.seq))
        elif seen[k] is None or seen[k] < ev.seq:
            values = to_row_values(ev.data, row_cls, source=RecordSource.STREAM, updated_seq=ev.seq)
            updates.append({**values, **{f"key_{n}": v for n, v in zip(names, k)}})
    table = row_cls.__table__
    if inserts:
        s.execute(insert(table), inserts)
    if updates:
        s.execute(update(table).where(and_(*(table.c[n] == bindparam(f"key_{n}") for n in names))), updates)
    return len(inserts) + len(updates)


def _latest(events, key) -> dict:
    """The newest event (highest seq) per key."""
    out: dict = {}
    for e in events:
        k = key(e)
        if k not in out or e.seq > out[k].seq:
            out[k] = e
    return out


def _event_time(ev: Event) -> datetime:
    data = ev.data
    return getattr(data, "updated_at", None) or data.traded_at
