"""agents/service_logic.py, agents/processor.py and agents/family.py: service-level KPIs of
contract section 2, worked out by hand, event by event.

Series keys are `metric|label|...` (agents/ledger.py). Histogram series are
`metric|channel|<le>`, keyed by the bucket's upper bound as its `le` label value (overflow
`+Inf`), plus `metric:sum_ms|channel`. Default buckets (agents/config.py):

    FRT (s):        5 10 15 30 60 120 300 600 900 1800 3600 7200 14400 28800 86400 172800 +Inf
    resolution (s): 60 300 900 1800 3600 7200 14400 28800 86400 172800 345600 604800 +Inf

Chat's first-response target is 60 s; the FCR horizon 7 days; the dedup horizon 1 day.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from agents.config import KpiConfig
from agents.family import process_event
from agents.ledger import Deltas, Ledger
from agents.processor import PartitionView, ServiceProcessor
from agents.service_logic import ServiceLevels, ServiceState
from agents.windows import WindowView
from schemas.events import Event
from schemas.validate import EventValidator

DAY_MS = 86_400_000
FCR_HORIZON_MS = 7 * DAY_MS
# 2026-11-22T00:00:00Z = 1_795_305_600 s (2026-01-01 = 1_767_225_600 s, + 325 days).
DAY0_MS = 1_795_305_600_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

VALIDATOR = EventValidator(known_topics=("billing",), max_future_ms=None)  # no wall clock
_event_ids = itertools.count(1)
#: input offsets: one counter for every test, so they increase for every customer
_offsets = itertools.count(1)


def at(clock: str, day: int = 0) -> int:
    """Epoch ms of `clock` (HH:MM:SS) on 2026-11-22 plus `day` days, UTC."""
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    return DAY0_MS + day * DAY_MS + ((hours * 60 + minutes) * 60 + seconds) * 1000


def iso(ms: int) -> str:
    moment = EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(
    kind: str,
    when: int,
    conversation: str = "conv-1",
    *,
    customer: str = "c-1",
    channel: str = "chat",
    event_id: str | None = None,
    **extra: Any,
) -> Event:
    """A contract event (section 1) as the validator hands it to the agents."""
    raw = {
        "event_id": event_id or f"ev-{next(_event_ids)}",
        "type": kind,
        "occurred_at": iso(when),
        "customer_id": customer,
        "channel": channel,
        "conversation_id": conversation,
        **extra,
    }
    result = VALIDATOR.validate(orjson.dumps(raw), channel)
    assert isinstance(result, Event), result
    return result


def opened(when: int, conversation: str = "conv-1", **kw: Any) -> Event:
    return event("conversation.opened", when, conversation, **kw)


def agent(when: int, conversation: str = "conv-1", **kw: Any) -> Event:
    return event("message.sent", when, conversation, author="agent", **kw)


def bot(when: int, conversation: str = "conv-1", **kw: Any) -> Event:
    return event("message.sent", when, conversation, author="bot", **kw)


def system(when: int, conversation: str = "conv-1", **kw: Any) -> Event:
    return event("message.sent", when, conversation, author="system", **kw)


def customer_message(when: int, conversation: str = "conv-1", **kw: Any) -> Event:
    return event("message.received", when, conversation, **kw)


def resolved(when: int, conversation: str = "conv-1", **kw: Any) -> Event:
    return event("conversation.resolved", when, conversation, **kw)


def reopened(when: int, conversation: str = "conv-1", **kw: Any) -> Event:
    return event("conversation.reopened", when, conversation, **kw)


SERVICE = ServiceLevels(KpiConfig())


def source_ref(e: Event) -> str:
    """A distinct source topic:partition:offset per event."""
    return f"cx.raw.{e.channel}:0:{e.event_id}"


def apply(state: ServiceState, e: Event) -> Deltas | None:
    """Dedup-then-apply one event read at the next input offset, as the agent does."""
    return process_event(SERVICE, state, e, source_ref(e), next(_offsets))


def run(
    events: Iterable[Event], state: ServiceState | None = None, settle: bool = True
) -> ServiceState:
    """Dedup-then-apply every event to one customer's state, each at a new offset; then, with
    `settle`, let a watermark 1 ms past the last event settle what it decides (first response
    times, breaches of waits that ended late), as the timers would."""
    state = ServiceState() if state is None else state
    last = None
    for e in events:
        assert apply(state, e) is not None
        last = e.occurred_at_ms if last is None else max(last, e.occurred_at_ms)
    if settle and last is not None:
        settle_at(state, last + 1)
    return state


def settle_at(state: ServiceState, watermark_ms: int) -> Deltas:
    """What a watermark settles for every conversation of the customer, added to its ledger."""
    deltas = Deltas()
    for conversation_id in list(state.conversations):
        deltas.merge(SERVICE.due(state, conversation_id, watermark_ms).items())
    state.ledger.add(deltas)
    return deltas


def kpis(totals: Mapping[str, int]) -> dict[str, int]:
    """Series contributions without the `cx_events_total` bookkeeping, zeros dropped."""
    return {k: v for k, v in totals.items() if v and not k.startswith("cx_events_total|")}


class Store:
    """The per-customer key-value store a Faust table is to the processor."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.puts = 0

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, key: str, value: bytes) -> None:
        self.puts += 1
        self.data[key] = value


def feed(
    processor: ServiceProcessor, store: Store, partition: int, events: Iterable[Event]
) -> None:
    for e in events:
        offset = next(_offsets)
        assert (
            processor.handle(store.get, store.put, partition, offset, e, source_ref(e)) is not None
        )


def new_processor() -> ServiceProcessor:
    return ServiceProcessor(ServiceLevels(KpiConfig()))


# --- first response time ------------------------------------------------------------------


def test_frt_ignores_bot_system_and_customer_messages() -> None:
    state = run(
        [
            opened(at("10:00:00")),
            bot(at("10:00:05")),
            system(at("10:00:06")),
            customer_message(at("10:00:20")),
            agent(at("10:00:45")),
        ]
    )
    # FRT = 10:00:45 - 10:00:00 = 45 s -> first bound >= 45 is 60 s: le=60
    assert kpis(state.ledger.totals) == {
        "cx_conversations_opened_total|chat": 1,
        "cx_backlog_conversations|chat": 1,
        "cx_first_response_seconds|chat|60": 1,
        "cx_first_response_seconds:sum_ms|chat": 45_000,
    }
    # every event is counted once by channel and type
    assert {k: v for k, v in state.ledger.totals.items() if k.startswith("cx_events_total|")} == {
        "cx_events_total|chat|conversation.opened": 1,
        "cx_events_total|chat|message.sent": 3,
        "cx_events_total|chat|message.received": 1,
    }


def test_bot_only_conversation_stays_unanswered_without_frt() -> None:
    state = run([opened(at("10:00:00")), bot(at("10:00:05")), system(at("10:00:10"))])
    assert kpis(state.ledger.totals) == {
        "cx_conversations_opened_total|chat": 1,
        "cx_backlog_conversations|chat": 1,
        "cx_unanswered_conversations|chat": 1,
    }


def test_frt_is_observed_once_at_the_first_agent_message() -> None:
    state = run([opened(at("10:00:00")), agent(at("10:00:10")), agent(at("10:00:50"))])
    # 10 s <= 10 s bound: le=10; the second agent message is not a second observation
    assert state.ledger.totals["cx_first_response_seconds|chat|10"] == 1
    assert state.ledger.totals["cx_first_response_seconds:sum_ms|chat"] == 10_000


@pytest.mark.parametrize(
    ("wait_clock", "le"),
    [
        ("10:00:05", "5"),  # 5 s <= 5
        ("10:00:06", "10"),  # 6 s <= 10
        ("10:02:00", "120"),  # 120 s <= 120
        ("10:02:01", "300"),  # 121 s <= 300
    ],
)
def test_frt_bucket_edges(wait_clock: str, le: str) -> None:
    state = run([opened(at("10:00:00")), agent(at(wait_clock))])
    assert state.ledger.totals[f"cx_first_response_seconds|chat|{le}"] == 1


def test_frt_over_two_days_lands_in_inf_bucket() -> None:
    # 3 days = 259_200 s > 172_800 s: the +Inf bucket
    state = run(
        [opened(at("10:00:00"), channel="email"), agent(at("10:00:00", day=3), channel="email")]
    )
    assert state.ledger.totals["cx_first_response_seconds|email|+Inf"] == 1
    assert state.ledger.totals["cx_first_response_seconds:sum_ms|email"] == 259_200_000


# --- conversation counters, resolution time, gauges ---------------------------------------


def test_event_by_event_contributions_open_reply_resolve_reopen_resolve() -> None:
    state = ServiceState()
    steps: list[tuple[Event | int, dict[str, int]]] = [
        (
            opened(at("10:00:00")),
            {
                "cx_events_total|chat|conversation.opened": 1,
                "cx_conversations_opened_total|chat": 1,
                "cx_backlog_conversations|chat": 1,
                "cx_unanswered_conversations|chat": 1,
            },
        ),
        (
            agent(at("10:00:30")),
            {
                "cx_events_total|chat|message.sent": 1,
                "cx_unanswered_conversations|chat": -1,
            },
        ),
        (
            # the watermark passes the reply: no earlier one can come on time, FRT is final;
            # 30 s <= 30 s bound: le=30
            at("10:00:31"),
            {
                "cx_first_response_seconds|chat|30": 1,
                "cx_first_response_seconds:sum_ms|chat": 30_000,
            },
        ),
        (
            resolved(at("10:05:00")),
            {
                "cx_events_total|chat|conversation.resolved": 1,
                "cx_conversations_resolved_total|chat": 1,
                # 300 s <= 300 s bound: le=300
                "cx_resolution_seconds|chat|300": 1,
                "cx_resolution_seconds:sum_ms|chat": 300_000,
                "cx_backlog_conversations|chat": -1,
            },
        ),
        (
            reopened(at("10:10:00")),
            {
                "cx_events_total|chat|conversation.reopened": 1,
                "cx_conversations_reopened_total|chat": 1,
                "cx_backlog_conversations|chat": 1,
                # the reopen settles the pending FCR
                "cx_first_contact_resolutions_total|chat|not_first_contact": 1,
            },
        ),
        (
            resolved(at("10:20:00")),
            {
                # counted again, but resolution time is observed once per conversation
                "cx_events_total|chat|conversation.resolved": 1,
                "cx_conversations_resolved_total|chat": 1,
                "cx_backlog_conversations|chat": -1,
            },
        ),
    ]
    for step, expected in steps:
        if isinstance(step, int):
            assert settle_at(state, step) == expected, step
        else:
            assert apply(state, step) == expected, step.type
    assert kpis(state.ledger.totals) == {
        "cx_conversations_opened_total|chat": 1,
        "cx_conversations_resolved_total|chat": 2,
        "cx_conversations_reopened_total|chat": 1,
        "cx_first_response_seconds|chat|30": 1,
        "cx_first_response_seconds:sum_ms|chat": 30_000,
        "cx_resolution_seconds|chat|300": 1,
        "cx_resolution_seconds:sum_ms|chat": 300_000,
        "cx_first_contact_resolutions_total|chat|not_first_contact": 1,
    }


def test_resolved_twice_without_reopen_observes_resolution_once() -> None:
    state = run(
        [
            opened(at("10:00:00")),
            agent(at("10:00:20")),
            resolved(at("10:20:00")),
            resolved(at("10:30:00")),
        ]
    )
    # 20 min = 1200 s: 900 < 1200 <= 1800, le=1800; backlog +1 -1 and stays 0
    assert kpis(state.ledger.totals) == {
        "cx_conversations_opened_total|chat": 1,
        "cx_conversations_resolved_total|chat": 2,
        "cx_first_response_seconds|chat|30": 1,
        "cx_first_response_seconds:sum_ms|chat": 20_000,
        "cx_resolution_seconds|chat|1800": 1,
        "cx_resolution_seconds:sum_ms|chat": 1_200_000,
    }


def test_reopen_of_unanswered_conversation_is_unanswered_again() -> None:
    state = run([opened(at("10:00:00")), resolved(at("10:00:30"))])
    e = reopened(at("10:01:00"))
    assert apply(state, e) == {
        "cx_events_total|chat|conversation.reopened": 1,
        "cx_conversations_reopened_total|chat": 1,
        "cx_backlog_conversations|chat": 1,
        "cx_unanswered_conversations|chat": 1,
        "cx_first_contact_resolutions_total|chat|not_first_contact": 1,
    }


def test_backlog_and_unanswered_per_channel() -> None:
    state = run(
        [
            opened(at("10:00:00"), "chat-1"),
            opened(at("10:00:00"), "chat-2"),
            opened(at("10:00:00"), "mail-1", channel="email"),
            agent(at("10:00:40"), "chat-2"),
        ]
    )
    # chat: 2 open, 1 unanswered (chat-1); email: 1 open, 1 unanswered
    totals = state.ledger.totals
    assert totals["cx_backlog_conversations|chat"] == 2
    assert totals["cx_unanswered_conversations|chat"] == 1
    assert totals["cx_backlog_conversations|email"] == 1
    assert totals["cx_unanswered_conversations|email"] == 1


# --- first-response breaches ---------------------------------------------------------------


def test_agent_reply_after_90s_is_one_breach() -> None:
    state = run([opened(at("10:00:00")), agent(at("10:01:30")), agent(at("10:03:00"))])
    # FRT 90 s: 60 < 90 <= 120, le=120; wait 90 s > chat target 60 s: one breach
    assert kpis(state.ledger.totals) == {
        "cx_conversations_opened_total|chat": 1,
        "cx_backlog_conversations|chat": 1,
        "cx_first_response_seconds|chat|120": 1,
        "cx_first_response_seconds:sum_ms|chat": 90_000,
        "cx_first_response_breaches_total|chat": 1,
    }


def test_agent_reply_exactly_at_target_is_no_breach() -> None:
    state = run([opened(at("10:00:00")), agent(at("10:01:00"))])
    assert "cx_first_response_breaches_total|chat" not in state.ledger.totals
    assert state.ledger.totals["cx_first_response_seconds|chat|60"] == 1  # 60 s <= 60 s


def test_unanswered_chat_breaches_by_watermark_and_not_again_on_reply() -> None:
    processor, store = new_processor(), Store()
    feed(processor, store, 0, [opened(at("10:00:00"))])
    view = processor.views[0]
    assert view.unanswered == {"chat": {("c-1", "conv-1"): at("10:00:00")}}
    assert view.oldest_unanswered_ms() == {"chat": at("10:00:00")}
    assert view.scheduled == {("c-1", "conv-1"): at("10:01:00")}  # opened + 60 s

    # watermark 59 s after opening: nothing is due yet
    assert processor.fire_timers(0, at("10:00:59"), store.get, store.put) == 0
    assert "cx_first_response_breaches_total|chat" not in view.totals

    # watermark 61 s after opening: the wait has passed the 60 s target
    assert processor.fire_timers(0, at("10:01:01"), store.get, store.put) == 1
    assert view.totals["cx_first_response_breaches_total|chat"] == 1
    assert view.unanswered == {"chat": {("c-1", "conv-1"): at("10:00:00")}}  # still waiting
    assert view.scheduled == {}

    # the agent finally answers after 120 s: FRT final once the watermark passes the reply
    # (le=120), no second breach
    feed(processor, store, 0, [agent(at("10:02:00"))])
    assert view.scheduled == {("c-1", "conv-1"): at("10:02:00")}
    assert processor.fire_timers(0, at("10:30:00"), store.get, store.put) == 1
    assert view.scheduled == {}
    assert view.totals == {
        "cx_events_total|chat|conversation.opened": 1,
        "cx_events_total|chat|message.sent": 1,
        "cx_conversations_opened_total|chat": 1,
        "cx_backlog_conversations|chat": 1,
        "cx_first_response_breaches_total|chat": 1,
        "cx_first_response_seconds|chat|120": 1,
        "cx_first_response_seconds:sum_ms|chat": 120_000,
    }
    assert view.oldest_unanswered_ms() == {}
    # the stored state agrees with the view: the ledger is the source of truth on recovery
    stored = ServiceState.from_json(orjson.loads(store.data["c-1"])["s"])
    assert stored.ledger.totals == view.totals


def test_watermark_exactly_at_target_is_not_yet_a_breach() -> None:
    state = run([opened(at("10:00:00"))])
    # the wait has reached 60 s but not passed it; a reply stamped 10:01:00 is still on time
    assert SERVICE.due(state, "conv-1", at("10:01:00")) == {}
    # 1 ms later it has passed the target
    assert SERVICE.due(state, "conv-1", at("10:01:00") + 1) == {
        "cx_first_response_breaches_total|chat": 1
    }


def test_breach_timer_fires_only_once_the_watermark_is_past_the_target() -> None:
    processor, store = new_processor(), Store()
    feed(processor, store, 0, [opened(at("10:00:00"))])
    view = processor.views[0]
    assert view.scheduled == {("c-1", "conv-1"): at("10:01:00")}
    # watermark exactly at opened + 60 s: not fired, still scheduled
    assert processor.fire_timers(0, at("10:01:00"), store.get, store.put) == 0
    assert view.scheduled == {("c-1", "conv-1"): at("10:01:00")}
    assert "cx_first_response_breaches_total|chat" not in view.totals
    # a reply stamped exactly at the target then is no breach: the breach timer gives way to
    # the FRT one, at the reply
    feed(processor, store, 0, [agent(at("10:01:00"))])
    assert view.scheduled == {("c-1", "conv-1"): at("10:01:00")}
    assert processor.fire_timers(0, at("10:30:00"), store.get, store.put) == 1
    assert view.scheduled == {}
    assert "cx_first_response_breaches_total|chat" not in view.totals
    assert view.totals["cx_first_response_seconds|chat|60"] == 1  # 60 s <= 60 s


def test_breach_timer_fires_1_ms_past_the_target() -> None:
    processor, store = new_processor(), Store()
    feed(processor, store, 0, [opened(at("10:00:00"))])
    assert processor.fire_timers(0, at("10:01:00"), store.get, store.put) == 0
    assert processor.fire_timers(0, at("10:01:00") + 1, store.get, store.put) == 1
    assert processor.views[0].totals["cx_first_response_breaches_total|chat"] == 1
    assert processor.views[0].scheduled == {}


def test_resolved_within_target_without_reply_is_no_breach() -> None:
    processor, store = new_processor(), Store()
    feed(processor, store, 0, [opened(at("10:00:00")), resolved(at("10:00:40"))])
    # the stale opened+60 s timer was superseded by the FCR horizon: nothing fires
    assert processor.fire_timers(0, at("10:05:00"), store.get, store.put) == 0
    # 40 s resolution: le=60 (<= 60 s)
    assert kpis(processor.views[0].totals) == {
        "cx_conversations_opened_total|chat": 1,
        "cx_conversations_resolved_total|chat": 1,
        "cx_resolution_seconds|chat|60": 1,
        "cx_resolution_seconds:sum_ms|chat": 40_000,
    }


def test_resolved_after_target_without_reply_is_a_breach() -> None:
    # the wait ends at the first resolution: 90 s > 60 s
    state = run([opened(at("10:00:00")), resolved(at("10:01:30"))])
    assert state.ledger.totals["cx_first_response_breaches_total|chat"] == 1
    assert "cx_first_response_seconds|chat|120" not in state.ledger.totals  # no agent, no FRT


def test_breach_uses_the_channel_target() -> None:
    # phone target 30 s, email target 4 h = 14_400 s
    state = run(
        [
            opened(at("10:00:00"), "call-1", channel="phone"),
            agent(at("10:00:31"), "call-1", channel="phone"),
            opened(at("10:00:00"), "mail-1", channel="email"),
            agent(at("13:59:59"), "mail-1", channel="email"),
        ]
    )
    assert state.ledger.totals.get("cx_first_response_breaches_total|phone") == 1
    assert "cx_first_response_breaches_total|email" not in state.ledger.totals


# --- out of order ---------------------------------------------------------------------------


IN_ORDER = (
    ("opened", "10:00:00"),
    ("bot", "10:00:05"),
    ("agent", "10:00:45"),
    ("resolved", "10:03:00"),
)
MAKERS = {"opened": opened, "bot": bot, "agent": agent, "resolved": resolved}


def _arrival_orders() -> list[Any]:
    return [
        pytest.param(order, id=">".join(name for name, _ in order))
        for order in itertools.permutations(IN_ORDER)
    ]


@pytest.mark.parametrize("order", _arrival_orders())
def test_any_arrival_order_gives_the_same_totals(order: tuple[tuple[str, str], ...]) -> None:
    state = run(MAKERS[name](at(clock)) for name, clock in order)
    # FRT 45 s: le=60; resolution 180 s: 60 < 180 <= 300, le=300; backlog and unanswered
    # net to zero (absent); FCR pending until the horizon
    assert state.ledger.totals == {
        "cx_events_total|chat|conversation.opened": 1,
        "cx_events_total|chat|message.sent": 2,
        "cx_events_total|chat|conversation.resolved": 1,
        "cx_conversations_opened_total|chat": 1,
        "cx_conversations_resolved_total|chat": 1,
        "cx_first_response_seconds|chat|60": 1,
        "cx_first_response_seconds:sum_ms|chat": 45_000,
        "cx_resolution_seconds|chat|300": 1,
        "cx_resolution_seconds:sum_ms|chat": 180_000,
    }


def test_agent_message_before_opened_gives_the_same_frt_and_gauges() -> None:
    state = ServiceState()
    first = agent(at("10:00:45"))
    # not opened yet: no FRT, not in the backlog, not unanswered
    assert apply(state, first) == {"cx_events_total|chat|message.sent": 1}
    late_open = opened(at("10:00:00"))
    assert apply(state, late_open) == {
        "cx_events_total|chat|conversation.opened": 1,
        "cx_conversations_opened_total|chat": 1,
        "cx_backlog_conversations|chat": 1,
    }
    # once the watermark passes the reply: FRT 45 s, le=60, as in order
    assert settle_at(state, at("10:00:46")) == {
        "cx_first_response_seconds|chat|60": 1,
        "cx_first_response_seconds:sum_ms|chat": 45_000,
    }


# FRT is final once the watermark passes the earliest reply: an earlier-stamped reply arriving
# second, within the allowed lateness, gives the in-order FRT.
def test_two_agent_replies_out_of_order_give_the_in_order_frt() -> None:
    in_order = run([opened(at("10:00:00")), agent(at("10:00:45")), agent(at("10:01:30"))])
    swapped = run([opened(at("10:00:00")), agent(at("10:01:30")), agent(at("10:00:45"))])
    # FRT = earliest agent message 10:00:45 - 10:00:00 = 45 s: le=60, within the 60 s target
    assert kpis(in_order.ledger.totals) == {
        "cx_conversations_opened_total|chat": 1,
        "cx_backlog_conversations|chat": 1,
        "cx_first_response_seconds|chat|60": 1,
        "cx_first_response_seconds:sum_ms|chat": 45_000,
    }
    assert kpis(swapped.ledger.totals) == kpis(in_order.ledger.totals)


def test_late_agent_reply_before_opened_still_breaches() -> None:
    state = run([agent(at("10:01:30")), opened(at("10:00:00"))])
    assert state.ledger.totals["cx_first_response_breaches_total|chat"] == 1


# --- first contact resolution -----------------------------------------------------------------


def handled_and_resolved(conversation: str = "conv-1", **kw: Any) -> list[Event]:
    """Opened 10:00:00, one agent reply 10:00:30, resolved 10:05:00 on day 0."""
    return [
        opened(at("10:00:00"), conversation, **kw),
        agent(at("10:00:30"), conversation, **kw),
        resolved(at("10:05:00"), conversation, **kw),
    ]


RESOLVED_MS = at("10:05:00")


def test_fcr_settles_resolved_first_contact_only_after_the_horizon() -> None:
    state = run(handled_and_resolved())
    assert not any(k.startswith("cx_first_contact") for k in state.ledger.totals)
    # 1 ms before resolved + 7 d: still pending
    assert SERVICE.due(state, "conv-1", RESOLVED_MS + FCR_HORIZON_MS - 1) == {}
    # exactly at resolved + 7 d: still pending (a repeat contact stamped then still counts)
    assert SERVICE.due(state, "conv-1", RESOLVED_MS + FCR_HORIZON_MS) == {}
    assert SERVICE.due(state, "conv-1", RESOLVED_MS + FCR_HORIZON_MS + 1) == {
        "cx_first_contact_resolutions_total|chat|resolved_first_contact": 1
    }
    # settled once
    assert SERVICE.due(state, "conv-1", RESOLVED_MS + 30 * DAY_MS) == {}


def test_fcr_timer_fires_through_the_processor() -> None:
    processor, store = new_processor(), Store()
    feed(processor, store, 3, handled_and_resolved())
    view = processor.views[3]
    # first the FRT, final once the watermark passes the reply (10:00:30); then the FCR horizon
    assert view.scheduled == {("c-1", "conv-1"): at("10:00:30")}
    assert processor.fire_timers(3, RESOLVED_MS, store.get, store.put) == 1
    assert view.scheduled == {("c-1", "conv-1"): RESOLVED_MS + FCR_HORIZON_MS}
    assert processor.fire_timers(3, RESOLVED_MS + FCR_HORIZON_MS - 1, store.get, store.put) == 0
    assert processor.fire_timers(3, RESOLVED_MS + FCR_HORIZON_MS, store.get, store.put) == 0
    assert view.scheduled == {("c-1", "conv-1"): RESOLVED_MS + FCR_HORIZON_MS}
    assert processor.fire_timers(3, RESOLVED_MS + FCR_HORIZON_MS + 1, store.get, store.put) == 1
    assert view.totals["cx_first_contact_resolutions_total|chat|resolved_first_contact"] == 1
    assert view.scheduled == {}
    assert processor.fire_timers(3, RESOLVED_MS + 30 * DAY_MS, store.get, store.put) == 0
    assert view.totals["cx_first_contact_resolutions_total|chat|resolved_first_contact"] == 1


def test_fcr_timers_of_unknown_partition_fire_nothing() -> None:
    processor, store = new_processor(), Store()
    assert processor.fire_timers(9, at("10:00:00", day=30), store.get, store.put) == 0


def test_repeat_contact_on_another_channel_settles_not_first_contact() -> None:
    state = run(handled_and_resolved())
    repeat = opened(at("09:00:00", day=2), "mail-1", channel="email")
    assert apply(state, repeat) == {
        "cx_events_total|email|conversation.opened": 1,
        "cx_conversations_opened_total|email": 1,
        "cx_backlog_conversations|email": 1,
        "cx_unanswered_conversations|email": 1,
        # the outcome belongs to the chat conversation it settles
        "cx_first_contact_resolutions_total|chat|not_first_contact": 1,
    }
    assert SERVICE.due(state, "conv-1", RESOLVED_MS + 8 * DAY_MS) == {}


def test_repeat_contact_cancels_the_fcr_timer_in_the_processor() -> None:
    processor, store = new_processor(), Store()
    feed(processor, store, 0, handled_and_resolved())
    assert processor.fire_timers(0, RESOLVED_MS, store.get, store.put) == 1  # conv-1's FRT
    feed(processor, store, 0, [opened(at("09:00:00", day=2), "mail-1", channel="email")])
    view = processor.views[0]
    # only the e-mail's breach deadline is left: 09:00 on day 2 + 4 h target
    assert view.scheduled == {("c-1", "mail-1"): at("13:00:00", day=2)}
    processor.fire_timers(0, RESOLVED_MS + FCR_HORIZON_MS + 1, store.get, store.put)
    assert view.totals["cx_first_contact_resolutions_total|chat|not_first_contact"] == 1
    assert "cx_first_contact_resolutions_total|chat|resolved_first_contact" not in view.totals
    assert view.totals["cx_first_response_breaches_total|email"] == 1  # never answered


def test_repeat_contact_arriving_before_the_resolution_event() -> None:
    # the e-mail on day 2 is consumed first (another topic read faster)
    state = run([opened(at("09:00:00", day=2), "mail-1", channel="email"), *handled_and_resolved()])
    assert state.ledger.totals["cx_first_contact_resolutions_total|chat|not_first_contact"] == 1
    assert SERVICE.due(state, "conv-1", RESOLVED_MS + 8 * DAY_MS) == {}


def test_repeat_contact_exactly_at_the_horizon_settles_not_first_contact() -> None:
    state = run(handled_and_resolved())
    edge = RESOLVED_MS + FCR_HORIZON_MS
    # the watermark at exactly resolved + 7 d does not settle the outcome yet
    assert SERVICE.due(state, "conv-1", edge) == {}
    repeat = opened(edge, "conv-2")
    assert apply(state, repeat) == {
        "cx_events_total|chat|conversation.opened": 1,
        "cx_conversations_opened_total|chat": 1,
        "cx_backlog_conversations|chat": 1,
        "cx_unanswered_conversations|chat": 1,
        "cx_first_contact_resolutions_total|chat|not_first_contact": 1,
    }
    assert SERVICE.due(state, "conv-1", edge + 1) == {}


def test_repeat_contact_exactly_at_the_horizon_in_the_processor() -> None:
    processor, store = new_processor(), Store()
    feed(processor, store, 0, handled_and_resolved())
    edge = RESOLVED_MS + FCR_HORIZON_MS
    assert processor.fire_timers(0, edge, store.get, store.put) == 1  # conv-1's FRT only
    feed(processor, store, 0, [opened(edge, "conv-2")])
    view = processor.views[0]
    # conv-1's FCR timer is gone; conv-2's breach deadline (opened + 60 s) is left
    assert view.scheduled == {("c-1", "conv-2"): edge + 60_000}
    assert processor.fire_timers(0, edge + 1, store.get, store.put) == 0
    assert view.totals["cx_first_contact_resolutions_total|chat|not_first_contact"] == 1
    assert "cx_first_contact_resolutions_total|chat|resolved_first_contact" not in view.totals


def test_contact_after_the_horizon_is_not_a_repeat() -> None:
    state = run(handled_and_resolved())
    later = opened(RESOLVED_MS + FCR_HORIZON_MS + 1, "conv-2")
    deltas = apply(state, later)
    assert deltas is not None
    assert not any(k.startswith("cx_first_contact") for k in deltas)
    assert SERVICE.due(state, "conv-1", RESOLVED_MS + FCR_HORIZON_MS + 1) == {
        "cx_first_contact_resolutions_total|chat|resolved_first_contact": 1
    }


def test_conversation_opened_before_the_resolution_is_not_a_repeat() -> None:
    # conv-2 was opened at 10:02, while conv-1 was still open (resolved 10:05)
    state = run([*handled_and_resolved(), opened(at("10:02:00"), "conv-2")])
    assert SERVICE.due(state, "conv-1", RESOLVED_MS + FCR_HORIZON_MS + 1) == {
        "cx_first_contact_resolutions_total|chat|resolved_first_contact": 1
    }


def test_two_agent_messages_settle_not_first_contact_at_resolution() -> None:
    state = run([opened(at("10:00:00")), agent(at("10:00:30")), agent(at("10:02:00"))])
    e = resolved(at("10:05:00"))
    assert apply(state, e) == {
        "cx_events_total|chat|conversation.resolved": 1,
        "cx_conversations_resolved_total|chat": 1,
        "cx_resolution_seconds|chat|300": 1,  # 300 s <= 300
        "cx_resolution_seconds:sum_ms|chat": 300_000,
        "cx_backlog_conversations|chat": -1,
        "cx_first_contact_resolutions_total|chat|not_first_contact": 1,
    }
    assert SERVICE.due(state, "conv-1", RESOLVED_MS + 8 * DAY_MS) == {}


def test_second_agent_message_after_resolution_settles_not_first_contact() -> None:
    state = run(handled_and_resolved())
    e = agent(at("11:00:00"))
    assert apply(state, e) == {
        "cx_events_total|chat|message.sent": 1,
        "cx_first_contact_resolutions_total|chat|not_first_contact": 1,
    }


def test_resolved_without_any_agent_message_can_be_first_contact() -> None:
    state = run([opened(at("10:00:00")), resolved(at("10:00:40"))])
    assert SERVICE.due(state, "conv-1", at("10:00:40") + FCR_HORIZON_MS + 1) == {
        "cx_first_contact_resolutions_total|chat|resolved_first_contact": 1
    }


# --- dedup: new, duplicate, redelivery -------------------------------------------------------


def test_ledger_verdicts() -> None:
    ledger = Ledger()
    t = at("10:00:00")
    assert ledger.check("e-1", "cx.raw.chat:0:10", t, 1) == "new"
    # the same message delivered again at its own offset
    assert ledger.check("e-1", "cx.raw.chat:0:10", t, 1) == "redelivery"
    # the same source message re-sent (by ingest, after a restart) at a new offset
    assert ledger.check("e-1", "cx.raw.chat:0:10", t, 2) == "redelivery"
    # another source message with the same event_id
    assert ledger.check("e-1", "cx.raw.email:2:77", t, 3) == "duplicate"
    # the duplicate's own message again: at its offset, then re-sent at a new one
    assert ledger.check("e-1", "cx.raw.email:2:77", t, 3) == "redelivery"
    assert ledger.check("e-1", "cx.raw.email:2:77", t, 4) == "redelivery"
    # a third source message with that id is another duplicate
    assert ledger.check("e-1", "cx.raw.web:0:5", t, 5) == "duplicate"
    assert ledger.check("e-2", "cx.raw.chat:0:11", t, 6) == "new"
    # any offset at or below the last applied one is a redelivery, whatever it carries
    assert ledger.check("e-3", "cx.raw.chat:0:12", t, 6) == "redelivery"
    assert ledger.check("e-3", "cx.raw.chat:0:12", t, 0) == "redelivery"
    assert "e-3" not in ledger.seen
    assert ledger.last_offset == 6
    assert ledger.seen == {
        "e-1": [t, "cx.raw.chat:0:10", "cx.raw.email:2:77", "cx.raw.web:0:5"],
        "e-2": [t, "cx.raw.chat:0:11"],
    }


def test_ledger_json_round_trip_keeps_the_last_offset() -> None:
    ledger = Ledger()
    ledger.check("e-1", "cx.raw.chat:0:10", at("10:00:00"), 41)
    ledger.check("e-1", "cx.raw.email:0:3", at("10:00:00"), 42)
    restored = Ledger.from_json(orjson.loads(orjson.dumps(ledger.to_json())))
    assert restored == ledger
    assert restored.last_offset == 42
    assert restored.check("e-2", "cx.raw.chat:0:11", at("10:00:01"), 42) == "redelivery"
    assert restored.check("e-1", "cx.raw.email:0:3", at("10:00:00"), 43) == "redelivery"
    assert Ledger.from_json({}).last_offset == -1  # a value written before offsets were kept


def test_duplicate_event_id_from_another_source_counts_only_the_duplicate() -> None:
    processor, store = new_processor(), Store()
    original = opened(at("10:00:00"), event_id="evt-open")
    assert processor.handle(store.get, store.put, 0, 10, original, "cx.raw.chat:0:10") is not None
    stored_before = ServiceState.from_json(orjson.loads(store.data["c-1"])["s"])
    totals_before = dict(processor.views[0].totals)

    # same event_id, re-sent by the source system later (another offset, other content)
    copy = opened(at("10:07:00"), event_id="evt-open")
    assert processor.handle(store.get, store.put, 0, 11, copy, "cx.raw.chat:0:11") == {
        "cx_events_duplicate_total": 1
    }
    stored_after = ServiceState.from_json(orjson.loads(store.data["c-1"])["s"])
    assert stored_after.conversations == stored_before.conversations
    assert processor.views[0].totals == {**totals_before, "cx_events_duplicate_total": 1}
    assert stored_after.ledger.totals == {
        **stored_before.ledger.totals,
        "cx_events_duplicate_total": 1,
    }
    assert stored_after.ledger.last_offset == 11


def test_redelivery_of_the_same_message_returns_none_and_changes_nothing() -> None:
    processor, store = new_processor(), Store()
    e = opened(at("10:00:00"), event_id="evt-open")
    assert processor.handle(store.get, store.put, 0, 10, e, "cx.raw.chat:0:10") is not None
    stored, puts, totals = dict(store.data), store.puts, dict(processor.views[0].totals)

    # delivered again at the same offset (the worker restarted before committing it)
    assert processor.handle(store.get, store.put, 0, 10, e, "cx.raw.chat:0:10") is None
    # re-sent by ingest at a new offset, with the same source reference
    assert processor.handle(store.get, store.put, 0, 11, e, "cx.raw.chat:0:10") is None
    assert store.data == stored
    assert store.puts == puts  # nothing written to the changelog
    assert processor.views[0].totals == totals
    assert processor.views[0].scheduled == {("c-1", "conv-1"): at("10:01:00")}


def test_an_older_offset_is_a_redelivery_even_for_a_new_event() -> None:
    processor, store = new_processor(), Store()
    e = opened(at("10:00:00"), "conv-1")
    assert processor.handle(store.get, store.put, 0, 10, e, "cx.raw.chat:0:10") is not None
    stored, totals = dict(store.data), dict(processor.views[0].totals)
    older = opened(at("10:00:05"), "conv-2")
    assert processor.handle(store.get, store.put, 0, 9, older, "cx.raw.chat:0:9") is None
    assert store.data == stored
    assert processor.views[0].totals == totals


def test_offsets_are_compared_per_customer() -> None:
    processor, store = new_processor(), Store()
    first = opened(at("10:00:00"), customer="c-1")
    assert processor.handle(store.get, store.put, 0, 10, first, "cx.raw.chat:0:10") is not None
    # c-2's last applied offset is its own: a lower offset than c-1's is new for c-2
    second = opened(at("10:00:00"), customer="c-2")
    assert processor.handle(store.get, store.put, 0, 5, second, "cx.raw.chat:0:5") is not None
    assert processor.views[0].totals["cx_conversations_opened_total|chat"] == 2


def test_process_event_verdicts_on_state() -> None:
    state = ServiceState()
    e = opened(at("10:00:00"), event_id="evt-open")
    first = process_event(SERVICE, state, e, "cx.raw.chat:0:1", 1)
    assert first is not None and first["cx_conversations_opened_total|chat"] == 1
    assert process_event(SERVICE, state, e, "cx.raw.chat:0:1", 1) is None
    assert process_event(SERVICE, state, e, "cx.raw.chat:0:1", 2) is None
    assert process_event(SERVICE, state, e, "cx.raw.chat:0:2", 3) == {
        "cx_events_duplicate_total": 1
    }
    assert state.ledger.totals["cx_conversations_opened_total|chat"] == 1
    assert state.ledger.totals["cx_events_duplicate_total"] == 1
    assert state.ledger.totals["cx_events_total|chat|conversation.opened"] == 1


def test_redelivered_duplicate_is_not_counted_twice() -> None:
    state = ServiceState()
    e = opened(at("10:00:00"), event_id="evt-open")
    process_event(SERVICE, state, e, "cx.raw.chat:0:1", 1)
    process_event(SERVICE, state, e, "cx.raw.chat:0:2", 2)  # duplicate: counted once
    # the worker is killed before committing offset 2; offset 2 is delivered again
    assert process_event(SERVICE, state, e, "cx.raw.chat:0:2", 2) is None
    # ingest restarts and re-sends the duplicate's source message at a new offset
    assert process_event(SERVICE, state, e, "cx.raw.chat:0:2", 3) is None
    assert state.ledger.totals["cx_events_duplicate_total"] == 1


def test_redelivered_duplicate_after_a_restart_is_not_counted_twice() -> None:
    processor, store = new_processor(), Store()
    e = opened(at("10:00:00"), event_id="evt-open")
    processor.handle(store.get, store.put, 0, 1, e, "cx.raw.chat:0:1")
    processor.handle(store.get, store.put, 0, 2, e, "cx.raw.chat:0:2")
    # a new worker rebuilds its views from the table, then offset 2 arrives again
    restarted = new_processor()
    restarted.rebuild(store.data.items(), [0])
    assert restarted.handle(store.get, store.put, 0, 2, e, "cx.raw.chat:0:2") is None
    assert restarted.handle(store.get, store.put, 0, 3, e, "cx.raw.chat:0:2") is None
    assert restarted.views[0].totals["cx_events_duplicate_total"] == 1


def test_redelivery_after_the_customer_moved_past_the_dedup_horizon_is_skipped() -> None:
    state = ServiceState()
    first = opened(at("10:00:00"), "conv-1", event_id="evt-1")
    second = opened(at("10:00:00", day=2), "conv-2", event_id="evt-2")
    process_event(SERVICE, state, first, "cx.raw.chat:0:100", 100)
    process_event(SERVICE, state, second, "cx.raw.chat:0:101", 101)
    assert "evt-1" not in state.ledger.seen  # forgotten: 2 days behind the customer
    # replaying days of history: both offsets were applied within one commit interval, the
    # worker is killed before the commit, and offset 100 is delivered again
    assert process_event(SERVICE, state, first, "cx.raw.chat:0:100", 100) is None
    assert process_event(SERVICE, state, second, "cx.raw.chat:0:101", 101) is None
    assert state.ledger.totals["cx_conversations_opened_total|chat"] == 2


# --- recovery ---------------------------------------------------------------------------------


def normalised_unanswered(
    unanswered: Mapping[str, Mapping[tuple[str, str], int]],
) -> dict[str, dict[tuple[str, str], int]]:
    return {channel: dict(waits) for channel, waits in unanswered.items() if waits}


def test_rebuild_from_stored_bytes_gives_the_same_views() -> None:
    live, store = new_processor(), Store()
    feed(live, store, 0, handled_and_resolved())  # c-1: FCR pending
    feed(live, store, 0, [opened(at("10:00:10"), "call-1", channel="phone")])  # unanswered
    feed(
        live,
        store,
        1,
        [
            opened(at("10:00:00"), "mail-1", customer="c-2", channel="email"),
            opened(at("10:00:00"), "chat-9", customer="c-3"),
            agent(at("10:01:30"), "chat-9", customer="c-3"),  # breach
            resolved(at("10:04:00"), "chat-9", customer="c-3"),
            reopened(at("10:06:00"), "chat-9", customer="c-3"),
            opened(at("10:07:00"), "chat-10", customer="c-4"),
        ],
    )
    # watermark 10:02:00: phone call-1 passed its 30 s target (10:00:40), conv-1's FRT (reply
    # 10:00:30) and chat-9's (reply 10:01:30, 90 s: a breach) are final; chat-10 (opened 10:07)
    # and mail-1 (4 h target) are not due
    assert live.fire_timers(0, at("10:02:00"), store.get, store.put) == 2  # call-1, conv-1
    assert live.fire_timers(1, at("10:02:00"), store.get, store.put) == 1  # chat-9

    rebuilt = new_processor()
    rebuilt.rebuild(store.data.items(), [0, 1])
    for partition in (0, 1):
        live_view, new_view = live.views[partition], rebuilt.views[partition]
        # series that went back to 0 (e.g. unanswered after a reply) leave the live view as they
        # leave the ledgers, so the rebuilt view equals the live one exactly
        assert new_view.totals == live_view.totals, partition
        assert all(live_view.totals.values()), partition
        assert normalised_unanswered(new_view.unanswered) == normalised_unanswered(
            live_view.unanswered
        )
        assert new_view.scheduled == live_view.scheduled
    assert normalised_unanswered(rebuilt.views[0].unanswered) == {
        "phone": {("c-1", "call-1"): at("10:00:10")}
    }
    assert normalised_unanswered(rebuilt.views[1].unanswered) == {
        "email": {("c-2", "mail-1"): at("10:00:00")},
        "chat": {("c-4", "chat-10"): at("10:07:00")},
    }
    assert rebuilt.views[0].totals["cx_first_response_breaches_total|phone"] == 1
    assert rebuilt.views[1].totals["cx_first_response_breaches_total|chat"] == 1
    assert rebuilt.views[1].totals["cx_backlog_conversations|chat"] == 2  # chat-9, chat-10


def test_rebuilt_timers_fire_like_the_live_ones() -> None:
    events_p0 = [*handled_and_resolved(), opened(at("10:00:10"), "call-1", channel="phone")]
    live, live_store = new_processor(), Store()
    feed(live, live_store, 0, events_p0)

    recovered_store = Store()
    recovered_store.data = dict(live_store.data)
    recovered = new_processor()
    recovered.rebuild(recovered_store.data.items(), [0])

    horizon = RESOLVED_MS + FCR_HORIZON_MS + 1
    # call-1 breach (opened 10:00:10 + 30 s) and conv-1 FCR horizon: two timers each
    assert live.fire_timers(0, horizon, live_store.get, live_store.put) == 2
    assert recovered.fire_timers(0, horizon, recovered_store.get, recovered_store.put) == 2
    assert recovered.views[0].totals == live.views[0].totals
    assert recovered_store.data == live_store.data
    assert live.views[0].totals["cx_first_response_breaches_total|phone"] == 1
    assert (
        live.views[0].totals["cx_first_contact_resolutions_total|chat|resolved_first_contact"] == 1
    )


def test_partition_view_drops_series_whose_total_returns_to_zero() -> None:
    view = PartitionView(WindowView(KpiConfig()))
    view.add({"cx_unanswered_conversations|chat": 1, "cx_backlog_conversations|chat": 1})
    view.add({"cx_unanswered_conversations|chat": -1, "cx_backlog_conversations|chat": 1})
    assert view.totals == {"cx_backlog_conversations|chat": 2}
    view.add({"cx_backlog_conversations|chat": -2, "cx_events_duplicate_total": 0})
    assert view.totals == {}


def test_live_view_after_a_reply_has_no_zero_series() -> None:
    processor, store = new_processor(), Store()
    feed(processor, store, 0, [opened(at("10:00:00")), agent(at("10:00:30"))])
    view = processor.views[0]
    assert "cx_unanswered_conversations|chat" not in view.totals
    stored = ServiceState.from_json(orjson.loads(store.data["c-1"])["s"])
    assert view.totals == stored.ledger.totals


def test_rebuild_keeps_only_the_requested_partitions() -> None:
    live, store = new_processor(), Store()
    feed(live, store, 0, [opened(at("10:00:00"), customer="c-1")])
    feed(live, store, 1, [opened(at("10:00:00"), customer="c-2")])
    rebuilt = new_processor()
    rebuilt.rebuild(store.data.items(), [1])
    assert set(rebuilt.views) == {1}
    assert rebuilt.totals_by_partition() == {
        1: {
            "cx_events_total|chat|conversation.opened": 1,
            "cx_conversations_opened_total|chat": 1,
            "cx_backlog_conversations|chat": 1,
            "cx_unanswered_conversations|chat": 1,
        }
    }


# --- retention ---------------------------------------------------------------------------------


def test_state_does_not_grow_with_finished_work() -> None:
    # 2000 conversations of one customer over 60 days, one every 30 d / 1000 = 2_592_000 ms
    # (43.2 min): opened, agent reply after 30 s, resolved after 10 min. Each opening is a
    # repeat contact of the previous resolution (1_992_000 ms earlier), so each earlier FCR
    # settles at once. 60 days is past retention + tombstone retention (8 d + 30 d).
    spacing = 30 * DAY_MS // 1000
    state = ServiceState()
    largest = largest_forgotten = 0
    for i in range(2000):
        start = at("00:00:00") + i * spacing
        run(
            [
                opened(start, f"conv-{i}"),
                agent(start + 30_000, f"conv-{i}"),
                resolved(start + 600_000, f"conv-{i}"),
            ],
            state,
        )
        largest = max(largest, len(state.conversations))
        largest_forgotten = max(largest_forgotten, len(state.forgotten))
    # Retention = FCR horizon + dedup horizon = 8 d = 691_200_000 ms = 266.67 spacings. At the
    # last event (conv-1999 resolved), conv-i (last event at i * spacing + 600_000) is kept when
    # i * 2_592_000 >= 1999 * 2_592_000 - 691_200_000, i.e. i >= 1732.33: conv-1733..1999 = 267.
    assert len(state.conversations) == 267
    assert largest == 267
    assert min(int(key.split("-")[1]) for key in state.conversations) == 1733
    # Tombstones: a forgotten id is dropped once its last event is more than the tombstone
    # retention (30 d = 2_592_000_000 ms = 1000 spacings) behind the latest event, i.e. for
    # i < 1999 - 1000 = 999: conv-999..1732 = 734 ids, the most there ever are (from the last
    # event of conv-1000 on, each conversation forgotten drops one tombstone).
    assert len(state.forgotten) == 734
    assert largest_forgotten == 734
    assert state.forgotten == {
        f"conv-{i}": at("00:00:00") + i * spacing + 600_000 for i in range(999, 1733)
    }
    # so nothing is remembered of work older than retention + tombstone retention
    latest_ms = at("00:00:00") + 1999 * spacing + 600_000
    horizon_ms = KpiConfig().conversation_retention_ms + KpiConfig().tombstone_retention_ms
    assert min(state.forgotten.values()) >= latest_ms - horizon_ms
    # Seen ids are kept 1 day (86_400_000 ms) behind the latest event: conv-i's three events
    # are all kept when i * 2_592_000 >= 1999 * 2_592_000 - 85_800_000, i.e. i >= 1965.9:
    # conv-1966..1999 = 34 conversations = 102 event ids.
    assert len(state.ledger.seen) == 102
    # forgetting changes no total: 30 s FRT le=30, 600 s resolution le=900 (300 < 600 <= 900)
    assert kpis(state.ledger.totals) == {
        "cx_conversations_opened_total|chat": 2000,
        "cx_conversations_resolved_total|chat": 2000,
        "cx_first_response_seconds|chat|30": 2000,
        "cx_first_response_seconds:sum_ms|chat": 60_000_000,
        "cx_resolution_seconds|chat|900": 2000,
        "cx_resolution_seconds:sum_ms|chat": 1_200_000_000,
        "cx_first_contact_resolutions_total|chat|not_first_contact": 1999,
    }


def test_first_contact_resolution_is_forgotten_after_retention() -> None:
    state = run(handled_and_resolved())
    SERVICE.due(state, "conv-1", RESOLVED_MS + FCR_HORIZON_MS + 1)
    # anything applied more than 8 days after conv-1's last event drops it
    run([opened(RESOLVED_MS + 8 * DAY_MS + 1, "conv-2")], state)
    assert set(state.conversations) == {"conv-2"}


def test_late_reopen_of_a_forgotten_conversation_observes_nothing_again() -> None:
    state = run(handled_and_resolved())  # FRT 30 s, resolution 300 s
    settled = SERVICE.due(state, "conv-1", RESOLVED_MS + FCR_HORIZON_MS + 1)
    assert settled == {"cx_first_contact_resolutions_total|chat|resolved_first_contact": 1}
    state.ledger.add(settled)  # as the timer does
    # anything applied more than 8 days after conv-1's last event (10:05:00) forgets it, and
    # leaves a tombstone: conv-1 -> its last event
    run([customer_message(RESOLVED_MS + 8 * DAY_MS + 1, "conv-2")], state)
    assert set(state.conversations) == {"conv-2"}
    assert state.forgotten == {"conv-1": RESOLVED_MS}
    # 9 days after its resolution, within the 30 d tombstone retention, conv-1 is reopened:
    # one reopen, back in the backlog; it was answered, so it is not unanswered again
    assert apply(state, reopened(RESOLVED_MS + 9 * DAY_MS, "conv-1")) == {
        "cx_events_total|chat|conversation.reopened": 1,
        "cx_conversations_reopened_total|chat": 1,
        "cx_backlog_conversations|chat": 1,
    }
    assert state.forgotten == {}
    assert state.conversations["conv-1"].fcr == "forgotten"
    # resolved again a minute later: one more resolution, out of the backlog; resolution time
    # and FCR were observed before it was forgotten, so not again
    assert apply(state, resolved(RESOLVED_MS + 9 * DAY_MS + 60_000, "conv-1")) == {
        "cx_events_total|chat|conversation.resolved": 1,
        "cx_conversations_resolved_total|chat": 1,
        "cx_backlog_conversations|chat": -1,
    }
    # no timer is left to settle: no FCR horizon, no breach
    assert SERVICE.due(state, "conv-1", RESOLVED_MS + 30 * DAY_MS) == {}
    assert kpis(state.ledger.totals) == {
        "cx_conversations_opened_total|chat": 1,
        "cx_conversations_resolved_total|chat": 2,
        "cx_conversations_reopened_total|chat": 1,
        "cx_first_response_seconds|chat|30": 1,
        "cx_first_response_seconds:sum_ms|chat": 30_000,
        "cx_resolution_seconds|chat|300": 1,
        "cx_resolution_seconds:sum_ms|chat": 300_000,
        "cx_first_contact_resolutions_total|chat|resolved_first_contact": 1,
    }


def test_open_conversation_is_never_forgotten() -> None:
    state = run([opened(at("10:00:00"), "conv-1")])
    run([opened(at("10:00:00", day=30), "conv-2")], state)
    assert set(state.conversations) == {"conv-1", "conv-2"}


def test_deltas_of_a_non_conversation_change_are_empty() -> None:
    # a customer message changes no KPI, only the event count
    state = run([opened(at("10:00:00"))])
    e = customer_message(at("10:00:10"))
    result = apply(state, e)
    assert dict(result) == {"cx_events_total|chat|message.received": 1}
