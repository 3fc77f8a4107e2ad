"""A real request that finds main unavailable is an input to the console's failure
detector (the issue's "errors of real requests"), not only an error for the dealer.
Real mainsim behind the fault proxy; real store; the runtime's detector on its own loop."""

from __future__ import annotations

import asyncio

import pytest

from backend_client.detector import Detector, Mode
from console.service import MainUnavailable, Service
from mainsim.faultproxy import ThreadedFaultProxy
from sync.trading.policy import OrderTicket
from tests.cli_env import PASSWORD, raw_get, raw_session


def test_an_order_refused_by_a_dead_main_reaches_the_detector(sim, tmp_path, cheap_scrypt):
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
            ticket = OrderTicket(
                client_id=pos["client_id"],
                exchange=pos["exchange"],
                symbol=pos["symbol"],
                side="SELL",
                quantity=1,
                product=pos["product"],
                order_type="MARKET",
                price=None,
                trigger_price=None,
            )
            with pytest.raises(MainUnavailable):
                asyncio.run(svc.place(ticket, password=PASSWORD))
        finally:
            svc.close()
    assert heard and heard[0][0] == "refused", heard

    # what the console's runtime does with it: SUSPECT and a confirming probe, never BACKUP on its own
    det = Detector(now=0.0)
    det.on_request_error(1.0, heard[0][0], heard[0][1])
    assert det.mode is Mode.SUSPECT and det.probe_wanted


def test_online_squareoff_stops_sending_once_main_goes_away(sim, tmp_path, cheap_scrypt):
    """Main refuses connections in the middle of an online square-off (right after the
    first order reached it): a leg whose answer was cut is "unknown" (look it up by its
    client_order_id); the rest are not sent at all (no timeout per leg, nothing on main
    for them) and say so; the result counts as not done, cut off by main's failure (exit 5, outcome
    "incomplete"), not as rejected."""
    import threading
    import time

    host, port = sim.url.split("//")[1].split(":")
    token = raw_session(sim.url, "super1")["access_token"]
    with ThreadedFaultProxy(host, int(port)) as proxy:
        svc = Service(backend_url=proxy.url, home=tmp_path / "home", user="super1")
        try:
            asyncio.run(svc.login("super1", PASSWORD))
            console = svc.store.console_id
            svc.use_mode("ONLINE")
            proxy.set_latency(60)  # a window after the first order is in, before the next one
            first = min(p["client_id"] for p in raw_get(sim.url, token, "/positions") if p["net_quantity"])
            stop = threading.Event()

            def cut_when_first_leg_lands():  # watches main directly (the first client's orders)
                while not stop.is_set():
                    if any(
                        o["client_order_id"].startswith(console)
                        for o in raw_get(sim.url, token, "/orders", client_id=first)
                    ):
                        proxy.set_mode("refuse")
                        return
                    time.sleep(0.02)

            watcher = threading.Thread(target=cut_when_first_leg_lands, daemon=True)
            watcher.start()
            res = asyncio.run(svc.squareoff(client_id=None, keep_orders=True, password=PASSWORD))
            stop.set()
            watcher.join(5)
        finally:
            svc.close()
    outcomes = [leg["outcome"] for leg in res.legs]
    first_bad = next(i for i, o in enumerate(outcomes) if o in ("unknown", "not_sent"))
    assert len(outcomes) > first_bad + 1, outcomes
    assert all(o not in ("unknown", "not_sent", "rejected") for o in outcomes[:first_bad]), outcomes
    if outcomes[first_bad] == "unknown":  # its answer was cut on the way back: it may be on main
        assert "client_order_id" in res.legs[first_bad]["reason"]
    assert outcomes[first_bad + 1 :] == ["not_sent"] * (len(outcomes) - first_bad - 1), outcomes
    assert res.rejected and res.cut_off and res.exit_code == 5 and res.as_dict()["outcome"] == "incomplete"
    assert "square off again" in res.legs[-1]["reason"]
    on_main = {o["client_order_id"] for o in raw_get(sim.url, token, "/orders")}
    done = {leg["client_order_id"] for leg in res.legs[:first_bad]}
    assert done <= on_main  # the legs that went through are there ...
    assert not {leg["client_order_id"] for leg in res.legs[first_bad + 1 :]} & on_main  # ... none of the rest
