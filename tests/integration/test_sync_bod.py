"""`lifeboat sync bod` against a real mainsim and a real SQLite store: the snapshot
replaces the book in one transaction, a kill -9 inside that transaction leaves the
previous snapshot whole and usable, and a BOD with the main system down changes
nothing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy import func, select

from localstore import audit
from localstore.db import open_store
from localstore.models import (
    AuditRow,
    ClientLimitRow,
    ClientRow,
    InstrumentRow,
    OrderRow,
    PositionRow,
    SyncState,
    TradeRow,
)
from tests.cli_env import raw_get, raw_session

_TABLES = {
    "instruments": InstrumentRow,
    "clients": ClientRow,
    "limits": ClientLimitRow,
    "positions": PositionRow,
    "open_orders": OrderRow,
    "trades": TradeRow,
}


def book_state(store_file: Path) -> dict:
    """Row counts of the book, the sync_state row and the audit chain of one store file."""
    store = open_store(store_file, create=False)
    try:
        with store.read() as s:
            counts = {name: s.scalar(select(func.count()).select_from(row)) for name, row in _TABLES.items()}
            st = s.get(SyncState, 1)
            bod_actions = s.scalars(
                select(AuditRow.payload).where(AuditRow.action == "bod_sync").order_by(AuditRow.id)
            ).all()
            chain = audit.verify(s)
            open_ids = set(s.scalars(select(OrderRow.order_id)))
        return {
            "counts": counts,
            "trading_date": st.trading_date,
            "bod_at": st.bod_at,
            "bod_seq": st.bod_seq,
            "last_event_seq": st.last_event_seq,
            "bod_audit": [json.loads(p) for p in bod_actions],
            "chain_ok": chain.ok,
            "chain_rows": chain.rows,
            "order_ids": open_ids,
        }
    finally:
        store.close()


def resting_buy(url: str, token: str, coid: str) -> dict:
    """A limit buy at the lower band of a dealer1 client's instrument: it rests (OPEN)."""
    inst = next(i for i in raw_get(url, token, "/instruments") if i["exchange"] == "NSE")
    client = raw_get(url, token, "/clients")[0]["client_id"]
    r = httpx.post(
        f"{url}/api/v1/orders",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
        json={
            "client_order_id": coid,
            "client_id": client,
            "exchange": inst["exchange"],
            "symbol": inst["symbol"],
            "side": "BUY",
            "quantity": inst["lot_size"],
            "product": "MIS",
            "order_type": "LIMIT",
            "price": inst["lower_band"],
            "validity": "DAY",
        },
    )
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "OPEN", order
    return order


def test_bod_replaces_the_book_and_is_audited(sim, cli):
    cli.login().ok()
    first = cli("sync", "bod", "--json").ok().json()
    token = raw_session(sim.url)["access_token"]
    snap = raw_get(sim.url, token, "/bod")

    st = book_state(cli.store_file)
    expected = {name: len(snap[name]) for name in _TABLES}
    assert st["counts"] == expected
    assert {k: first[k] for k in ("instruments", "clients", "positions", "open_orders", "trades")} == {
        k: expected[k] for k in ("instruments", "clients", "positions", "open_orders", "trades")
    }
    assert st["trading_date"].isoformat() == snap["trading_date"] == first["trading_date"]
    assert st["bod_seq"] == snap["seq"] == first["seq"]
    assert st["bod_at"] == datetime.fromisoformat(first["synced_at"])
    assert [a["trading_date"] for a in st["bod_audit"]] == [snap["trading_date"]]
    assert st["chain_ok"] and st["chain_rows"] == 2  # login, bod_sync

    # A resting order placed on main appears with the next BOD; cancelled, it goes away with the one after.
    # (These two BODs run in-process through the same service layer: cheaper than subprocesses.)
    order = resting_buy(sim.url, token, "bod-replace-1")
    second = cli.bod_in_process()
    st2 = book_state(cli.store_file)
    assert order["order_id"] in st2["order_ids"]
    assert st2["counts"]["open_orders"] == expected["open_orders"] + 1 == second.open_orders
    assert st2["bod_seq"] == second.seq > st["bod_seq"]

    r = httpx.delete(
        f"{sim.url}/api/v1/orders/{order['order_id']}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    cli.bod_in_process()
    st3 = book_state(cli.store_file)
    assert order["order_id"] not in st3["order_ids"]
    assert st3["counts"] == expected  # the old rows were replaced, not added to
    assert len(st3["bod_audit"]) == 3 and st3["chain_ok"]
    assert st3["bod_at"] > st2["bod_at"] > st["bod_at"]


def _wait_for_held_write_lock(store_file: Path, proc, *, hold: float, timeout: float) -> None:
    """Return once another process has held the store's write lock for ``hold`` seconds
    without a break: the BOD transaction, paused by LIFEBOAT_TEST_BOD_PAUSE (the store's
    other write transactions last milliseconds)."""
    deadline = time.monotonic() + timeout
    held_since = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"sync bod ended early ({proc.returncode}): {proc.stderr.read()}"
        probe = sqlite3.connect(store_file, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            held_since = None
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc) or "busy" in str(exc), exc
            held_since = held_since or time.monotonic()
            if time.monotonic() - held_since >= hold:
                return
        finally:
            probe.close()
        time.sleep(0.05)
    raise AssertionError("the BOD transaction never held the write lock")


def local_positions_json(cli) -> list[dict]:
    svc = cli.service()
    try:
        return [p.model_dump(mode="json") for p in svc.local_positions()]
    finally:
        svc.close()


def test_kill_9_inside_the_bod_transaction_leaves_the_previous_snapshot_whole(sim, cli):
    cli.bod_in_process()
    before = book_state(cli.store_file)
    positions_before = local_positions_json(cli)
    assert len(positions_before) == before["counts"]["positions"] > 0

    # Main changes, so the interrupted BOD would have brought a different book.
    token = raw_session(sim.url)["access_token"]
    order = resting_buy(sim.url, token, "bod-kill-1")

    proc = cli.popen("--password-stdin", "sync", "bod", stdin="demo\n", LIFEBOAT_TEST_BOD_PAUSE="5")
    try:
        _wait_for_held_write_lock(cli.store_file, proc, hold=1.0, timeout=30)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    after = book_state(cli.store_file)  # the store opens (SQLite rolls the WAL back to the last commit)
    assert after["counts"] == before["counts"]
    assert after["bod_at"] == before["bod_at"] and after["bod_seq"] == before["bod_seq"]
    assert after["order_ids"] == before["order_ids"] and order["order_id"] not in after["order_ids"]
    assert after["bod_audit"] == before["bod_audit"] and after["chain_ok"]
    assert cli("positions", "--local", "--json").ok().json() == positions_before

    cli.bod_in_process()
    again = book_state(cli.store_file)
    assert order["order_id"] in again["order_ids"]
    assert again["counts"]["open_orders"] == before["counts"]["open_orders"] + 1
    assert again["bod_at"] > before["bod_at"] and len(again["bod_audit"]) == 2 and again["chain_ok"]


def test_bod_with_main_down_exits_5_and_keeps_the_previous_snapshot(sim, cli):
    cli.login().ok()  # the token in the (test) keyring is what `sync bod` uses
    cli.bod_in_process()
    before = book_state(cli.store_file)
    sim.kill()

    r = cli("sync", "bod")
    assert r.returncode == 5, (r.stdout, r.stderr)
    assert "unavailable" in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""
    assert book_state(cli.store_file) == before
