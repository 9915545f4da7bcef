"""pipeline/generator.py in per-customer mode (``rate=None``): purchase rhythm, experience-driven
churn and dropouts closing their account as ground truth, long horizons at low cost.

Most tests read one seeded run of 5,000 customers over 120 days of event time, without bad
messages or repeats, so that every message is a distinct, valid event.
"""

from __future__ import annotations

import functools
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from pipeline.generator import GeneratedMessage, GeneratorConfig, TrafficGenerator
from schemas.errors import ConfigurationError
from schemas.validate import EventValidator, Rejection
from tests.unit.test_generator import CONTRACT_TYPES

START_S = datetime(2026, 11, 22, 8, 0, tzinfo=UTC).timestamp()
DAY = 86400.0
DAYS = 120
CUSTOMERS = 5000
CONFIG = GeneratorConfig(
    customers=CUSTOMERS,
    rate=None,
    seed=7,
    duration_s=DAYS * DAY,
    bad_ratio=0.0,
    duplicate_ratio=0.0,
)
FRT_TARGET_S = {"chat": 60, "phone": 30, "social": 3600, "email": 14400, "web": 14400}


def seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


@pytest.fixture(scope="module")
def stream() -> list[GeneratedMessage]:
    began = time.perf_counter()
    messages = list(TrafficGenerator(CONFIG))
    elapsed = time.perf_counter() - began
    print(f"\n{len(messages)} events for {CUSTOMERS} customers over {DAYS} days in {elapsed:.1f} s")
    return messages


@pytest.fixture(scope="module")
def events(stream: list[GeneratedMessage]) -> list[dict[str, Any]]:
    return [orjson.loads(message.value) for message in stream]


def bad_experiences(events: list[dict[str, Any]]) -> Counter[str]:
    """Bad experiences per customer, read off the events as a churn model would see them."""
    opened: dict[str, tuple[float, str]] = {}
    bad: Counter[str] = Counter()
    for event in events:
        kind = event["type"]
        customer = event["customer_id"]
        if kind == "conversation.opened":
            opened[event["conversation_id"]] = (seconds(event["occurred_at"]), event["channel"])
        elif kind == "message.sent" and event["author"] == "agent":
            first = opened.pop(event["conversation_id"], None)  # only the first agent reply
            if first is not None:
                at, channel = first
                bad[customer] += seconds(event["occurred_at"]) - at > FRT_TARGET_S[channel]
        elif kind == "survey.answered":
            low = {"nps": 6, "csat": 2, "ces": 3}[event["survey"]]
            bad[customer] += event["score"] <= low
        elif kind in ("conversation.reopened", "return.requested"):
            bad[customer] += 1
        elif kind == "order.delivered":
            bad[customer] += event["promised_at"] < event["occurred_at"]
    return bad


def test_same_seed_gives_the_same_bytes(stream: list[GeneratedMessage]) -> None:
    assert list(TrafficGenerator(CONFIG)) == stream
    small = GeneratorConfig(customers=300, rate=None, seed=5, duration_s=30 * DAY)
    first = list(TrafficGenerator(small))
    assert len(first) > 1000
    other = list(TrafficGenerator(GeneratorConfig(**{**_fields(small), "seed": 6})))
    assert [m.value for m in other[:100]] != [m.value for m in first[:100]]


def _fields(config: GeneratorConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


def test_a_long_horizon_is_sparse_and_in_event_time_order(
    stream: list[GeneratedMessage], events: list[dict[str, Any]]
) -> None:
    assert 50_000 < len(stream) < 500_000  # a few dozen events per customer over 120 days
    times = [message.occurred_at for message in stream]
    assert times == sorted(times)
    assert times[0] >= START_S and times[-1] <= START_S + DAYS * DAY
    assert times[-1] > START_S + (DAYS - 1) * DAY  # traffic to the end, not a burst at the start
    for message, event in zip(stream[:2000], events[:2000], strict=True):
        assert message.occurred_at == seconds(event["occurred_at"])
    active = {event["customer_id"] for event in events}
    assert len(active) > 0.8 * CUSTOMERS


def test_every_event_is_valid(stream: list[GeneratedMessage], events: list[dict[str, Any]]) -> None:
    validator = EventValidator(max_future_ms=None)
    for message in stream:
        result = validator.validate(message.value, message.topic_channel)
        assert not isinstance(result, Rejection), (result, message.value)
    ids = [event["event_id"] for event in events]
    assert len(set(ids)) == len(ids)
    assert {event["type"] for event in events} == CONTRACT_TYPES


def test_nothing_follows_a_customers_churn(events: list[dict[str, Any]]) -> None:
    churned_at: dict[str, float] = {}
    for event in events:
        customer = event["customer_id"]
        assert customer not in churned_at, f"{event['type']} after {customer} churned"
        if event["type"] == "customer.churned":
            churned_at[customer] = seconds(event["occurred_at"])
    assert len(churned_at) > 0.05 * CUSTOMERS


def test_churned_is_sent_on_the_customers_main_channel(events: list[dict[str, Any]]) -> None:
    """The main channel is the one most of a customer's own conversations start on."""
    opened: dict[str, Counter[str]] = defaultdict(Counter)
    agree = total = 0
    for event in events:
        if event["type"] == "conversation.opened":
            opened[event["customer_id"]][event["channel"]] += 1
        elif event["type"] == "customer.churned":
            channels = opened[event["customer_id"]]
            if sum(channels.values()) >= 4:
                total += 1
                agree += channels.most_common(1)[0][0] == event["channel"]
    assert total > 50 and agree > 0.7 * total


def test_customers_with_bad_experiences_churn_far_more_often(events: list[dict[str, Any]]) -> None:
    bad = bad_experiences(events)
    churned = {e["customer_id"] for e in events if e["type"] == "customer.churned"}
    customers = [f"c{number:06d}" for number in range(1, CUSTOMERS + 1)]
    none = [c for c in customers if bad[c] == 0]
    many = [c for c in customers if bad[c] >= 3]
    rate_none = sum(c in churned for c in none) / len(none)
    rate_many = sum(c in churned for c in many) / len(many)
    print(
        f"\nchurned {len(churned)} of {CUSTOMERS}; no bad experience: {rate_none:.1%} of "
        f"{len(none)}, 3 or more: {rate_many:.1%} of {len(many)} ({rate_many / rate_none:.1f}x)"
    )
    assert len(none) > 500 and len(many) > 500
    assert rate_many >= 3 * rate_none
    assert rate_none > 0  # churn also happens without a bad experience ...
    assert rate_many < 0.8  # ... and is far from certain with them


def test_purchase_rhythm_makes_some_customers_stop_buying_silently(
    events: list[dict[str, Any]],
) -> None:
    """Frequent buyers who stopped buying for months, without churning: BG/NBD dropouts who
    have not closed their account (yet, or ever)."""
    orders: dict[str, list[float]] = defaultdict(list)
    churned = set()
    for event in events:
        if event["type"] == "order.placed":
            orders[event["customer_id"]].append(seconds(event["occurred_at"]))
        elif event["type"] == "customer.churned":
            churned.add(event["customer_id"])
    end = START_S + DAYS * DAY
    silent = [
        c
        for c, placed in orders.items()
        if c not in churned
        and len(placed) >= 4
        and end - placed[-1] > 45 * DAY
        # a 45-day gap after the last of several orders is unlikely for a still-active buyer
        and end - placed[-1] > 4 * (placed[-1] - placed[0]) / (len(placed) - 1)
    ]
    assert len(silent) > 20
    per_customer = Counter(len(placed) for placed in orders.values())
    assert per_customer[1] > 0 and max(per_customer) >= 10  # rhythms differ widely


def test_order_follow_ups_come_from_the_customers_own_orders(events: list[dict[str, Any]]) -> None:
    """In per-customer mode nothing is backfilled: every delivery follows its order."""
    placed = {e["order_id"]: e["customer_id"] for e in events if e["type"] == "order.placed"}
    deliveries = [e for e in events if e["type"] == "order.delivered"]
    assert deliveries and all(placed.get(e["order_id"]) == e["customer_id"] for e in deliveries)


def test_churn_strength_is_configurable() -> None:
    def churned(per_bad_experience: float, base: float = 0.001) -> int:
        config = GeneratorConfig(
            customers=1000,
            rate=None,
            seed=4,
            duration_s=60 * DAY,
            bad_ratio=0.0,
            churn_per_bad_experience_per_week=per_bad_experience,
            churn_base_per_week=base,
            dropout_close_share=0.0,  # the churn hazard alone
        )
        return sum(b'"customer.churned"' in m.value for m in TrafficGenerator(config))

    default = churned(0.03)
    assert churned(0.1) > 1.5 * default > 0
    assert 0 < churned(0.0) < 0.5 * default  # the base hazard alone
    assert churned(0.0, base=0.0) == 0


@functools.cache
def _closes(share: float, after_days: tuple[float, float] = (30.0, 90.0)) -> list[dict[str, Any]]:
    """Events of a run where only dropouts closing their account churn (no churn hazard)."""
    config = GeneratorConfig(
        customers=1000,
        rate=None,
        seed=11,
        duration_s=180 * DAY,
        bad_ratio=0.0,
        duplicate_ratio=0.0,
        churn_base_per_week=0.0,
        churn_per_bad_experience_per_week=0.0,
        dropout_close_share=share,
        dropout_close_after_days=after_days,
    )
    return [orjson.loads(m.value) for m in TrafficGenerator(config)]


def test_dropouts_close_their_account_after_their_last_order() -> None:
    """A closing dropout's churn comes 30-90 days after their last order, which was a repeat
    purchase (dropouts drop out after one), and nothing of theirs follows it."""
    events = _closes(1.0)
    last_order: dict[str, float] = {}
    orders: Counter[str] = Counter()
    churned: dict[str, float] = {}
    reasons: Counter[str] = Counter()
    for event in events:
        customer = event["customer_id"]
        assert customer not in churned, f"{event['type']} after {customer} closed"
        at = seconds(event["occurred_at"])
        if event["type"] == "order.placed":
            last_order[customer] = at
            orders[customer] += 1
        elif event["type"] == "customer.churned":
            churned[customer] = at
            reasons[event["reason"]] += 1
    assert len(churned) > 100
    gaps = [(churned[c] - last_order[c]) / DAY for c in churned]
    assert all(orders[c] >= 2 for c in churned)
    assert min(gaps) >= 30.0 and max(gaps) <= 90.0
    assert min(gaps) < 40.0 and max(gaps) > 80.0  # spread over the whole range
    assert "service" not in reasons and reasons["no_longer_needed"] > len(churned) / 3


def test_the_share_of_dropouts_that_close_is_configurable() -> None:
    everyone = sum(e["type"] == "customer.churned" for e in _closes(1.0))
    some = sum(e["type"] == "customer.churned" for e in _closes(0.4))
    assert sum(e["type"] == "customer.churned" for e in _closes(0.0)) == 0  # all stay silent
    assert 0.3 * everyone < some < 0.5 * everyone
    soon = _closes(1.0, (1.0, 2.0))
    late = [e for e in soon if e["type"] == "customer.churned"]
    assert len(late) > everyone  # closing sooner: more of the closes fall within the run


def test_bad_messages_and_repeats_also_come_in_per_customer_mode() -> None:
    config = GeneratorConfig(
        customers=500, rate=None, seed=8, duration_s=20 * DAY, bad_ratio=0.02, duplicate_ratio=0.02
    )
    messages = list(TrafficGenerator(config))
    validator = EventValidator(max_future_ms=None)
    rejected = sum(
        isinstance(validator.validate(m.value, m.topic_channel), Rejection) for m in messages
    )
    repeats = len(messages) - len({m.value for m in messages})
    assert abs(rejected - 0.02 * len(messages)) < 0.006 * len(messages)
    assert abs(repeats - 0.02 * len(messages)) < 0.006 * len(messages)


@pytest.mark.parametrize(
    "changes",
    [
        {"rate": -1.0},
        {"purchase_r": 0.0},
        {"purchase_alpha": float("inf")},
        {"dropout_a": -1.0},
        {"dropout_b": 0.0},
        {"churn_half_life_days": 0.0},
        {"contacts_per_week": -0.1},
        {"churn_base_per_week": float("nan")},
        {"churn_per_bad_experience_per_week": -0.01},
        {"dropout_close_share": 1.5},
        {"dropout_close_share": -0.1},
        {"dropout_close_after_days": (90.0, 30.0)},
        {"dropout_close_after_days": (-1.0, 30.0)},
        {"dropout_close_after_days": (30.0, float("inf"))},
    ],
)
def test_bad_per_customer_config_is_a_configuration_error(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        GeneratorConfig(**{"rate": None, **changes})
