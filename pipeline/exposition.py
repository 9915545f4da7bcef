"""Turn summed ledger totals into Prometheus metric families (contract section 4).

In: per-partition totals (`metric|label|...` -> integer, as kept by the agents' ledgers), the
watermark and the oldest unanswered conversation per channel. Out: `Metric` families for a
custom collector. Used by the worker (with a `partition` label, so a series moves with its
partition) and by `cxpulse compute` (no partition label), so both print the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from agents.config import REFUND_BUCKETS, RESOLUTION_BUCKETS
from agents.ledger import format_bound, split_key
from schemas.events import CHANNELS, MICROS
from schemas.validate import REJECT_REASONS


@dataclass(frozen=True, slots=True)
class Series:
    """How one ledger metric is exported."""

    name: str
    kind: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    help: str
    divisor: int = 1  # ledger unit -> base unit (integers divided once: no float drift)


CONVERSATION_CHANNELS: Final = ("chat", "email", "phone", "social", "web")

SERIES: Final[dict[str, Series]] = {
    s.name: s
    for s in (
        Series(
            "cx_events_total",
            "counter",
            ("channel", "type"),
            "Valid events applied, once per event_id.",
        ),
        Series(
            "cx_events_duplicate_total",
            "counter",
            (),
            "Events whose event_id was already seen within the dedup horizon.",
        ),
        Series(
            "cx_events_rejected_total",
            "counter",
            ("reason",),
            "Messages sent to the dead-letter topic, by reason.",
        ),
        Series(
            "cx_events_late_total",
            "counter",
            ("channel",),
            "Events older than the watermark when they arrived; still applied.",
        ),
        Series(
            "cx_conversations_opened_total", "counter", ("channel",), "conversation.opened events."
        ),
        Series(
            "cx_conversations_resolved_total",
            "counter",
            ("channel",),
            "conversation.resolved events (a conversation resolved twice counts twice).",
        ),
        Series(
            "cx_conversations_reopened_total",
            "counter",
            ("channel",),
            "conversation.reopened events.",
        ),
        Series(
            "cx_first_contact_resolutions_total",
            "counter",
            ("channel", "outcome"),
            "Resolved conversations whose first-contact-resolution outcome is settled.",
        ),
        Series(
            "cx_first_response_breaches_total",
            "counter",
            ("channel",),
            "Conversations whose wait for a first agent reply passed the channel target.",
        ),
        Series(
            "cx_backlog_conversations",
            "gauge",
            ("channel",),
            "Conversations open now: opened or reopened and not resolved since.",
        ),
        Series(
            "cx_unanswered_conversations",
            "gauge",
            ("channel",),
            "Open conversations with no agent reply yet.",
        ),
        Series(
            "cx_survey_responses_total",
            "counter",
            ("survey", "channel", "category"),
            "Survey answers by survey kind, channel surveyed and score category.",
        ),
        Series(
            "cx_survey_score_total",
            "counter",
            ("survey", "channel"),
            "Sum of survey scores, so a mean score is a ratio of rates.",
        ),
        Series("cx_orders_total", "counter", ("channel",), "Orders placed."),
        Series(
            "cx_order_value_total:micros",
            "counter",
            ("channel", "currency"),
            "Value of orders placed, in currency units.",
            MICROS,
        ),
        Series("cx_returns_total", "counter", ("reason",), "Returns requested, by reason."),
        Series(
            "cx_customers_by_risk_tier",
            "gauge",
            ("tier",),
            "Customers by current churn-risk tier (each customer in exactly one tier).",
        ),
        Series(
            "cx_churn_signals_total",
            "counter",
            ("tier",),
            "Churn-risk tier changes published on cx.churn, by the new tier.",
        ),
        Series(
            "cx_deliveries_total",
            "counter",
            ("outcome",),
            "Orders delivered, on time or after the promised time.",
        ),
        Series(
            "cx_churned_customers_total",
            "counter",
            (),
            "customer.churned events: customers who cancelled or closed their account.",
        ),
        Series(
            "cx_first_response_seconds",
            "histogram",
            ("channel",),
            "First agent reply minus conversation opened, event time.",
            1000,
        ),
        Series(
            "cx_resolution_seconds",
            "histogram",
            ("channel",),
            "First resolution minus conversation opened, event time.",
            1000,
        ),
        Series(
            "cx_refund_seconds",
            "histogram",
            (),
            "Refund issued minus return requested, event time.",
            1000,
        ),
    )
}

#: Label values exported as zero before anything happened, so dashboards and alerts see a 0.
PREINITIALISED: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    "cx_events_rejected_total": tuple((r,) for r in REJECT_REASONS),
    "cx_events_late_total": tuple((c,) for c in CHANNELS),
    "cx_events_duplicate_total": ((),),
    "cx_churned_customers_total": ((),),
    "cx_customers_by_risk_tier": (("low",), ("medium",), ("high",)),
    "cx_churn_signals_total": (("medium",), ("high",), ("low",)),
    **{
        name: tuple((c,) for c in CONVERSATION_CHANNELS)
        for name in (
            "cx_conversations_opened_total",
            "cx_conversations_resolved_total",
            "cx_conversations_reopened_total",
            "cx_first_response_breaches_total",
            "cx_backlog_conversations",
            "cx_unanswered_conversations",
        )
    },
}


def histogram_bounds(name: str, frt_buckets: tuple[float, ...]) -> tuple[float, ...]:
    if name == "cx_first_response_seconds":
        return frt_buckets
    return RESOLUTION_BUCKETS if name == "cx_resolution_seconds" else REFUND_BUCKETS


Family = CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily


def _family(series: Series, extra_labels: tuple[str, ...]) -> Family:
    name = series.name.split(":")[0]
    labels = [*series.labels, *extra_labels]
    if series.kind == "counter":
        return CounterMetricFamily(name, series.help, labels=labels)
    if series.kind == "gauge":
        return GaugeMetricFamily(name, series.help, labels=labels)
    return HistogramMetricFamily(name, series.help, labels=labels)


def build_families(
    totals_by_partition: Mapping[int | None, Mapping[str, int]],
    frt_buckets: tuple[float, ...],
) -> list[Metric]:
    """Metric families for the given per-partition totals (partition None: no such label)."""
    families: dict[str, Family] = {}
    extra = () if None in totals_by_partition else ("partition",)
    for partition, totals in totals_by_partition.items():
        suffix = () if partition is None else (str(partition),)
        scalars: dict[tuple[str, tuple[str, ...]], float] = {}
        histograms: dict[tuple[str, tuple[str, ...]], dict[str, int]] = {}
        sums: dict[tuple[str, tuple[str, ...]], int] = {}
        for name, label_sets in PREINITIALISED.items():
            for labels in label_sets:
                scalars[(name, labels)] = 0.0
        for key, value in totals.items():
            metric, labels = split_key(key)
            if metric.endswith(":sum_ms"):
                sums[(metric.removesuffix(":sum_ms"), labels)] = value
            elif SERIES[metric].kind == "histogram":
                histograms.setdefault((metric, labels[:-1]), {})[labels[-1]] = value
            else:
                scalars[(metric, labels)] = value / SERIES[metric].divisor
        for (metric, labels), amount in sorted(scalars.items()):
            scalar = families.setdefault(metric, _family(SERIES[metric], extra))
            assert not isinstance(scalar, HistogramMetricFamily)
            scalar.add_metric([*labels, *suffix], amount)
        for (metric, labels), counts in sorted(histograms.items()):
            series = SERIES[metric]
            histogram = families.setdefault(metric, _family(series, extra))
            assert isinstance(histogram, HistogramMetricFamily)
            bounds = histogram_bounds(metric, frt_buckets)
            histogram.add_metric(
                [*labels, *suffix],
                buckets=list(_cumulative(bounds, counts)),
                sum_value=sums.get((metric, labels), 0) / series.divisor,
            )
    return [families[name] for name in sorted(families)]


def _cumulative(
    bounds: tuple[float, ...], counts: Mapping[str, int]
) -> Iterable[tuple[str, float]]:
    """Cumulative buckets over the configured bounds and any bound a ledger still holds."""
    stored = {float(le) for le in counts if le != "+Inf"}
    running = 0
    for bound in sorted({*bounds, *stored}):
        le = format_bound(bound)
        running += counts.get(le, 0)
        yield (le, float(running))
    running += counts.get("+Inf", 0)
    yield ("+Inf", float(running))
