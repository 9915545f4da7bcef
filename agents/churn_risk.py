"""Churn risk: every event -> per-customer churn risk, `cx.churn` on tier changes.

Applied by agent `apply_events` (`agents.family_agent`) to every event of `cx.events`.
Table: `customer_profiles` (customer -> purchase rhythm, decaying experience signals, tier,
seen event ids and ledger). Output: `cx.churn` keyed by `customer_id` whenever a customer's
tier changes (JSON Schema: schemas/json/cx.churn.schema.json); metrics
`cx_customers_by_risk_tier{tier}` and `cx_churn_signals_total{tier}`, exact across restarts
(derived from the ledgers). Timer `rescore_churn_risk` rescores customers as the watermark
passes their rescore time (inactivity grows, experience decays). `cx.churn` is at-least-once
(a restart may repeat a signal).
"""

from __future__ import annotations

from typing import Any

import faust
import orjson

from agents.family_agent import FamilyWiring, declare_family_table, register_timers
from agents.runtime import Runtime

TIMER = "rescore_churn_risk"
RESCORE_INTERVAL_S = 1.0


def register(app: faust.App, runtime: Runtime, events: Any, churn: Any) -> FamilyWiring:
    processor = runtime.families.churn

    async def send_signals() -> None:
        while processor.outbox:
            customer_id, value = processor.outbox.pop(0)
            await churn.send(key=customer_id.encode(), value=orjson.dumps(value))

    port = declare_family_table(
        app,
        runtime,
        processor,
        events,
        table_name="customer_profiles",
        table_help="Per customer: purchase rhythm, decaying experience signals, churn-risk "
        "tier and score, seen event ids and ledger.",
    )
    register_timers(
        app,
        runtime,
        processor,
        port,
        timer_name=TIMER,
        interval_s=RESCORE_INTERVAL_S,
        after=send_signals,
        # a daily scoring that moves no tier is derived again from the stored profile after
        # a restart: no changelog message for it (most scorings; README "Why the numbers
        # stay exact")
        unchanged_in_memory=True,
    )
    return FamilyWiring(processor, port, after_batch=send_signals)
