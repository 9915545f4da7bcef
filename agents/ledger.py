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
        return {"seen": self.seen, "totals": self.totals, "offset": self.last_offset}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Ledger:
        return cls(
            seen=dict(data.get("seen", {})),
            totals=dict(data.get("totals", {})),
            last_offset=data.get("offset", -1),
        )


class Deltas(dict[str, int]):
    """Changes to series contributions produced by applying one event."""

    def inc(self, key: str, amount: int = 1) -> None:
        if amount:
            self[key] = self.get(key, 0) + amount

    def merge(self, other: Iterable[tuple[str, int]]) -> None:
        for key, amount in other:
            self.inc(key, amount)
