"""End-to-end latency at a fixed rate: produce time to the metric update that shows the event.

Method. The generator's traffic (rate mode; its event time continues the worker's input, so
no jump of the watermark makes days of timers due at once) is produced to the source
topics at a fixed wall-clock rate; the producer notes the monotonic time of each
`send`. Meanwhile a scraper reads the worker's `/metrics` every `interval` and sums the
per-event counters (`cx_events_total` + `_rejected_total` + `_duplicate_total`: each input
message lands in exactly one of them once it has gone through ingest, `cx.events` and its
agent). The i-th message sent is taken as visible at the first scrape whose count reached i,
so its latency is that scrape's response time minus its send time.

Resolution and bias. A latency is an upper bound by at most one scrape interval plus the
scrape's own duration (reported as `resolution_s`): the update happened between the previous
scrape and this one. Matching the i-th sent with the i-th counted is exact for a FIFO
pipeline; with several partitions processed in turn it pairs events by rank, which keeps the
distribution but not per-event identity. Events the worker never shows within the drain
timeout make `drained` false and count with the time waited so far (a lower bound).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp
from aiokafka import AIOKafkaProducer

from bench.worker import messages_done, sums_by_name
from pipeline.generator import GeneratorConfig, TrafficGenerator

Log = Callable[[str], None]
_PROGRESS_EVERY_S: Final = 5.0
_CONFIRM_EVERY: Final = 1000


@dataclass(frozen=True, slots=True)
class LatencyResult:
    rate: float  # asked, messages/s
    achieved_rate: float  # sent / time spent sending
    messages: int
    p50_s: float
    p99_s: float
    max_s: float
    resolution_s: float  # mean scrape interval + mean scrape duration
    drained: bool


def quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of an ascending list (q in [0, 1])."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


def latencies(
    send_times: list[float] | array[float], scrapes: list[tuple[float, int]], end: float
) -> tuple[list[float], bool]:
    """Latency of each message: first scrape (time, count) whose count reached its rank,
    minus its send time; `end` minus its send time for one never shown."""
    times: list[float] = []
    counts: list[int] = []
    highest = 0
    for at, count in scrapes:
        highest = max(highest, count)  # a counter never goes back; guard against resets
        times.append(at)
        counts.append(highest)
    result: list[float] = []
    drained = True
    for rank, sent in enumerate(send_times, start=1):
        index = bisect.bisect_left(counts, rank)
        if index < len(counts):
            result.append(max(times[index] - sent, 0.0))
        else:
            drained = False
            result.append(max(end - sent, 0.0))
    return result, drained


def measure(
    bootstrap: str,
    topics: dict[str, str],
    metrics_port: int,
    baseline: int,
    rate: float,
    seconds: float,
    customers: int,
    seed: int,
    interval: float,
    log: Log,
    start: datetime | None = None,
    drain_stall_s: float = 120.0,
) -> LatencyResult:
    """Produce `rate * seconds` generated messages, event time from `start` (default now),
    paced at `rate`; see the module docstring for how latency is read."""
    return asyncio.run(
        _measure(
            bootstrap,
            topics,
            metrics_port,
            baseline,
            rate,
            seconds,
            customers,
            seed,
            interval,
            log,
            start,
            drain_stall_s,
        )
    )


def generated(
    topics: dict[str, str],
    rate: float,
    count: int,
    seed: int,
    customers: int,
    start: datetime | None = None,
) -> list[tuple[str, bytes | None, bytes]]:
    """`count` messages of the generator (rate mode, event time from `start`, default now):
    (topic, key, value)."""
    config = GeneratorConfig(
        customers=customers,
        rate=rate,
        seed=seed,
        start=start or datetime.now(UTC).replace(microsecond=0),
    )
    return [
        (topics[m.topic_channel], m.key, m.value)
        for m in itertools.islice(TrafficGenerator(config), count)
    ]


async def _measure(
    bootstrap: str,
    topics: dict[str, str],
    metrics_port: int,
    baseline: int,
    rate: float,
    seconds: float,
    customers: int,
    seed: int,
    interval: float,
    log: Log,
    start: datetime | None,
    drain_stall_s: float,
) -> LatencyResult:
    total = max(1, round(rate * seconds))
    log(f"  generating {total:,} messages for {seconds:g}s at {rate:,.0f}/s")
    messages = generated(topics, rate, total, seed, customers, start)
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    scrapes: list[tuple[float, int]] = []
    durations: list[float] = []
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    async with aiohttp.ClientSession() as session:
        scraper = asyncio.create_task(_scrape(session, url, baseline, interval, scrapes, durations))
        try:
            send_times, sent_for = await _send_paced(producer, messages, rate, log)
            await _drain(scrapes, total, drain_stall_s, log)
        finally:
            scraper.cancel()
            await asyncio.gather(scraper, return_exceptions=True)
            await producer.stop()
    end = time.monotonic()
    values, drained = latencies(send_times, scrapes, end)
    values.sort()
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(scrapes)]
    resolution = (sum(gaps) / len(gaps) if gaps else interval) + (
        sum(durations) / len(durations) if durations else 0.0
    )
    return LatencyResult(
        rate=rate,
        achieved_rate=total / sent_for if sent_for > 0 else 0.0,
        messages=total,
        p50_s=quantile(values, 0.50),
        p99_s=quantile(values, 0.99),
        max_s=values[-1],
        resolution_s=resolution,
        drained=drained,
    )


Message = tuple[str, bytes | None, bytes]


async def _send_paced(
    producer: AIOKafkaProducer, messages: list[Message], rate: float, log: Log
) -> tuple[array[float], float]:
    """Send message i at `start + i / rate` (never early); returns each send time."""
    send_times: array[float] = array("d")
    pending: list[Any] = []
    started = reported = time.monotonic()
    total = len(messages)
    sent = 0
    while sent < total:
        now = time.monotonic()
        due = min(total, int((now - started) * rate) + 1)
        while sent < due:
            topic, key, value = messages[sent]
            pending.append(await producer.send(topic, value, key=key))
            send_times.append(time.monotonic())
            sent += 1
            if len(pending) >= _CONFIRM_EVERY:
                await asyncio.gather(*pending)
                pending.clear()
        if now - reported >= _PROGRESS_EVERY_S:
            reported = now
            log(f"  latency: sent {sent:,} of {total:,} ({sent / (now - started):,.0f}/s)")
        if sent < total:
            next_due = started + sent / rate
            await asyncio.sleep(max(next_due - time.monotonic(), 0.0))
    await asyncio.gather(*pending)
    return send_times, send_times[-1] - started if send_times else 0.0


async def _scrape(
    session: aiohttp.ClientSession,
    url: str,
    baseline: int,
    interval: float,
    scrapes: list[tuple[float, int]],
    durations: list[float],
) -> None:
    timeout = aiohttp.ClientTimeout(total=30)
    next_at = time.monotonic()
    while True:
        asked = time.monotonic()
        try:
            async with session.get(url, timeout=timeout) as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError):
            text = None
        answered = time.monotonic()
        if text is not None:
            scrapes.append((answered, messages_done(sums_by_name(text)) - baseline))
            durations.append(answered - asked)
        next_at = max(next_at + interval, answered)
        await asyncio.sleep(max(next_at - time.monotonic(), 0.0))


async def _drain(scrapes: list[tuple[float, int]], total: int, stall_s: float, log: Log) -> None:
    """Wait until the scraper has seen every message, or nothing moved for `stall_s`."""
    last = -1
    moved_at = reported = time.monotonic()
    while True:
        count = scrapes[-1][1] if scrapes else 0
        now = time.monotonic()
        if count >= total:
            return
        if count != last:
            last, moved_at = count, now
        elif now - moved_at > stall_s:
            log(f"  latency: the worker stopped at {count:,} of {total:,}; giving up the drain")
            return
        if now - reported >= _PROGRESS_EVERY_S:
            reported = now
            log(f"  latency: draining, {count:,} of {total:,} shown in /metrics")
        await asyncio.sleep(0.2)
