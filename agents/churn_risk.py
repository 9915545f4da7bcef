"""Agent `score_churn_risk`: every event -> per-customer churn risk, `cx.churn` on tier changes.

Input: `cx.events` (all types), keyed by `customer_id`.
Table: `customer_profiles` (customer -> purchase rhythm, decaying experience signals, tier,
seen event ids and ledger). Output: `cx.churn` keyed by `customer_id` whenever a customer's
tier changes (JSON Schema: schemas/json/cx.churn.schema.json); metrics
`cx_customers_by_risk_tier{tier}` and `cx_churn_signals_total{tier}`, exact across restarts
(derived from the ledgers). A timer rescores customers as the watermark passes their rescore
time (inactivity grows, experience decays). Bad events and what stops the worker: see
`agents.family_agent`; `cx.churn` is at-least-once (a restart may repeat a signal).
"""

from __future__ import annotations

from typing import Any

import faust
import orjson

from agents.family_agent import TablePort, register_family, register_timers
from agents.runtime import Runtime

AGENT = "score_churn_risk"
RESCORE_INTERVAL_S = 1.0


def register(app: faust.App, runtime: Runtime, events: Any, dlq: Any, churn: Any) -> TablePort:
    processor = runtime.families.churn

    async def send_signals() -> None:
        while processor.outbox:
            customer_id, value = processor.outbox.pop(0)
            await churn.send(key=customer_id.encode(), value=orjson.dumps(value))

    _, _, port = register_family(
        app,
        runtime,
        processor,
        events,
        dlq,
        agent_name=AGENT,
        table_name="customer_profiles",
        table_help="Per customer: purchase rhythm, decaying experience signals, churn-risk "
        "tier and score, seen event ids and ledger.",
        on_applied=send_signals,
    )

    register_timers(
        app,
        runtime,
        processor,
        port,
        agent_name=AGENT,
        interval_s=RESCORE_INTERVAL_S,
        after=send_signals,
        # a daily scoring that moves no tier is derived again from the stored profile after
        # a restart: no changelog message for it (most scorings; see README "performance")
        unchanged_in_memory=True,
    )
    return port
