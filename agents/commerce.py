"""Agent `track_commerce`: orders, deliveries, returns, refunds -> commerce counters.

Input: `cx.events` (`order.placed`, `order.delivered`, `return.requested`, `refund.issued`),
keyed by `customer_id`. Table: `customer_orders` (customer -> returns awaiting their refund,
seen event ids, ledger). Output: metrics only (`cx_orders_total`, `cx_order_value_total`,
`cx_returns_total`, `cx_deliveries_total`, `cx_refund_seconds`). Bad events and what stops
the worker: see `agents.family_agent`.
"""

from __future__ import annotations

from typing import Any

import faust

from agents.family_agent import TablePort, register_family
from agents.runtime import Runtime


def register(app: faust.App, runtime: Runtime, events: Any, dlq: Any) -> TablePort:
    _, _, port = register_family(
        app,
        runtime,
        runtime.families.commerce,
        events,
        dlq,
        agent_name="track_commerce",
        table_name="customer_orders",
        table_help="Per customer: returns awaiting a refund, seen commerce event ids and the "
        "customer's commerce counts.",
    )
    return port
