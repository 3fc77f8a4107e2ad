"""`lifeboat agent --metrics-port`: /metrics, /healthz and the Alertmanager webhook, served by
the real agent (a subprocess) against a real mainsim, with a real store.

What is checked is what an operations team acts on: the mode gauge follows the detector
(ONLINE, then BACKUP when main is killed -9, then back), the journal gauges move when a
dealer journals a square-off in BACKUP, the replay counters match the journal after main
returns, an alert makes the agent probe (SUSPECT, then the probe decides) and never
switches by itself, duplicates do nothing, and every alert is audited.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli_env import PASSWORD

TOKEN = "t0ken-for-the-test-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one scrape."""
    text = httpx.get(url + "/metrics", timeout=5).text
    out: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def total(samples: dict, name: str, **labels) -> float:
    """Sum over the samples of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def wait_until(fn, what: str, timeout: float = 20.0):
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
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def alert_payload(status: str, *, fingerprint: str = "f00d", system: str = "main", starts: str | None = None):
    starts = starts or "2026-11-30T09:15:00.000Z"
    alert = {
        "status": status,
        "labels": {"alertname": "MainSystemDown", "system": system, "severity": "critical"},
        "annotations": {"summary": "the main system is not answering"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-30T09:20:00.000Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }
    return {
        "version": "4",
        "groupKey": '{}:{system="main"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "lifeboat-agent",
        "groupLabels": {"system": system},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager:9093",
        "alerts": [alert],
    }


def audited_alerts(store_file: Path) -> list[dict]:
    with sqlite3.connect(store_file) as db:
        rows = db.execute(
            "SELECT payload FROM audit_log WHERE action = 'monitoring_alert' ORDER BY id"
        ).fetchall()
    return [json.loads(r[0]) for r in rows]


@pytest.fixture
def agent(sim, cli):
    """A logged-in console and its agent serving the monitoring port (token configured)."""
    cli.login().ok()
    token_file = cli.home / "alert-token"
    token_file.write_text(TOKEN + "\n")
    os.chmod(token_file, 0o600)
    (cli.home / "config.toml").write_text('[monitoring]\nalertmanager_token_file = "alert-token"\n')
    port = free_port()
    proc = cli.popen("agent", "--metrics-port", str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: (
                value(scrape(url), "lifeboat_mode", mode="ONLINE") == 1.0
                and value(scrape(url), "lifeboat_stream_connected") == 1.0
            ),
            "the agent ONLINE with its stream connected",
        )
        yield cli, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)
    # SIGTERM is a clean stop (its port closed with it)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else proc.returncode


def post(url: str, body, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url + "/alertmanager", content=content, headers=headers, timeout=5)


def test_metrics_and_health_while_online(agent):
    _, url = agent
    m = scrape(url)
    assert [k for k in m if k[0] == "lifeboat_build_info"], "build info is exported"
    assert total(m, "lifeboat_mode") == 1.0  # exactly one mode is current
    assert value(m, "lifeboat_journal_pending_entries") == 0.0
    assert value(m, "lifeboat_journal_entries", state="pending") == 0.0
    assert value(m, "lifeboat_held_entries") == 0.0
    assert 0 <= value(m, "lifeboat_mirror_staleness_seconds") < 60
    # the agent probes main about once a second while ONLINE
    wait_until(lambda: total(scrape(url), "lifeboat_probes_total", outcome="ok") >= 1, "a counted probe")
    # the agent's calls to main are timed by path template: no order or client id in any label
    endpoints = {
        dict(ls).get("endpoint") for (n, ls) in m if n.startswith("lifeboat_backend_request_duration")
    }
    assert endpoints - {None} and all(e.startswith("/") or e == "other" for e in endpoints - {None})
    for name, labels in m:
        for _, v in labels:
            assert not any(c in v for c in ("C100", "C200", "ORD-", "LB-")), (name, labels)
    h = httpx.get(url + "/healthz", timeout=5)
    assert h.status_code == 200 and h.headers["content-type"].startswith("application/health+json")
    body = h.json()
    assert body["mode"] == "ONLINE" and body["status"] in ("pass", "warn"), body
    assert body["status"] == "pass" or body["reasons"], body  # a warning always says why
    assert httpx.get(url + "/nothing", timeout=5).status_code == 404
    assert httpx.get(url + "/alertmanager", timeout=5).status_code == 405


def test_webhook_refuses_bad_token_and_bad_payloads(agent):
    cli, url = agent
    assert post(url, alert_payload("firing"), token=None).status_code == 401
    assert post(url, alert_payload("firing"), token="wrong-token-wrong-token").status_code == 401
    assert post(url, b"not json").status_code == 400
    v3 = alert_payload("firing") | {"version": "3"}
    r = post(url, v3)
    assert r.status_code == 400 and "version" in r.json()["error"], r.text
    hostile = alert_payload("firing")
    hostile["alerts"][0]["labels"]["alertname"] = "Main\x1b[2JDown"  # ESC would rewrite a terminal
    assert post(url, hostile).status_code == 400
    assert audited_alerts(cli.store_file) == []  # nothing refused reached the record
    m = scrape(url)
    assert total(m, "lifeboat_alerts_received_total") == 0


def test_alert_makes_the_agent_probe_and_never_switch_by_itself(agent):
    cli, url = agent
    r = post(url, alert_payload("firing"))
    assert r.status_code == 200 and r.json() == {"accepted": 1, "duplicates": 0, "ignored": 0}, r.text
    # SUSPECT for the alert, then the probe answers (main is up): ONLINE again
    wait_until(
        lambda: (
            total(scrape(url), "lifeboat_mode_changes_total", to_mode="ONLINE", cause="main_answers") >= 1
        ),
        "the probe's good answer bringing the console back",
    )
    m = scrape(url)
    assert total(m, "lifeboat_mode_changes_total", to_mode="SUSPECT", cause="alert") == 1
    assert total(m, "lifeboat_mode_changes_total", to_mode="BACKUP") == 0  # main answers: no switch
    assert value(m, "lifeboat_mode", mode="ONLINE") == 1.0
    # at-least-once delivery: the same alert again does nothing
    r = post(url, alert_payload("firing"))
    assert r.json() == {"accepted": 0, "duplicates": 1, "ignored": 0}
    # resolved: recorded, never switches anything
    assert post(url, alert_payload("resolved")).json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
    # not about the main system: ignored
    other = alert_payload("firing", fingerprint="beef", system="mirror")
    assert post(url, other).json() == {"accepted": 0, "duplicates": 0, "ignored": 1}
    m = scrape(url)
    assert total(m, "lifeboat_mode_changes_total", cause="alert") == 1
    assert value(m, "lifeboat_alerts_received_total", status="firing", outcome="accepted") == 1
    assert value(m, "lifeboat_alerts_received_total", status="firing", outcome="duplicate") == 1
    assert value(m, "lifeboat_alerts_received_total", status="resolved", outcome="accepted") == 1
    assert value(m, "lifeboat_alerts_received_total", status="firing", outcome="ignored") == 1
    audited = audited_alerts(cli.store_file)
    assert [(a["status"], a["outcome"], a["action"]) for a in audited] == [
        ("firing", "accepted", "probe"),
        ("firing", "duplicate", "none"),
        ("resolved", "accepted", "none"),
        ("firing", "ignored", "none"),
    ]
    assert all(a["alertname"] == "MainSystemDown" for a in audited)


def test_main_killed_backup_journal_then_replay_counted(agent, sim):
    cli, url = agent
    client = cli("positions", "--local", "--json").ok().json()[0]["client_id"]
    sim.kill()
    wait_until(lambda: value(scrape(url), "lifeboat_mode", mode="BACKUP") == 1.0, "BACKUP after kill -9")
    m = scrape(url)
    assert total(m, "lifeboat_mode_changes_total", to_mode="BACKUP") == 1
    assert value(m, "lifeboat_failover_detection_seconds_count") == 1
    h = httpx.get(url + "/healthz", timeout=5)
    # the console works as designed in BACKUP (it journals): warn, not fail, and it says why
    assert h.status_code == 200 and h.json()["status"] == "warn" and "BACKUP" in h.json()["reasons"][0]
    r = cli(
        "--password-stdin", "squareoff", "--client", client, "--yes", "--json", stdin=PASSWORD + "\n"
    ).ok()
    out = r.json()
    assert out["mode"] == "BACKUP" and out["outcome"] == "journaled" and out["legs"], out
    with sqlite3.connect(cli.store_file) as db:
        journaled = db.execute("SELECT count(*) FROM journal").fetchone()[0]
    assert journaled >= len(out["legs"])
    wrong = cli("--password-stdin", "squareoff", "--client", client, "--yes", "--json", stdin="wrong\n")
    assert wrong.returncode == 3, wrong.stderr
    m = scrape(url)
    assert value(m, "lifeboat_journal_pending_entries") == journaled
    # the offline logins those commands made, from the audit log: one good, one refused
    assert value(m, "lifeboat_offline_logins_total", outcome="ok") == 1
    assert value(m, "lifeboat_offline_logins_total", outcome="refused") == 1
    assert value(m, "lifeboat_journal_entries", state="pending") == journaled
    sim.start()  # the same port: main is back
    wait_until(
        lambda: (
            value(scrape(url), "lifeboat_journal_pending_entries") == 0
            and value(scrape(url), "lifeboat_mode", mode="ONLINE") == 1.0
        ),
        "the journal replayed and the console ONLINE",
        timeout=40,
    )
    m = scrape(url)
    applied = value(m, "lifeboat_journal_entries", state="applied") or 0
    moot = value(m, "lifeboat_journal_entries", state="moot") or 0
    assert applied + moot == journaled
    # the replay counters match the journal, state for state
    assert total(m, "lifeboat_replay_entries_total") == journaled
    assert (value(m, "lifeboat_replay_entries_total", outcome="applied") or 0) == applied
    assert value(m, "lifeboat_reconciliation_mismatches") == 0
    assert total(m, "lifeboat_mode_changes_total", from_mode="BACKUP", to_mode="RECOVERING") == 1


def test_port_in_use_is_a_usage_error(sim, cli):
    cli.login().ok()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli("agent", "--metrics-port", str(port))
    assert r.returncode == 2 and f"127.0.0.1:{port}" in r.stderr, r.stderr


def test_token_file_open_to_others_is_refused(sim, cli):
    cli.login().ok()
    token_file = cli.home / "alert-token"
    token_file.write_text(TOKEN)
    os.chmod(token_file, 0o644)
    (cli.home / "config.toml").write_text('[monitoring]\nalertmanager_token_file = "alert-token"\n')
    r = cli("agent", "--metrics-port", str(free_port()))
    assert r.returncode == 2 and "0644" in r.stderr and "alert-token" in r.stderr, r.stderr
