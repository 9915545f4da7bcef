"""State does not grow with finished work (issue 5, bounded state).

One very active customer — a chat conversation (opened, answered, resolved), an NPS answer and
an order (placed, delivered on time) every day — is run through the worker's own logic
(`pipeline.compute.OfflineRun`) for 90 days. Closed conversations are dropped once their FCR
horizon (7 d) has passed, dedup ids after their horizon (1 d of the customer's event time),
window samples after the longest window (7 d): so after a week or two the state reaches a
steady size and stays there, whatever else the customer does.
"""

from __future__ import annotations

import datetime as dt
import tracemalloc
from typing import Any

import orjson

from pipeline.compute import OfflineRun
from pipeline.settings import Settings

START = dt.datetime(2026, 5, 1, 9, tzinfo=dt.UTC)


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _day(run: OfflineRun, day: int) -> None:
    t = START + dt.timedelta(days=day)
    events: list[dict[str, Any]] = [
        {"type": "conversation.opened", "at": t, "channel": "chat", "conversation_id": f"c{day}"},
        {
            "type": "message.sent",
            "at": t + dt.timedelta(seconds=30),
            "channel": "chat",
            "conversation_id": f"c{day}",
            "author": "agent",
        },
        {
            "type": "conversation.resolved",
            "at": t + dt.timedelta(minutes=10),
            "channel": "chat",
            "conversation_id": f"c{day}",
        },
        {
            "type": "survey.answered",
            "at": t + dt.timedelta(minutes=20),
            "channel": "chat",
            "survey": "nps",
            "score": 9,
        },
        {
            "type": "order.placed",
            "at": t + dt.timedelta(hours=1),
            "channel": "shop",
            "order_id": f"o{day}",
            "amount": 10.0,
            "currency": "EUR",
        },
        {
            "type": "order.delivered",
            "at": t + dt.timedelta(days=2),
            "channel": "shop",
            "order_id": f"o{day}",
            "promised_at": _iso(t + dt.timedelta(days=3)),
        },
    ]
    for n, event in enumerate(events):
        at = event.pop("at")
        line = {"event_id": f"d{day}-{n}", "occurred_at": _iso(at), "customer_id": "vip", **event}
        run.feed(orjson.dumps(line))


def _shape(run: OfflineRun) -> dict[str, tuple[int, dict[str, int]]]:
    """Per table: bytes of the customer's value and the length of every collection in it."""
    shape = {}
    for name, table in run.tables.items():
        raw = table["vip"]
        state = orjson.loads(raw)["s"]
        sizes = {k: len(v) for k, v in state.items() if isinstance(v, list | dict)}
        shape[name] = (len(raw), sizes)
    return shape


def test_a_customers_state_stops_growing_once_horizons_pass() -> None:
    settings = Settings()
    run = OfflineRun(config=settings.kpi_config(), validator=settings.validator())
    shapes = {}
    for day in range(90):
        _day(run, day)
        if day + 1 in (10, 60, 90):
            shapes[day + 1] = _shape(run)
    assert run.totals()["cx_conversations_opened_total|chat"] == 90  # nothing was dropped
    assert set(shapes[90]) == {"service_levels", "feedback", "commerce", "churn_risk"}
    # 60 and 90 days of work: the very same state size, to the byte and to the entry
    assert shapes[90] == shapes[60]
    service = shapes[90]["service_levels"][1]
    assert service["conv"] <= 9  # the last 7 days' conversations (FCR horizon) and today's
    total = sum(size for size, _ in shapes[90].values())
    assert total < 16 * 1024, total  # README "Bounded state": ~11 KB for this customer


def test_a_stored_value_holds_its_length_not_the_encoders_buffer() -> None:
    """Tables keep every value for good: a value must not carry orjson's spare buffer along
    (with orjson 3.13 a 1 KB document held ~12 KB, most of a worker's memory)."""
    settings = Settings()
    run = OfflineRun(config=settings.kpi_config(), validator=settings.validator())
    for day in range(10):
        _day(run, day)
    processor = run.families.service
    state = processor.load(run.tables["service_levels"]["vip"])
    tracemalloc.start()
    try:
        values = [processor.dump(state, 0) for _ in range(200)]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    length = sum(len(value) for value in values)
    assert held < 1.5 * length, (held, length)
