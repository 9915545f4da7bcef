"""The event-time watermark (contract section 2, "Event time and the watermark").

In: for each source topic-partition, the latest `occurred_at` seen and the wall time it was
seen. Out: the watermark, `min(latest over live partitions) - allowed lateness`. A partition
that never had data, or has been idle for `idle_timeout_s` of wall time, does not hold it
back (a newly assigned partition holds it still until it shows data or that timeout passes,
so its unread backlog is not skipped); when every partition is idle the watermark is the
latest event time seen anywhere less the lateness, so a drained backlog settles every timer
as the offline `compute` does.
The watermark never goes backwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class _Partition:
    latest_ms: int | None
    seen_wall_s: float


@dataclass(slots=True)
class Watermark:
    """Tracks source partitions and derives the watermark; wall time is always passed in."""

    allowed_lateness_ms: int
    idle_timeout_s: float
    _partitions: dict[str, _Partition] = field(default_factory=dict)
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
        """A partition moved to another worker: it no longer holds this worker's view back."""
        self._partitions.pop(partition, None)

    def partitions(self) -> list[str]:
        return list(self._partitions)

    def value_ms(self, wall_s: float) -> int | None:
        """The current watermark, or None before any event was seen."""
        live = [
            p for p in self._partitions.values() if wall_s - p.seen_wall_s < self.idle_timeout_s
        ]
        if any(p.latest_ms is None for p in live):
            return self._value_ms  # an assigned partition has not shown its data yet
        seen = [p.latest_ms for p in self._partitions.values() if p.latest_ms is not None]
        if not seen:
            return self._value_ms
        live_seen = [p.latest_ms for p in live if p.latest_ms is not None]
        basis = min(live_seen) if live_seen else max(seen)
        candidate = basis - self.allowed_lateness_ms
        if self._value_ms is None or candidate > self._value_ms:
            self._value_ms = candidate
        return self._value_ms

    def all_idle(self, wall_s: float) -> bool:
        """No source partition has shown data for the idle timeout: the input is drained."""
        return bool(self._partitions) and all(
            wall_s - p.seen_wall_s >= self.idle_timeout_s for p in self._partitions.values()
        )

    def is_late(self, occurred_at_ms: int) -> bool:
        """Older than the watermark last computed: late (counted, still applied)."""
        return self._value_ms is not None and occurred_at_ms < self._value_ms
