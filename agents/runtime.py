"""What the agents of one worker share: KPI config, validator, watermark, processors, recorder.

Built by `pipeline.app` and handed to each agent module's `register` function, so agents
never import the pipeline package and tests can build a runtime of their own.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from faust.types import TP

from agents.config import KpiConfig
from agents.ingest_logic import SourcePartitionState
from agents.pipeline_core import Families
from agents.positions import (
    InputPositions,
    Position,
    PositionGuard,
    Probe,
    Seek,
    topic_partition,
)
from agents.watermark import Watermark
from schemas.validate import EventValidator


async def _no_probe(tp: Any, offset: int) -> int | None:
    return None


async def _unknown_input_position(tp: Any) -> int | None:
    return None


async def _no_seek(tp: Any, offset: int) -> None:
    raise RuntimeError(f"no consumer to seek {tp} back to {offset}")


class Recorder(Protocol):
    """Process-local stream-health metrics (wall-clock based, so not exact by nature)."""

    def events_processed(self, agent: str, lags: Sequence[tuple[str, float]]) -> None:
        """A batch an agent processed: (channel, processing time minus occurred_at) each."""

    def recovered(self, table: str, seconds: float) -> None: ...


@dataclass(slots=True)
class Runtime:
    """Shared, in-memory, derived state of one worker; the tables hold the truth."""

    config: KpiConfig
    validator: EventValidator
    watermark: Watermark
    topic_kinds: dict[str, str]
    recorder: Recorder
    families: Families = field(init=False)
    #: source "topic:partition" -> its bookkeeping, for active source partitions only
    sources: dict[str, SourcePartitionState] = field(default_factory=dict)
    #: "topic:partition" of every input partition (source and cx.events) -> the next offset
    #: its agent must process (`agents.positions`)
    positions: InputPositions = field(default_factory=InputPositions)
    #: the broker's first offset at or after one (`agents.positions.Probe`), and the
    #: consumer's seek, for closing gaps
    probe_offset: Probe = field(default=_no_probe)
    seek_input: Seek = field(default=_no_seek)
    #: (agent, cx.events partition) -> the ingest watermark stamped on the last message that
    #: agent processed there, and that message's offset
    processed_watermarks: dict[tuple[str, int], int] = field(default_factory=dict)
    processed_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    #: the agents reading cx.events, so a partition's watermark waits for the slowest
    event_agents: set[str] = field(default_factory=set)
    #: (timer, cx.events partition) -> the watermark up to which the timer has fired there;
    #: the timers are listed in `timed_agents`
    timers_fired_to: dict[tuple[str, int], int] = field(default_factory=dict)
    timed_agents: set[str] = field(default_factory=set)
    #: the cx.events topic (its partitions' positions are in `positions`)
    events_topic: str = ""
    #: "topic:partition" of an input partition -> its high-water mark, if known
    input_end: Callable[[str], int | None] = lambda ref: None
    #: an input partition's consumer position (None: unknown)
    input_position: Position = field(default=_unknown_input_position)
    #: cx.events partition -> the consumer's fetch position there, refreshed by the timers
    events_positions: dict[int, int] = field(default_factory=dict)
    #: validates what ingest already validated: no size limit (normalising may add bytes),
    #: no clock (ingest's clock already judged it), nothing written back
    events_validator: EventValidator = field(init=False)

    def __post_init__(self) -> None:
        self.families = Families.build(self.config)
        self.events_validator = EventValidator(
            max_bytes=sys.maxsize,
            known_topics=self.validator.known_topics,
            max_future_ms=None,
            forwards=False,
        )

    def note_processed(self, agent: str, partition: int, offset: int, stamp: bytes | None) -> None:
        self.processed_offsets[(agent, partition)] = offset
        if stamp is not None:
            self.processed_watermarks[(agent, partition)] = int(stamp)

    def _guard(self) -> PositionGuard:
        return PositionGuard(self.positions, self.probe_offset, self.seek_input, self.input_end)

    async def close_gaps(self, gaps: dict[Any, int]) -> None:
        """Seek input partitions with a gap back (`agents.positions`)."""
        if gaps:
            await self._guard().close_gaps(gaps)

    async def retry_rewinds(self, rebalancing: bool = False) -> None:
        """From a timer, as the message that would notice may never come: seek again the
        partitions whose seek back has not arrived (`InputPositions.overdue`), and seek back
        recovered partitions the consumer is already past (`InputPositions.unread`)."""
        guard = self._guard()
        await guard.retry_overdue(time.monotonic())
        if not rebalancing:  # after a rebalance, once the consumer is at the committed offsets
            await guard.seek_unread_behind(self.input_position, time.monotonic())

    def forget_partitions(
        self, events_partitions: set[int], source_refs: set[str], input_refs: set[str]
    ) -> None:
        """Partitions moved to another worker: stop exporting, timing and tracking them
        (`input_refs`: "topic:partition" of each, for their positions)."""
        for ref in input_refs:
            self.positions.forget(ref)
        for partition in events_partitions:
            for agent in self.event_agents:
                self.processed_watermarks.pop((agent, partition), None)
                self.processed_offsets.pop((agent, partition), None)
            for timer in self.timed_agents:
                self.timers_fired_to.pop((timer, partition), None)
            for processor in self.families.all():
                processor.views.pop(partition, None)
        for ref in source_refs:
            self.sources.pop(ref, None)
            self.watermark.forget(ref)

    def watermark_ms(self) -> int | None:
        return self.watermark.value_ms(time.monotonic())

    def timer_watermark_ms(self, partition: int, agent: str | None = None) -> int | None:
        """The watermark that timers of a `cx.events` partition may act on.

        Ingest stamps its watermark W on every event it forwards; once a message stamped W is
        processed on a partition, every on-time event older than W bound for that partition
        came before it. So timers use the stamp an agent has processed (the slowest agent's,
        when `agent` is None), not ingest's newer view, and cannot fire for a conversation
        whose answer is still in flight. When the input has been idle for the idle timeout
        and the agents have read the partition to the end, ingest's watermark applies.
        """
        agents = self.event_agents if agent is None else {agent}
        stamps = [self.processed_watermarks.get((name, partition)) for name in agents]
        stamped = None if not stamps or None in stamps else min(s for s in stamps if s is not None)
        if self.watermark.all_idle(time.monotonic()) and all(
            self._caught_up(name, partition) for name in agents
        ):
            current = self.watermark_ms()
            if current is not None and (stamped is None or current > stamped):
                return current
        return stamped

    async def refresh_positions(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            position = await self.input_position(TP(self.events_topic, partition))
            if position is None:
                self.events_positions.pop(partition, None)
            else:
                self.events_positions[partition] = position

    def settled_watermark_ms(self, partition: int) -> int | None:
        """As of when a partition's derived state is complete: every agent has read up to it
        and every timer due before it has fired (what a snapshot may claim as `as_of`)."""
        watermark = self.timer_watermark_ms(partition)
        fired = [self.timers_fired_to.get((agent, partition)) for agent in self.timed_agents]
        if watermark is None or None in fired:
            return None
        return min([watermark, *(f for f in fired if f is not None)])

    def _caught_up(self, agent: str, partition: int) -> bool:
        ref = f"{self.events_topic}:{partition}"
        highwater = self.input_end(ref)
        if highwater is None:
            return False
        processed = self.processed_offsets.get((agent, partition))
        if processed is not None:
            return processed + 1 >= highwater
        # nothing processed since this worker got the partition: caught up when everything
        # up to the high-water mark was committed before (the consumer starts fetching there)
        # and the agent's own position is there too: after a crash Faust may have committed,
        # and so fetched, past offsets never applied, and the agent holds the partition until
        # they come back (`agents.positions`); ingest's watermark must not overtake them
        position = self.events_positions.get(partition)
        own = self.positions.expected(ref)
        return highwater == 0 or (
            position is not None and position >= highwater and (own is None or own >= highwater)
        )

    def ingest_totals_by_partition(self) -> dict[int, dict[str, int]]:
        merged: dict[int, dict[str, int]] = {}
        for ref, state in self.sources.items():
            target = merged.setdefault(topic_partition(ref)[1], {})
            for key, value in state.totals.items():
                target[key] = target.get(key, 0) + value
        return merged
