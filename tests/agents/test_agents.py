"""The real agents of `pipeline.app`, driven through Faust's test context (no broker).

`agent.test_context()` swaps each agent's topic for an in-memory channel; tables use the
in-memory store (`Settings(store="memory")`). Sends to `cx.events` and `cx.dlq` are captured
by replacing the topics' `send` with a recorder; changelog messages count as delivered at once
(no producer runs: the agents wait for their batch's changelog messages to be delivered).
KPIs are read from the worker's own fresh `CollectorRegistry`, as `/metrics` would serve them.

Two limits of Faust's test wrapper shape these tests:
- `put` stamps `message.topic` with the agent's topic name only when that topic has exactly
  one name (else `<internal>`), so the ingest tests configure a single source topic.
- `put(wait=True)` is woken when the stream takes the value, not when the agent body is
  done with it: the agents take the stream in batches. Tests therefore wait for the outcome
  itself (`_eventually`), or put a message the agent rejects as a barrier and wait until the
  agent has noted it processed: a batch is applied in order without awaiting, so by then
  everything before the barrier is applied and stored.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from agents.family_agent import TablePort
from pipeline.app import Worker, create_app
from pipeline.settings import Settings

SOURCE_TOPIC = "cx.raw.chat"
SOURCE_PARTITION = 3
EVENTS_PARTITION = 4
LATENESS_MS = 300_000  # Settings.allowed_lateness_s default (300 s)
T0_MS = int(datetime(2026, 11, 22, 10, tzinfo=UTC).timestamp() * 1000)


@dataclass
class Sent:
    """What an agent sent to one topic, in order."""

    messages: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, **kwargs: Any) -> asyncio.Future[None]:
        """As Faust's `send`: the message is queued, the returned future completes once the
        broker has it (at once here)."""
        self.messages.append(kwargs)
        return _delivered(None, b"", b"")


@dataclass
class Harness:
    worker: Worker
    events: Sent
    dlq: Sent

    def sample(self, name: str, **labels: str) -> float | None:
        return self.worker.registry.get_sample_value(name, labels)


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    settings = Settings(
        bootstrap_servers="localhost:1",
        metrics_port=0,
        data_dir=tmp_path,
        source_topics={"chat": SOURCE_TOPIC},
        store="memory",
    )
    worker = create_app(settings, CollectorRegistry())
    worker.app.finalize()
    assert worker.app.conf.store.scheme == "cxmemory"
    events, dlq = Sent(), Sent()
    monkeypatch.setattr(worker.topics.events, "send", events.send)
    monkeypatch.setattr(worker.topics.dlq, "send", dlq.send)
    for table in worker.app.tables.values():
        # no producer runs here: a changelog message is delivered as soon as it is sent
        monkeypatch.setattr(table, "send_changelog", _delivered)
    return Harness(worker, events, dlq)


def _delivered(partition: int | None, key: bytes, value: bytes) -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


@pytest_asyncio.fixture(loop_scope="function")  # the tests' own loop
async def ingest(harness: Harness) -> AsyncIterator[Any]:
    async with harness.worker.app.agents["validate_events"].test_context() as agent:
        yield agent


@pytest_asyncio.fixture(loop_scope="function")  # the tests' own loop
async def service(harness: Harness) -> AsyncIterator[Any]:
    async with harness.worker.app.agents["apply_events"].test_context() as agent:
        yield agent


async def _eventually(condition: Callable[[], bool]) -> None:
    """Wait up to 5 s for the agent to reach `condition`."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the agent did not get there within 5 s")


def _raw_event(event_id: str, kind: str, at_s: int, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": kind,
        "occurred_at": f"2026-11-22T10:{at_s // 60:02d}:{at_s % 60:02d}Z",
        "customer_id": "c1",
        **extra,
    }


# --- validate_events --------------------------------------------------------------------


async def test_ingest_forwards_valid_events_and_dead_letters_invalid_json(
    harness: Harness, ingest: Any
) -> None:
    first = _raw_event("e1", "conversation.opened", 0, conversation_id="A")  # no channel
    second = _raw_event("e2", "message.received", 1, conversation_id="A", channel="chat")

    await ingest.put(b"not json", key=b"src-key", partition=SOURCE_PARTITION)  # offset 0
    await ingest.put(orjson.dumps(first), key=b"k1", partition=SOURCE_PARTITION)  # offset 1
    await ingest.put(orjson.dumps(second), key=b"k2", partition=SOURCE_PARTITION)  # offset 2

    table = harness.worker.app.tables["source_partitions"]
    ref = f"{SOURCE_TOPIC}:{SOURCE_PARTITION}".encode()
    await _eventually(lambda: ref in table.data and orjson.loads(table.data[ref])["next"] == 3)

    assert orjson.loads(table.data[ref]) == {
        "next": 3,
        "latest": T0_MS + 1000,
        "totals": {"cx_events_rejected_total|invalid_json": 1},
    }
    assert harness.worker.runtime.ingest_totals_by_partition() == {
        SOURCE_PARTITION: {"cx_events_rejected_total|invalid_json": 1}
    }
    assert (
        harness.sample(
            "cx_events_rejected_total", reason="invalid_json", partition=str(SOURCE_PARTITION)
        )
        == 1
    )
    assert (
        harness.sample(
            "cx_events_rejected_total", reason="missing_field", partition=str(SOURCE_PARTITION)
        )
        == 0
    )

    # The dead letter: keyed by the source key, original bytes and coordinates kept.
    assert len(harness.dlq.messages) == 1
    letter = harness.dlq.messages[0]
    assert letter["key"] == b"src-key"
    body = orjson.loads(letter["value"])
    assert body["schema"] == "cx.dead_letter/v1"
    assert body["reason"] == "invalid_json"
    assert (body["source_topic"], body["source_partition"], body["source_offset"]) == (
        SOURCE_TOPIC,
        SOURCE_PARTITION,
        0,
    )
    assert base64.b64decode(body["original_base64"]) == b"not json"

    # cx.events: keyed by customer, normalised (channel from the source topic's kind,
    # schema_version filled in), with the dedup reference and type as headers.
    assert [m["key"] for m in harness.events.messages] == [b"c1", b"c1"]
    opened, received = harness.events.messages
    assert orjson.loads(opened["value"]) == {**first, "channel": "chat", "schema_version": 1}
    assert opened["headers"] == [
        ("cx-source", f"{SOURCE_TOPIC}:{SOURCE_PARTITION}:1".encode()),
        ("cx-type", b"conversation.opened"),
    ]  # no watermark yet: nothing had been seen before the first event
    assert orjson.loads(received["value"]) == {**second, "schema_version": 1}
    # stamped with the watermark as of the start of its batch: none when both events came in
    # one batch, the first event's time minus the allowed lateness when it came in the next
    stamp = [value for name, value in received["headers"] if name == "cx-watermark"]
    assert stamp in ([], [str(T0_MS - LATENESS_MS).encode()])
    assert received["headers"][:2] == [
        ("cx-source", f"{SOURCE_TOPIC}:{SOURCE_PARTITION}:2".encode()),
        ("cx-type", b"message.received"),
    ]


async def test_ingest_rejection_is_counted_per_source_partition(
    harness: Harness, ingest: Any
) -> None:
    await ingest.put(b"[1, 2]", key=b"a", partition=1)
    await ingest.put(orjson.dumps({"type": "foo.bar"}), key=b"b", partition=2)

    await _eventually(lambda: len(harness.worker.runtime.sources) == 2)
    await _eventually(lambda: len(harness.dlq.messages) == 2)
    assert harness.worker.runtime.ingest_totals_by_partition() == {
        1: {"cx_events_rejected_total|invalid_json": 1},
        2: {"cx_events_rejected_total|unknown_type": 1},
    }
    assert [orjson.loads(m["value"])["reason"] for m in harness.dlq.messages] == [
        "invalid_json",
        "unknown_type",
    ]
    assert harness.sample("cx_events_rejected_total", reason="invalid_json", partition="1") == 1
    assert harness.sample("cx_events_rejected_total", reason="unknown_type", partition="2") == 1
    assert harness.events.messages == []


# --- apply_events: service levels--------------------------------------------------------


def _normalised(event_id: str, kind: str, at_s: int, **extra: Any) -> dict[str, Any]:
    return {
        **_raw_event(event_id, kind, at_s, conversation_id="A", **extra),
        "channel": "chat",
        "schema_version": 1,
    }


async def _put_event(agent: Any, event: dict[str, Any], source_offset: int) -> None:
    await agent.put(
        orjson.dumps(event),
        key=event["customer_id"].encode(),
        partition=EVENTS_PARTITION,
        headers=[
            ("cx-type", event["type"].encode()),
            ("cx-source", f"{SOURCE_TOPIC}:0:{source_offset}".encode()),
        ],
    )


async def _barrier(harness: Harness, agent: Any) -> None:
    """Put a message the agent rejects and wait until it has taken it; see the module
    docstring. Its dead letter is taken out of `harness.dlq` again."""
    offset = agent.sent_offset
    await agent.put(b"{}", key=b"barrier", partition=EVENTS_PARTITION)
    processed = harness.worker.runtime.processed_offsets
    await _eventually(lambda: processed.get((agent.name, EVENTS_PARTITION)) == offset)
    await _eventually(lambda: any(m["key"] == b"barrier" for m in harness.dlq.messages))
    harness.dlq.messages[:] = [m for m in harness.dlq.messages if m["key"] != b"barrier"]


def _settle(harness: Harness, watermark_ms: int) -> int:
    """Fire the service-level timers the watermark has passed, as the agent's timer does (its
    changelog write left out: these tests read the table's store)."""
    table = harness.worker.app.tables["customer_conversations"]

    def put(customer_id: str, value: bytes) -> None:
        table.data[customer_id.encode()] = value

    fired: int = harness.worker.runtime.families.service.fire_timers(
        EVENTS_PARTITION, watermark_ms, TablePort(table).getter(EVENTS_PARTITION), put
    )
    return fired


CONVERSATION = [
    _normalised("e1", "conversation.opened", 0, topic="billing"),
    _normalised("e2", "message.sent", 2, author="bot"),
    _normalised("e3", "message.sent", 45, author="agent"),
    _normalised("e4", "conversation.resolved", 600),
]


async def test_service_levels_first_response_and_resolution(harness: Harness, service: Any) -> None:
    for offset, event in enumerate(CONVERSATION):
        await _put_event(service, event, offset)
    await _barrier(harness, service)
    # no first response time until the watermark passes the reply: no earlier one can come
    p = str(EVENTS_PARTITION)
    assert harness.sample("cx_first_response_seconds_count", channel="chat", partition=p) is None
    assert _settle(harness, T0_MS + 601_000) == 1

    p = str(EVENTS_PARTITION)
    # The bot's message at 2 s does not count: the first response is the agent's, at 45 s.
    assert harness.sample("cx_first_response_seconds_count", channel="chat", partition=p) == 1
    assert harness.sample("cx_first_response_seconds_sum", channel="chat", partition=p) == 45
    assert (
        harness.sample("cx_first_response_seconds_bucket", channel="chat", partition=p, le="30")
        == 0
    )
    assert (
        harness.sample("cx_first_response_seconds_bucket", channel="chat", partition=p, le="60")
        == 1
    )
    assert harness.sample("cx_conversations_opened_total", channel="chat", partition=p) == 1
    assert harness.sample("cx_conversations_resolved_total", channel="chat", partition=p) == 1
    assert harness.sample("cx_resolution_seconds_sum", channel="chat", partition=p) == 600
    assert harness.sample("cx_events_total", channel="chat", type="message.sent", partition=p) == 2
    assert harness.sample("cx_events_duplicate_total", partition=p) == 0

    # The customer's state is in the table, tagged with its partition.
    table = harness.worker.app.tables["customer_conversations"]
    stored = orjson.loads(table.data[b"c1"])
    assert stored["p"] == EVENTS_PARTITION
    assert harness.dlq.messages == []


async def test_service_levels_redelivery_changes_nothing_and_duplicate_is_counted(
    harness: Harness, service: Any
) -> None:
    for offset, event in enumerate(CONVERSATION):
        await _put_event(service, event, offset)
    await _barrier(harness, service)
    assert _settle(harness, T0_MS + 601_000) == 1
    table = harness.worker.app.tables["customer_conversations"]
    before = table.data[b"c1"]
    p = str(EVENTS_PARTITION)

    # The same message again (same cx-source): a redelivery after a restart.
    await _put_event(service, CONVERSATION[2], 2)
    await _barrier(harness, service)
    assert table.data[b"c1"] == before
    assert harness.sample("cx_first_response_seconds_count", channel="chat", partition=p) == 1
    assert harness.sample("cx_first_response_seconds_sum", channel="chat", partition=p) == 45
    assert harness.sample("cx_events_duplicate_total", partition=p) == 0

    # Another message carrying the same event_id (a different cx-source): a duplicate.
    await _put_event(service, CONVERSATION[2], 99)
    await _barrier(harness, service)
    assert harness.sample("cx_events_duplicate_total", partition=p) == 1
    assert harness.sample("cx_first_response_seconds_count", channel="chat", partition=p) == 1
    assert harness.sample("cx_first_response_seconds_sum", channel="chat", partition=p) == 45
    assert harness.sample("cx_events_total", channel="chat", type="message.sent", partition=p) == 2
    assert harness.sample("cx_conversations_opened_total", channel="chat", partition=p) == 1


async def test_service_levels_dead_letters_an_invalid_event(harness: Harness, service: Any) -> None:
    await service.put(
        b"not json",
        key=b"c1",
        partition=EVENTS_PARTITION,
        headers=[("cx-type", b"conversation.opened"), ("cx-source", b"x:0:0")],
    )
    await _barrier(harness, service)

    assert len(harness.dlq.messages) == 1
    body = orjson.loads(harness.dlq.messages[0]["value"])
    assert (body["reason"], body["source_topic"], body["source_partition"]) == (
        "invalid_json",
        "cx.events",
        EVENTS_PARTITION,
    )
    assert b"c1" not in harness.worker.app.tables["customer_conversations"].data
