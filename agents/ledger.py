"""What one customer has contributed to the exported totals, and which events it has seen.

In: events applied by a family (service levels, surveys, commerce, lifecycle). Out: additive
contributions to metric series, keyed `metric|label|label`, and the dedup verdict per event.

Why per customer: a customer's ledger and its state are one table value, written in one
changelog message. A crash can lose or repeat a whole message, never half of one, so a
redelivered event finds its own id in `seen` and is skipped, and every exported total is the
sum of the ledgers in the partition (rebuilt from the table on recovery): exact under
at-least-once delivery without transactions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Verdict = Literal["new", "duplicate", "redelivery"]


SAMPLE_PREFIX = "s|"
#: series that rolling windows do not count: gauges, and histograms (windows keep samples)
_NOT_WINDOWED = frozenset(
    {
        "cx_backlog_conversations",
        "cx_unanswered_conversations",
        "cx_customers_by_risk_tier",
        "cx_first_response_seconds",
        "cx_resolution_seconds",
        "cx_refund_seconds",
    }
)


def is_windowed(key: str) -> bool:
    metric = key.split("|", 1)[0]
    return metric not in _NOT_WINDOWED and not metric.endswith(":sum_ms")


def series_key(metric: str, *labels: str) -> str:
    """The ledger key of one series: metric name and label values in declaration order."""
    return "|".join((metric, *labels))


def split_key(key: str) -> tuple[str, tuple[str, ...]]:
    """Inverse of `series_key`."""
    metric, *labels = key.split("|")
    return metric, tuple(labels)


def format_bound(bound: float) -> str:
    """A histogram bound as its `le` label value: `60`, `0.5`, `+Inf`."""
    if bound == float("inf"):
        return "+Inf"
    return str(int(bound)) if bound == int(bound) else repr(bound)


def bucket_label(bounds: tuple[float, ...], value_ms: int) -> str:
    """The `le` of the first histogram bucket whose upper bound (seconds) holds the value.

    Ledgers key histogram counts by the bound itself, not its position, so a change of the
    configured buckets (a new FRT target) never shifts counts recovered from a changelog.
    """
    seconds = value_ms / 1000
    for bound in bounds:
        if seconds <= bound:
            return format_bound(bound)
    return "+Inf"


def add_into(totals: dict[str, int], deltas: Mapping[str, int]) -> None:
    """Add series changes to totals; a series back at zero is dropped, as if never touched."""
    for key, delta in deltas.items():
        value = totals.get(key, 0) + delta
        if value:
            totals[key] = value
        else:
            totals.pop(key, None)


@dataclass(slots=True)
class Ledger:
    """Seen event ids (bounded by an event-time horizon) and additive series contributions."""

    #: event_id -> [occurred_at_ms, source_ref, source_ref of each duplicate ...]
    seen: dict[str, list[Any]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    #: the last offset of the customer's input partition applied to this value
    last_offset: int = -1
    #: [at_ms, key, value] of recent windowed changes and samples (`s|` keys), for the
    #: rolling windows; pruned past the longest window plus grace (event time)
    recent: list[list[Any]] = field(default_factory=list)

    def remember(self, deltas: Deltas, at_ms: int) -> list[list[Any]]:
        """Keep what the rolling windows need of one applied change; returns the entries."""
        entries = [
            [deltas.times.get(key, at_ms), key, value]
            for key, value in deltas.items()
            if is_windowed(key)
        ]
        entries += [
            [at_ms if at is None else at, SAMPLE_PREFIX + key, value_ms]
            for key, value_ms, at in deltas.samples
        ]
        self.recent += entries
        return entries

    def forget_recent_before(self, start_ms: int) -> None:
        if self.recent and self.recent[0][0] < start_ms:
            self.recent = [entry for entry in self.recent if entry[0] >= start_ms]

    def check(self, event_id: str, source_ref: str, occurred_at_ms: int, offset: int) -> Verdict:
        """Classify an event: new, a duplicate of another message, or the same message again.

        A redelivery is what at-least-once delivery and a worker restart bring: an input offset
        this value has already applied, or a message with the same source reference (topic,
        partition and offset of the source message, re-sent by ingest after a restart). It is
        neither applied nor counted. A duplicate is another message carrying an `event_id`
        already seen: counted as a duplicate, not applied.
        """
        if offset <= self.last_offset:
            return "redelivery"
        self.last_offset = offset
        previous = self.seen.get(event_id)
        if previous is None:
            self.seen[event_id] = [occurred_at_ms, source_ref]
            return "new"
        if source_ref in previous[1:]:
            return "redelivery"
        previous.append(source_ref)
        return "duplicate"

    def forget_before(self, horizon_start_ms: int) -> None:
        """Drop seen ids of events older than the dedup horizon (event time)."""
        stale = [key for key, entry in self.seen.items() if entry[0] < horizon_start_ms]
        for key in stale:
            del self.seen[key]

    def add(self, deltas: Mapping[str, int]) -> None:
        add_into(self.totals, deltas)

    def to_json(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "totals": self.totals,
            "offset": self.last_offset,
            "recent": self.recent,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Ledger:
        return cls(
            seen=dict(data.get("seen", {})),
            totals=dict(data.get("totals", {})),
            last_offset=data.get("offset", -1),
            recent=list(data.get("recent", [])),
        )


class Deltas(dict[str, int]):
    """Changes to series contributions produced by applying one event, plus what rolling
    windows need: the raw values of histogram observations (`samples`) and, for changes
    a timer settles, the event time they belong to (`times`; otherwise the event's own)."""

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[tuple[str, int, int | None]] = []
        self.times: dict[str, int] = {}

    def inc(self, key: str, amount: int = 1, at_ms: int | None = None) -> None:
        if amount:
            self[key] = self.get(key, 0) + amount
            if at_ms is not None:
                self.times[key] = at_ms

    def sample(self, key: str, value_ms: int, at_ms: int | None = None) -> None:
        self.samples.append((key, value_ms, at_ms))

    def merge(self, other: Iterable[tuple[str, int]]) -> None:
        for key, amount in other:
            self.inc(key, amount)
