"""Is the broker's main system alive?  The console's failure detector.

Why it exists: a dealer must never wonder which mode the console is in, and must never
see it flip back and forth on a bad link.  This module holds the decision and nothing
else: ``probe_once`` asks main once (the CLI's one-shot path uses it to choose ONLINE vs
BACKUP within about a second), ``decide_one_shot`` turns that answer into a mode, and
``Detector`` is the long-running state machine the runtime feeds with stream messages,
disconnects, probes and request errors.  ``Detector`` does no I/O and reads no clock:
every input carries ``now`` (monotonic seconds), so tests drive it exactly.

Kept cheap to import (no pydantic, httpx imported inside ``probe_once``): it sits on
the CLI's start-up path.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Callable

HEALTH_PATH = "/api/v1/health"

PROBE_KINDS = ("ok", "refused", "timeout", "reset", "server_error", "protocol")
# Failures that say "main is not there" (as opposed to "main answered something odd").
HARD_KINDS = frozenset({"refused", "timeout", "reset"})
_ACCEPT = {"Accept": "application/json"}


class Mode(str, Enum):
    ONLINE = "ONLINE"
    SUSPECT = "SUSPECT"
    BACKUP = "BACKUP"
    RECOVERING = "RECOVERING"


@dataclass
class ProbeResult:
    """One health probe's answer.  ``kind`` is one of PROBE_KINDS; ``latency_ms`` is
    None when nothing came back."""

    ok: bool
    kind: str
    latency_ms: float | None
    detail: str
    trading_date: date | None = None


def _failed(kind: str, detail: str, started: float) -> ProbeResult:
    latency = (time.perf_counter() - started) * 1000.0 if kind in ("server_error", "protocol") else None
    return ProbeResult(ok=False, kind=kind, latency_ms=latency, detail=detail, trading_date=None)


def _classify(exc: BaseException) -> tuple[str, str]:
    import httpx

    if isinstance(exc, (httpx.TimeoutException, asyncio.TimeoutError, TimeoutError)):
        return "timeout", f"no answer in time ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return "refused", f"connection refused ({exc or type(exc).__name__})"
    if isinstance(exc, httpx.RemoteProtocolError):
        text = str(exc).lower()
        if "disconnect" in text or "closed" in text or "incomplete" in text:
            return "reset", f"connection closed mid-reply ({exc})"
        return "protocol", f"the reply is not valid HTTP ({exc})"
    if isinstance(exc, (httpx.ReadError, httpx.WriteError, httpx.CloseError, httpx.NetworkError)):
        return "reset", f"connection reset ({exc or type(exc).__name__})"
    if isinstance(exc, httpx.TransportError):
        return "reset", f"transport failure ({type(exc).__name__}: {exc})"
    if isinstance(exc, OSError):
        return "refused", f"network error ({exc})"
    return "protocol", f"{type(exc).__name__}: {exc}"


def probe_http_client(*, verify: bool | str = True):
    """An httpx.AsyncClient for repeated probes (the runtime's probe loop): building one
    costs ~40 ms (TLS context), so a loop keeps one.  No keep-alive: every probe opens a
    fresh connection, so "main accepts connections" is what is tested each time."""
    import httpx

    return httpx.AsyncClient(verify=verify, trust_env=False,
                             limits=httpx.Limits(max_keepalive_connections=0))


async def probe_once(base_url: str, *, timeout: float = 0.8, verify: bool | str = True,
                     http=None) -> ProbeResult:
    """One GET /api/v1/health; the whole probe (connect, send, read) ends within
    ``timeout`` seconds.  Never raises: every failure is a ProbeResult with its kind.
    ``http`` is an optional client from ``probe_http_client`` (kept open by the caller)."""
    started = time.perf_counter()
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        return _failed("protocol", f"bad backend URL {base_url!r}: expected http(s)://host:port", started)
    if not isinstance(timeout, (int, float)) or not timeout > 0:
        return _failed("protocol", f"bad probe timeout {timeout!r}: expected seconds > 0", started)
    try:
        import httpx

        url = base_url.rstrip("/") + HEALTH_PATH
        async with asyncio.timeout(timeout):
            if http is None:
                async with probe_http_client(verify=verify) as own:
                    response = await own.get(url, headers=_ACCEPT, timeout=timeout)
            else:
                response = await http.get(url, headers=_ACCEPT, timeout=timeout)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # noqa: BLE001 - the contract is "never raises"
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        kind, detail = _classify(exc)
        return _failed(kind, detail, started)
    latency = (time.perf_counter() - started) * 1000.0
    if response.status_code >= 500:
        return ProbeResult(False, "server_error", latency, f"HTTP {response.status_code} from health", None)
    if response.status_code != 200:
        return ProbeResult(False, "protocol", latency, f"HTTP {response.status_code} from health", None)
    try:
        body = response.json()
        if not isinstance(body, dict) or body.get("status") != "ok":
            raise ValueError(f"status is {body.get('status')!r}" if isinstance(body, dict) else "not an object")
        trading_date = date.fromisoformat(body["trading_date"])
    except (ValueError, KeyError, TypeError) as exc:
        return ProbeResult(False, "protocol", latency, f"health reply not understood ({exc})", None)
    return ProbeResult(True, "ok", latency, "ok", trading_date)


def decide_one_shot(probe: ProbeResult, forced_mode: str | None) -> Mode:
    """The CLI's one-shot decision: a supervisor's forced mode wins; else a good probe
    means ONLINE and anything else BACKUP."""
    if forced_mode:
        return Mode(forced_mode)
    return Mode.ONLINE if probe.ok else Mode.BACKUP
