"""The trading CLI as a script sees it: exit codes, JSON, error ids, no traceback,
no secret in the log, no Textual import.  Real `lifeboat` subprocesses; a real
mainsim for the online path and the end-to-end outage scenario."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.backup_desk import build_template, fresh_console
from tests.cli_env import PASSWORD

WRONG = "hunter2-wrong"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return build_template(tmp_path_factory.mktemp("cli-trading-template"))


@pytest.fixture
def down(template, tmp_path):
    """dealer1's console, main down (connection refused)."""
    return fresh_console(template, tmp_path)


def clients_of(cli, dealer="dealer1") -> list[str]:
    with sqlite3.connect(cli.store_file) as con:
        return [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT p.client_id FROM positions p JOIN clients c ON c.client_id = p.client_id "
                "WHERE c.dealer_id = ? AND p.net_quantity != 0 ORDER BY 1",
                (dealer,),
            )
        ]


def a_long_position(cli, client):
    with sqlite3.connect(cli.store_file) as con:
        return con.execute(
            "SELECT exchange, symbol, product, net_quantity FROM positions WHERE client_id = ? "
            "AND net_quantity > 0 AND exchange != 'NFO' ORDER BY symbol LIMIT 1",
            (client,),
        ).fetchone()


def clean_failure(r, code: int, *words: str) -> str:
    assert r.returncode == code, f"exit {r.returncode}\nstdout={r.stdout}\nstderr={r.stderr}"
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    for w in words:
        assert w in r.stderr, r.stderr
    return r.stderr


def error_id(stderr: str) -> str:
    import re

    m = re.search(r"\[(E-[0-9A-F]{6})\]", stderr)
    assert m, stderr
    return m.group(1)


# --------------------------------------------------------------------------- the scenario


def test_main_killed_dealer_squares_off_wrong_password_and_new_exposure_refused(sim, cli_factory):
    cli = cli_factory(sim.url)
    cli.login().ok()
    cli("--password-stdin", "sync", "bod", stdin=PASSWORD + "\n").ok()
    client = clients_of(cli)[0]
    sim.kill()  # main dies

    r = cli("--password-stdin", "squareoff", "--client", client, "--yes", "--json", stdin=WRONG + "\n")
    err = clean_failure(r, 3, "wrong password")
    assert r.json()["ok"] is False and r.json()["error"]["code"] == "denied"  # --json: the failure as JSON

    r = cli(
        "--password-stdin", "squareoff", "--client", client, "--yes", "--json", stdin=PASSWORD + "\n"
    ).ok()
    out = r.json()
    assert out["mode"] == "BACKUP" and out["outcome"] == "journaled" and out["legs"]
    for leg in out["legs"]:
        assert set(leg) >= {
            "client_id",
            "exchange",
            "symbol",
            "product",
            "side",
            "quantity",
            "client_order_id",
            "outcome",
        }
        assert leg["client_id"] == client and leg["outcome"] == "journaled" and leg["client_order_id"]

    exch, symbol, product, _net = a_long_position(cli, clients_of(cli)[1])
    r = cli(
        "--password-stdin",
        "order",
        "place",
        "--client",
        clients_of(cli)[1],
        "--exchange",
        exch,
        "--symbol",
        symbol,
        "--side",
        "BUY",
        "--quantity",
        "1",
        "--product",
        product,
        "--type",
        "MARKET",
        "--yes",
        "--json",
        stdin=PASSWORD + "\n",
    )
    err = clean_failure(r, 4, "reduce_only", "adds exposure")
    eid = error_id(err)

    st = cli("status", "--json").ok().json()
    assert st["mode"] == "BACKUP" and st["journal_depth"] >= len(out["legs"])
    assert st["journal"]["unacknowledged"] == 0  # every answered entry was acknowledged
    assert cli("audit", "verify").returncode == 0

    log = cli.log_file.read_text()
    assert eid in log and PASSWORD not in log.replace('"password"', "") and WRONG not in log
    lines = [json.loads(line) for line in log.splitlines()]
    # ECS: event.action, user.name, our own fields under lifeboat.*
    sq = [
        x
        for x in lines
        if x.get("event", {}).get("action") == "squareoff" and x["lifeboat"].get("client_order_id")
    ]
    assert {x["lifeboat"]["client_order_id"] for x in sq} == {leg["client_order_id"] for leg in out["legs"]}
    assert all(x["lifeboat"]["console_id"] and x["lifeboat"]["mode"] == "BACKUP" for x in sq)
    assert all(x["user"]["name"] == "dealer1" and x["event"]["outcome"] == "success" for x in sq)


def test_online_squareoff_sends_legs_to_main_and_flattens(sim, cli_factory):
    cli = cli_factory(sim.url)
    cli.login().ok()
    cli("sync", "bod").ok()
    client = clients_of(cli)[0]
    dry = cli("squareoff", "--client", client, "--dry-run", "--json").ok().json()
    assert (
        dry["mode"] == "ONLINE" and dry["dry_run"] and all(leg["outcome"] == "dry_run" for leg in dry["legs"])
    )
    r = cli("squareoff", "--client", client, "--yes", "--json")
    out = r.json()
    assert out["mode"] == "ONLINE"
    assert r.returncode in (0, 4)
    assert all(
        leg["client_order_id"] and leg["outcome"] in ("complete", "open", "rejected") for leg in out["legs"]
    )
    pos = cli("positions", "--client", client, "--json").ok().json()
    flat = {(p["exchange"], p["symbol"], p["product"]) for p in pos if p["net_quantity"] == 0}
    done = {
        (leg["exchange"], leg["symbol"], leg["product"])
        for leg in out["legs"]
        if leg["outcome"] == "complete"
    }
    assert done and done <= flat
    assert (r.returncode == 4) == any(leg["outcome"] == "rejected" for leg in out["legs"])
    assert (
        out["ok"] is (r.returncode == 0) and dry["ok"] is True
    )  # one key for scripts, as in the failure object


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "args,code,words",
    [
        (("squareoff", "--yes"), 2, ["--client"]),
        (("squareoff", "--all", "--client", "C1001", "--yes"), 2, ["either"]),
        (("squareoff", "--all", "--symbol", "INFY", "--yes"), 2, ["--symbol needs --client"]),
        (("squareoff", "--all"), 2, ["--yes"]),  # a script without --yes is refused, not prompted
        (
            (
                "order",
                "place",
                "--client",
                "C1001",
                "--exchange",
                "NSE",
                "--symbol",
                "INFY",
                "--side",
                "BUY",
                "--quantity",
                "-5",
                "--product",
                "MIS",
                "--type",
                "MARKET",
                "--yes",
            ),
            2,
            ["--quantity"],
        ),
        (
            (
                "order",
                "place",
                "--client",
                "C1001",
                "--exchange",
                "NSE",
                "--symbol",
                "INFY",
                "--side",
                "HOLD",
                "--quantity",
                "5",
                "--product",
                "MIS",
                "--type",
                "MARKET",
                "--yes",
            ),
            2,
            ["--side"],
        ),
        (("order", "cancel", "--yes"), 2, ["--order-id"]),
        (
            (
                "order",
                "place",
                "--client",
                "C1001",
                "--exchange",
                "NSE",
                "--symbol",
                "INFY",
                "--side",
                "BUY",
                "--quantity",
                "5",
                "--product",
                "MIS",
                "--type",
                "LIMIT",
                "--price",
                "abc",
                "--yes",
            ),
            2,
            ["--price"],
        ),
        (("mode", "force"), 2, ["MODE"]),
        (("squareoff", "--bogus"), 2, ["--bogus"]),
    ],
)
def test_bad_flags_are_usage_errors(down, args, code, words):
    clean_failure(down("--password-stdin", *args, stdin=PASSWORD + "\n"), code, *words)


def test_unknown_client_and_symbol_are_refused_with_suggestions(down):
    r = down("--password-stdin", "squareoff", "--client", "NOPE1", "--yes", stdin=PASSWORD + "\n")
    clean_failure(r, 4, "unknown client")
    client = clients_of(down)[0]
    exch, symbol, product, _ = a_long_position(down, client)
    typo = symbol[:-1] + ("X" if symbol[-1] != "X" else "Y")
    r = down(
        "--password-stdin",
        "order",
        "place",
        "--client",
        client,
        "--exchange",
        exch,
        "--symbol",
        typo,
        "--side",
        "SELL",
        "--quantity",
        "1",
        "--product",
        product,
        "--type",
        "MARKET",
        "--yes",
        stdin=PASSWORD + "\n",
    )
    err = clean_failure(r, 4, "unknown_symbol")
    assert symbol in err  # "did you mean ..."


def test_scope_never_online_and_throttle_across_processes(down, template, tmp_path):
    other = clients_of(down, "dealer2")[0]
    clean_failure(
        down("--password-stdin", "squareoff", "--client", other, "--yes", stdin=PASSWORD + "\n"),
        3,
        "not in your scope",
    )
    clean_failure(
        down(
            "--user",
            "dealer2",
            "--password-stdin",
            "squareoff",
            "--client",
            other,
            "--yes",
            stdin=PASSWORD + "\n",
        ),
        5,
        "backup mode not possible",
    )
    client = clients_of(down)[0]
    for i in range(3):  # three processes fail, each counting on from what the last one left
        if i == 2:
            time.sleep(1.1)  # the delay after two wrong passwords
        clean_failure(
            down("--password-stdin", "squareoff", "--client", client, "--yes", stdin=WRONG + "\n"), 3
        )
    # the third locked dealer1 (localstore.credentials): a fourth process, even with the right password, is
    # refused, and told who can release it
    clean_failure(
        down("--password-stdin", "squareoff", "--client", client, "--yes", stdin=PASSWORD + "\n"),
        3,
        "is locked",
        "lifeboat user release dealer1",
    )


def test_supervisor_mode_override_is_audited(template, tmp_path):
    sup = fresh_console(template, tmp_path, user="super1")
    clean_failure(
        sup("--user", "dealer1", "--password-stdin", "mode", "force", "ONLINE", stdin=PASSWORD + "\n"),
        3,
        "supervisor",
    )
    r = sup("--password-stdin", "mode", "force", "BACKUP", "--json", stdin=PASSWORD + "\n").ok().json()
    assert r["forced_mode"] == "BACKUP" and r["forced_by"] == "super1"
    assert sup("status", "--json").ok().json()["forced_mode"] == "BACKUP"
    assert (
        sup("--password-stdin", "mode", "auto", "--json", stdin=PASSWORD + "\n").ok().json()["forced_mode"]
        is None
    )
    with sqlite3.connect(sup.store_file) as con:
        assert [r[0] for r in con.execute("SELECT action FROM audit_log WHERE action='mode_change'")] == [
            "mode_change",
            "mode_change",
        ]
        # the supervisor's stored grant no longer verifies (edited here): a local password
        # check, in any mode, is an authentication problem (exit 3), not "main down, backup
        # impossible"
        g = json.loads(
            con.execute("SELECT grant_json FROM offline_credentials WHERE user_id='super1'").fetchone()[0]
        )
        g["claims"]["valid_until"] = "2020-01-01T00:00:00Z"
        con.execute("UPDATE offline_credentials SET grant_json = ? WHERE user_id='super1'", (json.dumps(g),))
    err = clean_failure(
        sup("--password-stdin", "mode", "force", "BACKUP", stdin=PASSWORD + "\n"),
        3,
        "password cannot be checked on this console",
    )
    assert "backup mode not possible" not in err and "main system is unavailable" not in err


_PROBE = (
    "import sys; sys.argv=['lifeboat', *sys.argv[1:]]; import console.cli as c\n"
    "try:\n    c.main()\nexcept SystemExit:\n    pass\n"
    "print('TEXTUAL_IMPORTED', 'textual' in sys.modules)"
)


@pytest.mark.parametrize(
    "args",
    [["squareoff", "--all", "--dry-run", "--json"], ["policy", "show", "--json"], ["journal", "--json"]],
)
def test_trading_commands_never_import_textual(down, args):
    p = subprocess.run(
        [sys.executable, "-c", _PROBE, "--password-stdin", *args],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=down.env(),
        cwd=str(down.home),
        timeout=60,
    )
    lines = p.stdout.strip().splitlines()
    assert lines[-1] == "TEXTUAL_IMPORTED False", (p.stdout, p.stderr)
    assert len(lines) > 1 and json.loads(lines[0]) is not None


def test_killswitch_cancels_scope_orders_blocks_exposure_and_a_supervisor_releases_it(sim, cli_factory):
    from tests.cli_env import raw_get, raw_session

    cli = cli_factory(sim.url)
    cli.login().ok()
    cli.login("super1").ok()
    cli("sync", "bod").ok()
    token = raw_session(sim.url, "dealer1")["access_token"]
    mine = set(raw_session(sim.url, "dealer1")["user"]["client_ids"])
    open_before = [
        o for o in raw_get(sim.url, token, "/orders") if o["status"] in ("OPEN", "TRIGGER_PENDING")
    ]
    assert open_before, "the seeded desk has resting orders for dealer1"

    r = cli("killswitch", "--json")
    assert r.returncode == 0, r.stderr
    still_open = [
        o
        for o in raw_get(sim.url, token, "/orders")
        if o["status"] in ("OPEN", "TRIGGER_PENDING") and o["client_id"] in mine
    ]
    assert still_open == []

    client = clients_of(cli)[0]
    exch, sym, prod, _net = a_long_position(cli, client)
    with sqlite3.connect(cli.store_file) as con:
        lot = con.execute(
            "SELECT lot_size FROM instruments WHERE exchange=? AND symbol=?", (exch, sym)
        ).fetchone()[0]
    more = (
        "order",
        "place",
        "--client",
        client,
        "--exchange",
        exch,
        "--symbol",
        sym,
        "--side",
        "BUY",
        "--quantity",
        str(lot),
        "--product",
        prod,
        "--type",
        "MARKET",
        "--yes",
    )
    clean_failure(cli(*more), 4, "kill switch")

    refused = cli(
        "--password-stdin", "killswitch", "--off", stdin=PASSWORD + "\n"
    )  # a dealer cannot release it
    clean_failure(refused, 3, "supervisor")
    cli("--user", "super1", "--password-stdin", "killswitch", "--off", stdin=PASSWORD + "\n").ok()
    assert cli(*more).returncode == 0


def test_a_market_order_journaled_in_backup_carries_a_protection_price(down):
    client = clients_of(down)[0]
    exch, sym, prod, _ = a_long_position(down, client)
    with sqlite3.connect(down.store_file) as con:
        lot, last, tick, lower = con.execute(
            "SELECT lot_size, last_price, tick_size, lower_band FROM instruments WHERE exchange=? AND symbol=?",
            (exch, sym),
        ).fetchone()
    r = down(
        "--password-stdin",
        "order",
        "place",
        "--client",
        client,
        "--exchange",
        exch,
        "--symbol",
        sym,
        "--side",
        "SELL",
        "--quantity",
        str(lot),
        "--product",
        prod,
        "--type",
        "MARKET",
        "--yes",
        "--json",
        stdin=PASSWORD + "\n",
    )
    assert r.returncode == 0, r.stderr
    order = r.json()["order"]
    assert order["outcome"] == "journaled" and order["order_type"] == "LIMIT"
    # a SELL at most 2% below the book's last price (the default [rms] rule), on the tick, in the band
    units = 10_000  # the store keeps money as 1/10,000 units
    price = order["price"]
    assert max(lower, last * 0.98) / units - tick / units <= price <= last / units, (price, last, lower)
    with sqlite3.connect(down.store_file) as con:
        payload = json.loads(
            con.execute("SELECT payload FROM journal ORDER BY seq DESC LIMIT 1").fetchone()[0]
        )
    assert payload["order_type"] == "LIMIT" and float(payload["price"]) == price
