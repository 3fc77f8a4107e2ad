"""backend_client.sites.choose: where actions go, from what the sites say of themselves (role,
epoch) and the highest epoch this console has seen.  Properties over every combination, and
the health reply's DR fields as the probe reads them."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend_client.detector import ProbeResult, _site_fields
from backend_client.sites import DR, MAIN, Site, choose


def site(name: str, kind: str, role: str | None = None, epoch: int | None = None) -> Site:
    ok = kind == "ok"
    return Site(
        name,
        f"http://{name}",
        ProbeResult(ok, kind, 1.0 if role else None, kind, date(2026, 1, 5), role, epoch),
    )


answers = st.one_of(
    st.tuples(st.just("refused"), st.none(), st.none()),
    st.tuples(st.just("ok"), st.just("primary"), st.integers(0, 5)),
    st.tuples(st.just("standby"), st.just("standby"), st.integers(0, 5)),
)


@given(answers, answers, st.integers(0, 6))
def test_choose_sends_only_to_a_lone_primary_at_the_highest_epoch(m, d, seen):
    sites = (site(MAIN, *m), site(DR, *d))
    choice = choose(sites, seen)
    primaries = [s for s in sites if s.probe.role == "primary"]
    epochs = [s.probe.epoch for s in sites if s.probe.epoch is not None]
    assert choice.highest_epoch == max([seen, *epochs])
    assert choice.split_brain == (len(primaries) == 2)
    if len(primaries) == 1 and (primaries[0].probe.epoch or 0) >= choice.highest_epoch:
        assert choice.active is primaries[0]
        assert choice.mode == ("ONLINE" if primaries[0].name == MAIN else "DR")
    else:
        assert choice.active is None and choice.mode is None
    if choice.active is None:
        assert choice.reason  # a person is told why nothing is sent
    assert (choice.fenced is not None) == (
        len(primaries) == 1 and (primaries[0].probe.epoch or 0) < choice.highest_epoch
    )


def test_an_old_primary_back_at_a_lower_epoch_is_fenced_off():
    choice = choose((site(MAIN, "ok", "primary", 1), site(DR, "refused")), highest_seen=2)
    assert choice.active is None and choice.fenced is not None and choice.fenced.name == MAIN
    assert "fenced" in choice.reason and "epoch 2" in choice.reason


def test_the_promoted_dr_site_takes_the_actions_while_main_is_a_standby():
    choice = choose((site(MAIN, "standby", "standby", 1), site(DR, "ok", "primary", 1)), highest_seen=0)
    assert choice.mode == "DR" and choice.highest_epoch == 1


@pytest.mark.parametrize(
    "body, fields",
    [
        ({}, ("primary", 0, None, None)),
        (
            {"role": "standby", "epoch": 3, "following": "http://m", "replication_lag_s": 0.25},
            ("standby", 3, "http://m", 0.25),
        ),
    ],
)
def test_health_dr_fields_are_read(body, fields):
    assert _site_fields(body) == fields


@pytest.mark.parametrize(
    "body",
    [
        {"role": "leader"},
        {"epoch": -1},
        {"epoch": "2"},
        {"epoch": True},
        {"epoch": 2**60},
        {"following": 5},
        {"replication_lag_s": -1},
        {"replication_lag_s": "1"},
    ],
)
def test_a_malformed_dr_field_is_refused(body):
    with pytest.raises((ValueError, TypeError)):
        _site_fields(body)


# ---------------------------------------------------------------- the detector's side of the DR tier

OK_PROBE = ProbeResult(True, "ok", 1.0, "ok", date(2026, 1, 5), "primary", 1)


def test_a_fenced_detector_stays_in_backup_whatever_the_site_answers():
    from backend_client.detector import Detector, Mode

    d = Detector(now=0.0, min_dwell=1.0, rise_probes=2)
    change = d.fence(0.1, "split brain: both sites say they are primary")
    assert change is not None and change.to_mode is Mode.BACKUP and change.cause == "split_brain"
    for i in range(10):  # well past the dwell and the rise threshold
        d.on_probe(2.0 + i, OK_PROBE)
        d.on_message(2.0 + i)
    assert d.mode is Mode.BACKUP and "split brain" in d.reason
    d.unfence(20.0)
    d.on_probe(20.1, OK_PROBE)
    d.on_probe(20.2, OK_PROBE)
    assert d.mode is Mode.RECOVERING  # the usual rule once the sites agree


def test_a_switch_to_the_promoted_site_needs_no_dwell():
    from backend_client.detector import Detector, Mode

    d = Detector(now=0.0, min_dwell=5.0)
    d.on_probe(0.1, ProbeResult(False, "refused", None, "connection refused"))
    d.on_probe(0.2, ProbeResult(False, "refused", None, "connection refused"))
    assert d.mode is Mode.BACKUP
    change = d.switched_site(0.3, "the dr site is primary (epoch 1)")
    assert change is not None and change.to_mode is Mode.RECOVERING and change.cause == "site_switch"
    assert d.replay_done(0.4).to_mode is Mode.ONLINE  # well inside the 5 s dwell
