"""`cxpulse compute`: the worker's KPI logic over a JSON Lines file, without Kafka.

In: JSON Lines events (as `cxpulse replay` would send them). Out: the Prometheus exposition
the workers would serve once they had processed the same events (summed over partitions).
Routing, validation, dedup, the families and the watermark are the very same code the worker
runs; the file is one ordered stream, so the watermark is the latest event time less the
allowed lateness, and at the end every timer it has passed is settled, as in a drained worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agents.config import KpiConfig
from agents.ingest_logic import late_key, rejected_key
from agents.pipeline_core import Families
from agents.windows import SNAPSHOT_CHANNELS, gauges_of, snapshot
from pipeline.exposition import CONVERSATION_CHANNELS, build_families
from pipeline.replay import route
from schemas.events import SOURCE_KINDS
from schemas.validate import EventValidator, Rejection

_KIND_TOPICS = {kind: kind for kind in SOURCE_KINDS}


@dataclass(slots=True)
class OfflineRun:
    """Everything the offline run accumulates."""

    config: KpiConfig
    validator: EventValidator
    families: Families = field(init=False)
    tables: dict[str, dict[str, bytes]] = field(default_factory=dict)
    ingest: dict[str, int] = field(default_factory=dict)
    latest_ms: int | None = None
    watermark_ms: int | None = None
    lines: int = 0
    #: cx.churn signals (customer_id, value) in the order they were raised
    signals: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.families = Families.build(self.config)

    def feed(self, line: bytes) -> None:
        self.lines += 1
        kind, _ = route(line, _KIND_TOPICS, SOURCE_KINDS[0])
        result = self.validator.validate(line, kind)
        if isinstance(result, Rejection):
            self._count(rejected_key(result.reason))
            return
        if self.watermark_ms is not None and result.occurred_at_ms < self.watermark_ms:
            self._count(late_key(result.channel))
        for processor in self.families.for_type(result.type):
            table = self.tables.setdefault(processor.family.name, {})
            ref = f"line:{self.lines}"
            processor.handle(table.get, table.__setitem__, 0, self.lines, result, ref)
        if self.latest_ms is None or result.occurred_at_ms > self.latest_ms:
            self.latest_ms = result.occurred_at_ms
            self.watermark_ms = self.latest_ms - self.config.allowed_lateness_ms
        self.settle()

    def settle(self) -> None:
        """Settle every timer the watermark has passed."""
        if self.watermark_ms is not None:
            table = self.tables.setdefault(self.families.service.family.name, {})
            self.families.service.fire_timers(0, self.watermark_ms, table.get, table.__setitem__)
            churn = self.tables.setdefault(self.families.churn.family.name, {})
            self.families.churn.fire_timers(0, self.watermark_ms, churn.get, churn.__setitem__)
            self.signals += self.families.churn.outbox
            self.families.churn.outbox.clear()
            for processor in self.families.all():
                processor.view(0).windows.expire(self.watermark_ms)

    def _count(self, key: str) -> None:
        self.ingest[key] = self.ingest.get(key, 0) + 1

    def totals(self) -> dict[str, int]:
        merged = dict(self.ingest)
        for totals in self.families.totals_by_partition().values():
            for key, value in totals.items():
                merged[key] = merged.get(key, 0) + value
        return merged


class OfflineCollector(Collector):
    """Exposes an offline run's totals exactly as one worker would, without partitions."""

    def __init__(self, run: OfflineRun) -> None:
        self.run = run

    def collect(self) -> Iterable[Metric]:
        yield from build_families({None: self.run.totals()}, self.run.config.frt_buckets)
        yield from watermark_families(
            self.run.watermark_ms,
            {None: self.run.families.service.view(0).oldest_unanswered_ms()},
        )


def watermark_families(
    watermark_ms: int | None, oldest_by_partition: dict[int | None, dict[str, int]]
) -> Iterable[Metric]:
    """`cx_watermark_timestamp_seconds` and `cx_oldest_unanswered_age_seconds{channel}`."""
    watermark = GaugeMetricFamily(
        "cx_watermark_timestamp_seconds",
        "The event-time watermark: the minimum over live source partitions of the latest "
        "occurred_at, less the allowed lateness (Unix seconds).",
    )
    if watermark_ms is not None:
        watermark.add_metric([], watermark_ms / 1000)
    yield watermark
    with_partition = None not in oldest_by_partition
    age = GaugeMetricFamily(
        "cx_oldest_unanswered_age_seconds",
        "Watermark minus the opening time of the oldest open conversation with no agent reply.",
        labels=["channel", "partition"] if with_partition else ["channel"],
    )
    for partition, oldest in oldest_by_partition.items():
        suffix = [str(partition)] if with_partition else []
        for channel in CONVERSATION_CHANNELS:
            opened = oldest.get(channel)
            seconds = 0.0
            if opened is not None and watermark_ms is not None:
                seconds = max(watermark_ms - opened, 0) / 1000
            age.add_metric([channel, *suffix], seconds)
    yield age


def compute_snapshots(
    lines: Iterable[bytes], config: KpiConfig, validator: EventValidator
) -> list[dict[str, Any]]:
    """Run the KPI logic over the lines; the final `cx.kpi` snapshot per channel and window,
    as of the final watermark (None: no event, no snapshot)."""
    run = OfflineRun(config, validator)
    for line in lines:
        run.feed(line)
    run.settle()
    if run.watermark_ms is None:
        return []
    gauges = gauges_of(run.totals())
    result = []
    for window_s in config.windows_s:
        partial = run.families.window_partial(0, window_s, run.watermark_ms)
        for channel in SNAPSHOT_CHANNELS:
            result.append(
                snapshot(
                    channel, window_s, run.watermark_ms, partial.for_channel(channel), gauges, 1
                )
            )
    return result


def compute_exposition(
    lines: Iterable[bytes], config: KpiConfig, validator: EventValidator
) -> bytes:
    """Run the KPI logic over the lines and return the Prometheus text exposition."""
    run = OfflineRun(config, validator)
    for line in lines:
        run.feed(line)
    run.settle()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OfflineCollector(run))
    return generate_latest(registry)
