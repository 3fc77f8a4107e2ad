"""The console with a DR site configured (issue 12, the CLI's one-shot path), against real mainsim
processes and a real store: which site takes an action follows what the sites say of themselves
(role and epoch), never a guess.

Split brain needs no replication: two mainsims with the same seed, both primary, are exactly what
a console sees when the broker has promoted the DR site while main still answers as primary.
Every test checks, by client_order_id in both sites' own SQLite files, that nothing was sent
where it must not be and nothing is there twice.
"""

from __future__ import annotations

import sqlite3

from tests.cli_env import DEAD_URL, PASSWORD
from tests.integration.test_cli_trading import a_long_position, clients_of


def coids_on(sim) -> list[str]:
    """Every client_order_id in a site's own database (read beside the running process: WAL)."""
    with sqlite3.connect(f"file:{sim.db}?mode=ro", uri=True) as con:
        return [r[0] for r in con.execute("SELECT client_order_id FROM orders")]


def ready_console(cli_factory, main) -> object:
    cli = cli_factory(main.url)
    cli.login().ok()
    cli("--password-stdin", "sync", "bod", stdin=PASSWORD + "\n").ok()
    return cli


def test_split_brain_sends_to_neither_site_journals_and_raises_the_alarm(sim_factory, cli_factory):
    main, dr = sim_factory(), sim_factory()  # both say primary: a split brain
    cli = ready_console(cli_factory, main)
    before_main, before_dr = set(coids_on(main)), set(coids_on(dr))
    client = clients_of(cli)[0]

    st = cli("status", "--json", LIFEBOAT_DR_BACKEND_URL=dr.url)
    body = st.json()
    assert body["mode"] == "BACKUP", body
    sites = body["sites"]
    assert sites["split_brain"] is True and sites["active"] is None, sites
    assert {s["name"]: s["role"] for s in sites["sites"]} == {"main": "primary", "dr": "primary"}
    assert "split brain" in sites["reason"]
    text = cli("status", LIFEBOAT_DR_BACKEND_URL=dr.url).stdout
    assert "ALARM" in text and "split brain" in text and "local journal" in text, text

    r = cli(
        "--password-stdin",
        "squareoff",
        "--client",
        client,
        "--yes",
        "--json",
        stdin=PASSWORD + "\n",
        LIFEBOAT_DR_BACKEND_URL=dr.url,
    ).ok()
    out = r.json()
    assert out["mode"] == "BACKUP" and out["outcome"] == "journaled" and out["legs"], out
    legs = {leg["client_order_id"] for leg in out["legs"]}
    # nothing reached either site: each still holds exactly the orders it had
    assert set(coids_on(main)) == before_main and set(coids_on(dr)) == before_dr
    assert not legs & (before_main | before_dr)
    log = cli.log_file.read_text()
    assert "split_brain" in log  # the alarm is in the log too


def test_an_unreachable_dr_site_is_shown_and_main_takes_the_order(sim, cli_factory):
    cli = ready_console(cli_factory, sim)
    client = clients_of(cli)[0]
    exch, symbol, product, _net = a_long_position(cli, client)

    body = cli("status", "--json", "--dr-backend", DEAD_URL).json()
    assert body["mode"] == "ONLINE" and body["sites"]["active"] == "main", body
    dr = next(s for s in body["sites"]["sites"] if s["name"] == "dr")
    assert dr["reachable"] is False and dr["error"], dr
    text = cli("status", "--dr-backend", DEAD_URL).stdout
    assert "site dr" in text and "UNREACHABLE" in text and "actions go to  main" in text, text

    r = cli(
        "--password-stdin",
        "order",
        "place",
        "--client",
        client,
        "--exchange",
        exch,
        "--symbol",
        symbol,
        "--side",
        "SELL",
        "--quantity",
        "1",
        "--product",
        product,
        "--type",
        "MARKET",
        "--yes",
        "--json",
        "--dr-backend",
        DEAD_URL,
        stdin=PASSWORD + "\n",
    ).ok()
    order = r.json()
    assert order["mode"] == "ONLINE" and order["outcome"] == "done", order
    assert coids_on(sim).count(order["order"]["client_order_id"]) == 1


def test_a_bad_dr_address_is_a_usage_error(sim, cli_factory, tmp_path):
    cli = cli_factory(sim.url)
    r = cli("status", "--dr-backend", "ftp://dr.example")
    assert r.returncode == 2 and "--dr-backend" in r.stderr and "not an http" in r.stderr, r.stderr
    r = cli("status", "--dr-backend", sim.url)
    assert r.returncode == 2 and "is the main backend itself" in r.stderr, r.stderr
    cli.home.mkdir(parents=True, exist_ok=True)
    (cli.home / "config.toml").write_text('[backend]\ndr_url = "not a url"\n')
    r = cli("status")
    assert r.returncode == 2 and "backend.dr_url must be an http(s):// URL" in r.stderr, r.stderr


def test_main_killed_dr_promoted_the_cli_acts_at_dr_and_a_stale_main_is_fenced(sim_factory, cli_factory):
    """The three tiers by the CLI: main, then the DR site once promoted (mode DR, the order taken
    there once), then the journal when the only primary left is an old main at a lower epoch."""
    import httpx

    from tests.integration.test_mainsim_dr import caught_up, orders_in, standby_args, supervisor
    from tests.mainsim_support import API

    main = sim_factory()
    dr = sim_factory(extra_args=standby_args(main.url))
    cli = ready_console(cli_factory, main)
    cli.extra_env["LIFEBOAT_DR_BACKEND_URL"] = dr.url
    client = clients_of(cli)[0]

    body = cli("status", "--json").json()
    assert body["mode"] == "ONLINE" and body["sites"]["active"] == "main", body
    roles = {s["name"]: (s["role"], s["epoch"]) for s in body["sites"]["sites"]}
    assert roles == {"main": ("primary", 0), "dr": ("standby", 0)}, roles
    text = cli("status").stdout
    assert f"following {main.url}" in text and "replication lag" in text, text
    caught_up(dr, list(orders_in(main.db)))

    main.kill()  # the disaster; the broker declares the DR site primary
    r = httpx.post(f"{dr.url}{API}/admin/promote", headers=supervisor(dr), timeout=10)
    assert r.status_code == 200, r.text

    out = (
        cli("--password-stdin", "squareoff", "--client", client, "--yes", "--json", stdin=PASSWORD + "\n")
        .ok()
        .json()
    )
    assert out["mode"] == "DR" and out["outcome"] == "done" and out["legs"], out
    legs = [leg["client_order_id"] for leg in out["legs"]]
    assert all(leg["outcome"] not in ("journaled", "rejected") for leg in out["legs"]), out["legs"]
    on_dr, on_main = orders_in(dr.db), orders_in(main.db)
    assert set(legs) <= set(on_dr) and not set(legs) & set(on_main)  # at DR, once; never at main
    body = cli("status", "--json").json()
    assert body["mode"] == "DR" and body["sites"]["active"] == "dr" and body["sites"]["highest_epoch"] == 1
    with sqlite3.connect(cli.store_file) as con:  # audited as what it was: an action at the DR site
        modes = {r[0] for r in con.execute("SELECT mode FROM audit_log WHERE action = 'square_off'")}
    assert modes == {"DR"}, modes

    # main restarted by mistake as a primary (its old epoch 0) while DR still says primary: split brain
    main.start()
    body = cli("status", "--json").json()
    assert body["mode"] == "BACKUP" and body["sites"]["split_brain"] is True, body["sites"]
    # DR lost too: the only primary left is main at epoch 0 < 1: fenced off, the journal takes it
    dr.kill()
    body = cli("status", "--json").json()
    assert body["sites"]["fenced"] == "main" and body["sites"]["active"] is None, body["sites"]
    assert "fenced" in cli("status").stdout
    again = (
        cli(
            "--password-stdin",
            "squareoff",
            "--client",
            clients_of(cli)[1],
            "--yes",
            "--json",
            stdin=PASSWORD + "\n",
        )
        .ok()
        .json()
    )
    assert again["mode"] == "BACKUP" and again["outcome"] == "journaled", again
    assert not {leg["client_order_id"] for leg in again["legs"]} & set(orders_in(main.db))


def test_answers_lost_at_the_switch_are_looked_up_at_dr_and_the_squareoff_never_overshoots(
    sim_factory, cli_factory
):
    """Main takes a square-off leg and an order, but their answers are lost (the hostile proxy
    forwards the request and spoils the reply); then main dies and the DR site is promoted.
    The order is found on DR by its client_order_id (replicated), and the square-off run again
    at DR is computed from DR's live positions: the position already squared is not sold again."""
    import httpx

    from tests.cli_env import raw_get, raw_session
    from tests.hostile_proxy import ThreadedHostileProxy
    from tests.integration.test_mainsim_dr import caught_up, orders_in, standby_args, supervisor
    from tests.mainsim_support import API

    main = sim_factory()
    dr = sim_factory(extra_args=standby_args(main.url))
    with ThreadedHostileProxy(main.url) as proxy:
        cli = ready_console(cli_factory, type("Via", (), {"url": proxy.url})())
        cli.extra_env.update(LIFEBOAT_DR_BACKEND_URL=dr.url, LIFEBOAT_REQUEST_DEADLINE_S="3")
        client = clients_of(cli)[0]
        exch, symbol, product, _net = a_long_position(cli, client)
        proxy.misbehave("/orders", "not_http", method="POST", forward=True)  # main acts, the answer is lost
        placed = cli(
            "--password-stdin",
            "order",
            "place",
            "--client",
            client,
            "--exchange",
            exch,
            "--symbol",
            symbol,
            "--side",
            "SELL",
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
        assert placed.returncode == 5, (placed.stdout, placed.stderr)
        message = placed.json()["error"]["message"]
        assert "may have reached" in message and "look it up" in message, message
        coid = message.split("order ", 1)[1].split(" ", 1)[0]
        first = cli(
            "--password-stdin", "squareoff", "--client", client, "--yes", "--json", stdin=PASSWORD + "\n"
        )
        assert first.returncode == 5, (first.stdout, first.stderr)
        legs = first.json()["legs"]
        assert legs[0]["outcome"] == "unknown", legs  # sent; main may have it
        lost_leg = legs[0]
        caught_up(dr, list(orders_in(main.db)))
    main.kill()
    r = httpx.post(f"{dr.url}{API}/admin/promote", headers=supervisor(dr), timeout=10)
    assert r.status_code == 200, r.text

    # the order whose answer was lost is on DR, once: the dealer looks it up, nothing is re-sent
    on_dr = orders_in(dr.db)
    assert coid in on_dr and lost_leg["client_order_id"] in on_dr
    mine = cli("orders", "--client", client, "--json").ok().json()
    assert [o["client_order_id"] for o in mine].count(coid) == 1

    second = (
        cli("--password-stdin", "squareoff", "--client", client, "--yes", "--json", stdin=PASSWORD + "\n")
        .ok()
        .json()
    )
    assert second["mode"] == "DR", second
    assert lost_leg["symbol"] not in {leg["symbol"] for leg in second["legs"]}  # already squared: not again
    token = raw_session(dr.url, "dealer1")["access_token"]
    rows = raw_get(dr.url, token, "/positions", client_id=client)
    assert rows and all(p["net_quantity"] == 0 for p in rows), rows  # flat, never short of it
    unique = orders_in(dr.db)  # no client_order_id twice (asserted inside), none of ours missing
    assert {leg["client_order_id"] for leg in second["legs"]} <= set(unique)
