"""Tables that explain the transform's verdicts (migration 0008): why a score, why no alert.

The health score and the alert list are only trusted when a program manager can follow
them to the bottom. The transform already knows every step (each metric's value, the
threshold points it was scored against, the score; each alert rule's verdict on each open
blocking link), so it writes them down here rather than leaving the report to recompute
them from config that may have changed since. BI tools and the report read them through
``v_health_inputs`` and ``v_blocker_checks`` (docs/warehouse.md).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, DateTime, Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from programview.warehouse.models import Base


class HealthInput(Base):
    """One metric's part in one project's health score on one day (history, like
    ``project_metrics``: rerunning a day replaces its rows)."""

    __tablename__ = "health_inputs"
    project_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    as_of_date: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    metric: Mapped[str] = mapped_column(String(40), primary_key=True)
    program_key: Mapped[str | None] = mapped_column(String(100))
    as_of: Mapped[datetime] = mapped_column(DateTime)
    #: schedule | delivery | quality | budget | dependencies
    component: Mapped[str] = mapped_column(String(20))
    #: The project's component score (mean of its metrics' scores) and the weight it had.
    component_score: Mapped[float | None] = mapped_column(Float)
    component_weight: Mapped[float] = mapped_column(Float)
    value: Mapped[float | None] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)
    #: The (value, score) points it was scored against, as JSON: ``[[0.7, 0], [1.0, 100]]``.
    thresholds: Mapped[str] = mapped_column(Text)
    #: Why there is no value (NULL when there is one).
    reason: Mapped[str | None] = mapped_column(Text)
    #: Status thresholds in force: green at or above ``green_at``, amber at or above
    #: ``amber_at``, else red.
    green_at: Mapped[float] = mapped_column(Float)
    amber_at: Mapped[float] = mapped_column(Float)


class BlockerCheck(Base):
    """Each alert rule's verdict on one open cross-project blocking link, as of the last
    transform run (a full refresh): ``holds`` and, either way, the reason in words."""

    __tablename__ = "blocker_checks"
    blocked_item_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    blocking_item_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    rule: Mapped[str] = mapped_column(String(40), primary_key=True)
    blocked_item_key: Mapped[str] = mapped_column(String(300))
    blocked_project_key: Mapped[str | None] = mapped_column(String(100), index=True)
    blocking_item_key: Mapped[str] = mapped_column(String(300))
    blocking_project_key: Mapped[str | None] = mapped_column(String(100))
    program_key: Mapped[str | None] = mapped_column(String(100))
    holds: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    as_of: Mapped[datetime] = mapped_column(DateTime)
