"""Turn one raw Kafka message into an `Event`, or say exactly why it is not one.

In: the message bytes and the kind of source topic it came from (`chat`, ..., `survey`).
Out: an `Event`, or a `Rejection` whose `reason` is one of the contract's dead-letter reasons
(`invalid_json`, `missing_field`, `invalid_field`, `unknown_type`, `unsupported_version`,
`too_large`) with a human-readable `detail`. Never raises on bad input.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal, cast, get_args

import orjson

from schemas.events import (
    AUTHORS,
    CHANNELS,
    EVENT_TYPES,
    MICROS,
    RETURN_REASONS,
    SCHEMA_VERSION,
    SURVEY_RANGES,
    Author,
    Channel,
    Event,
    EventType,
    Survey,
)

RejectReason = Literal[
    "invalid_json",
    "missing_field",
    "invalid_field",
    "unknown_type",
    "unsupported_version",
    "too_large",
]
REJECT_REASONS: Final[tuple[RejectReason, ...]] = get_args(RejectReason)
DEFAULT_MAX_BYTES: Final = 1024 * 1024
DEFAULT_MAX_FUTURE_MS: Final = 86_400_000
MAX_ID_LENGTH: Final = 128

_TIMESTAMP = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,9}))?"
    r"([Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_DECIMAL_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")
# Amounts are kept in integer micro-units in per-customer ledgers and window aggregates that
# orjson writes (64-bit integers at most): 1e9 per event (1e15 micros) leaves room to sum
# thousands of the largest orders of one customer or window before that limit.
_MAX_AMOUNT: Final = Decimal(10) ** 9
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)
_EVENT_TYPES: Final = frozenset(EVENT_TYPES)
_CHANNELS: Final = frozenset(CHANNELS)
_AUTHORS: Final = frozenset(AUTHORS)
_RETURN_REASONS: Final = frozenset(RETURN_REASONS)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message is not a valid event; it goes to the dead-letter topic as it came."""

    reason: RejectReason
    detail: str


class _Invalid(Exception):
    """Internal: carries a rejection out of nested field checks."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.rejection = Rejection(reason, detail)


def parse_timestamp_ms(value: object, field: str) -> int:
    """RFC 3339 with an explicit offset to epoch milliseconds (sub-millisecond digits dropped)."""
    if not isinstance(value, str):
        raise _Invalid("invalid_field", f"{field} must be an RFC 3339 string, got {_kind(value)}")
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        raise _Invalid(
            "invalid_field",
            f"{field} must be RFC 3339 with an offset, like 2026-11-22T10:15:00.123Z",
        )
    date, clock, fraction, offset = match.groups()
    micros = (fraction or "").ljust(6, "0")[:6]
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        moment = datetime.fromisoformat(f"{date}T{clock}.{micros}{offset}")
    except ValueError:
        raise _Invalid("invalid_field", f"{field} is not a real date and time") from None
    return (moment - _EPOCH) // _MILLISECOND


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _field(obj: dict[str, Any], name: str) -> Any:
    value = obj.get(name)
    if value is None:
        raise _Invalid("missing_field", f"{name} is required")
    return value


def _identifier(obj: dict[str, Any], name: str) -> str:
    value = _field(obj, name)
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_LENGTH:
        raise _Invalid("invalid_field", f"{name} must be a string of 1-{MAX_ID_LENGTH} characters")
    return value


def _choice(obj: dict[str, Any], name: str, allowed: Collection[str]) -> str:
    value = _field(obj, name)
    if not isinstance(value, str) or value not in allowed:
        raise _Invalid("invalid_field", f"{name} must be one of {', '.join(sorted(allowed))}")
    return value


def _amount_micros(obj: dict[str, Any], name: str) -> int:
    value = _field(obj, name)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Invalid("invalid_field", f"{name} must be a decimal number >= 0")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Invalid("invalid_field", f"{name} must be a finite number")
    text = value if isinstance(value, str) else repr(value)
    if not _DECIMAL_TEXT.fullmatch(text):
        raise _Invalid("invalid_field", f"{name} must be a decimal number >= 0, like 19.99")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise _Invalid("invalid_field", f"{name} must be a decimal number >= 0") from None
    if not number.is_finite() or number < 0 or number >= _MAX_AMOUNT:
        raise _Invalid("invalid_field", f"{name} must be a decimal number >= 0 and < 1e9")
    return int((number * MICROS).to_integral_value())


def _score(obj: dict[str, Any], survey: str) -> int:
    value = _field(obj, "score")
    low, high = SURVEY_RANGES[survey]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _Invalid("invalid_field", f"score for {survey} must be an integer {low}-{high}")
    return value


class EventValidator:
    """Validates raw messages against the contract; cheap to call, safe on any bytes."""

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        known_topics: Collection[str] = (),
        max_future_ms: int | None = DEFAULT_MAX_FUTURE_MS,
        clock: Callable[[], float] = time.time,
        forwards: bool = True,
    ) -> None:
        """`max_future_ms`: how far `occurred_at` may lie ahead of `clock()` (None: no limit);
        one event stamped years ahead would otherwise drag the watermark along for good.
        `forwards`: whether the caller writes `payload` back out as JSON (ingest does, so it
        is checked to be writable; the agents reading `cx.events` do not)."""
        self.max_bytes = max_bytes
        self.max_future_ms = max_future_ms
        self.clock = clock
        self.known_topics = frozenset(known_topics)
        self.forwards = forwards

    def validate(self, raw: bytes, source_kind: str) -> Event | Rejection:
        """Validate one message that arrived on the source topic of `source_kind`."""
        if len(raw) > self.max_bytes:
            return Rejection("too_large", f"{len(raw)} bytes is over the {self.max_bytes} limit")
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Rejection("invalid_json", f"not valid UTF-8 JSON: {str(exc)[:160]}")
        if not isinstance(obj, dict):
            return Rejection("invalid_json", f"expected a JSON object, got {_kind(obj)}")
        try:
            event = self._event(obj, source_kind)
        except _Invalid as invalid:
            return invalid.rejection
        if not self.forwards:
            return event
        try:
            # orjson reads up to 1024 levels of nesting but writes only 254: an unknown field
            # nested deeper would pass here and then fail ingest's write to cx.events, which
            # would stop the worker on every restart (a poison message).
            orjson.dumps(event.payload)
        except orjson.JSONEncodeError as exc:
            return Rejection("invalid_json", f"nests too deeply to forward as JSON: {exc}")
        return event

    def _event(self, obj: dict[str, Any], source_kind: str) -> Event:
        version = obj.get("schema_version", SCHEMA_VERSION)
        if isinstance(version, bool) or not isinstance(version, int):
            raise _Invalid("invalid_field", "schema_version must be an integer")
        if version != SCHEMA_VERSION:
            raise _Invalid(
                "unsupported_version", f"schema_version {version} is not supported (only 1)"
            )
        kind = _field(obj, "type")
        if not isinstance(kind, str):
            raise _Invalid("invalid_field", "type must be a string")
        if kind not in _EVENT_TYPES:
            raise _Invalid("unknown_type", f"unknown event type {kind[:64]!r}")
        event_type: EventType = kind
        event_id = _identifier(obj, "event_id")
        occurred_at_ms = parse_timestamp_ms(_field(obj, "occurred_at"), "occurred_at")
        if self.max_future_ms is not None:
            limit_ms = int(self.clock() * 1000) + self.max_future_ms
            if occurred_at_ms > limit_ms:
                raise _Invalid(
                    "invalid_field",
                    f"occurred_at is more than {self.max_future_ms // 1000} s in the future",
                )
        customer_id = _identifier(obj, "customer_id")
        channel = self._channel(obj, source_kind)
        payload = obj
        if obj.get("channel") != channel or "schema_version" not in obj:
            payload = {**obj, "channel": channel, "schema_version": version}
        base: dict[str, Any] = {
            "event_id": event_id,
            "type": event_type,
            "occurred_at_ms": occurred_at_ms,
            "customer_id": customer_id,
            "channel": channel,
            "schema_version": version,
            "payload": payload,
        }
        return Event(**base, **self._details(obj, event_type))

    def _channel(self, obj: dict[str, Any], source_kind: str) -> Channel:
        value = obj.get("channel")
        if value is None:
            if source_kind == "survey" or source_kind not in _CHANNELS:
                raise _Invalid("missing_field", "channel is required on survey answers")
            return source_kind
        if not isinstance(value, str) or value not in _CHANNELS:
            raise _Invalid("invalid_field", f"channel must be one of {', '.join(CHANNELS)}")
        return value

    def _details(self, obj: dict[str, Any], event_type: EventType) -> dict[str, Any]:
        if event_type.startswith(("conversation.", "message.")):
            details: dict[str, Any] = {"conversation_id": _identifier(obj, "conversation_id")}
            if event_type == "conversation.opened":
                details["topic"] = self._topic(obj.get("topic"))
            elif event_type == "message.sent":
                details["author"] = cast(Author, _choice(obj, "author", _AUTHORS))
            return details
        if event_type == "order.placed":
            currency = _field(obj, "currency")
            if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
                raise _Invalid("invalid_field", "currency must be an ISO 4217 code like EUR")
            return {
                "order_id": _identifier(obj, "order_id"),
                "amount_micros": _amount_micros(obj, "amount"),
                "currency": currency,
            }
        if event_type == "order.delivered":
            promised = obj.get("promised_at")
            return {
                "order_id": _identifier(obj, "order_id"),
                "promised_at_ms": None
                if promised is None
                else parse_timestamp_ms(promised, "promised_at"),
            }
        if event_type == "return.requested":
            return {
                "order_id": _identifier(obj, "order_id"),
                "return_id": _identifier(obj, "return_id"),
                "reason": _choice(obj, "reason", _RETURN_REASONS),
            }
        if event_type == "refund.issued":
            return {
                "return_id": _identifier(obj, "return_id"),
                "amount_micros": _amount_micros(obj, "amount"),
            }
        if event_type == "survey.answered":
            return self._survey(obj)
        reason = obj.get("reason")  # customer.churned: free text, never a label
        if reason is not None and not isinstance(reason, str):
            raise _Invalid("invalid_field", "reason must be a string")
        return {}

    def _survey(self, obj: dict[str, Any]) -> dict[str, Any]:
        survey = cast(Survey, _choice(obj, "survey", SURVEY_RANGES))
        details: dict[str, Any] = {"survey": survey, "score": _score(obj, survey)}
        conversation_id = obj.get("conversation_id")
        if conversation_id is not None:
            details["conversation_id"] = _identifier(obj, "conversation_id")
        comment = obj.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise _Invalid("invalid_field", "comment must be a string")
        return details

    def _topic(self, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise _Invalid("invalid_field", "topic must be a string")
        return value if value in self.known_topics else "other"
