"""BackendClient: the one way the console talks REST to the broker's main system.

Why it exists: the service layer and sync/ must be able to tell "the main system said
no" (Rejected, Forbidden, ...) from "the main system is gone" (Unavailable) from "the
main system said something we do not understand" (ProtocolError), and must never see a
raw httpx, json, pydantic or OSError exception.  Every reply is validated against the
wire models; every request has explicit connect/read timeouts; only calls that are safe
to repeat are retried (GETs, and POST /orders because client_order_id is an
idempotency key).  The HTTP status -> error mapping lives in ``backend_client.replies``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import TypeAdapter

from backend_client import wire
from backend_client.errors import BackendError, ProtocolError, Unavailable
from backend_client.replies import check_status, decode_body, transport_error

T = TypeVar("T")

_RETRY_BACKOFF_S = 0.05  # first pause between attempts; doubles, capped below
_RETRY_BACKOFF_MAX_S = 0.5


@dataclass(frozen=True)
class PlaceResult:
    """Outcome of POST /orders: ``created`` is False when the client_order_id was already
    accepted with the same parameters (the main system returned the existing order)."""

    order: wire.Order
    created: bool


def _adapter(tp: Any) -> TypeAdapter:
    return TypeAdapter(tp)


_HEALTH = _adapter(wire.Health)
_SESSION = _adapter(wire.SessionResponse)
_KEYS = _adapter(wire.KeySet)
_BOD = _adapter(wire.BodSnapshot)
_INSTRUMENTS = _adapter(list[wire.Instrument])
_CLIENTS = _adapter(list[wire.Client])
_LIMITS = _adapter(list[wire.ClientLimit])
_POSITIONS = _adapter(list[wire.Position])
_ORDERS = _adapter(list[wire.Order])
_ORDER = _adapter(wire.Order)
_TRADES = _adapter(list[wire.Trade])
_FAULT = _adapter(wire.FaultState)


def _segment(value: str) -> str:
    """An id as one URL path segment (a '/' or '?' in an id must not change the route)."""
    if not isinstance(value, str) or not value:
        raise ValueError("an id must be a non-empty string")
    return quote(value, safe="")


def checked_token(token: str | None) -> str | None:
    """A bearer token goes into an HTTP header: printable ASCII, no spaces."""
    if token is None:
        return None
    if not isinstance(token, str) or not token or not all("!" <= ch <= "~" for ch in token):
        raise ValueError("bad access token: expected printable ASCII without spaces")
    return token


class BackendClient:
    """Async typed client of the main backend's REST API (../shared/CONTRACT.md).

    ``retries`` is the number of extra attempts for calls that are safe to repeat.
    ``control_url`` is where the fault switch lives (mainsim's ready file gives it).
    ``latency_ms`` is the round trip of the last request that got an answer (for the
    status bar); None until one has.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        verify: bool | str = True,
        retries: int = 2,
        control_url: str | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        parts = urlsplit(base_url) if isinstance(base_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"bad backend URL {base_url!r}: expected http(s)://host:port")
        self._base_url = base_url.rstrip("/")
        self._token = checked_token(token)
        # mainsim --allow-faults serves the fault switch on a direct (unproxied) listener too,
        # so a supervisor can end an outage it staged on the public address.
        self._control_url = (control_url or self._base_url).rstrip("/")
        self._retries = retries
        self.latency_ms: float | None = None
        try:
            self._http = httpx.AsyncClient(
                base_url=self._base_url + wire.API_PREFIX,
                timeout=httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout),
                verify=verify,
                headers={"Accept": "application/json"},
                follow_redirects=False,
                trust_env=False,
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, TypeError) as exc:
            raise ValueError(f"bad backend URL {base_url!r}: {exc}") from None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def token(self) -> str | None:
        return self._token

    @token.setter
    def token(self, value: str | None) -> None:
        self._token = checked_token(value)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "BackendClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ session and reference data

    async def health(self) -> wire.Health:
        return await self._get("/health", _HEALTH, auth=False)

    async def login(self, user_id: str, password: str) -> wire.SessionResponse:
        body = {"user_id": user_id, "password": password}
        # Logging in twice is harmless, so a lost answer may be retried.
        _, session = await self._call("POST", "/session", _SESSION, json=body, auth=False, safe=True)
        self._token = session.access_token
        return session

    async def keys(self) -> wire.KeySet:
        return await self._get("/keys", _KEYS)

    async def bod(self) -> wire.BodSnapshot:
        return await self._get("/bod", _BOD)

    async def instruments(self) -> list[wire.Instrument]:
        return await self._get("/instruments", _INSTRUMENTS)

    async def clients(self) -> list[wire.Client]:
        return await self._get("/clients", _CLIENTS)

    async def limits(self) -> list[wire.ClientLimit]:
        return await self._get("/limits", _LIMITS)

    # ------------------------------------------------------------------ book

    async def positions(self, client_id: str | None = None) -> list[wire.Position]:
        return await self._get("/positions", _POSITIONS, params={"client_id": client_id})

    async def orders(
        self, client_id: str | None = None, status: wire.OrderStatus | str | None = None
    ) -> list[wire.Order]:
        if isinstance(status, wire.OrderStatus):
            status = status.value
        return await self._get("/orders", _ORDERS, params={"client_id": client_id, "status": status})

    async def order(self, order_id: str) -> wire.Order:
        return await self._get(f"/orders/{_segment(order_id)}", _ORDER)

    async def order_by_client_id(self, client_order_id: str) -> wire.Order:
        return await self._get(f"/orders/by-client-id/{_segment(client_order_id)}", _ORDER)

    async def trades(self, client_id: str | None = None) -> list[wire.Trade]:
        return await self._get("/trades", _TRADES, params={"client_id": client_id})

    # ------------------------------------------------------------------ order entry

    async def place_order(self, request: wire.OrderRequest) -> PlaceResult:
        """POST /orders.  Retried on an unknown outcome: the client_order_id makes a
        repeat return the same order (200) instead of a second one."""
        body = request.model_dump(mode="json", exclude_none=True)
        status, order = await self._call(
            "POST", "/orders", _ORDER, json=body, safe=True, ok=(200, 201)
        )
        return PlaceResult(order=order, created=status == 201)

    async def modify_order(self, order_id: str, change: wire.OrderModify) -> wire.Order:
        """PATCH: never repeated once it may have reached the server."""
        body = change.model_dump(mode="json", exclude_none=True)
        _, order = await self._call("PATCH", f"/orders/{_segment(order_id)}", _ORDER, json=body, safe=False)
        return order

    async def cancel_order(self, order_id: str) -> wire.Order:
        """DELETE: never repeated once it may have reached the server."""
        _, order = await self._call("DELETE", f"/orders/{_segment(order_id)}", _ORDER, safe=False)
        return order

    # ------------------------------------------------------------------ faults (mainsim --allow-faults)

    async def get_fault(self) -> wire.FaultState:
        """Supervisor only; sent to ``control_url`` when given."""
        return await self._get(self._control_url + wire.API_PREFIX + "/admin/faults", _FAULT)

    async def set_fault(self, request: wire.FaultRequest) -> wire.FaultState:
        """Supervisor only; setting a mode twice is harmless, so it may be retried."""
        body = request.model_dump(mode="json", exclude_none=True)
        _, state = await self._call("POST", self._control_url + wire.API_PREFIX + "/admin/faults", _FAULT,
                                    json=body, safe=True)
        return state

    # ------------------------------------------------------------------ plumbing

    async def _get(self, path: str, adapter: TypeAdapter, *, params: dict | None = None, auth: bool = True):
        _, value = await self._call("GET", path, adapter, params=params, auth=auth, safe=True)
        return value

    async def _call(
        self,
        method: str,
        path: str,
        adapter: TypeAdapter,
        *,
        params: dict | None = None,
        json: Any = None,
        auth: bool = True,
        safe: bool,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, Any]:
        """One logical call: attempts, typed errors, reply validation.

        ``safe``: the call may be repeated even when an earlier attempt may have reached
        the server.  An unsafe call is repeated only when the attempt surely did not.
        """
        headers = {"Authorization": f"Bearer {self._token}"} if auth and self._token else None
        query = {k: v for k, v in (params or {}).items() if v is not None} or None
        attempt = 0
        maybe_sent = False
        while True:
            try:
                return await self._attempt(method, path, adapter, query, json, headers, ok)
            except Unavailable as exc:
                # An earlier attempt that may have arrived leaves the outcome unknown,
                # even if the last one was refused before sending.
                maybe_sent = exc.sent = maybe_sent or exc.sent
                if attempt >= self._retries or not (safe or not exc.sent):
                    raise
            attempt += 1
            await asyncio.sleep(min(_RETRY_BACKOFF_MAX_S, _RETRY_BACKOFF_S * 2 ** (attempt - 1)))

    async def _attempt(self, method, path, adapter, query, json, headers, ok) -> tuple[int, Any]:
        started = time.perf_counter()
        try:
            response = await self._http.request(method, path, params=query, json=json, headers=headers)
        except httpx.HTTPError as exc:
            raise transport_error(exc, method, path) from None
        except (httpx.InvalidURL, UnicodeError, ValueError, TypeError) as exc:  # the request itself could not be encoded
            raise ProtocolError(f"{method} {path}: request could not be encoded ({type(exc).__name__})") from None
        except OSError as exc:  # anything the transport let through unwrapped
            raise Unavailable(f"{method} {path}: {exc}", kind="reset", sent=True) from None
        self.latency_ms = (time.perf_counter() - started) * 1000.0
        check_status(response, method, path, ok)
        try:
            return response.status_code, decode_body(response, adapter, method, path)
        except BackendError:
            raise
        except Exception as exc:  # pragma: no cover - decode_body maps every known failure
            raise ProtocolError(f"{method} {path}: unreadable reply ({type(exc).__name__})",
                                status=response.status_code) from None
