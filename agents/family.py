"""The shape every metric family shares, and the one dedup-then-apply step they all use.

A family (service levels, feedback, commerce) owns one per-customer table whose value is the
family's state plus its `Ledger`. `process_event` is the only place where dedup verdicts turn
into counts, so `cx_events_total` and `cx_events_duplicate_total` mean the same everywhere.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

import orjson

from agents.config import KpiConfig
from agents.ledger import Deltas, Ledger, series_key
from schemas.events import Event

S = TypeVar("S")


class Family(Protocol[S]):
    """Pure KPI logic of one metric family over one customer's state."""

    name: str
    types: frozenset[str]
    config: KpiConfig
    #: whether this family counts `cx_events_total` and duplicates: exactly one family
    #: per event type does, the ones reading every type (churn risk) do not
    counts_events: bool

    def new_state(self) -> S: ...

    def ledger(self, state: S) -> Ledger: ...

    def apply(self, state: S, event: Event) -> Deltas: ...

    def to_json(self, state: S) -> object: ...

    def from_json(self, data: object) -> S: ...


def load_state(family: Family[S], raw: bytes | None) -> S:
    return family.new_state() if raw is None else family.from_json(orjson.loads(raw))


def dump_state(family: Family[S], state: S) -> bytes:
    return orjson.dumps(family.to_json(state))


def process_event(
    family: Family[S], state: S, event: Event, source_ref: str, offset: int
) -> Deltas | None:
    """Dedup, then apply. Returns the series changes, or None when the message was already
    applied (a redelivery after a restart): then there is nothing to write or count.
    `offset` is the message's offset in the customer's input partition."""
    ledger = family.ledger(state)
    verdict = ledger.check(event.event_id, source_ref, event.occurred_at_ms, offset)
    if verdict == "redelivery":
        return None
    deltas = Deltas()
    if verdict == "duplicate":
        if family.counts_events:
            deltas.inc("cx_events_duplicate_total")
    else:
        deltas = family.apply(state, event)
        if family.counts_events:
            deltas.inc(series_key("cx_events_total", event.channel, event.type))
    ledger.add(deltas)
    return deltas
