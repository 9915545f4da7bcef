"""`cxpulse churn fit`: the churn-risk model's parameters, fitted from a JSON Lines history.

In: JSON Lines events (a file, ``.gz`` or ``-``; as ``cxpulse replay`` reads them), ``--until``
and the horizon (`DEFAULT_HORIZON_MS`, 30 days). Every line is validated exactly as the workers
validate it; invalid lines are counted and skipped. Out (`format_result`: a table, JSON, or
``env`` lines for the worker's configuration):

- BG/NBD ``r``, ``alpha``, ``a``, ``b``, maximum likelihood from the ``order.placed`` events up
  to ``--until`` (time in weeks counted in whole UTC days, several orders on one day are one
  transaction: see `agents.rfm`), the log-likelihood and the number of customers;
- the churn-risk weights (`agents.churn_model`), when the history has ``customer.churned``
  events to learn from: every customer's features as of ``--until`` minus the horizon, taken by
  the worker's own logic (`ChurnRisk`, with the BG/NBD parameters just fitted) from the events
  up to then, labelled by whether a ``customer.churned`` followed within the horizon (up to
  ``--until``); weights by maximum likelihood. Nothing after ``--until`` is read, so fitting on
  a past period and scoring a later one is an honest test.

Duplicated events are harmless: several orders on one day count once, and the calibration
replay drops repeated ``event_id`` values as the workers do.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import orjson

from agents.bgnbd import BgNbdParams, FitResult, fit
from agents.churn_logic import ChurnRisk, CustomerProfile
from agents.churn_model import WeightsFit, WeightsFitError, fit_weights
from agents.config import KpiConfig
from agents.family import process_event
from agents.rfm import MS_PER_DAY, RfmBuilder
from pipeline.replay import open_lines, route
from schemas.errors import ConfigurationError
from schemas.events import SOURCE_KINDS, Event
from schemas.validate import EventValidator, Rejection

FORMATS: Final = ("text", "json", "env")
#: labels: a churn within this long after the features' time (the score's horizon)
DEFAULT_HORIZON_MS: Final = 30 * MS_PER_DAY
_KIND_TOPICS: Final = {kind: kind for kind in SOURCE_KINDS}
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)
_PROGRESS_EVERY: Final = 10_000


@dataclass(frozen=True, slots=True)
class ChurnFit:
    """BG/NBD, and the churn-risk weights when the history could identify them (else `note`
    says why not); the weights' features are as of ``as_of_ms``, their labels up to
    ``until_ms``."""

    bgnbd: FitResult
    weights: WeightsFit | None
    as_of_ms: int
    until_ms: int
    note: str = ""

    @property
    def customers(self) -> int:
        """Customers in the BG/NBD fit (with an order up to ``--until``)."""
        return self.bgnbd.customers


@dataclass(slots=True)
class Calibration:
    """Every customer's churn-risk profile from the events up to ``as_of_ms``, and the
    churns in (``as_of_ms``, ``until_ms``]: what the weights are fitted on.

    Each event goes through the worker's dedup and `ChurnRisk.apply`; before it, the customer
    is scored at the event's time less the allowed lateness if a scoring is due by then (what
    the worker's watermark timers do, once per event instead of daily: features depend only
    on what occurred by the time they are read, the daily scorings only bound the state).
    """

    family: ChurnRisk
    as_of_ms: int
    until_ms: int
    profiles: dict[str, CustomerProfile] = field(default_factory=dict)
    churned: dict[str, int] = field(default_factory=dict)
    events: int = 0

    def add(self, event: Event) -> None:
        at = event.occurred_at_ms
        if at > self.as_of_ms:
            if event.type == "customer.churned" and at <= self.until_ms:
                self.churned[event.customer_id] = min(at, self.churned.get(event.customer_id, at))
            return
        family = self.family
        state = self.profiles.setdefault(event.customer_id, family.new_state())
        passed = at - family.config.allowed_lateness_ms
        due = family.next_rescore_ms(state)
        if due is not None and due < passed:
            family.rescore(state, passed)
        self.events += 1
        process_event(family, state, event, f"line:{self.events}", self.events)

    def rows(self, params: BgNbdParams) -> tuple[list[str], list[dict[str, float]], list[bool]]:
        """Customers not churned by ``as_of_ms``: their ids, features then (P(alive) with
        ``params``) and whether they churned within the horizon."""
        config = dataclasses.replace(
            self.family.config, bgnbd=(params.r, params.alpha, params.a, params.b)
        )
        family = ChurnRisk(config)
        ids: list[str] = []
        rows: list[dict[str, float]] = []
        for customer_id in sorted(self.profiles):
            state = self.profiles[customer_id]
            family.rescore(state, self.as_of_ms)
            if state.closed:
                continue
            ids.append(customer_id)
            rows.append(family.features(state, self.as_of_ms)[1])
        return ids, rows, [customer_id in self.churned for customer_id in ids]


@dataclass(frozen=True, slots=True)
class ChurnFitRun:
    """The fit and what went into it: lines read, orders used and what was skipped."""

    result: ChurnFit
    until_ms: int
    lines: int
    orders: int
    orders_after_until: int
    other_events: int
    invalid_lines: int
    fit_seconds: float


def parse_until(value: str) -> int:
    """``--until`` as inclusive epoch milliseconds: a date is the end of that UTC day.

    ``1997-09-30`` is 1997-09-30T23:59:59.999Z; an RFC 3339 instant needs an offset
    (``1997-09-30T12:00:00Z``).
    """
    text = value.strip()
    if _DATE.fullmatch(text):
        try:
            day = datetime.fromisoformat(text).replace(tzinfo=UTC)
        except ValueError:
            raise ConfigurationError(f"--until {value!r} is not a real date") from None
        return (day - _EPOCH) // _MILLISECOND + MS_PER_DAY - 1
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(
            f"--until {value!r}: give a date (1997-09-30, the end of that UTC day) "
            "or an RFC 3339 instant (1997-09-30T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise ConfigurationError(f"--until {value!r} needs an offset, e.g. Z or +01:00")
    return (moment - _EPOCH) // _MILLISECOND


def fit_lines(
    lines: Iterable[bytes],
    until_ms: int,
    validator: EventValidator,
    progress: Callable[[int], None] | None = None,
    *,
    config: KpiConfig | None = None,
    horizon_ms: int = DEFAULT_HORIZON_MS,
) -> ChurnFitRun:
    """Validate every line; fit BG/NBD on the orders up to ``until_ms``, then the churn-risk
    weights on the customers as of ``until_ms - horizon_ms`` (``config``: the worker's
    settings, for FRT targets, horizons and half-life; default `KpiConfig()`).

    ``progress`` is called every few thousand lines, and once at the end, with the lines read.
    Raises `ConfigurationError` when no order is on or before ``until_ms``.
    """
    if horizon_ms <= 0:
        raise ConfigurationError(f"the churn horizon must be more than 0 ms, got {horizon_ms}")
    builder = RfmBuilder(until_ms)
    calibration = Calibration(ChurnRisk(config or KpiConfig()), until_ms - horizon_ms, until_ms)
    count = orders = after = other = invalid = 0
    for line in lines:
        count += 1
        kind, _ = route(line, _KIND_TOPICS, SOURCE_KINDS[0])
        event = validator.validate(line, kind)
        if isinstance(event, Rejection):
            invalid += 1
        else:
            calibration.add(event)
            if event.type != "order.placed":
                other += 1
            elif builder.add(event.customer_id, event.occurred_at_ms):
                orders += 1
            else:
                after += 1
        if progress is not None and count % _PROGRESS_EVERY == 0:
            progress(count)
    if progress is not None:
        progress(count)
    if orders == 0:
        raise ConfigurationError(
            f"no valid order.placed event on or before --until ({_iso(until_ms)}) in {count} "
            f"lines ({after} orders after it, {other} other events, {invalid} invalid lines): "
            "check the file and --until"
        )
    table = builder.build()
    started = time.perf_counter()
    bgnbd = fit(table.x, table.t_x, table.T)
    result = _fit_weights(bgnbd, calibration)
    return ChurnFitRun(
        result=result,
        until_ms=until_ms,
        lines=count,
        orders=orders,
        orders_after_until=after,
        other_events=other,
        invalid_lines=invalid,
        fit_seconds=time.perf_counter() - started,
    )


def _fit_weights(bgnbd: FitResult, calibration: Calibration) -> ChurnFit:
    as_of, until = calibration.as_of_ms, calibration.until_ms
    _, rows, labels = calibration.rows(bgnbd.params)
    try:
        weights = fit_weights(rows, labels)
    except WeightsFitError as exc:
        note = (
            f"churn weights not fitted (the defaults stay): features as of {_iso(as_of)}, "
            f"churns up to {_iso(until)}: {exc}"
        )
        return ChurnFit(bgnbd, None, as_of, until, note)
    return ChurnFit(bgnbd, weights, as_of, until)


def fit_file(
    path: str,
    until_ms: int,
    validator: EventValidator,
    progress: Callable[[int], None] | None = None,
    *,
    config: KpiConfig | None = None,
    horizon_ms: int = DEFAULT_HORIZON_MS,
) -> ChurnFitRun:
    """`fit_lines` over a JSON Lines file, a ``.gz`` file or ``-`` (stdin)."""
    return fit_lines(
        open_lines(path), until_ms, validator, progress, config=config, horizon_ms=horizon_ms
    )


def _iso(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bgnbd_json(result: FitResult) -> dict[str, float]:
    params = result.params
    return {"r": params.r, "alpha": params.alpha, "a": params.a, "b": params.b}


def format_result(result: ChurnFit, fmt: str) -> str:
    """The fit as a human-readable table (``text``), one JSON object (``json``), or the
    worker's configuration as shell-quoted ``KEY='value'`` lines (``env``), newline-ended.

    JSON keys: ``r``, ``alpha``, ``a``, ``b``, ``log_likelihood``, ``customers``; with fitted
    weights also ``churn_weights`` (every weight by name) and ``calibration`` (``as_of``,
    ``until``, ``customers``, ``churners``, ``log_likelihood``). ``env``: `CXPULSE_BGNBD_PARAMS`
    and, when fitted, `CXPULSE_CHURN_WEIGHTS` (else a comment saying why not).
    """
    bgnbd, weights = result.bgnbd, result.weights
    if fmt == "json":
        document: dict[str, object] = {
            **_bgnbd_json(bgnbd),
            "log_likelihood": bgnbd.log_likelihood,
            "customers": bgnbd.customers,
        }
        if weights is not None:
            document["churn_weights"] = weights.weights
            document["calibration"] = _calibration(result, weights)
        return orjson.dumps(document).decode() + "\n"
    if fmt == "env":
        lines = [f"CXPULSE_BGNBD_PARAMS='{orjson.dumps(_bgnbd_json(bgnbd)).decode()}'"]
        if weights is None:
            lines.append(f"# {result.note}")
        else:
            lines.append(f"CXPULSE_CHURN_WEIGHTS='{orjson.dumps(weights.weights).decode()}'")
        return "\n".join(lines) + "\n"
    if fmt == "text":
        return _text(result)
    raise ConfigurationError(f"--format {fmt!r} is not supported: use {' or '.join(FORMATS)}")


def _calibration(result: ChurnFit, weights: WeightsFit) -> dict[str, object]:
    return {
        "as_of": _iso(result.as_of_ms),
        "until": _iso(result.until_ms),
        "customers": weights.customers,
        "churners": weights.churners,
        "log_likelihood": weights.log_likelihood,
    }


def _text(result: ChurnFit) -> str:
    bgnbd, weights = result.bgnbd, result.weights
    params = bgnbd.params
    rows = [
        ("r", f"{params.r:.4f}", "shape of the purchase-rate gamma"),
        ("alpha", f"{params.alpha:.4f}", "scale of the purchase-rate gamma (weeks)"),
        ("a", f"{params.a:.4f}", "dropout-probability beta"),
        ("b", f"{params.b:.4f}", "dropout-probability beta"),
        ("log_likelihood", f"{bgnbd.log_likelihood:.2f}", ""),
        ("customers", str(bgnbd.customers), ""),
    ]
    lines = ["BG/NBD fit (Fader, Hardie & Lee 2005; time in weeks of whole days)"]
    lines += [f"  {name:<18}{value:>12}  {note}".rstrip() for name, value, note in rows]
    if weights is None:
        lines.append(result.note)
        return "\n".join(lines) + "\n"
    lines.append(
        f"churn-risk weights (logistic; features as of {_iso(result.as_of_ms)}, churn by "
        f"{_iso(result.until_ms)}: {weights.churners} of {weights.customers} customers, "
        f"log-likelihood {weights.log_likelihood:.2f})"
    )
    lines += [f"  {name:<18}{value:>12.4f}" for name, value in weights.weights.items()]
    return "\n".join(lines) + "\n"
