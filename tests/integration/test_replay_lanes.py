"""The replay's per-client lanes (sync/replay.py): several clients' entries are sent at once,
but each client's entries reach main in journal order, and a pass cut off by main going away
mid-way (while several lanes are in flight) resumes with every entry on main exactly once.
Real mainsim behind the fault proxy, a real store, the backup journal written by the desk."""

from __future__ import annotations

import pytest

from localstore.models import JournalState
from mainsim.faultproxy import ThreadedFaultProxy
from sync import replay
from tests.replay_env import Main, make_console

pytestmark = pytest.mark.timeout(120)


def _journal_exits(con, per_client: int = 3) -> dict[str, list[str]]:
    """For every client with long positions, ``per_client`` reducing SELLs of one lot, journaled
    in turn across clients (so each client's entries are interleaved with the others' in seq)."""
    longs: dict[str, list] = {}
    for p in con.positions():
        if p.net_quantity > 0 and p.exchange.value != "NFO":
            longs.setdefault(p.client_id, []).append(p)
    order: dict[str, list[str]] = {}
    for _ in range(per_client):
        for client, rows in sorted(longs.items()):
            p = rows[len(order.get(client, [])) % len(rows)]
            lot = con.instrument(p.exchange.value, p.symbol).lot_size
            if p.net_quantity < lot * per_client:
                continue
            receipt = con.place(client, p.exchange.value, p.symbol, "SELL", lot, p.product.value)
            order.setdefault(client, []).append(receipt.client_order_id)
    return {c: ids for c, ids in order.items() if len(ids) > 1}


def test_each_clients_entries_reach_main_in_journal_order(sim, tmp_path):
    con = make_console(sim.url, tmp_path)
    main = Main(sim.url)
    try:
        order = _journal_exits(con)
        assert len(order) >= 3, "several clients with several entries each (else the lanes are not exercised)"
        result, _ = con.replay(reconciled=False, lanes=4)
        assert result.status == "done"
        by_coid = {o["client_order_id"]: o for o in main.orders()}
        for client, ids in order.items():
            placed = [by_coid[i] for i in ids]
            # main's own order ids and times follow the journal's order for every client
            assert [o["created_at"] for o in placed] == sorted(o["created_at"] for o in placed), client
        assert {e.state for e in con.journal()} == {JournalState.APPLIED}
    finally:
        main.close()
        con.close()


def test_a_pass_cut_off_with_lanes_in_flight_resumes_exactly_once(sim, tmp_path, monkeypatch):
    proxy = ThreadedFaultProxy("127.0.0.1", sim.port).start()
    con = make_console(proxy.url, tmp_path)
    main = Main(sim.url)
    try:
        order = _journal_exits(con)
        total = sum(len(ids) for ids in order.values())
        cut_at = total  # about half way: every entry takes a SENT move, an answer and its outcome

        def cut(step: int) -> None:
            if step == cut_at:
                proxy.set_mode("refuse")

        monkeypatch.setattr(replay, "after_step", cut)
        first, _ = con.replay(reconciled=False, lanes=8)
        assert first.status == "stopped", first.status
        states = {e.state for e in con.journal()}
        assert JournalState.APPLIED in states and states - {JournalState.APPLIED}, states  # cut mid-way
        monkeypatch.setattr(replay, "after_step", None)
        proxy.set_mode("none")
        second, _ = con.replay(reconciled=False, lanes=8)
        assert second.status == "done"
        assert {e.state for e in con.journal()} == {JournalState.APPLIED}
        counts = main.coid_counts()
        for ids in order.values():
            for coid in ids:
                assert counts.get(coid) == 1, coid  # on main exactly once, none lost, none twice
    finally:
        main.close()
        con.close()
        proxy.stop()
