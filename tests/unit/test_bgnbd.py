"""agents/bgnbd.py, agents/rfm.py and the pure parts of pipeline/churn_fit.py, worked out by hand.

BG/NBD (Fader, Hardie & Lee 2005), eq. 6, for one customer with A = Gamma(r+x) alpha^r / Gamma(r):

    L = B(a, b+x)/B(a, b) * A / (alpha+T)^(r+x)
        + [x > 0] * B(a+1, b+x-1)/B(a, b) * A / (alpha+t_x)^(r+x)

and P(alive) = first term / L = 1 / (1 + [x > 0] * a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x)).
With whole-number parameters both are exact fractions (B(p, q) = (p-1)!(q-1)!/(p+q-1)!).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from fractions import Fraction

import numpy as np
import orjson
import pytest

from agents.bgnbd import (
    BgNbdParams,
    FitError,
    FitResult,
    fit,
    log_likelihood,
    p_alive,
    p_alive_mbg,
    p_alive_risk,
)
from agents.rfm import MS_PER_DAY, RfmBuilder, build_rfm, customer_rfm, utc_day
from pipeline.churn_fit import ChurnFit, fit_lines, format_result, parse_until
from schemas.errors import ConfigurationError
from schemas.validate import EventValidator

ONES = BgNbdParams(r=1.0, alpha=1.0, a=1.0, b=1.0)
SMALL = BgNbdParams(r=2.0, alpha=3.0, a=2.0, b=3.0)
# The paper's CDNOW estimates (Fader, Hardie & Lee 2005, section 4).
PAPER = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)


def ll(params: BgNbdParams, x: float, t_x: float, T: float) -> float:
    return float(log_likelihood(params, x, t_x, T))


# --- log-likelihood --------------------------------------------------------------------------


def test_log_likelihood_exact_for_whole_number_parameters() -> None:
    # ONES, x=1, t_x=1, T=2: A = Gamma(2)/Gamma(1) * 1 = 1
    #   term 1 = B(1,2)/B(1,1) / 3^2 = (1/2) / 9 = 1/18
    #   term 2 = B(2,1)/B(1,1) / 2^2 = (1/2) / 4 = 1/8       L = 1/18 + 1/8 = 13/72
    assert ll(ONES, 1, 1, 2) == pytest.approx(math.log(13 / 72), rel=1e-12)
    # ONES, x=0, T=2: only term 1 = B(1,1)/B(1,1) * 1 / 3^1 = 1/3
    assert ll(ONES, 0, 0, 2) == pytest.approx(math.log(1 / 3), rel=1e-12)
    # SMALL (r=2, alpha=3, a=2, b=3), x=2, t_x=4, T=6: A = Gamma(4)/Gamma(2) * 3^2 = 54
    #   B(2,3) = 1!2!/4! = 1/12, B(2,5) = 1!4!/6! = 1/30, B(3,4) = 2!3!/6! = 1/60
    #   term 1 = (12/30) * 54 / 9^4 = 108/32805,  term 2 = (12/60) * 54 / 7^4 = 54/12005
    expected = Fraction(108, 32805) + Fraction(54, 12005)
    assert ll(SMALL, 2, 4, 6) == pytest.approx(math.log(expected), rel=1e-12)


def _hand_ll(p: BgNbdParams, x: int, t_x: float, T: float) -> float:
    """Eq. 6 straight from the paper, in plain floats (fine for small inputs)."""

    def beta(u: float, v: float) -> float:
        return math.exp(math.lgamma(u) + math.lgamma(v) - math.lgamma(u + v))

    a_term = math.exp(math.lgamma(p.r + x) - math.lgamma(p.r)) * p.alpha**p.r
    first = beta(p.a, p.b + x) / beta(p.a, p.b) * a_term / (p.alpha + T) ** (p.r + x)
    second = 0.0
    if x > 0:
        second = beta(p.a + 1, p.b + x - 1) / beta(p.a, p.b) * a_term / (p.alpha + t_x) ** (p.r + x)
    return math.log(first + second)


def test_log_likelihood_matches_the_paper_formula_for_three_customers() -> None:
    # Three CDNOW-like customers (weeks of whole days) under the paper's estimates.
    customers = [(2, 213 / 7, 272 / 7), (0, 0.0, 272 / 7), (7, 206 / 7, 265 / 7)]
    x, t_x, T = (np.array(column) for column in zip(*customers, strict=True))
    got = log_likelihood(PAPER, x, t_x, T)
    assert got.shape == (3,)
    for value, (cx, ctx, cT) in zip(got, customers, strict=True):
        assert value == pytest.approx(_hand_ll(PAPER, cx, ctx, cT), rel=1e-12)
    # x = 0 by hand: (alpha / (alpha+T))^r, the beta ratio being 1
    assert got[1] == pytest.approx(PAPER.r * math.log(PAPER.alpha / (PAPER.alpha + 272 / 7)))


def test_log_likelihood_is_stable_for_large_x_and_T() -> None:
    # Gamma(500.243) ~ e^2600 and (alpha+T)^500 ~ e^3450 overflow a float; their logs do not.
    p = PAPER

    def ln_beta(u: float, v: float) -> float:
        return math.lgamma(u) + math.lgamma(v) - math.lgamma(u + v)

    def by_hand(x: int, t_x: float, T: float) -> float:
        common = math.lgamma(p.r + x) - math.lgamma(p.r) + p.r * math.log(p.alpha)
        first = ln_beta(p.a, p.b + x) - (p.r + x) * math.log(p.alpha + T)
        second = ln_beta(p.a + 1, p.b + x - 1) - (p.r + x) * math.log(p.alpha + t_x)
        top = max(first, second)  # log-sum-exp
        both = top + math.log(math.exp(first - top) + math.exp(second - top))
        return common - ln_beta(p.a, p.b) + both

    customers = [(500, 999.0, 1000.0), (500, 1.0, 1000.0), (1, 5000.0, 1e5)]
    x, t_x, T = (np.array(column) for column in zip(*customers, strict=True))
    values = log_likelihood(p, x, t_x, T)
    assert np.all(np.isfinite(values))
    for value, customer in zip(values, customers, strict=True):
        assert value == pytest.approx(by_hand(*customer), rel=1e-10)
    # a density in t_x, so 500 purchases packed into one week is very likely under such a rate
    assert values[1] > 0


def test_log_likelihood_refuses_inconsistent_input() -> None:
    with pytest.raises(ValueError, match="t_x <= T"):
        log_likelihood(ONES, 1, 3, 2)
    with pytest.raises(ValueError, match="whole numbers"):
        log_likelihood(ONES, 1.5, 1, 2)
    with pytest.raises(ValueError, match="one shape"):
        log_likelihood(ONES, [1, 2], [1], [2, 3])
    with pytest.raises(ValueError, match="alpha"):
        BgNbdParams(r=1.0, alpha=0.0, a=1.0, b=1.0)


# --- P(alive) --------------------------------------------------------------------------------


def test_p_alive_exact() -> None:
    # ONES, x=1, t_x=1, T=2: 1 / (1 + 1/(1+1-1) * (3/2)^2) = 1 / (1 + 9/4) = 4/13
    assert p_alive(ONES, 1, 1, 2) == pytest.approx(4 / 13, rel=1e-12)
    # and it is term 1 / L of the likelihood above: (1/18) / (13/72) = 4/13
    # SMALL, x=2, t_x=4, T=6: 1 / (1 + 2/(3+2-1) * (9/7)^4) = 1 / (1 + 6561/4802) = 4802/11363
    assert p_alive(SMALL, 2, 4, 6) == pytest.approx(4802 / 11363, rel=1e-12)
    # the same from the likelihood's terms: term 1 / (term 1 + term 2)
    term1 = Fraction(108, 32805)
    assert p_alive(SMALL, 2, 4, 6) == pytest.approx(
        float(term1 / (term1 + Fraction(54, 12005))), rel=1e-12
    )


def test_p_alive_is_one_for_one_time_buyers_under_bgnbd() -> None:
    assert p_alive(PAPER, 0, 0, 0) == 1.0
    assert p_alive(PAPER, 0, 0, 1000) == 1.0


def test_p_alive_mbg_exact_and_below_one_for_one_time_buyers() -> None:
    # ONES, x=0, T=2: 1 / (1 + 1/1 * (3/1)^1) = 1/4;  x=1, t_x=1, T=2: 1 / (1 + 1/2 * 9/4) = 8/17
    assert p_alive_mbg(ONES, 0, 0, 2) == pytest.approx(1 / 4, rel=1e-12)
    assert p_alive_mbg(ONES, 1, 1, 2) == pytest.approx(8 / 17, rel=1e-12)
    # paper parameters, a one-time buyer 272 days ago: 1 / (1 + a/b * ((alpha+T)/alpha)^r)
    T = 272 / 7
    by_hand = 1 / (1 + PAPER.a / PAPER.b * ((PAPER.alpha + T) / PAPER.alpha) ** PAPER.r)
    assert p_alive_mbg(PAPER, 0, 0, T) == pytest.approx(by_hand, rel=1e-12)
    assert 0 < p_alive_mbg(PAPER, 0, 0, T) < 1
    # falls with time since the only purchase
    assert p_alive_mbg(PAPER, 0, 0, 10) > p_alive_mbg(PAPER, 0, 0, 50)


def test_p_alive_risk_uses_mbg_for_one_time_buyers_and_bgnbd_otherwise() -> None:
    assert p_alive_risk(ONES, 0, 0, 2) == pytest.approx(1 / 4)
    assert p_alive_risk(ONES, 1, 1, 2) == pytest.approx(4 / 13)
    # continuity: a one-time buyer looks like a customer whose last repeat was at the start
    assert p_alive_risk(PAPER, 0, 0, 30) == pytest.approx(
        1 / (1 + PAPER.a / PAPER.b * ((PAPER.alpha + 30) / PAPER.alpha) ** PAPER.r)
    )


def test_p_alive_is_stable_for_large_x_and_T() -> None:
    for fn in (p_alive, p_alive_mbg, p_alive_risk):
        recent = fn(PAPER, 500, 999, 1000)
        long_gone = fn(PAPER, 500, 1, 1000)  # (1005/5)^500 would overflow a float
        assert math.isfinite(recent) and 0 < recent <= 1
        assert math.isfinite(long_gone) and 0 <= long_gone < 1e-300
        assert recent > 0.99
    assert p_alive(PAPER, 0, 0, 1e9) == 1.0
    assert 0 < p_alive_mbg(PAPER, 0, 0, 1e9) < 1


# --- fitting ---------------------------------------------------------------------------------


def _simulate(params: BgNbdParams, customers: int, T: float, seed: int) -> tuple[np.ndarray, ...]:
    """BG/NBD by its story: gamma rates, beta dropouts, a coin after every repeat purchase."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(params.r, 1 / params.alpha, customers)
    drops = rng.beta(params.a, params.b, customers)
    xs, txs = np.zeros(customers), np.zeros(customers)
    for i in range(customers):
        t = 0.0
        while True:
            t += rng.exponential(1 / rates[i])
            if t > T:
                break
            xs[i] += 1
            txs[i] = t
            if rng.random() < drops[i]:
                break
    return xs, txs, np.full(customers, T)


def test_fit_recovers_simulated_parameters_deterministically() -> None:
    truth = BgNbdParams(r=0.5, alpha=5.0, a=0.8, b=2.5)
    x, t_x, T = _simulate(truth, 10_000, 52.0, seed=7)
    result = fit(x, t_x, T)
    assert result.customers == 10_000
    got = result.params
    assert got.r == pytest.approx(truth.r, rel=0.05)
    assert got.alpha == pytest.approx(truth.alpha, rel=0.1)
    assert got.a == pytest.approx(truth.a, rel=0.1)
    assert got.b == pytest.approx(truth.b, rel=0.15)
    # the maximum: better than the truth, and the reported LL is the sum at the estimate
    assert result.log_likelihood >= float(log_likelihood(truth, x, t_x, T).sum())
    assert result.log_likelihood == pytest.approx(float(log_likelihood(got, x, t_x, T).sum()))
    assert fit(x, t_x, T) == result  # deterministic, to the last bit


def test_fit_refuses_data_that_cannot_identify_the_model() -> None:
    with pytest.raises(FitError, match="no customers"):
        fit([], [], [])
    with pytest.raises(FitError, match="repeat purchase"):
        fit([0, 0], [0, 0], [5, 9])


# --- RFM: whole UTC days, weeks = days / 7 ---------------------------------------------------

# 1997-01-01T00:00:00Z = 852_076_800 s (9862 days after 1970-01-01)
JAN1_MS = 852_076_800_000
JAN1 = 9862
HOUR_MS = 3_600_000


def test_utc_day_is_the_calendar_day_of_occurred_at() -> None:
    assert utc_day(JAN1_MS) == JAN1
    assert utc_day(JAN1_MS + MS_PER_DAY - 1) == JAN1
    assert utc_day(JAN1_MS + MS_PER_DAY) == JAN1 + 1
    assert utc_day(-1) == -1  # before 1970: floor, not truncation


def test_customer_rfm_in_weeks_of_whole_days() -> None:
    # orders on days 0, 0, 7, 14 (the first day twice); until day 21
    summary = customer_rfm([JAN1, JAN1, JAN1 + 7, JAN1 + 14], JAN1 + 21)
    assert (summary.x, summary.t_x, summary.T) == (2, 2.0, 3.0)
    one_time = customer_rfm([JAN1], JAN1 + 272)
    assert (one_time.x, one_time.t_x, one_time.T) == (0, 0.0, 272 / 7)


def test_several_orders_on_one_day_count_as_one_transaction() -> None:
    until = JAN1_MS + 30 * MS_PER_DAY - 1  # end of day 29
    orders = [
        ("c1", JAN1_MS + 9 * HOUR_MS),
        ("c1", JAN1_MS + 23 * HOUR_MS),  # same UTC day: not a repeat
        ("c1", JAN1_MS + 10 * MS_PER_DAY + 1),
        ("c1", JAN1_MS + 10 * MS_PER_DAY + 2),  # same day again
        ("c1", JAN1_MS + 10 * MS_PER_DAY + 2),  # a duplicate event: no effect either
        ("c2", JAN1_MS + 3 * MS_PER_DAY + 23 * HOUR_MS),
        ("c2", JAN1_MS + 4 * MS_PER_DAY + 1 * HOUR_MS),  # two hours later, the next day
    ]
    table = build_rfm(orders, until)
    assert table.customer_ids == ("c1", "c2")
    # c1: days 0 and 10; T = 29 - 0 days.  c2: days 3 and 4; T = 29 - 3 days.
    assert table.customer(0) == customer_rfm([JAN1, JAN1 + 10], JAN1 + 29)
    assert (int(table.x[0]), float(table.t_x[0]), float(table.T[0])) == (1, 10 / 7, 29 / 7)
    assert (int(table.x[1]), float(table.t_x[1]), float(table.T[1])) == (1, 1 / 7, 26 / 7)


def test_orders_after_until_are_ignored_and_until_is_inclusive() -> None:
    until = JAN1_MS + 5 * MS_PER_DAY + 12 * HOUR_MS  # an instant at noon of day 5
    builder = RfmBuilder(until)
    assert builder.add("c1", JAN1_MS)
    assert builder.add("c1", until)  # inclusive
    assert not builder.add("c1", until + 1)
    assert not builder.add("late", until + 1)  # first order after until: not a customer yet
    table = builder.build()
    assert table.customer_ids == ("c1",)
    # T counts whole days up to the day of until, not the half day after noon
    assert table.customer(0) == customer_rfm([JAN1, JAN1 + 5], JAN1 + 5)
    assert float(table.T[0]) == 5 / 7


# --- the command's pure parts (pipeline/churn_fit.py) ----------------------------------------


def test_parse_until_date_is_the_end_of_that_utc_day() -> None:
    sep30 = int(datetime(1997, 9, 30, tzinfo=UTC).timestamp()) * 1000
    assert parse_until("1997-09-30") == sep30 + MS_PER_DAY - 1
    assert utc_day(parse_until("1997-09-30")) - JAN1 == 272  # the paper's T for a Jan 1 buyer
    assert parse_until("1997-09-30T12:00:00Z") == sep30 + 12 * HOUR_MS
    assert parse_until("1997-09-30T12:00:00+02:00") == sep30 + 10 * HOUR_MS
    for bad in ("1997-09-31", "yesterday", "1997-09-30T12:00:00"):
        with pytest.raises(ConfigurationError, match="--until"):
            parse_until(bad)


def _order(i: int, customer: str, day: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{i}",
            "type": "order.placed",
            "occurred_at": f"{day}T12:00:00Z",
            "customer_id": customer,
            "channel": "shop",
            "order_id": f"o{i}",
            "amount": 10.5,
            "currency": "USD",
        }
    )


def test_fit_lines_counts_what_it_skips() -> None:
    lines = [
        _order(1, "c1", "1997-01-01"),
        _order(2, "c1", "1997-01-15"),
        _order(3, "c2", "1997-01-02"),
        _order(4, "c3", "1997-01-03"),
        _order(5, "c3", "1997-01-03"),  # same day
        _order(6, "c1", "1997-03-01"),  # after --until
        b"{not json",
        b'{"type": "order.placed"}',
        orjson.dumps(
            {
                "event_id": "s1",
                "type": "survey.answered",
                "occurred_at": "1997-01-05T10:00:00Z",
                "customer_id": "c2",
                "channel": "shop",
                "survey": "nps",
                "score": 9,
            }
        ),
    ]
    seen: list[int] = []
    run = fit_lines(lines, parse_until("1997-01-31"), EventValidator(), seen.append)
    assert (run.lines, run.orders, run.orders_after_until) == (9, 5, 1)
    assert (run.other_events, run.invalid_lines, run.result.customers) == (1, 2, 3)
    assert seen == [9]
    with pytest.raises(ConfigurationError, match=r"no valid order\.placed"):
        fit_lines(lines, parse_until("1996-12-31"), EventValidator())


def test_format_result_text_and_json() -> None:
    """Without churn labels (CDNOW has none) only BG/NBD: the contract's six JSON keys."""
    bgnbd = FitResult(params=PAPER, log_likelihood=-9582.4292, customers=2357)
    result = ChurnFit(bgnbd, None, 0, MS_PER_DAY, note="churn weights not fitted: no churns")
    assert orjson.loads(format_result(result, "json")) == {
        "r": 0.243,
        "alpha": 4.414,
        "a": 0.793,
        "b": 2.426,
        "log_likelihood": -9582.4292,
        "customers": 2357,
    }
    text = format_result(result, "text")
    assert "0.2430" in text and "4.4140" in text and "-9582.43" in text and "2357" in text
    assert "churn weights not fitted: no churns" in text
    assert format_result(result, "env") == (
        """CXPULSE_BGNBD_PARAMS='{"r":0.243,"alpha":4.414,"a":0.793,"b":2.426}'\n"""
        "# churn weights not fitted: no churns\n"
    )
    with pytest.raises(ConfigurationError, match="--format"):
        format_result(result, "xml")
