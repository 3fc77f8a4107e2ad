"""mainsim's ``GET /metrics`` against a real subprocess (with --allow-faults, so the fault
proxy's own replies are exercised too): every scrape is parsed with prometheus_client's
parser, and each test compares two scrapes around what it did, so the counters must move
by exactly that and nothing else."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from mainsim.metrics import SimMetrics
from tests.mainsim_support import API, Desk, login, order_body, start_sim, ticks

ORDER = "/api/v1/orders/{order_id}"
ORDERS = "/api/v1/orders"
Series = tuple[str, tuple[tuple[str, str], ...]]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    sim = start_sim(tmp_path_factory, "mainsim-metrics", allow_faults=True)
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def desk(server):
    return Desk(server.url, "dealer1")


@pytest.fixture(scope="module")
def control(server):
    """The supervisor on the control URL (the faults never touch it)."""
    token = login(server.control_url, "super1")
    with httpx.Client(
        base_url=f"{server.control_url}{API}", timeout=10, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield client


def scrape_text(base: str) -> str:
    r = httpx.get(f"{base}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers
    return r.text


def samples(text: str) -> dict[Series, float]:
    out: dict[Series, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(base: str) -> dict[Series, float]:
    return samples(scrape_text(base))


def moved(before: dict[Series, float], after: dict[Series, float], prefix: str) -> dict[Series, float]:
    """Every series named ``prefix...`` that changed between two scrapes, by how much."""
    out = {}
    for key, value in after.items():
        if key[0].startswith(prefix) and value != before.get(key, 0.0):
            out[key] = value - before.get(key, 0.0)
    return out


def req(method: str, route: str, status: int) -> Series:
    return ("mainsim_http_requests_total", (("method", method), ("route", route), ("status", str(status))))


def took(method: str, route: str) -> Series:
    return ("mainsim_http_request_duration_seconds_count", (("method", method), ("route", route)))


def orders(outcome: str) -> Series:
    return ("mainsim_orders_total", (("outcome", outcome),))


def value(scraped: dict[Series, float], name: str) -> float:
    return scraped[(name, ())]


# ------------------------------------------------------------------ the document


def test_a_scrape_is_prometheus_text_with_build_info_and_every_order_outcome(server):
    scraped = scrape(server.url)
    build = [labels for (name, labels) in scraped if name == "mainsim_build_info"]
    assert len(build) == 1
    info = dict(build[0])
    assert set(info) == {"version", "python"} and info["version"] not in ("", "unknown")
    assert scraped[("mainsim_build_info", build[0])] == 1
    for outcome in ("accepted", "duplicate", "conflict", "rejected", "error"):
        assert orders(outcome) in scraped  # present (at 0 or more) before the first order
    assert ("mainsim_stream_clients", ()) in scraped


def test_each_sim_has_a_registry_of_its_own():
    # the process-wide default registry would refuse the second set of names (duplicated timeseries)
    one, two = SimMetrics(), SimMetrics()
    one.order("accepted")
    assert one.registry is not two.registry
    assert one.registry.get_sample_value("mainsim_orders_total", {"outcome": "accepted"}) == 1
    assert two.registry.get_sample_value("mainsim_orders_total", {"outcome": "accepted"}) == 0


# ------------------------------------------------------------------ requests and orders


def test_requests_and_orders_move_by_exactly_what_was_done(server, desk):
    inst = desk.instruments()[("NSE", "RELIANCE")]
    client_id = desk.get("/clients").json()[0]["client_id"]
    before = scrape(server.url)

    body = order_body(client_id, inst, order_type="LIMIT", price=ticks(inst, 1))
    first = desk.post_order(**body)
    again = desk.post_order(**body)
    other = desk.post_order(**{**body, "quantity": body["quantity"] * 2})
    outside = desk.post_order(**order_body(client_id, inst, order_type="LIMIT", price=ticks(inst, -5)))
    assert [r.status_code for r in (first, again, other, outside)] == [201, 200, 409, 422]
    order_id = first.json()["order_id"]
    assert again.json()["order_id"] == order_id
    assert desk.get(f"/orders/{order_id}").status_code == 200
    assert desk.get("/orders/O999999999").status_code == 404
    assert httpx.get(f"{server.url}/no/such/{order_id}/{client_id}").status_code == 404
    assert desk.http.request("BREW", "/orders").status_code == 405  # a method no route serves
    assert desk.http.get("/orders", headers={"Authorization": "Bearer nonsense"}).status_code == 401

    after = scrape(server.url)
    assert moved(before, after, "mainsim_http_requests_total") == {
        req("POST", ORDERS, 201): 1,
        req("POST", ORDERS, 200): 1,
        req("POST", ORDERS, 409): 1,
        req("POST", ORDERS, 422): 1,
        req("GET", ORDER, 200): 1,
        req("GET", ORDER, 404): 1,
        req("GET", "unmatched", 404): 1,
        req("other", ORDERS, 405): 1,
        req("GET", ORDERS, 401): 1,
        req("GET", "/metrics", 200): 1,  # the first scrape, counted once it was answered
    }
    assert moved(before, after, "mainsim_http_request_duration_seconds_count") == {
        took("POST", ORDERS): 4,
        took("GET", ORDER): 2,
        took("GET", "unmatched"): 1,
        took("other", ORDERS): 1,
        took("GET", ORDERS): 1,
        took("GET", "/metrics"): 1,
    }
    assert moved(before, after, "mainsim_orders_total") == {
        orders("accepted"): 1,
        orders("duplicate"): 1,
        orders("conflict"): 1,
        orders("rejected"): 1,
    }


def test_no_label_holds_an_order_client_or_user_id(server, desk):
    inst = desk.instruments()[("NSE", "INFY")]
    clients = [c["client_id"] for c in desk.get("/clients").json()]
    body = order_body(clients[0], inst, order_type="LIMIT", price=ticks(inst, 2))
    placed = desk.post_order(**body)
    assert placed.status_code == 201
    order_id = placed.json()["order_id"]
    assert desk.get(f"/orders/{order_id}").status_code == 200
    assert desk.get(f"/orders/by-client-id/{body['client_order_id']}").status_code == 200
    assert desk.get("/positions", params={"client_id": clients[0]}).status_code == 200
    assert httpx.get(f"{server.url}{API}/orders/{order_id}/{clients[1]}").status_code == 404

    text = scrape_text(server.url)
    values = [v for _, labels in samples(text) for _, v in labels]
    assert "/api/v1/orders/by-client-id/{client_order_id}" in values  # the template, not the id
    secrets = [order_id, body["client_order_id"], *clients, "dealer1", "super1"]
    assert not [(s, v) for s in secrets for v in values if s in v]
    assert not [s for s in secrets if s in text]


# ------------------------------------------------------------------ the stream


def test_stream_clients_counts_open_connections_and_a_stream_is_not_an_http_request(server, desk):
    before = scrape(server.url)
    url = server.url.replace("http://", "ws://") + f"{API}/stream"
    auth = {"Authorization": desk.http.headers["Authorization"]}
    with connect(url, additional_headers=auth, compression=None, open_timeout=10) as ws:
        assert '"hello"' in ws.recv(timeout=10)  # registered before hello is sent
        during = scrape(server.url)
        assert value(during, "mainsim_stream_clients") == value(before, "mainsim_stream_clients") + 1
    deadline = time.monotonic() + 10  # the server notices the close on its next loop turns
    while (now := scrape(server.url)) and value(now, "mainsim_stream_clients") != value(
        before, "mainsim_stream_clients"
    ):
        assert time.monotonic() < deadline, "the closed stream is still counted"
        time.sleep(0.05)
    counted = moved(before, during, "mainsim_http_requests_total")
    assert counted == {req("GET", "/metrics", 200): 1}  # the upgrade is no HTTP request here


# ------------------------------------------------------------------ faults


def test_a_request_the_fault_proxy_answers_is_counted_under_its_route(server, control):
    before = scrape(server.control_url)
    assert control.post("/admin/faults", json={"mode": "error"}).status_code == 200
    try:
        faulted = [
            httpx.get(f"{server.url}{API}/orders/O000000001", timeout=5),
            httpx.post(f"{server.url}{API}/session", json={"user_id": "dealer1", "password": "x"}, timeout=5),
            httpx.get(f"{server.url}/no/such/path", timeout=5),
        ]
    finally:
        assert control.post("/admin/faults", json={"mode": "none"}).status_code == 200
    assert [r.status_code for r in faulted] == [503, 503, 503]
    assert all(r.json()["error"]["code"] == "unavailable" for r in faulted)

    after = scrape(server.control_url)
    assert moved(before, after, "mainsim_http_requests_total") == {
        req("GET", ORDER, 503): 1,
        req("POST", "/api/v1/session", 503): 1,
        req("GET", "unmatched", 503): 1,
        req("POST", "/api/v1/admin/faults", 200): 2,
        req("GET", "/metrics", 200): 1,
    }
    # the public port answers the scrape again once the outage is over, from the same registry
    assert scrape(server.url)[req("GET", ORDER, 503)] == after[req("GET", ORDER, 503)]
