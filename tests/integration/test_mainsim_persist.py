"""mainsim's durability and its demo data: kill -9 right after a burst of
acknowledged orders loses none of them and the event sequence continues; the
same seed gives the same desk, another seed a different one."""

from __future__ import annotations

import httpx

from tests.mainsim_support import API, Desk, order_body, ticks


def test_kill_9_after_a_burst_loses_no_acknowledged_order(sim_factory):
    sim = sim_factory()
    desk = Desk(sim.url, "dealer3")
    client = desk.get("/clients").json()[0]["client_id"]
    market = desk.instruments()
    inst = market[("NSE", "RELIANCE")]
    acked = {}
    for n in range(40):
        if n % 2:
            body = order_body(client, inst, order_type="LIMIT", price=ticks(inst, n), quantity=1)
        else:
            body = order_body(client, inst, quantity=1)
        r = desk.post_order(**body)
        assert r.status_code == 201
        acked[body["client_order_id"]] = r.json()
    seq_before = desk.get("/bod").json()["seq"]
    sim.kill()  # SIGKILL straight after the last acknowledgement

    sim.start()  # same --db, same port
    assert sim.url == desk.base
    # the JWT secret is persisted, so the old token still works
    for coid, order in acked.items():
        r = desk.get(f"/orders/by-client-id/{coid}")
        assert r.status_code == 200, coid
        assert r.json()["order_id"] == order["order_id"] and r.json()["status"] == order["status"]
    resting = {
        o["order_id"] for o in desk.get("/orders", params={"client_id": client, "status": "OPEN"}).json()
    }
    assert {o["order_id"] for o in acked.values() if o["status"] == "OPEN"} <= resting
    assert desk.get("/bod").json()["seq"] == seq_before
    # resting orders are live again: one can be cancelled, and new events continue the sequence
    some_open = next(o for o in acked.values() if o["status"] == "OPEN")
    assert desk.http.delete(f"/orders/{some_open['order_id']}").json()["status"] == "CANCELLED"
    assert desk.post_order(**order_body(client, inst, quantity=1)).status_code == 201
    assert desk.get("/bod").json()["seq"] > seq_before + 1
    order_ids = [o["order_id"] for o in desk.get("/orders").json()]
    assert len(order_ids) == len(set(order_ids))
    sim.stop()  # SIGTERM: a clean shutdown
    assert sim.proc.returncode == 0


def _desk_state(url: str) -> dict:
    token = httpx.post(f"{url}{API}/session", json={"user_id": "super1", "password": "demo"}).json()[
        "access_token"
    ]
    h = {"Authorization": f"Bearer {token}"}
    get = lambda path: httpx.get(f"{url}{API}{path}", headers=h, timeout=10).json()  # noqa: E731
    volatile = {"last_price", "mtm"}
    return {
        "instruments": [{k: v for k, v in i.items() if k not in volatile} for i in get("/instruments")],
        "clients": get("/clients"),
        "limits": get("/limits"),
        "positions": sorted(
            ([{k: v for k, v in p.items() if k not in volatile} for p in get("/positions")]),
            key=lambda p: (p["client_id"], p["exchange"], p["symbol"], p["product"]),
        ),
        "orders": [{k: v for k, v in o.items() if k not in {"status", "updated_at"}} for o in get("/orders")],
    }


def test_same_seed_same_desk_and_another_seed_differs(sim_factory):
    frozen = ["--tick-ms", "600000", "--trading-date", "2025-01-06"]  # no ticks: nothing moves between reads
    a = _desk_state(sim_factory(seed=11, extra_args=frozen).url)
    b = _desk_state(sim_factory(seed=11, extra_args=frozen).url)
    c = _desk_state(sim_factory(seed=12, extra_args=frozen).url)
    assert a == b
    assert a["instruments"] != c["instruments"] and a["positions"] != c["positions"]
    assert len(a["clients"]) >= 40 and len({cl["dealer_id"] for cl in a["clients"]}) == 3
    assert len(a["instruments"]) >= 100 and {i["exchange"] for i in a["instruments"]} == {"NSE", "BSE", "NFO"}
    assert len(a["positions"]) >= 200
    assert any(o["order_type"] == "LIMIT" for o in a["orders"]) and any(
        o["order_type"] in ("SL", "SL-M") for o in a["orders"]
    )
    futs = [i for i in a["instruments"] if i["exchange"] == "NFO"]
    assert all(
        i["instrument_type"] == "FUT" and i["lot_size"] > 1 and i["freeze_quantity"] > i["lot_size"]
        for i in futs
    )
    assert all(i["lower_band"] < i["previous_close"] < i["upper_band"] for i in a["instruments"])
