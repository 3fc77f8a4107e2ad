"""The monitoring kit with the real programs: Prometheus scraping mainsim and the agent,
Alertmanager routing the kit's main-down alert to the agent's webhook.

Debian's `prometheus` and `prometheus-alertmanager` run here as they would at a broker
(deploy/monitoring/install-tools.sh installs them; CI runs it first), with the kit's own
files, only their intervals shortened and their addresses pointed at this test's ports.
mainsim is killed -9; Prometheus must then show the agent in BACKUP and the journal gauge
moving, the main-down alert must reach the agent's webhook (audited; it asks for a probe),
and after main returns the replay counters Prometheus scraped must match the journal.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.cli_env import PASSWORD
from tests.integration.test_agent_monitoring import TOKEN, audited_alerts, free_port, scrape, value
from tests.simproc import track

KIT = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"

pytestmark = pytest.mark.timeout(180)


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(f"prometheus-{name}")
    if path is None:
        pytest.fail(f"{name} is not installed: run `sh deploy/monitoring/install-tools.sh` (CI does)")
    return path


def _kit_configs(
    tmp: Path, *, agent_port: int, main_port: int, am_port: int, token_file: Path
) -> tuple[Path, Path]:
    """The kit's prometheus.yml, rules.yml and alertmanager.yml, with this test's ports and
    short intervals (everything else as shipped)."""
    prom = yaml.safe_load((KIT / "prometheus.yml").read_text())
    prom["global"].update(scrape_interval="500ms", scrape_timeout="400ms", evaluation_interval="500ms")
    prom["rule_files"] = [str(tmp / "rules.yml")]
    prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{am_port}"]
    for job in prom["scrape_configs"]:
        port = agent_port if job["job_name"] == "lifeboat-agent" else main_port
        job["static_configs"][0]["targets"] = [f"127.0.0.1:{port}"]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(prom))
    rules = yaml.safe_load((KIT / "rules.yml").read_text())
    for group in rules["groups"]:
        group["interval"] = "500ms"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    (tmp / "rules.yml").write_text(yaml.safe_dump(rules))
    am = yaml.safe_load((KIT / "alertmanager.yml").read_text())
    for route in [am["route"], *am["route"].get("routes", [])]:
        route.update(group_wait="500ms", group_interval="1s")
    for receiver in am["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"http://127.0.0.1:{agent_port}/alertmanager"
            hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(am))
    return tmp / "prometheus.yml", tmp / "alertmanager.yml"


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return track(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))


def _query(prom_url: str, expr: str) -> list[dict]:
    r = httpx.get(prom_url + "/api/v1/query", params={"query": expr}, timeout=5)
    r.raise_for_status()
    return r.json()["data"]["result"]


def _scalar(prom_url: str, expr: str) -> float | None:
    result = _query(prom_url, expr)
    return float(result[0]["value"][1]) if result else None


def _wait(fn, what: str, timeout: float = 30.0, logs: tuple[Path, ...] = ()):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except httpx.HTTPError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    tails = "\n".join(f"--- {p.name}:\n{p.read_text()[-1500:]}" for p in logs if p.exists())
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n{tails}")


def test_prometheus_and_alertmanager_see_the_outage_and_the_recovery(sim, cli, tmp_path):
    prometheus, alertmanager = _tool("prometheus"), _tool("alertmanager")
    cli.login().ok()
    token_file = tmp_path / "alert-token"
    token_file.write_text(TOKEN + "\n")
    os.chmod(token_file, 0o600)
    (cli.home / "config.toml").write_text(f'[monitoring]\nalertmanager_token_file = "{token_file}"\n')
    agent_port, am_port, prom_port = free_port(), free_port(), free_port()
    prom_cfg, am_cfg = _kit_configs(
        tmp_path, agent_port=agent_port, main_port=sim.port, am_port=am_port, token_file=token_file
    )
    agent_url, prom_url = f"http://127.0.0.1:{agent_port}", f"http://127.0.0.1:{prom_port}"
    agent = cli.popen("agent", "--metrics-port", str(agent_port))
    logs = (tmp_path / "prometheus.log", tmp_path / "alertmanager.log")
    am = _start(
        [
            alertmanager,
            f"--config.file={am_cfg}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ],
        logs[1],
    )
    prom = _start(
        [
            prometheus,
            f"--config.file={prom_cfg}",
            f"--storage.tsdb.path={tmp_path / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        logs[0],
    )
    try:
        _wait(lambda: _scalar(prom_url, 'up{job="mainsim"}') == 1.0, "Prometheus scraping main", logs=logs)
        _wait(
            lambda: _scalar(prom_url, 'lifeboat_mode{job="lifeboat-agent",mode="ONLINE"}') == 1.0,
            "Prometheus seeing the agent ONLINE",
            logs=logs,
        )
        client = cli("positions", "--local", "--json").ok().json()[0]["client_id"]

        sim.kill()
        _wait(
            lambda: _scalar(prom_url, 'lifeboat_mode{mode="BACKUP"}') == 1.0,
            "Prometheus seeing the agent in BACKUP",
            logs=logs,
        )
        r = cli("--password-stdin", "squareoff", "--client", client, "--yes", "--json", stdin=PASSWORD + "\n")
        assert r.ok().json()["outcome"] == "journaled"
        with sqlite3.connect(cli.store_file) as db:
            journaled = db.execute("SELECT count(*) FROM journal").fetchone()[0]
        # the journal gauge moves, as Prometheus scraped it
        _wait(
            lambda: _scalar(prom_url, "lifeboat_journal_pending_entries") == journaled,
            "the journal gauge in Prometheus",
            logs=logs,
        )
        # the kit's main-down alert fires, Alertmanager routes it to the agent's webhook
        _wait(
            lambda: any(
                a["alertname"] == "MainSystemDown" and a["status"] == "firing"
                for a in audited_alerts(cli.store_file)
            ),
            "MainSystemDown at the agent's webhook",
            timeout=40,
            logs=logs,
        )
        firing = [a for a in audited_alerts(cli.store_file) if a["status"] == "firing"]
        assert firing[0]["outcome"] == "accepted" and firing[0]["action"] == "probe", firing
        assert firing[0]["labels"]["system"] == "main"
        assert all(a["outcome"] != "accepted" for a in firing[1:]), firing  # repeats are duplicates
        # the alert did not switch anything: the agent was BACKUP on its own evidence already
        m = scrape(agent_url)
        assert value(m, "lifeboat_mode", mode="BACKUP") == 1.0
        assert (
            sum(
                v
                for (n, ls), v in m.items()
                if n == "lifeboat_mode_changes_total" and ("cause", "alert") in ls
            )
            == 0
        )

        sim.start()  # main back, same port
        _wait(
            lambda: (
                _scalar(prom_url, "lifeboat_journal_pending_entries") == 0
                and _scalar(prom_url, 'lifeboat_mode{mode="ONLINE"}') == 1.0
            ),
            "the replay and ONLINE, in Prometheus",
            timeout=60,
            logs=logs,
        )
        replayed = _wait(
            lambda: _scalar(prom_url, "sum(lifeboat_replay_entries_total)"), "the replay counters", logs=logs
        )
        with sqlite3.connect(cli.store_file) as db:
            states = dict(db.execute("SELECT state, count(*) FROM journal GROUP BY state").fetchall())
        assert replayed == journaled == sum(states.values())
        for state, n in states.items():
            assert _scalar(prom_url, f'lifeboat_replay_entries_total{{outcome="{state}"}}') == n, state
        # the alert resolves: recorded, nothing switched by it
        _wait(
            lambda: any(a["status"] == "resolved" for a in audited_alerts(cli.store_file)),
            "the resolved notification",
            timeout=40,
            logs=logs,
        )
    finally:
        for p in (prom, am, agent):
            if p.poll() is None:
                p.terminate()
        for p in (prom, am, agent):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
