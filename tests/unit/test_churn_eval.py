"""bench/churn_eval.py: the AUC by hand, the cut at the cutoff, and a tiny run end to end.

The end-to-end runs assert the document's shape and ranges, never the AUC's level: that is
what the evaluation measures, not what the tests require.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from bench.churn_eval import EvalOptions, main, roc_auc, split
from pipeline.cli import app
from pipeline.generator import GeneratorConfig, TrafficGenerator
from schemas.validate import EventValidator

DAY_MS = 86_400_000
TINY = ["--customers", "300", "--days", "45", "--cutoff-day", "30", "--horizon-days", "15"]
START = "2026-11-22T08:00:00Z"


def test_a_perfect_ranking_is_1_and_a_reversed_one_0() -> None:
    assert roc_auc([0.9, 0.8, 0.3, 0.1], [True, True, False, False]) == 1.0
    assert roc_auc([0.1, 0.3, 0.8, 0.9], [True, True, False, False]) == 0.0


def test_ties_count_half() -> None:
    assert roc_auc([0.5, 0.5, 0.5, 0.5], [True, False, True, False]) == 0.5
    assert roc_auc([0.7, 0.7], [True, False]) == 0.5


def test_a_3x3_example_worked_by_hand() -> None:
    """Positives 0.8, 0.5, 0.3; negatives 0.5, 0.2, 0.1. Pairs won: 0.8 beats all three (3);
    0.5 ties 0.5 (1/2) and beats 0.2 and 0.1 (2); 0.3 loses to 0.5 and beats the others (2).
    7.5 of 9 pairs."""
    scores = [0.5, 0.8, 0.1, 0.3, 0.2, 0.5]
    labels = [False, True, False, True, False, True]
    assert roc_auc(scores, labels) == pytest.approx(7.5 / 9)


def test_the_auc_is_the_share_of_pairs_won_whatever_the_order() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, 40) / 5.0  # many ties
    labels = rng.random(40) < 0.3
    positives = scores[labels]
    negatives = scores[~labels]
    won = sum(
        1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives)
    )
    expected = won / (len(positives) * len(negatives))
    assert roc_auc(scores, labels) == pytest.approx(expected)
    order = rng.permutation(40)
    assert roc_auc(scores[order], labels[order]) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("scores", "labels"), [([0.1, 0.2], [True, True]), ([0.1], [False]), ([0.1], [True, False])]
)
def test_the_auc_needs_both_classes_and_one_label_per_score(
    scores: list[float], labels: list[bool]
) -> None:
    with pytest.raises(ValueError):
        roc_auc(scores, labels)


def test_the_cut_keeps_the_past_for_the_scorer_and_the_horizons_churns_as_labels() -> None:
    config = GeneratorConfig(customers=300, rate=None, seed=3, duration_s=45 * 86400)
    messages = list(TrafficGenerator(config))
    start_ms = round(config.start.timestamp() * 1000)
    cutoff_ms, end_ms = start_ms + 30 * DAY_MS, start_ms + 40 * DAY_MS
    cut = split((m.value for m in messages), cutoff_ms, end_ms, EventValidator(max_future_ms=None))
    churns = {
        orjson.loads(m.value)["customer_id"]
        for m in messages
        if b'"customer.churned"' in m.value and cutoff_ms < m.occurred_at * 1000 <= end_ms
    }
    assert cut.lines == len(messages) and len(cut.past) < len(messages)
    assert cut.churned.keys() == churns and churns
    past = set(cut.past)
    times = [m.occurred_at * 1000 for m in messages if m.value in past]
    assert max(times) <= cutoff_ms


def _unit(value: Any) -> bool:
    return isinstance(value, float | int) and 0.0 <= value <= 1.0 and not math.isnan(value)


def test_a_tiny_run_writes_every_metric_in_range(tmp_path: Path) -> None:
    out = tmp_path / "churn_eval.json"
    assert main([*TINY, "--seed", "3", "4", "--fit", "--out", str(out)]) == 0
    document = orjson.loads(out.read_bytes())
    assert document.keys() >= {"options", "runs", "summary", "seconds"}
    runs = document["runs"]
    assert [(r["seed"], r["setting"]) for r in runs] == [
        (3, "default"),
        (3, "fitted"),
        (4, "default"),
        (4, "fitted"),
    ]
    for row in runs:
        assert row["customers_scored"] > 100 and row["churners"] > 0
        assert _unit(row["base_rate"])
        assert all(_unit(value) for value in row["auc"].values())
        assert row["auc"].keys() == {"score", "experience_only", "rhythm_only", "inactive_only"}
        for group in ("high", "medium_or_high"):
            flagged = row[group]
            assert flagged.keys() >= {"flagged", "precision", "recall", "lift"}
            assert _unit(flagged["recall"]) and _unit(flagged["share"])
            assert flagged["precision"] is None or _unit(flagged["precision"])
        assert sum(row["tiers"].values()) == row["customers_scored"]
        by_reason = row["auc_by_reason"]
        assert by_reason["service"]["churners"] + by_reason["other"]["churners"] == row["churners"]
    default, fitted = runs[0], runs[1]
    assert fitted["bgnbd"] != default["bgnbd"] and fitted["fit"]["orders"] > 0
    # the weights too, from the churns of the 15 days before the cutoff only
    calibration = fitted["fit"]["weights"]
    assert calibration["churners"] > 0 and calibration["customers"] > calibration["churners"]
    assert fitted["weights"] != default["weights"] and default["weights"]["intercept"] == -3.0
    assert document["summary"].keys() == {"default", "fitted"}
    assert all(
        value is None or _unit(value)
        for means in document["summary"].values()
        for value in means.values()
    )


def test_a_file_from_cxpulse_generate_gives_the_same_evaluation(tmp_path: Path) -> None:
    """The README's reproduction: `cxpulse generate --per-customer` then `--input`."""
    data = tmp_path / "traffic.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--per-customer",
            "--customers",
            "300",
            "--days",
            "45",
            "--seed",
            "3",
            "--start",
            START,
            "--output",
            str(data),
        ],
    )
    assert result.exit_code == 0, result.output
    generated, read = tmp_path / "generated.json", tmp_path / "read.json"
    assert main([*TINY, "--seed", "3", "--start", START, "--out", str(generated)]) == 0
    assert main([*TINY, "--input", str(data), "--start", START, "--out", str(read)]) == 0
    from_memory = orjson.loads(generated.read_bytes())["runs"][0]
    from_file = orjson.loads(read.read_bytes())["runs"][0]
    ignore = {"seed", "seconds"}
    assert {k: v for k, v in from_file.items() if k not in ignore} == {
        k: v for k, v in from_memory.items() if k not in ignore
    }


def test_a_horizon_past_the_traffic_is_refused() -> None:
    with pytest.raises(ValueError, match="horizon"):
        EvalOptions(days=100, cutoff_day=80, horizon_days=30)
    with pytest.raises(SystemExit):
        main(["--days", "100", "--cutoff-day", "80", "--horizon-days", "30"])
