"""agents/churn_logic.py: churn-risk scores, tiers, reasons and signals, worked out by hand.

Defaults (agents/config.py): half-life 30 days; score = sigma(z), z = intercept + sum_j w_j f_j
with intercept -3, every experience signal's f = ln(1 + intensity) at weight 1, a repeat buyer's
1 - p in its recency band (0, 7, 14, 30, 60, 90, 180, 365 days) at weight 2, a one-time buyer's
1 - p at weight 1, no orders 0; tiers medium >= 0.2, high >= 0.4, hysteresis 0.05; BG/NBD
(CDNOW weekly fit) r = 0.243, alpha = 4.414, a = 0.793, b = 2.426; chat FRT target 60 s, email
4 h; FCR horizon 7 days. So a customer without evidence scores sigma(-3) = 1 / (1 + e^3) =
0.0474259, and each fresh signal (intensity 1: + ln 2) doubles the odds: k of them score
2^k / (2^k + e^3). A reason contributes sigma(z) - sigma(z - its share of z).

`apply` only records; a scoring happens in `rescore`, at the times `next_rescore_ms` gives, once
the watermark has passed them: `score_until` does what the timers do.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from agents.churn_logic import (
    ALL_DECIDED,
    MAX_CONVERSATIONS,
    MAX_PENDING,
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
from agents.processor import ChurnProcessor
from agents.watermark import Watermark
from schemas.errors import ConfigurationError
from schemas.events import Event
from schemas.validate import EventValidator
from tests.known_stream import LINES, MAX_BYTES

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
HALF_LIFE_MS = 30 * DAY_MS
# 2026-11-22T00:00:00Z = 1_795_305_600 s (2026-01-01 = 1_767_225_600 s, + 325 days)
DAY0_MS = 1_795_305_600_000
NOON_MS = DAY0_MS + 12 * HOUR_MS
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
GAUGE = "cx_customers_by_risk_tier"
SIGNALS = "cx_churn_signals_total"
LATENESS_MS = 5 * 60_000

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


def score_until(
    state: CustomerProfile, until_ms: int, family: ChurnRisk = FAMILY
) -> dict[str, int]:
    """Every scoring due at or before ``until_ms``, earliest first, as the timers run them once
    the watermark has passed ``until_ms``; their deltas summed."""
    total: dict[str, int] = {}
    while (due := family.next_rescore_ms(state)) is not None and due <= until_ms:
        add_into(total, family.rescore(state, due))
    return total


def run(events: Iterable[Event], state: CustomerProfile | None = None) -> CustomerProfile:
    """Record the events, then score through the last one's time."""
    state = state if state is not None else FAMILY.new_state()
    latest = None
    for item in events:
        assert FAMILY.apply(state, item) == {}  # recording moves no tier
        latest = max(item.occurred_at_ms, latest or item.occurred_at_ms)
    if latest is not None:
        score_until(state, latest)
    return state


E3 = math.exp(3.0)  # e^3 = 20.085537: the default intercept is -3
LN2 = math.log(2.0)
BASELINE = 1 / (1 + E3)  # 0.0474259: no evidence at all


def sigma(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def by_hand(*log_odds: float) -> float:
    """The default model's score: sigma(-3 + the features' weighted sum)."""
    return sigma(-3.0 + sum(log_odds))


def fresh(k: int) -> float:
    """k different signals, each intensity 1, no orders: 2^k / (2^k + e^3)."""
    return 2**k / (2**k + E3)


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


def test_detractor_today_without_orders_doubles_the_odds() -> None:
    state = FAMILY.new_state()
    assert FAMILY.apply(state, survey(NOON_MS, "nps", 6)) == {}  # recorded only
    assert state.tier is None and FAMILY.next_rescore_ms(state) == NOON_MS  # scored at its time
    deltas = FAMILY.rescore(state, NOON_MS)
    # p = 1 (no orders: no_orders = 1, weight 0); z = -3 + ln(1 + 1): 2 / (2 + e^3)
    assert state.score == pytest.approx(2 / (2 + E3), rel=1e-12)
    assert state.score == pytest.approx(0.0905570, abs=1e-7)
    assert state.p_alive == 1.0
    # without it: sigma(-3) = 0.0474259, so it contributes 0.0905570 - 0.0474259 = 0.0431311
    assert state.reasons == (("detractor", 0.0431),)
    assert state.tier == "low"
    assert deltas == {f"{GAUGE}|low": 1}  # first tier low: assigned, not a signal
    assert FAMILY.signal(state) is None


def test_surveys_raise_signals_only_at_their_thresholds() -> None:
    good = run([survey(NOON_MS, "nps", 7), survey(NOON_MS, "csat", 3), survey(NOON_MS, "ces", 4)])
    assert good.signals == {} and good.score == pytest.approx(BASELINE, rel=1e-12)
    assert good.reasons == ()
    bad = run([survey(NOON_MS, "csat", 2), survey(NOON_MS, "ces", 3)])
    # two fresh signals: 4 / (4 + e^3) = 0.1660748; each contributes 0.1660748 - 0.0905570
    assert bad.score == pytest.approx(fresh(2), rel=1e-12)
    assert bad.score == pytest.approx(0.1660748, abs=1e-7)
    assert bad.reasons == (("high_effort", 0.0755), ("low_csat", 0.0755))  # a tie: by name


def test_repeat_buyer_score_combines_p_alive_and_experience() -> None:
    # orders on days 0, 7 and 14 (twice on day 14: one transaction), a detractor and a low CSAT
    # on day 28: x = 2, t_x = 14/7 = 2 weeks, T = 28/7 = 4 weeks, last order 14 days ago
    state = run([order(NOON_MS + d * DAY_MS) for d in (0, 7, 14)] + [order(NOON_MS + 14 * DAY_MS)])
    assert state.tier == "low"
    FAMILY.apply(state, survey(NOON_MS + 28 * DAY_MS, "nps", 0))
    FAMILY.apply(state, survey(NOON_MS + 28 * DAY_MS, "csat", 1))
    deltas = score_until(state, NOON_MS + 28 * DAY_MS)
    # p = 1 / (1 + 0.793/3.426 * (8.414/6.414)^2.243) = 0.701520
    p = p_alive_by_hand(2, 2.0, 4.0)
    assert p == pytest.approx(0.7015195, abs=1e-7)
    assert state.p_alive == pytest.approx(p, rel=1e-12)
    # z = -3 + 2 * (1 - p) [band 14-29 days] + ln 2 + ln 2 = -3 + 0.596961 + 1.386294 = -1.016745
    assert state.score == pytest.approx(by_hand(2 * (1 - p), LN2, LN2), rel=1e-12)
    assert state.score == pytest.approx(0.2656620, abs=1e-7)
    # without inactive: sigma(-1.613706) = 0.1660748; without either survey: sigma(-1.709892)
    assert state.reasons == (("detractor", 0.1125), ("low_csat", 0.1125), ("inactive", 0.0996))
    # the orders alone scored low (about 0.09 to 0.15, on their days and daily since)
    assert deltas == {f"{GAUGE}|low": -1, f"{GAUGE}|medium": 1, f"{SIGNALS}|medium": 1}
    assert FAMILY.signal(state) == {
        "score": 0.2657,
        "tier": "medium",
        "previous_tier": "low",
        "reasons": [
            {"reason": "detractor", "contribution": 0.1125},
            {"reason": "low_csat", "contribution": 0.1125},
            {"reason": "inactive", "contribution": 0.0996},
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
    # four fresh signals: 16 / (16 + e^3) = 0.4433909: high at once
    assert state.score == pytest.approx(fresh(4), rel=1e-12)
    assert deltas == {f"{GAUGE}|high": 1, f"{SIGNALS}|high": 1}
    message = FAMILY.signal(state)
    assert message is not None
    assert (message["tier"], message["previous_tier"], message["score"]) == ("high", None, 0.4434)
    # each contributes 16 / (16 + e^3) - 8 / (8 + e^3) = 0.1585468; the top 3 by name
    assert message["reasons"] == [
        {"reason": name, "contribution": 0.1585}
        for name in ("detractor", "late_delivery", "low_csat")
    ]


def test_one_time_buyer_uses_the_mbg_term() -> None:
    state = run([order(NOON_MS)])
    FAMILY.rescore(state, NOON_MS + 70 * DAY_MS)
    # x = 0, T = 10 weeks: p = 1 / (1 + a/b * ((alpha + T)/alpha)^r)
    p = 1 / (1 + 0.793 / 2.426 * ((4.414 + 10) / 4.414) ** 0.243)
    assert p == pytest.approx(0.6964829, abs=1e-7)
    # a one-time buyer's 1 - p = 0.3035171 at weight 1: sigma(-2.6964829) = 0.0631812
    assert state.score == pytest.approx(by_hand(1 - p), rel=1e-12)
    assert state.score == pytest.approx(0.0631812, abs=1e-7)
    assert state.reasons == (("inactive", 0.0158),)  # 0.0631812 - 0.0474259
    assert state.tier == "low"


def test_rescoring_later_raises_inactivity_and_decays_experience() -> None:
    state = run([order(NOON_MS + d * DAY_MS) for d in (0, 7, 14)])
    run([survey(NOON_MS + 28 * DAY_MS, "nps", 3)], state)
    before = state.score
    assert FAMILY.next_rescore_ms(state) == NOON_MS + 29 * DAY_MS
    deltas = FAMILY.rescore(state, NOON_MS + 58 * DAY_MS)
    # 30 days later: detractor 0.5 -> e = 0.175; T = 58/7 weeks
    p = p_alive_by_hand(2, 2.0, 58 / 7)
    assert p == pytest.approx(0.4827919, abs=1e-7)
    assert state.p_alive == pytest.approx(p, rel=1e-12)
    # 30 days later: detractor 0.5 -> ln 1.5; the last order 44 days ago (band 30-59 days):
    # z = -3 + 2 * 0.5172081 + 0.4054651 = -1.5601187
    assert state.score == pytest.approx(by_hand(2 * (1 - p), math.log(1.5)), rel=1e-12)
    assert state.score == pytest.approx(0.1736296, abs=1e-7)
    assert before == pytest.approx(by_hand(2 * (1 - p_alive_by_hand(2, 2.0, 4.0)), LN2))
    assert state.score > before  # 0.1531777 on day 28
    # without inactive: sigma(-2.5945349) = 0.0694793; without the detractor: sigma(-1.9655838)
    assert state.reasons == (("inactive", 0.1041), ("detractor", 0.0508))
    assert deltas == {}  # still low (0.1736 < 0.2)
    assert FAMILY.next_rescore_ms(state) == NOON_MS + 59 * DAY_MS


def test_events_arriving_out_of_order_are_scored_at_their_own_times() -> None:
    state = FAMILY.new_state()
    FAMILY.apply(state, survey(NOON_MS + DAY_MS, "nps", 0))
    FAMILY.apply(state, survey(NOON_MS, "csat", 1))  # read second, happened first
    assert FAMILY.next_rescore_ms(state) == NOON_MS
    assert FAMILY.rescore(state, NOON_MS) == {f"{GAUGE}|low": 1}  # the csat only
    assert state.score == pytest.approx(fresh(1), rel=1e-12)
    assert state.reasons == (("low_csat", 0.0431),)
    assert FAMILY.next_rescore_ms(state) == NOON_MS + DAY_MS
    FAMILY.apply(state, survey(NOON_MS + DAY_MS, "ces", 2))  # read third, happened last
    deltas = FAMILY.rescore(state, NOON_MS + DAY_MS)
    # z = -3 + ln 2 + ln 2 + ln(1 + 0.5^(1/30)) = -3 + 1.386294 + 0.681661 = -0.932044
    expected = by_hand(LN2, LN2, math.log(1 + 0.5 ** (1 / 30)))
    assert state.score == pytest.approx(expected, rel=1e-12)
    assert state.score == pytest.approx(0.2825102, abs=1e-7)
    assert deltas == {f"{GAUGE}|low": -1, f"{GAUGE}|medium": 1, f"{SIGNALS}|medium": 1}


def test_a_late_event_counts_from_the_next_scoring_only() -> None:
    state = run([survey(NOON_MS + DAY_MS, "nps", 0), survey(NOON_MS + DAY_MS, "ces", 1)])
    assert state.scored_at_ms == NOON_MS + DAY_MS
    assert state.score == pytest.approx(fresh(2), rel=1e-12)
    # older than the last scoring: that decision stands (not revisited), nothing scored now
    assert FAMILY.apply(state, survey(NOON_MS, "csat", 1)) == {}
    assert state.scored_at_ms == NOON_MS + DAY_MS
    assert state.score == pytest.approx(fresh(2), rel=1e-12)
    assert state.tier == "low"
    assert level(state, "low_csat", NOON_MS + DAY_MS) == 0.5 ** (1 / 30)  # as of its own time
    assert FAMILY.next_rescore_ms(state) == NOON_MS + 2 * DAY_MS  # no scoring in the past
    deltas = FAMILY.rescore(state, NOON_MS + 2 * DAY_MS)
    # z = -3 + 2 ln(1 + 0.5^(1/30)) + ln(1 + 0.5^(2/30)) = -3 + 1.363323 + 0.670309
    decayed_once = math.log(1 + 0.5 ** (1 / 30))
    expected = by_hand(decayed_once, decayed_once, math.log(1 + 0.5 ** (2 / 30)))
    assert state.score == pytest.approx(expected, rel=1e-12)
    assert state.score == pytest.approx(0.2756050, abs=1e-7)
    assert deltas == {f"{GAUGE}|low": -1, f"{GAUGE}|medium": 1, f"{SIGNALS}|medium": 1}
    # an event at the very time of the last scoring is late too
    FAMILY.apply(state, survey(NOON_MS + 2 * DAY_MS, "ces", 1))
    assert FAMILY.next_rescore_ms(state) == NOON_MS + 3 * DAY_MS


def test_when_to_score_does_not_depend_on_what_is_recorded_already() -> None:
    def scorings(state: CustomerProfile, until_ms: int) -> list[int]:
        times = []
        while (due := FAMILY.next_rescore_ms(state)) is not None and due <= until_ms:
            FAMILY.rescore(state, due)
            times.append(due)
        return times

    early, later = survey(NOON_MS, "nps", 0), order(NOON_MS + 2 * DAY_MS + HOUR_MS)
    ahead = FAMILY.new_state()
    FAMILY.apply(ahead, early)
    FAMILY.apply(ahead, later)  # read before the watermark passed anything
    behind = FAMILY.new_state()
    FAMILY.apply(behind, early)
    first = scorings(behind, NOON_MS + 2 * DAY_MS)  # the watermark is past day 2 already
    FAMILY.apply(behind, later)
    # at each event's time and a day after each scoring, whichever comes first
    expected = [NOON_MS, NOON_MS + DAY_MS, NOON_MS + 2 * DAY_MS, later.occurred_at_ms]
    assert scorings(ahead, later.occurred_at_ms) == expected
    assert first + scorings(behind, later.occurred_at_ms) == expected
    assert FAMILY.to_json(ahead) == FAMILY.to_json(behind)


def test_a_scoring_uses_only_what_occurred_by_its_time() -> None:
    state = FAMILY.new_state()
    for item in (
        order(NOON_MS),
        survey(NOON_MS + HOUR_MS, "nps", 0),
        order(NOON_MS + 3 * DAY_MS),
        event("customer.churned", NOON_MS + 5 * DAY_MS, channel="web"),
    ):
        FAMILY.apply(state, item)  # all recorded before any scoring
    FAMILY.rescore(state, NOON_MS)
    # the first order only: x = 0, T = 0; no detractor yet
    assert state.p_alive == pytest.approx(1 / (1 + 0.793 / 2.426), rel=1e-12)
    assert state.reasons == (("inactive", round(by_hand(1 - state.p_alive) - BASELINE, 4)),)
    FAMILY.rescore(state, NOON_MS + 2 * DAY_MS)
    assert state.p_alive == pytest.approx(  # still one order day: the second is to come
        1 / (1 + 0.793 / 2.426 * ((4.414 + 2 / 7) / 4.414) ** 0.243), rel=1e-12
    )
    # the detractor since NOON_MS + 1 h; a one-time buyer's 1 - p beside it
    detractor = math.log(1 + 0.5 ** ((2 * DAY_MS - HOUR_MS) / HALF_LIFE_MS))
    inactive = 1 - state.p_alive
    with_both = by_hand(detractor, inactive)
    assert state.score == pytest.approx(with_both, rel=1e-12)
    assert ("detractor", round(with_both - by_hand(inactive), 4)) in state.reasons
    FAMILY.rescore(state, NOON_MS + 3 * DAY_MS)
    assert state.p_alive == pytest.approx(p_alive_by_hand(1, 3 / 7, 3 / 7), rel=1e-12)
    assert FAMILY.rescore(state, NOON_MS + 4 * DAY_MS) == {}  # not churned yet: still scored
    assert state.tier is not None and FAMILY.next_rescore_ms(state) == NOON_MS + 5 * DAY_MS
    assert FAMILY.rescore(state, NOON_MS + 5 * DAY_MS) == {f"{GAUGE}|{state.tier}": -1}
    assert FAMILY.next_rescore_ms(state) is None


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
    # two fresh signals: 4 / (4 + e^3) = 0.1660748, each contributing 0.0755178
    assert state.score == pytest.approx(fresh(2), rel=1e-12)
    assert state.reasons == (("late_delivery", 0.0755), ("return", 0.0755))


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
    # four fresh signals (the second survey's low CSAT too): 16 / (16 + e^3) = 0.4433909;
    # each contributes 0.1585468, the top 3 by name
    assert state.score == pytest.approx(fresh(4), rel=1e-12)
    assert state.reasons == (("detractor", 0.1585), ("low_csat", 0.1585), ("reopened", 0.1585))


def test_tier_hysteresis_does_not_flap() -> None:
    tier = None
    seen = []
    for score in (0.39, 0.41, 0.38, 0.34):
        tier = tier_for(score, tier, CONFIG)
        seen.append(tier)
    assert seen == ["medium", "high", "high", "medium"]
    assert tier_for(0.16, "medium", CONFIG) == "medium"  # 0.16 >= 0.2 - 0.05
    assert tier_for(0.14, "medium", CONFIG) == "low"
    assert tier_for(0.18, "high", CONFIG) == "medium"  # below 0.35, still within medium's margin
    assert tier_for(0.10, "high", CONFIG) == "low"
    assert tier_for(0.19, "low", CONFIG) == "low"  # up only at the threshold itself
    assert tier_for(0.20, "low", CONFIG) == "medium"
    assert tier_for(0.40, "low", CONFIG) == "high"
    assert tier_for(0.10, None, CONFIG) == "low"


def test_gauge_deltas_across_a_tier_change_sum_to_zero() -> None:
    # one event a millisecond, each scored at its time: 1 ms of decay moves a score by < 1e-9
    state = FAMILY.new_state()
    totals: dict[str, int] = {}
    clock = itertools.count(NOON_MS - 1)

    def scored(make: Callable[[int], Event]) -> dict[str, int]:
        item = make(next(clock))
        assert FAMILY.apply(state, item) == {}
        return score_until(state, item.occurred_at_ms)

    first = scored(lambda at: survey(at, "nps", 5))  # 2 / (2 + e^3) = 0.0906: low
    assert first == {f"{GAUGE}|low": 1}
    add_into(totals, first)
    assert scored(lambda at: survey(at, "csat", 2)) == {}  # 4 / (4 + e^3) = 0.1661: low
    change = scored(lambda at: survey(at, "ces", 3))  # 8 / (8 + e^3) = 0.2848441
    # 1 ms of decay moves each ln(1 + intensity) by < 1e-10
    assert state.score == pytest.approx(fresh(3), abs=1e-9)
    assert change == {f"{GAUGE}|low": -1, f"{GAUGE}|medium": 1, f"{SIGNALS}|medium": 1}
    assert sum(v for k, v in change.items() if k.startswith(GAUGE)) == 0
    # each contributes 8 / (8 + e^3) - 4 / (4 + e^3) = 0.1187693, the newest a hair more
    assert FAMILY.signal(state) == {
        "score": 0.2848,
        "tier": "medium",
        "previous_tier": "low",
        "reasons": [
            {"reason": "high_effort", "contribution": 0.1188},
            {"reason": "low_csat", "contribution": 0.1188},
            {"reason": "detractor", "contribution": 0.1188},
        ],
        "p_alive": 1.0,
        "as_of": "2026-11-22T12:00:00.001Z",
    }
    add_into(totals, change)
    nothing = scored(lambda at: survey(at, "nps", 10))
    assert nothing == {} and FAMILY.signal(state) is None
    # a second detractor: intensity 2, ln 3 instead of ln 2, odds x 1.5: 12 / (12 + e^3)
    assert scored(lambda at: survey(at, "nps", 1)) == {}
    assert state.score == pytest.approx(12 / (12 + E3), abs=1e-9)  # 0.3740003: still medium
    high = scored(lambda at: event("conversation.reopened", at, conversation_id="k"))
    # a reopen doubles the odds: 24 / (24 + e^3) = 0.5443962: high
    assert state.score == pytest.approx(24 / (24 + E3), abs=1e-9)
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
    assert ("repeat_contact", 0.0431) in state.reasons  # 2 / (2 + e^3) - 1 / (1 + e^3)
    # the same conversation opened again, or k-1 itself: no new repeat contact
    run([opened(repeat_at + 2000, "k-2"), opened(repeat_at + 3000, "k-1")], state)
    assert level(state, "repeat_contact", repeat_at) == 1.0
    # 8 days after k-1's resolution (k-2 is not resolved): outside the horizon
    later = t0 + HOUR_MS + 8 * DAY_MS
    run([opened(later, "k-3"), sent(later + 1000, "k-3")], state)
    assert level(state, "repeat_contact", later) == 0.5 ** (5 / 30)
    assert "k-1" not in state.conversations  # forgotten past the horizon


def test_repeat_contact_at_the_horizon_edge_counts() -> None:
    t0 = NOON_MS
    state = run([opened(t0, "k-1"), sent(t0 + 1, "k-1"), resolved(t0 + 2, "k-1")])
    edge = t0 + 2 + 7 * DAY_MS
    run([opened(edge, "k-2"), sent(edge + 1, "k-2")], state)
    assert level(state, "repeat_contact", edge) == 1.0


def test_slow_first_reply_is_a_slow_response_at_the_target() -> None:
    t0 = NOON_MS
    state = run([opened(t0, "k-1"), sent(t0 + 10_000, "k-1", author="bot")])
    assert state.conversations["k-1"][:3] == [t0, 60_000, None]  # waiting: opened, target
    assert FAMILY.next_rescore_ms(state) == t0 + 60_001  # just past the target
    run([sent(t0 + 90_000, "k-1")], state)
    # happened at t0 + 60 s, read 30 s later
    assert level(state, "slow_response", t0 + 90_000) == 0.5 ** (30_000 / HALF_LIFE_MS)
    assert state.conversations["k-1"][3] == ALL_DECIDED
    assert state.score == pytest.approx(
        by_hand(math.log(1 + 0.5 ** (30_000 / HALF_LIFE_MS))), rel=1e-12
    )
    assert FAMILY.next_rescore_ms(state) == t0 + 90_000 + DAY_MS  # nothing waits any more


def test_the_first_reply_by_event_time_decides_in_any_arrival_order() -> None:
    t0 = NOON_MS
    items = [opened(t0, "k-1"), sent(t0 + 30_000, "k-1"), sent(t0 + 90_000, "k-1")]
    for order_ in itertools.permutations(items):
        state = run(order_)
        assert state.signals == {}, order_  # answered after 30 s: not slow
        assert state.score == pytest.approx(BASELINE, rel=1e-12)


def test_reply_at_the_target_is_not_slow() -> None:
    t0 = NOON_MS
    state = run([opened(t0, "k-1"), sent(t0 + 60_000, "k-1"), sent(t0 + 10 * 60_000, "k-1")])
    assert state.signals == {} and state.conversations["k-1"][3] == ALL_DECIDED


def test_unanswered_past_the_target_is_slow_when_rescored() -> None:
    t0 = NOON_MS
    state = FAMILY.new_state()
    FAMILY.apply(state, opened(t0, "k-1"))
    assert FAMILY.next_rescore_ms(state) == t0  # its own time first
    FAMILY.rescore(state, t0)
    assert FAMILY.next_rescore_ms(state) == t0 + 60_001
    FAMILY.rescore(state, t0 + 60_001)
    assert level(state, "slow_response", t0 + 60_000) == 1.0
    assert state.conversations["k-1"][3] == ALL_DECIDED
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
    assert FAMILY.next_rescore_ms(early) == t0 + 120_000 + DAY_MS  # nothing waits


def test_repeat_contact_does_not_depend_on_arrival_order() -> None:
    # k-1 (chat) resolved, k-2 opened on email a day later: the email topic may be read first
    t0 = NOON_MS
    items = [
        opened(t0, "k-1"),
        sent(t0 + 1000, "k-1"),
        resolved(t0 + HOUR_MS, "k-1"),
        opened(t0 + DAY_MS, "k-2", channel="email"),
        sent(t0 + DAY_MS + 1000, "k-2"),
    ]
    for order_ in itertools.permutations(items):
        state = run(order_)
        assert level(state, "repeat_contact", t0 + DAY_MS) == 1.0, order_
        expected = by_hand(math.log(1 + 0.5 ** (1000 / HALF_LIFE_MS)))
        assert state.score == pytest.approx(expected, rel=1e-12)


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
        # the timers: every scoring the watermark (latest event - 5 min) has passed
        state.ledger.add(score_until(state, batch[-1].occurred_at_ms - LATENESS_MS - 1))
    state.ledger.add(score_until(state, batch[-1].occurred_at_ms))
    horizon_conversations = 7 * DAY_MS // step + 1  # 117 within the FCR horizon
    waiting = [c for c in state.conversations.values() if c[3] != ALL_DECIDED]
    assert len(waiting) <= 1
    assert state.pending == []
    assert sum(len(c) > 4 for c in state.conversations.values()) <= horizon_conversations
    assert len(state.conversations) <= horizon_conversations
    assert len(state.conversations) <= MAX_CONVERSATIONS
    assert len(state.ledger.seen) <= 3 * (DAY_MS // step + 1)  # dedup horizon: one day
    # 100 slow responses and 899 repeat contacts are two decaying intensities, not lists
    assert set(state.signals) == {"slow_response", "repeat_contact"}
    assert len(orjson.dumps(family.to_json(state))) < 10_000
    # one slow response every 10 x 5184 s, one repeat contact every 5184 s, each decaying with
    # a half-life of 30 days: far from capped, the odds are multiplied by 1 + each intensity
    at = state.scored_at_ms
    assert at is not None
    slow, repeat = level(state, "slow_response", at), level(state, "repeat_contact", at)
    assert 50 < slow < 100 and 500 < repeat < 1000  # geometric sums, 1 / (1 - 0.5^(step/30 d))
    assert state.score == pytest.approx(by_hand(math.log1p(slow), math.log1p(repeat)), rel=1e-9)
    assert state.tier == "high"
    assert all(key.startswith((GAUGE, SIGNALS)) for key in state.ledger.totals)  # no events


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


def test_purchase_rhythm_for_the_model() -> None:
    days = PurchaseDays()
    assert days.rhythm(FAMILY.params, 16) is None  # no order yet
    for day in (10, 5, 7):
        days.add(day)
    rhythm = days.rhythm(FAMILY.params, 16)
    assert rhythm is not None
    # x = 2, t_x = 5/7, T = 11/7 weeks; 3 order days; the last 6 days before day 16
    assert rhythm.p_alive == pytest.approx(p_alive_by_hand(2, 5 / 7, 11 / 7), rel=1e-12)
    assert (rhythm.order_days, rhythm.days_since_last) == (3, 6)
    state = run([order(NOON_MS), order(NOON_MS + 7 * DAY_MS)])
    p, values = FAMILY.features(state, NOON_MS + 7 * DAY_MS)
    # scored on the day of the last order: band 0-6 days, x = 1, t_x = T = 1 week
    assert p == pytest.approx(p_alive_by_hand(1, 1.0, 1.0), rel=1e-12)
    assert values["inactive_0d"] == pytest.approx(1 - p, rel=1e-12)
    assert sum(v for k, v in values.items() if k != "inactive_0d") == 0


# --- lifecycle and state -----------------------------------------------------------------


def test_churned_customer_leaves_the_gauge_and_is_never_signalled_again() -> None:
    state = run([survey(NOON_MS, "nps", 0), survey(NOON_MS, "csat", 1), survey(NOON_MS, "ces", 1)])
    assert state.tier == "medium"  # 8 / (8 + e^3) = 0.2848
    assert FAMILY.apply(state, event("customer.churned", NOON_MS + HOUR_MS, channel="web")) == {}
    assert FAMILY.next_rescore_ms(state) == NOON_MS + HOUR_MS
    FAMILY.apply(state, survey(NOON_MS + 2 * HOUR_MS, "ces", 1))  # after the churn: ignored
    deltas = FAMILY.rescore(state, NOON_MS + HOUR_MS)
    assert deltas == {f"{GAUGE}|medium": -1}  # cx_churned_customers_total is feedback's
    assert deltas.times == {f"{GAUGE}|medium": NOON_MS + HOUR_MS}
    assert FAMILY.signal(state) is None
    assert FAMILY.next_rescore_ms(state) is None
    assert FAMILY.apply(state, survey(NOON_MS + 3 * HOUR_MS, "ces", 1)) == {}
    assert FAMILY.rescore(state, NOON_MS + 30 * DAY_MS) == {}
    assert state.signals == {} and state.pending == []


def test_a_late_churn_ends_the_profile_at_the_next_scoring() -> None:
    state = run(
        [survey(NOON_MS, "nps", 0), survey(NOON_MS, "ces", 1), survey(NOON_MS + DAY_MS, "csat", 1)]
    )
    assert state.tier == "medium"  # three signals, one a day younger: 0.2802
    FAMILY.apply(state, event("customer.churned", NOON_MS + HOUR_MS, channel="web"))
    assert state.tier == "medium"  # the scoring at NOON_MS + DAY_MS stands
    assert FAMILY.next_rescore_ms(state) == NOON_MS + 2 * DAY_MS
    assert FAMILY.rescore(state, NOON_MS + 2 * DAY_MS) == {f"{GAUGE}|medium": -1}
    assert FAMILY.next_rescore_ms(state) is None


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
    FAMILY.apply(state, survey(t0 + 12 * DAY_MS, "ces", 2))  # recorded, not yet scored
    FAMILY.apply(state, order(t0 + 12 * DAY_MS))
    assert state.conversations["k-1"][4:] == [t0 + 10 * DAY_MS + 2000]  # its resolution
    assert state.pending and state.tier
    data = orjson.loads(orjson.dumps(FAMILY.to_json(state)))
    copy = FAMILY.from_json(data)
    assert FAMILY.to_json(copy) == FAMILY.to_json(state)
    assert copy == state
    later = t0 + 40 * DAY_MS
    assert FAMILY.rescore(copy, later) == FAMILY.rescore(state, later)
    assert FAMILY.to_json(copy) == FAMILY.to_json(state)
    assert FAMILY.from_json(FAMILY.to_json(FAMILY.new_state())) == FAMILY.new_state()


def test_signal_is_cleared_by_the_next_scoring() -> None:
    state = run([survey(NOON_MS, "nps", 0), survey(NOON_MS, "csat", 1), survey(NOON_MS, "ces", 1)])
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
        {"churn_weights": {"detractor": -0.5}},
        {"churn_weights": {"inactive_30d": math.nan}},
        {"churn_weights": {"intercept": math.inf}},
        {"churn_weights": {"angry": 0.5}},
        {"bgnbd": (0.243, 4.414, 0.0, 2.426)},
    ],
)
def test_bad_churn_configuration_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        KpiConfig(**changes)


def test_partial_weights_keep_the_other_defaults() -> None:
    family = ChurnRisk(KpiConfig(churn_weights={"detractor": 0.5, "intercept": -2.0}))
    state = family.new_state()
    family.apply(state, survey(NOON_MS, "nps", 0))
    family.apply(state, survey(NOON_MS, "csat", 1))
    score_until(state, NOON_MS, family)
    # z = -2 + 0.5 ln 2 + 1 ln 2 (low_csat keeps its default): odds e^-2 * 2^1.5
    assert state.score == pytest.approx(2**1.5 / (2**1.5 + math.exp(2)), rel=1e-12)
    assert state.score == pytest.approx(0.2768223, abs=1e-7)


# --- event time: arrival order does not matter within the watermark ---------------------


def c5_topics() -> dict[str, list[Event]]:
    """Customer c5 of the known stream, per source topic (its channel), in each topic's order:
    two orders and two deliveries (one late) on shop, a return and its refund on returns, the
    churn on web."""
    validator = EventValidator(max_bytes=MAX_BYTES, max_future_ms=None)
    topics: dict[str, list[Event]] = {}
    for line in LINES:
        if b'"customer_id":"c5"' in line:
            result = validator.validate(line, orjson.loads(line)["channel"])
            assert isinstance(result, Event), result
            topics.setdefault(result.channel, []).append(result)
    return topics


def interleavings(topics: list[list[Event]]) -> Iterator[list[Event]]:
    """Every merge of the topics that keeps each topic's own order."""
    if not any(topics):
        yield []
        return
    for index, topic in enumerate(topics):
        if topic:
            rest = [*topics[:index], topic[1:], *topics[index + 1 :]]
            for tail in interleavings(rest):
                yield [topic[0], *tail]


def read_live(
    topics: dict[str, list[Event]], order_: list[Event]
) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, int], dict[str, int]]:
    """Process the events in the order read, through `ChurnProcessor` and a dict table, firing
    the timers after each event at the contract's watermark: the minimum over the source topics
    (assigned from the start, so each holds it until it shows data) of the latest event time
    read, less 5 minutes; at the end every topic is idle: the latest event time less 5 minutes,
    as `cxpulse compute` settles. Returns the signals, the tier totals then, and the tier totals
    once the watermark has passed the churn too."""
    processor = ChurnProcessor(ChurnRisk(CONFIG))
    table: dict[str, bytes] = {}
    idle_s = 60.0
    watermark = Watermark(CONFIG.allowed_lateness_ms, idle_s)
    for topic in topics:
        watermark.assign(topic, 0.0)
    for offset, item in enumerate(order_):
        processor.handle(table.get, table.__setitem__, 0, offset, item, f"{item.channel}:{offset}")
        watermark.observe(item.channel, item.occurred_at_ms, 0.0)
        current = watermark.value_ms(0.0)
        if current is not None:
            processor.fire_timers(0, current, table.get, table.__setitem__)
    final = watermark.value_ms(idle_s)
    assert final == max(e.occurred_at_ms for e in order_) - LATENESS_MS
    processor.fire_timers(0, final, table.get, table.__setitem__)
    settled = dict(processor.totals_by_partition()[0])
    churned = max(e.occurred_at_ms for e in order_ if e.type == "customer.churned")
    processor.fire_timers(0, churned + 1, table.get, table.__setitem__)
    return processor.outbox, settled, dict(processor.totals_by_partition()[0])


def test_every_interleaving_of_c5s_topics_gives_the_signals_of_file_order() -> None:
    topics = c5_topics()
    assert {t: len(events) for t, events in topics.items()} == {"shop": 4, "returns": 2, "web": 1}
    in_file_order = sorted(
        (e for events in topics.values() for e in events), key=lambda e: e.occurred_at_ms
    )
    expected = read_live(topics, in_file_order)
    signals, settled, after_churn = expected
    # the return (2026-10-25T12:00) on top of a late delivery two hours before and a one-time
    # buyer's inactivity (two orders on 2026-10-22, T = 3/7 weeks: p = 0.7494457): medium;
    # the churn (2026-10-27) is past the final watermark, then ends it
    assert [
        (key, value["tier"], value["previous_tier"], value["as_of"]) for key, value in signals
    ] == [("c5", "medium", "low", "2026-10-25T12:00:00.000Z")]
    p = 1 / (1 + 0.793 / 2.426 * ((4.414 + 3 / 7) / 4.414) ** 0.243)
    # z = -3 + (1 - p) + ln 2 + ln(1 + 0.5^(2 h / 30 d)) = -1.3641136: 0.2035725
    assert by_hand(1 - p, LN2, math.log(1 + 0.5 ** (2 / 720))) == pytest.approx(0.2035725, abs=1e-7)
    assert signals[0][1]["score"] == 0.2036
    assert signals[0][1]["reasons"] == [
        {"reason": "return", "contribution": 0.0903},
        {"reason": "late_delivery", "contribution": 0.0902},
        {"reason": "inactive", "contribution": 0.0376},
    ]
    assert settled == {f"{GAUGE}|medium": 1, f"{SIGNALS}|medium": 1}
    assert after_churn == {f"{SIGNALS}|medium": 1}
    orders = list(interleavings(list(topics.values())))
    assert len(orders) == 105  # 7! / (4! 2! 1!)
    differing = [order_ for order_ in orders if read_live(topics, order_) != expected]
    assert differing == []


def test_state_stays_bounded_over_1000_events_in_60_days() -> None:
    """A busy customer through `ChurnProcessor`: orders, deliveries, returns, surveys and
    conversations, one every 5184 s, timers fired after each at the latest time less 5 min."""
    processor = ChurnProcessor(ChurnRisk(CONFIG))
    table: dict[str, bytes] = {}
    step = 60 * DAY_MS // 1000

    def make(i: int, at: int) -> Event:
        cid = f"k-{i // 4}"
        kinds: list[Callable[[], Event]] = [
            lambda: order(at),
            lambda: event(
                "order.delivered", at, channel="shop", order_id=f"o-{i}", promised_at=iso(at - 1)
            ),
            lambda: survey(at, ("nps", "csat", "ces")[i % 3], 1),
            lambda: event(
                "return.requested",
                at,
                channel="returns",
                order_id=f"o-{i}",
                return_id=f"r-{i}",
                reason="other",
            ),
            lambda: opened(at, cid),
            lambda: sent(at + 90_000, cid),
            lambda: event("conversation.reopened", at, conversation_id=cid),
            lambda: resolved(at, cid),
        ]
        return kinds[i % len(kinds)]()

    sizes = []
    latest = NOON_MS
    for i in range(1000):
        item = make(i, NOON_MS + i * step)
        processor.handle(table.get, table.__setitem__, 0, i, item, f"cx.events:0:{i}")
        latest = max(latest, item.occurred_at_ms)
        processor.fire_timers(0, latest - LATENESS_MS, table.get, table.__setitem__)
        sizes.append(len(table["c-1"]))
    state = processor.load(table["c-1"])
    assert len(state.pending) <= 2  # only what the watermark has not passed yet
    assert len(state.purchases.recent) <= MAX_RECENT_DAYS
    assert set(state.signals) <= set(FAMILY.weights)
    assert len(state.conversations) <= 7 * DAY_MS // step + 2  # the FCR horizon's
    assert len(state.ledger.seen) <= DAY_MS // step + 2  # the dedup horizon's
    assert max(sizes) < 4_000  # bytes of the table value
    assert max(sizes[500:]) <= max(sizes[:500]) * 1.5  # flat, not growing with the history

    # a watermark that never moves: nothing is scored, and what waits is capped
    stuck = ChurnProcessor(ChurnRisk(CONFIG))
    table.clear()
    for i in range(1000):
        item = make(i, NOON_MS + i * step)
        stuck.handle(table.get, table.__setitem__, 0, i, item, f"cx.events:0:{i}")
    state = stuck.load(table["c-1"])
    assert state.scored_at_ms is None and len(state.pending) == MAX_PENDING
    assert len(state.conversations) <= MAX_CONVERSATIONS
    assert len(state.ledger.seen) <= DAY_MS // step + 2
    assert len(table["c-1"]) < 20_000


def test_a_customer_quiet_for_long_is_no_longer_rescored_daily() -> None:
    """A lone event far in the past (stale or hostile input) costs a bounded number of daily
    scorings (400 days' worth), not one per day up to the watermark."""
    state = FAMILY.new_state()
    long_ago = DAY0_MS - 3650 * DAY_MS  # ten years before the watermark
    FAMILY.apply(state, order(long_ago))
    scorings = 0
    due = FAMILY.next_rescore_ms(state)
    while due is not None and due < DAY0_MS:
        FAMILY.rescore(state, due)
        scorings += 1
        due = FAMILY.next_rescore_ms(state)
    # the event itself, then daily up to 400 days after it: 1 + 400 scorings
    assert scorings == 401
    assert due is None and state.scored_at_ms == long_ago + 400 * DAY_MS
    # a new event wakes the schedule up again
    FAMILY.apply(state, order(DAY0_MS))
    assert FAMILY.next_rescore_ms(state) == DAY0_MS


def test_scorings_that_move_no_tier_are_kept_with_keep_the_others_put() -> None:
    """The worker keeps daily scorings that change no series in memory only (`keep`): a
    restart scores the same days again from the stored profile. A tier change is put."""
    processor = ChurnProcessor(ChurnRisk(CONFIG))
    table: dict[str, bytes] = {}
    put: list[int] = []
    kept: list[int] = []

    def put_value(customer_id: str, value: bytes) -> None:
        put.append(processor.load(value).scored_at_ms or 0)
        table[customer_id] = value

    def keep_value(customer_id: str, value: bytes) -> None:
        kept.append(processor.load(value).scored_at_ms or 0)
        table[customer_id] = value

    processor.handle(table.get, table.__setitem__, 0, 0, order(NOON_MS), "cx.events:0:0")
    # the first scoring assigns a tier (gauge +1): put; the next days move nothing: kept
    processor.fire_timers(0, NOON_MS + 3 * DAY_MS + 1, table.get, put_value, None, keep_value)
    assert put == [NOON_MS]
    assert kept == [NOON_MS + day * DAY_MS for day in (1, 2, 3)]
    # what was kept is what the next scoring starts from
    assert processor.load(table["c-1"]).scored_at_ms == NOON_MS + 3 * DAY_MS
