"""Repeat-purchase summaries (x, t_x, T) from orders, as the BG/NBD model needs them.

In: ``(customer_id, occurred_at_ms)`` of ``order.placed`` events, in any order, and an ``until``
instant (epoch milliseconds, inclusive). Out: per customer the summary of Fader, Hardie & Lee
(2005) for their CDNOW calibration period, in weeks counted in whole days:

- Days are UTC calendar days of ``occurred_at`` (``occurred_at_ms // 86_400_000``). Several
  orders on one day are one transaction, so a redelivered or duplicated event changes nothing.
- ``x``: repeat transactions, the number of distinct order days minus one (the first purchase
  starts the customer and is not a repeat).
- ``t_x``: last order day minus first order day, in weeks (days / 7); 0 when ``x = 0``.
- ``T``: the UTC day of ``until`` minus the first order day, in weeks (days / 7). The command
  line reads ``--until 1997-09-30`` as the end of that day (23:59:59.999 UTC), so a customer
  who first bought on 1997-01-01 has ``T = 272 / 7 = 38.857`` weeks, as in the paper.

Orders after ``until`` are ignored (`RfmBuilder.add` says so); customers whose first order is
after it do not exist yet. Pure: no Faust, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

MS_PER_DAY: Final = 86_400_000
DAYS_PER_WEEK: Final = 7.0


def utc_day(epoch_ms: int) -> int:
    """The UTC calendar day of an instant, as whole days since 1970-01-01 (floor, also < 1970)."""
    return epoch_ms // MS_PER_DAY


@dataclass(frozen=True, slots=True)
class CustomerRfm:
    """One customer's ``x`` (repeat transactions), ``t_x`` and ``T`` (weeks, whole days)."""

    x: int
    t_x: float
    T: float


def customer_rfm(purchase_days: Collection[int], until_day: int) -> CustomerRfm:
    """The summary of a customer who ordered on ``purchase_days`` (UTC days, repeats allowed).

    Every day must be on or before ``until_day``; there must be at least one.
    """
    if not purchase_days:
        raise ValueError("a customer needs at least one order day")
    days = set(purchase_days)
    first, last = min(days), max(days)
    if last > until_day:
        raise ValueError(f"order day {last} is after the until day {until_day}")
    return CustomerRfm(
        x=len(days) - 1,
        t_x=(last - first) / DAYS_PER_WEEK,
        T=(until_day - first) / DAYS_PER_WEEK,
    )


@dataclass(frozen=True, slots=True)
class RfmTable:
    """The summaries of all customers, as parallel arrays in first-seen order."""

    customer_ids: tuple[str, ...]
    x: npt.NDArray[np.int64]
    t_x: npt.NDArray[np.float64]
    T: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.customer_ids)

    def customer(self, index: int) -> CustomerRfm:
        """The summary of the customer at ``index``."""
        return CustomerRfm(int(self.x[index]), float(self.t_x[index]), float(self.T[index]))


@dataclass(slots=True)
class RfmBuilder:
    """Collects order days per customer up to ``until_ms`` (inclusive), then builds the table."""

    until_ms: int
    _days: dict[str, set[int]] = field(default_factory=dict, init=False, repr=False)

    @property
    def until_day(self) -> int:
        """The UTC day of ``until_ms``: the end of every customer's ``T``."""
        return utc_day(self.until_ms)

    def add(self, customer_id: str, occurred_at_ms: int) -> bool:
        """Record one order; False (and nothing recorded) when it is after ``until_ms``."""
        if occurred_at_ms > self.until_ms:
            return False
        self._days.setdefault(customer_id, set()).add(utc_day(occurred_at_ms))
        return True

    def build(self) -> RfmTable:
        """The summaries of every customer recorded so far."""
        until_day = self.until_day
        summaries = [customer_rfm(days, until_day) for days in self._days.values()]
        return RfmTable(
            customer_ids=tuple(self._days),
            x=np.array([s.x for s in summaries], dtype=np.int64),
            t_x=np.array([s.t_x for s in summaries], dtype=np.float64),
            T=np.array([s.T for s in summaries], dtype=np.float64),
        )


def build_rfm(orders: Iterable[tuple[str, int]], until_ms: int) -> RfmTable:
    """The summaries of ``(customer_id, occurred_at_ms)`` orders up to ``until_ms`` (inclusive)."""
    builder = RfmBuilder(until_ms)
    for customer_id, occurred_at_ms in orders:
        builder.add(customer_id, occurred_at_ms)
    return builder.build()
