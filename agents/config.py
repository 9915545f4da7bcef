"""The knobs the pure KPI logic needs, as one immutable value (built from Settings by pipeline).

Histogram buckets always include every channel's first-response target, so quantiles and
SLO ratios computed from the histogram line up with the breach counter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

from schemas.errors import ConfigurationError
from schemas.events import CHANNELS

DAY_MS: Final = 86_400_000
FRT_BASE_BUCKETS: Final = (
    5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
    3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172800.0,
)  # fmt: skip
RESOLUTION_BUCKETS: Final = (
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
    86400.0, 172800.0, 345600.0, 604800.0,
)  # fmt: skip
REFUND_BUCKETS: Final = (
    3600.0, 21600.0, 86400.0, 172800.0, 345600.0, 604800.0, 1209600.0, 2592000.0,
)  # fmt: skip
DEFAULT_FRT_TARGETS_S: Final = {
    "chat": 60.0,
    "phone": 30.0,
    "social": 3600.0,
    "email": 14400.0,
    "web": 14400.0,
    "shop": 14400.0,
    "returns": 14400.0,
}
DEFAULT_CURRENCIES: Final = ("EUR", "USD", "GBP", "CHF", "SEK", "DKK", "NOK", "PLN", "JPY", "CAD")
#: churn risk: the experience signals, each a decaying intensity (the contract's reasons)
CHURN_SIGNALS: Final = (
    "detractor",
    "low_csat",
    "high_effort",
    "slow_response",
    "reopened",
    "repeat_contact",
    "return",
    "late_delivery",
)
#: churn risk: lower edges (days since the last order) of the bands that split a repeat
#: buyer's 1 - P(alive): calendar bands, as RFM recency is usually read
CHURN_RECENCY_BANDS_DAYS: Final = (0, 7, 14, 30, 60, 90, 180, 365)
#: churn risk: the purchase-rhythm features (all reported as the reason `inactive`)
CHURN_RHYTHM_FEATURES: Final = (
    *(f"inactive_{days}d" for days in CHURN_RECENCY_BANDS_DAYS),
    "inactive_one_time",
    "no_orders",
)
CHURN_INTERCEPT: Final = "intercept"
#: churn risk: the logistic model's weights when no `cxpulse churn fit` was run. Round numbers,
#: not fitted to any data: 4.7% over the horizon for a customer without evidence (intercept -3);
#: a repeat buyer surely gone (1 - P(alive) = 1) adds 2 to the log-odds (27%: most lapsed
#: customers never say so), a one-time buyer's MBG/NBD heuristic half that; each experience
#: signal 1 per ln(1 + intensity), so one fresh occurrence doubles the odds.
DEFAULT_CHURN_WEIGHTS: Final = {
    CHURN_INTERCEPT: -3.0,
    **{f"inactive_{days}d": 2.0 for days in CHURN_RECENCY_BANDS_DAYS},
    "inactive_one_time": 1.0,
    "no_orders": 0.0,
    **dict.fromkeys(CHURN_SIGNALS, 1.0),
}
#: churn risk: tier thresholds on the score (fitted, the probability of churning within the
#: horizon): medium from a 20% chance, high from 40%
DEFAULT_CHURN_MEDIUM: Final = 0.2
DEFAULT_CHURN_HIGH: Final = 0.4
#: BG/NBD (r, alpha, a, b), time in weeks: the CDNOW fit of Fader, Hardie & Lee (2005)
DEFAULT_BGNBD: Final = (0.243, 4.414, 0.793, 2.426)


def bucket_seconds(window_s: int) -> int:
    """Window granularity: windows up to 6 h advance by the minute, longer ones by the hour."""
    return 60 if window_s <= 6 * 3600 else 3600


@dataclass(frozen=True, slots=True)
class KpiConfig:
    """Everything the KPI logic reads besides the events themselves."""

    frt_targets_s: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FRT_TARGETS_S))
    fcr_horizon_ms: int = 7 * DAY_MS
    dedup_horizon_ms: int = DAY_MS
    allowed_lateness_ms: int = 5 * 60_000
    tombstone_retention_ms: int = 30 * DAY_MS
    #: rolling windows (seconds) and how long a window's buckets wait for late events
    windows_s: tuple[int, ...] = (3600, 86400, 604800)
    window_grace_ms: int = 5 * 60_000
    currencies: tuple[str, ...] = DEFAULT_CURRENCIES
    #: churn risk: experience signals' half-life (event time), tier thresholds (the score is
    #: the probability of churning within the fit's horizon), hysteresis
    churn_half_life_ms: int = 30 * DAY_MS
    churn_medium: float = DEFAULT_CHURN_MEDIUM
    churn_high: float = DEFAULT_CHURN_HIGH
    churn_hysteresis: float = 0.05
    #: the logistic model's weights (`intercept`, rhythm features, experience signals); a name
    #: left out keeps its default (`DEFAULT_CHURN_WEIGHTS`)
    churn_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CHURN_WEIGHTS))
    bgnbd: tuple[float, float, float, float] = DEFAULT_BGNBD

    def frt_target_ms(self, channel: str) -> int:
        return int(self.frt_targets_s[channel] * 1000)

    @property
    def frt_buckets(self) -> tuple[float, ...]:
        return tuple(sorted({*FRT_BASE_BUCKETS, *self.frt_targets_s.values()}))

    @property
    def conversation_retention_ms(self) -> int:
        """How long a settled, resolved conversation is kept for late reopens and dedup."""
        return self.fcr_horizon_ms + self.dedup_horizon_ms

    def __post_init__(self) -> None:
        missing = [channel for channel in CHANNELS if channel not in self.frt_targets_s]
        if missing:
            raise ConfigurationError(
                f"set a first-response target for channels: {', '.join(missing)}"
            )
        self._check_churn()

    def _check_churn(self) -> None:
        if not 0 < self.churn_medium < self.churn_high < 1:
            raise ConfigurationError(
                "churn tier thresholds need 0 < medium < high < 1, "
                f"got medium={self.churn_medium}, high={self.churn_high}"
            )
        if not self.churn_hysteresis >= 0:
            raise ConfigurationError(
                f"set the churn hysteresis margin to 0 or more, got {self.churn_hysteresis}"
            )
        if not self.churn_half_life_ms > 0:
            raise ConfigurationError(
                f"set the churn half-life to more than 0 ms, got {self.churn_half_life_ms}"
            )
        unknown = sorted(set(self.churn_weights) - set(DEFAULT_CHURN_WEIGHTS))
        if unknown:
            raise ConfigurationError(
                f"unknown churn signals {', '.join(unknown)}: "
                f"weights exist for {', '.join(DEFAULT_CHURN_WEIGHTS)}"
            )
        bad = [
            name
            for name, w in self.churn_weights.items()
            if not math.isfinite(w) or (name != CHURN_INTERCEPT and w < 0)
        ]
        if bad:
            raise ConfigurationError(
                f"set churn weights to finite numbers, 0 or more but the intercept: "
                f"{', '.join(sorted(bad))} (e.g. the output of `cxpulse churn fit --format env`)"
            )
        if len(self.bgnbd) != 4 or not all(math.isfinite(v) and v > 0 for v in self.bgnbd):
            raise ConfigurationError(
                f"BG/NBD parameters (r, alpha, a, b) must be 4 finite numbers > 0, got {self.bgnbd}"
            )
