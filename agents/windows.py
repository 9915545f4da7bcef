"""Rolling event-time windows and KPI snapshots (contract sections 2 and 3, `cx.kpi`).

In: the windowed changes customers' ledgers remember (`[at_ms, key, value]`, samples under
`s|` keys), added to time buckets per partition; the watermark. Out: per channel and window
a `Partial` (counts, mergeable DDSketch quantile sketches, gauges) that partials of other
partitions and workers merge into, and the `cx.kpi` snapshot computed from a merged partial.

Windows are rolling over event time, never the wall clock: a window of W seconds at `as_of`
covers the buckets that start in `[E - W, E)`, where `E` is `as_of` floored to the window's
granularity (a minute up to 6 h windows, an hour beyond). Buckets are dropped once the
watermark has left them behind by the longest window plus the grace; a change for a dropped
bucket still counts in the totals but not in the windows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from ddsketch import DDSketch

from agents.config import KpiConfig, bucket_seconds
from agents.ledger import SAMPLE_PREFIX, split_key
from schemas.events import CHANNELS

RELATIVE_ACCURACY: Final = 0.01
SNAPSHOT_SCHEMA: Final = "cx.kpi/v1"
ALL: Final = "all"
SNAPSHOT_CHANNELS: Final = (*CHANNELS, ALL)
QUANTILES: Final = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
#: where the channel label sits in each windowed metric's ledger key (None: no channel)
_CHANNEL_AT: Final[dict[str, int | None]] = {
    "cx_events_total": 0,
    "cx_conversations_opened_total": 0,
    "cx_conversations_resolved_total": 0,
    "cx_conversations_reopened_total": 0,
    "cx_first_response_breaches_total": 0,
    "cx_first_contact_resolutions_total": 0,
    "cx_survey_responses_total": 1,
    "cx_survey_score_total": 1,
    "cx_orders_total": 0,
    "cx_order_value_total:micros": 0,
    "cx_first_response_seconds": 0,
    "cx_resolution_seconds": 0,
}
GAUGES: Final = ("cx_backlog_conversations", "cx_unanswered_conversations")


def window_name(window_s: int) -> str:
    """`1h`, `24h`, `7d`, `90m`: days from two days up, hours below (so 86400 s is `24h`)."""
    if window_s % 86400 == 0 and window_s >= 2 * 86400:
        return f"{window_s // 86400}d"
    for unit, size in (("h", 3600), ("m", 60)):
        if window_s % size == 0:
            return f"{window_s // size}{unit}"
    return f"{window_s}s"


def channel_of(key: str) -> str | None:
    """The channel a windowed ledger key belongs to, or None for channel-less series."""
    metric, labels = split_key(key.removeprefix(SAMPLE_PREFIX))
    position = _CHANNEL_AT.get(metric)
    return None if position is None else labels[position]


def new_sketch() -> DDSketch:
    return DDSketch(relative_accuracy=RELATIVE_ACCURACY)


@dataclass(slots=True)
class Partial:
    """Mergeable window aggregate: counts by ledger key, sketches by sample key, gauges."""

    counts: dict[str, int] = field(default_factory=dict)
    sketches: dict[str, DDSketch] = field(default_factory=dict)

    def add(self, key: str, value: int) -> None:
        if key.startswith(SAMPLE_PREFIX):
            sample_key = key.removeprefix(SAMPLE_PREFIX)
            sketch = self.sketches.get(sample_key)
            if sketch is None:
                sketch = self.sketches[sample_key] = new_sketch()
            sketch.add(value / 1000)
        else:
            self.counts[key] = self.counts.get(key, 0) + value

    def merge(self, other: Partial) -> None:
        for key, value in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + value
        for key, sketch in other.sketches.items():
            mine = self.sketches.get(key)
            if mine is None:
                mine = self.sketches[key] = new_sketch()
            mine.merge(sketch)

    def for_channel(self, channel: str) -> Partial:
        """The part of this aggregate that belongs to one channel (`all`: everything)."""
        if channel == ALL:
            return self
        return Partial(
            counts={k: v for k, v in self.counts.items() if channel_of(k) == channel},
            sketches={k: s for k, s in self.sketches.items() if channel_of(k) == channel},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "sketches": {key: _sketch_bins(s) for key, s in self.sketches.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Partial:
        return cls(
            counts=dict(data["counts"]),
            sketches={key: _sketch_from_bins(bins) for key, bins in data["sketches"].items()},
        )


def _sketch_bins(sketch: DDSketch) -> dict[str, Any]:
    """The sketch's bucket counts: enough to rebuild every quantile exactly elsewhere."""
    store = sketch._store
    bins = {str(index + store.offset): count for index, count in enumerate(store.bins) if count}
    return {"bins": bins, "zero": sketch._zero_count}


def _sketch_from_bins(data: Mapping[str, Any]) -> DDSketch:
    sketch = new_sketch()
    for key, count in data["bins"].items():
        sketch.add(sketch._mapping.value(int(key)), count)
    if data["zero"]:
        sketch.add(0.0, data["zero"])
    return sketch


@dataclass(slots=True)
class WindowView:
    """Time buckets of one partition, at every granularity the configured windows use."""

    config: KpiConfig
    buckets: dict[int, dict[int, Partial]] = field(init=False)
    horizon_ms: dict[int, int] = field(init=False)

    def __post_init__(self) -> None:
        granularities = {bucket_seconds(w) for w in self.config.windows_s}
        self.buckets = {g: {} for g in granularities}
        self.horizon_ms = dict.fromkeys(granularities, -(2**62))

    def add_entries(self, entries: Iterable[list[Any]]) -> None:
        for at_ms, key, value in entries:
            for g, buckets in self.buckets.items():
                size = g * 1000
                start = at_ms // size * size
                if start + size <= self.horizon_ms[g]:
                    continue  # too late for every window of this granularity
                bucket = buckets.get(start)
                if bucket is None:
                    bucket = buckets[start] = Partial()
                bucket.add(key, value)

    def retained_from_ms(self) -> int:
        """Changes older than this can reach no window any more (watermark-driven)."""
        return min(self.horizon_ms.values())

    def expire(self, watermark_ms: int) -> None:
        """Drop buckets no window can reach any more (longest window + grace behind)."""
        for g, buckets in self.buckets.items():
            longest = max(w for w in self.config.windows_s if bucket_seconds(w) == g)
            size = g * 1000
            end = watermark_ms // size * size
            horizon = end - longest * 1000 - self.config.window_grace_ms
            if horizon > self.horizon_ms[g]:
                self.horizon_ms[g] = horizon
                for start in [s for s in buckets if s + size <= horizon]:
                    del buckets[start]

    def partial(self, window_s: int, as_of_ms: int) -> Partial:
        g = bucket_seconds(window_s)
        size = g * 1000
        end = as_of_ms // size * size
        start = end - window_s * 1000
        merged = Partial()
        for bucket_start, bucket in self.buckets[g].items():
            if start <= bucket_start < end:
                merged.merge(bucket)
        return merged


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def _sum(counts: Mapping[str, int], metric: str, **labels: str) -> int:
    """Sum of the counts of one metric whose labels match (position-wise, by name)."""
    positions = {
        "cx_survey_responses_total": ("survey", "channel", "category"),
        "cx_survey_score_total": ("survey", "channel"),
        "cx_first_contact_resolutions_total": ("channel", "outcome"),
        "cx_returns_total": ("reason",),
        "cx_deliveries_total": ("outcome",),
        "cx_events_total": ("channel", "type"),
    }.get(metric, ("channel",))
    total = 0
    for key, value in counts.items():
        name, values = split_key(key)
        if name != metric:
            continue
        named = dict(zip(positions, values, strict=False))
        if all(named.get(k) == v for k, v in labels.items()):
            total += value
    return total


def _quantiles(sketch: DDSketch | None) -> dict[str, Any]:
    if sketch is None or sketch.count == 0:
        return {"count": 0, **{name: None for name, _ in QUANTILES}}
    values = {name: sketch.get_quantile_value(q) for name, q in QUANTILES}
    return {
        "count": int(sketch.count),
        **{name: None if v is None else round(v, 3) for name, v in values.items()},
    }


def _merged_sketch(partial: Partial, metric: str) -> DDSketch | None:
    found = [s for k, s in partial.sketches.items() if split_key(k)[0] == metric]
    if not found:
        return None
    merged = new_sketch()
    for sketch in found:
        merged.merge(sketch)
    return merged


def snapshot(
    channel: str,
    window_s: int,
    as_of_ms: int,
    partial: Partial,
    gauges: Mapping[str, int],
    partitions: int,
) -> dict[str, Any]:
    """The `cx.kpi` value (JSON Schema: schemas/json/cx.kpi.schema.json)."""
    c = partial.counts
    promoters = _sum(c, "cx_survey_responses_total", survey="nps", category="promoter")
    passives = _sum(c, "cx_survey_responses_total", survey="nps", category="passive")
    detractors = _sum(c, "cx_survey_responses_total", survey="nps", category="detractor")
    nps_n = promoters + passives + detractors
    csat_n = _sum(c, "cx_survey_responses_total", survey="csat")
    ces_n = _sum(c, "cx_survey_responses_total", survey="ces")
    fcr_yes = _sum(c, "cx_first_contact_resolutions_total", outcome="resolved_first_contact")
    fcr_no = _sum(c, "cx_first_contact_resolutions_total", outcome="not_first_contact")
    orders = _sum(c, "cx_orders_total")
    returns = _sum(c, "cx_returns_total") if channel == ALL else None
    nps = _ratio(100 * (promoters - detractors), nps_n)
    return {
        "schema": SNAPSHOT_SCHEMA,
        "channel": channel,
        "window": window_name(window_s),
        "window_seconds": window_s,
        "as_of": datetime.fromtimestamp(as_of_ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "as_of_ms": as_of_ms,
        "events": _sum(c, "cx_events_total"),
        "conversations": {
            "opened": _sum(c, "cx_conversations_opened_total"),
            "resolved": _sum(c, "cx_conversations_resolved_total"),
            "reopened": _sum(c, "cx_conversations_reopened_total"),
            "first_response_breaches": _sum(c, "cx_first_response_breaches_total"),
        },
        "first_response_seconds": _quantiles(_merged_sketch(partial, "cx_first_response_seconds")),
        "resolution_seconds": _quantiles(_merged_sketch(partial, "cx_resolution_seconds")),
        "fcr": {
            "resolved_first_contact": fcr_yes,
            "not_first_contact": fcr_no,
            "rate": _ratio(fcr_yes, fcr_yes + fcr_no),
        },
        "nps": {
            "responses": nps_n,
            "promoters": promoters,
            "passives": passives,
            "detractors": detractors,
            "score": None if nps is None else round(nps, 6),
        },
        "csat": {
            "responses": csat_n,
            "satisfied_share": _ratio(
                _sum(c, "cx_survey_responses_total", survey="csat", category="satisfied"), csat_n
            ),
        },
        "ces": {
            "responses": ces_n,
            "mean": _ratio(_sum(c, "cx_survey_score_total", survey="ces"), ces_n),
            "easy_share": _ratio(
                _sum(c, "cx_survey_responses_total", survey="ces", category="easy"), ces_n
            ),
        },
        "commerce": {
            "orders": orders,
            "returns": returns,
            "return_rate": None if returns is None else _ratio(returns, orders),
            "late_deliveries": _sum(c, "cx_deliveries_total", outcome="late")
            if channel == ALL
            else None,
            "deliveries": _sum(c, "cx_deliveries_total") if channel == ALL else None,
        },
        "backlog": _gauge(gauges, "cx_backlog_conversations", channel),
        "unanswered": _gauge(gauges, "cx_unanswered_conversations", channel),
        "partitions": partitions,
        "quantile_relative_accuracy": RELATIVE_ACCURACY,
    }


def _gauge(gauges: Mapping[str, int], metric: str, channel: str) -> int:
    return sum(
        value
        for key, value in gauges.items()
        if split_key(key)[0] == metric and (channel == ALL or split_key(key)[1][0] == channel)
    )


def gauges_of(totals: Mapping[str, int]) -> dict[str, int]:
    """The current gauge contributions in a partition's totals (backlog, unanswered)."""
    return {key: value for key, value in totals.items() if split_key(key)[0] in GAUGES}
