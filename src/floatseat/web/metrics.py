"""`/metrics` in Prometheus format: every name starts with `floatseat_`.

Gauges are read from the runtime's status at each scrape. The decision counters are counted
from the audit log, so they survive restarts and agree across processes; a counter that
never resets is what Prometheus expects. Request latency and the activity API's throttled
requests are counted by this process.

High availability: `floatseat_leader{instance_name}` is 1 on the instance that leads (acting, taking
over, or solo) and 0 on a follower; `floatseat_leadership_epoch` is the leadership epoch, 0 when
solo (so both series exist on every instance and an alert need not handle a missing one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from floatseat.domain.policy import Rule
from floatseat.service.ports import AuditKind
from floatseat.store.schema import audit_log
from floatseat.web.views import Status

__all__ = ["METRIC_NAMES", "Metrics"]

log = logging.getLogger(__name__)

SCRAPE_TTL_S = 5.0  # seconds a reading of the status and the audit counters serves scrapes

METRIC_NAMES = (
    "floatseat_seats_held",
    "floatseat_capacity",
    "floatseat_queue_length",
    "floatseat_pinned",
    "floatseat_licensed",
    "floatseat_tier",
    "floatseat_outbox_backlog",
    "floatseat_directory_errors",
    "floatseat_frozen",
    "floatseat_shadow",
    "floatseat_feed_lag_seconds",
    "floatseat_feeds_stalled",
    "floatseat_grants_total",
    "floatseat_revokes_total",
    "floatseat_preemptions_total",
    "floatseat_waits_total",
    "floatseat_denials_total",
    "floatseat_http_request_duration_seconds",
    "floatseat_activity_throttled_total",
    "floatseat_leader",
    "floatseat_leadership_epoch",
)
THROTTLE_REASONS = ("rate", "failed_auth")  # a principal over its rate; an address that failed


class _Collector(Collector):
    """Reads status and counters at most once per `ttl_s`: anyone who reaches the port may
    scrape, and counting the audit log is a full scan."""

    def __init__(self, status: Callable[[], Status], engine: sa.Engine, ttl_s: float) -> None:
        self._status = status
        self._engine = engine
        self._ttl_s = ttl_s
        self._cached: tuple[float, list[Metric]] | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        with self._lock:  # concurrent scrapes wait for one reading
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self._ttl_s:
                self._cached = (now, list(self._read()))
            return list(self._cached[1])

    def _read(self) -> Iterable[Metric]:
        try:
            s = self._status()
        except Exception:  # a scrape must not fail because the ledger is busy
            log.exception("reading the status for /metrics failed")
            return
        for name, value, text in (
            ("floatseat_seats_held", s.seats_held, "Floating seats held now."),
            ("floatseat_capacity", s.capacity, "Floating seats there are."),
            ("floatseat_queue_length", s.queue_length, "Users waiting for a seat."),
            ("floatseat_pinned", s.pinned, "Pinned pool users (fixed seats)."),
            ("floatseat_outbox_backlog", s.outbox_backlog, "Directory moves not yet done."),
            ("floatseat_directory_errors", s.directory_errors, "Moves whose last try failed."),
            ("floatseat_frozen", int(s.frozen), "1 while an admin freeze holds revokes."),
            ("floatseat_shadow", int(s.shadow), "1 in shadow mode (nobody is moved)."),
            ("floatseat_feeds_stalled", len(s.stalled_feeds), "Activity feeds stalled now."),
        ):
            yield GaugeMetricFamily(name, text, value=value)
        if s.licensed is not None:
            yield GaugeMetricFamily(
                "floatseat_licensed", "Licensed users as last reported.", value=s.licensed
            )
        if s.tier is not None:
            yield GaugeMetricFamily("floatseat_tier", "The licence tier.", value=s.tier)
        lag = GaugeMetricFamily(
            "floatseat_feed_lag_seconds", "Seconds since each feed last moved.", labels=["feed"]
        )
        for feed, seconds in sorted(s.feed_lag_s.items()):
            lag.add_metric([feed], seconds)
        yield lag
        leader = GaugeMetricFamily(
            "floatseat_leader",
            "1 on the instance that leads (acting or taking over; a solo instance leads), "
            "0 on a follower.",
            labels=["instance_name"],  # not `instance`: Prometheus sets that to the target
        )
        leader.add_metric([s.instance], int(s.leads))
        yield leader
        yield GaugeMetricFamily(
            "floatseat_leadership_epoch",
            "The leadership epoch (rises at every takeover); 0 when solo.",
            value=s.epoch or 0,
        )
        yield from self._counters()

    def _counters(self) -> Iterable[Metric]:
        query = sa.select(audit_log.c.kind, audit_log.c.rule, sa.func.count()).group_by(
            audit_log.c.kind, audit_log.c.rule
        )
        with self._engine.connect() as c:
            rows = [(str(k), str(r), int(n)) for k, r, n in c.execute(query)]
        families = {
            AuditKind.GRANT.value: CounterMetricFamily(
                "floatseat_grants", "Seats granted, by rule.", labels=["rule"]
            ),
            AuditKind.REVOKE.value: CounterMetricFamily(
                "floatseat_revokes", "Seats revoked, by rule.", labels=["rule"]
            ),
            AuditKind.QUEUED.value: CounterMetricFamily(
                "floatseat_waits", "Users who had to wait for a seat.", labels=["rule"]
            ),
            AuditKind.DENIED.value: CounterMetricFamily(
                "floatseat_denials", "Users who left the queue without a seat.", labels=["rule"]
            ),
        }
        preemptions = 0
        for kind, rule, n in rows:
            family = families.get(kind)
            if family is not None:
                family.add_metric([rule], n)
            if kind == AuditKind.REVOKE.value and rule == Rule.REVOKE_PREEMPTED.value:
                preemptions += n
        yield from families.values()
        yield CounterMetricFamily(
            "floatseat_preemptions",
            "Idle holders whose seat went to someone waiting.",
            value=preemptions,
        )


class Metrics:
    """The app's registry: status gauges, audit counters and request latency."""

    def __init__(
        self, status: Callable[[], Status], engine: sa.Engine, *, ttl_s: float = SCRAPE_TTL_S
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = _Collector(status, engine, ttl_s)
        self.registry.register(self.collector)
        self.latency = Histogram(
            "floatseat_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.throttled = Counter(
            "floatseat_activity_throttled",
            "POST /api/v1/activity requests refused with 429, by reason: a principal over its "
            "rate, or an address that failed to authenticate too often.",
            ["reason"],
            registry=self.registry,
        )
        for reason in THROTTLE_REASONS:
            self.throttled.labels(reason)  # shown at 0 from the start

    def observe(self, method: str, route: str, status: int, started: float) -> None:
        self.latency.labels(method, route, str(status)).observe(time.perf_counter() - started)
