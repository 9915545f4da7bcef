"""Service and feedback journeys for the traffic generator: conversations, surveys, churn.

A conversation opens, the customer writes, a bot or the system may answer first (never an agent
reply, so never a first response), an agent replies after a channel-typical delay (outages push
agent actions past their end; a failing bot sends more work to agents, who answer slower), a
few more messages go back and forth, it is resolved and sometimes reopened and resolved again.
How it went sets a quality in [0, 1] that drives survey scores, repeat contacts on another
channel and, rarely, churn.
"""

from __future__ import annotations

import math
from collections.abc import Generator

from pipeline.generator_world import CHANNEL_WEIGHTS, CHANNELS, Customer, Journey, Step, World

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0

TOPICS = ("billing", "delivery", "returns", "account", "product", "other")
TOPIC_WEIGHTS = (20.0, 25.0, 15.0, 15.0, 15.0, 10.0)
# First agent reply (low, high) and the target it is judged against, in seconds: a healthy
# contact centre answers within target, but for the slow tail (`SLOW_REPLY_P`) and the time a
# chat spends with the customer and the bot first, so the first-response SLO (95%) holds
# without an incident and the burn-rate alerts stay quiet until one is scripted.
FIRST_REPLY_S = {
    "chat": (10.0, 50.0),
    "phone": (5.0, 25.0),
    "social": (5 * MINUTE, 45 * MINUTE),
    "email": (30 * MINUTE, 3 * HOUR),
    "web": (30 * MINUTE, 3 * HOUR),
}
SLOW_REPLY_P = 0.04
FRT_TARGET_S = {"chat": 60.0, "phone": 30.0, "social": HOUR, "email": 4 * HOUR, "web": 4 * HOUR}
CUSTOMER_REPLY_S = {
    "chat": (10.0, 90.0),
    "phone": (5.0, 30.0),
    "social": (2 * MINUTE, 30 * MINUTE),
    "email": (30 * MINUTE, 4 * HOUR),
    "web": (30 * MINUTE, 4 * HOUR),
}
RESOLVE_S = {
    "chat": (20.0, 180.0),
    "phone": (5.0, 30.0),
    "social": (5 * MINUTE, HOUR),
    "email": (10 * MINUTE, 2 * HOUR),
    "web": (10 * MINUTE, 2 * HOUR),
}
BOT_ACK_P = {"chat": 0.85, "social": 0.6}
BOT_DEFLECT_P = 0.15
SURVEYS = ("nps", "csat", "ces")
SURVEY_WEIGHTS = (45.0, 40.0, 15.0)
SURVEY_RANGES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
CHURN_REASONS = ("price", "service", "moved", "no_longer_needed", "other")
CHURN_REASON_WEIGHTS = (30.0, 20.0, 20.0, 20.0, 10.0)
_GOOD_COMMENTS = ("Quick and friendly, thanks!", "Solved in one go.", "Great help")
_BAD_COMMENTS = ("Waited far too long.", "Had to ask three times.", "Nobody answered")

Sub = Generator[Step, None, float]


def experience_quality(frt: float | None, target: float, reopened: bool, exchanges: int) -> float:
    """How well a conversation went, 0 (awful) to 0.9 (smooth); a slow first reply hurts most."""
    quality = 0.9
    if frt is not None and frt > target:
        quality -= min(0.6, 0.15 + 0.2 * math.log2(frt / target))
    if reopened:
        quality -= 0.2
    if exchanges >= 3:
        quality -= 0.1
    return max(0.0, quality)


def survey_score(world: World, survey: str, quality: float) -> int:
    low, high = SURVEY_RANGES[survey]
    value = world.rng.gauss(low + quality * (high - low), 0.12 * (high - low))
    return min(high, max(low, round(value)))


def survey_experience(survey: str, score: int) -> str | None:
    """The bad experience an answer reveals: a detractor, a low CSAT or a hard CES; else None."""
    if survey == "nps":
        return "detractor" if score <= 6 else None
    if survey == "csat":
        return "low_csat" if score <= 2 else None
    return "high_effort" if score <= 3 else None


def survey_journey(
    world: World,
    customer: Customer,
    at: float,
    channel: str,
    quality: float,
    conversation_id: str | None = None,
) -> Journey:
    """One ``survey.answered`` rating ``channel`` (published on the survey topic)."""
    survey = world.pick(SURVEYS, SURVEY_WEIGHTS)
    score = survey_score(world, survey, quality)
    comment = None
    if world.chance(0.2):
        comments = _GOOD_COMMENTS if quality >= 0.6 else _BAD_COMMENTS
        comment = comments[world.rng.randrange(len(comments))]
    yield world.emit(
        at,
        "survey.answered",
        customer,
        channel,
        experience=survey_experience(survey, score),
        survey=survey,
        score=score,
        conversation_id=conversation_id,
        comment=comment,
    )


def churn_journey(world: World, customer: Customer, at: float, reason: str | None) -> Journey:
    """The customer closes the account, on their main channel (at most once per customer)."""
    if customer.churn_scheduled:
        return
    customer.churn_scheduled = True
    yield world.emit(at, "customer.churned", customer, customer.main_channel, reason=reason)
    customer.churned = True


def churn_clock(world: World, share_per_day: float) -> Journey:
    """Churn whatever the experience: about ``share_per_day`` of the customers leave each day."""
    t = world.start_s
    while True:
        t += world.rng.expovariate(share_per_day * len(world.customers) / DAY)
        reason = world.pick(CHURN_REASONS, CHURN_REASON_WEIGHTS)
        yield from churn_journey(world, world.pick_customer(), t, reason)


def conversation_journey(
    world: World,
    customer: Customer,
    at: float,
    channel: str | None = None,
    topic: str | None = None,
    depth: int = 0,
) -> Journey:
    """A conversation from opened to resolved, then maybe a repeat contact on another channel."""
    if channel is None:
        own = world.chance(0.6)
        channel = customer.main_channel if own else world.pick(CHANNELS, CHANNEL_WEIGHTS)
    if topic is None and world.chance(0.95):
        topic = world.pick(TOPICS, TOPIC_WEIGHTS)
    conversation = world.new_id("cv")
    ids = {"conversation_id": conversation}
    yield world.emit(at, "conversation.opened", customer, channel, topic=topic, **ids)
    t = at + (world.uniform(2.0, 20.0) if channel == "chat" else 0.0)
    yield world.emit(t, "message.received", customer, channel, **ids)
    has_bot = channel in BOT_ACK_P
    bot_failing = has_bot and world.incident_active("bot_failure", channel, t)
    automation = _bot_touch if has_bot else _system_touch
    t, deflected = yield from automation(world, customer, channel, conversation, t)
    if deflected:
        t += world.uniform(5.0, 20.0)  # closed right after the bot's answer
        yield world.emit(t, "conversation.resolved", customer, channel, **ids)
        _after_resolution(world, customer, channel, conversation, t, 0.8)
        return
    delay = _first_reply_delay(world, channel) * (world.uniform(2.0, 4.0) if bot_failing else 1.0)
    reply_at = world.agent_time(channel, max(t, at + delay))
    t = yield from _wait_for_agent(world, customer, channel, conversation, t, reply_at)
    frt = reply_at - at
    exchanges = world.pick((1, 2, 3, 4), (60.0, 25.0, 10.0, 5.0))
    slow = "slow_response" if frt > FRT_TARGET_S[channel] else None
    for number in range(exchanges):
        if number:
            t += world.uniform(*CUSTOMER_REPLY_S[channel])
            yield world.emit(t, "message.received", customer, channel, **ids)
            reply_at = world.agent_time(channel, t + _first_reply_delay(world, channel) / 2)
        t = reply_at
        experience = None if number else slow  # the first response is the one judged
        yield world.emit(
            t, "message.sent", customer, channel, experience=experience, author="agent", **ids
        )
    t = world.agent_time(channel, t + world.uniform(*RESOLVE_S[channel]))
    yield world.emit(t, "conversation.resolved", customer, channel, **ids)
    quality = experience_quality(frt, FRT_TARGET_S[channel], False, exchanges)
    if world.chance(0.04 + 0.12 * (1.0 - quality)):
        t = yield from _reopen(world, customer, channel, conversation, t)
        quality = experience_quality(frt, FRT_TARGET_S[channel], True, exchanges)
    _after_resolution(world, customer, channel, conversation, t, quality)
    if depth < 2 and world.chance(0.05 + 0.3 * (1.0 - quality)):
        others = [(c, w) for c, w in zip(CHANNELS, CHANNEL_WEIGHTS, strict=True) if c != channel]
        other = world.pick([c for c, _ in others], [w for _, w in others])
        gap = (
            world.uniform(10 * MINUTE, 2 * HOUR)
            if world.chance(0.4)
            else world.uniform(2 * HOUR, 3 * DAY)
        )
        again = t + gap
        world.later(again, conversation_journey, world, customer, again, other, topic, depth + 1)


def _bot_touch(
    world: World, customer: Customer, channel: str, conversation: str, t: float
) -> Generator[Step, None, tuple[float, bool]]:
    """Bot auto-ack and sometimes a bot answer that settles it; a failing bot helps nobody."""
    ids = {"conversation_id": conversation}
    if world.incident_active("bot_failure", channel, t):
        if world.chance(0.3):  # it answers, uselessly; the rest of the time it is silent
            t += world.uniform(1.0, 3.0)
            yield world.emit(t, "message.sent", customer, channel, author="bot", **ids)
        return t, False
    if world.chance(BOT_ACK_P[channel]):
        t += world.uniform(1.0, 3.0)
        yield world.emit(t, "message.sent", customer, channel, author="bot", **ids)
    if not world.chance(BOT_DEFLECT_P):
        return t, False
    t += world.uniform(5.0, 30.0)  # the customer answers the bot at once, or leaves
    yield world.emit(t, "message.received", customer, channel, **ids)
    t += world.uniform(1.0, 3.0)
    yield world.emit(t, "message.sent", customer, channel, author="bot", **ids)
    return t, True


def _system_touch(
    world: World, customer: Customer, channel: str, conversation: str, t: float
) -> Generator[Step, None, tuple[float, bool]]:
    """The helpdesk's auto-reply (e-mail, web form) or the phone menu: a system message."""
    if world.chance(0.9 if channel in ("email", "web") else 0.7):
        t += world.uniform(5.0, 60.0) if channel != "phone" else world.uniform(0.0, 5.0)
        yield world.emit(
            t, "message.sent", customer, channel, author="system", conversation_id=conversation
        )
    return t, False


def _wait_for_agent(
    world: World, customer: Customer, channel: str, conversation: str, t: float, reply_at: float
) -> Sub:
    """Impatient customers nudge while they wait; chat shows a system line as the agent joins."""
    typical = FIRST_REPLY_S[channel][1]
    nudges = (reply_at - t > 2 * typical) + (reply_at - t > 6 * typical)
    last = t
    for fraction in sorted(world.uniform(0.3, 0.9) for _ in range(nudges)):
        last = t + fraction * (reply_at - t)
        yield world.emit(last, "message.received", customer, channel, conversation_id=conversation)
    if channel == "chat" and world.chance(0.4):
        yield world.emit(
            max(last, reply_at - 2.0),
            "message.sent",
            customer,
            channel,
            author="system",
            conversation_id=conversation,
        )
    return reply_at


def _reopen(world: World, customer: Customer, channel: str, conversation: str, t: float) -> Sub:
    ids = {"conversation_id": conversation}
    t += (
        world.uniform(5 * MINUTE, 2 * HOUR)
        if world.chance(0.5)
        else world.uniform(2 * HOUR, 2 * DAY)
    )
    yield world.emit(t, "conversation.reopened", customer, channel, experience="reopened", **ids)
    t += world.uniform(0.0, 30.0)
    yield world.emit(t, "message.received", customer, channel, **ids)
    t = world.agent_time(channel, t + _first_reply_delay(world, channel))
    yield world.emit(t, "message.sent", customer, channel, author="agent", **ids)
    t = world.agent_time(channel, t + world.uniform(*RESOLVE_S[channel]))
    yield world.emit(t, "conversation.resolved", customer, channel, **ids)
    return t


def _after_resolution(
    world: World, customer: Customer, channel: str, conversation: str, t: float, quality: float
) -> None:
    if world.chance(0.3):
        at = t + _survey_delay(world, channel)
        world.later(at, survey_journey, world, customer, at, channel, quality, conversation)
    # Rate mode only: in per-customer mode the customer's churn hazard decides (lifecycle).
    if world.lifecycle is None and quality < 0.4 and world.chance(0.002):
        at = t + world.uniform(DAY, 14 * DAY)
        world.later(at, churn_journey, world, customer, at, "service")


def _first_reply_delay(world: World, channel: str) -> float:
    delay = world.uniform(*FIRST_REPLY_S[channel])
    return delay * world.uniform(1.5, 4.0) if world.chance(SLOW_REPLY_P) else delay


def _survey_delay(world: World, channel: str) -> float:
    if channel in ("chat", "phone"):
        return world.uniform(MINUTE, 30 * MINUTE)
    return world.uniform(30 * MINUTE, DAY)
