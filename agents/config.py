"""The knobs the pure KPI logic needs, as one immutable value (built from Settings by pipeline).

Histogram buckets always include every channel's first-response target, so quantiles and
SLO ratios computed from the histogram line up with the breach counter.
"""

from __future__ import annotations

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

    def frt_target_ms(self, channel: str) -> int:
        return int(self.frt_targets_s[channel] * 1000)

    @property
    def frt_buckets(self) -> tuple[float, ...]:
        return tuple(sorted({*FRT_BASE_BUCKETS, *self.frt_targets_s.values()}))

    @property
    def conversation_retention_ms(self) -> int:
        """How long a settled, resolved conversation is kept for late reopens and dedup."""
        return self.fcr_horizon_ms + self.dedup_horizon_ms

    @property
    def recent_retention_ms(self) -> int:
        """How long a customer keeps its windowed changes: longest window, its bucket, grace."""
        longest = max(self.windows_s)
        return (longest + bucket_seconds(longest)) * 1000 + self.window_grace_ms

    def __post_init__(self) -> None:
        missing = [channel for channel in CHANNELS if channel not in self.frt_targets_s]
        if missing:
            raise ConfigurationError(
                f"set a first-response target for channels: {', '.join(missing)}"
            )
