"""`lifeboat demo --drill --headless`, run again and again as a user runs it (a new data dir
each time: a real mainsim child, a real store, the real console), counting the runs that
ended 0 with a passed report whose timings agree with its step times.

CI runs two in a row (about half a minute); `pytest -m soak` runs ten."""

from __future__ import annotations

import pytest

from tests.tui.test_demo_drill import assert_timings_agree, pid_alive, run_drill


def drill_in_a_row(tmp_path, runs: int) -> None:
    results = []
    for i in range(runs):
        r, rep, md = run_drill(tmp_path, name=f"-{i}")
        why = (rep or {}).get("failure") or r.stderr[-600:]
        passed = r.returncode == 0 and rep is not None and rep["ok"] and "Traceback" not in r.stderr
        if passed:
            assert_timings_agree(rep, md)
        ready = tmp_path / f"demo-{i}" / "mainsim-ready.json"
        if ready.exists():  # mainsim never outlives the drill
            import json

            assert not pid_alive(json.loads(ready.read_text())["pid"]), f"run {i}: mainsim still running"
        results.append((r.returncode, passed, why))
    ok = sum(1 for _code, passed, _why in results if passed)
    print(f"\ndrill: {ok} of {runs} runs exited 0 with a passed report")
    assert ok == runs, [(i, code, why) for i, (code, passed, why) in enumerate(results) if not passed]


@pytest.mark.timeout(120)
def test_the_drill_twice_in_a_row(tmp_path):
    drill_in_a_row(tmp_path, 2)


@pytest.mark.soak
@pytest.mark.timeout(900)
def test_the_drill_ten_times_in_a_row(tmp_path):
    drill_in_a_row(tmp_path, 10)
