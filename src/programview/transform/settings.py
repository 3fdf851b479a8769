"""Config sections that steer the transform: metric windows, health weights and thresholds,
alert rules. Defaults follow docs/metrics.md (../shared/design/METRICS.md).

Every number a team may reasonably disagree with lives here rather than in the SQL, so a
team can tune its health score in ``programview.toml`` without a code change::

    [health]
    weights = { schedule = 0.4, delivery = 0.2, quality = 0.2, budget = 0.1, dependencies = 0.1 }

    [health.thresholds]
    spi = [[0.8, 0], [0.9, 50], [1.0, 100]]     # value -> score points, linear in between

    [alerts]
    slip_severity = { low = 2, medium = 10, high = 20 }   # more slip than "high" -> critical
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

Severity = Literal["low", "medium", "high", "critical"]

#: Health components and the metrics each one averages (docs/metrics.md, "Program health").
COMPONENTS: dict[str, tuple[str, ...]] = {
    "schedule": ("spi", "on_time_delivery_rate", "forecast_slip_days"),
    "delivery": ("velocity_cv", "say_do_ratio"),
    "quality": ("defect_density", "open_bug_trend_pct"),
    "budget": ("cpi",),
    "dependencies": ("alert_weight",),
}

#: Program-level components: scored from the program's own figures, not from its projects.
#: Optional: weight 0 unless ``[health] weights`` gives them one.
PROGRAM_COMPONENTS: dict[str, tuple[str, ...]] = {
    "benefits": ("benefits_behind_pct",),
}

#: The rules judged on each open cross-project blocking link (docs/metrics.md, "Dependency
#: alert rules"): every link gets each one's verdict in ``v_blocker_checks``.
LINK_RULES: tuple[str, ...] = (
    "blocker_scheduled_later",
    "blocker_unscheduled",
    "blocker_stalled",
    "blocked_item_due_soon",
    "dependency_cycle",
)
#: Every alert rule: the link rules and ``shared_resource_contention``, judged per person
#: and program (docs/metrics.md, "Shared people").
RULES: tuple[str, ...] = (*LINK_RULES, "shared_resource_contention")


def _default_thresholds() -> dict[str, list[tuple[float, float]]]:
    # (metric value, score) points; the score is linear between points and flat outside.
    return {
        "spi": [(0.7, 0.0), (0.85, 50.0), (0.95, 75.0), (1.0, 100.0)],
        "on_time_delivery_rate": [(0.5, 0.0), (0.7, 50.0), (0.85, 75.0), (1.0, 100.0)],
        "forecast_slip_days": [(0.0, 100.0), (14.0, 75.0), (30.0, 50.0), (60.0, 0.0)],
        "velocity_cv": [(0.1, 100.0), (0.25, 75.0), (0.4, 50.0), (0.6, 0.0)],
        "say_do_ratio": [(0.5, 0.0), (0.7, 50.0), (0.85, 75.0), (1.0, 100.0)],
        "defect_density": [(5.0, 100.0), (10.0, 75.0), (20.0, 50.0), (40.0, 0.0)],
        "open_bug_trend_pct": [(0.0, 100.0), (10.0, 75.0), (25.0, 50.0), (50.0, 0.0)],
        "cpi": [(0.7, 0.0), (0.85, 50.0), (0.95, 75.0), (1.0, 100.0)],
        "alert_weight": [(0.0, 100.0), (2.0, 75.0), (6.0, 50.0), (12.0, 0.0)],
        "benefits_behind_pct": [(0.0, 100.0), (10.0, 75.0), (25.0, 50.0), (50.0, 0.0)],
    }


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricsConfig(_Strict):
    """Windows of the project metrics (all in days unless named otherwise)."""

    #: Velocity, velocity_cv and say/do average this many most recent closed sprints.
    velocity_sprints: int = Field(3, ge=1)
    #: Without closed sprints, velocity is the mean delivered points per window of this many
    #: days, over the throughput window (6 weeks -> three 14-day windows).
    velocity_window_days: int = Field(14, ge=1)
    throughput_weeks: int = Field(6, ge=1)
    cycle_time_days: int = Field(90, ge=1)
    defect_window_days: int = Field(90, ge=1)
    on_time_window_days: int = Field(180, ge=1)
    #: A release shipped this many days after its planned date still counts as on time.
    on_time_grace_days: int = Field(0, ge=0)
    scope_change_days: int = Field(30, ge=1)
    #: The quality component compares open bugs now with open bugs this many days ago.
    bug_trend_days: int = Field(30, ge=1)


class HealthConfig(_Strict):
    weights: dict[str, float] = Field(
        default_factory=lambda: {
            "schedule": 0.3,
            "delivery": 0.2,
            "quality": 0.2,
            "budget": 0.15,
            "dependencies": 0.15,
        }
    )
    #: Per metric, the (value, score) points of its piecewise-linear score; replaces the
    #: default points of the metrics it names and keeps the others.
    thresholds: dict[str, list[tuple[float, float]]] = Field(default_factory=dict)
    #: How much one open alert of each severity weighs in the dependencies component.
    severity_weights: dict[str, float] = Field(
        default_factory=lambda: {"low": 1.0, "medium": 2.0, "high": 4.0, "critical": 8.0}
    )
    green: float = Field(75.0, ge=0, le=100)
    amber: float = Field(50.0, ge=0, le=100)

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        names = [*COMPONENTS, *PROGRAM_COMPONENTS]
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(
                f"unknown component {', '.join(map(repr, unknown))} "
                f"(components: {', '.join(names)})"
            )
        if any(w < 0 for w in value.values()):
            raise ValueError("weights must not be negative")
        if not any(w > 0 for w in value.values()):
            raise ValueError("at least one weight must be positive")
        return value

    @field_validator("thresholds")
    @classmethod
    def _thresholds(
        cls, value: dict[str, list[tuple[float, float]]]
    ) -> dict[str, list[tuple[float, float]]]:
        known = {m for c in (COMPONENTS, PROGRAM_COMPONENTS) for ms in c.values() for m in ms}
        for metric, points in value.items():
            if metric not in known:
                raise ValueError(f"unknown metric {metric!r} (metrics: {', '.join(sorted(known))})")
            if len(points) < 2:
                raise ValueError(f"{metric}: needs at least two [value, score] points")
            values = [p[0] for p in points]
            if any(b <= a for a, b in zip(values, values[1:], strict=False)):
                raise ValueError(f"{metric}: values must be strictly increasing, got {values}")
            if any(not 0 <= p[1] <= 100 for p in points):
                raise ValueError(f"{metric}: scores must be between 0 and 100")
        return value

    @field_validator("severity_weights")
    @classmethod
    def _severity_weights(cls, value: dict[str, float]) -> dict[str, float]:
        missing = {"low", "medium", "high", "critical"} - set(value)
        extra = set(value) - {"low", "medium", "high", "critical"}
        if missing or extra:
            raise ValueError("needs exactly the keys low, medium, high, critical")
        return value

    @model_validator(mode="after")
    def _bands(self) -> HealthConfig:
        if self.amber > self.green:
            raise ValueError(f"amber ({self.amber}) must not be above green ({self.green})")
        return self

    def points(self, metric: str) -> list[tuple[float, float]]:
        """The score points of ``metric``: configured, else the default."""
        return self.thresholds.get(metric) or _default_thresholds()[metric]


class SlipSeverity(_Strict):
    """``blocker_scheduled_later`` severity by slip days: at most ``low`` days is low, at most
    ``medium`` is medium, at most ``high`` is high, more is critical."""

    low: int = Field(3, ge=0)
    medium: int = Field(14, ge=0)
    high: int = Field(30, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> SlipSeverity:
        if not self.low <= self.medium <= self.high:
            raise ValueError("must satisfy low <= medium <= high")
        return self

    def of(self, slip_days: int) -> Severity:
        if slip_days <= self.low:
            return "low"
        if slip_days <= self.medium:
            return "medium"
        if slip_days <= self.high:
            return "high"
        return "critical"


class AlertsConfig(_Strict):
    webhook_url: SecretStr | None = None
    #: ``blocker_stalled``: the blocker has not changed for this many days.
    stalled_days: int = Field(14, ge=1)
    #: ``blocked_item_due_soon``: the blocked item is due within this many days …
    due_soon_days: int = Field(14, ge=1)
    #: … and the alert is high (not medium) when it is due within this many days.
    due_soon_high_days: int = Field(7, ge=0)
    #: ``blocker_unscheduled``: the blocked item's release is due within this many days.
    unscheduled_window_days: int = Field(30, ge=1)
    slip_severity: SlipSeverity = Field(default_factory=SlipSeverity)
    #: Fixed severities of the other rules (``blocked_item_due_soon`` here is its "else").
    severity: dict[str, Severity] = Field(
        default_factory=lambda: {  # type: ignore[arg-type]  # literals are Severity values
            "blocker_unscheduled": "high",
            "blocker_stalled": "medium",
            "blocked_item_due_soon": "medium",
            "dependency_cycle": "critical",
            "shared_resource_contention": "medium",
        }
    )
    #: ``shared_resource_contention``: a person's in-progress items across the projects of one
    #: program (that have active sprints) above this many (per person: ``[[people]] wip_limit``).
    wip_limit: int = Field(3, ge=1)
    #: Rules to switch off, e.g. ``["blocker_stalled"]``.
    disabled_rules: list[str] = Field(default_factory=list)

    @field_validator("severity")
    @classmethod
    def _severity(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        fixed = set(RULES) - {"blocker_scheduled_later"}
        unknown = sorted(set(value) - fixed)
        if unknown:
            raise ValueError(
                f"unknown rule {', '.join(map(repr, unknown))} (rules with a fixed severity: "
                f"{', '.join(sorted(fixed))}; blocker_scheduled_later uses slip_severity)"
            )
        defaults = {
            "blocker_unscheduled": "high",
            "blocker_stalled": "medium",
            "blocked_item_due_soon": "medium",
            "dependency_cycle": "critical",
            "shared_resource_contention": "medium",
        }
        return {**defaults, **value}  # type: ignore[dict-item]

    @field_validator("disabled_rules")
    @classmethod
    def _disabled(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(RULES))
        if unknown:
            raise ValueError(
                f"unknown rule {', '.join(map(repr, unknown))} (rules: {', '.join(RULES)})"
            )
        return value
