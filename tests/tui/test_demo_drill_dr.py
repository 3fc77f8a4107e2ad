"""`lifeboat demo --drill --dr`, headless, as a user runs it: two real mainsim children (main and
the DR site, a standby following it), a real store, the real console app; then the drill report
read back and both sites' SQLite files read directly by client_order_id.
Plus the site check the report relies on, against SQLite files made here, and the flag's misuse."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from console.demo import check_sites, holds
from console.demo_report import DR_TIMING_SPANS, DRDrillReport
from console.exitcodes import ExitCode
from tests.tui.test_demo_drill import demo_env, lifeboat, pid_alive

# the story in time order (RECOVERING, the replay's stamps and "DR again" may share an instant)
DR_STORY = [
    "drill started",
    "console ONLINE",
    "DR site following",
    "clients to square off",
    "main killed",
    "BACKUP",
    "DR promoted",
    "DR",
    "square-off at DR asked",
    "square-off at DR accepted",
    "DR killed",
    "BACKUP (DR lost)",
    "square-off asked",
    "square-off journaled",
    "DR restarted",
    "DR back",
    "RECOVERING",
    "replay started",
    "replay ended",
    "reconciliation stored",
    "DR again",
    "journal at DR",
    "main restarted as standby",
    "main caught up",
    "main promoted",
    "DR demoted",
    "ONLINE",
    "DR caught up",
    "books flat on main",
    "reconciled",
    "sites agree",
    "drill ended",
]


def orders(db: Path) -> list[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return [
            c for (c,) in con.execute("SELECT client_order_id FROM orders WHERE client_order_id IS NOT NULL")
        ]
    finally:
        con.close()


def journal(home: Path) -> list[tuple]:
    con = sqlite3.connect(f"file:{home / 'lifeboat.db'}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(
            "SELECT kind, client_order_id, client_id, state, mode, sent_to FROM journal"
        ).fetchall()
    finally:
        con.close()


@pytest.mark.timeout(150)
def test_dr_drill_runs_the_whole_story_headless_and_both_sites_agree(tmp_path):
    data, out = tmp_path / "demo", tmp_path / "reports"
    r = lifeboat(
        ["demo", "--drill", "--dr", "--headless", "--dir", str(data), "--report", str(out)],
        demo_env(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "DR drill PASSED" in r.stderr
    rep = json.loads((out / "drill-report.json").read_text())
    md = (out / "drill-report.md").read_text()
    assert rep["ok"] and rep["flat"] and rep["reconciled"] and rep["sites_ok"] and rep["exit_code"] == 0

    # every step, ok, in the story's order (the table is in time order)
    names = [s["name"] for s in rep["steps"]]
    assert sorted(names) == sorted(DR_STORY), names
    ts = [s["t"] for s in rep["steps"]]
    assert ts == sorted(ts)
    strict = [n for n in DR_STORY if n not in ("RECOVERING", "replay started", "replay ended", "DR again")]
    assert [n for n in names if n in strict] == strict, names
    for first, last in [
        ("DR back", "RECOVERING"),
        ("RECOVERING", "replay ended"),
        ("replay started", "replay ended"),
        ("replay ended", "reconciliation stored"),
        # not "replay ended" < "DR again": the runtime leaves RECOVERING once the journal is empty,
        # which may come a few ms before the replayer's own end stamp (seen: 24 ms)
        ("RECOVERING", "DR again"),
        ("replay started", "DR again"),
        ("DR again", "main restarted as standby"),
    ]:
        assert names.index(first) < names.index(last), (first, last, names)
    assert all(s["ok"] for s in rep["steps"]), [s for s in rep["steps"] if not s["ok"]]
    steps = {s["name"]: s for s in rep["steps"]}
    # each mode as the banner showed it; DR names the DR site, ONLINE is back at main
    dr_url = rep["dr_url"]
    main_url = rep["backend_url"]
    assert dr_url and dr_url != main_url
    assert (
        f"banner: DR  -  main is down: orders go to the broker's DR site ({dr_url})" in steps["DR"]["detail"]
    )
    assert dr_url in steps["DR again"]["detail"]
    assert (
        "banner: BACKUP" in steps["BACKUP"]["detail"]
        and "banner: BACKUP" in steps["BACKUP (DR lost)"]["detail"]
    )
    assert (
        f"at main {main_url}" in steps["ONLINE"]["detail"] and "banner: ONLINE" in steps["ONLINE"]["detail"]
    )
    assert "epoch 1" in steps["DR promoted"]["detail"] and "epoch 2" in steps["main promoted"]["detail"]

    # the timings: every one there, each the difference of its two steps' times (JSON t and at, Markdown)
    assert set(rep["timings_s"]) == set(DR_TIMING_SPANS), rep["timings_s"]
    for key, (first, last) in DR_TIMING_SPANS.items():
        a, b = steps[first], steps[last]
        assert rep["timings_s"][key] >= 0, key
        assert abs(rep["timings_s"][key] - (b["t"] - a["t"])) < 0.0005, key
        by_at = (datetime.fromisoformat(b["at"]) - datetime.fromisoformat(a["at"])).total_seconds()
        assert abs(rep["timings_s"][key] - by_at) < 0.0005, key
    for label in ("Main killed -> BACKUP", "DR promoted -> DR on the banner", "Switch-back"):
        assert label in md
    assert "PASSED" in md and "## DR sites" in md and "- AGREE:" in md and "Exit code 0." in md

    # the two clients: one squared off at DR (not journaled), one journaled and replayed to DR
    at_dr, journaled = rep["client_id"], rep["journal_client_id"]
    assert at_dr and journaled and at_dr != journaled
    assert len(rep["dr_legs"]) == rep["legs"] >= 1 and len(rep["journaled_legs"]) == rep["journal_legs"] >= 1
    assert rep["reconciliation"]["counts"]["applied"] >= rep["journal_legs"]
    entries = journal(data / "home")
    assert entries and {e[2] for e in entries} == {journaled}, entries  # nothing of the DR square-off
    assert not {e[1] for e in entries} & set(rep["dr_legs"])
    assert all(e[3] == "applied" and e[4] == "BACKUP" and e[5] == dr_url for e in entries), entries

    # both sites' databases, read here: none twice, every accepted action on both, the same orders
    on_main, on_dr = Counter(orders(data / "mainsim.db")), Counter(orders(data / "dr.db"))
    assert on_main and max(on_main.values()) == 1 and max(on_dr.values()) == 1
    assert set(on_main) == set(on_dr)
    for coid in rep["dr_legs"]:
        assert on_main[coid] == on_dr[coid] == 1, coid  # sent once, to DR, as itself
    for coid in rep["journaled_legs"]:  # replayed to DR as its slices
        assert holds(on_dr, coid) >= 1 and holds(on_main, coid) == holds(on_dr, coid), coid
    assert rep["sites"]["orders"] == {"main": sum(on_main.values()), "dr": sum(on_dr.values())}

    # both mainsims are gone
    for name in ("mainsim", "dr"):
        pid = json.loads((data / f"{name}-ready.json").read_text())["pid"]
        assert not pid_alive(pid), name
    assert "DR site stopped" in r.stderr and "mainsim stopped" in r.stderr


def _db(path: Path, coids: list[str]) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE orders(num INTEGER PRIMARY KEY, order_id TEXT, client_order_id TEXT)")
    con.executemany(
        "INSERT INTO orders(order_id, client_order_id) VALUES(?, ?)",
        [(f"O{i}", c) for i, c in enumerate(coids)],
    )
    con.commit()
    con.close()
    return path


def test_the_site_check_finds_an_order_twice_one_missing_and_one_on_one_site_only(tmp_path):
    good = ["A-1", "X-000008-1", "X-000008-2", "SEED-1"]
    main = _db(tmp_path / "main.db", good)
    dr = _db(tmp_path / "dr.db", good)
    accepted = ["A-1", "X-000008"]  # one leg sent as itself, one journaled square-off (its slices)
    res = check_sites({"main": main, "dr": dr}, accepted)
    assert res["ok"] and res["orders"] == {"main": 4, "dr": 4} and res["accepted_checked"] == 2

    twice = _db(tmp_path / "twice.db", [*good, "A-1"])
    res = check_sites({"main": main, "dr": twice}, accepted)
    assert not res["ok"] and res["twice"] == {"main": [], "dr": ["A-1"]}

    res = check_sites({"main": main, "dr": dr}, [*accepted, "B-1"])
    assert not res["ok"] and res["missing"] == {"main": ["B-1"], "dr": ["B-1"]}

    only = _db(tmp_path / "only.db", [*good, "C-9"])
    res = check_sites({"main": main, "dr": only}, accepted)
    assert not res["ok"] and res["on_one_site_only"] == ["C-9"] and not any(res["missing"].values())

    # a slice is "{coid}-{digits}", nothing else: "X-000008-b" is not one, nor "X-0000081"
    assert holds(Counter(["X-000008-b", "X-0000081"]), "X-000008") == 0
    assert holds(Counter(["X-000008", "X-000008-1"]), "X-000008") == 2


def test_a_dr_report_passes_only_when_the_sites_agree(tmp_path):
    rep = DRDrillReport(user="dealer1", dr_url="http://127.0.0.1:9")
    rep.flat = rep.reconciled = True
    assert not rep.ok and rep.exit_code == ExitCode.UNEXPECTED  # not checked yet: not passed
    md = rep.markdown()
    assert "the sites' databases do not agree" in md and "not checked" in md
    rep.sites = {
        "ok": True,
        "orders": {"main": 3, "dr": 3},
        "accepted_checked": 2,
        "twice": {},
        "missing": {},
    }
    rep.sites_ok = True
    assert rep.ok and rep.exit_code == ExitCode.OK
    rep.step("DR", ok=False, detail="not seen within 30 s")
    assert not rep.ok and rep.failure == "DR: not seen within 30 s"
    jpath, mpath = rep.write(tmp_path)
    d = json.loads(jpath.read_text())
    assert d["dr_url"] == "http://127.0.0.1:9" and d["sites_ok"] and not d["ok"]
    assert "FAILED: DR: not seen within 30 s" in mpath.read_text()


def test_dr_without_drill_is_a_usage_error_and_starts_nothing(tmp_path):
    data = tmp_path / "d"
    r = lifeboat(["demo", "--dr", "--headless", "--dir", str(data)], demo_env(tmp_path), timeout=60)
    assert (
        r.returncode == ExitCode.USAGE
        and "--dr plays the DR drill" in r.stderr
        and "Traceback" not in r.stderr
    )
    assert not (data / "mainsim-ready.json").exists() and not (data / "dr-ready.json").exists()
