"""The console's long-running runtime, with no screen: ``lifeboat agent`` runs it
alone and the TUI hosts the same object.

Today it keeps the live mirror (stream -> batched transactions, resume by sequence,
fresh snapshot on a gap it cannot fill); the failure detector and automatic replay
plug in here in later issues.  Store writes run in a worker thread so the event loop
(and the stream's silence timer) never waits on a disk flush.

Batching is natural: a reader task queues stream items; the writer takes everything
queued since its last commit (up to ``batch_max``) and commits it in one
transaction, so latency stays one commit under light load and throughput grows
with load.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import select

from backend_client import wire
from backend_client.client import BackendClient
from backend_client.stream import StreamClient, StreamStatus
from localstore.db import Store
from localstore.models import ClientRow, SyncState
from sync.bod import replace_book
from sync.mirror import Mirror

log = logging.getLogger("lifeboat.runtime")

_PERSIST_CURRENT_EVERY_S = 1.0


@dataclass
class RuntimeStatus:
    connected: bool = False
    reason: str = "starting"
    since: float = field(default_factory=time.monotonic)
    resnapshots: int = 0
    batches: int = 0


class Runtime:
    def __init__(
        self,
        store: Store,
        client: BackendClient,
        *,
        mode: str = "ONLINE",
        batch_max: int = 1000,
        silence_timeout: float = 0.75,
        stream_factory=None,
    ) -> None:
        self.store = store
        self.client = client
        self.mode = mode
        self.batch_max = batch_max
        self.silence_timeout = silence_timeout
        self.mirror = Mirror(store)
        self.status = RuntimeStatus()
        self._stream_factory = stream_factory or self._default_stream
        self.stream: StreamClient | None = None
        self._stop = asyncio.Event()
        self._last_persist = 0.0
        self.applied_seq_callbacks: list = []  # f(seq, applied_at) after each committed batch (benches)

    def _default_stream(self, since: int | None) -> StreamClient:
        return StreamClient(self.client.base_url, self.client.token or "", since=since,
                            silence_timeout=self.silence_timeout)

    def stop(self) -> None:
        self._stop.set()
        if self.stream is not None:
            self.stream.stop()

    async def ensure_snapshot(self, reason: str) -> None:
        """Take a BOD snapshot when the store has none for the main system's trading day,
        or when it holds another scope (another user's book on a shared console: resuming
        it with this user's stream would mix the two)."""
        health = await self.client.health()
        state = await asyncio.to_thread(self._sync_state)
        if state.bod_seq is None or state.trading_date != health.trading_date:
            await self.resnapshot(reason)
            return
        scope = {c.client_id for c in await self.client.clients()}
        if scope != await asyncio.to_thread(self._local_clients):
            await self.resnapshot(f"{reason}: the local book is another scope")

    async def resnapshot(self, reason: str) -> None:
        snap = await self.client.bod()
        await asyncio.to_thread(replace_book, self.store, snap, mode=self.mode, reason=reason)
        self.mirror.snapshot_taken(snap.seq)
        if self.stream is not None:
            self.stream.resync(snap.seq)
        self.status.resnapshots += 1
        log.info("snapshot taken", extra={"event": "resnapshot", "reason": reason, "seq": snap.seq})

    def _local_clients(self) -> set[str]:
        with self.store.read() as s:
            return set(s.scalars(select(ClientRow.client_id)))

    def _sync_state(self) -> SyncState:
        with self.store.read() as s:
            return s.get(SyncState, 1)

    async def run(self) -> None:
        """Mirror the stream until ``stop()``.  Raises Unauthorized/Forbidden when the
        session is refused (retrying cannot fix that)."""
        await self.ensure_snapshot("start of agent")
        self.stream = self._stream_factory(self.mirror.state.last_event_seq)
        queue: asyncio.Queue = asyncio.Queue()
        reader = asyncio.create_task(self._read(queue))
        try:
            await self._write(queue, reader)
        finally:
            self.stream.stop()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _read(self, queue: asyncio.Queue) -> None:
        try:
            async for item in self.stream.messages():
                queue.put_nowait(item)
        finally:
            queue.put_nowait(None)  # end of stream (stopped, or refused: the task's exception says)

    async def _write(self, queue: asyncio.Queue, reader: asyncio.Task) -> None:
        while not self._stop.is_set():
            item = await queue.get()
            batch = [item]
            while not queue.empty() and len(batch) < self.batch_max:
                batch.append(queue.get_nowait())
            done = await self._handle(batch)
            if done:
                if reader.done() and reader.exception() is not None:
                    raise reader.exception()
                return

    async def _handle(self, batch: list) -> bool:
        events: list = []
        for item in batch:
            if item is None:
                await self._flush(events)
                return True
            if isinstance(item, (wire.OrderEvent, wire.TradeEvent, wire.PositionEvent)):
                events.append(item)
            elif isinstance(item, wire.ResnapshotMsg):
                await self._flush(events)
                events = []
                await self.resnapshot(f"stream asked: {item.reason}")
            elif isinstance(item, wire.HelloMsg):
                state = await asyncio.to_thread(self._sync_state)
                if state.trading_date != item.trading_date:
                    await self._flush(events)
                    events = []
                    await self.resnapshot("new trading day")
            elif isinstance(item, StreamStatus):
                self.status.connected = item.connected
                self.status.reason = item.reason
                self.status.since = item.at
        await self._flush(events)
        if self.status.connected:
            # Everything received so far (heartbeats included) is applied: the mirror is current.
            self.mirror.confirm_current()
            now = time.monotonic()
            if now - self._last_persist >= _PERSIST_CURRENT_EVERY_S:
                self._last_persist = now
                await asyncio.to_thread(self.mirror.persist_current)
        return False

    async def _flush(self, events: list) -> None:
        if not events:
            return
        await asyncio.to_thread(self.mirror.apply, events)
        self.status.batches += 1
        if self.applied_seq_callbacks:
            at = datetime.now(timezone.utc)
            for cb in self.applied_seq_callbacks:
                cb(events, at)
