"""The Service: one console's view of the world (its store, its backend, its user) and
the one API that the CLI and the TUI both call.

Neither face touches httpx or SQLAlchemy: they call these methods and get wire models,
typed results (console.service.results) or a ``ServiceError`` (console.service.errors).
Every public method passes through ``boundary``: whatever fails underneath leaves as a
ServiceError with a code, a message and an error id, never as a raw exception.

The work itself lives in plain functions by concern (``trading``, ``access``, ``book``,
``recovery``); this class holds the plumbing they share (the store, the backend client,
the current user, the mode) and exposes them as methods.

Sharing one HTTP client (the live session): a long-lived owner with its own event loop
calls ``bind_client(client)`` on that loop; from then on every service call that runs
on that loop reuses that BackendClient (never closing it) instead of opening its own.
A call on any other loop (or with nothing bound) opens and closes a client of its own,
as before.  ``bind_client(None)`` unbinds; the owner closes its client itself.

Heavy modules (pydantic wire models, the ORM models, the httpx client, cryptography,
keyring) are imported inside the functions that use them, not at import time, so
`lifeboat --help` and `lifeboat status` start fast (bench P7).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console import eventlog
from console.service import access, book, recovery, results, risk, trading
from console.service.errors import ADVICE_LOGIN, ADVICE_LOGIN_OR_PASSWORD, NotLoggedIn, StoreProblem, boundary
from console.service.results import ActionResult, LoginResult, ModeDecision, sends
from localstore.db import Store, open_store
from localstore.errors import StoreError
from localstore.paths import data_dir, store_path

if TYPE_CHECKING:
    from backend_client.client import BackendClient
    from backend_client.detector import ProbeResult
    from contract import wire
    from localstore.verifier import EarlyCheck
    from sync.bod import BodResult
    from sync.monitoring import MonitorServer
    from sync.offline import OfflineSession
    from sync.runtime import Runtime
    from sync.trading.policy import OrderTicket

DEFAULT_BACKEND = "http://127.0.0.1:8700"
log = logging.getLogger("lifeboat.service")


def dr_site(home: Path | None, given: str | None, main_url: str | None) -> str | None:
    """The broker's DR site for a console: ``given`` (--dr-backend / its environment variable),
    else ``[backend] dr_url`` in the console's config; ValueError with a sentence when unusable."""
    from console.site_config import SiteConfigError, dr_url

    try:
        return dr_url(data_dir(home), given, main_url or DEFAULT_BACKEND)
    except SiteConfigError as exc:
        raise ValueError(str(exc)) from None


class Service:
    """One console's view of the world: its store, its backend, its user."""

    def __init__(
        self,
        *,
        backend_url: str | None = None,
        home: Path | None = None,
        user: str | None = None,
        dr_url: str | None = None,
    ):
        self.main_url = (backend_url or DEFAULT_BACKEND).rstrip("/")
        # the broker's DR site (--dr-backend, LIFEBOAT_DR_BACKEND_URL, [backend] dr_url), if any
        self.dr_url = dr_url.rstrip("/") if dr_url else None
        # where this service's requests go: main, or the DR site while it is the primary (decide_mode)
        self.backend_url = self.main_url
        self.home = home
        self.user = user
        self._store: Store | None = None
        self._mode: ModeDecision | None = None
        self._early_check: EarlyCheck | None = None  # a password check started ahead (scripts)
        # f(kind, detail) for each real request to main that failed as unavailable
        # (the console connects its runtime's failure detector here)
        self.request_error_hooks: list[Callable[[str, str], None]] = []
        # the owner's one client and the loop it is bound to (bind_client)
        self._bound: tuple[BackendClient, asyncio.AbstractEventLoop] | None = None

    # ------------------------------------------------------------------ plumbing

    @property
    def data_dir(self) -> Path:
        return data_dir(self.home)

    @property
    def store(self) -> Store:
        if self._store is None:
            try:
                self._store = open_store(store_path(self.home))
            except StoreError as exc:
                raise StoreProblem(str(exc), exc.kind) from exc
            eventlog.set_context(console_id=self._store.console_id)  # every log line names the console
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @boundary
    def current_user(self) -> str:
        """--user / LIFEBOAT_USER, else the last user who logged in online on this console."""
        if self.user:
            return self.user
        from localstore.book import last_online_user

        uid = last_online_user(self.store)
        if uid is None:
            raise NotLoggedIn("nobody has logged in on this console", advice=ADVICE_LOGIN)
        self.user = uid
        return uid

    def client(self, token: str | None = None) -> BackendClient:
        """A new client of this service's backend (the caller closes it)."""
        from backend_client.client import BackendClient

        return BackendClient(self.backend_url, token=token)

    def bind_client(
        self, client: BackendClient | None, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        """Reuse ``client`` for every service call made on ``loop`` (default: the running
        loop, so call this from the owner's loop).  The service never closes a bound client;
        a bound client that carries no token gets the user's saved token at the first call
        that needs one.  ``None`` unbinds (calls open their own clients again)."""
        if client is None:
            self._bound = None
            return
        self._bound = (client, loop if loop is not None else asyncio.get_running_loop())

    def bound_client(self) -> BackendClient | None:
        """The bound client if this call runs on its loop, else None."""
        if self._bound is None:
            return None
        client, loop = self._bound
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return client if running is loop and not loop.is_closed() else None

    @asynccontextmanager
    async def any_client(self) -> AsyncIterator[BackendClient]:
        """The bound client (left open), else a client of its own for this call (closed after)."""
        bound = self.bound_client()
        if bound is not None:
            yield bound
            return
        await self.to_primary()  # with a DR site: whichever site is primary now
        async with self.client() as c:
            yield c

    @asynccontextmanager
    async def session_client(self, password: str | None = None) -> AsyncIterator[BackendClient]:
        """A client carrying the current user's token (from the keyring), or a fresh
        login when a password is given (scripts)."""
        from localstore import secrets

        user = self.current_user()
        bound = self.bound_client()
        async with self.any_client() as c:
            if password is not None:
                await access.login_on(self, c, user, password)
            elif bound is None or c.token is None:
                token = secrets.load_token(user)
                if token is None:
                    raise NotLoggedIn(
                        f"no saved session for {user}", advice=ADVICE_LOGIN_OR_PASSWORD, advice_user=user
                    )
                c.token = token
            yield c
            from sync import checkpoint_send  # main answered: send the checkpoints queued meanwhile

            await checkpoint_send.send_queued(self.store, c)

    # ------------------------------------------------------------------ mode

    @boundary
    async def decide_mode(self) -> ModeDecision:
        """The one-shot mode of a CLI command (about a second at most): a supervisor's
        forced mode wins; else one health probe.  Main up while the journal still holds
        unreplayed intents is RECOVERING: new actions queue behind the replay."""
        if self._mode is not None:
            return self._mode
        from backend_client.detector import Mode, decide_one_shot, probe_once
        from sync import status

        with self.store.read_core() as conn:  # Core: no ORM on the CLI's start-up path
            forced, unfinished = status.mode_inputs(conn)
        if self.dr_url:
            self._mode = await self._decide_between_sites(forced, unfinished)
            eventlog.set_context(mode=self._mode.mode)
            return self._mode
        # plain http:// never uses TLS: no certificate store to load (~30 ms of a CLI run)
        # (https:// keeps full certificate verification)
        probe = await probe_once(self.backend_url, verify=self.backend_url.startswith("https://"))
        mode = decide_one_shot(probe, forced)
        if not forced and mode is Mode.ONLINE and unfinished:
            mode = Mode.RECOVERING
        self._mode = ModeDecision(mode.value, probe, forced)
        eventlog.set_context(mode=mode.value)
        return self._mode

    async def _decide_between_sites(self, forced: str | None, unfinished: int) -> ModeDecision:
        """Main and the DR site surveyed at once (backend_client.sites): actions go to the one
        that says primary with the highest epoch seen; to neither on split brain or when none
        does (BACKUP).  A supervisor's forced mode wins as it does without a DR site (forced
        ONLINE sends to main)."""
        from backend_client.sites import MAIN, survey
        from sync import detector_store

        sites = await survey(self.main_url, self.dr_url)
        choice = await asyncio.to_thread(detector_store.decide_sites, self.store, sites)
        if choice.split_brain or choice.fenced is not None:
            log.error(
                "DR tier alarm: %s",
                choice.reason,
                extra={"event": "split_brain" if choice.split_brain else "stale_primary"},
            )
        active = choice.active
        probe = active.probe if active is not None else sites[0].probe
        self.backend_url = active.url if active is not None else self.main_url
        if forced:  # a supervisor's forced mode wins, as without a DR site; forced ONLINE is main
            mode = forced
            if forced == "ONLINE":
                probe, self.backend_url = sites[0].probe, self.main_url
        elif active is None:
            mode = "BACKUP"
        elif unfinished:
            mode = "RECOVERING"  # replayed to whichever site is primary, new actions queue behind it
        else:
            mode = "ONLINE" if active.name == MAIN else "DR"
        return ModeDecision(mode, probe, forced, choice)

    async def to_primary(self) -> None:
        """With a DR site configured, aim this service's requests at whichever site is primary
        now (every request through ``any_client``: login, BOD, book reads, replay); without
        one, nothing to do."""
        if self.dr_url and self.bound_client() is None:
            await self.decide_mode()

    @boundary
    def use_mode(self, mode: object, probe: ProbeResult | None = None) -> None:
        """Route the next actions by a running detector's mode (the console's runtime)
        instead of a one-shot probe.  SUSPECT has not switched yet: ONLINE.  ``None``
        goes back to the one-shot decision of ``decide_mode``."""
        from console.service.errors import Refused

        if mode is None:
            self._mode = None
            return
        name = str(getattr(mode, "value", mode)).upper()
        if name not in ("ONLINE", "SUSPECT", "DR", "BACKUP", "RECOVERING"):
            raise Refused(f"unknown mode {name!r}: ONLINE, SUSPECT, DR, BACKUP or RECOVERING", "invalid_mode")
        route = "ONLINE" if name == "SUSPECT" else name
        if probe is None:
            from backend_client.detector import ProbeResult

            probe = ProbeResult(ok=sends(route), kind="unknown", latency_ms=None, detail="")
        self._mode = ModeDecision(route, probe, None)
        eventlog.set_context(mode=route)

    # ------------------------------------------------------------------ access (console.service.access)

    @boundary
    async def login(self, user_id: str, password: str) -> LoginResult:
        return await access.login(self, user_id, password)

    @boundary
    def logout(self) -> tuple[str, str]:
        return access.logout(self)

    @boundary
    def start_password_check(self, password: str, early: EarlyCheck | None = None) -> None:
        access.start_password_check(self, password, early)

    @boundary
    async def login_offline(self, user_id: str, password: str) -> OfflineSession:
        return await access.login_offline(self, user_id, password)

    @boundary
    async def unlock(self, password: str) -> None:
        await access.unlock(self, password)

    # ------------------------------------------------------------------ trading (console.service.trading)

    @boundary
    def acknowledge(self, result: ActionResult | risk.CutoffOutcome) -> None:
        trading.acknowledge(self, result)

    @boundary
    async def rms_status(self, *, now: datetime | None = None) -> dict[str, Any]:
        """The risk rules now: each client's MTM against its limit, each segment's cut-off."""
        return await risk.status(self, now=now)

    @boundary
    async def rms_cutoff(
        self, *, segment: str | None = None, dry_run: bool = False, password: str | None = None
    ) -> risk.CutoffOutcome:
        """The intraday cut-off now (a runbook's manual run; the rules also run by themselves)."""
        return await risk.cutoff(self, segment=segment, dry_run=dry_run, password=password)

    @boundary
    async def place(
        self,
        ticket: OrderTicket,
        *,
        validity: str = "DAY",
        disclosed_quantity: int | None = None,
        password: str | None = None,
    ) -> ActionResult:
        return await trading.place(
            self, ticket, validity=validity, disclosed_quantity=disclosed_quantity, password=password
        )

    @boundary
    async def modify(
        self,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        quantity: int | None = None,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        password: str | None = None,
    ) -> ActionResult:
        return await trading.modify(
            self,
            order_id=order_id,
            client_order_id=client_order_id,
            quantity=quantity,
            price=price,
            trigger_price=trigger_price,
            password=password,
        )

    @boundary
    async def cancel(
        self, *, order_id: str | None = None, client_order_id: str | None = None, password: str | None = None
    ) -> ActionResult:
        return await trading.cancel(
            self, order_id=order_id, client_order_id=client_order_id, password=password
        )

    @boundary
    async def squareoff(
        self,
        *,
        client_id: str | None = None,
        symbol: str | None = None,
        keep_orders: bool = False,
        dry_run: bool = False,
        password: str | None = None,
    ) -> ActionResult:
        return await trading.squareoff(
            self,
            client_id=client_id,
            symbol=symbol,
            keep_orders=keep_orders,
            dry_run=dry_run,
            password=password,
        )

    @boundary
    async def killswitch(self, *, off: bool = False, password: str | None = None) -> ActionResult:
        return await trading.killswitch(self, off=off, password=password)

    @boundary
    def mode_show(self) -> results.ModeState:
        return trading.mode_show(self)

    @boundary
    async def mode_force(self, mode: str | None, *, password: str | None = None) -> results.ModeState:
        return await trading.mode_force(self, mode, password=password)

    @boundary
    def policy_show(self) -> results.PolicyState:
        return trading.policy_show(self)

    @boundary
    async def policy_set(
        self, *, allow_new_exposure: bool, password: str | None = None
    ) -> results.PolicyState:
        return await trading.policy_set(self, allow_new_exposure=allow_new_exposure, password=password)

    @boundary
    async def user_release(self, user_id: str, *, password: str | None = None) -> results.UserReleased:
        return await trading.user_release(self, user_id, password=password)

    @boundary
    def user_lockout_show(self) -> results.Lockout:
        return trading.user_lockout_show(self)

    @boundary
    async def user_lockout_set(self, n: int, *, password: str | None = None) -> results.Lockout:
        return await trading.user_lockout_set(self, n, password=password)

    # ------------------------------------------------------------------ the book (console.service.book)

    @boundary
    async def sync_bod(self, password: str | None = None) -> BodResult:
        return await book.sync_bod(self, password)

    @boundary
    async def positions(
        self, client_id: str | None = None, *, local: bool = False, password: str | None = None
    ) -> list[wire.Position]:
        return await book.positions(self, client_id, local=local, password=password)

    @boundary
    async def orders(
        self, client_id: str | None = None, *, local: bool = False, password: str | None = None
    ) -> list[wire.Order]:
        return await book.orders(self, client_id, local=local, password=password)

    @boundary
    def local_positions(self, client_id: str | None = None) -> list[wire.Position]:
        return book.local_positions(self, client_id)

    @boundary
    def local_orders(self, client_id: str | None = None) -> list[wire.Order]:
        return book.local_orders(self, client_id)

    @boundary
    def local_trades(self, client_id: str | None = None) -> list[wire.Trade]:
        return book.local_trades(self, client_id)

    @boundary
    def local_instruments(self) -> list[wire.Instrument]:
        return book.local_instruments(self)

    @boundary
    def local_clients(self) -> list[wire.Client]:
        return book.local_clients(self)

    @boundary
    def replay_backlog(self) -> int:
        return book.replay_backlog(self)

    @boundary
    def journal_entries(self, *, limit: int = 1000, unfinished_only: bool = False) -> list[dict[str, Any]]:
        return book.journal_entries(self, limit=limit, unfinished_only=unfinished_only)

    @boundary
    def pending_squareoffs(self, client_id: str | None = None) -> dict[tuple[str, ...], dict[str, Any]]:
        return book.pending_squareoffs(self, client_id)

    # ------------------------------------------------------------------ status, agent, replay (console.service.recovery)

    @boundary
    async def status(self, *, now: datetime | None = None) -> dict[str, Any]:
        return await recovery.status(self, now=now)

    @boundary
    async def run_agent(
        self,
        password: str | None = None,
        *,
        ready: Callable[[Runtime], None] | None = None,
        monitor: MonitorServer | None = None,
    ) -> None:
        await recovery.run_agent(self, password, ready=ready, monitor=monitor)

    @boundary
    async def replay(self, password: str | None = None, *, wait_s: float = 0.0) -> results.ReplayOutcome:
        return await recovery.replay(self, password, wait_s=wait_s)

    @boundary
    def last_report(self) -> dict[str, Any] | None:
        return recovery.last_report(self)

    @boundary
    def held_entries(self) -> list[dict[str, Any]]:
        return recovery.held_entries(self)

    @boundary
    async def release_held(self, seq: int, *, password: str | None = None) -> dict[str, Any]:
        """Supervisor: send a held entry on the next replay (audited)."""
        return await recovery.decide_held(self, seq, password, release=True)

    @boundary
    async def discard_held(self, seq: int, *, password: str | None = None) -> dict[str, Any]:
        """Supervisor: never send a held entry (moot, "discarded by <user>"; audited)."""
        return await recovery.decide_held(self, seq, password, release=False)
