"""Shared scene for the replay and reconciliation tests: a real mainsim, a console
whose store holds super1's BOD, a backup journal written with sync/trading/desk.py calls
(the same code the CLI runs in backup mode), and main as a dealer sees it over
plain HTTP.  The keyring is the file-backed test backend (no OS keyring runs on
this headless machine: a fake by necessity); nothing else is faked.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
from sqlalchemy import select

from backend_client.client import BackendClient
from contract.wire import OrderType, Side
from localstore.db import Store, open_store
from localstore.models import InstrumentRow, JournalEntry, PositionRow
from localstore.paths import store_path
from mainsim.faultproxy import FaultProxy, ThreadedFaultProxy, _rst
from sync.trading import desk
from sync.trading.desk import Actor
from sync.trading.policy import OrderTicket
from tests import launcher
from tests.simproc import track

REPO_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "demo"
SUPER = "super1"


def test_env(tmp: Path) -> dict[str, str]:
    """Environment for in-process logins and for subprocess runners."""
    return {
        "LIFEBOAT_TEST_SCRYPT_N": "1024",
        "PYTHON_KEYRING_BACKEND": "tests.keyring_backend.TestKeyring",
        "LIFEBOAT_TEST_KEYRING_FILE": str(tmp / "keyring.json"),
    }


@dataclass
class Console:
    home: Path
    url: str
    trading_date: date
    env: dict[str, str]
    _store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(store_path(self.home))
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def actor(self) -> Actor:
        return Actor(SUPER, "supervisor", frozenset(), self.trading_date)

    # -------------------------------------------------------------- the backup journal (desk calls)

    def squareoff(self, client_id: str, symbol: str | None = None, keep_orders: bool = True):
        return desk.squareoff(
            self.store, self.actor, client_id=client_id, symbol=symbol, keep_orders=keep_orders, mode="BACKUP"
        )

    def place(
        self,
        client_id: str,
        exchange: str,
        symbol: str,
        side: str,
        quantity: int,
        product: str,
        order_type: str = "MARKET",
        price=None,
    ):
        t = OrderTicket(
            client_id, exchange, symbol, Side(side), quantity, product, OrderType(order_type), price
        )
        return desk.place(self.store, self.actor, t, mode="BACKUP")

    def cancel(self, order_id: str | None = None, client_order_id: str | None = None):
        return desk.cancel(
            self.store, self.actor, order_id=order_id, client_order_id=client_order_id, mode="BACKUP"
        )

    def positions(self, client_id: str | None = None) -> list[PositionRow]:
        with self.store.read() as s:
            q = (
                select(PositionRow)
                .where(PositionRow.net_quantity != 0)
                .order_by(PositionRow.client_id, PositionRow.symbol)
            )
            if client_id:
                q = q.where(PositionRow.client_id == client_id)
            return list(s.scalars(q))

    def instrument(self, exchange: str, symbol: str) -> InstrumentRow:
        with self.store.read() as s:
            return s.get(InstrumentRow, (exchange, symbol))

    def journal(self) -> list[JournalEntry]:
        with self.store.read() as s:
            return list(s.scalars(select(JournalEntry).order_by(JournalEntry.seq)))

    # -------------------------------------------------------------- replay in this process

    def replay(self, user: str = SUPER, *, reconciled: bool = True, on_start=None, **kw):
        """One pass (and its reconciliation); ``on_start(replayer)`` is called just before the pass
        runs, for a test that watches it (``replayer.progress``) from another thread."""
        from sync.reconcile import reconcile
        from sync.replay import Replayer

        async def go():
            async with BackendClient(self.url) as c:
                await c.login(user, PASSWORD)
                replayer = Replayer(self.store, c, **kw)
                if on_start is not None:
                    on_start(replayer)
                result = await replayer.run()
                report = None
                if result.status != "busy" and reconciled:
                    report = await reconcile(self.store, c, result)
                return result, report

        return asyncio.run(go())

    # -------------------------------------------------------------- replay in a subprocess

    def runner(self, *args: str, url: str | None = None, **env: str) -> subprocess.Popen:
        full = {**os.environ, **self.env, "PYTHONPATH": str(REPO_ROOT), **env}
        return track(  # stopped at the test's end if it is still running (conftest)
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.replay_runner",
                    "--home",
                    str(self.home),
                    "--url",
                    url or self.url,
                    *args,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=full,
                cwd=REPO_ROOT,
            )
        )

    def run_runner(self, *args: str, url: str | None = None, timeout: float = 60, **env: str):
        p = self.runner(*args, url=url, **env)
        try:
            out, err = p.communicate(timeout=timeout)
        finally:
            if p.poll() is None:  # timed out: not left running
                p.kill()
                p.wait()
        return p.returncode, out, err


def make_console(url: str, tmp: Path, name: str = "console") -> Console:
    """super1 logs in online and takes the BOD of the whole book (in this process)."""
    env = test_env(tmp)
    os.environ.update(env)
    launcher.install(env)  # the cheap verifier for the login below, in this process
    # the login enrols this home (trust anchors, localstore.anchors): a test has its own config dir
    # (conftest); a benchmark using this gets one in its tmp dir, never the user's real one.  The console
    # records which: whether the anchors land in the test keyring or in that dir depends on the keyring this
    # process already chose, and a copy of the console (copy_anchors) must find them
    os.environ.setdefault("LIFEBOAT_CONFIG_DIR", str(tmp / "config"))
    env["LIFEBOAT_CONFIG_DIR"] = os.environ["LIFEBOAT_CONFIG_DIR"]
    from console.service import Service

    home = tmp / name
    svc = Service(backend_url=url, home=home, user=SUPER)
    try:
        res = asyncio.run(svc.sync_bod(PASSWORD))
    finally:
        svc.close()
    return Console(home, url, res.trading_date, env)


class Main:
    """Main as a supervisor sees it over plain HTTP (no lifeboat code in between)."""

    def __init__(self, url: str, user: str = SUPER):
        r = httpx.post(f"{url}/api/v1/session", json={"user_id": user, "password": PASSWORD}, timeout=10)
        r.raise_for_status()
        self.http = httpx.Client(
            base_url=f"{url}/api/v1",
            timeout=10,
            headers={"Authorization": f"Bearer {r.json()['access_token']}"},
        )

    def close(self) -> None:
        self.http.close()

    def orders(self) -> list[dict]:
        return self.http.get("/orders").json()

    def orders_with_prefix(self, prefix: str) -> list[dict]:
        return [o for o in self.orders() if o["client_order_id"].startswith(prefix)]

    def net(self, client_id: str, exchange: str, symbol: str, product: str) -> int:
        for p in self.http.get("/positions", params={"client_id": client_id}).json():
            if (p["exchange"], p["symbol"], p["product"]) == (exchange, symbol, product):
                return p["net_quantity"]
        return 0

    def place(
        self, client_id: str, exchange: str, symbol: str, side: str, quantity: int, product: str, coid: str
    ) -> dict:
        r = self.http.post(
            "/orders",
            json={
                "client_order_id": coid,
                "client_id": client_id,
                "exchange": exchange,
                "symbol": symbol,
                "side": side,
                "quantity": quantity,
                "product": product,
                "order_type": "MARKET",
                "validity": "DAY",
            },
        )
        assert r.status_code == 201, r.text
        return r.json()

    def coid_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.orders():
            counts[o["client_order_id"]] = counts.get(o["client_order_id"], 0) + 1
        return counts


def parse_runner(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


# --------------------------------------------------------------------------- faults


class DropRepliesProxy(ThreadedFaultProxy):
    """The fault proxy plus one mode for these tests: the answer to the next ``drop``
    POST /orders requests is thrown away and the connection reset, after main has
    processed the request (the "accepted, reply lost" case).  Counts POST /orders."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        outer = self
        self.drop = 0
        self.posts = 0
        base_pump = FaultProxy._pump

        async def pump(proxy, reader, writer):
            doomed = next((link for link in list(proxy._links) if link.upstream is writer), None)
            if doomed is None:  # main -> client: drop the answer if this link's request was marked
                link = next((x for x in list(proxy._links) if x.client is writer), None)
                if link is None:
                    return await base_pump(proxy, reader, writer)
                while True:
                    data = await reader.read(65536)
                    if not data:
                        return
                    if getattr(link, "drop_reply", False):
                        _rst(writer)
                        return
                    writer.write(data)
                    await writer.drain()
            while True:  # client -> main
                data = await reader.read(65536)
                if not data:
                    return
                if data.startswith(b"POST /api/v1/orders"):
                    outer.posts += 1
                    if outer.drop > 0:
                        outer.drop -= 1
                        doomed.drop_reply = True
                writer.write(data)
                await writer.drain()

        self.proxy._pump = pump.__get__(self.proxy)


# --------------------------------------------------------------------------- a replay in a forked child


def _replay_in_child(home: str, url: str, crash_after: int | None, token: str | None, timeouts: dict) -> None:
    """The child's whole life: a fresh store connection and client, one pass."""
    from sync.replay import Replayer

    if crash_after is not None:  # the crash point, in this forked child only
        launcher.install({launcher.REPLAY_CRASH_AFTER_ENV: str(crash_after)})

    async def go():
        store = open_store(Path(home) / "lifeboat.db")
        try:
            async with BackendClient(url, token=token, **timeouts) as c:
                if token is None:
                    await c.login(SUPER, PASSWORD)
                result = await Replayer(store, c).run()
        except Exception as exc:  # noqa: BLE001 - main unreachable at login: a stopped pass
            print(f"child: {type(exc).__name__}: {exc}", flush=True)
            os._exit(3)
        print(f"steps={result.steps}", flush=True)
        os._exit(0 if result.status == "done" else 3)

    asyncio.run(go())


def replay_in_child(
    con: Console,
    crash_after: int | None = None,
    *,
    url: str | None = None,
    token: str | None = None,
    **timeouts,
) -> int:
    """A replay in a forked child process (the imports are already done, so a trial
    costs milliseconds, not an interpreter start); returns its exit code: 0 done,
    3 stopped, sync.replay.CRASH_EXIT_CODE when the crash hook fired."""
    con.close()  # no store connection crosses the fork
    p = multiprocessing.get_context("fork").Process(
        target=_replay_in_child, args=(str(con.home), url or con.url, crash_after, token, timeouts)
    )
    p.start()
    p.join(60)
    finished = p.exitcode is not None
    if not finished:  # not left running
        p.kill()
        p.join(10)
    assert finished, "the replaying child did not finish"
    return p.exitcode
