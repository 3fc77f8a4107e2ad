"""mainsim's WebSocket stream against a real subprocess: hello, heartbeats at about
the interval, order events after a POST, resume with ?since=N, and resnapshot."""

from __future__ import annotations

import json
import time

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from contract import wire
from tests.mainsim_support import Desk, order_body, start_sim

RETENTION = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # a short event retention so "older than what is retained" is reachable in a test
    sim = start_sim(
        tmp_path_factory, "mainsim-stream", heartbeat_ms=250, extra_args=["--event-retention", str(RETENTION)]
    )
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def desk(server):
    return Desk(server.url, "dealer2")


def ws_url(server, query: str = "") -> str:
    return server.url.replace("http://", "ws://") + "/api/v1/stream" + (f"?{query}" if query else "")


def open_stream(server, desk, query: str = ""):
    return connect(
        ws_url(server, query),
        additional_headers={"Authorization": desk.http.headers["Authorization"]},
        compression=None,
        open_timeout=10,
    )


def read_for(ws, seconds: float) -> list[dict]:
    out, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            out.append(json.loads(ws.recv(timeout=left)))
        except TimeoutError:
            break
    return out


def read_until(ws, pred, seconds: float = 5.0) -> list[dict]:
    out, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            break
        out.append(msg)
        if pred(msg):
            return out
    raise AssertionError(f"condition not met; got types {[m['type'] for m in out]}")


def place_market(desk, qty: int = 1) -> dict:
    client = desk.get("/clients").json()[0]["client_id"]
    inst = desk.instruments()[("NSE", "ITC")]
    r = desk.post_order(**order_body(client, inst, quantity=qty))
    assert r.status_code == 201, r.text
    return r.json()


def test_hello_then_heartbeats_at_about_the_interval(server, desk):
    with open_stream(server, desk) as ws:
        hello = wire.HelloMsg.model_validate_json(ws.recv(timeout=5))
        assert hello.user_id == "dealer2" and hello.heartbeat_ms == 250
        msgs = read_for(ws, 1.5)
    beats = [wire.HeartbeatMsg.model_validate(m) for m in msgs if m["type"] == "heartbeat"]
    assert 3 <= len(beats) <= 12  # 6 expected; loose on a shared machine
    assert all(isinstance(m["seq"], int) for m in msgs)
    ticks = [wire.TickMsg.model_validate(m) for m in msgs if m["type"] == "tick"]
    assert ticks and all(t.ticks for t in ticks)  # --tick-ms 500: about three batches


def test_token_in_query_works_and_no_token_is_refused(server, desk):
    token = desk.http.headers["Authorization"].split()[1]
    with connect(ws_url(server, f"token={token}"), compression=None) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
    with pytest.raises(InvalidStatus) as err:
        connect(ws_url(server), compression=None)
    assert err.value.response.status_code == 401


def test_an_order_event_follows_a_post_and_only_in_scope(server, desk):
    own = {c["client_id"] for c in desk.get("/clients").json()}
    sup = Desk(server.url, "super1")
    foreign = next(c["client_id"] for c in sup.get("/clients").json() if c["client_id"] not in own)
    with open_stream(server, desk) as ws:
        hello = json.loads(ws.recv(timeout=5))
        assert sup.post_order(**order_body(foreign, desk.instruments()[("NSE", "ITC")])).status_code == 201
        order = place_market(desk)
        msgs = read_until(ws, lambda m: m["type"] == "order" and m["data"]["order_id"] == order["order_id"])
    events = [m for m in msgs if m["type"] in wire.EVENT_TYPES]
    assert {m["type"] for m in events} == {"order", "trade", "position"}
    assert all(m["seq"] > hello["seq"] for m in events)
    assert [m["seq"] for m in events] == sorted(m["seq"] for m in events)
    wire.OrderEvent.model_validate(events[-1])
    assert all(m["data"]["client_id"] in own for m in events)


def test_resume_with_since_gets_the_missed_events_in_order(server, desk):
    with open_stream(server, desk) as ws:
        since = json.loads(ws.recv(timeout=5))["seq"]
    missed = [place_market(desk)["order_id"] for _ in range(3)]
    with open_stream(server, desk, f"since={since}") as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        msgs = read_until(ws, lambda m: m["type"] == "order" and m["data"]["order_id"] == missed[-1])
    events = [m for m in msgs if m["type"] in wire.EVENT_TYPES]
    assert [m["data"]["order_id"] for m in events if m["type"] == "order"] == missed
    seqs = [m["seq"] for m in events]
    assert seqs == sorted(seqs) and seqs[0] > since and len(set(seqs)) == len(seqs)


def test_since_older_than_retention_or_in_the_future_gets_resnapshot(server, desk):
    for _ in range(RETENTION // 3 + 5):  # 3 events per market order: pushes the oldest out
        place_market(desk)
    for since in (1, 10**9):
        with open_stream(server, desk, f"since={since}") as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "hello"
            msg = wire.ResnapshotMsg.model_validate_json(ws.recv(timeout=5))
            assert msg.seq >= RETENTION and msg.reason
            # and the stream goes on live afterwards
            assert any(m["type"] == "heartbeat" for m in read_for(ws, 0.8))
