"""Broker + worker + replay of the hand-made stream: the `cx.churn` topic carries the very
signals the offline run (`cxpulse compute`'s `OfflineRun`) raises, each keyed by its customer and
valid against schemas/json/cx.churn.schema.json, and the churn metrics summed over partitions
equal the offline exposition."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from jsonschema import Draft202012Validator

import schemas
from agents.config import KpiConfig
from pipeline.compute import OfflineRun
from schemas.validate import EventValidator
from tests.exposition_parse import Key, summed_samples
from tests.integration.conftest import Pipeline, wait_for
from tests.known_stream import LINES, MAX_BYTES, jsonl

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CHURN_SCHEMA = Draft202012Validator(
    json.loads((Path(schemas.__file__).parent / "json" / "cx.churn.schema.json").read_text())
)
CHURN_METRICS = ("cx_customers_by_risk_tier", "cx_churn_signals_total")
#: no new cx.churn message for this long (once the expected count is reached): done
QUIET_S = 5.0

Signal = tuple[str, str, str | None]
Record = tuple[bytes | None, dict[str, Any]]


def offline_signals() -> list[tuple[str, dict[str, Any]]]:
    """The cx.churn (key, value) pairs the offline run raises over the known stream."""
    run = OfflineRun(KpiConfig(), EventValidator(max_bytes=MAX_BYTES))
    for line in LINES:
        run.feed(line)
    run.settle()
    return [(key, orjson.loads(orjson.dumps(value))) for key, value in run.signals]


def churn_samples(text: str | None) -> dict[Key, float]:
    return {k: v for k, v in summed_samples(text or "").items() if k[0] in CHURN_METRICS}


def progress(samples: dict[Key, float]) -> tuple[float, float | None]:
    """(events counted, watermark): equal to the offline run's once every event is processed."""
    events = sum(v for (name, _), v in samples.items() if name == "cx_events_total")
    return events, samples.get(("cx_watermark_timestamp_seconds", ()))


def test_churn_signals_on_a_real_broker_equal_the_offline_run(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    path = tmp_path / "known.jsonl"
    path.write_bytes(jsonl())
    offline = offline_signals()
    assert offline, "the known stream raises churn signals"
    exposition = summed_samples(pipeline.cli("compute", str(path)).decode())
    offline_metrics = {k: v for k, v in exposition.items() if k[0] in CHURN_METRICS}
    assert sum(v for (n, _), v in offline_metrics.items() if n == CHURN_METRICS[1]) == len(offline)

    pipeline.cli("topics", "create")
    worker = pipeline.start_worker()
    started = time.monotonic()
    try:
        wait_for(lambda: pipeline.scrape() is not None, 90, "the worker's /metrics")
        pipeline.cli("replay", str(path))
        try:
            wait_for(
                lambda: progress(summed_samples(pipeline.scrape() or "")) == progress(exposition),
                120,
                "every event to be processed",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{pipeline.scrape()}\n{pipeline.worker_log()}") from None
        # rescoring runs on a 1 s timer once the watermark has moved: give it a moment, and
        # let the assertions below say what differs if it never matches
        _eventually(lambda: churn_samples(pipeline.scrape()) == offline_metrics, 15)
        records = asyncio.run(_read_churn(pipeline, len(offline), within_s=30))
        live_metrics = churn_samples(pipeline.scrape())
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    elapsed = time.monotonic() - started

    for key, value in records:
        assert key == value["customer_id"].encode(), (key, value)
        assert [e.message for e in CHURN_SCHEMA.iter_errors(value)] == [], value
    # cx.churn is at-least-once (a redelivery or restart may repeat a signal), so duplicates of
    # the same signal are allowed: compare the sets of (customer, tier, previous tier).
    live = {_signal(value) for _, value in records}
    expected = {_signal(value) for _, value in offline}
    if live != expected or live_metrics != offline_metrics:
        customers = sorted({s[0] for s in live ^ expected})
        order = asyncio.run(_events_order(pipeline, customers))
        raise AssertionError(
            f"live cx.churn differs from the offline run (after {elapsed:.0f}s): "
            f"only live {sorted(live - expected, key=str)}, "
            f"only offline {sorted(expected - live, key=str)}; "
            f"live metrics {live_metrics} != offline {offline_metrics}; "
            f"live values {[value for _, value in records]}, offline values {offline}; "
            f"those customers' events in the order the worker applied them (cx.events): {order}"
        )


def _signal(value: dict[str, Any]) -> Signal:
    return (value["customer_id"], value["tier"], value["previous_tier"])


def _eventually(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
    return True


async def _read_churn(pipeline: Pipeline, expected: int, within_s: float) -> list[Record]:
    """Every cx.churn message from the earliest offset, once at least `expected` have arrived
    and none more for `QUIET_S` (or what has arrived by the deadline: the caller's asserts say
    what differs)."""
    return await _read(
        pipeline.env["CXPULSE_CHURN_TOPIC"], pipeline, expected, within_s, lambda _: True
    )


async def _events_order(pipeline: Pipeline, customers: list[str]) -> dict[str, list[str]]:
    """customer -> `type@occurred_at` of its cx.events messages, in their offset order."""
    records = await _read(
        pipeline.env["CXPULSE_EVENTS_TOPIC"],
        pipeline,
        0,
        10,
        lambda value: value.get("customer_id") in customers,
    )
    order: dict[str, list[str]] = {customer: [] for customer in customers}
    for _, value in records:
        order[value["customer_id"]].append(f"{value['type']}@{value['occurred_at']}")
    return order


async def _read(
    topic: str,
    pipeline: Pipeline,
    expected: int,
    within_s: float,
    wanted: Callable[[dict[str, Any]], bool],
) -> list[Record]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=pipeline.env["CXPULSE_BOOTSTRAP_SERVERS"],
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list[Record] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    last_change = loop.time()
    try:
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                for record in partition_records:
                    last_change = loop.time()
                    value = orjson.loads(record.value)
                    if wanted(value):
                        records.append((record.key, value))
            if len(records) >= expected and loop.time() - last_change >= QUIET_S:
                break
    finally:
        await consumer.stop()
    return records
