"""The intraday cut-off as `lifeboat agent` runs it by itself: the whole world's clock (injected,
LIFEBOAT_CLOCK_OFFSET_S: mainsim, the agent and the CLI alike) starts a few seconds before the
NSE cut-off; at the cut-off the agent squares off the dealer's NSE MIS positions on main;
restarted after it, it sends nothing again.  After the cut-off a new MIS order is refused
(exit 4), a CNC order is not.  Real mainsim, real agent, real store."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from contract import clock
from sync.rms import cutoff
from sync.rms.settings import RmsSettings
from tests.replay_env import Main
from tests.testclock import offset_to

pytestmark = pytest.mark.timeout(120)


def _log_events(cli) -> list[dict]:
    if not cli.log_file.exists():
        return []
    return [json.loads(line) for line in cli.log_file.read_text().splitlines() if line.strip()]


def _wait(pred, what: str, timeout: float = 40.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


LEAD_S = 12  # the world starts this long before the NSE cut-off: time to log in and start the agent


def test_agent_cuts_off_once_across_a_restart_and_refuses_new_mis(sim_factory, cli_factory, monkeypatch):
    when = cutoff.cutoff_at(RmsSettings(), "NSE", clock.today_ist())
    monkeypatch.setenv(clock.OFFSET_ENV, offset_to(when - timedelta(seconds=LEAD_S)))
    sim = sim_factory()
    cli = cli_factory(sim.url)
    cli.login().ok()
    main = Main(sim.url)
    try:
        mine = {p["client_id"] for p in cli("positions", "--json").ok().json()}

        def open_mis(segment: str) -> list[dict]:
            return [
                p
                for p in main.http.get("/positions").json()
                if p["client_id"] in mine
                and p["product"] == "MIS"
                and p["exchange"] == segment
                and p["net_quantity"]
            ]

        assert open_mis("NSE"), "dealer1 holds NSE MIS positions (else this test proves nothing)"
        nets = lambda rows: {(p["client_id"], p["symbol"]): p["net_quantity"] for p in rows}  # noqa: E731
        nfo_before = nets(open_mis("NFO"))
        assert clock.utcnow() < when - timedelta(seconds=3), "too slow to start before the cut-off"
        agent = cli.popen("agent")
        try:
            _wait(lambda: not open_mis("NSE"), "the agent's cut-off flattening NSE MIS on main")
            # NSE and BSE share 15:20: both runs end (in the log) before the agent is stopped
            _wait(
                lambda: (
                    {
                        e["lifeboat"].get("segment")
                        for e in _log_events(cli)
                        if e.get("event", {}).get("action") == "rms_cutoff"
                    }
                    >= {"NSE", "BSE"}
                ),
                "both 15:20 cut-offs in the log",
            )
        finally:
            agent.terminate()
            agent.wait(15)
        assert agent.returncode == 0
        warned = [e for e in _log_events(cli) if e.get("event", {}).get("action") == "rms_cutoff_warning"]
        assert any(e["lifeboat"]["segment"] == "NSE" for e in warned)  # T-5 had passed at the start
        assert nets(open_mis("NFO")) == nfo_before and nfo_before  # 15:25 had not come for NFO
        counts = main.coid_counts()
        assert any(c.startswith("RMS") for c in counts)

        # restarted after the cut-off: the day's run is found, nothing is sent again
        again = cli.popen("agent")
        try:
            _wait(
                lambda: any(
                    e.get("event", {}).get("action") == "rms_cutoff_already"
                    and e["lifeboat"].get("segment") == "NSE"
                    for e in _log_events(cli)
                ),
                "the restarted agent finding the day's cut-off",
            )
        finally:
            again.terminate()
            again.wait(15)
        assert main.coid_counts() == counts

        # after the cut-off: a new MIS order is refused, a CNC one is not
        client = sorted(mine)[0]
        order = (
            "order",
            "place",
            "--client",
            client,
            "--exchange",
            "NSE",
            "--symbol",
            "INFY",
            "--side",
            "BUY",
            "--quantity",
            "1",
            "--type",
            "MARKET",
            "--yes",
            "--json",
        )
        refused = cli("--password-stdin", *order, "--product", "MIS", stdin="demo\n")
        assert refused.returncode == 4, refused.stderr
        assert (
            refused.json()["error"]["reason"] == "intraday_cutoff"
            and "15:20" in refused.json()["error"]["message"]
        )
        ok = cli("--password-stdin", *order, "--product", "CNC", stdin="demo\n")
        assert ok.returncode == 0, ok.stderr
    finally:
        main.close()


def test_killswitch_release_waits_out_the_cooldown(sim, cli_factory):
    from datetime import UTC, datetime

    cli = cli_factory(sim.url, user="super1")
    cli.login().ok()
    cli("sync", "bod").ok()
    (cli.home / "config.toml").write_text("[rms]\nkillswitch_cooldown_minutes = 10\n")
    cli("killswitch", "--yes", "--json").ok()
    early = cli("--password-stdin", "killswitch", "--off", "--json", stdin="demo\n")
    assert early.returncode == 4 and early.json()["error"]["reason"] == "killswitch_cooldown", early.stdout
    assert "killswitch_cooldown_minutes = 10" in early.json()["error"]["message"]
    later = offset_to(datetime.now(UTC) + timedelta(minutes=11) + (clock.utcnow() - datetime.now(UTC)))
    released = cli(
        "--password-stdin", "killswitch", "--off", "--json", stdin="demo\n", LIFEBOAT_CLOCK_OFFSET_S=later
    )
    assert released.returncode == 0, released.stderr
