"""Deterministic, realistic omnichannel CX traffic as contract events, for demos and load tests.

In: a :class:`GeneratorConfig` (customers, event-time rate, duration, seed, start, scripted
incidents, shares of bad and duplicate messages).
Out: an iterator of :class:`GeneratedMessage` (source channel, message bytes, key, event time)
in event-time order; :func:`to_jsonl_line` turns one into a JSON Lines line. The same config
always gives the same bytes.

Each message takes a slot of a Poisson process running at ``rate`` messages per second of event
time. A slot goes to a bad message (a ``bad_ratio`` share, see :mod:`pipeline.generator_faults`),
to a verbatim repeat of a recently emitted message (a ``duplicate_ratio`` share; it carries its
original, earlier event time), or to the earliest scheduled step of a customer journey
(:mod:`pipeline.generator_service`, :mod:`pipeline.generator_commerce`). When no step is due by
the slot's time, a new journey starts there, so the output rate stays at ``rate`` however long
the journeys run. Journeys that have not finished when ``duration_s`` ends are cut off.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from pipeline.generator_commerce import backfill_journey, backfill_weights, order_journey
from pipeline.generator_faults import FaultMaker
from pipeline.generator_incidents import Incident, parse_incident
from pipeline.generator_service import churn_clock, conversation_journey, survey_journey
from pipeline.generator_world import Event, Journey, World
from schemas.errors import ConfigurationError

__all__ = [
    "GeneratedMessage",
    "GeneratorConfig",
    "Incident",
    "TrafficGenerator",
    "parse_incident",
    "to_jsonl_line",
]

DEFAULT_START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
# Relative weights of the journeys that start in a free slot; backfilled order steps are
# weighted per new order (see generator_commerce.backfill_weights).
_CONVERSATION_W, _ORDER_W, _SURVEY_W = 0.50, 0.30, 0.04
_JOURNEYS = ("conversation", "order", "delivery", "return", "refund", "survey")
_CHURN_PER_DAY = 0.02  # share of the customers churning each day, beside bad experiences
_RECENT = 64  # duplicates repeat one of the last this many good messages


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """What to generate; invalid values raise ConfigurationError at construction."""

    customers: int = 1000
    rate: float = 50.0
    duration_s: float | None = None
    seed: int = 1
    start: datetime = DEFAULT_START
    incidents: tuple[Incident, ...] = ()
    bad_ratio: float = 0.002
    duplicate_ratio: float = 0.005

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ConfigurationError(f"customers must be at least 1, not {self.customers}")
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ConfigurationError(f"rate must be a positive number of events/s, not {self.rate}")
        if self.duration_s is not None and not self.duration_s >= 0:
            raise ConfigurationError(f"duration must be 0s or more, not {self.duration_s}")
        if self.start.tzinfo is None:
            raise ConfigurationError("start needs a timezone, for example 2026-11-22T08:00:00Z")
        for name in ("bad_ratio", "duplicate_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigurationError(f"{name} must be between 0 and 1")
        if self.bad_ratio + self.duplicate_ratio > 1.0:
            raise ConfigurationError("bad_ratio and duplicate_ratio together must not exceed 1")


@dataclass(frozen=True, slots=True)
class GeneratedMessage:
    """One message for a source topic: ``topic_channel`` names the topic (``survey`` included)."""

    topic_channel: str
    value: bytes
    key: bytes | None
    occurred_at: float  # unix seconds of event time, for pacing


class TrafficGenerator:
    """Iterating gives the configured traffic; every iteration starts over from the seed."""

    def __init__(self, config: GeneratorConfig) -> None:
        self._config = config

    def __iter__(self) -> Iterator[GeneratedMessage]:
        config = self._config
        world = World(
            seed=config.seed,
            customers=config.customers,
            start_s=config.start.timestamp(),
            incidents=config.incidents,
        )
        return _messages(config, world)


def to_jsonl_line(msg: GeneratedMessage) -> bytes:
    """The message as one JSON Lines line (any raw newline escaped, though none is generated)."""
    return msg.value.replace(b"\n", b"\\n") + b"\n"


def _messages(config: GeneratorConfig, world: World) -> Iterator[GeneratedMessage]:
    end = math.inf if config.duration_s is None else world.start_s + config.duration_s
    faults = FaultMaker(world)
    recent: deque[GeneratedMessage] = deque(maxlen=_RECENT)
    slot = last_at = world.start_s
    bad_credit = duplicate_credit = 0.0
    world.fork(churn_clock(world, _CHURN_PER_DAY))
    while True:
        slot += world.rng.expovariate(config.rate)
        if slot > end:
            return
        # Credits grow by the ratio on average, so the shares match without a fixed period.
        bad_credit += 2.0 * config.bad_ratio * world.rng.random()
        duplicate_credit += 2.0 * config.duplicate_ratio * world.rng.random()
        if bad_credit >= 1.0:
            bad_credit -= 1.0
            channel, value, key = faults.make(last_at)
            yield GeneratedMessage(channel, value, key, _millis(last_at))
            continue
        if duplicate_credit >= 1.0 and recent:
            duplicate_credit -= 1.0
            yield recent[world.rng.randrange(len(recent))]
            continue
        due = world.next_at()
        if due is None or due > slot:
            world.fork(_new_journey(world, slot))
        last_at, event = world.pop()
        message = _encode(last_at, event)
        recent.append(message)
        yield message


def _new_journey(world: World, at: float) -> Journey:
    delivery, returns, refunds = backfill_weights(at - world.start_s)
    weights = (
        _CONVERSATION_W,
        _ORDER_W,
        _ORDER_W * delivery,
        _ORDER_W * returns,
        _ORDER_W * refunds,
        _SURVEY_W,
    )
    kind = world.pick(_JOURNEYS, weights)
    customer = world.pick_customer()
    if kind == "conversation":
        return conversation_journey(world, customer, at)
    if kind == "order":
        return order_journey(world, customer, at)
    if kind == "survey":  # a relationship survey, not about one conversation
        channel = world.pick((customer.main_channel, "shop"), (1.0, 1.0))
        return survey_journey(world, customer, at, channel, world.uniform(0.4, 0.95))
    return backfill_journey(world, customer, at, kind)


def _encode(at: float, event: Event) -> GeneratedMessage:
    channel = "survey" if event["type"] == "survey.answered" else str(event["channel"])
    key = str(event["customer_id"]).encode()
    return GeneratedMessage(channel, orjson.dumps(event), key, _millis(at))


def _millis(at: float) -> float:
    """Event time as written in ``occurred_at`` (whole milliseconds)."""
    return round(at * 1000) / 1000
