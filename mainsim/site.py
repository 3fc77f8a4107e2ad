"""What a site is in the DR tier (mainsim/replication.py runs it): its role, its epoch (the
fencing number that grows at each promotion), what it follows and how far behind it is; and
the middleware that makes a standby refuse every trading call.

Kept apart from the replication machinery so the API reads it without importing that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contract import wire
from contract.wire import API_PREFIX, EPOCH_HEADER, ROLE_HEADER

SiteRole = Literal["primary", "standby"]


@dataclass
class SiteState:
    role: SiteRole = "primary"
    epoch: int = 0
    following: str | None = None
    # the standby's replication lag in seconds (None on a primary); set by the follower
    lag: Callable[[], float | None] = field(default=lambda: None)
    synced: bool = True  # False on a standby that has not installed its first snapshot

    @property
    def primary(self) -> bool:
        return self.role == "primary"

    def replication_lag_s(self) -> float | None:
        return None if self.primary else self.lag()


# what a standby answers (everything else is 503 standby)
STANDBY_PATHS = frozenset(
    {
        f"{API_PREFIX}/health",
        f"{API_PREFIX}/session",
        f"{API_PREFIX}/keys",
        f"{API_PREFIX}/admin/promote",
        f"{API_PREFIX}/admin/demote",
        "/metrics",
        "/openapi.json",
    }
)
STANDBY_MESSAGE = "This site is a DR standby: it takes no trading calls until it is promoted."


class SiteMiddleware:
    """Every reply carries the site's epoch and role; a standby answers what it may (STANDBY_PATHS)
    and 503 ``standby`` to everything else, WebSocket streams included."""

    def __init__(self, app: ASGIApp, state: SiteState) -> None:
        self.app = app
        self.state = state

    def _headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (EPOCH_HEADER.lower().encode(), str(self.state.epoch).encode()),
            (ROLE_HEADER.lower().encode(), self.state.role.encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if not self.state.primary and scope["path"] not in STANDBY_PATHS:
            body = wire.ErrorBody(error=wire.ErrorDetail(code="standby", message=STANDBY_MESSAGE))
            refusal = JSONResponse(
                body.model_dump(mode="json"),
                status_code=503,
                headers={
                    "Retry-After": "5",
                    EPOCH_HEADER: str(self.state.epoch),
                    ROLE_HEADER: self.state.role,
                },
            )
            if scope["type"] == "websocket":
                if "websocket.http.response" not in scope.get("extensions", {}):
                    await send({"type": "websocket.close", "code": 1013})
                    return
                await receive()  # websocket.connect
            await refusal(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message = {**message, "headers": [*message.get("headers", []), *self._headers()]}
            await send(message)

        await self.app(scope, receive, sending)
