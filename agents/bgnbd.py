"""The BG/NBD purchase model (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

In: per customer the repeat-purchase summary ``(x, t_x, T)`` that `agents.rfm` computes from
``order.placed`` events: ``x`` repeat transactions, ``t_x`` the time of the last one and ``T``
the customer's age, both since the first purchase and in weeks. Out: the model's
log-likelihood (the paper's eq. 6), the probability that a customer is still active, and
maximum-likelihood parameters ``(r, alpha, a, b)`` fitted from history (`fit`, behind
``cxpulse churn fit``). Pure: no Faust, no I/O; deterministic.

Which probability the churn-risk worker should use
--------------------------------------------------
`p_alive` is the BG/NBD closed form. Under BG/NBD a customer can only drop out right after a
repeat purchase, so a customer who never came back (``x = 0``) is alive with probability 1,
however long ago the first order was: useless for one-time buyers, who are most customers.
The MBG/NBD variant (Batislam, Denizel & Filiztekin 2007; ``ModifiedBetaGeo`` in the
``lifetimes`` package) also lets a customer drop out at the first purchase, and its closed form
`p_alive_mbg` falls with time for ``x = 0`` too.

The worker should call `p_alive_risk`: BG/NBD's `p_alive` for ``x >= 1`` and MBG/NBD's
closed form for ``x = 0``, both with the one set of parameters fitted here (BG/NBD). This is a
documented heuristic, not a fitted MBG/NBD model: MBG/NBD's ``x = 0`` term is exactly BG/NBD's
``x = 1`` term shifted by one purchase (``a/(b+x-1)`` becomes ``a/(b+x)``, the exponent
``r+x`` counts one purchase less), so the score falls smoothly with inactivity for one-time
buyers and stays continuous across the first repeat purchase.

Numerics: everything is computed in log space (``gammaln``, ``betaln``, ``logaddexp``), so
large ``x`` or ``T`` (hundreds of purchases, decades in weeks) neither overflow nor give NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import betaln, gammaln

from schemas.errors import CXPulseError

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

# Fits run on log-parameters inside these bounds: exp(+-12) spans 6e-6 .. 1.6e5, far wider than
# any purchase process measured in weeks, and keeps the optimiser away from overflow.
_LOG_BOUND: Final = 12.0
_MAX_ITERATIONS: Final = 2000


class FitError(CXPulseError):
    """The data cannot identify the model (no customers, no repeat purchase) or no fit converged."""


@dataclass(frozen=True, slots=True)
class BgNbdParams:
    """BG/NBD parameters: purchase rates ~ Gamma(r, alpha), dropout probabilities ~ Beta(a, b).

    ``alpha`` is in the model's time unit (weeks here); all four must be positive.
    """

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        for name in ("r", "alpha", "a", "b"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(
                    f"BG/NBD parameter {name} must be a finite number > 0, got {value}"
                )


@dataclass(frozen=True, slots=True)
class FitResult:
    """Maximum-likelihood parameters, the log-likelihood they reach and how many customers."""

    params: BgNbdParams
    log_likelihood: float
    customers: int


def _arrays(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    xs = np.asarray(x, dtype=np.float64)
    txs = np.asarray(t_x, dtype=np.float64)
    ts = np.asarray(T, dtype=np.float64)
    if not (xs.shape == txs.shape == ts.shape):
        raise ValueError(
            f"x, t_x and T must have one shape, got {xs.shape}, {txs.shape}, {ts.shape}"
        )
    if np.any(xs < 0) or np.any(xs != np.floor(xs)):
        raise ValueError("x must be whole numbers >= 0 (repeat transactions)")
    if np.any(txs < 0) or np.any(txs > ts) or np.any((xs == 0) & (txs != 0)):
        raise ValueError("need 0 <= t_x <= T, and t_x = 0 when x = 0")
    return xs, txs, ts


def _log_likelihoods(
    params: BgNbdParams, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> FloatArray:
    """Per-customer log of the paper's eq. 6 (inputs already checked)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    # ln[Gamma(r+x) alpha^r / (Gamma(r) B(a,b))], shared by both terms
    common = gammaln(r + x) - gammaln(r) + r * math.log(alpha) - betaln(a, b)
    alive = betaln(a, b + x) - (r + x) * np.log(alpha + T)
    # Second term only exists for x > 0; b + x - 1 is evaluated at x >= 1 so it stays > 0.
    x_pos = np.maximum(x, 1.0)
    dropped = betaln(a + 1.0, b + x_pos - 1.0) - (r + x) * np.log(alpha + t_x)
    both = np.logaddexp(alive, dropped)
    result: FloatArray = common + np.where(x > 0, both, alive)
    return result


def log_likelihood(params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
    """The log-likelihood of each customer's ``(x, t_x, T)`` under ``params`` (paper, eq. 6).

    Vectorised: ``x``, ``t_x`` and ``T`` are numbers or arrays of one shape; the result has that
    shape. Sum it for the log-likelihood of the sample.
    """
    return _log_likelihoods(params, *_arrays(x, t_x, T))


def _log_odds_dead(
    log_a_over: float, params: BgNbdParams, exponent: float, t_x: float, T: float
) -> float:
    """ln of ``a/(b+k) * ((alpha+T)/(alpha+t_x))^exponent``, given ``ln(a/(b+k))``."""
    return log_a_over + exponent * (math.log(params.alpha + T) - math.log(params.alpha + t_x))


def _inverse_one_plus_exp(z: float) -> float:
    """``1 / (1 + e^z)`` without overflow for any z."""
    if z > 0:
        e = math.exp(-z)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(z))


def _check_one(x: float, t_x: float, T: float) -> None:
    if x < 0 or x != math.floor(x) or not 0 <= t_x <= T or (x == 0 and t_x != 0):
        raise ValueError(f"need whole x >= 0 and 0 <= t_x <= T (t_x = 0 if x = 0): {x}, {t_x}, {T}")


def p_alive(params: BgNbdParams, x: float, t_x: float, T: float) -> float:
    """BG/NBD probability that the customer is still active at ``T`` (Fader, Hardie & Lee 2005).

    ``1 / (1 + [x > 0] * a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x))``: exactly 1 for ``x = 0``
    (see the module docstring, and `p_alive_risk` for what the worker should use).
    """
    _check_one(x, t_x, T)
    if x == 0:
        return 1.0
    log_ratio = math.log(params.a) - math.log(params.b + x - 1.0)
    return _inverse_one_plus_exp(_log_odds_dead(log_ratio, params, params.r + x, t_x, T))


def p_alive_mbg(params: BgNbdParams, x: float, t_x: float, T: float) -> float:
    """MBG/NBD probability that the customer is still active at ``T`` (Batislam et al. 2007).

    ``1 / (1 + a/(b+x) * ((alpha+T)/(alpha+t_x))^(r+x))``, as ``lifetimes``' ModifiedBetaGeo:
    below 1 for one-time buyers too. Meant for MBG/NBD parameters; `p_alive_risk` uses it with
    BG/NBD ones for ``x = 0``.
    """
    _check_one(x, t_x, T)
    log_ratio = math.log(params.a) - math.log(params.b + x)
    return _inverse_one_plus_exp(_log_odds_dead(log_ratio, params, params.r + x, t_x, T))


def p_alive_risk(params: BgNbdParams, x: float, t_x: float, T: float) -> float:
    """What the churn-risk worker uses: `p_alive` for ``x >= 1``, `p_alive_mbg` for ``x = 0``."""
    return p_alive_mbg(params, x, t_x, T) if x == 0 else p_alive(params, x, t_x, T)


def _to_params(theta: FloatArray) -> BgNbdParams:
    r, alpha, a, b = (float(v) for v in np.exp(theta))
    return BgNbdParams(r=r, alpha=alpha, a=a, b=b)


def _starts(x: FloatArray, T: FloatArray, weights: FloatArray) -> list[FloatArray]:
    """Deterministic starting points: a neutral one and two scaled to the data's time unit."""
    mean_t = float(np.average(T, weights=weights)) or 1.0
    mean_x = float(np.average(x, weights=weights))
    rate = max(mean_x, 0.1) / mean_t  # purchases per time unit of an average customer
    return [
        np.log(np.array([1.0, 1.0, 1.0, 1.0])),
        np.log(np.array([1.0, 1.0 / rate, 1.0, 3.0])),
        np.log(np.array([0.25, 0.25 / rate, 0.5, 2.0])),
    ]


def fit(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FitResult:
    """Maximum-likelihood BG/NBD parameters for the customers ``(x, t_x, T)``.

    L-BFGS-B on the log-parameters from a few fixed starting points, the best kept: the same
    data always gives the same parameters. Customers with equal ``(x, t_x, T)`` are folded into
    one weighted row first (with whole-day times most of them are), so millions of customers
    cost little more than thousands. Raises `FitError` when the data cannot identify the model.
    """
    xs, txs, ts = _arrays(x, t_x, T)
    xs, txs, ts = xs.ravel(), txs.ravel(), ts.ravel()
    customers = int(xs.size)
    if customers == 0:
        raise FitError("no customers to fit: give order.placed events before --until")
    if not np.any(xs > 0):
        raise FitError(
            f"none of the {customers} customers has a repeat purchase (an order on a later day): "
            "the model cannot be fitted; give a longer history or a later --until"
        )
    rows, counts = np.unique(np.stack([xs, txs, ts], axis=1), axis=0, return_counts=True)
    ux, utx, uT = rows[:, 0], rows[:, 1], rows[:, 2]
    weights = counts.astype(np.float64)

    def objective(theta: FloatArray) -> float:
        # the mean, not the sum, keeps the optimiser's tolerances independent of sample size
        ll = _log_likelihoods(_to_params(theta), ux, utx, uT)
        value = -float(np.dot(weights, ll)) / customers
        return value if math.isfinite(value) else math.inf

    best: tuple[float, FloatArray] | None = None
    for start in _starts(ux, uT, weights):
        outcome = minimize(
            objective,
            start,
            method="L-BFGS-B",
            bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 4,
            options={"maxiter": _MAX_ITERATIONS, "ftol": 1e-13, "gtol": 1e-9},
        )
        value = float(outcome.fun)
        if math.isfinite(value) and (best is None or value < best[0]):
            best = (value, np.asarray(outcome.x, dtype=np.float64))
    if best is None:
        raise FitError(f"no BG/NBD fit converged for {customers} customers; check the input data")
    params = _to_params(best[1])
    total = float(np.dot(weights, _log_likelihoods(params, ux, utx, uT)))
    return FitResult(params=params, log_likelihood=total, customers=customers)
