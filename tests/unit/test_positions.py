"""The per-partition position guard: after a recovery, apply from the stored position on, and
close a gap by seeking back, or past offsets the broker does not hold."""

from __future__ import annotations

import asyncio

from faust.types import TP

from agents.positions import REWIND_RETRY_S, InputPositions, PositionGuard


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

    def __init__(self, first_held: int) -> None:
        self.first_held = first_held
        self.seeks: list[tuple[TP, int]] = []

    async def probe(self, tp: TP, offset: int) -> int | None:
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
