"""Deliberately bad messages for the traffic generator, one per dead-letter reason it exercises.

Each fault starts from a valid event of a random customer (not part of any journey, so the
valid stream's KPIs are unaffected) and breaks it the way real source systems do. The kinds
rotate in a freshly shuffled order, so any run with at least ``len(FAULT_KINDS)`` bad messages
covers every one. ``too_large`` is not generated: a 1 MiB message has no place in a demo.
No payload contains a newline, so each stays one JSON Lines line.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from pipeline.generator_world import CHANNEL_WEIGHTS, CHANNELS, Event, World

# kind -> the reason the workers should dead-letter it with
FAULT_KINDS: dict[str, str] = {
    "truncated_json": "invalid_json",
    "invalid_utf8": "invalid_json",
    "missing_field": "missing_field",
    "score_out_of_range": "invalid_field",
    "timestamp_without_offset": "invalid_field",
    "wrong_type": "invalid_field",
    "unknown_type": "unknown_type",
    "unsupported_version": "unsupported_version",
}
UNKNOWN_TYPES = ("conversation.escalated", "cart.abandoned", "message.deleted")
OUT_OF_RANGE = {"nps": (-1, 11), "csat": (0, 6), "ces": (0, 8)}

Fault = tuple[str, bytes, bytes | None]  # (topic channel, message bytes, key)


class FaultMaker:
    """Builds the next bad message, cycling through :data:`FAULT_KINDS`."""

    def __init__(self, world: World) -> None:
        self._world = world
        self._queue: list[str] = []

    def make(self, at: float) -> Fault:
        if not self._queue:
            self._queue = list(FAULT_KINDS)
            self._world.rng.shuffle(self._queue)
        return _BUILDERS[self._queue.pop()](self._world, at)


def _message_event(world: World, at: float) -> Event:
    customer = world.pick_customer()
    channel = world.pick(CHANNELS, CHANNEL_WEIGHTS)
    conversation = world.new_id("cv")
    return world.event(at, "message.received", customer, channel, conversation_id=conversation)


def _survey_event(world: World, at: float) -> Event:
    channel = world.pick(CHANNELS, CHANNEL_WEIGHTS)
    survey = world.pick(tuple(OUT_OF_RANGE), (45.0, 40.0, 15.0))
    event = world.event(at, "survey.answered", world.pick_customer(), channel, survey=survey)
    low, high = OUT_OF_RANGE[survey]
    event["score"] = world.pick((low + 1, high - 1), (1.0, 1.0))
    return event


def _keyed(event: Event, value: bytes, topic_channel: str | None = None) -> Fault:
    channel = topic_channel or str(event["channel"])
    return channel, value, str(event["customer_id"]).encode()


def _truncated_json(world: World, at: float) -> Fault:
    event = _message_event(world, at)
    value = orjson.dumps(event)
    # An object cut anywhere before its closing brace is never valid JSON.
    return str(event["channel"]), value[: world.rng.randrange(1, len(value) - 1)], None


def _invalid_utf8(world: World, at: float) -> Fault:
    event = _survey_event(world, at)
    # A survey tool writing its free-text comment in Latin-1 instead of UTF-8.
    comment = "très déçu, délai énorme".encode("latin-1")
    value = orjson.dumps(event)[:-1] + b',"comment":"' + comment + b'"}'
    return "survey", value, None


def _missing_field(world: World, at: float) -> Fault:
    event = _message_event(world, at)
    del event[world.pick(("event_id", "occurred_at", "conversation_id", "type"), (1, 1, 2, 1))]
    return _keyed(event, orjson.dumps(event))


def _score_out_of_range(world: World, at: float) -> Fault:
    event = _survey_event(world, at)
    low, high = OUT_OF_RANGE[str(event["survey"])]
    event["score"] = world.pick((low, high), (1.0, 3.0))
    return _keyed(event, orjson.dumps(event), "survey")


def _timestamp_without_offset(world: World, at: float) -> Fault:
    event = _message_event(world, at)
    event["occurred_at"] = str(event["occurred_at"]).removesuffix("Z")
    return _keyed(event, orjson.dumps(event))


def _wrong_type(world: World, at: float) -> Fault:
    event = _message_event(world, at)
    # A source system sending its numeric ticket id as a JSON number, not a string.
    event["conversation_id"] = world.rng.randrange(100_000, 1_000_000)
    return _keyed(event, orjson.dumps(event))


def _unknown_type(world: World, at: float) -> Fault:
    event = _message_event(world, at)
    event["type"] = world.pick(UNKNOWN_TYPES, (1.0, 1.0, 1.0))
    return _keyed(event, orjson.dumps(event))


def _unsupported_version(world: World, at: float) -> Fault:
    event = _message_event(world, at)
    event["schema_version"] = 2
    return _keyed(event, orjson.dumps(event))


_BUILDERS: dict[str, Callable[[World, float], Fault]] = {
    "truncated_json": _truncated_json,
    "invalid_utf8": _invalid_utf8,
    "missing_field": _missing_field,
    "score_out_of_range": _score_out_of_range,
    "timestamp_without_offset": _timestamp_without_offset,
    "wrong_type": _wrong_type,
    "unknown_type": _unknown_type,
    "unsupported_version": _unsupported_version,
}
