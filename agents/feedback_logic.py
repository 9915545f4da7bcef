"""Pure feedback and lifecycle logic: survey answers and churned customers (contract sections 2, 4).

In: `survey.answered` and `customer.churned` events of one customer. Out: additive
contributions to `cx_survey_responses_total{survey,channel,category}`,
`cx_survey_score_total{survey,channel}` and `cx_churned_customers_total`. NPS, CSAT and CES
are ratios of these counters (recording rules), so nothing else needs to be kept.
"""

from __future__ import annotations

from agents.config import KpiConfig
from agents.ledger import Deltas, Ledger, series_key
from schemas.events import Event, survey_category


class Feedback:
    """Counts survey answers by category and score, and churned customers."""

    name = "feedback"
    counts_events = True
    types = frozenset({"survey.answered", "customer.churned"})

    def __init__(self, config: KpiConfig) -> None:
        self.config = config

    def new_state(self) -> Ledger:
        return Ledger()

    def ledger(self, state: Ledger) -> Ledger:
        return state

    def to_json(self, state: Ledger) -> object:
        return state.to_json()

    def from_json(self, data: object) -> Ledger:
        assert isinstance(data, dict)
        return Ledger.from_json(data)

    def apply(self, state: Ledger, event: Event) -> Deltas:
        deltas = Deltas()
        if event.type == "customer.churned":
            deltas.inc("cx_churned_customers_total")
        elif event.survey is not None and event.score is not None:
            category = survey_category(event.survey, event.score)
            deltas.inc(
                series_key("cx_survey_responses_total", event.survey, event.channel, category)
            )
            deltas.inc(
                series_key("cx_survey_score_total", event.survey, event.channel), event.score
            )
        state.forget_before(event.occurred_at_ms - self.config.dedup_horizon_ms)
        return deltas
