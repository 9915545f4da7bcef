"""The one place for the mixin's selector, windows and SLO targets.

Rules (and, later, alerts and dashboards) are rendered from `MixinConfig`; change a window or a
target here and run `make rules`. The per-channel first-response targets are the pipeline's own
defaults (`agents.config.DEFAULT_FRT_TARGETS_S`), so the SLO judged by Prometheus is the one the
workers count breaches against. A deployment with other targets passes its own `frt_targets_s`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from agents.config import DEFAULT_FRT_TARGETS_S

#: Rolling windows of the KPI ratios (contract section 2: 1h, 24h and 7d by default).
KPI_WINDOWS: Final = ("1h", "24h", "7d")
#: Windows of the FRT SLO error ratio: the multi-window burn-rate pairs (page: 1h and 5m;
#: ticket: 6h and 30m) plus 24h and 7d for reports and slow-burn tickets.
SLO_WINDOWS: Final = ("5m", "30m", "1h", "6h", "24h", "7d")
#: Windows of the stream-health rates (events per second, dead letters, late and duplicate events).
OPS_WINDOWS: Final = ("5m", "1h")
#: Quantiles recorded for the first-response and resolution histograms.
QUANTILES: Final = (0.5, 0.9, 0.99)


@dataclass(frozen=True, slots=True)
class MixinConfig:
    """Selectors, windows and SLO targets for every rule the mixin renders."""

    #: Label matchers (without braces) picking the CX Pulse workers' series.
    selector: str = 'job="cxpulse"'
    kpi_windows: tuple[str, ...] = KPI_WINDOWS
    slo_windows: tuple[str, ...] = SLO_WINDOWS
    ops_windows: tuple[str, ...] = OPS_WINDOWS
    quantiles: tuple[float, ...] = QUANTILES
    #: Per-channel first-response target in seconds (a breach is a wait past it).
    frt_targets_s: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FRT_TARGETS_S))
    #: Share of conversations to be answered within target (error budget: 1 - objective).
    frt_objective: float = 0.95
    #: Labels every KPI series carries per exporter that the rules aggregate away.
    aggregate_away: tuple[str, ...] = ("instance", "partition")

    def __post_init__(self) -> None:
        if not 0.0 < self.frt_objective < 1.0:
            raise ValueError(
                f"frt_objective must lie strictly between 0 and 1, not {self.frt_objective}"
            )
        if self.selector.strip().startswith("{"):
            raise ValueError('selector holds label matchers without braces, e.g. job="cxpulse"')


DEFAULT_CONFIG: Final = MixinConfig()
