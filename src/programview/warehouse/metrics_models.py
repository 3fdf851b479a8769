"""Tables the transform writes (migration 0002): metrics, history, health, alerts.

Kept apart from the synced tables in ``models.py`` because nothing but the transform writes
them and everything in them can be recomputed from the synced tables, except two things:
the per-day history (``project_metrics``, ``program_health``: one row per key and
``as_of_date``, rerunning a day replaces its row) and the alert lifecycle
(``dependency_alerts`` keep their id while they hold; ``alert_events`` is the outbox a webhook
sender delivers exactly once).

BI tools read the ``v_*`` views over these tables, never the tables (docs/warehouse.md).
Imported at the bottom of ``models.py`` so ``Base.metadata`` (and Alembic) sees it.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from programview.warehouse.models import Base, EstimateChange, WorkItem

# --- current facts (full refresh on every run) ----------------------------------------------


class SprintMetric(Base):
    """Commitment and completion of one sprint, rebuilt from membership and estimate history."""

    __tablename__ = "sprint_metrics"
    sprint_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    project_key: Mapped[str | None] = mapped_column(String(100), index=True)
    #: When the sprint's "close" was taken: completed_at/end_at, or as_of while it is active.
    close_at: Mapped[datetime | None] = mapped_column(DateTime)
    committed_points: Mapped[float] = mapped_column(Float)
    added_points: Mapped[float] = mapped_column(Float)
    removed_points: Mapped[float] = mapped_column(Float)
    completed_points: Mapped[float] = mapped_column(Float)
    committed_items: Mapped[int] = mapped_column(Integer)
    added_items: Mapped[int] = mapped_column(Integer)
    removed_items: Mapped[int] = mapped_column(Integer)
    completed_items: Mapped[int] = mapped_column(Integer)
    unestimated_items: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(DateTime)


class ReleaseMetric(Base):
    """Plan, actual date and content of one release (see docs/metrics.md, "on time")."""

    __tablename__ = "release_metrics"
    release_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    project_key: Mapped[str | None] = mapped_column(String(100), index=True)
    planned_date: Mapped[date | None] = mapped_column(Date)
    released_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: True when released_at is inferred (latest resolution of its done items).
    released_at_inferred: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(20))  # open | released
    on_time: Mapped[bool | None] = mapped_column(Boolean)
    slip_days: Mapped[int | None] = mapped_column(Integer)
    item_count: Mapped[int] = mapped_column(Integer)
    points: Mapped[float] = mapped_column(Float)
    done_points: Mapped[float] = mapped_column(Float)
    open_bugs: Mapped[int] = mapped_column(Integer)
    unestimated_items: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(DateTime)


# --- history (one row per key and day; the day's latest run wins) ---------------------------


class ProjectMetric(Base):
    __tablename__ = "project_metrics"
    project_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    as_of_date: Mapped[date] = mapped_column(Date, primary_key=True)
    as_of: Mapped[datetime] = mapped_column(DateTime)
    program_key: Mapped[str | None] = mapped_column(String(100))
    item_count: Mapped[int | None] = mapped_column(Integer)
    velocity_points: Mapped[float | None] = mapped_column(Float)
    velocity_cv: Mapped[float | None] = mapped_column(Float)
    #: Closed sprints behind velocity; 0 = no sprints, velocity from 14-day windows.
    velocity_sprints: Mapped[int | None] = mapped_column(Integer)
    say_do_ratio: Mapped[float | None] = mapped_column(Float)
    throughput_per_week: Mapped[float | None] = mapped_column(Float)
    cycle_time_p50_days: Mapped[float | None] = mapped_column(Float)
    cycle_time_p85_days: Mapped[float | None] = mapped_column(Float)
    cycle_time_items: Mapped[int | None] = mapped_column(Integer)
    defect_density: Mapped[float | None] = mapped_column(Float)
    bugs_created: Mapped[int | None] = mapped_column(Integer)
    delivered_points: Mapped[float | None] = mapped_column(Float)
    on_time_delivery_rate: Mapped[float | None] = mapped_column(Float)
    releases_judged: Mapped[int | None] = mapped_column(Integer)
    planned_value: Mapped[float | None] = mapped_column(Float)
    actual_cost: Mapped[float | None] = mapped_column(Float)
    actual_cost_source: Mapped[str | None] = mapped_column(String(20))  # costs | worklogs
    earned_value: Mapped[float | None] = mapped_column(Float)
    budget_variance: Mapped[float | None] = mapped_column(Float)
    cpi: Mapped[float | None] = mapped_column(Float)
    spi: Mapped[float | None] = mapped_column(Float)
    scope_change_pct: Mapped[float | None] = mapped_column(Float)
    open_blockers: Mapped[int | None] = mapped_column(Integer)
    open_bugs: Mapped[int | None] = mapped_column(Integer)
    open_bug_trend_pct: Mapped[float | None] = mapped_column(Float)
    total_points: Mapped[float | None] = mapped_column(Float)
    done_points: Mapped[float | None] = mapped_column(Float)
    remaining_points: Mapped[float | None] = mapped_column(Float)
    unestimated_items: Mapped[int | None] = mapped_column(Integer)
    estimate_coverage_pct: Mapped[float | None] = mapped_column(Float)
    forecast_finish_date: Mapped[date | None] = mapped_column(Date)
    forecast_slip_days: Mapped[int | None] = mapped_column(Integer)
    health_score: Mapped[float | None] = mapped_column(Float)
    health_status: Mapped[str | None] = mapped_column(String(10))
    schedule_score: Mapped[float | None] = mapped_column(Float)
    delivery_score: Mapped[float | None] = mapped_column(Float)
    quality_score: Mapped[float | None] = mapped_column(Float)
    budget_score: Mapped[float | None] = mapped_column(Float)
    dependencies_score: Mapped[float | None] = mapped_column(Float)
    explanation: Mapped[str | None] = mapped_column(Text)
    #: Why metrics are null ("planned_value: no budget configured; …").
    notes: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (Index("ix_project_metrics_as_of_date", "as_of_date"),)


class ProgramHealth(Base):
    __tablename__ = "program_health"
    program_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    as_of_date: Mapped[date] = mapped_column(Date, primary_key=True)
    as_of: Mapped[datetime] = mapped_column(DateTime)
    project_count: Mapped[int] = mapped_column(Integer)
    health_score: Mapped[float | None] = mapped_column(Float)
    health_status: Mapped[str | None] = mapped_column(String(10))
    schedule_score: Mapped[float | None] = mapped_column(Float)
    delivery_score: Mapped[float | None] = mapped_column(Float)
    quality_score: Mapped[float | None] = mapped_column(Float)
    budget_score: Mapped[float | None] = mapped_column(Float)
    dependencies_score: Mapped[float | None] = mapped_column(Float)
    schedule_explanation: Mapped[str | None] = mapped_column(Text)
    delivery_explanation: Mapped[str | None] = mapped_column(Text)
    quality_explanation: Mapped[str | None] = mapped_column(Text)
    budget_explanation: Mapped[str | None] = mapped_column(Text)
    dependencies_explanation: Mapped[str | None] = mapped_column(Text)
    explanation: Mapped[str | None] = mapped_column(Text)
    planned_value: Mapped[float | None] = mapped_column(Float)
    earned_value: Mapped[float | None] = mapped_column(Float)
    actual_cost: Mapped[float | None] = mapped_column(Float)
    open_alerts: Mapped[int] = mapped_column(Integer)
    __table_args__ = (Index("ix_program_health_as_of_date", "as_of_date"),)


# --- alerts ---------------------------------------------------------------------------------


class DependencyAlert(Base):
    """One alert from open to resolved. ``identity`` (sha256 of rule + blocked + blocking item
    ids, or rule + the cycle's member ids) is unique among open alerts: an alert keeps its id
    while its rule holds, and holding again later opens a new row."""

    __tablename__ = "dependency_alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    identity: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(40))
    program_key: Mapped[str | None] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(10))  # low | medium | high | critical
    status: Mapped[str] = mapped_column(String(10))  # open | resolved
    blocked_item_id: Mapped[str | None] = mapped_column(String(200))
    blocked_item_key: Mapped[str | None] = mapped_column(String(300))
    blocked_project_key: Mapped[str | None] = mapped_column(String(100))
    blocking_item_id: Mapped[str | None] = mapped_column(String(200))
    blocking_item_key: Mapped[str | None] = mapped_column(String(300))
    blocking_project_key: Mapped[str | None] = mapped_column(String(100))
    #: dependency_cycle only: the item keys of the cycle, in blocking order, comma-separated.
    cycle_item_keys: Mapped[str | None] = mapped_column(Text)
    #: Every project the alert concerns (blocked project; all projects of a cycle), comma-
    #: separated: the dependencies health component of each of them counts it.
    project_keys: Mapped[str | None] = mapped_column(Text)
    #: shared_resource_contention only: the person who is stretched.
    person: Mapped[str | None] = mapped_column(String(300))
    message: Mapped[str] = mapped_column(Text)
    slip_days: Mapped[int | None] = mapped_column(Integer)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (
        Index(
            "uq_dependency_alerts_open_identity",
            "identity",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_dependency_alerts_status", "status"),
    )


class AlertEvent(Base):
    """Outbox of alert notifications: one row per open and per resolve. A webhook sender
    delivers rows with ``delivered_at`` NULL and then sets it, so each is sent once."""

    __tablename__ = "alert_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("dependency_alerts.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(10))  # open | resolve
    created_at: Mapped[datetime] = mapped_column(DateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (Index("ix_alert_events_delivered_at", "delivered_at"),)


# --- indexes on synced tables that the transform's windows and joins need -------------------
# Declared here (and created by migration 0002) so the synced tables' classes stay as the
# sync engine owns them.

# The recent-deliveries query (throughput, velocity windows, cycle time) reads only items
# resolved in the last weeks: a range on resolved_at that carries every column it needs, so
# the rows come from the index alone.
Index(
    "ix_work_items_resolved_at",
    WorkItem.resolved_at,
    WorkItem.status_category,
    WorkItem.not_delivered,
    WorkItem.type_category,
    WorkItem.is_deleted,
    WorkItem.created_at,
    WorkItem.started_at,
    WorkItem.story_points,
    WorkItem.source_name,
    WorkItem.scope,
)
Index("ix_estimate_changes_changed_at", EstimateChange.changed_at)
Index(
    "ix_estimate_changes_item_time",
    EstimateChange.work_item_id,
    EstimateChange.changed_at,
    EstimateChange.change_id,
)
