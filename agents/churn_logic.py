"""Pure churn-risk logic: one customer's purchase rhythm and experience, scored (contract 2, 3).

In: every validated event of one customer (all types: orders give the purchase rhythm, the
rest the experience signals), recorded by `apply`; and from a timer, once the watermark has
passed it, the event time to score at (`rescore`). Out: the customer's `CustomerProfile`
(score, tier, top reasons); its contributions to `cx_customers_by_risk_tier{tier}` (a gauge:
+1 on the current tier, nothing once churned) and `cx_churn_signals_total{tier}`, returned by
`rescore`; and via `signal` the `cx.churn` value of the last tier change (the caller adds
`customer_id` and publishes it keyed by customer). `cx_events_total` and
`cx_churned_customers_total` are counted by other families (`counts_events = False`).

Model (`agents.churn_model`): ``score = sigma(intercept + sum_j w_j f_j)`` in [0, 1], a
logistic model over named features with weights from configuration (`KpiConfig.churn_weights`,
fitted by ``cxpulse churn fit``, or the documented defaults). The features come from the
purchase rhythm, ``p`` being `bgnbd.p_alive_risk` of the customer's ``(x, t_x, T)`` (counted
as `agents.rfm` does: distinct UTC order days, weeks = days / 7, ``T`` up to the day scored):
a repeat buyer's ``1 - p`` in the band of days since the last order, a one-time buyer's
``1 - p``, or "no order yet" (``p = 1`` then: no evidence of inactivity); and from each
experience signal, ``ln(1 + intensity)``. An intensity is ``sum_i 0.5 ** ((t - t_i) /
half_life)`` over the signal's occurrences ``t_i <= t``. Reasons are `inactive` (the rhythm
features together) and each experience signal, each contributing how much the score would
fall without it: the top 3 above 0.01, largest first, ties by name.

Event time (contract 2, "Event time and the watermark"): scoring waits for time to pass, so
the watermark drives it. `apply` only records an event and schedules a scoring at its time;
`rescore(state, t)`, called once the watermark has passed ``t``, scores from what occurred at
or before ``t`` only: signal occurrences and orders with ``t_i <= t``, conversation replies
and resolutions up to their decision times, the churn if ``churned_at <= t``. Every on-time
event is recorded before the watermark passes its time, so tiers, signals and gauges do not
depend on the order in which the source topics are read (a replay gives live's numbers).

Choices where the contract is silent (for the README):
- A profile is scored at every event's time, a day after each scoring while not churned,
  and just past a waiting conversation's FRT target (`next_rescore_ms`). Scorings only move
  forward in event time.
- A late event, at or before the last scoring (a time the watermark has already decided), is
  recorded and counts from the next scoring on, as of its own time (a signal decayed from
  then, an order on its day); decisions already taken are not revisited.
- Tiers move up as soon as the score reaches a higher threshold, and down only once it falls
  below the current tier's threshold minus the hysteresis margin, to the highest tier whose
  threshold minus the margin the score still reaches.
- The first scoring assigns a tier (gauge +1). It is a signal (`cx_churn_signals_total`,
  a `cx.churn` message with ``previous_tier = null``) only when that tier is `medium` or
  `high`: a new customer starting `low` is not news.
- `slow_response` happens at ``opened + target`` when the first agent reply or resolution (the
  earliest by event time, as for FRT breaches) comes later than the channel's FRT target, or
  none has come by then; once per conversation, from its first `conversation.opened` (event
  time), decided by the first scoring past the target.
- `repeat_contact`: a conversation's first `conversation.opened` (event time), any channel, at
  or after a resolution of another conversation and within the FCR horizon of it; decided by
  the scoring at that open.
- `customer.churned` (the earliest, by event time) ends the profile when scored: it leaves the
  tier gauge (-1), is never scored or signalled again, and events after it are ignored.
- Bounded state: occurrences not yet scored are kept one by one with their time (at most 256
  per customer; beyond that the earliest is taken in at once, a little early); scored ones are
  one decaying intensity per signal, exact since scorings only move forward, dropped below
  1e-4 (about 13 half-lives: weight x 1e-4 moves no score); order days as `PurchaseDays`;
  conversations (and their resolutions) within the FCR horizon, at most 256.
- `rescore` returns deltas the caller adds to the ledger, at the scoring time, as for
  `ServiceLevels.due`; `apply` returns none.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from agents import churn_model
from agents.bgnbd import BgNbdParams, p_alive_risk
from agents.churn_model import Rhythm
from agents.config import CHURN_SIGNALS, DAY_MS, DEFAULT_CHURN_WEIGHTS, KpiConfig
from agents.ledger import Deltas, Ledger, series_key
from agents.rfm import DAYS_PER_WEEK, CustomerRfm, utc_day
from schemas.events import CONVERSATION_TYPES, EVENT_TYPES, Event

TIERS: Final = ("low", "medium", "high")
EXPERIENCE_SIGNALS: Final = CHURN_SIGNALS
INACTIVE: Final = churn_model.INACTIVE
TIER_GAUGE: Final = "cx_customers_by_risk_tier"
SIGNALS_TOTAL: Final = "cx_churn_signals_total"
RESCORE_INTERVAL_MS: Final = DAY_MS
#: daily rescoring stops this long after the customer's latest event: by then the inactivity
#: bands have topped out (365 days) and experience signals have decayed away, and a customer
#: whose only event lies far in the past (hostile or stale input) costs a bounded number of
#: scorings instead of one per day up to now
RESCORE_QUIET_LIMIT_MS: Final = 400 * DAY_MS
TOP_REASONS: Final = 3
MIN_CONTRIBUTION: Final = 0.01
NEGLIGIBLE_INTENSITY: Final = 1e-4
#: newest distinct order days kept exactly (older ones only as first day and count)
MAX_RECENT_DAYS: Final = 32
#: hard cap per conversation map; the event-time horizons keep them far smaller in practice
MAX_CONVERSATIONS: Final = 256
#: resolution times kept per conversation (a resolved, reopened, resolved again loop)
MAX_RESOLUTIONS: Final = 8
#: occurrences and times to score at recorded ahead of the scoring, per customer
MAX_PENDING: Final = 256
#: what a pending entry holds besides a signal name: an order, or only a time to score at
ORDER: Final = "order"
SCORE_ONLY: Final = ""
#: a conversation's decisions taken: slow response (or not), repeat contact (or not)
SLOW_DECIDED: Final = 1
REPEAT_DECIDED: Final = 2
ALL_DECIDED: Final = SLOW_DECIDED | REPEAT_DECIDED
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


def _latest(conversation: list[Any]) -> int:
    """The newest time a conversation record holds (open, first reply, resolutions)."""
    times: list[int] = [t for t in (conversation[0], conversation[2]) if t is not None]
    times += conversation[4:]
    return max(times)


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

    def rhythm(self, params: BgNbdParams, until_day: int) -> Rhythm | None:
        """P(alive) (`p_alive_risk`), order days and days since the last order, up to
        ``until_day``; None before the first order."""
        rfm = self.summary(until_day)
        if rfm is None:
            return None
        return Rhythm(
            p_alive=p_alive_risk(params, rfm.x, rfm.t_x, rfm.T),
            order_days=self.count,
            days_since_last=max(until_day - self.recent[-1], 0),
        )

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
    #: order days taken in by a scoring (or late): pending orders are in `pending`
    purchases: PurchaseDays = field(default_factory=PurchaseDays)
    #: experience signal -> [intensity, as_of_ms] of the occurrences taken in by a scoring
    signals: dict[str, list[float]] = field(default_factory=dict)
    #: [occurred_at_ms, what] recorded after the last scoring, by time: what is a signal name,
    #: `ORDER`, or `SCORE_ONLY` (a time to score at)
    pending: list[list[Any]] = field(default_factory=list)
    #: conversation id -> [first opened_ms | None, its FRT target ms, first agent reply or
    #: resolution ms | None, decisions taken (`SLOW_DECIDED`, `REPEAT_DECIDED`), then its
    #: resolution times within the FCR horizon, oldest first (for repeat contacts)]
    conversations: dict[str, list[Any]] = field(default_factory=dict)
    tier: str | None = None
    previous_tier: str | None = None
    #: the last scoring changed the tier and is a signal (`signal` has a message)
    signalled: bool = False
    score: float = 0.0
    p_alive: float = 1.0
    reasons: tuple[tuple[str, float], ...] = ()
    scored_at_ms: int | None = None
    #: the earliest `customer.churned` recorded (scored once a scoring reaches it)
    churned_at_ms: int | None = None
    #: a scoring has reached the churn: the profile is over
    closed: bool = False
    #: the latest event time a scoring has taken in (bounds daily rescoring)
    last_event_ms: int | None = None

    def now(self, at_ms: int) -> int:
        """The time to score at: the profile's clock only moves forward."""
        return at_ms if self.scored_at_ms is None else max(at_ms, self.scored_at_ms)

    def to_json(self) -> dict[str, Any]:
        buy = self.purchases
        fields: dict[str, Any] = {
            "buy": [buy.first, buy.count, buy.recent] if buy.first is not None else None,
            "sig": self.signals,
            "pend": self.pending,
            "conv": self.conversations,
            "tier": self.tier,
            "prev": self.previous_tier,
            "new": self.signalled or None,
            "score": self.score,
            "p": self.p_alive,
            "why": [list(reason) for reason in self.reasons],
            "at": self.scored_at_ms,
            "gone": self.churned_at_ms,
            "end": self.closed or None,
            "last": self.last_event_ms,
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
            pending=[list(entry) for entry in data.get("pend", [])],
            conversations={k: list(v) for k, v in data.get("conv", {}).items()},
            tier=data.get("tier"),
            previous_tier=data.get("prev"),
            signalled=bool(data.get("new", False)),
            score=float(data.get("score", 0.0)),
            p_alive=float(data.get("p", 1.0)),
            reasons=tuple((str(name), float(c)) for name, c in data.get("why", [])),
            scored_at_ms=data.get("at"),
            churned_at_ms=data.get("gone"),
            closed=bool(data.get("end", False)),
            last_event_ms=data.get("last"),
        )


class ChurnRisk:
    """Records a customer's events into its `CustomerProfile`; scores it when the watermark
    has passed a time to score at (`next_rescore_ms`, then `rescore`)."""

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
        """Record one new (deduplicated) event and schedule a scoring at its time. Nothing is
        scored here (no deltas): that waits for the watermark to pass, in `rescore`."""
        at = event.occurred_at_ms
        churned = state.churned_at_ms
        if state.closed or (churned is not None and at > churned):
            return Deltas()  # after the churn: never scored
        if event.type == "customer.churned":
            state.churned_at_ms = at
        elif event.type in CONVERSATION_TYPES:
            assert event.conversation_id is not None  # validated for every conversation type
            self._observe_conversation(state, event, event.conversation_id)
        else:
            self._observe_other(state, event)
        self._occur(state, SCORE_ONLY, at)
        state.ledger.forget_before(at - self.config.dedup_horizon_ms)
        return Deltas()

    def rescore(self, state: CustomerProfile, at_ms: int) -> Deltas:
        """Score at ``at_ms`` (event time; the caller's watermark has passed it) from what
        occurred at or before it: inactivity grows, experience decays. Returns the tier gauge
        and signal deltas, at ``at_ms``."""
        state.signalled = False
        if state.closed:
            return Deltas()
        now = state.now(at_ms)
        if state.churned_at_ms is not None and state.churned_at_ms <= now:
            return self._close(state, now)
        taken = [entry[0] for entry in state.pending if entry[0] <= now]
        if taken:
            last = state.last_event_ms
            state.last_event_ms = max(taken) if last is None else max(last, *taken)
        self._take_in(state, now)
        self._decide_conversations(state, now)
        self._forget(state, now)
        return self._score(state, now)

    def next_rescore_ms(self, state: CustomerProfile) -> int | None:
        """When to score next (event time): the earliest event recorded and not yet scored, a
        day after the last scoring, or just past a waiting conversation's FRT target, whichever
        comes first; None once churned (or with nothing recorded)."""
        if state.closed:
            return None
        scored = state.scored_at_ms
        times = [state.pending[0][0]] if state.pending else []
        last = state.last_event_ms
        if scored is not None and (
            last is None or scored + RESCORE_INTERVAL_MS <= last + RESCORE_QUIET_LIMIT_MS
        ):
            times.append(scored + RESCORE_INTERVAL_MS)
        for opened, target, ended, decided, *_ in state.conversations.values():
            if opened is None or decided & SLOW_DECIDED:
                continue
            if ended is None or ended - opened > target:
                times.append(opened + target + 1)
        if scored is not None:
            times = [t for t in times if t > scored]
        return min(times, default=None)

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

    # --- recording -----------------------------------------------------------------------

    def _occur(self, state: CustomerProfile, what: str, at_ms: int) -> None:
        """Something at ``at_ms``: pending until a scoring reaches it, or taken in at once when
        late (at or before the last scoring: it counts from the next one)."""
        if state.scored_at_ms is not None and at_ms <= state.scored_at_ms:
            self._take(state, what, at_ms)
            return
        pending = state.pending
        entry = [at_ms, what]
        index = bisect.bisect_left(pending, entry)
        if what == SCORE_ONLY and index < len(pending) and pending[index][0] == at_ms:
            return  # a scoring at that time is already due
        pending.insert(index, entry)
        if len(pending) > MAX_PENDING:  # taken in now: counted a little early
            earliest_ms, earliest = pending.pop(0)
            self._take(state, earliest, earliest_ms)

    def _take(self, state: CustomerProfile, what: str, at_ms: int) -> None:
        if what == ORDER:
            state.purchases.add(utc_day(at_ms))
        elif what != SCORE_ONLY:
            add_occurrence(state.signals, what, at_ms, self.half_life_ms)

    def _observe_other(self, state: CustomerProfile, event: Event) -> None:
        at = event.occurred_at_ms
        if event.type == "order.placed":
            self._occur(state, ORDER, at)
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
            conversation = self._conversation(state, cid)
            if conversation[0] is None or at < conversation[0]:
                conversation[0] = at
                conversation[1] = self.config.frt_target_ms(event.channel)
        elif event.type == "conversation.reopened":
            self._occur(state, "reopened", at)
        elif event.type == "conversation.resolved":
            self._wait_ends(state, cid, at)
            times = state.conversations[cid][4:]
            if at not in times:
                bisect.insort(times, at)
                state.conversations[cid][4:] = times[-MAX_RESOLUTIONS:]
        elif event.type == "message.sent" and event.author == "agent":
            self._wait_ends(state, cid, at)
        _keep_newest(state.conversations, MAX_CONVERSATIONS, _latest)

    def _conversation(self, state: CustomerProfile, cid: str) -> list[Any]:
        return state.conversations.setdefault(cid, [None, 0, None, 0])

    def _wait_ends(self, state: CustomerProfile, cid: str, at: int) -> None:
        """A first agent reply or resolution, in any arrival order (before its open too)."""
        conversation = self._conversation(state, cid)
        if conversation[2] is None or at < conversation[2]:
            conversation[2] = at

    # --- scoring -------------------------------------------------------------------------

    def _take_in(self, state: CustomerProfile, now: int) -> None:
        """Take in what was pending up to ``now``, in time order."""
        pending = state.pending
        due = 0
        while due < len(pending) and pending[due][0] <= now:
            due += 1
        for at, what in pending[:due]:
            self._take(state, what, at)
        del pending[:due]

    def _decide_conversations(self, state: CustomerProfile, now: int) -> None:
        """Slow responses past their target and repeat contacts opened by ``now``, each from
        what occurred up to its own time (event time: every on-time event is in by now)."""
        horizon = self.config.fcr_horizon_ms
        ordered = sorted(
            (c[0], cid, c) for cid, c in state.conversations.items() if c[0] is not None
        )
        for opened, cid, conversation in ordered:
            _, target, ended, decided = conversation[:4]
            if not decided & REPEAT_DECIDED and opened <= now:
                if any(
                    key != cid and any(r <= opened <= r + horizon for r in other[4:])
                    for key, other in state.conversations.items()
                ):
                    self._take(state, "repeat_contact", opened)
                decided |= REPEAT_DECIDED
            if not decided & SLOW_DECIDED:
                if ended is not None and ended - opened <= target:
                    decided |= SLOW_DECIDED  # answered in time
                elif now - opened > target:  # past the target, no reply or resolution by it
                    self._take(state, "slow_response", opened + target)
                    decided |= SLOW_DECIDED
            conversation[3] = decided

    def _forget(self, state: CustomerProfile, now: int) -> None:
        cutoff = now - self.config.fcr_horizon_ms
        for conversation in state.conversations.values():
            conversation[4:] = [t for t in conversation[4:] if t >= cutoff]
        state.conversations = {
            k: c
            for k, c in state.conversations.items()
            if not ((c[0] is None or c[3] == ALL_DECIDED) and _latest(c) < cutoff)
        }
        faded = [
            name
            for name in state.signals
            if intensity(state.signals, name, now, self.half_life_ms) < NEGLIGIBLE_INTENSITY
        ]
        for name in faded:
            del state.signals[name]
        state.ledger.forget_before(now - self.config.dedup_horizon_ms)

    def features(self, state: CustomerProfile, now: int) -> tuple[float, dict[str, float]]:
        """``p`` (P(alive), 1 before the first order) and the model's named features at ``now``
        (`churn_model.features`), from what has been taken in."""
        rhythm = state.purchases.rhythm(self.params, utc_day(now))
        levels = {
            name: intensity(state.signals, name, now, self.half_life_ms)
            for name in EXPERIENCE_SIGNALS
        }
        p = 1.0 if rhythm is None else rhythm.p_alive
        return p, churn_model.features(rhythm, levels)

    def _score(self, state: CustomerProfile, now: int) -> Deltas:
        p, values = self.features(state, now)
        score, parts = churn_model.evaluate(self.weights, values)
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

    def _close(self, state: CustomerProfile, now: int) -> Deltas:
        """The churn is reached: out of the tier gauge, and nothing more to score."""
        deltas = Deltas()
        if state.tier is not None:
            deltas.inc(series_key(TIER_GAUGE, state.tier), -1, at_ms=now)
        state.scored_at_ms = now
        state.pending.clear()
        state.signals.clear()
        state.conversations.clear()
        state.closed = True
        state.ledger.forget_before(now - self.config.dedup_horizon_ms)
        return deltas
