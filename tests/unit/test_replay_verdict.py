"""`lifeboat sync replay` and `sync report` say exactly what happened (issue 9, section 2).

The seen case, rebuilt with real parts: main (a real mainsim on a persistent --db) is
killed, the console squares off one position of a client in backup (journaled), main is
restarted on the same --db, and positions of that client move on main: one before the
replay (something the console could not see), one after the square-off reached main.
`sync replay --json` once exited 0 under "local book equals main" above the rows saying
otherwise.  Now: exit 6, verdict ``mismatches``, the not-flat finding with its next step
(square off again), a headline that counts the rows and never says "equals" then; the
same rules for `sync report`; and exit 0 / ``clean`` once main is flat again.  A replay
whose lease another process holds exits 7 (busy), not 5.

Real `lifeboat` subprocesses (tests/cli_env.py) against a real mainsim; the scene (login,
BOD) is set in this process; main is moved over plain HTTP."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from contract import clock
from localstore import replay_store
from sync.lease import take_lease
from tests.cli_env import PASSWORD
from tests.replay_env import Main

HEADLINE_PREFIX = "Reconciliation #"


def lease_state(store) -> dict:
    """Who holds the replay lease (the row as the store has it)."""
    return {"holder": replay_store.lease_holder(store)}


def _two_positions(main: Main, client_hint: str | None = None) -> tuple[str, dict, dict]:
    """A client with two open equity positions (not NFO: quantity 1 is a valid order)."""
    by_client: dict[str, list[dict]] = {}
    for p in main.http.get("/positions").json():
        if p["net_quantity"] and p["exchange"] != "NFO":
            by_client.setdefault(p["client_id"], []).append(p)
    for client in sorted(by_client):
        rows = by_client[client]
        symbols = {p["symbol"] for p in rows}
        if len(symbols) >= 2 and (client_hint is None or client == client_hint):
            first = rows[0]
            second = next(p for p in rows if p["symbol"] != first["symbol"])
            return client, first, second
    raise AssertionError("no client with two open equity positions in the demo book")


def _buy_one(main: Main, p: dict, coid: str) -> None:
    main.place(p["client_id"], p["exchange"], p["symbol"], "BUY", 1, p["product"], coid)


def _headline_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(HEADLINE_PREFIX))


def test_square_off_not_flat_after_main_moved_is_a_mismatch_with_a_next_step(sim, cli_factory):
    cli = cli_factory(sim.url, user="super1")
    cli.login().ok()
    cli.bod_in_process()
    main = Main(sim.url)
    try:
        client, squared, other = _two_positions(main)
    finally:
        main.close()

    sim.kill()  # kill -9 of main; the console squares the position off in backup
    so = (
        cli(
            "--password-stdin",
            "squareoff",
            "--client",
            client,
            "--symbol",
            squared["symbol"],
            "--yes",
            "--json",
            stdin=PASSWORD + "\n",
        )
        .ok()
        .json()
    )
    assert so["mode"] == "BACKUP" and so["legs"] and all(leg["outcome"] == "journaled" for leg in so["legs"])

    sim.start()  # main is back on the same --db
    main = Main(sim.url)
    try:
        other_before = main.net(client, other["exchange"], other["symbol"], other["product"])
        _buy_one(main, other, "moved-while-blind-1")  # moved on main while the console could not see it

        first = cli("sync", "replay", "--json")
        body = first.json()
        assert first.returncode == 6, (first.stdout, first.stderr)
        assert body["verdict"] == "mismatches" and body["ok"] is False and body["exit_code"] == 6
        report = body["report"]
        assert report["verdict"] == "mismatches"
        assert report["counts"]["applied"] >= 1 and report["for_a_person"] == 0
        moved = [m for m in report["mismatches"] if m["kind"] == "position_differs"]
        assert [(m["client_id"], m["symbol"], m["main"]) for m in moved] == [
            (client, other["symbol"], other_before + 1)
        ]
        assert moved[0]["next_step"] == (
            f"if {client} should be flat, square off again: "
            f"lifeboat squareoff --client {client} --symbol {other['symbol']}"
        )
        assert "equals" not in body["headline"] and "1 mismatch (position differs 1)" in body["headline"]
        assert main.net(client, squared["exchange"], squared["symbol"], squared["product"]) == 0

        _buy_one(main, squared, "moved-after-squareoff-1")  # the squared-off position moves on main again

        second = cli("sync", "replay", "--json")
        assert second.returncode == 6, (second.stdout, second.stderr)
        body = second.json()
        report = body["report"]
        assert body["verdict"] == report["verdict"] == "mismatches"
        not_flat = [m for m in report["mismatches"] if m["kind"] == "not_flat"]
        assert [(m["client_id"], m["symbol"], m["product"], m["main"]) for m in not_flat] == [
            (client, squared["symbol"], squared["product"], 1)
        ]
        assert "it moved on main after the square-off" in not_flat[0]["detail"]
        assert not_flat[0]["next_step"] == (
            f"square off again: lifeboat squareoff --client {client} --symbol {squared['symbol']}"
        )
        assert len(report["mismatches"]) == 1  # the local book was refreshed by the first replay
        assert body["headline"] == report["headline"]
        assert (
            body["headline"].startswith("MISMATCHES: applied ")
            and "1 mismatch (not flat 1)" in body["headline"]
        )
        assert "equals" not in body["headline"].lower()

        # `sync report` judges the stored report by the same rules, in text and in JSON
        rep, text = cli.many(("sync", "report", "--json"), ("sync", "report"))
        assert (
            rep.returncode == 6 and rep.json()["verdict"] == "mismatches" and rep.json()["id"] == report["id"]
        )
        assert text.returncode == 6
        line = _headline_line(text.stdout)
        assert "MISMATCHES" in line and "not flat 1" in line and "equals" not in line.lower(), line
        assert "square off again" in text.stdout and "1 mismatch between the journal and main" in text.stderr
        # and `status` names the last report's verdict beside its time
        st, st_text = cli.many(("status", "--json"), ("status",))
        assert st.json()["replay"]["last_verdict"] == "mismatches"
        assert "(mismatches)" in next(x for x in st_text.stdout.splitlines() if x.startswith("replay"))

        # the next step, taken: main is flat again and the same replay reads clean
        cli(
            "--password-stdin",
            "squareoff",
            "--client",
            client,
            "--symbol",
            squared["symbol"],
            "--yes",
            stdin=PASSWORD + "\n",
        ).ok()
        assert main.net(client, squared["exchange"], squared["symbol"], squared["product"]) == 0
        clean = cli("sync", "replay", "--json")
        assert clean.returncode == 0, (clean.stdout, clean.stderr)
        body = clean.json()
        assert body["verdict"] == body["report"]["verdict"] == "clean" and body["ok"] is True
        assert body["report"]["mismatches"] == []
        assert body["headline"].startswith("CLEAN: applied ") and body["headline"].endswith(
            "local book equals main"
        )
        rep = cli("sync", "report", "--json")
        assert rep.returncode == 0 and rep.json()["verdict"] == "clean"
        assert cli("status", "--json").json()["replay"]["last_verdict"] == "clean"
    finally:
        main.close()


def test_replay_lease_held_by_another_process_is_busy_exit_7(sim, cli_factory):
    from sync.trading import desk
    from sync.trading.desk import Actor

    cli = cli_factory(sim.url, user="super1")
    cli.login().ok()
    bod = cli.bod_in_process()
    nothing = cli("sync", "report", "--json")  # no replay yet, and nothing to replay
    assert nothing.returncode == 0 and nothing.json()["ok"] is True and nothing.json()["verdict"] is None
    svc = cli.service()
    try:
        main = Main(sim.url)
        client, _, _ = _two_positions(main)
        main.close()
        desk.squareoff(
            svc.store,
            Actor("super1", "supervisor", frozenset(), bod.trading_date),
            client_id=client,
            symbol=None,
            keep_orders=True,
            mode="BACKUP",
        )  # journaled as the CLI's backup square-off does
        waiting = cli("sync", "report", "--json")  # no report yet, but the journal waits for a replay
        assert waiting.returncode == 5 and waiting.json()["verdict"] == "incomplete", waiting.stdout
        assert "wait for a replay: run `lifeboat sync replay`" in waiting.json()["message"]
        # another live process on this host holds the lease (this test's own process)
        holder = f"{svc.store.console_id}/{os.getpid()}@{socket.gethostname()}"
        taken, _, _ = take_lease(
            svc.store, holder, ttl_s=timedelta(minutes=5).total_seconds(), now=clock.utcnow()
        )
        assert taken
        res = cli("sync", "replay", "--json")
        assert res.returncode == 7, (res.stdout, res.stderr)
        body = res.json()
        assert body["ok"] is False and body["verdict"] == "busy" and body["exit_code"] == 7
        assert body["error"]["code"] == "busy" and body["error"]["error_id"]
        assert body["error"]["message"].startswith("busy: another process holds the replay; try again")
        assert holder in body["error"]["message"] and body["report"] is None
        text = cli("sync", "replay")
        assert text.returncode == 7 and "busy: another process holds the replay; try again" in text.stderr
        assert lease_state(svc.store)["holder"] == holder  # untouched
    finally:
        svc.close()


def _report(**over) -> dict:
    base = {
        "id": 3,
        "trading_date": "2026-01-05",
        "user": "super1",
        "created_at": "2026-01-05T04:00:00+00:00",
        "replay": {"status": "done"},
        "counts": {
            "applied": 28,
            "moot": 0,
            "rejected": 0,
            "conflict": 0,
            "held": 0,
            "pending": 0,
            "sent": 0,
        },
        "for_a_person": 0,
        "entries": [],
        "mismatches": [],
        "local_equals_main": True,
    }
    return {**base, **over}


SEEN = [
    {"kind": "not_flat", "client_id": "C1001", "symbol": "POWERGRID", "expected": 0, "main": 1},
    {"kind": "position_differs", "client_id": "C1001", "symbol": "TCS", "local": 5, "main": 6},
    {"kind": "position_differs", "client_id": "C1002", "symbol": "ITC", "local": 0, "main": 3},
]


def test_the_screens_headline_counts_the_rows_and_never_says_equals_over_them():
    """The TUI's report screen and the replay screen draw this headline (console/tui/screens/reconciliation.py)."""
    from console.tui.screens.reconciliation import agrees, headline

    seen = _report(mismatches=SEEN)  # local_equals_main is true: the refreshed mirror equals main
    line = headline(seen)
    assert "equals" not in line.lower() and not agrees(seen), line
    assert "MISMATCHES: applied 28; 3 mismatches (not flat 1, position differs 2)" in line
    held = _report(counts={**seen["counts"], "held": 1}, for_a_person=1)
    assert "HELD: applied 28, held 1; 1 entry held for a supervisor" in headline(held) and not agrees(held)
    clean = _report()
    assert headline(clean).endswith(
        "CLEAN: applied 28; no mismatches: main holds what the journal meant and the local book equals main"
    ) and agrees(clean)


def test_verdict_is_one_of_the_documented_ones_in_their_order():
    from sync.verdict import verdict

    assert verdict(None, "busy") == "busy"
    assert verdict(_report(replay={"status": "stopped"})) == "incomplete"
    assert verdict(_report(counts={"applied": 1, "pending": 2})) == "incomplete"
    assert verdict(_report(for_a_person=1, counts={"conflict": 1}, mismatches=SEEN)) == "held"
    assert verdict(_report(mismatches=SEEN, counts={"applied": 1, "rejected": 1})) == "mismatches"
    assert verdict(_report(counts={"applied": 1, "rejected": 1})) == "rejected"
    assert verdict(_report(counts={"applied": 1, "moot": 2})) == "clean"


def test_the_report_screen_shows_the_verdict_and_each_next_step():
    """The reconciliation screen over the seen report: a red headline without "equals", and the
    not-flat row with its next step."""
    import asyncio

    from textual.app import App
    from textual.widgets import DataTable, Static

    from console.tui.screens.reconciliation import ReconciliationScreen

    seen = _report(
        mismatches=[
            {
                **SEEN[0],
                "detail": "it moved on main after the square-off",
                "next_step": "square off again: lifeboat squareoff --client C1001 --symbol POWERGRID",
            },
            *SEEN[1:],
        ]
    )

    async def go():
        app = App()
        async with app.run_test(size=(160, 45)) as pilot:
            await app.push_screen(ReconciliationScreen(seen))
            await pilot.pause()
            head = app.screen.query_one("#recon-headline", Static)
            rows = app.screen.query_one("#recon-mismatches", DataTable)
            return str(head.content), head.has_class("recon-bad"), [str(c) for c in rows.get_row_at(0)]

    text, bad, row = asyncio.run(go())
    assert (
        bad and text.startswith("Reconciliation #3") and "MISMATCHES" in text and "equals" not in text.lower()
    )
    assert (
        row[0] == "not_flat"
        and row[-1] == "square off again: lifeboat squareoff --client C1001 --symbol POWERGRID"
    )
