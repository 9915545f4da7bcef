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
#: churn risk: weight of each experience signal (its names are the contract's reasons)
DEFAULT_CHURN_WEIGHTS: Final = {
    "detractor": 0.35,
    "low_csat": 0.25,
    "high_effort": 0.15,
    "slow_response": 0.15,
    "reopened": 0.10,
    "repeat_contact": 0.10,
    "return": 0.15,
    "late_delivery": 0.15,
}
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
    #: churn risk: experience signals' half-life (event time), tier thresholds, hysteresis
    churn_half_life_ms: int = 30 * DAY_MS
    churn_medium: float = 0.4
    churn_high: float = 0.7
    churn_hysteresis: float = 0.05
    #: experience signal -> weight in [0, 1]; a signal left out keeps its default weight
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
        bad = [name for name, w in self.churn_weights.items() if not 0 <= w <= 1]
        if bad:
            raise ConfigurationError(f"set churn weights in [0, 1]: {', '.join(sorted(bad))}")
        if len(self.bgnbd) != 4 or not all(math.isfinite(v) and v > 0 for v in self.bgnbd):
            raise ConfigurationError(
                f"BG/NBD parameters (r, alpha, a, b) must be 4 finite numbers > 0, got {self.bgnbd}"
            )
