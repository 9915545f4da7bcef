"""The per-partition position guard: after a recovery, apply from the stored position on, and
close a gap by seeking back, or past offsets the broker does not hold."""

from __future__ import annotations

import asyncio
from typing import Any

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


def _consumer_at(offset: int | None, **by_partition: int) -> Any:
    """The consumer's position: `offset`, or `p<partition>=...` for some partitions."""

    async def position(tp: TP) -> int | None:
        return by_partition.get(f"p{tp.partition}", offset)

    return position


def test_a_recovered_partition_the_consumer_is_past_is_sought_back_without_a_message() -> None:
    """Faust committed the whole log before a crash: the restarted consumer fetches nothing
    there, so no message shows the gap."""
    positions = InputPositions()
    positions.restore("cx.events:2", 6614)
    broker = _Broker(first_held=0)
    guard = PositionGuard(positions, broker.probe, broker.seek, end=lambda ref: 10359)
    asyncio.run(guard.seek_unread_behind(_consumer_at(10359), now=0.0))
    assert broker.seeks == [(TP("cx.events", 2), 6614)]
    assert positions.unread() == {}  # sought: `overdue` retries from here
    assert positions.verdict("cx.events:2", 9000, 0.1) == "hold"
    assert positions.overdue(REWIND_RETRY_S) == {"cx.events:2": -1}
    assert positions.verdict("cx.events:2", 6614, 0.2) == "apply"
    assert positions.verdict("cx.events:2", 9000, 0.3) == "gap"  # still checked to 10358


def test_a_recovered_partition_the_consumer_fetches_from_its_position_is_left_alone() -> None:
    positions = InputPositions()
    positions.restore("t:0", 100)
    positions.restore("t:1", 50)
    positions.restore("t:2", 70)
    broker = _Broker(first_held=0)
    guard = PositionGuard(positions, broker.probe, broker.seek)
    asyncio.run(guard.seek_unread_behind(_consumer_at(None), now=0.0))  # not known yet
    assert positions.unread() == {"t:0": 100, "t:1": 50, "t:2": 70}
    assert positions.verdict("t:1", 50, 0.0) == "apply"  # read: its messages show any gap
    asyncio.run(guard.seek_unread_behind(_consumer_at(None, p0=120, p2=70), now=0.0))
    assert broker.seeks == [(TP("t", 0), 100)]  # t:2 is at its position: left alone
    assert positions.unread() == {}


def test_nothing_to_read_past_a_recovered_position_is_nothing_skipped() -> None:
    positions = InputPositions()
    positions.restore("t:0", 110)
    broker = _Broker(first_held=0, deliverable_end=110)  # 110 is a transaction marker
    guard = PositionGuard(positions, broker.probe, broker.seek)
    asyncio.run(guard.seek_unread_behind(_consumer_at(111), now=0.0))
    assert broker.seeks == []
    assert positions.unread() == {}


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
