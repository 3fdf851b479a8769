"""metrics, history, alerts and the v_* BI views

The tables the transform writes (``programview.warehouse.metrics_models``), indexes on the
synced tables that the transform's windows need, and every public ``v_*`` view
(docs/warehouse.md). Views are plain SQL valid on SQLite and PostgreSQL; where the two differ
(date arithmetic) the text is chosen per dialect. A view's columns only change through a new
migration (drop and re-create it) and a note in docs/warehouse.md.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sprint_metrics",
        sa.Column("sprint_id", sa.String(length=200), nullable=False),
        sa.Column("project_key", sa.String(length=100), nullable=True),
        sa.Column("close_at", sa.DateTime(), nullable=True),
        sa.Column("committed_points", sa.Float(), nullable=False),
        sa.Column("added_points", sa.Float(), nullable=False),
        sa.Column("removed_points", sa.Float(), nullable=False),
        sa.Column("completed_points", sa.Float(), nullable=False),
        sa.Column("committed_items", sa.Integer(), nullable=False),
        sa.Column("added_items", sa.Integer(), nullable=False),
        sa.Column("removed_items", sa.Integer(), nullable=False),
        sa.Column("completed_items", sa.Integer(), nullable=False),
        sa.Column("unestimated_items", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sprint_id"),
    )
    op.create_index("ix_sprint_metrics_project_key", "sprint_metrics", ["project_key"])

    op.create_table(
        "release_metrics",
        sa.Column("release_id", sa.String(length=200), nullable=False),
        sa.Column("project_key", sa.String(length=100), nullable=True),
        sa.Column("planned_date", sa.Date(), nullable=True),
        sa.Column("released_at", sa.DateTime(), nullable=True),
        sa.Column("released_at_inferred", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("on_time", sa.Boolean(), nullable=True),
        sa.Column("slip_days", sa.Integer(), nullable=True),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("points", sa.Float(), nullable=False),
        sa.Column("done_points", sa.Float(), nullable=False),
        sa.Column("open_bugs", sa.Integer(), nullable=False),
        sa.Column("unestimated_items", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("release_id"),
    )
    op.create_index("ix_release_metrics_project_key", "release_metrics", ["project_key"])

    op.create_table(
        "project_metrics",
        sa.Column("project_key", sa.String(length=100), nullable=False),
        sa.Column("as_of_date", sa.Date(), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("program_key", sa.String(length=100), nullable=True),
        sa.Column("item_count", sa.Integer(), nullable=True),
        sa.Column("velocity_points", sa.Float(), nullable=True),
        sa.Column("velocity_cv", sa.Float(), nullable=True),
        sa.Column("velocity_sprints", sa.Integer(), nullable=True),
        sa.Column("say_do_ratio", sa.Float(), nullable=True),
        sa.Column("throughput_per_week", sa.Float(), nullable=True),
        sa.Column("cycle_time_p50_days", sa.Float(), nullable=True),
        sa.Column("cycle_time_p85_days", sa.Float(), nullable=True),
        sa.Column("cycle_time_items", sa.Integer(), nullable=True),
        sa.Column("defect_density", sa.Float(), nullable=True),
        sa.Column("bugs_created", sa.Integer(), nullable=True),
        sa.Column("delivered_points", sa.Float(), nullable=True),
        sa.Column("on_time_delivery_rate", sa.Float(), nullable=True),
        sa.Column("releases_judged", sa.Integer(), nullable=True),
        sa.Column("planned_value", sa.Float(), nullable=True),
        sa.Column("actual_cost", sa.Float(), nullable=True),
        sa.Column("actual_cost_source", sa.String(length=20), nullable=True),
        sa.Column("earned_value", sa.Float(), nullable=True),
        sa.Column("budget_variance", sa.Float(), nullable=True),
        sa.Column("cpi", sa.Float(), nullable=True),
        sa.Column("spi", sa.Float(), nullable=True),
        sa.Column("scope_change_pct", sa.Float(), nullable=True),
        sa.Column("open_blockers", sa.Integer(), nullable=True),
        sa.Column("open_bugs", sa.Integer(), nullable=True),
        sa.Column("open_bug_trend_pct", sa.Float(), nullable=True),
        sa.Column("total_points", sa.Float(), nullable=True),
        sa.Column("done_points", sa.Float(), nullable=True),
        sa.Column("remaining_points", sa.Float(), nullable=True),
        sa.Column("unestimated_items", sa.Integer(), nullable=True),
        sa.Column("estimate_coverage_pct", sa.Float(), nullable=True),
        sa.Column("forecast_finish_date", sa.Date(), nullable=True),
        sa.Column("forecast_slip_days", sa.Integer(), nullable=True),
        sa.Column("health_score", sa.Float(), nullable=True),
        sa.Column("health_status", sa.String(length=10), nullable=True),
        sa.Column("schedule_score", sa.Float(), nullable=True),
        sa.Column("delivery_score", sa.Float(), nullable=True),
        sa.Column("quality_score", sa.Float(), nullable=True),
        sa.Column("budget_score", sa.Float(), nullable=True),
        sa.Column("dependencies_score", sa.Float(), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("project_key", "as_of_date"),
    )
    op.create_index("ix_project_metrics_as_of_date", "project_metrics", ["as_of_date"])

    op.create_table(
        "program_health",
        sa.Column("program_key", sa.String(length=100), nullable=False),
        sa.Column("as_of_date", sa.Date(), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("project_count", sa.Integer(), nullable=False),
        sa.Column("health_score", sa.Float(), nullable=True),
        sa.Column("health_status", sa.String(length=10), nullable=True),
        sa.Column("schedule_score", sa.Float(), nullable=True),
        sa.Column("delivery_score", sa.Float(), nullable=True),
        sa.Column("quality_score", sa.Float(), nullable=True),
        sa.Column("budget_score", sa.Float(), nullable=True),
        sa.Column("dependencies_score", sa.Float(), nullable=True),
        sa.Column("schedule_explanation", sa.Text(), nullable=True),
        sa.Column("delivery_explanation", sa.Text(), nullable=True),
        sa.Column("quality_explanation", sa.Text(), nullable=True),
        sa.Column("budget_explanation", sa.Text(), nullable=True),
        sa.Column("dependencies_explanation", sa.Text(), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=True),
        sa.Column("planned_value", sa.Float(), nullable=True),
        sa.Column("earned_value", sa.Float(), nullable=True),
        sa.Column("actual_cost", sa.Float(), nullable=True),
        sa.Column("open_alerts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("program_key", "as_of_date"),
    )
    op.create_index("ix_program_health_as_of_date", "program_health", ["as_of_date"])

    op.create_table(
        "dependency_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("identity", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("program_key", sa.String(length=100), nullable=True),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("blocked_item_id", sa.String(length=200), nullable=True),
        sa.Column("blocked_item_key", sa.String(length=300), nullable=True),
        sa.Column("blocked_project_key", sa.String(length=100), nullable=True),
        sa.Column("blocking_item_id", sa.String(length=200), nullable=True),
        sa.Column("blocking_item_key", sa.String(length=300), nullable=True),
        sa.Column("blocking_project_key", sa.String(length=100), nullable=True),
        sa.Column("cycle_item_keys", sa.Text(), nullable=True),
        sa.Column("project_keys", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("slip_days", sa.Integer(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "uq_dependency_alerts_open_identity",
        "dependency_alerts",
        ["identity"],
        unique=True,
        sqlite_where=sa.text("status = 'open'"),
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index("ix_dependency_alerts_status", "dependency_alerts", ["status"])

    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["dependency_alerts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_events_alert_id", "alert_events", ["alert_id"])
    op.create_index("ix_alert_events_delivered_at", "alert_events", ["delivered_at"])

    for name, columns in _SYNCED_TABLE_INDEXES:
        op.create_index(name, columns[0], list(columns[1:]))

    dialect = op.get_bind().dialect.name
    for name, body in _views(dialect):
        op.execute(f"CREATE VIEW {name} AS\n{body}")


def downgrade() -> None:
    for name, _body in reversed(_views(op.get_bind().dialect.name)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    for name, columns in _SYNCED_TABLE_INDEXES:
        op.drop_index(name, table_name=columns[0])
    op.drop_table("alert_events")
    op.drop_table("dependency_alerts")
    op.drop_table("program_health")
    op.drop_table("project_metrics")
    op.drop_table("release_metrics")
    op.drop_table("sprint_metrics")


#: (index name, (table, column, …)) on synced tables, for the transform's windows and joins.
_SYNCED_TABLE_INDEXES: list[tuple[str, tuple[str, ...]]] = [
    (
        "ix_work_items_resolved_at",  # covering: the recent-deliveries query reads no rows
        (
            "work_items",
            "resolved_at",
            "status_category",
            "not_delivered",
            "type_category",
            "is_deleted",
            "created_at",
            "started_at",
            "story_points",
            "source_name",
            "scope",
        ),
    ),
    ("ix_estimate_changes_changed_at", ("estimate_changes", "changed_at")),
    (
        "ix_estimate_changes_item_time",
        ("estimate_changes", "work_item_id", "changed_at", "change_id"),
    ),
]


# --- the public views -----------------------------------------------------------------------
# Frozen here (not imported from the package): a migration must keep creating the same views
# even after the code moves on.

#: A scope mapped to two projects by mistake must not duplicate rows: the smaller key wins.
_SCOPE_PROJECT = (
    "(SELECT source_name, scope, CAST(MIN(project_key) AS VARCHAR(100)) AS project_key "
    "FROM project_scopes GROUP BY source_name, scope)"
)

_IS_RELEASED = "(r.released_at IS NOT NULL OR COALESCE(r.released, FALSE))"


def _days_between(dialect: str, later: str, earlier: str) -> str:
    """Fractional days between two timestamps."""
    if dialect == "postgresql":
        return f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) / 86400.0 AS DOUBLE PRECISION)"
    return f"(julianday({later}) - julianday({earlier}))"


def _item_project(key_expr: str, column: str = "sp.project_key") -> str:
    """Scalar subquery: a live work item's ``column`` by item key (links are stored by key)."""
    return (
        f"(SELECT CAST(MIN({column}) AS VARCHAR(100)) FROM work_items w "
        f"LEFT JOIN {_SCOPE_PROJECT} sp ON sp.source_name = w.source_name AND sp.scope = w.scope "
        f"WHERE w.item_key = {key_expr} AND NOT w.is_deleted)"
    )


def _views(dialect: str) -> list[tuple[str, str]]:
    current_sprint = """(SELECT s.name FROM sprint_items si JOIN sprints s ON s.id = si.sprint_id
          WHERE si.work_item_id = wi.id AND si.removed_at IS NULL
          ORDER BY CASE s.state WHEN 'active' THEN 0 WHEN 'future' THEN 1 ELSE 2 END,
                   CASE WHEN s.start_at IS NULL THEN 1 ELSE 0 END, s.start_at DESC, s.id DESC
          LIMIT 1)"""
    current_release = f"""(SELECT r.name
          FROM work_item_releases wr JOIN releases r ON r.id = wr.release_id
          WHERE wr.work_item_id = wi.id
          ORDER BY CASE WHEN {_IS_RELEASED} THEN 1 ELSE 0 END,
                   CASE WHEN NOT {_IS_RELEASED} AND COALESCE(r.due_date, r.planned_date) IS NULL
                        THEN 1 ELSE 0 END,
                   CASE WHEN NOT {_IS_RELEASED} THEN COALESCE(r.due_date, r.planned_date) END,
                   CASE WHEN r.released_at IS NULL THEN 1 ELSE 0 END, r.released_at DESC, r.id
          LIMIT 1)"""
    v_work_items = f"""SELECT wi.id AS work_item_id, src.kind AS source_kind, wi.source_name,
       wi.scope, wi.item_key, wi.url, wi.title, sp.project_key, p.program_key,
       wi.type_category, wi.raw_type, wi.status_category, wi.raw_status, wi.priority,
       wi.story_points, wi.created_at, wi.updated_at, wi.started_at, wi.resolved_at,
       wi.due_date, {current_sprint} AS sprint_name, {current_release} AS release_name,
       wi.assignee, wi.labels, wi.parent_key, wi.not_delivered
FROM work_items wi
LEFT JOIN sources src ON src.name = wi.source_name
LEFT JOIN {_SCOPE_PROJECT} sp ON sp.source_name = wi.source_name AND sp.scope = wi.scope
LEFT JOIN projects p ON p.key = sp.project_key
WHERE NOT wi.is_deleted"""

    v_sprints = f"""SELECT s.id AS sprint_id, src.kind AS source_kind, s.source_name,
       CAST(COALESCE(sp.project_key, m.project_key) AS VARCHAR(100)) AS project_key,
       p.program_key, s.name AS sprint_name, s.state, s.start_at, s.end_at, s.completed_at, s.goal,
       m.committed_points, m.added_points, m.removed_points, m.completed_points,
       m.committed_items, m.added_items, m.removed_items, m.completed_items,
       m.unestimated_items, m.computed_at AS metrics_as_of
FROM sprints s
LEFT JOIN sprint_metrics m ON m.sprint_id = s.id
LEFT JOIN sources src ON src.name = s.source_name
LEFT JOIN {_SCOPE_PROJECT} sp ON sp.source_name = s.source_name AND sp.scope = s.scope
LEFT JOIN projects p ON p.key = COALESCE(sp.project_key, m.project_key)"""

    v_releases = f"""SELECT r.id AS release_id, src.kind AS source_kind, r.source_name,
       sp.project_key, p.program_key,
       r.name AS release_name, r.kind,
       COALESCE(m.planned_date, r.planned_date, r.due_date) AS due_date,
       r.due_date AS current_due_date, r.start_date,
       COALESCE(m.released_at, r.released_at) AS released_at,
       m.released_at_inferred,
       CAST(COALESCE(m.state, CASE WHEN {_IS_RELEASED} THEN 'released' ELSE 'open' END)
         AS VARCHAR(20)) AS state,
       m.on_time, m.slip_days, m.item_count, m.points, m.done_points, m.open_bugs,
       m.unestimated_items, r.archived, m.computed_at AS metrics_as_of
FROM releases r
LEFT JOIN release_metrics m ON m.release_id = r.id
LEFT JOIN sources src ON src.name = r.source_name
LEFT JOIN {_SCOPE_PROJECT} sp ON sp.source_name = r.source_name AND sp.scope = r.scope
LEFT JOIN projects p ON p.key = sp.project_key"""

    v_dependencies = f"""SELECT DISTINCT x.blocked_item_key, x.blocked_project_key,
       x.blocking_item_key, x.blocking_project_key, x.link_kind,
       CASE WHEN x.blocked_project_key <> x.blocking_project_key THEN TRUE ELSE FALSE END
         AS cross_project,
       x.source, x.source_name, x.blocked_status_category, x.blocking_status_category
FROM (SELECT d.blocked_key AS blocked_item_key,
             {_item_project("d.blocked_key")} AS blocked_project_key,
             d.blocking_key AS blocking_item_key,
             {_item_project("d.blocking_key")} AS blocking_project_key,
             d.link_kind, d.origin AS source, d.source_name,
             {_item_project("d.blocked_key", "w.status_category")} AS blocked_status_category,
             {_item_project("d.blocking_key", "w.status_category")} AS blocking_status_category
      FROM dependencies d
      -- a link dies with its item: skip links found in, or pointing at, a deleted item
      -- (a key not synced yet has no row at all and is kept, to resolve later)
      WHERE NOT EXISTS (SELECT 1 FROM work_items g WHERE g.id = d.found_in AND g.is_deleted)
        AND NOT EXISTS (SELECT 1 FROM work_items g
                        WHERE g.item_key IN (d.blocked_key, d.blocking_key) AND g.is_deleted
                          AND NOT EXISTS (SELECT 1 FROM work_items h
                                          WHERE h.item_key = g.item_key AND NOT h.is_deleted))
      ) x"""

    v_project_metrics = """SELECT pm.project_key, p.name AS project_name, pm.program_key,
       pm.as_of_date, pm.as_of, pm.item_count,
       pm.velocity_points, pm.velocity_cv, pm.velocity_sprints, pm.say_do_ratio,
       pm.throughput_per_week, pm.cycle_time_p50_days, pm.cycle_time_p85_days,
       pm.cycle_time_items, pm.defect_density, pm.bugs_created, pm.delivered_points,
       pm.on_time_delivery_rate, pm.releases_judged,
       pm.planned_value, pm.actual_cost, pm.actual_cost_source, pm.earned_value,
       pm.budget_variance, pm.cpi, pm.spi,
       pm.scope_change_pct, pm.open_blockers, pm.open_bugs, pm.open_bug_trend_pct,
       pm.total_points, pm.done_points, pm.remaining_points,
       pm.unestimated_items, pm.estimate_coverage_pct,
       pm.forecast_finish_date, pm.forecast_slip_days,
       pm.health_score, pm.health_status, pm.schedule_score, pm.delivery_score,
       pm.quality_score, pm.budget_score, pm.dependencies_score, pm.explanation, pm.notes
FROM project_metrics pm
LEFT JOIN projects p ON p.key = pm.project_key"""

    v_program_health = """SELECT h.program_key, g.name AS program_name, h.as_of_date, h.as_of,
       h.project_count, h.health_score, h.health_status,
       h.schedule_score, h.delivery_score, h.quality_score, h.budget_score,
       h.dependencies_score, h.explanation,
       h.schedule_explanation, h.delivery_explanation, h.quality_explanation,
       h.budget_explanation, h.dependencies_explanation,
       h.planned_value, h.earned_value, h.actual_cost, h.open_alerts
FROM program_health h
LEFT JOIN programs g ON g.key = h.program_key"""

    open_days = _days_between(dialect, "COALESCE(a.resolved_at, a.last_seen_at)", "a.first_seen_at")
    v_dependency_alerts = f"""SELECT a.id AS alert_id, a.program_key, a.rule, a.severity, a.status,
       a.blocked_item_key, a.blocked_project_key, a.blocking_item_key, a.blocking_project_key,
       a.cycle_item_keys, a.message, a.slip_days, a.first_seen_at, a.last_seen_at,
       a.resolved_at, {open_days} AS open_days
FROM dependency_alerts a"""

    v_sync_runs = """SELECT s.source_name, src.kind AS source_kind, s.scope, s.stream,
       s.run_id AS last_run_id, s.started_at AS last_started_at,
       s.finished_at AS last_finished_at, s.status AS last_status,
       (SELECT MAX(x.finished_at) FROM sync_run_streams x
         WHERE x.source_name = s.source_name AND x.scope = s.scope AND x.stream = s.stream
           AND x.status IN ('ok', 'partial')) AS last_success_at,
       s.records, s.skipped, s.pages, s.requests,
       CASE WHEN s.error IS NULL THEN 0 ELSE 1 END AS errors, s.error AS last_error,
       s.quarantined,
       (SELECT COUNT(*) FROM quarantine q
         WHERE q.source_name = s.source_name AND q.scope = s.scope AND q.stream = s.stream)
         AS quarantined_total
FROM (SELECT rs.*, ROW_NUMBER() OVER (PARTITION BY rs.source_name, rs.scope, rs.stream
                                      ORDER BY rs.started_at DESC, rs.run_id DESC) AS rn
      FROM sync_run_streams rs) s
LEFT JOIN sources src ON src.name = s.source_name
WHERE s.rn = 1"""

    return [
        ("v_work_items", v_work_items),
        ("v_sprints", v_sprints),
        ("v_releases", v_releases),
        ("v_dependencies", v_dependencies),
        ("v_project_metrics", v_project_metrics),
        ("v_program_health", v_program_health),
        ("v_dependency_alerts", v_dependency_alerts),
        ("v_sync_runs", v_sync_runs),
    ]
