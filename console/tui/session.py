"""The dealer's session as the console needs it, on top of the public service layer.

Why here: the TUI keeps the logged-in user's password in memory (never on disk) so
backup-mode actions, which need an offline login each time, do not prompt again; it
routes actions by the *runtime's* mode, not by a one-shot probe; and it needs a few
local reads the service does not offer yet (trades, instruments, clients, an unlock
check).  Those are marked ``# for the service`` and listed in the report for moving.
Everything here is synchronous or a coroutine, called from worker threads, never on
the event loop.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from types import SimpleNamespace

from console.service import ModeDecision, Service, translate


@dataclass
class Identity:
    user_id: str
    role: str
    client_ids: list[str]
    how: str  # ONLINE | OFFLINE


class DealerSession:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.identity: Identity | None = None
        self._password: str | None = None
        self.token_kept = False
        self.mode = "ONLINE"
        self.last_probe = None

    # ------------------------------------------------------------------ login

    async def probe(self, timeout: float = 0.8):
        from backend_client.detector import probe_once

        self.last_probe = await probe_once(self.service.backend_url, timeout=timeout)
        return self.last_probe

    async def login(self, user_id: str, password: str, *, online: bool) -> Identity:
        """Online against main, or offline against this console's signed grant and verifier."""
        if online:
            res = await self.service.login(user_id, password)
            self.token_kept = res.token_kept
            ident = Identity(res.user.user_id, res.user.role.value, sorted(res.user.client_ids), "ONLINE")
        else:
            sess = await self._offline(user_id, password, "BACKUP")
            self.service.user = user_id
            self.token_kept = _has_token(user_id)
            ident = Identity(user_id, sess.role, sorted(sess.client_ids), "OFFLINE")
            self.mode = "BACKUP"
        self.identity = ident
        self._password = password
        return ident

    async def _offline(self, user_id: str, password: str, mode: str):
        from sync import offline

        try:
            return await asyncio.to_thread(offline.login, self.service.store, user_id, password, mode=mode)
        except Exception as exc:  # offline denial, no grant, store trouble: one sentence
            raise translate(exc) from exc

    async def check_password(self, password: str) -> None:  # for the service: Service.unlock(password)
        """Unlock: the local verifier and signed grant (works in every mode); raises ServiceError."""
        await self._offline(self.identity.user_id, password, "LOCAL")

    def forget(self) -> None:
        self._password = None

    # ------------------------------------------------------------------ routing

    def pin_mode(self, mode: str, probe=None) -> None:
        """Route the next actions by the runtime's mode (SUSPECT has not switched: ONLINE).
        Sets the service's one-shot decision; for the service: a public ``use_mode``."""
        self.mode = mode
        route = "ONLINE" if mode == "SUSPECT" else mode
        probe = probe or self.last_probe or SimpleNamespace(ok=route == "ONLINE", trading_date=None,
                                                            latency_ms=None, detail="", kind="unknown")
        self.service._mode = ModeDecision(route, probe, None)  # noqa: SLF001 - see docstring

    @property
    def _action_password(self) -> str | None:
        """Online with a kept token: the token.  Otherwise the password from the login."""
        if self.mode in ("ONLINE", "SUSPECT") and self.token_kept:
            return None
        return self._password

    async def place(self, ticket, *, validity: str, disclosed_quantity: int | None):
        return await self.service.place(ticket, validity=validity, disclosed_quantity=disclosed_quantity,
                                        password=self._action_password)

    async def modify(self, **kw):
        return await self.service.modify(password=self._action_password, **kw)

    async def cancel(self, **kw):
        return await self.service.cancel(password=self._action_password, **kw)

    async def squareoff(self, **kw):
        return await self.service.squareoff(password=self._action_password, **kw)

    async def killswitch(self, *, off: bool = False):
        return await self.service.killswitch(off=off, password=self._action_password)

    # ------------------------------------------------------------------ status

    async def sample_status(self, runtime=None) -> dict:
        probe = await self.probe()
        if runtime is not None:
            self.pin_mode(runtime.mode, probe)
        st = await self.service.status()
        st["mode"] = self.mode
        st["probe"] = {"ok": probe.ok, "latency_ms": probe.latency_ms, "kind": probe.kind}
        if self.identity is not None:
            st["user"] = {"user_id": self.identity.user_id, "role": self.identity.role, "how": self.identity.how}
        if runtime is not None:
            st["runtime"] = {"connected": runtime.status.connected, "resnapshots": runtime.status.resnapshots,
                             "reason": runtime.status.reason}
        return st

    # ------------------------------------------------------------------ local reads (for the service)

    def local_book(self):
        """Positions, orders, trades, instruments and clients from the local store."""
        from sqlalchemy import select

        from backend_client import wire
        from console.tui.messages import Book
        from localstore.models import ClientRow, InstrumentRow, TradeRow
        from sync.rows import to_model

        svc = self.service
        positions = svc.local_positions()
        orders = svc.local_orders()
        with svc.store.read() as s:
            trades = [to_model(r, wire.Trade) for r in
                      s.scalars(select(TradeRow).order_by(TradeRow.traded_at, TradeRow.trade_id))]
            instruments = {(r.exchange.value, r.symbol): SimpleNamespace(
                exchange=r.exchange, symbol=r.symbol, name=r.name, lot_size=r.lot_size, tick_size=r.tick_size,
                last_price=r.last_price, lower_band=r.lower_band, upper_band=r.upper_band,
                freeze_quantity=r.freeze_quantity, previous_close=r.previous_close)
                for r in s.scalars(select(InstrumentRow))}
            clients = sorted(s.scalars(select(ClientRow.client_id)))
        if self.identity is not None and self.identity.role != "supervisor":
            mine = set(self.identity.client_ids)
            clients = [c for c in clients if c in mine]
        return Book(positions, orders, trades, instruments, clients)


def _has_token(user_id: str) -> bool:
    from localstore import secrets

    try:
        return secrets.load_token(user_id) is not None
    except Exception:  # noqa: BLE001 - no keyring: no token
        return False


def monotonic_to_wall(at: float, clock=time.time, mono=time.monotonic) -> float:
    return clock() - (mono() - at)
