"""A hand-made stream with known answers: bots, auto-acks, reopen, repeat contact on another
channel, a duplicate, and every dead-letter reason. `EXPECTED` is worked out by hand below.

Used by the offline test (`cxpulse compute`) and the live one (broker + worker + replay), so
both must give exactly these numbers.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_BYTES = 1024 * 1024


def _e(n: int, kind: str, at: str, customer: str, channel: str, **extra: Any) -> bytes:
    event = {
        "event_id": f"e{n}",
        "type": kind,
        "occurred_at": at,
        "customer_id": customer,
        "channel": channel,
        **extra,
    }
    return orjson.dumps(event)


D = "2026-10-22T"
SURVEY_NPS = _e(17, "survey.answered", D + "10:15:00Z", "c4", "chat", survey="nps", score=10)

LINES: list[bytes] = [
    # c1, chat conversation A: auto-ack by a bot and a system message do not count for FRT.
    _e(1, "conversation.opened", D + "10:00:00Z", "c1", "chat", conversation_id="A", topic="billing"),
    _e(21, "order.placed", D + "10:00:00Z", "c5", "shop", order_id="o1", amount=19.99, currency="EUR"),
    _e(2, "message.received", D + "10:00:01Z", "c1", "chat", conversation_id="A"),
    _e(3, "message.sent", D + "10:00:02Z", "c1", "chat", conversation_id="A", author="bot"),
    _e(4, "message.sent", D + "10:00:03Z", "c1", "chat", conversation_id="A", author="system"),
    b"not json{",  # invalid_json
    # FRT chat = 45 s (target 60 s: no breach)
    _e(5, "message.sent", D + "10:00:45Z", "c1", "chat", conversation_id="A", author="agent"),
    # c2, phone conversation C: FRT 90 s > 30 s target -> breach; resolved, reopened, resolved.
    _e(10, "conversation.opened", D + "10:05:00Z", "c2", "phone", conversation_id="C"),
    _e(11, "message.sent", D + "10:06:30Z", "c2", "phone", conversation_id="C", author="agent"),
    b"[1, 2]",  # invalid_json: not an object
    # resolution chat = 600 s; FCR pending until c1's repeat contact on email (e7)
    _e(6, "conversation.resolved", D + "10:10:00Z", "c1", "chat", conversation_id="A"),
    SURVEY_NPS,  # promoter, chat
    SURVEY_NPS,  # the same event again: a duplicate, counted once
    _e(19, "survey.answered", D + "10:16:00Z", "c4", "phone", survey="csat", score=2),
    _e(20, "survey.answered", D + "10:17:00Z", "c4", "chat", survey="ces", score=6),
    _e(23, "order.placed", D + "10:18:00Z", "c5", "shop", order_id="o2", amount=5.01, currency="USD"),
    # resolution phone = 900 s
    _e(12, "conversation.resolved", D + "10:20:00Z", "c2", "phone", conversation_id="C"),
    orjson.dumps({"event_id": "b3", "type": "message.received", "occurred_at": D + "10:21:00Z",
                  "channel": "chat", "conversation_id": "X"}),  # missing_field: customer_id
    _e(13, "conversation.reopened", D + "10:30:00Z", "c2", "phone", conversation_id="C"),
    _e(14, "conversation.resolved", D + "10:40:00Z", "c2", "phone", conversation_id="C"),
    _e(91, "survey.answered", D + "10:41:00Z", "c4", "chat", survey="nps", score=11),  # invalid_field
    _e(92, "foo.bar", D + "10:42:00Z", "c4", "chat"),  # unknown_type
    orjson.dumps({"event_id": "b6", "type": "message.received", "occurred_at": D + "10:43:00Z",
                  "customer_id": "c4", "channel": "chat", "conversation_id": "Y",
                  "schema_version": 2}),  # unsupported_version
    _e(93, "message.received", "2026-10-22T10:44:00", "c4", "chat", conversation_id="Z"),  # no offset
    b"\xff\xfe{\"event_id\": \"b9\"}",  # invalid_json: not UTF-8
    orjson.dumps({"event_id": "b10", "type": "customer.churned", "occurred_at": D + "10:45:00Z",
                  "customer_id": "c9", "channel": "web", "note": "x" * MAX_BYTES}),  # too_large
    # c3, chat conversation D: a bot answers, no agent ever does -> breach by the watermark,
    # still in the backlog and unanswered at the end.
    _e(15, "conversation.opened", D + "11:00:00Z", "c3", "chat", conversation_id="D"),
    _e(16, "message.sent", D + "11:00:01Z", "c3", "chat", conversation_id="D", author="bot"),
    # c1 again, on email, within 7 days of A's resolution: a repeat contact -> A not FCR.
    _e(7, "conversation.opened", "2026-10-23T09:00:00Z", "c1", "email", conversation_id="B"),
    # FRT email = 3 h = 10800 s (target 4 h)
    _e(8, "message.sent", "2026-10-23T12:00:00Z", "c1", "email", conversation_id="B", author="agent"),
    # resolution email = 4 h = 14400 s; FCR settled resolved_first_contact once the watermark
    # passes 2026-10-30T13:00 (the last event, 2026-10-31T00:00, less 5 min lateness does)
    _e(9, "conversation.resolved", "2026-10-23T13:00:00Z", "c1", "email", conversation_id="B"),
    # late: promised 2026-10-24, delivered 2026-10-25
    _e(22, "order.delivered", "2026-10-25T10:00:00Z", "c5", "shop", order_id="o1",
       promised_at="2026-10-24T00:00:00Z"),
    _e(24, "order.delivered", "2026-10-25T11:00:00Z", "c5", "shop", order_id="o2"),  # on time
    _e(25, "return.requested", "2026-10-25T12:00:00Z", "c5", "returns", order_id="o1",
       return_id="r1", reason="late_delivery"),
    # time to refund = 1 day = 86400 s
    _e(26, "refund.issued", "2026-10-26T12:00:00Z", "c5", "returns", return_id="r1", amount=19.99),
    _e(27, "customer.churned", "2026-10-27T00:00:00Z", "c5", "web"),
    _e(28, "survey.answered", "2026-10-31T00:00:00Z", "c1", "email", survey="nps", score=3),
]  # fmt: skip

# The watermark at the end: the last event time less 5 minutes of allowed lateness.
FINAL_WATERMARK_S = 1_793_404_800 - 300  # 2026-10-31T00:00:00Z - 300 s

EXPECTED: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {
    # valid events, once each: 27 (28 event lines less one duplicate)
    ("cx_events_total", (("channel", "chat"), ("type", "conversation.opened"))): 2,
    ("cx_events_total", (("channel", "chat"), ("type", "message.received"))): 1,
    ("cx_events_total", (("channel", "chat"), ("type", "message.sent"))): 4,
    ("cx_events_total", (("channel", "chat"), ("type", "conversation.resolved"))): 1,
    ("cx_events_total", (("channel", "chat"), ("type", "survey.answered"))): 2,
    ("cx_events_total", (("channel", "email"), ("type", "conversation.opened"))): 1,
    ("cx_events_total", (("channel", "email"), ("type", "message.sent"))): 1,
    ("cx_events_total", (("channel", "email"), ("type", "conversation.resolved"))): 1,
    ("cx_events_total", (("channel", "email"), ("type", "survey.answered"))): 1,
    ("cx_events_total", (("channel", "phone"), ("type", "conversation.opened"))): 1,
    ("cx_events_total", (("channel", "phone"), ("type", "message.sent"))): 1,
    ("cx_events_total", (("channel", "phone"), ("type", "conversation.resolved"))): 2,
    ("cx_events_total", (("channel", "phone"), ("type", "conversation.reopened"))): 1,
    ("cx_events_total", (("channel", "phone"), ("type", "survey.answered"))): 1,
    ("cx_events_total", (("channel", "shop"), ("type", "order.placed"))): 2,
    ("cx_events_total", (("channel", "shop"), ("type", "order.delivered"))): 2,
    ("cx_events_total", (("channel", "returns"), ("type", "return.requested"))): 1,
    ("cx_events_total", (("channel", "returns"), ("type", "refund.issued"))): 1,
    ("cx_events_total", (("channel", "web"), ("type", "customer.churned"))): 1,
    ("cx_events_duplicate_total", ()): 1,
    ("cx_events_rejected_total", (("reason", "invalid_json"),)): 3,
    ("cx_events_rejected_total", (("reason", "missing_field"),)): 1,
    ("cx_events_rejected_total", (("reason", "invalid_field"),)): 2,
    ("cx_events_rejected_total", (("reason", "unknown_type"),)): 1,
    ("cx_events_rejected_total", (("reason", "unsupported_version"),)): 1,
    ("cx_events_rejected_total", (("reason", "too_large"),)): 1,
    ("cx_events_late_total", (("channel", "chat"),)): 0,
    ("cx_conversations_opened_total", (("channel", "chat"),)): 2,
    ("cx_conversations_opened_total", (("channel", "email"),)): 1,
    ("cx_conversations_opened_total", (("channel", "phone"),)): 1,
    ("cx_conversations_resolved_total", (("channel", "chat"),)): 1,
    ("cx_conversations_resolved_total", (("channel", "email"),)): 1,
    ("cx_conversations_resolved_total", (("channel", "phone"),)): 2,
    ("cx_conversations_reopened_total", (("channel", "phone"),)): 1,
    ("cx_conversations_reopened_total", (("channel", "chat"),)): 0,
    ("cx_first_response_seconds_count", (("channel", "chat"),)): 1,
    ("cx_first_response_seconds_sum", (("channel", "chat"),)): 45,
    ("cx_first_response_seconds_bucket", (("channel", "chat"), ("le", "30"))): 0,
    ("cx_first_response_seconds_bucket", (("channel", "chat"), ("le", "60"))): 1,
    ("cx_first_response_seconds_sum", (("channel", "email"),)): 10800,
    ("cx_first_response_seconds_sum", (("channel", "phone"),)): 90,
    ("cx_first_response_seconds_bucket", (("channel", "phone"), ("le", "60"))): 0,
    ("cx_first_response_seconds_bucket", (("channel", "phone"), ("le", "120"))): 1,
    ("cx_resolution_seconds_sum", (("channel", "chat"),)): 600,
    ("cx_resolution_seconds_sum", (("channel", "email"),)): 14400,
    ("cx_resolution_seconds_sum", (("channel", "phone"),)): 900,
    ("cx_resolution_seconds_count", (("channel", "phone"),)): 1,
    ("cx_first_contact_resolutions_total", (("channel", "chat"), ("outcome", "not_first_contact"))): 1,
    ("cx_first_contact_resolutions_total", (("channel", "email"), ("outcome", "resolved_first_contact"))): 1,
    ("cx_first_contact_resolutions_total", (("channel", "phone"), ("outcome", "not_first_contact"))): 1,
    ("cx_first_response_breaches_total", (("channel", "phone"),)): 1,
    ("cx_first_response_breaches_total", (("channel", "chat"),)): 1,
    ("cx_first_response_breaches_total", (("channel", "email"),)): 0,
    ("cx_backlog_conversations", (("channel", "chat"),)): 1,
    ("cx_backlog_conversations", (("channel", "phone"),)): 0,
    ("cx_unanswered_conversations", (("channel", "chat"),)): 1,
    # watermark - D opened = (2026-10-31T00:00 - 300 s) - 2026-10-22T11:00 = 738000 - 300
    ("cx_oldest_unanswered_age_seconds", (("channel", "chat"),)): 737_700,
    ("cx_oldest_unanswered_age_seconds", (("channel", "email"),)): 0,
    ("cx_watermark_timestamp_seconds", ()): FINAL_WATERMARK_S,
    ("cx_survey_responses_total", (("survey", "nps"), ("channel", "chat"), ("category", "promoter"))): 1,
    ("cx_survey_responses_total", (("survey", "nps"), ("channel", "email"), ("category", "detractor"))): 1,
    ("cx_survey_responses_total", (("survey", "csat"), ("channel", "phone"), ("category", "unsatisfied"))): 1,
    ("cx_survey_responses_total", (("survey", "ces"), ("channel", "chat"), ("category", "easy"))): 1,
    ("cx_survey_score_total", (("survey", "nps"), ("channel", "chat"))): 10,
    ("cx_survey_score_total", (("survey", "nps"), ("channel", "email"))): 3,
    ("cx_survey_score_total", (("survey", "csat"), ("channel", "phone"))): 2,
    ("cx_survey_score_total", (("survey", "ces"), ("channel", "chat"))): 6,
    ("cx_orders_total", (("channel", "shop"),)): 2,
    ("cx_order_value_total", (("channel", "shop"), ("currency", "EUR"))): 19.99,
    ("cx_order_value_total", (("channel", "shop"), ("currency", "USD"))): 5.01,
    ("cx_deliveries_total", (("outcome", "late"),)): 1,
    ("cx_deliveries_total", (("outcome", "on_time"),)): 1,
    ("cx_returns_total", (("reason", "late_delivery"),)): 1,
    ("cx_refund_seconds_count", ()): 1,
    ("cx_refund_seconds_sum", ()): 86400,
    ("cx_churned_customers_total", ()): 1,
}  # fmt: skip


def jsonl() -> bytes:
    return b"".join(line + b"\n" for line in LINES)
