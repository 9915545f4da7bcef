"""The Faust side shared by the per-customer family agents (service levels, feedback, commerce).

Input: `cx.events`, keyed by `customer_id`, the events of the family's types (others are
skipped by their `cx-type` header without decoding). Table: one per family, keyed by
`customer_id`, whose value is the customer's state and ledger in one JSON document, written in
one changelog message per event. A view per partition (totals, indexes) is rebuilt from the
table on every recovery and dropped when the partition is revoked.

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


class TablePort:
    """Get and put customer state in a Faust table; `put_outside` for timer-driven writes."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, customer_id: str) -> bytes | None:
        value: bytes | None = self.table.get(customer_id.encode())
        return value

    def put(self, customer_id: str, value: bytes) -> None:
        self.table[customer_id.encode()] = value

    def put_outside(self, partition: int) -> Any:
        """A writer for code that runs outside stream iteration (the watermark timer)."""

        def put(customer_id: str, value: bytes) -> None:
            key = customer_id.encode()
            self.table.data[key] = value
            self.table.send_changelog(partition, key, value)

        return put


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
        async for event in stream.events():
            try:
                await handle(event.message)
            except Exception as exc:
                stop_worker(f"{agent_name} failed", exc)

    async def handle(message: Any) -> None:
        headers = dict(message.headers or ())
        runtime.note_processed(
            agent_name, message.partition, message.offset, headers.get(WATERMARK_HEADER)
        )
        event_type = headers.get("cx-type")
        if event_type is not None and event_type not in types:
            return
        result = runtime.events_validator.validate(message.value or b"", "")
        if isinstance(result, Rejection):
            # only possible if something else writes cx.events; one agent dead-letters it
            if dead_letters:
                log.warning("%s: invalid event on %s: %s", agent_name, message.topic, result.detail)
                await dlq.send(key=message.key, value=dead_letter(message, result))
            return
        if result.type not in processor.family.types:
            return
        source = headers.get("cx-source")
        source_ref = (
            source.decode() if source else f"{message.topic}:{message.partition}:{message.offset}"
        )
        processor.handle(port.get, port.put, message.partition, message.offset, result, source_ref)
        if on_applied is not None:
            await on_applied()
        runtime.recorder.event_processed(
            agent_name, result.channel, time.time() - result.occurred_at_ms / 1000
        )

    agent.__name__ = agent.__qualname__ = agent_name
    registered = app.agent(events, name=agent_name, concurrency=1)(agent)
    return registered, table, port


TIMERS_PER_SLICE = 500


class TimedProcessor(Protocol):
    """A processor whose watermark-driven timers write customer state."""

    views: dict[int, Any]

    def fire_timers(
        self, partition: int, watermark_ms: int, get: Any, put: Any, limit: int | None = None
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
) -> None:
    """Fire the processor's due timers every `interval_s`, per owned partition, up to the
    watermark this agent has processed there; writes go to the partition's changelog."""
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
            # in slices, yielding between them: a watermark jump (a replay, an idle source
            # let go) can make thousands of timers due at once
            while (
                processor.fire_timers(partition, watermark, port.get, put, TIMERS_PER_SLICE)
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
