"""Backup mode through the service layer, in-process: offline login, policy and risk
rules, the journal's shape and atomicity, disk full.

The book comes from a real mainsim (BOD by super1, online login by dealer1; see
tests/backup_desk.py); main is then down (connection refused).  The store is a
real SQLite file per test.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event

from console.exitcodes import ExitCode
from console.service import Denied, MainUnavailable, NotAccepted, Refused, Service
from contract import clock
from contract.wire import OrderType, Side
from localstore import audit
from sync import offline
from sync.trading.policy import OrderTicket
from tests.backup_desk import build_template, fresh_console
from tests.cli_env import DEAD_URL, PASSWORD


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return build_template(tmp_path_factory.mktemp("backup-template"))


@pytest.fixture
def svc(template, tmp_path):
    cli = fresh_console(template, tmp_path)
    s = Service(backend_url=DEAD_URL, home=cli.home, user="dealer1")
    yield s
    s.close()


def run(coro):
    return asyncio.run(coro)


def db(svc) -> sqlite3.Connection:
    return sqlite3.connect(svc.store.path)


def dealer_clients(svc, user="dealer1") -> list[str]:
    with db(svc) as con:
        return [
            r[0]
            for r in con.execute(
                "SELECT client_id FROM clients WHERE dealer_id = ? ORDER BY client_id", (user,)
            )
        ]


def a_position(svc, client=None, *, exchange=None):
    """(client, exchange, symbol, product, net, lot, freeze, tick, lower, upper) of a non-flat position."""
    q = (
        "SELECT p.client_id, p.exchange, p.symbol, p.product, p.net_quantity, i.lot_size, i.freeze_quantity, "
        "i.tick_size, i.lower_band, i.upper_band, i.last_price FROM positions p JOIN instruments i "
        "ON i.exchange = p.exchange AND i.symbol = p.symbol JOIN clients c ON c.client_id = p.client_id "
        "WHERE p.net_quantity != 0 AND c.dealer_id = 'dealer1'"
    )
    args: list = []
    if client:
        q += " AND p.client_id = ?"
        args.append(client)
    if exchange:
        q += " AND p.exchange = ?"
        args.append(exchange)
    with db(svc) as con:
        row = con.execute(q + " ORDER BY p.client_id, p.symbol LIMIT 1", args).fetchone()
    assert row is not None
    c, e, s, p, net, lot, freeze, tick, lo, hi, last = row
    return dict(
        client=c,
        exchange=e,
        symbol=s,
        product=p,
        net=net,
        lot=lot,
        freeze=freeze,
        tick=Decimal(tick) / 10000,
        lower=Decimal(lo) / 10000,
        upper=Decimal(hi) / 10000,
        last=Decimal(last) / 10000,
    )


def reduce_ticket(p, qty=None, **kw) -> OrderTicket:
    side = Side.SELL if p["net"] > 0 else Side.BUY
    return OrderTicket(
        p["client"],
        p["exchange"],
        p["symbol"],
        kw.pop("side", side),
        qty if qty is not None else abs(p["net"]),
        p["product"],
        kw.pop("order_type", OrderType.MARKET),
        **kw,
    )


def journal_rows(svc) -> list[tuple]:
    with db(svc) as con:
        return con.execute(
            "SELECT seq, kind, client_order_id, client_id, state, acknowledged_at FROM journal ORDER BY seq"
        ).fetchall()


# --------------------------------------------------------------------------- offline login


def test_backup_squareoff_journals_every_leg_in_one_transaction_with_ids(svc):
    client = dealer_clients(svc)[0]
    res = run(svc.squareoff(client_id=client, password=PASSWORD))
    assert res.mode == "BACKUP" and res.exit_code == 0 and res.legs
    rows = journal_rows(svc)
    assert len(rows) == len(res.legs) + len(res.cancels)
    kinds = [r[1] for r in rows]
    assert kinds == ["CANCEL"] * len(res.cancels) + ["SQUARE_OFF"] * len(res.legs)  # cancels first
    pat = re.compile(rf"^{svc.store.console_id}-\d{{6}}-\d{{6}}$")
    ids = [r[2] for r in rows]
    assert all(pat.match(i) for i in ids) and len(set(ids)) == len(ids)
    assert [leg["client_order_id"] for leg in res.legs] == ids[len(res.cancels) :]
    assert all(r[3] == client and r[4] == "pending" and r[5] is None for r in rows)  # not acknowledged yet
    svc.acknowledge(res)
    assert all(r[5] is not None for r in journal_rows(svc))
    with svc.store.read() as s:
        assert audit.verify(s).ok
    with db(svc) as con:
        actions = [r[0] for r in con.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions[-2:] == ["login", "square_off"]


def test_wrong_password_is_denied_and_audited_without_the_password(svc):
    client = dealer_clients(svc)[0]
    with pytest.raises(Denied) as e:
        run(svc.squareoff(client_id=client, password="not-the-password"))
    assert e.value.exit_code == ExitCode.DENIED and "wrong password" in e.value.message
    assert journal_rows(svc) == []
    with db(svc) as con:
        last = con.execute("SELECT action, payload FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    assert last[0] == "login_failed" and "wrong_password" in last[1] and "not-the-password" not in last[1]


def test_throttle_grows_and_survives_reopening_the_store(svc, template, tmp_path):
    store = svc.store
    for _ in range(3):
        with pytest.raises(offline.OfflineDenied):
            offline.login(store, "dealer1", "wrong")
    home = svc.home
    svc.close()
    again = Service(backend_url=DEAD_URL, home=home, user="dealer1")  # a new open of the same file
    try:
        with pytest.raises(Denied) as e:
            run(
                again.squareoff(client_id=dealer_clients(again)[0], password=PASSWORD)
            )  # even the right one waits
        assert re.search(r"try again in \d+ s", e.value.message)
    finally:
        again.close()


def test_never_logged_in_here_means_backup_not_possible(template, tmp_path):
    cli = fresh_console(template, tmp_path, user="dealer2")
    s = Service(backend_url=DEAD_URL, home=cli.home, user="dealer2")
    try:
        with pytest.raises(MainUnavailable) as e:
            run(s.squareoff(password=PASSWORD))
        assert e.value.exit_code == ExitCode.UNAVAILABLE and "never logged in online" in e.value.message
    finally:
        s.close()


def test_expired_grant_refused_with_injected_clock(svc):
    with svc.store.read() as s:
        from localstore.models import OfflineCredential

        valid_until = s.get(OfflineCredential, "dealer1").valid_until
    with pytest.raises(offline.BackupImpossible, match="expired"):
        offline.login(svc.store, "dealer1", PASSWORD, now=valid_until + timedelta(seconds=1))
    sess = offline.login(svc.store, "dealer1", PASSWORD, now=valid_until - timedelta(hours=1))
    assert sess.role == "dealer" and sess.client_ids


def test_clock_rolled_back_does_not_extend_the_grant(svc):
    with db(svc) as con:  # the store has seen a time a day ahead of this clock
        ahead = clock.utcnow() + timedelta(days=1)
        con.execute("UPDATE sync_state SET clock_watermark = ?", (ahead.replace(tzinfo=None).isoformat(" "),))
    with pytest.raises(MainUnavailable) as e:
        run(svc.squareoff(client_id=dealer_clients(svc)[0], password=PASSWORD))
    assert "clock" in e.value.message and e.value.exit_code == ExitCode.UNAVAILABLE


def test_tampered_grant_does_not_verify(svc, template):
    with db(svc) as con:
        g = json.loads(
            con.execute("SELECT grant_json FROM offline_credentials WHERE user_id='dealer1'").fetchone()[0]
        )
        g["claims"]["client_ids"].append("C9999")  # widen the scope in the file
        con.execute("UPDATE offline_credentials SET grant_json = ? WHERE user_id='dealer1'", (json.dumps(g),))
    with pytest.raises(MainUnavailable, match="does not verify"):
        run(svc.squareoff(client_id=dealer_clients(svc)[0], password=PASSWORD))


def test_dealer_outside_scope_is_denied(svc):
    other = dealer_clients(svc, "dealer2")[0]
    with pytest.raises(Denied) as e:
        run(svc.squareoff(client_id=other, password=PASSWORD))
    assert e.value.exit_code == ExitCode.DENIED and "not in your scope" in e.value.message
    assert journal_rows(svc) == []


# --------------------------------------------------------------------------- policy and risk


def refused(svc, ticket, code):
    with pytest.raises(Refused) as e:
        run(svc.place(ticket, password=PASSWORD))
    assert e.value.code == code, e.value.message
    assert e.value.exit_code == ExitCode.REJECTED
    return e.value.message


def test_reducing_order_accepted_and_counts_against_what_is_left(svc):
    p = a_position(svc)
    half = (abs(p["net"]) // p["lot"] // 2 or 1) * p["lot"]
    res = run(svc.place(reduce_ticket(p, half), password=PASSWORD))
    assert res.order["outcome"] == "journaled" and res.journal_seqs
    left = abs(p["net"]) - half
    msg = refused(svc, reduce_ticket(p, left + p["lot"]), "reduce_only")
    assert "already journaled" in msg
    if left:
        assert run(svc.place(reduce_ticket(p, left), password=PASSWORD)).order["outcome"] == "journaled"


def test_new_exposure_refused_same_side_larger_and_new_position(svc):
    p = a_position(svc)
    same = Side.BUY if p["net"] > 0 else Side.SELL
    assert "same side" in refused(svc, reduce_ticket(p, p["lot"], side=same), "reduce_only")
    assert "more than" in refused(svc, reduce_ticket(p, abs(p["net"]) + p["lot"]), "reduce_only")
    new = OrderTicket(p["client"], "NSE", "INFY", Side.BUY, 1, "MIS", OrderType.MARKET)
    with db(svc) as con:
        has = con.execute(
            "SELECT 1 FROM positions WHERE client_id=? AND symbol='INFY' AND net_quantity != 0",
            (p["client"],),
        ).fetchone()
    if not has:
        assert "no position" in refused(svc, new, "reduce_only")


def test_supervisor_policy_allows_new_exposure_and_killswitch_blocks_it(svc, template, tmp_path):
    p = a_position(svc)
    same = Side.BUY if p["net"] > 0 else Side.SELL
    sup = Service(backend_url=DEAD_URL, home=svc.home, user="super1")
    try:
        with pytest.raises(Denied):  # a dealer cannot change the policy
            run(svc.policy_set(allow_new_exposure=True, password=PASSWORD))
        assert run(sup.policy_set(allow_new_exposure=True, password=PASSWORD))["allow_new_exposure"] is True
        res = run(svc.place(reduce_ticket(p, p["lot"], side=same), password=PASSWORD))
        assert res.order["outcome"] == "journaled"
        run(svc.killswitch(password=PASSWORD))
        assert "kill switch" in refused(svc, reduce_ticket(p, p["lot"], side=same), "killswitch")
        # reducing still works under the kill switch
        assert run(svc.place(reduce_ticket(p, p["lot"]), password=PASSWORD)).order["outcome"] == "journaled"
        with pytest.raises(Denied):
            run(svc.killswitch(off=True, password=PASSWORD))
        run(sup.killswitch(off=True, password=PASSWORD))
        assert (
            run(svc.place(reduce_ticket(p, p["lot"], side=same), password=PASSWORD)).order["outcome"]
            == "journaled"
        )
    finally:
        sup.close()
    with db(svc) as con:
        actions = [r[0] for r in con.execute("SELECT action FROM audit_log")]
    assert {"policy_change", "killswitch_on", "killswitch_off"} <= set(actions)


def test_reference_data_checks(svc):
    p = a_position(svc, exchange="NFO")  # futures: lot > 1
    assert p["lot"] > 1
    refused(svc, reduce_ticket(p, p["lot"] + 1), "lot_size")
    limit_px = lambda px: reduce_ticket(p, p["lot"], order_type=OrderType.LIMIT, price=px)  # noqa: E731
    refused(svc, limit_px(p["upper"] + p["tick"] * 10), "price_band")
    refused(svc, limit_px(p["lower"] + p["tick"] / 2), "tick_size")
    refused(svc, reduce_ticket(p, p["lot"], order_type=OrderType.LIMIT), "price_required")
    if abs(p["net"]) > p["freeze"]:
        refused(svc, reduce_ticket(p, p["freeze"] + p["lot"]), "freeze_quantity")
    msg = refused(
        svc,
        OrderTicket(p["client"], "NFO", p["symbol"][:-1] + "X", Side.BUY, p["lot"], "NRML", OrderType.MARKET),
        "unknown_symbol",
    )
    assert "did you mean" in msg
    with pytest.raises(Denied):  # a client that is not the dealer's
        run(
            svc.place(
                OrderTicket("C0000", "NSE", "INFY", Side.BUY, 1, "MIS", OrderType.MARKET), password=PASSWORD
            )
        )


def test_order_value_limit_skipped_for_reducing(svc, template):
    p = a_position(svc)
    with db(svc) as con:
        con.execute("UPDATE client_limits SET max_order_value = 1 WHERE client_id = ?", (p["client"],))
        con.execute("UPDATE policy SET allow_new_exposure = 1")
    assert run(svc.place(reduce_ticket(p, p["lot"]), password=PASSWORD)).order["outcome"] == "journaled"
    same = Side.BUY if p["net"] > 0 else Side.SELL
    refused(svc, reduce_ticket(p, p["lot"], side=same), "order_value_limit")


def test_modify_only_downwards_and_cancel_once(svc):
    with db(svc) as con:
        row = con.execute(
            "SELECT o.order_id, o.quantity, o.filled_quantity, i.lot_size FROM orders o "
            "JOIN clients c ON c.client_id = o.client_id JOIN instruments i ON i.exchange=o.exchange "
            "AND i.symbol=o.symbol WHERE c.dealer_id='dealer1' AND o.status IN ('OPEN','TRIGGER_PENDING') "
            "AND o.quantity - o.filled_quantity > i.lot_size LIMIT 1"
        ).fetchone()
    if row is None:
        pytest.skip("seed has no open order with room to modify down")
    oid, qty, _filled, lot = row
    with pytest.raises(Refused) as e:
        run(svc.modify(order_id=oid, quantity=qty + lot, password=PASSWORD))
    assert e.value.code == "modify_up"
    res = run(svc.modify(order_id=oid, quantity=qty - lot, password=PASSWORD))
    assert res.order["outcome"] == "journaled"
    run(svc.cancel(order_id=oid, password=PASSWORD))
    with pytest.raises(Refused) as e:
        run(svc.cancel(order_id=oid, password=PASSWORD))
    assert e.value.code == "order_not_open"
    kinds = [r[1] for r in journal_rows(svc)]
    assert kinds == ["MODIFY", "CANCEL"]


# --------------------------------------------------------------------------- durability


def test_disk_full_is_not_accepted_and_leaves_the_journal_unchanged(svc):
    client = dealer_clients(svc)[0]
    run(svc.squareoff(client_id=client, password=PASSWORD))
    before = journal_rows(svc)
    with db(svc) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = con.execute("PRAGMA page_count").fetchone()[0]
    engine = svc.store.engine
    engine.dispose()

    @event.listens_for(engine, "connect")
    def _full(dbapi_conn, _rec):  # the database may not grow: SQLITE_FULL, as on a full disk
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

    with pytest.raises(NotAccepted) as e:
        run(svc.squareoff(password=PASSWORD))
    assert "NOT accepted" in e.value.message and "full" in e.value.message
    assert e.value.exit_code == ExitCode.UNEXPECTED
    event.remove(engine, "connect", _full)
    engine.dispose()
    assert journal_rows(svc) == before
    with svc.store.read() as s:
        assert audit.verify(s).ok


# --------------------------------------------------------------------------- early password check
# (a script's --password-stdin: the scrypt check starts beside the health probe; its
# answer is used only after the throttle, clock and grant checks, and only for the same
# user, password and stored verifier)


def _failures(svc, user="dealer1") -> int:
    from localstore import credentials

    return credentials.attempts(offline.throttle_anchors(svc.store), user).count  # kept outside the store


def test_concurrent_right_passwords_in_one_console_are_not_throttled(svc, monkeypatch):
    """The console's own actions at once (a preview and its confirm, a status sample) each log in
    offline with the right password: none is refused as "too many failed logins" because the
    others' attempts were in flight (an attempt counts as wrong until it proves right).  The
    password check is slowed to 0.3 s here (the real one, delayed) so the logins overlap, as they
    do at the production work factor; the TUI met this under CI load."""
    import threading
    import time

    from localstore import credentials

    real = credentials.check_verifier

    def slow_check(verifier, password):
        time.sleep(0.3)
        return real(verifier, password)

    monkeypatch.setattr(credentials, "check_verifier", slow_check)
    outcomes: list[str] = []

    def one() -> None:
        try:
            outcomes.append(offline.login(svc.store, "dealer1", PASSWORD).role)
        except offline.OfflineDenied as exc:
            outcomes.append(exc.message)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes == ["dealer"] * 4, outcomes
    assert _failures(svc) == 0


def test_early_check_logs_in_and_a_wrong_one_is_counted(svc):
    early = offline.start_check(svc.store, "dealer1", PASSWORD)
    assert early is not None and early.answer.result(timeout=30) is True
    assert offline.login(svc.store, "dealer1", PASSWORD, early=early).role == "dealer"
    wrong = offline.start_check(svc.store, "dealer1", "not-it")
    with pytest.raises(offline.OfflineDenied, match="wrong password"):
        offline.login(svc.store, "dealer1", "not-it", early=wrong)
    assert _failures(svc) == 1  # counted exactly as a check made in place


def test_early_check_for_another_password_or_verifier_is_not_used(svc):
    early = offline.start_check(svc.store, "dealer1", PASSWORD)
    with pytest.raises(offline.OfflineDenied, match="wrong password"):  # its True is for another password
        offline.login(svc.store, "dealer1", "not-it", early=early)
    early = offline.start_check(svc.store, "dealer1", PASSWORD)
    from localstore import credentials

    with db(svc) as con:  # the user logged in online again meanwhile: a new verifier, another password
        con.execute(
            "UPDATE offline_credentials SET verifier = ? WHERE user_id = 'dealer1'",
            (credentials.make_verifier("changed-password", n=2**10),),
        )
    credentials.clear_attempts(offline.throttle_anchors(svc.store), "dealer1")  # (a supervisor's release)
    with pytest.raises(offline.OfflineDenied, match="wrong password"):
        offline.login(svc.store, "dealer1", PASSWORD, early=early)
    credentials.clear_attempts(offline.throttle_anchors(svc.store), "dealer1")
    assert offline.login(svc.store, "dealer1", "changed-password", early=early).role == "dealer"


def test_early_check_does_not_pass_the_throttle(svc):
    for _ in range(3):
        with pytest.raises(offline.OfflineDenied):
            offline.login(svc.store, "dealer1", "wrong")
    early = offline.start_check(svc.store, "dealer1", PASSWORD)
    assert early.answer.result(timeout=30) is True
    with pytest.raises(offline.OfflineDenied, match="try again in"):
        offline.login(svc.store, "dealer1", PASSWORD, early=early)
    assert offline.start_check(svc.store, "nobody", PASSWORD) is None  # no offline material: login says why


def test_early_check_from_the_store_file_reads_only(svc, tmp_path):
    from localstore import verifier

    path = svc.store.path
    early = verifier.start_check_from_file(path, "dealer1", PASSWORD)
    assert early is not None and early.answer.result(timeout=30) is True
    assert offline.login(svc.store, "dealer1", PASSWORD, early=early).role == "dealer"
    assert verifier.start_check_from_file(path, "nobody", PASSWORD) is None
    assert verifier.start_check_from_file(tmp_path / "missing.db", "dealer1", PASSWORD) is None
    assert not (tmp_path / "missing.db").exists()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    assert verifier.start_check_from_file(junk, "dealer1", PASSWORD) is None
    assert junk.read_bytes() == b"not a database at all" * 100  # never touched


def test_stored_grant_is_read_exactly_as_the_wire_model_reads_it(svc):
    """Offline login verifies the stored grant without pydantic (grants.StoredGrant): the
    same claims as the wire model, the same signature check; any edit, a wrong key or an
    unreadable grant is refused."""
    from contract import wire
    from contract.grants import GrantInvalid, StoredGrant, verify_grant

    with db(svc) as con:
        grant_json, key = con.execute(
            "SELECT grant_json, public_key FROM offline_credentials WHERE user_id='dealer1'"
        ).fetchone()
    model = wire.OfflineGrant.model_validate_json(grant_json)
    verify_grant(model, key)
    got = StoredGrant.verify(grant_json, key)
    c = model.claims
    assert (got.user_id, got.role, list(got.client_ids), got.trading_date, got.valid_until) == (
        c.user_id,
        c.role,
        c.client_ids,
        c.trading_date,
        c.valid_until,
    )
    assert got.valid_until.tzinfo is not None
    got.check_validity(c.valid_until - timedelta(seconds=1))
    with pytest.raises(GrantInvalid, match="expired"):
        got.check_validity(c.valid_until)
    g = json.loads(grant_json)
    for edit in (
        {"role": "supervisor"},
        {"user_id": "dealer2"},
        {"valid_until": "2099-01-01T00:00:00Z"},
        {"extra": 1},
    ):
        with pytest.raises(GrantInvalid, match="does not verify"):
            StoredGrant.verify(json.dumps({**g, "claims": {**g["claims"], **edit}}), key)
    other_key = wire.b64encode(bytes(32))
    with pytest.raises(GrantInvalid):
        StoredGrant.verify(grant_json, other_key)
    for junk in ("", "[]", "{}", '{"claims": [], "signature": "x"}', '{"claims": {}, "signature": 5}'):
        with pytest.raises((ValueError, GrantInvalid)):
            StoredGrant.verify(junk, key)
