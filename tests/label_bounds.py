"""The label values a Prometheus exposition of CX Pulse may contain (contract section 4: bounded
enums only), and a checker that lists every label name or value outside them.

Used on `cxpulse compute` output (unit) and on a live worker's `/metrics` (integration), so
hostile input can be shown to add no series outside these fixed sets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agents.config import REFUND_BUCKETS, RESOLUTION_BUCKETS, KpiConfig
from pipeline.metrics import build_stream_metrics
from schemas.events import CHANNELS, EVENT_TYPES, RETURN_REASONS, SURVEY_CATEGORIES
from schemas.validate import REJECT_REASONS

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


def allowed_values(
    config: KpiConfig,
    *,
    partitions: int = 0,
    topics: Iterable[str] = (),
    agents: Iterable[str] = (),
    tables: Iterable[str] = (),
) -> dict[str, frozenset[str]]:
    """Label name -> every value it may take (`family:label` overrides the plain label)."""
    bounds = {*config.frt_buckets, *RESOLUTION_BUCKETS, *REFUND_BUCKETS, *_stream_bounds()}
    return {
        "channel": frozenset(CHANNELS),
        "type": frozenset(EVENT_TYPES),
        "survey": frozenset(SURVEY_CATEGORIES),
        "category": frozenset(c for cs in SURVEY_CATEGORIES.values() for c in cs),
        "cx_events_rejected_total:reason": frozenset(REJECT_REASONS),
        "cx_returns_total:reason": frozenset(RETURN_REASONS),
        "tier": frozenset({"low", "medium", "high"}),
        "outcome": frozenset({"resolved_first_contact", "not_first_contact", "on_time", "late"}),
        "currency": frozenset({*config.currencies, "other"}),
        "partition": frozenset(str(p) for p in range(partitions)),
        "topic": frozenset(topics),
        "agent": frozenset(agents),
        "table": frozenset(tables),
        # histogram bounds: the configured ones only (compared as numbers, "+Inf" included)
        "le": frozenset({*(repr(float(b)) for b in bounds if math.isfinite(b)), "inf"}),
    }


def _stream_bounds() -> set[float]:
    """The bucket bounds of the worker's own histograms (lag, commit latency)."""
    registry = CollectorRegistry()
    build_stream_metrics(registry)
    return {
        float(sample.labels["le"])
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
        if "le" in sample.labels
    }


def series(text: str, prefixes: tuple[str, ...] = ("cx_", "cxpulse_")) -> dict[SeriesKey, float]:
    """Every sample of the exposition whose name starts with one of `prefixes`."""
    out: dict[SeriesKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(prefixes):
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def violations(
    samples: Mapping[SeriesKey, float], allowed: Mapping[str, frozenset[str]]
) -> list[str]:
    """`name{label="value"}` for every label value outside the fixed sets (empty: all bounded)."""
    found = []
    for name, labels in samples:
        family = name
        for suffix in ("_bucket", "_count", "_sum", "_created"):
            family = family.removesuffix(suffix)
        for label, value in labels:
            values = allowed.get(f"{family}:{label}", allowed.get(label))
            if values is None or _shown(label, value) not in values:
                found.append(f"{name}{{{label}={value!r}}}")
    return found


def _shown(label: str, value: str) -> str:
    if label != "le":
        return value
    try:
        return repr(float(value))
    except ValueError:
        return value
