"""An outage in generated traffic trips the FRT burn-rate page in a real Prometheus, and only
where the outage is.

Two isolated pipelines on the session broker, each with a real worker, get the same generated
traffic (same seed, 50 minutes of event time replayed in seconds); one of them with
`--incident outage:phone@0s+1h` (phone agents answer nobody). One real Prometheus scrapes both
workers (target label `run="outage"` or `run="baseline"`, which the rules keep) and evaluates
`deploy/mixin/alerts.yaml` every second.

- The critical `CXFirstResponseBudgetBurn` (1h and 5m error ratios above 72%) must go pending
  or firing (`/api/v1/alerts`) for phone in the outage run. Its `for: 2m` is wall time, so
  pending is a pass: the condition held on series the worker produced.
- It must never be pending or firing (the `ALERTS` series over the whole run) for phone in the
  baseline run, nor for chat, email, social and web in either run, while their error ratios
  had data (healthy generated traffic breaches 2-4% per channel, inside the 5% budget).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from deploy.local_prometheus import LocalPrometheus, ScrapeTarget
from pipeline.broker import LocalBroker
from tests.exposition_parse import summed_samples
from tests.integration.conftest import Pipeline, new_pipeline, wait_for
from tests.integration.prometheus_stack import generate, require_prometheus, running_workers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

OUTAGE_CHANNEL = "phone"
QUIET_CHANNELS = ("chat", "email", "social", "web")
PAGE = 'alertname="CXFirstResponseBudgetBurn", severity="critical"'
RATIO_5M = "channel:cx_first_response_breaches:ratio_rate5m"
THRESHOLD = 0.72  # 14.4 x (1 - 0.95): deploy/mixin/alerts.yaml


def test_outage_trips_the_frt_page_only_where_it_is(
    kafka: LocalBroker, pipeline: Pipeline, tmp_path: Path
) -> None:
    binary = require_prometheus()
    baseline = new_pipeline(kafka, tmp_path / "baseline")
    (tmp_path / "baseline").mkdir()
    runs = {"outage": pipeline, "baseline": baseline}
    common = {"seed": "5", "customers": "1000"}
    generate(
        pipeline, tmp_path / "outage.jsonl", duration_s=3000, rate=1.0,
        incident=f"outage:{OUTAGE_CHANNEL}@0s+1h", **common,
    )  # fmt: skip
    generate(baseline, tmp_path / "baseline.jsonl", duration_s=3000, rate=1.0, **common)
    with running_workers(pipeline, baseline):
        targets = [
            ScrapeTarget(f"127.0.0.1:{p.metrics_port}", {"run": run}) for run, p in runs.items()
        ]
        with LocalPrometheus(targets, data_dir=tmp_path / "prometheus", binary=binary) as prom:
            prom.wait_for_targets_up(timeout=60)
            started = time.time()
            for run, p in runs.items():
                p.cli("replay", str(tmp_path / f"{run}.jsonl"))

            def paging(run: str, channel: str) -> bool:
                return any(
                    alert["labels"].get("alertname") == "CXFirstResponseBudgetBurn"
                    and alert["labels"].get("severity") == "critical"
                    and alert["labels"].get("run") == run
                    and alert["labels"].get("channel") == channel
                    and alert["state"] in ("pending", "firing")
                    for alert in prom.alerts()
                )

            try:
                wait_for(lambda: paging("outage", OUTAGE_CHANNEL), 120, "the outage page")
            except AssertionError as exc:
                raise AssertionError(
                    f"{exc}: 5m error ratio {_ratio(prom, 'outage', OUTAGE_CHANNEL)}, alerts "
                    f"{prom.alerts()}"
                ) from None
            # Settled: each run's live 5m error ratio per channel equals what `cxpulse compute`
            # gives for its whole file (both counters start at 0 inside the window), so every
            # breach has been counted and the recording rules evaluated on it.
            expected = {
                run: _error_ratios(p.cli("compute", str(tmp_path / f"{run}.jsonl")).decode())
                for run, p in runs.items()
            }

            def settled() -> bool:
                return all(
                    abs(_ratio(prom, run, channel) - ratios[channel]) < 0.005
                    for run, ratios in expected.items()
                    for channel in (OUTAGE_CHANNEL, *QUIET_CHANNELS)
                )

            try:
                wait_for(settled, 120, "the live error ratios to equal `cxpulse compute`")
            except AssertionError as exc:
                live = {run: {c: _ratio(prom, run, c) for c in expected[run]} for run in runs}
                raise AssertionError(f"{exc}: live {live}, expected {expected}") from None
            time.sleep(3)  # the alerts group evaluates (every second) on the settled ratios
            window = f"{int(time.time() - started) + 30}s"
            paged = {
                (s["metric"].get("run"), s["metric"].get("channel"))
                for s in prom.query(f"max_over_time(ALERTS{{{PAGE}}}[{window}])")
            }
            peaks = {
                (s["metric"]["run"], s["metric"]["channel"]): float(s["value"][1])
                for s in prom.query(f"max_over_time({RATIO_5M}[{window}])")
            }
    assert expected["outage"][OUTAGE_CHANNEL] > THRESHOLD > expected["baseline"][OUTAGE_CHANNEL]
    assert ("outage", OUTAGE_CHANNEL) in paged
    assert peaks[("outage", OUTAGE_CHANNEL)] > THRESHOLD
    for run, channel in [("baseline", OUTAGE_CHANNEL)] + [
        (run, channel) for run in runs for channel in QUIET_CHANNELS
    ]:
        assert (run, channel) in peaks, f"no error ratio for {channel} in the {run} run"
        assert (run, channel) not in paged, (
            f"{channel} paged in the {run} run without an outage there "
            f"(peak 5m error ratio {peaks[(run, channel)]:.2f})"
        )
    # The baseline phone ratio had real breaches to judge, just not enough to page.
    assert 0 < peaks[("baseline", OUTAGE_CHANNEL)] < THRESHOLD


def _ratio(prom: LocalPrometheus, run: str, channel: str) -> float:
    """The run's recorded 5m FRT error ratio for the channel; NaN without data."""
    found = prom.query(f'{RATIO_5M}{{run="{run}", channel="{channel}"}}')
    return float(found[0]["value"][1]) if found else math.nan


def _error_ratios(exposition: str) -> dict[str, float]:
    """Breaches / conversations opened per channel in a `cxpulse compute` exposition."""
    totals = summed_samples(exposition)

    def total(name: str, channel: str) -> float:
        return totals.get((name, (("channel", channel),)), 0.0)

    return {
        channel: total("cx_first_response_breaches_total", channel)
        / total("cx_conversations_opened_total", channel)
        for channel in (OUTAGE_CHANNEL, *QUIET_CHANNELS)
    }
