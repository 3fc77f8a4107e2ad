"""Main as a dealer sees it (plain HTTP) and the local mirror as the store holds it,
and the comparison between the two: shared by the live-mirror tests that run the
Runtime in-process (test_sync_mirror.py) and those that run `lifeboat agent`
(test_cli_book.py)."""

from __future__ import annotations

import itertools
import json
import time
from decimal import Decimal

import httpx
from sqlalchemy import select
from websockets.sync.client import connect as ws_connect

from localstore.db import Store
from localstore.models import OrderRow, PositionRow, SyncState, TradeRow

PASSWORD = "demo"
OPEN = {"OPEN", "TRIGGER_PENDING"}
_coids = itertools.count(1)


# --------------------------------------------------------------------------- main, as a dealer sees it


class Dealer:
    """Plain HTTP to main: place, cancel, modify, and read the whole scope."""

    def __init__(self, url: str, user: str = "dealer1"):
        r = httpx.post(f"{url}/api/v1/session", json={"user_id": user, "password": PASSWORD}, timeout=10)
        r.raise_for_status()
        self.scope = sorted(r.json()["user"]["client_ids"])
        self.token = r.json()["access_token"]
        self.url = url
        self.http = httpx.Client(
            base_url=f"{url}/api/v1", timeout=10, headers={"Authorization": f"Bearer {self.token}"}
        )
        self.instruments = sorted(
            self.http.get("/instruments").json(), key=lambda i: (i["exchange"], i["symbol"])
        )
        self.placed: list[str] = []  # order ids main accepted
        self.resting: list[str] = []  # of those, the ones that were open when last seen
        self.rejected: list[str] = []  # reasons main gave for the ones it refused

    def close(self) -> None:
        self.http.close()

    def place(self, client: str, inst: dict, side: str, limit: bool, lots: int, offset: int) -> dict | None:
        body = {
            "client_order_id": f"mir-{next(_coids)}-{time.monotonic_ns()}",
            "client_id": client,
            "exchange": inst["exchange"],
            "symbol": inst["symbol"],
            "side": side,
            "quantity": lots * inst["lot_size"],
            "product": "MIS",
            "order_type": "LIMIT" if limit else "MARKET",
            "validity": "DAY",
        }
        if limit:
            body["price"] = float(self._price(inst, offset))
        r = self.http.post("/orders", json=body)
        assert r.status_code in (201, 422), r.text  # 422: a risk limit said no (nothing stored)
        if r.status_code != 201:
            self.rejected.append(r.json()["error"]["code"])
            return None
        order = r.json()
        self.placed.append(order["order_id"])
        if order["status"] in OPEN:
            self.resting.append(order["order_id"])
        return order

    def cancel(self, k: int) -> None:
        if self.resting:
            oid = self.resting.pop(k % len(self.resting))
            r = self.http.delete(f"/orders/{oid}")
            assert r.status_code in (200, 422), r.text  # 422 not_open: a tick filled it first

    def modify(self, k: int, offset: int) -> None:
        if self.resting:
            oid = self.resting[k % len(self.resting)]
            order = self.http.get(f"/orders/{oid}").json()
            inst = next(
                i
                for i in self.instruments
                if (i["exchange"], i["symbol"]) == (order["exchange"], order["symbol"])
            )
            r = self.http.patch(f"/orders/{oid}", json={"price": float(self._price(inst, offset))})
            assert r.status_code in (200, 422), r.text
            if r.status_code == 200 and r.json()["status"] not in OPEN:
                self.resting.remove(oid)

    @staticmethod
    def _price(inst: dict, offset: int) -> Decimal:
        tick = Decimal(str(inst["tick_size"]))
        price = Decimal(str(inst["last_price"])) + offset * tick
        lo, hi = Decimal(str(inst["lower_band"])), Decimal(str(inst["upper_band"]))
        return min(max(price, lo), hi)

    def view(self) -> dict:
        return {
            "positions": {_pkey(p): _pvals(p) for p in self.http.get("/positions").json()},
            "orders": {
                o["order_id"]: (o["status"], o["filled_quantity"]) for o in self.http.get("/orders").json()
            },
            "trades": {t["trade_id"] for t in self.http.get("/trades").json()},
        }


def _money(v) -> Decimal:
    return Decimal(str(v)).quantize(Decimal("0.0001"))


def _pkey(p) -> tuple:
    g = p.get if isinstance(p, dict) else lambda k: getattr(p, k)
    return tuple(str(getattr(g(k), "value", g(k))) for k in ("client_id", "exchange", "symbol", "product"))


def _pvals(p) -> tuple:
    g = p.get if isinstance(p, dict) else lambda k: getattr(p, k)
    return (
        g("net_quantity"),
        _money(g("average_price")),
        _money(g("realised_pnl")),
        g("buy_quantity"),
        g("sell_quantity"),
    )


def local_view(store: Store) -> dict:
    with store.read() as s:
        return {
            "positions": {_pkey(p): _pvals(p) for p in s.scalars(select(PositionRow))},
            "orders": {
                o.order_id: (str(getattr(o.status, "value", o.status)), o.filled_quantity)
                for o in s.scalars(select(OrderRow))
            },
            "trades": set(s.scalars(select(TradeRow.trade_id))),
        }


def mirror_differences(main: dict, local: dict, placed: list[str]) -> list[str]:
    """Empty when the mirror equals main for the scope.  The BOD carries open orders only,
    so orders that were already done before it exist on main alone."""
    diffs = []
    if main["positions"] != local["positions"]:
        keys = set(main["positions"]) | set(local["positions"])
        diffs += [
            f"position {k}: main {main['positions'].get(k)} local {local['positions'].get(k)}"
            for k in sorted(keys)
            if main["positions"].get(k) != local["positions"].get(k)
        ]
    for oid, values in local["orders"].items():
        if main["orders"].get(oid) != values:
            diffs.append(f"order {oid}: main {main['orders'].get(oid)} local {values}")
    main_open = {o for o, (status, _) in main["orders"].items() if status in OPEN}
    local_open = {o for o, (status, _) in local["orders"].items() if status in OPEN}
    if main_open != local_open:
        diffs.append(
            f"open orders: only on main {sorted(main_open - local_open)}, "
            f"only local {sorted(local_open - main_open)}"
        )
    missing = [o for o in placed if o not in local["orders"]]
    if missing:
        diffs.append(f"placed orders missing locally: {missing}")
    if main["trades"] != local["trades"]:
        diffs.append(
            f"trades: only on main {sorted(main['trades'] - local['trades'])}, "
            f"only local {sorted(local['trades'] - main['trades'])}"
        )
    return diffs


def wait_until_mirrored(dealer: Dealer, store: Store, timeout: float = 20) -> None:
    """Poll until the mirror equals main (ticks may fill resting orders at any time, so
    equality is checked on a settled book, not asserted at one instant)."""
    deadline = time.monotonic() + timeout
    while True:
        diffs = mirror_differences(dealer.view(), local_view(store), dealer.placed)
        if not diffs:
            return
        if time.monotonic() > deadline:
            raise AssertionError("mirror differs from main:\n" + "\n".join(diffs[:30]))
        time.sleep(0.2)


def newest_scope_seq(url: str, token: str) -> int | None:
    """Main's newest event seq in the user's scope: replay the stream from 0; the first
    heartbeat comes after the whole backlog."""
    ws_url = url.replace("http://", "ws://") + "/api/v1/stream?since=0"
    newest = None
    with ws_connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}, compression=None) as ws:
        while True:
            msg = json.loads(ws.recv(timeout=10))
            if msg["type"] in ("order", "trade", "position"):
                newest = msg["seq"]
            elif msg["type"] == "heartbeat":
                return newest


def sync_state(store: Store) -> SyncState:
    with store.read() as s:
        return s.get(SyncState, 1)


def simple_burst(dealer: Dealer, n: int, start: int = 0) -> None:
    """n orders: market and limit, both sides, spread over clients and instruments."""
    for k in range(start, start + n):
        inst = dealer.instruments[(k * 7) % len(dealer.instruments)]
        dealer.place(
            dealer.scope[k % len(dealer.scope)], inst, "BUY" if k % 2 else "SELL", k % 3 == 0, 1, k % 3 - 1
        )
