"""BackendClient against a server that answers garbage: every shape is a typed error.

The garbage server (tests/garbage_server.py) is a fake by necessity: mainsim cannot be
made to send truncated JSON or reset a connection mid-body.  Each case proves the
caller sees ProtocolError or Unavailable of the right kind, never a raw httpx, json,
pydantic or OSError exception.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from backend_client.client import BackendClient, PlaceResult
from backend_client.errors import (
    BackendError,
    ProtocolError,
    Rejected,
    Unauthorized,
    Unavailable,
)
from contract import wire
from tests.garbage_server import GarbageServer, closed_port


def run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


ORDER_REQUEST = wire.OrderRequest(
    client_order_id="C-1",
    client_id="CL001",
    exchange="NSE",
    symbol="INFY",
    side="BUY",
    quantity=10,
    product="MIS",
    order_type="LIMIT",
    price="1500.5",
)

# mode, the call to make, the error type, Unavailable.kind (or None)
CASES = [
    ("truncated_json", "health", ProtocolError, None),
    ("wrong_types", "order", ProtocolError, None),
    ("wrong_shape", "order", ProtocolError, None),
    ("json_null", "health", ProtocolError, None),
    ("json_garbage", "health", ProtocolError, None),
    ("html_200", "health", ProtocolError, None),
    ("html_404", "order", ProtocolError, None),
    ("detail_404", "order", ProtocolError, None),
    ("empty_200", "health", ProtocolError, None),
    ("text_plain", "health", ProtocolError, None),
    ("no_content_type", "health", ProtocolError, None),
    ("teapot_418", "health", ProtocolError, None),
    ("redirect_302", "health", ProtocolError, None),
    ("not_http", "health", ProtocolError, None),
    ("wrong_types", "orders", ProtocolError, None),  # an object where a list belongs
    ("html_502", "health", Unavailable, "server_error"),
    ("json_500", "order", Unavailable, "server_error"),
    ("reset_mid_body", "order", Unavailable, "reset"),
    ("close_no_response", "health", Unavailable, "reset"),
    ("hang", "health", Unavailable, "timeout"),
    ("rejected_422", "place", Rejected, None),
    ("unauthorized_401", "positions", Unauthorized, None),
]


async def _call(client: BackendClient, name: str):
    if name == "health":
        return await client.health()
    if name == "order":
        return await client.order("O-1")
    if name == "orders":
        return await client.orders()
    if name == "positions":
        return await client.positions("CL001")
    if name == "place":
        return await client.place_order(ORDER_REQUEST)
    raise AssertionError(name)


@pytest.mark.parametrize("mode,call,error,kind", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_garbage_reply_is_a_typed_error(mode, call, error, kind):
    async def scenario():
        async with (
            GarbageServer(mode=mode) as server,
            BackendClient(server.url, token="t", read_timeout=0.3, retries=0) as client,
        ):
            with pytest.raises(BackendError) as caught:
                await _call(client, call)
        return caught.value, server

    exc, server = run(scenario())
    assert type(exc) is error, f"{mode}: {type(exc).__name__}: {exc}"
    assert exc.message  # a sentence for a person
    if kind is not None:
        assert exc.kind == kind
        assert exc.sent is True  # the request reached the server: outcome unknown
    assert len(server.requests) == 1


def test_rejection_carries_the_reason_code():
    async def scenario():
        async with (
            GarbageServer(mode="rejected_422") as server,
            BackendClient(server.url, token="t", retries=0) as client,
        ):
            with pytest.raises(Rejected) as caught:
                await client.place_order(ORDER_REQUEST)
        return caught.value

    exc = run(scenario())
    assert exc.code == "lot_size" and exc.status == 422
    assert "multiple of 25" in exc.message


def test_connection_refused_is_unavailable_not_sent():
    async def scenario():
        async with BackendClient(f"http://127.0.0.1:{closed_port()}", retries=1) as client:
            with pytest.raises(Unavailable) as caught:
                await client.cancel_order("O-1")
        return caught.value

    exc = run(scenario())
    assert exc.kind == "refused" and exc.sent is False


def test_get_is_retried_after_a_server_error():
    async def scenario():
        async with (
            GarbageServer(mode="health_ok", script=["json_503", "close_no_response"]) as server,
            BackendClient(server.url, retries=2) as client,
        ):
            health = await client.health()
        return health, server

    health, server = run(scenario())
    assert health.status == "ok"
    assert len(server.requests) == 3


def test_retries_are_bounded():
    async def scenario():
        async with GarbageServer(mode="json_503") as server, BackendClient(server.url, retries=2) as client:
            with pytest.raises(Unavailable) as caught:
                await client.trades()
        return caught.value, server

    exc, server = run(scenario())
    assert exc.kind == "server_error" and exc.status == 503
    assert len(server.requests) == 3


def test_place_order_is_retried_with_the_same_client_order_id():
    async def scenario():
        async with (
            GarbageServer(mode="order_ok", script=["reset_mid_body"]) as server,
            BackendClient(server.url, token="t", retries=2) as client,
        ):
            result = await client.place_order(ORDER_REQUEST)
        return result, server

    result, server = run(scenario())
    assert isinstance(result, PlaceResult)
    assert result.created is False  # 200: the main system already had it
    assert result.order.client_order_id == "C-1"
    bodies = [json.loads(r.body) for r in server.requests]
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    assert bodies[0]["client_order_id"] == "C-1" and bodies[0]["price"] == 1500.5


def test_outcome_stays_unknown_when_a_later_attempt_is_refused():
    async def scenario():
        async with (
            GarbageServer(mode="order_ok", script=["close_and_stop_listening"]) as server,
            BackendClient(server.url, token="t", retries=2) as client,
        ):
            with pytest.raises(Unavailable) as caught:
                await client.place_order(ORDER_REQUEST)
        return caught.value, server

    exc, server = run(scenario())
    assert exc.kind == "refused"  # the last attempt found nobody listening...
    assert exc.sent is True  # ...but the first may have placed the order: look it up before resending
    assert len(server.requests) == 1


def test_place_order_201_is_created():
    async def scenario():
        async with (
            GarbageServer(mode="order_created") as server,
            BackendClient(server.url, token="t") as client,
        ):
            return await client.place_order(ORDER_REQUEST)

    assert run(scenario()).created is True


@pytest.mark.parametrize("mode", ["close_no_response", "reset_mid_body", "hang", "json_503"])
@pytest.mark.parametrize("action", ["modify", "cancel"])
def test_modify_and_cancel_are_never_resent_once_sent(mode, action):
    async def scenario():
        async with (
            GarbageServer(mode="order_ok", script=[mode]) as server,
            BackendClient(server.url, token="t", read_timeout=0.3, retries=2) as client,
        ):
            with pytest.raises(Unavailable) as caught:
                if action == "modify":
                    await client.modify_order("O-1", wire.OrderModify(quantity=20))
                else:
                    await client.cancel_order("O-1")
        return caught.value, server

    exc, server = run(scenario())
    assert exc.sent is True
    assert len(server.requests) == 1  # the next scripted answer (order_ok) was never asked for


def test_token_is_sent_and_latency_recorded():
    async def scenario():
        async with (
            GarbageServer(mode="order_ok") as server,
            BackendClient(server.url, token="tok-123") as client,
        ):
            assert client.latency_ms is None
            order = await client.order("a/b?c")
            return order, client.latency_ms, server

    order, latency, server = run(scenario())
    assert order.order_id == "O-1"
    assert latency is not None and latency > 0
    req = server.requests[0]
    assert req.headers["authorization"] == "Bearer tok-123"
    assert req.path == "/api/v1/orders/a%2Fb%3Fc"  # an id never changes the route


def test_query_parameters_drop_none():
    async def scenario():
        async with (
            GarbageServer(mode="wrong_shape") as server,
            BackendClient(server.url, token="t") as client,
        ):
            with pytest.raises(ProtocolError):
                await client.orders(client_id="CL001", status=wire.OrderStatus.OPEN)
            with pytest.raises(ProtocolError):
                await client.orders()
        return server

    server = run(scenario())
    assert server.requests[0].path == "/api/v1/orders?client_id=CL001&status=OPEN"
    assert server.requests[1].path == "/api/v1/orders"


def test_bad_base_url_is_a_clear_error():
    with pytest.raises(ValueError, match="bad backend URL"):
        BackendClient("not a url at all://")


def test_bad_token_is_refused_before_sending():
    with pytest.raises(ValueError, match="bad access token"):
        BackendClient("http://127.0.0.1:1", token="t\u00f6k")
    client = BackendClient("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="bad access token"):
        client.token = "a\nb"
    run(client.aclose())


# --------------------------------------------------------------------------- bounds: deadline and reply size
# A real mainsim behind tests/hostile_proxy.py: the session and the replies are real, only
# the chosen reply is spoiled.  Before the bounds, a drip kept a call going as long as the
# server liked (httpx's read timeout is per read) and an endless body grew without limit.


async def _proxied(sim, rules, **client_kw):
    """A logged-in client through a hostile proxy with ``rules`` ([(path, mode, options)])."""
    from tests.hostile_proxy import HostileProxy

    proxy = await HostileProxy(sim.url).start()
    client = BackendClient(proxy.url, retries=2, **client_kw)
    await client.login("dealer1", "demo")
    for path, mode, options in rules:
        proxy.misbehave(path, mode, **options)
    return proxy, client


def test_a_dripped_reply_ends_at_the_deadline(sim):
    """1 byte every 0.2 s: every read succeeds, so only a total deadline ends it."""
    from backend_client.errors import DeadlineExceeded

    async def scenario():
        proxy, client = await _proxied(sim, [("/positions", "drip", {"interval": 0.2})], deadline_s=1.0)
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(DeadlineExceeded) as info:
                await client.positions()
            return info.value, asyncio.get_running_loop().time() - started, proxy.hits("/positions")
        finally:
            await client.aclose()
            await proxy.stop()

    exc, elapsed, hits = run(scenario())
    assert isinstance(exc, Unavailable) and exc.kind == "timeout" and exc.sent
    assert "1 s deadline" in exc.message and exc.deadline_s == 1.0
    assert 0.9 <= elapsed < 3.0  # the deadline, not the reply's ~4,000 s
    assert hits == 1  # no retry: the deadline covers the retries too


def test_an_endless_body_is_refused_at_the_size_cap_with_little_memory(sim):
    import tracemalloc

    from backend_client.errors import ReplyTooLarge

    async def scenario():
        proxy, client = await _proxied(sim, [("/positions", "endless", {})], max_reply_bytes=2**20)
        try:
            tracemalloc.start()
            with pytest.raises(ReplyTooLarge) as info:
                await client.positions()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            return info.value, peak, proxy.hits("/positions")
        finally:
            await client.aclose()
            await proxy.stop()

    exc, peak, hits = run(scenario())
    assert isinstance(exc, Unavailable) and exc.kind == "too_large" and exc.limit == 2**20
    assert "larger than the 1,048,576 bytes accepted" in exc.message
    assert peak < 8 * 2**20, peak  # the cap and its chunks, not the stream
    assert hits == 1  # not retried: it would be as big again


def test_an_announced_length_over_the_cap_is_refused_before_the_body(sim):
    """mainsim's real /positions (~20 KB, Content-Length) against a 1,000-byte cap."""
    from backend_client.errors import ReplyTooLarge

    async def scenario():
        async with BackendClient(sim.url, max_reply_bytes=1000) as client:
            await client.login("dealer1", "demo")
            with pytest.raises(ReplyTooLarge) as info:
                await client.positions()
            snap = await client.bod()  # the BOD's own cap (default 128 MiB) lets it through
            return info.value, snap

    exc, snap = run(scenario())
    assert "it announced" in exc.message and exc.status == 200
    assert snap.positions


def test_bod_has_its_own_deadline(sim):
    """A BOD dripped at 0.1 s a byte passes the 0.5 s call deadline but ends at the BOD's 1.5 s."""
    from backend_client.errors import DeadlineExceeded

    async def scenario():
        proxy, client = await _proxied(
            sim, [("/bod", "drip", {"interval": 0.1})], deadline_s=0.5, bod_deadline_s=1.5
        )
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(DeadlineExceeded) as info:
                await client.bod()
            return info.value, asyncio.get_running_loop().time() - started
        finally:
            await client.aclose()
            await proxy.stop()

    exc, elapsed = run(scenario())
    assert exc.deadline_s == 1.5 and 1.4 <= elapsed < 3.5


def test_retries_stop_at_the_deadline():
    """A refused connection is retried with a growing pause, but never past the deadline."""

    async def scenario():
        async with BackendClient(f"http://127.0.0.1:{closed_port()}", retries=50, deadline_s=0.4) as client:
            started = asyncio.get_running_loop().time()
            with pytest.raises(Unavailable) as info:
                await client.health()
            return info.value, asyncio.get_running_loop().time() - started

    exc, elapsed = run(scenario())
    assert exc.kind == "refused" and elapsed < 1.5


def test_request_is_the_public_json_call_with_the_bounds(sim):
    from backend_client.errors import ReplyTooLarge

    async def scenario():
        async with BackendClient(sim.url) as client:
            status, health = await client.request("GET", "/health", wire.Health, auth=False, safe=True)
            with pytest.raises(ReplyTooLarge):
                await client.request("GET", "/health", wire.Health, auth=False, safe=True, max_reply_bytes=10)
            return status, health

    status, health = run(scenario())
    assert status == 200 and health.status == "ok"


def test_the_bounds_come_from_the_environment_and_are_checked(monkeypatch):
    from backend_client import client as client_module

    monkeypatch.setenv(client_module.DEADLINE_ENV, "2.5")
    monkeypatch.setenv(client_module.MAX_REPLY_ENV, "4096")
    c = BackendClient("http://127.0.0.1:1")
    assert (c.deadline_s, c.max_reply_bytes) == (2.5, 4096)
    assert c.bod_deadline_s == client_module.DEFAULT_BOD_DEADLINE_S
    assert BackendClient("http://127.0.0.1:1", deadline_s=1).deadline_s == 1.0  # an argument wins
    for bad in ("abc", "0", "-1", "nan", "inf"):
        monkeypatch.setenv(client_module.DEADLINE_ENV, bad)
        with pytest.raises(ValueError, match="LIFEBOAT_REQUEST_DEADLINE_S"):
            BackendClient("http://127.0.0.1:1")


def test_the_detector_counts_a_passed_deadline_and_an_oversized_reply():
    """Both errors carry kinds the failure detector takes as main failing (SUSPECT, then a probe)."""
    from backend_client.detector import Detector, Mode
    from backend_client.errors import DeadlineExceeded, ReplyTooLarge

    for exc in (DeadlineExceeded("GET /x: late", deadline_s=1.0), ReplyTooLarge("GET /x: big", limit=10)):
        d = Detector()
        change = d.on_request_error(0.1, exc.kind, exc.message)
        assert change is not None and change.to_mode is Mode.SUSPECT and d.probe_wanted, exc.kind


def test_an_endless_health_reply_is_a_failed_probe_not_a_full_memory(sim):
    """The failure detector's probe reads /health outside BackendClient: capped at 64 KiB too."""
    import tracemalloc

    from backend_client.detector import probe_once
    from tests.hostile_proxy import HostileProxy

    async def scenario():
        async with HostileProxy(sim.url) as proxy:
            assert (await probe_once(proxy.url, timeout=2.0)).ok  # through the proxy, untouched
            proxy.misbehave("/health", "endless")
            tracemalloc.start()
            result = await probe_once(proxy.url, timeout=2.0)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            return result, peak

    result, peak = run(scenario())
    assert not result.ok and result.kind == "protocol" and "over 65536 bytes" in result.detail, result
    assert peak < 4 * 2**20, peak
