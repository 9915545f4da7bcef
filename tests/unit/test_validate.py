"""schemas/validate.py: every dead-letter reason of contract section 1, and valid events parsed
to the exact fields the KPI logic reads."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from schemas.events import Event
from schemas.validate import EventValidator, Rejection

# 2026-01-01T00:00:00Z = 1_767_225_600 s (2025-01-01 = 1_735_689_600, + 365 d * 86_400).
# 2026-11-22 is day 325 of a non-leap year (Jan..Oct = 304 days, + 21): + 28_080_000 s.
# 10:15:00 = 36_900 s. So 2026-11-22T10:15:00Z = 1_795_342_500 s.
T_10_15_MS = 1_795_342_500_000


def conversation_opened(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "e-1",
        "type": "conversation.opened",
        "occurred_at": "2026-11-22T10:15:00.123Z",
        "customer_id": "c-1",
        "channel": "chat",
        "conversation_id": "conv-1",
    }
    event.update(overrides)
    return event


def survey_answer(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "s-1",
        "type": "survey.answered",
        "occurred_at": "2026-11-22T10:15:00Z",
        "customer_id": "c-1",
        "channel": "chat",
        "survey": "nps",
        "score": 9,
    }
    event.update(overrides)
    return event


def without(event: dict[str, Any], field: str) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key != field}


def validate(obj: object, source_kind: str = "chat", **options: Any) -> Event | Rejection:
    return EventValidator(**options).validate(orjson.dumps(obj), source_kind)


def rejected(result: Event | Rejection) -> str:
    """The rejection reason; fails the test when the message was accepted."""
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    assert result.detail  # the dead letter always says why, for a human
    return result.reason


def accepted(result: Event | Rejection) -> Event:
    assert isinstance(result, Event), f"expected an event, got {result!r}"
    return result


# --- invalid_json -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"not json at all", id="not-json"),
        pytest.param(b'{"event_id": "e-1", ', id="truncated"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"event_id": "\xff\xfe"}', id="invalid-utf8"),
        pytest.param(b'{"event_id": "e-1", "amount": NaN}', id="nan-literal"),
        pytest.param(b'{"event_id": "e-1", "amount": Infinity}', id="infinity-literal"),
        pytest.param(b"[1, 2, 3]", id="array"),
        pytest.param(b"42", id="number"),
        pytest.param(b'"a string"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"[" * 5000 + b"]" * 5000, id="nested-5000-arrays"),
        pytest.param(b'{"a":' * 5000 + b"1" + b"}" * 5000, id="nested-5000-objects"),
    ],
)
def test_not_a_json_object_is_invalid_json(raw: bytes) -> None:
    assert rejected(EventValidator().validate(raw, "chat")) == "invalid_json"


# --- missing_field ------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["event_id", "type", "occurred_at", "customer_id"])
def test_each_missing_envelope_field_is_missing_field(field: str) -> None:
    assert rejected(validate(without(conversation_opened(), field))) == "missing_field"


@pytest.mark.parametrize("field", ["event_id", "type", "occurred_at", "customer_id"])
def test_null_envelope_field_counts_as_missing(field: str) -> None:
    assert rejected(validate(conversation_opened(**{field: None}))) == "missing_field"


def test_survey_topic_event_without_channel_is_missing_field() -> None:
    # the survey topic cannot supply a channel: the answer must name the channel it rates
    assert rejected(validate(without(survey_answer(), "channel"), "survey")) == "missing_field"


def test_any_type_on_survey_topic_without_channel_is_missing_field() -> None:
    event = without(conversation_opened(), "channel")
    assert rejected(validate(event, "survey")) == "missing_field"


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (conversation_opened(), "conversation_id"),
        (conversation_opened(type="message.sent", author="agent"), "author"),
        (
            {
                **without(conversation_opened(type="order.placed"), "conversation_id"),
                "order_id": "o-1",
                "amount": 1,
                "currency": "EUR",
            },
            "amount",
        ),
        (
            {
                **without(conversation_opened(type="order.placed"), "conversation_id"),
                "order_id": "o-1",
                "amount": 1,
                "currency": "EUR",
            },
            "currency",
        ),
        (survey_answer(), "score"),
        (survey_answer(), "survey"),
    ],
)
def test_missing_type_specific_field_is_missing_field(event: dict[str, Any], field: str) -> None:
    assert rejected(validate(without(event, field))) == "missing_field"


# --- invalid_field ------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["event_id", "customer_id", "conversation_id"])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("x" * 129, id="129-chars"),
        pytest.param("", id="empty"),
        pytest.param(42, id="number"),
        pytest.param(["e-1"], id="list"),
        pytest.param(True, id="bool"),
    ],
)
def test_bad_identifier_is_invalid_field(field: str, value: object) -> None:
    assert rejected(validate(conversation_opened(**{field: value}))) == "invalid_field"


def test_identifier_of_exactly_128_chars_is_accepted() -> None:
    assert accepted(validate(conversation_opened(event_id="x" * 128))).event_id == "x" * 128


@pytest.mark.parametrize("channel", ["fax", "Chat", "survey", "", 3])
def test_bad_channel_is_invalid_field(channel: object) -> None:
    assert rejected(validate(conversation_opened(channel=channel))) == "invalid_field"


@pytest.mark.parametrize("author", ["customer", "Agent", "", 1])
def test_bad_author_is_invalid_field(author: object) -> None:
    event = conversation_opened(type="message.sent", author=author)
    assert rejected(validate(event)) == "invalid_field"


@pytest.mark.parametrize(
    ("survey", "score"),
    [
        ("nps", -1),
        ("nps", 11),
        ("csat", 0),
        ("csat", 6),
        ("ces", 0),
        ("ces", 8),
    ],
)
def test_score_out_of_range_is_invalid_field(survey: str, score: int) -> None:
    assert rejected(validate(survey_answer(survey=survey, score=score))) == "invalid_field"


@pytest.mark.parametrize(
    "score",
    [
        pytest.param(9.0, id="float"),
        pytest.param(8.5, id="fraction"),
        pytest.param(True, id="bool"),
        pytest.param("9", id="string"),
    ],
)
def test_score_not_an_integer_is_invalid_field(score: object) -> None:
    assert rejected(validate(survey_answer(score=score))) == "invalid_field"


def test_unknown_survey_kind_is_invalid_field() -> None:
    assert rejected(validate(survey_answer(survey="ces2"))) == "invalid_field"


@pytest.mark.parametrize(
    "occurred_at",
    [
        pytest.param("2026-11-22T10:15:00", id="no-offset"),
        pytest.param("2026-11-22T10:15:00.123", id="fraction-no-offset"),
        pytest.param("2026-11-22 10:15:00Z", id="space-separator"),
        pytest.param("2026-11-22", id="date-only"),
        pytest.param("2026-02-30T10:15:00Z", id="february-30"),
        pytest.param("2026-13-01T10:15:00Z", id="month-13"),
        pytest.param("2026-11-22T25:00:00Z", id="hour-25"),
        pytest.param("2026-11-22T10:15:00+24:00", id="offset-24h"),
        pytest.param(1795342500123, id="epoch-number"),
    ],
)
def test_bad_timestamp_is_invalid_field(occurred_at: object) -> None:
    assert rejected(validate(conversation_opened(occurred_at=occurred_at))) == "invalid_field"


def order(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "o-e-1",
        "type": "order.placed",
        "occurred_at": "2026-11-22T10:15:00Z",
        "customer_id": "c-1",
        "channel": "shop",
        "order_id": "o-1",
        "amount": 19.99,
        "currency": "EUR",
    }
    event.update(overrides)
    return event


@pytest.mark.parametrize(
    "amount",
    [
        pytest.param(-0.01, id="negative"),
        pytest.param("-5", id="negative-string"),
        pytest.param("abc", id="not-a-number"),
        pytest.param("NaN", id="nan-string"),
        pytest.param(True, id="bool"),
        pytest.param([1], id="list"),
        pytest.param(1e15, id="too-big"),
    ],
)
def test_bad_amount_is_invalid_field(amount: object) -> None:
    assert rejected(validate(order(amount=amount), "shop")) == "invalid_field"


@pytest.mark.parametrize("currency", ["eur", "EURO", "E1R", "", 978])
def test_bad_currency_is_invalid_field(currency: object) -> None:
    assert rejected(validate(order(currency=currency), "shop")) == "invalid_field"


def test_bad_return_reason_is_invalid_field() -> None:
    event = order(type="return.requested", return_id="r-1", reason="broken")
    assert rejected(validate(event, "returns")) == "invalid_field"


def test_bad_promised_at_is_invalid_field() -> None:
    event = order(type="order.delivered", promised_at="2026-11-25")
    assert rejected(validate(event, "shop")) == "invalid_field"


def test_type_not_a_string_is_invalid_field() -> None:
    assert rejected(validate(conversation_opened(type=["conversation.opened"]))) == "invalid_field"


def test_topic_not_a_string_is_invalid_field() -> None:
    assert rejected(validate(conversation_opened(topic=7))) == "invalid_field"


def test_comment_not_a_string_is_invalid_field() -> None:
    assert rejected(validate(survey_answer(comment={"text": "meh"}))) == "invalid_field"


# --- unknown_type, unsupported_version, too_large -----------------------------------------


@pytest.mark.parametrize("kind", ["conversation.closed", "order", "", "CONVERSATION.OPENED"])
def test_unknown_type(kind: str) -> None:
    assert rejected(validate(conversation_opened(type=kind))) == "unknown_type"


def test_schema_version_2_is_unsupported_version() -> None:
    assert rejected(validate(conversation_opened(schema_version=2))) == "unsupported_version"


@pytest.mark.parametrize("version", ["1", 1.0, True, None])
def test_schema_version_not_an_integer_is_invalid_field(version: object) -> None:
    assert rejected(validate(conversation_opened(schema_version=version))) == "invalid_field"


def test_schema_version_1_explicit_is_accepted() -> None:
    assert accepted(validate(conversation_opened(schema_version=1))).schema_version == 1


def test_message_over_max_bytes_is_too_large() -> None:
    raw = orjson.dumps(conversation_opened())
    validator = EventValidator(max_bytes=len(raw) - 1)
    assert rejected(validator.validate(raw, "chat")) == "too_large"


def test_message_of_exactly_max_bytes_is_accepted() -> None:
    raw = orjson.dumps(conversation_opened())
    assert accepted(EventValidator(max_bytes=len(raw)).validate(raw, "chat")).event_id == "e-1"


def test_too_large_is_checked_before_parsing() -> None:
    # garbage that is also oversized is dead-lettered as too_large, without being parsed
    assert rejected(EventValidator(max_bytes=10).validate(b"x" * 11, "chat")) == "too_large"


def test_default_limit_is_one_mebibyte() -> None:
    # 1 MiB = 1_048_576 bytes: a valid event padded to 1_048_577 bytes is too large
    event = conversation_opened(note="")
    padding = 1_048_577 - len(orjson.dumps(event))
    raw = orjson.dumps(conversation_opened(note="x" * padding))
    assert len(raw) == 1_048_577
    assert rejected(EventValidator().validate(raw, "chat")) == "too_large"


# --- valid events -------------------------------------------------------------------------


def test_conversation_opened_parsed_fields() -> None:
    event = accepted(validate(conversation_opened(topic="billing"), known_topics=["billing"]))
    assert event == Event(
        event_id="e-1",
        type="conversation.opened",
        occurred_at_ms=T_10_15_MS + 123,  # 1_795_342_500_123
        customer_id="c-1",
        channel="chat",
        schema_version=1,
        payload={**conversation_opened(topic="billing"), "schema_version": 1},
        conversation_id="conv-1",
        topic="billing",
    )


def test_occurred_at_with_plus_two_hours_offset_is_the_same_instant() -> None:
    # 12:15:00.123+02:00 == 10:15:00.123Z
    event = accepted(validate(conversation_opened(occurred_at="2026-11-22T12:15:00.123+02:00")))
    assert event.occurred_at_ms == 1_795_342_500_123


def test_occurred_at_with_negative_offset() -> None:
    # 05:15:00-05:00 == 10:15:00Z
    event = accepted(validate(conversation_opened(occurred_at="2026-11-22T05:15:00-05:00")))
    assert event.occurred_at_ms == 1_795_342_500_000


def test_occurred_at_offset_crossing_midnight() -> None:
    # 2026-11-23T01:15:00+15:00 is still 2026-11-22T10:15:00Z
    event = accepted(validate(conversation_opened(occurred_at="2026-11-23T01:15:00+15:00")))
    assert event.occurred_at_ms == 1_795_342_500_000


def test_sub_millisecond_digits_are_dropped() -> None:
    event = accepted(validate(conversation_opened(occurred_at="2026-11-22T10:15:00.123999Z")))
    assert event.occurred_at_ms == 1_795_342_500_123


def test_lowercase_t_and_z_are_accepted() -> None:
    event = accepted(validate(conversation_opened(occurred_at="2026-11-22t10:15:00.5z")))
    assert event.occurred_at_ms == 1_795_342_500_500


def test_leap_day() -> None:
    # 2028-02-29T00:00:00Z: 2028-01-01 = 1_767_225_600 + 365 d (2026) + 365 d (2027) s
    # = 1_830_297_600; + 59 days (Jan 31 + Feb 28) = 1_835_395_200
    # a fixed clock half a day earlier (2028-02-28T12:00:00Z): within the future limit
    event = accepted(
        validate(
            conversation_opened(occurred_at="2028-02-29T00:00:00Z"),
            clock=lambda: 1_835_395_200.0 - 43_200,
        )
    )
    assert event.occurred_at_ms == 1_835_395_200_000


@pytest.mark.parametrize(
    ("occurred_at", "expected_ms"),
    [
        # half a second before the epoch: -500 ms
        ("1969-12-31T23:59:59.500Z", -500),
        # one whole second before the epoch
        ("1969-12-31T23:59:59Z", -1_000),
        # sub-millisecond digits are dropped from the written time: 23:59:59.999 = -1 ms
        ("1969-12-31T23:59:59.9995Z", -1),
        # 1969-12-31T00:00:00.250Z: one day (86_400_000 ms) before the epoch, + 250 ms
        ("1969-12-31T00:00:00.250Z", -86_399_750),
    ],
)
def test_pre_epoch_timestamps_are_exact(occurred_at: str, expected_ms: int) -> None:
    event = accepted(validate(conversation_opened(occurred_at=occurred_at)))
    assert event.occurred_at_ms == expected_ms


def test_channel_filled_from_source_kind_when_missing() -> None:
    event = accepted(validate(without(conversation_opened(), "channel"), "email"))
    assert event.channel == "email"
    # the normalised payload republished on cx.events carries it too
    assert event.payload["channel"] == "email"
    assert event.payload["schema_version"] == 1


def test_explicit_channel_wins_over_source_kind() -> None:
    assert accepted(validate(conversation_opened(channel="phone"), "email")).channel == "phone"


def test_survey_on_survey_topic_keeps_the_channel_it_rates() -> None:
    event = accepted(validate(survey_answer(channel="phone"), "survey"))
    assert (event.channel, event.survey, event.score) == ("phone", "nps", 9)


def test_unknown_extra_fields_are_kept_in_payload() -> None:
    raw = conversation_opened(agent_team="tier-2", extra={"nested": [1, 2]})
    event = accepted(validate(raw))
    assert event.payload["agent_team"] == "tier-2"
    assert event.payload["extra"] == {"nested": [1, 2]}
    assert event.payload == {**raw, "schema_version": 1}


@pytest.mark.parametrize(
    ("topic", "expected"),
    [("billing", "billing"), ("delivery", "delivery"), ("refund-scam", "other"), ("", "other")],
)
def test_topic_bounded_to_known_list(topic: str, expected: str) -> None:
    validator = EventValidator(known_topics=("billing", "delivery"))
    event = accepted(validator.validate(orjson.dumps(conversation_opened(topic=topic)), "chat"))
    assert event.topic == expected


def test_missing_topic_stays_none() -> None:
    assert accepted(validate(conversation_opened(), known_topics=["billing"])).topic is None


def test_topic_with_no_known_list_is_other() -> None:
    assert accepted(validate(conversation_opened(topic="billing"))).topic == "other"


@pytest.mark.parametrize(
    "kind", ["message.received", "conversation.resolved", "conversation.reopened"]
)
def test_conversation_events(kind: str) -> None:
    event = accepted(validate(conversation_opened(type=kind)))
    assert (event.type, event.conversation_id, event.topic, event.author) == (
        kind,
        "conv-1",
        None,
        None,
    )


@pytest.mark.parametrize("author", ["agent", "bot", "system"])
def test_message_sent(author: str) -> None:
    event = accepted(validate(conversation_opened(type="message.sent", author=author)))
    assert (event.type, event.conversation_id, event.author) == ("message.sent", "conv-1", author)


@pytest.mark.parametrize(
    ("amount", "micros"),
    [
        (19.99, 19_990_000),  # float 19.99 read as decimal "19.99", not 19.989999...
        ("19.99", 19_990_000),
        (0, 0),
        (100, 100_000_000),
        (0.000001, 1),
        ("1234567.891011", 1_234_567_891_011),
    ],
)
def test_order_placed(amount: object, micros: int) -> None:
    event = accepted(validate(order(amount=amount), "shop"))
    assert (event.type, event.order_id, event.amount_micros, event.currency, event.channel) == (
        "order.placed",
        "o-1",
        micros,
        "EUR",
        "shop",
    )


def test_order_delivered_with_promised_at() -> None:
    raw = without(order(type="order.delivered", promised_at="2026-11-22T11:15:00+01:00"), "amount")
    event = accepted(validate(raw, "shop"))
    # 11:15+01:00 == 10:15Z
    assert (event.order_id, event.promised_at_ms) == ("o-1", 1_795_342_500_000)


def test_order_delivered_without_promised_at() -> None:
    event = accepted(validate(order(type="order.delivered"), "shop"))
    assert (event.order_id, event.promised_at_ms) == ("o-1", None)


def test_return_requested() -> None:
    raw = order(type="return.requested", return_id="r-1", reason="size_fit", channel="returns")
    event = accepted(validate(raw, "returns"))
    assert (event.type, event.order_id, event.return_id, event.reason, event.channel) == (
        "return.requested",
        "o-1",
        "r-1",
        "size_fit",
        "returns",
    )


def test_refund_issued() -> None:
    raw = {
        "event_id": "rf-1",
        "type": "refund.issued",
        "occurred_at": "2026-11-22T10:15:00Z",
        "customer_id": "c-1",
        "return_id": "r-1",
        "amount": "5.5",
    }
    event = accepted(validate(raw, "returns"))
    assert (event.type, event.return_id, event.amount_micros, event.channel) == (
        "refund.issued",
        "r-1",
        5_500_000,
        "returns",
    )


@pytest.mark.parametrize(
    ("survey", "score"),
    [("nps", 0), ("nps", 10), ("csat", 1), ("csat", 5), ("ces", 1), ("ces", 7)],
)
def test_survey_answered_range_edges(survey: str, score: int) -> None:
    event = accepted(validate(survey_answer(survey=survey, score=score), "survey"))
    assert (event.survey, event.score) == (survey, score)


def test_survey_answered_with_conversation_and_comment() -> None:
    raw = survey_answer(conversation_id="conv-1", comment="quick and friendly")
    event = accepted(validate(raw, "survey"))
    assert (event.conversation_id, event.payload["comment"]) == ("conv-1", "quick and friendly")


def test_customer_churned() -> None:
    raw = {
        "event_id": "ch-1",
        "type": "customer.churned",
        "occurred_at": "2026-11-22T10:15:00Z",
        "customer_id": "c-1",
        "channel": "web",
        "reason": "too expensive",
    }
    event = accepted(validate(raw, "web"))
    # the free-text reason is never a label: it stays in the payload only
    assert (event.type, event.reason, event.payload["reason"]) == (
        "customer.churned",
        None,
        "too expensive",
    )


def test_validator_never_raises_on_arbitrary_bytes() -> None:
    samples = [bytes(range(256)), b"\x00", b"{}", b'{"type": {}}', b'{"schema_version": []}']
    reasons = [rejected(EventValidator().validate(raw, "chat")) for raw in samples]
    # {} has no type; {"type": {}} has a non-string type; a list is not an integer version
    assert reasons == [
        "invalid_json",
        "invalid_json",
        "missing_field",
        "invalid_field",
        "invalid_field",
    ]


def test_occurred_at_too_far_in_the_future_is_rejected() -> None:
    # clock at 2026-11-22T10:00:00Z; the limit is one day ahead: 2026-11-23T10:00:00Z
    now_s = 1_795_341_600.0
    validator = EventValidator(clock=lambda: now_s)
    base = {
        "event_id": "e-1",
        "type": "customer.churned",
        "customer_id": "c-1",
        "channel": "web",
    }
    ahead = orjson.dumps({**base, "occurred_at": "2026-11-23T10:00:00.001Z"})
    at_limit = orjson.dumps({**base, "occurred_at": "2026-11-23T10:00:00Z"})
    far = orjson.dumps({**base, "occurred_at": "2099-01-01T00:00:00Z"})
    assert rejected(validator.validate(ahead, "web")) == "invalid_field"
    assert rejected(validator.validate(far, "web")) == "invalid_field"
    assert accepted(validator.validate(at_limit, "web")).occurred_at_ms == 1_795_428_000_000
    unlimited = EventValidator(max_future_ms=None, clock=lambda: now_s)
    assert accepted(unlimited.validate(far, "web")).event_id == "e-1"
