"""agents/commerce_logic.py and agents/feedback_logic.py: orders, deliveries, returns, refunds,
survey answers and churned customers (contract sections 2 and 4), worked out by hand.

Refund buckets (s, agents/config.py): 3600 21600 86400 172800 345600 604800 1209600 2592000,
then +Inf; ledger keys name a bucket by its upper bound (`le`), e.g. `cx_refund_seconds|3600`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from agents.commerce_logic import Commerce, CommerceState
from agents.config import KpiConfig
from agents.family import process_event
from agents.feedback_logic import Feedback
from agents.ledger import Ledger
from agents.processor import FamilyProcessor
from schemas.events import Event
from schemas.validate import EventValidator

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# 2026-11-22T00:00:00Z = 1_795_305_600 s (2026-01-01 = 1_767_225_600 s, + 325 days)
DAY0_MS = 1_795_305_600_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

VALIDATOR = EventValidator(max_future_ms=None)  # pure logic: no wall clock
_event_ids = itertools.count(1)


def iso(ms: int) -> str:
    return (
        (EPOCH + timedelta(milliseconds=ms))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def event(
    kind: str,
    when: int,
    *,
    customer: str = "c-1",
    channel: str = "shop",
    source_kind: str | None = None,
    **fields: Any,
) -> Event:
    """A contract event (section 1) as the validator hands it to the agents."""
    raw = {
        "event_id": f"ev-{next(_event_ids)}",
        "type": kind,
        "occurred_at": iso(when),
        "customer_id": customer,
        "channel": channel,
        **fields,
    }
    result = VALIDATOR.validate(orjson.dumps(raw), source_kind or channel)
    assert isinstance(result, Event), result
    return result


def order(when: int, order_id: str, amount: object, currency: str, **kw: Any) -> Event:
    return event("order.placed", when, order_id=order_id, amount=amount, currency=currency, **kw)


def delivered(when: int, order_id: str, promised_at: int | None = None) -> Event:
    extra = {} if promised_at is None else {"promised_at": iso(promised_at)}
    return event("order.delivered", when, order_id=order_id, **extra)


def return_requested(when: int, return_id: str, reason: str) -> Event:
    return event(
        "return.requested",
        when,
        channel="returns",
        order_id="o-1",
        return_id=return_id,
        reason=reason,
    )


def refund(when: int, return_id: str) -> Event:
    return event("refund.issued", when, channel="returns", return_id=return_id, amount="19.99")


def answer(survey: str, score: int, channel: str = "chat", **kw: Any) -> Event:
    return event(
        "survey.answered",
        DAY0_MS,
        channel=channel,
        source_kind="survey",
        survey=survey,
        score=score,
        **kw,
    )


class Store:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, key: str, value: bytes) -> None:
        self.data[key] = value


def totals_after(processor: FamilyProcessor[Any], events: Iterable[Event]) -> dict[str, int]:
    """Feed every event through the processor (partition 0); the partition's KPI totals."""
    store = Store()
    for offset, e in enumerate(events):
        ref = f"cx.raw.{e.channel}:0:{e.event_id}"
        assert processor.handle(store.get, store.put, 0, offset, e, ref) is not None
    return {
        k: v
        for k, v in processor.views[0].totals.items()
        if v and not k.startswith("cx_events_total|")
    }


def commerce() -> FamilyProcessor[CommerceState]:
    return FamilyProcessor(Commerce(KpiConfig()))


def feedback() -> FamilyProcessor[Ledger]:
    return FamilyProcessor(Feedback(KpiConfig()))


# --- orders -------------------------------------------------------------------------------


def test_orders_and_order_value_in_micros_per_channel_and_currency() -> None:
    totals = totals_after(
        commerce(),
        [
            order(DAY0_MS, "o-1", 19.99, "EUR"),
            order(DAY0_MS, "o-2", "5.01", "EUR", customer="c-2"),
            order(DAY0_MS, "o-3", 100, "USD", channel="web"),
            order(DAY0_MS, "o-4", 7.5, "XYZ"),  # well-formed ISO code, not configured
            order(DAY0_MS, "o-5", 10, "BRL", customer="c-3"),  # not in the default list
            order(DAY0_MS, "o-6", 1000, "JPY", customer="c-3"),
        ],
    )
    assert totals == {
        "cx_orders_total|shop": 5,
        "cx_orders_total|web": 1,
        # 19.99 + 5.01 = 25.00 EUR
        "cx_order_value_total:micros|shop|EUR": 25_000_000,
        "cx_order_value_total:micros|web|USD": 100_000_000,
        # 7.50 XYZ + 10 BRL: unknown currencies share "other"
        "cx_order_value_total:micros|shop|other": 17_500_000,
        "cx_order_value_total:micros|shop|JPY": 1_000_000_000,
    }


def test_free_order_counts_without_value() -> None:
    totals = totals_after(commerce(), [order(DAY0_MS, "o-1", 0, "EUR")])
    # a zero contribution is not kept: the series is simply absent
    assert totals == {"cx_orders_total|shop": 1}


def test_configured_currency_list_bounds_the_label() -> None:
    processor = FamilyProcessor(Commerce(KpiConfig(currencies=("CHF",))))
    totals = totals_after(
        processor, [order(DAY0_MS, "o-1", 12, "CHF"), order(DAY0_MS, "o-2", 3, "EUR")]
    )
    assert totals == {
        "cx_orders_total|shop": 2,
        "cx_order_value_total:micros|shop|CHF": 12_000_000,
        "cx_order_value_total:micros|shop|other": 3_000_000,
    }


# --- deliveries ---------------------------------------------------------------------------


def test_late_versus_on_time_delivery() -> None:
    promised = DAY0_MS + 12 * HOUR_MS
    totals = totals_after(
        commerce(),
        [
            delivered(promised - 60_000, "o-1", promised_at=promised),  # a minute early
            delivered(promised, "o-2", promised_at=promised),  # exactly on the promise
            delivered(promised + 1_000, "o-3", promised_at=promised),  # one second after
            delivered(promised + 3 * DAY_MS, "o-4"),  # no promise: on time
        ],
    )
    assert totals == {"cx_deliveries_total|on_time": 3, "cx_deliveries_total|late": 1}


# --- returns and refunds ------------------------------------------------------------------


def test_returns_by_reason() -> None:
    totals = totals_after(
        commerce(),
        [
            return_requested(DAY0_MS, "r-1", "damaged"),
            return_requested(DAY0_MS, "r-2", "damaged"),
            return_requested(DAY0_MS, "r-3", "size_fit"),
            return_requested(DAY0_MS, "r-4", "late_delivery"),
        ],
    )
    assert totals == {
        "cx_returns_total|damaged": 2,
        "cx_returns_total|size_fit": 1,
        "cx_returns_total|late_delivery": 1,
    }


@pytest.mark.parametrize("refund_first", [False, True], ids=["request-first", "refund-first"])
def test_refund_time_observed_once_in_either_arrival_order(refund_first: bool) -> None:
    requested_at, refunded_at = DAY0_MS + 10 * HOUR_MS, DAY0_MS + 2 * DAY_MS + 10 * HOUR_MS
    legs = [return_requested(requested_at, "r-1", "wrong_item"), refund(refunded_at, "r-1")]
    if refund_first:
        legs.reverse()
    # a second refund event for the same return (another event_id) is not a second observation
    totals = totals_after(commerce(), [*legs, refund(refunded_at + HOUR_MS, "r-1")])
    # 2 days = 172_800 s <= 172_800 bound: le="172800"
    assert totals == {
        "cx_returns_total|wrong_item": 1,
        "cx_refund_seconds|172800": 1,
        "cx_refund_seconds:sum_ms": 172_800_000,
    }


def test_refund_time_buckets_and_sum_over_returns() -> None:
    totals = totals_after(
        commerce(),
        [
            return_requested(DAY0_MS, "r-1", "other"),
            refund(DAY0_MS + HOUR_MS, "r-1"),  # 3600 s <= 3600: le="3600"
            return_requested(DAY0_MS, "r-2", "other"),
            refund(DAY0_MS + 2 * HOUR_MS, "r-2"),  # 7200 s: 3600 < 7200 <= 21600, le="21600"
            return_requested(DAY0_MS, "r-3", "other"),
            refund(DAY0_MS + 40 * DAY_MS, "r-3"),  # 3_456_000 s > 2_592_000: le="+Inf"
        ],
    )
    # sum: 3_600_000 + 7_200_000 + 3_456_000_000 = 3_466_800_000 ms
    assert totals == {
        "cx_returns_total|other": 3,
        "cx_refund_seconds|3600": 1,
        "cx_refund_seconds|21600": 1,
        "cx_refund_seconds|+Inf": 1,
        "cx_refund_seconds:sum_ms": 3_466_800_000,
    }


def test_refund_stamped_before_its_request_counts_as_zero_wait() -> None:
    totals = totals_after(
        commerce(),
        [return_requested(DAY0_MS + HOUR_MS, "r-1", "other"), refund(DAY0_MS, "r-1")],
    )
    assert totals == {"cx_returns_total|other": 1, "cx_refund_seconds|3600": 1}


def test_completed_returns_are_forgotten_after_retention() -> None:
    family = Commerce(KpiConfig())
    state = CommerceState()
    for offset, e in enumerate(
        [
            return_requested(DAY0_MS, "r-1", "other"),
            refund(DAY0_MS + HOUR_MS, "r-1"),
            return_requested(DAY0_MS, "r-2", "other"),  # refund still awaited: kept
        ]
    ):
        assert process_event(family, state, e, e.event_id, offset) is not None
    # retention = 7 d + 1 d; an event 8 d + 1 h + 1 ms after the refund drops r-1
    later = order(DAY0_MS + HOUR_MS + 8 * DAY_MS + 1, "o-9", 1, "EUR")
    assert process_event(family, state, later, later.event_id, 3) is not None
    assert set(state.returns) == {"r-2"}


def test_commerce_state_survives_a_json_round_trip() -> None:
    family = Commerce(KpiConfig())
    state = CommerceState()
    request = return_requested(DAY0_MS, "r-1", "damaged")
    assert process_event(family, state, request, "cx.raw.returns:0:1", 1) is not None
    restored = family.from_json(orjson.loads(orjson.dumps(family.to_json(state))))
    # the last applied offset survives the round trip: offset 1 again is a redelivery
    assert restored.ledger.last_offset == 1
    assert process_event(family, restored, request, "cx.raw.returns:0:1", 1) is None
    deltas = process_event(
        family, restored, refund(DAY0_MS + HOUR_MS, "r-1"), "cx.raw.returns:0:2", 2
    )
    assert deltas == {
        "cx_events_total|returns|refund.issued": 1,
        "cx_refund_seconds|3600": 1,
        "cx_refund_seconds:sum_ms": 3_600_000,
    }


# --- surveys ------------------------------------------------------------------------------


def test_survey_categories_and_score_sums() -> None:
    totals = totals_after(
        feedback(),
        [
            answer("nps", 9),
            answer("nps", 7),
            answer("nps", 6),
            answer("csat", 4),
            answer("csat", 3),
            answer("csat", 2),
            answer("ces", 5),
            answer("ces", 4),
            answer("ces", 3),
        ],
    )
    assert totals == {
        "cx_survey_responses_total|nps|chat|promoter": 1,
        "cx_survey_responses_total|nps|chat|passive": 1,
        "cx_survey_responses_total|nps|chat|detractor": 1,
        "cx_survey_score_total|nps|chat": 22,  # 9 + 7 + 6
        "cx_survey_responses_total|csat|chat|satisfied": 1,
        "cx_survey_responses_total|csat|chat|neutral": 1,
        "cx_survey_responses_total|csat|chat|unsatisfied": 1,
        "cx_survey_score_total|csat|chat": 9,  # 4 + 3 + 2
        "cx_survey_responses_total|ces|chat|easy": 1,
        "cx_survey_responses_total|ces|chat|neutral": 1,
        "cx_survey_responses_total|ces|chat|hard": 1,
        "cx_survey_score_total|ces|chat": 12,  # 5 + 4 + 3
    }


@pytest.mark.parametrize(
    ("survey", "scores", "category"),
    [
        ("nps", range(0, 7), "detractor"),
        ("nps", range(7, 9), "passive"),
        ("nps", range(9, 11), "promoter"),
        ("csat", range(1, 3), "unsatisfied"),
        ("csat", range(3, 4), "neutral"),
        ("csat", range(4, 6), "satisfied"),
        ("ces", range(1, 4), "hard"),
        ("ces", range(4, 5), "neutral"),
        ("ces", range(5, 8), "easy"),
    ],
)
def test_every_score_falls_in_its_contract_category(
    survey: str, scores: range, category: str
) -> None:
    totals = totals_after(feedback(), [answer(survey, score, channel="phone") for score in scores])
    expected = {
        f"cx_survey_responses_total|{survey}|phone|{category}": len(scores),
        f"cx_survey_score_total|{survey}|phone": sum(scores),
    }
    if sum(scores) == 0:  # nps 0 alone would add nothing to the score sum
        del expected[f"cx_survey_score_total|{survey}|phone"]
    assert totals == expected


def test_nps_inputs_from_counters() -> None:
    # 4 promoters, 3 passives, 3 detractors: NPS = 40 % - 30 % = +10 (a recording rule)
    scores = [10, 9, 9, 10, 7, 8, 8, 0, 5, 6]
    totals = totals_after(feedback(), [answer("nps", s, channel="email") for s in scores])
    assert totals == {
        "cx_survey_responses_total|nps|email|promoter": 4,
        "cx_survey_responses_total|nps|email|passive": 3,
        "cx_survey_responses_total|nps|email|detractor": 3,
        "cx_survey_score_total|nps|email": 72,  # 38 + 23 + 11
    }


def test_survey_channel_is_the_channel_rated_not_the_survey_topic() -> None:
    totals = totals_after(feedback(), [answer("csat", 5, channel="phone")])
    assert totals == {
        "cx_survey_responses_total|csat|phone|satisfied": 1,
        "cx_survey_score_total|csat|phone": 5,
    }


# --- churn and dedup ----------------------------------------------------------------------


def test_churned_customers_counter() -> None:
    totals = totals_after(
        feedback(),
        [
            event("customer.churned", DAY0_MS, customer="c-1", channel="web"),
            event("customer.churned", DAY0_MS, customer="c-2", channel="web", reason="price"),
        ],
    )
    assert totals == {"cx_churned_customers_total": 2}


def test_duplicate_survey_answer_is_counted_once() -> None:
    processor, store = feedback(), Store()
    first = answer("nps", 10)
    assert processor.handle(store.get, store.put, 0, 1, first, "cx.raw.survey:0:1") is not None
    again = processor.handle(store.get, store.put, 0, 2, first, "cx.raw.survey:0:2")
    assert again == {"cx_events_duplicate_total": 1}
    # either message delivered again (same offset, or re-sent by ingest at a new offset with
    # the same source ref) changes nothing
    assert processor.handle(store.get, store.put, 0, 2, first, "cx.raw.survey:0:2") is None
    assert processor.handle(store.get, store.put, 0, 3, first, "cx.raw.survey:0:1") is None
    assert processor.handle(store.get, store.put, 0, 4, first, "cx.raw.survey:0:2") is None
    assert processor.views[0].totals == {
        "cx_events_total|chat|survey.answered": 1,
        "cx_survey_responses_total|nps|chat|promoter": 1,
        "cx_survey_score_total|nps|chat": 10,
        "cx_events_duplicate_total": 1,
    }


def test_feedback_rebuild_gives_the_same_totals() -> None:
    live, store = feedback(), Store()
    for partition, offset, e in [
        (0, 0, answer("nps", 3, customer="c-1")),
        (2, 0, answer("ces", 6, customer="c-2")),
    ]:
        ref = f"cx.raw.survey:0:{e.event_id}"
        assert live.handle(store.get, store.put, partition, offset, e, ref) is not None
    rebuilt = feedback()
    rebuilt.rebuild(store.data.items(), [0, 2])
    assert rebuilt.totals_by_partition() == live.totals_by_partition()
    assert rebuilt.totals_by_partition()[2] == {
        "cx_events_total|chat|survey.answered": 1,
        "cx_survey_responses_total|ces|chat|easy": 1,
        "cx_survey_score_total|ces|chat": 6,
    }
