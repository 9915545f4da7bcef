"""Pure service-level logic: one customer's conversations, event by event (contract section 2).

In: a customer's `ServiceState`, one conversation event, the event-time watermark.
Out: the changes to that customer's series contributions (`Deltas`): opened / resolved /
reopened counts, first-response and resolution histograms, FCR outcomes, first-response
breaches, and the customer's share of the backlog and unanswered gauges.

Choices where the contract is silent (documented in the README):
- a conversation's wait ends at its earliest agent reply or its resolution, whichever comes
  first; it is a breach when that wait passes the channel's target;
- what the order of arrival could change is decided by the watermark, so events of one
  conversation that arrive out of order within the allowed lateness give the same numbers as
  in order: the breach once the watermark passes `opened + target` (the wait has ended in time
  or not by then), the first response time once it passes the earliest agent reply (no
  earlier one can still come on time). A reply later than that (a late event) is counted late
  and changes neither;
- a repeat contact is a `conversation.opened` of the same customer, any channel, at or after
  another conversation's resolution and within the FCR horizon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.config import RESOLUTION_BUCKETS, KpiConfig
from agents.ledger import Deltas, Ledger, bucket_label, series_key
from schemas.events import CONVERSATION_TYPES, Event

OPEN, RESOLVED, SEEN = "open", "resolved", "seen"
PENDING, YES, NO = "pending", "resolved_first_contact", "not_first_contact"
FORGOTTEN = "forgotten"  # revived after it was forgotten: its outcome was settled before


@dataclass(slots=True)
class Conversation:
    """What is known of one conversation; `status` is `seen` until it is opened."""

    channel: str
    status: str = SEEN
    opened_ms: int | None = None
    first_agent_ms: int | None = None
    resolved_ms: int | None = None
    agent_messages: int = 0
    reopened: bool = False
    fcr: str | None = None
    breached: bool = False
    frt_observed: bool = False
    last_ms: int = 0

    @property
    def is_open(self) -> bool:
        return self.status == OPEN

    @property
    def is_unanswered(self) -> bool:
        return self.is_open and self.first_agent_ms is None and self.opened_ms is not None

    def wait_end_ms(self) -> int | None:
        ends = [t for t in (self.first_agent_ms, self.resolved_ms) if t is not None]
        return min(ends) if ends else None

    def breach_deadline_ms(self, config: KpiConfig) -> int | None:
        """When the watermark decides whether the wait is a breach, if it still can be one:
        not when it has already ended within the target."""
        if self.breached or self.opened_ms is None:
            return None
        deadline = self.opened_ms + config.frt_target_ms(self.channel)
        end = self.wait_end_ms()
        return None if end is not None and end <= deadline else deadline

    def frt_deadline_ms(self) -> int | None:
        """When the first response time is final: the watermark has passed the earliest reply."""
        if self.frt_observed or self.opened_ms is None or self.first_agent_ms is None:
            return None
        return self.first_agent_ms

    def fcr_deadline_ms(self, config: KpiConfig) -> int | None:
        if self.fcr != PENDING or self.resolved_ms is None:
            return None
        return self.resolved_ms + config.fcr_horizon_ms

    def next_deadline_ms(self, config: KpiConfig) -> int | None:
        deadlines = [
            t
            for t in (
                self.breach_deadline_ms(config),
                self.fcr_deadline_ms(config),
                self.frt_deadline_ms(),
            )
            if t is not None
        ]
        return min(deadlines) if deadlines else None

    def to_json(self) -> list[Any]:
        return [
            self.channel,
            self.status,
            self.opened_ms,
            self.first_agent_ms,
            self.resolved_ms,
            self.agent_messages,
            self.reopened,
            self.fcr,
            self.breached,
            self.frt_observed,
            self.last_ms,
        ]

    @classmethod
    def from_json(cls, data: list[Any]) -> Conversation:
        return cls(*data)


@dataclass(slots=True)
class ServiceState:
    """One customer's conversations and ledger: one table value."""

    ledger: Ledger = field(default_factory=Ledger)
    conversations: dict[str, Conversation] = field(default_factory=dict)
    #: conversation id -> when it was last active, for conversations already forgotten: a
    #: late event for one of them must not observe its FRT, resolution or FCR a second time
    forgotten: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.ledger.to_json(),
            "conv": {key: conv.to_json() for key, conv in self.conversations.items()},
            "gone": self.forgotten,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServiceState:
        conversations = {
            key: Conversation.from_json(value) for key, value in data.get("conv", {}).items()
        }
        return cls(
            ledger=Ledger.from_json(data),
            conversations=conversations,
            forgotten=dict(data.get("gone", {})),
        )


def _gauges(conv: Conversation) -> tuple[int, int]:
    return int(conv.is_open), int(conv.is_unanswered)


def _settle_fcr(conv: Conversation, outcome: str, deltas: Deltas, at_ms: int | None = None) -> None:
    if conv.fcr == PENDING:
        conv.fcr = outcome
        key = series_key("cx_first_contact_resolutions_total", conv.channel, outcome)
        deltas.inc(key, at_ms=at_ms)


def _observe(
    deltas: Deltas,
    metric: str,
    channel: str,
    value_ms: int,
    bounds: tuple[float, ...],
    at_ms: int | None = None,
) -> None:
    value_ms = max(value_ms, 0)
    deltas.inc(series_key(metric, channel, bucket_label(bounds, value_ms)), at_ms=at_ms)
    deltas.inc(series_key(f"{metric}:sum_ms", channel), value_ms, at_ms=at_ms)
    deltas.sample(series_key(metric, channel), value_ms, at_ms=at_ms)


class ServiceLevels:
    """Applies conversation events to a customer's `ServiceState`."""

    name = "service_levels"
    counts_events = True
    types = CONVERSATION_TYPES

    def __init__(self, config: KpiConfig) -> None:
        self.config = config
        self.frt_buckets = config.frt_buckets

    def new_state(self) -> ServiceState:
        return ServiceState()

    def ledger(self, state: ServiceState) -> Ledger:
        return state.ledger

    def to_json(self, state: ServiceState) -> object:
        return state.to_json()

    def from_json(self, data: object) -> ServiceState:
        assert isinstance(data, dict)
        return ServiceState.from_json(data)

    def apply(self, state: ServiceState, event: Event) -> Deltas:
        """Apply one new (already deduplicated) conversation event; returns the changes."""
        assert event.conversation_id is not None  # validated for every conversation type
        deltas = Deltas()
        conv = state.conversations.get(event.conversation_id)
        if conv is None:
            conv = state.conversations[event.conversation_id] = self._revive(
                state, event.conversation_id, event.channel
            )
        before = _gauges(conv)
        at = event.occurred_at_ms
        kind = event.type
        if kind == "conversation.opened":
            self._opened(state, event.conversation_id, conv, at, deltas)
        elif kind == "message.sent" and event.author == "agent":
            self._agent_message(conv, at, deltas)
        elif kind == "conversation.resolved":
            self._resolved(state, conv, at, deltas)
        elif kind == "conversation.reopened":
            deltas.inc(series_key("cx_conversations_reopened_total", conv.channel))
            conv.reopened = True
            conv.status = OPEN
            _settle_fcr(conv, NO, deltas)
        conv.last_ms = max(conv.last_ms, at)
        self._track_gauges(conv, before, deltas)
        self._forget_settled(state, at)
        return deltas

    def due(self, state: ServiceState, conversation_id: str, watermark_ms: int) -> Deltas:
        """Settle what the watermark has decided for one conversation: first response time,
        breach, FCR (each timed at its own deadline, so windows do not depend on when the
        watermark got there)."""
        deltas = Deltas()
        conv = state.conversations.get(conversation_id)
        if conv is None:
            return deltas
        frt_at = conv.frt_deadline_ms()
        if frt_at is not None and frt_at < watermark_ms:
            self._observe_frt(conv, deltas)
        breach_at = conv.breach_deadline_ms(self.config)
        if breach_at is not None and breach_at < watermark_ms:
            self._breach(conv, deltas, at_ms=breach_at)
        fcr_at = conv.fcr_deadline_ms(self.config)
        if fcr_at is not None and fcr_at < watermark_ms:
            _settle_fcr(conv, YES, deltas, at_ms=fcr_at)
        return deltas

    def _opened(
        self, state: ServiceState, conversation_id: str, conv: Conversation, at: int, deltas: Deltas
    ) -> None:
        deltas.inc(series_key("cx_conversations_opened_total", conv.channel))
        horizon = self.config.fcr_horizon_ms
        for key, other in state.conversations.items():
            resolved = other.resolved_ms
            if (
                key != conversation_id
                and resolved is not None
                and resolved <= at <= resolved + horizon
            ):
                _settle_fcr(other, NO, deltas)
        if conv.opened_ms is not None:
            return  # the same conversation opened twice: counted, first time kept
        conv.opened_ms = at
        if conv.status == SEEN:
            conv.status = OPEN
        if conv.resolved_ms is not None:
            _observe(
                deltas,
                "cx_resolution_seconds",
                conv.channel,
                conv.resolved_ms - at,
                RESOLUTION_BUCKETS,
            )

    def _agent_message(self, conv: Conversation, at: int, deltas: Deltas) -> None:
        conv.agent_messages = min(conv.agent_messages + 1, 2)
        if not conv.frt_observed and (conv.first_agent_ms is None or at < conv.first_agent_ms):
            conv.first_agent_ms = at  # once observed, a late earlier reply changes nothing
        if conv.agent_messages >= 2:
            _settle_fcr(conv, NO, deltas)

    def _observe_frt(self, conv: Conversation, deltas: Deltas) -> None:
        if conv.frt_observed or conv.opened_ms is None or conv.first_agent_ms is None:
            return
        conv.frt_observed = True
        _observe(
            deltas,
            "cx_first_response_seconds",
            conv.channel,
            conv.first_agent_ms - conv.opened_ms,
            self.frt_buckets,
            at_ms=conv.first_agent_ms,
        )

    def _breach(self, conv: Conversation, deltas: Deltas, at_ms: int | None = None) -> None:
        if not conv.breached:
            conv.breached = True
            deltas.inc(series_key("cx_first_response_breaches_total", conv.channel), at_ms=at_ms)

    def _resolved(self, state: ServiceState, conv: Conversation, at: int, deltas: Deltas) -> None:
        deltas.inc(series_key("cx_conversations_resolved_total", conv.channel))
        conv.status = RESOLVED
        if conv.resolved_ms is not None:
            return  # resolution time and FCR are observed once per conversation
        conv.resolved_ms = at
        if conv.opened_ms is not None:
            _observe(
                deltas,
                "cx_resolution_seconds",
                conv.channel,
                at - conv.opened_ms,
                RESOLUTION_BUCKETS,
            )
        conv.fcr = PENDING
        horizon = self.config.fcr_horizon_ms
        repeat = any(
            other is not conv
            and other.opened_ms is not None
            and at <= other.opened_ms <= at + horizon
            for other in state.conversations.values()
        )
        if conv.agent_messages > 1 or conv.reopened or repeat:
            _settle_fcr(conv, NO, deltas)

    def _track_gauges(self, conv: Conversation, before: tuple[int, int], deltas: Deltas) -> None:
        is_open, unanswered = _gauges(conv)
        deltas.inc(series_key("cx_backlog_conversations", conv.channel), is_open - before[0])
        deltas.inc(series_key("cx_unanswered_conversations", conv.channel), unanswered - before[1])

    def _revive(self, state: ServiceState, conversation_id: str, channel: str) -> Conversation:
        """A new conversation, or a forgotten one coming back (a late reopen): everything
        observed once per conversation stays observed."""
        last_ms = state.forgotten.pop(conversation_id, None)
        if last_ms is None:
            return Conversation(channel)
        # taken as answered: a reopen counts in the backlog, not as a new unanswered wait
        return Conversation(
            channel,
            status=RESOLVED,
            opened_ms=last_ms,
            first_agent_ms=last_ms,
            resolved_ms=last_ms,
            agent_messages=2,
            fcr=FORGOTTEN,
            breached=True,
            frt_observed=True,
            last_ms=last_ms,
        )

    def _forget_settled(self, state: ServiceState, now_ms: int) -> None:
        """Finished work leaves the state: not open, settled and quiet past the retention.
        A forgotten id is remembered for the tombstone retention, then dropped as well."""
        cutoff = now_ms - self.config.conversation_retention_ms
        stale = [
            key
            for key, conv in state.conversations.items()
            if conv.status != OPEN
            and conv.fcr != PENDING
            and conv.last_ms < cutoff
            and conv.next_deadline_ms(self.config) is None
        ]
        for key in stale:
            state.forgotten[key] = state.conversations.pop(key).last_ms
        tombstone_cutoff = now_ms - self.config.tombstone_retention_ms
        for key in [k for k, at in state.forgotten.items() if at < tombstone_cutoff]:
            del state.forgotten[key]
        state.ledger.forget_before(now_ms - self.config.dedup_horizon_ms)
