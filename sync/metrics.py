"""The console's Prometheus metrics (``lifeboat agent --metrics-port``; sync.monitoring serves them).

Naming follows Prometheus: one ``lifeboat_`` prefix, base units (seconds), ``_total``
counters, ``_seconds`` histograms, and no client, order or user ids in labels (their
number is unbounded; the audit log and the journal hold them).  Labels are small fixed
sets: modes, causes (backend_client.detector.Transition.cause), request path templates,
failure kinds, journal states.

Two sources:
- what the runtime sees as it happens (mode changes, probes, requests to main, replay
  outcomes, alerts received): counted in-process by the hooks below;
- what the store holds (journal depth by state, held entries, the last reconciliation's
  mismatches, mirror staleness, offline logins from the audit log): read at scrape time
  (localstore.metrics_reads), since every process of the console writes the store.

Each ``Metrics`` has its own registry, so two in one process (tests) never collide, and
nothing is counted when metrics are off (the runtime's hooks are not installed).
"""

from __future__ import annotations

import logging
import platform
import re
from collections.abc import Callable, Iterable
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from backend_client.detector import Mode, ProbeResult, Transition
from contract import clock
from localstore import metrics_reads
from localstore.db import Store

log = logging.getLogger("lifeboat.metrics")

MODES = tuple(m.value for m in Mode)

# request paths below /api/v1, with their ids replaced by the route's parameter name
_TEMPLATES = (
    (re.compile(r"^/orders/by-client-id/[^/?]+"), "/orders/by-client-id/{client_order_id}"),
    (re.compile(r"^/orders/[^/?]+"), "/orders/{order_id}"),
)
_KNOWN = re.compile(r"^/[a-z][a-z/_-]{0,40}$")
# a square-off leg or a probe is tens of ms; a deadline is seconds
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DETECTION_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


def endpoint_of(path: str) -> str:
    """The path template of a request path (its ids replaced); anything unexpected is
    "other", so a label set stays bounded whatever is requested."""
    path = path.split("?", 1)[0]
    if path.startswith(("http://", "https://")):
        return "other"
    for pattern, template in _TEMPLATES:
        if pattern.match(path):
            return pattern.sub(template, path, count=1)
    return path if _KNOWN.match(path) else "other"


def version() -> str:
    try:
        return metadata.version("lifeboat")
    except metadata.PackageNotFoundError:
        return "unknown"


class _StoreCollector(Collector):
    """The store's gauges, read once per scrape."""

    def __init__(self, store: Store, now: Callable = clock.utcnow) -> None:
        self.store = store
        self.now = now
        self._logins = metrics_reads.LoginCounts()

    def collect(self) -> Iterable:
        try:
            g = metrics_reads.gauges(self.store)
            logins = metrics_reads.count_offline_logins(self.store, self._logins)
        except Exception:  # a scrape must answer: the store's absence shows as missing gauges
            log.exception("metrics: the store could not be read", extra={"event": "metrics_store_failed"})
            return
        by_state = GaugeMetricFamily(
            "lifeboat_journal_entries", "Journal entries in each state.", labels=["state"]
        )
        for state, n in g.by_state.items():
            by_state.add_metric([state], n)
        yield by_state
        yield GaugeMetricFamily(
            "lifeboat_journal_pending_entries",
            "Journal entries still to replay to main (pending or sent).",
            value=g.pending,
        )
        yield GaugeMetricFamily(
            "lifeboat_held_entries",
            "Journal entries held for a person's decision (replay conflicts, stale entries).",
            value=g.held,
        )
        if g.mismatches is not None:
            yield GaugeMetricFamily(
                "lifeboat_reconciliation_mismatches",
                "Mismatches in the last reconciliation report.",
                value=g.mismatches,
            )
        if g.mirror_applied_at is not None:
            yield GaugeMetricFamily(
                "lifeboat_mirror_staleness_seconds",
                "Seconds since the local mirror was last known current with main.",
                value=max(0.0, (self.now() - g.mirror_applied_at).total_seconds()),
            )
        # a counter family: prometheus_client adds the _total suffix to the name
        logins_family = CounterMetricFamily(
            "lifeboat_offline_logins", "Offline logins (audited), by outcome.", labels=["outcome"]
        )
        logins_family.add_metric(["ok"], logins.ok)
        logins_family.add_metric(["refused"], logins.refused)
        yield logins_family


class _LiveCollector(Collector):
    """Values read from the running runtime at scrape time (mode, stream)."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterable:
        rt = self.runtime
        mode = rt.mode  # DR while the DR site takes the actions
        family = GaugeMetricFamily(
            "lifeboat_mode", "The console's mode: 1 for the current one, 0 for the others.", labels=["mode"]
        )
        for m in MODES:
            family.add_metric([m], 1.0 if m == mode else 0.0)
        yield family
        yield GaugeMetricFamily(
            "lifeboat_stream_connected",
            "1 while the event stream from main is connected.",
            value=1.0 if rt.status.connected else 0.0,
        )
        yield GaugeMetricFamily(
            "lifeboat_stream_last_message_age_seconds",
            "Seconds since main last showed life (a stream message or a good probe).",
            value=max(0.0, rt.detector.silence(rt.clock())),
        )


class Metrics:
    def __init__(self, store: Store, *, now: Callable = clock.utcnow) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        info = InfoMetricFamily("lifeboat_build", "The console's version.")
        info.add_metric([], {"version": version(), "python": platform.python_version()})
        self._info = info
        r.register(_Static([info]))
        self.mode_changes = Counter(
            "lifeboat_mode_changes",
            "Mode changes, by from, to and cause.",
            ["from_mode", "to_mode", "cause"],
            registry=r,
        )
        self.failover_detection = Histogram(
            "lifeboat_failover_detection_seconds",
            "From main's last sign of life to the console's switch to BACKUP.",
            buckets=_DETECTION_BUCKETS,
            registry=r,
        )
        self.request_duration = Histogram(
            "lifeboat_backend_request_duration_seconds",
            "Calls to the main system (retries included), by site, method, path template and outcome.",
            ["site", "method", "endpoint", "outcome"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.probes = Counter(
            "lifeboat_probes", "Health probes of main, by outcome.", ["outcome"], registry=r
        )
        self.replay_entries = Counter(
            "lifeboat_replay_entries",
            "Journal entries the automatic replay finished, by the state they reached.",
            ["outcome"],
            registry=r,
        )
        self.alerts = Counter(
            "lifeboat_alerts_received",
            "Alertmanager alerts received, by status (firing, resolved) and outcome (accepted, duplicate, ignored).",
            ["status", "outcome"],
            registry=r,
        )
        r.register(_StoreCollector(store, now))
        self._live: _LiveCollector | None = None

    # ------------------------------------------------------------------ wiring

    def attach(self, runtime) -> None:
        """Count what ``runtime`` sees: its mode changes, probes, requests, replay passes."""
        if self._live is not None:
            self.registry.unregister(self._live)
        self._live = _LiveCollector(runtime)
        self.registry.register(self._live)
        runtime.detector.callbacks.append(lambda change: self.transition(change, runtime.detector))
        runtime.probe_callbacks.append(self.probe)
        runtime.client.observer = self.request
        runtime.recovery.callbacks.append(self.replay_pass)

    # ------------------------------------------------------------------ hooks

    def transition(self, change: Transition, detector) -> None:
        self.mode_changes.labels(change.from_mode.value, change.to_mode.value, change.cause).inc()
        if change.to_mode is Mode.BACKUP and change.by is None:
            self.failover_detection.observe(max(0.0, detector.silence(change.at)))

    def probe(self, result: ProbeResult) -> None:
        self.probes.labels("ok" if result.ok else result.kind).inc()

    def request(self, method: str, path: str, seconds: float, outcome: str, *, site: str = "main") -> None:
        self.request_duration.labels(site, method, endpoint_of(path), outcome).observe(seconds)

    def replay_pass(self, result, report) -> None:
        for outcome in getattr(result, "outcomes", None) or ():
            self.replay_entries.labels(str(outcome.state)).inc()

    def alert(self, status: str, outcome: str) -> None:
        self.alerts.labels(status, outcome).inc()


class _Static(Collector):
    def __init__(self, families: list) -> None:
        self.families = families

    def collect(self) -> Iterable:
        return iter(self.families)
