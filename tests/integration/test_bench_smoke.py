"""The benchmark harness end to end on a tiny input: every step runs on the session broker and
the JSON summary has every key with sane values. Timings are not asserted, only that they
were measured and that the ratios and targets are computed from them."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.broker import LocalBroker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

MEASURES = (
    "events_per_s",
    "raw_events_per_s",
    "faust_events_per_s",
    "peer_events_per_s",
    "compute_events_per_s",
    "p99_latency_s",
    "rss_bytes",
    "recovery_s",
    "recovery_fresh_s",
)
TARGETS = ("ours_vs_raw", "ours_vs_peer", "events_per_s", "rss_1m_customers")


def _run_bench(kafka: LocalBroker, tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "latest.json"
    args = [
        "--events", "3000", "--customers", "500", "--state-customers", "300",
        "--latency-rate", "200", "--latency-seconds", "3", "--partitions", "3",
        "--out", str(out), "--work-dir", str(tmp_path / "work"),
    ]  # fmt: skip
    env = {**os.environ, "CXPULSE_BOOTSTRAP_SERVERS": kafka.bootstrap}
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", *args],
        env=env,
        capture_output=True,
        timeout=1100,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-5000:]
    lines = out.read_bytes().splitlines()
    assert len(lines) == 1
    summary: dict[str, Any] = orjson.loads(lines[0])
    # the same line ends stdout, after the table
    assert orjson.loads(done.stdout.splitlines()[-1]) == summary
    assert b"cxpulse worker, end to end" in done.stdout
    return summary


def test_bench_smoke(kafka: LocalBroker, tmp_path: Path) -> None:
    summary = _run_bench(kafka, tmp_path)
    for key in MEASURES:
        value = summary[key]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, key
    assert summary["events"] == 3000
    assert summary["ours_vs_raw"] == pytest.approx(
        summary["events_per_s"] / summary["raw_events_per_s"]
    )
    assert summary["ours_vs_peer"] == pytest.approx(
        summary["events_per_s"] / summary["peer_events_per_s"]
    )
    assert summary["ours_vs_faust"] == pytest.approx(
        summary["events_per_s"] / summary["faust_events_per_s"]
    )
    assert 0 < summary["p50_latency_s"] <= summary["p99_latency_s"] <= summary["max_latency_s"]
    assert summary["latency_drained"] is True
    assert summary["state_customers"] == 300
    assert summary["rss_peak_bytes"] >= summary["rss_bytes"] > summary["rss_first_bytes"] > 0
    assert summary["rss_1m_customers_bytes"] > summary["rss_bytes"]
    assert summary["rss_empty_bytes"] > 0 and summary["rss_after_recovery_bytes"] > 0
    assert summary["changelog_records"] > 0
    # the worker computed what the offline run computes; the peer did the same work
    assert summary["ours_equals_compute"] is True
    assert summary["peer_agrees"] is True
    met = summary["targets_met"]
    for name in TARGETS:
        assert isinstance(met[name], bool), name
    assert met["ours_vs_raw"] == (summary["ours_vs_raw"] >= 0.35)
    assert met["events_per_s"] == (summary["events_per_s"] >= 50_000)
    # judged only as stated: at 10k events/s, with a million customers
    assert met["p99_latency"] is None
    assert met["recovery"] is None
    assert set(summary["targets"]) == set(met)
    assert summary["machine"]["nproc"] >= 1
