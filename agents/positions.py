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

The same timer is the watchdog for a partition from which nothing comes at all: when Faust
committed its whole log before a crash but the state holds an older position, the restarted
consumer fetches nothing there, and no message ever shows the gap. So when the agents have
waited `STALL_S` for messages (time spent on batches does not count) and none came from an
input partition whose broker holds offsets past its position (`stalled`), the partition is
sought back there and checked as after a recovery (the SIGKILL test sees it: a partition
restarted at 6,614 read nothing while the broker held up to 10,358). A false alarm costs a
seek and redeliveries the ledgers skip. Offsets the broker holds past the position
but cannot deliver (a transaction marker at the end of a source partition) are found by the
probe and leave the partition alone until its end moves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from faust.types import TP

log = logging.getLogger(__name__)

Verdict = Literal["apply", "gap", "hold"]
#: seconds a seek back may take before the partition is sought again (a consumer drops what
#: it fetched below the offsets it has already read, so a first seek can come to nothing)
REWIND_RETRY_S = 2.0
#: seconds the agents may wait for messages while none comes from a partition whose broker
#: holds offsets past its position, before it is sought back there (`InputPositions.stalled`)
STALL_S = 5.0
#: the broker's first offset at or after a given one (None: nothing there yet)
Probe = Callable[[TP, int], Awaitable[int | None]]
Seek = Callable[[TP, int], Awaitable[None]]


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
    #: `InputPositions.idle_clock` when an offset was last read here (or sought after a stall)
    read_at: float = 0.0
    #: the partition's end when a probe found nothing deliverable from the position (a
    #: transaction marker): not a stall until the end moves
    quiet_end: int = -1


class InputPositions:
    """Per input partition ("topic:partition"): what to do with each offset read."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._cursors: dict[str, _Cursor] = {}
        self._clock = clock
        #: batches the agents are processing now; the seconds they spent waiting for messages
        #: before `_waiting_since` (None while a batch is open)
        self._open_batches = 0
        self._waited_s = 0.0
        self._waiting_since: float | None = clock()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """An agent processes a batch: time spent so does not count towards a stall."""
        if self._waiting_since is not None:
            self._waited_s += self._clock() - self._waiting_since
            self._waiting_since = None
        self._open_batches += 1
        try:
            yield
        finally:
            self._open_batches -= 1
            if not self._open_batches:
                self._waiting_since = self._clock()

    def idle_clock(self) -> float:
        """Seconds the agents have spent waiting for messages, with no batch open."""
        if self._waiting_since is None:
            return self._waited_s
        return self._waited_s + self._clock() - self._waiting_since

    def restore(self, ref: str, next_offset: int) -> None:
        """The position stored with the partition's state (after a recovery)."""
        self._cursors[ref] = _Cursor(next_offset, checking=True, read_at=self.idle_clock())

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
            self._cursors[ref] = _Cursor(offset + 1, read_at=self.idle_clock())
            return "apply"
        cursor.read_at = self.idle_clock()
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

    def rewind(self, ref: str, now: float) -> None:
        """A stalled partition is sought back to its position: check it as after a recovery,
        holding what comes past the position until the position comes (`overdue` retries)."""
        cursor = self._cursors[ref]
        cursor.checking, cursor.rewound_at, cursor.read_past = True, now, -1

    def sought(self, ref: str, end: int | None) -> None:
        """The partition is being sought back to its position; `end` is the broker's end as
        the consumer knows it (past every offset it has fetched): check until past it."""
        cursor = self._cursors[ref]
        last = max(cursor.check_through, cursor.read_past, -1 if end is None else end - 1)
        cursor.check_through, cursor.checking = last, True

    def at_quiet_end(self, ref: str, end: int) -> None:
        """Nothing the broker holds from the position on can be delivered (up to `end`)."""
        self._cursors[ref].quiet_end = end

    def stalled(self, end: Callable[[str], int | None]) -> dict[str, int]:
        """Partitions, with the broker's end of each, from which nothing was read while the
        agents waited `STALL_S` for messages, and whose end is past their position: nothing in
        the consumer is on its way to them (their clocks restart now). Not those whose seek
        back is under way: `overdue` retries those."""
        idle = self.idle_clock()
        due = {}
        for ref, cursor in self._cursors.items():
            if cursor.rewound_at is not None or idle - cursor.read_at < STALL_S:
                continue
            last = end(ref)
            if last is not None and last > cursor.expected and last != cursor.quiet_end:
                cursor.read_at = idle
                due[ref] = last
        return due

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

    async def unstick(self, stalled: dict[str, int], now: float) -> None:
        """Seek each stalled partition (`InputPositions.stalled`, with the broker's end) back
        to its position, unless the broker holds nothing there it can deliver."""
        for ref, end in stalled.items():
            position = self.positions.expected(ref)
            if position is None:  # revoked meanwhile
                continue
            tp = TP(*topic_partition(ref))
            first = await self.probe(tp, position)
            if first is None:
                log.debug("%s: nothing to deliver from %d to the end at %d", ref, position, end)
                self.positions.at_quiet_end(ref, end)
                continue
            if first > position:
                position = self._step_over(ref, position, first)
            else:
                log.warning(
                    "%s: nothing read from offset %d for %.0f s while the broker holds it (up "
                    "to %d): seeking back there",
                    ref, position, STALL_S, end - 1,
                )  # fmt: skip
            self.positions.rewind(ref, now)
            self.positions.sought(ref, self.end(ref))
            await self.seek(tp, position)

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
