"""Every Kafka topic CX Pulse reads or writes, declared in one place.

Source topics (`cx.raw.<channel>`, configurable), `cx.events` (valid events keyed by
customer), `cx.dlq` (dead letters), `cx.kpi` and `cx.churn` (downstream signals), the internal
`cx.kpi.partials` (per-partition window aggregates on their way to one snapshot) and
`cx.watermarks` (each worker's watermark reports, see `pipeline.watermark_exchange`), and the
compacted changelogs of the agents' tables (`<app_id>-<table>-changelog`, created by Faust
and by `cxpulse topics create`). All use raw bytes: agents decode with orjson themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from pipeline.settings import Settings

TABLES = (
    "source_partitions",
    "event_positions",
    "customer_conversations",
    "customer_feedback",
    "customer_orders",
    "customer_profiles",
)


@dataclass(frozen=True, slots=True)
class Topics:
    sources: Any
    events: Any
    dlq: Any
    kpi: Any
    kpi_partials: Any
    churn: Any


def _raw(app: faust.App, *names: str, partitions: int, config: dict[str, Any] | None = None) -> Any:
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        config=config,
    )


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    sources = list(dict.fromkeys(settings.source_topics.values()))
    return Topics(
        sources=_raw(app, *sources, partitions=settings.partitions),
        events=_raw(app, settings.events_topic, partitions=settings.partitions),
        dlq=_raw(
            app,
            settings.dlq_topic,
            partitions=settings.partitions,
            config={"max.message.bytes": settings.dlq_max_bytes},
        ),
        kpi=_raw(app, settings.kpi_topic, partitions=settings.partitions),
        kpi_partials=_raw(app, settings.kpi_partials_topic, partitions=settings.partitions),
        churn=_raw(
            app,
            settings.churn_topic,
            partitions=settings.partitions,
            config={"cleanup.policy": "compact"},
        ),
    )


def topic_specs(settings: Settings) -> list[tuple[str, dict[str, str]]]:
    """(name, topic configs) of every topic `cxpulse topics create` makes."""
    plain: dict[str, str] = {}
    compacted = {"cleanup.policy": "compact"}
    names = [
        *dict.fromkeys(settings.source_topics.values()),
        settings.events_topic,
        settings.dlq_topic,
        settings.kpi_topic,
        settings.kpi_partials_topic,
    ]
    specs = [(name, plain) for name in names]
    specs[names.index(settings.dlq_topic)] = (
        settings.dlq_topic,
        {"max.message.bytes": str(settings.dlq_max_bytes)},
    )
    specs.append((settings.churn_topic, compacted))
    # workers' watermark reports: only the last minutes matter (pipeline.watermark_exchange)
    specs.append((settings.watermarks_topic, {"retention.ms": str(3_600_000)}))
    specs += [(f"{settings.app_id}-{table}-changelog", compacted) for table in TABLES]
    return specs


async def create_topics(settings: Settings, client_options: dict[str, Any]) -> list[str]:
    """Create missing topics; returns the names created (existing ones are left alone)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, **client_options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, settings.partitions, settings.replication_factor, topic_configs=conf)
            for name, conf in topic_specs(settings)
            if name not in existing
        ]
        if wanted:
            await admin.create_topics(wanted)
        return [topic.name for topic in wanted]
    finally:
        await admin.close()
