"""The traffic generator's simulated world: customers, ids, incidents and the event-time schedule.

A journey is a Python generator yielding ``(unix seconds, draft event)`` steps in non-decreasing
time. The world keeps one heap entry per live journey, holding its next step, so popping the
heap gives every journey's events merged in event-time order; a journey is only advanced (and
its next step decided) when its previous step is emitted, and one can be scheduled to start
later, costing only a heap entry while it waits. Everything random comes from one seeded
``random.Random``, so a seed and a start time give the same world every run.

Journeys mark the steps that are bad experiences for the customer (a slow first response, a
detractor answer, a return, ...: :data:`BAD_EXPERIENCES`). In per-customer mode a
:class:`Lifecycle` is set: it hears of each one as it is emitted, and once a customer has
churned, whatever was still scheduled for them is dropped unseen.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, ParamSpec, Protocol, TypeVar

from pipeline.generator_incidents import Incident

Event = dict[str, object]
T = TypeVar("T")
P = ParamSpec("P")

CHANNELS = ("chat", "email", "phone", "social", "web")
CHANNEL_WEIGHTS = (35.0, 25.0, 15.0, 10.0, 15.0)
CURRENCIES = ("EUR", "USD", "GBP")
CURRENCY_WEIGHTS = (55.0, 30.0, 15.0)
# After an outage the backlog drains: replies spread over up to this long past its end.
_MAX_DRAIN_S = 900.0


@dataclass(slots=True)
class Customer:
    """One simulated customer; ``churned`` flips once their ``customer.churned`` is emitted."""

    customer_id: str
    main_channel: str
    currency: str
    churn_scheduled: bool = False
    churned: bool = False


class Draft(NamedTuple):
    """A scheduled event, written only when emitted: pending journeys stay small.

    ``experience`` names the bad experience the event stands for (one of
    :data:`BAD_EXPERIENCES`), ``None`` for most events; it is never written into the event.
    """

    type: str
    customer: Customer
    channel: str
    fields: dict[str, object]
    experience: str | None = None


Step = tuple[float, Draft]
Journey = Iterator[Step]

# What a customer can go through that makes them likelier to leave, named like the churn
# model's reasons (contract section 2).
BAD_EXPERIENCES = (
    "slow_response",  # the first agent reply came after the channel's FRT target
    "detractor",  # NPS 0-6
    "low_csat",  # CSAT 1-2
    "high_effort",  # CES 1-3
    "reopened",
    "return",
    "late_delivery",
)


class Lifecycle(Protocol):
    """The per-customer population model (see :mod:`pipeline.generator_customers`)."""

    def experienced(self, customer: Customer, at: float, kind: str) -> None:
        """``customer`` went through the bad experience ``kind`` at ``at`` (just emitted)."""


def format_timestamp(at: float) -> str:
    """RFC 3339 UTC with milliseconds and a ``Z``: ``2026-11-22T10:15:00.123Z``."""
    seconds, millis = divmod(round(at * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class World:
    """Customers, id counters, incidents and the heap of journeys' next steps."""

    def __init__(
        self, *, seed: int, customers: int, start_s: float, incidents: Sequence[Incident]
    ) -> None:
        self.rng = random.Random(seed)
        self.start_s = start_s
        self.now = start_s
        self._incidents = tuple(incidents)
        # The start is part of every id so that two runs with one seed but different starts
        # (a demo restarted against the same topics) are not taken for duplicates.
        self._run = f"{seed}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(start_s))}"
        self._ids: dict[str, Iterator[int]] = {}
        self._seq = itertools.count()
        self._heap: list[tuple[float, int, tuple[Draft, Journey] | Callable[[], Journey]]] = []
        # Set in per-customer mode: told of every bad experience as it is emitted, and a
        # churned customer's pending journeys end there (no event of theirs after the churn).
        self.lifecycle: Lifecycle | None = None
        width = max(6, len(str(customers)))
        self.customers = [
            Customer(
                customer_id=f"c{number:0{width}d}",
                main_channel=self.pick(CHANNELS, CHANNEL_WEIGHTS),
                currency=self.pick(CURRENCIES, CURRENCY_WEIGHTS),
            )
            for number in range(1, customers + 1)
        ]
        # Some customers are far more active than others.
        activity = (self.rng.lognormvariate(0.0, 0.8) for _ in self.customers)
        self._cum_activity = list(itertools.accumulate(activity))

    # -- randomness ------------------------------------------------------------------------

    def chance(self, probability: float) -> bool:
        return self.rng.random() < probability

    def uniform(self, low: float, high: float) -> float:
        return self.rng.uniform(low, high)

    def pick(self, items: Sequence[T], weights: Sequence[float]) -> T:
        return self.rng.choices(items, weights=weights)[0]

    def pick_customer(self) -> Customer:
        """An activity-weighted customer, avoiding (but not excluding) churned ones."""
        customer = self.rng.choices(self.customers, cum_weights=self._cum_activity)[0]
        for _ in range(4):
            if not customer.churned:
                break
            customer = self.rng.choices(self.customers, cum_weights=self._cum_activity)[0]
        return customer

    # -- events ----------------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        counter = self._ids.setdefault(prefix, itertools.count(1))
        return f"{prefix}-{self._run}-{next(counter)}"

    def emit(
        self,
        at: float,
        type_: str,
        customer: Customer,
        channel: str,
        *,
        experience: str | None = None,
        **fields: object,
    ) -> Step:
        """A journey step: the event is only written (ids, timestamp) when it is emitted.

        ``experience``: the bad experience this event is for the customer, if any.
        """
        return at, Draft(type_, customer, channel, fields, experience)

    def event(
        self, at: float, type_: str, customer: Customer, channel: str, **fields: object
    ) -> Event:
        """A contract event at ``at``, written now; fields that are ``None`` are left out."""
        event: Event = {
            "event_id": self.new_id("ev"),
            "type": type_,
            "occurred_at": format_timestamp(at),
            "customer_id": customer.customer_id,
            "channel": channel,
            "schema_version": 1,
        }
        event.update((name, value) for name, value in fields.items() if value is not None)
        return event

    # -- incidents -------------------------------------------------------------------------

    def incident_active(self, kind: str, channel: str | None, at: float) -> bool:
        offset = at - self.start_s
        return any(incident.active(kind, channel, offset) for incident in self._incidents)

    def agent_time(self, channel: str, at: float) -> float:
        """When an agent on ``channel`` can act at or after ``at``: past any outage's end."""
        while True:
            offset = at - self.start_s
            hit = next((i for i in self._incidents if i.active("outage", channel, offset)), None)
            if hit is None:
                return at
            drain = self.uniform(0.05, 1.0) * min(hit.duration_s, _MAX_DRAIN_S)
            at = self.start_s + hit.end_s + drain

    # -- schedule --------------------------------------------------------------------------

    def fork(self, journey: Journey) -> None:
        """Start a journey now: schedule its first step (which must not lie before ``now``)."""
        step = next(journey, None)
        if step is None:
            return
        at, draft = step
        if at < self.now:
            raise RuntimeError(f"journey went back in time: {draft.type} at {at} < {self.now}")
        heapq.heappush(self._heap, (at, next(self._seq), (draft, journey)))

    def later(
        self, at: float, start: Callable[P, Journey], *args: P.args, **kwargs: P.kwargs
    ) -> None:
        """Start ``start(*args, **kwargs)`` at ``at``, where its first step must lie.

        Until then it costs a heap entry, not a suspended generator: orders wait days for
        their delivery, and a run at a high rate has hundreds of thousands of them in flight.
        """
        heapq.heappush(self._heap, (at, next(self._seq), functools.partial(start, *args, **kwargs)))

    def next_at(self) -> float | None:
        """Event time of the earliest scheduled step, ``None`` when nothing is scheduled."""
        while self._heap:
            at, _, item = self._heap[0]
            if isinstance(item, tuple):
                if self.lifecycle is None or not item[0].customer.churned:
                    return at
                heapq.heappop(self._heap)  # the customer has left: the journey ends unseen
                continue
            heapq.heappop(self._heap)
            self.fork(item())  # a deferred journey is due: start it
        return None

    def pop(self) -> tuple[float, Event]:
        """The earliest scheduled event; its journey's next step is scheduled in its place."""
        if self.next_at() is None:
            raise IndexError("nothing is scheduled")
        at, _, item = heapq.heappop(self._heap)
        assert isinstance(item, tuple)  # next_at() started every deferred journey on top
        draft, journey = item
        self.now = at
        event = self.event(at, draft.type, draft.customer, draft.channel, **draft.fields)
        if draft.experience is not None and self.lifecycle is not None:
            self.lifecycle.experienced(draft.customer, at, draft.experience)
        self.fork(journey)
        return at, event
