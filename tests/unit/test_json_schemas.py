"""schemas/json/: the JSON Schemas of the output topics are valid draft 2020-12 schemas and
agree with what the pipeline writes: every event of the hand-made stream that the validator
accepts is a valid `cx.events` value, every dead letter of a rejected one a valid `cx.dlq`
value that gives back the original bytes, and wrong documents are rejected."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

import schemas
from agents.ingest import dead_letter
from schemas.events import Event
from schemas.validate import REJECT_REASONS, EventValidator, Rejection
from tests.known_stream import LINES, MAX_BYTES

SCHEMA_DIR = Path(schemas.__file__).parent / "json"
SCHEMA_FILES = sorted(SCHEMA_DIR.glob("*.json"))


def load_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return schema


EVENTS = Draft202012Validator(load_schema("cx.events.schema.json"))
DLQ = Draft202012Validator(load_schema("cx.dlq.schema.json"))


@dataclass(frozen=True)
class Message:
    """The attributes of a Faust message that `dead_letter` reads."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None


def _results() -> list[tuple[int, bytes, Event | Rejection]]:
    validator = EventValidator(max_bytes=MAX_BYTES)
    return [(i, line, validator.validate(line, "chat")) for i, line in enumerate(LINES)]


RESULTS = _results()
ACCEPTED = [(i, result) for i, _, result in RESULTS if isinstance(result, Event)]
REJECTED = [(i, line, result) for i, line, result in RESULTS if isinstance(result, Rejection)]


def errors(validator: Draft202012Validator, document: object) -> list[str]:
    return [error.message for error in validator.iter_errors(document)]


# --- the schema files themselves -------------------------------------------------------------


def test_the_output_topic_schemas_exist() -> None:
    names = {path.name for path in SCHEMA_FILES}
    assert {"cx.events.schema.json", "cx.dlq.schema.json"} <= names


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda path: path.name)
def test_schema_file_is_a_valid_draft_2020_12_schema(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("https://cxpulse.dev/schemas/")
    assert schema["title"]
    assert schema["description"]


# --- cx.events: what the validator accepts ------------------------------------------------------


def test_the_known_stream_has_valid_and_invalid_lines_of_every_reason() -> None:
    assert len(ACCEPTED) == 28  # 27 events and one duplicate
    assert {rejection.reason for _, _, rejection in REJECTED} == set(REJECT_REASONS)


@pytest.mark.parametrize(("index", "event"), ACCEPTED, ids=[f"line{i}" for i, _ in ACCEPTED])
def test_every_accepted_event_is_a_valid_cx_events_value(index: int, event: Event) -> None:
    value = orjson.loads(orjson.dumps(event.payload))  # exactly what goes on the wire
    assert errors(EVENTS, value) == []
    assert value["channel"] == event.channel
    assert value["schema_version"] == 1


def test_normalisation_fills_in_channel_and_schema_version() -> None:
    raw = {
        "event_id": "n1",
        "type": "message.received",
        "occurred_at": "2026-11-22T10:00:00+01:00",
        "customer_id": "c1",
        "conversation_id": "A",
        "x-unknown": {"kept": True},
    }
    # Without channel and schema_version the source document is not a cx.events value...
    assert errors(EVENTS, raw)
    event = EventValidator().validate(orjson.dumps(raw), "email")
    assert isinstance(event, Event)
    # ...the normalised one is, unknown fields included.
    assert errors(EVENTS, event.payload) == []
    assert event.payload["x-unknown"] == {"kept": True}


# --- cx.dlq: what the validator rejects ---------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "line", "rejection"),
    REJECTED,
    ids=[f"line{i}-{rejection.reason}" for i, _, rejection in REJECTED],
)
def test_every_dead_letter_is_a_valid_cx_dlq_value(
    index: int, line: bytes, rejection: Rejection
) -> None:
    message = Message(topic="cx.raw.chat", partition=3, offset=1000 + index, value=line)
    letter = orjson.loads(dead_letter(message, rejection))
    assert errors(DLQ, letter) == []
    assert letter["reason"] == rejection.reason
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == (
        "cx.raw.chat",
        3,
        1000 + index,
    )
    assert base64.b64decode(letter["original_base64"], validate=True) == line


def test_a_dead_letter_of_an_empty_message_is_valid() -> None:
    message = Message(topic="cx.raw.web", partition=0, offset=0, value=None)
    letter = orjson.loads(dead_letter(message, Rejection("invalid_json", "empty")))
    assert errors(DLQ, letter) == []
    assert letter["original_base64"] == ""


# --- wrong documents are rejected ---------------------------------------------------------------

ENVELOPE: dict[str, Any] = {
    "event_id": "e1",
    "occurred_at": "2026-11-22T10:15:00.123Z",
    "customer_id": "c1",
    "channel": "chat",
    "schema_version": 1,
}
NPS: dict[str, Any] = {**ENVELOPE, "type": "survey.answered", "survey": "nps", "score": 9}
CSAT: dict[str, Any] = {**NPS, "survey": "csat", "score": 4}
CES: dict[str, Any] = {**NPS, "survey": "ces", "score": 7}
SENT: dict[str, Any] = {
    **ENVELOPE,
    "type": "message.sent",
    "conversation_id": "A",
    "author": "agent",
}
ORDER: dict[str, Any] = {
    **ENVELOPE,
    "channel": "shop",
    "type": "order.placed",
    "order_id": "o1",
    "amount": "19.99",
    "currency": "EUR",
}
DELIVERED: dict[str, Any] = {
    **ENVELOPE,
    "channel": "shop",
    "type": "order.delivered",
    "order_id": "o1",
    "promised_at": "2026-11-24T00:00:00+02:00",
}


def without(event: dict[str, Any], field: str) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key != field}


@pytest.mark.parametrize(
    "event",
    [
        NPS,
        {**NPS, "score": 0, "comment": None, "conversation_id": "A"},
        {**CSAT, "score": 1},
        {**CES, "score": 1},
        SENT,
        ORDER,
        {**ORDER, "amount": 0},
        {**ORDER, "amount": 19.99},
        DELIVERED,
        {**DELIVERED, "promised_at": None},
        {**SENT, "x-extra": [1, 2, 3]},
        {**ENVELOPE, "type": "customer.churned", "reason": "moved abroad"},
    ],
)
def test_hand_made_valid_events_pass(event: dict[str, Any]) -> None:
    assert errors(EVENTS, event) == []
    assert isinstance(EventValidator().validate(orjson.dumps(event), "chat"), Event)


@pytest.mark.parametrize(
    "event",
    [
        pytest.param({**NPS, "score": 11}, id="nps-score-11"),
        pytest.param({**NPS, "score": -1}, id="nps-score-negative"),
        pytest.param({**NPS, "score": 9.5}, id="nps-score-not-integer"),
        pytest.param({**CSAT, "score": 0}, id="csat-score-0"),
        pytest.param({**CSAT, "score": 6}, id="csat-score-6"),
        pytest.param({**CES, "score": 8}, id="ces-score-8"),
        pytest.param({**NPS, "survey": "ces", "score": 0}, id="ces-score-0"),
        pytest.param({**NPS, "survey": "mood"}, id="unknown-survey"),
        pytest.param(without(NPS, "customer_id"), id="missing-customer_id"),
        pytest.param(without(NPS, "event_id"), id="missing-event_id"),
        pytest.param({**NPS, "customer_id": ""}, id="empty-customer_id"),
        pytest.param({**NPS, "event_id": "e" * 129}, id="event_id-too-long"),
        pytest.param({**NPS, "channel": "fax"}, id="unknown-channel"),
        pytest.param({**NPS, "schema_version": 2}, id="schema_version-2"),
        pytest.param({**NPS, "type": "foo.bar"}, id="unknown-type"),
        pytest.param({**NPS, "occurred_at": "2026-11-22T10:15:00"}, id="no-offset"),
        pytest.param({**NPS, "occurred_at": "2026-11-22 10:15:00Z"}, id="no-T"),
        pytest.param({**NPS, "occurred_at": 1795342500}, id="epoch-number"),
        pytest.param(without(SENT, "author"), id="message.sent-missing-author"),
        pytest.param({**SENT, "author": "customer"}, id="message.sent-unknown-author"),
        pytest.param(without(SENT, "conversation_id"), id="missing-conversation_id"),
        pytest.param({**ORDER, "amount": -1}, id="negative-amount"),
        pytest.param({**ORDER, "amount": "-1.00"}, id="negative-amount-string"),
        pytest.param({**ORDER, "amount": "abc"}, id="amount-not-decimal"),
        pytest.param({**ORDER, "amount": 1e15}, id="amount-too-large"),
        pytest.param({**ORDER, "currency": "eur"}, id="currency-lower-case"),
        pytest.param(without(ORDER, "currency"), id="missing-currency"),
        pytest.param({**DELIVERED, "promised_at": "tomorrow"}, id="promised_at-not-timestamp"),
        pytest.param({**ENVELOPE, "type": "customer.churned", "reason": 3}, id="reason-number"),
    ],
)
def test_wrong_events_are_rejected_by_the_schema_and_the_validator(event: dict[str, Any]) -> None:
    assert errors(EVENTS, event)
    assert isinstance(EventValidator().validate(orjson.dumps(event), "chat"), Rejection)


@pytest.mark.parametrize("field", ["channel", "schema_version"])
def test_the_normalised_fields_are_required(field: str) -> None:
    # The validator fills them in (from the source topic, default 1); cx.events always has them.
    assert errors(EVENTS, without(NPS, field))


LETTER: dict[str, Any] = {
    "schema": "cx.dead_letter/v1",
    "reason": "invalid_json",
    "detail": "not valid UTF-8 JSON",
    "source_topic": "cx.raw.chat",
    "source_partition": 0,
    "source_offset": 42,
    "original_base64": base64.b64encode(b"not json{").decode("ascii"),
}


@pytest.mark.parametrize(
    "letter",
    [
        pytest.param({**LETTER, "reason": "bad_vibes"}, id="unknown-reason"),
        pytest.param({**LETTER, "schema": "cx.dead_letter/v2"}, id="other-schema"),
        pytest.param({**LETTER, "extra": 1}, id="additional-property"),
        pytest.param(without(LETTER, "source_offset"), id="missing-source_offset"),
        pytest.param({**LETTER, "source_partition": -1}, id="negative-partition"),
        pytest.param({**LETTER, "original_base64": "not base64!"}, id="not-base64"),
        pytest.param({**LETTER, "original_base64": "bm9"}, id="base64-unpadded"),
    ],
)
def test_wrong_dead_letters_are_rejected(letter: dict[str, Any]) -> None:
    assert errors(DLQ, LETTER) == []
    assert errors(DLQ, letter)
