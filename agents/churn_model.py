"""The churn-risk model: named features -> a score in [0, 1] and its reasons; weights fitted.

In: what `agents.churn_logic` knows of one customer at a scoring time (the BG/NBD probability
that the customer is still active, their distinct order days, the days since the last one, and
each experience signal's decayed intensity) and the weights from configuration. Out: the named
features, the score, each reason's contribution, and, from history whose churns are known,
maximum-likelihood weights (`fit_weights`, behind ``cxpulse churn fit``). Pure: no Faust, no
I/O; deterministic.

Features, all >= 0:

- ``inactive_<N>d`` (the purchase rhythm of a repeat buyer, 2+ order days): ``1 - P(alive)``
  when the last order was in the band that starts ``N`` days ago (`CHURN_RECENCY_BANDS_DAYS`:
  0-6, 7-13, 14-29, 30-59, 60-89, 90-179, 180-364, 365+ whole UTC days), else 0. Split by band
  because how soon a lapsed customer actually leaves depends on how long ago they lapsed: one
  number for "probably gone" cannot say whether that is news or old news.
- ``inactive_one_time``: ``1 - P(alive)`` of a one-time buyer (the MBG/NBD heuristic, see
  `agents.bgnbd`); ``no_orders``: 1 for a customer without an order.
- each experience signal (`CHURN_SIGNALS`): ``ln(1 + intensity)``, so a signal counts more
  the more it happened, with diminishing returns.

Score: the logistic model ``sigma(intercept + sum_j w_j f_j)``, with every ``w_j >= 0``: each
feature can only raise the risk. Fitted, it is the probability of a ``customer.churned`` within
the fit's horizon. Reasons: the rhythm features together are `inactive`, each experience
signal is its own; a reason's contribution is how much the score would fall without it,
``score - sigma(z - sum_{j in reason} w_j f_j)``, in [0, score].

Fit (`fit_weights`): maximum likelihood over customers whose features were taken at one time
and whose label says whether they churned within the horizon after it, the weights kept >= 0
(L-BFGS-B) and a small ridge penalty on the standardised weights (`DEFAULT_L2`), so that a
feature seldom or never seen in the calibration data (a recency band longer than the history)
stays near 0 instead of running off. From a fixed start, so the same data give the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import expit

from agents.config import (
    CHURN_INTERCEPT,
    CHURN_RECENCY_BANDS_DAYS,
    CHURN_RHYTHM_FEATURES,
    CHURN_SIGNALS,
    DEFAULT_CHURN_WEIGHTS,
)
from schemas.errors import CXPulseError

INACTIVE: Final = "inactive"
FEATURES: Final = (*CHURN_RHYTHM_FEATURES, *CHURN_SIGNALS)
#: ridge penalty on the standardised weights, per customer (the objective is a mean)
DEFAULT_L2: Final = 1e-3
_MAX_ITERATIONS: Final = 1000

FloatArray = npt.NDArray[np.float64]


class WeightsFitError(CXPulseError):
    """The calibration data cannot identify the weights (no churner, or no one else)."""


@dataclass(frozen=True, slots=True)
class Rhythm:
    """What the orders say at a scoring: P(alive), distinct order days, days since the last."""

    p_alive: float
    order_days: int
    days_since_last: int


@dataclass(frozen=True, slots=True)
class WeightsFit:
    """Fitted weights (every name of `DEFAULT_CHURN_WEIGHTS`), the log-likelihood they reach
    (without the penalty) and the calibration sample: customers and how many churned."""

    weights: dict[str, float]
    log_likelihood: float
    customers: int
    churners: int


_REASONS: Final = {name: INACTIVE if name in CHURN_RHYTHM_FEATURES else name for name in FEATURES}
#: the reasons, in the order `terms` lists them
REASONS: Final = (INACTIVE, *CHURN_SIGNALS)


def reason_of(feature: str) -> str:
    """The reason a feature is reported as: `inactive` for the purchase rhythm."""
    return _REASONS[feature]


def features(rhythm: Rhythm | None, intensities: Mapping[str, float]) -> dict[str, float]:
    """The named features (`FEATURES`) of a customer; ``rhythm`` None before the first order."""
    values = dict.fromkeys(FEATURES, 0.0)
    if rhythm is None:
        values["no_orders"] = 1.0
    elif rhythm.order_days == 1:
        values["inactive_one_time"] = 1.0 - rhythm.p_alive
    else:
        band = max(d for d in CHURN_RECENCY_BANDS_DAYS if d <= max(rhythm.days_since_last, 0))
        values[f"inactive_{band}d"] = 1.0 - rhythm.p_alive
    for name in CHURN_SIGNALS:
        values[name] = math.log1p(max(intensities.get(name, 0.0), 0.0))
    return values


def sigmoid(z: float) -> float:
    """``1 / (1 + e^-z)`` without overflow for any z."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def terms(weights: Mapping[str, float], values: Mapping[str, float]) -> dict[str, float]:
    """Each reason's share of the log-odds: the sum of its features' ``w_j f_j``."""
    shares = dict.fromkeys(REASONS, 0.0)
    for name, reason in _REASONS.items():
        shares[reason] += weights[name] * values[name]
    return shares


def evaluate(
    weights: Mapping[str, float], values: Mapping[str, float]
) -> tuple[float, dict[str, float]]:
    """The score, ``sigma(intercept + sum_j w_j f_j)``, and each reason's contribution: how
    much the score falls without it (0 when its share is 0)."""
    shares = terms(weights, values)
    z = weights[CHURN_INTERCEPT] + sum(shares.values())
    full = sigmoid(z)
    parts = {
        reason: full - sigmoid(z - share) if share else 0.0 for reason, share in shares.items()
    }
    return full, parts


def score(weights: Mapping[str, float], values: Mapping[str, float]) -> float:
    """``sigma(intercept + sum_j w_j f_j)``."""
    return evaluate(weights, values)[0]


def contributions(weights: Mapping[str, float], values: Mapping[str, float]) -> dict[str, float]:
    """Each reason's contribution: how much the score falls without it (0 when absent)."""
    return evaluate(weights, values)[1]


def fit_weights(
    rows: Sequence[Mapping[str, float]], churned: Sequence[bool], l2: float = DEFAULT_L2
) -> WeightsFit:
    """Maximum-likelihood weights for customers' features ``rows`` and labels ``churned``.

    Raises `WeightsFitError` unless there are both churners and others.
    """
    if len(rows) != len(churned):
        raise ValueError(f"{len(rows)} feature rows but {len(churned)} labels")
    y = np.asarray(churned, dtype=np.float64)
    positives = int(y.sum())
    if positives == 0 or positives == y.size:
        raise WeightsFitError(
            f"{positives} of {y.size} customers churned within the horizon: the weights need "
            "both churners and others; give a longer history or another --until"
        )
    x = np.array([[row[name] for name in FEATURES] for row in rows], dtype=np.float64)
    scale = x.std(axis=0)
    varies = scale > 0  # a constant feature cannot be told from the intercept: weight 0
    z_x = np.where(varies, x / np.where(varies, scale, 1.0), 0.0)
    n = y.size

    def objective(theta: FloatArray) -> tuple[float, FloatArray]:
        z = theta[0] + z_x @ theta[1:]
        loss = float(np.mean(np.logaddexp(0.0, z) - y * z)) + l2 * float(theta[1:] @ theta[1:])
        residual = expit(z) - y
        grad = np.concatenate(([residual.mean()], z_x.T @ residual / n + 2.0 * l2 * theta[1:]))
        return loss, grad

    base = positives / n
    start = np.zeros(len(FEATURES) + 1)
    start[0] = math.log(base / (1.0 - base))
    bounds = [(None, None)] + [(0.0, None) if v else (0.0, 0.0) for v in varies]
    outcome = minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": _MAX_ITERATIONS, "ftol": 1e-12, "gtol": 1e-8},
    )
    theta = np.asarray(outcome.x, dtype=np.float64)
    slopes = np.where(varies, theta[1:] / np.where(varies, scale, 1.0), 0.0)
    weights = {CHURN_INTERCEPT: float(theta[0])}
    weights.update({name: float(w) for name, w in zip(FEATURES, slopes, strict=True)})
    z = theta[0] + x @ slopes
    log_likelihood = float(np.sum(y * z - np.logaddexp(0.0, z)))
    return WeightsFit(
        weights={name: weights[name] for name in DEFAULT_CHURN_WEIGHTS},
        log_likelihood=log_likelihood,
        customers=n,
        churners=positives,
    )
