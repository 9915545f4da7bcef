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


# --- cx.kpi: the snapshots `cxpulse compute` prints ---------------------------------------------

KPI = Draft202012Validator(load_schema("cx.kpi.schema.json"))


def kpi_snapshots(lines: list[bytes]) -> list[dict[str, Any]]:
    """`compute_snapshots` over the lines, as the JSON that goes on the wire."""
    from agents.config import KpiConfig
    from pipeline.compute import compute_snapshots

    validator = EventValidator(max_bytes=MAX_BYTES)
    snapshots = compute_snapshots(iter(lines), KpiConfig(), validator)
    documents: list[dict[str, Any]] = orjson.loads(orjson.dumps(snapshots))
    return documents


KPI_SNAPSHOTS = kpi_snapshots(LINES)


def test_the_kpi_schema_exists_and_names_the_snapshot_fields() -> None:
    schema = load_schema("cx.kpi.schema.json")
    assert schema["$id"] == "https://cxpulse.dev/schemas/cx.kpi/v1"
    assert schema["properties"]["schema"]["const"] == "cx.kpi/v1"
    assert schema["additionalProperties"] is False
    # every field of the snapshot is required and described, and nothing else is allowed
    assert schema["required"] == list(KPI_SNAPSHOTS[0])
    for name, field in schema["properties"].items():
        assert field["description"], name
        for inner, spec in field.get("properties", {}).items():
            assert spec["description"], (name, inner)
    assert schema["properties"]["channel"]["enum"] == [
        "chat", "email", "phone", "social", "shop", "returns", "web", "all",
    ]  # fmt: skip


def test_the_known_stream_gives_one_snapshot_per_channel_and_window() -> None:
    # 8 channels (7 and `all`) x 3 windows, as of the final watermark 2026-10-30T23:55:00Z
    assert len(KPI_SNAPSHOTS) == 24
    assert {(doc["channel"], doc["window"]) for doc in KPI_SNAPSHOTS} == {
        (channel, window)
        for channel in ("chat", "email", "phone", "social", "shop", "returns", "web", "all")
        for window in ("1h", "24h", "7d")
    }
    assert {doc["as_of"] for doc in KPI_SNAPSHOTS} == {"2026-10-30T23:55:00.000Z"}


@pytest.mark.parametrize(
    "document", KPI_SNAPSHOTS, ids=[f"{d['channel']}-{d['window']}" for d in KPI_SNAPSHOTS]
)
def test_every_snapshot_of_the_known_stream_is_a_valid_cx_kpi_value(
    document: dict[str, Any],
) -> None:
    assert errors(KPI, document) == []


def test_every_snapshot_along_the_known_stream_is_valid() -> None:
    # The final snapshots have no survey answers or quantiles in their windows; the snapshots
    # as of each prefix of the stream have (e.g. after 2026-10-22T11:00:01Z the 1h window holds
    # the chat and phone FRT, the NPS, CSAT and CES answers), so every non-null branch is seen.
    seen: set[str] = set()
    for end in range(1, len(LINES) + 1):
        for document in kpi_snapshots(LINES[:end]):
            assert errors(KPI, document) == [], (end, document["channel"], document["window"])
            for name in ("nps", "csat", "ces", "fcr", "commerce"):
                if any(value is not None for value in document[name].values()):
                    seen.add(name)
            if document["first_response_seconds"]["p90"] is not None:
                seen.add("first_response_seconds")
            if document["commerce"]["return_rate"] is not None:
                seen.add("return_rate")
            if document["nps"]["score"] is not None:
                seen.add("nps.score")
    assert {"first_response_seconds", "nps.score", "fcr", "csat", "ces", "return_rate"} <= seen


def _all_7d() -> dict[str, Any]:
    found = [d for d in KPI_SNAPSHOTS if (d["channel"], d["window"]) == ("all", "7d")]
    assert len(found) == 1
    document: dict[str, Any] = orjson.loads(orjson.dumps(found[0]))  # a fresh copy
    return document


def _with(path: str, value: object, document: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of the `all` 7d snapshot (or `document`) with the field at `a.b` replaced."""
    result = _all_7d() if document is None else orjson.loads(orjson.dumps(document))
    *parents, last = path.split(".")
    target = result
    for parent in parents:
        target = target[parent]
    target[last] = value
    return result


def _without(path: str) -> dict[str, Any]:
    result = _all_7d()
    *parents, last = path.split(".")
    target = result
    for parent in parents:
        target = target[parent]
    del target[last]
    return result


def _chat_7d() -> dict[str, Any]:
    found = [d for d in KPI_SNAPSHOTS if (d["channel"], d["window"]) == ("chat", "7d")]
    document: dict[str, Any] = orjson.loads(orjson.dumps(found[0]))
    return document


def test_the_wrong_document_fixtures_start_from_valid_ones() -> None:
    base = _all_7d()
    # the 7d window [2026-10-23T23:00, 2026-10-30T23:00): deliveries, return, refund, churn,
    # and email B's FCR settled at its horizon 2026-10-30T13:00
    assert (base["events"], base["commerce"]["returns"], base["fcr"]["rate"]) == (5, 1, 1.0)
    assert errors(KPI, base) == []
    assert errors(KPI, _chat_7d()) == []


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(_with("nps.score", "40.0"), id="nps-score-a-string"),
        pytest.param(_with("nps.score", 101), id="nps-score-over-100"),
        pytest.param(_with("nps.score", 0.0), id="nps-score-without-responses"),
        pytest.param(_with("events", 1.5), id="events-not-integer"),
        pytest.param(_with("events", -1), id="events-negative"),
        pytest.param(_with("conversations.opened", None), id="opened-null"),
        pytest.param(_with("fcr.rate", 1.5), id="fcr-rate-over-1"),
        pytest.param(_with("csat.satisfied_share", "0.5"), id="csat-share-a-string"),
        pytest.param(_with("ces.mean", 8), id="ces-mean-over-7"),
        pytest.param(_with("first_response_seconds.p50", 12.5), id="quantile-without-samples"),
        pytest.param(_with("first_response_seconds.count", 3), id="samples-without-quantiles"),
        pytest.param(_with("commerce.returns", None), id="all-without-returns"),
        pytest.param(_with("commerce.return_rate", 0.5), id="return-rate-without-orders"),
        pytest.param(_with("commerce.returns", 1, _chat_7d()), id="channel-with-returns"),
        pytest.param(_with("commerce.deliveries", 0, _chat_7d()), id="channel-with-deliveries"),
        pytest.param(_with("schema", "cx.kpi/v2"), id="other-schema"),
        pytest.param(_with("channel", "fax"), id="unknown-channel"),
        pytest.param(_with("window", "one hour"), id="window-name"),
        pytest.param(_with("window_seconds", "604800"), id="window-seconds-a-string"),
        pytest.param(_with("as_of", "2026-10-30T23:55:00Z"), id="as_of-without-millis"),
        pytest.param(_with("as_of", "2026-10-30T23:55:00.000+00:00"), id="as_of-not-Z"),
        pytest.param(_with("as_of_ms", 1_793_404_500_000.5), id="as_of_ms-not-integer"),
        pytest.param(_with("partitions", 0), id="no-partitions"),
        pytest.param(_with("quantile_relative_accuracy", 0), id="zero-accuracy"),
        pytest.param(_with("extra", 1), id="additional-property"),
        pytest.param(_with("nps.nps", 1), id="additional-nested-property"),
        pytest.param(_without("backlog"), id="missing-backlog"),
        pytest.param(_without("ces.easy_share"), id="missing-ces-easy_share"),
        pytest.param(_without("resolution_seconds.p99"), id="missing-p99"),
    ],
)
def test_wrong_snapshots_are_rejected(document: dict[str, Any]) -> None:
    assert errors(KPI, document)


# --- cx.churn: the signals an offline run of the known stream raises ----------------------------

CHURN = Draft202012Validator(load_schema("cx.churn.schema.json"))
#: the contract's reason names (section 2), in its order
CHURN_REASONS = [
    "detractor", "slow_response", "reopened", "repeat_contact", "return",
    "late_delivery", "low_csat", "high_effort", "inactive",
]  # fmt: skip


def churn_signals(lines: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    """`OfflineRun.signals` over the lines (as `compute_snapshots` runs it), as wire JSON."""
    from agents.config import KpiConfig
    from pipeline.compute import OfflineRun

    run = OfflineRun(KpiConfig(), EventValidator(max_bytes=MAX_BYTES))
    for line in lines:
        run.feed(line)
    run.settle()
    return [(key, orjson.loads(orjson.dumps(value))) for key, value in run.signals]


CHURN_SIGNALS = churn_signals(LINES)


def test_the_churn_schema_names_exactly_the_fields_signal_writes() -> None:
    from agents.churn_logic import EXPERIENCE_SIGNALS, INACTIVE

    schema = load_schema("cx.churn.schema.json")
    assert schema["$id"] == "https://cxpulse.dev/schemas/cx.churn/v1"
    assert schema["additionalProperties"] is False
    # `{"customer_id": ..., **ChurnRisk.signal(state)}` and nothing else, all required
    assert CHURN_SIGNALS, "the known stream raises churn signals"
    for _, value in CHURN_SIGNALS:
        assert list(value) == schema["required"] == list(schema["properties"])
    reason = schema["properties"]["reasons"]["items"]["properties"]["reason"]
    assert reason["enum"] == CHURN_REASONS
    assert set(CHURN_REASONS) == {*EXPERIENCE_SIGNALS, INACTIVE}
    for name, field in schema["properties"].items():
        assert field["description"], name


@pytest.mark.parametrize(
    ("key", "value"), CHURN_SIGNALS, ids=[f"{k}-{v['tier']}" for k, v in CHURN_SIGNALS]
)
def test_every_churn_signal_of_the_known_stream_is_a_valid_cx_churn_value(
    key: str, value: dict[str, Any]
) -> None:
    assert errors(CHURN, value) == []
    assert value["customer_id"] == key  # the message key


CHURN_SIGNAL: dict[str, Any] = {
    "customer_id": "c5",
    "score": 0.4583,
    "tier": "medium",
    "previous_tier": "low",
    "reasons": [
        {"reason": "inactive", "contribution": 0.2506},
        {"reason": "return", "contribution": 0.15},
        {"reason": "late_delivery", "contribution": 0.1497},
    ],
    "p_alive": 0.7494,
    "as_of": "2026-10-25T12:00:00.000Z",
}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(CHURN_SIGNAL, id="medium-from-low"),
        pytest.param(
            {**CHURN_SIGNAL, "tier": "high", "previous_tier": None, "score": 1, "p_alive": 0},
            id="first-scoring-high",
        ),
        pytest.param({**CHURN_SIGNAL, "tier": "low", "previous_tier": "high"}, id="down-to-low"),
        pytest.param({**CHURN_SIGNAL, "reasons": []}, id="no-reasons"),
        pytest.param({**CHURN_SIGNAL, "as_of": "2026-10-25T13:00:00+01:00"}, id="as_of-offset"),
    ],
)
def test_hand_made_churn_signals_pass(value: dict[str, Any]) -> None:
    assert errors(CHURN, value) == []


def _reasons(*names: str) -> list[dict[str, Any]]:
    return [{"reason": name, "contribution": 0.1} for name in names]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({**CHURN_SIGNAL, "score": 1.5}, id="score-over-1"),
        pytest.param({**CHURN_SIGNAL, "score": -0.1}, id="score-negative"),
        pytest.param({**CHURN_SIGNAL, "score": "0.5"}, id="score-a-string"),
        pytest.param({**CHURN_SIGNAL, "p_alive": 1.01}, id="p_alive-over-1"),
        pytest.param({**CHURN_SIGNAL, "tier": "critical"}, id="unknown-tier"),
        pytest.param({**CHURN_SIGNAL, "previous_tier": "none"}, id="unknown-previous_tier"),
        pytest.param({**CHURN_SIGNAL, "tier": "low"}, id="tier-unchanged"),
        pytest.param({**CHURN_SIGNAL, "tier": "low", "previous_tier": None}, id="first-low"),
        pytest.param({**CHURN_SIGNAL, "reasons": _reasons("angry")}, id="unknown-reason"),
        pytest.param(
            {**CHURN_SIGNAL, "reasons": [{"reason": "return", "contribution": 1.2}]},
            id="contribution-over-1",
        ),
        pytest.param(
            {**CHURN_SIGNAL, "reasons": [{"reason": "return"}]}, id="contribution-missing"
        ),
        pytest.param(
            {**CHURN_SIGNAL, "reasons": [{"reason": "return", "contribution": 0.2, "x": 1}]},
            id="reason-extra-field",
        ),
        pytest.param(
            {**CHURN_SIGNAL, "reasons": _reasons("return", "reopened", "low_csat", "detractor")},
            id="four-reasons",
        ),
        pytest.param({**CHURN_SIGNAL, "reasons": ["return"]}, id="reason-a-string"),
        pytest.param({**CHURN_SIGNAL, "customer_id": ""}, id="empty-customer_id"),
        pytest.param({**CHURN_SIGNAL, "as_of": "2026-10-25T12:00:00"}, id="as_of-no-offset"),
        pytest.param({**CHURN_SIGNAL, "as_of": 1_793_016_000_000}, id="as_of-epoch"),
        pytest.param({**CHURN_SIGNAL, "extra": 1}, id="additional-property"),
        pytest.param(without(CHURN_SIGNAL, "previous_tier"), id="missing-previous_tier"),
        pytest.param(without(CHURN_SIGNAL, "reasons"), id="missing-reasons"),
        pytest.param(without(CHURN_SIGNAL, "as_of"), id="missing-as_of"),
    ],
)
def test_wrong_churn_signals_are_rejected(value: dict[str, Any]) -> None:
    assert errors(CHURN, value)
