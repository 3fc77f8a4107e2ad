"""The issue-3 CLI as a script sees it: `lifeboat login|logout|status|sync bod|
positions|orders|agent|audit verify` run as real subprocesses against a real
mainsim, checked by exit code, stdout JSON, stderr message and the files they leave
(store, JSON-lines log).  One mainsim serves the whole module; each test that
needs a clean console gets its own LIFEBOAT_HOME."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from localstore import audit
from localstore.db import open_store
from tests.cli_env import DEAD_URL, PASSWORD, Cli, raw_get, raw_session
from tests.simproc import SimProcess
from tests.sync_env import Dealer, simple_burst, wait_until_mirrored


@pytest.fixture(scope="module")
def book_sim(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cli-book-sim")
    sim = SimProcess(db=workdir / "mainsim.db", workdir=workdir).start()
    yield sim
    sim.kill()


def new_console(tmp_path_factory, url: str, name: str, user: str = "dealer1") -> Cli:
    base = tmp_path_factory.mktemp(name)
    return Cli(home=base / "home", backend_url=url, keyring_file=base / "keyring.json", user=user)


@pytest.fixture(scope="module")
def desk(book_sim, tmp_path_factory) -> Cli:
    """dealer1's console, logged in with a BOD taken."""
    cli = new_console(tmp_path_factory, book_sim.url, "desk")
    cli.login().ok()
    cli("sync", "bod").ok()
    return cli


def assert_clean_failure(r, code: int, *words: str) -> None:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert r.stderr.startswith("lifeboat: ") and "[E-" in r.stderr  # short message + error id
    for w in words:
        assert w in r.stderr, r.stderr


# --------------------------------------------------------------------------- session


def test_session_lifecycle_and_no_secret_in_the_log(book_sim, tmp_path_factory):
    cli = new_console(tmp_path_factory, book_sim.url, "session")

    bad = cli("--user", "dealer1", "--password-stdin", "login", stdin="not-the-password\n")
    assert_clean_failure(bad, 3, "refused", "Wrong user id or password")

    good = cli.login().ok()
    assert "Logged in as dealer1" in good.stderr and "token kept" in good.stderr
    token = json.loads(cli.keyring_file.read_text())[
        "lifeboat\0dealer1"
    ]  # the keyring also holds the trust anchors
    con = sqlite3.connect(cli.store_file)
    try:
        grant_json, verifier = con.execute("SELECT grant_json, verifier FROM offline_credentials").fetchone()
    finally:
        con.close()
    signature = json.loads(grant_json)["signature"]

    # Commands that carry the token, then a logout that must forget it.
    assert cli("sync", "bod", "--json").ok().json()["positions"] > 0
    cli("logout").ok()
    assert token not in cli.keyring_file.read_text()
    after = cli("positions", "--json")
    assert_clean_failure(after, 3, "no saved session")

    raw_token = raw_session(book_sim.url)["access_token"]
    log = cli.log_file.read_text()
    events = [json.loads(line) for line in log.splitlines()]  # ECS: event.action, user.name, lifeboat.*
    assert all(e["ecs.version"] and e["service"]["name"] == "lifeboat" for e in events)
    assert {"login", "command_failed"} <= {e.get("event", {}).get("action") for e in events}
    con = sqlite3.connect(cli.store_file)
    try:
        (console_id,) = con.execute("SELECT console_id FROM console_identity").fetchone()
    finally:
        con.close()
    login_line = next(e for e in events if e.get("event", {}).get("action") == "login")
    assert login_line["lifeboat"]["console_id"] == console_id and login_line["user"]["name"] == "dealer1"
    assert login_line["event"]["outcome"] == "success"
    for secret in (token, raw_token, signature, str(verifier)):
        assert secret not in log

    def leaves(x):  # every value of a line, however deep its field
        if isinstance(x, dict):
            x = list(x.values())
        return [v for y in x for v in leaves(y)] if isinstance(x, list) else [x]

    assert not any(v == PASSWORD for e in events for v in leaves(e))

    con = sqlite3.connect(cli.store_file)  # the audit log names actions, never secrets
    try:
        audit_text = "\n".join(p for (p,) in con.execute("SELECT payload FROM audit_log"))
        actions = {a for (a,) in con.execute("SELECT action FROM audit_log")}
    finally:
        con.close()
    assert {"login", "bod_sync", "logout"} <= actions
    for secret in (token, signature, str(verifier)):
        assert secret not in audit_text


def test_login_with_main_down_exits_5(tmp_path_factory):
    cli = new_console(tmp_path_factory, DEAD_URL, "down")
    r = cli.login()
    assert_clean_failure(r, 5, "unavailable")


# --------------------------------------------------------------------------- status


def test_status_json_online_then_backup(desk):
    online_r, backup_r = desk.many(("status", "--json"), ("--backend", DEAD_URL, "status", "--json"))
    online = online_r.ok().json()
    assert online["mode"] == "ONLINE"
    assert online["backend"]["reachable"] is True and online["backend"]["url"] == desk.backend_url
    assert online["journal_depth"] == 0 and online["replay"]["state"] == "idle"
    assert online["console_id"] and online["store"] == str(desk.store_file)
    assert online["last_bod"]["seq"] is not None and online["last_bod"]["trading_date"]
    assert set(online["mirror"]) == {"last_event_seq", "newest_event_at", "current_at", "staleness_s"}
    assert online["mirror"]["staleness_s"] >= 0

    backup = backup_r.ok().json()  # the same console, pointed at a backend that is down
    assert backup["mode"] == "BACKUP"
    assert backup["backend"]["reachable"] is False and "refused" in backup["backend"]["error"]
    assert backup["console_id"] == online["console_id"] and backup["last_bod"] == online["last_bod"]


# --------------------------------------------------------------------------- book


def test_local_book_equals_main_right_after_bod(desk, book_sim):
    local, main = (
        r.ok().json() for r in desk.many(("positions", "--local", "--json"), ("positions", "--json"))
    )
    key = lambda p: (p["client_id"], p["exchange"], p["symbol"], p["product"])  # noqa: E731
    assert local and {key(p): p["net_quantity"] for p in local} == {key(p): p["net_quantity"] for p in main}

    # open orders too (read in-process through the service and plain HTTP: cheaper than two more subprocesses)
    svc = desk.service()
    try:
        local_orders = {o.order_id for o in svc.local_orders()}
    finally:
        svc.close()
    token = raw_session(book_sim.url)["access_token"]
    main_open = {
        o["order_id"]
        for o in raw_get(book_sim.url, token, "/orders")
        if o["status"] in ("OPEN", "TRIGGER_PENDING")
    }
    assert local_orders and local_orders == main_open


def test_other_dealers_client_and_unknown_client_are_refused(desk, book_sim):
    other = raw_session(book_sim.url, "dealer2")["user"]["client_ids"][0]
    mine = raw_session(book_sim.url, "dealer1")["user"]["client_ids"]
    assert other not in mine

    r, unknown = desk.many(
        ("orders", "--client", other, "--json"), ("positions", "--local", "--client", "UNKNOWN", "--json")
    )
    assert_clean_failure(r, 3, other)
    assert json.loads(r.stdout)["error"]["code"] == "denied"  # --json: the failure as one JSON object
    r = unknown
    assert_clean_failure(r, 4, "UNKNOWN")
    assert json.loads(r.stdout)["error"]["code"] == "rejected"


def test_audit_verify_after_login_and_bod(desk):
    r = desk("audit", "verify").ok()
    # the login's row is covered by the checkpoint main witnessed at login; the BOD's is not yet
    # covered by any, and is said to be so (never "intact")
    assert "links consistent" in r.stdout and "not yet covered" in r.stdout, r.stdout
    assert "intact" not in r.stdout


# --------------------------------------------------------------------------- import discipline

_PROBE = (
    "import sys; sys.argv=['lifeboat', *sys.argv[1:]]; import console.cli as c\n"
    "try:\n    c.main()\nexcept SystemExit:\n    pass\n"
    "print('TEXTUAL_IMPORTED', 'textual' in sys.modules)"
)


@pytest.mark.parametrize("args", [["status", "--json"], ["--help"]])
def test_cli_path_never_imports_textual(desk, args):
    p = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        env=desk.env(),
        cwd=str(desk.home),
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[-1] == "TEXTUAL_IMPORTED False", p.stdout
    assert len(lines) > 1  # the command itself ran and printed


# --------------------------------------------------------------------------- agent


def _wait_for_agent_mirror(agent, dealer: Dealer, store) -> None:
    assert agent.poll() is None, agent.communicate()[1]
    wait_until_mirrored(dealer, store, timeout=30)
    assert agent.poll() is None, agent.communicate()[1]


def _stop(agent, sig=signal.SIGTERM) -> str:
    try:
        agent.send_signal(sig)
        _, err = agent.communicate(timeout=15)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.communicate(timeout=10)
    return err


def test_agent_killed_mid_burst_resumes_without_loss(book_sim, tmp_path_factory):
    """`lifeboat agent` mirrors; kill -9 while orders flow; a new agent resumes from the
    committed resume point (a batch and its seq commit together) and loses nothing.
    dealer2's console, so dealer1's book in this module's other tests is untouched."""
    cli = new_console(tmp_path_factory, book_sim.url, "agent", user="dealer2")
    cli.login().ok()
    dealer = Dealer(book_sim.url, user="dealer2")
    agent = cli.popen("agent")
    store = None
    try:
        deadline = time.monotonic() + 30
        while not cli.store_file.exists() or _bod_seq(cli.store_file) is None:  # the agent's own BOD
            assert agent.poll() is None and time.monotonic() < deadline, agent.communicate()[1]
            time.sleep(0.1)
        store = open_store(cli.store_file)
        simple_burst(dealer, 4)
        _wait_for_agent_mirror(agent, dealer, store)

        simple_burst(dealer, 10, start=4)
        err = _stop(agent, signal.SIGKILL)  # mid-burst: some events received, some committed, some not
        assert agent.returncode == -signal.SIGKILL, err
        simple_burst(dealer, 10, start=14)  # and the desk goes on trading

        agent = cli.popen("agent")
        _wait_for_agent_mirror(agent, dealer, store)
        err = _stop(agent)
        assert agent.returncode == 0, err
        assert "agent running for dealer2" in err and "agent stopped" in err and "Traceback" not in err
    finally:
        if agent.poll() is None:
            _stop(agent, signal.SIGKILL)
        dealer.close()
        if store is not None:
            store.close()
    con = sqlite3.connect(cli.store_file)
    try:
        reasons = [
            json.loads(p)["reason"]
            for (p,) in con.execute("SELECT payload FROM audit_log WHERE action = 'bod_sync' ORDER BY id")
        ]
    finally:
        con.close()
    assert reasons == ["start of agent"]  # the second agent resumed by sequence, no fresh snapshot
    store = open_store(cli.store_file)
    try:
        with store.read() as s:
            assert audit.verify(s).ok
    finally:
        store.close()


def _bod_seq(store_file):
    con = sqlite3.connect(store_file)
    try:
        row = con.execute("SELECT bod_seq FROM sync_state WHERE id = 1").fetchone()
    except sqlite3.OperationalError:  # the agent has not created the schema yet
        return None
    finally:
        con.close()
    return row[0] if row else None


def test_a_shared_console_shows_each_dealer_only_their_own_clients(sim, cli_factory):
    """dealer1 took the BOD on this console; dealer2 logs in on the same console: the
    local book answers dealer2 with dealer2's clients only, and refuses dealer1's."""
    console = cli_factory(sim.url)
    console.login("dealer1").ok()
    console.bod_in_process()
    d1_clients = set(raw_session(sim.url, "dealer1")["user"]["client_ids"])
    console.login("dealer2").ok()
    d2 = raw_session(sim.url, "dealer2")["user"]["client_ids"]

    as_d1 = console("--user", "dealer1", "positions", "--local", "--json").ok().json()
    assert as_d1 and {p["client_id"] for p in as_d1} <= d1_clients

    as_d2 = console("--user", "dealer2", "positions", "--local", "--json").ok().json()
    assert {p["client_id"] for p in as_d2} <= set(d2)
    assert not {p["client_id"] for p in as_d2} & d1_clients

    other = sorted(d1_clients)[0]
    refused = console("--user", "dealer2", "orders", "--local", "--client", other)
    assert refused.returncode == 3, refused.stderr
    assert other in refused.stderr and "scope" in refused.stderr
