"""Every Prometheus metric of a worker, built on a registry you pass in (none at import time).

KPI series come from a custom collector over the agents' partition views (exact: derived from
the changelog-backed tables, exported per partition so a series moves with its partition).
Stream health (`cxpulse_worker_*`: events per second, event lag, commit latency, consumer lag,
table recovery) uses ordinary process-local metrics: wall-clock figures, not KPIs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agents.runtime import Runtime
from pipeline.compute import watermark_families
from pipeline.exposition import build_families
from schemas.events import CHANNELS

LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400)


@dataclass(frozen=True, slots=True)
class StreamMetrics:
    """Process-local stream-health metrics; implements `agents.runtime.Recorder`."""

    events: Counter
    event_lag: Histogram
    commit_seconds: Histogram
    recovery_seconds: Counter
    #: the lag histogram's child per channel, bound once (`labels()` per event costs a lock)
    lag_by_channel: dict[str, Any] = field(default_factory=dict)

    def events_processed(self, agent: str, lags: Sequence[tuple[str, float]]) -> None:
        self.events.labels(agent).inc(len(lags))
        children = self.lag_by_channel
        for channel, lag_s in lags:
            child = children.get(channel)
            if child is None:
                child = children[channel] = self.event_lag.labels(channel)
            child.observe(max(lag_s, 0.0))

    def recovered(self, table: str, seconds: float) -> None:
        self.recovery_seconds.labels(table).inc(seconds)


def build_stream_metrics(registry: CollectorRegistry) -> StreamMetrics:
    metrics = StreamMetrics(
        events=Counter(
            "cxpulse_worker_events_processed",
            "Events an agent of this worker processed (including skipped redeliveries).",
            ["agent"],
            registry=registry,
        ),
        event_lag=Histogram(
            "cx_event_lag_seconds",
            "Processing time minus occurred_at when an event reached the metrics.",
            ["channel"],
            buckets=LAG_BUCKETS,
            registry=registry,
        ),
        commit_seconds=Histogram(
            "cxpulse_worker_commit_seconds",
            "Time an offset commit took, producer flush included.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
            registry=registry,
        ),
        recovery_seconds=Counter(
            "cxpulse_worker_table_recovery_seconds",
            "Time spent rebuilding views from a table after recovery.",
            ["table"],
            registry=registry,
        ),
    )
    for channel in CHANNELS:
        metrics.lag_by_channel[channel] = metrics.event_lag.labels(channel)
    return metrics


class KpiCollector(Collector):
    """The KPI series of the partitions this worker owns now."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterable[Metric]:
        runtime = self.runtime
        per_partition = runtime.families.totals_by_partition()
        for partition, totals in runtime.ingest_totals_by_partition().items():
            target = per_partition.setdefault(partition, {})
            for key, value in totals.items():
                target[key] = target.get(key, 0) + value
        exported: dict[int | None, Mapping[str, int]] = {p: t for p, t in per_partition.items()}
        yield from build_families(exported, runtime.config.frt_buckets)
        oldest: dict[int | None, dict[str, int]] = {
            partition: view.oldest_unanswered_ms()
            for partition, view in runtime.families.service.views.items()
        }
        yield from watermark_families(runtime.watermark_ms(), oldest)


class ConsumerLagCollector(Collector):
    """`cxpulse_worker_consumer_lag_messages{topic}`: high water minus committed offset."""

    def __init__(self, lags: Callable[[], dict[str, int]]) -> None:
        self.lags = lags

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "cxpulse_worker_consumer_lag_messages",
            "Messages in assigned partitions not yet committed by this worker, per topic.",
            labels=["topic"],
        )
        for topic, lag in sorted(self.lags().items()):
            family.add_metric([topic], lag)
        yield family
