"""Config sections that steer the transform: metric windows, health weights and thresholds,
alert rules. Defaults follow docs/metrics.md (../shared/design/METRICS.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricsConfig(_Strict):
    velocity_sprints: int = Field(3, ge=1)
    throughput_weeks: int = Field(6, ge=1)
    cycle_time_days: int = Field(90, ge=1)
    defect_window_days: int = Field(90, ge=1)
    on_time_window_days: int = Field(180, ge=1)
    on_time_grace_days: int = Field(0, ge=0)
    scope_change_days: int = Field(30, ge=1)


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
    green: float = 75.0
    amber: float = 50.0


class AlertsConfig(_Strict):
    webhook_url: SecretStr | None = None
    stalled_days: int = Field(14, ge=1)
    due_soon_days: int = Field(14, ge=1)
    unscheduled_window_days: int = Field(30, ge=1)
