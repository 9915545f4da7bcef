"""The panels and PromQL queries of the mixin's Grafana dashboards, ready to run without Grafana.

In: dashboard JSON files (default `deploy/mixin/dashboards_out/*.json`, standard Grafana JSON:
``panels[]`` with ``gridPos``, ``targets[].expr``, ``fieldConfig.defaults.unit``, rows with
nested ``panels``; ``templating.list[]`` variables).
Out: :class:`Dashboard` values whose panels hold concrete PromQL: every query and custom
variable set to "All" (its ``allValue``, else ``.*``), Grafana's ``$__rate_interval``,
``$__interval`` and ``$__range`` set to the values given. A query that still names a variable
raises :class:`DashboardError`. Used by the end-to-end test and by `python -m deploy.preview`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from deploy.promql import substitute_variables, unresolved_variables
from schemas.errors import CXPulseError

DASHBOARDS_DIR: Final = Path(__file__).resolve().parent / "mixin" / "dashboards_out"


class DashboardError(CXPulseError):
    """A dashboard file is missing, malformed, or uses a variable we cannot substitute."""


@dataclass(frozen=True, slots=True)
class Query:
    """One panel target: PromQL without variables, its legend format and whether it is instant."""

    ref: str
    expr: str
    legend: str
    instant: bool


@dataclass(frozen=True, slots=True)
class Panel:
    """A panel (``type`` ``row`` for a row header) and its place in Grafana's 24-column grid."""

    title: str
    type: str
    x: int
    y: int
    w: int
    h: int
    unit: str
    queries: tuple[Query, ...]
    #: Threshold steps (``None`` is the base step) and how a time series draws them
    #: (``off``, ``line``, ``dashed``, ...), and the axis bounds, from ``fieldConfig.defaults``.
    thresholds: tuple[tuple[float | None, str], ...] = ()
    thresholds_style: str = "off"
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, slots=True)
class Dashboard:
    uid: str
    title: str
    path: Path
    panels: tuple[Panel, ...]

    @property
    def queries(self) -> list[tuple[Panel, Query]]:
        return [(panel, query) for panel in self.panels for query in panel.queries]


def dashboard_files(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    """The dashboard JSON files in ``directory``; DashboardError if there is none."""
    files = sorted(directory.glob("*.json"))
    if not files:
        raise DashboardError(
            f"no dashboards in {directory}: run `make rules` (python -m deploy.mixin.generate)"
        )
    return files


def load_dashboard(
    path: Path, *, rate_interval: str = "1m", interval: str = "15s", range_s: int = 3600
) -> Dashboard:
    """The dashboard at ``path`` with its variables substituted (see the module docstring)."""
    try:
        board: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DashboardError(f"cannot read dashboard {path}: {exc}") from exc
    values = _variable_values(board.get("templating", {}).get("list", []))
    values.update(
        {
            "__rate_interval": rate_interval,
            "__interval": interval,
            "__range": f"{range_s}s",
            "__range_s": str(range_s),
            "__range_ms": str(range_s * 1000),
        }
    )
    panels = tuple(_panel(raw, values, path) for raw in _flatten(board.get("panels", [])))
    return Dashboard(
        uid=str(board.get("uid", path.stem)),
        title=str(board.get("title", path.stem)),
        path=path,
        panels=panels,
    )


def _variable_values(variables: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for variable in variables:
        kind, name = variable.get("type"), str(variable["name"])
        if kind in ("query", "custom"):
            values[name] = str(variable.get("allValue") or ".*")
        elif kind == "constant":
            values[name] = str(variable.get("query", ""))
        elif kind in ("interval", "textbox"):
            current = variable.get("current") or {}
            values[name] = str(current.get("value") or variable.get("query", ""))
    return values


def _flatten(panels: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    """Panels in order; a collapsed row's own ``panels`` follow the row."""
    for panel in panels:
        yield panel
        yield from panel.get("panels", [])


def _panel(raw: Mapping[str, Any], values: Mapping[str, str], path: Path) -> Panel:
    grid = raw.get("gridPos") or {}
    title = str(raw.get("title", ""))
    queries = []
    for target in raw.get("targets", []):
        expr = target.get("expr")
        if not expr or target.get("hide"):
            continue
        concrete = substitute_variables(str(expr), values)
        left = unresolved_variables(concrete)
        if left:
            raise DashboardError(f"{path.name}, panel {title!r}: unknown variables {left}")
        queries.append(
            Query(
                ref=str(target.get("refId", "")),
                expr=concrete,
                legend=str(target.get("legendFormat") or ""),
                instant=bool(target.get("instant")) and not target.get("range"),
            )
        )
    defaults = raw.get("fieldConfig", {}).get("defaults", {})
    steps = defaults.get("thresholds", {}).get("steps", [])
    return Panel(
        title=title,
        type=str(raw.get("type", "")),
        x=int(grid.get("x", 0)),
        y=int(grid.get("y", 0)),
        w=int(grid.get("w", 24)),
        h=int(grid.get("h", 8)),
        unit=str(defaults.get("unit") or ""),
        queries=tuple(queries),
        thresholds=tuple(
            (None if step.get("value") is None else float(step["value"]), str(step["color"]))
            for step in steps
        ),
        thresholds_style=str(
            defaults.get("custom", {}).get("thresholdsStyle", {}).get("mode", "off")
        ),
        min=None if defaults.get("min") is None else float(defaults["min"]),
        max=None if defaults.get("max") is None else float(defaults["max"]),
    )
