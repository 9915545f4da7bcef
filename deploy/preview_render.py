"""Draw a Grafana dashboard as a PNG with matplotlib, from query results we already have.

In: a :class:`deploy.dashboard_queries.Dashboard` and a function that runs one of its queries
(a range query for time series and state timelines, an instant query for stats).
Out: a PNG in Grafana's dark theme laid out on the dashboard's 24-column grid: row headers, panel
titles, units on the axes, legends built from each target's ``legendFormat``, threshold lines
where the panel draws them, "No data" where a query returned nothing. A preview, not Grafana:
it draws time series, stats and state timelines, which is what the mixin's dashboards use.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from deploy.dashboard_queries import Dashboard, Panel, Query

BACKGROUND: Final = "#111217"
PANEL: Final = "#181b1f"
BORDER: Final = "#2c3235"
TEXT: Final = "#ccccdc"
MUTED: Final = "#8e8e9e"
PALETTE: Final = (
    "#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c",
    "#5794f2", "#b877d9", "#fade2a", "#96d98d", "#ff9830",
)  # fmt: skip
#: Grafana's named colours, as used by threshold steps.
NAMED: Final = {
    "green": "#73bf69",
    "yellow": "#fade2a",
    "orange": "#ff9830",
    "red": "#f2495c",
    "blue": "#5794f2",
    "purple": "#b877d9",
    "text": TEXT,
}
#: Inches per grid unit: Grafana's grid is 24 columns wide, a row unit is 30 px of ~80 px columns.
COLUMN_IN: Final = 0.8
ROW_IN: Final = 0.3
TITLE_IN: Final = 0.9
_LEGEND_LABEL: Final = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True, slots=True)
class Result:
    """One series of a query result: its legend and its points (Unix seconds, value)."""

    legend: str
    points: tuple[tuple[float, float], ...]


#: Runs a query: ``(query, instant)`` to the series it returned (Prometheus API shapes).
Runner = Callable[[Query, bool], list[dict[str, Any]]]


def render_dashboard(
    dashboard: Dashboard,
    run: Runner,
    output: Path,
    *,
    time_range: tuple[float, float],
    subtitle: str = "",
    dpi: int = 80,
) -> None:
    """Run every panel's queries through ``run`` and write the dashboard to ``output``; the
    time axes span ``time_range`` (Unix seconds), as a Grafana time picker would."""
    with plt.rc_context({"text.parse_math": False}):  # `$channel` is text, not TeX
        _render(dashboard, run, output, time_range, subtitle, dpi)


def _render(
    dashboard: Dashboard,
    run: Runner,
    output: Path,
    time_range: tuple[float, float],
    subtitle: str,
    dpi: int,
) -> None:
    bottom = max((p.y + p.h for p in dashboard.panels), default=1)
    width, height = 24 * COLUMN_IN, bottom * ROW_IN + TITLE_IN
    figure = plt.figure(figsize=(width, height), facecolor=BACKGROUND)
    figure.text(
        0.006, 1 - 0.32 / height, dashboard.title, color=TEXT, fontsize=15, weight="bold",
        va="center",
    )  # fmt: skip
    if subtitle:
        figure.text(0.006, 1 - 0.42 / height, textwrap.fill(subtitle, 260), color=MUTED,
                    fontsize=8.5, va="top", linespacing=1.4)  # fmt: skip
    for panel in dashboard.panels:
        box = _box(panel, width, height)
        if panel.type == "row":
            _row(figure, panel, box)
            continue
        results = [_series(query, run(query, _is_instant(panel, query))) for query in panel.queries]
        _panel(figure, panel, box, results, time_range)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=dpi, facecolor=BACKGROUND)
    plt.close(figure)


def _is_instant(panel: Panel, query: Query) -> bool:
    return panel.type in ("stat", "gauge", "bargauge") or query.instant


def _box(panel: Panel, width: float, height: float) -> tuple[float, float, float, float]:
    """Figure coordinates (left, bottom, width, height) of a panel, with a small gutter."""
    gutter = 0.06
    left = (panel.x * COLUMN_IN + gutter) / width
    top = (TITLE_IN + panel.y * ROW_IN + gutter) / height
    w = (panel.w * COLUMN_IN - 2 * gutter) / width
    h = (panel.h * ROW_IN - 2 * gutter) / height
    return left, 1 - top - h, w, h


def _series(query: Query, found: list[dict[str, Any]]) -> list[Result]:
    results = []
    for item in found:
        labels: dict[str, str] = item.get("metric", {})
        raw = item.get("values") or ([item["value"]] if "value" in item else [])
        points = tuple((float(t), float(v)) for t, v in raw)
        results.append(Result(_legend(query.legend, labels), points))
    return sorted(results, key=lambda r: r.legend)


def _legend(template: str, labels: dict[str, str]) -> str:
    if template:
        return _LEGEND_LABEL.sub(lambda m: labels.get(m[1], ""), template).strip()
    shown = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{labels.get('__name__', '')}{{{shown}}}"


def _row(figure: Figure, panel: Panel, box: tuple[float, float, float, float]) -> None:
    left, bottom, _, h = box
    figure.text(left, bottom + h / 2, panel.title, color=TEXT, fontsize=12, weight="bold",
                va="center")  # fmt: skip


def _panel(
    figure: Figure,
    panel: Panel,
    box: tuple[float, float, float, float],
    results: Sequence[Sequence[Result]],
    time_range: tuple[float, float],
) -> None:
    frame = figure.add_axes(box)
    frame.set_facecolor(PANEL)
    frame.set_xticks([])
    frame.set_yticks([])
    for spine in frame.spines.values():
        spine.set_color(BORDER)
    frame.text(0.01, 0.985, panel.title, color=TEXT, fontsize=10, weight="bold",
               transform=frame.transAxes, va="top")  # fmt: skip
    flat = [result for per_query in results for result in per_query if result.points]
    if not flat:
        frame.text(0.5, 0.5, "No data", color=MUTED, fontsize=12, ha="center", va="center",
                   transform=frame.transAxes)  # fmt: skip
        return
    if panel.type == "stat":
        _stat(frame, panel, flat)
        return
    width_in, height_in = figure.get_size_inches()
    left, bottom, w, h = box
    legend = _legend_layout(panel, flat) if panel.type != "state-timeline" else (1, 0)
    margin_left = 1.2 if panel.type == "state-timeline" else 0.75
    margin_bottom = 0.3 + 0.16 * legend[1]
    inner = (
        left + margin_left / width_in,
        bottom + margin_bottom / height_in,
        w - (margin_left + 0.2) / width_in,
        h - (margin_bottom + 0.4) / height_in,
    )
    ax = figure.add_axes(inner)
    span = time_range[1] - time_range[0]
    if panel.type == "state-timeline":
        _state_timeline(ax, flat)
    else:
        _timeseries(ax, panel, flat, legend[0], 0.2 / (inner[3] * height_in))
    ax.set_xlim(*time_range)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 3, 5, 6, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(_clock_seconds if span < 1200 else _clock))


def _legend_layout(panel: Panel, results: Sequence[Result]) -> tuple[int, int]:
    """Legend columns and rows (at most three) that fit the panel's width."""
    available = panel.w * COLUMN_IN * 16  # characters of 7 pt text per row
    entry = max(len(r.legend) for r in results) + 5
    columns = max(1, min(len(results), int(available // entry)))
    return columns, min(3, math.ceil(len(results) / columns))


def _timeseries(
    ax: Axes, panel: Panel, results: Sequence[Result], columns: int, below: float
) -> None:
    """Lines per series; the legend starts ``below`` (axes fraction) the plot, under the ticks."""
    _style(ax)
    for index, result in enumerate(results):
        times = [t for t, _ in result.points]
        values = [v if math.isfinite(v) else math.nan for _, v in result.points]
        color = PALETTE[index % len(PALETTE)]
        ax.plot(times, values, color=color, linewidth=1.3, label=result.legend)
        ax.fill_between(times, values, alpha=0.08, color=color)
    if panel.thresholds_style not in ("off", ""):
        for value, color in panel.thresholds:
            if value is not None:
                ax.axhline(value, color=NAMED.get(color, color), linewidth=0.9,
                           linestyle="--" if "dash" in panel.thresholds_style else "-")  # fmt: skip
    if panel.min is not None:
        ax.set_ylim(bottom=panel.min)
    if panel.max is not None:
        ax.set_ylim(top=panel.max)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, panel.unit)))
    handles, labels = ax.get_legend_handles_labels()
    room = columns * 3
    if len(handles) > room:  # Grafana scrolls the legend; a picture shows what fits
        more = len(handles) - room + 1
        handles, labels = handles[: room - 1], labels[: room - 1]
        handles.append(Line2D([], [], linewidth=0))
        labels.append(f"+{more} more")
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.0, -below), ncol=columns,
              frameon=False, fontsize=7, labelcolor=TEXT, handlelength=1.2,
              columnspacing=1.0, borderaxespad=0.0)  # fmt: skip


def _state_timeline(ax: Axes, results: Sequence[Result]) -> None:
    _style(ax)
    for row, result in enumerate(results):
        points = result.points
        for (start, value), (end, _) in zip(points, [*points[1:], points[-1]], strict=True):
            color = NAMED["green"] if value >= 1 else NAMED["red"]
            ax.barh(row, end - start, left=start, color=color, height=0.7)
    ax.set_yticks(range(len(results)), [r.legend for r in results], fontsize=8)


def _stat(frame: Axes, panel: Panel, results: Sequence[Result]) -> None:
    shown = results[:8]
    single = len(shown) == 1
    for index, result in enumerate(shown):
        value = result.points[-1][1]
        color = _threshold_color(panel, value)
        column, row = (index % 2, index // 2) if not single else (0, 0)
        rows = 1 if single else math.ceil(len(shown) / 2)
        x = 0.5 if single else 0.27 + 0.5 * column
        y = 0.45 if single else 0.78 - (row + 0.5) * 0.72 / rows
        frame.text(x, y, format_value(value, panel.unit), color=color,
                   fontsize=30 if single else 17, weight="bold", ha="center", va="center",
                   transform=frame.transAxes)  # fmt: skip
        if not single or result.legend:
            frame.text(x, y - (0.2 if single else 0.1), result.legend, color=MUTED, fontsize=8,
                       ha="center", va="center", transform=frame.transAxes)  # fmt: skip


def _clock(unix: float, _position: float | None = None) -> str:
    """An x tick (Unix seconds) as UTC wall-clock time."""
    return datetime.fromtimestamp(unix, UTC).strftime("%H:%M")


def _clock_seconds(unix: float, _position: float | None = None) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%H:%M:%S")


def _threshold_color(panel: Panel, value: float) -> str:
    color = "green"
    for step, step_color in panel.thresholds:
        if step is None or (math.isfinite(value) and value >= step):
            color = step_color
    return NAMED.get(color, color)


def _style(ax: Axes) -> None:
    ax.set_facecolor(PANEL)
    ax.tick_params(colors=MUTED, labelsize=7)
    ax.grid(color=BORDER, linewidth=0.6)
    for spine in ax.spines.values():
        spine.set_visible(False)


def format_value(value: float, unit: str) -> str:
    """A value as Grafana would show it in ``unit`` (the units the mixin uses)."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if unit == "percentunit":
        return f"{_number(value * 100)}%"
    if unit == "percent":
        return f"{_number(value)}%"
    if unit == "s":
        return _duration(value)
    suffix = {"mps": " msg/s", "reqps": " req/s", "ops": " ops/s"}.get(unit, "")
    return _short(value) + suffix


def _duration(seconds: float) -> str:
    magnitude = abs(seconds)
    if magnitude == 0:
        return "0 s"
    if magnitude < 1:
        return f"{seconds * 1000:.3g} ms"
    for size, name in ((86400, "day"), (3600, "h"), (60, "min")):
        if magnitude >= size:
            return f"{_number(seconds / size)} {name}"
    return f"{_number(seconds)} s"


def _short(value: float) -> str:
    for size, suffix in ((1e9, " Bil"), (1e6, " Mil"), (1e3, " K")):
        if abs(value) >= size:
            return f"{_number(value / size)}{suffix}"
    return _number(value)


def _number(value: float) -> str:
    """Three significant digits, but never an exponent for numbers people read."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if value != 0 and abs(value) < 0.001:
        return f"{value:.1e}"
    return f"{value:.3g}"
