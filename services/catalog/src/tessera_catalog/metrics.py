"""The catalog's own Prometheus metrics, registered in the app's registry."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tessera_catalog.db.outbox import Backlog
from tessera_catalog.db.records import Pool


class PoolCollector(Collector):
    """Pool size, idle and in-use connections, read from the pool at scrape time."""

    def __init__(self, pool: Callable[[], Pool | None]) -> None:
        self._pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self._pool()
        if pool is None:  # before startup / after shutdown: report nothing rather than zeros
            return
        size, idle = pool.get_size(), pool.get_idle_size()
        yield GaugeMetricFamily("catalog_db_pool_size", "Open PostgreSQL pool connections.", size)
        yield GaugeMetricFamily("catalog_db_pool_idle", "Idle PostgreSQL pool connections.", idle)
        yield GaugeMetricFamily(
            "catalog_db_pool_in_use", "PostgreSQL pool connections in use.", size - idle
        )
        yield GaugeMetricFamily(
            "catalog_db_pool_max",
            "Largest size the PostgreSQL pool may grow to.",
            pool.get_max_size(),
        )


PUBLISH_FAILURE_REASONS = ("disconnected", "timeout", "no_stream", "error")
"""Values of `reason` on catalog_outbox_publish_failures_total."""


class CatalogMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.outbox_pending = Gauge(
            "catalog_outbox_pending",
            "Outbox rows committed but not yet published to JetStream (the backlog), as "
            "counted in the database every outbox_pending_refresh_s; every replica reports "
            "the same shared count. NaN until the first count; keeps its last value while "
            "PostgreSQL is unreachable.",
            registry=registry,
        )
        self.outbox_lag = Gauge(
            "catalog_outbox_lag_seconds",
            "Age in seconds of the oldest pending outbox event (the next the relay "
            "publishes), 0 when none is pending; counted with catalog_outbox_pending "
            "(NaN until the first count, the last value while PostgreSQL is unreachable).",
            registry=registry,
        )
        # Unknown until counted: a 0 would say "no backlog" for a catalog that
        # (re)started while PostgreSQL was unreachable.
        self.outbox_pending.set(math.nan)
        self.outbox_lag.set(math.nan)
        self.outbox_published = Counter(
            "catalog_outbox_published",
            "Outbox events published to JetStream and acknowledged.",
            registry=registry,
        )
        self.outbox_publish_failures = Counter(
            "catalog_outbox_publish_failures",
            "Relay attempts that had events to publish and could not (the events stay "
            "pending), by reason: NATS disconnected, no ack in time, stream missing, "
            "other NATS error.",
            ("reason",),
            registry=registry,
        )
        for reason in PUBLISH_FAILURE_REASONS:
            self.outbox_publish_failures.labels(reason)
        self.nats_connected = Gauge(
            "catalog_nats_connected", "1 while connected to NATS, else 0.", registry=registry
        )
        self.enriched_degraded = Counter(
            "catalog_enriched_degraded",
            "Enriched products answered without a part, by part.",
            ("part",),
            registry=registry,
        )
        for part in ("reviews", "inventory", "prediction"):
            self.enriched_degraded.labels(part)

    def outbox_counted(self, backlog: Backlog) -> None:
        """The backlog as just counted in the database."""
        self.outbox_pending.set(backlog.pending)
        self.outbox_lag.set(backlog.oldest_age_s)
