"""The Alertmanager webhook apart from HTTP (sync.monitoring.Webhook), with a real store.

The payloads in tests/unit/data are recorded from Debian's Alertmanager 0.25 (the one CI
installs): `amtool alert add MainSystemDown system=main ...` routed by a webhook receiver with
`send_resolved: true` to a capturing server, then the same alert ended (the resolved one).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localstore.db import open_store
from sync.metrics import Metrics
from sync.monitoring import MAX_BODY_BYTES, Webhook

DATA = Path(__file__).parent / "data"
FIRING = (DATA / "alertmanager-v4-firing.json").read_bytes()
RESOLVED = (DATA / "alertmanager-v4-resolved.json").read_bytes()
TOKEN = "t0ken-for-the-test-0123456789"
AUTH = f"Bearer {TOKEN}"


@pytest.fixture
def hook(tmp_path):
    store = open_store(tmp_path / "lifeboat.db")
    probes: list[str] = []
    metrics = Metrics(store)
    webhook = Webhook(store, TOKEN, on_main_alert=probes.append, mode=lambda: "ONLINE", metrics=metrics)
    yield webhook, probes, store, metrics
    store.close()


def audited(store) -> list[dict]:
    from sqlalchemy import text

    with store.read_core() as conn:
        rows = conn.execute(
            text("SELECT payload FROM audit_log WHERE action = 'monitoring_alert' ORDER BY id")
        )
        return [json.loads(r[0]) for r in rows]


def counter(metrics: Metrics, **labels) -> float:
    return metrics.registry.get_sample_value("lifeboat_alerts_received_total", labels) or 0.0


def test_recorded_firing_then_duplicate_then_resolved(hook):
    webhook, probes, store, metrics = hook
    first = webhook.receive(AUTH, FIRING)
    assert (first.status, first.body) == (200, {"accepted": 1, "duplicates": 0, "ignored": 0})
    assert probes == ["MainSystemDown"]  # one probe asked for
    again = webhook.receive(AUTH, FIRING)  # Alertmanager's repeat (at least once delivery)
    assert again.body == {"accepted": 0, "duplicates": 1, "ignored": 0} and probes == ["MainSystemDown"]
    resolved = webhook.receive(AUTH, RESOLVED)
    assert resolved.body == {"accepted": 1, "duplicates": 0, "ignored": 0}
    assert probes == ["MainSystemDown"]  # a resolved alert never switches (nor probes) anything
    rows = audited(store)
    assert [(r["status"], r["outcome"], r["action"]) for r in rows] == [
        ("firing", "accepted", "probe"),
        ("firing", "duplicate", "none"),
        ("resolved", "accepted", "none"),
    ]
    assert rows[0]["fingerprint"] == "3a8ad421f0c5161e" and rows[0]["labels"]["system"] == "main"
    assert rows[0]["starts_at"].startswith("2026-12-03T07:00:00")
    assert counter(metrics, status="firing", outcome="accepted") == 1
    assert counter(metrics, status="firing", outcome="duplicate") == 1
    assert counter(metrics, status="resolved", outcome="accepted") == 1


def test_bad_or_missing_token_is_refused_and_nothing_is_recorded(hook):
    webhook, probes, store, _ = hook
    for auth in (None, "", TOKEN, "Bearer nope", f"Basic {TOKEN}", AUTH + "x"):
        assert webhook.receive(auth, FIRING).status == 401, auth
    assert probes == [] and audited(store) == []


def test_no_token_configured_refuses_everything(tmp_path):
    store = open_store(tmp_path / "lifeboat.db")
    try:
        webhook = Webhook(store, None, on_main_alert=lambda n: None, mode=lambda: "ONLINE")
        answer = webhook.receive(AUTH, FIRING)
        assert answer.status == 503 and "alertmanager_token_file" in answer.body["error"]
    finally:
        store.close()


@pytest.mark.parametrize(
    "change, where",
    [
        (lambda p: p.update(version="3"), "version"),
        (lambda p: p["alerts"][0].update(status="pending"), "status"),
        (lambda p: p["alerts"][0].update(startsAt="2026-12-03T07:00:00"), "startsAt"),  # no zone
        (lambda p: p["alerts"][0]["labels"].update(alertname="Main\u202eDown"), "labels"),  # bidi override
        (lambda p: p["alerts"][0].pop("fingerprint"), "fingerprint"),
        (lambda p: p.update(alerts=[p["alerts"][0]] * 1001), "alerts"),
    ],
)
def test_malformed_notifications_are_refused_whole(hook, change, where):
    webhook, probes, store, _ = hook
    payload = json.loads(FIRING)
    change(payload)
    answer = webhook.receive(AUTH, json.dumps(payload).encode())
    assert answer.status == 400 and where in answer.body["error"], answer.body
    assert probes == [] and audited(store) == []


def test_oversized_and_non_json_bodies(hook):
    webhook, _, store, _ = hook
    assert webhook.receive(AUTH, b"x" * (MAX_BODY_BYTES + 1)).status == 413
    assert webhook.receive(AUTH, b"{not json").status == 400
    assert audited(store) == []


def test_an_alert_not_about_main_is_recorded_and_ignored(hook):
    webhook, probes, store, _ = hook
    payload = json.loads(FIRING)
    payload["alerts"][0]["labels"]["system"] = "mirror"
    assert webhook.receive(AUTH, json.dumps(payload).encode()).body == {
        "accepted": 0,
        "duplicates": 0,
        "ignored": 1,
    }
    assert probes == [] and audited(store)[0]["outcome"] == "ignored"


def test_a_store_that_cannot_record_answers_503_so_alertmanager_sends_again(hook, tmp_path):
    webhook, probes, store, _ = hook
    store.close()
    (tmp_path / "lifeboat.db").unlink()
    (tmp_path / "lifeboat.db").mkdir()  # the store's file is gone: nothing can be written
    answer = webhook.receive(AUTH, FIRING)
    assert answer.status == 503 and probes == []
