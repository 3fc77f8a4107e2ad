"""The failure detector's rules, exactly, with a fake clock (no I/O, no sleeping)."""

from __future__ import annotations

import itertools
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend_client.detector import Detector, Mode, ProbeResult, Transition, decide_one_shot

OK = ProbeResult(True, "ok", 1.0, "ok", date(2026, 1, 5))
REFUSED = ProbeResult(False, "refused", None, "connection refused", None)
TIMEOUT = ProbeResult(False, "timeout", None, "no answer in time", None)
ERROR_503 = ProbeResult(False, "server_error", 2.0, "HTTP 503 from health", None)


def online(now: float = 0.0, **kw) -> Detector:
    """A detector ONLINE with a connected stream, last message at ``now``."""
    d = Detector(now=now, **kw)
    d.on_message(now)
    assert d.mode is Mode.ONLINE
    return d


def in_backup(at: float = 10.0, **kw) -> Detector:
    d = online(at - 1.0, **kw)
    d.on_disconnect(at, "closed")
    d.on_probe(at, REFUSED)
    assert d.mode is Mode.BACKUP and d.since == at
    return d


# ----------------------------------------------------------------------------- one-shot


def test_decide_one_shot_forced_mode_wins_else_probe_decides():
    assert decide_one_shot(OK, None) is Mode.ONLINE
    assert decide_one_shot(REFUSED, None) is Mode.BACKUP
    assert decide_one_shot(ERROR_503, None) is Mode.BACKUP
    assert decide_one_shot(OK, "BACKUP") is Mode.BACKUP
    assert decide_one_shot(REFUSED, "ONLINE") is Mode.ONLINE


# ----------------------------------------------------------------------------- fall


def test_silent_server_goes_to_backup_after_exactly_three_intervals():
    d = online(100.0)
    assert d.evaluate(100.3) is None and d.mode is Mode.ONLINE  # 1.2 intervals: on time enough
    assert d.evaluate(100.4).to_mode is Mode.SUSPECT  # > 1.5 intervals: shown at once
    assert d.evaluate(100.7499) is None and d.mode is Mode.SUSPECT
    t = d.evaluate(100.75)
    assert t is not None and (t.from_mode, t.to_mode, t.at) == (Mode.SUSPECT, Mode.BACKUP, 100.75)
    assert "silent" in t.reason and d.since == 100.75


def test_missed_heartbeats_is_configurable():
    d = online(0.0, missed_heartbeats=5, heartbeat_interval=0.1)
    assert d.evaluate(0.49) is None or d.mode is Mode.SUSPECT
    assert d.mode is not Mode.BACKUP
    assert d.evaluate(0.5).to_mode is Mode.BACKUP


def test_single_late_heartbeat_never_switches():
    d = online(0.0)
    t = 0.0
    for _ in range(20):  # regular heartbeats, then one 0.7 s late, then regular again
        t += 0.25
        d.on_message(t)
        d.evaluate(t + 0.125)
    for step in (0.125, 0.25, 0.375, 0.5, 0.625, 0.7):
        d.evaluate(t + step)
    assert d.mode is Mode.SUSPECT
    back = d.on_message(t + 0.74)
    assert back.to_mode is Mode.ONLINE
    assert [x.to_mode for x in d.transitions] == [Mode.SUSPECT, Mode.ONLINE]
    assert all(x.to_mode is not Mode.BACKUP for x in d.transitions)


def test_refused_stream_confirmed_by_one_probe_goes_to_backup_at_once():
    d = online(50.0)
    t = d.on_disconnect(50.01, "refused: connection refused")
    assert t.to_mode is Mode.SUSPECT and d.probe_wanted
    t = d.on_probe(50.02, REFUSED)
    assert (t.from_mode, t.to_mode, t.at) == (Mode.SUSPECT, Mode.BACKUP, 50.02)
    assert "refused" in t.reason and not d.probe_wanted


def test_disconnect_with_a_good_probe_stays_online():
    d = online(5.0)
    d.on_disconnect(5.1, "closed by server")
    assert d.mode is Mode.SUSPECT
    d.on_probe(5.15, OK)
    assert d.mode is Mode.ONLINE
    # stream still down: probes judge, silence alone does not switch
    assert d.evaluate(9.0) is None and d.mode is Mode.ONLINE
    assert d.probe_interval == d.probe_interval_backup  # probe fast while the stream is down


def test_hang_noticed_first_by_the_stream_is_still_a_silence():
    d = online(0.0)
    d.evaluate(0.5)
    t = d.on_disconnect(0.76, "silent for 0.75 s")
    assert t.to_mode is Mode.BACKUP and "silent" in t.reason


def test_request_errors_count_like_failed_probes():
    d = online(0.0)
    assert (
        d.on_request_error(0.1, "rejected") is None and d.mode is Mode.ONLINE
    )  # main said no: main is alive
    assert d.on_request_error(0.2, "timeout").to_mode is Mode.SUSPECT
    assert d.on_request_error(0.3, "reset").to_mode is Mode.BACKUP


def test_one_failed_probe_only_suspects_and_a_good_one_clears_it():
    d = online(0.0)
    assert d.on_probe(1.0, TIMEOUT).to_mode is Mode.SUSPECT
    d.on_message(1.05)
    assert d.mode is Mode.ONLINE
    assert d.on_probe(2.0, TIMEOUT).to_mode is Mode.SUSPECT  # streak started again from zero
    assert d.mode is Mode.SUSPECT


def test_soft_failures_wait_out_the_dwell_after_recovery():
    d = in_backup(10.0)
    for i in range(3):
        d.on_probe(15.0 + i * 0.1, OK)
    d.replay_done(15.3)
    assert d.mode is Mode.ONLINE
    d.on_message(15.3)
    d.on_probe(16.0, ERROR_503)
    d.on_probe(16.5, ERROR_503)
    assert d.mode is Mode.SUSPECT  # a 503 storm right after recovery does not flip back yet
    assert d.on_probe(20.2, ERROR_503) is None  # 4.9 s after ONLINE: still waiting
    assert d.on_probe(20.4, ERROR_503).to_mode is Mode.BACKUP  # dwell over: it does


# ----------------------------------------------------------------------------- rise


def test_backup_to_recovering_needs_rise_probes_and_min_dwell():
    d = in_backup(10.0)
    for t in (11.0, 11.5, 12.0, 12.5):  # enough good answers, dwell not over
        assert d.on_probe(t, OK) is None
    assert d.mode is Mode.BACKUP
    t = d.on_probe(15.0, OK)  # dwell over, streak of 5
    assert (t.from_mode, t.to_mode) == (Mode.BACKUP, Mode.RECOVERING)
    assert d.replay_done(15.1).to_mode is Mode.ONLINE


def test_rise_needs_consecutive_good_answers():
    d = in_backup(0.0)
    d.on_probe(6.0, OK)
    d.on_probe(6.5, OK)
    d.on_probe(7.0, REFUSED)  # streak broken
    d.on_probe(7.5, OK)
    d.on_message(7.6)
    assert d.mode is Mode.BACKUP
    assert d.on_message(7.7).to_mode is Mode.RECOVERING  # messages count as good answers


def test_recovering_falls_back_to_backup_when_main_fails_again():
    d = in_backup(0.0)
    for t in (5.0, 5.1, 5.2):
        d.on_probe(t, OK)
    assert d.mode is Mode.RECOVERING
    d.on_disconnect(5.3, "reset")
    assert d.mode is Mode.RECOVERING and d.probe_wanted
    t = d.on_probe(5.35, REFUSED)
    assert (t.from_mode, t.to_mode) == (Mode.RECOVERING, Mode.BACKUP)
    assert d.replay_done(5.4) is None and d.mode is Mode.BACKUP  # too late: nothing to finish


def test_replay_done_outside_recovering_is_ignored():
    d = online(0.0)
    assert d.replay_done(1.0) is None and d.mode is Mode.ONLINE


def test_start_in_backup_waits_for_rise_and_dwell():
    d = Detector(now=0.0, initial_mode=Mode.BACKUP)
    for t in (1.0, 2.0, 3.0):
        d.on_probe(t, OK)
    assert d.mode is Mode.BACKUP
    assert d.on_probe(5.0, OK).to_mode is Mode.RECOVERING


# ----------------------------------------------------------------------------- flapping


def drive_link(d: Detector, *, period: float, duration: float, start: float = 0.0) -> None:
    """A link that is up ``period`` s, then refuses for ``period`` s, and so on: heartbeats
    every interval while up, a disconnect when it drops, probes at the detector's own
    interval plus the immediate ones it asks for, evaluate every half interval; replay is
    done at once when RECOVERING (empty journal)."""
    step = d.heartbeat_interval / 2
    t = start
    next_probe = start
    next_beat = start
    was_up = True
    while t < start + duration:
        up = int((t - start) // period) % 2 == 0
        if was_up and not up:
            d.on_disconnect(t, "refused")
        if up and t >= next_beat:
            d.on_message(t)
            next_beat = t + d.heartbeat_interval
        if d.probe_wanted or t >= next_probe:
            d.on_probe(t, OK if up else REFUSED)
            next_probe = t + d.probe_interval
        d.evaluate(t)
        if d.mode is Mode.RECOVERING:
            d.replay_done(t)
        was_up = up
        t = round(t + step, 9)


def switches(ts: list[Transition]) -> tuple[list[float], list[float]]:
    into = [x.at for x in ts if x.to_mode is Mode.BACKUP and x.from_mode is not Mode.BACKUP]
    out = [x.at for x in ts if x.from_mode is Mode.BACKUP and x.to_mode is not Mode.BACKUP]
    return into, out


def assert_one_switch_each_way_per_dwell(d: Detector) -> None:
    into, out = switches(d.transitions)
    for times in (into, out):
        for a, b in itertools.pairwise(times):
            assert b - a >= d.min_dwell - 1e-9, (times, d.transitions)


def test_flapping_link_every_2s_for_60s_never_oscillates():
    d = online(0.0)
    drive_link(d, period=2.0, duration=60.0)
    into, _out = switches(d.transitions)
    assert into, "the link was down half the time: it must have gone to BACKUP"
    assert_one_switch_each_way_per_dwell(d)
    assert len(into) <= 60.0 / d.min_dwell + 1
    for x in d.transitions:  # every stay in BACKUP lasts the dwell
        if x.from_mode is Mode.BACKUP:
            entered = max(t.at for t in d.transitions if t.to_mode is Mode.BACKUP and t.at <= x.at)
            assert x.at - entered >= d.min_dwell


def test_fast_flapping_half_second_link():
    d = online(0.0)
    drive_link(d, period=0.5, duration=60.0)
    assert_one_switch_each_way_per_dwell(d)


# ----------------------------------------------------------------------------- override


def test_force_and_release():
    seen: list[Transition] = []
    d = online(0.0)
    d.callbacks.append(seen.append)
    t = d.force("BACKUP", "super1", 1.0)
    assert (t.to_mode, t.by, d.forced, d.forced_by) == (Mode.BACKUP, "super1", Mode.BACKUP, "super1")
    # main is healthy meanwhile: the automatic machine stays ONLINE, the console shows BACKUP
    for i in range(10):
        d.on_message(1.0 + i * 0.25)
        d.evaluate(1.1 + i * 0.25)
    assert d.mode is Mode.BACKUP
    t = d.force(None, "super1", 4.0)
    assert (t.from_mode, t.to_mode) == (Mode.BACKUP, Mode.RECOVERING)  # replay what was journaled
    assert d.forced is None
    assert d.replay_done(4.1).to_mode is Mode.ONLINE
    assert [x.to_mode for x in seen] == [Mode.BACKUP, Mode.RECOVERING, Mode.ONLINE]


def test_forced_online_holds_while_main_is_dead_and_release_shows_the_truth():
    d = online(0.0)
    d.force(Mode.ONLINE, "super1", 0.1)
    assert d.force("ONLINE", "super1", 0.2) is None  # same override again: nothing changes
    d.on_disconnect(0.5, "refused")
    d.on_probe(0.6, REFUSED)
    assert d.mode is Mode.ONLINE and d.forced is Mode.ONLINE
    t = d.force(None, "super1", 1.0)
    assert (t.from_mode, t.to_mode) == (Mode.ONLINE, Mode.BACKUP)
    assert d.force(None, "super1", 1.1) is None


@pytest.mark.parametrize("bad", ["SUSPECT", "RECOVERING", "OFFLINE", ""])
def test_force_refuses_other_modes(bad):
    d = online(0.0)
    with pytest.raises(ValueError, match="ONLINE or BACKUP"):
        d.force(bad, "super1", 1.0)
    assert d.mode is Mode.ONLINE and d.forced is None


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        Detector(heartbeat_interval=0)
    with pytest.raises(ValueError):
        Detector(rise_probes=0)
    with pytest.raises(ValueError):
        Detector(initial_mode=Mode.SUSPECT)


# ----------------------------------------------------------------------------- property

_events = st.one_of(
    st.tuples(st.just("message"), st.floats(0.0, 1.0)),
    st.tuples(st.just("disconnect"), st.floats(0.0, 1.0)),
    st.tuples(st.just("probe"), st.floats(0.0, 1.0), st.sampled_from([OK, REFUSED, TIMEOUT, ERROR_503])),
    st.tuples(
        st.just("request"), st.floats(0.0, 1.0), st.sampled_from(["refused", "reset", "timeout", "rejected"])
    ),
    st.tuples(st.just("evaluate"), st.floats(0.0, 1.0)),
    st.tuples(st.just("replay_done"), st.floats(0.0, 1.0)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_events, max_size=200))
def test_property_no_two_switches_the_same_way_within_the_dwell(events):
    d = online(0.0)
    now = 0.0
    for ev in events:
        now += ev[1]
        kind = ev[0]
        if kind == "message":
            d.on_message(now)
        elif kind == "disconnect":
            d.on_disconnect(now, "closed")
        elif kind == "probe":
            d.on_probe(now, ev[2])
        elif kind == "request":
            d.on_request_error(now, ev[2])
        elif kind == "evaluate":
            d.evaluate(now)
        else:
            d.replay_done(now)
        assert d.mode in tuple(Mode)
    assert_one_switch_each_way_per_dwell(d)
    prev = Mode.ONLINE
    for x in d.transitions:
        assert x.from_mode is prev  # the log is a chain
        assert x.from_mode is not x.to_mode
        if x.to_mode is Mode.RECOVERING:
            assert x.from_mode is Mode.BACKUP
        prev = x.to_mode
    assert prev is d.mode


def test_next_deadline_is_when_evaluate_would_act():
    d = Detector(now=0.0)
    assert d.next_deadline() is None  # no stream yet: probes judge
    d.on_message(10.0)
    at = d.next_deadline()
    assert d.evaluate(at - 0.001) is None
    assert d.evaluate(at).to_mode is Mode.SUSPECT
    at = d.next_deadline()
    assert at == pytest.approx(10.75)
    assert d.evaluate(at).to_mode is Mode.BACKUP
    assert d.next_deadline() is None


# ----------------------------------------------------------------------------- monitoring alerts


def test_alert_suspects_and_asks_for_a_probe_which_decides_online():
    d = online(0.0)
    t = d.on_alert(0.1, "MainSystemDown")
    assert (t.from_mode, t.to_mode, t.cause) == (Mode.ONLINE, Mode.SUSPECT, "alert") and d.probe_wanted
    assert "MainSystemDown" in t.reason
    # heartbeats keep coming: they are not the probe the alert asked for
    assert d.on_message(0.2) is None and d.evaluate(0.25) is None and d.mode is Mode.SUSPECT
    t = d.on_probe(0.3, OK)
    assert (t.to_mode, t.cause) == (Mode.ONLINE, "main_answers") and not d.probe_wanted


def test_alert_then_failed_probes_go_to_backup_by_the_usual_rule():
    d = online(0.0)
    d.on_alert(0.1, "MainSystemDown")
    assert d.on_probe(0.2, TIMEOUT) is None and d.mode is Mode.SUSPECT  # one failure: probe again
    assert d.probe_wanted
    t = d.on_probe(0.3, TIMEOUT)
    assert (t.to_mode, t.cause) == (Mode.BACKUP, "failure_timeout")


def test_alert_never_switches_by_itself_even_with_one_fall_probe():
    d = online(0.0, fall_probes=1)
    d.on_alert(0.1, "MainSystemDown")
    d.on_alert(0.2, "MainSystemDown")
    assert d.mode is Mode.SUSPECT and [c.to_mode for c in d.transitions] == [Mode.SUSPECT]


def test_alert_in_backup_or_recovering_only_asks_for_a_probe():
    d = in_backup()
    assert d.on_alert(11.0, "MainSystemDown") is None and d.mode is Mode.BACKUP and d.probe_wanted


def test_silence_still_switches_while_an_alert_waits_for_its_probe():
    d = online(0.0)
    d.on_alert(0.1, "MainSystemDown")
    t = d.evaluate(0.75)
    assert t.to_mode is Mode.BACKUP and t.cause == "silence" and d.alert_pending is None
