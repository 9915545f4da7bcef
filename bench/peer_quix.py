"""The peer of the benchmark: CX Pulse's ingest and per-channel FRT/backlog in Quix Streams.

Run by `bench.run` with the interpreter of an environment that has `quixstreams` (the `bench`
extra, or the isolated one `bench.peer` makes on demand), so it imports nothing of ours.

In: the source topics (`--topics`, JSON channel kind -> topic), read from the earliest offset
by consumer group `--group`. Out: a JSON document at `--result` with what it counted and when
(monotonic seconds of the first source message and of the last aggregated one).

Written as the Quix Streams docs recommend: one `Application`, a `StreamingDataFrame` per
source topic (JSON deserializer, which uses orjson), `concat` into one, `filter` for bad
input, a stateful `apply` keyed by the message key (the customer) for conversation state,
`group_by("channel")` (a repartition topic) and a stateful `apply` per channel for the
aggregates; RocksDB state with changelog topics, at-least-once, `app.run(timeout=...)`.

The same work as CX Pulse's hot path, narrowed to one metric family:
- ingest: JSON object, required fields and types, known type and channel (default: the
  topic's), RFC 3339 `occurred_at` with an offset, survey score in range; bad input counted;
- dedup: an `event_id` seen for the customer within a day of event time is a duplicate;
- per customer: first response time (first agent `message.sent` minus `conversation.opened`,
  once per conversation) and open conversations (opened or reopened, not resolved since);
- per channel: events by type, duplicates, backlog, FRT count, sum and histogram buckets.
Messages without a key (a source system that sent none) cannot reach keyed state and are
counted as `unkeyed` (the generator makes a few, among its bad messages).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from quixstreams import Application, State

TYPES = frozenset(
    {
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
)
CHANNELS = frozenset({"chat", "email", "phone", "social", "shop", "returns", "web"})
SURVEY_RANGES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
CONVERSATION_TYPES = frozenset(t for t in TYPES if t.startswith(("conversation.", "message.")))
FRT_BUCKETS = (5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400, 172800)
DEDUP_HORIZON_MS = 86_400_000
PROGRESS_EVERY_S = 5.0


class Tally:
    """What this process counted, for the result file (the state holds the truth)."""

    def __init__(self) -> None:
        self.messages = 0
        self.bad_json = 0
        self.invalid = 0
        self.unkeyed = 0
        self.aggregated = 0
        self.first: float | None = None
        self.last: float | None = None
        self.reported = time.monotonic()
        self.per_channel: dict[str, dict[str, Any]] = {}

    def seen_message(self) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = self.reported = now
        self.last = now
        self.messages += 1
        if now - self.reported >= PROGRESS_EVERY_S:
            self.reported = now
            rate = self.messages / max(now - self.first, 1e-9)
            line = f"peer: {self.messages:,} messages read ({rate:,.0f}/s)"
            print(line, file=sys.stderr, flush=True)


TALLY = Tally()


def on_consumer_error(exc: Exception, message: Any, logger: logging.Logger) -> bool:
    """Not JSON (the deserializer failed): count it and go on, as a dead letter would."""
    TALLY.seen_message()
    TALLY.bad_json += 1
    return True


def _timestamp_ms(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp() * 1000)


def _text(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 128


def validate(value: Any, kind: str) -> dict[str, Any] | None:
    """The normalised event, or None (counted) when it breaks the contract."""
    TALLY.seen_message()
    if not isinstance(value, dict):
        TALLY.invalid += 1
        return None
    event_type = value.get("type")
    channel = value.get("channel", None if kind == "survey" else kind)
    occurred_ms = _timestamp_ms(value.get("occurred_at"))
    ok = (
        _text(value.get("event_id"))
        and _text(value.get("customer_id"))
        and event_type in TYPES
        and channel in CHANNELS
        and occurred_ms is not None
        and value.get("schema_version", 1) == 1
    )
    if ok and event_type in CONVERSATION_TYPES:
        ok = _text(value.get("conversation_id"))
        if ok and event_type == "message.sent":
            ok = value.get("author") in ("agent", "bot", "system")
    if ok and event_type == "survey.answered":
        bounds = SURVEY_RANGES.get(value.get("survey"))  # type: ignore[arg-type]
        score = value.get("score")
        ok = bounds is not None and type(score) is int and bounds[0] <= score <= bounds[1]
    if not ok:
        TALLY.invalid += 1
        return None
    value["channel"] = channel
    value["occurred_ms"] = occurred_ms
    return value


def keyed(value: Any, key: Any, timestamp: int, headers: Any) -> bool:
    if key is None:
        TALLY.unkeyed += 1
        return False
    return True


def track_customer(event: dict[str, Any], state: State) -> dict[str, Any]:
    """Per customer (the message key): dedup, conversation state, FRT and backlog changes."""
    occurred = int(event["occurred_ms"])
    seen: dict[str, int] = state.get("seen", {})
    observation: dict[str, Any] = {
        "channel": event["channel"],
        "type": event["type"],
        "duplicate": False,
        "frt_s": None,
        "backlog": 0,
    }
    event_id = event["event_id"]
    if event_id in seen:
        observation["duplicate"] = True
        return observation
    seen[event_id] = occurred
    if len(seen) > 64:
        newest = max(seen.values())
        seen = {k: v for k, v in seen.items() if v >= newest - DEDUP_HORIZON_MS}
    state.set("seen", seen)
    if event["type"] in CONVERSATION_TYPES:
        _conversation(event, occurred, observation, state)
    return observation


def _conversation(
    event: dict[str, Any], occurred: int, observation: dict[str, Any], state: State
) -> None:
    conversations: dict[str, list[Any]] = state.get("conversations", {})
    # [opened_ms or None, answered, open]
    current = conversations.get(event["conversation_id"], [None, False, False])
    event_type = event["type"]
    if event_type == "conversation.opened":
        if current[0] is None:
            current[0] = occurred
        if not current[2]:
            current[2] = True
            observation["backlog"] = 1
    elif event_type == "conversation.reopened":
        if not current[2]:
            current[2] = True
            observation["backlog"] = 1
    elif event_type == "conversation.resolved":
        if current[2]:
            current[2] = False
            observation["backlog"] = -1
    elif event_type == "message.sent" and event.get("author") == "agent" and not current[1]:
        current[1] = True
        if current[0] is not None:
            observation["frt_s"] = max(occurred - current[0], 0) / 1000
    conversations[event["conversation_id"]] = current
    state.set("conversations", conversations)


def aggregate_channel(observation: dict[str, Any], state: State) -> dict[str, Any]:
    """Per channel (after `group_by`): events by type, duplicates, backlog, FRT histogram."""
    totals: dict[str, Any] = state.get("totals") or {
        "events": {},
        "duplicates": 0,
        "backlog": 0,
        "frt_count": 0,
        "frt_sum_s": 0.0,
        "frt_buckets": [0] * (len(FRT_BUCKETS) + 1),
    }
    if observation["duplicate"]:
        totals["duplicates"] += 1
    else:
        events = totals["events"]
        events[observation["type"]] = events.get(observation["type"], 0) + 1
        totals["backlog"] += observation["backlog"]
        frt = observation["frt_s"]
        if frt is not None:
            totals["frt_count"] += 1
            totals["frt_sum_s"] += frt
            index = next((i for i, b in enumerate(FRT_BUCKETS) if frt <= b), len(FRT_BUCKETS))
            totals["frt_buckets"][index] += 1
    state.set("totals", totals)
    TALLY.per_channel[observation["channel"]] = totals
    TALLY.aggregated += 1
    TALLY.last = time.monotonic()
    return observation


def build(app: Application, topics: dict[str, str]) -> None:
    frames = []
    for kind, name in topics.items():
        topic = app.topic(name, value_deserializer="json", key_deserializer="str")
        sdf = app.dataframe(topic)
        sdf = sdf.apply(partial(validate, kind=kind)).filter(lambda event: event is not None)
        frames.append(sdf)
    merged = frames[0]
    for other in frames[1:]:
        merged = merged.concat(other)
    merged = merged.filter(keyed, metadata=True)
    merged = merged.apply(track_customer, stateful=True)
    merged = merged.group_by("channel")
    merged.apply(aggregate_channel, stateful=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topics", required=True, help="JSON: channel kind -> source topic")
    parser.add_argument("--group", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--result", required=True, type=Path)
    parser.add_argument("--idle-timeout", type=float, default=15.0)
    args = parser.parse_args()
    app = Application(
        broker_address=args.bootstrap_servers,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
        on_consumer_error=on_consumer_error,
    )
    build(app, json.loads(args.topics))
    # stops once nothing new has been consumed for the idle timeout: the input is all read
    app.run(timeout=args.idle_timeout)
    result = {
        "messages": TALLY.messages,
        "bad_json": TALLY.bad_json,
        "invalid": TALLY.invalid,
        "unkeyed": TALLY.unkeyed,
        "aggregated": TALLY.aggregated,
        "first_s": TALLY.first,
        "last_s": TALLY.last,
        "per_channel": TALLY.per_channel,
    }
    args.result.write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
