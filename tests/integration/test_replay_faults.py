"""Replay against a real mainsim through faults: replies lost, positions moved on main
during the outage, two replayers at once, stale and next-day entries held (and a
supervisor's release and discard, audited).  One mainsim per module; each test acts
for its own clients so tests do not disturb each other's positions."""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta

import pytest

from contract import clock
from localstore.models import JournalState
from mainsim.faultproxy import ThreadedFaultProxy
from sync.lease import default_holder, release_lease, take_lease
from sync.trading import held
from tests.replay_env import DropRepliesProxy, Main, make_console, parse_runner
from tests.simproc import SimProcess


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay-faults")
    sim = SimProcess(db=root / "main.db", workdir=root).start()
    try:
        yield sim, root
    finally:
        sim.kill()


@pytest.fixture
def world(scene, tmp_path):
    sim, _ = scene
    con = make_console(sim.url, tmp_path)
    main = Main(sim.url)
    yield sim, con, main
    main.close()
    con.close()


_used: set[str] = set()


def fresh_client(con, min_lots: int = 1) -> tuple[str, object]:
    """A client no other test in this module has used, and one of its positions."""
    for p in con.positions():
        lot = con.instrument(p.exchange, p.symbol).lot_size
        if p.client_id not in _used and abs(p.net_quantity) >= min_lots * lot:
            _used.add(p.client_id)
            return p.client_id, p
    raise AssertionError("no unused client left")


def key(p) -> tuple:
    return (p.client_id, p.exchange.value, p.symbol, p.product.value)


# --------------------------------------------------------------------------- reply lost


def test_reply_lost_is_looked_up_not_resent(world):
    sim, con, main = world
    client, p = fresh_client(con)
    _, _, receipts = con.squareoff(client, p.symbol)
    coid = receipts[0].client_order_id
    proxy = DropRepliesProxy("127.0.0.1", sim.port).start()
    try:
        proxy.drop = 10  # every attempt's answer is lost: the client gives up, outcome unknown
        con.url = proxy.url
        result, _ = con.replay(reconciled=False)
        assert result.status == "stopped" and "left SENT" in result.stopped_reason
        assert con.journal()[-1].state is JournalState.SENT
        assert main.coid_counts().get(f"{coid}-1") == 1  # main accepted it once (retries were idempotent)
        assert main.net(*key(p)) == 0
        proxy.drop, proxy.posts = 0, 0
        result, report = con.replay()
        assert result.status == "done"
        assert proxy.posts == 0  # looked up, nothing sent again
        entry = con.journal()[-1]
        assert entry.state is JournalState.APPLIED and "flat on main after 1" in entry.state_reason
        assert main.coid_counts().get(f"{coid}-1") == 1 and f"{coid}-2" not in main.coid_counts()
        assert report["mismatch_counts"]["journal_vs_main"] == 0
    finally:
        proxy.stop()


def test_place_reply_lost_then_found_on_main(world):
    sim, con, main = world
    client, p = fresh_client(con)
    side = "SELL" if p.net_quantity > 0 else "BUY"
    lot = con.instrument(p.exchange, p.symbol).lot_size
    r = con.place(client, p.exchange.value, p.symbol, side, lot, p.product.value)
    proxy = DropRepliesProxy("127.0.0.1", sim.port).start()
    try:
        proxy.drop = 10
        con.url = proxy.url
        assert con.replay(reconciled=False)[0].status == "stopped"
        proxy.drop, proxy.posts = 0, 0
        result, _ = con.replay(reconciled=False)
        assert proxy.posts == 0
        assert result.outcomes[0].state == "applied" and "found on main" in result.outcomes[0].reason
        assert main.coid_counts()[r.client_order_id] == 1
    finally:
        proxy.stop()


def test_main_down_leaves_everything_pending(world):
    _sim, con, _main = world
    client, p = fresh_client(con)
    con.squareoff(client, p.symbol)
    import asyncio

    from backend_client.client import BackendClient
    from sync.replay import Replayer

    async def go():
        async with BackendClient("http://127.0.0.1:9", token="t", retries=0) as c:  # nothing listens there
            return await Replayer(con.store, c).run()

    result = asyncio.run(go())
    assert result.status == "stopped" and "unavailable" in result.stopped_reason
    assert [e.state for e in con.journal()] == [JournalState.PENDING]


# --------------------------------------------------------------------------- position moved on main


def test_squareoff_recomputed_against_live_position(world):
    """Part of the position was closed on main during the outage, another position grew:
    both square-offs still end exactly flat, with no overshoot."""
    _sim, con, main = world
    client, p = fresh_client(con, min_lots=2)
    others = [q for q in con.positions(client) if q.symbol != p.symbol]
    q = others[0]
    _, _, receipts = con.squareoff(client)
    lot_p = con.instrument(p.exchange, p.symbol).lot_size
    lot_q = con.instrument(q.exchange, q.symbol).lot_size
    closing = "SELL" if p.net_quantity > 0 else "BUY"
    adding = "BUY" if q.net_quantity > 0 else "SELL"
    main.place(*key(p)[:3], closing, lot_p, p.product.value, f"outage-{client}-1")  # partly closed elsewhere
    main.place(*key(q)[:3], adding, lot_q, q.product.value, f"outage-{client}-2")  # grew elsewhere
    result, report = con.replay()
    assert result.status == "done"
    for r in receipts:
        e = next(x for x in con.journal() if x.seq == r.seq)
        assert e.state is JournalState.APPLIED, e.state_reason
    for pos in con.positions(client):
        pytest.fail(f"not flat after reconciliation: {pos.symbol} {pos.net_quantity}")
    assert main.net(*key(p)) == 0 and main.net(*key(q)) == 0
    sent_p = [
        o
        for o in main.orders()
        if o["client_order_id"].startswith(receipts[0].client_order_id[:-6])
        and o["symbol"] == p.symbol
        and o["client_order_id"] != f"outage-{client}-1"
    ]
    assert sum(o["quantity"] for o in sent_p) == abs(p.net_quantity) - lot_p
    assert report["counts"]["applied"] >= len(receipts)
    assert report["mismatch_counts"]["journal_vs_main"] == 0 and report["local_equals_main"]


def test_squareoff_conflict_when_sign_flipped_and_moot_when_flat(world):
    _sim, con, main = world
    client, p = fresh_client(con)
    q = next(x for x in con.positions(client) if x.symbol != p.symbol)
    _, _, _receipts = con.squareoff(client)
    flip = "SELL" if p.net_quantity > 0 else "BUY"
    main.place(*key(p)[:3], flip, 2 * abs(p.net_quantity), p.product.value, f"flip-{client}")  # now reversed
    main.place(
        *key(q)[:3],
        "SELL" if q.net_quantity > 0 else "BUY",
        abs(q.net_quantity),
        q.product.value,
        f"flat-{client}",
    )  # closed elsewhere
    result, report = con.replay()
    by_symbol = {o.symbol: o for o in result.outcomes}
    assert by_symbol[p.symbol].state == "conflict" and "sign flipped" in by_symbol[p.symbol].reason
    assert by_symbol[q.symbol].state == "moot" and "already flat" in by_symbol[q.symbol].reason
    assert main.net(*key(p)) == -p.net_quantity  # untouched: a person decides
    prefix = {o.client_order_id for o in result.outcomes if o.symbol in (p.symbol, q.symbol)}
    assert not [o for o in main.orders() if o["client_order_id"].rsplit("-", 1)[0] in prefix]
    assert report["for_a_person"] >= 1 and report["counts"]["conflict"] >= 1
    assert [h["seq"] for h in held.held_entries(con.store)] == [by_symbol[p.symbol].seq]


# --------------------------------------------------------------------------- one replayer per store


def test_two_processes_one_replays_the_other_sends_nothing(world):
    sim, con, main = world
    client, _ = fresh_client(con)
    _, _, receipts = con.squareoff(client)
    con.close()
    proxy = ThreadedFaultProxy(
        "127.0.0.1", sim.port, latency_ms=40
    ).start()  # a slow link: the passes overlap
    try:
        a = con.runner("--no-reconcile", url=proxy.url)
        b = con.runner("--no-reconcile", url=proxy.url)
        answers = [p.communicate(timeout=120) for p in (a, b)]
        assert all(out.strip() for out, _ in answers), answers  # each runner answered (else: its stderr)
        outs = [parse_runner(out) for out, _ in answers]
    finally:
        proxy.stop()
    statuses = sorted(o["result"]["status"] for o in outs)
    assert statuses == ["busy", "done"], outs
    busy = next(o["result"] for o in outs if o["result"]["status"] == "busy")
    done = next(o["result"] for o in outs if o["result"]["status"] == "done")
    assert busy["processed"] == 0 and busy["message"].startswith("replay held by ")
    assert busy["busy_holder"] == done["holder"]
    assert done["processed"] == len(receipts)
    counts = main.coid_counts()
    for r in receipts:
        assert sum(1 for c in counts if c.startswith(r.client_order_id + "-")) >= 1
        assert all(n == 1 for c, n in counts.items() if c.startswith(r.client_order_id))


def test_lease_of_a_live_holder_is_refused_of_a_dead_one_taken_over(world):
    _, con, _ = world
    store = con.store
    now = clock.utcnow()
    import os
    import socket

    alive = f"{store.console_id}/{os.getppid()}@{socket.gethostname()}"
    assert take_lease(store, alive, 30, now)[0]
    taken, who, since = take_lease(store, default_holder(store.console_id), 30, now)
    assert not taken and who == alive and since == now
    result, _ = con.replay(reconciled=False)
    assert (
        result.status == "busy"
        and result.message == f"replay held by {alive} since {now.isoformat(timespec='seconds')}"
    )
    release_lease(store, alive)
    dead = f"{store.console_id}/999999999@{socket.gethostname()}"
    assert take_lease(store, dead, 30, now)[0]
    assert take_lease(store, default_holder(store.console_id), 30, now)[0]  # dead process: taken over at once
    release_lease(store, default_holder(store.console_id))
    assert take_lease(store, "elsewhere/1@otherhost", 30, now - timedelta(minutes=5))[0]  # expired long ago
    assert take_lease(store, default_holder(store.console_id), 30, now)[0]


# --------------------------------------------------------------------------- stale and next-day entries


def _age(con, seq: int, *, minutes: int = 0, days: int = 0) -> None:
    with sqlite3.connect(con.home / "lifeboat.db") as db:
        if minutes:
            db.execute(
                "UPDATE journal SET created_at = datetime(created_at, ?) WHERE seq = ?",
                (f"-{minutes} minutes", seq),
            )
        if days:
            db.execute(
                "UPDATE journal SET trading_date = date(trading_date, ?) WHERE seq = ?",
                (f"-{days} days", seq),
            )


def test_stale_and_next_day_entries_are_held_then_released_or_discarded(world):
    _sim, con, main = world
    client, p = fresh_client(con)
    q = next(x for x in con.positions(client) if x.symbol != p.symbol)
    _, _, r1 = con.squareoff(client, p.symbol)
    _, _, r2 = con.squareoff(client, q.symbol)
    _age(con, r1[0].seq, minutes=31)  # policy default: stale after 30 minutes
    _age(con, r2[0].seq, days=1)  # journaled on the previous trading day
    result, report = con.replay()
    reasons = {o.seq: o.reason for o in result.outcomes}
    assert {o.state for o in result.outcomes} == {"held"}
    assert "stale after 30 min" in reasons[r1[0].seq] and "from trading day" in reasons[r2[0].seq]
    assert not main.orders_with_prefix(r1[0].client_order_id) and not main.orders_with_prefix(
        r2[0].client_order_id
    )
    assert report["counts"]["held"] == 2 and report["for_a_person"] == 2
    assert main.net(*key(p)) == p.net_quantity

    with pytest.raises(held.NotHeld):
        held.release(con.store, 99999, user_id="super1", mode="ONLINE")
    held.release(con.store, r1[0].seq, user_id="super1", mode="ONLINE")
    held.discard(con.store, r2[0].seq, user_id="super1", mode="ONLINE")
    with pytest.raises(held.NotHeld):
        held.discard(con.store, r2[0].seq, user_id="super1", mode="ONLINE")
    result, report = con.replay()
    entries = {e.seq: e for e in con.journal()}
    assert entries[r1[0].seq].state is JournalState.APPLIED
    assert entries[r2[0].seq].state is JournalState.MOOT and entries[r2[0].seq].state_reason.startswith(
        "discarded by super1"
    )
    assert main.net(*key(p)) == 0 and main.net(*key(q)) == q.net_quantity
    assert report["for_a_person"] == 0
    with sqlite3.connect(con.home / "lifeboat.db") as db:
        actions = [
            r[0] for r in db.execute("SELECT action FROM audit_log WHERE action LIKE 'replay_%' ORDER BY id")
        ]
        payloads = [
            r[0] for r in db.execute("SELECT payload FROM audit_log WHERE action LIKE 'replay_%' ORDER BY id")
        ]
    assert actions == ["replay_release", "replay_discard"]
    assert str(r1[0].seq) in payloads[0] and str(r2[0].seq) in payloads[1]
    from localstore import audit

    with con.store.read() as s:
        chain = audit.verify(s)
    assert chain.ok and chain.first_bad_id is None, chain.reason
    with sqlite3.connect(con.home / "lifeboat.db") as db:
        release_id = db.execute("SELECT id FROM audit_log WHERE action = 'replay_release'").fetchone()[0]
        assert chain.rows >= release_id + 1  # the chain walked covers both decisions
        db.execute("UPDATE audit_log SET user_id = 'someone-else' WHERE id = ?", (release_id,))
    with con.store.read() as s:
        tampered = audit.verify(s)  # an edit of the release row is found at that exact row
    assert not tampered.ok and tampered.first_bad_id == release_id, tampered


def test_actions_journaled_during_replay_queue_behind(world):
    """An intent journaled while a pass runs (higher seq) is replayed in the same pass, after."""
    sim, con, main = world
    client, p = fresh_client(con)
    q = next(x for x in con.positions(client) if x.symbol != p.symbol)
    con.squareoff(client, p.symbol)
    proxy = ThreadedFaultProxy("127.0.0.1", sim.port, latency_ms=150).start()
    try:
        con.url = proxy.url
        import threading

        box = {}
        t = threading.Thread(
            target=lambda: box.update(
                r=con.replay(reconciled=False, on_start=lambda replayer: box.update(replayer=replayer))
            )
        )
        t.start()
        # the pass has begun on its first entry (its progress counts it as seen) and is still sending
        # it (each request takes 150 ms through the proxy): the intent below is journaled during the pass
        deadline = time.monotonic() + 30
        while "replayer" not in box or box["replayer"].progress[1] < 1:
            assert t.is_alive() and time.monotonic() < deadline, (
                "the replay pass did not start its first entry"
            )
            time.sleep(0.01)
        _, _, late = con.squareoff(client, q.symbol)
        t.join(60)
    finally:
        proxy.stop()
    result = box["r"][0]
    seqs = [o.seq for o in result.outcomes]
    assert seqs == sorted(seqs) and late[0].seq in seqs, result.outcomes
    assert main.net(*key(q)) == 0
