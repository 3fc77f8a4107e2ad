"""Helpers for mainsim's own tests: a module-scoped real mainsim subprocess and
raw httpx calls (backend_client is written separately, so these tests speak HTTP
directly to check the server, not the client)."""

from __future__ import annotations

import itertools
from decimal import Decimal

import httpx

from tests.simproc import SimProcess

API = "/api/v1"
_ids = itertools.count(1)


def start_sim(tmp_path_factory, name: str, **kw) -> SimProcess:
    workdir = tmp_path_factory.mktemp(name)
    return SimProcess(db=workdir / "mainsim.db", workdir=workdir, **kw).start()


def login(base: str, user: str, password: str = "demo") -> str:
    r = httpx.post(f"{base}{API}/session", json={"user_id": user, "password": password}, timeout=10)
    r.raise_for_status()
    return r.json()["access_token"]


class Desk:
    """A logged-in user's raw HTTP session against one mainsim."""

    def __init__(self, base: str, user: str):
        self.base = base
        self.user = user
        self.http = httpx.Client(
            base_url=f"{base}{API}", timeout=10, headers={"Authorization": f"Bearer {login(base, user)}"}
        )

    def get(self, path: str, **kw) -> httpx.Response:
        return self.http.get(path, **kw)

    def post_order(self, **fields) -> httpx.Response:
        return self.http.post("/orders", json=fields)

    def instruments(self) -> dict[tuple[str, str], dict]:
        return {(i["exchange"], i["symbol"]): i for i in self.get("/instruments").json()}


def new_coid(prefix: str = "t") -> str:
    return f"{prefix}-{next(_ids)}-{id(_ids)}"


def order_body(client_id: str, inst: dict, **over) -> dict:
    body = dict(
        client_order_id=new_coid(),
        client_id=client_id,
        exchange=inst["exchange"],
        symbol=inst["symbol"],
        side="BUY",
        quantity=inst["lot_size"],
        product="MIS" if inst["exchange"] != "NFO" else "NRML",
        order_type="MARKET",
        validity="DAY",
    )
    body.update(over)
    return body


def ticks(inst: dict, n: int) -> float:
    """A price n ticks from the lower band (always inside the band, on the tick grid)."""
    return float(Decimal(str(inst["lower_band"])) + n * Decimal(str(inst["tick_size"])))


def error_code(r: httpx.Response) -> str:
    return r.json()["error"]["code"]
