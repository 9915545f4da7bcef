"""`cxpulse churn fit`: BG/NBD parameters fitted from the order history in a JSON Lines file.

In: JSON Lines events (a file, ``.gz`` or ``-``; as ``cxpulse replay`` reads them) and
``--until``. Every line is validated exactly as the workers validate it; invalid lines and events
other than ``order.placed`` are counted and skipped, and so are orders after ``--until``. Out:
the maximum-likelihood ``r``, ``alpha``, ``a``, ``b`` (time in weeks counted in whole UTC days,
several orders on one day are one transaction: see `agents.rfm`), the log-likelihood and the
number of customers, as a table or JSON (`format_result`). The worker takes these parameters
from configuration.

Duplicated events need no dedup here: a repeated ``event_id`` has the same ``occurred_at``, and
several orders on one day already count once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import orjson

from agents.bgnbd import FitResult, fit
from agents.rfm import MS_PER_DAY, RfmBuilder
from pipeline.replay import open_lines, route
from schemas.errors import ConfigurationError
from schemas.events import SOURCE_KINDS
from schemas.validate import EventValidator, Rejection

FORMATS: Final = ("text", "json")
_KIND_TOPICS: Final = {kind: kind for kind in SOURCE_KINDS}
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)
_PROGRESS_EVERY: Final = 10_000


@dataclass(frozen=True, slots=True)
class ChurnFitRun:
    """The fit and what went into it: lines read, orders used and what was skipped."""

    result: FitResult
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
) -> ChurnFitRun:
    """Validate every line, summarise the orders up to ``until_ms`` and fit BG/NBD.

    ``progress`` is called every few thousand lines, and once at the end, with the lines read.
    Raises `ConfigurationError` when no order is on or before ``until_ms``.
    """
    builder = RfmBuilder(until_ms)
    count = orders = after = other = invalid = 0
    for line in lines:
        count += 1
        kind, _ = route(line, _KIND_TOPICS, SOURCE_KINDS[0])
        event = validator.validate(line, kind)
        if isinstance(event, Rejection):
            invalid += 1
        elif event.type != "order.placed":
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
    result = fit(table.x, table.t_x, table.T)
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


def fit_file(
    path: str,
    until_ms: int,
    validator: EventValidator,
    progress: Callable[[int], None] | None = None,
) -> ChurnFitRun:
    """`fit_lines` over a JSON Lines file, a ``.gz`` file or ``-`` (stdin)."""
    return fit_lines(open_lines(path), until_ms, validator, progress)


def _iso(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_result(result: FitResult, fmt: str) -> str:
    """The fit as a human-readable table (``text``) or one JSON object (``json``), newline-ended.

    JSON keys: ``r``, ``alpha``, ``a``, ``b``, ``log_likelihood``, ``customers``.
    """
    params = result.params
    if fmt == "json":
        document = {
            "r": params.r,
            "alpha": params.alpha,
            "a": params.a,
            "b": params.b,
            "log_likelihood": result.log_likelihood,
            "customers": result.customers,
        }
        return orjson.dumps(document).decode() + "\n"
    if fmt == "text":
        rows = [
            ("r", f"{params.r:.4f}", "shape of the purchase-rate gamma"),
            ("alpha", f"{params.alpha:.4f}", "scale of the purchase-rate gamma (weeks)"),
            ("a", f"{params.a:.4f}", "dropout-probability beta"),
            ("b", f"{params.b:.4f}", "dropout-probability beta"),
            ("log_likelihood", f"{result.log_likelihood:.2f}", ""),
            ("customers", str(result.customers), ""),
        ]
        lines = ["BG/NBD fit (Fader, Hardie & Lee 2005; time in weeks of whole days)"]
        lines += [f"  {name:<16}{value:>12}  {note}".rstrip() for name, value, note in rows]
        return "\n".join(lines) + "\n"
    raise ConfigurationError(f"--format {fmt!r} is not supported: use {' or '.join(FORMATS)}")
