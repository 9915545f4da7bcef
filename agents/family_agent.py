"""The Faust side shared by the per-customer family agents (service levels, feedback, commerce).

Input: `cx.events`, keyed by `customer_id`, the events of the family's types (others are
skipped by their `cx-type` header without decoding). Table: one per family, keyed by
`customer_id`, whose value is the customer's state and ledger in one JSON document. The agent
takes the stream in batches (`Stream.take_events`: acked once the batch is applied) and writes
each customer a batch changed once, in one changelog message. A view per partition (totals,
indexes) is rebuilt from the table on every recovery and dropped when the partition is revoked.

Bad event (only possible if something other than `validate_events` writes `cx.events`):
dead-lettered with reason and detail, the partition goes on. A redelivered message (same
`cx-source`) is skipped: that is what makes restarts exact.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import faust

from agents.fatal import stop_worker
from agents.ingest import WATERMARK_HEADER, dead_letter
from agents.processor import FamilyProcessor
from agents.runtime import Runtime
from schemas.validate import Rejection

log = logging.getLogger(__name__)
#: a batch is what the stream buffered within BATCH_WITHIN_S, at most BATCH_MAX_EVENTS
BATCH_MAX_EVENTS = 2000
BATCH_WITHIN_S = 0.05


class TablePort:
    """Get and put customer state in a Faust table, naming the changelog partition (a batch
    holds events of several partitions, so the stream's current event cannot name it)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, customer_id: str) -> bytes | None:
        value: bytes | None = self.table.data.get(customer_id.encode())
        return value

    def write(self, partition: int, customer_id: str, value: bytes) -> None:
        key = customer_id.encode()
        self.table.data[key] = value
        self.table.send_changelog(partition, key, value)

    def put_outside(self, partition: int) -> Any:
        """A writer bound to one partition, for the watermark timers."""

        def put(customer_id: str, value: bytes) -> None:
            self.write(partition, customer_id, value)

        return put

    def keep(self, customer_id: str, value: bytes) -> None:
        """Store in memory only, no changelog message: for state a restart derives again."""
        self.table.data[customer_id.encode()] = value


def register_family(
    app: faust.App,
    runtime: Runtime,
    processor: FamilyProcessor[Any],
    events: Any,
    dlq: Any,
    *,
    agent_name: str,
    table_name: str,
    table_help: str,
    dead_letters: bool = False,
    on_applied: Callable[[], Awaitable[None]] | None = None,
) -> tuple[Any, Any, TablePort]:
    """Declare the family's table and agent on `app`. The agent records the ingest watermark
    stamped on what it has processed (`Runtime.note_processed`); with `dead_letters` it is the
    one that dead-letters an invalid message found on `cx.events`; `on_applied` runs after
    each message (to send what the family queued)."""
    runtime.event_agents.add(agent_name)
    table = app.Table(
        table_name,
        key_type=bytes,
        value_type=bytes,  # bytes means the raw codec: values are our own orjson documents
        help=table_help,
    )
    port = TablePort(table)
    types = {t.encode() for t in processor.family.types}

    @table.on_recover
    async def rebuild_views() -> None:
        started = time.monotonic()
        active = {
            tp.partition
            for tp in app.assignor.assigned_actives()
            if tp.topic == events.get_topic_name()
        }
        processor.rebuild(((k.decode(), v) for k, v in table.data.items()), active)
        runtime.recorder.recovered(table_name, time.monotonic() - started)

    async def agent(stream: Any) -> None:
        async for batch in stream.take_events(BATCH_MAX_EVENTS, within=BATCH_WITHIN_S):
            try:
                await handle(batch)
            except Exception as exc:
                stop_worker(f"{agent_name} failed", exc)

    async def handle(batch: list[Any]) -> None:
        """Apply a batch, then store each customer it changed once (one changelog message),
        then send. No await before the stores: timers never see a customer half-applied.
        Faust acks the batch's offsets once this returns, and flushes the changelog before it
        commits them."""
        states: dict[str, tuple[Any, int]] = {}
        changed: set[str] = set()
        rejected: list[tuple[Any, Rejection]] = []
        lags: list[tuple[str, int]] = []
        for event in batch:
            message = event.message
            headers = dict(message.headers or ())
            runtime.note_processed(
                agent_name, message.partition, message.offset, headers.get(WATERMARK_HEADER)
            )
            event_type = headers.get("cx-type")
            if event_type is not None and event_type not in types:
                continue
            result = runtime.events_validator.validate(message.value or b"", "")
            if isinstance(result, Rejection):
                # only possible if something else writes cx.events; one agent dead-letters it
                if dead_letters:
                    rejected.append((message, result))
                continue
            if result.type not in processor.family.types:
                continue
            source = headers.get("cx-source")
            source_ref = (
                source.decode()
                if source
                else f"{message.topic}:{message.partition}:{message.offset}"
            )
            customer_id = result.customer_id
            entry = states.get(customer_id)
            if entry is None:
                entry = states[customer_id] = (
                    processor.load(port.get(customer_id)),
                    message.partition,
                )
            applied = processor.apply(
                entry[0], message.partition, message.offset, result, source_ref
            )
            if applied is not None:
                changed.add(customer_id)
            lags.append((result.channel, result.occurred_at_ms))
        for customer_id in changed:
            state, partition = states[customer_id]
            port.write(partition, customer_id, processor.dump(state, partition))
        for message, rejection in rejected:
            log.warning("%s: invalid event on %s: %s", agent_name, message.topic, rejection.detail)
            await dlq.send(key=message.key, value=dead_letter(message, rejection))
        if on_applied is not None:
            await on_applied()
        now = time.time()
        for channel, occurred_at_ms in lags:
            runtime.recorder.event_processed(agent_name, channel, now - occurred_at_ms / 1000)

    agent.__name__ = agent.__qualname__ = agent_name
    registered = app.agent(events, name=agent_name, concurrency=1)(agent)
    return registered, table, port


TIMERS_PER_SLICE = 500


class TimedProcessor(Protocol):
    """A processor whose watermark-driven timers write customer state."""

    views: dict[int, Any]

    def fire_timers(
        self,
        partition: int,
        watermark_ms: int,
        get: Any,
        put: Any,
        limit: int | None = None,
        keep: Any = None,
    ) -> int: ...


def register_timers(
    app: faust.App,
    runtime: Runtime,
    processor: TimedProcessor,
    port: TablePort,
    *,
    agent_name: str,
    interval_s: float,
    after: Callable[[], Awaitable[None]] | None = None,
    unchanged_in_memory: bool = False,
) -> None:
    """Fire the processor's due timers every `interval_s`, per owned partition, up to the
    watermark this agent has processed there; writes go to the partition's changelog, but
    with `unchanged_in_memory` those of timers that moved no series stay in memory (for
    timers a restart fires again from the stored state and gets the same state)."""
    runtime.timed_agents.add(agent_name)

    async def fire() -> None:
        if app.rebalancing:
            return  # views are rebuilt once recovery completes
        await runtime.refresh_positions(list(processor.views))
        for partition in list(processor.views):
            watermark = runtime.timer_watermark_ms(partition, agent_name)
            if watermark is None:
                continue
            put = port.put_outside(partition)
            keep = port.keep if unchanged_in_memory else None
            # in slices, yielding between them: a watermark jump (a replay, an idle source
            # let go) can make thousands of timers due at once
            while (
                processor.fire_timers(partition, watermark, port.get, put, TIMERS_PER_SLICE, keep)
                == TIMERS_PER_SLICE
            ):
                if after is not None:
                    await after()
                await asyncio.sleep(0)
                if app.rebalancing or partition not in processor.views:
                    break
            else:
                runtime.timers_fired_to[(agent_name, partition)] = watermark
        if after is not None:
            await after()

    fire.__name__ = fire.__qualname__ = f"{agent_name}_timers"
    app.timer(interval_s, name=f"{agent_name}_timers")(fire)
