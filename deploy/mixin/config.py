"""The one place for the mixin's selector, windows and SLO targets.

Rules and alerts (and, later, dashboards) are rendered from `MixinConfig`; change a window, a
target or an alert threshold here and run `make rules`. The per-channel first-response targets
are the pipeline's own defaults (`agents.config.DEFAULT_FRT_TARGETS_S`), so the SLO judged by
Prometheus is the one the workers count breaches against. A deployment with other targets passes
its own `frt_targets_s`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from agents.config import DEFAULT_FRT_TARGETS_S
from pipeline.exposition import CONVERSATION_CHANNELS

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
class BurnRateAlert:
    """One multi-window burn-rate condition: both windows burn faster than `factor`."""

    severity: str
    factor: float
    long_window: str
    short_window: str
    for_: str


#: The FRT SLO burn-rate pairs (Google SRE workbook): page at 14.4x over 1h and 5m (2% of a
#: 30-day budget spent in an hour), ticket at 6x over 6h and 30m (5% in six hours).
BURN_RATE_ALERTS: Final = (
    BurnRateAlert("critical", 14.4, "1h", "5m", "2m"),
    BurnRateAlert("warning", 6.0, "6h", "30m", "15m"),
)


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
    #: Channels whose workers export `cx_oldest_unanswered_age_seconds` (the conversation
    #: channels): only these get a CXOldestUnansweredTooOld rule.
    unanswered_channels: tuple[str, ...] = CONVERSATION_CHANNELS
    #: Share of conversations to be answered within target (error budget: 1 - objective).
    frt_objective: float = 0.95
    #: Labels every KPI series carries per exporter that the rules aggregate away.
    aggregate_away: tuple[str, ...] = ("instance", "partition")

    # --- Alerts (deploy/mixin/alerts.yaml) -------------------------------------------------
    #: Burn-rate conditions on the FRT SLO error ratio; each factor x (1 - objective) must
    #: stay below 1, or the alert could never fire (the generator refuses such a config).
    burn_rate_alerts: tuple[BurnRateAlert, ...] = BURN_RATE_ALERTS
    #: CXOldestUnansweredTooOld: the oldest unanswered wait above this multiple of the target.
    oldest_unanswered_target_multiple: float = 2.0
    #: CXBacklogGrowing: backlog grew by more than this many conversations over 1h ...
    backlog_growth_1h: int = 50
    #: ... and is above this floor now.
    backlog_floor: int = 20
    #: CXNpsDropping: the 1h NPS this many points below the channel's own 7d NPS ...
    nps_drop_points: float = 20.0
    #: ... with at least this many NPS answers in the last hour.
    nps_min_responses_1h: int = 30
    #: CXDeadLetterRateHigh: rejected share of all messages over 5m.
    dead_letter_ratio: float = 0.01
    #: CXConsumerLagHigh: messages behind, summed per topic.
    consumer_lag_messages: int = 10_000
    #: CXWatermarkStalled: the watermark unchanged for this long while on-time events arrive.
    watermark_stall_window: str = "15m"
    #: CXNoEventsFromChannel: silence for `no_events_window` after events in `no_events_lookback`.
    no_events_window: str = "15m"
    no_events_lookback: str = "1d"
    #: Base of every alert's runbook_url; the anchor is `alert-<alertname in lower case>`,
    #: the GitHub slug of the README heading "Alert: <AlertName>".
    runbook_base_url: str = "https://github.com/cxpulse/cxpulse#"

    def __post_init__(self) -> None:
        if not 0.0 < self.frt_objective < 1.0:
            raise ValueError(
                f"frt_objective must lie strictly between 0 and 1, not {self.frt_objective}"
            )
        if self.selector.strip().startswith("{"):
            raise ValueError('selector holds label matchers without braces, e.g. job="cxpulse"')


DEFAULT_CONFIG: Final = MixinConfig()
