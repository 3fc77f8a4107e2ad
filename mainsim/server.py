"""Assemble and run mainsim: open (and seed) the database, build the book, the
market, the stream hub and the app, serve with uvicorn (behind the fault proxy
when faults are allowed; the requests it answers itself are counted in the
sim's metrics too), announce readiness, and shut down cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import cast

from mainsim import replication, witness
from mainsim import seed as demo
from mainsim.api import Sim, create_app
from mainsim.auth import Authority, new_user_row
from mainsim.book import Book
from mainsim.faultproxy import FaultProxy
from mainsim.metrics import SimMetrics
from mainsim.site import SiteRole, SiteState
from mainsim.store import RLOG_RETENTION, Changes, Store
from mainsim.stream import Hub
from mainsim.tradingday import today_ist

log = logging.getLogger("mainsim")


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 8700
    db: Path = Path("mainsim.db")
    seed: int = 7
    heartbeat_ms: int = 250
    allow_faults: bool = False
    ready_file: Path | None = None
    activity: float = 0.0
    tick_ms: int = 500
    trading_date: date | None = None
    retention: int = 200_000
    # the DR tier (mainsim/replication.py)
    role: SiteRole = "primary"
    follow: str | None = None
    follow_user: str = replication.DEFAULT_FOLLOW_USER
    follow_password: str = field(default=replication.DEFAULT_FOLLOW_PASSWORD, repr=False)
    rlog_retention: int = RLOG_RETENTION


def open_store(cfg: SimConfig, trading_date: date) -> Store:
    store = Store(cfg.db, rlog_retention=cfg.rlog_retention)
    if cfg.role == "standby":
        store.writable = False  # only what it replicates changes it; it never seeds
        return store
    if not store.is_seeded():
        data = demo.build(cfg.seed, trading_date)
        ch = Changes()
        for n, (order, req) in enumerate(data.orders, start=1):
            ch.orders[order.order_id] = (n, order, req.model_dump_json())
        for p in data.positions:
            ch.positions[(p.client_id, p.exchange.value, p.symbol, p.product.value)] = p
        store.write_seed(
            meta={"seed": str(cfg.seed), "seed_trading_date": trading_date.isoformat()},
            users=[new_user_row(u, role, demo.DEMO_PASSWORD) for u, role in demo.USERS],
            clients=data.clients,
            limits=data.limits,
            instruments=data.instruments,
            changes=ch,
        )
    return store


def build(cfg: SimConfig, faults=None, metrics: SimMetrics | None = None) -> tuple[Sim, Store]:
    """The app and its parts; faults is a FaultControl or None; metrics a fresh registry when None.
    A standby's book is what its store holds (nothing is served from it: SiteMiddleware); the
    book, market and activity are built anew at promotion (replication.Site)."""
    trading_date = cfg.trading_date or today_ist()
    store = open_store(cfg, trading_date)
    standby = cfg.role == "standby"
    epoch = int(store.site("epoch") or 0)
    if not standby:
        store.set_site({"role": "primary", "following": ""})
    state = SiteState(role=cfg.role, epoch=epoch, following=cfg.follow if standby else None)
    sim_ref: list[Sim] = []
    hub = Hub(lambda: sim_ref[0].book.seq, cfg.heartbeat_ms, trading_date)
    book = Book(store, trading_date, publish=hub.publish_events, retention=cfg.retention)
    auth = Authority(
        store, trading_date, lambda dealer: sim_ref[0].book.clients_of(dealer), create=not standby
    )
    state.synced = auth.ready
    sim = Sim(book=book, auth=auth, hub=hub, faults=faults, metrics=metrics or SimMetrics(), site=state)
    sim_ref.append(sim)
    site = replication.Site(
        sim,
        store,
        trading_date=trading_date,
        seed=cfg.seed,
        tick_ms=cfg.tick_ms,
        activity=cfg.activity,
        retention=cfg.retention,
        heartbeat_ms=cfg.heartbeat_ms,
        follow_user=cfg.follow_user,
        follow_password=cfg.follow_password,
    )
    sim.background = (hub.heartbeats, site.run)
    sim.dr = site
    return sim, store


class _Head:
    """A request's reader that keeps what the fault proxy read of the request head."""

    def __init__(self, reader: asyncio.StreamReader):
        self.reader = reader
        self.data = b""

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        try:
            self.data = await self.reader.readuntil(separator)
        except asyncio.IncompleteReadError as exc:
            self.data = exc.partial
            raise
        return self.data


class CountedFaultProxy(FaultProxy):
    """The front proxy, counting in the sim's metrics the requests it answers itself (``error``
    mode: a 503 the app never sees).  ``refuse`` and ``hang`` answer nothing, so count nothing."""

    def __init__(self, *args, metrics: SimMetrics, **kw):
        super().__init__(*args, **kw)
        self.metrics = metrics

    async def _answer_error(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        started, head = time.perf_counter(), _Head(reader)
        try:
            await super()._answer_error(cast(asyncio.StreamReader, head), writer)
        finally:
            self.metrics.faulted_reply(head.data, 503, time.perf_counter() - started)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP;
    # without it Nagle + delayed ACK add ~40 ms to every reply.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _write_ready(path: Path | None, info: dict) -> None:
    line = json.dumps(info)
    if path is not None:
        path = Path(path)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(line)
        os.replace(tmp, path)
    print(line, flush=True)


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


async def run(cfg: SimConfig) -> int:
    import uvicorn

    from mainsim.faultcontrol import FaultControl

    metrics = SimMetrics()
    proxy = control = None
    if cfg.allow_faults:
        inner = _listen("127.0.0.1", 0)
        proxy = CountedFaultProxy(cfg.host, cfg.port, "127.0.0.1", inner.getsockname()[1], metrics=metrics)
        control = FaultControl(proxy)
    else:
        inner = _listen(cfg.host, cfg.port)
    sim, store = build(cfg, control, metrics)
    app = create_app(sim)
    witness.install(app, sim.auth, store)  # the consoles' audit checkpoints (mainsim/witness.py)
    replication.install(app, sim, sim.dr)  # the DR tier: promote, demote, snapshot, log

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            # uvicorn re-raises SIGTERM after its shutdown, which would skip ours (last prices,
            # closing the store): take the signal as a request for a clean exit with code 0.
            originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in originals.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        app,
        log_level="warning",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
        access_log=False,
    )
    server = Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=[inner]))
    while not server.started:
        if serving.done():
            store.close()
            return 1
        await asyncio.sleep(0.01)
    inner_port = inner.getsockname()[1]
    if proxy is not None:
        await proxy.start()
        url = f"http://{_loopback(cfg.host)}:{proxy.port}"
        control_url = f"http://127.0.0.1:{inner_port}"
    else:
        url, control_url = f"http://{_loopback(cfg.host)}:{inner_port}", None
    _write_ready(cfg.ready_file, {"url": url, "control_url": control_url, "pid": os.getpid()})
    try:
        await serving
    finally:
        if proxy is not None:
            await proxy.stop()
        try:
            if sim.market is not None and sim.site.primary:  # a standby writes nothing of its own
                sim.market.save_prices()
        except Exception:
            log.exception("could not save last prices")
        store.close()
    return 0


def serve(
    host: str = "127.0.0.1",
    port: int = 8700,
    db: Path = Path("mainsim.db"),
    seed: int = 7,
    heartbeat_ms: int = 250,
    allow_faults: bool = False,
    ready_file: Path | None = None,
    activity: float = 0.0,
    tick_ms: int = 500,
    trading_date: date | None = None,
    retention: int = 200_000,
    role: SiteRole = "primary",
    follow: str | None = None,
    follow_user: str = replication.DEFAULT_FOLLOW_USER,
    rlog_retention: int = RLOG_RETENTION,
) -> int:
    """Run mainsim until SIGTERM/SIGINT.  Returns the process exit code."""
    import warnings

    # FastAPI's body parameter under pydantic >= 2.12: a known false positive (pydantic#12356) printed
    # at the first POST; the schema and the validation are unchanged.  Only this exact warning is hidden.
    warnings.filterwarnings(
        "ignore", message=r"The 'alias' attribute with value 'body' was provided", category=UserWarning
    )
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    cfg = SimConfig(
        host=host,
        port=port,
        db=Path(db),
        seed=seed,
        heartbeat_ms=heartbeat_ms,
        allow_faults=allow_faults,
        ready_file=Path(ready_file) if ready_file else None,
        activity=activity,
        tick_ms=tick_ms,
        trading_date=trading_date,
        retention=retention,
        role=role,
        follow=follow,
        follow_user=follow_user,
        follow_password=os.environ.get(replication.PASSWORD_ENV) or replication.DEFAULT_FOLLOW_PASSWORD,
        rlog_retention=rlog_retention,
    )
    if (role == "standby") != (follow is not None):
        print(
            "mainsim: --role standby needs --follow URL, and --follow is only for a standby", file=sys.stderr
        )
        return 2
    if follow is not None:
        try:
            cfg.follow = replication.check_follow_url(follow)
        except ValueError as exc:
            print(f"mainsim: --follow: {exc}", file=sys.stderr)
            return 2
    try:
        return asyncio.run(run(cfg))
    except OSError as exc:
        print(f"mainsim: cannot serve on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
