"""One watermark across workers: each tells the others how far its source partitions have got.

Why: a worker reads only the source partitions it owns, but its events land on `cx.events`
partitions whose timers (breaches, FCR horizons, window closes) must wait for *every* source
partition. So every worker, once per `watermark_interval_s`:
1. takes the latest event time it has sent on, and whether it is idle, per owned source
   partition (`Watermark.local_reports`);
2. flushes its producer, so every event those reports cover is written to `cx.events`;
3. publishes the reports to the internal topic `cx.watermarks` (partition 0, keyed by worker).
Every worker reads that topic from its recent end (no consumer group: all read everything) and
feeds the others' reports to its `Watermark`, which also learns every source partition there
is from topic metadata, so one that nobody has reported on holds the watermark.

The watermark that ingest stamps on an event it forwards is then at most every source
partition's reported progress less the lateness; each of those reports was read after the
events it covers were written, so they precede the stamped event on every `cx.events`
partition, and a timer acting on the stamp cannot fire ahead of an on-time event still on its
way from another worker.

Bad input: a report that is not ours (malformed, other schema) is logged and skipped. What
stops the worker: `cx.watermarks` missing (run `cxpulse topics create`) or a failed send.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import faust
import orjson

from agents.fatal import stop_worker
from agents.watermark import Watermark
from pipeline.kafka_options import aiokafka_options
from pipeline.settings import Settings

log = logging.getLogger(__name__)
REPORT_SCHEMA = "cx.watermark_report/v1"
#: how far back a (re)started worker reads: a few minutes of reports from a handful of workers
REPLAY_REPORTS = 1000
METADATA_REFRESH_S = 30.0
ENDS_REFRESH_S = 1.0


def encode_reports(worker: str, reports: dict[str, tuple[int | None, bool]]) -> bytes:
    return orjson.dumps(
        {
            "schema": REPORT_SCHEMA,
            "worker": worker,
            "sources": {
                ref: {"latest_ms": latest, "idle": idle} for ref, (latest, idle) in reports.items()
            },
        }
    )


def apply_reports(watermark: Watermark, me: str, topics: set[str], raw: bytes | None) -> int:
    """Feed another worker's reports on partitions of our source `topics` into `watermark`
    (another pipeline may share the topic); returns how many were taken in."""
    try:
        message = orjson.loads(raw or b"")
        if message.get("schema") != REPORT_SCHEMA or message.get("worker") == me:
            return 0
        sources = message["sources"]
        taken = 0
        for ref, report in sources.items():
            latest = report["latest_ms"]
            if latest is not None and not isinstance(latest, int):
                raise TypeError(f"latest_ms of {ref} is {latest!r}")
            if str(ref).rpartition(":")[0] in topics:
                watermark.report(str(ref), latest, bool(report["idle"]))
                taken += 1
        return taken
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError) as exc:
        log.warning("skipping a watermark report that is not ours: %s", exc)
        return 0


async def source_partitions(admin: Any, topics: list[str]) -> frozenset[str]:
    """Every `topic:partition` of the source topics, from the broker's metadata."""
    described = await admin.describe_topics(topics)
    refs = set()
    for topic in described:
        if topic["error_code"]:
            raise RuntimeError(f"topic {topic['topic']} is not readable: {topic['error_code']}")
        refs |= {f"{topic['topic']}:{p['partition']}" for p in topic["partitions"]}
    return frozenset(refs)


def register(
    app: faust.App, watermark: Watermark, settings: Settings, source_ends: dict[str, int]
) -> str:
    """Publish this worker's reports on a timer and take in the others'; keep `source_ends`
    (source `topic:partition` -> its end offset, listed about once a second: fresher than
    what the worker's own fetches tell of partitions it is not fetching, e.g. paused ones);
    returns the worker's id."""
    me = uuid.uuid4().hex
    topic = settings.watermarks_topic
    sources = sorted(set(settings.source_topics.values()))

    async def publish() -> None:
        reports = watermark.local_reports(time.monotonic())
        if not reports:
            return
        try:
            await app.producer.flush()  # what the reports cover is written before they are
            await app.producer.send_and_wait(
                topic, me.encode(), encode_reports(me, reports), 0, None, None
            )
        except Exception as exc:
            stop_worker("publishing the watermark failed", exc)

    async def listen() -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        options = aiokafka_options(settings)
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, **options)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False, **options
        )
        try:
            await admin.start()
            await consumer.start()
            [described] = await admin.describe_topics([topic])
            if described["error_code"] or not described["partitions"]:
                raise RuntimeError(f"topic {topic} is missing: run `cxpulse topics create`")
            tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, max(0, ends[tp] - REPLAY_REPORTS))
            refreshed = listed = 0.0
            source_tps: list[TopicPartition] = []
            while True:
                if time.monotonic() - refreshed >= METADATA_REFRESH_S:
                    refs = await source_partitions(admin, sources)
                    watermark.expect(refs)
                    source_tps = [
                        TopicPartition(ref.rpartition(":")[0], int(ref.rpartition(":")[2]))
                        for ref in sorted(refs)
                    ]
                    refreshed = time.monotonic()
                if source_tps and time.monotonic() - listed >= ENDS_REFRESH_S:
                    ends = await consumer.end_offsets(source_tps)
                    source_ends.update(
                        {f"{tp.topic}:{tp.partition}": end for tp, end in ends.items()}
                    )
                    listed = time.monotonic()
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        apply_reports(watermark, me, set(sources), record.value)
        except Exception as exc:
            stop_worker("reading the other workers' watermarks failed", exc)
        finally:
            await consumer.stop()
            await admin.close()

    app.timer(settings.watermark_interval_s, name="publish_watermark")(publish)
    app.task(listen)
    return me
