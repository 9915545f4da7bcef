"""Pure churn-risk logic: one customer's purchase rhythm and experience, scored (contract 2, 3).

In: every validated event of one customer (all types: orders give the purchase rhythm, the
rest the experience signals), and from a timer the event time to rescore at. Out: the
customer's `CustomerProfile` (score, tier, top reasons); its contributions to
`cx_customers_by_risk_tier{tier}` (a gauge: +1 on the current tier, nothing once churned) and
`cx_churn_signals_total{tier}`; and via `signal` the `cx.churn` value of the last tier change
(the caller adds `customer_id` and publishes it keyed by customer). `cx_events_total` and
`cx_churned_customers_total` are counted by other families (`counts_events = False`).

Model: ``score = 1 - p * prod_k (1 - e_k)`` in [0, 1], where ``p`` is `bgnbd.p_alive_risk`
of the customer's ``(x, t_x, T)`` (counted as `agents.rfm` does: distinct UTC order days,
weeks = days / 7, ``T`` up to the day scored; ``p = 1`` before the first order: no rhythm,
no evidence of inactivity) and ``e_k = weight_k * min(1, intensity_k)`` for each experience
signal. An intensity is ``sum_i 0.5 ** ((t - t_i) / half_life)`` over the signal's occurrences,
kept as ``(value, as_of)`` and decayed when read. Reasons are `inactive` (``1 - p``) and each
``e_k``: the top 3 above 0.01, largest first, ties by name.

Choices where the contract is silent (for the README):
- A profile's clock only moves forward: an event older than the last scoring adds its
  occurrence, decayed to that scoring's time, and the customer is scored at that time again.
- Tiers move up as soon as the score reaches a higher threshold, and down only once it falls
  below the current tier's threshold minus the hysteresis margin, to the highest tier whose
  threshold minus the margin the score still reaches.
- The first scoring assigns a tier (gauge +1). It is a signal (`cx_churn_signals_total`,
  a `cx.churn` message with ``previous_tier = null``) only when that tier is `medium` or
  `high`: a new customer starting `low` is not news.
- `slow_response` happens at ``opened + target`` when the first agent reply (or the
  resolution, whichever comes first, as for FRT breaches) comes later than the channel's FRT
  target, or the conversation is still unanswered past it when scored; once per conversation.
- `repeat_contact`: a conversation's first `conversation.opened`, any channel, at or after
  another conversation's last resolution and within the FCR horizon.
- `customer.churned` ends the profile: it leaves the tier gauge (-1), is never scored or
  signalled again, and later events are ignored.
- Intensities below 1e-4 are dropped (about 13 half-lives; weight x 1e-4 moves no score).
- Timer rescoring (`next_rescore_ms`) is daily while the customer is not churned, sooner when
  an unanswered wait passes its target. `rescore` returns deltas the caller adds to the ledger,
  as for `ServiceLevels.due`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from agents.bgnbd import BgNbdParams, p_alive_risk
from agents.config import DAY_MS, DEFAULT_CHURN_WEIGHTS, KpiConfig
from agents.ledger import Deltas, Ledger, series_key
from agents.rfm import DAYS_PER_WEEK, CustomerRfm, utc_day
from schemas.events import CONVERSATION_TYPES, EVENT_TYPES, Event

TIERS: Final = ("low", "medium", "high")
EXPERIENCE_SIGNALS: Final = tuple(DEFAULT_CHURN_WEIGHTS)
INACTIVE: Final = "inactive"
TIER_GAUGE: Final = "cx_customers_by_risk_tier"
SIGNALS_TOTAL: Final = "cx_churn_signals_total"
RESCORE_INTERVAL_MS: Final = DAY_MS
TOP_REASONS: Final = 3
MIN_CONTRIBUTION: Final = 0.01
NEGLIGIBLE_INTENSITY: Final = 1e-4
#: newest distinct order days kept exactly (older ones only as first day and count)
MAX_RECENT_DAYS: Final = 32
#: hard cap per conversation map; the event-time horizons keep them far smaller in practice
MAX_CONVERSATIONS: Final = 256
#: survey -> (signal, highest score that raises it)
SURVEY_SIGNALS: Final = {
    "nps": ("detractor", 6),
    "csat": ("low_csat", 2),
    "ces": ("high_effort", 3),
}

V = TypeVar("V")


def decayed(value: float, as_of_ms: int, at_ms: int, half_life_ms: int) -> float:
    """An intensity of ``value`` at ``as_of_ms``, read at ``at_ms`` (never grows backwards)."""
    return value * float(0.5 ** (max(at_ms - as_of_ms, 0) / half_life_ms))


def add_occurrence(
    signals: dict[str, list[float]], name: str, at_ms: int, half_life_ms: int
) -> None:
    """One more occurrence of signal ``name`` at ``at_ms``, in any arrival order."""
    value, as_of = signals.get(name, (0.0, at_ms))
    as_of = int(as_of)
    if at_ms <= as_of:
        value += float(0.5 ** ((as_of - at_ms) / half_life_ms))
    else:
        value = decayed(value, as_of, at_ms, half_life_ms) + 1.0
        as_of = at_ms
    signals[name] = [value, as_of]


def intensity(signals: dict[str, list[float]], name: str, at_ms: int, half_life_ms: int) -> float:
    entry = signals.get(name)
    return 0.0 if entry is None else decayed(entry[0], int(entry[1]), at_ms, half_life_ms)


def top_reasons(contributions: dict[str, float]) -> tuple[tuple[str, float], ...]:
    """The top 3 contributions above 0.01, largest first (ties by name), rounded to 4 dp."""
    ranked = sorted(
        ((name, c) for name, c in contributions.items() if c > MIN_CONTRIBUTION),
        key=lambda item: (-item[1], item[0]),
    )
    return tuple((name, round(c, 4)) for name, c in ranked[:TOP_REASONS])


def tier_for(score: float, current: str | None, config: KpiConfig) -> str:
    """The tier after scoring ``score`` in tier ``current`` (None before the first scoring)."""
    lower = {"low": 0.0, "medium": config.churn_medium, "high": config.churn_high}
    reached = max((t for t in TIERS if score >= lower[t]), key=TIERS.index)
    if current is None or TIERS.index(reached) >= TIERS.index(current):
        return reached
    margin = config.churn_hysteresis
    kept = max((t for t in TIERS if score >= lower[t] - margin), key=TIERS.index)
    return min(kept, current, key=TIERS.index)


def rfc3339(epoch_ms: int) -> str:
    return (
        datetime.fromtimestamp(epoch_ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _keep_newest(entries: dict[str, V], limit: int, when: Callable[[V], int]) -> None:
    if len(entries) > limit:
        for key in sorted(entries, key=lambda k: when(entries[k]))[: len(entries) - limit]:
            del entries[key]


@dataclass(slots=True)
class PurchaseDays:
    """Distinct UTC days of ``order.placed``: the first, how many, and the newest few exactly.

    x, t_x and T need only the first day, the last day and the count. The newest days are kept
    so that a late or replayed order on a day already counted is recognised; only an order on
    a day older than all kept ones (after more than 32 distinct days) is taken as a new day.
    """

    first: int | None = None
    count: int = 0
    recent: list[int] = field(default_factory=list)

    def add(self, day: int) -> None:
        complete = self.count == len(self.recent)  # nothing dropped: `recent` holds every day
        if day in self.recent or (not complete and day == self.first):
            return
        self.count += 1
        self.first = day if self.first is None else min(self.first, day)
        if complete or day > self.recent[0]:
            bisect.insort(self.recent, day)
            del self.recent[:-MAX_RECENT_DAYS]

    def summary(self, until_day: int) -> CustomerRfm | None:
        """The customer's ``(x, t_x, T)`` up to ``until_day``; None before the first order."""
        if self.first is None:
            return None
        return CustomerRfm(
            x=self.count - 1,
            t_x=(self.recent[-1] - self.first) / DAYS_PER_WEEK,
            T=(max(until_day, self.recent[-1]) - self.first) / DAYS_PER_WEEK,
        )


@dataclass(slots=True)
class CustomerProfile:
    """One customer's churn-risk state and ledger: one table value."""

    ledger: Ledger = field(default_factory=Ledger)
    purchases: PurchaseDays = field(default_factory=PurchaseDays)
    #: experience signal -> [intensity, as_of_ms]
    signals: dict[str, list[float]] = field(default_factory=dict)
    #: conversation id -> [opened_ms, target_ms]: open, no agent reply yet, not yet slow
    waits: dict[str, list[int]] = field(default_factory=dict)
    #: conversation id -> [wait ended ms, 1 if its open was seen else 0]: a repeated or late
    #: open, or a reply before its open, must not start a phantom wait (FCR horizon)
    answered: dict[str, list[int]] = field(default_factory=dict)
    #: conversation id -> its last resolution ms, within the FCR horizon (repeat contacts)
    resolutions: dict[str, int] = field(default_factory=dict)
    tier: str | None = None
    previous_tier: str | None = None
    #: the last scoring changed the tier and is a signal (`signal` has a message)
    signalled: bool = False
    score: float = 0.0
    p_alive: float = 1.0
    reasons: tuple[tuple[str, float], ...] = ()
    scored_at_ms: int | None = None
    churned_at_ms: int | None = None

    def now(self, at_ms: int) -> int:
        """The time to score at: the profile's clock only moves forward."""
        return at_ms if self.scored_at_ms is None else max(at_ms, self.scored_at_ms)

    def to_json(self) -> dict[str, Any]:
        buy = self.purchases
        fields: dict[str, Any] = {
            "buy": [buy.first, buy.count, buy.recent] if buy.first is not None else None,
            "sig": self.signals,
            "wait": self.waits,
            "ans": self.answered,
            "res": self.resolutions,
            "tier": self.tier,
            "prev": self.previous_tier,
            "new": self.signalled or None,
            "score": self.score,
            "p": self.p_alive,
            "why": [list(reason) for reason in self.reasons],
            "at": self.scored_at_ms,
            "gone": self.churned_at_ms,
        }
        compact = {key: value for key, value in fields.items() if value not in (None, {}, [])}
        return {**self.ledger.to_json(), **compact}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CustomerProfile:
        buy = data.get("buy")
        return cls(
            ledger=Ledger.from_json(data),
            purchases=PurchaseDays() if buy is None else PurchaseDays(buy[0], buy[1], buy[2]),
            signals=dict(data.get("sig", {})),
            waits=dict(data.get("wait", {})),
            answered=dict(data.get("ans", {})),
            resolutions=dict(data.get("res", {})),
            tier=data.get("tier"),
            previous_tier=data.get("prev"),
            signalled=bool(data.get("new", False)),
            score=float(data.get("score", 0.0)),
            p_alive=float(data.get("p", 1.0)),
            reasons=tuple((str(name), float(c)) for name, c in data.get("why", [])),
            scored_at_ms=data.get("at"),
            churned_at_ms=data.get("gone"),
        )


class ChurnRisk:
    """Scores a customer's `CustomerProfile` on every event and on timer rescoring."""

    name = "churn_risk"
    types: frozenset[str] = frozenset(EVENT_TYPES)
    #: the shared dedup step must not count cx_events_total / duplicates for this family
    counts_events = False

    def __init__(self, config: KpiConfig) -> None:
        self.config = config
        self.params = BgNbdParams(*config.bgnbd)
        self.weights = {**DEFAULT_CHURN_WEIGHTS, **config.churn_weights}
        self.half_life_ms = config.churn_half_life_ms

    def new_state(self) -> CustomerProfile:
        return CustomerProfile()

    def ledger(self, state: CustomerProfile) -> Ledger:
        return state.ledger

    def to_json(self, state: CustomerProfile) -> object:
        return state.to_json()

    def from_json(self, data: object) -> CustomerProfile:
        assert isinstance(data, dict)
        return CustomerProfile.from_json(data)

    def apply(self, state: CustomerProfile, event: Event) -> Deltas:
        """Take in one new (deduplicated) event, then rescore at its time."""
        state.signalled = False
        if state.churned_at_ms is not None:
            return Deltas()
        now = state.now(event.occurred_at_ms)
        if event.type == "customer.churned":
            return self._churn(state, now)
        if event.type in CONVERSATION_TYPES:
            assert event.conversation_id is not None  # validated for every conversation type
            self._observe_conversation(state, event, event.conversation_id)
        else:
            self._observe_other(state, event)
        return self._score(state, now)

    def rescore(self, state: CustomerProfile, at_ms: int) -> Deltas:
        """Rescore at ``at_ms`` (event time): inactivity grows, experience decays."""
        state.signalled = False
        if state.churned_at_ms is not None:
            return Deltas()
        return self._score(state, state.now(at_ms))

    def next_rescore_ms(self, state: CustomerProfile) -> int | None:
        """When to rescore next (event time): a day after the last scoring, or sooner when an
        unanswered wait passes its target; None once churned or before the first scoring."""
        if state.churned_at_ms is not None or state.scored_at_ms is None:
            return None
        overdue = [opened + target + 1 for opened, target in state.waits.values()]
        return min([state.scored_at_ms + RESCORE_INTERVAL_MS, *overdue])

    def signal(self, state: CustomerProfile) -> dict[str, Any] | None:
        """The `cx.churn` value (without `customer_id`) of the last scoring, if it signalled."""
        if not state.signalled or state.scored_at_ms is None:
            return None
        return {
            "score": round(state.score, 4),
            "tier": state.tier,
            "previous_tier": state.previous_tier,
            "reasons": [{"reason": name, "contribution": c} for name, c in state.reasons],
            "p_alive": round(state.p_alive, 4),
            "as_of": rfc3339(state.scored_at_ms),
        }

    def _occur(self, state: CustomerProfile, name: str, at_ms: int) -> None:
        add_occurrence(state.signals, name, at_ms, self.half_life_ms)

    def _observe_other(self, state: CustomerProfile, event: Event) -> None:
        at = event.occurred_at_ms
        if event.type == "order.placed":
            state.purchases.add(utc_day(at))
        elif event.type == "order.delivered":
            if event.promised_at_ms is not None and at > event.promised_at_ms:
                self._occur(state, "late_delivery", at)
        elif event.type == "return.requested":
            self._occur(state, "return", at)
        elif event.type == "survey.answered" and event.survey is not None:
            name, worst = SURVEY_SIGNALS[event.survey]
            if event.score is not None and event.score <= worst:
                self._occur(state, name, at)

    def _observe_conversation(self, state: CustomerProfile, event: Event, cid: str) -> None:
        at = event.occurred_at_ms
        if event.type == "conversation.opened":
            self._opened(state, cid, at, self.config.frt_target_ms(event.channel))
        elif event.type == "conversation.reopened":
            self._occur(state, "reopened", at)
        elif event.type == "conversation.resolved":
            state.resolutions[cid] = max(state.resolutions.get(cid, at), at)
            self._wait_ends(state, cid, at)
        elif event.type == "message.sent" and event.author == "agent":
            self._wait_ends(state, cid, at)

    def _opened(self, state: CustomerProfile, cid: str, at: int, target: int) -> None:
        ended = state.answered.get(cid)
        if cid in state.waits or (ended is not None and ended[1]):
            return  # the same conversation opened again: its first open stands
        horizon = self.config.fcr_horizon_ms
        if any(
            key != cid and resolved <= at <= resolved + horizon
            for key, resolved in state.resolutions.items()
        ):
            self._occur(state, "repeat_contact", at)
        if ended is None:
            state.waits[cid] = [at, target]
            return
        ended[1] = 1  # its reply or resolution came first
        if ended[0] - at > target:
            self._occur(state, "slow_response", at + target)

    def _wait_ends(self, state: CustomerProfile, cid: str, at: int) -> None:
        wait = state.waits.pop(cid, None)
        if wait is None:
            ended = state.answered.setdefault(cid, [at, 0])
            if not ended[1]:
                ended[0] = min(ended[0], at)
            return
        opened, target = wait
        if at - opened > target:
            self._occur(state, "slow_response", opened + target)
        state.answered[cid] = [at, 1]

    def _expire_waits(self, state: CustomerProfile, now: int) -> None:
        for cid, (opened, target) in list(state.waits.items()):
            if now - opened > target:
                self._occur(state, "slow_response", opened + target)
                del state.waits[cid]
                state.answered[cid] = [opened + target, 1]

    def _forget(self, state: CustomerProfile, now: int) -> None:
        cutoff = now - self.config.fcr_horizon_ms
        state.resolutions = {k: t for k, t in state.resolutions.items() if t >= cutoff}
        state.answered = {k: v for k, v in state.answered.items() if v[0] >= cutoff}
        _keep_newest(state.resolutions, MAX_CONVERSATIONS, lambda t: t)
        _keep_newest(state.answered, MAX_CONVERSATIONS, lambda v: v[0])
        _keep_newest(state.waits, MAX_CONVERSATIONS, lambda v: v[0])
        faded = [
            name
            for name in state.signals
            if intensity(state.signals, name, now, self.half_life_ms) < NEGLIGIBLE_INTENSITY
        ]
        for name in faded:
            del state.signals[name]
        state.ledger.forget_before(now - self.config.dedup_horizon_ms)

    def contributions(self, state: CustomerProfile, now: int) -> tuple[float, dict[str, float]]:
        """``p`` and each reason's contribution (`inactive` = 1 - p, each signal its e_k)."""
        rfm = state.purchases.summary(utc_day(now))
        p = 1.0 if rfm is None else p_alive_risk(self.params, rfm.x, rfm.t_x, rfm.T)
        parts = {INACTIVE: 1.0 - p}
        for name in EXPERIENCE_SIGNALS:
            level = intensity(state.signals, name, now, self.half_life_ms)
            parts[name] = self.weights[name] * min(1.0, level)
        return p, parts

    def _score(self, state: CustomerProfile, now: int) -> Deltas:
        self._expire_waits(state, now)
        self._forget(state, now)
        p, parts = self.contributions(state, now)
        score = 1.0 - p * math.prod(1.0 - parts[name] for name in EXPERIENCE_SIGNALS)
        state.score = min(max(score, 0.0), 1.0)
        state.p_alive = p
        state.reasons = top_reasons(parts)
        state.scored_at_ms = now
        return self._move(state, tier_for(state.score, state.tier, self.config), now)

    def _move(self, state: CustomerProfile, tier: str, now: int) -> Deltas:
        deltas = Deltas()
        old = state.tier
        if tier == old:
            return deltas
        if old is not None:
            deltas.inc(series_key(TIER_GAUGE, old), -1, at_ms=now)
        deltas.inc(series_key(TIER_GAUGE, tier), 1, at_ms=now)
        state.tier, state.previous_tier = tier, old
        state.signalled = old is not None or tier != "low"
        if state.signalled:
            deltas.inc(series_key(SIGNALS_TOTAL, tier), at_ms=now)
        return deltas

    def _churn(self, state: CustomerProfile, now: int) -> Deltas:
        deltas = Deltas()
        if state.tier is not None:
            deltas.inc(series_key(TIER_GAUGE, state.tier), -1, at_ms=now)
        state.churned_at_ms = now
        state.signals.clear()
        state.waits.clear()
        state.answered.clear()
        state.resolutions.clear()
        state.ledger.forget_before(now - self.config.dedup_horizon_ms)
        return deltas
