"""The DR site in mainsim (issue 12, the simulator half), against real processes: a primary, a
standby that follows it (``--role standby --follow URL``), kill -9, promotion, the old primary
back as a standby, the planned switch-back.  Every scenario ends by reading both SQLite files
directly: each client_order_id is one order, the same one on both sites, and none that was
accepted is missing.

The row checks a standby makes before it applies anything are tested directly too
(``check_row``, ``check_snapshot``): a primary's reply is untrusted input.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from contract.wire import EPOCH_HEADER, ROLE_HEADER
from mainsim.replication import ReplicationError, check_row, check_snapshot
from mainsim.store import SQL_META
from tests.mainsim_support import API, Desk, login, order_body
from tests.simproc import SimProcess

DEADLINE_S = 15.0


def standby_args(url: str) -> list[str]:
    return ["--role", "standby", "--follow", url]


def health(site: SimProcess) -> httpx.Response:
    return httpx.get(f"{site.url}{API}/health", timeout=5)


def supervisor(site: SimProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {login(site.url, 'super1')}"}


def orders_in(db: Path) -> dict[str, str]:
    """client_order_id -> order_id, read from the site's SQLite file (its own connection)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute("SELECT client_order_id, order_id FROM orders").fetchall()
    finally:
        con.close()
    coids = [c for c, _ in rows]
    assert len(coids) == len(set(coids)), "a client_order_id twice in one database"
    return dict(rows)


def wait_for(what: str, check, deadline_s: float = DEADLINE_S):
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, sqlite3.Error) as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def caught_up(site: SimProcess, coids) -> None:
    """The standby's database holds these orders and it says it is caught up."""
    wait_for(f"{sorted(coids)[:3]}... on the standby", lambda: set(coids) <= set(orders_in(site.db)))
    wait_for("replication lag 0", lambda: health(site).json()["replication_lag_s"] == 0)


def place(desk: Desk, inst: dict, client: str, **over) -> dict:
    r = desk.post_order(**order_body(client, inst, quantity=1, **over))
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def pair(sim_factory):
    primary = sim_factory()
    standby = sim_factory(extra_args=standby_args(primary.url))
    return primary, standby


def nse(desk: Desk) -> dict:
    return next(i for (ex, _), i in sorted(desk.instruments().items()) if ex == "NSE")


def test_standby_follows_answers_health_and_refuses_trading(pair):
    primary, standby = pair
    desk = Desk(primary.url, "dealer1")
    client = desk.get("/clients").json()[0]["client_id"]
    inst = nse(desk)
    placed = [place(desk, inst, client) for _ in range(3)]

    h = health(primary)
    assert h.json()["role"] == "primary" and h.json()["epoch"] == 0
    assert h.json()["following"] is None and h.json()["replication_lag_s"] is None
    assert h.headers[EPOCH_HEADER] == "0" and h.headers[ROLE_HEADER] == "primary"

    caught_up(standby, [o["client_order_id"] for o in placed])
    h = health(standby)
    assert h.json()["role"] == "standby" and h.json()["following"] == primary.url
    assert h.headers[ROLE_HEADER] == "standby" and h.headers[EPOCH_HEADER] == "0"
    assert orders_in(standby.db) == orders_in(primary.db)

    # a standby takes no order, not even one it already holds, and serves no book
    token = {"Authorization": desk.http.headers["Authorization"]}
    body = order_body(client, inst, quantity=1)
    r = httpx.post(f"{standby.url}{API}/orders", json=body, headers=token, timeout=5)
    assert r.status_code == 503 and r.json()["error"]["code"] == "standby", r.text
    assert r.headers[ROLE_HEADER] == "standby"
    for path in ("/orders", "/positions", "/bod"):
        assert httpx.get(f"{standby.url}{API}{path}", headers=token, timeout=5).status_code == 503
    # what a standby does answer: a login (the replicated users), its keys, its metrics
    assert httpx.get(f"{standby.url}{API}/keys", headers=supervisor(standby), timeout=5).status_code == 200
    with pytest.raises(InvalidStatus) as refused:  # nor its stream
        ws_connect("ws" + standby.url[4:] + f"{API}/stream", additional_headers=token, open_timeout=5)
    assert refused.value.response.status_code == 503
    metrics = httpx.get(f"{standby.url}/metrics", timeout=5).text
    assert "mainsim_site_primary 0.0" in metrics and "mainsim_replication_lag_seconds" in metrics
    assert 'route="/api/v1/orders",status="503"' in metrics  # its refusals are counted like any reply
    assert "mainsim_site_primary 1.0" in httpx.get(f"{primary.url}/metrics", timeout=5).text
    time.sleep(0.3)  # one more round of heartbeats: the refused order never arrives anywhere
    assert body["client_order_id"] not in orders_in(standby.db)
    assert body["client_order_id"] not in orders_in(primary.db)

    # only a supervisor promotes; a primary's promote changes nothing (idempotent)
    assert httpx.post(f"{primary.url}{API}/admin/promote", headers=token, timeout=5).status_code == 403
    again = httpx.post(f"{primary.url}{API}/admin/promote", headers=supervisor(primary), timeout=5)
    assert again.status_code == 200 and again.json()["epoch"] == 0 and again.json()["role"] == "primary"


def test_kill_promote_restart_as_standby_and_switch_back(pair):
    primary, dr = pair
    main_url, dr_url = primary.url, dr.url
    desk = Desk(main_url, "dealer1")
    client = desk.get("/clients").json()[0]["client_id"]
    inst = nse(desk)
    before = [place(desk, inst, client) for _ in range(3)]
    caught_up(dr, [o["client_order_id"] for o in before])

    primary.kill()  # kill -9: main is gone
    r = httpx.post(f"{dr_url}{API}/admin/promote", headers=supervisor(dr), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "primary" and r.json()["epoch"] == 1
    assert r.headers[EPOCH_HEADER] == "1"
    # promote again: the same epoch
    assert httpx.post(f"{dr_url}{API}/admin/promote", headers=supervisor(dr), timeout=10).json()["epoch"] == 1

    dr_desk = Desk(dr_url, "dealer1")
    # an order that reached main and was replicated is the same order at DR
    resent = order_body(client, inst, quantity=1, client_order_id=before[0]["client_order_id"])
    r = dr_desk.post_order(**resent)
    assert r.status_code == 200 and r.json()["order_id"] == before[0]["order_id"], r.text
    during = [place(dr_desk, inst, client) for _ in range(3)]
    assert len({o["order_id"] for o in before + during}) == 6

    # the old main comes back as a standby of DR and catches up
    primary.extra_args = standby_args(dr_url)
    primary.start()
    assert primary.url == main_url
    caught_up(primary, [o["client_order_id"] for o in before + during])
    h = health(primary).json()
    assert h["role"] == "standby" and h["epoch"] == 1 and h["following"] == dr_url

    # planned switch-back: promote main, then demote DR to follow it
    r = httpx.post(f"{main_url}{API}/admin/promote", headers=supervisor(primary), timeout=10)
    assert r.status_code == 200 and r.json()["epoch"] == 2, r.text
    r = httpx.post(
        f"{dr_url}{API}/admin/demote", json={"follow": main_url}, headers=supervisor(dr), timeout=10
    )
    assert r.status_code == 200 and r.json()["role"] == "standby", r.text
    assert dr_desk.post_order(**order_body(client, inst, quantity=1)).json()["error"]["code"] == "standby"

    main_desk = Desk(main_url, "dealer1")
    after = [place(main_desk, inst, client) for _ in range(2)]
    r = main_desk.post_order(
        **order_body(client, inst, quantity=1, client_order_id=during[1]["client_order_id"])
    )
    assert r.status_code == 200 and r.json()["order_id"] == during[1]["order_id"]
    caught_up(dr, [o["client_order_id"] for o in after])
    h = health(dr).json()
    assert h["role"] == "standby" and h["epoch"] == 2 and h["following"] == main_url

    accepted = {o["client_order_id"]: o["order_id"] for o in before + during + after}
    on_main, on_dr = orders_in(primary.db), orders_in(dr.db)
    assert on_main == on_dr  # one copy of every client_order_id, the same order on both sites
    assert accepted.items() <= on_main.items()  # and none accepted is missing


def test_standby_of_a_standby_is_refused_and_waits(pair, sim_factory):
    _primary, standby = pair
    wait_for("the standby's first snapshot", lambda: health(standby).json()["replication_lag_s"] == 0)
    third = sim_factory(extra_args=standby_args(standby.url))
    log = third.workdir / "mainsim.log"
    wait_for(
        "the refusal in the log",
        lambda: "will not follow" in log.read_text() and "answers as a standby" in log.read_text(),
    )
    first = health(third).json()["replication_lag_s"]
    time.sleep(0.3)
    h = health(third).json()
    assert h["role"] == "standby" and h["following"] == standby.url
    assert h["replication_lag_s"] > first  # no contact with a primary: the lag grows
    # it holds nothing, so it answers no login and cannot be promoted
    r = httpx.post(f"{third.url}{API}/session", json={"user_id": "super1", "password": "demo"}, timeout=5)
    assert r.status_code == 503 and r.json()["error"]["code"] == "standby"


def snapshots_taken(site: SimProcess) -> int:
    return (site.workdir / "mainsim.log").read_text().count("installed a base snapshot")


def test_standby_resumes_after_the_primary_restarts_and_resnapshots_when_too_far_behind(sim_factory):
    # a short log (3 rows) and the fault proxy in front of the primary
    primary = sim_factory(allow_faults=True, extra_args=["--replication-retention", "3"])
    standby = sim_factory(extra_args=standby_args(primary.url))
    desk = Desk(primary.url, "dealer1")
    client = desk.get("/clients").json()[0]["client_id"]
    inst = nse(desk)
    caught_up(standby, [place(desk, inst, client)["client_order_id"]])
    assert snapshots_taken(standby) == 1

    # kill -9 and the same primary back on its port: the standby goes on from its LSN, no snapshot
    primary.restart()
    desk = Desk(primary.url, "dealer1")
    caught_up(standby, [place(desk, inst, client)["client_order_id"]])
    assert snapshots_taken(standby) == 1

    # the standby cut off while the primary writes more than its log keeps: a new snapshot
    control = httpx.Client(base_url=f"{primary.control_url}{API}", headers=supervisor(primary), timeout=10)
    assert control.post("/admin/faults", json={"mode": "refuse", "duration_s": 2.0}).status_code == 200
    wait_for("the standby to lose its primary", lambda: health(standby).json()["replication_lag_s"] > 0.3)
    behind = []
    for _ in range(5):
        r = control.post("/orders", json=order_body(client, inst, quantity=1))
        assert r.status_code == 201, r.text
        behind.append(r.json()["client_order_id"])
    caught_up(standby, behind)
    assert snapshots_taken(standby) == 2
    assert orders_in(standby.db) == orders_in(primary.db)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--role", "standby", "--follow", "not a url"], "not an http(s) URL"),
        (["--role", "standby", "--follow", "ftp://example.org"], "not an http(s) URL"),
        (["--role", "standby"], "needs --follow"),
        (["--follow", "http://127.0.0.1:9"], "needs --follow"),
    ],
)
def test_bad_follow_arguments_are_a_clear_error(tmp_path, args, message):
    done = subprocess.run(
        [sys.executable, "-m", "mainsim", "--port", "0", "--db", str(tmp_path / "x.db"), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "x.db").exists()  # nothing was started


# ----------------------------------------------------------------------------- a primary's rows, checked
def _row(lsn: int, statements) -> list:
    return [lsn, "2026-01-05T04:00:00+00:00", json.dumps(statements)]


def test_check_row_takes_only_the_stores_own_statements():
    lsn, _, body, ops = check_row(_row(7, [["x", SQL_META, ["k", "v"]]]), 7)
    assert (lsn, ops) == (7, [("x", SQL_META, ["k", "v"])])
    assert json.loads(body) == [["x", SQL_META, ["k", "v"]]]  # kept as sent: the standby's own rlog row
    _, _, _, ops = check_row(_row(8, [["m", SQL_META, [["a", {"b64": "AAE="}]]]]), 8)
    assert ops[0][2] == [["a", b"\x00\x01"]]
    bad = [
        (_row(9, [["x", SQL_META, ["k", "v"]]]), 8),  # not the next LSN
        (_row(8, [["x", "DELETE FROM users", []]]), 8),  # a statement mainsim never runs
        (_row(8, [["x", "DROP TABLE orders", []]]), 8),
        (_row(8, [["x", SQL_META, [["nested"], "v"]]]), 8),  # not a plain value
        (_row(8, [["x", SQL_META, [True, "v"]]]), 8),
        (_row(8, [["x", SQL_META, [{"b64": "!!"}, "v"]]]), 8),
        (_row(8, [["y", SQL_META, ["k", "v"]]]), 8),
        (_row(8, []), 8),
        ([8, "yesterday", "[]"], 8),
        ([8, "2026-01-05T04:00:00+00:00", "{not json"], 8),
        ([8, "2026-01-05T04:00:00+00:00"], 8),
        ("row", 8),
    ]
    for row, expected in bad:
        with pytest.raises(ReplicationError):
            check_row(row, expected)


def test_check_snapshot_refuses_what_is_not_a_mainsim_database(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    with pytest.raises(ReplicationError):
        check_snapshot(junk, 0)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t(x)").connection.close()
    with pytest.raises(ReplicationError, match="lacks tables"):
        check_snapshot(other, 0)


def table(db: Path, sql: str) -> set:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return set(con.execute(sql).fetchall())
    finally:
        con.close()


@pytest.mark.soak
def test_soak_failover_cycles_under_activity(sim_factory):
    """Kill -9 the primary under background activity, promote the standby, bring the old primary
    back as its standby; many times over.  After each cycle the re-synchronised standby holds
    exactly a prefix of the new primary's orders, trades and events (the same rows), and the
    epoch grew by one."""
    activity = ["--activity", "60"]
    sites = [sim_factory(extra_args=activity)]
    sites.append(sim_factory(extra_args=[*activity, *standby_args(sites[0].url)]))
    for epoch in range(1, 9):
        primary, standby = sites
        wait_for("the standby to catch up", lambda s=standby: health(s).json()["replication_lag_s"] == 0)
        time.sleep(0.5)  # the activity goes on: a little may be in flight at the kill
        primary.kill()
        r = httpx.post(f"{standby.url}{API}/admin/promote", headers=supervisor(standby), timeout=10)
        assert r.status_code == 200 and r.json()["epoch"] == epoch, r.text
        primary.extra_args = [*activity, *standby_args(standby.url)]
        primary.start()
        sites = [standby, primary]
        mark = orders_in(standby.db)
        caught_up(primary, list(mark))
        new_orders, old_orders = orders_in(standby.db), orders_in(primary.db)
        assert old_orders.items() <= new_orders.items(), epoch
        for sql in ("SELECT trade_id, data FROM trades", "SELECT seq, body FROM events"):
            assert table(primary.db, sql) <= table(standby.db, sql), (epoch, sql)
        assert health(primary).json()["epoch"] == epoch


# ----------------------------------------------------------------------------- a hostile primary
@pytest.fixture
def tampering_primary(tmp_path, monkeypatch):
    """A real mainsim app served in this process (uvicorn in a thread) whose replication log sends,
    after the real snapshot, a row that is not one of mainsim's statements: what a compromised
    or broken primary could send.  Yields (url, the row's LSN)."""
    import uvicorn

    from mainsim import replication, witness
    from mainsim.api import create_app
    from mainsim.server import SimConfig, build

    sim, store = build(SimConfig(db=tmp_path / "hostile.db"))
    app = create_app(sim)
    witness.install(app, sim.auth, store)
    replication.install(app, sim, sim.dr)
    bad_lsn = store.head_lsn() + 1

    async def tampered_log(ws, _site, after):
        row = [bad_lsn, "2026-01-05T04:00:00+00:00", json.dumps([["x", "DROP TABLE orders", []]])]
        await ws.send_text(json.dumps({"type": "rows", "epoch": 0, "head": bad_lsn, "rows": [row]}))
        await asyncio.sleep(30)

    monkeypatch.setattr(replication, "_send_log", tampered_log)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", ws="websockets-sansio", lifespan="on", timeout_graceful_shutdown=1
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for("the in-process primary", lambda: server.started)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", bad_lsn
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()


def test_a_row_that_is_not_a_mainsim_statement_is_refused_and_nothing_applied(tampering_primary, sim_factory):
    url, bad_lsn = tampering_primary
    standby = sim_factory(extra_args=standby_args(url))
    log = standby.workdir / "mainsim.log"
    wait_for("the refusal in the log", lambda: "a statement mainsim never runs" in log.read_text())
    assert "DROP TABLE orders" in log.read_text()
    rows = table(standby.db, "SELECT COALESCE(MAX(lsn), 0) FROM rlog")
    assert rows == {(bad_lsn - 1,)}  # the snapshot's LSN: the bad row was not applied
    assert orders_in(standby.db)  # and the orders table is there, with the seed's orders
    assert health(standby).json()["replication_lag_s"] > 0  # never caught up with a row it refused
