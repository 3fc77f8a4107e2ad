"""`lifeboat demo --drill`, headless, as a user runs it: a real mainsim child, a real store,
the real console app (App.run(headless=True)); then the drill report read back.
Plus the report's verdict logic and the command's bad-input answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from console.demo_report import DrillReport, judge_reconciliation
from console.exitcodes import ExitCode

pytestmark = pytest.mark.timeout(150)


def demo_env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env["LIFEBOAT_TEST_SCRYPT_N"] = "1024"  # cheap local verifier; the demo's own keyring is in memory
    env.pop("LIFEBOAT_CONFIG", None)
    env.pop("LIFEBOAT_HOME", None)
    return env


def lifeboat(args: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_drill_runs_the_whole_story_headless_and_writes_its_report(tmp_path):
    data, out = tmp_path / "demo", tmp_path / "reports"
    r = lifeboat(["demo", "--drill", "--headless", "--dir", str(data), "--report", str(out)], demo_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    rep = json.loads((out / "drill-report.json").read_text())
    assert rep["ok"] and rep["flat"] and rep["reconciled"] and rep["exit_code"] == 0
    names = [s["name"] for s in rep["steps"]]
    assert names == ["console ONLINE", "client to square off", "outage staged", "BACKUP", "square-off journaled",
                     "outage ended", "RECOVERING", "replayed", "ONLINE", "book flat on main", "reconciled"]
    assert all(s["ok"] for s in rep["steps"])
    for key in ("detection_s", "squareoff_journal_s", "replay_s", "reconciliation_s", "online_after_end_s"):
        assert key in rep["timings_s"] and rep["timings_s"][key] >= 0
    assert rep["reconciliation"]["counts"]["applied"] >= rep["legs"] >= 1
    assert rep["reconciliation"]["mismatch_counts"]["journal_vs_main"] == 0
    md = (out / "drill-report.md").read_text()
    assert "PASSED" in md and f"client {rep['client_id']}" in md and "Detection (outage staged -> BACKUP)" in md
    # the demo's store and logs stay in its data dir; mainsim is gone
    assert (data / "home" / "logs").is_dir() and (data / "mainsim.db").exists()
    pid = json.loads((data / "mainsim-ready.json").read_text())["pid"]
    assert not pid_alive(pid)
    assert "mainsim stopped" in r.stderr and str(data) in r.stderr


def _report(**kw) -> dict:
    base = {"id": 3, "counts": {"applied": 2, "moot": 0, "rejected": 0, "conflict": 0, "held": 0, "pending": 0,
                                "sent": 0}, "for_a_person": 0,
            "mismatch_counts": {"journal_vs_main": 0, "moved_on_main": 0, "mirror": 0}, "local_equals_main": True}
    base.update(kw)
    return base


@pytest.mark.parametrize("report, reconciled, held", [
    (_report(), True, 0),
    (_report(for_a_person=1, counts={"applied": 1, "held": 1}), False, 1),
    (_report(counts={"applied": 1, "rejected": 1}), False, 0),
    (_report(mismatch_counts={"journal_vs_main": 1}), False, 0),
    (_report(local_equals_main=False), False, 0),
    (None, False, 0),
])
def test_reconciliation_verdict(report, reconciled, held):
    assert judge_reconciliation(report) == (reconciled, held)


def test_drill_exit_codes_say_what_went_wrong(tmp_path):
    rep = DrillReport(user="dealer1")
    rep.flat, rep.reconciled = True, True
    assert rep.ok and rep.exit_code == ExitCode.OK
    rep.flat = False
    assert not rep.ok and rep.exit_code == ExitCode.UNEXPECTED
    assert "did not end flat" in rep.markdown()
    rep.flat, rep.reconciled, rep.held_for_a_person = True, False, 2
    assert rep.exit_code == ExitCode.HELD
    rep = DrillReport()
    rep.flat = rep.reconciled = True
    rep.step("BACKUP", ok=False, detail="not seen within 30 s")
    assert rep.failure == "BACKUP: not seen within 30 s" and rep.exit_code == ExitCode.UNEXPECTED
    jpath, mpath = rep.write(tmp_path / "r")
    assert json.loads(jpath.read_text())["failure"] == "BACKUP: not seen within 30 s"
    assert "FAILED: BACKUP: not seen within 30 s" in mpath.read_text()


def test_bad_dir_and_bad_config_are_usage_errors_without_a_traceback(tmp_path):
    env = demo_env(tmp_path)
    afile = tmp_path / "a-file"
    afile.write_text("x")
    r = lifeboat(["demo", "--headless", "--dir", str(afile)], env, timeout=60)
    assert r.returncode == ExitCode.USAGE and "is not a directory" in r.stderr and "Traceback" not in r.stderr
    data = tmp_path / "d"
    (data / "home").mkdir(parents=True)
    (data / "home" / "config.toml").write_text("[console]\nidle_lock_minutes = -3\n")
    r = lifeboat(["demo", "--headless", "--dir", str(data)], env, timeout=60)
    assert r.returncode == ExitCode.USAGE and "idle_lock_minutes" in r.stderr and "Traceback" not in r.stderr
    assert not (data / "mainsim-ready.json").exists()  # refused before anything started
