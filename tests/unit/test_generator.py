"""pipeline/generator.py: deterministic, ordered, realistic contract traffic, scripted incidents.

Most tests read one seeded stream of 6000 messages at 1 event/s (about 100 minutes of event
time) for 5000 customers, enough for every contract type, including the rare reopens and churns.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from pipeline.generator import (
    GeneratedMessage,
    GeneratorConfig,
    Incident,
    TrafficGenerator,
    parse_incident,
    to_jsonl_line,
)
from schemas.errors import ConfigurationError

START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
START_S = START.timestamp()
CONFIG = GeneratorConfig(customers=5000, rate=1.0, seed=3)
COUNT = 6000
CONTRACT_TYPES = {
    "conversation.opened",
    "message.received",
    "message.sent",
    "conversation.resolved",
    "conversation.reopened",
    "order.placed",
    "order.delivered",
    "return.requested",
    "refund.issued",
    "survey.answered",
    "customer.churned",
}
CONVERSATION_CHANNELS = {"chat", "email", "phone", "social", "web"}
CHANNELS = CONVERSATION_CHANNELS | {"shop", "returns"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SURVEY_RANGES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
FRT_TARGET_S = {"chat": 60, "phone": 30, "social": 3600, "email": 14400, "web": 14400}


def take(config: GeneratorConfig, count: int) -> list[GeneratedMessage]:
    return [message for _, message in zip(range(count), TrafficGenerator(config), strict=False)]


def seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


def decode(message: GeneratedMessage) -> dict[str, Any] | None:
    """The event if the message is a valid-looking JSON object, else None."""
    try:
        event = orjson.loads(message.value)
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


def is_good(event: dict[str, Any] | None) -> bool:
    """A well-formed contract event (the generator's bad messages all fail one of these)."""
    if event is None or event.get("schema_version") != 1:
        return False
    if event.get("type") not in CONTRACT_TYPES:
        return False
    if not TIMESTAMP.match(str(event.get("occurred_at"))):
        return False
    in_conversation = event["type"].startswith(("conversation.", "message."))
    if in_conversation and not isinstance(event.get("conversation_id"), str):
        return False
    if event["type"] == "survey.answered":
        low, high = SURVEY_RANGES[event["survey"]]
        if not low <= event["score"] <= high:
            return False
    return all(field in event for field in ("event_id", "customer_id", "channel"))


@pytest.fixture(scope="module")
def stream() -> list[GeneratedMessage]:
    return take(CONFIG, COUNT)


@pytest.fixture(scope="module")
def events(stream: list[GeneratedMessage]) -> list[dict[str, Any]]:
    """The good events, first occurrence only (duplicates dropped)."""
    seen: set[bytes] = set()
    good = []
    for message in stream:
        event = decode(message)
        if message.value not in seen and is_good(event):
            assert event is not None
            good.append(event)
        seen.add(message.value)
    return good


# -- determinism and order ---------------------------------------------------------------


def test_same_seed_gives_the_same_bytes(stream: list[GeneratedMessage]) -> None:
    again = take(GeneratorConfig(customers=5000, rate=1.0, seed=3), COUNT)
    assert again == stream
    generator = TrafficGenerator(CONFIG)
    assert take_twice(generator) == (stream[:500], stream[:500])


def take_twice(
    generator: TrafficGenerator,
) -> tuple[list[GeneratedMessage], list[GeneratedMessage]]:
    first = [message for _, message in zip(range(500), generator, strict=False)]
    second = [message for _, message in zip(range(500), generator, strict=False)]
    return first, second


def test_another_seed_gives_other_traffic(stream: list[GeneratedMessage]) -> None:
    other = take(GeneratorConfig(customers=5000, rate=1.0, seed=4), 100)
    assert [m.value for m in other] != [m.value for m in stream[:100]]


def test_messages_come_in_event_time_order_except_duplicates(
    stream: list[GeneratedMessage],
) -> None:
    seen: set[bytes] = set()
    latest = START_S
    duplicates = 0
    for message in stream:
        if message.value in seen:
            duplicates += 1
            assert message.occurred_at <= latest  # a repeat of an earlier event
        else:
            assert message.occurred_at >= latest
            latest = message.occurred_at
        seen.add(message.value)
    assert duplicates > 0


def test_occurred_at_is_rfc3339_utc_with_millis_and_matches_the_pacing_time(
    stream: list[GeneratedMessage], events: list[dict[str, Any]]
) -> None:
    assert all(TIMESTAMP.match(event["occurred_at"]) for event in events)
    by_value = {message.value: message.occurred_at for message in stream}
    for event in events[:200]:
        assert by_value[orjson.dumps(event)] == seconds(event["occurred_at"])
    assert events[0]["occurred_at"].startswith("2026-11-22T08:00:")
    # 6000 messages at 1/s: about 100 minutes of event time
    span_min = (stream[-1].occurred_at - START_S) / 60
    assert 90 < span_min < 110


def test_duration_bounds_the_stream_and_rate_sets_its_density() -> None:
    config = GeneratorConfig(customers=100, rate=5.0, seed=9, duration_s=600.0)
    messages = list(TrafficGenerator(config))
    assert all(START_S <= m.occurred_at <= START_S + 600 for m in messages)
    # 5/s for 600 s: 3000 expected, Poisson sd about 55
    assert 2800 < len(messages) < 3200


# -- the events themselves ---------------------------------------------------------------


def test_every_contract_type_appears(events: list[dict[str, Any]]) -> None:
    assert {event["type"] for event in events} == CONTRACT_TYPES


def test_events_carry_the_contract_fields_and_types(
    stream: list[GeneratedMessage], events: list[dict[str, Any]]
) -> None:
    ids = [event["event_id"] for event in events]
    assert len(set(ids)) == len(ids)
    for event in events:
        assert re.fullmatch(r"c\d{6}", event["customer_id"])
        assert event["channel"] in CHANNELS
        kind = event["type"]
        if kind.startswith(("conversation.", "message.")):
            assert isinstance(event["conversation_id"], str)
            assert event["channel"] in CONVERSATION_CHANNELS
        if kind == "message.sent":
            assert event["author"] in {"agent", "bot", "system"}
        if kind == "order.placed":
            assert event["channel"] == "shop"
            assert event["currency"] in {"EUR", "USD", "GBP"}
            assert isinstance(event["amount"], float | int)
            assert event["amount"] >= 0 and round(event["amount"], 2) == event["amount"]
        if kind == "order.delivered":
            assert TIMESTAMP.match(event["promised_at"])
        if kind == "return.requested":
            assert event["channel"] == "returns"
            assert event["reason"] in {
                "damaged",
                "wrong_item",
                "not_as_described",
                "size_fit",
                "late_delivery",
                "changed_mind",
                "other",
            }
            assert {"order_id", "return_id"} <= event.keys()
        if kind == "refund.issued":
            assert event["channel"] == "returns" and event["amount"] >= 0
        if kind == "survey.answered":
            low, high = SURVEY_RANGES[event["survey"]]
            assert type(event["score"]) is int and low <= event["score"] <= high
    for message in stream:
        decoded = decode(message)
        if decoded is not None and is_good(decoded):
            assert message.key == decoded["customer_id"].encode()
            survey = decoded["type"] == "survey.answered"
            assert message.topic_channel == ("survey" if survey else decoded["channel"])


def test_conversation_topics_come_from_a_small_list(events: list[dict[str, Any]]) -> None:
    topics = {e.get("topic") for e in events if e["type"] == "conversation.opened"}
    assert topics == {"billing", "delivery", "returns", "account", "product", "other", None}


def conversations(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Events per conversation opened in the stream, in order."""
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        conversation = str(event.get("conversation_id"))
        if event["type"] == "conversation.opened" or conversation in by_id:
            by_id[conversation].append(event)
    return by_id


def test_bots_and_systems_answer_before_agents_in_some_conversations(
    events: list[dict[str, Any]],
) -> None:
    first_author: Counter[str] = Counter()
    for history in conversations(events).values():
        authors = [e["author"] for e in history if e["type"] == "message.sent"]
        if "agent" in authors and authors[0] != "agent":
            first_author[authors[0]] += 1
    assert first_author["bot"] > 0
    assert first_author["system"] > 0


def test_conversations_open_first_and_reopens_are_resolved_again(
    events: list[dict[str, Any]],
) -> None:
    resolved_again = 0
    several_agent_messages = 0
    for history in conversations(events).values():
        types = [e["type"] for e in history]
        assert types[0] == "conversation.opened" and types.count("conversation.opened") == 1
        agent = [e for e in history if e.get("author") == "agent"]
        several_agent_messages += len(agent) > 1
        closes = [t for t in types if t in ("conversation.resolved", "conversation.reopened")]
        # resolved, reopened, resolved, ... (the stream may end anywhere)
        alternating = ["conversation.resolved", "conversation.reopened"] * 2
        assert closes == alternating[: len(closes)]
        resolved_again += len(closes) == 3
    assert resolved_again > 0
    assert several_agent_messages > 0


def test_customers_come_back_on_another_channel_within_days(
    events: list[dict[str, Any]],
) -> None:
    resolved_at: dict[str, list[tuple[float, str, str | None]]] = defaultdict(list)
    topic_of: dict[str, str | None] = {}
    repeats = 0
    for event in events:
        if event["type"] == "conversation.opened":
            topic_of[event["conversation_id"]] = event.get("topic")
            t = seconds(event["occurred_at"])
            for resolved, channel, topic in resolved_at[event["customer_id"]]:
                same_topic = topic == event.get("topic")
                if channel != event["channel"] and same_topic and t - resolved < 3 * 86400:
                    repeats += 1
                    break
        elif event["type"] == "conversation.resolved" and event["conversation_id"] in topic_of:
            entry = (seconds(event["occurred_at"]), event["channel"])
            topic = topic_of[event["conversation_id"]]
            resolved_at[event["customer_id"]].append((*entry, topic))
    assert repeats > 0


def test_slow_first_replies_bring_lower_scores() -> None:
    # healthy traffic answers within target but for a small tail: a chat outage makes the
    # slow replies this test compares against
    outage = GeneratorConfig(
        customers=5000, rate=1.0, seed=3, incidents=(parse_incident("outage:chat@10m+40m"),)
    )
    events = [e for m in take(outage, COUNT) if (e := decode(m)) is not None and is_good(e)]
    frt: dict[str, tuple[float, str]] = {}
    for history in conversations(events).values():
        opened = history[0]
        agent = [e for e in history if e.get("author") == "agent"]
        if agent:
            wait = seconds(agent[0]["occurred_at"]) - seconds(opened["occurred_at"])
            frt[opened["conversation_id"]] = (wait, opened["channel"])
    scores: dict[bool, list[float]] = {True: [], False: []}
    for event in events:
        if event["type"] == "survey.answered" and event.get("conversation_id") in frt:
            wait, channel = frt[event["conversation_id"]]
            low, high = SURVEY_RANGES[event["survey"]]
            scores[wait > FRT_TARGET_S[channel]].append((event["score"] - low) / (high - low))
    slow = sum(scores[True]) / len(scores[True])
    fast = sum(scores[False]) / len(scores[False])
    assert len(scores[True]) > 20 and len(scores[False]) > 20
    assert slow < fast - 0.15


def test_deliveries_are_mostly_on_time_and_refunds_follow_returns(
    events: list[dict[str, Any]],
) -> None:
    deliveries = [e for e in events if e["type"] == "order.delivered"]
    late = [e for e in deliveries if e["promised_at"] < e["occurred_at"]]
    assert 0 < len(late) < 0.15 * len(deliveries)
    requested = {
        e["return_id"]: seconds(e["occurred_at"]) for e in events if e["type"] == "return.requested"
    }
    for refund in (e for e in events if e["type"] == "refund.issued"):
        if refund["return_id"] in requested:  # else the return was before the stream began
            assert seconds(refund["occurred_at"]) - requested[refund["return_id"]] >= 86400


# -- bad input and duplicates ------------------------------------------------------------


def fault_kind(message: GeneratedMessage) -> str | None:
    """Which deliberate fault a message carries, by inspecting its bytes; None if it is fine."""
    try:
        message.value.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    event = decode(message)
    if event is None:
        return "truncated_json"
    if event.get("schema_version") != 1:
        return f"schema_version_{event.get('schema_version')}"
    if "type" not in event or event["type"] not in CONTRACT_TYPES:
        return "missing_field" if "type" not in event else "unknown_type"
    if not {"event_id", "occurred_at", "customer_id"} <= event.keys():
        return "missing_field"
    if event["type"].startswith("message.") and "conversation_id" not in event:
        return "missing_field"
    if not event["occurred_at"].endswith("Z"):
        return "timestamp_without_offset"
    if not isinstance(event.get("conversation_id", ""), str):
        return "wrong_type"
    if event["type"] == "survey.answered":
        low, high = SURVEY_RANGES[event["survey"]]
        if not low <= event["score"] <= high:
            return "score_out_of_range"
    return None


def test_bad_messages_cover_every_dead_letter_reason_at_the_configured_share() -> None:
    config = GeneratorConfig(customers=200, rate=2.0, seed=5, bad_ratio=0.05, duplicate_ratio=0)
    messages = take(config, 4000)
    kinds = Counter(fault_kind(message) for message in messages)
    assert set(kinds) == {
        None,
        "invalid_utf8",
        "truncated_json",
        "schema_version_2",
        "missing_field",
        "unknown_type",
        "timestamp_without_offset",
        "wrong_type",
        "score_out_of_range",
    }
    # 5% of 4000 is 200; the share is kept by a credit, not drawn per message
    assert abs((4000 - kinds[None]) - 200) <= 20
    unkeyed = [m for m in messages if m.key is None]
    assert unkeyed and all(fault_kind(m) in {"invalid_utf8", "truncated_json"} for m in unkeyed)
    assert all(len(m.value) < 1024 * 1024 for m in messages)


def test_default_share_of_bad_messages_is_small(stream: list[GeneratedMessage]) -> None:
    bad = sum(fault_kind(message) is not None for message in stream)
    # 0.2% of 6000 is 12
    assert 4 <= bad <= 20


def test_duplicates_repeat_a_recent_message_verbatim() -> None:
    config = GeneratorConfig(customers=200, rate=2.0, seed=6, bad_ratio=0, duplicate_ratio=0.02)
    messages = take(config, 3000)
    position: dict[bytes, int] = {}
    repeats = 0
    for index, message in enumerate(messages):
        if message.value in position:
            original = messages[position[message.value]]
            assert message == original  # same bytes, key, topic and event time
            assert index - position[message.value] <= 80  # one of the last 64 good ones
            repeats += 1
        else:
            position[message.value] = index
    # 2% of 3000 is 60
    assert 45 <= repeats <= 75


def test_jsonl_lines_hold_exactly_one_message_each(stream: list[GeneratedMessage]) -> None:
    for message in stream:
        line = to_jsonl_line(message)
        assert line == message.value + b"\n"
        assert line.count(b"\n") == 1
    raw = GeneratedMessage("chat", b'{"a":\n1}', None, 0.0)
    assert to_jsonl_line(raw) == b'{"a":\\n1}\n'


# -- incidents ---------------------------------------------------------------------------


def incident_events(*specs: str) -> list[dict[str, Any]]:
    config = GeneratorConfig(
        customers=2000,
        rate=5.0,
        seed=11,
        duration_s=2400.0,
        incidents=tuple(parse_incident(spec) for spec in specs),
        bad_ratio=0,
        duplicate_ratio=0,
    )
    return [orjson.loads(message.value) for message in TrafficGenerator(config)]


def phase(event: dict[str, Any]) -> str:
    """Incidents below run from minute 10 to minute 25."""
    offset = seconds(event["occurred_at"]) - START_S
    return "before" if offset < 600 else "during" if offset < 1500 else "after"


def test_chat_outage_stops_agent_replies_on_chat_while_conversations_keep_opening() -> None:
    counts: Counter[tuple[str, str, str]] = Counter()
    for event in incident_events("outage:chat@10m+15m"):
        if event["type"] == "conversation.opened":
            counts[phase(event), event["channel"], "opened"] += 1
        elif event["type"] == "message.sent":
            counts[phase(event), event["channel"], event["author"]] += 1
    assert counts["during", "chat", "agent"] == 0
    assert counts["during", "chat", "opened"] > 200  # 15 minutes of chats, unanswered
    assert counts["during", "chat", "bot"] > 100  # the bot still acknowledges
    assert counts["during", "phone", "agent"] > 100  # other channels are answered
    assert counts["after", "chat", "agent"] > counts["before", "chat", "agent"]  # the backlog


def test_shipping_delay_makes_deliveries_late() -> None:
    late: Counter[tuple[str, bool]] = Counter()
    for event in incident_events("shipping_delay@10m+15m"):
        if event["type"] == "order.delivered":
            late[phase(event), event["promised_at"] < event["occurred_at"]] += 1
    assert late["during", True] > 3 * late["during", False]
    assert late["before", True] < 0.2 * late["before", False]


def test_bot_failure_silences_the_bot_on_its_channel() -> None:
    counts: Counter[tuple[str, str]] = Counter()
    for event in incident_events("bot_failure:chat@10m+15m"):
        if event["channel"] == "chat" and event["type"] == "conversation.opened":
            counts[phase(event), "opened"] += 1
        elif event["channel"] == "chat" and event.get("author") == "bot":
            counts[phase(event), "bot"] += 1
    assert counts["during", "bot"] < 0.5 * counts["during", "opened"]
    assert counts["before", "bot"] > 0.8 * counts["before", "opened"]


def test_parse_incident_reads_kind_channel_start_and_duration() -> None:
    assert parse_incident("outage:chat@10m+15m") == Incident("outage", "chat", 600.0, 900.0)
    assert parse_incident("shipping_delay@1h30m+2h") == Incident(
        "shipping_delay", None, 5400.0, 7200.0
    )
    assert parse_incident("bot_failure:social@30s+90") == Incident(
        "bot_failure", "social", 30.0, 90.0
    )


@pytest.mark.parametrize(
    ("spec", "hint"),
    [
        ("outage:chat", "KIND[:CHANNEL]@START+DURATION"),
        ("flood:chat@1m+1m", "unknown kind 'flood'"),
        ("outage:shop@1m+1m", "cannot hit channel 'shop'"),
        ("outage:chat@10x+1m", "'10x' is not a duration"),
        ("outage:chat@1m+0s", "longer than 0s"),
    ],
)
def test_parse_incident_rejects_bad_specs_saying_what_to_fix(spec: str, hint: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(hint)):
        parse_incident(spec)


@pytest.mark.parametrize(
    "changes",
    [
        {"rate": 0.0},
        {"customers": 0},
        {"bad_ratio": 1.5},
        {"start": datetime(2026, 11, 22, 8, 0)},  # no timezone
    ],
)
def test_bad_config_is_a_configuration_error(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        GeneratorConfig(**changes)
