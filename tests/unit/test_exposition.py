"""pipeline/exposition.py: ledger totals to Prometheus families (contract section 4), asserted on
a fresh CollectorRegistry with get_sample_value.

FRT buckets (s): 5 10 15 30 60 120 300 600 900 1800 3600 7200 14400 28800 86400 172800, +Inf.
Refund buckets (s): 3600 21600 86400 172800 ... Ledger keys name a histogram bucket by its upper
bound, the `le` label value (`cx_first_response_seconds|chat|60`, overflow `...|+Inf`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from agents.config import KpiConfig
from pipeline.exposition import build_families

FRT_BUCKETS = KpiConfig().frt_buckets

PARTITION_0: dict[str, int] = {
    "cx_events_total|chat|conversation.opened": 3,
    "cx_events_duplicate_total": 1,
    "cx_orders_total|shop": 1,
    "cx_order_value_total:micros|shop|EUR": 19_990_000,
    "cx_backlog_conversations|chat": 2,
    "cx_first_contact_resolutions_total|chat|resolved_first_contact": 1,
    # one FRT of 45 s (le=60) and one of 200_000 s (le=+Inf)
    "cx_first_response_seconds|chat|60": 1,
    "cx_first_response_seconds|chat|+Inf": 1,
    "cx_first_response_seconds:sum_ms|chat": 200_045_000,
    # one refund after 2 days (le=172800)
    "cx_refund_seconds|172800": 1,
    "cx_refund_seconds:sum_ms": 172_800_000,
    "cx_survey_responses_total|nps|email|promoter": 2,
    "cx_survey_score_total|nps|email": 19,
}
PARTITION_1: dict[str, int] = {
    "cx_events_total|chat|conversation.opened": 2,
    "cx_order_value_total:micros|shop|EUR": 5_010_000,
    # two FRTs of 4 s each (le=5)
    "cx_first_response_seconds|chat|5": 2,
    "cx_first_response_seconds:sum_ms|chat": 8_000,
}


class TotalsCollector(Collector):
    def __init__(self, totals: Mapping[int | None, Mapping[str, int]]) -> None:
        self.totals = totals

    def collect(self) -> Iterable[Metric]:
        return build_families(self.totals, FRT_BUCKETS)


def registry_for(totals: Mapping[int | None, Mapping[str, int]]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(TotalsCollector(totals))
    return registry


@pytest.fixture
def registry() -> CollectorRegistry:
    return registry_for({0: PARTITION_0, 1: PARTITION_1})


def test_counters_carry_the_partition_label(registry: CollectorRegistry) -> None:
    opened = {"channel": "chat", "type": "conversation.opened"}
    assert registry.get_sample_value("cx_events_total", {**opened, "partition": "0"}) == 3.0
    assert registry.get_sample_value("cx_events_total", {**opened, "partition": "1"}) == 2.0
    assert registry.get_sample_value("cx_events_duplicate_total", {"partition": "0"}) == 1.0
    assert registry.get_sample_value("cx_orders_total", {"channel": "shop", "partition": "0"}) == 1
    assert (
        registry.get_sample_value(
            "cx_first_contact_resolutions_total",
            {"channel": "chat", "outcome": "resolved_first_contact", "partition": "0"},
        )
        == 1.0
    )
    survey = {"survey": "nps", "channel": "email", "partition": "0"}
    assert (
        registry.get_sample_value("cx_survey_responses_total", {**survey, "category": "promoter"})
        == 2.0
    )
    assert registry.get_sample_value("cx_survey_score_total", survey) == 19.0
    # no series without the partition label
    assert registry.get_sample_value("cx_events_total", opened) is None


def test_gauge_value(registry: CollectorRegistry) -> None:
    labels = {"channel": "chat", "partition": "0"}
    assert registry.get_sample_value("cx_backlog_conversations", labels) == 2.0


def test_order_value_is_scaled_from_micros_to_currency_units(registry: CollectorRegistry) -> None:
    eur = {"channel": "shop", "currency": "EUR"}
    # 19_990_000 micros = 19.99 EUR; 5_010_000 micros = 5.01 EUR
    assert registry.get_sample_value("cx_order_value_total", {**eur, "partition": "0"}) == 19.99
    assert registry.get_sample_value("cx_order_value_total", {**eur, "partition": "1"}) == 5.01


def test_scaling_is_exact_to_the_printed_digit() -> None:
    registry = registry_for(
        {
            None: {
                "cx_order_value_total:micros|shop|EUR": 100_000,  # 0.10 EUR
                "cx_refund_seconds|3600": 1,
                "cx_refund_seconds:sum_ms": 9,  # 0.009 s
            }
        }
    )
    eur = {"channel": "shop", "currency": "EUR"}
    assert registry.get_sample_value("cx_order_value_total", eur) == 0.1
    assert registry.get_sample_value("cx_refund_seconds_sum", {}) == 0.009
    text = generate_latest(registry).decode()
    assert 'cx_order_value_total{channel="shop",currency="EUR"} 0.1\n' in text
    assert "cx_refund_seconds_sum 0.009\n" in text


def test_every_cent_amount_exports_as_its_decimal() -> None:
    # 0.00 .. 99.99 in micros (cents * 10_000); one series per amount (label: the cents)
    totals = {
        f"cx_order_value_total:micros|shop|{cents}": cents * 10_000 for cents in range(10_000)
    }
    exported = {
        sample.labels["currency"]: sample.value
        for family in build_families({None: totals}, FRT_BUCKETS)
        if family.name == "cx_order_value"
        for sample in family.samples
    }
    assert len(exported) == 10_000
    for cents in range(10_000):
        written = f"{cents // 100}.{cents % 100:02d}"
        assert exported[str(cents)] == float(written), written


def test_histogram_buckets_are_cumulative(registry: CollectorRegistry) -> None:
    def bucket(le: str, partition: str = "0") -> float | None:
        labels = {"channel": "chat", "partition": partition, "le": le}
        return registry.get_sample_value("cx_first_response_seconds_bucket", labels)

    # partition 0: one in le=60, one in +Inf
    assert [bucket(le) for le in ("5", "10", "15", "30")] == [0.0, 0.0, 0.0, 0.0]
    assert [bucket(le) for le in ("60", "120", "3600", "172800")] == [1.0, 1.0, 1.0, 1.0]
    assert bucket("+Inf") == 2.0
    # partition 1: two in le=5, so every bucket holds both
    assert bucket("5", "1") == 2.0
    assert bucket("172800", "1") == 2.0
    assert bucket("+Inf", "1") == 2.0


def test_histogram_has_one_bucket_per_bound_plus_inf() -> None:
    registry = registry_for({0: PARTITION_0})
    samples = [
        s
        for family in registry.collect()
        if family.name == "cx_first_response_seconds"
        for s in family.samples
        if s.name.endswith("_bucket")
    ]
    # 16 bounds + "+Inf"
    assert [s.labels["le"] for s in samples] == [
        *("5", "10", "15", "30", "60", "120", "300", "600", "900", "1800"),
        *("3600", "7200", "14400", "28800", "86400", "172800", "+Inf"),
    ]


def test_a_stored_bound_no_longer_configured_still_exports_in_order() -> None:
    # counts recorded while 45 s was a bound (say, an FRT target since changed): 45 is not in
    # FRT_BUCKETS, yet its bucket is exported between 30 and 60 and the buckets stay cumulative
    assert 45.0 not in FRT_BUCKETS
    registry = registry_for(
        {
            None: {
                "cx_first_response_seconds|chat|30": 1,  # 20 s
                "cx_first_response_seconds|chat|45": 2,  # 40 s, 45 s
                "cx_first_response_seconds|chat|60": 1,  # 50 s
                "cx_first_response_seconds|chat|+Inf": 1,  # 200_000 s
                "cx_first_response_seconds:sum_ms|chat": 200_155_000,
            }
        }
    )
    buckets = [
        (s.labels["le"], s.value)
        for family in registry.collect()
        if family.name == "cx_first_response_seconds"
        for s in family.samples
        if s.name.endswith("_bucket")
    ]
    assert buckets == [
        *(("5", 0.0), ("10", 0.0), ("15", 0.0), ("30", 1.0), ("45", 3.0), ("60", 4.0)),
        *((le, 4.0) for le in ("120", "300", "600", "900", "1800", "3600", "7200")),
        *((le, 4.0) for le in ("14400", "28800", "86400", "172800")),
        ("+Inf", 5.0),
    ]
    chat = {"channel": "chat"}
    assert registry.get_sample_value("cx_first_response_seconds_bucket", {**chat, "le": "45"}) == 3
    assert registry.get_sample_value("cx_first_response_seconds_count", chat) == 5.0
    assert registry.get_sample_value("cx_first_response_seconds_sum", chat) == 200_155.0
    assert 'cx_first_response_seconds_bucket{channel="chat",le="45"} 3.0\n' in (
        generate_latest(registry).decode()
    )


def test_histogram_count_and_sum_in_seconds(registry: CollectorRegistry) -> None:
    p0 = {"channel": "chat", "partition": "0"}
    p1 = {"channel": "chat", "partition": "1"}
    assert registry.get_sample_value("cx_first_response_seconds_count", p0) == 2.0
    # 200_045_000 ms = 45 s + 200_000 s
    assert registry.get_sample_value("cx_first_response_seconds_sum", p0) == 200_045.0
    assert registry.get_sample_value("cx_first_response_seconds_count", p1) == 2.0
    assert registry.get_sample_value("cx_first_response_seconds_sum", p1) == 8.0


def test_unlabelled_histogram(registry: CollectorRegistry) -> None:
    p0 = {"partition": "0"}
    assert registry.get_sample_value("cx_refund_seconds_bucket", {**p0, "le": "86400"}) == 0.0
    assert registry.get_sample_value("cx_refund_seconds_bucket", {**p0, "le": "172800"}) == 1.0
    assert registry.get_sample_value("cx_refund_seconds_count", p0) == 1.0
    assert registry.get_sample_value("cx_refund_seconds_sum", p0) == 172_800.0  # 2 days
    # partition 1 has no refund: no refund histogram series at all
    assert registry.get_sample_value("cx_refund_seconds_count", {"partition": "1"}) is None


@pytest.mark.parametrize("partition", ["0", "1"])
def test_preinitialised_zero_series(registry: CollectorRegistry, partition: str) -> None:
    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {**labels, "partition": partition})

    for reason in (
        "invalid_json",
        "missing_field",
        "invalid_field",
        "unknown_type",
        "unsupported_version",
        "too_large",
    ):
        assert value("cx_events_rejected_total", reason=reason) == 0.0, reason
    assert value("cx_events_late_total", channel="returns") == 0.0
    assert value("cx_churned_customers_total") == 0.0
    assert value("cx_first_response_breaches_total", channel="phone") == 0.0
    assert value("cx_unanswered_conversations", channel="email") == 0.0
    assert value("cx_conversations_reopened_total", channel="social") == 0.0
    # cx_events_total is not pre-initialised: most channel x type pairs can never occur
    assert value("cx_events_total", channel="web", type="order.placed") is None


def test_partition_1_duplicate_counter_is_a_preinitialised_zero(
    registry: CollectorRegistry,
) -> None:
    assert registry.get_sample_value("cx_events_duplicate_total", {"partition": "1"}) == 0.0


def test_without_partition_there_is_no_partition_label() -> None:
    registry = registry_for({None: PARTITION_0})
    opened = {"channel": "chat", "type": "conversation.opened"}
    assert registry.get_sample_value("cx_events_total", opened) == 3.0
    assert registry.get_sample_value("cx_events_total", {**opened, "partition": "0"}) is None
    assert registry.get_sample_value("cx_events_rejected_total", {"reason": "too_large"}) == 0.0
    eur = {"channel": "shop", "currency": "EUR"}
    assert registry.get_sample_value("cx_order_value_total", eur) == 19.99
    chat = {"channel": "chat"}
    assert registry.get_sample_value("cx_first_response_seconds_bucket", {**chat, "le": "60"}) == 1
    assert registry.get_sample_value("cx_first_response_seconds_sum", chat) == 200_045.0
    for family in registry.collect():
        for sample in family.samples:
            assert "partition" not in sample.labels, sample


def test_each_metric_is_one_family_with_both_partitions(registry: CollectorRegistry) -> None:
    families = list(registry.collect())
    names = [family.name for family in families]
    assert len(names) == len(set(names))
    # a counter family is named without its `_total` suffix, its samples with it
    events = next(f for f in families if f.name == "cx_events")
    partitions = {s.labels["partition"] for s in events.samples}
    assert partitions == {"0", "1"}


def test_types_follow_the_contract(registry: CollectorRegistry) -> None:
    types = {family.name: family.type for family in registry.collect()}
    assert types["cx_events"] == "counter"  # exposed as cx_events_total
    assert types["cx_order_value"] == "counter"
    assert types["cx_backlog_conversations"] == "gauge"
    assert types["cx_first_response_seconds"] == "histogram"
    assert types["cx_refund_seconds"] == "histogram"


def test_text_exposition_parses_back(registry: CollectorRegistry) -> None:
    text = generate_latest(registry).decode()
    parsed = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    key = (
        "cx_order_value_total",
        (("channel", "shop"), ("currency", "EUR"), ("partition", "0")),
    )
    assert parsed[key] == 19.99
    assert "cx_order_value_total:micros" not in text
    assert "sum_ms" not in text


def test_promtool_check_metrics(registry: CollectorRegistry, promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(registry),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
