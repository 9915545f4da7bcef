"""`cxpulse demo` on a port where no Kafka answers: it starts one, the topics, a worker and the
generator; first-response observations reach /metrics; Ctrl-C stops everything cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from pipeline.broker import broker_answers, free_port
from tests.exposition_parse import summed_samples
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _frt_count(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(
        value
        for (name, _), value in summed_samples(text).items()
        if name == "cx_first_response_seconds_count"
    )


def test_demo_starts_everything_and_stops_cleanly(tmp_path: Path) -> None:
    kafka_port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "CXPULSE_BOOTSTRAP_SERVERS": f"localhost:{kafka_port}",
        "CXPULSE_METRICS_PORT": str(metrics_port),
        "CXPULSE_DATA_DIR": str(tmp_path / "worker"),
    }
    log = (tmp_path / "demo.log").open("wb")
    demo = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "demo", "--rate", "200"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _frt_count(metrics_port) > 0, 180, "first-response observations")
        first = _frt_count(metrics_port)
        wait_for(lambda: _frt_count(metrics_port) > first, 60, "the FRT count to grow")
    except AssertionError as exc:
        demo.kill()
        raise AssertionError(f"{exc}\n{(tmp_path / 'demo.log').read_text()[-3000:]}") from None
    demo.send_signal(signal.SIGINT)
    assert demo.wait(timeout=90) == 0, (tmp_path / "demo.log").read_text()[-3000:]
    assert not broker_answers(f"localhost:{kafka_port}"), "the demo's broker outlived the demo"
    assert _frt_count(metrics_port) == 0.0, "the demo's worker outlived the demo"
