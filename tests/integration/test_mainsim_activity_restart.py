"""mainsim's background order flow (``--activity``) after a kill -9 and a restart on
the same ``--db``: it goes on from what main already holds instead of placing the
same orders (same clients, symbols, sides, quantities) over again, and no
client_order_id of it is used twice.  Real mainsim subprocesses, real SQLite file."""

from __future__ import annotations

import time

from tests.mainsim_support import Desk

N = 12  # activity orders compared on each side of the restart


def _activity(desk: Desk) -> list[dict]:
    """The activity orders main holds, in the order it took them (order ids are numbered)."""
    orders = [o for o in desk.get("/orders").json() if o["placed_by"] == "sim"]
    return sorted(orders, key=lambda o: o["order_id"])


def _wait_for(desk: Desk, n: int, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        orders = _activity(desk)
        if len(orders) >= n or time.monotonic() > deadline:
            assert len(orders) >= n, f"only {len(orders)} activity orders after {timeout} s"
            return orders
        time.sleep(0.1)


def _shape(o: dict) -> tuple:
    return (o["client_id"], o["exchange"], o["symbol"], o["side"], o["quantity"], o["order_type"])


def test_restart_on_the_same_db_does_not_repeat_the_activity(sim_factory):
    sim = sim_factory(extra_args=["--activity", "40"])
    desk = Desk(sim.url, "super1")
    first = _wait_for(desk, N)
    sim.kill()  # kill -9: what is persisted is all the restarted main knows
    sim.extra_args = ["--activity", "0"]  # a quiet start first, to see what was persisted
    sim.start()
    before = {o["order_id"] for o in _activity(Desk(sim.url, "super1"))}
    assert before >= {o["order_id"] for o in first}  # nothing acknowledged was lost
    sim.stop()
    sim.extra_args = ["--activity", "40"]
    sim.start()
    desk = Desk(sim.url, "super1")
    after = [o for o in _wait_for(desk, len(before) + N) if o["order_id"] not in before][:N]
    assert len(after) == N

    # seeded from the seed alone, the restarted generator placed first[k]'s order again as after[k]
    assert [_shape(o) for o in after] != [_shape(o) for o in first[:N]]
    same = sum(_shape(a) == _shape(b) for a, b in zip(after, first, strict=False))
    assert same <= 2, f"{same} of {N} orders after the restart repeat the ones after the first start"
    coids = [o["client_order_id"] for o in _activity(desk)]
    assert len(coids) == len(set(coids))
