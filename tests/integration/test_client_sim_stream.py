"""StreamClient against the real reference backend: heartbeats, events, kill -9 and
restart (reconnect by itself, resume with ?since=, nothing lost), and a hung server
(SIGSTOP) noticed by the silence timer."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid

import pytest

from backend_client.client import BackendClient
from backend_client.errors import Unauthorized, Unavailable
from backend_client.stream import StreamClient, StreamStatus
from contract import wire


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Recorder:
    """Consumes a StreamClient in a background task, keeping every item."""

    def __init__(self, stream: StreamClient):
        self.stream = stream
        self.items: list = []
        self.task = asyncio.create_task(self._consume())

    async def _consume(self):
        async for item in self.stream.messages():
            self.items.append(item)

    async def wait(self, predicate, timeout: float = 10.0, start: int = 0):
        """Wait for an item (from index ``start``) that matches; return its index."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for k in range(start, len(self.items)):
                if predicate(self.items[k]):
                    return k
            if self.task.done():
                self.task.result()  # re-raise what ended it
                raise AssertionError("stream ended")
            await asyncio.sleep(0.01)
        raise AssertionError(f"timed out; last items: {self.items[-5:]}")

    async def close(self):
        self.stream.stop()
        await asyncio.wait_for(self.task, 5)

    def events(self) -> list:
        return [i for i in self.items if getattr(i, "type", None) in wire.EVENT_TYPES]


def order_event_for(client_order_id: str):
    return lambda i: isinstance(i, wire.OrderEvent) and i.data.client_order_id == client_order_id


def is_up(i):
    return isinstance(i, StreamStatus) and i.connected


def is_down(i):
    return isinstance(i, StreamStatus) and not i.connected


async def _dealer(sim) -> tuple[BackendClient, wire.SessionResponse, wire.Instrument]:
    client = BackendClient(sim.url, read_timeout=2.0)
    session = await client.login("dealer1", "demo")
    eq = [
        i for i in await client.instruments() if i.exchange == wire.Exchange.NSE and i.instrument_type == "EQ"
    ]
    return client, session, min(eq, key=lambda i: i.last_price)


def _market(inst: wire.Instrument, client_id: str) -> wire.OrderRequest:
    return wire.OrderRequest(
        client_order_id=f"S-{uuid.uuid4().hex[:16]}",
        client_id=client_id,
        exchange=inst.exchange,
        symbol=inst.symbol,
        side=wire.Side.BUY,
        quantity=inst.lot_size,
        product=wire.Product.MIS,
        order_type=wire.OrderType.MARKET,
    )


def test_heartbeats_and_order_events_arrive(sim):
    async def scenario():
        client, session, inst = await _dealer(sim)
        rec = Recorder(StreamClient(sim.url, client.token))
        try:
            await rec.wait(lambda i: isinstance(i, wire.HelloMsg))
            assert rec.stream.connected
            req = _market(inst, session.user.client_ids[0])
            placed = await client.place_order(req)
            await rec.wait(order_event_for(req.client_order_id))
            await rec.wait(
                lambda i: isinstance(i, wire.TradeEvent) and i.data.order_id == placed.order.order_id
            )
            await rec.wait(lambda i: isinstance(i, wire.PositionEvent) and i.data.client_id == req.client_id)
            first_hb = await rec.wait(lambda i: isinstance(i, wire.HeartbeatMsg))
            await rec.wait(lambda i: isinstance(i, wire.HeartbeatMsg), start=first_hb + 1)
        finally:
            await rec.close()
            await client.aclose()
        return rec

    rec = run(scenario())
    assert is_up(rec.items[0]) and isinstance(rec.items[1], wire.HelloMsg)
    seqs = [e.seq for e in rec.events()]
    assert seqs == sorted(set(seqs))  # strictly increasing: no duplicate reached us
    assert rec.stream.last_seq == seqs[-1] and rec.stream.messages_count >= len(rec.items) - 1


def test_kill_restart_reconnects_by_itself_and_loses_nothing(sim):
    async def scenario():
        client, session, inst = await _dealer(sim)
        target = session.user.client_ids[0]
        rec = Recorder(StreamClient(sim.url, client.token, backoff_initial=0.05, backoff_max=0.5))
        try:
            await rec.wait(lambda i: isinstance(i, wire.HelloMsg))
            before = [_market(inst, target) for _ in range(2)]
            for req in before:
                await client.place_order(req)
            for req in before:
                await rec.wait(order_event_for(req.client_order_id))

            sim.kill()
            down = await rec.wait(is_down)
            await asyncio.to_thread(sim.start)
            up = await rec.wait(is_up, start=down, timeout=20)

            after = [_market(inst, target) for _ in range(2)]
            for req in after:
                await client.place_order(req)  # the client's pool reconnects by itself too
            for req in after:
                await rec.wait(order_event_for(req.client_order_id), start=up)
        finally:
            await rec.close()
            await client.aclose()
        return rec, before + after

    rec, placed = run(scenario())
    assert rec.stream.reconnects >= 1
    assert not any(isinstance(i, wire.ResnapshotMsg) for i in rec.items)  # the sequence survived the crash
    seqs = [e.seq for e in rec.events()]
    assert seqs == sorted(set(seqs))
    seen = {e.data.client_order_id for e in rec.events() if isinstance(e, wire.OrderEvent)}
    assert {r.client_order_id for r in placed} <= seen


def test_events_missed_before_a_kill_are_redelivered_with_since(sim):
    async def scenario():
        client, session, inst = await _dealer(sim)
        target = session.user.client_ids[0]
        rec = Recorder(StreamClient(sim.url, client.token))
        try:
            await rec.wait(lambda i: isinstance(i, wire.HelloMsg))
            seen_req = _market(inst, target)
            await client.place_order(seen_req)
            await rec.wait(order_event_for(seen_req.client_order_id))
        finally:
            await rec.close()
        resume_from = rec.stream.last_seq

        missed = [_market(inst, target) for _ in range(3)]  # nobody is listening now
        for req in missed:
            await client.place_order(req)
        await client.aclose()
        await asyncio.to_thread(sim.restart)  # kill -9, then start on the same port

        rec2 = Recorder(StreamClient(sim.url, session.access_token, since=resume_from))
        try:
            for req in missed:
                await rec2.wait(order_event_for(req.client_order_id))
        finally:
            await rec2.close()
        return rec2, resume_from, missed

    rec2, resume_from, _missed = run(scenario())
    assert not any(isinstance(i, wire.ResnapshotMsg) for i in rec2.items)
    events = rec2.events()
    assert events and all(e.seq > resume_from for e in events)
    assert [e.seq for e in events] == sorted({e.seq for e in events})


def test_hung_server_is_noticed_by_the_silence_timer(sim):
    async def scenario():
        client, _, _ = await _dealer(sim)
        rec = Recorder(
            StreamClient(
                sim.url,
                client.token,
                silence_timeout=0.5,
                backoff_initial=0.05,
                backoff_max=0.2,
                open_timeout=0.5,
            )
        )
        try:
            await rec.wait(lambda i: isinstance(i, wire.HeartbeatMsg))
            os.kill(sim.proc.pid, signal.SIGSTOP)
            try:
                stopped_at = time.monotonic()
                down = await rec.wait(is_down)
                noticed_after = time.monotonic() - stopped_at
                async with BackendClient(sim.url, token=client.token, read_timeout=0.3, retries=0) as probe:
                    with pytest.raises(Unavailable) as caught:
                        await probe.health()
            finally:
                os.kill(sim.proc.pid, signal.SIGCONT)
            up = await rec.wait(is_up, start=down, timeout=20)
            await rec.wait(lambda i: isinstance(i, wire.HeartbeatMsg), start=up)
        finally:
            await rec.close()
            await client.aclose()
        return rec.items[down], noticed_after, caught.value

    status, noticed_after, probe_error = run(scenario())
    assert status.reason == "silent for 0.5 s"
    # Behaviour, not speed: our own timer, not websockets' 10 s close_timeout.
    assert noticed_after < 5.0
    assert probe_error.kind == "timeout" and probe_error.sent is True


def test_staged_outages_hang_refuse_error_then_recovery(sim_factory):
    sim = sim_factory(allow_faults=True)

    async def set_mode(sup: BackendClient, mode: wire.FaultMode) -> None:
        assert (await sup.set_fault(wire.FaultRequest(mode=mode))).mode is mode

    async def scenario():
        async with BackendClient(sim.url) as first:  # log in with the default deadlines: a loaded CI machine
            token = (
                await first.login("super1", "demo")
            ).access_token  # once took more than 0.3 s to answer it
        sup = BackendClient(
            sim.url,
            control_url=sim.control_url,
            token=token,
            read_timeout=0.3,
            connect_timeout=0.3,
            retries=0,
        )
        rec = Recorder(
            StreamClient(
                sim.url,
                sup.token,
                silence_timeout=0.4,
                backoff_initial=0.05,
                backoff_max=0.2,
                open_timeout=0.4,
            )
        )
        errors = {}
        try:
            await rec.wait(lambda i: isinstance(i, wire.HeartbeatMsg))
            await set_mode(sup, wire.FaultMode.HANG)
            down = await rec.wait(is_down)
            with pytest.raises(Unavailable) as caught:
                await sup.health()
            errors["hang"] = caught.value

            await set_mode(sup, wire.FaultMode.REFUSE)
            refused = await rec.wait(lambda i: is_down(i) and "refused" in i.reason.lower(), start=down + 1)
            with pytest.raises(Unavailable) as caught:
                await sup.health()
            errors["refuse"] = caught.value

            await set_mode(sup, wire.FaultMode.ERROR)
            await rec.wait(lambda i: is_down(i) and "503" in i.reason, start=refused + 1)
            with pytest.raises(Unavailable) as caught:
                await sup.health()
            errors["error"] = caught.value

            await set_mode(sup, wire.FaultMode.NONE)
            up = await rec.wait(is_up, start=refused + 1, timeout=10)
            await rec.wait(lambda i: isinstance(i, wire.HeartbeatMsg), start=up)
            assert (await sup.health()).status == "ok"
        finally:
            await rec.close()
            await sup.aclose()
        return rec.items[down], errors

    first_down, errors = run(scenario())
    assert first_down.reason == "silent for 0.4 s"
    assert (errors["hang"].kind, errors["hang"].sent) == ("timeout", True)
    assert (errors["refuse"].kind, errors["refuse"].sent) == ("refused", False)
    assert (errors["error"].kind, errors["error"].status) == ("server_error", 503)


def test_stream_without_a_valid_token_raises_unauthorized(sim):
    async def scenario():
        for token in ("", "not.a.jwt"):
            stream = StreamClient(sim.url, token)
            with pytest.raises(Unauthorized):
                async for _ in stream.messages():
                    pass

    run(scenario())
