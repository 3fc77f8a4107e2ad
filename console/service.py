"""The service layer: the one API that the CLI and the TUI both call.

Neither face touches httpx or SQLAlchemy: they call these methods and get wire
models, plain dataclasses, or one of the ``ServiceError`` subclasses below (each
knows its CLI exit code).  Heavy modules are imported here, not in console/cli.py,
so `lifeboat --help` stays fast.
"""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import func, select

from backend_client import errors as be
from backend_client import wire
from backend_client.client import BackendClient
from backend_client.grants import GrantInvalid, key_for, verify_grant
from console import eventlog
from console.exitcodes import ExitCode
from localstore import audit, credentials, secrets
from localstore.db import Store, open_store
from localstore.errors import StoreError
from localstore.models import (
    FINAL_JOURNAL_STATES,
    JournalEntry,
    OfflineCredential,
    OrderRow,
    PositionRow,
    SyncState,
    UserRow,
)
from localstore.paths import data_dir, store_path
from sync.bod import BodResult, replace_book
from sync.rows import to_model

DEFAULT_BACKEND = "http://127.0.0.1:8700"
log = logging.getLogger("lifeboat.service")


class ServiceError(Exception):
    exit_code = ExitCode.UNEXPECTED

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotLoggedIn(ServiceError):
    exit_code = ExitCode.DENIED


class Denied(ServiceError):
    exit_code = ExitCode.DENIED


class RejectedByMain(ServiceError):
    exit_code = ExitCode.REJECTED


class MainUnavailable(ServiceError):
    exit_code = ExitCode.UNAVAILABLE


class StoreProblem(ServiceError):
    exit_code = ExitCode.UNEXPECTED


def translate(exc: BaseException) -> ServiceError:
    """Backend and store errors as the service's own, with a message for a person."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, be.Unauthorized):
        return Denied(f"the main system refused the session: {exc.message}")
    if isinstance(exc, be.Forbidden):
        return Denied(f"not allowed: {exc.message}")
    if isinstance(exc, (be.Rejected, be.IdempotencyConflict, be.NotFound)):
        return RejectedByMain(f"the main system rejected it: {exc.message}")
    if isinstance(exc, be.Unavailable):
        return MainUnavailable(f"the main system is unavailable: {exc.message}")
    if isinstance(exc, be.ProtocolError):
        return MainUnavailable(f"the main system answered something unreadable: {exc.message}")
    if isinstance(exc, StoreError):
        return StoreProblem(str(exc))
    return ServiceError(f"{type(exc).__name__}: {exc}")


@dataclass
class LoginResult:
    user: wire.UserInfo
    token_kept: bool
    grant_valid_until: datetime
    console_id: str


class Service:
    """One console's view of the world: its store, its backend, its user."""

    def __init__(self, *, backend_url: str | None = None, home: Path | None = None, user: str | None = None):
        self.backend_url = (backend_url or DEFAULT_BACKEND).rstrip("/")
        self.home = home
        self.user = user
        self._store: Store | None = None

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
                raise StoreProblem(str(exc)) from exc
            eventlog.set_context(console_id=self._store.console_id)  # every log line names the console
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def current_user(self) -> str:
        """--user / LIFEBOAT_USER, else the last user who logged in online on this console."""
        if self.user:
            return self.user
        with self.store.read() as s:
            uid = s.scalars(
                select(UserRow.user_id).where(UserRow.last_online_login_at.is_not(None))
                .order_by(UserRow.last_online_login_at.desc()).limit(1)
            ).first()
        if uid is None:
            raise NotLoggedIn("nobody has logged in on this console: run `lifeboat login --user USER`")
        self.user = uid
        return uid

    def client(self, token: str | None = None) -> BackendClient:
        return BackendClient(self.backend_url, token=token)

    @asynccontextmanager
    async def session_client(self, password: str | None = None):
        """A client carrying the current user's token (from the keyring), or a fresh
        login when a password is given (scripts: --password-stdin)."""
        user = self.current_user()
        async with self.client() as c:
            if password is not None:
                await self._login(c, user, password)
            else:
                token = secrets.load_token(user)
                if token is None:
                    raise NotLoggedIn(
                        f"no saved session for {user}: run `lifeboat login --user {user}` or pass --password-stdin"
                    )
                c.token = token
            yield c

    # ------------------------------------------------------------------ login / logout

    async def login(self, user_id: str, password: str) -> LoginResult:
        self.user = user_id
        try:
            async with self.client() as c:
                return await self._login(c, user_id, password)
        except be.BackendError as exc:
            raise translate(exc) from exc

    async def _login(self, c: BackendClient, user_id: str, password: str) -> LoginResult:
        session = await c.login(user_id, password)
        keys = await c.keys()
        grant = session.offline_grant
        try:
            key = key_for(grant, keys)
            verify_grant(grant, key.public_key)
        except GrantInvalid as exc:
            raise Denied(f"the main system's offline grant does not verify ({exc}); offline login will not be possible") from exc
        if grant.claims.user_id != session.user.user_id:
            raise Denied("the offline grant names another user; refusing it")
        verifier = credentials.make_verifier(password)
        now = datetime.now(timezone.utc)
        store = self.store

        def persist() -> None:
            with store.write() as s:
                user = s.get(UserRow, user_id) or UserRow(user_id=user_id)
                user.role = session.user.role
                user.client_ids = json.dumps(sorted(session.user.client_ids))
                user.last_online_login_at = now
                s.add(user)
                cred = s.get(OfflineCredential, user_id) or OfflineCredential(user_id=user_id)
                cred.verifier = verifier
                cred.grant_json = grant.model_dump_json()
                cred.key_id = key.key_id
                cred.public_key = key.public_key
                cred.valid_until = grant.claims.valid_until
                cred.trading_date = grant.claims.trading_date
                cred.updated_at = now
                s.add(cred)
                credentials.observe_clock(s, now)
                audit.append(s, user_id=user_id, mode="ONLINE", action="login",
                             payload={"how": "online", "role": session.user.role.value,
                                      "clients": len(session.user.client_ids),
                                      "grant_valid_until": grant.claims.valid_until.isoformat()})

        import asyncio

        await asyncio.to_thread(persist)
        kept = secrets.save_token(user_id, session.access_token)
        log.info("login", extra={"event": "login", "user_id": user_id, "token_kept": kept})
        return LoginResult(session.user, kept, grant.claims.valid_until, store.console_id)

    def logout(self) -> str:
        user = self.current_user()
        secrets.delete_token(user)
        with self.store.write() as s:
            audit.append(s, user_id=user, mode="ONLINE", action="logout", payload={})
        return user

    # ------------------------------------------------------------------ BOD

    async def sync_bod(self, password: str | None = None) -> BodResult:
        import asyncio

        try:
            async with self.session_client(password) as c:
                snap = await c.bod()
        except be.BackendError as exc:
            raise translate(exc) from exc
        return await asyncio.to_thread(replace_book, self.store, snap, mode="ONLINE", reason="lifeboat sync bod")

    # ------------------------------------------------------------------ book

    async def positions(self, client_id: str | None = None, *, local: bool = False,
                        password: str | None = None) -> list[wire.Position]:
        if local:
            return self.local_positions(client_id)
        try:
            async with self.session_client(password) as c:
                return await c.positions(client_id)
        except be.BackendError as exc:
            raise translate(exc) from exc

    async def orders(self, client_id: str | None = None, *, local: bool = False,
                     password: str | None = None) -> list[wire.Order]:
        if local:
            return self.local_orders(client_id)
        try:
            async with self.session_client(password) as c:
                return await c.orders(client_id)
        except be.BackendError as exc:
            raise translate(exc) from exc

    def _scope_check(self, client_id: str | None) -> None:
        if client_id is None:
            return
        from localstore.models import ClientRow

        with self.store.read() as s:
            if s.get(ClientRow, client_id) is None:
                raise RejectedByMain(f"unknown client {client_id!r} in the local book (not in your scope, or no BOD yet)")

    def local_positions(self, client_id: str | None = None) -> list[wire.Position]:
        self._scope_check(client_id)
        q = select(PositionRow).order_by(PositionRow.client_id, PositionRow.exchange, PositionRow.symbol,
                                         PositionRow.product)
        if client_id:
            q = q.where(PositionRow.client_id == client_id)
        with self.store.read() as s:
            return [to_model(r, wire.Position) for r in s.scalars(q)]

    def local_orders(self, client_id: str | None = None) -> list[wire.Order]:
        self._scope_check(client_id)
        q = select(OrderRow).order_by(OrderRow.created_at, OrderRow.order_id)
        if client_id:
            q = q.where(OrderRow.client_id == client_id)
        with self.store.read() as s:
            return [to_model(r, wire.Order) for r in s.scalars(q)]

    # ------------------------------------------------------------------ status

    async def status(self) -> dict:
        """What support staff look at first.  Probes the main system once (about a second at most)."""
        import time

        probe: dict = {"reachable": False}
        try:
            async with BackendClient(self.backend_url, connect_timeout=0.5, read_timeout=1.0, retries=0) as c:
                t0 = time.perf_counter()
                h = await c.health()
            probe = {"reachable": True, "latency_ms": round((time.perf_counter() - t0) * 1000, 1),
                     "trading_date": h.trading_date.isoformat()}
        except be.BackendError as exc:
            probe = {"reachable": False, "error": exc.message}
        now = datetime.now(timezone.utc)
        with self.store.read() as s:
            st = s.get(SyncState, 1)
            depth = s.scalar(select(func.count()).select_from(JournalEntry)
                             .where(JournalEntry.state.not_in(list(FINAL_JOURNAL_STATES))))
        return {
            "mode": "ONLINE" if probe["reachable"] else "BACKUP",
            "backend": {"url": self.backend_url, **probe},
            "console_id": self.store.console_id,
            "store": str(self.store.path),
            "journal_depth": depth,
            "replay": "idle",
            "last_bod": None if st.bod_at is None else {
                "at": st.bod_at.isoformat(), "trading_date": st.trading_date.isoformat(), "seq": st.bod_seq},
            "mirror": {
                "last_event_seq": st.last_event_seq,
                "newest_event_at": st.last_event_at.isoformat() if st.last_event_at else None,
                "current_at": st.last_applied_at.isoformat() if st.last_applied_at else None,
                "staleness_s": None if st.last_applied_at is None
                else round((now - st.last_applied_at).total_seconds(), 3),
            },
        }

    # ------------------------------------------------------------------ agent

    async def run_agent(self, password: str | None = None, *, ready=None) -> None:
        """The runtime with no screen, until cancelled or the session is refused."""
        from sync.runtime import Runtime

        try:
            async with self.session_client(password) as c:
                runtime = Runtime(self.store, c)
                if ready is not None:
                    ready(runtime)
                await runtime.run()
        except be.BackendError as exc:
            raise translate(exc) from exc
