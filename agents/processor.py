"""Apply events to per-customer state and keep each partition's derived view (no Faust here).

In: events with their partition and source reference, and a key-value store of per-customer
state (a Faust table in the worker, a dict in `cxpulse compute`). Out: updated state values
and, per partition, a `PartitionView`: the sum of the customers' ledgers (what Prometheus
sees), plus for service levels the unanswered conversations and the timers the watermark
settles. Views are derived state: rebuilt from the table after every recovery, never stored.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic

import orjson

from agents.churn_logic import ChurnRisk, CustomerProfile
from agents.family import Family, S, process_event
from agents.ledger import Deltas, add_into
from agents.service_logic import Conversation, ServiceLevels, ServiceState
from agents.windows import WindowView
from schemas.events import Event

Get = Callable[[str], bytes | None]
Put = Callable[[str, bytes], None]


def _store(put: Put, keep: Put | None, deltas: Deltas) -> Put:
    """Where a timer stores what it changed: with `put`, or with `keep` (when given) if it
    moved no series, for state a restart derives again from the stored one."""
    return put if keep is None or deltas or deltas.samples else keep


@dataclass(slots=True)
class PartitionView:
    """Derived, in-memory view of one partition of one family."""

    windows: WindowView
    totals: dict[str, int] = field(default_factory=dict)
    #: channel -> (customer_id, conversation_id) -> opened_ms, for open unanswered conversations
    unanswered: dict[str, dict[tuple[str, str], int]] = field(default_factory=dict)
    scheduled: dict[tuple[str, str], int] = field(default_factory=dict)
    timers: list[tuple[int, str, str]] = field(default_factory=list)

    def add(self, deltas: Mapping[str, int]) -> None:
        add_into(self.totals, deltas)

    def schedule(self, ref: tuple[str, str], deadline_ms: int | None) -> None:
        """(Re)schedule the one timer of `ref` (customer, item); None cancels it."""
        if deadline_ms is None:
            self.scheduled.pop(ref, None)
        elif self.scheduled.get(ref) != deadline_ms:
            self.scheduled[ref] = deadline_ms
            heapq.heappush(self.timers, (deadline_ms, *ref))

    def pop_due(self, watermark_ms: int) -> Iterator[tuple[int, tuple[str, str]]]:
        """Timers the watermark has passed (strictly), earliest first; superseded ones skipped."""
        while self.timers and self.timers[0][0] < watermark_ms:
            deadline, customer_id, item = heapq.heappop(self.timers)
            ref = (customer_id, item)
            if self.scheduled.get(ref) == deadline:
                del self.scheduled[ref]
                yield deadline, ref

    def oldest_unanswered_ms(self) -> dict[str, int]:
        return {channel: min(waits.values()) for channel, waits in self.unanswered.items() if waits}


class FamilyProcessor(Generic[S]):
    """Dedups and applies events of one family; keeps the partition views in step."""

    def __init__(self, family: Family[S]) -> None:
        self.family = family
        self.views: dict[int, PartitionView] = {}

    def view(self, partition: int) -> PartitionView:
        view = self.views.get(partition)
        if view is None:
            view = self.views[partition] = PartitionView(WindowView(self.family.config))
        return view

    def load(self, raw: bytes | None) -> S:
        if raw is None:
            return self.family.new_state()
        return self.family.from_json(orjson.loads(raw)["s"])

    def dump(self, state: S, partition: int) -> bytes:
        """The table value: a right-sized copy, since the tables keep it for good and orjson
        returns its output in its growing buffer (~12 KB held for a 1 KB document with orjson
        3.13: most of a worker's memory, before this copy)."""
        return memoryview(orjson.dumps({"p": partition, "s": self.family.to_json(state)})).tobytes()

    def handle(
        self, get: Get, put: Put, partition: int, offset: int, event: Event, source_ref: str
    ) -> Deltas | None:
        """Apply one event read at `offset` of `partition`; None when it was already applied
        (a redelivery)."""
        state = self.load(get(event.customer_id))
        deltas = self.apply(state, partition, offset, event, source_ref)
        if deltas is not None:
            put(event.customer_id, self.dump(state, partition))
        return deltas

    def apply(
        self, state: S, partition: int, offset: int, event: Event, source_ref: str
    ) -> Deltas | None:
        """`handle` on state already decoded (the caller stores it when this returns deltas):
        what the worker's agents do for a batch, storing each customer once at its end."""
        deltas = process_event(self.family, state, event, source_ref, offset)
        if deltas is None:
            return None
        view = self.view(partition)
        ledger = self.family.ledger(state)
        entries = ledger.remember(deltas, event.occurred_at_ms)
        # by the windows' watermark-driven horizon, not the customer's own clock: a customer
        # ahead of a lagging watermark must keep what the windows will still count
        ledger.forget_recent_before(view.windows.retained_from_ms())
        view.add(deltas)
        view.windows.add_entries(entries)
        self.after_apply(view, event.customer_id, state, event)
        return deltas

    def after_apply(self, view: PartitionView, customer_id: str, state: S, event: Event) -> None:
        """Hook for families whose views index more than totals."""

    def rebuild(self, items: Iterable[tuple[str, bytes]], partitions: Iterable[int]) -> None:
        """Recompute the views of the given partitions from the table's values."""
        wanted = set(partitions)
        self.views = {}
        for partition in wanted:
            self.view(partition)
        for customer_id, raw in items:
            data: dict[str, Any] = orjson.loads(raw)
            partition = data["p"]
            if partition not in wanted:
                continue
            state = self.family.from_json(data["s"])
            view = self.views[partition]
            ledger = self.family.ledger(state)
            view.add(ledger.totals)
            view.windows.add_entries(ledger.recent)
            self.index(view, customer_id, state)

    def index(self, view: PartitionView, customer_id: str, state: S) -> None:
        """Hook: index a recovered customer's state into the view."""

    def totals_by_partition(self) -> dict[int, dict[str, int]]:
        return {partition: view.totals for partition, view in self.views.items()}


class ServiceProcessor(FamilyProcessor[ServiceState]):
    """Service levels also track unanswered conversations and watermark timers."""

    def __init__(self, family: ServiceLevels) -> None:
        super().__init__(family)
        self.service = family

    def after_apply(
        self, view: PartitionView, customer_id: str, state: ServiceState, event: Event
    ) -> None:
        if event.conversation_id is not None:
            conv = state.conversations.get(event.conversation_id)
            self._track(view, customer_id, event.conversation_id, conv)
        if event.type == "conversation.opened":
            # a repeat contact may have settled other conversations' FCR timers
            for key, other in state.conversations.items():
                self._track(view, customer_id, key, other)

    def index(self, view: PartitionView, customer_id: str, state: ServiceState) -> None:
        for key, conv in state.conversations.items():
            self._track(view, customer_id, key, conv)

    def _track(
        self, view: PartitionView, customer_id: str, conversation_id: str, conv: Conversation | None
    ) -> None:
        ref = (customer_id, conversation_id)
        if conv is not None and conv.is_unanswered and conv.opened_ms is not None:
            view.unanswered.setdefault(conv.channel, {})[ref] = conv.opened_ms
        else:
            for waits in view.unanswered.values():
                waits.pop(ref, None)
        view.schedule(ref, None if conv is None else conv.next_deadline_ms(self.service.config))

    def fire_timers(
        self,
        partition: int,
        watermark_ms: int,
        get: Get,
        put: Put,
        limit: int | None = None,
        keep: Put | None = None,
    ) -> int:
        """Settle every breach and FCR horizon the watermark has passed (strictly: an event at the
        deadline itself still counts as in time), at most `limit` of them; returns how many.
        A settlement that moved no series is stored with `keep` when given (the worker passes
        none: a settlement decides what later events of the conversation are checked against,
        so it is always written to the changelog)."""
        view = self.views.get(partition)
        if view is None:
            return 0
        fired = 0
        for deadline, (customer_id, conversation_id) in view.pop_due(watermark_ms):
            state = self.load(get(customer_id))
            deltas = self.service.due(state, conversation_id, watermark_ms)
            state.ledger.add(deltas)
            entries = state.ledger.remember(deltas, deadline)
            _store(put, keep, deltas)(customer_id, self.dump(state, partition))
            view.add(deltas)
            view.windows.add_entries(entries)
            self._track(
                view, customer_id, conversation_id, state.conversations.get(conversation_id)
            )
            fired += 1
            if fired == limit:
                break
        return fired


class ChurnProcessor(FamilyProcessor[CustomerProfile]):
    """Churn risk records each event and scores a customer only once the watermark has passed
    the time to score at (the event's own, then daily), so tiers and signals do not depend on
    the order the source topics are read in. Timer scorings queue `cx.churn` signals
    (customer_id, value) in `outbox` for the agent to send."""

    def __init__(self, family: ChurnRisk) -> None:
        super().__init__(family)
        self.churn = family
        self.outbox: list[tuple[str, dict[str, Any]]] = []

    def after_apply(
        self, view: PartitionView, customer_id: str, state: CustomerProfile, event: Event
    ) -> None:
        self.index(view, customer_id, state)

    def index(self, view: PartitionView, customer_id: str, state: CustomerProfile) -> None:
        view.schedule((customer_id, ""), self.churn.next_rescore_ms(state))

    def fire_timers(
        self,
        partition: int,
        watermark_ms: int,
        get: Get,
        put: Put,
        limit: int | None = None,
        keep: Put | None = None,
    ) -> int:
        """Score every customer whose time to score at the watermark has passed (strictly:
        an event at that very time is still on time), earliest first, at most `limit`;
        returns how many. A scoring that moved no series (most daily ones) is stored with
        `keep` when given (the worker: in memory only, no changelog message), since replaying
        the same daily scorings from the last stored profile gives the same profile again."""
        view = self.views.get(partition)
        if view is None:
            return 0
        fired = 0
        for deadline, (customer_id, _) in view.pop_due(watermark_ms):
            state = self.load(get(customer_id))
            deltas = self.churn.rescore(state, deadline)
            state.ledger.add(deltas)
            entries = state.ledger.remember(deltas, deadline)
            _store(put, keep, deltas)(customer_id, self.dump(state, partition))
            view.add(deltas)
            view.windows.add_entries(entries)
            signal = self.churn.signal(state)
            if signal is not None:
                self.outbox.append((customer_id, {"customer_id": customer_id, **signal}))
            self.index(view, customer_id, state)
            fired += 1
            if fired == limit:
                break
        return fired
