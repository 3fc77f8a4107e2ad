"""mainsim's REST contract, exercised against a real subprocess over loopback:
login and scope, order validation with reasons, idempotency, fills and the book."""

from __future__ import annotations

import base64
from datetime import UTC

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contract import clock, wire
from tests.mainsim_support import API, Desk, error_code, order_body, start_sim, ticks


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    sim = start_sim(tmp_path_factory, "mainsim-api")
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def d1(server):
    return Desk(server.url, "dealer1")


@pytest.fixture(scope="module")
def sup(server):
    return Desk(server.url, "super1")


@pytest.fixture(scope="module")
def market(d1):
    return d1.instruments()


@pytest.fixture(scope="module")
def mine(d1):
    return d1.get("/clients").json()[0]["client_id"]


def eq(market, symbol="RELIANCE", exchange="NSE"):
    return market[(exchange, symbol)]


def fut(market):
    return next(i for i in market.values() if i["exchange"] == "NFO" and i["lot_size"] > 1)


# ------------------------------------------------------------------ session and scope


def test_login_returns_token_and_a_verifiable_offline_grant(server, d1):
    r = httpx.post(f"{server.url}{API}/session", json={"user_id": "dealer1", "password": "demo"})
    assert r.status_code == 200
    s = wire.SessionResponse.model_validate_json(r.content)
    assert s.user.role is wire.Role.DEALER and len(s.user.client_ids) >= 10
    assert s.offline_grant.claims.client_ids == s.user.client_ids
    keys = wire.KeySet.model_validate_json(d1.get("/keys").content)
    key = next(k for k in keys.keys if k.key_id == s.offline_grant.claims.key_id)
    pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(key.public_key))
    pub.verify(base64.b64decode(s.offline_grant.signature), wire.grant_signing_bytes(s.offline_grant.claims))
    valid_until = s.offline_grant.claims.valid_until
    assert valid_until > clock.utcnow()
    assert valid_until.astimezone(UTC).strftime("%H:%M:%S") == "18:29:59"  # 23:59:59 IST


def test_bad_password_and_missing_or_bad_token_are_401(server):
    r = httpx.post(f"{server.url}{API}/session", json={"user_id": "dealer1", "password": "nope"})
    assert r.status_code == 401 and error_code(r) == "unauthorized"
    r = httpx.post(f"{server.url}{API}/session", json={"user_id": "nobody", "password": "demo"})
    assert r.status_code == 401
    assert httpx.get(f"{server.url}{API}/positions").status_code == 401
    r = httpx.get(f"{server.url}{API}/orders", headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401 and error_code(r) == "unauthorized"


def test_dealer_sees_only_own_clients_and_is_403_on_others(d1, sup, market):
    own = {c["client_id"] for c in d1.get("/clients").json()}
    everyone = sup.get("/clients").json()
    other = next(c["client_id"] for c in everyone if c["client_id"] not in own)
    assert len(everyone) >= 40 and own < {c["client_id"] for c in everyone}
    assert {p["client_id"] for p in d1.get("/positions").json()} <= own
    assert d1.get("/positions", params={"client_id": other}).status_code == 403
    r = d1.post_order(**order_body(other, eq(market)))
    assert r.status_code == 403 and error_code(r) == "forbidden"
    foreign_order = next(o for o in sup.get("/orders").json() if o["client_id"] not in own)
    assert d1.get(f"/orders/{foreign_order['order_id']}").status_code == 403
    assert d1.http.delete(f"/orders/{foreign_order['order_id']}").status_code == 403


def test_viewer_reads_everything_but_cannot_place_modify_or_cancel(server, sup, market):
    viewer = Desk(server.url, "viewer1")
    assert len(viewer.get("/positions").json()) >= 200
    client = viewer.get("/clients").json()[0]["client_id"]
    r = viewer.post_order(**order_body(client, eq(market)))
    assert r.status_code == 403 and error_code(r) == "forbidden"
    open_order = sup.get("/orders", params={"status": "OPEN"}).json()[0]
    assert viewer.http.patch(f"/orders/{open_order['order_id']}", json={"quantity": 1}).status_code == 403
    assert viewer.http.delete(f"/orders/{open_order['order_id']}").status_code == 403


def test_unknown_path_and_unknown_order_answer_error_bodies(d1):
    for r in (
        d1.get("/no/such/path"),
        d1.get("/orders/O999999999"),
        d1.get("/orders/by-client-id/never-used"),
    ):
        assert r.status_code == 404
        wire.ErrorBody.model_validate_json(r.content)


# ------------------------------------------------------------------ validation


def reject_cases(market, fut_inst):
    nse = eq(market)
    return {
        "unknown_symbol": dict(inst=nse, symbol="NOSUCHSCRIP"),
        "invalid_quantity": dict(inst=nse, quantity=0),
        "invalid_quantity ": dict(inst=nse, quantity=-5),
        "lot_size": dict(inst=fut_inst, quantity=fut_inst["lot_size"] + 1),
        "freeze_quantity": dict(inst=fut_inst, quantity=fut_inst["freeze_quantity"] + fut_inst["lot_size"]),
        "price_band": dict(
            inst=nse, order_type="LIMIT", price=float(nse["upper_band"]) + float(nse["tick_size"])
        ),
        "price_band ": dict(inst=nse, order_type="LIMIT", price=float(nse["lower_band"]) - 1),
        "tick_size": dict(inst=nse, order_type="LIMIT", price=ticks(nse, 10) + 0.01),
        "product_exchange": dict(inst=fut_inst, product="CNC"),
        "product_exchange ": dict(inst=nse, product="NRML"),
        "price_required": dict(inst=nse, order_type="LIMIT"),
        "trigger_required": dict(inst=nse, order_type="SL-M"),
        "disclosed_quantity": dict(inst=nse, quantity=5, disclosed_quantity=6),
        "order_value_limit": dict(inst=nse, quantity=nse["freeze_quantity"]),
    }


@pytest.mark.parametrize(
    "code",
    [
        "unknown_symbol",
        "invalid_quantity",
        "invalid_quantity ",
        "lot_size",
        "freeze_quantity",
        "price_band",
        "price_band ",
        "tick_size",
        "product_exchange",
        "product_exchange ",
        "price_required",
        "trigger_required",
        "disclosed_quantity",
        "order_value_limit",
    ],
)
def test_each_reject_reason_is_a_422_with_its_code(d1, mine, market, code):
    case = dict(reject_cases(market, fut(market))[code])
    inst = case.pop("inst")
    body = order_body(mine, inst, **case)
    r = d1.post_order(**body)
    assert r.status_code == 422, r.text
    err = wire.ErrorBody.model_validate_json(r.content).error
    assert err.code == code.strip() and err.message
    # nothing was stored: the id is free for a corrected retry
    assert d1.get(f"/orders/by-client-id/{body['client_order_id']}").status_code == 404


def test_unknown_client_and_malformed_bodies_are_422_not_5xx(d1, market):
    r = d1.post_order(**order_body("C9999", eq(market)))
    assert r.status_code == 422 and error_code(r) == "unknown_client"
    for bad in ({}, {"client_order_id": "x", "quantity": "many"}, [1, 2]):
        r = d1.http.post("/orders", json=bad)
        assert r.status_code == 422 and error_code(r) == "invalid_request"
    r = d1.http.post("/orders", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and error_code(r) == "invalid_request"
    r = d1.get("/orders", params={"status": "SOMETIMES"})
    assert r.status_code == 422 and error_code(r) == "invalid_request"


def test_exposure_limit_refuses_only_orders_that_grow_exposure(sup, market):
    limits = {lim["client_id"]: lim for lim in sup.get("/limits").json()}
    client = sorted(limits)[-1]
    inst = eq(market, "TCS")
    lot_value = float(inst["upper_band"])
    qty = max(1, int(float(limits[client]["max_order_value"]) * 0.9 / lot_value))
    codes = []
    for _ in range(80):
        r = sup.post_order(**order_body(client, inst, quantity=qty))
        codes.append(r.status_code)
        if r.status_code != 201:
            break
    assert codes[-1] == 422 and error_code(r) == "exposure_limit", codes
    # a square-off of what was just bought still goes through: it reduces exposure
    held = sum(
        p["net_quantity"]
        for p in sup.get("/positions", params={"client_id": client}).json()
        if p["symbol"] == "TCS" and p["exchange"] == "NSE" and p["product"] == "MIS"
    )
    r = sup.post_order(**order_body(client, inst, side="SELL", quantity=held))
    assert r.status_code == 201 and r.json()["status"] == "COMPLETE"


# ------------------------------------------------------------------ idempotency


def test_same_client_order_id_same_params_is_200_and_same_order(d1, mine, market):
    body = order_body(
        mine, eq(market, "INFY"), order_type="LIMIT", price=ticks(eq(market, "INFY"), 2), quantity=3
    )
    first = d1.post_order(**body)
    again = d1.post_order(**body)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["order_id"] == first.json()["order_id"]
    by_id = d1.get(f"/orders/by-client-id/{body['client_order_id']}").json()
    assert by_id["order_id"] == first.json()["order_id"]


def test_same_client_order_id_other_params_is_409(d1, mine, market):
    body = order_body(mine, eq(market, "ITC"), quantity=2)
    assert d1.post_order(**body).status_code == 201
    r = d1.post_order(**{**body, "quantity": 4})
    assert r.status_code == 409 and error_code(r) == "idempotency_conflict"


def test_corrected_retry_after_a_reject_reuses_the_id(d1, mine, market):
    inst = eq(market, "SBIN")
    body = order_body(mine, inst, quantity=0)
    assert d1.post_order(**body).status_code == 422
    assert d1.post_order(**{**body, "quantity": 1}).status_code == 201


# ------------------------------------------------------------------ fills and the book


def net(desk, client, inst, product="MIS"):
    rows = desk.get("/positions", params={"client_id": client}).json()
    return sum(
        p["net_quantity"]
        for p in rows
        if (p["exchange"], p["symbol"], p["product"]) == (inst["exchange"], inst["symbol"], product)
    )


def test_market_order_fills_at_last_price_and_moves_the_position(d1, mine, market):
    inst = eq(market, "HDFCBANK")
    before = net(d1, mine, inst)
    r = d1.post_order(**order_body(mine, inst, quantity=7))
    assert r.status_code == 201
    order = r.json()
    assert order["status"] == "COMPLETE" and order["filled_quantity"] == 7 and order["average_price"] > 0
    assert net(d1, mine, inst) == before + 7
    trades = d1.get("/trades", params={"client_id": mine}).json()
    assert any(t["order_id"] == order["order_id"] and t["quantity"] == 7 for t in trades)
    pos = next(
        p
        for p in d1.get("/positions", params={"client_id": mine}).json()
        if p["symbol"] == inst["symbol"] and p["exchange"] == "NSE" and p["product"] == "MIS"
    )
    expected = pos["realised_pnl"] + (pos["last_price"] - pos["average_price"]) * pos["net_quantity"]
    assert pos["mtm"] == pytest.approx(expected, abs=0.02)


def test_marketable_limit_fills_and_far_limit_rests_open(d1, mine, market):
    inst = eq(market, "WIPRO")
    filled = d1.post_order(
        **order_body(mine, inst, order_type="LIMIT", price=float(inst["upper_band"]), quantity=2)
    )
    assert filled.json()["status"] == "COMPLETE"
    resting = d1.post_order(**order_body(mine, inst, order_type="LIMIT", price=ticks(inst, 1), quantity=2))
    assert resting.status_code == 201 and resting.json()["status"] == "OPEN"
    open_ids = {o["order_id"] for o in d1.get("/orders", params={"client_id": mine, "status": "OPEN"}).json()}
    assert resting.json()["order_id"] in open_ids


def test_sl_waits_for_trigger_and_ioc_that_cannot_fill_is_cancelled(d1, mine, market):
    inst = eq(market, "TITAN")
    top = float(inst["upper_band"])
    sl = d1.post_order(**order_body(mine, inst, order_type="SL-M", trigger_price=top, quantity=1))
    assert sl.json()["status"] == "TRIGGER_PENDING"
    ioc = d1.post_order(
        **order_body(mine, inst, order_type="LIMIT", price=ticks(inst, 1), validity="IOC", quantity=1)
    )
    assert ioc.status_code == 201 and ioc.json()["status"] == "CANCELLED"


def test_modify_and_cancel_open_orders_then_not_open(d1, mine, market):
    inst = eq(market, "ONGC")
    order = d1.post_order(
        **order_body(mine, inst, order_type="LIMIT", price=ticks(inst, 3), quantity=10)
    ).json()
    r = d1.http.patch(f"/orders/{order['order_id']}", json={"quantity": 20, "price": ticks(inst, 4)})
    assert (
        r.status_code == 200
        and r.json()["quantity"] == 20
        and r.json()["price"] == pytest.approx(ticks(inst, 4))
    )
    r = d1.http.patch(f"/orders/{order['order_id']}", json={"price": ticks(inst, 4) + 0.01})
    assert r.status_code == 422 and error_code(r) == "tick_size"
    r = d1.http.delete(f"/orders/{order['order_id']}")
    assert r.status_code == 200 and r.json()["status"] == "CANCELLED"
    for r in (
        d1.http.delete(f"/orders/{order['order_id']}"),
        d1.http.patch(f"/orders/{order['order_id']}", json={"quantity": 5}),
    ):
        assert r.status_code == 422 and error_code(r) == "not_open"
    done = d1.post_order(**order_body(mine, inst, quantity=1)).json()
    assert done["status"] == "COMPLETE"
    r = d1.http.delete(f"/orders/{done['order_id']}")
    assert r.status_code == 422 and error_code(r) == "not_open"


def test_bod_snapshot_is_consistent_with_the_scope(d1):
    bod = wire.BodSnapshot.model_validate_json(d1.get("/bod").content)
    own = set(bod.user.client_ids)
    assert {c.client_id for c in bod.clients} == own
    assert all(p.client_id in own for p in bod.positions)
    assert all(o.status in wire.OPEN_STATUSES and o.client_id in own for o in bod.open_orders)
    assert len(bod.instruments) >= 100 and bod.seq >= 0
    health = httpx.get(f"{d1.base}{API}/health").json()
    assert health["trading_date"] == bod.trading_date.isoformat()
