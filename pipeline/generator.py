"""Deterministic, realistic omnichannel CX traffic as contract events, for demos and load tests.

In: a :class:`GeneratorConfig` (customers, event-time rate or per-customer mode, duration, seed,
start, scripted incidents, shares of bad and duplicate messages, the per-customer model).
Out: an iterator of :class:`GeneratedMessage` (source channel, message bytes, key, event time)
in event-time order; :func:`to_jsonl_line` turns one into a JSON Lines line. The same config
always gives the same bytes.

There are two modes; both emit bad messages (a ``bad_ratio`` share of the messages, see
:mod:`pipeline.generator_faults`) and verbatim repeats of recently emitted messages (a
``duplicate_ratio`` share; a repeat carries its original, earlier event time), and both cut off
journeys that have not finished when ``duration_s`` ends.

**Rate mode** (``rate`` a number of messages per second of event time; the default, for demos
and load tests). Each message takes a slot of a Poisson process running at ``rate``. A slot
that is not a bad message or a repeat goes to the earliest scheduled step of a customer journey
(:mod:`pipeline.generator_service`, :mod:`pipeline.generator_commerce`). When no step is due by
the slot's time, a new journey starts there for an activity-weighted customer, so the output
rate stays at ``rate`` however long the journeys run. About 2% of the customers churn a day,
whatever their experience.

**Per-customer mode** (``rate=None``; for long horizons and as ground truth for the churn model).
No global rate: each customer's own purchase rhythm and contacts drive their journeys, and their
experience drives their churn (:mod:`pipeline.generator_customers`). Orders follow BG/NBD
(``purchase_r``, ``purchase_alpha``: the Gamma of purchase rates per week; ``dropout_a``,
``dropout_b``: the Beta of the probability of dropping out after each repeat purchase);
spontaneous contacts come at ``contacts_per_week`` on average; the hazard of an explicit churn
(``customer.churned``, after which the customer has no events at all) is
``churn_base_per_week`` plus ``churn_per_bad_experience_per_week`` per bad experience (slow
first response, detractor, low CSAT, hard CES, reopen, return, late delivery), each halving
every ``churn_half_life_days``. A ``dropout_close_share`` of the dropouts later close their
account (``customer.churned``, uniformly ``dropout_close_after_days`` after their last order);
the others stay silent for good. With the defaults a bad experience makes a customer churn with
a probability of about 17% over the following months, and about a quarter of the customers
churn in 120 days: some 19% by the churn hazard, most of them after bad experiences, and some
6% as dropouts closing their account. Activity is sparse, so the cost follows the events, not the
time covered: 5,000 customers over 120 days (``duration_s=120 * 86400``) are about 120,000
events. Without ``duration_s`` the stream ends only when every customer has churned or dropped
out (and every closing dropout has closed).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from pipeline.generator_commerce import backfill_journey, backfill_weights, order_journey
from pipeline.generator_customers import LifeParams, Population
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
    """What to generate; invalid values raise ConfigurationError at construction.

    ``rate``: messages per second of event time (rate mode), or ``None`` for per-customer mode,
    which alone reads the fields after ``duplicate_ratio`` (see the module docstring).
    """

    customers: int = 1000
    rate: float | None = 50.0
    duration_s: float | None = None
    seed: int = 1
    start: datetime = DEFAULT_START
    incidents: tuple[Incident, ...] = ()
    bad_ratio: float = 0.002
    duplicate_ratio: float = 0.005
    # Per-customer mode: purchase rates per week ~ Gamma(shape r, rate alpha), mean r / alpha
    # (one order every four weeks); dropout after a repeat purchase ~ Beta(a, b), mean 0.1.
    purchase_r: float = 1.0
    purchase_alpha: float = 4.0
    dropout_a: float = 1.0
    dropout_b: float = 9.0
    contacts_per_week: float = 0.2  # spontaneous contacts per customer, on average
    churn_base_per_week: float = 0.001  # hazard of churning whatever the experience
    churn_per_bad_experience_per_week: float = 0.03  # added per recent bad experience ...
    churn_half_life_days: float = 30.0  # ... halving every this many days
    # Share of the silent dropouts who later close their account (customer.churned), and the
    # range (days after their last order) the close time is drawn uniformly from.
    dropout_close_share: float = 0.6
    dropout_close_after_days: tuple[float, float] = (30.0, 90.0)

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ConfigurationError(f"customers must be at least 1, not {self.customers}")
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise ConfigurationError(
                f"rate must be a positive number of events/s (or None for per-customer mode), "
                f"not {self.rate}"
            )
        if self.duration_s is not None and not self.duration_s >= 0:
            raise ConfigurationError(f"duration must be 0s or more, not {self.duration_s}")
        if self.start.tzinfo is None:
            raise ConfigurationError("start needs a timezone, for example 2026-11-22T08:00:00Z")
        for name in ("bad_ratio", "duplicate_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigurationError(f"{name} must be between 0 and 1")
        if self.bad_ratio + self.duplicate_ratio > 1.0:
            raise ConfigurationError("bad_ratio and duplicate_ratio together must not exceed 1")
        for name in (
            "purchase_r",
            "purchase_alpha",
            "dropout_a",
            "dropout_b",
            "churn_half_life_days",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigurationError(f"{name} must be a positive number, not {value}")
        rates = ("contacts_per_week", "churn_base_per_week", "churn_per_bad_experience_per_week")
        for name in rates:
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigurationError(f"{name} must be 0 or a positive number, not {value}")
        if not 0.0 <= self.dropout_close_share <= 1.0:
            raise ConfigurationError(
                f"dropout_close_share must be between 0 and 1, not {self.dropout_close_share}"
            )
        close = self.dropout_close_after_days
        if not (
            len(close) == 2
            and all(math.isfinite(days) for days in close)
            and 0.0 <= close[0] <= close[1]
        ):
            raise ConfigurationError(
                f"dropout_close_after_days must be (low, high) days with 0 <= low <= high, "
                f"not {close}"
            )

    @property
    def life_params(self) -> LifeParams:
        """The per-customer model's parameters."""
        return LifeParams(
            purchase_r=self.purchase_r,
            purchase_alpha=self.purchase_alpha,
            dropout_a=self.dropout_a,
            dropout_b=self.dropout_b,
            contacts_per_week=self.contacts_per_week,
            churn_base_per_week=self.churn_base_per_week,
            churn_per_bad_experience_per_week=self.churn_per_bad_experience_per_week,
            churn_half_life_days=self.churn_half_life_days,
            dropout_close_share=self.dropout_close_share,
            dropout_close_after_days=self.dropout_close_after_days,
        )


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
    """Good, bad and repeated messages; ``rate`` (if any) spaces the slots they take."""
    end = math.inf if config.duration_s is None else world.start_s + config.duration_s
    rate = config.rate
    faults = FaultMaker(world)
    recent: deque[GeneratedMessage] = deque(maxlen=_RECENT)
    slot = last_at = world.start_s
    bad_credit = duplicate_credit = 0.0
    if rate is None:
        Population(world, config.life_params).start()
    else:
        world.fork(churn_clock(world, _CHURN_PER_DAY))
    while True:
        if rate is not None:
            slot += world.rng.expovariate(rate)
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
        if rate is None:  # per-customer mode: the customers' own schedules are the traffic
            if due is None or due > end:
                return
        elif due is None or due > slot:
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
