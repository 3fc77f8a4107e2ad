"""StreamClient: the live feed of the main system (heartbeats, ticks, order/trade/position events).

Why it exists: the local mirror must stay seconds old while online, and the failure
detector must learn of a dead or hung main system fast.  This client therefore
- reconnects by itself (exponential backoff with jitter) and resumes with
  ``?since=<last event seq seen>`` so no event is lost across a drop;
- drops duplicate events (seq <= last seen) and turns a sequence that went backwards
  (the server lost state) into a ResnapshotMsg, as it does the server's own one, so the
  consumer takes a fresh snapshot;
- notices a silent server with its own no-message timer and aborts the transport at
  once (websockets' keepalive only reports a hang after close_timeout, 10 s by default);
- treats a malformed message as a protocol fault: counted, logged, connection dropped
  and reopened, never an exception at the consumer;
- refuses a message larger than ``max_message_bytes`` (default 1 MiB, or
  ``LIFEBOAT_MAX_STREAM_MESSAGE_BYTES``) the same way, before it is buffered whole:
  websockets closes with 1009 as soon as the frame header announces more.  At most
  websockets' queue of 16 such messages is ever held, so memory stays bounded.

Up/down changes are yielded in-band as StreamStatus items so a failure detector can
consume the same iterator as the mirror.  Only a refused login (401/403 at the
handshake) ends the iterator with an exception: retrying cannot fix it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from pydantic import TypeAdapter, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from backend_client.client import checked_token, positive_setting
from backend_client.errors import Forbidden, Unauthorized
from contract import wire
from contract.aio import wait_event

log = logging.getLogger(__name__)

_MESSAGE = TypeAdapter(wire.StreamMessage)
_CLOSE_TIMEOUT_S = 0.2  # we never wait long for a polite close: a dead peer will not answer
MAX_MESSAGE_ENV = "LIFEBOAT_MAX_STREAM_MESSAGE_BYTES"
DEFAULT_MAX_MESSAGE_BYTES = 2**20  # a tick batch of every instrument is a few KiB
_TOO_BIG = 1009  # the close code websockets sends when a message passes max_size


@dataclass(frozen=True)
class StreamStatus:
    """The stream went up (``connected``) or down, or a connect attempt failed.

    ``at`` is the stream's clock (time.monotonic unless injected); ``reason`` is short,
    e.g. "connected", "silent for 0.75 s", "refused: ...", "protocol error: ...".
    """

    connected: bool
    reason: str
    at: float


StreamItem = (
    StreamStatus
    | wire.HelloMsg
    | wire.HeartbeatMsg
    | wire.TickMsg
    | wire.OrderEvent
    | wire.TradeEvent
    | wire.PositionEvent
    | wire.ResnapshotMsg
)


def stream_url(base_url: str, since: int | None) -> str:
    """http(s)://host:port[/root] -> ws(s)://host:port[/root]/api/v1/stream[?since=N]."""
    parts = urlsplit(base_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"bad backend URL {base_url!r}: expected http(s)://host:port")
    query = urlencode({"since": since}) if since is not None else ""
    return urlunsplit((scheme, parts.netloc, parts.path + wire.API_PREFIX + "/stream", query, ""))


class StreamClient:
    """Reconnecting, resuming, gap-detecting reader of ``/api/v1/stream``.

    Use ``async for item in stream.messages():`` and call ``stop()`` (or ``aclose()``)
    from anywhere to end it promptly.  Counters: ``messages_count`` (valid messages read;
    not ``messages``, which is the iterator),
    ``reconnects`` (connections opened after the first), ``last_seq`` (last event seq
    seen, the resume point), ``last_message_at`` (clock time of the last message),
    ``duplicates``, ``gaps``, ``protocol_errors``, ``connect_failures``, ``connected``.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        since: int | None = None,
        silence_timeout: float = 0.75,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        jitter: float = 0.2,
        open_timeout: float = 2.0,
        verify: bool | str = True,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        max_message_bytes: int | None = None,
    ) -> None:
        if silence_timeout <= 0 or backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError(
                "silence_timeout and backoff_initial must be > 0, backoff_max >= backoff_initial"
            )
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        stream_url(base_url, None)  # validate early
        self._base_url = base_url
        self._token = checked_token(token or None)  # "" or None: no token (the server says 401)
        self.silence_timeout = silence_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.open_timeout = open_timeout
        self.max_message_bytes = positive_setting(
            max_message_bytes, MAX_MESSAGE_ENV, DEFAULT_MAX_MESSAGE_BYTES, int
        )
        self._ssl = self._ssl_context(base_url, verify)
        self._clock = clock
        self._rng = rng or random.Random()
        self._stopped = asyncio.Event()
        self._ws: ClientConnection | None = None

        self.last_seq: int | None = since
        self.messages_count = 0
        self.reconnects = 0
        self.last_message_at: float | None = None
        self.duplicates = 0
        self.gaps = 0
        self.protocol_errors = 0
        self.connect_failures = 0
        self.connected = False  # as of the last StreamStatus yielded
        self.last_backoff: float | None = None  # the last pause before a reconnect, in seconds
        self._connections = 0

    @staticmethod
    def _ssl_context(base_url: str, verify: bool | str) -> ssl.SSLContext | None:
        if urlsplit(base_url).scheme not in ("https", "wss"):
            return None
        if verify is False:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        if isinstance(verify, str):
            return ssl.create_default_context(cafile=verify)
        return ssl.create_default_context()

    # ------------------------------------------------------------------ control

    @property
    def token(self) -> str | None:
        return self._token

    @token.setter
    def token(self, value: str | None) -> None:
        """After a fresh login: used from the next (re)connect on."""
        self._token = checked_token(value or None)

    def resync(self, seq: int) -> None:
        """After taking a snapshot consistent with ``seq``, resume from there."""
        self.last_seq = seq

    def stop(self) -> None:
        """End messages() promptly (callable from any task of the same loop)."""
        self._stopped.set()
        self._abort()

    async def aclose(self) -> None:
        self.stop()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def _abort(self) -> None:
        ws = self._ws
        if ws is not None and ws.transport is not None:
            ws.transport.abort()

    # ------------------------------------------------------------------ the iterator

    async def messages(self) -> AsyncGenerator[StreamItem, None]:
        failures = 0
        while not self._stopped.is_set():
            url = stream_url(self._base_url, self.last_seq)
            try:
                ws = await connect(
                    url,
                    additional_headers={"Authorization": f"Bearer {self._token}"} if self._token else None,
                    open_timeout=self.open_timeout,
                    ping_interval=None,  # our own silence timer notices a hang
                    close_timeout=_CLOSE_TIMEOUT_S,
                    compression=None,  # ~25% of throughput for small ticks (FLOORS.md)
                    max_size=self.max_message_bytes,
                    proxy=None,
                    ssl=self._ssl,
                    user_agent_header=None,
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status == 401:
                    raise Unauthorized("stream refused the token (401)", status=401) from None
                if status == 403:
                    raise Forbidden("stream refused for this user (403)", status=403) from None
                reason = f"handshake refused: HTTP {status}"
            except InvalidURI as exc:
                raise ValueError(f"bad stream URL: {exc}") from None
            except (OSError, TimeoutError, WebSocketException, asyncio.IncompleteReadError, EOFError) as exc:
                reason = f"connect failed: {_short(exc)}"
            else:
                self._ws = ws
                if self._connections:
                    self.reconnects += 1
                self._connections += 1
                healthy = False
                try:
                    if self._stopped.is_set():
                        return
                    self.connected = True
                    yield StreamStatus(True, "connected", self._clock())
                    async with aclosing(self._read(ws)) as items:
                        async for item in items:
                            if isinstance(item, StreamStatus):
                                reason = item.reason
                                break
                            if not isinstance(item, wire.HelloMsg):
                                healthy = True  # it served more than a greeting
                            yield item
                        else:
                            return  # stopped
                finally:
                    self._ws = None
                    self.connected = False
                    if ws.transport is not None:
                        ws.transport.abort()
                if healthy:
                    failures = 0  # a working connection dropped: start again from backoff_initial
                if self._stopped.is_set():
                    return
                yield StreamStatus(False, reason, self._clock())
                failures += 1
                await self._pause(failures)
                continue
            self.connect_failures += 1
            failures += 1
            if self._stopped.is_set():
                return
            yield StreamStatus(False, reason, self._clock())
            await self._pause(failures)

    async def _pause(self, failures: int) -> None:
        delay = min(self.backoff_max, self.backoff_initial * 2 ** max(0, failures - 1))
        delay *= 1 + self._rng.uniform(-self.jitter, self.jitter)
        self.last_backoff = delay
        await wait_event(self._stopped, delay)

    async def _read(self, ws: ClientConnection) -> AsyncGenerator[StreamItem, None]:
        """Messages of one connection; a final StreamStatus says why it ended (none if stopped)."""
        synthesized_resnapshot: int | None = None
        while True:
            try:
                async with asyncio.timeout(self.silence_timeout):  # not wait_for: see contract.aio
                    raw = await ws.recv()
            except (TimeoutError, ConnectionClosed) as exc:
                if isinstance(exc, TimeoutError):
                    ws.transport.abort()
                if self._stopped.is_set():
                    return
                sent = ws.protocol.close_sent
                if sent is not None and sent.code == _TOO_BIG:
                    # we refused an oversized message; a peer that does not close after it
                    # leaves recv() waiting, so the silence timer may be what ends it
                    self.protocol_errors += 1
                    log.warning(
                        "stream: a message over %d bytes dropped the connection", self.max_message_bytes
                    )
                    yield StreamStatus(
                        False, f"protocol error: message over {self.max_message_bytes} bytes", self._clock()
                    )
                elif isinstance(exc, TimeoutError):
                    yield StreamStatus(False, f"silent for {self.silence_timeout:g} s", self._clock())
                else:
                    yield StreamStatus(False, f"closed: {_close_reason(exc)}", self._clock())
                return
            except Exception as exc:  # noqa: BLE001 - boundary: a transport failure websockets did not wrap
                if self._stopped.is_set():
                    return
                yield StreamStatus(False, f"read failed: {_short(exc)}", self._clock())
                return
            try:
                msg = _MESSAGE.validate_json(raw)
            except (ValidationError, ValueError) as exc:
                self.protocol_errors += 1
                log.warning("stream: malformed message dropped the connection: %s", _short(exc))
                yield StreamStatus(False, "protocol error: malformed message", self._clock())
                return
            self.messages_count += 1
            self.last_message_at = self._clock()

            if msg.type in wire.EVENT_TYPES:
                if self.last_seq is not None and msg.seq <= self.last_seq:
                    self.duplicates += 1
                    continue
                self.last_seq = msg.seq
                synthesized_resnapshot = None
                yield msg
            elif msg.type == "resnapshot":
                self.gaps += 1
                self.last_seq = msg.seq
                if synthesized_resnapshot == msg.seq:
                    continue  # we already told the consumer, from the hello
                yield msg
            elif msg.type in ("hello", "heartbeat"):
                if self.last_seq is not None and msg.seq < self.last_seq:
                    # The server's newest event is older than one we saw: it lost state.
                    self.gaps += 1
                    lost_from = self.last_seq
                    self.last_seq = msg.seq
                    synthesized_resnapshot = msg.seq
                    yield msg
                    yield wire.ResnapshotMsg(
                        type="resnapshot",
                        seq=msg.seq,
                        reason=f"server sequence went back from {lost_from} to {msg.seq}",
                    )
                    continue
                if msg.type == "hello" and self.last_seq is None:
                    self.last_seq = msg.seq  # resume point even when no event arrives
                yield msg
            else:
                yield msg


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text[:120]}" if text else name


def _close_reason(exc: ConnectionClosed) -> str:
    rcvd = exc.rcvd
    if rcvd is None:
        return "connection lost"
    return f"code {rcvd.code}" + (f" {rcvd.reason[:60]}" if rcvd.reason else "")
