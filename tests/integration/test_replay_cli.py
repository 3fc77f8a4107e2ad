"""The replay as support staff drive it: real `lifeboat` subprocesses against a real
mainsim.  A supervisor squares off the whole book from the CLI while main is down,
main comes back, the replay is killed halfway (the engine's test hook
LIFEBOAT_TEST_REPLAY_CRASH_AFTER), run again: the book is flat with one order per
leg and the report reads clean.  Held entries: `sync replay` exits 6, `sync held`
lists them, `sync release` / `sync discard` (supervisor, audited) decide them.

The scene (login, BOD, journaling in the held test) is set in this process where it
is not what the test is about; a subprocess runs every command under test."""

from __future__ import annotations

import dataclasses
import sqlite3

from localstore import audit
from sync.reconcile import last_report
from sync.replay import CRASH_EXIT_CODE
from sync.trading import held as held_entries
from tests.cli_env import DEAD_URL, PASSWORD, raw_get, raw_session


def test_whole_book_squareoff_in_backup_killed_replay_resumed(sim, cli_factory):
    cli = cli_factory(sim.url, user="super1")
    cli.login().ok()  # the token the CLI's online commands use
    cli.bod_in_process()
    down = dataclasses.replace(cli, backend_url=DEAD_URL)
    so = down("--password-stdin", "squareoff", "--all", "--yes", "--json", stdin=PASSWORD + "\n").ok().json()
    legs = so["legs"]
    assert so["mode"] == "BACKUP" and len(legs) > 100 and all(leg["outcome"] == "journaled" for leg in legs)
    waiting = down("status", "--json").ok().json()["replay"]
    assert waiting["state"] == "waiting for main" and waiting["unreplayed"] >= len(legs)

    killed = cli("sync", "replay", "--json", LIFEBOAT_TEST_REPLAY_CRASH_AFTER=str(2 * len(legs)))
    assert killed.returncode == CRASH_EXIT_CODE, killed.stderr
    token = raw_session(sim.url, "super1")["access_token"]
    sent_before = {o["client_order_id"] for o in raw_get(sim.url, token, "/orders")}
    assert any(leg["client_order_id"] + "-1" in sent_before for leg in legs)  # it got part of the way
    assert not all(leg["client_order_id"] + "-1" in sent_before for leg in legs)

    res = cli("sync", "replay", "--json")
    assert res.returncode == 0, res.stderr
    body = res.json()
    assert body["replay"]["status"] == "done"
    report = body["report"]
    assert report["mismatch_counts"]["journal_vs_main"] == 0 and report["local_equals_main"]
    assert report["counts"]["held"] == report["counts"]["conflict"] == 0

    positions = raw_get(sim.url, token, "/positions")
    assert positions and all(p["net_quantity"] == 0 for p in positions), [
        p for p in positions if p["net_quantity"]
    ]
    coids: dict[str, int] = {}
    for o in raw_get(sim.url, token, "/orders"):
        coids[o["client_order_id"]] = coids.get(o["client_order_id"], 0) + 1
    for leg in legs:
        mine = {c: n for c, n in coids.items() if c.startswith(leg["client_order_id"] + "-")}
        assert mine == {leg["client_order_id"] + "-1": 1}, (leg, mine)  # one order per leg, exactly once

    after = cli("status", "--json").ok().json()["replay"]
    assert after["state"] == "idle" and after["unreplayed"] == 0 and after["last_report_at"]
    text = cli("sync", "report").ok()
    assert "Reconciliation" in text.stdout and "applied" in text.stdout
    svc = cli.service()
    try:
        assert last_report(svc.store)["id"] == report["id"]  # the one `sync report` shows
    finally:
        svc.close()


def test_held_entries_exit_6_then_release_and_discard(sim, cli_factory):
    from sync.trading import desk
    from sync.trading.desk import Actor

    cli = cli_factory(sim.url, user="super1")
    cli.login().ok()
    bod = cli.bod_in_process()
    token = raw_session(sim.url, "super1")["access_token"]
    client = raw_get(sim.url, token, "/clients")[0]["client_id"]
    symbols = [
        p["symbol"] for p in raw_get(sim.url, token, "/positions", client_id=client) if p["net_quantity"]
    ][:2]
    svc = cli.service()  # journaled in backup as the CLI's squareoff does (the desk call it makes)
    try:
        actor = Actor("super1", "supervisor", frozenset(), bod.trading_date)
        for symbol in symbols:
            desk.squareoff(svc.store, actor, client_id=client, symbol=symbol, keep_orders=True, mode="BACKUP")
    finally:
        svc.close()
    with sqlite3.connect(cli.store_file) as db:
        db.execute("UPDATE journal SET created_at = datetime(created_at, '-2 hours')")
        seqs = [r[0] for r in db.execute("SELECT seq FROM journal ORDER BY seq")]

    res = cli("sync", "replay")
    assert res.returncode == 6, (res.stdout, res.stderr)
    assert "held for a supervisor" in res.stderr
    report = cli("sync", "report", "--json")
    assert report.returncode == 6 and report.json()["verdict"] == "held", report.stdout
    held = cli("sync", "held", "--json")
    assert held.returncode == 6 and [h["seq"] for h in held.json()] == seqs
    assert all("stale" in h["reason"] for h in held.json())
    assert cli("--password-stdin", "sync", "release", "999", stdin=PASSWORD + "\n").returncode == 4
    cli("--password-stdin", "sync", "release", str(seqs[0]), stdin=PASSWORD + "\n").ok()
    for s in seqs[1:]:
        cli("--password-stdin", "sync", "discard", str(s), "--json", stdin=PASSWORD + "\n").ok()
    again = cli("sync", "replay", "--json")
    assert again.returncode == 0, again.stderr
    assert again.json()["verdict"] == "clean", again.json()["report"][
        "mismatches"
    ]  # the discarded one is not judged
    states = {e["seq"]: e["state"] for e in again.json()["report"]["entries"]}
    assert states[seqs[0]] == "applied" and all(states[s] == "moot" for s in seqs[1:])
    svc = cli.service()
    try:
        assert held_entries.held_entries(svc.store) == []
        with svc.store.read() as s:
            chain = audit.verify(s)
    finally:
        svc.close()
    assert chain.ok, chain.reason
    with sqlite3.connect(cli.store_file) as db:
        audited = [r[0] for r in db.execute("SELECT action FROM audit_log WHERE action LIKE 'replay_%'")]
    assert audited == ["replay_release"] + ["replay_discard"] * (len(seqs) - 1)
