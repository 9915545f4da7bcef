"""pipeline/watermark_exchange.py: what a worker publishes and what it takes in from others."""

from __future__ import annotations

import orjson

from agents.watermark import Watermark
from pipeline.watermark_exchange import REPORT_SCHEMA, apply_reports, encode_reports

T = 1_795_341_600_000
TOPICS = {"cx.raw.chat", "cx.raw.email"}


def test_reports_round_trip_into_another_workers_watermark() -> None:
    raw = encode_reports("w1", {"cx.raw.chat:0": (T, False), "cx.raw.email:1": (None, True)})
    assert orjson.loads(raw) == {
        "schema": REPORT_SCHEMA,
        "worker": "w1",
        "sources": {
            "cx.raw.chat:0": {"latest_ms": T, "idle": False},
            "cx.raw.email:1": {"latest_ms": None, "idle": True},
        },
    }
    wm = Watermark(allowed_lateness_ms=0, idle_timeout_s=60)
    assert apply_reports(wm, "w2", TOPICS, raw) == 2
    wm.observe("cx.raw.chat:1", T + 5_000, wall_s=0.0)
    # the reported chat:0 at T holds ours (T + 5 s) back; the idle email:1 does not count
    assert wm.value_ms(wall_s=1.0) == T


def test_own_reports_and_other_pipelines_partitions_are_ignored() -> None:
    wm = Watermark(allowed_lateness_ms=0, idle_timeout_s=60)
    assert apply_reports(wm, "w1", TOPICS, encode_reports("w1", {"cx.raw.chat:0": (T, False)})) == 0
    other = encode_reports("w9", {"t123.raw.chat:0": (T - 60_000, False)})
    assert apply_reports(wm, "w1", TOPICS, other) == 0
    wm.observe("cx.raw.chat:1", T, wall_s=0.0)
    assert wm.value_ms(wall_s=1.0) == T


def test_reports_that_are_not_ours_are_skipped() -> None:
    wm = Watermark(allowed_lateness_ms=0, idle_timeout_s=60)
    for raw in (
        b"not json",
        None,
        b"[]",
        orjson.dumps({"schema": "something/else", "worker": "w2", "sources": {}}),
        orjson.dumps({"schema": REPORT_SCHEMA, "worker": "w2"}),
        orjson.dumps(
            {
                "schema": REPORT_SCHEMA,
                "worker": "w2",
                "sources": {"cx.raw.chat:0": {"latest_ms": "x", "idle": False}},
            }
        ),
    ):
        assert apply_reports(wm, "w1", TOPICS, raw) == 0, raw
    assert wm.value_ms(wall_s=0.0) is None
