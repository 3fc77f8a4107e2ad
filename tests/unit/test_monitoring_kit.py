"""The monitoring kit (deploy/monitoring/) checked by the real tools: promtool checks the
Prometheus config and the alert rules and runs the rules' unit tests, amtool checks the
Alertmanager config and its routes; the Grafana dashboard is valid JSON; every metric name
the dashboard and the rules query is one the agent or mainsim serves (the fixed list below,
the one sync/metrics.py and mainsim/metrics.py build).

The tools are not Python packages: `sh deploy/monitoring/install-tools.sh` installs them
(Debian's prometheus and prometheus-alertmanager) and CI runs it before the tests. A missing
tool fails these tests, never skips them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "deploy" / "monitoring"
INSTALL = "sh deploy/monitoring/install-tools.sh"

# the agent's metrics (lifeboat agent --metrics-port), as Prometheus stores them
AGENT_COUNTERS = {
    "lifeboat_mode_changes_total",
    "lifeboat_probes_total",
    "lifeboat_replay_entries_total",
    "lifeboat_offline_logins_total",
    "lifeboat_alerts_received_total",
}
AGENT_GAUGES = {
    "lifeboat_build_info",
    "lifeboat_mode",
    "lifeboat_stream_connected",
    "lifeboat_stream_last_message_age_seconds",
    "lifeboat_journal_entries",
    "lifeboat_journal_pending_entries",
    "lifeboat_held_entries",
    "lifeboat_reconciliation_mismatches",
    "lifeboat_mirror_staleness_seconds",
}
AGENT_HISTOGRAMS = {"lifeboat_failover_detection_seconds", "lifeboat_backend_request_duration_seconds"}
# mainsim's /metrics
MAINSIM = {
    "mainsim_http_requests_total",
    "mainsim_orders_total",
    "mainsim_stream_clients",
    "mainsim_build_info",
    "mainsim_site_primary",
    "mainsim_site_epoch",
    "mainsim_replication_lag_seconds",
    "mainsim_replication_applied_lsn",
}
MAINSIM_HISTOGRAMS = {"mainsim_http_request_duration_seconds"}
# made by Prometheus itself for every target
BUILTIN = {"up"}


def _series(histograms: set[str]) -> set[str]:
    return {h + suffix for h in histograms for suffix in ("_bucket", "_sum", "_count")}


KNOWN = (
    AGENT_COUNTERS
    | AGENT_GAUGES
    | _series(AGENT_HISTOGRAMS)
    | MAINSIM
    | _series(MAINSIM_HISTOGRAMS)
    | BUILTIN
)

MODES = ("ONLINE", "SUSPECT", "BACKUP", "RECOVERING")
ALERTS = {
    "MainSystemDown",
    "LifeboatAgentDown",
    "LifeboatStreamStale",
    "LifeboatJournalGrowingInBackup",
    "LifeboatReplayHeld",
    "LifeboatMirrorStale",
    "TwoPrimarySites",
    "DRStandbyLagging",
}

# ---------------------------------------------------------------------------- helpers

_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana's $variables taken out): what is
    left once strings, label matchers, ranges and grouping clauses are gone, less keywords,
    functions (a name before '(') and the units of durations."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\$\{\w+\}|\$\w+", "", e)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = _GROUPING.sub(" ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        if word.lower() in _KEYWORDS or re.match(r"\s*\(", e[m.end() :]):
            continue
        if m.start() and (e[m.start() - 1].isdigit() or e[m.start() - 1] == "."):
            continue  # 5m, 1e3
        names.add(word)
    return names


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: run `{INSTALL}` (CI runs it before the tests)", pytrace=False)
    return path


def _run(*args: str) -> str:
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}:\n{out}"
    return out


def _yaml(name: str) -> dict:
    return yaml.safe_load((KIT / name).read_text(encoding="utf-8"))


def _rules() -> dict[str, dict]:
    return {r["alert"]: r for g in _yaml("rules.yml")["groups"] for r in g["rules"]}


def _dashboard() -> dict:
    return json.loads((KIT / "grafana-dashboard.json").read_text(encoding="utf-8"))


def _panels(panels: list[dict]):
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))


def _dashboard_queries(dash: dict) -> list[str]:
    queries = [t["expr"] for p in _panels(dash["panels"]) for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"label_values\((.+),\s*\w+\)", q)
            assert m, f"variable {var['name']}: {q}"
            queries.append(m.group(1))
    return queries


def _as_promql(query: str) -> str:
    """A dashboard query with Grafana's variables given values, as Prometheus would get it."""
    for var, value in (("$__range", "1h"), ("$__rate_interval", "1m"), ("$job", ".*"), ("$instance", ".*")):
        query = query.replace(var, value)
    assert "$" not in query, query
    return query


# ---------------------------------------------------------------------------- the name check itself


def test_the_name_check_finds_the_names_a_query_selects():
    q = 'histogram_quantile(0.99, sum by (le, endpoint) (rate(foo_bucket{site="main", a=~"$x"}[5m])))'
    assert metric_names(q) == {"foo_bucket"}
    assert metric_names('a_total offset 5m and on(job, instance) (b{mode="BACKUP"} == 1) unless c > 1e3') == {
        "a_total",
        "b",
        "c",
    }
    assert metric_names("sum(x) by (instance) or y * 2") == {"x", "y"}


# ---------------------------------------------------------------------------- tools


def test_install_tools_does_nothing_when_the_tools_are_there():
    for name in ("prometheus", "promtool", "alertmanager", "amtool"):
        _tool(name)
    proc = subprocess.run(["sh", str(KIT / "install-tools.sh")], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


# ---------------------------------------------------------------------------- Prometheus


def test_prometheus_config_is_valid_and_loads_the_rules():
    out = _run(_tool("promtool"), "check", "config", str(KIT / "prometheus.yml"))
    assert "SUCCESS: 1 rule files found" in out and f"SUCCESS: {len(ALERTS)} rules found" in out, out


def test_prometheus_scrapes_the_agent_and_main_and_alerts_to_alertmanager():
    cfg = _yaml("prometheus.yml")
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert set(jobs) == {"lifeboat-agent", "mainsim", "mainsim-dr"}
    assert jobs["lifeboat-agent"]["static_configs"][0]["targets"] == ["127.0.0.1:9464"]
    (main,) = jobs["mainsim"]["static_configs"]
    assert main["labels"] == {"system": "main"}
    # the agent's own series never carry system="main": no agent alert may reach the webhook
    assert all("system" not in sc.get("labels", {}) for sc in jobs["lifeboat-agent"]["static_configs"])
    # nor the DR site's: the DR site down is not main down (MainSystemDown is job="mainsim" only)
    assert all("system" not in sc.get("labels", {}) for sc in jobs["mainsim-dr"]["static_configs"])
    assert cfg["rule_files"] == ["rules.yml"]
    assert cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]


def test_rules_are_valid():
    out = _run(_tool("promtool"), "check", "rules", str(KIT / "rules.yml"))
    assert f"SUCCESS: {len(ALERTS)} rules found" in out, out


def test_rules_unit_tests_pass():
    out = _run(_tool("promtool"), "test", "rules", str(KIT / "rules_test.yml"))
    assert "SUCCESS" in out, out


def test_every_alert_is_tested_firing_and_not_firing():
    rules = _rules()
    assert set(rules) == ALERTS
    cases = [c for t in _yaml("rules_test.yml")["tests"] for c in t["alert_rule_test"]]
    for alert in ALERTS:
        mine = [c for c in cases if c["alertname"] == alert]
        assert any(c.get("exp_alerts") for c in mine), f"{alert}: never shown firing"
        assert any(not c.get("exp_alerts") for c in mine), f"{alert}: never shown not firing"


def test_only_the_main_system_alert_is_labelled_system_main_and_every_alert_says_what_to_run():
    rules = _rules()
    assert {a for a, r in rules.items() if r["labels"].get("system") == "main"} == {"MainSystemDown"}
    assert rules["MainSystemDown"]["expr"].strip() == 'up{job="mainsim"} == 0'
    assert rules["MainSystemDown"]["labels"] == {"system": "main", "severity": "critical"}
    for alert, rule in rules.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, alert
        assert set(rule["annotations"]) >= {"summary", "description"}, alert
        assert "`lifeboat " in rule["annotations"]["description"], f"{alert}: no command for support to run"


def test_every_metric_a_rule_uses_is_served():
    used = set()
    for alert, rule in _rules().items():
        names = metric_names(rule["expr"])
        assert names, alert
        assert names <= KNOWN, f"{alert}: unknown metric(s) {sorted(names - KNOWN)}"
        used |= names
    assert used >= {
        "up",
        "lifeboat_stream_last_message_age_seconds",
        "lifeboat_mode",
        "lifeboat_journal_pending_entries",
        "lifeboat_held_entries",
        "lifeboat_mirror_staleness_seconds",
    }


# ---------------------------------------------------------------------------- Alertmanager


def test_alertmanager_config_is_valid():
    out = _run(_tool("amtool"), "check-config", str(KIT / "alertmanager.yml"))
    assert "SUCCESS" in out, out


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=MainSystemDown", "system=main", "severity=critical"], "lifeboat-agent"),
        (["system=main"], "lifeboat-agent"),
        (["alertname=LifeboatReplayHeld", "severity=warning"], "null"),
        (["alertname=LifeboatAgentDown", "severity=critical"], "null"),
        (["alertname=Other", "system=other"], "null"),
    ],
)
def test_alertmanager_routes_main_system_alerts_to_the_agent_only(labels, receiver):
    out = _run(
        _tool("amtool"),
        "config",
        "routes",
        "test",
        "--config.file",
        str(KIT / "alertmanager.yml"),
        f"--verify.receivers={receiver}",
        *labels,
    )
    assert out.splitlines()[0] == receiver, out


def test_the_agent_receiver_is_its_webhook_with_the_token_file():
    cfg = _yaml("alertmanager.yml")
    (agent,) = [r for r in cfg["receivers"] if r["name"] == "lifeboat-agent"]
    (hook,) = agent["webhook_configs"]
    assert hook["url"] == "http://127.0.0.1:9464/alertmanager"
    assert hook["send_resolved"] is True
    assert hook["http_config"]["authorization"]["credentials_file"] == "/etc/lifeboat/alertmanager-token"
    assert hook["http_config"]["authorization"].get("type", "Bearer") == "Bearer"
    (null,) = [r for r in cfg["receivers"] if r["name"] == "null"]
    assert set(null) == {"name"}


# ---------------------------------------------------------------------------- Grafana


def test_the_dashboard_is_json_with_the_datasource_as_a_variable():
    dash = _dashboard()
    (ds,) = [v for v in dash["templating"]["list"] if v["name"] == "datasource"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    for p in _panels(dash["panels"]):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
    ids = [p["id"] for p in _panels(dash["panels"])]
    assert len(ids) == len(set(ids))


def test_every_metric_the_dashboard_queries_is_served_and_the_desk_sees_what_it_needs():
    used = set()
    for q in _dashboard_queries(_dashboard()):
        names = metric_names(q)
        assert names, q
        assert names <= KNOWN, f"unknown metric(s) {sorted(names - KNOWN)} in {q}"
        used |= names
    # mode timeline, mode changes, failover detection, request p99, stream age, journal pending and
    # by state, replay outcomes, mismatches, mirror staleness, offline logins
    assert used >= {
        "lifeboat_mode",
        "lifeboat_mode_changes_total",
        "lifeboat_failover_detection_seconds_bucket",
        "lifeboat_backend_request_duration_seconds_bucket",
        "lifeboat_stream_last_message_age_seconds",
        "lifeboat_journal_pending_entries",
        "lifeboat_journal_entries",
        "lifeboat_replay_entries_total",
        "lifeboat_reconciliation_mismatches",
        "lifeboat_mirror_staleness_seconds",
        "lifeboat_offline_logins_total",
        # the main and DR sites: role, epoch, replication lag
        "mainsim_site_primary",
        "mainsim_site_epoch",
        "mainsim_replication_lag_seconds",
    }
    mode_query = next(q for q in _dashboard_queries(_dashboard()) if "lifeboat_mode{" in q)
    assert all(f'mode="{m}"' in mode_query for m in MODES)


def test_every_dashboard_query_is_promql_prometheus_accepts(tmp_path):
    queries = _dashboard_queries(_dashboard())
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard_query_{i}", "expr": _as_promql(q)} for i, q in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(json.dumps(rules), encoding="utf-8")  # JSON is YAML
    out = _run(_tool("promtool"), "check", "rules", str(path))
    assert f"SUCCESS: {len(queries)} rules found" in out, out
