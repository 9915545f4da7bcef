"""agents/churn_logic.py: churn-risk scores, tiers, reasons and signals, worked out by hand.

Defaults (agents/config.py): half-life 30 days; weights detractor 0.35, low_csat 0.25,
high_effort 0.15, slow_response 0.15, reopened 0.10, repeat_contact 0.10, return 0.15,
late_delivery 0.15; tiers medium >= 0.4, high >= 0.7, hysteresis 0.05; BG/NBD (CDNOW weekly fit)
r = 0.243, alpha = 4.414, a = 0.793, b = 2.426; chat FRT target 60 s, email 4 h; FCR horizon
7 days. score = 1 - p * prod_k (1 - e_k), e_k = weight_k * min(1, intensity_k).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from agents.churn_logic import (
    MAX_CONVERSATIONS,
    MAX_RECENT_DAYS,
    ChurnRisk,
    CustomerProfile,
    PurchaseDays,
    add_occurrence,
    intensity,
    tier_for,
    top_reasons,
)
from agents.config import KpiConfig
from agents.family import Family, process_event
from agents.ledger import Deltas, add_into
from schemas.errors import ConfigurationError
from schemas.events import Event
from schemas.validate import EventValidator

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
HALF_LIFE_MS = 30 * DAY_MS
# 2026-11-22T00:00:00Z = 1_795_305_600 s (2026-01-01 = 1_767_225_600 s, + 325 days)
DAY0_MS = 1_795_305_600_000
NOON_MS = DAY0_MS + 12 * HOUR_MS
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
GAUGE = "cx_customers_by_risk_tier"
SIGNALS = "cx_churn_signals_total"

CONFIG = KpiConfig()
FAMILY = ChurnRisk(CONFIG)
VALIDATOR = EventValidator(max_future_ms=None)  # pure logic: no wall clock
_event_ids = itertools.count(1)


def iso(ms: int) -> str:
    return (
        (EPOCH + timedelta(milliseconds=ms))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def event(kind: str, when: int, *, channel: str = "chat", **fields: Any) -> Event:
    raw = {
        "event_id": f"ev-{next(_event_ids)}",
        "type": kind,
        "occurred_at": iso(when),
        "customer_id": "c-1",
        "channel": channel,
        **fields,
    }
    result = VALIDATOR.validate(orjson.dumps(raw), channel)
    assert isinstance(result, Event), result
    return result


def survey(when: int, kind: str, score: int) -> Event:
    return event("survey.answered", when, survey=kind, score=score)


def order(when: int) -> Event:
    return event(
        "order.placed", when, channel="shop", order_id=f"o-{when}", amount="10", currency="EUR"
    )


def opened(when: int, cid: str, channel: str = "chat") -> Event:
    return event("conversation.opened", when, channel=channel, conversation_id=cid)


def sent(when: int, cid: str, author: str = "agent") -> Event:
    return event("message.sent", when, conversation_id=cid, author=author)


def resolved(when: int, cid: str, channel: str = "chat") -> Event:
    return event("conversation.resolved", when, channel=channel, conversation_id=cid)


def run(events: Iterable[Event], state: CustomerProfile | None = None) -> CustomerProfile:
    state = state if state is not None else FAMILY.new_state()
    for item in events:
        FAMILY.apply(state, item)
    return state


def level(state: CustomerProfile, name: str, at_ms: int) -> float:
    return intensity(state.signals, name, at_ms, HALF_LIFE_MS)


def p_alive_by_hand(x: int, t_x: float, T: float) -> float:
    """BG/NBD P(alive), x >= 1: 1 / (1 + a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))."""
    r, alpha, a, b = 0.243, 4.414, 0.793, 2.426
    return float(1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)))


# --- decay -------------------------------------------------------------------------------


def test_one_signal_a_half_life_ago_counts_half() -> None:
    signals: dict[str, list[float]] = {}
    add_occurrence(signals, "detractor", DAY0_MS - 30 * DAY_MS, HALF_LIFE_MS)
    assert intensity(signals, "detractor", DAY0_MS, HALF_LIFE_MS) == 0.5
    add_occurrence(signals, "detractor", DAY0_MS, HALF_LIFE_MS)
    assert intensity(signals, "detractor", DAY0_MS, HALF_LIFE_MS) == 1.5  # 0.5 + 1
    assert intensity(signals, "detractor", DAY0_MS + 30 * DAY_MS, HALF_LIFE_MS) == 0.75
    assert intensity(signals, "low_csat", DAY0_MS, HALF_LIFE_MS) == 0.0


def test_decay_does_not_depend_on_arrival_order() -> None:
    early, late = DAY0_MS, DAY0_MS + 30 * DAY_MS
    in_order: dict[str, list[float]] = {}
    reversed_: dict[str, list[float]] = {}
    for when in (early, late):
        add_occurrence(in_order, "return", when, HALF_LIFE_MS)
    for when in (late, early):
        add_occurrence(reversed_, "return", when, HALF_LIFE_MS)
    at = DAY0_MS + 60 * DAY_MS
    # 0.5^(60/30) + 0.5^(30/30) = 0.25 + 0.5
    assert intensity(in_order, "return", at, HALF_LIFE_MS) == 0.75
    assert intensity(reversed_, "return", at, HALF_LIFE_MS) == 0.75


# --- scores ------------------------------------------------------------------------------


def test_detractor_today_without_orders_scores_its_weight() -> None:
    state = FAMILY.new_state()
    deltas = FAMILY.apply(state, survey(NOON_MS, "nps", 6))
    # p = 1 (no orders); score = 1 - 1 * (1 - 0.35 * min(1, 1)) = 0.35
    assert state.score == pytest.approx(0.35, abs=1e-12)
    assert state.p_alive == 1.0
    assert state.reasons == (("detractor", 0.35),)
    assert state.tier == "low"
    assert deltas == {f"{GAUGE}|low": 1}  # first tier low: assigned, not a signal
    assert FAMILY.signal(state) is None


def test_surveys_raise_signals_only_at_their_thresholds() -> None:
    good = run([survey(NOON_MS, "nps", 7), survey(NOON_MS, "csat", 3), survey(NOON_MS, "ces", 4)])
    assert good.signals == {} and good.score == 0.0
    bad = run([survey(NOON_MS, "csat", 2), survey(NOON_MS, "ces", 3)])
    # 1 - (1 - 0.25)(1 - 0.15) = 1 - 0.6375 = 0.3625
    assert bad.score == pytest.approx(0.3625, abs=1e-12)
    assert bad.reasons == (("low_csat", 0.25), ("high_effort", 0.15))


def test_repeat_buyer_score_combines_p_alive_and_experience() -> None:
    # orders on days 0, 7 and 14 (twice on day 14: one transaction), detractor on day 28:
    # x = 2, t_x = 14/7 = 2 weeks, T = 28/7 = 4 weeks
    state = run([order(NOON_MS + d * DAY_MS) for d in (0, 7, 14)] + [order(NOON_MS + 14 * DAY_MS)])
    deltas = FAMILY.apply(state, survey(NOON_MS + 28 * DAY_MS, "nps", 0))
    # p = 1 / (1 + 0.793/3.426 * (8.414/6.414)^2.243) = 0.701520
    p = p_alive_by_hand(2, 2.0, 4.0)
    assert p == pytest.approx(0.7015195, abs=1e-7)
    assert state.p_alive == pytest.approx(p, rel=1e-12)
    # score = 1 - 0.701520 * (1 - 0.35) = 0.544012
    assert state.score == pytest.approx(1 - p * 0.65, rel=1e-12)
    assert state.score == pytest.approx(0.5440123, abs=1e-7)
    assert state.reasons == (("detractor", 0.35), ("inactive", 0.2985))  # 1 - p = 0.298480
    # the orders alone scored low (1 - p, about 0.19 to 0.25, on their own days)
    assert deltas == {f"{GAUGE}|low": -1, f"{GAUGE}|medium": 1, f"{SIGNALS}|medium": 1}
    assert FAMILY.signal(state) == {
        "score": 0.544,
        "tier": "medium",
        "previous_tier": "low",
        "reasons": [
            {"reason": "detractor", "contribution": 0.35},
            {"reason": "inactive", "contribution": 0.2985},
        ],
        "p_alive": 0.7015,
        "as_of": "2026-12-20T12:00:00.000Z",
    }


def test_a_first_tier_above_low_is_a_signal() -> None:
    state = CustomerProfile()
    add_occurrence(state.signals, "detractor", NOON_MS, HALF_LIFE_MS)
    add_occurrence(state.signals, "low_csat", NOON_MS, HALF_LIFE_MS)
    add_occurrence(state.signals, "return", NOON_MS, HALF_LIFE_MS)
    add_occurrence(state.signals, "late_delivery", NOON_MS, HALF_LIFE_MS)
    deltas = FAMILY.rescore(state, NOON_MS)
    # 1 - 0.65 * 0.75 * 0.85 * 0.85 = 0.64778125
    assert state.score == pytest.approx(0.64778125, abs=1e-12)
    assert deltas == {f"{GAUGE}|medium": 1, f"{SIGNALS}|medium": 1}
    message = FAMILY.signal(state)
    assert message is not None
    assert (message["tier"], message["previous_tier"], message["score"]) == ("medium", None, 0.6478)
    assert [r["reason"] for r in message["reasons"]] == ["detractor", "low_csat", "late_delivery"]


def test_one_time_buyer_uses_the_mbg_term() -> None:
    state = run([order(NOON_MS)])
    FAMILY.rescore(state, NOON_MS + 70 * DAY_MS)
    # x = 0, T = 10 weeks: p = 1 / (1 + a/b * ((alpha + T)/alpha)^r)
    p = 1 / (1 + 0.793 / 2.426 * ((4.414 + 10) / 4.414) ** 0.243)
    assert p == pytest.approx(0.6964829, abs=1e-7)
    assert state.score == pytest.approx(1 - p, rel=1e-12)
    assert state.reasons == (("inactive", 0.3035),)
    assert state.tier == "low"


def test_rescoring_later_raises_inactivity_and_decays_experience() -> None:
    state = run([order(NOON_MS + d * DAY_MS) for d in (0, 7, 14)])
    FAMILY.apply(state, survey(NOON_MS + 28 * DAY_MS, "nps", 3))
    before = state.score
    assert FAMILY.next_rescore_ms(state) == NOON_MS + 29 * DAY_MS
    deltas = FAMILY.rescore(state, NOON_MS + 58 * DAY_MS)
    # 30 days later: detractor 0.5 -> e = 0.175; T = 58/7 weeks
    p = p_alive_by_hand(2, 2.0, 58 / 7)
    assert p == pytest.approx(0.4827919, abs=1e-7)
    assert state.p_alive == pytest.approx(p, rel=1e-12)
    assert state.score == pytest.approx(1 - p * (1 - 0.175), rel=1e-12)  # 0.601697
    assert state.score > before
    assert state.reasons == (("inactive", 0.5172), ("detractor", 0.175))
    assert deltas == {}  # still medium (0.6017 < 0.7)
    assert FAMILY.next_rescore_ms(state) == NOON_MS + 59 * DAY_MS


def test_a_late_event_is_scored_at_the_profile_time() -> None:
    state = run([survey(NOON_MS + DAY_MS, "nps", 0), survey(NOON_MS, "csat", 1)])
    assert state.scored_at_ms == NOON_MS + DAY_MS
    assert level(state, "low_csat", NOON_MS + DAY_MS) == 0.5 ** (1 / 30)


def test_late_delivery_and_return_are_signals() -> None:
    promised = NOON_MS
    on_time = event(
        "order.delivered", promised, channel="shop", order_id="o-1", promised_at=iso(promised)
    )
    late = event(
        "order.delivered", promised + 1, channel="shop", order_id="o-2", promised_at=iso(promised)
    )
    ret = event(
        "return.requested",
        promised + 1,
        channel="returns",
        order_id="o-2",
        return_id="r-1",
        reason="damaged",
    )
    state = run([on_time])
    assert state.signals == {}
    run([late, ret], state)
    # 1 - (1 - 0.15)^2 = 0.2775
    assert state.score == pytest.approx(0.2775, abs=1e-12)
    assert state.reasons == (("late_delivery", 0.15), ("return", 0.15))


# --- reasons and tiers -------------------------------------------------------------------


def test_reasons_are_the_top_three_above_one_percent_ties_by_name() -> None:
    contributions = {
        "inactive": 0.2,
        "detractor": 0.35,
        "return": 0.15,
        "late_delivery": 0.15,
        "reopened": 0.01,  # not above 0.01
        "low_csat": 0.0,
    }
    assert top_reasons(contributions) == (
        ("detractor", 0.35),
        ("inactive", 0.2),
        ("late_delivery", 0.15),
    )
    assert top_reasons({"reopened": 0.01, "inactive": 0.012345}) == (("inactive", 0.0123),)
    assert top_reasons({"reopened": 0.0}) == ()


def test_reasons_of_a_customer_with_many_signals() -> None:
    at = NOON_MS
    state = run(
        [
            survey(at, "nps", 2),
            survey(at, "csat", 1),
            event("conversation.reopened", at, conversation_id="k-1"),
            event(
                "return.requested",
                at,
                channel="returns",
                order_id="o",
                return_id="r",
                reason="other",
            ),
        ]
    )
    # 1 - 0.65 * 0.75 * 0.9 * 0.85 = 0.6270625
    assert state.score == pytest.approx(0.6270625, abs=1e-12)
    assert state.reasons == (("detractor", 0.35), ("low_csat", 0.25), ("return", 0.15))


def test_tier_hysteresis_does_not_flap() -> None:
    tier = None
    seen = []
    for score in (0.69, 0.71, 0.68, 0.64):
        tier = tier_for(score, tier, CONFIG)
        seen.append(tier)
    assert seen == ["medium", "high", "high", "medium"]
    assert tier_for(0.36, "medium", CONFIG) == "medium"  # 0.36 >= 0.4 - 0.05
    assert tier_for(0.34, "medium", CONFIG) == "low"
    assert tier_for(0.38, "high", CONFIG) == "medium"  # below 0.65, still within medium's margin
    assert tier_for(0.30, "high", CONFIG) == "low"
    assert tier_for(0.39, "low", CONFIG) == "low"  # up only at the threshold itself
    assert tier_for(0.40, "low", CONFIG) == "medium"
    assert tier_for(0.70, "low", CONFIG) == "high"
    assert tier_for(0.10, None, CONFIG) == "low"


def test_gauge_deltas_across_a_tier_change_sum_to_zero() -> None:
    state = FAMILY.new_state()
    totals: dict[str, int] = {}
    first = FAMILY.apply(state, survey(NOON_MS, "nps", 5))  # 0.35: low
    add_into(totals, first)
    change = FAMILY.apply(state, survey(NOON_MS, "csat", 2))  # 1 - 0.65 * 0.75 = 0.5125
    assert change == {f"{GAUGE}|low": -1, f"{GAUGE}|medium": 1, f"{SIGNALS}|medium": 1}
    assert sum(v for k, v in change.items() if k.startswith(GAUGE)) == 0
    assert FAMILY.signal(state) == {
        "score": 0.5125,
        "tier": "medium",
        "previous_tier": "low",
        "reasons": [
            {"reason": "detractor", "contribution": 0.35},
            {"reason": "low_csat", "contribution": 0.25},
        ],
        "p_alive": 1.0,
        "as_of": "2026-11-22T12:00:00.000Z",
    }
    add_into(totals, change)
    nothing = FAMILY.apply(state, survey(NOON_MS, "nps", 10))
    assert nothing == {} and FAMILY.signal(state) is None
    # more signals while medium: x (1 - 0.15) high effort, x (1 - 0.10) reopened, a second
    # detractor (intensity 2, capped at 1: no change), x (1 - 0.15) return
    steps = [
        survey(NOON_MS, "ces", 1),
        event("conversation.reopened", NOON_MS, conversation_id="k"),
        survey(NOON_MS, "nps", 1),
        event(
            "return.requested",
            NOON_MS,
            channel="returns",
            order_id="o",
            return_id="r",
            reason="other",
        ),
    ]
    for step in steps:
        assert FAMILY.apply(state, step) == {}
    # 1 - 0.65 * 0.75 * 0.85 * 0.9 * 0.85 = 0.683003125: still medium
    assert state.score == pytest.approx(0.683003125, abs=1e-12)
    late = event(
        "order.delivered", NOON_MS, channel="shop", order_id="o", promised_at=iso(NOON_MS - 1)
    )
    high = FAMILY.apply(state, late)
    # x (1 - 0.15) late delivery: 1 - 0.316996875 * 0.85 = 0.73055265625: high
    assert state.score == pytest.approx(0.73055265625, abs=1e-12)
    assert high == {f"{GAUGE}|medium": -1, f"{GAUGE}|high": 1, f"{SIGNALS}|high": 1}
    add_into(totals, high)
    assert {k: v for k, v in totals.items() if k.startswith(GAUGE)} == {f"{GAUGE}|high": 1}
    assert totals[f"{SIGNALS}|medium"] == 1 and totals[f"{SIGNALS}|high"] == 1


# --- conversations -----------------------------------------------------------------------


def test_repeat_contact_within_the_fcr_horizon() -> None:
    t0 = NOON_MS
    state = run([opened(t0, "k-1"), sent(t0 + 30_000, "k-1"), resolved(t0 + HOUR_MS, "k-1")])
    assert state.signals == {}
    repeat_at = t0 + HOUR_MS + 3 * DAY_MS
    run([opened(repeat_at, "k-2", channel="email"), sent(repeat_at + 1000, "k-2")], state)
    assert level(state, "repeat_contact", repeat_at) == 1.0
    assert ("repeat_contact", 0.1) in state.reasons
    # the same conversation opened again, or k-1 itself: no new repeat contact
    run([opened(repeat_at + 2000, "k-2"), opened(repeat_at + 3000, "k-1")], state)
    assert level(state, "repeat_contact", repeat_at) == 1.0
    # 8 days after k-1's resolution (k-2 is not resolved): outside the horizon
    later = t0 + HOUR_MS + 8 * DAY_MS
    run([opened(later, "k-3"), sent(later + 1000, "k-3")], state)
    assert level(state, "repeat_contact", later) == 0.5 ** (5 / 30)
    assert "k-1" not in state.resolutions  # forgotten past the horizon


def test_repeat_contact_at_the_horizon_edge_counts() -> None:
    t0 = NOON_MS
    state = run([opened(t0, "k-1"), sent(t0 + 1, "k-1"), resolved(t0 + 2, "k-1")])
    edge = t0 + 2 + 7 * DAY_MS
    run([opened(edge, "k-2"), sent(edge + 1, "k-2")], state)
    assert level(state, "repeat_contact", edge) == 1.0


def test_slow_first_reply_is_a_slow_response_at_the_target() -> None:
    t0 = NOON_MS
    state = run([opened(t0, "k-1"), sent(t0 + 10_000, "k-1", author="bot")])
    assert state.waits == {"k-1": [t0, 60_000]}
    run([sent(t0 + 90_000, "k-1")], state)
    # happened at t0 + 60 s, read 30 s later
    assert level(state, "slow_response", t0 + 90_000) == 0.5 ** (30_000 / HALF_LIFE_MS)
    assert state.waits == {}
    assert state.score == pytest.approx(0.15 * 0.5 ** (30_000 / HALF_LIFE_MS), rel=1e-12)


def test_reply_at_the_target_is_not_slow() -> None:
    t0 = NOON_MS
    state = run([opened(t0, "k-1"), sent(t0 + 60_000, "k-1"), sent(t0 + 10 * 60_000, "k-1")])
    assert state.signals == {} and state.waits == {}


def test_unanswered_past_the_target_is_slow_when_rescored() -> None:
    t0 = NOON_MS
    state = run([opened(t0, "k-1")])
    assert FAMILY.next_rescore_ms(state) == t0 + 60_001
    FAMILY.rescore(state, t0 + 60_001)
    assert level(state, "slow_response", t0 + 60_000) == 1.0
    assert state.waits == {}
    run([sent(t0 + 120_000, "k-1")], state)  # the late reply does not count it again
    assert level(state, "slow_response", t0 + 60_000) == 1.0
    assert FAMILY.next_rescore_ms(state) == t0 + 120_000 + DAY_MS


def test_resolution_ends_the_wait_and_reply_before_open_is_matched() -> None:
    t0 = NOON_MS
    email = run(
        [opened(t0, "e-1", channel="email"), resolved(t0 + 5 * HOUR_MS, "e-1", channel="email")]
    )
    assert level(email, "slow_response", t0 + 4 * HOUR_MS) == 1.0  # target 4 h
    early = run([sent(t0 + 120_000, "k-9"), opened(t0, "k-9")])  # arrived out of order
    assert level(early, "slow_response", t0 + 60_000) == 1.0
    assert early.waits == {}


def test_memory_stays_bounded_over_1000_conversations() -> None:
    family: Family[CustomerProfile] = FAMILY
    state = family.new_state()
    step = 60 * DAY_MS // 1000  # 5184 s
    offsets = itertools.count()
    for i in range(1000):
        at = NOON_MS + i * step
        cid = f"k-{i}"
        batch = [opened(at, cid)]
        if i % 10:  # every tenth conversation is never answered
            batch += [sent(at + 30_000, cid), resolved(at + 600_000, cid)]
        for item in batch:
            process_event(family, state, item, f"cx.events:0:{next(offsets)}", next(offsets))
    horizon_conversations = 7 * DAY_MS // step + 1  # 117 within the FCR horizon
    assert len(state.waits) <= 1
    assert len(state.resolutions) <= horizon_conversations
    assert len(state.answered) <= horizon_conversations
    assert max(len(state.resolutions), len(state.answered)) <= MAX_CONVERSATIONS
    assert len(state.ledger.seen) <= 3 * (DAY_MS // step + 1)  # dedup horizon: one day
    # 100 slow responses and 899 repeat contacts are two decaying intensities, not lists
    assert set(state.signals) == {"slow_response", "repeat_contact"}
    assert len(orjson.dumps(family.to_json(state))) < 10_000
    # both capped at 1: 1 - (1 - 0.15)(1 - 0.10) = 0.235
    assert state.score == pytest.approx(0.235, abs=1e-12)
    assert state.ledger.totals == {f"{GAUGE}|low": 1}  # no cx_events_total here


def test_purchase_days_are_distinct_days_in_any_order() -> None:
    days = PurchaseDays()
    for day in (10, 5, 7, 7, 10, 5):
        days.add(day)
    assert (days.first, days.count, days.recent) == (5, 3, [5, 7, 10])
    summary = days.summary(14)
    assert summary is not None
    assert (summary.x, summary.t_x, summary.T) == (2, 5 / 7, 9 / 7)
    many = PurchaseDays()
    for day in range(100):
        many.add(day)
    assert len(many.recent) == MAX_RECENT_DAYS and many.count == 100 and many.first == 0
    many.add(99)  # kept: recognised
    many.add(0)  # the first day: recognised
    assert many.count == 100
    many.add(3)  # older than every kept day: taken as new (documented)
    assert many.count == 101


# --- lifecycle and state -----------------------------------------------------------------


def test_churned_customer_leaves_the_gauge_and_is_never_signalled_again() -> None:
    state = run([survey(NOON_MS, "nps", 0), survey(NOON_MS, "csat", 1)])
    assert state.tier == "medium"
    deltas = FAMILY.apply(state, event("customer.churned", NOON_MS + HOUR_MS, channel="web"))
    assert deltas == {f"{GAUGE}|medium": -1}  # cx_churned_customers_total is feedback's
    assert FAMILY.signal(state) is None
    assert FAMILY.next_rescore_ms(state) is None
    assert FAMILY.apply(state, survey(NOON_MS + 2 * HOUR_MS, "ces", 1)) == {}
    assert FAMILY.rescore(state, NOON_MS + 30 * DAY_MS) == {}
    assert state.signals == {}


def test_family_shape() -> None:
    assert FAMILY.name == "churn_risk"
    assert FAMILY.counts_events is False
    assert "customer.churned" in FAMILY.types and "order.placed" in FAMILY.types
    assert len(FAMILY.types) == 11


def test_json_round_trip() -> None:
    t0 = NOON_MS
    state = run(
        [
            order(t0),
            order(t0 + 9 * DAY_MS),
            opened(t0 + 10 * DAY_MS, "k-1"),
            sent(t0 + 10 * DAY_MS + 1000, "k-1"),
            resolved(t0 + 10 * DAY_MS + 2000, "k-1"),
            opened(t0 + 11 * DAY_MS, "k-2"),
            survey(t0 + 11 * DAY_MS, "nps", 4),
            survey(t0 + 11 * DAY_MS, "csat", 1),
        ]
    )
    assert state.waits and state.resolutions and state.answered and state.tier
    data = orjson.loads(orjson.dumps(FAMILY.to_json(state)))
    copy = FAMILY.from_json(data)
    assert FAMILY.to_json(copy) == FAMILY.to_json(state)
    assert copy == state
    later = t0 + 40 * DAY_MS
    assert FAMILY.rescore(copy, later) == FAMILY.rescore(state, later)
    assert FAMILY.to_json(copy) == FAMILY.to_json(state)
    assert FAMILY.from_json(FAMILY.to_json(FAMILY.new_state())) == FAMILY.new_state()


def test_signal_is_cleared_by_the_next_scoring() -> None:
    state = run([survey(NOON_MS, "nps", 0), survey(NOON_MS, "csat", 1)])
    assert FAMILY.signal(state) is not None
    assert FAMILY.rescore(state, NOON_MS + HOUR_MS) == Deltas()
    assert FAMILY.signal(state) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"churn_medium": 0.7, "churn_high": 0.7},
        {"churn_medium": 0.0},
        {"churn_high": 1.0},
        {"churn_hysteresis": -0.01},
        {"churn_half_life_ms": 0},
        {"churn_weights": {"detractor": 1.5}},
        {"churn_weights": {"angry": 0.5}},
        {"bgnbd": (0.243, 4.414, 0.0, 2.426)},
    ],
)
def test_bad_churn_configuration_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        KpiConfig(**changes)


def test_partial_weights_keep_the_other_defaults() -> None:
    family = ChurnRisk(KpiConfig(churn_weights={"detractor": 0.5}))
    state = family.new_state()
    family.apply(state, survey(NOON_MS, "nps", 0))
    family.apply(state, survey(NOON_MS, "csat", 1))
    assert state.score == pytest.approx(1 - 0.5 * 0.75, abs=1e-12)
