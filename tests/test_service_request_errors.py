"""A real request that finds main unavailable is an input to the console's failure
detector (the issue's "errors of real requests"), not only an error for the dealer.
Real mainsim behind the fault proxy; real store; the runtime's detector on its own loop."""

from __future__ import annotations

import asyncio

import pytest

from backend_client.detector import Detector, Mode
from console.service import MainUnavailable, Service
from mainsim.faultproxy import ThreadedFaultProxy
from sync.policy import OrderTicket
from tests.cli_env import PASSWORD, raw_get, raw_session


def test_an_order_refused_by_a_dead_main_reaches_the_detector(sim, tmp_path, monkeypatch):
    monkeypatch.setenv("LIFEBOAT_TEST_SCRYPT_N", "1024")
    host, port = sim.url.split("//")[1].split(":")
    with ThreadedFaultProxy(host, int(port)) as proxy:
        svc = Service(backend_url=proxy.url, home=tmp_path / "home", user="dealer1")
        try:
            asyncio.run(svc.login("dealer1", PASSWORD))
            token = raw_session(sim.url)["access_token"]
            pos = next(p for p in raw_get(sim.url, token, "/positions") if p["net_quantity"] > 0)
            heard: list[tuple[str, str]] = []
            svc.request_error_hooks.append(lambda kind, detail: heard.append((kind, detail)))
            svc.use_mode("ONLINE")  # as the console does: its runtime said ONLINE a moment ago
            proxy.set_mode("refuse")
            ticket = OrderTicket(client_id=pos["client_id"], exchange=pos["exchange"], symbol=pos["symbol"],
                                 side="SELL", quantity=1, product=pos["product"], order_type="MARKET",
                                 price=None, trigger_price=None)
            with pytest.raises(MainUnavailable):
                asyncio.run(svc.place(ticket, password=PASSWORD))
        finally:
            svc.close()
    assert heard and heard[0][0] == "refused", heard

    # what the console's runtime does with it: SUSPECT and a confirming probe, never BACKUP on its own
    det = Detector(now=0.0)
    det.on_request_error(1.0, heard[0][0], heard[0][1])
    assert det.mode is Mode.SUSPECT and det.probe_wanted
