"""Runtime.timer_watermark_ms: once the input is idle, a partition's timers may act on ingest's
watermark only when the events agent has read the partition to its end, by its own position
(`agents.positions`), not the consumer's."""

from __future__ import annotations

from collections.abc import Sequence

from agents.config import KpiConfig
from agents.runtime import Runtime
from agents.watermark import Watermark
from schemas.validate import EventValidator

LATENESS_MS = 300_000
T = 1_795_341_600_000  # 2026-11-22T10:00:00Z
EVENTS = "cx.events"
AGENT = "apply_events"
HIGHWATER = 9_000


class _Recorder:
    def events_processed(self, agent: str, lags: Sequence[tuple[str, float]]) -> None:
        pass

    def recovered(self, table: str, seconds: float) -> None:
        pass


def idle_runtime(consumer_position: int) -> Runtime:
    """Partition 0 of cx.events holds offsets up to HIGHWATER - 1; the consumer's position is
    `consumer_position`; the only source partition has been idle since its event at T."""
    runtime = Runtime(
        config=KpiConfig(),
        validator=EventValidator(max_future_ms=None),
        watermark=Watermark(allowed_lateness_ms=LATENESS_MS, idle_timeout_s=0.0),
        topic_kinds={},
        recorder=_Recorder(),
        events_topic=EVENTS,
    )
    runtime.event_agents.add(AGENT)
    runtime.input_end = lambda ref: HIGHWATER if ref == f"{EVENTS}:0" else None
    runtime.events_positions[0] = consumer_position
    runtime.watermark.observe("cx.raw.chat:0", T, wall_s=0.0)
    return runtime


def test_a_partition_read_to_its_end_before_a_restart_takes_the_idle_watermark() -> None:
    runtime = idle_runtime(consumer_position=HIGHWATER)
    assert runtime.timer_watermark_ms(0) == T - LATENESS_MS


def test_a_partition_the_consumer_is_not_through_yet_waits() -> None:
    runtime = idle_runtime(consumer_position=HIGHWATER - 1)
    assert runtime.timer_watermark_ms(0) is None


def test_offsets_held_for_a_seek_back_keep_the_idle_watermark_away_until_applied() -> None:
    # after a crash Faust committed past offsets 6000.. never applied: the consumer is at the
    # end, but the agent's stored position is 6000 and it holds what it reads past it
    runtime = idle_runtime(consumer_position=HIGHWATER)
    runtime.positions.restore(f"{EVENTS}:0", 6_000)
    assert runtime.positions.verdict(f"{EVENTS}:0", 8_500, now=0.0) == "gap"
    assert runtime.timer_watermark_ms(0) is None
    for offset in range(6_000, HIGHWATER):
        assert runtime.positions.verdict(f"{EVENTS}:0", offset, now=1.0) == "apply"
    runtime.note_processed(AGENT, 0, HIGHWATER - 1, stamp=None)
    assert runtime.timer_watermark_ms(0) == T - LATENESS_MS
