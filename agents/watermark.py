"""The event-time watermark (contract section 2, "Event time and the watermark").

In: for each source topic-partition, the latest `occurred_at` seen and the wall time it was
seen. Out: the watermark, `min(latest over live partitions) - allowed lateness`. A partition
that never had data, or has been idle for `idle_timeout_s` of wall time with nothing left to
read (`behind`), does not hold it back (a newly assigned partition holds it still until it
shows data or that timeout passes, so its unread backlog is not skipped); when every partition
is idle the watermark is the latest event time seen anywhere less the lateness, so a drained
backlog settles every timer as the offline `compute` does.
The watermark never goes backwards.

With several workers, each owns some of the source partitions. Every worker publishes what it
knows of its own (`local_reports`: the latest event time it has sent on, idle or not) and takes
in the others' (`report`), so each one computes the minimum over all of them. `expect` names
every source partition there is: one that nobody has reported on holds the watermark, and a
partition this worker gives up holds it at its last value until the new owner reports on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Partition:
    latest_ms: int | None
    seen_wall_s: float


@dataclass(slots=True)
class _Report:
    """Another worker's word on a source partition it owns."""

    latest_ms: int | None
    idle: bool


@dataclass(slots=True)
class Watermark:
    """Tracks source partitions and derives the watermark; wall time is always passed in."""

    allowed_lateness_ms: int
    idle_timeout_s: float
    #: whether a source partition still has unread data (its consumer lags behind): such a
    #: partition is never idle, however long nothing was read from it (a starved consumer)
    behind: Callable[[str], bool] = lambda partition: False
    _partitions: dict[str, _Partition] = field(default_factory=dict)
    _remote: dict[str, _Report] = field(default_factory=dict)
    _expected: frozenset[str] = frozenset()
    _value_ms: int | None = None

    def observe(self, partition: str, occurred_at_ms: int, wall_s: float) -> None:
        """Record an event time seen on a source partition."""
        current = self._partitions.get(partition)
        if current is None:
            self._partitions[partition] = _Partition(occurred_at_ms, wall_s)
        else:
            latest = current.latest_ms
            current.latest_ms = occurred_at_ms if latest is None else max(latest, occurred_at_ms)
            current.seen_wall_s = wall_s

    def assign(self, partition: str, wall_s: float) -> None:
        """A source partition was assigned: until it shows data or goes idle it holds the
        watermark where it is, so a partition whose backlog is not read yet cannot be skipped."""
        if partition not in self._partitions:
            self._partitions[partition] = _Partition(None, wall_s)

    def restore(self, partition: str, latest_ms: int, wall_s: float) -> None:
        """Seed a partition's latest event time from recovered state (after a restart)."""
        self.observe(partition, latest_ms, wall_s)

    def forget(self, partition: str) -> None:
        """A partition moved to another worker: it holds the watermark at its latest event
        time until the new owner reports on it."""
        local = self._partitions.pop(partition, None)
        if local is not None:
            self._merge(partition, local.latest_ms, idle=False)

    def partitions(self) -> list[str]:
        return list(self._partitions)

    def report(self, partition: str, latest_ms: int | None, idle: bool) -> None:
        """Another worker's report on a source partition it owns (moot while we own it)."""
        self._merge(partition, latest_ms, idle)

    def expect(self, partitions: frozenset[str]) -> None:
        """Every source partition there is (from topic metadata)."""
        self._expected = partitions

    def local_reports(self, wall_s: float) -> dict[str, tuple[int | None, bool]]:
        """What this worker tells the others: per owned partition, (latest, idle)."""
        return {
            ref: (p.latest_ms, self._idle(ref, p, wall_s)) for ref, p in self._partitions.items()
        }

    def value_ms(self, wall_s: float) -> int | None:
        """The current watermark, or None before any event was seen."""
        entries = self._entries(wall_s)
        if entries is None:
            return self._value_ms  # a source partition nobody has reported on yet
        live = [latest for latest, idle in entries if not idle]
        if None in live:
            return self._value_ms  # an assigned partition has not shown its data yet
        seen = [latest for latest, _ in entries if latest is not None]
        if not seen:
            return self._value_ms
        live_seen = [latest for latest in live if latest is not None]
        basis = min(live_seen) if live_seen else max(seen)
        candidate = basis - self.allowed_lateness_ms
        if self._value_ms is None or candidate > self._value_ms:
            self._value_ms = candidate
        return self._value_ms

    def all_idle(self, wall_s: float) -> bool:
        """No source partition, ours or another worker's, has shown data for the idle
        timeout: the input is drained."""
        entries = self._entries(wall_s)
        return bool(entries) and all(idle for _, idle in entries or ())

    def is_late(self, occurred_at_ms: int) -> bool:
        """Older than the watermark last computed: late (counted, still applied)."""
        return self._value_ms is not None and occurred_at_ms < self._value_ms

    def _entries(self, wall_s: float) -> list[tuple[int | None, bool]] | None:
        """(latest, idle) of every source partition: ours by the wall clock, the others' as
        last reported; None while an expected partition has no word at all."""
        entries = [(p.latest_ms, self._idle(ref, p, wall_s)) for ref, p in self._partitions.items()]
        entries += [
            (r.latest_ms, r.idle) for ref, r in self._remote.items() if ref not in self._partitions
        ]
        known = self._partitions.keys() | self._remote.keys()
        return None if self._expected - known else entries

    def _idle(self, ref: str, partition: _Partition, wall_s: float) -> bool:
        quiet = wall_s - partition.seen_wall_s >= self.idle_timeout_s
        return quiet and not self.behind(ref)

    def _merge(self, partition: str, latest_ms: int | None, idle: bool) -> None:
        current = self._remote.get(partition)
        if current is not None and current.latest_ms is not None:
            before = current.latest_ms
            latest_ms = before if latest_ms is None else max(latest_ms, before)
        self._remote[partition] = _Report(latest_ms, idle)
