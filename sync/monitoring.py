"""The agent's monitoring port: ``/metrics``, ``/healthz`` and the Alertmanager webhook.

``lifeboat agent --metrics-port N`` serves, on one port (127.0.0.1 unless told
otherwise):

- ``GET /metrics``: sync.metrics in Prometheus' text format.
- ``GET /healthz``: ``{"status": "pass"|"warn"|"fail", "mode", "reasons": [...]}``, HTTP
  200 for pass and warn, 503 for fail.  *fail* means the console itself cannot do its
  job (its runtime is not running, its store cannot be read); a main system that is down
  is *warn* (the console is in BACKUP and journals: working as designed, degraded).
- ``POST /alertmanager``: Alertmanager's webhook (payload version 4) with a bearer token
  (``[monitoring] alertmanager_token_file``).  Monitoring is slower than the console's own
  heartbeats (scrape interval, the rule's ``for``, group_wait), so an alert never switches
  mode by itself: a *firing* alert labelled ``system="main"`` puts the detector in SUSPECT
  and makes it probe at once, and the probe decides.  A *resolved* notification changes
  nothing either (the detector's own evidence brings the console back).  Delivery is at
  least once: an alert already received (same fingerprint, startsAt and status) is a
  duplicate and does nothing.  Every alert received is audited, duplicates and ignored
  ones included, before the reply: a reply of 200 means it is on record; a store that
  cannot take it answers 503 so Alertmanager sends it again.

Why the standard library's WSGI server in a thread of its own: a scrape or a health
check must answer even while the runtime's loop is busy (a replay, a big snapshot), and
it is a handful of requests a minute; no web framework is needed for three routes.
The body of a webhook is read with a size cap and validated whole before anything of it
is stored or acted on (pydantic, printable text of bounded length: it is untrusted input).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any, Literal
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from contract import clock
from contract.wire import Ident, Moment, Name, Reason
from localstore import audit, metrics_reads
from localstore.db import Store
from sync.metrics import Metrics

log = logging.getLogger("lifeboat.monitoring")

MAX_BODY_BYTES = 1024 * 1024  # Alertmanager batches alerts of a group; 1 MiB is thousands
MAX_ALERTS = 1000
MAIN_LABEL = ("system", "main")  # the label that names the main system in the kit's rules
MIRROR_STALE_S = 60.0  # /healthz warns when the mirror is older than this while ONLINE
_SEEN_MAX = 10_000  # alerts remembered for de-duplication (a restart forgets: one more probe)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Alert(_Strict):
    status: Literal["firing", "resolved"]
    labels: dict[Name, Reason] = Field(max_length=64)
    startsAt: Moment
    fingerprint: Ident


class Notification(_Strict):
    version: Literal["4"]
    status: Literal["firing", "resolved"]
    alerts: list[Alert] = Field(max_length=MAX_ALERTS)


@dataclass(frozen=True)
class WebhookAnswer:
    status: int
    body: dict[str, Any]


class Webhook:
    """The Alertmanager receiver, apart from HTTP (unit-testable with a real store)."""

    def __init__(
        self,
        store: Store,
        token: str | None,
        *,
        on_main_alert: Callable[[str], None],
        mode: Callable[[], str],
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.token = token
        self.on_main_alert = on_main_alert
        self.mode = mode
        self.metrics = metrics
        self._seen: OrderedDict[tuple, None] = OrderedDict()
        self._lock = threading.Lock()

    def receive(self, authorization: str | None, body: bytes) -> WebhookAnswer:
        if not self.token:
            return WebhookAnswer(
                503, {"error": "no alertmanager token is configured ([monitoring] alertmanager_token_file)"}
            )
        given = (authorization or "").removeprefix("Bearer ").strip()
        if (
            not authorization
            or not authorization.startswith("Bearer ")
            or not hmac.compare_digest(given.encode(), self.token.encode())
        ):
            log.warning("alertmanager webhook: bad or missing token", extra={"event": "alert_unauthorized"})
            return WebhookAnswer(401, {"error": "bad or missing bearer token"})
        if len(body) > MAX_BODY_BYTES:
            return WebhookAnswer(413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
        try:
            note = Notification.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return WebhookAnswer(
                400, {"error": f"not an Alertmanager v4 notification: {where}: {first['msg']}"}
            )
        with self._lock:  # one notification at a time: de-duplication and audit order agree
            return self._take(note)

    def _take(self, note: Notification) -> WebhookAnswer:
        counts = {"accepted": 0, "duplicates": 0, "ignored": 0}
        decided: list[tuple[Alert, str, tuple]] = []
        batch: set[tuple] = set()
        for a in note.alerts:
            key = (a.fingerprint, a.startsAt.isoformat(), a.status)
            if key in self._seen or key in batch:
                outcome = "duplicate"
            elif a.labels.get(MAIN_LABEL[0]) == MAIN_LABEL[1]:
                outcome = "accepted"
            else:
                outcome = "ignored"
            batch.add(key)
            decided.append((a, outcome, key))
        mode = self.mode()
        try:
            with self.store.write_core() as conn:
                for a, outcome, _ in decided:
                    audit.append_core(
                        conn,
                        user_id=None,
                        mode=mode,
                        action="monitoring_alert",
                        payload={
                            "alertname": a.labels.get("alertname"),
                            "status": a.status,
                            "outcome": outcome,
                            "fingerprint": a.fingerprint,
                            "starts_at": a.startsAt.isoformat(),
                            "labels": dict(a.labels),
                            "action": "probe" if outcome == "accepted" and a.status == "firing" else "none",
                        },
                    )
        except (SQLAlchemyError, OSError) as exc:
            log.error(
                "alertmanager webhook: the alerts could not be audited",
                extra={"event": "alert_audit_failed", "reason": str(exc)[:300]},
            )
            return WebhookAnswer(
                503, {"error": "the console's store could not record the alerts; send again"}
            )
        for a, outcome, key in decided:
            self._seen[key] = None
            counts["duplicates" if outcome == "duplicate" else outcome] += 1
            if self.metrics is not None:
                self.metrics.alert(a.status, outcome)
            name = a.labels.get("alertname") or "unnamed"
            log.info(
                "alert received",
                extra={"event": "alert_received", "alertname": name, "status": a.status, "outcome": outcome},
            )
            if outcome == "accepted" and a.status == "firing":
                self.on_main_alert(name)
        while len(self._seen) > _SEEN_MAX:
            self._seen.popitem(last=False)
        return WebhookAnswer(200, counts)


@dataclass(frozen=True)
class Health:
    status: str  # pass, warn, fail
    mode: str | None
    reasons: list[str]

    @property
    def http_status(self) -> int:
        return 503 if self.status == "fail" else 200


def health(store: Store, runtime, *, running: bool, now: Callable = clock.utcnow) -> Health:
    """The console's health for a load balancer or a probe: see the module's docstring."""
    if runtime is None or not running:
        return Health("fail", None, ["the agent's runtime is not running"])
    mode = runtime.mode  # DR while the DR site takes the actions
    sending = mode in ("ONLINE", "DR")
    reasons: list[str] = []
    try:
        g = metrics_reads.gauges(store)
    except (SQLAlchemyError, OSError) as exc:
        return Health("fail", mode, [f"the local store cannot be read: {str(exc)[:200]}"])
    if mode != "ONLINE":
        reasons.append(f"mode {mode}: {runtime.detector.reason}")
    if g.held:
        reasons.append(f"{g.held} journal entries held for a person's decision (lifeboat sync report)")
    if g.pending and sending:
        reasons.append(f"{g.pending} journal entries not yet replayed")
    if sending and g.mirror_applied_at is not None:
        age = (now() - g.mirror_applied_at).total_seconds()
        if age > MIRROR_STALE_S:
            reasons.append(f"the local mirror was last current {age:.0f} s ago")
    if sending and not runtime.status.connected:
        reasons.append("the event stream is not connected")
    if g.mismatches:
        reasons.append(f"the last reconciliation found {g.mismatches} mismatches")
    return Health("warn" if reasons else "pass", mode, reasons)


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the access log would be noise
        pass


class MonitorServer:
    """Binds at construction (a port in use is an error before the agent starts), serves
    once ``attach``ed to a runtime, until ``close``."""

    def __init__(self, store: Store, *, host: str = "127.0.0.1", port: int, token: str | None = None) -> None:
        self.store = store
        self.metrics = Metrics(store)
        self.runtime = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.running = False
        self.webhook = Webhook(store, token, on_main_alert=self._alert, mode=self._mode, metrics=self.metrics)
        self._server = make_server(host, port, self._app, server_class=_Threading, handler_class=_Quiet)
        self.port = self._server.server_port
        self.host = host
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="lifeboat-monitor", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def attach(self, runtime, loop: asyncio.AbstractEventLoop) -> None:
        self.metrics.attach(runtime)
        self.runtime, self.loop, self.running = runtime, loop, True

    def detach(self) -> None:
        self.running = False

    def close(self) -> None:
        self.running = False
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ callbacks

    def _mode(self) -> str:
        return self.runtime.detector.mode.value if self.runtime is not None else "UNKNOWN"

    def _alert(self, name: str) -> None:
        rt, loop = self.runtime, self.loop
        if rt is None or loop is None or not self.running:
            return
        try:
            loop.call_soon_threadsafe(rt.alert, name)
        except RuntimeError:  # the loop is closed: the agent is stopping
            pass

    # ------------------------------------------------------------------ WSGI

    def _app(self, environ: dict, start_response) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        try:
            if path == "/metrics" and method == "GET":
                return _reply(
                    start_response, 200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST
                )
            if path == "/healthz" and method == "GET":
                h = health(self.store, self.runtime, running=self.running)
                body = {"status": h.status, "mode": h.mode, "reasons": h.reasons}
                return _json(start_response, h.http_status, body, "application/health+json")
            if path == "/alertmanager" and method == "POST":
                try:
                    length = int(environ.get("CONTENT_LENGTH") or 0)
                except ValueError:
                    length = -1
                if length < 0 or length > MAX_BODY_BYTES:
                    return _json(start_response, 413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
                body_bytes = environ["wsgi.input"].read(length) if length else b""
                answer = self.webhook.receive(environ.get("HTTP_AUTHORIZATION"), body_bytes)
                return _json(start_response, answer.status, answer.body)
            if path in ("/metrics", "/healthz", "/alertmanager"):
                return _json(start_response, 405, {"error": f"{method} not allowed on {path}"})
            return _json(start_response, 404, {"error": "not found: /metrics, /healthz, /alertmanager"})
        except Exception as exc:
            log.exception("monitoring request failed", extra={"event": "monitoring_failed"})
            return _json(start_response, 500, {"error": type(exc).__name__})


def _reply(start_response, status: int, body: bytes, content_type: str) -> list[bytes]:
    phrase = HTTPStatus(status).phrase
    start_response(f"{status} {phrase}", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def _json(start_response, status: int, body: dict, content_type: str = "application/json") -> list[bytes]:
    return _reply(start_response, status, json.dumps(body).encode(), content_type)
