"""agents/windows.py: rolling event-time windows, mergeable partials and `cx.kpi` snapshots,
worked out by hand (contract sections 2 and 3, README "Rolling windows").

Default windows (agents/config.py): 1h (minute buckets), 24h and 7d (hour buckets); buckets are
kept for the longest window of their granularity plus a 5 min grace behind the watermark.
A window of W at `as_of` covers the buckets that start in [E - W, E), E = `as_of` floored to
the window's granularity. Times below are UTC on 2026-10-22 ("day 0") unless said otherwise.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from agents.config import KpiConfig
from agents.ledger import Deltas
from agents.pipeline_core import Families
from agents.windows import (
    ALL,
    RELATIVE_ACCURACY,
    SNAPSHOT_CHANNELS,
    Partial,
    WindowView,
    gauges_of,
    snapshot,
    window_name,
)
from schemas.events import CHANNELS, Event
from schemas.validate import EventValidator

DAY0 = datetime(2026, 10, 22, tzinfo=UTC)
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
ORDERS = "cx_orders_total|shop"


def at(clock: str, day: int = 0) -> int:
    """Epoch ms of `clock` (HH:MM:SS or HH:MM:SS.mmm) on 2026-10-22 plus `day` days, UTC."""
    hms, _, millis = clock.partition(".")
    hours, minutes, seconds = (int(part) for part in hms.split(":"))
    moment = DAY0 + timedelta(days=day, hours=hours, minutes=minutes, seconds=seconds)
    return int(moment.timestamp()) * 1000 + int(millis or 0)


def test_the_time_helper() -> None:
    # 2026-10-31T00:00:00Z is 1_793_404_800 s (tests/known_stream.py), 9 days after day 0.
    assert at("00:00:00", day=9) == 1_793_404_800_000
    assert at("10:00:00.250") == 1_793_404_800_000 - 9 * 86_400_000 + 10 * HOUR_MS + 250


# --- window names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "name"),
    [
        (60, "1m"),
        (3600, "1h"),
        (5400, "90m"),  # 1.5 h is no whole number of hours: 5400 / 60 = 90 minutes
        (6 * 3600, "6h"),
        (86400, "24h"),  # named in hours below two days, as the default config says it
        (172800, "2d"),
        (2 * 86400, "2d"),
        (36 * 3600, "36h"),  # 129600 s: not whole days (1.5 d), whole hours
        (604800, "7d"),  # 7 * 86400
        (90, "90s"),
    ],
)
def test_window_name(seconds: int, name: str) -> None:
    assert window_name(seconds) == name


# --- buckets and window bounds ------------------------------------------------------------------


def counts(view: WindowView, granularity_s: int) -> dict[int, int]:
    """Bucket start -> the orders counted in it, for one granularity."""
    return {
        start: bucket.counts.get(ORDERS, 0) for start, bucket in view.buckets[granularity_s].items()
    }


def orders_in(view: WindowView, window_s: int, as_of_ms: int) -> int:
    return view.partial(window_s, as_of_ms).counts.get(ORDERS, 0)


def test_default_windows_use_minute_and_hour_buckets() -> None:
    view = WindowView(KpiConfig())
    assert set(view.buckets) == {60, 3600}  # 1h -> minutes; 24h, 7d -> hours


def test_entries_land_in_minute_and_hour_buckets() -> None:
    view = WindowView(KpiConfig())
    view.add_entries(
        [
            [at("10:00:00"), ORDERS, 1],
            [at("10:00:59.999"), ORDERS, 2],  # same minute
            [at("10:01:00"), ORDERS, 4],  # next minute, same hour
            [at("11:00:00"), ORDERS, 8],  # next hour
        ]
    )
    assert counts(view, 60) == {at("10:00:00"): 1 + 2, at("10:01:00"): 4, at("11:00:00"): 8}
    assert counts(view, 3600) == {at("10:00:00"): 1 + 2 + 4, at("11:00:00"): 8}


def test_the_1h_window_covers_the_minutes_starting_in_the_hour_before_as_of_floored() -> None:
    view = WindowView(KpiConfig())
    view.add_entries(
        [
            [at("09:59:59.999"), ORDERS, 1],  # bucket 09:59: before the window
            [at("10:00:00"), ORDERS, 2],  # bucket 10:00: exactly the window start -> in
            [at("10:59:59.999"), ORDERS, 4],  # bucket 10:59: the last minute -> in
            [at("11:00:00"), ORDERS, 8],  # bucket 11:00: exactly the window end -> out
        ]
    )
    # as_of 11:00:00, 11:00:30 and 11:00:59.999 all floor to E = 11:00: [10:00, 11:00) -> 2 + 4
    assert orders_in(view, 3600, at("11:00:00")) == 6
    assert orders_in(view, 3600, at("11:00:30")) == 6
    assert orders_in(view, 3600, at("11:00:59.999")) == 6
    # one minute later: [10:01, 11:01) -> 4 + 8
    assert orders_in(view, 3600, at("11:01:00")) == 12
    # one millisecond earlier: E = 10:59, [09:59, 10:59) -> 1 + 2
    assert orders_in(view, 3600, at("10:59:59.999")) == 3


def test_the_24h_and_7d_windows_advance_by_the_hour() -> None:
    view = WindowView(KpiConfig())
    view.add_entries(
        [
            [at("09:59:59.999"), ORDERS, 1],  # hour bucket 09:00, day 0
            [at("10:00:00"), ORDERS, 2],  # hour bucket 10:00, day 0
            [at("09:59:59.999", day=1), ORDERS, 4],  # hour bucket 09:00, day 1
            [at("10:00:00", day=1), ORDERS, 8],  # hour bucket 10:00, day 1
            [at("10:00:00", day=7), ORDERS, 16],  # hour bucket 10:00, day 7
        ]
    )
    # 24h as_of day 1 10:30 -> E = day 1 10:00: [day 0 10:00, day 1 10:00) -> 2 + 4
    assert orders_in(view, 86400, at("10:30:00", day=1)) == 6
    # as_of day 1 10:59:59.999 floors to the same hour
    assert orders_in(view, 86400, at("10:59:59.999", day=1)) == 6
    # as_of day 1 11:00 -> [day 0 11:00, day 1 11:00) -> 4 + 8
    assert orders_in(view, 86400, at("11:00:00", day=1)) == 12
    # 7d as_of day 7 10:30 -> [day 0 10:00, day 7 10:00) -> 2 + 4 + 8
    assert orders_in(view, 604800, at("10:30:00", day=7)) == 14
    # 7d as_of day 7 11:00 -> [day 0 11:00, day 7 11:00) -> 4 + 8 + 16
    assert orders_in(view, 604800, at("11:00:00", day=7)) == 28
    # the 1h window at day 7 10:30 only sees the minute bucket 10:00 of day 7
    assert orders_in(view, 3600, at("10:30:00", day=7)) == 16


def test_a_90_minute_window_uses_minute_buckets() -> None:
    view = WindowView(KpiConfig(windows_s=(5400,)))
    assert set(view.buckets) == {60}
    view.add_entries([[at("09:29:00"), ORDERS, 1], [at("09:30:00"), ORDERS, 2]])
    # as_of 11:00:10 -> E = 11:00, [09:30, 11:00)
    assert orders_in(view, 5400, at("11:00:10")) == 2


def test_expire_drops_buckets_past_the_longest_window_plus_grace() -> None:
    view = WindowView(KpiConfig())  # grace 5 min
    view.add_entries(
        [
            [at("10:54:59.999"), ORDERS, 1],  # minute bucket 10:54
            [at("10:55:00"), ORDERS, 2],  # minute bucket 10:55
            [at("10:59:59.999", day=-7), ORDERS, 4],  # hour bucket 10:00, day -7
            [at("11:00:00", day=-7), ORDERS, 8],  # hour bucket 11:00, day -7
        ]
    )
    view.expire(at("12:00:30"))
    # minutes: E = 12:00, horizon = 12:00 - 1 h - 5 min = 10:55; a bucket goes once
    # start + 1 min <= 10:55: 10:54 goes (ends 10:55), 10:55 stays (ends 10:56)
    assert counts(view, 60) == {at("10:55:00"): 2}
    assert view.horizon_ms[60] == at("10:55:00")
    # hours: E = 12:00, horizon = 12:00 - 7 d - 5 min = day -7 11:55; 10:00 (ends 11:00) goes,
    # 11:00 (ends 12:00) stays; day 0's 10:00 bucket holds the two minute entries
    assert view.horizon_ms[3600] == at("11:55:00", day=-7)
    assert counts(view, 3600) == {at("11:00:00", day=-7): 8, at("10:00:00"): 1 + 2}

    # Later entries for dropped buckets are ignored, for that granularity only.
    view.add_entries(
        [
            [at("10:54:30"), ORDERS, 16],  # minute 10:54 is gone; hour 10:00 day 0 is not
            [at("10:55:30"), ORDERS, 32],  # minute 10:55 is still there
            [at("10:30:00", day=-7), ORDERS, 64],  # hour 10:00 day -7 is gone
        ]
    )
    assert counts(view, 60) == {at("10:55:00"): 2 + 32}
    assert counts(view, 3600) == {at("11:00:00", day=-7): 8, at("10:00:00"): 1 + 2 + 16 + 32}

    # An older watermark never moves the horizon back: the bucket stays dropped.
    view.expire(at("08:00:00"))
    assert view.horizon_ms[60] == at("10:55:00")
    view.add_entries([[at("10:54:45"), ORDERS, 128]])
    assert counts(view, 60) == {at("10:55:00"): 34}


def test_expire_keeps_everything_the_windows_can_still_reach() -> None:
    view = WindowView(KpiConfig())
    view.add_entries([[at("10:00:00"), ORDERS, 1], [at("10:00:00", day=1), ORDERS, 2]])
    view.expire(at("10:59:59", day=7))
    # 7d as_of day 7 10:59:59 -> [day 0 10:00, day 7 10:00) -> both
    assert orders_in(view, 604800, at("10:59:59", day=7)) == 3
    view.expire(at("11:05:00", day=7))  # horizon day 0 10:55: day 0 10:00 ends 11:00, kept
    assert counts(view, 3600) == {at("10:00:00"): 1, at("10:00:00", day=1): 2}
    view.expire(at("12:00:00", day=7))  # horizon day 0 11:55: day 0 10:00 ends 11:00, dropped
    assert counts(view, 3600) == {at("10:00:00", day=1): 2}


# --- DDSketch quantiles -------------------------------------------------------------------------

FRT = "cx_first_response_seconds|chat"
SAMPLES = list(range(1, 10_001))  # FRT 1 s ... 10000 s


def exact_quantile(sorted_values: list[int], q: float) -> int:
    """The value DDSketch approximates: it looks up rank q * (n - 1) and returns the bucket of
    the first value whose cumulative count exceeds it, i.e. sorted_values[floor(q * (n - 1))].
    Its guarantee (relative accuracy 0.01): |returned - that value| <= 0.01 * that value."""
    return sorted_values[int(q * (len(sorted_values) - 1))]


def frt_partial(values: Iterable[int]) -> Partial:
    partial = Partial()
    for seconds in values:
        partial.add("s|" + FRT, seconds * 1000)  # samples are milliseconds
    return partial


def shuffled() -> list[int]:
    values = list(SAMPLES)
    random.Random(20261022).shuffle(values)  # arrival order does not matter
    return values


def test_ddsketch_quantiles_are_within_one_percent_of_the_exact_ones() -> None:
    partial = frt_partial(shuffled())
    sketch = partial.sketches[FRT]
    assert sketch.count == 10_000
    # rank q * 9999: p50 -> index 4999 -> 5000 s; p90 -> 8999.1 -> 8999 -> 9000 s;
    # p99 -> 9899.01 -> 9899 -> 9900 s
    expected = {0.5: 5000, 0.9: 9000, 0.99: 9900}
    for q, value in expected.items():
        assert exact_quantile(SAMPLES, q) == value
        estimate = sketch.get_quantile_value(q)
        assert estimate is not None
        assert abs(estimate - value) <= RELATIVE_ACCURACY * value, (q, estimate)
    # The snapshot reports the same values, rounded to the millisecond (+-0.0005 s).
    frt = snapshot(ALL, 3600, at("11:00:00"), partial, {}, 1)["first_response_seconds"]
    assert frt["count"] == 10_000
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        value = expected[q]
        assert abs(frt[name] - value) <= RELATIVE_ACCURACY * value + 0.0005, (name, frt[name])


def test_merged_sketches_give_the_quantiles_of_one_sketch_over_all_values() -> None:
    values = shuffled()
    whole = frt_partial(values)
    evens = frt_partial(v for v in values if v % 2 == 0)
    odds = frt_partial(v for v in values if v % 2 == 1)
    merged = Partial()
    merged.merge(evens)
    merged.merge(odds)
    one, two = whole.sketches[FRT], merged.sketches[FRT]
    assert two.count == one.count == 10_000
    for q in (0.0, 0.25, 0.5, 0.9, 0.99, 1.0):
        assert two.get_quantile_value(q) == one.get_quantile_value(q)
    # merging into a partial did not change the inputs
    assert evens.sketches[FRT].count == odds.sketches[FRT].count == 5_000


def test_partial_json_round_trip_keeps_counts_and_quantiles() -> None:
    partial = frt_partial(shuffled())
    partial.add("s|" + FRT, 0)  # a zero FRT goes to the sketch's zero count
    partial.add("s|cx_resolution_seconds|phone", 900_000)
    partial.add(ORDERS, 3)
    partial.add("cx_events_total|chat|message.sent", 2)
    wire = orjson.dumps(partial.to_json())  # what goes on the partials topic
    back = Partial.from_json(orjson.loads(wire))
    assert back.counts == {ORDERS: 3, "cx_events_total|chat|message.sent": 2}
    assert set(back.sketches) == {FRT, "cx_resolution_seconds|phone"}
    for key, sketch in partial.sketches.items():
        assert back.sketches[key].count == sketch.count
        for q in (0.0, 0.0001, 0.5, 0.9, 0.99, 1.0):
            assert back.sketches[key].get_quantile_value(q) == sketch.get_quantile_value(q)
    assert back.sketches[FRT].get_quantile_value(0.0) == 0  # the zero survived
    # and the snapshot computed from either is the same document
    assert snapshot(ALL, 3600, 0, back, {}, 1) == snapshot(ALL, 3600, 0, partial, {}, 1)
    assert orjson.dumps(back.to_json()) == wire


# --- snapshot values from a hand-made partial ---------------------------------------------------

AS_OF = at("10:30:00.123")  # 2026-10-22T10:30:00.123Z


def hand_made() -> Partial:
    partial = Partial()
    for key, value in {
        "cx_events_total|chat|conversation.opened": 2,
        "cx_events_total|phone|survey.answered": 4,
        "cx_events_total|shop|order.placed": 4,
        "cx_events_duplicate_total": 5,  # not an event count
        "cx_conversations_opened_total|chat": 2,
        "cx_conversations_resolved_total|chat": 1,
        "cx_conversations_reopened_total|phone": 1,
        "cx_first_response_breaches_total|phone": 1,
        # NPS: chat 2 promoters + 1 passive, email 1 promoter + 1 detractor
        "cx_survey_responses_total|nps|chat|promoter": 2,
        "cx_survey_responses_total|nps|chat|passive": 1,
        "cx_survey_responses_total|nps|email|promoter": 1,
        "cx_survey_responses_total|nps|email|detractor": 1,
        "cx_survey_score_total|nps|chat": 10 + 9 + 8,  # must not leak into the CES mean
        "cx_survey_score_total|nps|email": 10 + 2,
        # CSAT: phone 3 satisfied + 1 neutral, chat 1 unsatisfied
        "cx_survey_responses_total|csat|phone|satisfied": 3,
        "cx_survey_responses_total|csat|phone|neutral": 1,
        "cx_survey_responses_total|csat|chat|unsatisfied": 1,
        "cx_survey_score_total|csat|phone": 5 + 4 + 4 + 3,
        "cx_survey_score_total|csat|chat": 1,
        # CES (chat): scores 7, 5 (easy), 4 (neutral), 2 (hard)
        "cx_survey_responses_total|ces|chat|easy": 2,
        "cx_survey_responses_total|ces|chat|neutral": 1,
        "cx_survey_responses_total|ces|chat|hard": 1,
        "cx_survey_score_total|ces|chat": 7 + 5 + 4 + 2,
        # FCR: chat 3 yes + 1 no, email 2 no
        "cx_first_contact_resolutions_total|chat|resolved_first_contact": 3,
        "cx_first_contact_resolutions_total|chat|not_first_contact": 1,
        "cx_first_contact_resolutions_total|email|not_first_contact": 2,
        # commerce: 4 orders (shop), 2 returns, 1 of 4 deliveries late (no channel label)
        "cx_orders_total|shop": 4,
        "cx_order_value_total:micros|shop|EUR": 40_000_000,
        "cx_returns_total|late_delivery": 1,
        "cx_returns_total|damaged": 1,
        "cx_deliveries_total|late": 1,
        "cx_deliveries_total|on_time": 3,
        "cx_churned_customers_total": 1,
    }.items():
        partial.add(key, value)
    partial.add("s|cx_first_response_seconds|chat", 30_000)
    partial.add("s|cx_first_response_seconds|chat", 45_000)
    partial.add("s|cx_first_response_seconds|phone", 90_000)
    partial.add("s|cx_resolution_seconds|chat", 600_000)
    return partial


GAUGES = {
    "cx_backlog_conversations|chat": 2,
    "cx_backlog_conversations|phone": 1,
    "cx_unanswered_conversations|chat": 1,
}


def snap(channel: str, partial: Partial | None = None, window_s: int = 3600) -> dict[str, Any]:
    whole = hand_made() if partial is None else partial
    return snapshot(channel, window_s, AS_OF, whole.for_channel(channel), GAUGES, 3)


def test_snapshot_of_everything() -> None:
    doc = snap(ALL)
    assert list(doc) == [
        "schema", "channel", "window", "window_seconds", "as_of", "as_of_ms", "events",
        "conversations", "first_response_seconds", "resolution_seconds", "fcr", "nps", "csat",
        "ces", "commerce", "backlog", "unanswered", "partitions", "quantile_relative_accuracy",
    ]  # fmt: skip
    assert doc["schema"] == "cx.kpi/v1"
    assert (doc["channel"], doc["window"], doc["window_seconds"]) == ("all", "1h", 3600)
    assert doc["as_of"] == "2026-10-22T10:30:00.123Z"
    assert doc["as_of_ms"] == AS_OF
    assert doc["events"] == 2 + 4 + 4  # duplicates are not events
    assert doc["conversations"] == {
        "opened": 2,
        "resolved": 1,
        "reopened": 1,
        "first_response_breaches": 1,
    }
    # 3 promoters, 1 passive, 1 detractor: 100 * (3 - 1) / 5 = 40
    assert doc["nps"] == {
        "responses": 5,
        "promoters": 3,
        "passives": 1,
        "detractors": 1,
        "score": 40.0,
    }
    # CSAT: 3 satisfied of 5 answers
    assert doc["csat"] == {"responses": 5, "satisfied_share": 0.6}
    # CES: (7 + 5 + 4 + 2) / 4 = 4.5; 2 easy of 4
    assert doc["ces"] == {"responses": 4, "mean": 4.5, "easy_share": 0.5}
    # FCR: 3 yes / (3 yes + 3 no)
    assert doc["fcr"] == {"resolved_first_contact": 3, "not_first_contact": 3, "rate": 0.5}
    # return rate 2 returns / 4 orders; 1 of 4 deliveries late
    assert doc["commerce"] == {
        "orders": 4,
        "returns": 2,
        "return_rate": 0.5,
        "late_deliveries": 1,
        "deliveries": 4,
    }
    assert (doc["backlog"], doc["unanswered"]) == (2 + 1, 1)
    assert doc["partitions"] == 3
    assert doc["quantile_relative_accuracy"] == 0.01
    # FRT samples 30, 45, 90 s: ranks q * 2 -> p50 index 1 (45 s), p90 1.8 -> 1 (45 s),
    # p99 1.98 -> 1 (45 s); each within 1 %
    frt = doc["first_response_seconds"]
    assert frt["count"] == 3
    for name in ("p50", "p90", "p99"):
        assert frt[name] == pytest.approx(45, rel=0.01)
    resolution = doc["resolution_seconds"]
    assert resolution["count"] == 1
    for name in ("p50", "p90", "p99"):
        assert resolution[name] == pytest.approx(600, rel=0.01)


def test_snapshot_of_one_channel() -> None:
    chat = snap("chat")
    assert chat["channel"] == "chat"
    assert chat["events"] == 2
    assert chat["conversations"] == {
        "opened": 2,
        "resolved": 1,
        "reopened": 0,
        "first_response_breaches": 0,
    }
    # 2 promoters, 1 passive: 100 * 2 / 3 = 66.666667 (rounded to 6 places)
    assert chat["nps"] == {
        "responses": 3,
        "promoters": 2,
        "passives": 1,
        "detractors": 0,
        "score": 66.666667,
    }
    assert chat["csat"] == {"responses": 1, "satisfied_share": 0.0}
    assert chat["ces"] == {"responses": 4, "mean": 4.5, "easy_share": 0.5}
    assert chat["fcr"] == {"resolved_first_contact": 3, "not_first_contact": 1, "rate": 0.75}
    # returns and deliveries carry no channel: only the `all` snapshot has them
    assert chat["commerce"] == {
        "orders": 0,
        "returns": None,
        "return_rate": None,
        "late_deliveries": None,
        "deliveries": None,
    }
    assert (chat["backlog"], chat["unanswered"]) == (2, 1)
    # chat FRT 30, 45 s: ranks q * 1 -> index 0 for p50, p90 and p99 -> 30 s
    assert chat["first_response_seconds"]["count"] == 2
    assert chat["first_response_seconds"]["p99"] == pytest.approx(30, rel=0.01)

    email = snap("email")
    # 1 promoter, 1 detractor: 100 * (1 - 1) / 2 = 0
    assert email["nps"]["score"] == 0.0
    assert email["fcr"] == {"resolved_first_contact": 0, "not_first_contact": 2, "rate": 0.0}
    assert email["csat"] == {"responses": 0, "satisfied_share": None}
    assert (email["backlog"], email["unanswered"]) == (0, 0)

    phone = snap("phone")
    assert phone["csat"] == {"responses": 4, "satisfied_share": 0.75}  # 3 of 4
    assert phone["nps"]["score"] is None  # no NPS answer on phone
    assert phone["fcr"]["rate"] is None
    assert phone["first_response_seconds"]["p50"] == pytest.approx(90, rel=0.01)
    assert phone["conversations"]["first_response_breaches"] == 1
    assert phone["events"] == 4

    shop = snap("shop")
    assert shop["commerce"]["orders"] == 4
    assert shop["commerce"]["return_rate"] is None  # only in `all`
    assert shop["events"] == 4


def test_for_channel_splits_by_channel_and_all_keeps_everything() -> None:
    partial = hand_made()
    assert partial.for_channel(ALL) is partial
    by_channel = {channel: partial.for_channel(channel) for channel in CHANNELS}
    assert set(by_channel["chat"].sketches) == {
        "cx_first_response_seconds|chat",
        "cx_resolution_seconds|chat",
    }
    assert set(by_channel["phone"].sketches) == {"cx_first_response_seconds|phone"}
    assert by_channel["email"].counts == {
        "cx_survey_responses_total|nps|email|promoter": 1,
        "cx_survey_responses_total|nps|email|detractor": 1,
        "cx_survey_score_total|nps|email": 12,
        "cx_first_contact_resolutions_total|email|not_first_contact": 2,
    }
    assert by_channel["shop"].counts == {
        "cx_events_total|shop|order.placed": 4,
        "cx_orders_total|shop": 4,
        "cx_order_value_total:micros|shop|EUR": 40_000_000,
    }
    assert by_channel["web"].counts == by_channel["social"].counts == {}
    # Every channel-labelled count is in exactly one channel; the rest (duplicates, returns,
    # deliveries, churned customers) only in `all`.
    split: dict[str, int] = {}
    for part in by_channel.values():
        assert not set(part.counts) & set(split)
        split.update(part.counts)
    assert set(partial.counts) - set(split) == {
        "cx_events_duplicate_total",
        "cx_returns_total|late_delivery",
        "cx_returns_total|damaged",
        "cx_deliveries_total|late",
        "cx_deliveries_total|on_time",
        "cx_churned_customers_total",
    }


def test_snapshot_of_an_empty_window_has_no_ratios() -> None:
    doc = snapshot(ALL, 604800, AS_OF, Partial(), {}, 1)
    assert doc["window"] == "7d"
    assert doc["events"] == 0
    assert doc["first_response_seconds"] == {"count": 0, "p50": None, "p90": None, "p99": None}
    assert doc["resolution_seconds"] == {"count": 0, "p50": None, "p90": None, "p99": None}
    assert doc["fcr"]["rate"] is None
    assert doc["nps"]["score"] is None
    assert doc["csat"]["satisfied_share"] is None
    assert (doc["ces"]["mean"], doc["ces"]["easy_share"]) == (None, None)
    # in `all`, counts are 0 and the return rate has no orders to divide by
    assert doc["commerce"] == {
        "orders": 0,
        "returns": 0,
        "return_rate": None,
        "late_deliveries": 0,
        "deliveries": 0,
    }
    assert (doc["backlog"], doc["unanswered"]) == (0, 0)


def test_return_rate_can_exceed_one_and_is_zero_without_returns() -> None:
    partial = Partial(counts={"cx_orders_total|shop": 2, "cx_returns_total|other": 3})
    assert snapshot(ALL, 3600, 0, partial, {}, 1)["commerce"]["return_rate"] == 1.5
    partial = Partial(counts={"cx_orders_total|shop": 2})
    assert snapshot(ALL, 3600, 0, partial, {}, 1)["commerce"]["return_rate"] == 0.0


@pytest.mark.parametrize(
    ("as_of_ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (at("00:00:00", day=9), "2026-10-31T00:00:00.000Z"),
        (at("23:59:59.999"), "2026-10-22T23:59:59.999Z"),
        (at("10:30:00.001"), "2026-10-22T10:30:00.001Z"),
    ],
)
def test_as_of_is_iso_8601_utc_with_milliseconds(as_of_ms: int, text: str) -> None:
    assert snapshot(ALL, 3600, as_of_ms, Partial(), {}, 1)["as_of"] == text


# --- end to end through the processors -----------------------------------------------------------

VALIDATOR = EventValidator(max_future_ms=None)  # no wall clock


def event(n: int, kind: str, when: int, customer: str, channel: str, **extra: Any) -> Event:
    moment = datetime.fromtimestamp(when / 1000, UTC)
    raw = {
        "event_id": f"w{n}",
        "type": kind,
        "occurred_at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "customer_id": customer,
        "channel": channel,
        **extra,
    }
    result = VALIDATOR.validate(orjson.dumps(raw), channel)
    assert isinstance(result, Event), result
    assert result.occurred_at_ms == when
    return result


class Run:
    """The processors of every family over in-memory tables, as `cxpulse compute` wires them."""

    def __init__(self, config: KpiConfig | None = None) -> None:
        self.config = config or KpiConfig()
        self.families = Families.build(self.config)
        self.tables: dict[str, dict[str, bytes]] = {}
        self.offset = 0

    def table(self, name: str) -> dict[str, bytes]:
        return self.tables.setdefault(name, {})

    def feed(
        self, event: Event, partition: int = 0, offset: int | None = None, ref: str | None = None
    ) -> Deltas | None:
        if offset is None:
            self.offset += 1
            offset = self.offset
        source_ref = ref or f"src:{partition}:{offset}"
        results = []
        for processor in self.families.for_type(event.type):  # the counting family first
            table = self.table(processor.family.name)
            results.append(
                processor.handle(table.get, table.__setitem__, partition, offset, event, source_ref)
            )
        return results[0]

    def fire(self, watermark_ms: int, partition: int = 0) -> int:
        table = self.table(self.families.service.family.name)
        return self.families.service.fire_timers(
            partition, watermark_ms, table.get, table.__setitem__
        )

    def rebuild(self, partitions: Iterable[int] = (0,)) -> None:
        wanted = list(partitions)
        for processor in self.families.all():
            processor.rebuild(self.table(processor.family.name).items(), wanted)

    def snapshot(self, channel: str, window_s: int, as_of_ms: int) -> dict[str, Any]:
        partial = self.families.window_partial(0, window_s, as_of_ms)
        gauges = gauges_of(self.families.totals_by_partition().get(0, {}))
        return snapshot(channel, window_s, as_of_ms, partial.for_channel(channel), gauges, 1)

    def snapshots(self, as_of_ms: int) -> list[dict[str, Any]]:
        windows = self.config.windows_s
        return [self.snapshot(c, w, as_of_ms) for w in windows for c in SNAPSHOT_CHANNELS]

    def partials(self, as_of_ms: int) -> dict[int, bytes]:
        """Each window's partial of partition 0, as canonical JSON bytes (sketch bins too)."""
        return {
            w: orjson.dumps(
                self.families.window_partial(0, w, as_of_ms).to_json(),
                option=orjson.OPT_SORT_KEYS,
            )
            for w in self.config.windows_s
        }


AGENT = {"author": "agent"}
EUR10 = {"amount": "10.00", "currency": "EUR"}


def feed_day0(run: Run) -> None:
    """14 events in the hour before 10:45 on day 0, one just before it, one at 10:45."""
    e = event
    run.feed(e(0, "customer.churned", at("09:44:59"), "c8", "web"))  # before the 1h window
    # c1 chat A: FRT 30 s (target 60 s), resolved after 300 s, FCR pending 7 days
    run.feed(e(1, "conversation.opened", at("10:00:00"), "c1", "chat", conversation_id="A"))
    run.feed(e(2, "message.sent", at("10:00:30"), "c1", "chat", conversation_id="A", **AGENT))
    run.feed(e(3, "conversation.resolved", at("10:05:00"), "c1", "chat", conversation_id="A"))
    # c2 phone P: FRT 90 s > 30 s target -> breach when the reply comes; stays open
    run.feed(e(4, "conversation.opened", at("10:10:00"), "c2", "phone", conversation_id="P"))
    run.feed(e(5, "message.sent", at("10:11:30"), "c2", "phone", conversation_id="P", **AGENT))
    survey = "survey.answered"
    nps10 = e(6, survey, at("10:20:00"), "c3", "chat", survey="nps", score=10)  # promoter
    run.feed(nps10)
    run.feed(e(7, survey, at("10:21:00"), "c4", "chat", survey="nps", score=8))  # passive
    run.feed(e(8, survey, at("10:22:00"), "c5", "email", survey="nps", score=3))  # detractor
    csat5 = e(9, survey, at("10:23:00"), "c3", "phone", survey="csat", score=5)  # satisfied
    run.feed(csat5)
    csat5_offset = run.offset
    run.feed(e(10, survey, at("10:24:00"), "c4", "chat", survey="csat", score=3))  # neutral
    run.feed(e(11, survey, at("10:25:00"), "c5", "chat", survey="ces", score=6))  # easy
    run.feed(e(12, survey, at("10:26:00"), "c3", "chat", survey="ces", score=3))  # hard
    assert run.feed(nps10) is not None  # another message with the same id: a duplicate
    # the same message again (same offset and source reference): a redelivery, not applied
    assert run.feed(csat5, offset=csat5_offset, ref=f"src:0:{csat5_offset}") is None
    run.feed(e(13, "order.placed", at("10:30:00"), "c7", "shop", order_id="o1", **EUR10))
    # c10 chat U: nobody answers; breach once the watermark passes 10:40 + 60 s
    run.feed(e(14, "conversation.opened", at("10:40:00"), "c10", "chat", conversation_id="U"))
    run.feed(e(15, survey, at("10:45:00"), "c6", "chat", survey="nps", score=9))  # at E: out


def test_window_partial_through_the_processors() -> None:
    run = Run()
    feed_day0(run)
    as_of = at("10:45:20")  # 1h: E = 10:45, [09:45, 10:45)
    # A's and P's first response times (final once the watermark passed their replies; P's
    # with its breach), and U's breach, settled at its deadline 10:41:00
    assert run.fire(as_of) == 3
    partial = run.families.window_partial(0, 3600, as_of)
    assert partial.counts["cx_events_duplicate_total"] == 1
    assert partial.counts["cx_first_response_breaches_total|chat"] == 1  # at 10:41, in
    assert "cx_churned_customers_total" not in partial.counts  # 09:44:59, out

    doc = run.snapshot(ALL, 3600, as_of)
    # events: 5 conversation events + 7 surveys + 1 order + U opened = 14
    assert doc["events"] == 14
    assert doc["conversations"] == {
        "opened": 3,
        "resolved": 1,
        "reopened": 0,
        "first_response_breaches": 2,  # P and U, each timed at its deadline
    }
    assert doc["first_response_seconds"]["count"] == 2  # 30 s (chat), 90 s (phone)
    assert doc["first_response_seconds"]["p50"] == pytest.approx(30, rel=0.01)  # index 0
    assert doc["resolution_seconds"]["count"] == 1
    assert doc["resolution_seconds"]["p99"] == pytest.approx(300, rel=0.01)
    # NPS 1 promoter, 1 passive, 1 detractor (the duplicate counted once, 10:45 out)
    assert doc["nps"] == {
        "responses": 3,
        "promoters": 1,
        "passives": 1,
        "detractors": 1,
        "score": 0.0,
    }
    assert doc["csat"] == {"responses": 2, "satisfied_share": 0.5}  # redelivery not counted
    assert doc["ces"] == {"responses": 2, "mean": 4.5, "easy_share": 0.5}  # (6 + 3) / 2
    assert doc["fcr"] == {"resolved_first_contact": 0, "not_first_contact": 0, "rate": None}
    assert doc["commerce"] == {
        "orders": 1,
        "returns": 0,
        "return_rate": 0.0,
        "late_deliveries": 0,
        "deliveries": 0,
    }
    # P (phone) open; U (chat) open and unanswered; A resolved
    assert (doc["backlog"], doc["unanswered"]) == (2, 1)

    chat = run.snapshot("chat", 3600, as_of)
    # A's 3 events, U opened, 5 chat surveys (NPS 10 and 8, CSAT 3, CES 6 and 3; 10:45 out)
    assert chat["events"] == 3 + 1 + 5
    # promoter + passive: 100 * 1 / 2 = 50
    assert chat["nps"]["score"] == 50.0
    assert chat["csat"] == {"responses": 1, "satisfied_share": 0.0}
    assert (chat["backlog"], chat["unanswered"]) == (1, 1)
    assert run.snapshot("email", 3600, as_of)["nps"]["score"] == -100.0
    assert run.snapshot("phone", 3600, as_of)["csat"]["satisfied_share"] == 1.0

    # 24h at the same as_of: E = 10:00, [day -1 10:00, day 0 10:00): only the churn at 09:44:59
    day = run.families.window_partial(0, 86400, as_of)
    assert day.counts == {
        "cx_events_total|web|customer.churned": 1,
        "cx_churned_customers_total": 1,
    }


def test_rebuilt_views_give_the_same_window_partials() -> None:
    run = Run()
    feed_day0(run)
    as_of = at("10:45:20")
    run.fire(as_of)
    before = run.partials(as_of)
    before_snapshots = run.snapshots(as_of)
    assert any(doc["events"] for doc in before_snapshots)
    run.rebuild()
    assert run.partials(as_of) == before
    assert run.snapshots(as_of) == before_snapshots


def test_fcr_lands_at_its_horizon_and_late_changes_count_only_in_totals() -> None:
    run = Run()
    feed_day0(run)
    run.fire(at("10:45:20"))
    # A was resolved at 10:05 day 0 with one agent message: FCR settles at 10:05 day 7
    assert run.fire(at("10:05:00", day=7)) == 0  # strictly after the deadline only
    assert run.fire(at("10:06:00", day=7)) == 1

    before_deadline = run.snapshot("chat", 3600, at("10:05:30", day=7))  # [09:05, 10:05)
    assert before_deadline["fcr"]["rate"] is None
    after = run.snapshot("chat", 3600, at("10:06:30", day=7))  # [09:06, 10:06): 10:05 in
    assert after["fcr"] == {"resolved_first_contact": 1, "not_first_contact": 0, "rate": 1.0}
    assert after["events"] == 0

    # 7d at day 7 10:06:30: E = day 7 10:00, [day 0 10:00, day 7 10:00): every event of day 0
    # but the churn at 09:44:59 (14 + the NPS at 10:45 = 15); the FCR at 10:05 day 7 is out
    week = run.snapshot(ALL, 604800, at("10:06:30", day=7))
    assert week["events"] == 15
    assert week["fcr"]["rate"] is None
    assert week["nps"]["responses"] == 4
    assert week["nps"]["score"] == 25.0  # (2 promoters - 1 detractor) / 4 * 100
    # 24h: [day 6 10:00, day 7 10:00): nothing
    assert run.snapshot(ALL, 86400, at("10:06:30", day=7))["events"] == 0

    # The 7d buckets now end at horizon day 0 09:55 (day 7 10:00 - 7 d - 5 min): a change at
    # 08:30 day 0 (hour bucket 08:00, ends 09:00) counts in the totals but in no window.
    run.feed(event(16, "customer.churned", at("08:30:00"), "c11", "web"))
    assert run.families.totals_by_partition()[0]["cx_churned_customers_total"] == 2
    view = run.families.feedback.views[0].windows
    assert at("08:00:00") not in view.buckets[3600]
    assert at("09:00:00") in view.buckets[3600]  # the churn at 09:44:59 is still kept

    partials = run.partials(at("10:06:30", day=7))
    snapshots = run.snapshots(at("10:06:30", day=7))
    run.rebuild()
    assert run.partials(at("10:06:30", day=7)) == partials
    assert run.snapshots(at("10:06:30", day=7)) == snapshots


def test_partitions_have_their_own_partials_that_merge() -> None:
    run = Run()
    order = "order.placed"
    run.feed(event(1, order, at("10:00:00"), "a", "shop", order_id="o1", **EUR10), partition=0)
    run.feed(event(2, order, at("10:01:00"), "b", "shop", order_id="o2", **EUR10), partition=1)
    nps0 = event(3, "survey.answered", at("10:02:00"), "b", "chat", survey="nps", score=0)
    run.feed(nps0, partition=1)
    as_of = at("10:30:00")
    zero = run.families.window_partial(0, 3600, as_of)
    one = run.families.window_partial(1, 3600, as_of)
    assert zero.counts["cx_orders_total|shop"] == 1
    assert one.counts["cx_orders_total|shop"] == 1
    assert "cx_survey_responses_total|nps|chat|detractor" not in zero.counts
    merged = Partial()
    merged.merge(zero)
    merged.merge(one)
    doc = snapshot(ALL, 3600, as_of, merged, {}, 2)
    assert (doc["events"], doc["commerce"]["orders"], doc["nps"]["score"]) == (3, 2, -100.0)
    assert run.families.window_partial(2, 3600, as_of).counts == {}  # no such partition


def test_rebuilt_views_agree_while_the_watermark_lags_a_customer() -> None:
    run = Run()
    # c1 answers on day 0 10:00 and again on day 8 12:00 (its source is ahead of the others).
    run.feed(event(1, "survey.answered", at("10:00:00"), "c1", "chat", survey="nps", score=10))
    run.feed(
        event(2, "survey.answered", at("12:00:00", day=8), "c1", "chat", survey="nps", score=9)
    )
    # Its ledger keeps changes from day 8 12:00 - (7 d + 1 h + 5 min) = day 1 10:55 on, but
    # the watermark is still at day 7 10:30: the 7d window [day 0 10:00, day 7 10:00) holds
    # the first answer.
    as_of = at("10:30:00", day=7)
    live = run.partials(as_of)
    assert b"promoter" in live[604800]
    run.rebuild()
    assert run.partials(as_of) == live
