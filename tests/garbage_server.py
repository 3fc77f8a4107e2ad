"""A raw asyncio TCP server that answers like a broken main system.

Why it exists: mainsim always answers correctly, but a real main system (or the proxy
in front of it) can send truncated JSON, an HTML error page, an empty body, reset the
connection mid-reply, hang, or speak garbage on the stream.  This server produces
each of those on purpose, byte for byte, so tests can prove the client maps every one
to a typed error (ProtocolError / Unavailable) and never lets a raw exception out.
It is a fake by necessity: no well-behaved server can be asked to misbehave this way.

HTTP: each request takes the next mode from ``script`` (then falls back to ``mode``);
every request is recorded in ``requests``.  WebSocket (a request with ``Upgrade:
websocket``): each connection takes the next mode from ``ws_script`` (then ``ws_mode``);
a mode is either a name or a list of JSON-able messages to send (then the server holds
the connection open in silence, or closes it if the list has the string "close").
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
from dataclasses import dataclass, field
from typing import Any

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

_TS = "2026-01-05T09:15:00+05:30"
GOOD_HEALTH = {"status": "ok", "trading_date": "2026-01-05", "server_time": _TS}
GOOD_ORDER = {
    "order_id": "O-1",
    "client_order_id": "C-1",
    "client_id": "CL001",
    "exchange": "NSE",
    "symbol": "INFY",
    "side": "BUY",
    "quantity": 10,
    "filled_quantity": 0,
    "average_price": 0,
    "product": "MIS",
    "order_type": "LIMIT",
    "price": 1500.5,
    "trigger_price": None,
    "validity": "DAY",
    "disclosed_quantity": None,
    "status": "OPEN",
    "status_reason": None,
    "placed_by": "dealer1",
    "created_at": _TS,
    "updated_at": _TS,
}


def _json(obj: Any) -> bytes:
    return json.dumps(obj).encode()


_HTML_502 = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    b"</h1></center><hr><center>nginx</center></body></html>"
)

# mode -> (status, content-type or None, body)
HTTP_MODES: dict[str, tuple[int, str | None, bytes]] = {
    "health_ok": (200, "application/json", _json(GOOD_HEALTH)),
    "order_ok": (200, "application/json", _json(GOOD_ORDER)),
    "order_created": (201, "application/json", _json(GOOD_ORDER)),
    "truncated_json": (200, "application/json", _json(GOOD_HEALTH)[:25]),
    "wrong_types": (200, "application/json", _json({**GOOD_ORDER, "quantity": "abc"})),
    "wrong_shape": (200, "application/json", _json([{"unexpected": 1}])),
    "json_null": (200, "application/json", b"null"),
    "json_garbage": (200, "application/json", b"<<<not json>>>"),
    "html_502": (502, "text/html", _HTML_502),
    "html_200": (200, "text/html", b"<html><body>Welcome to the captive portal</body></html>"),
    "html_404": (404, "text/html", b"<html><body>Not Found</body></html>"),
    "empty_200": (200, "application/json", b""),
    "text_plain": (200, "text/plain", b"OK lol \x00\xff nonsense"),
    "no_content_type": (200, None, _json(GOOD_HEALTH)),
    "json_500": (
        500,
        "application/json",
        _json({"error": {"code": "internal", "message": "database is down"}}),
    ),
    "json_503": (503, "application/json", _json({"error": {"code": "fault", "message": "fault injected"}})),
    "rejected_422": (
        422,
        "application/json",
        _json(
            {
                "error": {
                    "code": "lot_size",
                    "message": "quantity is not a multiple of 25",
                    "field": "quantity",
                }
            }
        ),
    ),
    "unauthorized_401": (
        401,
        "application/json",
        _json({"error": {"code": "unauthorized", "message": "bad token"}}),
    ),
    "detail_404": (404, "application/json", _json({"detail": "Not Found"})),
    "teapot_418": (418, "application/json", _json({"error": {"code": "teapot", "message": "I'm a teapot"}})),
    "redirect_302": (302, "text/html", b""),
}
# modes with raw behaviour instead of a canned reply
RAW_MODES = ("hang", "reset_mid_body", "close_no_response", "close_and_stop_listening", "not_http", "raw")


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class GarbageServer:
    mode: str = "health_ok"
    script: list[str] = field(default_factory=list)
    ws_mode: str | list = "ws_silent"
    ws_script: list = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    ws_requests: list[Request] = field(default_factory=list)
    raw_reply: bytes = b""  # written verbatim by mode "raw", then the connection closes
    port: int = 0
    _server: Any = None
    _writers: set = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> GarbageServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            await self._server.wait_closed()

    async def __aenter__(self) -> GarbageServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ connection handling

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                if request.headers.get("upgrade", "").lower() == "websocket":
                    self.ws_requests.append(request)
                    mode = self.ws_script.pop(0) if self.ws_script else self.ws_mode
                    await self._websocket(request, mode, reader, writer)
                    return
                self.requests.append(request)
                mode = self.script.pop(0) if self.script else self.mode
                if not await self._http(mode, reader, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:  # the test's loop is shutting down
            return
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _http(self, mode: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must end."""
        if mode == "hang":
            await reader.read()  # until the client gives up and closes
            return False
        if mode == "close_no_response":
            return False
        if mode == "raw":
            writer.write(self.raw_reply)
            await writer.drain()
            return False
        if mode == "close_and_stop_listening":  # later connects are refused
            self._server.close()
            return False
        if mode == "not_http":
            writer.write(b"SSH-2.0-OpenSSH_9.6\r\ngarbage garbage\r\n\r\n")
            await writer.drain()
            return False
        if mode == "reset_mid_body":
            body = _json(GOOD_ORDER)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[: len(body) // 2]
            )
            await writer.drain()
            writer.transport.abort()  # RST, not FIN
            return False
        status, ctype, body = HTTP_MODES[mode]
        head = f"HTTP/1.1 {status} Whatever\r\nContent-Length: {len(body)}\r\n"
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        if status == 302:
            head += "Location: http://127.0.0.1:1/elsewhere\r\n"
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()
        return True

    async def _websocket(self, request: Request, mode: str | list, reader, writer) -> None:
        if mode in ("ws_reject_500", "ws_reject_401"):
            status = 500 if mode == "ws_reject_500" else 401
            writer.write(f"HTTP/1.1 {status} Nope\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
            return
        key = request.headers.get("sec-websocket-key", "")
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        writer.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        if mode == "ws_non_json":
            writer.write(ws_text_frame(b"this is not json {"))
        elif mode == "ws_wrong_shape":
            writer.write(ws_text_frame(_json({"type": "order", "seq": "seven", "data": {}})))
        elif mode == "ws_unknown_type":
            writer.write(ws_text_frame(_json({"type": "gossip", "seq": 1})))
        elif mode == "ws_hello_then_silent":
            writer.write(ws_text_frame(_json(hello(0))))
        elif isinstance(mode, list):
            for item in mode:
                if item == "close":
                    await writer.drain()
                    return
                writer.write(ws_text_frame(item if isinstance(item, bytes) else _json(item)))
        await writer.drain()
        await reader.read()  # silent: never answer anything, until the client aborts


def hello(seq: int) -> dict:
    return {
        "type": "hello",
        "seq": seq,
        "server_time": _TS,
        "trading_date": "2026-01-05",
        "heartbeat_ms": 250,
        "user_id": "dealer1",
    }


def heartbeat(seq: int) -> dict:
    return {"type": "heartbeat", "seq": seq, "server_time": _TS}


def order_event(seq: int, order_id: str = "O-1") -> dict:
    return {"type": "order", "seq": seq, "data": {**GOOD_ORDER, "order_id": order_id}}


def ws_text_frame(payload: bytes) -> bytes:
    """One unmasked WebSocket text frame (server to client) carrying ``payload``."""
    n = len(payload)
    if n < 126:
        header = bytes([0x81, n])
    elif n < 65536:
        header = bytes([0x81, 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x81, 127]) + n.to_bytes(8, "big")
    return header + payload


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    return Request(method, path, headers, body)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
