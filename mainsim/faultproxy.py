"""A TCP front proxy that stages outages of the main system without killing it.

It listens on the public address and forwards bytes to the real server.  Modes:
``none`` forwards; ``refuse`` stops listening (connects get ECONNREFUSED) and
resets open connections, recovery re-binds the same port; ``hang`` (a blackhole)
accepts and never answers, and open connections go silent both ways; ``error``
answers new requests with a 503 wire.ErrorBody and closes open connections.
Optional latency and jitter are added per forwarded chunk, and ``reset()`` RSTs
every open connection once.  Reusable by tests: ``ThreadedFaultProxy`` runs one
on its own loop in a background thread with a small synchronous API.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from dataclasses import dataclass, field

from contract.wire import ErrorBody, ErrorDetail, FaultMode

CHUNK = 65536
ERROR_BODY = ErrorBody(
    error=ErrorDetail(code="unavailable", message="The main system is unavailable (simulated fault).")
).model_dump_json()
ERROR_REPLY = (
    "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    f"content-length: {len(ERROR_BODY)}\r\nconnection: close\r\n\r\n{ERROR_BODY}"
).encode()


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)  # set once both ends are closed

    def writers(self):
        return [w for w in (self.client, self.upstream) if w is not None]


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


async def _closed(writer: asyncio.StreamWriter) -> None:
    try:
        await writer.wait_closed()
    except (OSError, RuntimeError):
        pass


class FaultProxy:
    def __init__(
        self,
        listen_host: str,
        listen_port: int,
        target_host: str,
        target_port: int,
        *,
        latency_ms: float = 0,
        jitter_ms: float = 0,
        seed: int | None = None,
    ):
        self.listen_host, self.port = listen_host, listen_port
        self.target_host, self.target_port = target_host, target_port
        self.latency_ms, self.jitter_ms = latency_ms, jitter_ms
        self.mode = FaultMode.NONE
        self._rng = random.Random(seed)
        self._server: asyncio.base_events.Server | None = None
        self._links: set[_Link] = set()
        self._flowing = asyncio.Event()  # clear while hanging (start() makes a fresh, set one)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> FaultProxy:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._bind()
        return self

    async def _bind(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.listen_host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]  # keep the same port on every re-bind

    def _unbind(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def stop(self) -> None:
        self._unbind()
        self.reset()

    @property
    def address(self) -> tuple[str, int]:
        return (self.listen_host, self.port)

    # ------------------------------------------------------------------ faults
    async def set_mode(self, mode: FaultMode | str) -> None:
        mode = FaultMode(mode)
        old, self.mode = self.mode, mode
        if mode is FaultMode.HANG:
            self._flowing.clear()
        else:
            self._flowing.set()
        # Open connections end now (refuse: reset; error: closed). Wait until their sockets really are closed: a
        # transport closes its socket only on a later loop turn, and the control reply could reach a client first;
        # its next request would then go out on a pooled connection that dies unanswered (a reset, not a 503).
        ending = []
        if mode is FaultMode.REFUSE:
            ending = [w for link in self._links for w in link.writers()]
            self._unbind()
            self.reset()
        elif self._server is None:
            await self._bind()
        if mode is FaultMode.ERROR and old is not FaultMode.ERROR:
            ending = [w for link in self._links for w in link.writers()]
            for w in ending:
                w.close()
        if ending:
            await asyncio.wait([asyncio.ensure_future(_closed(w)) for w in ending], timeout=1)

    def link_of(self, peer) -> _Link | None:
        """The open link whose upstream connection is ``peer`` ((host, port) as the server saw its client):
        how the server knows a request came in through this proxy, on the public address."""
        if not peer:
            return None
        host, port = peer[0], peer[1]
        for link in self._links:
            name = link.upstream.get_extra_info("sockname") if link.upstream is not None else None
            if name and name[1] == port and name[0] == host:
                return link
        return None

    async def ended(self, link: _Link, timeout: float = 2.0) -> bool:
        """Wait until ``link`` has ended: what its server sent is forwarded and its client socket is closed
        (the server must close its end after the reply: ``connection: close``).  False on timeout."""
        try:
            await asyncio.wait_for(link.done.wait(), timeout)
            await asyncio.wait_for(_closed(link.client), timeout)
        except TimeoutError:
            return False
        return True

    async def blackhole(self) -> None:
        await self.set_mode(FaultMode.HANG)

    def reset(self) -> None:
        """RST every open connection once (SO_LINGER 0)."""
        for link in list(self._links):
            for w in link.writers():
                _rst(w)
            for t in link.tasks:
                t.cancel()
        self._links.clear()

    # ------------------------------------------------------------------ forwarding
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(client=writer)
        self._links.add(link)
        try:
            if self.mode is FaultMode.ERROR:
                await self._answer_error(reader, writer)
                return
            await self._flowing.wait()  # hang: accepted, never answered
            if self.mode is FaultMode.ERROR:
                await self._answer_error(reader, writer)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                _rst(writer)
                return
            link.upstream = up_writer
            link.tasks = [
                asyncio.ensure_future(self._pump(reader, up_writer)),
                asyncio.ensure_future(self._pump(up_reader, writer)),
            ]
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for t in link.tasks:
                t.cancel()
            for w in link.writers():
                try:
                    w.close()
                except Exception:  # noqa: BLE001, S110 - cleanup: a writer that cannot close is gone already
                    pass
            self._links.discard(link)
            link.done.set()

    async def _answer_error(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        writer.write(ERROR_REPLY)
        try:
            await writer.drain()
        except OSError:
            pass
        writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                await self._flowing.wait()
                if self.latency_ms or self.jitter_ms:
                    delay = self.latency_ms + self._rng.uniform(-self.jitter_ms, self.jitter_ms)
                    await asyncio.sleep(max(0.0, delay) / 1000)
                writer.write(data)
                await writer.drain()
        except (OSError, RuntimeError):
            return


class ThreadedFaultProxy:
    """A FaultProxy on its own event loop in a daemon thread, for synchronous tests."""

    def __init__(
        self, target_host: str, target_port: int, listen_host: str = "127.0.0.1", listen_port: int = 0, **kw
    ):
        self.proxy = FaultProxy(listen_host, listen_port, target_host, target_port, **kw)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)

    def _call(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> ThreadedFaultProxy:
        self._thread.start()
        self._call(self.proxy.start())
        return self

    @property
    def url(self) -> str:
        return f"http://{self.proxy.listen_host}:{self.proxy.port}"

    def set_mode(self, mode: FaultMode | str) -> None:
        self._call(self.proxy.set_mode(mode))

    def set_latency(self, latency_ms: float, jitter_ms: float = 0) -> None:
        self.proxy.latency_ms, self.proxy.jitter_ms = latency_ms, jitter_ms

    def reset(self) -> None:
        async def _reset():
            self.proxy.reset()

        self._call(_reset())

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self.proxy.stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def __enter__(self) -> ThreadedFaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
