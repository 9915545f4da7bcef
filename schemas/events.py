"""Interaction events as CX Pulse sees them once validated (contract section 1).

In: nothing (pure data). Out: the `Event` value object every agent and the offline `compute`
command work on, and the bounded enums that are allowed to become Prometheus label values.

Times are integer milliseconds since the Unix epoch (UTC) and money is integer micro-units
(amount x 1e6): sums of integers are exact and associative, so totals summed over partitions
and workers equal those of one process, to the last digit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

NAMESPACE: Final = "cx.event"
SCHEMA_VERSION: Final = 1

Channel = Literal["chat", "email", "phone", "social", "shop", "returns", "web"]
CHANNELS: Final[tuple[Channel, ...]] = get_args(Channel)
#: Source topics are one per channel plus one for survey answers.
SOURCE_KINDS: Final[tuple[str, ...]] = (*CHANNELS, "survey")

EventType = Literal[
    "conversation.opened",
    "message.received",
    "message.sent",
    "conversation.resolved",
    "conversation.reopened",
    "order.placed",
    "order.delivered",
    "return.requested",
    "refund.issued",
    "survey.answered",
    "customer.churned",
]
CONVERSATION_TYPES: Final = frozenset(
    {
        "conversation.opened",
        "message.received",
        "message.sent",
        "conversation.resolved",
        "conversation.reopened",
    }
)
COMMERCE_TYPES: Final = frozenset(
    {"order.placed", "order.delivered", "return.requested", "refund.issued"}
)
EVENT_TYPES: Final[tuple[EventType, ...]] = get_args(EventType)

Author = Literal["agent", "bot", "system"]
AUTHORS: Final[tuple[Author, ...]] = get_args(Author)

ReturnReason = Literal[
    "damaged",
    "wrong_item",
    "not_as_described",
    "size_fit",
    "late_delivery",
    "changed_mind",
    "other",
]
RETURN_REASONS: Final[tuple[ReturnReason, ...]] = get_args(ReturnReason)

Survey = Literal["nps", "csat", "ces"]
#: Inclusive score range per survey kind.
SURVEY_RANGES: Final[dict[str, tuple[int, int]]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}

MICROS: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class Event:
    """One validated interaction event.

    Only the fields of its `type` are set; the others are `None`. `payload` is the normalised
    JSON object (channel and schema_version filled in, unknown fields kept) that is republished
    on `cx.events`.
    """

    event_id: str
    type: EventType
    occurred_at_ms: int
    customer_id: str
    channel: Channel
    schema_version: int
    payload: dict[str, Any]
    conversation_id: str | None = None
    topic: str | None = None
    author: Author | None = None
    order_id: str | None = None
    return_id: str | None = None
    amount_micros: int | None = None
    currency: str | None = None
    promised_at_ms: int | None = None
    reason: str | None = None
    survey: Survey | None = None
    score: int | None = None


def survey_category(survey: str, score: int) -> str:
    """The contract's bucket for a survey answer (`promoter`, `satisfied`, `easy`, ...)."""
    if survey == "nps":
        return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
    if survey == "csat":
        return "satisfied" if score >= 4 else "neutral" if score == 3 else "unsatisfied"
    return "easy" if score >= 5 else "neutral" if score == 4 else "hard"


SURVEY_CATEGORIES: Final[dict[str, tuple[str, ...]]] = {
    "nps": ("promoter", "passive", "detractor"),
    "csat": ("satisfied", "neutral", "unsatisfied"),
    "ces": ("easy", "neutral", "hard"),
}
