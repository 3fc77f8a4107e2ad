"""The dealer's session as the console needs it, on top of the service and the live session.

Why here: the TUI keeps the logged-in user's password in memory (never on disk) so
backup-mode actions, which need an offline login each time, do not prompt again, and it
routes actions by the *runtime's* mode (``Service.use_mode``), not by a one-shot probe.
Every store read and login check is a public Service method, and everything about the
runtime comes from the live session (console/live.py: its probe, its snapshot): the
console never touches SQLAlchemy, the store or the runtime itself
(tests/tui/test_tui_layering.py, the import contracts).  The coroutines here run on the live
session's loop (``LiveSession.call``), never on the screen's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from console.live import LiveSession, LiveSnapshot, ProbeResult
from console.service import ReplayOutcome, Service
from contract.enums import value_of

if TYPE_CHECKING:
    from console.tui.messages import Book


@dataclass
class Identity:
    user_id: str
    role: str
    client_ids: list[str]
    how: str  # ONLINE | OFFLINE


class DealerSession:
    def __init__(self, service: Service, live: LiveSession | None = None) -> None:
        self.service = service
        self.live = live or LiveSession(service)
        self.identity: Identity | None = None
        self._password: str | None = None
        self.token_kept = False
        self.mode = "ONLINE"
        self.last_probe: ProbeResult | None = None

    # ------------------------------------------------------------------ login

    async def probe(self, timeout: float = 0.8) -> ProbeResult:
        self.last_probe = await self.live.probe(timeout=timeout)
        return self.last_probe

    async def login(self, user_id: str, password: str, *, online: bool) -> Identity:
        """Online against main, or offline against this console's signed grant and verifier."""
        if online:
            res = await self.service.login(user_id, password)
            self.token_kept = res.token_kept
            ident = Identity(res.user.user_id, res.user.role.value, sorted(res.user.client_ids), "ONLINE")
        else:
            sess = await self.service.login_offline(user_id, password)
            self.token_kept = self.live.token_kept(user_id)
            ident = Identity(user_id, sess.role, sorted(sess.client_ids), "OFFLINE")
            self.mode = "BACKUP"
        self.identity = ident
        self._password = password
        return ident

    async def check_password(self, password: str) -> None:
        """Unlock: the local verifier and signed grant (works in every mode); raises ServiceError."""
        await self.service.unlock(password)

    def forget(self) -> None:
        self._password = None

    # ------------------------------------------------------------------ routing

    def pin_mode(self, mode: str, probe: ProbeResult | None = None) -> None:
        """Route the next actions by the runtime's mode (SUSPECT has not switched: ONLINE)."""
        self.mode = mode
        self.service.use_mode(mode, probe or self.last_probe)

    @property
    def _action_password(self) -> str | None:
        """Online with a kept token: the token.  Otherwise the password from the login."""
        if self.mode in ("ONLINE", "SUSPECT", "DR") and self.token_kept:
            return None
        return self._password

    async def place(self, ticket, *, validity: str, disclosed_quantity: int | None):
        return await self.service.place(
            ticket, validity=validity, disclosed_quantity=disclosed_quantity, password=self._action_password
        )

    async def modify(self, **kw):
        return await self.service.modify(password=self._action_password, **kw)

    async def cancel(self, **kw):
        return await self.service.cancel(password=self._action_password, **kw)

    async def squareoff(self, **kw):
        return await self.service.squareoff(password=self._action_password, **kw)

    async def killswitch(self, *, off: bool = False):
        return await self.service.killswitch(off=off, password=self._action_password)

    # ------------------------------------------------------------------ replay and held entries

    @property
    def is_supervisor(self) -> bool:
        return self.identity is not None and self.identity.role == "supervisor"

    async def replay(self) -> ReplayOutcome:
        """Replay the journal now (main must answer), then reconcile."""
        return await self.service.replay(password=self._action_password)

    async def release_held(self, seq: int) -> dict:
        """Supervisor: the entry goes to main on the next replay (audited; checked locally)."""
        return await self.service.release_held(seq, password=self._password)

    async def discard_held(self, seq: int) -> dict:
        """Supervisor: the entry is never sent (audited; checked locally)."""
        return await self.service.discard_held(seq, password=self._password)

    # ------------------------------------------------------------------ status

    async def sample_status(self) -> dict:
        """The status bar's figures: the service's status, the probe, and the runtime's view."""
        probe = await self.probe()
        live = self.live.snapshot()
        if live.hosted:
            self.pin_mode(live.mode, probe)
        st = await self.service.status()
        # the session's mode, except where main is down and no backup action could be accepted
        # here (no valid grant, no book): the status then says UNAVAILABLE, never BACKUP
        st["mode"] = "UNAVAILABLE" if st.get("mode") == "UNAVAILABLE" and self.mode == "BACKUP" else self.mode
        st["replay"] = replay_text(st.get("replay"))
        st["probe"] = {"ok": probe.ok, "latency_ms": probe.latency_ms, "kind": probe.kind}
        if self.identity is not None:
            st["user"] = {
                "user_id": self.identity.user_id,
                "role": self.identity.role,
                "how": self.identity.how,
            }
        if live.sites is not None:
            st["sites"] = live.sites
        if live.hosted:
            st["runtime"] = {
                "connected": live.connected,
                "resnapshots": live.resnapshots,
                "reason": live.stream_reason,
            }
            progress = self.replay_progress(live)
            if progress is not None:
                st["replay"] = progress
        return st

    # ------------------------------------------------------------------ local reads

    def local_book(self) -> Book:
        """Positions, orders, trades, instruments and clients from the local store (scoped by the service)."""
        from console.tui.messages import Book

        svc = self.service
        instruments = {(str(value_of(i.exchange)), i.symbol): i for i in svc.local_instruments()}
        clients = [c.client_id for c in svc.local_clients()]
        return Book(svc.local_positions(), svc.local_orders(), svc.local_trades(), instruments, clients)

    def replay_progress(self, live: LiveSnapshot) -> str | None:
        """ "done/total" of the runtime's running replay pass, or None when none runs.
        total = entries done + entries still to send (the backlog shrinks as they land)."""
        if not live.replaying:
            return None
        done, seen = live.replay_done, live.replay_seen
        backlog = self.service.replay_backlog()
        return f"{done}/{max(seen, done + backlog)}"


def replay_text(replay: Any) -> str:
    """The status bar's short form of the service's replay state."""
    if not isinstance(replay, dict):
        return replay or "idle"
    state = replay.get("state", "idle")
    if state == "pending" or state == "waiting for main":
        return f"{state} ({replay.get('unreplayed', 0)})"
    if state == "held for a person":
        return f"{replay.get('held', 0)} held"
    return state
