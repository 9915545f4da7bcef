"""Parse a Prometheus text exposition into {(name, sorted labels without partition): value},
summing series that differ only by `partition` (as the shipped recording rules do)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, tuple[tuple[str, str], ...]]
MAX_ACROSS_PARTITIONS = {"cx_oldest_unanswered_age_seconds"}


def summed_samples(text: str, prefix: str = "cx_") -> dict[Key, float]:
    out: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.startswith(prefix):
                continue
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "partition"))
            key = (sample.name, labels)
            if sample.name in MAX_ACROSS_PARTITIONS:
                out[key] = max(out.get(key, 0.0), sample.value)
            else:
                out[key] = out.get(key, 0.0) + sample.value
    return out


def expected_key(name: str, labels: tuple[tuple[str, str], ...]) -> Key:
    return (name, tuple(sorted(labels)))
