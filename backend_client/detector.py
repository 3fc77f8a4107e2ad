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
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from enum import Enum

HEALTH_PATH = "/api/v1/health"

# "standby": the site answers but is a DR standby (CONTRACT: it takes no order); not main answering
# badly but main saying it is not the primary, so it switches like a site that is gone
PROBE_KINDS = ("ok", "refused", "timeout", "reset", "server_error", "protocol", "standby")
# Failures that say "main is not there" (as opposed to "main answered something odd").
HARD_KINDS = frozenset({"refused", "timeout", "reset"})
# A real request's failures that count against main: those, and a reply past the
# client's size cap (main answering badly, so it waits out the dwell like a 5xx).  A
# reply past the request's deadline is already "timeout" (backend_client.client).
REQUEST_FAILURE_KINDS = HARD_KINDS | {"too_large"}
_ACCEPT = {"Accept": "application/json"}
_HEALTH_MAX_BYTES = 64 * 1024  # a health reply is ~100 bytes


class Mode(str, Enum):
    ONLINE = "ONLINE"
    SUSPECT = "SUSPECT"
    BACKUP = "BACKUP"
    RECOVERING = "RECOVERING"
    # the broker's DR site is primary and takes the actions: the runtime shows the detector's
    # ONLINE as DR while its client is aimed at the DR site (sync.runtime); the detector never
    # decides it itself
    DR = "DR"


@dataclass
class ProbeResult:
    """One health probe's answer.  ``kind`` is one of PROBE_KINDS; ``latency_ms`` is
    None when nothing came back."""

    ok: bool
    kind: str
    latency_ms: float | None
    detail: str
    trading_date: date | None = None
    # what the site says of itself in its health reply (the DR tier): None when it did not answer
    role: str | None = None  # "primary" or "standby"
    epoch: int | None = None  # the fencing number; grows at each promotion
    following: str | None = None  # a standby's primary
    replication_lag_s: float | None = None  # a standby's lag


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


async def _refused(base_url: str, timeout: float) -> tuple[str, str] | None:
    """A bare TCP connect to main (as the probe's client, no proxy): (kind, detail) when
    it is refused, unreachable or silent, None when it connects.  With main killed this
    answers the one-shot probe without importing httpx (~0.15 s of a backup-mode CLI
    command, bench P3); kinds as ``_classify`` gives them for the same failures."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(base_url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        return "protocol", f"bad backend URL {base_url!r}: {exc}"
    if not host:
        return "protocol", f"bad backend URL {base_url!r}: no host"
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError as exc:
        return "timeout", f"no answer in time ({type(exc).__name__})"
    except ConnectionRefusedError:
        return "refused", "connection refused"
    except OSError as exc:  # unreachable, no route, a name that does not resolve ...
        return "refused", f"cannot connect: {exc.strerror or exc}"
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return None


def probe_http_client(*, verify: bool | str = True):
    """An httpx.AsyncClient for repeated probes (the runtime's probe loop): building one
    costs ~40 ms (TLS context), so a loop keeps one.  No keep-alive: every probe opens a
    fresh connection, so "main accepts connections" is what is tested each time."""
    import httpx

    return httpx.AsyncClient(verify=verify, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))


async def probe_once(
    base_url: str, *, timeout: float = 0.8, verify: bool | str = True, http=None
) -> ProbeResult:
    """One GET /api/v1/health; the whole probe (connect, send, read) ends within
    ``timeout`` seconds.  Never raises: every failure is a ProbeResult with its kind.
    ``http`` is an optional client from ``probe_http_client`` (kept open by the caller)."""
    started = time.perf_counter()
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        return _failed("protocol", f"bad backend URL {base_url!r}: expected http(s)://host:port", started)
    if not isinstance(timeout, (int, float)) or not timeout > 0:
        return _failed("protocol", f"bad probe timeout {timeout!r}: expected seconds > 0", started)
    own = None
    if http is None:  # one-shot (a CLI command): a refused connection needs no HTTP client at all
        refused = await _refused(base_url, timeout)
        if refused is not None:
            return _failed(*refused, started)
        timeout = max(0.05, timeout - (time.perf_counter() - started))
    try:
        url = base_url.rstrip("/") + HEALTH_PATH
        if http is None:
            # Built before the clock starts: a first httpx import and its TLS context
            # (tens of ms, far more on a loaded machine) are not main's latency.
            own = http = probe_http_client(verify=verify)
        started = time.perf_counter()
        async with asyncio.timeout(timeout):
            async with http.stream("GET", url, headers=_ACCEPT, timeout=timeout) as response:
                content = await _capped(response)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        kind, detail = _classify(exc)
        return _failed(kind, detail, started)
    finally:
        if own is not None:
            await own.aclose()
    latency = (time.perf_counter() - started) * 1000.0
    if response.status_code >= 500:
        return ProbeResult(False, "server_error", latency, f"HTTP {response.status_code} from health", None)
    if response.status_code != 200:
        return ProbeResult(False, "protocol", latency, f"HTTP {response.status_code} from health", None)
    if content is None:
        return ProbeResult(False, "protocol", latency, f"health reply over {_HEALTH_MAX_BYTES} bytes", None)
    try:
        body = json.loads(content)
        if not isinstance(body, dict) or body.get("status") != "ok":
            raise ValueError(
                f"status is {body.get('status')!r}" if isinstance(body, dict) else "not an object"
            )
        trading_date = date.fromisoformat(body["trading_date"])
        role, epoch, following, lag = _site_fields(body)
    except (ValueError, KeyError, TypeError) as exc:
        return ProbeResult(False, "protocol", latency, f"health reply not understood ({exc})", None)
    if role == "standby":
        return ProbeResult(
            False,
            "standby",
            latency,
            f"a DR standby (epoch {epoch}, following {following or 'nobody'})",
            trading_date,
            role,
            epoch,
            following,
            lag,
        )
    return ProbeResult(True, "ok", latency, "ok", trading_date, role, epoch, following, lag)


def _site_fields(body: dict) -> tuple[str, int, str | None, float | None]:
    """(role, epoch, following, replication_lag_s) of a health reply, checked (a site that
    predates the DR tier is a primary at epoch 0); ValueError/TypeError when malformed."""
    role = body.get("role", "primary")
    if role not in ("primary", "standby"):
        raise ValueError(f"role is {role!r}")
    epoch = body.get("epoch", 0)
    if type(epoch) is not int or not 0 <= epoch <= 2**53:
        raise ValueError(f"epoch is {epoch!r}")
    following = body.get("following")
    if following is not None and (not isinstance(following, str) or len(following) > 2048):
        raise ValueError("following is not a URL")
    lag = body.get("replication_lag_s")
    if lag is not None and (
        isinstance(lag, bool) or not isinstance(lag, (int, float)) or not 0 <= lag <= 1e9
    ):
        raise ValueError(f"replication_lag_s is {lag!r}")
    return role, epoch, following, None if lag is None else float(lag)


async def _capped(response) -> bytes | None:
    """The body, or None once it passes _HEALTH_MAX_BYTES (an endless reply must not fill
    memory within the probe's timeout)."""
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > _HEALTH_MAX_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def decide_one_shot(probe: ProbeResult, forced_mode: str | None) -> Mode:
    """The CLI's one-shot decision: a supervisor's forced mode wins; else a good probe
    means ONLINE and anything else BACKUP."""
    if forced_mode:
        return Mode(forced_mode)
    return Mode.ONLINE if probe.ok else Mode.BACKUP


# --------------------------------------------------------------------------- the state machine

_EPS = 1e-9
# Failures that may switch before the dwell is over: main is not there at all.  A 503 or
# a reply we cannot read ("server_error", "protocol") is main answering badly: it needs
# the same confirmation and also waits out the dwell, so a sick-but-alive main cannot
# make the console oscillate.
_SOFT_KINDS = frozenset({"server_error", "protocol", "too_large"})


@dataclass(frozen=True)
class Transition:
    """One change of the console's visible mode."""

    from_mode: Mode
    to_mode: Mode
    at: float  # the detector's clock (monotonic seconds)
    reason: str
    by: str | None = None  # the supervisor, for a forced change
    # why, as one of a few fixed words (metrics label it): silence, heartbeat_late,
    # heard_again, main_answers, main_back, replay_done, failure_<kind>, alert, forced,
    # released, start, split_brain (fence), site_switch (the DR tier)
    cause: str = "other"


@dataclass
class Detector:
    """Decides the console's mode from what it hears of main.  Pure logic: no I/O, no
    clock of its own (every input takes ``now``, monotonic seconds).

    Fall: a stream message late by ``suspect_after`` heartbeat intervals shows SUSPECT
    (no switch); ``missed_heartbeats`` intervals of silence switch to BACKUP.  A failure
    (stream closed/refused/reset, failed probe, failed real request) shows SUSPECT and
    asks for an immediate probe; ``fall_probes`` consecutive failures (by default: one
    failure confirmed by one probe) switch to BACKUP at once, whatever the dwell.
    Rise: in BACKUP, ``rise_probes`` consecutive good answers (probes or stream
    messages) once ``min_dwell`` has passed since entering BACKUP move to RECOVERING;
    ``replay_done`` moves RECOVERING to ONLINE; any failure in RECOVERING goes back to
    BACKUP.  So BACKUP is entered and left at most once per dwell: a flapping link
    cannot make the console oscillate.  A supervisor's ``force`` overrides all of it
    until released; the automatic machine keeps listening underneath.
    """

    heartbeat_interval: float = 0.25
    missed_heartbeats: int = 3
    suspect_after: float = 1.5  # heartbeat intervals
    fall_probes: int = 2  # consecutive failures that confirm an outage
    rise_probes: int = 3
    min_dwell: float = 5.0
    probe_interval_online: float = 1.0
    probe_interval_backup: float = 0.5
    now: float = 0.0  # the clock at construction
    initial_mode: Mode = Mode.ONLINE

    mode: Mode = field(init=False)
    since: float = field(init=False)
    reason: str = field(init=False)
    forced: Mode | None = field(init=False, default=None)
    forced_by: str | None = field(init=False, default=None)
    probe_wanted: bool = field(init=False, default=False)
    alert_pending: str | None = field(init=False, default=None)  # a monitoring alert waiting for its probe
    fenced: str | None = field(init=False, default=None)  # why no site may take actions (split brain ...)
    transitions: list[Transition] = field(init=False, default_factory=list)
    callbacks: list[Callable[[Transition], None]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.heartbeat_interval <= 0 or self.min_dwell < 0:
            raise ValueError("heartbeat_interval must be > 0 and min_dwell >= 0")
        if self.missed_heartbeats < 1 or self.rise_probes < 1 or self.fall_probes < 1:
            raise ValueError("missed_heartbeats, rise_probes and fall_probes must be >= 1")
        if not 0 < self.suspect_after <= self.missed_heartbeats:
            raise ValueError("suspect_after must be > 0 and <= missed_heartbeats")
        if self.probe_interval_online <= 0 or self.probe_interval_backup <= 0:
            raise ValueError("probe intervals must be > 0")
        start = Mode(self.initial_mode)
        if start not in (Mode.ONLINE, Mode.BACKUP):
            raise ValueError("a detector starts ONLINE or BACKUP")
        self._auto: Mode = start  # the automatic machine's mode (visible unless forced)
        self._auto_since = self.now
        self._auto_reason = "start" if start is Mode.ONLINE else "start: the console was in backup mode"
        self.mode, self.since, self.reason = start, self.now, self._auto_reason
        self._last_message = self.now
        self._last_good_probe = float("-inf")
        self._fail_streak = 0
        self._good_streak = 0
        self._last_up = float("-inf")  # last time BACKUP was left (or RECOVERING -> ONLINE)
        self._stream_up = False  # the silence rule needs a connected stream; probes judge otherwise

    # ------------------------------------------------------------------ what the runtime asks

    @property
    def probe_interval(self) -> float:
        """How often the runtime should probe main in the current mode."""
        if self._auto is Mode.ONLINE and self._fail_streak == 0 and self._stream_up:
            return self.probe_interval_online
        return self.probe_interval_backup

    @property
    def silence_limit(self) -> float:
        return self.missed_heartbeats * self.heartbeat_interval

    @property
    def automatic(self) -> Mode:
        """The mode the evidence says, whatever a supervisor forced."""
        return self._auto

    def silence(self, now: float) -> float:
        """Seconds since main last showed life (a stream message or a good probe)."""
        return now - max(self._last_message, self._last_good_probe)

    def next_deadline(self) -> float | None:
        """When ``evaluate`` could next change something if nothing is heard (the clock
        value), so a runtime can wake exactly then rather than poll; None: no deadline."""
        if not self._stream_up or self._auto is Mode.BACKUP:
            return None
        alive = max(self._last_message, self._last_good_probe)
        if self._auto is Mode.ONLINE:
            return alive + self.suspect_after * self.heartbeat_interval + 2 * _EPS
        return alive + self.silence_limit

    # ------------------------------------------------------------------ inputs

    def on_message(self, now: float) -> Transition | None:
        """Any stream message (heartbeat, hello, tick, event)."""
        self._last_message = max(self._last_message, now)
        self._stream_up = True
        return self._good(now, "stream message")

    def on_connect(self, now: float) -> Transition | None:
        """The stream connected (its greeting follows)."""
        self._last_message = max(self._last_message, now)
        self._stream_up = True
        return self._good(now, "stream connected")

    def on_disconnect(self, now: float, reason: str) -> Transition | None:
        """The stream closed, was reset or refused: ask for an immediate probe.  Until
        it is back, probes alone judge main (the silence rule needs a stream)."""
        if self._stream_up:
            silent = self.evaluate(now)  # a hang the stream noticed first is still a silence
            self._stream_up = False
            if self._auto is Mode.BACKUP:
                return silent
        return self._failure(now, "reset", f"stream down: {reason}")

    def on_probe(self, now: float, result: ProbeResult) -> Transition | None:
        self.probe_wanted = False
        if result.ok:
            self._last_good_probe = max(self._last_good_probe, now)
            return self._good(now, "probe ok")
        return self._failure(now, result.kind, f"probe {result.kind}: {result.detail}")

    def on_request_error(self, now: float, kind: str, detail: str = "") -> Transition | None:
        """A real request failed: refused/reset/timeout (a deadline passed included) and
        too_large count like failed probes; other kinds (main said no, or answered oddly)
        say nothing about main's health."""
        if kind not in REQUEST_FAILURE_KINDS:
            return None
        return self._failure(now, kind, f"request {kind}" + (f": {detail}" if detail else ""))

    def evaluate(self, now: float) -> Transition | None:
        """Periodic: SUSPECT when a heartbeat is late, BACKUP after the silence limit."""
        if not self._stream_up:
            return None
        quiet = self.silence(now)
        if self._auto in (Mode.ONLINE, Mode.SUSPECT, Mode.RECOVERING) and quiet + _EPS >= self.silence_limit:
            return self._set(
                now,
                Mode.BACKUP,
                f"main silent for {quiet:.3f} s ({self.missed_heartbeats} heartbeats missed)",
                "silence",
            )
        if self._auto is Mode.ONLINE and quiet > self.suspect_after * self.heartbeat_interval + _EPS:
            return self._set(now, Mode.SUSPECT, f"heartbeat late ({quiet * 1000:.0f} ms)", "heartbeat_late")
        if (
            self._auto is Mode.SUSPECT
            and self._fail_streak == 0
            and self.alert_pending is None  # an alert's SUSPECT waits for its probe
            and quiet <= self.suspect_after * self.heartbeat_interval + _EPS
        ):
            return self._set(now, Mode.ONLINE, "heard from main again", "heard_again")
        return None

    def replay_done(self, now: float) -> Transition | None:
        """The journal is replayed (or was empty): RECOVERING -> ONLINE."""
        if self._auto is not Mode.RECOVERING:
            return None
        self._last_up = now
        return self._set(now, Mode.ONLINE, "journal replayed", "replay_done")

    def force(self, mode: Mode | str | None, by: str, now: float) -> Transition | None:
        """A supervisor's override (ONLINE or BACKUP); None releases it.  Releasing a
        forced BACKUP while main answers goes through RECOVERING, so whatever was
        journaled meanwhile is replayed before the console is ONLINE again."""
        if mode is None:
            if self.forced is None:
                return None
            was, self.forced, self.forced_by = self.forced, None, None
            if was is Mode.BACKUP and self._auto in (Mode.ONLINE, Mode.SUSPECT):
                self._auto, self._auto_since = Mode.RECOVERING, now
                self._auto_reason = "override released: replay what was journaled"
                self._last_up = now
            return self._show(now, f"override released by {by}: {self._auto_reason}", by=by, cause="released")
        try:
            target = Mode(mode)
        except ValueError:
            raise ValueError(f"cannot force mode {mode!r}: expected ONLINE or BACKUP") from None
        if target not in (Mode.ONLINE, Mode.BACKUP):
            raise ValueError(f"cannot force mode {target.value}: expected ONLINE or BACKUP")
        if self.forced is target:
            return None
        self.forced, self.forced_by = target, by
        return self._show(now, f"forced {target.value} by {by}", by=by, cause="forced")

    def on_alert(self, now: float, name: str) -> Transition | None:
        """The monitoring system says main is in trouble (an Alertmanager alert).  Monitoring
        is slower than our own heartbeats and can be wrong, so an alert never switches mode
        by itself: ONLINE shows SUSPECT and asks for an immediate probe, and the probe
        decides (a good answer: ONLINE again; failures: BACKUP by the usual rule).  In any
        other mode it only asks for a probe."""
        self.probe_wanted = True
        if self._auto is not Mode.ONLINE:
            return None
        self.alert_pending = name
        return self._set(now, Mode.SUSPECT, f"monitoring alert {name}; probing", "alert")

    def fence(self, now: float, reason: str) -> Transition | None:
        """No site may take actions whatever it answers (the DR tier: both sites say primary,
        or the only primary is at a stale epoch): BACKUP at once, held until ``unfence``."""
        self.fenced = reason
        self.alert_pending = None
        return self._set(now, Mode.BACKUP, reason, "split_brain")

    def switched_site(self, now: float, reason: str) -> Transition | None:
        """The runtime aimed its client at another site that says it is primary (the DR tier):
        that is the broker's declaration, not a flapping link, so there is no dwell to wait out.
        RECOVERING at once (whatever was journaled goes to the new site first), judged by probes
        until the new site's stream connects."""
        self.fenced = None
        self.alert_pending = None
        self._fail_streak = self._good_streak = 0
        self._last_up = self._last_message = now
        self._stream_up = False
        return self._set(now, Mode.RECOVERING, reason, "site_switch")

    def unfence(self, now: float) -> None:
        """The fence is gone; BACKUP is left by the usual rule (good answers after the dwell)."""
        self.fenced = None

    # ------------------------------------------------------------------ rules

    def _good(self, now: float, what: str) -> Transition | None:
        self._fail_streak = 0
        if self.fenced is not None:
            return None  # a fenced site's answers count for nothing
        if self.alert_pending is not None:
            if what != "probe ok":  # a stream message is not the probe the alert asked for
                return None
            self.alert_pending = None
        self.probe_wanted = False
        if self._auto is Mode.SUSPECT:
            return self._set(now, Mode.ONLINE, f"{what}: main answers", "main_answers")
        if self._auto is Mode.BACKUP:
            self._good_streak += 1
            if self._good_streak >= self.rise_probes and now - self._auto_since + _EPS >= self.min_dwell:
                self._last_up = now
                return self._set(
                    now,
                    Mode.RECOVERING,
                    f"main answered {self._good_streak} times in a row ({what})",
                    "main_back",
                )
        return None

    def _failure(self, now: float, kind: str, why: str) -> Transition | None:
        self._good_streak = 0
        if self._auto is Mode.BACKUP:
            return None
        self._fail_streak += 1
        if self._fail_streak >= self.fall_probes:
            soft = kind in _SOFT_KINDS
            if not soft or now - self._last_up + _EPS >= self.min_dwell:
                return self._set(
                    now, Mode.BACKUP, f"{why} (failure {self._fail_streak} in a row)", f"failure_{kind}"
                )
        self.probe_wanted = True
        if self._auto is Mode.ONLINE:
            return self._set(now, Mode.SUSPECT, f"{why}; probing", f"failure_{kind}")
        return None

    def _set(self, now: float, mode: Mode, reason: str, cause: str) -> Transition | None:
        if mode is self._auto:
            return None
        self._auto, self._auto_since, self._auto_reason = mode, now, reason
        if mode is Mode.BACKUP:
            self._fail_streak = 0
            self._good_streak = 0
            self.probe_wanted = False
        if mode is not Mode.SUSPECT:
            self.alert_pending = None
        return self._show(now, reason, cause=cause)

    def _show(
        self, now: float, reason: str, by: str | None = None, *, cause: str = "other"
    ) -> Transition | None:
        visible = self.forced or self._auto
        if visible is self.mode:
            return None
        change = Transition(self.mode, visible, now, reason, by, cause)
        self.mode, self.since, self.reason = visible, now, reason
        self.transitions.append(change)
        if len(self.transitions) > 1000:
            del self.transitions[:500]
        for callback in list(self.callbacks):
            callback(change)
        return change
