"""Pure ingest bookkeeping for one source topic-partition: offsets, rejects, late events.

In: each message's offset and its validation result. Out: contributions to
`cx_events_rejected_total{reason}` and `cx_events_late_total{channel}`, counted once per
offset: a message at an offset below `next_offset` was already counted before a restart (its
outputs are sent again, downstream dedup by source reference makes that harmless), and the
latest event time seen, from which the watermark is recovered after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.ledger import series_key


@dataclass(slots=True)
class SourcePartitionState:
    next_offset: int = 0
    latest_ms: int | None = None
    totals: dict[str, int] = field(default_factory=dict)

    def first_time(self, offset: int) -> bool:
        return offset >= self.next_offset

    def record(self, offset: int, occurred_at_ms: int | None, count: str | None) -> None:
        """Account for one message; `count` is the series it adds one to, if any."""
        if offset < self.next_offset:
            return
        self.next_offset = offset + 1
        if occurred_at_ms is not None:
            self.latest_ms = (
                occurred_at_ms if self.latest_ms is None else max(self.latest_ms, occurred_at_ms)
            )
        if count is not None:
            self.totals[count] = self.totals.get(count, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {"next": self.next_offset, "latest": self.latest_ms, "totals": self.totals}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourcePartitionState:
        return cls(data["next"], data["latest"], dict(data["totals"]))


def rejected_key(reason: str) -> str:
    return series_key("cx_events_rejected_total", reason)


def late_key(channel: str) -> str:
    return series_key("cx_events_late_total", channel)
