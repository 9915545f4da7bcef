"""Hostile input on a real broker with a real `cxpulse worker` (contract section 1, "Bad input").

A seeded corpus of 10,000+ messages goes to the source topics: valid omnichannel events, valid
but odd ones (unknown topics and currencies, odd offsets and ids, pre-1970 and next-day
timestamps, junk extra fields, a ~1 MiB event), exact duplicates, and garbage (random bytes,
empty and null values, non-objects, truncated and mutated events, NaN and Infinity literals,
huge numbers, deep nesting, invalid UTF-8, far-future timestamps, ~1 MiB and larger messages),
with null or garbage keys and garbage headers. The same `EventValidator` settings as the
worker's, run here, say what each message must become. Then:

- the worker is still running;
- every message is either on `cx.events` (by its `cx-source` header, with the normalised
  payload) or on the dead-letter topic (by source offset, with its original bytes and key and
  the expected reason), never both, never neither;
- `cx_events_total + cx_events_duplicate_total + cx_events_rejected_total` = messages sent,
  per channel and type, per reason, and duplicates exactly;
- every label value on `/metrics` is in the contract's fixed sets, and a second batch of
  label-shaped garbage changes no series but the dead-letter counts of its reasons.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agents.config import KpiConfig
from pipeline.settings import DEFAULT_TOPICS
from pipeline.topics import TABLES
from schemas.events import CHANNELS, Event
from schemas.validate import DEFAULT_MAX_BYTES, REJECT_REASONS, EventValidator, Rejection
from tests.integration.conftest import Pipeline, wait_for
from tests.label_bounds import SeriesKey, allowed_values, series, violations

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SEED = 20261122
CUSTOMERS = 820
GARBAGE = 4_600
LABEL_GARBAGE = 600
DUPLICATES = 100
LATENESS_MS = 300_000
AGENTS = ("validate_events", "apply_events")
CONVERSATION_CHANNELS = ("chat", "email", "phone", "social", "web")
HeaderList = list[tuple[str, bytes | None]]


@dataclass
class Message:
    kind: str  # source kind: which source topic it goes to
    key: bytes | None
    value: bytes | None
    headers: HeaderList
    expected: Event | Rejection
    duplicate: bool = False


def ts(ms: int, rng: random.Random | None = None) -> str:
    """RFC 3339 for epoch ms; with `rng`, sometimes in lower case or at an odd offset."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    if rng is None or rng.random() < 0.7:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    minutes = rng.choice((840, -720, 330, -(23 * 60 + 59), 23 * 60 + 59, 45))
    local = moment.astimezone(UTC).replace(tzinfo=None) + timedelta(minutes=minutes)
    sign = "-" if minutes < 0 else "+"
    zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    text = local.isoformat(timespec="microseconds") + "123" + zone
    return text.replace("T", "t") if rng.random() < 0.5 else text


class Corpus:
    """Seeded messages, each with what the worker's validator must make of it."""

    def __init__(self, seed: int, now_s: float) -> None:
        self.rng = random.Random(seed)
        self.now_ms = int(now_s * 1000)
        self.oracle = EventValidator(known_topics=DEFAULT_TOPICS, clock=lambda: now_s)
        self.serial = 0
        self.normal: list[Message] = []

    # --- building blocks ---

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"

    def message(
        self,
        kind: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: HeaderList | None = None,
    ) -> Message:
        expected = self.oracle.validate(value or b"", kind)
        if value is None and key is None:
            key = b"\x00null"  # Kafka clients refuse a record with neither
        return Message(
            kind, key, value, headers if headers is not None else self.headers(), expected
        )

    def headers(self) -> HeaderList:
        rng = self.rng
        if rng.random() < 0.6:
            return []
        pool: HeaderList = [
            ("cx-watermark", b"not-a-number"),
            ("cx-watermark", b"99999999999999999999999"),
            ("cx-source", b"\xff\xfe:-1:-1"),
            ("cx-type", b"customer.churned"),
            ("", b""),
            ("null-value", None),
            ("\u00e9\u2028\U0001f600", rng.randbytes(40)),
            ("big", b"h" * 20_000),
        ]
        return rng.sample(pool, rng.randint(1, 4))

    def key(self, customer: str) -> bytes | None:
        roll = self.rng.random()
        if roll < 0.6:
            return customer.encode()
        if roll < 0.8:
            return None
        return self.rng.randbytes(self.rng.choice((1, 16, 300)))

    def envelope(self, kind: str, customer: str, at_ms: int, channel: str) -> dict[str, Any]:
        return {
            "event_id": self.next_id("e"),
            "type": kind,
            "occurred_at": ts(at_ms),
            "customer_id": customer,
            "channel": channel,
        }

    def send_event(self, obj: dict[str, Any], *, omit_channel: bool = False) -> Message:
        kind = "survey" if obj["type"] == "survey.answered" else obj["channel"]
        if omit_channel and kind != "survey":
            obj = {k: v for k, v in obj.items() if k != "channel"}
        return self.message(kind, orjson.dumps(obj), self.key(obj["customer_id"]))

    # --- valid traffic ---

    def journey(self, customer: str) -> list[dict[str, Any]]:
        """A customer's events within the last three hours: a conversation, perhaps an
        order with delivery, return and refund, a survey answer, rarely a churn."""
        rng = self.rng
        at = self.now_ms - 3 * 3_600_000 + rng.randrange(2 * 3_600_000)
        channel = rng.choice(CONVERSATION_CHANNELS)
        conv = self.next_id("conv")
        events = [
            {
                **self.envelope("conversation.opened", customer, at, channel),
                "conversation_id": conv,
                "topic": rng.choice((*DEFAULT_TOPICS, "refunds?!", "")),
            },
            {
                **self.envelope("message.received", customer, at + 1_000, channel),
                "conversation_id": conv,
            },
        ]
        reply = at + rng.randrange(5_000, 7_200_000)
        for author in rng.sample(("bot", "agent", "system"), rng.randint(1, 3)):
            events.append(
                {
                    **self.envelope("message.sent", customer, reply, channel),
                    "conversation_id": conv,
                    "author": author,
                }
            )
            reply += rng.randrange(1_000, 60_000)
        if rng.random() < 0.8:
            events.append(
                {
                    **self.envelope("conversation.resolved", customer, reply + 1, channel),
                    "conversation_id": conv,
                }
            )
        if rng.random() < 0.5:
            order = self.next_id("o")
            events.append(
                {
                    **self.envelope("order.placed", customer, at + 2_000, "shop"),
                    "order_id": order,
                    "amount": rng.choice(
                        (f"{rng.randrange(1, 50_000)}.{rng.randrange(100):02d}", 19.99, 0)
                    ),
                    "currency": rng.choice(("EUR", "USD", "GBP", "ZZZ", "XBT")),
                }
            )
            events.append(
                {
                    **self.envelope("order.delivered", customer, at + 3_000, "shop"),
                    "order_id": order,
                    "promised_at": ts(at + rng.choice((-86_400_000, 86_400_000))),
                }
            )
            if rng.random() < 0.4:
                ret = self.next_id("r")
                events.append(
                    {
                        **self.envelope("return.requested", customer, at + 4_000, "returns"),
                        "order_id": order,
                        "return_id": ret,
                        "reason": rng.choice(("damaged", "size_fit", "other", "late_delivery")),
                    }
                )
                events.append(
                    {
                        **self.envelope("refund.issued", customer, at + 5_000, "returns"),
                        "return_id": ret,
                        "amount": "5.50",
                    }
                )
        survey = rng.choice(("nps", "csat", "ces"))
        high = {"nps": 10, "csat": 5, "ces": 7}[survey]
        events.append(
            {
                **self.envelope("survey.answered", customer, reply + 2, channel),
                "survey": survey,
                "score": rng.randint(0 if survey == "nps" else 1, high),
                "comment": rng.choice(("", "meh", "\u2603 fine", "x" * 500)),
            }
        )
        if rng.random() < 0.05:
            events.append(self.envelope("customer.churned", customer, reply + 3, "web"))
        return events

    def odd_but_valid(self) -> list[dict[str, Any]]:
        """Valid events that look hostile: each must be accepted and exported with bounded
        labels only."""
        rng = self.rng
        out = []
        weird_ids = ("|", "a|b|c", "::::", "\x00", "\u202e\u0301", "\U0001f600" * 32, "x" * 128)
        for n, weird in enumerate(weird_ids):
            customer = f"odd-{n}-{weird}"[:128]
            at = self.now_ms - 3_600_000 + n
            out.append(
                {
                    **self.envelope("conversation.opened", customer, at, "chat"),
                    "event_id": weird if n else "|evt|",
                    "conversation_id": weird,
                    "topic": "\U0001f600 billing \u202e",
                    "occurred_at": ts(at, rng),
                }
            )
            out.append(
                {
                    **self.envelope("order.placed", customer, at + 1, "shop"),
                    "order_id": weird,
                    "amount": rng.choice(("0.000001", 999_999_999.999999, "999999999.999999")),
                    "currency": rng.choice(("AAA", "QQQ", "EUR")),
                    "junk": {"nested": orjson.loads(b"[" * 200 + b"]" * 200), "big": 1e300},
                    "schema_version": 1,
                }
            )
        # next-day timestamps (within the 1-day future limit), own customers
        for n in range(3):
            at = self.now_ms + 20 * 3_600_000 + n
            out.append(
                {
                    **self.envelope("message.received", f"future-{n}", at, "email"),
                    "conversation_id": "c",
                }
            )
        # before 1970 (negative epoch ms): a new customer first seen this far behind the
        # watermark is rescored daily up to it (~20,000 scorings), so just one
        out.append(self.envelope("customer.churned", "past-0", -500, "web"))
        out.append(
            {
                **self.envelope("survey.answered", "past-1", -86_400_000 * 365, "phone"),
                "survey": "nps",
                "score": 0,
                "occurred_at": "1969-01-01T00:00:00-00:00",
            }
        )
        # one just under the 1 MiB limit, forwarded in full
        big = {**self.envelope("conversation.resolved", "big-0", self.now_ms - 60_000, "web")}
        big["conversation_id"] = "big"
        big["pad"] = ""
        big["pad"] = "\u00e9" * ((DEFAULT_MAX_BYTES - len(orjson.dumps(big)) - 16) // 2)
        out.append(big)
        return out

    # --- garbage ---

    def garbage(self, base: list[dict[str, Any]]) -> Message:
        rng = self.rng
        obj = dict(rng.choice(base))
        obj["event_id"] = self.next_id("g")
        kind = "survey" if obj["type"] == "survey.answered" else obj["channel"]
        name = rng.choice(sorted(obj))
        roll = rng.randrange(20)
        raw: bytes | None
        if roll == 0:
            raw = rng.randbytes(rng.randrange(0, 300))
        elif roll == 1:
            raw = rng.choice((b"", None, b"[]", b"42", b'"x"', b"null", b"true", b"\xef\xbb\xbf{}"))
        elif roll == 2:
            full = orjson.dumps(obj)
            raw = full[: rng.randrange(len(full))]
        elif roll == 3:
            del obj[rng.choice(("event_id", "type", "occurred_at", "customer_id"))]
            raw = orjson.dumps(obj)
        elif roll == 4:
            obj[rng.choice(("event_id", "customer_id", "occurred_at", "type"))] = None
            raw = orjson.dumps(obj)
        elif roll == 5:
            obj[name] = rng.choice(([1, 2], {"$gt": ""}, True, 12, 1.5, ["x"] * 3))
            raw = orjson.dumps(obj)
        elif roll == 6:
            literal = rng.choice((b"NaN", b"Infinity", b"-Infinity", b"1e400"))
            raw = orjson.dumps({**obj, name: "@@"}).replace(b'"@@"', literal)
        elif roll == 7:
            field = rng.choice(("amount", "score", "schema_version", "event_id"))
            huge = rng.choice((b"1" + b"0" * 40, b"18446744073710", b"-1" + b"0" * 30, b"1e300"))
            raw = orjson.dumps({**obj, field: "@@"}).replace(b'"@@"', huge)
        elif roll == 8:
            depth = rng.choice((254, 300, 1023, 2_000, 20_000))
            nested = b"[" * depth + b"]" * depth
            raw = orjson.dumps({**obj, "deep": "@@"}).replace(b'"@@"', nested)
        elif roll == 9:
            full = orjson.dumps(obj)
            at = full.index(b'"', rng.randrange(len(full) // 2)) + 1
            bad = rng.choice(
                (b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80")
            )
            raw = full[:at] + bad + full[at:]
        elif roll == 10:
            far = rng.choice((self.now_ms + 2 * 86_400_000, 253_402_300_799_000))
            raw = orjson.dumps({**obj, "occurred_at": ts(far)})
        elif roll == 11:
            raw = orjson.dumps({**obj, "type": rng.choice(("order", "Conversation.Opened", ""))})
        elif roll == 12:
            raw = orjson.dumps({**obj, "channel": rng.choice(("fax", "survey", "CHAT", ""))})
        elif roll == 13:
            raw = orjson.dumps({**obj, "schema_version": rng.choice((2, 0, -1, "1", 1.0))})
        elif roll == 14:
            raw = orjson.dumps({**obj, "occurred_at": obj["occurred_at"][:19]})
        elif roll == 15:
            kind = "survey"
            raw = orjson.dumps({k: v for k, v in obj.items() if k != "channel"})
        elif roll == 16:
            raw = orjson.dumps({**obj, "event_id": "e" * 129})
        elif roll == 17:
            raw = orjson.dumps(
                {**obj, "type": "survey.answered", "survey": "nps", "score": rng.choice((11, -1))}
            )
        elif roll == 18:
            raw = orjson.dumps({**obj, "customer_id": ""})
        else:
            raw = orjson.dumps({**obj, "amount": rng.choice((-1, "1,5", "1e15", "NaN"))})
            if obj["type"] not in ("order.placed", "refund.issued"):
                raw = orjson.dumps({**obj, "type": "order.placed", "amount": -1})
        return self.message(kind, raw, self.key(str(obj.get("customer_id", ""))))

    def too_large(self) -> list[Message]:
        obj = self.envelope("customer.churned", "huge", self.now_ms, "web")
        obj["pad"] = ""
        obj["pad"] = "y" * (DEFAULT_MAX_BYTES + 1 - len(orjson.dumps(obj)))
        exact = orjson.dumps(obj)
        assert len(exact) == DEFAULT_MAX_BYTES + 1
        noise = self.rng.randbytes(3 * DEFAULT_MAX_BYTES // 2)
        return [self.message("web", exact, b"huge"), self.message("chat", noise, None)]

    def overflowing_amounts(self) -> list[Message]:
        """Orders whose value in micro-units does not fit the 64 bits orjson writes."""
        out = []
        for n, amount in enumerate((18_446_744_073_710, "9300000000000.5", 999_999_999_999_999)):
            obj = self.envelope("order.placed", f"rich-{n}", self.now_ms - 60_000, "shop")
            obj.update({"order_id": f"o-{n}", "amount": amount, "currency": "EUR"})
            out.append(self.send_event(obj))
        return out

    def label_garbage(self, base: list[dict[str, Any]]) -> Message:
        """Garbage whose values look like labels: each would be a new series if it leaked."""
        rng = self.rng
        obj = dict(rng.choice(base))
        n = self.serial
        field, value = rng.choice(
            (
                ("channel", f"fax-{n}"),
                ("type", f"evil.{n}"),
                ("author", f"hacker-{n}"),
                ("survey", f"mood-{n}"),
                ("reason", f"stolen-{n}"),
                ("currency", f"x{n}"),
                ("schema_version", n + 2),
            )
        )
        types = {
            "author": "message.sent",
            "survey": "survey.answered",
            "reason": "return.requested",
            "currency": "order.placed",
        }
        if field in types:
            obj = {**obj, "type": types[field], "conversation_id": "c", "order_id": "o"}
            obj.update({"return_id": "r", "amount": 1, "currency": "EUR", "score": 1})
            obj.update({"author": "agent", "survey": "csat", "reason": "other"})
        obj = {**obj, field: value, "event_id": self.next_id("lg")}
        kind = "survey" if obj.get("type") == "survey.answered" else rng.choice(CHANNELS)
        return self.message(kind, orjson.dumps(obj), self.key(obj["customer_id"]))

    # --- the corpus ---

    def build(self) -> tuple[list[Message], list[Message]]:
        """(main batch, label-shaped garbage batch)."""
        rng = self.rng
        valid: list[dict[str, Any]] = []
        for n in range(CUSTOMERS):
            valid += self.journey(f"cust-{n}")
        messages = [self.send_event(obj, omit_channel=rng.random() < 0.2) for obj in valid]
        messages += [self.send_event(obj) for obj in self.odd_but_valid()]
        for original in rng.sample(messages[: len(valid)], DUPLICATES):
            messages.append(
                Message(
                    original.kind,
                    original.key,
                    original.value,
                    self.headers(),
                    original.expected,
                    duplicate=True,
                )
            )
        messages += [self.garbage(valid) for _ in range(GARBAGE)]
        messages += self.too_large()
        messages += self.overflowing_amounts()
        rng.shuffle(messages)
        second = [self.label_garbage(valid) for _ in range(LABEL_GARBAGE)]
        return messages, second


# --- Kafka I/O ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    topic: str
    partition: int
    offset: int


async def produce(
    bootstrap: str, topics: dict[str, str], messages: list[Message]
) -> dict[Ref, Message]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        max_request_size=4 * DEFAULT_MAX_BYTES,
        linger_ms=20,
        acks="all",
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topics[m.kind], value=m.value, key=m.key, headers=m.headers or None)
            for m in messages
        ]
        sent = {}
        for message, future in zip(messages, futures, strict=True):
            meta = await future
            sent[Ref(meta.topic, meta.partition, meta.offset)] = message
        return sent
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str, topic: str, done: Callable[[list[Any]], bool], within_s: float
) -> list[Any]:
    """Every record of `topic` from the start, until `done(records)` or `within_s`."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * DEFAULT_MAX_BYTES,
        fetch_max_bytes=16 * DEFAULT_MAX_BYTES,
    )
    await consumer.start()
    records: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    try:
        while not done(records) and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5_000)
            for part in batch.values():
                records += part
    finally:
        await consumer.stop()
    return records


# --- metrics ------------------------------------------------------------------------------

#: process-local wall-clock figures, not KPIs: they move with time, not with input
MOVING = ("cx_event_lag_seconds", "cxpulse_worker_")


def kpis(samples: dict[SeriesKey, float]) -> dict[SeriesKey, float]:
    return {k: v for k, v in samples.items() if not k[0].startswith(MOVING)}


def total(samples: dict[SeriesKey, float], name: str, **labels: str) -> float:
    return sum(
        v
        for (n, ls), v in samples.items()
        if n == name and all((k, val) in ls for k, val in labels.items())
    )


def settled(
    pipeline: Pipeline,
    worker: subprocess.Popen[bytes],
    counted: int,
    watermark_ms: int,
    within_s: float,
) -> dict[SeriesKey, float]:
    """The scrape once the worker has counted `counted` messages, its watermark is
    `watermark_ms` and its KPI series have not changed over two timer rounds (3 s)."""
    loop_until = time.monotonic() + within_s
    last: tuple[float, dict[SeriesKey, float]] | None = None
    samples: dict[SeriesKey, float] = {}
    while time.monotonic() < loop_until:
        assert worker.poll() is None, f"the worker died:\n{pipeline.worker_log()}"
        samples = series(pipeline.scrape() or "")
        seen = sum(
            total(samples, name)
            for name in ("cx_events_total", "cx_events_duplicate_total", "cx_events_rejected_total")
        )
        watermark = round(total(samples, "cx_watermark_timestamp_seconds") * 1000)
        if seen == counted and watermark == watermark_ms:
            now = time.monotonic()
            if last is None or kpis(samples) != kpis(last[1]):
                last = (now, samples)
            elif now - last[0] >= 3.0:
                return samples
        time.sleep(0.5)
    raise AssertionError(
        f"worker did not settle within {within_s:.0f}s: counted {seen} of {counted}, "
        f"watermark {watermark} (expected {watermark_ms})\n{pipeline.worker_log()}"
    )


# --- the test -----------------------------------------------------------------------------


def test_hostile_input_is_counted_dead_lettered_and_bounded(pipeline: Pipeline) -> None:
    started = time.monotonic()
    main, second = Corpus(SEED, time.time()).build()
    accepted = [m for m in main if isinstance(m.expected, Event)]
    rejected = Counter(m.expected.reason for m in main if isinstance(m.expected, Rejection))
    assert len(main) >= 10_000
    assert set(rejected) == set(REJECT_REASONS), rejected  # every reason is exercised
    assert all(isinstance(m.expected, Rejection) for m in second)
    topics = orjson.loads(pipeline.env["CXPULSE_SOURCE_TOPICS"])
    app_id = pipeline.env["CXPULSE_APP_ID"]
    bootstrap = pipeline.env["CXPULSE_BOOTSTRAP_SERVERS"]

    pipeline.cli("topics", "create")
    worker = pipeline.start_worker()
    try:
        wait_for(lambda: pipeline.scrape() is not None, 90, "the worker's /metrics")
        ready_s = time.monotonic() - started
        sent = asyncio.run(produce(bootstrap, topics, main))
        produced_s = time.monotonic() - started
        latest = max(m.expected.occurred_at_ms for m in accepted if isinstance(m.expected, Event))
        before = settled(pipeline, worker, len(main), latest - LATENESS_MS, within_s=150)
        assert worker.poll() is None, pipeline.worker_log()
        phase_1_s = time.monotonic() - started

        # 1. every message is on cx.events or on the dead-letter topic, as the oracle says
        forwarded = _forwarded(bootstrap, pipeline.env["CXPULSE_EVENTS_TOPIC"], len(accepted))
        dead = _dead_letters(bootstrap, pipeline.env["CXPULSE_DLQ_TOPIC"], sum(rejected.values()))
        assert forwarded.keys().isdisjoint(dead)
        assert forwarded.keys() | dead.keys() == sent.keys()
        for ref, message in sent.items():
            if isinstance(message.expected, Event):
                assert forwarded[ref] == message.expected.payload, ref
            else:
                reason, original, key = dead[ref]
                assert (reason, original, key) == (
                    message.expected.reason,
                    message.value or b"",
                    message.key,
                ), ref

        # 2. the counts add up exactly, per channel and type and per reason
        unique = Counter(
            (m.expected.channel, m.expected.type)
            for m in accepted
            if isinstance(m.expected, Event) and not m.duplicate
        )
        for (channel, kind), count in unique.items():
            assert total(before, "cx_events_total", channel=channel, type=kind) == count
        assert total(before, "cx_events_total") == sum(unique.values())
        assert total(before, "cx_events_duplicate_total") == DUPLICATES
        for reason in REJECT_REASONS:
            assert total(before, "cx_events_rejected_total", reason=reason) == rejected[reason]

        # 3. bounded labels, and label-shaped garbage adds no series
        allowed = allowed_values(
            KpiConfig(),
            partitions=3,
            topics=[
                *topics.values(),
                *(v for k, v in pipeline.env.items() if re.fullmatch("CXPULSE_.*_TOPIC", k)),
                *(f"{app_id}-{t}-changelog" for t in TABLES),
                f"{app_id}-__assignor-__leader",  # Faust's own
            ],
            agents=AGENTS,
            tables=TABLES,
        )
        assert violations(before, allowed) == []
        asyncio.run(produce(bootstrap, topics, second))
        after = settled(
            pipeline, worker, len(main) + len(second), latest - LATENESS_MS, within_s=60
        )
        assert worker.poll() is None, pipeline.worker_log()
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert violations(after, allowed) == []
    assert after.keys() == before.keys()
    per_family = Counter(name for name, _ in before)
    assert Counter(name for name, _ in after) == per_family
    added = Counter(m.expected.reason for m in second if isinstance(m.expected, Rejection))
    for key, value in kpis(after).items():
        if key[0] != "cx_events_rejected_total":
            assert value == before[key], key
    for reason in REJECT_REASONS:
        assert total(after, "cx_events_rejected_total", reason=reason) == (
            rejected[reason] + added[reason]
        )
    log = (pipeline.log_dir / "worker.log").read_text(errors="replace")
    assert "Traceback" not in log and "CRITICAL" not in log, pipeline.worker_log()
    print(
        f"\nhostile corpus: {len(main)} sent ({len(accepted)} accepted incl. {DUPLICATES} "
        f"duplicates, {sum(rejected.values())} dead-lettered: {dict(rejected)}), then "
        f"{len(second)} label-shaped garbage ({dict(added)}); {len(before)} series in "
        f"{len(per_family)} families before and after; worker up {ready_s:.0f}s, sent "
        f"{produced_s:.0f}s, settled {phase_1_s:.0f}s, done {time.monotonic() - started:.0f}s"
    )


def _forwarded(bootstrap: str, topic: str, expected: int) -> dict[Ref, dict[str, Any]]:
    """Source reference (`cx-source` header) -> the event forwarded to cx.events."""
    records = asyncio.run(read_topic(bootstrap, topic, lambda rs: len(rs) >= expected, within_s=60))
    out = {}
    for record in records:
        headers = dict(record.headers)
        source_topic, partition, offset = headers["cx-source"].decode().rsplit(":", 2)
        out[Ref(source_topic, int(partition), int(offset))] = orjson.loads(record.value)
    assert len(out) == len(records) == expected
    return out


def _dead_letters(
    bootstrap: str, topic: str, expected: int
) -> dict[Ref, tuple[str, bytes, bytes | None]]:
    """Source reference -> (reason, original bytes, key) of each dead letter."""
    records = asyncio.run(read_topic(bootstrap, topic, lambda rs: len(rs) >= expected, within_s=60))
    out = {}
    for record in records:
        letter = orjson.loads(record.value)
        ref = Ref(letter["source_topic"], letter["source_partition"], letter["source_offset"])
        original = base64.b64decode(letter["original_base64"], validate=True)
        out[ref] = (letter["reason"], original, record.key)
    assert len(out) == len(records) == expected
    return out


def test_corpus_is_reproducible() -> None:
    """The same seed gives the same messages (a failure can be replayed)."""
    now = 1_795_341_600.0
    first, _ = Corpus(SEED, now).build()
    again, _ = Corpus(SEED, now).build()
    assert [(m.kind, m.key, m.value) for m in first] == [(m.kind, m.key, m.value) for m in again]
