"""deploy/mixin: the committed recording rules are fresh, valid and compute the contract's KPIs.

The hand-worked numbers live in deploy/mixin/tests/rules_test.yaml (two workers, two partitions),
run here with `promtool test rules`. Without promtool these tests skip, except under CI=true,
where a missing promtool is a failure (CI must not pass by skipping).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.config import DEFAULT_FRT_TARGETS_S
from deploy.mixin.config import DEFAULT_CONFIG, MixinConfig
from deploy.mixin.generate import RULES_PATH, groups, main, render
from tests.unit.conftest import ROOT, run_in_root

RULES_TEST = ROOT / "deploy" / "mixin" / "tests" / "rules_test.yaml"


def test_committed_rules_are_fresh() -> None:
    assert RULES_PATH.read_text(encoding="utf-8") == render(DEFAULT_CONFIG), (
        "deploy/mixin/rules.yaml is stale: run `make rules` and commit the result"
    )


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "rules.yaml"
    stale.write_text("groups: []\n", encoding="utf-8")
    assert main(["--check", "-o", str(stale)]) == 1
    assert main(["-o", str(stale)]) == 0
    assert main(["--check", "-o", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == render()


def test_promtool_check_rules(promtool: str) -> None:
    result = run_in_root(promtool, "check", "rules", str(RULES_PATH))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules(promtool: str) -> None:
    result = run_in_root(promtool, "test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_window_has_its_rules() -> None:
    records = {rule.record for group in groups() for rule in group.rules}
    for w in DEFAULT_CONFIG.kpi_windows:
        for name in (
            "channel:cx_nps:ratio_rate",
            "channel:cx_csat:ratio_rate",
            "channel:cx_ces:mean_rate",
            "channel:cx_ces_easy:ratio_rate",
            "channel:cx_fcr:ratio_rate",
            "job:cx_return:ratio_rate",
            "job:cx_late_delivery:ratio_rate",
            "channel:cx_first_response_seconds:p90_rate",
            "channel:cx_resolution_seconds:p99_rate",
        ):
            assert f"{name}{w}" in records
    assert DEFAULT_CONFIG.slo_windows == ("5m", "30m", "1h", "6h", "24h", "7d")
    for w in DEFAULT_CONFIG.slo_windows:
        assert f"channel:cx_first_response_breaches:ratio_rate{w}" in records


def test_config_takes_the_pipelines_targets() -> None:
    assert DEFAULT_CONFIG.frt_targets_s == DEFAULT_FRT_TARGETS_S
    assert DEFAULT_CONFIG.frt_objective == 0.95


def test_selector_is_configurable() -> None:
    text = render(MixinConfig(selector='namespace="cx", job="cxpulse-worker"'))
    assert 'cx_orders_total{namespace="cx", job="cxpulse-worker"}[1h]' in text
    assert 'job="cxpulse"}' not in text


def test_bad_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="windows must look like"):
        groups(MixinConfig(kpi_windows=("1 hour",)))
