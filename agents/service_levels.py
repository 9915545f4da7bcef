"""Agent `track_service_levels`: conversation events -> FRT, resolution, FCR, backlog, breaches.

Input: `cx.events` (conversation types), keyed by `customer_id`.
Table: `customer_conversations` (customer -> conversations, seen event ids, ledger).
Output: metrics only (`cx_conversations_*`, `cx_first_response_seconds`,
`cx_resolution_seconds`, `cx_first_contact_resolutions_total`, `cx_backlog_conversations`,
`cx_unanswered_conversations`, `cx_oldest_unanswered_age_seconds`,
`cx_first_response_breaches_total`). A timer settles breaches and FCR horizons as the
watermark passes them. Bad events and what stops the worker: see `agents.family_agent`.
"""

from __future__ import annotations

from typing import Any

import faust

from agents.family_agent import TablePort, register_family, register_timers
from agents.runtime import Runtime

SETTLE_INTERVAL_S = 1.0
AGENT = "track_service_levels"


def register(app: faust.App, runtime: Runtime, events: Any, dlq: Any) -> TablePort:
    processor = runtime.families.service
    _, _, port = register_family(
        app,
        runtime,
        processor,
        events,
        dlq,
        agent_name=AGENT,
        table_name="customer_conversations",
        table_help="Per customer: open and recent conversations, seen event ids, and the "
        "customer's contribution to every service-level series.",
        dead_letters=True,
    )

    register_timers(app, runtime, processor, port, agent_name=AGENT, interval_s=SETTLE_INTERVAL_S)
    return port
