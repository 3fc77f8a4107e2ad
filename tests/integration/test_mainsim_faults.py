"""Staged outages (--allow-faults) through mainsim's front proxy: refuse, hang and
error on the public port while the control URL keeps working; supervisor only;
off (404) without the flag.  Also the reusable ThreadedFaultProxy on its own."""

from __future__ import annotations

import asyncio
import select
import socket
import time

import httpx
import pytest

from contract.wire import FaultMode
from mainsim.faultproxy import FaultProxy, ThreadedFaultProxy
from tests.mainsim_support import API, Desk, error_code, login


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tests.mainsim_support import start_sim

    sim = start_sim(tmp_path_factory, "mainsim-faults", allow_faults=True)
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def control(server):
    """The supervisor's client on the control URL, which faults never touch."""
    token = login(server.control_url, "super1")
    return httpx.Client(
        base_url=f"{server.control_url}{API}", timeout=5, headers={"Authorization": f"Bearer {token}"}
    )


def set_fault(control, mode: str, **kw) -> dict:
    r = control.post("/admin/faults", json={"mode": mode, **kw})
    assert r.status_code == 200, r.text
    return r.json()


def health(server, timeout: float = 2.0) -> httpx.Response:
    return httpx.get(f"{server.url}{API}/health", timeout=timeout)


def test_refuse_then_recover_on_the_same_port(server, control):
    assert health(server).status_code == 200
    assert set_fault(control, "refuse")["mode"] == "refuse"
    with pytest.raises(httpx.ConnectError):
        health(server)
    assert control.get("/admin/faults").json()["mode"] == "refuse"
    set_fault(control, "none")
    assert health(server).status_code == 200


def test_hang_makes_a_request_time_out(server, control):
    with httpx.Client(timeout=5) as before:  # a connection opened before the outage goes silent too
        assert before.get(f"{server.url}{API}/health").status_code == 200
        set_fault(control, "hang")
        with pytest.raises(httpx.ReadTimeout):
            health(server, timeout=0.5)
        with pytest.raises(httpx.ReadTimeout):
            before.get(f"{server.url}{API}/health", timeout=0.5)
    set_fault(control, "none")
    assert health(server).status_code == 200


def test_error_answers_503_with_an_error_body(server, control):
    set_fault(control, "error")
    r = health(server)
    assert r.status_code == 503 and error_code(r) == "unavailable"
    set_fault(control, "none")
    assert health(server).status_code == 200


def test_error_has_closed_open_connections_when_set_mode_returns():
    """A connection open before the outage is closed by the time set_mode returns (not on a later loop turn).
    Otherwise the control call's reply can reach a client before the close does; its next request then goes out
    on the old pooled connection, and the close that follows turns into a reset instead of the 503."""

    async def scenario():
        async def upstream(reader, writer):
            await reader.read(1)
            writer.close()

        target = await asyncio.start_server(upstream, "127.0.0.1", 0)
        proxy = await FaultProxy("127.0.0.1", 0, "127.0.0.1", target.sockets[0].getsockname()[1]).start()
        client = socket.create_connection(proxy.address, timeout=5)
        try:
            while not any(link.upstream for link in proxy._links):
                await asyncio.sleep(0.01)  # until the link is forwarding
            await proxy.set_mode(FaultMode.ERROR)
            readable, _, _ = select.select([client], [], [], 0)  # no loop turn in between
            assert readable and client.recv(10) == b""
        finally:
            client.close()
            await proxy.stop()
            target.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_duration_ends_the_outage_by_itself(server, control):
    state = set_fault(control, "refuse", duration_s=0.5)
    assert state["until"] is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if health(server).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        pytest.fail("the outage did not end by itself")
    assert control.get("/admin/faults").json()["mode"] == "none"


def test_faults_are_supervisor_only(server):
    dealer = Desk(server.url, "dealer1")
    r = dealer.http.post("/admin/faults", json={"mode": "refuse"})
    assert r.status_code == 403 and error_code(r) == "forbidden"
    assert dealer.get("/admin/faults").status_code == 403
    assert health(server).status_code == 200


def test_without_allow_faults_the_admin_path_is_404(sim):
    sup = Desk(sim.url, "super1")
    r = sup.http.post("/admin/faults", json={"mode": "refuse"})
    assert r.status_code == 404 and error_code(r) == "not_found"
    assert sim.control_url is None


def test_threaded_proxy_latency_reset_and_blackhole(server):
    port = int(server.control_url.rsplit(":", 1)[1])
    with ThreadedFaultProxy("127.0.0.1", port) as proxy:
        with httpx.Client(base_url=f"{proxy.url}{API}", timeout=2) as c:
            assert c.get("/health").status_code == 200
            proxy.set_mode("hang")
            with pytest.raises(httpx.ReadTimeout):
                c.get("/health", timeout=0.3)
            proxy.set_mode("none")
        raw = socket.create_connection(("127.0.0.1", proxy.proxy.port), timeout=5)
        raw.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: sim\r\n\r\n")
        assert raw.recv(65536).startswith(b"HTTP/1.1 200")
        proxy.reset()  # SO_LINGER 0: the peer sees a reset, not a clean close
        with pytest.raises(ConnectionResetError):
            raw.recv(10)
        raw.close()
        proxy.set_latency(50, 10)
        assert httpx.get(f"{proxy.url}{API}/health", timeout=5).status_code == 200
