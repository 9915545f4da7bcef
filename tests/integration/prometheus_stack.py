"""Helpers for the tests that run a real Prometheus over real workers: a worker that is up,
generated traffic with compressed event time, and the Prometheus binary (skip, or fail under
CI=true, without it)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deploy.local_prometheus import prometheus_binary
from tests.integration.conftest import Pipeline, wait_for


def require_prometheus() -> str:
    """The prometheus binary; a skip without it, a failure under CI=true (`make setup`
    installs the Debian package)."""
    found = prometheus_binary()
    if found is None:
        if os.environ.get("CI", "").lower() in {"true", "1", "yes"}:
            pytest.fail("prometheus is not installed under CI=true: apt-get install prometheus")
        pytest.skip("prometheus is not installed: apt-get install prometheus (make setup)")
    return found


@contextmanager
def running_workers(*pipelines: Pipeline) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Topics and one `cxpulse worker` per pipeline, started together, each serving /metrics;
    all terminated together on exit."""
    for pipeline in pipelines:
        pipeline.cli("topics", "create")
    workers = [pipeline.start_worker() for pipeline in pipelines]
    try:
        for pipeline in pipelines:
            try:
                wait_for(lambda p=pipeline: p.scrape() is not None, 90, "a worker's /metrics")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{pipeline.worker_log()}") from None
        yield workers
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)


#: event time of generated traffic: a weekday morning, fixed so a seed gives the same traffic
TRAFFIC_START = datetime(2026, 11, 18, 8, 0, tzinfo=UTC)


def generate(
    pipeline: Pipeline, path: Path, *, duration_s: int, rate: float, **options: str
) -> None:
    """`cxpulse generate --output`: ``duration_s`` of event time from a fixed start, at
    ``rate`` events per second of event time; ``options`` are further flags (``seed="7"``).

    The start is fixed, not "now": the generator's traffic follows the hour of the day, so a
    start that moved with the clock made the same seed give different traffic on every run
    (one run had no CES answer at all). Replayed as fast as possible, an hour of event time
    takes the worker seconds: the worker runs on event time, Prometheus on wall time, so the
    rules' windows see the whole run.
    """
    start = TRAFFIC_START
    extra = [arg for name, value in options.items() for arg in (f"--{name}", value)]
    pipeline.cli(
        "generate", "--output", str(path), "--rate", str(rate), "--duration", str(duration_s),
        "--start", start.isoformat(timespec="seconds"), *extra,
    )  # fmt: skip
