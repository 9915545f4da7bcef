"""Broker + worker + replay on the hand-made stream: exactly the hand-worked numbers, and
exactly what `cxpulse compute` prints for the same file (summed over partitions)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from tests.exposition_parse import Key, expected_key, summed_samples
from tests.integration.conftest import Pipeline, wait_for
from tests.known_stream import EXPECTED, FINAL_WATERMARK_S, jsonl

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PROCESS_LOCAL = ("cx_event_lag_seconds",)


def _settled(text: str | None) -> bool:
    if text is None:
        return False
    samples = summed_samples(text)
    events = sum(v for (name, _), v in samples.items() if name == "cx_events_total")
    watermark = samples.get(("cx_watermark_timestamp_seconds", ()), 0.0)
    fcr = sum(v for (name, _), v in samples.items() if name == "cx_first_contact_resolutions_total")
    return events == 27 and watermark == FINAL_WATERMARK_S and fcr == 3


def test_live_equals_hand_worked_numbers_and_compute(pipeline: Pipeline, tmp_path: Path) -> None:
    path = tmp_path / "known.jsonl"
    path.write_bytes(jsonl())
    pipeline.cli("topics", "create")
    worker = pipeline.start_worker()
    try:
        wait_for(lambda: pipeline.scrape() is not None, 90, "the worker's /metrics")
        pipeline.cli("replay", str(path))
        try:
            wait_for(lambda: _settled(pipeline.scrape()), 120, "every event to be processed")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{pipeline.scrape()}\n{pipeline.worker_log()}") from None
        scrape = pipeline.scrape() or ""
        live = summed_samples(scrape)
        lint = subprocess.run(
            ["promtool", "check", "metrics"], input=scrape.encode(), capture_output=True
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    for (name, labels), value in EXPECTED.items():
        assert live.get(expected_key(name, labels), 0.0) == pytest.approx(value), (name, labels)
    offline = summed_samples(pipeline.cli("compute", str(path)).decode())
    strip = {key: v for key, v in live.items() if not key[0].startswith(PROCESS_LOCAL)}
    assert strip == offline


def test_worker_exits_with_usage_error_on_bad_configuration(pipeline: Pipeline) -> None:
    env = {**pipeline.env, "CXPULSE_PARTITIONS": "zero"}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "worker"], env=env, capture_output=True, timeout=60
    )
    assert result.returncode == 2
    assert b"CXPULSE_PARTITIONS" in result.stderr


def test_generated_traffic_live_equals_compute(pipeline: Pipeline, tmp_path: Path) -> None:
    """Realistic generated traffic (bots, reopens, repeat contacts, commerce, bad input,
    duplicates): every KPI series summed over partitions equals `cxpulse compute`."""
    path = tmp_path / "generated.jsonl"
    pipeline.cli(
        "generate", "--seed", "7", "--rate", "300", "--duration", "20", "--customers", "500",
        "--start", "2026-11-22T08:00:00Z", "--output", str(path),
    )  # fmt: skip
    offline = summed_samples(pipeline.cli("compute", str(path)).decode())
    lines = path.read_bytes().count(b"\n")
    pipeline.cli("topics", "create")
    worker = pipeline.start_worker()
    try:
        wait_for(lambda: pipeline.scrape() is not None, 90, "the worker's /metrics")
        pipeline.cli("replay", str(path))

        def caught_up() -> bool:
            live = summed_samples(pipeline.scrape() or "")
            return _without_timing(live) == _without_timing(offline)

        try:
            wait_for(caught_up, 120, "live metrics to equal compute")
        except AssertionError as exc:
            live = _without_timing(summed_samples(pipeline.scrape() or ""))
            diff = {
                k: (live.get(k), v) for k, v in _without_timing(offline).items() if live.get(k) != v
            }
            raise AssertionError(f"{exc}: {lines} lines, differences {diff}") from None
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert offline[("cx_events_duplicate_total", ())] > 0
    assert sum(v for (n, _), v in offline.items() if n == "cx_events_rejected_total") > 0


def _without_timing(samples: dict[Key, float]) -> dict[Key, float]:
    """Drop what depends on arrival timing by nature: process-local lag, and late counts (an
    event is late relative to the watermark when it arrives, which live interleaving decides).
    Values are rounded to micro-units: each partition's value is exact, but adding the float
    values of several partitions (as the parser and PromQL do) can differ in the last bit."""
    return {
        key: round(value, 6)
        for key, value in samples.items()
        if not key[0].startswith((*PROCESS_LOCAL, "cx_events_late_total"))
    }


def test_kpi_snapshots_on_a_real_broker_equal_compute(pipeline: Pipeline, tmp_path: Path) -> None:
    """`cx.kpi` carries a snapshot per channel and window; once drained, the live snapshots
    equal `cxpulse compute --format json` on the same file."""
    path = tmp_path / "known.jsonl"
    path.write_bytes(jsonl())
    offline = {
        (s["channel"], s["window"]): s
        for s in map(
            orjson.loads, pipeline.cli("compute", str(path), "--format", "json").splitlines()
        )
    }
    pipeline.env["CXPULSE_SNAPSHOT_INTERVAL_S"] = "1"
    pipeline.cli("topics", "create")
    worker = pipeline.start_worker()
    try:
        wait_for(lambda: pipeline.scrape() is not None, 90, "the worker's /metrics")
        pipeline.cli("replay", str(path))
        live = asyncio.run(_read_snapshots(pipeline, offline, within_s=120))
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert set(live) == set(offline)
    for key, expected in offline.items():
        assert {**live[key], "partitions": 1} == expected, key


async def _read_snapshots(
    pipeline: Pipeline, offline: dict[tuple[str, str], dict[str, object]], within_s: float
) -> dict[tuple[str, str], dict[str, object]]:
    """Latest snapshot per (channel, window) once every one is as of the final watermark."""
    consumer = AIOKafkaConsumer(
        pipeline.env["CXPULSE_KPI_TOPIC"],
        bootstrap_servers=pipeline.env["CXPULSE_BOOTSTRAP_SERVERS"],
        auto_offset_reset="earliest",
    )
    await consumer.start()
    latest: dict[tuple[str, str], dict[str, object]] = {}
    final = FINAL_WATERMARK_S * 1000
    deadline = asyncio.get_running_loop().time() + within_s
    try:
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    value = orjson.loads(record.value)
                    assert record.key == value["channel"].encode()
                    latest[(value["channel"], value["window"])] = value
            if len(latest) == len(offline) and all(v["as_of_ms"] == final for v in latest.values()):
                return latest
    finally:
        await consumer.stop()
    raise AssertionError(f"no final snapshots within {within_s}s: {sorted(latest)}")
