"""Feedback: survey answers and churned customers -> survey and churn counters.

Applied by agent `apply_events` (`agents.family_agent`) to the `survey.answered` and
`customer.churned` events of `cx.events`. Table: `customer_feedback` (customer -> seen event
ids and ledger). Output: metrics only (`cx_survey_responses_total`, `cx_survey_score_total`,
`cx_churned_customers_total`).
"""

from __future__ import annotations

from typing import Any

import faust

from agents.family_agent import FamilyWiring, declare_family_table
from agents.runtime import Runtime


def register(app: faust.App, runtime: Runtime, events: Any) -> FamilyWiring:
    processor = runtime.families.feedback
    port = declare_family_table(
        app,
        runtime,
        processor,
        events,
        table_name="customer_feedback",
        table_help="Per customer: seen feedback event ids and the customer's survey and "
        "churn counts.",
    )
    return FamilyWiring(processor, port)
