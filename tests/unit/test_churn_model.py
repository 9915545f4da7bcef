"""agents/churn_model.py and the calibration of pipeline/churn_fit.py, worked out by hand.

The model: features f_j >= 0 (a repeat buyer's 1 - P(alive) in the band of days since the last
order, a one-time buyer's 1 - P(alive), no orders, ln(1 + intensity) per experience signal),
score = sigma(intercept + sum_j w_j f_j), a reason's contribution sigma(z) - sigma(z - its part).
The fit: maximum likelihood with w_j >= 0; with one binary feature and no penalty it has a closed
form, the log-odds of each group.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from agents.bgnbd import BgNbdParams, p_alive
from agents.churn_logic import ChurnRisk
from agents.churn_model import (
    FEATURES,
    Rhythm,
    WeightsFitError,
    contributions,
    features,
    fit_weights,
    reason_of,
    score,
    sigmoid,
)
from agents.config import CHURN_RHYTHM_FEATURES, DEFAULT_CHURN_WEIGHTS, KpiConfig
from pipeline.churn_fit import Calibration, fit_lines, format_result, parse_until
from schemas.events import Event
from schemas.validate import EventValidator

PAPER = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
VALIDATOR = EventValidator(max_future_ms=None)
E = math.e


def zeros() -> dict[str, float]:
    return dict.fromkeys(FEATURES, 0.0)


# --- features ----------------------------------------------------------------------------------


def test_a_customer_without_orders_has_only_signals() -> None:
    values = features(None, {"detractor": 1.0, "return": 3.0})
    assert values == {**zeros(), "no_orders": 1.0, "detractor": math.log(2), "return": math.log(4)}


def test_a_one_time_buyer_has_its_own_inactivity() -> None:
    values = features(Rhythm(p_alive=0.75, order_days=1, days_since_last=200), {})
    assert values == {**zeros(), "inactive_one_time": 0.25}


@pytest.mark.parametrize(
    ("days", "band"),
    [
        (0, "inactive_0d"),
        (6, "inactive_0d"),
        (7, "inactive_7d"),
        (13, "inactive_7d"),
        (14, "inactive_14d"),
        (29, "inactive_14d"),
        (30, "inactive_30d"),
        (59, "inactive_30d"),
        (60, "inactive_60d"),
        (89, "inactive_60d"),
        (90, "inactive_90d"),
        (179, "inactive_90d"),
        (180, "inactive_180d"),
        (364, "inactive_180d"),
        (365, "inactive_365d"),
        (5000, "inactive_365d"),
    ],
)
def test_a_repeat_buyers_inactivity_lands_in_its_recency_band(days: int, band: str) -> None:
    values = features(Rhythm(p_alive=0.6, order_days=3, days_since_last=days), {})
    assert values == {**zeros(), band: pytest.approx(0.4)}
    assert reason_of(band) == "inactive"


def test_every_rhythm_feature_is_the_reason_inactive_and_every_signal_its_own() -> None:
    assert {reason_of(name) for name in CHURN_RHYTHM_FEATURES} == {"inactive"}
    assert reason_of("late_delivery") == "late_delivery"
    assert list(DEFAULT_CHURN_WEIGHTS) == ["intercept", *FEATURES]


# --- score and reasons -------------------------------------------------------------------------


def test_score_and_contributions_by_hand() -> None:
    weights = {**dict.fromkeys(DEFAULT_CHURN_WEIGHTS, 0.0), "intercept": -2.0}
    weights |= {"inactive_30d": 2.0, "detractor": 1.5}
    # p = 0.75, last order 40 days ago: 2 * 0.25 = 0.5; a detractor of intensity e - 1:
    # 1.5 * ln(e) = 1.5; z = -2 + 0.5 + 1.5 = 0
    values = features(Rhythm(0.75, 2, 40), {"detractor": E - 1, "return": 4.0})
    assert values["detractor"] == pytest.approx(1.0)
    assert score(weights, values) == pytest.approx(0.5)
    parts = contributions(weights, values)
    # without inactive: sigma(-0.5) = 0.3775407; without the detractor: sigma(-1.5) = 0.1824255
    assert parts["inactive"] == pytest.approx(0.1224593, abs=1e-7)
    assert parts["detractor"] == pytest.approx(0.3175745, abs=1e-7)
    assert parts["return"] == 0.0  # weight 0: no contribution, however often it happened
    assert set(parts) == {"inactive", *(n for n in FEATURES if n not in CHURN_RHYTHM_FEATURES)}


def test_sigmoid_is_stable_far_out() -> None:
    assert sigmoid(0.0) == 0.5
    assert sigmoid(800.0) == 1.0 and sigmoid(-800.0) == 0.0
    assert sigmoid(-3.0) == pytest.approx(1 / (1 + math.exp(3)))


# --- fit ---------------------------------------------------------------------------------------


def two_groups(
    churned_without: int, without: int, churned_with: int, with_: int
) -> tuple[list[dict[str, float]], list[bool]]:
    """Customers without a signal and with one detractor (ln 2), and who churned."""
    rows = [zeros() for _ in range(without)] + [
        {**zeros(), "detractor": math.log(2)} for _ in range(with_)
    ]
    labels = [i < churned_without for i in range(without)]
    labels += [i < churned_with for i in range(with_)]
    return rows, labels


def test_one_binary_feature_fits_each_groups_log_odds() -> None:
    # 10 of 100 without a detractor churned, 20 of 50 with one: intercept ln(0.1/0.9) =
    # -2.1972246; w ln 2 = ln(0.4/0.6) - ln(0.1/0.9) = ln 6, so w = log2(6) = 2.5849625
    rows, labels = two_groups(10, 100, 20, 50)
    fitted = fit_weights(rows, labels, l2=0.0)
    assert fitted.weights["intercept"] == pytest.approx(math.log(1 / 9), rel=1e-5)
    assert fitted.weights["detractor"] == pytest.approx(math.log2(6), rel=1e-5)
    others = {k: v for k, v in fitted.weights.items() if k not in ("intercept", "detractor")}
    assert others == dict.fromkeys([n for n in FEATURES if n != "detractor"], 0.0)
    # 10 ln 0.1 + 90 ln 0.9 + 20 ln 0.4 + 30 ln 0.6
    assert fitted.log_likelihood == pytest.approx(-66.1588807, abs=1e-5)
    assert (fitted.customers, fitted.churners) == (150, 30)
    assert list(fitted.weights) == list(DEFAULT_CHURN_WEIGHTS)


def test_a_signal_that_goes_with_fewer_churns_gets_weight_zero() -> None:
    # 10 of 100 without, 2 of 50 with: the unconstrained weight would be negative; at 0 the
    # intercept is the log-odds of all: ln(12 / 138)
    rows, labels = two_groups(10, 100, 2, 50)
    fitted = fit_weights(rows, labels, l2=0.0)
    assert fitted.weights["detractor"] == 0.0
    assert fitted.weights["intercept"] == pytest.approx(math.log(12 / 138), rel=1e-5)


def test_the_penalty_shrinks_and_the_fit_is_deterministic() -> None:
    rows, labels = two_groups(10, 100, 20, 50)
    first = fit_weights(rows, labels)
    assert 0 < first.weights["detractor"] < math.log2(6)
    assert fit_weights(rows, labels) == first


def test_the_fit_needs_churners_and_others() -> None:
    rows, _ = two_groups(0, 10, 0, 5)
    with pytest.raises(WeightsFitError, match="0 of 15"):
        fit_weights(rows, [False] * 15)
    with pytest.raises(WeightsFitError, match="15 of 15"):
        fit_weights(rows, [True] * 15)
    with pytest.raises(ValueError):
        fit_weights(rows, [True])


# --- calibration (pipeline/churn_fit.py) -------------------------------------------------------


def line(event_id: str, kind: str, customer: str, when: str, **fields: Any) -> bytes:
    channel = fields.pop("channel", "shop")
    return orjson.dumps(
        {
            "event_id": event_id,
            "type": kind,
            "occurred_at": when,
            "customer_id": customer,
            "channel": channel,
            **fields,
        }
    )


def order(event_id: str, customer: str, when: str) -> bytes:
    return line(
        event_id, "order.placed", customer, when, order_id=event_id, amount=10, currency="EUR"
    )


def nps(event_id: str, customer: str, when: str, score_: int) -> bytes:
    return line(event_id, "survey.answered", customer, when, survey="nps", score=score_)


def churned(event_id: str, customer: str, when: str) -> bytes:
    return line(event_id, "customer.churned", customer, when, channel="web")


# --until 1997-03-31 (end of day), horizon 30 days: features as of 1997-03-01T23:59:59.999Z,
# labels: churns in (then, --until]
LINES = [
    order("o1", "c1", "1997-01-01T12:00:00Z"),
    order("o2", "c2", "1997-01-02T12:00:00Z"),
    order("o3", "c3", "1997-01-03T12:00:00Z"),
    order("o4", "c1", "1997-01-15T12:00:00Z"),
    churned("x3", "c3", "1997-02-10T12:00:00Z"),  # gone before the features' time
    nps("s1", "c1", "1997-02-20T12:00:00Z", 2),
    nps("s1", "c1", "1997-02-20T12:00:00Z", 2),  # a repeated message: counted once
    nps("s2", "c4", "1997-02-21T12:00:00Z", 9),  # no order: a customer all the same
    churned("x1", "c1", "1997-03-10T12:00:00Z"),  # within the horizon: a churner
    order("o5", "c5", "1997-03-15T12:00:00Z"),  # new after the features' time
    churned("x4", "c4", "1997-04-05T12:00:00Z"),  # after --until: never read as a label
]
UNTIL = parse_until("1997-03-31")
AS_OF = UNTIL - 30 * 86_400_000


def validated(lines: list[bytes]) -> list[Event]:
    events = [VALIDATOR.validate(raw, "shop") for raw in lines]
    assert all(isinstance(e, Event) for e in events)
    return [e for e in events if isinstance(e, Event)]


def test_calibration_takes_features_as_of_the_horizon_before_until() -> None:
    calibration = Calibration(ChurnRisk(KpiConfig()), AS_OF, UNTIL)
    for item in validated(LINES):
        calibration.add(item)
    ids, rows, labels = calibration.rows(PAPER)
    assert ids == ["c1", "c2", "c4"]  # c3 churned before, c5 had nothing by then
    assert labels == [True, False, False]
    c1, c2, c4 = rows
    # c1: orders on Jan 1 and 15 (x = 1, t_x = 2 weeks), T = 59 days to Mar 1: last order 45
    # days ago (band 30-59); P(alive) = 1 / (1 + a/b * ((alpha + 59/7)/(alpha + 2))^(r + 1))
    p = p_alive(PAPER, 1, 2.0, 59 / 7)
    assert p == pytest.approx(0.5634517, abs=1e-7)
    assert c1["inactive_30d"] == pytest.approx(1 - p, rel=1e-12)
    # its detractor 9.5 days (less 1 ms) before: ln(1 + 0.5^(9.5/30)) = 0.5894092, once
    assert c1["detractor"] == pytest.approx(0.5894092, abs=1e-7)
    assert sum(c1.values()) == pytest.approx(1 - p + 0.5894092, abs=1e-7)
    # c2: one order, T = 58 days: the one-time term; c4: no order
    assert c2["inactive_one_time"] > 0 and sum(c2.values()) == c2["inactive_one_time"]
    assert c4 == {**zeros(), "no_orders": 1.0}


def test_fit_lines_fits_weights_when_the_history_has_churns() -> None:
    run = fit_lines(LINES, UNTIL, VALIDATOR)
    result = run.result
    assert result.customers == 4  # BG/NBD: c1, c2, c3, c5 (an order up to --until)
    assert result.weights is not None
    assert (result.weights.customers, result.weights.churners) == (3, 1)
    assert (result.as_of_ms, result.until_ms) == (AS_OF, UNTIL)
    document = orjson.loads(format_result(result, "json"))
    assert document.keys() == {
        *("r", "alpha", "a", "b", "log_likelihood", "customers"),
        *("churn_weights", "calibration"),
    }
    assert document["churn_weights"] == result.weights.weights
    assert document["calibration"] == {
        "as_of": "1997-03-01T23:59:59.999Z",
        "until": "1997-03-31T23:59:59.999Z",
        "customers": 3,
        "churners": 1,
        "log_likelihood": result.weights.log_likelihood,
    }
    env = format_result(result, "env").splitlines()
    assert [entry.split("=", 1)[0] for entry in env] == [
        "CXPULSE_BGNBD_PARAMS",
        "CXPULSE_CHURN_WEIGHTS",
    ]
    weights = orjson.loads(env[1].split("=", 1)[1].strip("'"))
    assert weights == result.weights.weights
    KpiConfig(churn_weights=weights)  # what the worker accepts
    assert "churn-risk weights" in format_result(result, "text")


def test_fit_lines_without_churns_keeps_the_default_weights() -> None:
    quiet = [raw for raw in LINES if b"customer.churned" not in raw]  # c3 stays too
    result = fit_lines(quiet, UNTIL, VALIDATOR).result
    assert result.weights is None
    assert result.note == (
        "churn weights not fitted (the defaults stay): features as of 1997-03-01T23:59:59.999Z, "
        "churns up to 1997-03-31T23:59:59.999Z: 0 of 4 customers churned within the horizon: "
        "the weights need both churners and others; give a longer history or another --until"
    )
    assert "churn_weights" not in orjson.loads(format_result(result, "json"))
