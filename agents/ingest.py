"""Agent `validate_events`: source topics -> `cx.events` (valid) and `cx.dlq` (invalid).

Input: every configured source topic (`cx.raw.<channel>`), any key, raw bytes.
Table: `source_partitions`, keyed `topic:partition`, one value per source partition: the next
offset to count, the latest event time (recovers the watermark), rejected and late counts;
written once per batch of the stream (`Stream.take_events`) and source partition.
Output: `cx.events` keyed by `customer_id` with the normalised event and headers `cx-source`
(`topic:partition:offset`, the dedup reference downstream), `cx-type` and `cx-watermark`
(ingest's watermark when it sent the event, in epoch ms: what downstream timers may act on);
`cx.dlq` keyed by the source key with the dead letter (original bytes in base64, source
coordinates, reason).
Metrics: `cx_events_rejected_total{reason}`, `cx_events_late_total{channel}`, the watermark.

A source partition's `next` offset is also the position ingest checks each message against
(`agents.positions`): an offset read past it is a gap Faust skipped, sought back to.

Bad event: dead-lettered and counted; the partition goes on. What stops the worker: only a
failure to produce to Kafka (Faust crashes the worker rather than commit past lost output).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import Any

import faust
import orjson
from faust.types import TP

from agents.fatal import stop_worker
from agents.ingest_logic import SourcePartitionState, late_key, rejected_key
from agents.runtime import Runtime
from agents.table_store import write_with_changelog
from schemas.validate import Rejection

log = logging.getLogger(__name__)
#: a batch is what the stream buffered within BATCH_WITHIN_S, at most BATCH_MAX_EVENTS
BATCH_MAX_EVENTS = 2000
BATCH_WITHIN_S = 0.1
DEAD_LETTER_SCHEMA = "cx.dead_letter/v1"
WATERMARK_HEADER = "cx-watermark"


def dead_letter(message: Any, rejection: Rejection) -> bytes:
    """The `cx.dlq` value for a rejected message (JSON Schema: schemas/json/cx.dlq.schema.json)."""
    return orjson.dumps(
        {
            "schema": DEAD_LETTER_SCHEMA,
            "reason": rejection.reason,
            "detail": rejection.detail,
            "source_topic": message.topic,
            "source_partition": message.partition,
            "source_offset": message.offset,
            "original_base64": base64.b64encode(message.value or b"").decode("ascii"),
        }
    )


def register(
    app: faust.App, runtime: Runtime, sources: Any, events: Any, dlq: Any
) -> tuple[Any, Any]:
    """Declare the `source_partitions` table and the `validate_events` agent on `app`."""
    table = app.Table(
        "source_partitions",
        key_type=bytes,
        value_type=bytes,  # bytes means the raw codec: values are our own orjson documents
        help="Per source topic-partition: next offset to count, latest event time, "
        "rejected and late counts.",
    )

    @table.on_recover
    async def restore_watermark() -> None:
        active = {
            f"{tp.topic}:{tp.partition}"
            for tp in app.assignor.assigned_actives()
            if tp.topic in runtime.topic_kinds
        }
        runtime.sources = {}
        for key, raw in table.data.items():
            ref = key.decode()
            if ref in active:
                state = SourcePartitionState.from_json(orjson.loads(raw))
                runtime.sources[ref] = state
                runtime.positions.restore(ref, state.next_offset)
                if state.latest_ms is not None:
                    runtime.watermark.restore(ref, state.latest_ms, time.monotonic())
        for ref in runtime.watermark.partitions():
            if ref not in active:
                runtime.watermark.forget(ref)
        for ref in active:
            runtime.watermark.assign(ref, time.monotonic())

    @app.agent(sources, name="validate_events", concurrency=1)
    async def validate_events(stream: Any) -> None:
        async for batch in stream.take_events(BATCH_MAX_EVENTS, within=BATCH_WITHIN_S):
            try:
                await _ingest(runtime, table, events, dlq, batch)
            except Exception as exc:
                stop_worker("validate_events failed", exc)

    return validate_events, table


async def _ingest(runtime: Runtime, table: Any, events: Any, dlq: Any, batch: list[Any]) -> None:
    """Validate and forward a batch, then store each source partition's bookkeeping once.
    Faust acks the batch's offsets once this returns. Events and dead letters are awaited
    until the broker has them before the bookkeeping is written (it holds the position past
    them, `agents.positions`), and the bookkeeping's changelog messages too (Faust's own flush
    of its buffer can give up early, see `agents.family_agent`)."""
    touched: dict[str, tuple[int, SourcePartitionState]] = {}
    # once per batch: it looks at every source partition. The events of the batch carry it as
    # their stamp; a stamp older than the watermark at the send is safe (timers act later)
    watermark = runtime.watermark.value_ms(time.monotonic())
    stamp = None if watermark is None else str(watermark).encode()
    gaps: dict[TP, int] = {}
    sent: list[Any] = []
    now = time.monotonic()
    for item in batch:
        message = item.message
        ref = f"{message.topic}:{message.partition}"
        verdict = runtime.positions.verdict(ref, message.offset, now)
        if verdict != "apply":
            if verdict == "gap":
                gaps[message.tp] = message.offset
            continue
        state = runtime.sources.get(ref)
        if state is None:
            raw = table.data.get_in(message.partition, ref.encode())
            state = (
                SourcePartitionState()
                if raw is None
                else SourcePartitionState.from_json(orjson.loads(raw))
            )
            runtime.sources[ref] = state
        touched[ref] = (message.partition, state)
        kind = runtime.topic_kinds.get(message.topic, "")
        result = runtime.validator.validate(message.value or b"", kind)
        if isinstance(result, Rejection):
            log.debug("dead-lettering %s@%s: %s", ref, message.offset, result.detail)
            sent.append(await dlq.send(key=message.key, value=dead_letter(message, result)))
            state.record(message.offset, None, rejected_key(result.reason))
            continue
        late = runtime.watermark.is_late(result.occurred_at_ms)
        headers = [
            ("cx-source", f"{ref}:{message.offset}".encode()),
            ("cx-type", result.type.encode()),
        ]
        if stamp is not None:
            headers.append((WATERMARK_HEADER, stamp))
        sent.append(
            await events.send(
                key=result.customer_id.encode(), value=orjson.dumps(result.payload), headers=headers
            )
        )
        # observed once sent: what this worker reports to the others covers only events
        # already on their way (see pipeline.watermark_exchange)
        runtime.watermark.observe(ref, result.occurred_at_ms, time.monotonic())
        state.record(
            message.offset, result.occurred_at_ms, late_key(result.channel) if late else None
        )
    # the bookkeeping (the partition's position) only once what it covers is with the broker
    await asyncio.gather(*sent)
    written = []
    for ref, (partition, state) in touched.items():
        value = orjson.dumps(state.to_json())
        written.append(write_with_changelog(table, partition, ref.encode(), value))
    await asyncio.gather(*written)
    await runtime.close_gaps(gaps)
