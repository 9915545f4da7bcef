"""Per-customer traffic: each customer's own purchase rhythm, contacts and experience-driven churn.

In: the :class:`~pipeline.generator_world.World` (customers, seeded randomness, schedule) and
the :class:`LifeParams` of a :class:`~pipeline.generator.GeneratorConfig` with ``rate=None``.
Out: nothing directly; :meth:`Population.start` schedules every customer's activity in the world,
whose heap then yields their events in event-time order.

Every customer is an existing customer, observed from the generator's start:

- **Purchase rhythm** (BG/NBD, Fader, Hardie & Lee 2005): orders arrive as a Poisson process
  with a rate ``lambda`` per week drawn from Gamma(shape ``r``, rate ``alpha``). After each order
  but the first one seen (each *repeat* purchase), the customer silently drops out with a
  probability ``p`` drawn from Beta(``a``, ``b``): no more orders, contacts or surveys. What is
  already under way (a delivery, a return, a refund, a survey about it) still happens.
- **Closing after a dropout**: a ``dropout_close_share`` of the dropouts later close their
  account, as lapsed customers of real businesses eventually do: ``customer.churned`` (reason
  :data:`CLOSE_REASONS`) a time drawn uniformly from ``dropout_close_after_days`` after their
  last order (the one they dropped out after). The other dropouts stay silent: no
  ``customer.churned`` ever. A dropout's pending experience-driven churn is void: their close,
  if any, is the only churn they can still emit. This is the churn the purchase-rhythm part of a
  churn score (``1 - p_alive``) predicts; with ``dropout_close_share=0`` the stream is exactly
  what it was before this rule (no random draw is spent on it).
- **Contacts**: spontaneous contacts arrive as a Poisson process at ``contacts_per_week`` times a
  skewed per-customer weight of mean 1 (most customers seldom contact support, a few often).
  Most are service conversations (:func:`~pipeline.generator_service.conversation_journey`,
  with their reopens, repeat contacts and surveys); a share (:data:`SURVEY_SHARE`) are
  relationship surveys whose scores fall with the customer's recent bad experiences. Orders
  bring their own follow-ups (deliveries, returns, refunds, surveys, contacts about late
  deliveries).
- **Churn**: the customer explicitly leaves (``customer.churned`` on their main channel) with a
  hazard per week of ``churn_base_per_week`` plus ``churn_per_bad_experience_per_week`` for each
  bad experience, decaying with its age: halving every ``churn_half_life_days`` (the decay the
  churn score applies by default too). The bad experiences are what the events show (see
  :data:`~pipeline.generator_world.BAD_EXPERIENCES`): a first agent reply over the channel's FRT
  target, an NPS detractor, a CSAT of 1-2, a CES of 1-3, a reopened conversation, a return, a
  late delivery. Each one counts when its event is emitted (not once the customer has dropped
  out). Once churned, a customer has no further events at all: the world drops whatever was
  still scheduled for them.

The hazard is a sum of independent parts, so the churn time is the earliest of independently
drawn times, one per part: the base part's is exponential; a bad experience at ``t`` adds a
part of total mass ``m = k * tau`` (``k`` per second, ``tau`` the half-life / ln 2 in seconds;
with the defaults, 3% a week and 30 days, ``m`` is 0.19), which fires at all with probability
``1 - exp(-m)`` (17%), and if it does, ``-tau * log(1 - E / m)`` after ``t`` (``E`` the unit
exponential drawn, below ``m``). So each bad experience costs one random draw and at most one
heap entry, whatever the horizon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.generator_commerce import order_journey
from pipeline.generator_service import (
    CHURN_REASON_WEIGHTS,
    CHURN_REASONS,
    DAY,
    conversation_journey,
    survey_journey,
)
from pipeline.generator_world import Customer, Journey, World

WEEK = 7 * DAY
# Contact rates are skewed, as in real service desks: a customer's is contacts_per_week times a
# Gamma(shape, 1 / shape) weight of mean 1 (with 0.25: half the customers below 0.17 times the
# mean, the busiest tenth making well over half of all contacts). Past trouble thus hints at
# future trouble, which is what lets a churn score see some churns coming before they happen.
_CONTACT_SHAPE = 0.25
SURVEY_SHARE = 0.08  # spontaneous contacts that are relationship surveys, not conversations
# Relationship survey quality: uniform in this range, less this much per recent bad experience.
_SURVEY_QUALITY = (0.6, 0.95)
_MOOD_PER_BAD = 0.2
#: reasons (and weights) of the ``customer.churned`` a dropout sends when closing the account
CLOSE_REASONS = ("no_longer_needed", "price", "moved", "other")
CLOSE_REASON_WEIGHTS = (50.0, 25.0, 15.0, 10.0)


@dataclass(frozen=True, slots=True)
class LifeParams:
    """The per-customer model's parameters; time in weeks unless named otherwise."""

    purchase_r: float
    purchase_alpha: float
    dropout_a: float
    dropout_b: float
    contacts_per_week: float
    churn_base_per_week: float
    churn_per_bad_experience_per_week: float
    churn_half_life_days: float
    dropout_close_share: float = 0.0
    dropout_close_after_days: tuple[float, float] = (30.0, 90.0)


@dataclass(slots=True)
class Life:
    """One customer's latent state."""

    customer: Customer
    purchases_per_s: float
    dropout_p: float
    contacts_per_s: float
    churn_at: float = math.inf  # the earliest churn drawn so far
    churn_reason: str | None = None
    dropped_out: bool = False
    closes: bool = False  # a dropout who will close the account (at churn_at)
    bad_experiences: int = 0
    recent_bad: float = 0.0  # sum of 2 ** (-age / half-life) over bad experiences, at recent_at
    recent_at: float = 0.0

    @property
    def gone(self) -> bool:
        return self.dropped_out or self.customer.churned


class Population:
    """The world's :class:`~pipeline.generator_world.Lifecycle` in per-customer mode."""

    def __init__(self, world: World, params: LifeParams) -> None:
        self._world = world
        self._params = params
        self._decay_s = params.churn_half_life_days * DAY / math.log(2)  # e-folding time
        self._bad_per_s = params.churn_per_bad_experience_per_week / WEEK
        rng = world.rng
        self.lives: dict[str, Life] = {}
        for customer in world.customers:
            purchases = rng.gammavariate(params.purchase_r, 1.0 / params.purchase_alpha)
            contacts = rng.gammavariate(_CONTACT_SHAPE, 1.0 / _CONTACT_SHAPE)  # mean 1
            self.lives[customer.customer_id] = Life(
                customer=customer,
                purchases_per_s=purchases / WEEK,
                dropout_p=rng.betavariate(params.dropout_a, params.dropout_b),
                contacts_per_s=params.contacts_per_week * contacts / WEEK,
                recent_at=world.start_s,
            )

    def start(self) -> None:
        """Hook into the world and schedule every customer's first order, contact and churn."""
        world = self._world
        world.lifecycle = self
        base_per_s = self._params.churn_base_per_week / WEEK
        for life in self.lives.values():
            first_order = _after(world, world.start_s, life.purchases_per_s)
            if first_order is not None:
                world.later(first_order, self._purchase, life, first_order, False)
            first_contact = _after(world, world.start_s, life.contacts_per_s)
            if first_contact is not None:
                world.later(first_contact, self._contact, life, first_contact)
            base_churn = _after(world, world.start_s, base_per_s)
            if base_churn is not None:
                reason = world.pick(CHURN_REASONS, CHURN_REASON_WEIGHTS)
                self._churn_by(life, base_churn, reason)

    # -- the world's Lifecycle -------------------------------------------------------------

    def experienced(self, customer: Customer, at: float, kind: str) -> None:
        life = self.lives[customer.customer_id]
        if life.gone:
            return
        life.bad_experiences += 1
        life.recent_bad = self._recent_bad(life, at) + 1.0
        life.recent_at = at
        mass = self._bad_per_s * self._decay_s  # this experience's total extra hazard
        if mass <= 0.0:
            return
        draw = self._world.rng.expovariate(1.0)
        if draw < mass:  # it makes the customer churn, unless something else does first
            self._churn_by(life, at - self._decay_s * math.log1p(-draw / mass), "service")

    # -- journeys --------------------------------------------------------------------------

    def _purchase(self, life: Life, at: float, repeat: bool) -> Journey:
        """An order, then (unless the customer drops out after it) the next one is scheduled."""
        if life.gone:
            return
        world = self._world
        if repeat and world.chance(life.dropout_p):
            life.dropped_out = True  # this order is their last
            share = self._params.dropout_close_share
            if share > 0.0 and world.chance(share):
                self._close_after(life, at)
        else:
            following = _after(world, at, life.purchases_per_s)
            if following is not None:
                world.later(following, self._purchase, life, following, True)
        yield from order_journey(world, life.customer, at)

    def _contact(self, life: Life, at: float) -> Journey:
        """A spontaneous contact: a conversation, or now and then a relationship survey."""
        if life.gone:
            return
        world = self._world
        following = _after(world, at, life.contacts_per_s)
        if following is not None:
            world.later(following, self._contact, life, following)
        customer = life.customer
        if world.chance(SURVEY_SHARE):
            channel = world.pick((customer.main_channel, "shop"), (1.0, 1.0))
            quality = world.uniform(*_SURVEY_QUALITY) - _MOOD_PER_BAD * self._recent_bad(life, at)
            yield from survey_journey(world, customer, at, channel, min(0.9, max(0.0, quality)))
        else:
            yield from conversation_journey(world, customer, at)

    def _churned(self, life: Life, at: float) -> Journey:
        """``customer.churned`` if this is still the customer's churn time (a dropout's only if
        it is their close)."""
        if life.customer.churned or at != life.churn_at or (life.dropped_out and not life.closes):
            return  # superseded, void after a silent dropout, or the customer is gone already
        customer = life.customer
        yield self._world.emit(
            at, "customer.churned", customer, customer.main_channel, reason=life.churn_reason
        )
        customer.churned = True  # from here on the world drops all their pending events

    # -- helpers ---------------------------------------------------------------------------

    def _churn_by(self, life: Life, at: float, reason: str) -> None:
        if at < life.churn_at:
            life.churn_at, life.churn_reason = at, reason
            self._world.later(at, self._churned, life, at)

    def _close_after(self, life: Life, last_order: float) -> None:
        """The dropout closes the account some time after their last order: that time replaces
        any churn time drawn before (a dropout's experience no longer decides)."""
        world = self._world
        low, high = self._params.dropout_close_after_days
        at = last_order + world.uniform(low, high) * DAY
        life.closes = True
        life.churn_at = at
        life.churn_reason = world.pick(CLOSE_REASONS, CLOSE_REASON_WEIGHTS)
        world.later(at, self._churned, life, at)

    def _recent_bad(self, life: Life, at: float) -> float:
        return life.recent_bad * math.exp(-(at - life.recent_at) / self._decay_s)


def _after(world: World, at: float, per_s: float) -> float | None:
    """The next arrival after ``at`` of a Poisson process at ``per_s`` (None if it never comes)."""
    if not per_s > 0.0:
        return None
    return at + world.rng.expovariate(per_s)
