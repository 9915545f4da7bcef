"""The next offset each agent must process per input partition: the guard against skipped offsets.

Faust acks messages no agent processed. A stream that reads a message fetched while its flow
is suspended, or under an older consumer generation, skips it and acks it (`skipped_value` in
`faust.streams.Stream`), and the consumer then commits past it. A worker restarted at once
after a crash, whose tables recover instantly from local RocksDB, falls into that window: a
SIGKILL test saw ~3,000 offsets of every `cx.events` partition skipped, never applied.

So each agent keeps its own record of where it is, in a changelog-backed table beside its
state: `apply_events` the next `cx.events` offset per partition (`event_positions`), ingest
the next source offset per source partition (`source_partitions`). Both are stored only once
what came before is with the broker. After every recovery (a start, a rebalance) the first
offset read of each partition is checked against it: one before it is a redelivery (the
ledgers skip what they hold), one past it a gap. The agent applies nothing past a gap: it
asks the broker what it holds at the position (`PositionGuard`), and seeks the partition back
there, holding every later message until the missing ones arrive. Offsets the broker does not
hold (transaction markers, compaction, retention) are stepped over, with a warning. Between
recoveries Faust delivers a partition in order, and offsets are not checked.

After a seek back, though, messages fetched before it can still come, after the position
has: applied, they would put a customer's ledger past offsets still to come, which it would
then skip as redeliveries (a SIGKILL test lost 5 events so). So a partition sought back
stays checked until its position passes the broker's end at the time of the seek (no message
fetched before it lies beyond), and an offset past the position meanwhile is a gap again.

A seek back can come to nothing: Faust's fetch loop may still be handing out messages it
fetched before the seek, and then it drops the refetched ones as below what it has read. So
a rewind that has not reached the position after `REWIND_RETRY_S` is sought again, from a timer
(`overdue`) rather than on the next message: once a replay is over no next message comes.

The same timer looks after a partition recovered but not read yet: when the consumer's
position there is already past the stored position (Faust committed offsets never applied
before a crash), the first message read would show the gap, but there may be none to read
(the whole log was committed), so the partition is sought back at once (`unread`).
That is the seek the first message would have caused; the SIGKILL test needs it (a partition
restarted at 6,614 read nothing while the broker held up to 10,358).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from faust.types import TP

log = logging.getLogger(__name__)

Verdict = Literal["apply", "gap", "hold"]
#: seconds a seek back may take before the partition is sought again (a consumer drops what
#: it fetched below the offsets it has already read, so a first seek can come to nothing)
REWIND_RETRY_S = 2.0
#: the broker's first offset at or after a given one (None: nothing there yet)
Probe = Callable[[TP, int], Awaitable[int | None]]
Seek = Callable[[TP, int], Awaitable[None]]
#: the consumer's fetch position in a partition (None: unknown)
Position = Callable[[TP], Awaitable[int | None]]


def topic_partition(ref: str) -> tuple[str, int]:
    """The topic and partition of a "topic:partition" reference."""
    topic, partition = ref.rsplit(":", 1)
    return topic, int(partition)


@dataclass(slots=True)
class _Cursor:
    #: the next offset to process
    expected: int
    #: whether offsets are checked: from a recovery until the position is read, and after a
    #: seek back until it passes `check_through`
    checking: bool = False
    #: the last offset the consumer may have fetched before the latest seek back
    check_through: int = -1
    #: monotonic time of the last seek back, while one is under way
    rewound_at: float | None = None
    #: the offset read past the position that started the rewind (for the log)
    read_past: int = -1
    #: recovered and nothing read since: `InputPositions.unread` lists it
    unread: bool = False


class InputPositions:
    """Per input partition ("topic:partition"): what to do with each offset read."""

    def __init__(self) -> None:
        self._cursors: dict[str, _Cursor] = {}

    def restore(self, ref: str, next_offset: int) -> None:
        """The position stored with the partition's state (after a recovery)."""
        self._cursors[ref] = _Cursor(next_offset, checking=True, unread=True)

    def forget(self, ref: str) -> None:
        """The partition moved to another worker."""
        self._cursors.pop(ref, None)

    def expected(self, ref: str) -> int | None:
        cursor = self._cursors.get(ref)
        return None if cursor is None else cursor.expected

    def skip_to(self, ref: str, offset: int) -> None:
        """The broker holds nothing from the position to `offset`: read on from there (the
        seek there is under way, as for a seek back)."""
        self._cursors[ref].expected = offset

    def verdict(self, ref: str, offset: int, now: float) -> Verdict:
        """What to do with a message read at `offset`:

        - `apply` it: the next offset, or one before it (a redelivery), or any offset while
          the partition is not checked (nothing stored, or the position already read);
        - `gap`: do not apply; find out what the broker holds at `expected(ref)` and seek
          back (`PositionGuard.close_gaps`);
        - `hold`: a seek back is under way (`overdue` says when to seek again); do not apply.
        """
        cursor = self._cursors.get(ref)
        if cursor is None:
            self._cursors[ref] = _Cursor(offset + 1)
            return "apply"
        cursor.unread = False
        if not cursor.checking:
            cursor.expected = max(cursor.expected, offset + 1)
            return "apply"
        if offset <= cursor.expected:
            if offset == cursor.expected:
                if cursor.rewound_at is not None:
                    log.info("%s: back at offset %d after the seek back", ref, offset)
                cursor.expected = offset + 1
                cursor.checking = cursor.expected <= cursor.check_through
                cursor.rewound_at = None
            return "apply"
        if cursor.rewound_at is not None:
            return "hold"
        cursor.rewound_at, cursor.read_past = now, offset
        return "gap"

    def unread(self) -> dict[str, int]:
        """Partitions recovered but not read since, and not being sought back: their stored
        positions (`PositionGuard.seek_unread_behind` compares them with the consumer's)."""
        return {
            ref: cursor.expected
            for ref, cursor in self._cursors.items()
            if cursor.unread and cursor.rewound_at is None
        }

    def is_unread(self, ref: str, expected: int) -> bool:
        """Still as `unread` listed it (no message came, no seek started meanwhile)."""
        cursor = self._cursors.get(ref)
        return cursor is not None and cursor.unread and cursor.expected == expected

    def leave_unread(self, ref: str) -> None:
        """Nothing was skipped there: its first message, if any, is checked as usual."""
        self._cursors[ref].unread = False

    def rewind(self, ref: str, now: float) -> None:
        """The partition is sought back to its position without a message having shown the
        gap: hold what comes past the position until it comes (`overdue` retries)."""
        cursor = self._cursors[ref]
        cursor.checking, cursor.rewound_at, cursor.read_past = True, now, -1
        cursor.unread = False

    def sought(self, ref: str, end: int | None) -> None:
        """The partition is being sought back to its position; `end` is the broker's end as
        the consumer knows it (past every offset it has fetched): check until past it."""
        cursor = self._cursors[ref]
        last = max(cursor.check_through, cursor.read_past, -1 if end is None else end - 1)
        cursor.check_through, cursor.checking = last, True

    def overdue(self, now: float) -> dict[str, int]:
        """Partitions whose seek back has not reached the position within `REWIND_RETRY_S`,
        with the offset read past it: to be sought again (their clocks restart now)."""
        due = {}
        for ref, cursor in self._cursors.items():
            if cursor.rewound_at is not None and now - cursor.rewound_at >= REWIND_RETRY_S:
                cursor.rewound_at = now
                due[ref] = cursor.read_past
        return due


@dataclass(slots=True)
class PositionGuard:
    """Closes the gaps `InputPositions` finds, with the broker (`probe`) and the consumer."""

    positions: InputPositions
    probe: Probe
    seek: Seek
    #: the broker's end of an input partition as the consumer knows it (None: unknown)
    end: Callable[[str], int | None] = lambda ref: None

    async def close_gaps(self, gaps: dict[TP, int], again: bool = False) -> None:
        """Seek each partition with a gap (and the offset read past it) back to its position,
        or past offsets the broker does not hold (`again`: an earlier seek came to nothing)."""
        for tp, offset in gaps.items():
            ref = f"{tp.topic}:{tp.partition}"
            position = self.positions.expected(ref)
            if position is None:  # revoked meanwhile
                continue
            first = await self.probe(tp, position)
            if first is not None and first > position:
                position = self._step_over(ref, position, first)
            elif again:
                log.warning(
                    "%s: offset %d has not arrived since the seek back: seeking again",
                    ref, position,
                )  # fmt: skip
            else:
                log.warning(
                    "%s: read offset %d while %d was not processed yet: seeking back",
                    ref, offset, position,
                )  # fmt: skip
            self.positions.sought(ref, self.end(ref))
            await self.seek(tp, position)

    async def seek_unread_behind(self, position: Position, now: float) -> None:
        """Seek back each recovered partition not read yet (`InputPositions.unread`) whose
        consumer position is past its stored one: the gap its first message would show, had
        it one to read."""
        for ref, expected in self.positions.unread().items():
            tp = TP(*topic_partition(ref))
            at = await position(tp)
            if at is None or not self.positions.is_unread(ref, expected):
                continue  # not known yet, or a message came meanwhile
            if at <= expected:
                self.positions.leave_unread(ref)  # the consumer fetches from there
                continue
            first = await self.probe(tp, expected)
            if not self.positions.is_unread(ref, expected):
                continue
            if first is None:
                self.positions.leave_unread(ref)  # the broker holds nothing from there
                continue
            if first > expected:
                expected = self._step_over(ref, expected, first)
            else:
                log.warning(
                    "%s: recovered at offset %d but the consumer is at %d: seeking back",
                    ref, expected, at,
                )  # fmt: skip
            self.positions.rewind(ref, now)
            self.positions.sought(ref, self.end(ref))
            await self.seek(tp, expected)

    def _step_over(self, ref: str, position: int, first: int) -> int:
        log.warning(
            "%s: the broker holds no offsets %d to %d (transaction markers, compaction or "
            "retention): reading on from %d",
            ref, position, first - 1, first,
        )  # fmt: skip
        self.positions.skip_to(ref, first)
        return first

    async def retry_overdue(self, now: float) -> None:
        """Seek again each partition whose seek back has not arrived (`InputPositions.overdue`);
        called from a timer."""
        overdue = self.positions.overdue(now)
        if overdue:
            gaps = {TP(*topic_partition(ref)): offset for ref, offset in overdue.items()}
            await self.close_gaps(gaps, again=True)
