"""The per-partition position guard: after a recovery, apply from the stored position on, and
close a gap by seeking back, or past offsets the broker does not hold."""

from __future__ import annotations

import asyncio

from faust.types import TP

from agents.positions import REWIND_RETRY_S, STALL_S, InputPositions, PositionGuard


def test_a_partition_with_nothing_stored_starts_where_it_is_read() -> None:
    positions = InputPositions()
    assert positions.verdict("t:0", 40, 0.0) == "apply"
    assert positions.expected("t:0") == 41


def test_after_a_recovery_redeliveries_apply_and_the_position_never_goes_back() -> None:
    positions = InputPositions()
    positions.restore("t:0", 10)
    assert [positions.verdict("t:0", o, 0.0) for o in (7, 8, 9, 10, 11)] == ["apply"] * 5
    assert positions.expected("t:0") == 12
    assert positions.verdict("t:0", 3, 0.0) == "apply"
    assert positions.expected("t:0") == 12


def test_a_gap_after_a_recovery_is_reported_once_then_held_until_the_position_is_read() -> None:
    positions = InputPositions()
    positions.restore("t:0", 100)
    assert positions.verdict("t:0", 3100, 1.0) == "gap"
    assert positions.expected("t:0") == 100
    assert [positions.verdict("t:0", o, 1.1) for o in (3101, 3102)] == ["hold", "hold"]
    assert positions.verdict("t:0", 100, 1.2) == "apply"
    assert positions.verdict("t:0", 101, 1.2) == "apply"


def test_a_seek_that_brings_nothing_is_overdue_after_a_while_and_then_again() -> None:
    positions = InputPositions()
    positions.restore("t:0", 100)
    positions.restore("t:1", 7)
    assert positions.verdict("t:0", 3100, 0.0) == "gap"
    assert positions.verdict("t:0", 3102, REWIND_RETRY_S + 0.1) == "hold"  # retries: overdue
    assert positions.overdue(REWIND_RETRY_S - 0.1) == {}
    assert positions.overdue(REWIND_RETRY_S) == {"t:0": 3100}
    assert positions.overdue(REWIND_RETRY_S + 0.1) == {}  # its clock restarted
    assert positions.overdue(2 * REWIND_RETRY_S) == {"t:0": 3100}
    assert positions.verdict("t:0", 100, 2 * REWIND_RETRY_S) == "apply"
    assert positions.overdue(10 * REWIND_RETRY_S) == {}


def test_once_the_position_is_read_offsets_are_not_checked() -> None:
    """Between recoveries Faust delivers in order; a jump then is a hole in the log (a
    transaction marker, compaction), not a skip."""
    positions = InputPositions()
    positions.restore("t:0", 100)
    assert positions.verdict("t:0", 100, 0.0) == "apply"
    assert positions.verdict("t:0", 102, 0.0) == "apply"
    assert positions.expected("t:0") == 103


def test_a_forgotten_partition_starts_afresh() -> None:
    positions = InputPositions()
    positions.restore("t:0", 100)
    positions.forget("t:0")
    assert positions.expected("t:0") is None
    assert positions.verdict("t:0", 900, 0.0) == "apply"


class _Broker:
    """What the guard asks of Kafka: the first offset held at or after one, and seeks."""

    def __init__(self, first_held: int, deliverable_end: int | None = None) -> None:
        self.first_held = first_held
        #: past the last offset a consumer can be given (a transaction marker after it)
        self.deliverable_end = deliverable_end
        self.seeks: list[tuple[TP, int]] = []

    async def probe(self, tp: TP, offset: int) -> int | None:
        if self.deliverable_end is not None and offset >= self.deliverable_end:
            return None
        return max(offset, self.first_held)

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


def test_the_guard_seeks_back_to_the_position_when_the_broker_holds_it() -> None:
    positions = InputPositions()
    positions.restore("t:0", 100)
    assert positions.verdict("t:0", 3100, 0.0) == "gap"
    broker = _Broker(first_held=0)
    asyncio.run(PositionGuard(positions, broker.probe, broker.seek).close_gaps({TP("t", 0): 3100}))
    assert broker.seeks == [(TP("t", 0), 100)]
    assert positions.expected("t:0") == 100


def test_the_guard_steps_over_offsets_the_broker_no_longer_holds() -> None:
    positions = InputPositions()
    positions.restore("t:0", 100)
    assert positions.verdict("t:0", 3100, 0.0) == "gap"
    broker = _Broker(first_held=250)  # retention deleted 100..249
    asyncio.run(PositionGuard(positions, broker.probe, broker.seek).close_gaps({TP("t", 0): 3100}))
    assert broker.seeks == [(TP("t", 0), 250)]
    assert positions.expected("t:0") == 250
    assert positions.verdict("t:0", 3101, 0.1) == "hold"  # the seek to 250 is under way
    assert positions.verdict("t:0", 250, 0.2) == "apply"


def test_the_guard_seeks_again_when_nothing_arrived_without_waiting_for_a_message() -> None:
    """After a replay no next message comes to notice that the seek back came to nothing."""
    positions = InputPositions()
    positions.restore("cx.events:3", 100)
    assert positions.verdict("cx.events:3", 3100, 0.0) == "gap"
    broker = _Broker(first_held=0)
    guard = PositionGuard(positions, broker.probe, broker.seek)
    asyncio.run(guard.close_gaps({TP("cx.events", 3): 3100}))
    asyncio.run(guard.retry_overdue(REWIND_RETRY_S / 2))
    asyncio.run(guard.retry_overdue(REWIND_RETRY_S))
    assert broker.seeks == [(TP("cx.events", 3), 100)] * 2


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _read_to(clock: _Clock, end: int) -> tuple[InputPositions, PositionGuard, _Broker]:
    """A partition recovered at 100 and read up to 109 (the position is 110); the broker holds
    offsets up to `end` - 1."""
    positions = InputPositions(clock)
    positions.restore("cx.events:0", 100)
    with positions.batch():
        for offset in range(100, 110):
            assert positions.verdict("cx.events:0", offset, clock.now) == "apply"
    broker = _Broker(first_held=0)
    return positions, PositionGuard(positions, broker.probe, broker.seek), broker


def test_a_partition_nothing_comes_from_while_the_agents_wait_is_sought_back_and_checked() -> None:
    clock = _Clock()
    positions, guard, broker = _read_to(clock, 500)
    with positions.batch():
        clock.now += 60  # time on batches (a slow flush) is not waiting
    assert positions.stalled(lambda ref: 500) == {}
    clock.now += STALL_S - 0.1
    assert positions.stalled(lambda ref: 500) == {}
    clock.now += 0.1
    assert positions.stalled(lambda ref: 500) == {"cx.events:0": 500}
    assert positions.stalled(lambda ref: 500) == {}  # its clock restarted
    asyncio.run(guard.unstick({"cx.events:0": 500}, clock.now))
    assert broker.seeks == [(TP("cx.events", 0), 110)]
    # checked as after a recovery: what comes past the position is held, the seek retried
    assert positions.verdict("cx.events:0", 300, clock.now) == "hold"
    assert positions.overdue(clock.now + REWIND_RETRY_S) == {"cx.events:0": -1}
    assert positions.verdict("cx.events:0", 110, clock.now) == "apply"
    assert positions.verdict("cx.events:0", 111, clock.now) == "apply"


def test_a_partition_read_to_its_end_or_being_rewound_is_not_stalled() -> None:
    clock = _Clock()
    positions, _, _ = _read_to(clock, 110)
    clock.now += 10 * STALL_S
    assert positions.stalled(lambda ref: 110) == {}
    assert positions.stalled(lambda ref: None) == {}  # end unknown
    positions.restore("cx.events:1", 50)
    assert positions.verdict("cx.events:1", 900, clock.now) == "gap"
    clock.now += 10 * STALL_S
    assert positions.stalled(lambda ref: 1000) == {"cx.events:0": 1000}  # not :1: overdue's


def test_a_transaction_marker_at_the_end_is_probed_once_until_the_end_moves() -> None:
    clock = _Clock()
    positions, _, _ = _read_to(clock, 111)
    broker = _Broker(first_held=0, deliverable_end=110)  # 110 is the marker
    guard = PositionGuard(positions, broker.probe, broker.seek)
    clock.now += STALL_S
    asyncio.run(guard.unstick(positions.stalled(lambda ref: 111), clock.now))
    assert broker.seeks == []
    clock.now += STALL_S
    assert positions.stalled(lambda ref: 111) == {}
    assert positions.stalled(lambda ref: 150) == {"cx.events:0": 150}


def test_after_a_seek_back_what_was_fetched_before_it_is_never_applied_out_of_order() -> None:
    """Messages fetched before a seek back can come after the position has: applied, they
    would put a ledger past offsets still to come (skipped then as redeliveries). So the
    partition stays checked until past the end the consumer knew at the seek."""
    positions = InputPositions()
    positions.restore("t:0", 100)
    assert positions.verdict("t:0", 3100, 0.0) == "gap"
    broker = _Broker(first_held=0)
    guard = PositionGuard(positions, broker.probe, broker.seek, end=lambda ref: 3200)
    asyncio.run(guard.close_gaps({TP("t", 0): 3100}))
    assert [positions.verdict("t:0", o, 0.1) for o in (100, 101)] == ["apply", "apply"]
    assert positions.verdict("t:0", 3150, 0.2) == "gap"  # fetched before the seek
    asyncio.run(guard.close_gaps({TP("t", 0): 3150}))
    assert broker.seeks == [(TP("t", 0), 100), (TP("t", 0), 102)]
    assert [positions.verdict("t:0", o, 0.3) for o in range(102, 3200)] == ["apply"] * 3098
    assert positions.verdict("t:0", 3150, 0.4) == "apply"  # a redelivery: the ledgers skip it
    assert positions.verdict("t:0", 3201, 0.4) == "apply"  # past the old end: unchecked
    assert positions.expected("t:0") == 3202
