"""Automatic replay: the runtime (as `lifeboat agent` runs it) sees main die, a
supervisor squares off a client in backup, main comes back: at RECOVERING the
runtime replays the journal, goes ONLINE and stores a reconciliation report, and
the local book equals main.  Real mainsim behind the fault proxy, real store."""

from __future__ import annotations

from backend_client.detector import Mode
from localstore.models import JournalState
from mainsim.faultproxy import ThreadedFaultProxy
from sync.reconcile import last_report
from tests.integration.test_detector_live import AgentThread
from tests.replay_env import Main, make_console


def test_runtime_replays_at_recovering_then_online(sim, tmp_path):
    proxy = ThreadedFaultProxy("127.0.0.1", sim.port).start()
    con = make_console(proxy.url, tmp_path)
    main = Main(sim.url)
    agent = AgentThread(con.store, proxy.url, min_dwell=1.0, user="super1").start()
    try:
        proxy.set_mode("refuse")
        agent.wait_mode(Mode.BACKUP)
        p = con.positions()[0]
        _, _, receipts = con.squareoff(p.client_id)
        assert receipts
        proxy.set_mode("none")
        agent.wait_for(lambda r: r.recovery.last_report is not None, "reconciled", timeout=30)
        agent.wait_mode(Mode.ONLINE)
        modes = [c.to_mode for c in agent.changes]
        # the way back: RECOVERING (the replay) then ONLINE.  Only the first one is looked at: on
        # a starved machine a late heartbeat may flap the detector again afterwards
        back = modes.index(Mode.RECOVERING)
        assert modes[back - 1] is Mode.BACKUP and modes[back + 1] is Mode.ONLINE, modes
        assert {e.state for e in con.journal()} == {JournalState.APPLIED}
        for r in receipts:
            assert main.coid_counts().get(r.client_order_id + "-1") == 1
        assert main.net(p.client_id, p.exchange.value, p.symbol, p.product.value) == 0
        assert con.positions(p.client_id) == []  # the refreshed local book is flat too
        report = last_report(con.store)
        assert report["counts"]["applied"] == len(receipts)
        assert report["mismatch_counts"]["journal_vs_main"] == 0 and report["local_equals_main"]
    finally:
        agent.stop()
        proxy.stop()
        main.close()
        con.close()
