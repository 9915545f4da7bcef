"""pipeline/replay.py: routing lines to source topics, reading JSON Lines, ordered paced sends.

No Kafka here: a fake producer records what it is given (the real broker test lives in
tests/integration).
"""

from __future__ import annotations

import asyncio
import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline import replay as replay_module
from pipeline.generator import GeneratedMessage, GeneratorConfig, TrafficGenerator
from pipeline.replay import ReplayStats, open_lines, produce_generated, replay, route
from schemas.errors import ConfigurationError

TOPICS = {
    channel: f"cx.raw.{channel}"
    for channel in ("chat", "email", "phone", "social", "shop", "returns", "web", "survey")
}
FALLBACK = "cx.raw.chat"


def line(**fields: Any) -> bytes:
    event = {"event_id": "e1", "occurred_at": "2026-11-22T10:15:00.123Z", **fields}
    return orjson.dumps(event)


# -- route ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            line(type="message.received", channel="email", customer_id="c000123"),
            ("cx.raw.email", b"c000123"),
        ),
        (line(type="order.placed", channel="shop", customer_id="c9"), ("cx.raw.shop", b"c9")),
        (
            line(type="refund.issued", channel="returns", customer_id="c1"),
            ("cx.raw.returns", b"c1"),
        ),
        # survey answers go to the survey topic whatever channel they rate
        (
            line(type="survey.answered", channel="phone", customer_id="c7", survey="nps", score=9),
            ("cx.raw.survey", b"c7"),
        ),
        (line(type="survey.answered", customer_id="c7"), ("cx.raw.survey", b"c7")),
        # routable but unkeyed: no, empty or non-string customer_id
        (line(type="message.sent", channel="chat"), ("cx.raw.chat", None)),
        (line(type="message.sent", channel="web", customer_id=""), ("cx.raw.web", None)),
        (line(type="message.sent", channel="web", customer_id=42), ("cx.raw.web", None)),
        # unknown types are still routed by channel: the worker dead-letters them there
        (line(type="cart.abandoned", channel="shop", customer_id="c2"), ("cx.raw.shop", b"c2")),
    ],
)
def test_route_by_channel_keyed_by_customer(raw: bytes, expected: tuple[str, bytes | None]) -> None:
    assert route(raw, TOPICS, FALLBACK) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"message.sent","channel":"chat","customer_id":"c1"',  # truncated
        b'{"type":"survey.answered","comment":"tr\xe8s","customer_id":"c1"}',  # Latin-1
        b"not json at all",
        b'["chat", "c1"]',
        b'"chat"',
        line(type="message.sent", customer_id="c1"),  # no channel
        line(type="message.sent", channel="fax", customer_id="c1"),  # unknown channel
        line(type="message.sent", channel=["chat"], customer_id="c1"),  # channel not a string
        line(type="message.sent", channel="survey", customer_id="c1"),  # not a real channel
    ],
)
def test_unroutable_lines_go_unkeyed_to_the_fallback_topic(raw: bytes) -> None:
    assert route(raw, TOPICS, "cx.raw.fallback") == ("cx.raw.fallback", None)


def test_route_falls_back_when_the_channel_has_no_configured_topic() -> None:
    only_chat = {"chat": "cx.raw.chat"}
    raw = line(type="survey.answered", channel="chat", customer_id="c1")
    assert route(raw, only_chat, "cx.raw.chat") == ("cx.raw.chat", None)


# -- open_lines ----------------------------------------------------------------------------

CONTENT = b'{"a":1}\n\n{"b":2}\r\n{"c":3}'


def test_open_lines_strips_the_newline_only_and_skips_empty_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(CONTENT)
    assert list(open_lines(str(path))) == [b'{"a":1}', b'{"b":2}\r', b'{"c":3}']


def test_open_lines_reads_gzip(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(gzip.compress(CONTENT))
    assert list(open_lines(str(path))) == [b'{"a":1}', b'{"b":2}\r', b'{"c":3}']


def test_open_lines_reads_stdin_as_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b'{"a":1}\n\xff\n\n'))
    monkeypatch.setattr("sys.stdin", stdin)
    assert list(open_lines("-")) == [b'{"a":1}', b"\xff"]


def test_open_lines_on_a_missing_file_says_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"a JSON Lines file, a \.gz file, or - for stdin"):
        open_lines(str(tmp_path / "nope.jsonl"))


# -- replay and produce_generated ----------------------------------------------------------


@dataclass
class FakeProducer:
    """Records sends in order; each send returns an already-delivered future."""

    sent: list[tuple[str, bytes | None, bytes | None]] = field(default_factory=list)
    flushed_after: list[int] = field(default_factory=list)
    fail_at: int | None = None

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> asyncio.Future[None]:
        self.sent.append((topic, value, key))
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail_at == len(self.sent):
            delivery.set_exception(RuntimeError("broker said no"))
        else:
            delivery.set_result(None)
        return delivery

    async def flush(self) -> None:
        self.flushed_after.append(len(self.sent))


@dataclass
class FakeClock:
    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(replay_module, "_monotonic", fake.monotonic)
    monkeypatch.setattr(replay_module, "_sleep", fake.sleep)
    return fake


LINES = [
    line(type="conversation.opened", channel="chat", customer_id="c1", conversation_id="v1"),
    line(type="message.received", channel="chat", customer_id="c1", conversation_id="v1"),
    b"garbage",
    line(type="survey.answered", channel="chat", customer_id="c1", survey="csat", score=4),
    line(type="order.placed", channel="shop", customer_id="c2"),
    line(type="message.sent", channel="chat", customer_id="c1", conversation_id="v1"),
]


async def test_replay_sends_in_file_order_routed_and_keyed_then_flushes() -> None:
    producer = FakeProducer()
    reported: list[int] = []
    stats = await replay(iter(LINES), producer, TOPICS, FALLBACK, progress=reported.append)
    assert producer.sent == [
        ("cx.raw.chat", LINES[0], b"c1"),
        ("cx.raw.chat", LINES[1], b"c1"),
        ("cx.raw.chat", b"garbage", None),
        ("cx.raw.survey", LINES[3], b"c1"),
        ("cx.raw.shop", LINES[4], b"c2"),
        ("cx.raw.chat", LINES[5], b"c1"),
    ]
    assert producer.flushed_after == [6]
    assert stats == ReplayStats(
        sent=6, per_topic={"cx.raw.chat": 4, "cx.raw.survey": 1, "cx.raw.shop": 1}, unroutable=1
    )
    assert reported[-1] == 6


async def test_replay_paces_to_the_rate(clock: FakeClock) -> None:
    lines = [line(type="order.placed", channel="shop", customer_id=f"c{n}") for n in range(11)]
    reported: list[int] = []
    stats = await replay(
        lines, FakeProducer(), TOPICS, FALLBACK, rate=50.0, progress=reported.append
    )
    # 11 messages at 50/s: the first at once, then one every 20 ms, 200 ms in all
    assert clock.sleeps == pytest.approx([0.02] * 10)
    assert clock.now == pytest.approx(1000.2)
    assert stats.sent == 11
    # progress every 0.2 s of the (fake) clock and at the end
    assert reported[-1] == 11 and reported == sorted(reported)


async def test_replay_without_rate_never_sleeps(clock: FakeClock) -> None:
    await replay(LINES * 10, FakeProducer(), TOPICS, FALLBACK)
    assert clock.sleeps == []


async def test_replay_confirms_deliveries_in_chunks_and_surfaces_failures() -> None:
    lines = [line(type="order.placed", channel="shop", customer_id="c1")] * 2500
    producer = FakeProducer(fail_at=1500)
    with pytest.raises(RuntimeError, match="broker said no"):
        await replay(lines, producer, TOPICS, FALLBACK)
    # the failure is seen when the second chunk of 1000 is confirmed
    assert len(producer.sent) == 2000
    assert producer.flushed_after == []


def generated() -> Iterator[GeneratedMessage]:
    config = GeneratorConfig(customers=50, rate=10.0, seed=2, duration_s=30.0, bad_ratio=0.05)
    return iter(TrafficGenerator(config))


async def test_produce_generated_sends_each_message_to_its_channel_topic() -> None:
    messages = list(generated())
    producer = FakeProducer()
    stats = await produce_generated(messages, producer, TOPICS, None, None, None)
    assert producer.sent == [(TOPICS[m.topic_channel], m.value, m.key) for m in messages]
    assert stats.sent == len(messages) and stats.unroutable == 0
    assert sum(stats.per_topic.values()) == len(messages)
    assert producer.flushed_after == [len(messages)]


async def test_produce_generated_stops_when_asked() -> None:
    stop = asyncio.Event()

    def until_five() -> Iterator[GeneratedMessage]:
        for number, message in enumerate(generated()):
            if number == 5:
                stop.set()
            yield message

    producer = FakeProducer()
    stats = await produce_generated(until_five(), producer, TOPICS, None, None, stop)
    assert stats.sent == 5
    assert producer.flushed_after == [5]


async def test_produce_generated_stop_cuts_a_paced_wait_short() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    producer = FakeProducer()
    started = asyncio.get_running_loop().time()
    # at 0.5/s the second message would wait 2 s; the stop after 50 ms ends it
    stats = await produce_generated(generated(), producer, TOPICS, 0.5, None, stop)
    assert stats.sent == 1
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_produce_generated_paces_by_wall_clock(clock: FakeClock) -> None:
    messages = list(generated())[:21]
    await produce_generated(messages, FakeProducer(), TOPICS, 100.0, None, None)
    # 21 messages at 100/s: 200 ms, in steps of 10 ms
    assert clock.sleeps == pytest.approx([0.01] * 20)


async def test_produce_generated_needs_a_topic_for_every_channel() -> None:
    topics = {channel: topic for channel, topic in TOPICS.items() if channel != "returns"}
    with pytest.raises(ConfigurationError, match="configure one for returns"):
        await produce_generated(generated(), FakeProducer(), topics, None, None, None)
