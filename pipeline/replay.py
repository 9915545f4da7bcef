"""Feed events into the Kafka source topics: JSON Lines (``cxpulse replay``) or the generator.

In: JSON Lines (a file, a ``.gz`` file or stdin; one event per line) or the traffic generator's
messages, and a started producer owned by the caller. Out: one message per line or event on
the source topic of its channel (``survey.answered`` on the survey topic), keyed by
``customer_id``, the bytes untouched. A line that cannot be routed (not JSON, not an object, no
or an unknown channel) goes unchanged and unkeyed to the fallback topic (the first source
topic), where the workers dead-letter it like any bad input.

Messages are handed to the producer one by one in input order, each ``send`` awaited before the
next, so the order within every partition is the input order; delivery is confirmed in chunks
and by a final flush, so batching (``linger_ms``) still does its work.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from pipeline.generator import GeneratedMessage
from schemas.errors import ConfigurationError

SURVEY_CHANNEL = "survey"
SURVEY_TYPE = "survey.answered"
GENERATED_CHANNELS = ("chat", "email", "phone", "social", "shop", "returns", "web", "survey")
_CHUNK = 1000  # deliveries awaited together: bounds the futures held and surfaces errors early
_PROGRESS_EVERY_S = 0.2
_MIN_SLEEP_S = 0.005  # when pacing, a shorter lead is not worth a sleep

# Indirections so tests can pace against a fake clock.
_monotonic = time.monotonic
_sleep = asyncio.sleep


class Producer(Protocol):
    """What these functions need of ``aiokafka.AIOKafkaProducer`` (started by the caller)."""

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> Awaitable[Any]: ...

    async def flush(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ReplayStats:
    """What a replay sent: in total, per topic, and how many lines went unrouted to the fallback."""

    sent: int
    per_topic: dict[str, int]
    unroutable: int


def route(line: bytes, topics: Mapping[str, str], fallback_topic: str) -> tuple[str, bytes | None]:
    """The topic and key for one line: ``(topics[channel], customer_id)``, else the fallback."""
    routed = _route(line, topics)
    return routed if routed is not None else (fallback_topic, None)


def open_lines(path: str) -> Iterator[bytes]:
    """The non-empty lines of a file, a ``.gz`` file or ``-`` (stdin), without their ``\\n``.

    The file is opened at once, so a missing one fails here, not at the first line.
    """
    if path == "-":
        return _lines(sys.stdin.buffer, close=None)
    try:
        # Not a with block: the file must outlive this call; _lines closes it when done.
        stream: io.BufferedIOBase = gzip.open(path) if path.endswith(".gz") else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read {path!r}: {exc.strerror or exc}; "
            "give a JSON Lines file, a .gz file, or - for stdin"
        ) from None
    return _lines(stream, close=stream.close)


async def replay(
    lines: Iterable[bytes],
    producer: Producer,
    topics: Mapping[str, str],
    fallback_topic: str,
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayStats:
    """Send every line in order, paced to ``rate`` messages/s if given; flush at the end.

    ``progress`` is called every so often, and once at the end, with the number sent so far.
    """
    sender = _Sender(producer, rate, progress, stop=None)
    unroutable = 0
    for line in lines:
        routed = _route(line, topics)
        if routed is None:
            unroutable += 1
            routed = (fallback_topic, None)
        topic, key = routed
        await sender.send(topic, line, key)
    await sender.finish()
    return ReplayStats(sender.sent, dict(sender.per_topic), unroutable)


async def produce_generated(
    messages: Iterable[GeneratedMessage],
    producer: Producer,
    topics: Mapping[str, str],
    rate: float | None,
    progress: Callable[[int], None] | None,
    stop: asyncio.Event | None = None,
) -> ReplayStats:
    """Send the generator's messages to ``topics[msg.topic_channel]`` until they end or ``stop``.

    Paced to ``rate`` messages per second of wall time if given; flushes at the end.
    """
    missing = [channel for channel in GENERATED_CHANNELS if channel not in topics]
    if missing:
        raise ConfigurationError(
            f"the generator writes to every source topic; configure one for {', '.join(missing)}"
        )
    sender = _Sender(producer, rate, progress, stop)
    for message in messages:
        if not await sender.send(topics[message.topic_channel], message.value, message.key):
            break
    await sender.finish()
    return ReplayStats(sender.sent, dict(sender.per_topic), 0)


class _Sender:
    """Sends in order, paces, confirms deliveries in chunks and reports progress."""

    def __init__(
        self,
        producer: Producer,
        rate: float | None,
        progress: Callable[[int], None] | None,
        stop: asyncio.Event | None,
    ) -> None:
        if rate is not None and not rate > 0:
            raise ConfigurationError(f"rate must be a positive number of messages/s, not {rate}")
        self._producer = producer
        self._interval = 1.0 / rate if rate is not None else 0.0
        self._progress = progress
        self._stop = stop
        self._pending: list[Awaitable[Any]] = []
        self._started = self._reported_at = _monotonic()
        self.sent = 0
        self.per_topic: Counter[str] = Counter()

    async def send(self, topic: str, value: bytes, key: bytes | None) -> bool:
        """Send one message in its turn; False, sending nothing, once ``stop`` is set."""
        if self._interval:
            lead = self._started + self.sent * self._interval - _monotonic()
            if lead >= _MIN_SLEEP_S:
                await self._pause(lead)
        if self._stop is not None and self._stop.is_set():
            return False
        self._pending.append(await self._producer.send(topic, value, key=key))
        self.sent += 1
        self.per_topic[topic] += 1
        if len(self._pending) >= _CHUNK:
            await self._confirm()
            await _sleep(0)  # let other tasks (a stop signal, say) run on an endless stream
        if self._progress is not None and _monotonic() - self._reported_at >= _PROGRESS_EVERY_S:
            self._reported_at = _monotonic()
            self._progress(self.sent)
        return True

    async def _pause(self, seconds: float) -> None:
        if self._stop is None:
            await _sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):  # a stop ends the pause at once
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def finish(self) -> None:
        await self._confirm()
        await self._producer.flush()
        if self._progress is not None:
            self._progress(self.sent)

    async def _confirm(self) -> None:
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)


def _route(line: bytes, topics: Mapping[str, str]) -> tuple[str, bytes | None] | None:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict):
        return None
    if event.get("type") == SURVEY_TYPE:
        channel: object = SURVEY_CHANNEL
    else:
        channel = event.get("channel")
        if channel == SURVEY_CHANNEL:  # not a channel: only survey answers go to that topic
            return None
    topic = topics.get(channel) if isinstance(channel, str) else None
    if topic is None:
        return None
    customer_id = event.get("customer_id")
    key = customer_id.encode() if isinstance(customer_id, str) and customer_id else None
    return topic, key


def _lines(stream: Iterable[bytes], *, close: Callable[[], None] | None) -> Iterator[bytes]:
    try:
        for line in stream:
            if line.endswith(b"\n"):
                line = line[:-1]
            if line:
                yield line
    finally:
        if close is not None:
            close()
