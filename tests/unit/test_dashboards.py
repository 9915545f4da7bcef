"""deploy/mixin dashboards: committed JSON is fresh, reads only real series, passes the linter.

The metric names of every panel query must be recording rules of `rules.yaml` or series the
workers export (`pipeline/metrics.py`: the stream metrics and the KPI collector's families from
`pipeline/exposition.py` and `pipeline/compute.py`), plus Prometheus' own `up`. dashboard-linter
(Go, built by `make setup` into ~/.cache/cxpulse/bin) and promtool skip the tests that need
them when missing, except under CI=true, where a missing tool is a failure.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from deploy.mixin.config import DEFAULT_CONFIG
from deploy.mixin.dashboards import (
    DASHBOARDS_DIR,
    INSTANCE,
    LINT_FILE,
    OVERVIEW_UID,
    PIPELINE_UID,
    render,
)
from deploy.mixin.generate import RULES_PATH, main
from pipeline.compute import watermark_families
from pipeline.exposition import SERIES
from pipeline.metrics import ConsumerLagCollector, build_stream_metrics
from tests.unit.conftest import run_in_root

DASHBOARD_FILES = (f"{OVERVIEW_UID}.json", f"{PIPELINE_UID}.json")
#: Synthesised by Prometheus for every scrape target, not exported by the workers.
PROMETHEUS_SERIES = frozenset({"up"})


def _dashboard(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DASHBOARDS_DIR / name).read_text(encoding="utf-8"))
    return data


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def _exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in _panels(dashboard) for t in p["targets"]]


# --- PromQL metric names -------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:$])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions,
    aggregations, keywords, label names (matchers, `by`/`without`/`on` lists) or durations."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


def test_metric_names_parses_promql() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le, channel) (rate(cx_a_bucket{job="x", '
        'channel=~"$channel"}[$__rate_interval]))) / on (channel) group_left () '
        "(channel:b:rate5m > 0 or 0 * c_total offset 5m) * 1e3 - time() + sum(d) by (instance)"
    )
    assert metric_names(expr) == {"cx_a_bucket", "channel:b:rate5m", "c_total", "d"}


def _kind_samples(kind: str, name: str) -> set[str]:
    """The sample names of a metric family (prometheus_client's `Metric.name` drops a
    counter's `_total`, the exposition's SERIES keep it)."""
    if kind == "counter":
        return {name.removesuffix("_total") + "_total"}
    if kind == "histogram":
        return {name + suffix for suffix in ("_bucket", "_sum", "_count")}
    return {name}


def exported_series() -> set[str]:
    """Sample names the workers expose, from the code that defines them."""
    names: set[str] = set()
    for series in SERIES.values():
        names |= _kind_samples(series.kind, series.name.split(":")[0])
    registry = CollectorRegistry()
    build_stream_metrics(registry)
    registry.register(ConsumerLagCollector(lambda: {}))
    for family in [*registry.collect(), *watermark_families(0, {None: {}})]:
        names |= _kind_samples(family.type, family.name)
    return names


def recording_rules() -> set[str]:
    text = RULES_PATH.read_text(encoding="utf-8")
    return set(re.findall(r"^\s*- record: (\S+)$", text, flags=re.MULTILINE))


# --- Fresh --------------------------------------------------------------------------------


def test_committed_dashboards_are_fresh() -> None:
    rendered = render(DEFAULT_CONFIG)
    assert sorted(rendered) == sorted([*DASHBOARD_FILES, LINT_FILE])
    for name, text in rendered.items():
        assert (DASHBOARDS_DIR / name).read_text(encoding="utf-8") == text, (
            f"deploy/mixin/dashboards_out/{name} is stale: run `make rules` and commit the result"
        )
    extra = sorted(p.name for p in DASHBOARDS_DIR.glob("*.json") if p.name not in rendered)
    assert not extra, f"no longer generated: {extra}; run `make rules`"


def test_check_mode_reports_stale_and_leftover_dashboards(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    assert main(["-o", str(rules)]) == 0
    out = tmp_path / "dashboards_out"
    assert sorted(p.name for p in out.iterdir()) == sorted([*DASHBOARD_FILES, LINT_FILE])
    assert main(["--check", "-o", str(rules)]) == 0
    overview = out / DASHBOARD_FILES[0]
    overview.write_text(overview.read_text(encoding="utf-8").replace("now-24h", "now-1h"))
    assert main(["--check", "-o", str(rules)]) == 1
    assert main(["-o", str(rules)]) == 0
    (out / "retired.json").write_text("{}", encoding="utf-8")
    assert main(["--check", "-o", str(rules)]) == 1
    assert main(["-o", str(rules)]) == 0
    assert not (out / "retired.json").exists()


def test_fixed_uids_and_variables() -> None:
    for name, uid in zip(DASHBOARD_FILES, (OVERVIEW_UID, PIPELINE_UID), strict=True):
        dashboard = _dashboard(name)
        assert dashboard["uid"] == uid
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert list(variables) == ["datasource", "channel", "instance"]
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for name_ in ("channel", "instance"):
            variable = variables[name_]
            assert variable["query"].startswith("label_values(")
            assert variable["multi"] and variable["includeAll"]
            assert variable["datasource"]["uid"] == "${datasource}"
        panels = _panels(dashboard)
        assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
        assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)


# --- Queries -------------------------------------------------------------------------------


def test_every_query_reads_recording_rules_or_exported_series() -> None:
    records, exported = recording_rules(), exported_series()
    allowed = records | exported | PROMETHEUS_SERIES
    for name in DASHBOARD_FILES:
        for title, expr in _exprs(_dashboard(name)):
            names = metric_names(expr)
            assert names, f"{name} / {title}: no metric in {expr!r}"
            unknown = names - allowed
            assert not unknown, f"{name} / {title}: unknown series {sorted(unknown)} in {expr!r}"


def test_raw_series_only_where_no_recording_rule_reads_them() -> None:
    """A panel reads a worker series directly only when no recording rule aggregates it (a
    panel on `cx_events_total` must read `channel_type:cx_events:rate5m` instead)."""
    covered = metric_names(RULES_PATH.read_text(encoding="utf-8")) & exported_series()
    assert {"cx_events_total", "cx_backlog_conversations"} <= covered
    for name in DASHBOARD_FILES:
        for title, expr in _exprs(_dashboard(name)):
            raw = metric_names(expr) & covered
            assert not raw, f"{name} / {title}: read {sorted(raw)} through its recording rule"


def _lint_exceptions(rule: str) -> set[tuple[str, str]]:
    """(dashboard, panel) pairs `.lint` excuses from `rule`."""
    text = (DASHBOARDS_DIR / LINT_FILE).read_text(encoding="utf-8")
    section = re.split(r"\n  (?=\S)", text.split(f"\n  {rule}:\n", 1)[1], maxsplit=1)[0]
    pairs = re.findall(r'- dashboard: "([^"]*)"\n\s+panel: "([^"]*)"', section)
    return set(pairs)


def test_lint_exceptions_are_exactly_the_panels_on_recording_rules() -> None:
    """`.lint` excuses a panel from target-instance-rule only if it reads nothing but
    recording rules (summed over instances); every other panel filters by `$instance`."""
    records = recording_rules()
    excused = _lint_exceptions("target-instance-rule")
    assert excused
    seen: set[tuple[str, str]] = set()
    for name in DASHBOARD_FILES:
        dashboard = _dashboard(name)
        for panel in _panels(dashboard):
            key = (dashboard["title"], panel["title"])
            seen.add(key)
            for target in panel["targets"]:
                expr, names = target["expr"], metric_names(target["expr"])
                if key in excused:
                    assert names <= records, f"{key}: {expr}"
                else:
                    assert not names & records, f"{key}: {expr}"
                    assert INSTANCE in expr, f"{key}: {expr}"
    assert excused <= seen


def _channel_series() -> set[str]:
    """Rules whose level names `channel`, and worker series with a `channel` label."""
    names = {r for r in recording_rules() if "channel" in r.split(":")[0].split("_")}
    for series in SERIES.values():
        if "channel" in series.labels:
            names |= _kind_samples(series.kind, series.name.split(":")[0])
    registry = CollectorRegistry()
    build_stream_metrics(registry)
    families = [*registry.collect(), *watermark_families(0, {None: {}})]
    names |= {s.name for f in families for s in f.samples if "channel" in s.labels}
    return names


#: Panels that read a channel series across all channels on purpose.
ALL_CHANNELS = {"Dead-letter share (5m rate)": "dead letters have no channel: the share is global"}


def test_channel_variable_wherever_the_series_has_a_channel() -> None:
    channel_series = _channel_series()
    assert {"cx_event_lag_seconds_bucket", "channel:cx_nps:ratio_rate1h"} <= channel_series
    for name in DASHBOARD_FILES:
        for title, expr in _exprs(_dashboard(name)):
            if title in ALL_CHANNELS:
                continue
            for series in metric_names(expr) & channel_series:
                pattern = re.escape(series) + r'\{[^}]*channel=~"\$channel"'
                assert re.search(pattern, expr), f"{name} / {title}: {series} without $channel"


def test_queries_are_valid_promql_after_substituting_the_variables(
    promtool: str, tmp_path: Path
) -> None:
    """What a script does with these files: $channel and $instance as match-all regexes,
    $__rate_interval as 1m; promtool then parses every query as a recording rule."""
    lines = ["groups:", "  - name: dashboards", "    rules:"]
    exprs = [expr for name in DASHBOARD_FILES for _, expr in _exprs(_dashboard(name))]
    for i, expr in enumerate(exprs):
        concrete = (
            expr.replace("$channel", ".*")
            .replace("$instance", ".*")
            .replace("$__rate_interval", "1m")
        )
        assert "$" not in concrete, concrete
        lines += [
            f"      - record: dashboard:query{i}:check",
            f"        expr: {json.dumps(concrete)}",
        ]
    rules = tmp_path / "dashboard_queries.yaml"
    rules.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_in_root(promtool, "check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr


# --- dashboard-linter ----------------------------------------------------------------------


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_dashboard_linter_strict(dashboard_linter: str, name: str) -> None:
    result = run_in_root(dashboard_linter, "lint", "--strict", str(DASHBOARDS_DIR / name))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_linter_exceptions_are_per_panel(dashboard_linter: str, tmp_path: Path) -> None:
    """`.lint` excuses named panels only: a worker panel that drops `$instance` fails."""
    for name in (*DASHBOARD_FILES, LINT_FILE):
        shutil.copy(DASHBOARDS_DIR / name, tmp_path / name)
    dashboard = _dashboard(f"{PIPELINE_UID}.json")
    panel = next(p for p in dashboard["panels"] if p.get("title") == "Consumer lag")
    target = panel["targets"][0]
    target["expr"] = target["expr"].replace(f", {INSTANCE}", "")
    assert INSTANCE not in target["expr"]
    broken = tmp_path / f"{PIPELINE_UID}.json"
    broken.write_text(json.dumps(dashboard), encoding="utf-8")
    result = run_in_root(dashboard_linter, "lint", "--strict", str(broken))
    assert result.returncode != 0
    assert "Consumer lag" in result.stdout + result.stderr
    assert "instance selector not found" in result.stdout + result.stderr
