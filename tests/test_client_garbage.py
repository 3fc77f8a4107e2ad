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

from backend_client import wire
from backend_client.client import BackendClient, PlaceResult
from backend_client.errors import (
    BackendError,
    ProtocolError,
    Rejected,
    Unauthorized,
    Unavailable,
)
from tests.garbage_server import GarbageServer, closed_port


def run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


ORDER_REQUEST = wire.OrderRequest(
    client_order_id="C-1", client_id="CL001", exchange="NSE", symbol="INFY", side="BUY",
    quantity=10, product="MIS", order_type="LIMIT", price="1500.5",
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
        async with GarbageServer(mode=mode) as server:
            async with BackendClient(server.url, token="t", read_timeout=0.3, retries=0) as client:
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
        async with GarbageServer(mode="rejected_422") as server:
            async with BackendClient(server.url, token="t", retries=0) as client:
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
        async with GarbageServer(mode="health_ok", script=["json_503", "close_no_response"]) as server:
            async with BackendClient(server.url, retries=2) as client:
                health = await client.health()
        return health, server

    health, server = run(scenario())
    assert health.status == "ok"
    assert len(server.requests) == 3


def test_retries_are_bounded():
    async def scenario():
        async with GarbageServer(mode="json_503") as server:
            async with BackendClient(server.url, retries=2) as client:
                with pytest.raises(Unavailable) as caught:
                    await client.trades()
        return caught.value, server

    exc, server = run(scenario())
    assert exc.kind == "server_error" and exc.status == 503
    assert len(server.requests) == 3


def test_place_order_is_retried_with_the_same_client_order_id():
    async def scenario():
        async with GarbageServer(mode="order_ok", script=["reset_mid_body"]) as server:
            async with BackendClient(server.url, token="t", retries=2) as client:
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
        async with GarbageServer(mode="order_ok", script=["close_and_stop_listening"]) as server:
            async with BackendClient(server.url, token="t", retries=2) as client:
                with pytest.raises(Unavailable) as caught:
                    await client.place_order(ORDER_REQUEST)
        return caught.value, server

    exc, server = run(scenario())
    assert exc.kind == "refused"  # the last attempt found nobody listening...
    assert exc.sent is True  # ...but the first may have placed the order: look it up before resending
    assert len(server.requests) == 1


def test_place_order_201_is_created():
    async def scenario():
        async with GarbageServer(mode="order_created") as server:
            async with BackendClient(server.url, token="t") as client:
                return await client.place_order(ORDER_REQUEST)

    assert run(scenario()).created is True


@pytest.mark.parametrize("mode", ["close_no_response", "reset_mid_body", "hang", "json_503"])
@pytest.mark.parametrize("action", ["modify", "cancel"])
def test_modify_and_cancel_are_never_resent_once_sent(mode, action):
    async def scenario():
        async with GarbageServer(mode="order_ok", script=[mode]) as server:
            async with BackendClient(server.url, token="t", read_timeout=0.3, retries=2) as client:
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
        async with GarbageServer(mode="order_ok") as server:
            async with BackendClient(server.url, token="tok-123") as client:
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
        async with GarbageServer(mode="wrong_shape") as server:
            async with BackendClient(server.url, token="t") as client:
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
