"""The worker's stream-health recorder takes a batch at a time (`Runtime.recorder`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from pipeline.metrics import build_stream_metrics


def test_a_batch_counts_its_events_and_observes_each_lag_per_channel() -> None:
    registry = CollectorRegistry()
    metrics = build_stream_metrics(registry)
    metrics.events_processed("apply_events", [("chat", 0.5), ("chat", 3.0), ("web", -1.0)])
    metrics.events_processed("apply_events", [("email", 2.0)])

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("cxpulse_worker_events_processed_total", agent="apply_events") == 4
    assert sample("cx_event_lag_seconds_count", channel="chat") == 2
    assert sample("cx_event_lag_seconds_sum", channel="chat") == 3.5
    # a clock ahead of an event's time is no negative lag
    assert sample("cx_event_lag_seconds_sum", channel="web") == 0
    assert sample("cx_event_lag_seconds_count", channel="email") == 1
    # every channel's series exists before its first event (dashboards show 0, not no data)
    assert sample("cx_event_lag_seconds_count", channel="phone") == 0
