"""Agent `count_feedback`: survey answers and churned customers -> survey and churn counters.

Input: `cx.events` (`survey.answered`, `customer.churned`), keyed by `customer_id`.
Table: `customer_feedback` (customer -> seen event ids and ledger).
Output: metrics only (`cx_survey_responses_total`, `cx_survey_score_total`,
`cx_churned_customers_total`). Bad events and what stops the worker: see
`agents.family_agent`.
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
        runtime.families.feedback,
        events,
        dlq,
        agent_name="count_feedback",
        table_name="customer_feedback",
        table_help="Per customer: seen feedback event ids and the customer's survey and "
        "churn counts.",
    )
    return port
