"""Exact under failure (issue 5) on a real broker: workers killed with SIGKILL and restarted,
a second worker joining mid-stream and the first one killed, the broker restarted.

Each test replays a generated file (bots, reopens, repeat contacts, commerce, bad input and
duplicates) and waits until the metrics scraped from the live workers, summed over partitions
and workers as the shipped recording rules sum them, equal `cxpulse compute` on the same file:
every series, exactly (only process-local lag and arrival-dependent late counts are left out).
A double count, a lost event or a series reported by two workers shows as a difference.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from pipeline.broker import LocalBroker, free_port
from tests.exposition_parse import MAX_ACROSS_PARTITIONS, Key, summed_samples
from tests.integration.conftest import Pipeline, wait_for

PROCESS_LOCAL = ("cx_event_lag_seconds", "cx_events_late_total")
#: events per crash test in CI; `make soak` runs the issue's 200k
WATERMARK = "cx_watermark_timestamp_seconds"
CRASH_EVENTS = int(os.environ.get("CXPULSE_SOAK_EVENTS", "30000"))
#: generous waits for the crash test: a hundred events a second at worst
CRASH_WAIT_S = max(300.0, CRASH_EVENTS / 100)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(max(600, int(CRASH_WAIT_S * 6)))]


def _comparable(samples: dict[Key, float]) -> dict[Key, float]:
    """Rounded to micro-units: each partition's value is exact, the float sum over several
    partitions (as the parser and PromQL add them) can differ in the last bit."""
    return {k: round(v, 6) for k, v in samples.items() if not k[0].startswith(PROCESS_LOCAL)}


def _merged(scrapes: list[str | None]) -> dict[Key, float] | None:
    """One exposition per live worker, combined as the recording rules and dashboards do:
    sums over workers, the oldest unanswered age as a maximum, and the watermark per worker
    (all must agree: the one value is kept, a disagreement shows as an extra series)."""
    if any(text is None for text in scrapes):
        return None
    merged: dict[Key, float] = {}
    for text in scrapes:
        for key, value in summed_samples(text or "").items():
            if key[0] == WATERMARK and key in merged and merged[key] != value:
                merged[(WATERMARK, (("disagreement", str(value)),))] = value
            elif key[0] in MAX_ACROSS_PARTITIONS or key[0] == WATERMARK:
                merged[key] = max(merged.get(key, value), value)
            else:
                merged[key] = merged.get(key, 0.0) + value
    return merged


def _generate(pipeline: Pipeline, path: Path, events: int, seed: int) -> int:
    rate = 600
    pipeline.cli(
        "generate", "--seed", str(seed), "--rate", str(rate), "--duration", str(events // rate),
        "--customers", str(max(500, events // 20)), "--start", "2026-11-22T08:00:00Z",
        "--output", str(path),
    )  # fmt: skip
    return path.read_bytes().count(b"\n")


def _wait_equal(
    live: Callable[[], dict[Key, float] | None],
    offline: dict[Key, float],
    timeout: float,
    what: str,
) -> None:
    want = _comparable(offline)
    try:
        wait_for(lambda: (got := live()) is not None and _comparable(got) == want, timeout, what)
    except AssertionError as exc:
        got = _comparable(live() or {})
        diff = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
        extra = {k: v for k, v in got.items() if k not in want}
        raise AssertionError(f"{exc}: differences {diff}, extra series {extra}") from None


def _events_seen(pipeline: Pipeline, port: int | None = None) -> float:
    samples = summed_samples(pipeline.scrape(port) or "")
    return sum(v for (name, _), v in samples.items() if name == "cx_events_total")


def _wait_events(pipeline: Pipeline, point: float, timeout: float) -> float:
    """Wait until the worker shows at least `point` events; return the count that did (a
    scrape after it could time out under load and read as 0)."""
    seen = [0.0]

    def reached() -> bool:
        seen[0] = _events_seen(pipeline)
        return seen[0] >= point

    wait_for(reached, timeout, f"{point:.0f} events")
    return seen[0]


def _stop(*workers: subprocess.Popen[bytes]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()


def test_sigkill_three_times_at_random_points_stays_exact(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    path = tmp_path / "crash.jsonl"
    lines = _generate(pipeline, path, CRASH_EVENTS, seed=11)
    offline = summed_samples(pipeline.cli("compute", str(path)).decode())
    offline_kpi = {
        (s["channel"], s["window"]): s
        for s in map(
            orjson.loads, pipeline.cli("compute", str(path), "--format", "json").splitlines()
        )
    }
    accepted = sum(v for (name, _), v in offline.items() if name == "cx_events_total")
    pipeline.env["CXPULSE_SNAPSHOT_INTERVAL_S"] = "1"
    pipeline.cli("topics", "create")
    pipeline.cli("replay", str(path), timeout=CRASH_WAIT_S)  # the whole backlog waits in Kafka
    chooser = random.Random(5)
    kill_points = sorted(chooser.uniform(0.1, 0.9) * accepted for _ in range(3))
    kills = []
    env = {"CXPULSE_SESSION_TIMEOUT_S": "6"}  # a killed member leaves the group sooner
    worker = pipeline.start_worker(**env)
    try:
        for point in kill_points:
            seen = _wait_events(pipeline, point, CRASH_WAIT_S)
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
            kills.append(seen)
            worker = pipeline.start_worker(**env)
        _wait_equal(
            lambda: _merged([pipeline.scrape()]),
            offline,
            CRASH_WAIT_S,
            "live metrics to equal compute",
        )
        snapshots = asyncio.run(_final_snapshots(pipeline, offline_kpi, within_s=120))
    finally:
        _stop(worker)
    for key, expected in offline_kpi.items():
        assert {**snapshots[key], "partitions": 1} == expected, key
    # Each kill came mid-stream, once its point was reached. The counts need not rise from kill
    # to kill: a restarted worker shows its last committed state, which can be below what the
    # killed one had shown, and redoes the rest (a CI run killed at 18920, 22459, then 21965).
    assert len(kills) == 3, kills
    mid_stream = zip(kill_points, kills, strict=True)
    assert all(p <= k < accepted for p, k in mid_stream), (kill_points, kills, accepted)
    print(f"{lines} lines, {accepted:.0f} accepted events, SIGKILL after {kills}")


def test_second_worker_joins_mid_stream_and_first_is_killed(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """Scale out: a second worker joins while the first half streams in (both together must
    equal compute on that half: no series reported twice after partitions move); then the
    first is SIGKILLed while the second half streams in, and the second alone must equal
    compute on everything."""
    path = tmp_path / "all.jsonl"
    _generate(pipeline, path, 16_000, seed=12)
    rows = path.read_bytes().splitlines(keepends=True)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(b"".join(rows[: len(rows) // 2]))
    second.write_bytes(b"".join(rows[len(rows) // 2 :]))
    offline_first = summed_samples(pipeline.cli("compute", str(first)).decode())
    offline_all = summed_samples(pipeline.cli("compute", str(path)).decode())
    port_b = free_port()
    env = {"CXPULSE_SESSION_TIMEOUT_S": "8"}
    pipeline.cli("topics", "create")
    a = pipeline.start_worker("a", **env)
    b: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: pipeline.scrape() is not None, 90, "worker a's /metrics")
        replay = _replay(pipeline, first, rate=2000)
        wait_for(lambda: _events_seen(pipeline) > 1000, 120, "worker a to be busy")
        b = pipeline.start_worker("b", CXPULSE_METRICS_PORT=str(port_b), **env)
        replay.wait(timeout=120)
        _wait_equal(
            lambda: _merged([pipeline.scrape(), pipeline.scrape(port_b)]),
            offline_first,
            180,
            "workers a + b to equal compute on the first half",
        )
        replay = _replay(pipeline, second, rate=2000)
        time.sleep(2)
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=30)
        replay.wait(timeout=120)
        _wait_equal(
            lambda: _merged([pipeline.scrape(port_b)]),
            offline_all,
            240,
            "worker b alone to equal compute on everything",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- a:\n{pipeline.worker_log('a')}") from None
    finally:
        _stop(a, *([b] if b else []))


def test_broker_restart_mid_stream_loses_nothing(pipeline: Pipeline, tmp_path: Path) -> None:
    """The broker stops (SIGTERM) mid-stream and comes back 5 s later on the same port and
    data: the worker rides it out without a restart, and ends equal to compute."""
    path = tmp_path / "restart.jsonl"
    _generate(pipeline, path, 10_000, seed=13)
    rows = path.read_bytes().splitlines(keepends=True)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(b"".join(rows[: len(rows) // 2]))
    second.write_bytes(b"".join(rows[len(rows) // 2 :]))
    offline = summed_samples(pipeline.cli("compute", str(path)).decode())
    with _own_broker(pipeline, tmp_path) as (broker, start_worker):
        worker = start_worker()
        wait_for(lambda: pipeline.scrape() is not None, 90, "the worker's /metrics")
        pipeline.cli("replay", str(first))
        wait_for(lambda: _events_seen(pipeline) > 500, 120, "the worker to be busy")
        broker.stop()
        time.sleep(5)
        broker.start()
        pipeline.cli("replay", str(second))
        _wait_equal(
            lambda: _merged([pipeline.scrape()]), offline, 240, "live metrics to equal compute"
        )
        assert worker.poll() is None, "the worker exited during the broker restart"


def test_a_worker_whose_broker_is_gone_stops_within_its_shutdown_timeout(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """With the broker gone, Faust's clean stop retries for its request timeouts (35 s here
    without the deadline); SIGTERM must end the worker within CXPULSE_SHUTDOWN_TIMEOUT_S."""
    with _own_broker(pipeline, tmp_path) as (broker, start_worker):
        worker = start_worker(CXPULSE_SHUTDOWN_TIMEOUT_S="3")
        wait_for(lambda: "[^Worker]: Ready" in pipeline.worker_log(), 90, "the worker")
        broker.stop()
        worker.terminate()
        started = time.monotonic()
        code = worker.wait(timeout=25)
        log = pipeline.worker_log()
        assert code in (0, 1), (code, log)
        if code == 1:
            assert "did not end in time (CXPULSE_SHUTDOWN_TIMEOUT_S)" in log, log
        print(f"exit {code} {time.monotonic() - started:.1f} s after SIGTERM")


@contextmanager
def _own_broker(
    pipeline: Pipeline, tmp_path: Path
) -> Iterator[tuple[LocalBroker, Callable[..., subprocess.Popen[bytes]]]]:
    """A broker of the test's own (to stop), its topics, and a way to start workers on it;
    on the way out the workers and the broker stop, and a failure shows the worker's log."""
    broker = LocalBroker(port=free_port(), data_dir=tmp_path / "kafka")
    broker.start()
    pipeline.env["CXPULSE_BOOTSTRAP_SERVERS"] = broker.bootstrap
    workers: list[subprocess.Popen[bytes]] = []

    def start_worker(**env: str) -> subprocess.Popen[bytes]:
        workers.append(pipeline.start_worker(**env))
        return workers[-1]

    try:
        pipeline.cli("topics", "create")
        yield broker, start_worker
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{pipeline.worker_log()}") from None
    finally:
        _stop(*workers)
        broker.stop()


async def _final_snapshots(
    pipeline: Pipeline, offline: dict[tuple[str, str], dict[str, Any]], within_s: float
) -> dict[tuple[str, str], dict[str, Any]]:
    """The latest `cx.kpi` snapshot per (channel, window) once each is as of compute's final
    watermark (snapshots written before a crash are on the topic too: the last one counts)."""
    consumer = AIOKafkaConsumer(
        pipeline.env["CXPULSE_KPI_TOPIC"],
        bootstrap_servers=pipeline.env["CXPULSE_BOOTSTRAP_SERVERS"],
        auto_offset_reset="earliest",
    )
    await consumer.start()
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    deadline = asyncio.get_running_loop().time() + within_s
    try:
        while asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    value = orjson.loads(record.value)
                    latest[(value["channel"], value["window"])] = value
            if set(latest) == set(offline) and all(
                latest[k]["as_of_ms"] == v["as_of_ms"] for k, v in offline.items()
            ):
                return latest
    finally:
        await consumer.stop()
    raise AssertionError(f"no final snapshots within {within_s}s: {sorted(latest)}")


def _replay(pipeline: Pipeline, path: Path, rate: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "replay", str(path), "--rate", str(rate)],
        env=pipeline.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
