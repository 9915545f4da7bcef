"""Kafka side of the benchmark: a namespace of topics per run, loading, the raw-consume limit,
consumer-group progress and clean-up.

In: bootstrap servers, a run id. Out: topics named ``b<run>-<part>.*`` (so runs on a shared
broker never meet, and clean-up finds everything a run made by that prefix; short, because
Quix Streams names its changelog after its group and all eight source topics), the
source topics filled from a JSON Lines file exactly as ``cxpulse replay`` does it, and
measurements of a plain aiokafka consumer reading them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.replay import open_lines, replay
from pipeline.settings import Settings
from schemas.events import SOURCE_KINDS

Log = Callable[[str], None]
_PROGRESS_EVERY_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Namespace:
    """The topics and consumer group of one pipeline under test."""

    prefix: str  # e.g. b1a2b3c4d-m

    @property
    def app_id(self) -> str:
        return self.prefix

    @property
    def source_topics(self) -> dict[str, str]:
        return {kind: f"{self.prefix}.raw.{kind}" for kind in SOURCE_KINDS}

    @property
    def events_topic(self) -> str:
        return f"{self.prefix}.events"

    def worker_env(self) -> dict[str, str]:
        """The `CXPULSE_*` settings that put a worker on this namespace: its app id (group,
        changelogs), the source topics, and every other `*_topic` setting there is."""
        env = {
            "CXPULSE_APP_ID": self.app_id,
            "CXPULSE_SOURCE_TOPICS": orjson.dumps(self.source_topics).decode(),
        }
        for name in Settings.model_fields:
            if name.endswith("_topic"):
                part = name.removesuffix("_topic").replace("_", ".")
                env[f"CXPULSE_{name.upper()}"] = f"{self.prefix}.{part}"
        return env


@dataclass(slots=True)
class RawResult:
    """A plain consumer reading every source message and decoding it with orjson."""

    messages: int
    decoded: int
    seconds: float  # from the first fetch to the last message

    @property
    def events_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class Loaded:
    messages: int
    seconds: float
    per_topic: dict[str, int] = field(default_factory=dict)


def load(path: Path, bootstrap: str, topics: dict[str, str], log: Log) -> Loaded:
    """Send every line to the source topics as `cxpulse replay` does (same routing, keys)."""
    return asyncio.run(_load(path, bootstrap, topics, log, rate=None))


async def _load(
    path: Path, bootstrap: str, topics: dict[str, str], log: Log, rate: float | None
) -> Loaded:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks="all"
    )
    await producer.start()
    started = time.monotonic()
    reported = [started]

    def progress(sent: int) -> None:
        now = time.monotonic()
        if now - reported[0] >= _PROGRESS_EVERY_S:
            reported[0] = now
            log(f"  loaded {sent:,} messages ({sent / (now - started):,.0f}/s)")

    try:
        fallback = next(iter(topics.values()))
        stats = await replay(open_lines(str(path)), producer, topics, fallback, rate, progress)
    finally:
        await producer.stop()
    return Loaded(stats.sent, time.monotonic() - started, stats.per_topic)


def raw_consume(bootstrap: str, topics: list[str], expected: int, log: Log) -> RawResult:
    """The limit: aiokafka `getmany` over every source partition (assigned, no group, from
    the beginning) and `orjson.loads` of each value, nothing else, until `expected` are read."""
    return asyncio.run(_raw_consume(bootstrap, topics, expected, log))


async def _raw_consume(bootstrap: str, topics: list[str], expected: int, log: Log) -> RawResult:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topics)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        messages = decoded = 0
        started = reported = time.monotonic()
        idle_since = started
        while messages < expected:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            now = time.monotonic()
            if not batches:
                if now - idle_since > 60:
                    raise RuntimeError(f"raw consumer stalled at {messages} of {expected}")
                continue
            idle_since = now
            for records in batches.values():
                for record in records:
                    messages += 1
                    try:
                        orjson.loads(record.value or b"")
                        decoded += 1
                    except orjson.JSONDecodeError:
                        pass
            if now - reported >= _PROGRESS_EVERY_S:
                reported = now
                log(f"  raw: {messages:,} of {expected:,} read")
        seconds = time.monotonic() - started
    finally:
        await consumer.stop()
    return RawResult(messages, decoded, seconds)


async def _partitions(consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    partitions: list[TopicPartition] = []
    for topic in topics:
        numbers = consumer.partitions_for_topic(topic)
        if numbers is None:
            await consumer._client.force_metadata_update()  # no public way to refresh
            numbers = consumer.partitions_for_topic(topic) or set()
        partitions += [TopicPartition(topic, number) for number in sorted(numbers)]
    return partitions


@dataclass(frozen=True, slots=True)
class GroupProgress:
    """How far a consumer group's commits are from the end of its input, and how much its
    app's changelogs hold: what moves while a worker settles after its last event (timers
    writing state, the commit flushing them), when its counters no longer do."""

    uncommitted: int  # input messages past the group's committed offsets
    changelog_end: int  # the sum of the end offsets of the app's changelog partitions

    @property
    def caught_up(self) -> bool:
        return self.uncommitted == 0


def group_progress(bootstrap: str, group: str, topics: list[str]) -> GroupProgress:
    """Where `group` stands on `topics`, and its changelogs' size (the group is the app id)."""
    return asyncio.run(_group_progress(bootstrap, group, topics))


async def _group_progress(bootstrap: str, group: str, topics: list[str]) -> GroupProgress:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        partitions = await _partitions(consumer, topics)
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
        changelogs = await _partitions(consumer, await _changelog_topics(consumer, group))
        changelog_ends = await consumer.end_offsets(changelogs)
    finally:
        await consumer.stop()
        await admin.close()
    uncommitted = 0
    for tp, end in ends.items():
        done = committed.get(tp)
        uncommitted += max(0, end - (0 if done is None else max(0, done.offset)))
    return GroupProgress(uncommitted, sum(changelog_ends.values()))


def changelog_records(bootstrap: str, app_id: str) -> int:
    """Messages in the app's table changelogs (what a restarted worker reads back)."""
    return asyncio.run(_changelog_records(bootstrap, app_id))


async def _changelog_topics(consumer: AIOKafkaConsumer, app_id: str) -> list[str]:
    return [
        name
        for name in await consumer.topics()
        if name.startswith(f"{app_id}-") and name.endswith("-changelog")
    ]


async def _changelog_records(bootstrap: str, app_id: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, await _changelog_topics(consumer, app_id))
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
    finally:
        await consumer.stop()
    return sum(ends[tp] - starts[tp] for tp in partitions)


def delete_topics(bootstrap: str, fragment: str) -> list[str]:
    """Delete every topic whose name contains `fragment`; returns their names."""
    return asyncio.run(_delete_topics(bootstrap, fragment))


async def _delete_topics(bootstrap: str, fragment: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = sorted(name for name in await admin.list_topics() if fragment in name)
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()
