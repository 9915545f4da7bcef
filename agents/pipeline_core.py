"""The families a worker runs, wired to one `KpiConfig`, and the routing of events to them.

Shared by the Faust agents and by `cxpulse compute`, so both apply the same logic in the
same way: an event type belongs to exactly one family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.churn_logic import ChurnRisk
from agents.commerce_logic import Commerce
from agents.config import KpiConfig
from agents.feedback_logic import Feedback
from agents.processor import ChurnProcessor, FamilyProcessor, ServiceProcessor
from agents.service_logic import ServiceLevels
from agents.windows import Partial


@dataclass(slots=True)
class Families:
    """One processor per metric family."""

    service: ServiceProcessor
    feedback: FamilyProcessor[Any]
    commerce: FamilyProcessor[Any]
    churn: ChurnProcessor

    @classmethod
    def build(cls, config: KpiConfig) -> Families:
        return cls(
            service=ServiceProcessor(ServiceLevels(config)),
            feedback=FamilyProcessor(Feedback(config)),
            commerce=FamilyProcessor(Commerce(config)),
            churn=ChurnProcessor(ChurnRisk(config)),
        )

    def all(self) -> tuple[FamilyProcessor[Any], ...]:
        return (self.service, self.feedback, self.commerce, self.churn)

    def for_type(self, event_type: str) -> tuple[FamilyProcessor[Any], ...]:
        """The families an event type goes to: the one that counts it, and churn risk."""
        return tuple(p for p in self.all() if event_type in p.family.types)

    def window_partial(self, partition: int, window_s: int, as_of_ms: int) -> Partial:
        """One partition's window aggregate over every family."""
        merged = Partial()
        for processor in self.all():
            view = processor.views.get(partition)
            if view is not None:
                view.windows.expire(as_of_ms)
                merged.merge(view.windows.partial(window_s, as_of_ms))
        return merged

    def totals_by_partition(self) -> dict[int, dict[str, int]]:
        merged: dict[int, dict[str, int]] = {}
        for processor in self.all():
            for partition, totals in processor.totals_by_partition().items():
                target = merged.setdefault(partition, {})
                for key, value in totals.items():
                    target[key] = target.get(key, 0) + value
        return merged
