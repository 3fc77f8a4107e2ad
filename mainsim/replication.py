"""The DR tier in mainsim: a primary that serves its replication log, a standby that follows it,
promotion and demotion (CONTRACT: ``--role primary|standby --follow URL``, ``/admin/promote``,
``/admin/demote``, ``/health``'s role, epoch, following and replication_lag_s).

How a standby follows (every reply of the primary is untrusted input: sizes are bounded and
every row is checked before anything is applied):

1. It logs in to the primary as a supervisor (``--follow-user``, password from
   ``LIFEBOAT_SIM_FOLLOW_PASSWORD``, default the demo data's) and reads its ``/health``: a site
   that answers as a standby, or with a lower epoch than one already seen, is not followed (a
   clear log line, then retries).
2. It takes a base snapshot: ``GET /admin/replication/snapshot`` is a consistent copy of the
   primary's database (sqlite3's backup API) with its LSN in ``X-Lifeboat-LSN``; checked
   (``quick_check``, the tables, the LSN), marked with this site's own state and installed as
   its ``--db`` (temp file + ``os.replace``).
3. It follows the log from that LSN over the WebSocket ``/admin/replication/log?after=LSN``:
   ``rows`` messages (contiguous LSNs; each row's statements must be among the store's own
   ``WRITE_SQL``, its parameters plain values) are applied in one transaction with the rows
   themselves, so the standby's applied LSN is its own rlog head; ``heartbeat`` messages carry
   the primary's head LSN.  It reconnects with backoff; after a reconnect it resumes from its
   applied LSN unless the primary's epoch changed (another history: a new snapshot) or the
   primary no longer holds the rows it needs (``resnapshot``).

``replication_lag_s`` is 0 when caught up, else now minus the commit time of the oldest row not
yet applied (when the follower knows it; otherwise of the last row applied, an upper bound), or
now minus the last contact while the primary cannot be reached: it grows.

A standby answers ``/health``, ``/session``, ``/keys``, ``/metrics`` and the admin promote and
demote; every other call is 503 with the reason ``standby`` (``mainsim.site.SiteMiddleware``),
which also puts ``X-Lifeboat-Epoch`` and ``X-Lifeboat-Role`` on every reply of every site.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import Depends, FastAPI, WebSocket
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, field_validator
from starlette.background import BackgroundTask

from contract import wire
from contract.wire import API_PREFIX, Role
from mainsim.activity import Activity
from mainsim.api import ERRORS, Sim, bearer_user, error_response
from mainsim.auth import Principal
from mainsim.book import ApiError, Book
from mainsim.market import Market
from mainsim.site import SiteState
from mainsim.store import WRITE_SQL, Store, decode_param
from mainsim.tradingday import utcnow

log = logging.getLogger("mainsim.replication")

LSN_HEADER = "X-Lifeboat-LSN"
PASSWORD_ENV = "LIFEBOAT_SIM_FOLLOW_PASSWORD"
DEFAULT_FOLLOW_USER = "super1"
DEFAULT_FOLLOW_PASSWORD = "demo"  # the demo data's (mainsim.seed.DEMO_PASSWORD)

MAX_SNAPSHOT_BYTES = 1 << 30
MAX_MESSAGE_BYTES = 32 << 20
MAX_ROW_BYTES = 8 << 20
MAX_ROWS_PER_MESSAGE = 2000
MAX_SMALL_REPLY = 256 << 10  # /health, /session
SEND_ROWS = 500
SEND_BYTES = 4 << 20
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.2, 5.0
REQUIRED_TABLES = frozenset(
    {"meta", "users", "clients", "limits", "instruments", "orders", "trades", "positions", "events", "rlog"}
)


class ReplicationError(Exception):
    """The primary's reply cannot be used (bad shape, bad row, wrong site): nothing applied."""


class NotFollowable(ReplicationError):
    """The site named by --follow is not a primary this standby may follow (a standby, a lower epoch)."""


class Unreachable(Exception):
    """The primary answers, but not as a site that serves (a proxy's 502/503, a hang-up)."""


class Resnapshot(Exception):
    """The primary no longer holds the rows after our LSN, or its history changed: a new snapshot."""


class DemoteRequest(BaseModel):
    follow: str = Field(min_length=1, max_length=2048, description="The URL of the primary to follow")

    @field_validator("follow")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_follow_url(value)


def check_follow_url(url: str) -> str:
    """An http(s) URL with a host, no query or fragment; ValueError otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"not an http(s) URL of a site: {url!r}")
    return url.strip().rstrip("/")


# --------------------------------------------------------------------------------------- checking rows
def _param(value: Any) -> Any:
    if value is None or (isinstance(value, (int, float, str)) and not isinstance(value, bool)):
        return value
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return decode_param(value)
        except ValueError:
            pass
    raise ReplicationError(f"a row's parameter is not a plain value: {str(value)[:80]!r}")


def _params(values: Any) -> list:
    if not isinstance(values, list) or len(values) > 64:
        raise ReplicationError("a statement's parameters are not a short list")
    return [_param(v) for v in values]


def check_row(row: Any, expected_lsn: int) -> tuple[int, str, str, list]:
    """One rlog row from the primary, checked: (lsn, at, body, ops ready to execute)."""
    if not isinstance(row, list) or len(row) != 3:
        raise ReplicationError("a row is not [lsn, at, body]")
    lsn, at, body = row
    if not isinstance(lsn, int) or isinstance(lsn, bool) or lsn != expected_lsn:
        raise ReplicationError(f"row LSN {lsn!r} where {expected_lsn} was next")
    if not isinstance(at, str) or len(at) > 40:
        raise ReplicationError(f"row {lsn}: its time is not a timestamp")
    try:
        datetime.fromisoformat(at)
    except ValueError:
        raise ReplicationError(f"row {lsn}: its time is not a timestamp") from None
    if not isinstance(body, str) or len(body) > MAX_ROW_BYTES:
        raise ReplicationError(f"row {lsn}: its body is not text of a bounded size")
    try:
        statements = json.loads(body)
    except ValueError:
        raise ReplicationError(f"row {lsn}: its body is not JSON") from None
    if not isinstance(statements, list) or not statements:
        raise ReplicationError(f"row {lsn}: no statements")
    ops = []
    for st in statements:
        if not isinstance(st, list) or len(st) != 3 or st[0] not in ("x", "m"):
            raise ReplicationError(f"row {lsn}: a statement is not [kind, sql, params]")
        kind, sql, params = st
        if sql not in WRITE_SQL:
            raise ReplicationError(f"row {lsn}: a statement mainsim never runs: {str(sql)[:80]!r}")
        if kind == "x":
            ops.append((kind, sql, _params(params)))
        else:
            if not isinstance(params, list):
                raise ReplicationError(f"row {lsn}: executemany without a list of rows")
            ops.append((kind, sql, [_params(p) for p in params]))
    return lsn, at, body, ops


def _int(msg: dict, key: str) -> int:
    value = msg.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**53:
        raise ReplicationError(f"message field {key} is not a count")
    return value


def check_snapshot(path: Path, lsn: int) -> None:
    """A downloaded snapshot, before it replaces anything: a sound SQLite file holding mainsim's
    tables, seeded, whose log ends at the LSN the primary announced."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ReplicationError(f"the snapshot cannot be opened: {exc}") from None
    try:
        if db.execute("PRAGMA quick_check").fetchone() != ("ok",):
            raise ReplicationError("the snapshot fails SQLite's quick_check")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables >= REQUIRED_TABLES:
            raise ReplicationError(f"the snapshot lacks tables: {sorted(REQUIRED_TABLES - tables)}")
        if db.execute("SELECT value FROM meta WHERE key='seeded'").fetchone() != ("1",):
            raise ReplicationError("the snapshot is of an unseeded database")
        head = db.execute("SELECT COALESCE(MAX(lsn), 0) FROM rlog").fetchone()[0]
        if head != lsn:
            raise ReplicationError(f"the snapshot's log ends at {head}, not at the announced {lsn}")
    except sqlite3.DatabaseError as exc:
        raise ReplicationError(f"the snapshot is not a usable database: {exc}") from None
    finally:
        db.close()


class Wakeup:
    """Wakes the log senders when a row is committed (called on the loop's thread or any other)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self) -> None:
        self._loop = asyncio.get_running_loop()

    def notify(self, _lsn: int = 0) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._fire()
        else:
            loop.call_soon_threadsafe(self._fire)

    def _fire(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, timeout: float) -> None:
        event = self._event
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, timeout)):
                await event.wait()


# --------------------------------------------------------------------------------------- the follower
@dataclass
class FollowConfig:
    url: str
    user: str = DEFAULT_FOLLOW_USER
    password: str = DEFAULT_FOLLOW_PASSWORD
    timeout_s: float = 10.0


class Follower:
    """A standby's link to its primary: base snapshot, then the log (see the module's doc)."""

    def __init__(self, site: Site, cfg: FollowConfig):
        self.site = site
        self.cfg = cfg
        self.started = utcnow()
        self.last_contact: datetime | None = None
        self.connected = False
        self.head = 0
        self.applied = 0
        self.last_applied_at: datetime | None = None
        self.pending_at: datetime | None = None
        self.snapshot_epoch: int | None = None  # the primary's epoch when our copy was taken
        self.last_error = ""

    # --------------------------------------------------------------- lag
    def lag(self) -> float:
        now = utcnow()
        if not self.connected:
            ref = self.last_contact or self.started
            return max(0.0, (now - ref).total_seconds())
        if self.applied >= self.head:
            return 0.0
        ref = self.pending_at or self.last_applied_at or self.last_contact or self.started
        return max(0.0, (now - ref).total_seconds())

    def _contact(self) -> None:
        self.last_contact = utcnow()

    # --------------------------------------------------------------- the loop
    async def run(self) -> None:
        backoff = BACKOFF_MIN_S
        async with httpx.AsyncClient(timeout=self.cfg.timeout_s, follow_redirects=False) as http:
            while True:
                try:
                    token, epoch = await self._hello(http)
                    if self.snapshot_epoch != epoch or not self.site.state.synced:
                        await self._snapshot(http, token, epoch)
                    backoff = BACKOFF_MIN_S
                    await self._follow(token)
                except Resnapshot as why:
                    log.warning("standby: a new base snapshot from %s is needed: %s", self.cfg.url, why)
                    self.snapshot_epoch = None
                    backoff = BACKOFF_MIN_S
                except NotFollowable as exc:
                    self._failed(f"will not follow {self.cfg.url}: {exc}", logging.ERROR)
                except ReplicationError as exc:
                    self._failed(f"refused a reply of {self.cfg.url}: {exc}", logging.ERROR)
                    self.snapshot_epoch = None
                except (httpx.HTTPError, OSError, TimeoutError, Unreachable) as exc:
                    self._failed(f"primary {self.cfg.url} unreachable: {type(exc).__name__} {exc}")
                except Exception as exc:  # noqa: BLE001 - the websocket library's errors among them
                    self._failed(f"lost the primary {self.cfg.url}: {type(exc).__name__} {exc}")
                self.connected = False
                await asyncio.sleep(backoff)
                backoff = min(BACKOFF_MAX_S, backoff * 2)

    def _failed(self, text: str, level: int = logging.WARNING) -> None:
        if text != self.last_error:  # one line per change, not one per retry
            log.log(level, "standby: %s (retrying)", text)
        self.last_error = text

    async def _get_small(self, http: httpx.AsyncClient, method: str, path: str, **kw) -> tuple[int, bytes]:
        """(status, body) of a reply that must be small (read with a cap, never whole first)."""
        async with http.stream(method, self.cfg.url + path, **kw) as resp:
            body = b""
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > MAX_SMALL_REPLY:
                    raise ReplicationError(f"{path}: the reply is larger than {MAX_SMALL_REPLY} bytes")
            return resp.status_code, body

    async def _hello(self, http: httpx.AsyncClient) -> tuple[str, int]:
        """Check the site is a primary we may follow and log in: (token, its epoch)."""
        status, body = await self._get_small(http, "GET", f"{API_PREFIX}/health")
        self._contact()
        if status in (502, 503, 504):
            raise Unreachable(f"/health answered {status}")
        try:
            health = wire.Health.model_validate_json(body)
        except ValueError:
            raise ReplicationError(f"/health answered {status} with no health document") from None
        if health.role != "primary":
            raise NotFollowable("it answers as a standby (a standby follows only a primary)")
        if health.epoch < self.site.max_epoch_seen:
            raise NotFollowable(
                f"its epoch {health.epoch} is lower than {self.site.max_epoch_seen}, one already seen "
                f"(a primary that was replaced)"
            )
        status, body = await self._get_small(
            http,
            "POST",
            f"{API_PREFIX}/session",
            json={"user_id": self.cfg.user, "password": self.cfg.password},
        )
        if status != 200:
            raise NotFollowable(f"login as {self.cfg.user} answered {status}")
        try:
            session = wire.SessionResponse.model_validate_json(body)
        except ValueError:
            raise ReplicationError("the login reply is not a session") from None
        if session.user.role is not Role.SUPERVISOR:
            raise NotFollowable(f"{self.cfg.user} is not a supervisor there")
        self.site.saw_epoch(health.epoch)
        return session.access_token, health.epoch

    async def _snapshot(self, http: httpx.AsyncClient, token: str, epoch: int) -> None:
        store = self.site.store
        fd, name = tempfile.mkstemp(prefix=store.path.name + ".snapshot-", dir=store.path.parent)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                async with http.stream(
                    "GET",
                    f"{self.cfg.url}{API_PREFIX}/admin/replication/snapshot",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=max(self.cfg.timeout_s, 60.0),
                ) as resp:
                    if resp.status_code == 503:
                        raise NotFollowable("it answers as a standby (a standby follows only a primary)")
                    if resp.status_code != 200:
                        raise ReplicationError(f"the snapshot request answered {resp.status_code}")
                    try:
                        lsn = int(resp.headers.get(LSN_HEADER, ""))
                    except ValueError:
                        raise ReplicationError(f"the snapshot has no {LSN_HEADER}") from None
                    size = 0
                    async for chunk in resp.aiter_bytes():
                        size += len(chunk)
                        if size > MAX_SNAPSHOT_BYTES:
                            raise ReplicationError(f"the snapshot is larger than {MAX_SNAPSHOT_BYTES} bytes")
                        out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            self._contact()
            check_snapshot(tmp, lsn)
            db = sqlite3.connect(str(tmp))
            try:
                self.site.mark(db)
                db.commit()
            finally:
                db.close()
            self.site.install(tmp)
            self.snapshot_epoch = epoch
            self.applied = self.head = lsn
            self.last_applied_at = None
            self.site.metrics_applied(lsn)
            log.warning(
                "standby: installed a base snapshot of %s at LSN %d (epoch %d)", self.cfg.url, lsn, epoch
            )
        finally:
            tmp.unlink(missing_ok=True)

    async def _follow(self, token: str) -> None:
        from websockets.asyncio.client import connect

        ws_url = "ws" + self.cfg.url[4:] + f"{API_PREFIX}/admin/replication/log?after={self.applied}"
        silence = max(2.0, 4 * self.site.heartbeat_s)
        async with connect(
            ws_url,
            additional_headers={"Authorization": f"Bearer {token}"},
            max_size=MAX_MESSAGE_BYTES,
            open_timeout=self.cfg.timeout_s,
            ping_interval=None,
            compression=None,
        ) as ws:
            self.connected = True
            self._contact()
            if self.last_error:
                log.warning("standby: following %s again from LSN %d", self.cfg.url, self.applied)
                self.last_error = ""
            while True:
                async with asyncio.timeout(silence):
                    text = await ws.recv()
                self._contact()
                self._on_message(text)

    def _on_message(self, text: str | bytes) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            raise ReplicationError("a log message is not JSON") from None
        if not isinstance(msg, dict):
            raise ReplicationError("a log message is not an object")
        kind = msg.get("type")
        if kind == "resnapshot":
            raise Resnapshot(str(msg.get("reason", ""))[:200])
        epoch, head = _int(msg, "epoch"), _int(msg, "head")
        if epoch != self.snapshot_epoch:
            raise Resnapshot(f"the primary's epoch is now {epoch}")
        self.head = max(self.head, head)
        if kind == "heartbeat":
            return
        if kind != "rows":
            raise ReplicationError(f"unknown log message type {str(kind)[:40]!r}")
        rows = msg.get("rows")
        if not isinstance(rows, list) or not rows or len(rows) > MAX_ROWS_PER_MESSAGE:
            raise ReplicationError("a rows message without a bounded list of rows")
        checked = [check_row(row, self.applied + 1 + i) for i, row in enumerate(rows)]
        self.site.store.apply_rows(checked)
        self.applied = checked[-1][0]
        self.last_applied_at = datetime.fromisoformat(checked[-1][1])
        # the commit time of the next row, which the primary sends when it holds more (catching up)
        nxt, self.pending_at = msg.get("next_at"), None
        if self.applied < self.head and isinstance(nxt, str) and len(nxt) <= 40:
            with contextlib.suppress(ValueError):
                self.pending_at = datetime.fromisoformat(nxt)
        self.site.metrics_applied(self.applied)


# --------------------------------------------------------------------------------------- the site
class Site:
    """Runs this process as a primary (book, market, activity) or as a standby (a Follower), and
    switches between them: promote, demote."""

    def __init__(
        self,
        sim: Sim,
        store: Store,
        *,
        trading_date: date,
        seed: int,
        tick_ms: int,
        activity: float,
        retention: int,
        heartbeat_ms: int,
        follow_user: str = DEFAULT_FOLLOW_USER,
        follow_password: str = DEFAULT_FOLLOW_PASSWORD,
    ):
        self.sim = sim
        self.store = store
        self.state: SiteState = sim.site
        self.trading_date = trading_date
        self.seed, self.tick_ms, self.activity, self.retention = seed, tick_ms, activity, retention
        self.heartbeat_s = heartbeat_ms / 1000
        self.follow_user, self.follow_password = follow_user, follow_password
        self.wakeup = Wakeup()
        store.on_logged = self.wakeup.notify
        self.max_epoch_seen = self.state.epoch
        self.follower: Follower | None = None
        self._tasks: list[asyncio.Task] = []
        self._switching = asyncio.Lock()

    # --------------------------------------------------------------- lifetime
    async def run(self) -> None:
        """The app's background task: the primary's parts or the follower, until the app stops."""
        self.wakeup.bind()
        if self.state.primary:
            self._start_primary_parts()
        else:
            assert self.state.following is not None
            self._start_follower(self.state.following)
        try:
            await asyncio.Event().wait()
        finally:
            await self._stop_tasks()

    async def _stop_tasks(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start_primary_parts(self) -> None:
        sim = self.sim
        market = Market(sim.book, self.seed, self.tick_ms, sim.hub.broadcast)
        sim.market = market
        activity = Activity(sim.book, self.seed, self.activity)
        self._tasks = [asyncio.ensure_future(market.run()), asyncio.ensure_future(activity.run())]

    def _start_follower(self, url: str) -> None:
        self.follower = Follower(
            self, FollowConfig(url=url, user=self.follow_user, password=self.follow_password)
        )
        self.state.lag = self.follower.lag
        self._tasks = [asyncio.ensure_future(self.follower.run())]

    # --------------------------------------------------------------- state
    def saw_epoch(self, epoch: int) -> None:
        if epoch > self.max_epoch_seen:
            self.max_epoch_seen = epoch
        if not self.state.primary and epoch > self.state.epoch:
            self.state.epoch = epoch
            self.store.set_site({"epoch": str(epoch)})

    def mark(self, db: sqlite3.Connection) -> None:
        """Write this site's own state into a database (the live one, or a snapshot about to be)."""
        from mainsim.store import set_site

        set_site(
            db,
            {
                "role": self.state.role,
                "epoch": str(self.state.epoch),
                "following": self.state.following or "",
            },
        )

    def install(self, snapshot: Path) -> None:
        self.store.install(snapshot)
        self.store.writable = False
        self.sim.auth.load(self.store, create=False)
        self.state.synced = self.sim.auth.ready

    def metrics_applied(self, lsn: int) -> None:
        self.sim.metrics.set_applied_lsn(lsn)

    # --------------------------------------------------------------- promote, demote
    async def promote(self, by: str) -> None:
        async with self._switching:
            if self.state.primary:
                log.info("promote asked of a primary (epoch %d) by %s: nothing to do", self.state.epoch, by)
                return
            if not self.state.synced:
                raise ApiError(
                    409,
                    "not_synchronised",
                    "This standby holds no copy of the primary yet: nothing to promote.",
                )
            following = self.state.following
            if following:
                await self._warn_if_primary_answers(following)
            await self._stop_tasks()
            applied = self.store.head_lsn()
            epoch = max(self.max_epoch_seen, self.state.epoch) + 1
            self.store.writable = True
            self.state.epoch, self.max_epoch_seen = epoch, epoch
            self.state.following = None
            self.mark(self.store.db)
            self.store.set_site({"role": "primary"})
            sim = self.sim
            sim.auth.load(self.store, create=True)
            sim.book = Book(
                self.store, self.trading_date, publish=sim.hub.publish_events, retention=self.retention
            )
            self.store.set_meta(  # audited in the replicated log too
                "last_promotion",
                json.dumps(
                    {
                        "epoch": epoch,
                        "by": by,
                        "at": utcnow().isoformat(),
                        "lsn": applied,
                        "was_following": following,
                    }
                ),
            )
            self.state.lag = lambda: None
            self.state.role = "primary"
            self._start_primary_parts()
            self.follower = None
            log.warning(
                "PROMOTED to primary at epoch %d by %s (applied LSN %d, was following %s)",
                epoch,
                by,
                applied,
                following,
            )

    async def _warn_if_primary_answers(self, url: str) -> None:
        try:
            async with httpx.AsyncClient(timeout=1.0) as http:
                resp = await http.get(f"{url}{API_PREFIX}/health")
                role = resp.json().get("role") if len(resp.content) < MAX_SMALL_REPLY else None
        except Exception:  # noqa: BLE001 - unreachable or garbled: the usual case of a disaster
            return
        if role == "primary":
            log.warning(
                "promoting while %s still answers as primary: two primaries until the operator stops one "
                "(the console sends to neither)",
                url,
            )

    async def demote(self, url: str, by: str) -> None:
        async with self._switching:
            self.state.role = "standby"  # from now on every trading call is 503 standby
            self.store.writable = False  # and nothing of its own is written (only what it replicates)
            self.state.following = url
            self.store.set_site({"role": "standby", "following": url})
            await self._stop_tasks()
            self.sim.hub.close_all()
            log.warning("DEMOTED to standby by %s at epoch %d: following %s", by, self.state.epoch, url)
            self._start_follower(url)


# --------------------------------------------------------------------------------------- HTTP
def install(app: FastAPI, sim: Sim, site: Site) -> None:
    """The DR routes: promote, demote, the snapshot and the log a standby follows."""
    auth, state = sim.auth, sim.site  # (site is read only inside the routes: the OpenAPI export has none)
    # (mainsim.site.SiteMiddleware, added by create_app, refuses the trading calls of a standby)
    who = bearer_user(auth)
    r = API_PREFIX

    def supervisor(user: Principal) -> None:
        if user.role is not Role.SUPERVISOR:
            raise ApiError(403, "forbidden", "Only a supervisor may promote, demote or replicate a site.")

    def health() -> wire.Health:
        return wire.Health(
            status="ok",
            trading_date=sim.book.trading_date,
            server_time=utcnow(),
            role=state.role,
            epoch=state.epoch,
            following=state.following,
            replication_lag_s=state.replication_lag_s(),
        )

    @app.post(f"{r}/admin/promote", response_model=wire.Health, responses=ERRORS, tags=["admin"])
    async def promote(user: Principal = Depends(who)) -> wire.Health:
        """Declare this site primary: it stops following and takes a higher epoch (idempotent)."""
        supervisor(user)
        await site.promote(user.user_id)
        return health()

    @app.post(f"{r}/admin/demote", response_model=wire.Health, responses=ERRORS, tags=["admin"])
    async def demote(body: DemoteRequest, user: Principal = Depends(who)) -> wire.Health:
        """Make this site a standby following ``follow`` (from a fresh base snapshot)."""
        supervisor(user)
        await site.demote(body.follow, user.user_id)
        return health()

    @app.get(f"{r}/admin/replication/snapshot", include_in_schema=False)
    async def snapshot(user: Principal = Depends(who)):
        supervisor(user)
        store = site.store
        fd, name = tempfile.mkstemp(prefix=store.path.name + ".serve-", dir=store.path.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            lsn = await asyncio.get_running_loop().run_in_executor(None, store.backup_to, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return FileResponse(
            tmp,
            media_type="application/vnd.sqlite3",
            headers={LSN_HEADER: str(lsn)},
            background=BackgroundTask(tmp.unlink, missing_ok=True),
        )

    @app.websocket(f"{r}/admin/replication/log")
    async def replication_log(ws: WebSocket):
        header = ws.headers.get("authorization", "")
        user = auth.verify(header[7:].strip()) if header.lower().startswith("bearer ") else None
        if user is None or user.role is not Role.SUPERVISOR:
            await ws.send_denial_response(
                error_response(
                    401 if user is None else 403, "unauthorized", "A supervisor's token is needed."
                )
            )
            return
        try:
            after = int(ws.query_params.get("after", ""))
        except ValueError:
            after = -1
        await ws.accept()
        await _send_log(ws, site, after)


async def _send_log(ws: WebSocket, site: Site, after: int) -> None:
    store, state = site.store, site.state
    epoch = state.epoch
    head, oldest = store.head_lsn(), store.oldest_lsn()
    if after < 0 or after > head or (oldest and after < oldest - 1):
        await ws.send_text(
            json.dumps(
                {"type": "resnapshot", "reason": f"LSN {after} is outside the log held ({oldest}..{head})"}
            )
        )
        await ws.close(code=1000)
        return
    sent, last_beat = after, 0.0
    try:
        while state.primary and state.epoch == epoch:
            head = store.head_lsn()
            if sent < head:
                batch: list[list] = []
                size = 0
                for lsn, at, body in store.rlog_after(sent, SEND_ROWS):
                    if batch and size + len(body) > SEND_BYTES:
                        break
                    batch.append([lsn, at, body])
                    size += len(body)
                end = int(batch[-1][0])
                next_at = store.rlog_at(end + 1) if end < head else None  # the lag of a follower catching up
                await ws.send_text(
                    json.dumps(
                        {"type": "rows", "epoch": epoch, "head": head, "rows": batch, "next_at": next_at}
                    )
                )
                sent = end
                continue
            now = time.monotonic()
            if now - last_beat >= site.heartbeat_s:
                await ws.send_text(json.dumps({"type": "heartbeat", "epoch": epoch, "head": head}))
                last_beat = now
            await site.wakeup.wait(site.heartbeat_s - (time.monotonic() - last_beat))
        await ws.close(code=1001)
    except Exception:  # noqa: BLE001 - the follower went away (a closed socket raises on send)
        return
