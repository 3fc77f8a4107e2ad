"""One injected clock: mainsim's trading date and contract months, and every date the console
computes, come from it (contract/clock.py, mainsim/tradingday.py), never from the real date."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import httpx
import pytest

from contract import clock
from tests import testclock

ROOT = Path(__file__).resolve().parents[2]
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]

pytestmark = pytest.mark.dates


def _futures(url: str) -> set[str]:
    token = httpx.post(f"{url}/api/v1/session", json={"user_id": "dealer1", "password": "demo"}).json()[
        "access_token"
    ]
    rows = httpx.get(f"{url}/api/v1/instruments", headers={"Authorization": f"Bearer {token}"}).json()
    return {r["symbol"] for r in rows if r["symbol"].startswith("NIFTY") and r["symbol"].endswith("FUT")}


def test_the_suite_runs_at_its_own_date_not_the_real_one():
    assert clock.today_ist() == testclock.start().astimezone(clock.IST).date()


def test_mainsim_trading_date_and_contract_month_follow_the_injected_clock(sim):
    day = testclock.start().astimezone(clock.IST).date()
    health = httpx.get(f"{sim.url}/api/v1/health").json()
    assert health["trading_date"] == day.isoformat()
    assert f"NIFTY{day:%y}{MONTHS[day.month - 1]}FUT" in _futures(sim.url)


def test_sim_trading_date_flag_sets_the_day_and_the_contract_month(sim_factory):
    sim = sim_factory(extra_args=["--trading-date", "2027-03-01"])
    assert httpx.get(f"{sim.url}/api/v1/health").json()["trading_date"] == "2027-03-01"
    assert "NIFTY27MARFUT" in _futures(sim.url)


def test_lifeboat_sim_takes_trading_date_and_refuses_a_bad_one(tmp_path):
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "console.cli",
            "sim",
            "--trading-date",
            "2027-02-30",
            "--port",
            "0",
            "--db",
            str(tmp_path / "m.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert bad.returncode == 2 and "--trading-date" in bad.stderr
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "console.cli",
            "sim",
            "--trading-date",
            "2027-03-01",
            "--port",
            "0",
            "--db",
            str(tmp_path / "m.db"),
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        import time

        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        url = json.loads(ready.read_text())["url"]
        assert date.fromisoformat(httpx.get(f"{url}/api/v1/health").json()["trading_date"]) == date(
            2027, 3, 1
        )
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_token_is_judged_by_mainsims_clock_not_the_real_one(sim):
    """mainsim's JWTs carry iat/exp from the injected clock; PyJWT's own check reads the real
    clock and would call a token of the suite's 2026-01-05 expired (or one months ahead 'not
    yet valid')."""
    token = httpx.post(f"{sim.url}/api/v1/session", json={"user_id": "dealer1", "password": "demo"}).json()[
        "access_token"
    ]
    r = httpx.get(f"{sim.url}/api/v1/clients", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200


PRODUCT = ["console", "backend_client", "localstore", "sync", "mainsim"]
READS_THE_REAL_CLOCK = re.compile(r"datetime\.now\(|datetime\.utcnow\(|date\.today\(|time\.time\(\)")
THE_CLOCKS = {Path("contract/clock.py"), Path("mainsim/tradingday.py")}


def test_no_product_module_reads_the_real_date_but_the_clocks():
    found = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel in THE_CLOCKS:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if READS_THE_REAL_CLOCK.search(line):
                    found.append(f"{rel}:{n}: {line.strip()}")
    assert found == []
