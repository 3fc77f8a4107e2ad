"""`lifeboat demo --drill`, headless, as a user runs it: a real mainsim child, a real store,
the real console app (App.run(headless=True)); then the drill report read back.
Plus the report's verdict logic and the command's bad-input answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest

from console.demo_report import DrillReport, judge_reconciliation
from console.exitcodes import ExitCode

pytestmark = pytest.mark.timeout(150)


def demo_env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env["LIFEBOAT_TEST_SCRYPT_N"] = "1024"  # cheap local verifier (tests/launcher.py); keyring in memory
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # tests.launcher importable
    env.pop("LIFEBOAT_CONFIG", None)
    env.pop("LIFEBOAT_HOME", None)
    return env


def lifeboat(args: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.launcher", *args],  # console.cli with the test seams set
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def pid_alive(pid: int) -> bool:
    """The process runs: it exists and is not a zombie (one that has ended, but that its parent,
    or an init slow to reap orphans, has not collected yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False  # gone between the two looks
    return state not in ("Z", "X")


STORY = [
    "drill started",
    "console ONLINE",
    "client to square off",
    "outage staged",
    "BACKUP",
    "square-off asked",
    "square-off journaled",
    "outage ended",
    "RECOVERING",
    "replay started",
    "replay ended",
    "reconciliation stored",
    "ONLINE",
    "book flat on main",
    "reconciled",
    "drill ended",
]


def assert_timings_agree(rep: dict, md: str) -> None:
    """Every timing of the report is the difference of its two steps' times, in the JSON (t and at) and as the
    Markdown prints them; the step table is in time order."""
    from datetime import datetime

    from console.demo_report import TIMING_SPANS

    steps = {s["name"]: s for s in rep["steps"]}
    ts = [s["t"] for s in rep["steps"]]
    assert ts == sorted(ts), ts
    assert set(rep["timings_s"]) == set(TIMING_SPANS), rep["timings_s"]
    for key, (first, last) in TIMING_SPANS.items():
        a, b = steps[first], steps[last]
        by_t = b["t"] - a["t"]
        by_at = (datetime.fromisoformat(b["at"]) - datetime.fromisoformat(a["at"])).total_seconds()
        assert abs(rep["timings_s"][key] - by_t) < 0.0005, (key, rep["timings_s"][key], first, a, last, b)
        assert abs(rep["timings_s"][key] - by_at) < 0.0005, (key, rep["timings_s"][key], a["at"], b["at"])

        # the Markdown's step table (HH:MM:SS.mmm) gives the same difference
        def clock_of(step):
            row = next(line for line in md.splitlines() if f"| {step['name']} |" in line)
            hh, mm, ss = row.split("|")[1].strip().split(":")
            return int(hh) * 3600 + int(mm) * 60 + float(ss)

        assert abs(((clock_of(b) - clock_of(a)) % 86400) - rep["timings_s"][key]) < 0.0005, key
    started = datetime.fromisoformat(rep["started_at"])
    assert (
        datetime.fromisoformat(steps["drill started"]["at"]) == started and steps["drill started"]["t"] == 0
    )
    assert rep["finished_at"] == steps["drill ended"]["at"]


def run_drill(tmp_path: Path, name: str = "") -> tuple[subprocess.CompletedProcess, dict | None, str]:
    data, out = tmp_path / f"demo{name}", tmp_path / f"reports{name}"
    r = lifeboat(
        ["demo", "--drill", "--headless", "--dir", str(data), "--report", str(out)], demo_env(tmp_path)
    )
    jpath = out / "drill-report.json"
    rep = json.loads(jpath.read_text()) if jpath.exists() else None
    md = (out / "drill-report.md").read_text() if rep is not None else ""
    return r, rep, md


def test_drill_runs_the_whole_story_headless_and_writes_its_report(tmp_path):
    data, out = tmp_path / "demo", tmp_path / "reports"
    r = lifeboat(
        ["demo", "--drill", "--headless", "--dir", str(data), "--report", str(out)], demo_env(tmp_path)
    )
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    rep = json.loads((out / "drill-report.json").read_text())
    assert rep["ok"] and rep["flat"] and rep["reconciled"] and rep["exit_code"] == 0
    names = [s["name"] for s in rep["steps"]]
    assert sorted(names) == sorted(STORY), names
    # in time order (checked below); what must come before what
    order = [
        "drill started",
        "console ONLINE",
        "client to square off",
        "outage staged",
        "BACKUP",
        "square-off asked",
        "square-off journaled",
        "outage ended",
        "replay started",
        "replay ended",
        "book flat on main",
        "reconciled",
        "drill ended",
    ]
    assert [n for n in names if n in order] == order, names
    for first, last in [
        ("outage ended", "RECOVERING"),
        ("RECOVERING", "replay ended"),
        ("replay ended", "reconciliation stored"),
        ("outage ended", "ONLINE"),
        ("ONLINE", "book flat on main"),
        ("reconciliation stored", "book flat on main"),
    ]:
        assert names.index(first) < names.index(last), (first, last, names)
    assert all(s["ok"] for s in rep["steps"])
    for key in ("detection_s", "squareoff_journal_s", "replay_s", "reconciliation_s", "online_after_end_s"):
        assert key in rep["timings_s"] and rep["timings_s"][key] >= 0
    assert rep["reconciliation"]["counts"]["applied"] >= rep["legs"] >= 1
    assert rep["reconciliation"]["mismatch_counts"]["journal_vs_main"] == 0
    md = (out / "drill-report.md").read_text()
    assert (
        "PASSED" in md and f"client {rep['client_id']}" in md and "Detection (outage staged -> BACKUP)" in md
    )
    assert_timings_agree(rep, md)
    # the demo's store and logs stay in its data dir; mainsim is gone
    assert (data / "home" / "logs").is_dir() and (data / "mainsim.db").exists()
    pid = json.loads((data / "mainsim-ready.json").read_text())["pid"]
    assert not pid_alive(pid)
    assert "mainsim stopped" in r.stderr and str(data) in r.stderr


def test_the_report_timings_are_the_differences_of_its_step_times(tmp_path):
    """Steps recorded at given instants (out of order too: the replayer's stamps arrive late), timings from them."""
    from datetime import datetime

    rep = DrillReport(user="dealer1")
    rep.begin(mono=1000.0, wall=datetime(2026, 11, 20, 4, 0, 0, 123456, tzinfo=UTC))
    rep.step("drill started", mono=1000.0)
    rep.step("outage staged", mono=1001.2504)
    rep.step("BACKUP", mono=1001.3371)
    rep.step("outage ended", mono=1003.0)
    rep.step("ONLINE", mono=1007.5)
    rep.step("replay started", mono=rep.instant(datetime(2026, 11, 20, 4, 0, 6, 123456, tzinfo=UTC)))
    rep.step("replay ended", mono=rep.instant(datetime(2026, 11, 20, 4, 0, 7, 23456)))  # naive: UTC
    rep.step("drill ended", mono=1008.0)
    for key in ("detection_s", "replay_s", "online_after_end_s", "total_s", "squareoff_journal_s"):
        rep.span(key)
    assert rep.timings_s == {"detection_s": 0.087, "replay_s": 0.9, "online_after_end_s": 4.5, "total_s": 8.0}
    assert [s.name for s in rep.steps] == [
        "drill started",
        "outage staged",
        "BACKUP",
        "outage ended",
        "replay started",
        "replay ended",
        "ONLINE",
        "drill ended",
    ]
    assert rep.started_at == "2026-11-20T04:00:00.123+00:00"
    assert rep.find("BACKUP").at == "2026-11-20T04:00:01.460+00:00" and rep.find("BACKUP").t == 1.337
    rep.finished_at = rep.find("drill ended").at
    jpath, mpath = rep.write(tmp_path)
    d = json.loads(jpath.read_text())
    assert [(s["name"], s["t"]) for s in d["steps"]][:3] == [
        ("drill started", 0.0),
        ("outage staged", 1.25),
        ("BACKUP", 1.337),
    ]
    md = mpath.read_text()
    assert "| Detection (outage staged -> BACKUP) | 0.087 |" in md
    assert "| 04:00:01.460 | 1.337 | BACKUP | yes |" in md


def _report(**kw) -> dict:
    base = {
        "id": 3,
        "counts": {"applied": 2, "moot": 0, "rejected": 0, "conflict": 0, "held": 0, "pending": 0, "sent": 0},
        "for_a_person": 0,
        "mismatch_counts": {"journal_vs_main": 0, "moved_on_main": 0, "mirror": 0},
        "local_equals_main": True,
    }
    base.update(kw)
    return base


@pytest.mark.parametrize(
    "report, reconciled, held",
    [
        (_report(), True, 0),
        (_report(for_a_person=1, counts={"applied": 1, "held": 1}), False, 1),
        (_report(counts={"applied": 1, "rejected": 1}), False, 0),
        (_report(mismatches=[{"kind": "not_flat"}], mismatch_counts={"journal_vs_main": 1}), False, 0),
        (
            _report(
                mismatches=[{"kind": "mirror_position"}],
                mismatch_counts={"mirror": 1},
                local_equals_main=False,
            ),
            False,
            0,
        ),
        (
            _report(moved_on_main=[{"kind": "position_differs", "finding": False}]),
            True,
            0,
        ),  # information only
        # the drilled client open again on main: the old judge ignored moved_on_main and passed the drill
        (
            _report(
                mismatches=[{"kind": "position_differs", "finding": True}],
                mismatch_counts={"moved_on_main": 1},
            ),
            False,
            0,
        ),
        (None, False, 0),
    ],
)
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


# --------------------------------------------------------------------------- a failed drill ends at once


def _drill_app(
    url: str,
    home: Path,
    report_dir: Path,
    *,
    control_url: str,
    password: str = "demo",
    linger_s: float = 30.0,
):
    from console.demo import OutageSwitch
    from console.service import Service
    from console.tui.config import ConsoleConfig
    from console.tui.drill import DemoApp, DrillDriver

    svc = Service(backend_url=url, home=home, user="dealer1")
    driver = DrillDriver(
        DrillReport(backend_url=url, data_dir=str(home), user="dealer1"),
        report_dir,
        pause_s=0.05,
        linger_s=linger_s,
        step_timeout_s=20,
    )
    app = DemoApp(
        svc,
        ConsoleConfig(idle_lock_minutes=0),
        switch=OutageSwitch(control_url),
        password=password,
        drill=driver,
    )
    return app, driver, svc


def _run_app(app, budget_s: float) -> float:
    import asyncio
    import time

    async def go():
        await asyncio.wait_for(app.run_async(headless=True, size=(160, 45)), budget_s)

    t0 = time.monotonic()
    asyncio.run(go())
    return time.monotonic() - t0


def test_a_drill_whose_login_fails_ends_at_once_with_exit_1_and_says_why(sim, tmp_path, tui_keyring):
    """Before: the demo's login failed, a toast asked a person to log in by hand, and the drill never started:
    the app stayed up for ever (here: the 25 s budget ran out)."""
    app, driver, svc = _drill_app(
        sim.url, tmp_path / "home", tmp_path / "r", control_url=sim.url, password="not-the-password"
    )
    try:
        took = _run_app(app, budget_s=25)
    finally:
        svc.close()
    assert app.return_code == ExitCode.UNEXPECTED and driver.finished and took < 15
    rep = json.loads((tmp_path / "r" / "drill-report.json").read_text())
    assert rep["failure"].startswith("console ONLINE: demo login failed: ") and rep["exit_code"] == 1
    assert "wrong user id or password" in rep["failure"].lower(), rep["failure"]
    assert "FAILED: console ONLINE: demo login failed" in (tmp_path / "r" / "drill-report.md").read_text()


def test_a_drill_that_cannot_stage_its_outage_ends_at_once_not_after_lingering(sim, tmp_path, tui_keyring):
    """The fault control does not answer (nothing listens on its port): the drill fails at 'outage staged',
    says so and ends now.  Before: a toast, then the 30 s linger meant for a passed drill's report."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    app, driver, svc = _drill_app(sim.url, tmp_path / "home", tmp_path / "r", control_url=dead, linger_s=30)
    try:
        took = _run_app(app, budget_s=60)
    finally:
        svc.close()
    assert app.return_code == ExitCode.UNEXPECTED and driver.finished
    assert took < 20, f"took {took:.1f} s: it lingered"
    rep = json.loads((tmp_path / "r" / "drill-report.json").read_text())
    assert rep["failure"].startswith("outage staged: mainsim's fault control did not answer: ConnectError"), (
        rep
    )
    assert rep["client_id"] and rep["legs"] >= 1  # picked from the loaded book before that
    names = [s["name"] for s in rep["steps"]]
    assert names == [
        "drill started",
        "console ONLINE",
        "client to square off",
        "outage staged",
        "drill ended",
    ]
    assert rep["timings_s"] == {"total_s": rep["steps"][-1]["t"]}
