"""The console's runtime (agent and screen alike) with a DR site: real mainsim processes (a
primary, a standby following it), a real store.  The runtime follows what the sites say of
themselves (role, epoch): main killed and the DR site promoted -> DR (the runtime's one client
now at the DR site, its book and stream from there); split brain -> BACKUP, held, with an
alarm; a journal entry written meanwhile replayed to whichever site is primary; the planned
switch-back -> ONLINE at main.  Every step ends by reading both sites' SQLite files: no
client_order_id twice, none missing.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sqlalchemy import select

from backend_client.client import BackendClient
from backend_client.detector import Detector, Mode
from contract import clock
from localstore.db import open_store
from localstore.models import ConsoleState, JournalEntry, JournalKind, JournalState
from sync.runtime import Runtime
from tests.cli_env import enrolled_for_test, raw_get, raw_session
from tests.integration.test_detector_live import PASSWORD, AgentThread
from tests.integration.test_mainsim_dr import caught_up, health, orders_in, standby_args, supervisor
from tests.mainsim_support import API, Desk, order_body


class DrAgent(AgentThread):
    """AgentThread's runtime with the DR site configured (as `lifeboat agent --dr-backend`)."""

    def __init__(self, store, url: str, dr_url: str, token: str | None = None, **kw):
        super().__init__(store, url, **kw)
        self.dr_url, self.token = dr_url, token  # a token: the session kept from an earlier login

    async def _run(self) -> None:
        import asyncio

        self._loop = asyncio.get_running_loop()
        async with BackendClient(self.url, token=self.token) as client:
            if self.token is None:
                await client.login(self.user, PASSWORD)
            detector = Detector(now=time.monotonic(), min_dwell=self.min_dwell)
            runtime = Runtime(self.store, client, detector=detector, user_id=self.user, dr_url=self.dr_url)
            runtime.mode_callbacks.append(self.changes.append)
            self.runtime = runtime
            await runtime.run()

    def wait_shown(self, mode: str, timeout: float = 30.0) -> float:
        return self.wait_for(lambda r: r.mode == mode, f"shown {mode}", timeout)


def stored_mode(store) -> str:
    with store.read() as s:
        return s.get(ConsoleState, 1).mode


def entry_states(store) -> dict[str, tuple[JournalState, str | None]]:
    with store.read() as s:
        return {e.client_order_id: (e.state, e.state_reason) for e in s.scalars(select(JournalEntry))}


def unique_everywhere(*sims) -> None:
    for sim in sims:
        orders_in(sim.db)  # asserts no client_order_id twice in that database


@pytest.mark.timeout(180)
def test_dr_promoted_split_brain_replay_at_dr_and_the_switch_back(sim_factory, tmp_path):
    the_story(sim_factory, tmp_path)


@pytest.mark.soak
@pytest.mark.timeout(900)
def test_the_dr_story_again_and_again(sim_factory, tmp_path):
    """The soak: the whole story (promotion, a restart at DR, split brain, journal replayed at
    DR, lost answers at the switch, switch-back) ten times, each on new sites and a new store."""
    for n in range(10):
        (tmp_path / f"round{n}").mkdir()
        the_story(sim_factory, tmp_path / f"round{n}")


def the_story(sim_factory, tmp_path) -> None:
    main = sim_factory()
    dr = sim_factory(extra_args=standby_args(main.url))
    token = raw_session(main.url, "dealer1")["access_token"]
    resting = next(o for o in raw_get(main.url, token, "/orders") if o["status"] == "OPEN")
    store = enrolled_for_test(open_store(tmp_path / "lifeboat.db"))
    agent = DrAgent(store, main.url, dr.url, min_dwell=1.0).start()
    try:
        agent.wait_for(lambda r: r.sites is not None and r.sites.active is not None, "sites surveyed")
        assert agent.runtime.mode == "ONLINE" and agent.runtime.sites.active.name == "main"
        # an order that reached main just before the disaster, its answer lost: replicated to DR
        desk = Desk(main.url, "dealer1")
        inst = next(i for (ex, _), i in sorted(desk.instruments().items()) if ex == "NSE")
        in_flight = order_body(resting["client_id"], inst, quantity=1, client_order_id="DR-INFLIGHT-1")
        assert desk.post_order(**in_flight).status_code == 201
        caught_up(dr, list(orders_in(main.db)))

        # the disaster: main killed, the broker promotes the DR site
        main.kill()
        agent.wait_mode(Mode.BACKUP, timeout=10)
        r = httpx.post(f"{dr.url}{API}/admin/promote", headers=supervisor(dr), timeout=10)
        assert r.status_code == 200, r.text
        agent.wait_shown("DR")
        rt = agent.runtime
        assert rt.client.base_url == dr.url and rt.site == "dr"
        agent.wait_for(lambda r: stored_mode(store) == "DR", "DR recorded as what it is")
        agent.wait_for(lambda r: any(c.to_mode is Mode.DR for c in agent.changes), "DR announced")
        agent.wait_for(lambda r: r.status.connected, "stream at the DR site")
        assert any("DR site" in c.reason for c in agent.changes if c.to_mode is Mode.DR)

        # the console restarted in the middle (its session kept): back at the DR site by itself
        agent.stop()
        assert agent.error is None
        kept = raw_session(dr.url, "dealer1")["access_token"]
        agent = DrAgent(store, main.url, dr.url, token=kept, min_dwell=1.0).start()
        agent.wait_shown("DR")
        assert agent.runtime.site == "dr" and agent.runtime.client.base_url == dr.url

        # main restarted by mistake as a primary at its old epoch: split brain, held in BACKUP
        main.start()
        agent.wait_shown("BACKUP")
        assert agent.runtime.detector.fenced and "split brain" in agent.runtime.detector.reason
        time.sleep(2.5)  # past the dwell and the rise: a fenced runtime stays in BACKUP
        assert agent.runtime.mode == "BACKUP"
        with store.write() as s:  # an action while no site may take it: the journal
            for coid in ("DR-INFLIGHT-1", "DR-LOST-1"):  # sent to main, answers lost at the switch
                s.add(
                    JournalEntry(
                        kind=JournalKind.PLACE,
                        client_order_id=coid,
                        client_id=resting["client_id"],
                        exchange=inst["exchange"],
                        symbol=inst["symbol"],
                        product="MIS",
                        payload=json.dumps({"side": "BUY", "quantity": 1, "order_type": "MARKET"}),
                        state=JournalState.SENT,
                        sent_to=main.url,
                        attempts=1,
                        user_id="dealer1",
                        mode="ONLINE",
                        trading_date=clock.today_ist(),
                        console_id=store.console_id,
                    )
                )
            s.add(
                JournalEntry(
                    kind=JournalKind.CANCEL,
                    client_order_id="DR-CANCEL-1",
                    client_id=resting["client_id"],
                    target_order_id=resting["order_id"],
                    user_id="dealer1",
                    mode="BACKUP",
                    trading_date=clock.today_ist(),
                    console_id=store.console_id,
                )
            )
        # the stale main goes away again: DR alone is primary; the journal is replayed THERE
        main.kill()
        agent.wait_shown("DR")
        assert agent.runtime.site == "dr" and agent.runtime.detector.fenced is None
        dr_token = raw_session(dr.url, "dealer1")["access_token"]
        agent.wait_for(
            lambda r: raw_get(dr.url, dr_token, f"/orders/{resting['order_id']}")["status"] == "CANCELLED",
            "the journaled cancel replayed at the DR site",
        )
        # in flight at the switch: found on DR by its client_order_id (replicated), so not sent
        # again; the one replication had not carried is held for a person, never sent a second way
        states = entry_states(store)
        assert states["DR-INFLIGHT-1"][0] is JournalState.APPLIED, states
        assert states["DR-LOST-1"][0] is JournalState.HELD and "outcome unknown" in states["DR-LOST-1"][1]
        assert "DR-LOST-1" not in orders_in(dr.db) and list(orders_in(dr.db)).count("DR-INFLIGHT-1") == 1
        unique_everywhere(main, dr)

        # the planned switch-back: main comes back as a standby of DR, catches up, is promoted,
        # and DR is demoted to follow it; the console goes back to main (ONLINE)
        main.extra_args = standby_args(dr.url)
        main.start()
        caught_up(main, list(orders_in(dr.db)))
        r = httpx.post(f"{main.url}{API}/admin/promote", headers=supervisor(main), timeout=10)
        assert r.status_code == 200, r.text
        r = httpx.post(
            f"{dr.url}{API}/admin/demote", headers=supervisor(dr), json={"follow": main.url}, timeout=10
        )
        assert r.status_code == 200, r.text
        agent.wait_shown("ONLINE", timeout=40)
        assert agent.runtime.site == "main" and agent.runtime.client.base_url == main.url
        assert health(main).json()["epoch"] == 2
        agent.wait_for(lambda r: stored_mode(store) == "ONLINE", "ONLINE recorded")
        token = raw_session(main.url, "dealer1")["access_token"]
        assert raw_get(main.url, token, f"/orders/{resting['order_id']}")["status"] == "CANCELLED"
        unique_everywhere(main, dr)
    finally:
        agent.stop()
    assert agent.error is None
