"""How every figure is shown: one label, one unit and one precision per ``v_*`` column.

Why one module: the text report, the HTML report, the JSON report's ``fields`` block and the
spreadsheet export must agree on what a number means. ``say_do_ratio`` 0.875 is a fraction
shown as 88 %, ``scope_change_pct`` 53.0 is already a percentage shown as 53.0 %; writing a
format spec at each use is how a report once showed 5301 %. Renderers ask :func:`field` for
a column and call :func:`fmt`; they never format a warehouse number themselves.

Columns not listed in :data:`FIELDS` get a unit from the naming convention of the views
(``*_pct`` a percentage, ``*_ratio`` / ``*_rate`` a fraction, ``*_days`` days, ``*_points``
points, ``*_score`` a 0-100 score; docs/warehouse.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FIELDS",
    "FLOW_COLUMNS",
    "HEALTH_COLUMNS",
    "PLAN_COLUMNS",
    "METRIC_FIELDS",
    "UNITS",
    "Field",
    "describe",
    "field",
    "fmt",
    "fmt_points",
    "fmt_status_legend",
    "metric_field",
]

#: unit -> (suffix shown after the number, default decimals, what it means)
UNITS: dict[str, tuple[str, int, str]] = {
    "fraction": ("%", 0, "a fraction 0-1, shown as a percentage"),
    "percent": ("%", 1, "a percentage (53.0 = 53 %)"),
    "days": (" d", 1, "calendar days"),
    "points": ("", 1, "story points"),
    "ratio": ("", 2, "a ratio (1.00 = on plan)"),
    "score": ("", 1, "a 0-100 score"),
    "count": ("", 0, "a count"),
    "money": ("", 0, "an amount in the budget's currency"),
    "number": ("", 1, "a number"),
    "weight": ("", 2, "a weight"),
    "date": ("", 0, "a date (YYYY-MM-DD)"),
}


@dataclass(frozen=True, slots=True)
class Field:
    """One column as people see it: the same label in every format."""

    column: str
    label: str
    unit: str
    help: str
    decimals: int | None = None

    @property
    def places(self) -> int:
        return UNITS[self.unit][1] if self.decimals is None else self.decimals

    def describe(self) -> dict[str, Any]:
        """The JSON report's ``fields`` entry: what a script needs to show the number."""
        return {
            "label": self.label,
            "unit": self.unit,
            "decimals": self.places,
            "help": self.help,
        }


def _f(column: str, label: str, unit: str, help: str, decimals: int | None = None) -> Field:
    return Field(column, label, unit, help, decimals)


FIELDS: dict[str, Field] = {
    f.column: f
    for f in (
        # health
        _f("health_score", "Health", "score", "0-100 health score (weighted components)"),
        _f("schedule_score", "Schedule", "score", "schedule component, 0-100"),
        _f("delivery_score", "Delivery", "score", "delivery component, 0-100"),
        _f("quality_score", "Quality", "score", "quality component, 0-100"),
        _f("budget_score", "Budget", "score", "budget component, 0-100"),
        _f("dependencies_score", "Dependencies", "score", "dependencies component, 0-100"),
        _f("component_score", "Score", "score", "the component's 0-100 score"),
        _f("component_weight", "Weight", "weight", "the component's weight in the score"),
        _f("score", "Score", "score", "the metric's 0-100 score"),
        # project metrics
        _f("velocity_points", "Velocity", "points", "points completed per sprint"),
        _f("velocity_cv", "Velocity CV", "ratio", "velocity variation (stdev / mean)"),
        _f("say_do_ratio", "Say/do", "fraction", "points completed / points committed"),
        _f("throughput_per_week", "Items/wk", "number", "items done per week"),
        _f("cycle_time_p50_days", "Cycle p50", "days", "median days from start to done"),
        _f("cycle_time_p85_days", "Cycle p85", "days", "85th percentile days start to done"),
        _f("defect_density", "Bugs/100", "number", "bugs created per 100 points delivered"),
        _f("on_time_delivery_rate", "On time", "fraction", "releases delivered on time"),
        _f("cpi", "CPI", "ratio", "cost performance: earned value / actual cost"),
        _f("spi", "SPI", "ratio", "schedule performance: earned value / planned value"),
        _f("scope_change_pct", "Scope chg", "percent", "scope added in the window"),
        _f("open_blockers", "Blockers", "count", "open blockers in other projects"),
        _f("open_bugs", "Open bugs", "count", "bugs not done"),
        _f("open_bug_trend_pct", "Bug trend", "percent", "change in open bugs"),
        _f("forecast_finish_date", "Forecast", "date", "finish at the current velocity"),
        _f("forecast_slip_days", "Slip", "days", "forecast finish - planned end", 0),
        _f("end_date", "Planned end", "date", "the configured end date"),
        _f("planned_end_date", "Planned end", "date", "the configured end date"),
        _f("remaining_points", "Remaining", "points", "points not done yet"),
        _f("alert_weight", "Alert weight", "number", "severity-weighted open alerts"),
        _f("open_alerts", "Open alerts", "count", "open dependency alerts"),
        _f("slip_days", "Slip", "days", "days the blocker finishes after", 0),
        _f("open_days", "Open for", "days", "days since the alert opened"),
        _f("planned_value", "Planned value", "money", "budgeted cost of planned work"),
        _f("earned_value", "Earned value", "money", "budget share of the work done"),
        _f("actual_cost", "Actual cost", "money", "cost so far"),
        _f("budget_variance", "Cost variance", "money", "earned value - actual cost"),
        _f("budget", "Budget amount", "money", "configured budget"),
        # shared people (v_resource_load)
        _f("in_progress_items", "WIP", "count", "items in progress in the project"),
        _f("active_sprint_points", "Sprint pts", "points", "points in the project's active sprint"),
        _f("program_in_progress_items", "WIP", "count", "items in progress, program-wide"),
        _f("program_projects_in_progress", "Projects", "count", "projects with their WIP"),
        _f("program_active_sprint_points", "Sprint pts", "points", "active-sprint points"),
        # benefits (v_benefits, v_program_benefits)
        _f("value", "Value", "number", "the latest measurement, in the benefit's unit", 2),
        _f("baseline", "Baseline", "number", "the value before the program", 2),
        _f("target", "Target", "number", "the promised value", 2),
        _f("realisation_pct", "Realised", "percent", "of the way from baseline to target"),
        _f("expected_pct", "Planned", "percent", "where the plan is on the measurement's day"),
        _f("realised_value", "Money value", "money", "improvement so far × value per unit"),
        _f("value_per_unit", "Per unit", "money", "money per unit of improvement"),
        _f("benefits", "Benefits", "count", "benefits registered"),
        _f("benefits_measured", "Measured", "count", "benefits with a measurement"),
        _f("benefits_on_track", "On track", "count", "benefits on track"),
        _f("roi", "ROI", "fraction", "(money value - actual cost) / actual cost"),
        _f("benefits_behind_pct", "Behind plan", "percent", "mean points behind the plan"),
        _f("benefits_score", "Benefits", "score", "benefits component, 0-100"),
        _f("benefits_weight", "Weight", "weight", "the benefits component's weight"),
        # forecasts and flow (v_release_forecast, v_flow_daily)
        _f("probability_on_time", "P(on time)", "fraction", "share of trials by the due date"),
        _f("p50_date", "P50", "date", "half the trials done by"),
        _f("p85_date", "P85", "date", "85% of the trials done by"),
        _f("p95_date", "P95", "date", "95% of the trials done by"),
        _f("ageing_wip_items", "Ageing WIP", "count", "in progress longer than cycle p85"),
    )
}

#: The project columns of the report's tables (text and HTML alike), in two groups that each
#: fit an 80-column terminal, and the health columns of the program and project tables.
FLOW_COLUMNS = (
    "velocity_points",
    "say_do_ratio",
    "throughput_per_week",
    "cycle_time_p50_days",
    "cycle_time_p85_days",
    "defect_density",
    "open_blockers",
)
PLAN_COLUMNS = (
    "on_time_delivery_rate",
    "spi",
    "cpi",
    "scope_change_pct",
    "forecast_finish_date",
    "planned_end_date",
    "forecast_slip_days",
)
HEALTH_COLUMNS = (
    "health_score",
    "schedule_score",
    "delivery_score",
    "quality_score",
    "budget_score",
    "dependencies_score",
)

#: Health metrics are scored on their own values; their labels in explanations.
METRIC_FIELDS: dict[str, Field] = {
    "spi": FIELDS["spi"],
    "on_time_delivery_rate": FIELDS["on_time_delivery_rate"],
    "forecast_slip_days": _f(
        "forecast_slip_days", "Forecast slip", "days", "forecast finish - planned end", 0
    ),
    "forecast_on_time_probability": _f(
        "forecast_on_time_probability",
        "On-time chance",
        "fraction",
        "share of forecast trials done by the end date",
    ),
    "velocity_cv": FIELDS["velocity_cv"],
    "say_do_ratio": FIELDS["say_do_ratio"],
    "defect_density": FIELDS["defect_density"],
    "open_bug_trend_pct": FIELDS["open_bug_trend_pct"],
    "cpi": FIELDS["cpi"],
    "alert_weight": FIELDS["alert_weight"],
}


def field(column: str) -> Field:
    """The display rules of ``column``: listed, else from the naming convention."""
    known = FIELDS.get(column)
    if known is not None:
        return known
    label = column.replace("_", " ").capitalize()
    for suffix, unit in (
        ("_pct", "percent"),
        ("_ratio", "fraction"),
        ("_rate", "fraction"),
        ("_days", "days"),
        ("_points", "points"),
        ("_score", "score"),
        ("_date", "date"),
        ("_items", "count"),
        ("_count", "count"),
    ):
        if column.endswith(suffix):
            return Field(column, label, unit, UNITS[unit][2])
    return Field(column, label, "number", "")


def fmt(column: str | Field, value: Any, *, missing: str = "-", unit: bool = True) -> str:
    """``value`` of ``column`` as shown to people: ``88%``, ``53.0%``, ``3.2 d``, ``0.91``,
    ``1,200,000``. ``missing`` for NULL (no data: never shown as 0). ``unit=False`` leaves
    out the suffix (table cells under a header that names it)."""
    spec = column if isinstance(column, Field) else field(column)
    if value is None or value == "":
        return missing
    if spec.unit == "date":
        return str(value)[:10]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return missing
    if spec.unit == "fraction":
        number *= 100
    places = spec.places
    text = f"{number:,.{places}f}" if spec.unit == "money" else f"{number:.{places}f}"
    if text.startswith("-") and float(text.replace(",", "")) == 0:
        text = text[1:]  # -0.0 is 0.0
    suffix = UNITS[spec.unit][0]
    return text + suffix if unit else text


def fmt_points(metric: str, points: Iterable[Iterable[float]]) -> str:
    """A metric's score thresholds: ``0.70→0, 0.85→50, 0.95→75, 1.00→100`` (each point
    without a breaking space, so wrapped text never splits one)."""
    spec = METRIC_FIELDS.get(metric) or field(metric)
    return ", ".join(f"{fmt(spec, x)}→{float(s):g}".replace(" ", "\u00a0") for x, s in points)


def fmt_status_legend(green_at: float | None, amber_at: float | None) -> str:
    """``green: score ≥ 75.0 · amber: ≥ 50.0 · red: below 50.0``."""
    if green_at is None or amber_at is None:
        return "status thresholds not recorded"
    g, a = fmt("score", green_at), fmt("score", amber_at)
    return f"green: score ≥ {g} · amber: {a} to below {g} · red: below {a}"


def describe(columns: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The JSON report's ``fields`` block for ``columns``."""
    return {c: field(c).describe() for c in columns}


def metric_field(metric: str) -> Field:
    return METRIC_FIELDS.get(metric) or field(metric)
