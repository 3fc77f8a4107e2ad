"""Crash at every step: a replay killed after its k-th step (each committed state move
and each answer from main is one step; the engine's test hook
LIFEBOAT_TEST_REPLAY_CRASH_AFTER=k does os._exit), then replayed again, leaves every
intent applied exactly once on main.

One real mainsim serves every trial.  Each trial is its own console (a copy of one
BOD'd store with a new console id, so client_order_ids never collide) acting for its
own client, so trials cannot disturb each other's positions.  The journal of a trial:
a resting reducing LIMIT order, a square-off of another position split in two slices
(the local reference data's freeze quantity is set to half the position), and a
cancel of the LIMIT order, which at journal time exists only in the journal.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from localstore.models import JournalState
from sync.replay import CRASH_EXIT_CODE
from tests.cli_env import copy_anchors
from tests.replay_env import Console, Main, make_console, parse_runner, replay_in_child

_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def clone(tpl: Console, dest: Path, k: int) -> Console:
    home = dest / f"trial{k}"
    shutil.copytree(tpl.home, home)
    console_id = f"T{_ALPHABET[k // 31]}{_ALPHABET[k % 31]}X"
    with sqlite3.connect(home / "lifeboat.db") as con:
        con.execute("UPDATE console_identity SET console_id = ?", (console_id,))
    # test-only: the clone is enrolled under its new id, as an online login in its home would do
    copy_anchors(
        tpl.home,
        home,
        keyring_file=Path(tpl.env["LIFEBOAT_TEST_KEYRING_FILE"]),
        console_id=console_id,
        src_config_dir=Path(tpl.env["LIFEBOAT_CONFIG_DIR"]),
    )
    return Console(home, tpl.url, tpl.trading_date, tpl.env)


def journal_trial(con: Console, client_id: str) -> dict:
    """The three intents; returns what to check on main afterwards."""
    positions = list(con.positions(client_id))
    inst_of = {p.symbol: con.instrument(p.exchange, p.symbol) for p in positions}
    big = next(p for p in positions if abs(p.net_quantity) >= 2 * inst_of[p.symbol].lot_size)
    other = next(p for p in positions if p is not big)
    inst = inst_of[other.symbol]
    side = "SELL" if other.net_quantity > 0 else "BUY"
    price = inst.upper_band if side == "SELL" else inst.lower_band  # far away: it rests
    placed = con.place(
        client_id,
        other.exchange.value,
        other.symbol,
        side,
        inst.lot_size,
        other.product.value,
        "LIMIT",
        price,
    )
    lot = inst_of[big.symbol].lot_size
    half_lots = -(-abs(big.net_quantity) // lot // 2)
    with sqlite3.connect(con.home / "lifeboat.db") as db:
        db.execute(
            "UPDATE instruments SET freeze_quantity = ? WHERE exchange = ? AND symbol = ?",
            (half_lots * lot, big.exchange.value, big.symbol),
        )
    _, _, receipts = con.squareoff(client_id, big.symbol)
    cancel = con.cancel(client_order_id=placed.client_order_id)
    return {
        "place": placed.client_order_id,
        "squareoff": receipts[0].client_order_id,
        "cancel": cancel.client_order_id,
        "key": (client_id, big.exchange.value, big.symbol, big.product.value),
    }


def check_exactly_once(main: Main, con: Console, trial: dict) -> None:
    counts = main.coid_counts()
    assert counts.get(trial["place"]) == 1
    slices = sorted(c for c in counts if c.startswith(trial["squareoff"] + "-"))
    assert slices == [trial["squareoff"] + "-1", trial["squareoff"] + "-2"], slices
    assert all(counts[c] == 1 for c in slices)
    assert main.net(*trial["key"]) == 0
    placed = [o for o in main.orders() if o["client_order_id"] == trial["place"]]
    assert placed[0]["status"] == "CANCELLED"
    states = [e.state for e in con.journal()]
    assert states == [JournalState.APPLIED] * 3, [(e.seq, e.state, e.state_reason) for e in con.journal()]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from tests.simproc import SimProcess

    root = tmp_path_factory.mktemp("replay-crash")
    sim = SimProcess(db=root / "main.db", workdir=root).start()
    try:
        tpl = make_console(sim.url, root, "template")
        yield sim, tpl, root
    finally:
        sim.kill()


def test_crash_after_every_step_then_replay_again(scene):
    sim, tpl, root = scene
    main = Main(sim.url)
    clients = sorted({p.client_id for p in tpl.positions()})
    # A clean run tells how many steps this journal takes.
    clean = clone(tpl, root, 0)
    trial0 = journal_trial(clean, clients[0])
    clean.close()
    rc, out, err = clean.run_runner()  # the real runner once: a whole interpreter, as a person would start it
    assert rc == 0, err
    steps = parse_runner(out)["result"]["steps"]
    assert steps >= 12  # 3 (place) + 7 (two-slice square-off) + 4 (cancel): every step is covered below
    check_exactly_once(main, clean, trial0)
    clean.close()

    def trial(k: int) -> tuple[int, str]:
        con = clone(tpl, root, k)
        t = journal_trial(con, clients[k])
        con.close()
        rc = replay_in_child(con, crash_after=k)
        assert rc == CRASH_EXIT_CODE, f"k={k}: the hook did not fire (rc={rc})"
        reconciled = k in (
            1,
            steps,
        )  # the BOD refresh costs more than the replay: two trials check the report
        result, report = con.replay(reconciled=reconciled)  # the second run, in this process
        assert result.status == "done", result.message
        check_exactly_once(main, con, t)
        if reconciled:
            assert report["mismatch_counts"]["journal_vs_main"] == 0, report["mismatches"]
            assert report["local_equals_main"], report["mismatches"]
            assert report["counts"]["applied"] >= 3
        con.close()
        return k, result.message

    done = [trial(k) for k in range(1, steps + 1)]
    assert [k for k, _ in done] == list(range(1, steps + 1))
    main.close()
