"""Agent `apply_events`: `cx.events` -> every per-customer metric family, one table each.

Input: `cx.events`, keyed by `customer_id`. Each message is validated once and applied to the
families its type belongs to (service levels, feedback or commerce, and churn risk for every
type; `agents.pipeline_core.Families`). Tables: one per family (declared by the family's
module), keyed by `customer_id`, whose value is the customer's state and ledger in one JSON
document. The agent takes the stream in batches (`Stream.take_events`: acked once the batch is
applied) and writes each customer a batch changed once per family, in one changelog message.
One agent rather than one per family: each Faust stream costs its per-message overhead again.
A view per partition (totals, indexes) is rebuilt from the table on every recovery and dropped
when the partition is revoked; timers (`register_timers`) settle what the watermark decides.

Table `event_positions`, keyed by the `cx.events` partition: the next offset the agent must
process there, stored once the batch's state is with the broker; an offset read past it is a
gap Faust skipped, sought back and never applied across (`agents.positions`).

Bad event (only possible if something other than `validate_events` writes `cx.events`):
dead-lettered with reason and detail, the partition goes on. A redelivered message (same
`cx-source`) is skipped: that is what makes restarts exact.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import faust
import orjson
from faust.types import TP

from agents.fatal import stop_worker
from agents.ingest import WATERMARK_HEADER, dead_letter
from agents.processor import FamilyProcessor
from agents.runtime import Runtime
from agents.table_store import write_with_changelog
from schemas.validate import Rejection

log = logging.getLogger(__name__)
EVENTS_AGENT = "apply_events"
#: a batch is what the stream buffered within BATCH_WITHIN_S, at most BATCH_MAX_EVENTS
BATCH_MAX_EVENTS = 2000
BATCH_WITHIN_S = 0.1


class TablePort:
    """Get and put customer state in a Faust table by partition (`agents.table_store`: a
    batch holds events of several partitions, so the stream's current event cannot name it)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, partition: int, customer_id: str) -> bytes | None:
        value: bytes | None = self.table.data.get_in(partition, customer_id.encode())
        return value

    def write(self, partition: int, customer_id: str, value: bytes) -> Awaitable[Any]:
        """Store and queue the changelog message; the returned future completes once the
        broker has it (and the store has the value for good)."""
        return write_with_changelog(self.table, partition, customer_id.encode(), value)

    def getter(self, partition: int) -> Callable[[str], bytes | None]:
        """A reader bound to one partition, for the watermark timers."""
        return functools.partial(self.get, partition)

    def put_outside(self, partition: int) -> Callable[[str, bytes], None]:
        """A writer bound to one partition, for the watermark timers."""

        def put(customer_id: str, value: bytes) -> None:
            # timer writes need no wait: a restart fires the same timers from the stored state
            self.write(partition, customer_id, value)

        return put

    def keeper(self, partition: int) -> Callable[[str, bytes], None]:
        """Store without a changelog message, for state a restart derives again."""

        def keep(customer_id: str, value: bytes) -> None:
            self.table.data.keep(partition, customer_id.encode(), value)

        return keep


@dataclass(frozen=True, slots=True)
class FamilyWiring:
    """One family as the events agent runs it: its processor, its table, and what to send
    after each batch (`after_batch`, e.g. the churn signals the batch queued)."""

    processor: FamilyProcessor[Any]
    port: TablePort
    after_batch: Callable[[], Awaitable[None]] | None = None


def declare_family_table(
    app: faust.App,
    runtime: Runtime,
    processor: FamilyProcessor[Any],
    events: Any,
    *,
    table_name: str,
    table_help: str,
) -> TablePort:
    """Declare the family's table on `app`; its partition views are rebuilt from it after
    every recovery."""
    table = app.Table(
        table_name,
        key_type=bytes,
        value_type=bytes,  # bytes means the raw codec: values are our own orjson documents
        help=table_help,
    )

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

    return TablePort(table)


def register_events_agent(
    app: faust.App,
    runtime: Runtime,
    events: Any,
    dlq: Any,
    families: Sequence[FamilyWiring],
) -> Any:
    """Declare the agent `apply_events`: every message of `cx.events` is validated once and
    applied to each family its type belongs to (`Families.for_type`). It records the ingest
    watermark stamped on what it has processed (`Runtime.note_processed`) and dead-letters an
    invalid message found on `cx.events`."""
    runtime.event_agents.add(EVENTS_AGENT)
    routes: dict[str, tuple[int, ...]] = {
        event_type: tuple(
            index
            for index, wiring in enumerate(families)
            if event_type in wiring.processor.family.types
        )
        for wiring in families
        for event_type in wiring.processor.family.types
    }

    positions = app.Table(
        "event_positions",
        key_type=bytes,
        value_type=bytes,
        help="Per cx.events partition: the next offset apply_events must process.",
    )

    @positions.on_recover
    async def restore_positions() -> None:
        topic = events.get_topic_name()
        active = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}
        for key, raw in positions.data.items():
            partition = int(key)
            if partition in active:
                runtime.positions.restore(f"{topic}:{partition}", orjson.loads(raw)["next"])

    async def agent(stream: Any) -> None:
        async for batch in stream.take_events(BATCH_MAX_EVENTS, within=BATCH_WITHIN_S):
            try:
                await handle(batch)
            except Exception as exc:
                stop_worker(f"{EVENTS_AGENT} failed", exc)

    async def handle(batch: list[Any]) -> None:
        """Apply a batch, then store each customer it changed once per family (one changelog
        message), then send. No await before the stores: timers never see a customer
        half-applied. Returns only once the broker has every changelog message of the batch:
        Faust acks the batch's offsets when this returns and may commit them at once, and its
        own flush before a commit gives up on its buffer after 0.1 s without a send (a crash
        then lost applied events: the 200k crash test found ~1%)."""
        states: dict[tuple[int, str], tuple[Any, int]] = {}
        changed: set[tuple[int, str]] = set()
        rejected: list[tuple[Any, Rejection]] = []
        lags: list[tuple[str, int]] = []
        moved: dict[int, int] = {}
        gaps: dict[TP, int] = {}
        now = time.monotonic()
        for event in batch:
            message = event.message
            ref = f"{message.topic}:{message.partition}"
            verdict = runtime.positions.verdict(ref, message.offset, now)
            if verdict != "apply":
                if verdict == "gap":
                    gaps[message.tp] = message.offset
                continue
            moved[message.partition] = runtime.positions.expected(ref) or 0
            headers = dict(message.headers or ())
            runtime.note_processed(
                EVENTS_AGENT, message.partition, message.offset, headers.get(WATERMARK_HEADER)
            )
            result = runtime.events_validator.validate(message.value or b"", "")
            if isinstance(result, Rejection):
                # only possible if something other than validate_events writes cx.events
                rejected.append((message, result))
                continue
            source = headers.get("cx-source")
            source_ref = (
                source.decode()
                if source
                else f"{message.topic}:{message.partition}:{message.offset}"
            )
            customer_id = result.customer_id
            for index in routes.get(result.type, ()):
                processor = families[index].processor
                key = (index, customer_id)
                entry = states.get(key)
                if entry is None:
                    raw = families[index].port.get(message.partition, customer_id)
                    entry = states[key] = (processor.load(raw), message.partition)
                applied = processor.apply(
                    entry[0], message.partition, message.offset, result, source_ref
                )
                if applied is not None:
                    changed.add(key)
            lags.append((result.channel, result.occurred_at_ms))
        written = []
        for key in changed:
            index, customer_id = key
            state, partition = states[key]
            processor = families[index].processor
            value = processor.dump(state, partition)
            written.append(families[index].port.write(partition, customer_id, value))
        for message, rejection in rejected:
            log.warning("invalid event on %s: %s", message.topic, rejection.detail)
            await dlq.send(key=message.key, value=dead_letter(message, rejection))
        for wiring in families:
            if wiring.after_batch is not None:
                await wiring.after_batch()
        await asyncio.gather(*written)
        # only now: a position is stored once everything before it is with the broker
        await asyncio.gather(
            *(
                write_with_changelog(
                    positions, partition, str(partition).encode(), orjson.dumps({"next": offset})
                )
                for partition, offset in moved.items()
            )
        )
        await runtime.close_gaps(gaps)
        wall = time.time()
        runtime.recorder.events_processed(
            EVENTS_AGENT, [(channel, wall - at_ms / 1000) for channel, at_ms in lags]
        )

    agent.__name__ = agent.__qualname__ = EVENTS_AGENT
    return app.agent(events, name=EVENTS_AGENT, concurrency=1)(agent)


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
    timer_name: str,
    interval_s: float,
    after: Callable[[], Awaitable[None]] | None = None,
    unchanged_in_memory: bool = False,
) -> None:
    """Fire the processor's due timers every `interval_s`, per owned partition, up to the
    watermark the events agent has processed there; writes go to the partition's changelog,
    but with `unchanged_in_memory` those of timers that moved no series stay in memory (for
    timers a restart fires again from the stored state and gets the same state)."""
    runtime.timed_agents.add(timer_name)

    async def fire() -> None:
        if app.rebalancing:
            return  # views are rebuilt once recovery completes
        await runtime.refresh_positions(list(processor.views))
        for partition in list(processor.views):
            watermark = runtime.timer_watermark_ms(partition)
            if watermark is None:
                continue
            put = port.put_outside(partition)
            keep = port.keeper(partition) if unchanged_in_memory else None
            # in slices, yielding between them: a watermark jump (a replay, an idle source
            # let go) can make thousands of timers due at once
            while (
                processor.fire_timers(
                    partition, watermark, port.getter(partition), put, TIMERS_PER_SLICE, keep
                )
                == TIMERS_PER_SLICE
            ):
                if after is not None:
                    await after()
                await asyncio.sleep(0)
                if app.rebalancing or partition not in processor.views:
                    break
            else:
                runtime.timers_fired_to[(timer_name, partition)] = watermark
        if after is not None:
            await after()

    fire.__name__ = fire.__qualname__ = timer_name
    app.timer(interval_s, name=timer_name)(fire)
