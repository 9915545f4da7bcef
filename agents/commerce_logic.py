"""Pure commerce logic: orders, deliveries, returns and refunds of one customer.

In: `order.placed`, `order.delivered`, `return.requested`, `refund.issued` events.
Out: contributions to `cx_orders_total{channel}`, `cx_order_value_total{channel,currency}`
(kept in micro-units, exported in currency units), `cx_returns_total{reason}`,
`cx_deliveries_total{outcome}` and `cx_refund_seconds`. State: the returns whose refund
(or request, when the refund arrives first) is still awaited, so time to refund is observed
once per return in any arrival order. A delivery without `promised_at` counts as on time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.config import REFUND_BUCKETS, KpiConfig
from agents.ledger import Deltas, Ledger, bucket_label, series_key
from schemas.events import COMMERCE_TYPES, Event


@dataclass(slots=True)
class CommerceState:
    ledger: Ledger = field(default_factory=Ledger)
    #: return_id -> [requested_ms | None, refunded_ms | None]
    returns: dict[str, list[int | None]] = field(default_factory=dict)


class Commerce:
    """Applies commerce events to a customer's `CommerceState`."""

    name = "commerce"
    counts_events = True
    types = COMMERCE_TYPES

    def __init__(self, config: KpiConfig) -> None:
        self.config = config
        self.currencies = frozenset(config.currencies)

    def new_state(self) -> CommerceState:
        return CommerceState()

    def ledger(self, state: CommerceState) -> Ledger:
        return state.ledger

    def to_json(self, state: CommerceState) -> object:
        return {**state.ledger.to_json(), "ret": state.returns}

    def from_json(self, data: object) -> CommerceState:
        assert isinstance(data, dict)
        returns: dict[str, Any] = data.get("ret", {})
        return CommerceState(Ledger.from_json(data), dict(returns))

    def apply(self, state: CommerceState, event: Event) -> Deltas:
        deltas = Deltas()
        at = event.occurred_at_ms
        if event.type == "order.placed":
            currency = event.currency if event.currency in self.currencies else "other"
            deltas.inc(series_key("cx_orders_total", event.channel))
            deltas.inc(
                series_key("cx_order_value_total:micros", event.channel, currency),
                event.amount_micros or 0,
            )
        elif event.type == "order.delivered":
            late = event.promised_at_ms is not None and at > event.promised_at_ms
            deltas.inc(series_key("cx_deliveries_total", "late" if late else "on_time"))
        elif event.type == "return.requested":
            deltas.inc(series_key("cx_returns_total", event.reason or "other"))
            self._refund_leg(state, event, 0, deltas)
        elif event.type == "refund.issued":
            self._refund_leg(state, event, 1, deltas)
        self._forget(state, at)
        return deltas

    def _refund_leg(self, state: CommerceState, event: Event, leg: int, deltas: Deltas) -> None:
        assert event.return_id is not None
        legs = state.returns.setdefault(event.return_id, [None, None])
        if legs[leg] is not None:
            return
        legs[leg] = event.occurred_at_ms
        requested, refunded = legs
        if requested is not None and refunded is not None:
            waited = max(refunded - requested, 0)
            deltas.inc(series_key("cx_refund_seconds", bucket_label(REFUND_BUCKETS, waited)))
            deltas.inc("cx_refund_seconds:sum_ms", waited)

    def _forget(self, state: CommerceState, now_ms: int) -> None:
        cutoff = now_ms - self.config.conversation_retention_ms
        done = [
            key
            for key, (requested, refunded) in state.returns.items()
            if requested is not None and refunded is not None and max(requested, refunded) < cutoff
        ]
        for key in done:
            del state.returns[key]
        state.ledger.forget_before(now_ms - self.config.dedup_horizon_ms)
