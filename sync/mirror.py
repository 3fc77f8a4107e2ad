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

from contract import clock, wire
from localstore import mirror_store
from localstore.db import Store
from localstore.models import OrderRow, PositionRow, RecordSource, TradeRow
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
        last_seq, last_at, applied_at, bod_seq = mirror_store.sync_marks(store)
        self.state = MirrorState(last_seq, last_at, applied_at, bod_seq or 0)
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
            newest = max(fresh, key=lambda e: e.seq) if fresh else None
            seq, at = mirror_store.record_events(
                s,
                None if newest is None else newest.seq,
                None if newest is None else _event_time(newest),
                now,
            )
            self.state.last_event_seq = seq
            self.state.last_event_at = at
            self.state.current_at = now
        self.applied += changed
        self.skipped += len(events) - changed
        return changed

    def confirm_current(self) -> None:
        """A heartbeat arrived and nothing before it is pending: the mirror is current.
        Kept in memory; persisted with the next batch or by ``persist_current``."""
        self.state.current_at = self.clock()

    def persist_current(self) -> None:
        mirror_store.mark_current(self.store, self.state.current_at)

    def _in_scope(self, s, events: list[Event]) -> list[Event]:
        """The events whose client the snapshot holds; the others are refused."""
        known = mirror_store.known_clients(s, {e.data.client_id for e in events})
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
        return _upsert(s, OrderRow, ("order_id",), events)

    @staticmethod
    def _insert_trades(s, events: list[wire.TradeEvent]) -> int:
        latest = _latest(events, lambda e: e.data.trade_id)
        return mirror_store.insert_new_trades(
            s,
            {
                tid: to_row_values(ev.data, TradeRow, source=RecordSource.STREAM, updated_seq=ev.seq)
                for tid, ev in latest.items()
            },
        )

    @staticmethod
    def _upsert_positions(s, events: list[wire.PositionEvent]) -> int:
        return _upsert(s, PositionRow, ("client_id", "exchange", "symbol", "product"), events)


def _upsert(s, row_cls, key_names: tuple[str, ...], events: list) -> int:
    """Insert or update ``row_cls`` rows keyed by ``key_names`` from the newest event per
    key; an event older than the row it would overwrite is skipped (mirror_store.upsert_newer:
    Core executemany, the ORM's unit of work cost about three times as much per event, and a
    busy stream is thousands of events a second)."""
    latest = _latest(events, lambda e: tuple(getattr(e.data, n) for n in key_names))
    return mirror_store.upsert_newer(
        s,
        row_cls.__table__.name,
        key_names,
        {
            k: to_row_values(ev.data, row_cls, source=RecordSource.STREAM, updated_seq=ev.seq)
            for k, ev in latest.items()
        },
    )


def _latest(events, key) -> dict:
    """The newest event (highest seq) per key."""
    out: dict = {}
    for e in events:
        k = key(e)
        if k not in out or e.seq > out[k].seq:
            out[k] = e
    return out


def _event_time(ev: Event) -> datetime:
    if isinstance(ev, wire.TradeEvent):
        return ev.data.traded_at
    return ev.data.updated_at
