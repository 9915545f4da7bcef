"""Does the churn score predict? A held-out evaluation against the generator's ground truth.

Run: ``python -m bench.churn_eval [--customers 5000 --days 150 --cutoff-day 120
--horizon-days 30 --seed 7 [8 9 ...] --fit] [--input FILE --start RFC3339]
[--dropout-close-share S] [--out PATH]``. Progress goes to stderr, a table to stdout,
everything to ``bench/results/churn_eval.json``.

Per seed: the generator's per-customer mode (``GeneratorConfig(rate=None)``, its defaults
otherwise: bad messages and repeats included) makes ``--days`` of traffic in memory, starting
at ``--start`` (the generator's default start); or ``--input`` reads the same from a file that
``cxpulse generate --per-customer`` wrote. The events up to the cutoff (``--cutoff-day`` days
after the start) are the past; the ``customer.churned`` events in (cutoff, cutoff +
``--horizon-days``] are the labels. Then, once per setting:

- ``default``: the worker's default configuration (`KpiConfig()`: BG/NBD at the CDNOW fit, the
  documented default weights, fitted to nothing);
- ``fitted`` (with ``--fit``): what ``cxpulse churn fit --until CUTOFF`` learns from the past
  alone (`pipeline.churn_fit.fit_lines`): BG/NBD on the orders up to the cutoff, and the
  weights on every customer's features as of the cutoff less ``--horizon-days``, labelled by
  the churns between then and the cutoff; given to the worker as ``KpiConfig(bgnbd=...,
  churn_weights=...)``. The honest setting: nothing from after the cutoff, and the labels it
  learns from end where the ones it is scored against begin.

`OfflineRun` (the worker's own code: validation, dedup, every family, watermark timers) takes
in the past; its watermark is then moved to the cutoff and every timer before it settled, as a
worker's would be. Each customer in the churn table who has been scored and has not churned is
rescored at the cutoff by the real `ChurnRisk` (what its daily timer does), giving the score,
the tier (with its hysteresis history) and the parts: ``1 - p_alive`` (the purchase rhythm
alone), the model with only its rhythm features (``rhythm_only``) and with only its experience
signals (``experience_only``), each with the intercept. Customers with no event before the
cutoff have no profile and are not scored.

Metrics, per setting: ROC AUC (Mann-Whitney, ties counted half) of the score, of each of
those parts alone; precision, recall and lift of the ``high``
tier and of ``medium`` or ``high``; base rate and counts. A precision is ``null`` when its tier
is empty, an AUC when the labels are all alike. Nothing here tunes the scorer: ``--fit``
learns from the past exactly as a user would.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from agents.churn_model import FEATURES, reason_of, sigmoid
from agents.config import CHURN_INTERCEPT, DAY_MS, KpiConfig
from pipeline.churn_fit import fit_lines
from pipeline.compute import OfflineRun
from pipeline.generator import DEFAULT_START, GeneratorConfig, TrafficGenerator
from pipeline.replay import open_lines, route
from schemas.errors import ConfigurationError
from schemas.events import SOURCE_KINDS
from schemas.validate import EventValidator, Rejection

DEFAULT_OUT: Final = Path(__file__).parent / "results" / "churn_eval.json"
SETTINGS: Final = ("default", "fitted")
_KIND_TOPICS: Final = {kind: kind for kind in SOURCE_KINDS}
_PROGRESS_EVERY: Final = 25_000

Progress = Callable[[str], None]


def roc_auc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """ROC AUC as the Mann-Whitney statistic: the probability that a random positive scores
    above a random negative, ties counted half. Raises ValueError without both classes."""
    values = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(labels, dtype=bool)
    if values.shape != positive.shape or values.ndim != 1:
        raise ValueError("scores and labels must be two sequences of the same length")
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("the AUC needs at least one positive and one negative")
    # average ranks (1-based): a run of equal scores shares the mean of the ranks it spans
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    below = np.cumsum(counts) - counts
    ranks = (below + (counts + 1) / 2.0)[inverse]
    u = float(ranks[positive].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


@dataclass(frozen=True, slots=True)
class Split:
    """The traffic cut at the cutoff: the lines the scorer may see, and the labels."""

    past: list[bytes]
    #: customer -> reason ("" if none) of their customer.churned within the horizon
    churned: dict[str, str]
    lines: int
    future_lines: int


def split(lines: Iterable[bytes], cutoff_ms: int, end_ms: int, validator: EventValidator) -> Split:
    """Events at or before ``cutoff_ms`` (in stream order) are the past; invalid lines belong
    to the past until the first event after it. Labels: churns in (cutoff, end]."""
    past: list[bytes] = []
    churned: dict[str, str] = {}
    count = future = 0
    after = False
    for line in lines:
        count += 1
        kind, _ = route(line, _KIND_TOPICS, SOURCE_KINDS[0])
        event = validator.validate(line, kind)
        if isinstance(event, Rejection):
            if not after:
                past.append(line)
            continue
        if event.occurred_at_ms <= cutoff_ms:
            past.append(line)
            continue
        after = True
        future += 1
        if event.type == "customer.churned" and event.occurred_at_ms <= end_ms:
            reason = event.payload.get("reason")  # free text, not on Event
            churned.setdefault(event.customer_id, reason if isinstance(reason, str) else "")
    return Split(past, churned, count, future)


@dataclass(frozen=True, slots=True)
class Scored:
    """Every eligible customer's score, tier and parts at the cutoff, and their label."""

    customer_ids: list[str]
    score: npt.NDArray[np.float64]
    experience: npt.NDArray[np.float64]
    rhythm: npt.NDArray[np.float64]
    inactive: npt.NDArray[np.float64]
    tier: list[str]
    label: npt.NDArray[np.bool_]
    #: the reason of each churner's customer.churned ("" without one), None for the others
    reason: list[str | None]
    profiles: int  # customers with a profile in the churn table
    churned_before: int  # of them, churned at or before the cutoff


def score_at_cutoff(
    past: Sequence[bytes],
    churned: dict[str, str],
    cutoff_ms: int,
    config: KpiConfig,
    validator: EventValidator,
    progress: Progress,
) -> Scored:
    """Run the worker's logic over the past and read every live customer's score at cutoff."""
    run = OfflineRun(config, validator)
    for number, line in enumerate(past, 1):
        run.feed(line)
        if number % _PROGRESS_EVERY == 0:
            progress(f"  fed {number:,} of {len(past):,} lines")
    if run.watermark_ms is None or run.watermark_ms < cutoff_ms:
        run.watermark_ms = cutoff_ms  # the worker's watermark reaching the cutoff
    run.settle()
    processor = run.families.churn
    family = processor.churn
    table = run.tables.get(family.name, {})
    ids: list[str] = []
    scores: list[float] = []
    experience: list[float] = []
    rhythm: list[float] = []
    inactive: list[float] = []
    tiers: list[str] = []
    gone = 0
    for customer_id in sorted(table):
        state = processor.load(table[customer_id])
        if state.churned_at_ms is not None:
            gone += 1
            continue
        if state.scored_at_ms is None:
            continue
        family.rescore(state, cutoff_ms)  # a copy: the table keeps the worker's state
        assert state.scored_at_ms is not None and state.tier is not None
        p, values = family.features(state, state.scored_at_ms)
        ids.append(customer_id)
        scores.append(state.score)
        experience.append(_part(family.weights, values, rhythm=False))
        rhythm.append(_part(family.weights, values, rhythm=True))
        inactive.append(1.0 - p)
        tiers.append(state.tier)
    return Scored(
        customer_ids=ids,
        score=np.array(scores, dtype=np.float64),
        experience=np.array(experience, dtype=np.float64),
        rhythm=np.array(rhythm, dtype=np.float64),
        inactive=np.array(inactive, dtype=np.float64),
        tier=tiers,
        label=np.array([c in churned for c in ids], dtype=bool),
        reason=[churned.get(c) for c in ids],
        profiles=len(table),
        churned_before=gone,
    )


def _part(weights: dict[str, float], values: dict[str, float], *, rhythm: bool) -> float:
    """The model with only its rhythm features (or only its experience signals)."""
    z = weights[CHURN_INTERCEPT] + sum(
        weights[name] * values[name]
        for name in FEATURES
        if (reason_of(name) == "inactive") == rhythm
    )
    return sigmoid(z)


def _auc_or_none(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_]) -> float | None:
    try:
        return roc_auc(scores, labels)
    except ValueError:
        return None


def _flagged(flag: npt.NDArray[np.bool_], label: npt.NDArray[np.bool_]) -> dict[str, Any]:
    """How a flagged group (a tier) does: size, share, precision, recall, lift."""
    flagged = int(flag.sum())
    hits = int((flag & label).sum())
    positives = int(label.sum())
    base = positives / label.size if label.size else 0.0
    precision = hits / flagged if flagged else None
    return {
        "flagged": flagged,
        "share": flagged / label.size if label.size else 0.0,
        "true_positives": hits,
        "precision": precision,
        "recall": hits / positives if positives else None,
        "lift": precision / base if precision is not None and base > 0 else None,
    }


def _aucs(scored: Scored, keep: npt.NDArray[np.bool_]) -> dict[str, float | None]:
    label = scored.label[keep]
    return {
        "score": _auc_or_none(scored.score[keep], label),
        "experience_only": _auc_or_none(scored.experience[keep], label),
        "rhythm_only": _auc_or_none(scored.rhythm[keep], label),
        "inactive_only": _auc_or_none(scored.inactive[keep], label),
    }


def metrics(scored: Scored) -> dict[str, Any]:
    """AUCs of the score and its parts, the tiers' precision and recall, base rate, counts.

    ``auc_by_reason``: the AUCs of the churners of one reason group against all non-churners.
    In the generator, ``service`` is churn after bad experiences (plus a fifth of the rare
    churns of the base hazard); ``other`` is mostly dropouts closing their account.
    """
    label = scored.label
    tiers = np.array(scored.tier, dtype=object)
    positives = int(label.sum())
    service = np.array([reason == "service" for reason in scored.reason], dtype=bool)
    other = label & ~service
    return {
        "customers_scored": int(label.size),
        "churners": positives,
        "base_rate": positives / label.size if label.size else 0.0,
        "auc": _aucs(scored, np.ones(label.size, dtype=bool)),
        "auc_by_reason": {
            "service": {"churners": int(service.sum()), **_aucs(scored, service | ~label)},
            "other": {"churners": int(other.sum()), **_aucs(scored, other | ~label)},
        },
        "tiers": {tier: int((tiers == tier).sum()) for tier in ("low", "medium", "high")},
        "high": _flagged(tiers == "high", label),
        "medium_or_high": _flagged(tiers != "low", label),
        "profiles": scored.profiles,
        "churned_before_cutoff": scored.churned_before,
    }


@dataclass(frozen=True, slots=True)
class EvalOptions:
    customers: int = 5000
    days: float = 150.0
    cutoff_day: float = 120.0
    horizon_days: float = 30.0
    seeds: tuple[int, ...] = (7,)
    fit: bool = False
    start: datetime = DEFAULT_START
    input: str | None = None
    #: None: the generator's default (what ``cxpulse generate --per-customer`` makes)
    dropout_close_share: float | None = None

    def __post_init__(self) -> None:
        if not (self.cutoff_day > 0 and self.horizon_days > 0):
            raise ValueError("--cutoff-day and --horizon-days must be more than 0")
        if self.input is None and self.cutoff_day + self.horizon_days > self.days:
            raise ValueError(
                f"the horizon must end within the traffic: --cutoff-day {self.cutoff_day:g} + "
                f"--horizon-days {self.horizon_days:g} > --days {self.days:g}"
            )
        if self.input is not None and len(self.seeds) != 1:
            raise ValueError("--input is one stream: give at most one --seed")
        if self.input is not None and self.dropout_close_share is not None:
            raise ValueError("--dropout-close-share is for generated traffic, not --input")

    def generator(self, seed: int) -> GeneratorConfig:
        """The same traffic as ``cxpulse generate --per-customer --customers N --days D
        --seed S --start START``."""
        config = GeneratorConfig(
            customers=self.customers,
            rate=None,
            duration_s=self.days * 86400,
            seed=seed,
            start=self.start,
        )
        if self.dropout_close_share is None:
            return config
        return dataclasses.replace(config, dropout_close_share=self.dropout_close_share)


def evaluate_seed(
    options: EvalOptions, seed: int, validator: EventValidator, progress: Progress
) -> list[dict[str, Any]]:
    """One row per setting for one stream (generated with ``seed``, or ``options.input``)."""
    began = time.perf_counter()
    start_ms = round(options.start.timestamp() * 1000)
    cutoff_ms = start_ms + round(options.cutoff_day * DAY_MS)
    end_ms = cutoff_ms + round(options.horizon_days * DAY_MS)
    if options.input is not None:
        source: Iterable[bytes] = open_lines(options.input)
        progress(f"reading {options.input}")
    else:
        source = (message.value for message in TrafficGenerator(options.generator(seed)))
        progress(f"seed {seed}: generating {options.customers:,} customers, {options.days:g} days")
    cut = split(source, cutoff_ms, end_ms, validator)
    prepared = time.perf_counter() - began
    progress(
        f"  {cut.lines:,} lines ({len(cut.past):,} up to the cutoff), {len(cut.churned):,} "
        f"churns in the horizon, {prepared:.1f} s"
    )
    settings: list[tuple[str, KpiConfig, dict[str, Any] | None]] = [("default", KpiConfig(), None)]
    if options.fit:
        horizon_ms = round(options.horizon_days * DAY_MS)
        progress(
            f"  fitting on the past: BG/NBD, then the weights on churns in the last "
            f"{options.horizon_days:g} days before the cutoff"
        )
        fitted = fit_lines(cut.past, cutoff_ms, validator, horizon_ms=horizon_ms)
        result = fitted.result
        params = result.bgnbd.params
        bgnbd = (params.r, params.alpha, params.a, params.b)
        progress(
            f"  BG/NBD fitted on {fitted.orders:,} orders up to the cutoff: r={params.r:.3f} "
            f"alpha={params.alpha:.3f} a={params.a:.3f} b={params.b:.3f}"
        )
        info: dict[str, Any] = {"orders": fitted.orders, "customers": result.customers}
        config = dataclasses.replace(KpiConfig(), bgnbd=bgnbd)
        if result.weights is None:
            progress(f"  {result.note}")
            info["weights"] = None
        else:
            weights = result.weights
            progress(
                f"  weights fitted on {weights.customers:,} customers as of cutoff - "
                f"{options.horizon_days:g} d ({weights.churners:,} churned by the cutoff)"
            )
            info["weights"] = {"customers": weights.customers, "churners": weights.churners}
            config = dataclasses.replace(config, churn_weights=weights.weights)
        settings.append(("fitted", config, info))
    rows = []
    for name, config, fit_info in settings:
        progress(f"  scoring at the cutoff with the {name} parameters")
        t0 = time.perf_counter()
        scored = score_at_cutoff(cut.past, cut.churned, cutoff_ms, config, validator, progress)
        reasons = Counter(reason or "(none)" for reason in scored.reason if reason is not None)
        rows.append(
            {
                "seed": seed if options.input is None else None,
                "setting": name,
                "bgnbd": list(config.bgnbd),
                "weights": dict(config.churn_weights),
                "fit": fit_info,
                **metrics(scored),
                "churner_reasons": dict(sorted(reasons.items())),
                "lines": cut.lines,
                "lines_up_to_cutoff": len(cut.past),
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Mean over seeds, per setting, of the headline numbers."""
    paths = {
        "auc_score": ("auc", "score"),
        "auc_experience_only": ("auc", "experience_only"),
        "auc_rhythm_only": ("auc", "rhythm_only"),
        "auc_inactive_only": ("auc", "inactive_only"),
        "high_precision": ("high", "precision"),
        "high_recall": ("high", "recall"),
        "medium_or_high_precision": ("medium_or_high", "precision"),
        "medium_or_high_recall": ("medium_or_high", "recall"),
    }
    summary: dict[str, dict[str, float | None]] = {}
    for setting in SETTINGS:
        chosen = [row for row in rows if row["setting"] == setting]
        if not chosen:
            continue
        means: dict[str, float | None] = {
            "base_rate": float(np.mean([row["base_rate"] for row in chosen]))
        }
        for key, (group, field) in paths.items():
            values = [row[group][field] for row in chosen]
            numbers = [v for v in values if v is not None]
            means[key] = float(np.mean(numbers)) if len(numbers) == len(values) else None
        summary[setting] = means
    return summary


def run(options: EvalOptions, progress: Progress) -> dict[str, Any]:
    """The whole evaluation as one JSON-ready document."""
    validator = EventValidator(max_future_ms=None)  # synthetic traffic may lie in the future
    began = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for seed in options.seeds:
        rows += evaluate_seed(options, seed, validator, progress)
    return {
        "options": {
            "customers": options.customers if options.input is None else None,
            "days": options.days if options.input is None else None,
            "cutoff_day": options.cutoff_day,
            "horizon_days": options.horizon_days,
            "seeds": list(options.seeds) if options.input is None else [],
            "fit": options.fit,
            "start": options.start.isoformat().replace("+00:00", "Z"),
            "input": options.input,
            "dropout_close_share": (
                options.generator(0).dropout_close_share if options.input is None else None
            ),
        },
        "runs": rows,
        "summary": summarize(rows),
        "seconds": round(time.perf_counter() - began, 1),
    }


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(document: dict[str, Any]) -> str:
    """One line per seed and setting."""
    header = (
        f"{'seed':>5} {'setting':<8} {'n':>6} {'base':>6} {'AUC':>6} {'exp':>6} {'rhy':>6} "
        f"{'inact':>6} {'high':>6} {'prec':>6} {'rec':>6} {'med+':>6} {'prec':>6} {'rec':>6}"
    )
    lines = [
        "churn score vs customer.churned in the horizon (AUC: score, the model with only its "
        "experience signals, with only its rhythm features, 1 - p_alive alone)",
        header,
    ]
    for row in document["runs"]:
        high, medium, auc = row["high"], row["medium_or_high"], row["auc"]
        seed = "-" if row["seed"] is None else str(row["seed"])
        lines.append(
            f"{seed:>5} {row['setting']:<8} {row['customers_scored']:>6} "
            f"{_num(row['base_rate']):>6} {_num(auc['score']):>6} "
            f"{_num(auc['experience_only']):>6} {_num(auc['rhythm_only']):>6} "
            f"{_num(auc['inactive_only']):>6} "
            f"{high['flagged']:>6} {_num(high['precision']):>6} {_num(high['recall']):>6} "
            f"{medium['flagged']:>6} {_num(medium['precision']):>6} {_num(medium['recall']):>6}"
        )
    for setting, means in document["summary"].items():
        lines.append(
            f"{'mean':>5} {setting:<8} {'':>6} {_num(means['base_rate']):>6} "
            f"{_num(means['auc_score']):>6} {_num(means['auc_experience_only']):>6} "
            f"{_num(means['auc_rhythm_only']):>6} {_num(means['auc_inactive_only']):>6} "
            f"{'':>6} {_num(means['high_precision']):>6} {_num(means['high_recall']):>6} "
            f"{'':>6} {_num(means['medium_or_high_precision']):>6} "
            f"{_num(means['medium_or_high_recall']):>6}"
        )
    lines.append("")
    lines.append("AUC by churn reason, each against all non-churners (score / exp / rhy / inact):")
    for row in document["runs"]:
        seed = "-" if row["seed"] is None else str(row["seed"])
        parts = []
        for group, aucs in row["auc_by_reason"].items():
            parts.append(
                f"{group} ({aucs['churners']}): {_num(aucs['score'])} / "
                f"{_num(aucs['experience_only'])} / {_num(aucs['rhythm_only'])} / "
                f"{_num(aucs['inactive_only'])}"
            )
        lines.append(f"{seed:>5} {row['setting']:<8} " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def _parse_start(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"--start {value!r} needs an offset, e.g. Z")
    return moment


def parse_args(argv: Sequence[str] | None = None) -> tuple[EvalOptions, Path]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.churn_eval",
        description="How well the online churn score ranks future churners (held-out period).",
    )
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--days", type=float, default=150.0, help="days of traffic generated")
    parser.add_argument("--cutoff-day", type=float, default=120.0, help="scores as of this day")
    parser.add_argument("--horizon-days", type=float, default=30.0, help="label window")
    parser.add_argument("--seed", type=int, nargs="+", default=[7], help="one or more seeds")
    parser.add_argument(
        "--fit", action="store_true", help="also score with BG/NBD fitted up to the cutoff"
    )
    parser.add_argument(
        "--start",
        default=DEFAULT_START.isoformat().replace("+00:00", "Z"),
        help="event time of the traffic's start (RFC 3339); the cutoff day counts from it",
    )
    parser.add_argument(
        "--input", help="evaluate this JSON Lines file (cxpulse generate --per-customer -o)"
    )
    parser.add_argument(
        "--dropout-close-share",
        type=float,
        help="share of the silent dropouts who later close their account (default: the "
        "generator's, as cxpulse generate makes it; 0: dropouts never churn explicitly)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results")
    args = parser.parse_args(argv)
    try:
        options = EvalOptions(
            customers=args.customers,
            days=args.days,
            cutoff_day=args.cutoff_day,
            horizon_days=args.horizon_days,
            seeds=tuple(args.seed),
            fit=args.fit,
            start=_parse_start(args.start),
            input=args.input,
            dropout_close_share=args.dropout_close_share,
        )
        if options.input is None:
            options.generator(options.seeds[0])  # a bad generator setting fails here
    except (ValueError, ConfigurationError) as exc:
        parser.error(str(exc))
    return options, args.out


def main(argv: Sequence[str] | None = None) -> int:
    options, out = parse_args(argv)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    document = run(options, progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.write(format_table(document))
    progress(f"wrote {out} ({document['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
