"""deploy/mixin/alerts.yaml: fresh, valid, tested by promtool, annotated, and able to fire.

The scenarios (an outage where nobody answers among them) live in
deploy/mixin/tests/alerts_test.yaml, run here with `promtool test rules`. Without promtool those
tests skip, except under CI=true, where a missing promtool is a failure.
"""

from __future__ import annotations

import re

import pytest

from deploy.mixin.config import DEFAULT_CONFIG, MixinConfig
from deploy.mixin.generate import (
    ALERTS_PATH,
    Alert,
    alert_groups,
    check_burn_rates,
    render_alerts,
)
from tests.unit.conftest import ROOT, run_in_root

ALERTS_TEST = ROOT / "deploy" / "mixin" / "tests" / "alerts_test.yaml"
EXPECTED = {
    "CXFirstResponseBudgetBurn",
    "CXOldestUnansweredTooOld",
    "CXBacklogGrowing",
    "CXNpsDropping",
    "CXDeadLetterRateHigh",
    "CXConsumerLagHigh",
    "CXWatermarkStalled",
    "CXNoEventsFromChannel",
    "CXWorkerDown",
}


def _alerts() -> list[Alert]:
    """The alerts as rendered (the committed file equals the rendering, tested above)."""
    return [alert for group in alert_groups() for alert in group.alerts]


def test_committed_alerts_are_fresh() -> None:
    assert ALERTS_PATH.read_text(encoding="utf-8") == render_alerts(DEFAULT_CONFIG), (
        "deploy/mixin/alerts.yaml is stale: run `make rules` and commit the result"
    )


def test_promtool_check_alerts(promtool: str) -> None:
    result = run_in_root(promtool, "check", "rules", str(ALERTS_PATH))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_alerts(promtool: str) -> None:
    result = run_in_root(promtool, "test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_named_labelled_and_annotated() -> None:
    alerts = _alerts()
    assert {alert.name for alert in alerts} == EXPECTED
    text = ALERTS_PATH.read_text(encoding="utf-8")
    assert text.count("      - alert: ") == len(alerts)
    for field in ("for", "severity", "summary", "description", "runbook_url"):
        assert text.count(f" {field}: ") == len(alerts), field
    for alert in alerts:
        assert re.fullmatch(r"CX(?:[A-Z][a-z0-9]+)+", alert.name), alert.name
        assert alert.severity in {"critical", "warning", "info"}, alert.name
        assert alert.summary and alert.description, alert.name
        assert re.fullmatch(r"[1-9][0-9]*[smh]", alert.for_), alert.name
        assert alert.runbook_url == (f"{DEFAULT_CONFIG.runbook_base_url}alert-{alert.name.lower()}")


def test_every_alert_has_a_runbook_section_and_test_cases() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tests = ALERTS_TEST.read_text(encoding="utf-8")
    for name in EXPECTED:
        # GitHub's slug of "### Alert: CXName" is "alert-cxname", the runbook_url anchor.
        assert f"### Alert: {name}\n" in readme, name
        assert f"alertname: {name}\n" in tests, name


def test_burn_rate_thresholds_follow_the_objective() -> None:
    text = render_alerts(MixinConfig(frt_objective=0.99))
    assert "ratio_rate1h > 0.144" in text
    assert "ratio_rate6h > 0.06" in text
    default = render_alerts()
    assert "ratio_rate1h > 0.72" in default and "ratio_rate5m > 0.72" in default
    assert "ratio_rate6h > 0.3" in default and "ratio_rate30m > 0.3" in default


@pytest.mark.parametrize("objective", [0.9, 0.93])
def test_a_factor_that_cannot_fire_is_refused(objective: float) -> None:
    config = MixinConfig(frt_objective=objective)
    with pytest.raises(ValueError, match="cannot fire"):
        check_burn_rates(config)
    with pytest.raises(ValueError, match="cannot fire"):
        alert_groups(config)


def test_one_oldest_unanswered_rule_per_conversation_channel_at_twice_the_target() -> None:
    rules = [a for a in _alerts() if a.name == "CXOldestUnansweredTooOld"]
    # the conversation channels only: shop and returns have targets but export no waits
    assert sorted(dict(r.labels)["channel"] for r in rules) == [
        "chat",
        "email",
        "phone",
        "social",
        "web",
    ]
    for rule in rules:
        channel = dict(rule.labels)["channel"]
        target = DEFAULT_CONFIG.frt_targets_s[channel]
        assert rule.expr == (
            f'channel:cx_oldest_unanswered_age_seconds:max{{channel="{channel}"}} > {2 * target:g}'
        )


def test_worker_down_uses_the_selector() -> None:
    text = render_alerts(MixinConfig(selector='namespace="cx", job="cxpulse-worker"'))
    assert 'up{namespace="cx", job="cxpulse-worker"} == 0' in text
    assert 'job="cxpulse"}' not in text
