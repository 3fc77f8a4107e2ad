"""BackendClient: the one way the console talks REST to the broker's main system.

Why it exists: the service layer and sync/ must be able to tell "the main system said
no" (Rejected, Forbidden, ...) from "the main system is gone" (Unavailable) from "the
main system said something we do not understand" (ProtocolError), and must never see a
raw httpx, json, pydantic or OSError exception.  Every reply is validated against the
wire models; only calls that are safe to repeat are retried (GETs, and POST /orders
because client_order_id is an idempotency key).  The HTTP status -> error mapping lives
in ``backend_client.replies``.

A degraded main system must not hang the console or fill its memory, so every call
has two bounds besides the per-read timeouts (a reply trickled one byte per second
never trips a per-read timeout, and an endless body never ends):

- a total deadline: connect, send, headers and the whole body, retries included.
  Past it: ``errors.DeadlineExceeded`` (an Unavailable of kind "timeout").
- a maximum reply size, checked against Content-Length and again while the body
  streams in, before anything is buffered whole or parsed.  Past it:
  ``errors.ReplyTooLarge`` (an Unavailable of kind "too_large").

Both are errors of the main system (the CLI exits 5 online; the failure detector counts
them).  The BOD snapshot is the one big, slow reply, so it has bounds of its own.
Settings: constructor arguments; when not given, the environment; else the defaults:

==================================  ===============================  =========
constructor argument                environment                      default
==================================  ===============================  =========
``deadline_s``                      ``LIFEBOAT_REQUEST_DEADLINE_S``  10 s
``bod_deadline_s``                  ``LIFEBOAT_BOD_DEADLINE_S``      60 s
``max_reply_bytes``                 ``LIFEBOAT_MAX_REPLY_BYTES``     8 MiB
``bod_max_reply_bytes``             ``LIFEBOAT_BOD_MAX_REPLY_BYTES`` 128 MiB
==================================  ===============================  =========

``request()`` is the public way to make any JSON call with these bounds (new endpoints
such as the audit checkpoints use it).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import TypeAdapter

from backend_client.errors import BackendError, DeadlineExceeded, ProtocolError, ReplyTooLarge, Unavailable
from backend_client.replies import check_status, decode_body, transport_error
from contract import wire

T = TypeVar("T")
_N = TypeVar("_N", int, float)  # a setting's number type: what ``cast`` makes of it

_RETRY_BACKOFF_S = 0.05  # first pause between attempts; doubles, capped below
_RETRY_BACKOFF_MAX_S = 0.5

DEADLINE_ENV = "LIFEBOAT_REQUEST_DEADLINE_S"
BOD_DEADLINE_ENV = "LIFEBOAT_BOD_DEADLINE_S"
MAX_REPLY_ENV = "LIFEBOAT_MAX_REPLY_BYTES"
BOD_MAX_REPLY_ENV = "LIFEBOAT_BOD_MAX_REPLY_BYTES"
DEFAULT_DEADLINE_S = 10.0  # "a few seconds", with room for a loaded machine's slow fsync'd POST
DEFAULT_BOD_DEADLINE_S = 60.0
DEFAULT_MAX_REPLY_BYTES = 8 * 2**20  # a page of orders or positions is far below this
DEFAULT_BOD_MAX_REPLY_BYTES = 128 * 2**20  # a whole broker's book in one snapshot


@dataclass(frozen=True)
class PlaceResult:
    """Outcome of POST /orders: ``created`` is False when the client_order_id was already
    accepted with the same parameters (the main system returned the existing order)."""

    order: wire.Order
    created: bool


_ADAPTERS: dict[Any, TypeAdapter] = {}


def _adapter(tp: Any) -> TypeAdapter:
    """One TypeAdapter per type (building one costs about a millisecond)."""
    if isinstance(tp, TypeAdapter):
        return tp
    if tp not in _ADAPTERS:
        _ADAPTERS[tp] = TypeAdapter(tp)
    return _ADAPTERS[tp]


def positive_setting(value: float | None, env: str, default: _N, cast: Callable[[Any], _N]) -> _N:
    """A bound: the argument if given, else the environment variable, else the default;
    anything but a positive number is refused, naming where it came from."""
    where = "argument"
    if value is None:
        raw = os.environ.get(env, "").strip()
        if not raw:
            return default
        where = env
        try:
            value = cast(raw)
        except ValueError:
            raise ValueError(f"bad {env}={raw!r}: expected a positive number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"bad {where} {value!r} for {env}: expected a positive number")
    return cast(value)


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
    status bar); None until one has.  ``deadline_s``, ``bod_deadline_s``,
    ``max_reply_bytes`` and ``bod_max_reply_bytes`` bound every call (module docstring;
    None: from the environment, else the default).
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
        deadline_s: float | None = None,
        bod_deadline_s: float | None = None,
        max_reply_bytes: int | None = None,
        bod_max_reply_bytes: int | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.deadline_s = positive_setting(deadline_s, DEADLINE_ENV, DEFAULT_DEADLINE_S, float)
        self.bod_deadline_s = positive_setting(
            bod_deadline_s, BOD_DEADLINE_ENV, DEFAULT_BOD_DEADLINE_S, float
        )
        self.max_reply_bytes = positive_setting(max_reply_bytes, MAX_REPLY_ENV, DEFAULT_MAX_REPLY_BYTES, int)
        self.bod_max_reply_bytes = positive_setting(
            bod_max_reply_bytes, BOD_MAX_REPLY_ENV, DEFAULT_BOD_MAX_REPLY_BYTES, int
        )
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
        # f(method, path, seconds, outcome) after each logical call ("ok" or what failed:
        # the Unavailable kind or the error's class); the agent's metrics listen here
        self.observer: Callable[[str, str, float, str], None] | None = None
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

    def retarget(self, base_url: str) -> None:
        """Aim every later request at another site with the same contract (the DR tier: the
        broker's DR site once it is primary, or main again); the session token goes along."""
        parts = urlsplit(base_url) if isinstance(base_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"bad backend URL {base_url!r}: expected http(s)://host:port")
        if self._control_url == self._base_url:
            self._control_url = base_url.rstrip("/")
        self._base_url = base_url.rstrip("/")
        self._http.base_url = self._base_url + wire.API_PREFIX

    @property
    def token(self) -> str | None:
        return self._token

    @token.setter
    def token(self, value: str | None) -> None:
        self._token = checked_token(value)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> BackendClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ session and reference data

    async def health(self) -> wire.Health:
        return await self._get("/health", _HEALTH, auth=False)

    async def login(self, user_id: str, password: str) -> wire.SessionResponse:
        body = {"user_id": user_id, "password": password}
        # Logging in twice is harmless, so a lost answer may be retried.
        _, session = await self.request("POST", "/session", _SESSION, json=body, auth=False, safe=True)
        self._token = session.access_token
        return session

    async def keys(self) -> wire.KeySet:
        return await self._get("/keys", _KEYS)

    async def bod(self) -> wire.BodSnapshot:
        """The start-of-day snapshot: the one big reply, with its own deadline and size cap."""
        _, snap = await self.request(
            "GET",
            "/bod",
            _BOD,
            safe=True,
            deadline_s=self.bod_deadline_s,
            max_reply_bytes=self.bod_max_reply_bytes,
        )
        return snap

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
        status, order = await self.request("POST", "/orders", _ORDER, json=body, safe=True, ok=(200, 201))
        return PlaceResult(order=order, created=status == 201)

    async def modify_order(self, order_id: str, change: wire.OrderModify) -> wire.Order:
        """PATCH: never repeated once it may have reached the server."""
        body = change.model_dump(mode="json", exclude_none=True)
        _, order = await self.request("PATCH", f"/orders/{_segment(order_id)}", _ORDER, json=body, safe=False)
        return order

    async def cancel_order(self, order_id: str) -> wire.Order:
        """DELETE: never repeated once it may have reached the server."""
        _, order = await self.request("DELETE", f"/orders/{_segment(order_id)}", _ORDER, safe=False)
        return order

    # ------------------------------------------------------------------ faults (mainsim --allow-faults)

    async def get_fault(self) -> wire.FaultState:
        """Supervisor only; sent to ``control_url`` when given."""
        return await self._get(self._control_url + wire.API_PREFIX + "/admin/faults", _FAULT)

    async def set_fault(self, request: wire.FaultRequest) -> wire.FaultState:
        """Supervisor only; setting a mode twice is harmless, so it may be retried."""
        body = request.model_dump(mode="json", exclude_none=True)
        _, state = await self.request(
            "POST", self._control_url + wire.API_PREFIX + "/admin/faults", _FAULT, json=body, safe=True
        )
        return state

    # ------------------------------------------------------------------ plumbing

    async def _get(self, path: str, adapter: TypeAdapter, *, params: dict | None = None, auth: bool = True):
        _, value = await self.request("GET", path, adapter, params=params, auth=auth, safe=True)
        return value

    async def request(
        self,
        method: str,
        path: str,
        model: Any,
        *,
        params: dict | None = None,
        json: Any = None,
        auth: bool = True,
        safe: bool,
        ok: tuple[int, ...] = (200,),
        deadline_s: float | None = None,
        max_reply_bytes: int | None = None,
    ) -> tuple[int, Any]:
        """One logical JSON call to main: (status, the reply validated as ``model``).

        ``path`` is below /api/v1 (or a full URL); ``model`` a type or a TypeAdapter;
        ``json`` the body; ``params`` the query (None values dropped); ``auth`` sends
        the bearer token; ``ok`` the statuses that are a success.  ``safe``: the call
        may be repeated even when an earlier attempt may have reached the server; an
        unsafe call is repeated only when the attempt surely did not.  The whole call,
        retries included, ends within ``deadline_s`` (default: the client's) and reads
        at most ``max_reply_bytes`` (default: the client's).  Raises only
        errors.BackendError subclasses.
        """
        if self.observer is None:
            return await self._request(
                method, path, model, params, json, auth, safe, ok, deadline_s, max_reply_bytes
            )
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await self._request(
                method, path, model, params, json, auth, safe, ok, deadline_s, max_reply_bytes
            )
        except Unavailable as exc:
            outcome = exc.kind
            raise
        except BackendError as exc:
            outcome = type(exc).__name__.lower()
            raise
        finally:
            self.observer(method, path, time.perf_counter() - started, outcome)

    async def _request(
        self, method, path, model, params, json, auth, safe, ok, deadline_s, max_reply_bytes
    ) -> tuple[int, Any]:
        adapter = _adapter(model)
        headers = {"Authorization": f"Bearer {self._token}"} if auth and self._token else None
        query = {k: v for k, v in (params or {}).items() if v is not None} or None
        deadline_s = self.deadline_s if deadline_s is None else deadline_s
        limit = self.max_reply_bytes if max_reply_bytes is None else max_reply_bytes
        loop = asyncio.get_running_loop()
        deadline_at = loop.time() + deadline_s
        attempt = 0
        maybe_sent = False
        while True:
            try:
                return await self._attempt(
                    method, path, adapter, query, json, headers, ok, deadline_at, deadline_s, limit
                )
            except Unavailable as exc:
                # An earlier attempt that may have arrived leaves the outcome unknown,
                # even if the last one was refused before sending.
                maybe_sent = exc.sent = maybe_sent or exc.sent
                if isinstance(
                    exc, (DeadlineExceeded, ReplyTooLarge)
                ):  # no time left / it would be as big again
                    raise
                if attempt >= self._retries or not (safe or not exc.sent):
                    raise
                pause = min(_RETRY_BACKOFF_MAX_S, _RETRY_BACKOFF_S * 2**attempt)
                if (
                    loop.time() + pause >= deadline_at
                ):  # no time for another attempt: this failure is the answer
                    raise
            attempt += 1
            await asyncio.sleep(pause)

    async def _attempt(
        self,
        method,
        path,
        adapter,
        query,
        json,
        headers,
        ok,
        deadline_at: float,
        deadline_s: float,
        limit: int,
    ) -> tuple[int, Any]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout_at(deadline_at):
                response = await self._fetch(method, path, query, json, headers, limit)
        except TimeoutError:  # only our own deadline: httpx's timeouts are httpx.TimeoutException
            raise DeadlineExceeded(
                f"{method} {path}: no whole reply within the {deadline_s:g} s deadline", deadline_s=deadline_s
            ) from None
        except httpx.HTTPError as exc:
            raise transport_error(exc, method, path) from None
        except (
            httpx.InvalidURL,
            UnicodeError,
            ValueError,
            TypeError,
        ) as exc:  # the request itself could not be encoded
            raise ProtocolError(
                f"{method} {path}: request could not be encoded ({type(exc).__name__})"
            ) from None
        except OSError as exc:  # anything the transport let through unwrapped
            raise Unavailable(f"{method} {path}: {exc}", kind="reset", sent=True) from None
        self.latency_ms = (time.perf_counter() - started) * 1000.0
        check_status(response, method, path, ok)
        try:
            return response.status_code, decode_body(response, adapter, method, path)
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - boundary: an unexpected decode failure is a protocol error  # pragma: no cover
            raise ProtocolError(
                f"{method} {path}: unreadable reply ({type(exc).__name__})", status=response.status_code
            ) from None

    async def _fetch(self, method, path, query, json, headers, limit: int) -> httpx.Response:
        """Send the request and stream the reply in, refusing it once it passes ``limit``
        bytes (as declared, or as counted after decoding): nothing bigger is ever held."""
        too_large = f"{method} {path}: reply larger than the {limit:,} bytes accepted"
        async with self._http.stream(method, path, params=query, json=json, headers=headers) as streamed:
            declared = streamed.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise ReplyTooLarge(
                    f"{too_large} (it announced {int(declared):,})", limit=limit, status=streamed.status_code
                )
            chunks, size = [], 0
            async for chunk in streamed.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise ReplyTooLarge(too_large, limit=limit, status=streamed.status_code)
                chunks.append(chunk)
        # the body is decoded already: the copy keeps the headers but not the encoding
        headers = [
            (k, v)
            for k, v in streamed.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            streamed.status_code, headers=headers, content=b"".join(chunks), request=streamed.request
        )
