"""Service levels: conversation events -> FRT, resolution, FCR, backlog, breaches.

Applied by agent `apply_events` (`agents.family_agent`) to conversation events of `cx.events`.
Table: `customer_conversations` (customer -> conversations, seen event ids, ledger).
Output: metrics only (`cx_conversations_*`, `cx_first_response_seconds`,
`cx_resolution_seconds`, `cx_first_contact_resolutions_total`, `cx_backlog_conversations`,
`cx_unanswered_conversations`, `cx_oldest_unanswered_age_seconds`,
`cx_first_response_breaches_total`). Timer `settle_service_levels` settles breaches and FCR
horizons as the watermark passes them.
"""

from __future__ import annotations

from typing import Any

import faust

from agents.family_agent import FamilyWiring, declare_family_table, register_timers
from agents.runtime import Runtime

SETTLE_INTERVAL_S = 1.0
TIMER = "settle_service_levels"


def register(app: faust.App, runtime: Runtime, events: Any) -> FamilyWiring:
    processor = runtime.families.service
    port = declare_family_table(
        app,
        runtime,
        processor,
        events,
        table_name="customer_conversations",
        table_help="Per customer: open and recent conversations, seen event ids, and the "
        "customer's contribution to every service-level series.",
    )
    register_timers(app, runtime, processor, port, timer_name=TIMER, interval_s=SETTLE_INTERVAL_S)
    return FamilyWiring(processor, port)
