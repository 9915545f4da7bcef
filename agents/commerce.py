"""Commerce: orders, deliveries, returns, refunds -> commerce counters.

Applied by agent `apply_events` (`agents.family_agent`) to the `order.placed`,
`order.delivered`, `return.requested` and `refund.issued` events of `cx.events`. Table:
`customer_orders` (customer -> returns awaiting their refund, seen event ids, ledger). Output:
metrics only (`cx_orders_total`, `cx_order_value_total`, `cx_returns_total`,
`cx_deliveries_total`, `cx_refund_seconds`).
"""

from __future__ import annotations

from typing import Any

import faust

from agents.family_agent import FamilyWiring, declare_family_table
from agents.runtime import Runtime


def register(app: faust.App, runtime: Runtime, events: Any) -> FamilyWiring:
    processor = runtime.families.commerce
    port = declare_family_table(
        app,
        runtime,
        processor,
        events,
        table_name="customer_orders",
        table_help="Per customer: returns awaiting a refund, seen commerce event ids and the "
        "customer's commerce counts.",
    )
    return FamilyWiring(processor, port)
