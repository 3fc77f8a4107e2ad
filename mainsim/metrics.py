"""mainsim's own Prometheus metrics, served at ``GET /metrics`` on the server root.

One ``CollectorRegistry`` per Sim (never the process-wide default registry), so two
sims in one process never collide.  Prometheus naming: base units, ``_total``
counters, ``_seconds`` histograms.  No label ever holds a client, order or user id:

- ``mainsim_http_requests_total{method,route,status}`` and
  ``mainsim_http_request_duration_seconds{method,route}``: every HTTP request the app
  answers, and every request the fault proxy answers itself (``error`` mode: a 503
  the app never sees).  ``route`` is the route's path template
  (``/api/v1/orders/{order_id}``); a path no route serves is ``unmatched`` and a
  method outside the usual few is ``other``, so a scanner cannot grow the label set.
  WebSocket connections are not HTTP requests here: see ``mainsim_stream_clients``.
- ``mainsim_orders_total{outcome}``: what the book decided for each ``POST /orders``
  (``accepted``, ``duplicate``, ``conflict``, ``rejected``; ``error`` for an
  unexpected failure).  A request refused before the book (bad token, out of scope,
  a body that is not an order request) is only in the request counter.  The
  background ``--activity`` orders do not go through the API and are not counted.
- ``mainsim_stream_clients``: stream connections open now (read at scrape time).
- ``mainsim_build_info{version,python}`` 1.
- The DR tier (mainsim/replication.py): ``mainsim_site_primary`` (1 primary, 0 standby),
  ``mainsim_site_epoch``, ``mainsim_replication_lag_seconds`` (a standby's; 0 on a primary)
  and ``mainsim_replication_applied_lsn`` (the last log row a standby applied).  Two sites
  with ``mainsim_site_primary`` 1 at once is split brain (deploy/monitoring/rules.yml).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING
from urllib.parse import unquote

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.routing import Match

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from mainsim.site import SiteState

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ORDER_OUTCOMES = ("accepted", "duplicate", "conflict", "rejected", "error")
# loopback replies take about a millisecond; a login (scrypt) tens of ms
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _version() -> str:
    try:
        return metadata.version("lifeboat")
    except metadata.PackageNotFoundError:
        return "unknown"


def _method(method: str) -> str:
    return method if method in METHODS else "other"


class SimMetrics:
    """The metrics of one Sim, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "mainsim_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "mainsim_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=BUCKETS,
            registry=r,
        )
        self.orders = Counter(
            "mainsim_orders",
            "Order placements (POST /orders) by what the book decided.",
            ["outcome"],
            registry=r,
        )
        for outcome in ORDER_OUTCOMES:  # every outcome present from the start, at 0
            self.orders.labels(outcome)
        self.stream_clients = Gauge(
            "mainsim_stream_clients", "WebSocket stream connections open now.", registry=r
        )
        build = Gauge(
            "mainsim_build_info", "mainsim's version and Python.", ["version", "python"], registry=r
        )
        build.labels(_version(), platform.python_version()).set(1)
        self.site_primary = Gauge(
            "mainsim_site_primary", "1 when this site is primary, 0 when it is a DR standby.", registry=r
        )
        self.site_epoch = Gauge(
            "mainsim_site_epoch", "The site's epoch (grows at each promotion).", registry=r
        )
        self.replication_lag = Gauge(
            "mainsim_replication_lag_seconds",
            "How far a standby is behind its primary (0 when caught up, and on a primary).",
            registry=r,
        )
        self.applied_lsn = Gauge(
            "mainsim_replication_applied_lsn", "The last replication log row a standby applied.", registry=r
        )
        self._app: Starlette | None = None

    # ------------------------------------------------------------------ wiring
    def instrument(self, app: Starlette, stream_clients: Callable[[], int]) -> None:
        """Count ``app``'s HTTP requests and read the stream's connection count at scrape time."""
        self._app = app
        app.add_middleware(MetricsMiddleware, metrics=self)
        self.stream_clients.set_function(lambda: float(stream_clients()))

    def watch_site(self, site: SiteState) -> None:
        """Read the site's role, epoch and lag at scrape time."""
        self.site_primary.set_function(lambda: 1.0 if site.primary else 0.0)
        self.site_epoch.set_function(lambda: float(site.epoch))
        self.replication_lag.set_function(lambda: float(site.replication_lag_s() or 0.0))

    def set_applied_lsn(self, lsn: int) -> None:
        self.applied_lsn.set(lsn)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The body and content type of a scrape, in the format the scraper's Accept header asks for."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    # ------------------------------------------------------------------ recording
    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        m = _method(method)
        self.requests.labels(m, route, str(status)).inc()
        self.duration.labels(m, route).observe(seconds)

    def order(self, outcome: str) -> None:
        self.orders.labels(outcome).inc()

    def route_of(self, method: str, path: str) -> str:
        """The path template of the app's route serving ``path`` (one serving it with another method
        if none serves this one, as the app's own 405 does), else ``unmatched``."""
        if self._app is None:
            return UNMATCHED
        scope = {"type": "http", "method": method, "path": path, "root_path": ""}
        partial = None
        for route in self._app.router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", UNMATCHED))
            if match is Match.PARTIAL and partial is None:
                partial = route
        return str(getattr(partial, "path", UNMATCHED)) if partial is not None else UNMATCHED

    def faulted_reply(self, head: bytes, status: int, seconds: float) -> None:
        """Count a request the fault proxy answered itself; ``head`` is what it read of the request
        (nothing when the peer sent no request line: no request, nothing counted)."""
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return
        method, target = parts[0], parts[1]
        path = unquote(target.split("?", 1)[0])
        self.observe(method, self.route_of(method, path), status, seconds)


def route_template(scope: Scope) -> str:
    """The path template of the route the router picked for this request (it puts the route in the
    scope), or ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class MetricsMiddleware:
    """Pure ASGI middleware (nothing buffered): counts and times every HTTP request, including those
    answered by an error handler; an exception that escapes to the server's 500 handler counts as 500."""

    def __init__(self, app: ASGIApp, metrics: SimMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = route_template(scope)
            if route == UNMATCHED:  # not routed: a standby's refusal (mainsim.site), or no such path
                route = self.metrics.route_of(scope["method"], scope["path"])
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)
