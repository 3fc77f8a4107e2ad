"""Fan-out of the WebSocket stream: hello, heartbeats, ticks and the persisted
order/trade/position events, each connection filtered to its user's scope.

Publishing never waits on a socket: every connection has a bounded queue and its
own sender task.  A consumer that falls too far behind is sent a resnapshot
message and closed, so one slow mirror can never stall the matching engine.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from contract import wire
from mainsim.auth import Principal
from mainsim.tradingday import utcnow

log = logging.getLogger("mainsim.stream")
CLOSE = object()  # sentinel: close the connection after what is queued


class Subscriber:
    def __init__(self, ws: WebSocket, who: Principal, queue_size: int):
        self.ws = ws
        self.who = who
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=queue_size)
        self.dropped = False

    def offer(self, text: str, seq: int) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.dropped = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(
                wire.ResnapshotMsg(
                    type="resnapshot", seq=seq, reason="consumer too slow: take a fresh snapshot"
                ).model_dump_json()
            )
            self.queue.put_nowait(CLOSE)


class Hub:
    def __init__(self, book_seq, heartbeat_ms: int, trading_date, queue_size: int = 10_000):
        self.book_seq = book_seq  # () -> newest event seq
        self.heartbeat_ms = heartbeat_ms
        self.trading_date = trading_date
        self.queue_size = queue_size
        self.subs: set[Subscriber] = set()
        self.sent_dropped = 0

    # ------------------------------------------------------------------ publishing (never blocks)
    def publish_events(self, events: list[tuple[int, str, str]]) -> None:
        seq = self.book_seq()
        for sub in list(self.subs):
            for _, client_id, body in events:
                if sub.who.sees(client_id):
                    sub.offer(body, seq)

    def broadcast(self, text: str) -> None:
        seq = self.book_seq()
        for sub in list(self.subs):
            sub.offer(text, seq)

    async def heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_ms / 1000)
            self.broadcast(
                wire.HeartbeatMsg(
                    type="heartbeat", seq=self.book_seq(), server_time=utcnow()
                ).model_dump_json()
            )

    def close_all(self) -> None:
        for sub in list(self.subs):
            sub.dropped = True
            try:
                sub.queue.put_nowait(CLOSE)
            except asyncio.QueueFull:
                pass

    # ------------------------------------------------------------------ one connection
    async def serve(self, ws: WebSocket, who: Principal, since: int | None, backlog) -> None:
        """backlog(after, upto) -> [(seq, client_id, body)] of retained events, or None when
        ``after`` is outside the retained window."""
        sub = Subscriber(ws, who, self.queue_size)
        newest = self.book_seq()
        self.subs.add(sub)  # registered before the replay is read: nothing falls in between
        try:
            await ws.send_text(
                wire.HelloMsg(
                    type="hello",
                    seq=newest,
                    server_time=utcnow(),
                    trading_date=self.trading_date,
                    heartbeat_ms=self.heartbeat_ms,
                    user_id=who.user_id,
                ).model_dump_json()
            )
            if since is not None:
                replay = backlog(since, newest) if 0 <= since <= newest else None
                if replay is None:
                    await ws.send_text(
                        wire.ResnapshotMsg(
                            type="resnapshot",
                            seq=newest,
                            reason=f"since={since} is outside the retained events; take a fresh snapshot",
                        ).model_dump_json()
                    )
                else:
                    for _, client_id, body in replay:
                        if who.sees(client_id):
                            await ws.send_text(body)
            receiver = asyncio.ensure_future(self._drain_incoming(ws))
            try:
                while True:
                    getter = asyncio.ensure_future(sub.queue.get())
                    done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
                    if getter not in done:
                        getter.cancel()
                        return  # the peer went away
                    item = getter.result()
                    if item is CLOSE:
                        await ws.close(code=1013 if sub.dropped else 1001)
                        return
                    await ws.send_text(item)
            finally:
                receiver.cancel()
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        finally:
            self.subs.discard(sub)

    @staticmethod
    async def _drain_incoming(ws: WebSocket) -> None:
        """Read (and ignore) what the client sends, so a close from it is noticed."""
        try:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
        except Exception:  # noqa: BLE001 - any failure to read means the peer is gone: the sender ends too
            return
