"""Commerce journeys for the traffic generator: an order's life from placed to refunded.

An order is placed on ``shop``, delivered hours to days later (``promised_at`` mostly ahead of
the delivery; in the past while a ``shipping_delay`` runs), sometimes returned on ``returns``
and refunded days after that. Late deliveries bring detractor surveys, support contacts about
the delivery and ``late_delivery`` returns.

A stream that starts at some instant also carries the later steps of orders placed before it.
So that deliveries, returns and refunds flow from the first minute at their steady-state rate
(not only days into a run), :func:`backfill_weights` gives the rate at which such earlier
orders reach each step, and :func:`backfill_journey` plays one of them from that step on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.generator_service import DAY, HOUR, MINUTE, conversation_journey, survey_journey
from pipeline.generator_world import Customer, Journey, World, format_timestamp
from schemas.events import RETURN_REASONS

# Gaps between steps as mixtures of uniform ranges: (weight, low, high) in seconds.
Mixture = Sequence[tuple[float, float, float]]
DELIVERY_GAPS: Mixture = (
    (0.2, 3 * HOUR, 10 * HOUR),
    (0.5, 18 * HOUR, 30 * HOUR),
    (0.3, 40 * HOUR, 100 * HOUR),
)
RETURN_GAPS: Mixture = ((0.5, 2 * HOUR, 2 * DAY), (0.5, 2 * DAY, 14 * DAY))
REFUND_GAPS: Mixture = ((0.6, DAY, 4 * DAY), (0.4, 4 * DAY, 10 * DAY))
P_DELIVERED = 0.97
P_LATE, P_LATE_IN_DELAY = 0.07, 0.85
P_RETURN, P_RETURN_LATE = 0.12, 0.30
P_REFUND = 0.9
_P_RETURN_ANY = P_LATE * P_RETURN_LATE + (1 - P_LATE) * P_RETURN
_P_LATE_GIVEN_RETURN = P_LATE * P_RETURN_LATE / _P_RETURN_ANY
RETURN_REASON_WEIGHTS = (15.0, 10.0, 15.0, 30.0, 3.0, 20.0, 7.0)


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    amount: float
    currency: str


def sample_gap(world: World, mixture: Mixture, above: float = 0.0) -> float:
    """A gap from ``mixture``, conditioned on being longer than ``above`` (which it must allow)."""
    parts = [
        (w * _share_above(low, high, above), max(low, above), high) for w, low, high in mixture
    ]
    _, low, high = world.pick(parts, [weight for weight, _, _ in parts])
    return world.uniform(low, high)


def survival(mixture: Mixture, gap: float) -> float:
    """P(a gap drawn from ``mixture`` is longer than ``gap``)."""
    return sum(weight * _share_above(low, high, gap) for weight, low, high in mixture)


def backfill_weights(elapsed_s: float) -> tuple[float, float, float]:
    """Rates, per order placed now, at which orders placed before the start get delivered,
    returned and refunded ``elapsed_s`` after it."""
    returned = P_DELIVERED * _P_RETURN_ANY
    return (
        P_DELIVERED * survival(DELIVERY_GAPS, elapsed_s),
        returned * survival(RETURN_GAPS, elapsed_s),
        returned * P_REFUND * survival(REFUND_GAPS, elapsed_s),
    )


def order_journey(world: World, customer: Customer, at: float) -> Journey:
    order = _new_order(world, customer)
    yield world.emit(
        at,
        "order.placed",
        customer,
        "shop",
        order_id=order.order_id,
        amount=order.amount,
        currency=order.currency,
    )
    if world.chance(P_DELIVERED):
        delivered_at = at + sample_gap(world, DELIVERY_GAPS)
        world.later(delivered_at, _delivery, world, customer, order, at, delivered_at)


def backfill_journey(world: World, customer: Customer, at: float, step: str) -> Journey:
    """An order placed before the start, from its ``delivery``, ``return`` or ``refund`` on."""
    elapsed = at - world.start_s
    order = _new_order(world, customer)
    if step == "delivery":
        placed_at = at - sample_gap(world, DELIVERY_GAPS, above=elapsed)
        yield from _delivery(world, customer, order, placed_at, at)
    elif step == "return":
        yield from _return(world, customer, order, world.chance(_P_LATE_GIVEN_RETURN), at)
    else:
        yield from _refund(world, customer, order, world.new_id("rt"), at)


def _delivery(
    world: World, customer: Customer, order: Order, placed_at: float, at: float
) -> Journey:
    delayed = world.incident_active("shipping_delay", "shop", at)
    late = world.chance(P_LATE_IN_DELAY if delayed else P_LATE)
    if late:
        promised_at = max(placed_at + HOUR, at - world.uniform(2 * HOUR, 2 * DAY))
    else:
        promised_at = at + world.uniform(0.0, DAY)
    yield world.emit(
        at,
        "order.delivered",
        customer,
        "shop",
        experience="late_delivery" if late else None,
        order_id=order.order_id,
        promised_at=format_timestamp(promised_at),
    )
    if world.chance(0.3 if late else 0.1):
        survey_at = at + world.uniform(2 * HOUR, 2 * DAY)
        quality = 0.25 if late else 0.85
        world.later(survey_at, survey_journey, world, customer, survey_at, "shop", quality)
    if late and world.chance(0.25):
        contact_at = at + world.uniform(10 * MINUTE, DAY)
        world.later(contact_at, conversation_journey, world, customer, contact_at, topic="delivery")
    if world.chance(P_RETURN_LATE if late else P_RETURN):
        return_at = at + sample_gap(world, RETURN_GAPS)
        world.later(return_at, _return, world, customer, order, late, return_at)


def _return(world: World, customer: Customer, order: Order, late: bool, at: float) -> Journey:
    if late and world.chance(0.6):
        reason = "late_delivery"
    else:
        reason = world.pick(RETURN_REASONS, RETURN_REASON_WEIGHTS)
    return_id = world.new_id("rt")
    yield world.emit(
        at,
        "return.requested",
        customer,
        "returns",
        experience="return",
        order_id=order.order_id,
        return_id=return_id,
        reason=reason,
    )
    if world.chance(P_REFUND):
        refund_at = at + sample_gap(world, REFUND_GAPS)
        world.later(refund_at, _refund, world, customer, order, return_id, refund_at)


def _refund(world: World, customer: Customer, order: Order, return_id: str, at: float) -> Journey:
    partial = world.chance(0.2)
    amount = round(order.amount * world.uniform(0.2, 0.9), 2) if partial else order.amount
    yield world.emit(at, "refund.issued", customer, "returns", return_id=return_id, amount=amount)


def _new_order(world: World, customer: Customer) -> Order:
    amount = round(min(2500.0, world.rng.lognormvariate(3.9, 0.75)), 2)
    return Order(order_id=world.new_id("or"), amount=amount, currency=customer.currency)


def _share_above(low: float, high: float, gap: float) -> float:
    """The share of a uniform range [low, high] above ``gap``."""
    return min(1.0, max(0.0, (high - gap) / (high - low)))
