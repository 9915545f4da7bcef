"""Integration fixtures: one real Kafka broker per session, unique topics and group per test,
and a real worker process (`cxpulse worker`) whose `/metrics` is scraped over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from pipeline.broker import LocalBroker, free_port
from schemas.events import SOURCE_KINDS


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    broker = LocalBroker(port=free_port(), data_dir=tmp_path_factory.mktemp("kafka"))
    broker.start()
    yield broker
    broker.stop()


@dataclass
class Pipeline:
    """Environment of one isolated pipeline on the session broker."""

    env: dict[str, str]
    metrics_port: int
    log_dir: Path

    def cli(self, *args: str, timeout: float = 120, stdin: bytes | None = None) -> bytes:
        result = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise AssertionError(f"cxpulse {' '.join(args)} failed: {result.stderr.decode()}")
        return result.stdout

    def start_worker(self, name: str = "worker", **env: str) -> subprocess.Popen[bytes]:
        """A `cxpulse worker`; `env` overrides settings (e.g. its own CXPULSE_METRICS_PORT)."""
        log = (self.log_dir / f"{name}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "worker"],
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def scrape(self, port: int | None = None) -> str | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port or self.metrics_port}/metrics", timeout=5
            ) as response:
                return str(response.read().decode())
        except OSError:
            return None

    def worker_log(self, name: str = "worker") -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@pytest.fixture
def pipeline(kafka: LocalBroker, tmp_path: Path) -> Iterator[Pipeline]:
    yield new_pipeline(kafka, tmp_path)


def new_pipeline(kafka: LocalBroker, tmp_path: Path) -> Pipeline:
    """An isolated pipeline on the session broker: its own topics, group and metrics port."""
    run = uuid.uuid4().hex[:8]
    port = free_port()
    env = {
        **os.environ,
        "CXPULSE_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "CXPULSE_APP_ID": f"cxpulse-test-{run}",
        "CXPULSE_SOURCE_TOPICS": orjson.dumps(
            {kind: f"t{run}.raw.{kind}" for kind in SOURCE_KINDS}
        ).decode(),
        "CXPULSE_EVENTS_TOPIC": f"t{run}.events",
        "CXPULSE_DLQ_TOPIC": f"t{run}.dlq",
        "CXPULSE_KPI_TOPIC": f"t{run}.kpi",
        "CXPULSE_CHURN_TOPIC": f"t{run}.churn",
        "CXPULSE_KPI_PARTIALS_TOPIC": f"t{run}.kpi.partials",
        "CXPULSE_WATERMARKS_TOPIC": f"t{run}.watermarks",
        "CXPULSE_PARTITIONS": "3",
        "CXPULSE_METRICS_PORT": str(port),
        "CXPULSE_METRICS_HOST": "127.0.0.1",
        "CXPULSE_IDLE_TIMEOUT_S": "3",
        "CXPULSE_DATA_DIR": str(tmp_path / "worker-data"),
    }
    return Pipeline(env=env, metrics_port=port, log_dir=tmp_path)


def wait_for(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
