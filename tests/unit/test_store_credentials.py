"""Offline-login material: scrypt verifier, failure throttle and lockout that survive a
restart (kept in the trust anchors, a real 0600 file here), clock watermark that never
moves back.  Real SQLite files."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from localstore import credentials, verifier
from localstore.anchors import Anchors
from localstore.credentials import (
    AttemptRefused,
    check_verifier,
    clear_attempts,
    clock_rolled_back,
    make_verifier,
    observe_server_time,
    parse_verifier,
    reserve_attempt,
    set_lock_after,
    throttle_delay,
)
from localstore.db import open_store
from localstore.models import SyncState
from tests import launcher

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
FAST_N = 2**10  # TEST ONLY: cheap scrypt so the suite stays fast; production uses 2**17


def test_right_and_wrong_password():
    stored = make_verifier("demo-Pa55", n=FAST_N)
    assert check_verifier(stored, "demo-Pa55")
    assert not check_verifier(stored, "demo-pa55")
    assert not check_verifier(stored, "")
    assert "demo-Pa55" not in stored


def test_salt_is_random_per_verifier():
    a, b = make_verifier("x", n=FAST_N), make_verifier("x", n=FAST_N)
    assert a != b and parse_verifier(a)[3] != parse_verifier(b)[3]
    assert len(parse_verifier(a)[3]) == 16


def test_stored_parameters_are_used_for_checking(monkeypatch):
    # made with N=2**11; the default N changing afterwards must not matter
    stored = make_verifier("secret", n=2**11)
    n, r, p, salt, digest = parse_verifier(stored)
    assert (n, r, p) == (2**11, 8, 1)
    expected = hashlib.scrypt(b"secret", salt=salt, n=2**11, r=8, p=1, maxmem=64 * 2**20, dklen=len(digest))
    assert expected == digest
    monkeypatch.delenv(launcher.SCRYPT_N_ENV, raising=False)
    monkeypatch.setattr(verifier, "SCRYPT_N", 2**12)  # the work factor's seam, read at call time
    assert check_verifier(stored, "secret")
    assert parse_verifier(make_verifier("secret"))[0] == 2**12  # new verifiers follow the (test) override


def test_default_parameters_are_owasp():
    assert (credentials.SCRYPT_N, credentials.SCRYPT_R, credentials.SCRYPT_P) == (2**17, 8, 1)


def test_test_override_is_validated(monkeypatch):
    monkeypatch.setattr(verifier, "SCRYPT_N", verifier.SCRYPT_N)  # put back whatever the override set
    with pytest.raises(ValueError, match="power of two"):
        launcher.install({launcher.SCRYPT_N_ENV: "1000"})  # the override lives in the test launcher
        make_verifier("x")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        "scrypt$abc$8$1$AAAA$AAAA",
        "scrypt$1073741824$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA==",
        "bcrypt$1024$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA==",
    ],
)
def test_malformed_or_hostile_verifier_never_matches(stored):
    assert check_verifier(stored, "anything") is False


def test_throttle_grows_caps_and_survives_reopen(tmp_path):
    anchors = Anchors(tmp_path / "home", backend="file")
    delays = []
    for i in range(3):
        n = reserve_attempt(anchors, "dealer1", T0 + timedelta(seconds=60 * i)).count
        delays.append(throttle_delay(n))
    assert delays == [0.0, 1.0, 2.0]
    with pytest.raises(AttemptRefused) as e:  # three in a row lock (the default)
        reserve_attempt(anchors, "dealer1", T0 + timedelta(hours=1))
    assert e.value.attempts.locked and e.value.attempts.count == 3

    again = Anchors(tmp_path / "home", backend="file")  # a restart: the count is in the anchors
    set_lock_after(again, 0)  # lockout off: the delay alone
    st = credentials.attempts(again, "dealer1")
    assert st.count == 3 and not st.locked
    last = T0 + timedelta(seconds=120)
    assert st.wait(last + timedelta(seconds=1)) == 1.0
    assert st.wait(last + timedelta(seconds=60)) == 0.0
    assert st.wait(last - timedelta(days=1)) == 2.0  # a clock set back does not stretch the wait
    assert credentials.attempts(again, "dealer2").count == 0
    for i in range(20):
        n = reserve_attempt(again, "dealer1", T0 + timedelta(days=1, minutes=10 * i)).count
    assert throttle_delay(n) == 300.0
    assert clear_attempts(again, "dealer1").count == 23
    assert credentials.attempts(again, "dealer1").count == 0


def test_an_unreadable_count_is_the_worst_case(tmp_path):
    anchors = Anchors(tmp_path / "home", backend="file")
    anchors.put(attempts={"dealer1": {"count": "0"}, "dealer2": {"count": 1}})
    set_lock_after(anchors, 0)  # even with the lockout off
    for user in ("dealer1", "dealer2"):
        st = credentials.attempts(anchors, user)
        assert st.locked and st.unreadable
        with pytest.raises(AttemptRefused):
            reserve_attempt(anchors, user, T0)


def test_clock_watermark_never_moves_back(tmp_path):
    path = tmp_path / "lifeboat.db"
    s = open_store(path)
    with s.write() as session:
        assert observe_server_time(session, T0) == T0
    with s.write() as session:
        assert observe_server_time(session, T0 - timedelta(hours=3)) == T0  # older: the watermark stays
    with s.write() as session:
        assert observe_server_time(session, T0 + timedelta(seconds=10)) == T0 + timedelta(seconds=10)
    s.close()
    s = open_store(path)
    try:
        with s.read() as session:
            assert session.get(SyncState, 1).clock_watermark == T0 + timedelta(seconds=10)
            assert clock_rolled_back(session, T0 - timedelta(hours=1))
            assert not clock_rolled_back(session, T0 - timedelta(seconds=100))  # within the tolerance
            assert not clock_rolled_back(session, T0 + timedelta(minutes=1))
        with pytest.raises(ValueError, match="timezone"), s.write() as session:
            observe_server_time(session, datetime(2026, 3, 2, 4, 0))
    finally:
        s.close()


def test_offline_credential_row_holds_no_password(tmp_path):
    from contract.wire import Role
    from localstore.models import OfflineCredential, UserRow

    s = open_store(tmp_path / "c.db")
    try:
        with s.write() as session:
            session.add(
                UserRow(user_id="dealer1", role=Role.DEALER, client_ids='["C1"]', last_online_login_at=T0)
            )
            session.add(
                OfflineCredential(
                    user_id="dealer1",
                    verifier=make_verifier("demo", n=FAST_N),
                    grant_json="{}",
                    key_id="k1",
                    public_key="AAAA",
                    valid_until=T0 + timedelta(hours=14),
                    trading_date=T0.date(),
                )
            )
        with s.read() as session:
            cred = session.get(OfflineCredential, "dealer1")
            assert check_verifier(cred.verifier, "demo") and not check_verifier(cred.verifier, "demo2")
            assert cred.user.role is Role.DEALER
    finally:
        s.close()
    assert b"demo" not in (tmp_path / "c.db").read_bytes()
