"""A hostile HTTP + WebSocket proxy in front of a real, running mainsim.

Why it exists: mainsim always answers correctly, and tests/garbage_server.py answers
every request with canned bytes, so neither can show what the console does when a
*real* session meets a degraded main system on one call: the login succeeds, the
BOD trickles in one byte every second, the positions reply never ends, the order
reply is an nginx page.  This proxy forwards everything to the real mainsim and
misbehaves only on the paths a test names.  It is a fake by necessity (no well-behaved
server can be asked to misbehave), and it fakes only the bytes of the chosen replies.

API (synchronous tests use ``ThreadedHostileProxy``; its methods are thread-safe)::

    with ThreadedHostileProxy(sim.url) as proxy:        # or HostileProxy(...) on your own loop
        cli = cli_factory(proxy.url)                    # point the console at proxy.url
        proxy.misbehave("/positions", "drip", interval=0.5)
        proxy.misbehave("/bod", "rewrite", rewrite=lambda body: {**body, "clients": []})
        proxy.misbehave("/orders*", "html", method="POST", status=502, times=1)
        ...
        proxy.hits("/positions")                        # how many replies it spoiled there
        proxy.clear()                                   # forward everything again

``misbehave(path, mode, *, method=None, times=None, **options)`` adds a rule; the
newest matching rule wins.  ``path`` is below ``/api/v1`` ("/positions"), or a full
path when it starts with "/api/"; a trailing "*" matches any path with that prefix;
the query string is matched only by a rule whose path has one ("/positions?client_id=C1"
matches that exact query; "/positions" matches any).  ``method`` limits it to one HTTP method;
``times`` spends the rule after that many replies (None: for ever).

Modes (the options each takes; every spoiled reply ends its connection):

- ``forward``: the real reply, untouched (a rule that shadows an older one).
- ``drip``: the real reply, status line included, one byte every ``interval`` s
  (default 1.0): each read gets a byte, so no per-read timeout ever fires.
- ``endless``: ``200 application/json``, chunked, a JSON array that never ends
  (``chunk_bytes`` per chunk, default 65536, written as fast as the client reads).
- ``garbage``: ``status`` (default 200) with ``application/json`` and a body that is
  not JSON (``body``: bytes, default a fixed binary string).
- ``not_http``: bytes that are not HTTP at all, then the connection closes.
- ``html``: an nginx error page as ``text/html`` with ``status`` (default 502; 200
  is a captive portal).
- ``empty200``: ``200 application/json`` with an empty body.
- ``rewrite``: the real reply with its JSON body replaced by ``rewrite(body)`` (the
  parsed JSON in, anything JSON-able out; ``status`` overrides the real status).  A
  real reply that is not JSON is sent unchanged.  For content cases: rows out of
  scope, huge numbers, control characters ...
- ``wrong_types``: ``rewrite`` with a fixed function: every number becomes a string
  and every string (bar dict keys) becomes the number 12345.
- ``ws_garbage`` (path "/stream"): the real WebSocket stream, with ``frames`` (a list
  of bytes or str, default one non-JSON text frame) sent as text frames after the
  first ``after`` (default 1) real messages; the real stream then goes on.

``forward=True`` on garbage, not_http, html, empty200 and endless sends the request on
to mainsim first and spoils only the reply (main acted, the console cannot know);
by default those modes answer without mainsim seeing the request.

Request bodies are read by Content-Length (httpx sends them so); chunked request
bodies are not supported.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.garbage_server import ws_text_frame

API_PREFIX = "/api/v1"
MODES = (
    "forward",
    "drip",
    "endless",
    "garbage",
    "not_http",
    "html",
    "empty200",
    "rewrite",
    "wrong_types",
    "ws_garbage",
)
# headers that describe one hop, or a body encoding httpx already undid: never copied
_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "upgrade",
    "proxy-connection",
    "te",
    "trailer",
    "host",
}
_NGINX_502 = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    b"</center><hr><center>nginx</center></body></html>"
)
_GARBAGE = b"\x00\xff<<garbage>>\x1b[2J{\"unterminated"
_REASONS = {
    200: "OK",
    201: "Created",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass
class Rule:
    path: str
    mode: str
    method: str | None = None
    times: int | None = None
    options: dict = field(default_factory=dict)
    hits: int = 0

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        path = target if "?" in self.path else urlsplit(target).path
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return path == self.path


def _full_path(path: str) -> str:
    if path.startswith("/api/"):
        return path
    return API_PREFIX + (path if path.startswith("/") else "/" + path)


def swap_types(value: Any) -> Any:
    """The ``wrong_types`` rewrite: numbers become strings, strings become 12345."""
    if isinstance(value, dict):
        return {k: swap_types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [swap_types(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return f"not a number: {value}"
    if isinstance(value, str):
        return 12345
    return value


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Whatever')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _reply(status: int, ctype: str | None, body: bytes, extra: list[tuple[str, str]] = ()) -> bytes:
    headers = [("content-length", str(len(body))), ("connection", "close"), *extra]
    if ctype:
        headers.append(("content-type", ctype))
    return _head(status, headers) + body


@dataclass
class _Request:
    method: str
    target: str  # path and query, as sent
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name), "")


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _ = lines[0].split(" ", 2)
    except ValueError:
        return None
    headers = [(k.strip(), v.strip()) for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)]
    req = _Request(method, target, headers, b"")
    length = int(req.header("content-length") or 0)
    if length:
        req.body = await reader.readexactly(length)
    return req


class HostileProxy:
    """The proxy on the caller's event loop: ``await start()``, ``await stop()``."""

    def __init__(self, target_url: str, host: str = "127.0.0.1", port: int = 0) -> None:
        parts = urlsplit(target_url)
        self.target_url = target_url.rstrip("/")
        self._target = (parts.hostname, parts.port or 80)
        self.host, self.port = host, port
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._server: asyncio.base_events.Server | None = None
        self._http: httpx.AsyncClient | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ rules (any thread)

    def misbehave(
        self, path: str, mode: str, *, method: str | None = None, times: int | None = None, **options: Any
    ) -> Rule:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: expected one of {MODES}")
        if mode == "rewrite" and not callable(options.get("rewrite")):
            raise ValueError("mode rewrite needs rewrite=callable(body) -> body")
        rule = Rule(_full_path(path), mode, method.upper() if method else None, times, options)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def hits(self, path: str | None = None) -> int:
        """Replies spoiled so far (by the rules on ``path``, or all), rules cleared since excluded."""
        with self._lock:
            return sum(r.hits for r in self._rules if path is None or r.path == _full_path(path))

    def _take(self, method: str, target: str) -> Rule | None:
        with self._lock:
            for rule in reversed(self._rules):
                if rule.matches(method, target):
                    rule.hits += 1
                    return rule
        return None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> HostileProxy:
        self._http = httpx.AsyncClient(
            base_url=self.target_url, trust_env=False, timeout=30.0, follow_redirects=False
        )
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            await self._server.wait_closed()
            self._server = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> HostileProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ connections

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                req = await _read_request(reader)
                if req is None:
                    return
                rule = self._take(req.method, req.target)
                if req.header("upgrade").lower() == "websocket":
                    await self._websocket(req, rule, reader, writer)
                    return
                if not await self._answer(req, rule, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _upstream(self, req: _Request) -> httpx.Response:
        headers = [(k, v) for k, v in req.headers if k.lower() not in _HOP]
        return await self._http.request(req.method, req.target, headers=headers, content=req.body or None)

    async def _answer(self, req: _Request, rule: Rule | None, writer: asyncio.StreamWriter) -> bool:
        """Write one reply; False when the connection must end."""
        mode = rule.mode if rule else "forward"
        opts = rule.options if rule else {}
        if mode in ("garbage", "not_http", "html", "empty200", "endless"):
            if opts.get("forward"):
                await self._upstream(req)
            if mode == "endless":
                await self._endless(writer, int(opts.get("chunk_bytes", 65536)))
                return False
            writer.write(
                {
                    "garbage": lambda: _reply(
                        int(opts.get("status", 200)), "application/json", opts.get("body", _GARBAGE)
                    ),
                    "not_http": lambda: b"SSH-2.0-OpenSSH_9.6\r\n\x00\xffgarbage garbage\r\n\r\n",
                    "html": lambda: _reply(int(opts.get("status", 502)), "text/html", _NGINX_502),
                    "empty200": lambda: _reply(200, "application/json", b""),
                }[mode]()
            )
            await writer.drain()
            return False
        real = await self._upstream(req)
        status, body = real.status_code, real.content
        headers = [(k, v) for k, v in real.headers.multi_items() if k.lower() not in _HOP]
        if mode in ("rewrite", "wrong_types") and "json" in real.headers.get("content-type", ""):
            fn: Callable[[Any], Any] = opts["rewrite"] if mode == "rewrite" else swap_types
            body = json.dumps(fn(json.loads(body))).encode()
            status = int(opts.get("status", status))
        spoiled = mode != "forward"
        headers += [("content-length", str(len(body)))] + ([("connection", "close")] if spoiled else [])
        data = _head(status, headers) + body
        if mode == "drip":
            interval = float(opts.get("interval", 1.0))
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                await writer.drain()
                await asyncio.sleep(interval)
            return False
        writer.write(data)
        await writer.drain()
        return not spoiled

    async def _endless(self, writer: asyncio.StreamWriter, chunk_bytes: int) -> None:
        writer.write(_head(200, [("content-type", "application/json"), ("transfer-encoding", "chunked")]))
        row = b'{"client_id":"CL001","exchange":"NSE","symbol":"INFY","net_quantity":1},'
        payload = b"[" + row * max(1, chunk_bytes // len(row))
        while True:  # until the client goes away (drain raises) or the proxy stops
            writer.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
            await writer.drain()
            payload = payload.lstrip(b"[")

    # ------------------------------------------------------------------ WebSocket

    async def _websocket(
        self, req: _Request, rule: Rule | None, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Forward the upgrade and both byte streams; inject frames for ws_garbage."""
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        head = f"{req.method} {req.target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers)
        up_writer.write(head.encode("latin-1") + b"\r\n" + req.body)
        inject = rule.options if rule is not None and rule.mode == "ws_garbage" else None

        async def client_to_main() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()

        async def main_to_client() -> None:
            writer.write(await up_reader.readuntil(b"\r\n\r\n"))  # the handshake's answer
            await writer.drain()
            frames = 0
            while True:
                first = await up_reader.readexactly(2)
                n = first[1] & 0x7F
                ext = await up_reader.readexactly({126: 2, 127: 8}.get(n, 0))
                length = int.from_bytes(ext, "big") if ext else n
                writer.write(
                    first + ext + await up_reader.readexactly(length)
                )  # server frames are not masked
                frames += 1
                if inject is not None and frames == int(inject.get("after", 1)):
                    for f in inject.get("frames", [b"this is not json {"]):
                        writer.write(ws_text_frame(f.encode() if isinstance(f, str) else f))
                await writer.drain()

        tasks = [asyncio.ensure_future(client_to_main()), asyncio.ensure_future(main_to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            up_writer.transport.abort()


class ThreadedHostileProxy:
    """A HostileProxy on its own event loop in a daemon thread, for synchronous tests
    (the CLI runs as a subprocess).  Same ``misbehave``/``clear``/``hits``/``url``."""

    def __init__(self, target_url: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.proxy = HostileProxy(target_url, host, port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hostile-proxy", daemon=True)

    def _call(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def url(self) -> str:
        return self.proxy.url

    def misbehave(self, path: str, mode: str, **kw: Any) -> Rule:
        return self.proxy.misbehave(path, mode, **kw)

    def clear(self) -> None:
        self.proxy.clear()

    def hits(self, path: str | None = None) -> int:
        return self.proxy.hits(path)

    def start(self) -> ThreadedHostileProxy:
        self._thread.start()
        self._call(self.proxy.start())
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self.proxy.stop())
            self._call(self._cancel_rest())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    @staticmethod
    async def _cancel_rest() -> None:
        """End the connections still being served (a drip mid-reply), so none outlives the loop."""
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in rest:
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def __enter__(self) -> ThreadedHostileProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
