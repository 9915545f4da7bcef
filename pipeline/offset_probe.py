"""What the broker holds at an offset: the first offset at or after it, read by a consumer of
its own (no group, nothing committed). Used only when an agent finds a gap in an input
partition (`agents.positions`), so a client lives for one probe."""

from __future__ import annotations

from typing import Any

from pipeline.kafka_options import aiokafka_options
from pipeline.settings import Settings

#: how long a probe waits for a record (none: the offset is past the partition's end)
PROBE_TIMEOUT_MS = 5000


def offset_probe(settings: Settings) -> Any:
    """`agents.positions.Probe` against the configured brokers."""

    async def first_offset(tp: Any, offset: int) -> int | None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # an offset deleted by retention: the first kept
            **aiokafka_options(settings),
        )
        await consumer.start()
        try:
            partition = TopicPartition(tp.topic, tp.partition)
            consumer.assign([partition])
            consumer.seek(partition, offset)
            records = await consumer.getmany(partition, timeout_ms=PROBE_TIMEOUT_MS, max_records=1)
            found = records.get(partition)
            return found[0].offset if found else None
        finally:
            await consumer.stop()

    return first_offset
