"""StreamClient against a misbehaving WebSocket peer (tests/garbage_server.py).

A fake by necessity: mainsim never sends non-JSON or replays a lower sequence on
purpose.  These tests pin the stream client's contract: protocol faults and silence
drop and reopen the connection (never an exception), resume uses ?since=, duplicates
are dropped and a sequence that went backwards becomes a resnapshot.
"""

from __future__ import annotations

import asyncio
import random
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from backend_client.errors import Unauthorized
from backend_client.stream import StreamClient, StreamStatus, stream_url
from contract import wire
from tests.garbage_server import GarbageServer, closed_port, heartbeat, hello, order_event


def run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def fast_stream(url: str, **kw) -> StreamClient:
    kw.setdefault("silence_timeout", 0.3)
    kw.setdefault("backoff_initial", 0.02)
    kw.setdefault("backoff_max", 0.1)
    return StreamClient(url, "tok", rng=random.Random(1), **kw)


async def collect(stream: StreamClient, until, limit: int = 50) -> list:
    """Items from the stream until ``until(items)`` is true; then stop the stream."""
    items = []
    async for item in stream.messages():
        items.append(item)
        if until(items) or len(items) >= limit:
            stream.stop()
    return items


def since_of(request) -> int | None:
    values = parse_qs(urlsplit(request.path).query).get("since")
    return int(values[0]) if values else None


def downs(items) -> list[str]:
    return [i.reason for i in items if isinstance(i, StreamStatus) and not i.connected]


def ups(items) -> int:
    return sum(1 for i in items if isinstance(i, StreamStatus) and i.connected)


@pytest.mark.parametrize("mode", ["ws_non_json", "ws_wrong_shape", "ws_unknown_type"])
def test_malformed_message_drops_and_reconnects(mode):
    async def scenario():
        async with GarbageServer(ws_mode=mode) as server:
            stream = fast_stream(server.url)
            items = await collect(stream, lambda items: ups(items) >= 3)
            return items, stream, server

    items, stream, server = run(scenario())
    assert all(isinstance(i, StreamStatus) for i in items)  # nothing malformed reaches the consumer
    assert downs(items)[0] == "protocol error: malformed message"
    assert stream.protocol_errors >= 2
    assert stream.reconnects >= 2 and len(server.ws_requests) >= 3


def test_silent_server_is_noticed_by_our_own_timer():
    async def scenario():
        async with GarbageServer(ws_mode="ws_silent") as server:
            stream = fast_stream(server.url, silence_timeout=0.3)
            started = time.monotonic()
            items = await collect(stream, lambda items: len(downs(items)) >= 1)
            return items, time.monotonic() - started

    items, elapsed = run(scenario())
    assert downs(items) == ["silent for 0.3 s"]
    # Behaviour, not speed: far below websockets' close_timeout (10 s), which we must not rely on.
    assert elapsed < 5.0


def test_hello_then_silence_is_noticed_and_reconnected():
    async def scenario():
        async with GarbageServer(ws_mode="ws_hello_then_silent") as server:
            stream = fast_stream(server.url)
            items = await collect(stream, lambda items: len(downs(items)) >= 2)
            return items, server

    items, server = run(scenario())
    kinds = [
        type(i).__name__ if not isinstance(i, StreamStatus) else ("up" if i.connected else "down")
        for i in items
    ]
    assert kinds == ["up", "HelloMsg", "down", "up", "HelloMsg", "down"]
    assert since_of(server.ws_requests[1]) == 0  # resumes from the hello's seq


def test_backoff_grows_while_connections_fail_and_resets_after_a_working_one():
    greet_and_close = [hello(0), "close"]  # a greeting alone does not make a connection healthy
    works = [hello(0), heartbeat(0), "close"]

    async def scenario():
        async with GarbageServer(
            ws_script=[greet_and_close] * 5 + [works], ws_mode=greet_and_close
        ) as server:
            stream = fast_stream(server.url, backoff_initial=0.01, backoff_max=0.08, jitter=0.1)
            pauses = []
            async for item in stream.messages():
                if isinstance(item, StreamStatus) and item.connected and stream.last_backoff is not None:
                    pauses.append(stream.last_backoff)
                if len(pauses) == 7:
                    stream.stop()
            return pauses

    pauses = run(scenario())
    # doubling from 0.01 up to the 0.08 cap (+-10% jitter), then back to 0.01 after the working connection
    for got, want in zip(pauses, [0.01, 0.02, 0.04, 0.08, 0.08, 0.01, 0.02], strict=False):
        assert want * 0.9 <= got <= want * 1.1, pauses


def test_refused_and_rejected_handshakes_back_off_and_retry():
    async def scenario():
        stream = fast_stream(f"http://127.0.0.1:{closed_port()}")
        refused = await collect(stream, lambda items: len(items) >= 3)
        async with GarbageServer(ws_mode="ws_reject_500") as server:
            stream2 = fast_stream(server.url)
            rejected = await collect(stream2, lambda items: len(items) >= 2)
        return refused, stream, rejected

    refused, stream, rejected = run(scenario())
    assert all(r.startswith("connect failed") for r in downs(refused)) and len(refused) == 3
    assert stream.connect_failures == 3
    assert downs(rejected) == ["handshake refused: HTTP 500"] * 2


def test_unauthorized_handshake_raises_typed_error():
    async def scenario():
        async with GarbageServer(ws_mode="ws_reject_401") as server:
            stream = fast_stream(server.url)
            with pytest.raises(Unauthorized):
                async for _ in stream.messages():
                    pass

    run(scenario())


def test_resume_drops_duplicates_and_turns_a_lower_sequence_into_a_resnapshot():
    script = [
        [hello(5), order_event(6, "A"), order_event(7, "B"), "close"],
        [hello(7), order_event(7, "B"), order_event(8, "C"), "close"],  # 7 again: a duplicate
        [hello(3), heartbeat(3)],  # the server lost state: newest seq 3 < 8 seen
    ]

    async def scenario():
        async with GarbageServer(ws_script=script, ws_mode=[hello(3)]) as server:
            stream = fast_stream(server.url)
            items = await collect(stream, lambda items: isinstance(items[-1], wire.HeartbeatMsg))
            return items, stream, server

    items, stream, server = run(scenario())
    assert stream.connected is False  # stopped
    events = [(i.seq, i.data.order_id) for i in items if isinstance(i, wire.OrderEvent)]
    assert events == [(6, "A"), (7, "B"), (8, "C")]
    resnaps = [i for i in items if isinstance(i, wire.ResnapshotMsg)]
    assert len(resnaps) == 1 and resnaps[0].seq == 3 and "went back from 8 to 3" in resnaps[0].reason
    assert stream.duplicates == 1 and stream.gaps == 1 and stream.last_seq == 3
    assert [since_of(r) for r in server.ws_requests[:3]] == [None, 7, 8]


def test_server_resnapshot_is_passed_on_once():
    script = [
        [
            hello(3),
            {"type": "resnapshot", "seq": 3, "reason": "since is newer than the journal"},
            heartbeat(3),
        ]
    ]

    async def scenario():
        async with GarbageServer(ws_script=script) as server:
            stream = fast_stream(server.url, since=50)
            items = await collect(stream, lambda items: isinstance(items[-1], wire.HeartbeatMsg))
            return items, stream, server

    items, stream, server = run(scenario())
    assert since_of(server.ws_requests[0]) == 50
    resnaps = [i for i in items if isinstance(i, wire.ResnapshotMsg)]
    assert len(resnaps) == 1  # the hello's backwards seq and the server's message are one gap
    assert stream.last_seq == 3


def test_server_resnapshot_for_an_old_since_moves_the_resume_point():
    script = [[hello(900), {"type": "resnapshot", "seq": 900, "reason": "since too old"}, "close"]]

    async def scenario():
        async with GarbageServer(ws_script=script, ws_mode=[hello(900)]) as server:
            stream = fast_stream(server.url, since=2)
            items = await collect(stream, lambda items: ups(items) >= 2)
            return items, stream, server

    items, _stream, server = run(scenario())
    assert [i.seq for i in items if isinstance(i, wire.ResnapshotMsg)] == [900]
    assert since_of(server.ws_requests[1]) == 900


def test_stop_ends_the_iterator_promptly():
    async def scenario():
        async with GarbageServer(ws_mode="ws_silent") as server:
            stream = fast_stream(server.url, silence_timeout=60)
            seen = []

            async def consume():
                async for item in stream.messages():
                    seen.append(item)

            task = asyncio.create_task(consume())
            while not seen:
                await asyncio.sleep(0.01)
            stream.stop()
            await asyncio.wait_for(task, 3)  # not the 60 s silence timer
            return seen

    seen = run(scenario())
    assert seen == [StreamStatus(True, "connected", seen[0].at)]


def test_stream_url_and_bad_input():
    assert stream_url("http://h:1", None) == "ws://h:1/api/v1/stream"
    assert stream_url("https://h:1/root/", 12) == "wss://h:1/root/api/v1/stream?since=12"
    with pytest.raises(ValueError):
        StreamClient("ftp://nowhere", "t")
    with pytest.raises(ValueError):
        StreamClient("http://h:1", "t", silence_timeout=0)


def test_a_message_over_the_size_cap_drops_the_connection_as_a_protocol_error():
    """A 5,000-byte message against a 1,000-byte cap: refused as the frame arrives (close 1009),
    counted, reconnected; the messages before it still reach the consumer, the big one never."""
    big = {**heartbeat(1), "server_time": "x" * 5000}

    async def scenario():
        async with GarbageServer(ws_mode=[hello(0), big]) as server:
            stream = fast_stream(server.url, max_message_bytes=1000)
            items = await collect(stream, lambda items: ups(items) >= 2)
            return items, stream

    items, stream = run(scenario())
    assert downs(items)[0] == "protocol error: message over 1000 bytes"
    assert [type(i).__name__ for i in items if not isinstance(i, StreamStatus)] == ["HelloMsg", "HelloMsg"]
    assert stream.protocol_errors >= 1 and stream.max_message_bytes == 1000


def test_the_stream_size_cap_comes_from_the_environment(monkeypatch):
    from backend_client.stream import DEFAULT_MAX_MESSAGE_BYTES, MAX_MESSAGE_ENV

    assert StreamClient("http://127.0.0.1:1", None).max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES
    monkeypatch.setenv(MAX_MESSAGE_ENV, "2048")
    assert StreamClient("http://127.0.0.1:1", None).max_message_bytes == 2048
    monkeypatch.setenv(MAX_MESSAGE_ENV, "big")
    with pytest.raises(ValueError, match=MAX_MESSAGE_ENV):
        StreamClient("http://127.0.0.1:1", None)


def test_garbage_and_an_oversized_message_on_the_real_stream(sim):
    """The real mainsim stream through tests/hostile_proxy.py, with a non-JSON frame and then a
    4 KiB message (cap 2 KiB) injected after the greeting: each drops the connection as a protocol
    error, the stream resumes from the last seq, and only real messages reach the consumer."""
    from backend_client.client import BackendClient
    from tests.hostile_proxy import HostileProxy

    async def scenario():
        async with HostileProxy(sim.url) as proxy:
            async with BackendClient(sim.url) as c:
                token = (await c.login("dealer1", "demo")).access_token
            proxy.misbehave("/stream", "ws_garbage", times=1, frames=["this is not json {"])
            proxy.misbehave(
                "/stream",
                "ws_garbage",
                times=1,
                frames=[b'{"type":"heartbeat","pad":"' + b"x" * 4096 + b'"}'],
            )
            stream = StreamClient(
                proxy.url,
                token,
                silence_timeout=2.0,
                backoff_initial=0.02,
                backoff_max=0.1,
                rng=random.Random(1),
                max_message_bytes=2048,
            )
            items = await collect(
                stream, lambda items: ups(items) >= 3 and not isinstance(items[-1], StreamStatus), limit=500
            )
            return items, stream, proxy.hits("/stream")

    items, stream, hits = run(scenario())
    assert hits == 2
    assert downs(items)[:2] == [
        "protocol error: message over 2048 bytes",
        "protocol error: malformed message",
    ]
    assert stream.protocol_errors == 2 and stream.reconnects == 2
    assert all(
        isinstance(
            i,
            (
                StreamStatus,
                wire.HelloMsg,
                wire.HeartbeatMsg,
                wire.TickMsg,
                wire.OrderEvent,
                wire.TradeEvent,
                wire.PositionEvent,
                wire.ResnapshotMsg,
            ),
        )
        for i in items
    )
