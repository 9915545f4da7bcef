"""The mixin against a real Prometheus scraping a real worker fed by the generator.

A real `cxpulse worker` (session broker, unique topics) processes 45 minutes of generated event
time (~4,000 events), replayed in ~20 s; a real Prometheus (`deploy.local_prometheus`) scrapes
it every second as job="cxpulse" and loads `deploy/mixin/rules.yaml` and `alerts.yaml`. Then,
through the HTTP API (`/api/v1/query`), every query the mixin ships must evaluate without error
and return data:

- every recording rule, by its record name (so its expression worked on the real series);
- every alert: its full expression must evaluate without error, but returns data only while the
  alert fires, so its *threshold-free* form (`deploy.promql.threshold_free`: each comparison
  made `bool`, `unless` made `and`) must return data: a 0/1 sample wherever all of its inputs
  have data with matching labels, which is what the alert needs to be able to fire;
- every panel query of every dashboard in `deploy/mixin/dashboards_out/`, with `$channel` and
  `$instance` at "All", `$__rate_interval` 1m.

`ALLOWLIST` names the few expressions that cannot have data here, each with its reason.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from deploy.dashboard_queries import dashboard_files, load_dashboard
from deploy.local_prometheus import LocalPrometheus, PrometheusError, ScrapeTarget
from deploy.mixin.generate import alert_groups, groups
from deploy.promql import threshold_free
from tests.integration.conftest import Pipeline
from tests.integration.prometheus_stack import generate, require_prometheus, running_workers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
REPLAY_RATE = 200  # messages per second

#: Alerts (name, channel label) whose inputs cannot have data in this run, and why. Minimal.
#: Expressions that cannot have data in this run, with the reason (none today; the mixin
#: renders CXOldestUnansweredTooOld only for the channels that export its input).
ALLOWLIST: dict[tuple[str, str], str] = {}


def _checks() -> tuple[dict[str, str], set[str]]:
    """Every expression to run, mapped to where it comes from (for failure messages), and the
    allowlisted ones among them."""
    checks: dict[str, str] = {}
    allowed: set[str] = set()
    for group in groups():
        for rule in group.rules:
            checks[rule.record] = f"recording rule {rule.record}"
    for alert_group in alert_groups():
        for alert in alert_group.alerts:
            expr = threshold_free(alert.expr.strip())
            checks[expr] = f"alert {alert.name} {dict(alert.labels)} (threshold-free)"
            if (alert.name, dict(alert.labels).get("channel", "")) in ALLOWLIST:
                allowed.add(expr)
    for path in dashboard_files():
        dashboard = load_dashboard(path)
        for panel, query in dashboard.queries:
            checks[query.expr] = f"{path.name}: panel {panel.title!r} target {query.ref}"
    return checks, allowed


def test_every_rule_alert_and_dashboard_query_returns_data(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    binary = require_prometheus()
    checks, allowed = _checks()
    assert len(allowed) == len(ALLOWLIST), "an allowlisted alert is gone: drop it from ALLOWLIST"
    traffic = tmp_path / "traffic.jsonl"
    generate(pipeline, traffic, duration_s=2700, rate=1.5, seed="11", customers="1000")
    with running_workers(pipeline):
        prometheus = LocalPrometheus(
            [ScrapeTarget(f"127.0.0.1:{pipeline.metrics_port}")],
            data_dir=tmp_path / "prometheus",
            binary=binary,
        )
        with prometheus:
            prometheus.wait_for_targets_up(timeout=60)
            loaded = prometheus.rules()
            # paced so that the counters grow over many scrapes (~20 s): replayed at once, a
            # batching worker takes in a family's events between two scrapes, its counters
            # appear already at their final value and every rate over them is 0
            pipeline.cli("replay", str(traffic), "--rate", str(REPLAY_RATE))
            missing = _wait_for_data(prometheus, checks, allowed, timeout=120)
            errors = _errors_of_full_alert_expressions(prometheus)
            unhealthy = [
                (rule["name"], rule.get("lastError")) for rule in prometheus.rules()
                if rule["health"] != "ok"
            ]  # fmt: skip
    records = {r.record for g in groups() for r in g.rules}
    alerts = {a.name for g in alert_groups() for a in g.alerts}
    assert {r["name"] for r in loaded if r["type"] == "recording"} == records
    assert {r["name"] for r in loaded if r["type"] == "alerting"} == alerts
    assert not unhealthy, f"rules Prometheus failed to evaluate: {unhealthy}"
    assert not errors, f"alert expressions Prometheus rejected: {errors}"
    unexpected = {expr: checks[expr] for expr in missing - allowed}
    assert not unexpected, "no data for:\n" + "\n".join(
        f"- {where}: {expr}" for expr, where in sorted(unexpected.items(), key=lambda i: i[1])
    )


def _wait_for_data(
    prometheus: LocalPrometheus, checks: dict[str, str], allowed: set[str], timeout: float
) -> set[str]:
    """Query each expression until it returns data (or ``timeout``); the ones that never did.

    A query error fails at once: it would not go away by waiting.
    """
    pending = set(checks)
    deadline = time.monotonic() + timeout
    while True:
        for expr in sorted(pending):
            try:
                if prometheus.query(expr):
                    pending.discard(expr)
            except PrometheusError as exc:
                raise AssertionError(f"{checks[expr]}: {exc}") from None
        if pending <= allowed or time.monotonic() > deadline:
            return pending
        time.sleep(1.0)


def _errors_of_full_alert_expressions(prometheus: LocalPrometheus) -> list[str]:
    errors = []
    for group in alert_groups():
        for alert in group.alerts:
            try:
                prometheus.query(alert.expr)
            except PrometheusError as exc:
                errors.append(f"{alert.name}: {exc}")
    return errors
