"""benefits register, shared people's load, people matched across tools

New tables: ``benefit_measurements`` (imported), ``benefit_metrics`` and ``program_benefits``
(transform history per day), ``resource_load`` (transform history per week). New columns:
``people.email`` and ``people.login`` (so identities can be matched across tools),
``work_items.assignee_id`` (the assignee's people row), ``dependency_alerts.person``
(``shared_resource_contention``). Views: ``v_benefits``, ``v_program_benefits``,
``v_resource_load`` are created; ``v_dependency_alerts`` is re-created with a ``person``
column appended (docs/warehouse.md).

Revision ID: 0006
Revises: 0008
Create Date: 2026-12-01 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("people") as batch:
        batch.add_column(sa.Column("email", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("login", sa.String(length=300), nullable=True))
    with op.batch_alter_table("work_items") as batch:
        batch.add_column(sa.Column("assignee_id", sa.String(length=200), nullable=True))
    with op.batch_alter_table("dependency_alerts") as batch:
        batch.add_column(sa.Column("person", sa.String(length=300), nullable=True))

    op.create_table(
        "benefit_measurements",
        sa.Column("benefit_key", sa.String(length=100), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("benefit_key", "date"),
    )
    op.create_table(
        "benefit_metrics",
        sa.Column("benefit_key", sa.String(length=100), nullable=False),
        sa.Column("as_of_date", sa.Date(), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("program_key", sa.String(length=100), nullable=False),
        sa.Column("benefit_name", sa.String(length=300), nullable=True),
        sa.Column("unit", sa.String(length=50), nullable=True),
        sa.Column("baseline", sa.Float(), nullable=False),
        sa.Column("target", sa.Float(), nullable=False),
        sa.Column("target_date", sa.Date(), nullable=False),
        sa.Column("value_per_unit", sa.Float(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("measured_on", sa.Date(), nullable=True),
        sa.Column("realisation_pct", sa.Float(), nullable=True),
        sa.Column("expected_pct", sa.Float(), nullable=True),
        sa.Column("on_track", sa.Boolean(), nullable=True),
        sa.Column("realised_value", sa.Float(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("benefit_key", "as_of_date"),
    )
    op.create_index("ix_benefit_metrics_as_of_date", "benefit_metrics", ["as_of_date"])
    op.create_table(
        "program_benefits",
        sa.Column("program_key", sa.String(length=100), nullable=False),
        sa.Column("as_of_date", sa.Date(), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("benefits", sa.Integer(), nullable=False),
        sa.Column("benefits_measured", sa.Integer(), nullable=False),
        sa.Column("benefits_on_track", sa.Integer(), nullable=False),
        sa.Column("realised_value", sa.Float(), nullable=True),
        sa.Column("actual_cost", sa.Float(), nullable=True),
        sa.Column("roi", sa.Float(), nullable=True),
        sa.Column("benefits_behind_pct", sa.Float(), nullable=True),
        sa.Column("benefits_score", sa.Float(), nullable=True),
        sa.Column("benefits_weight", sa.Float(), nullable=False),
        sa.Column("benefits_explanation", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("program_key", "as_of_date"),
    )
    op.create_index("ix_program_benefits_as_of_date", "program_benefits", ["as_of_date"])
    op.create_table(
        "resource_load",
        sa.Column("person_id", sa.String(length=300), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("project_key", sa.String(length=100), nullable=False),
        sa.Column("person", sa.String(length=300), nullable=False),
        sa.Column("email", sa.String(length=300), nullable=True),
        sa.Column("matched_by", sa.String(length=20), nullable=False),
        sa.Column("program_key", sa.String(length=100), nullable=True),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("in_progress_items", sa.Integer(), nullable=False),
        sa.Column("active_sprint_items", sa.Integer(), nullable=False),
        sa.Column("active_sprint_points", sa.Float(), nullable=False),
        sa.Column("project_sprint_active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("person_id", "week", "project_key"),
    )
    op.create_index("ix_resource_load_week", "resource_load", ["week"])

    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW IF EXISTS v_dependency_alerts")
    for name, body in _views(dialect):
        op.execute(f"CREATE VIEW {name} AS\n{body}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, _body in reversed(_views(dialect)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_index("ix_resource_load_week", table_name="resource_load")
    op.drop_table("resource_load")
    op.drop_index("ix_program_benefits_as_of_date", table_name="program_benefits")
    op.drop_table("program_benefits")
    op.drop_index("ix_benefit_metrics_as_of_date", table_name="benefit_metrics")
    op.drop_table("benefit_metrics")
    op.drop_table("benefit_measurements")
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+ has it): a batch copy of these tables
    # would trip over the views that read them.
    op.drop_column("dependency_alerts", "person")
    op.drop_column("work_items", "assignee_id")
    op.drop_column("people", "login")
    op.drop_column("people", "email")
    op.execute(f"CREATE VIEW v_dependency_alerts AS\n{_alerts_view(dialect, person=False)}")


# --- the views (frozen here, like 0002's: a migration keeps creating the same views) --------


def _days_between(dialect: str, later: str, earlier: str) -> str:
    if dialect == "postgresql":
        return f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) / 86400.0 AS DOUBLE PRECISION)"
    return f"(julianday({later}) - julianday({earlier}))"


def _alerts_view(dialect: str, *, person: bool) -> str:
    """0002's ``v_dependency_alerts``, with ``person`` appended when ``person``."""
    open_days = _days_between(dialect, "COALESCE(a.resolved_at, a.last_seen_at)", "a.first_seen_at")
    extra = ", a.person" if person else ""
    return f"""SELECT a.id AS alert_id, a.program_key, a.rule, a.severity, a.status,
       a.blocked_item_key, a.blocked_project_key, a.blocking_item_key, a.blocking_project_key,
       a.cycle_item_keys, a.message, a.slip_days, a.first_seen_at, a.last_seen_at,
       a.resolved_at, {open_days} AS open_days{extra}
FROM dependency_alerts a"""


def _views(dialect: str) -> list[tuple[str, str]]:
    v_benefits = """SELECT b.program_key, g.name AS program_name, b.benefit_key, b.benefit_name,
       b.unit, b.as_of_date, b.as_of, b.value, b.measured_on, b.baseline, b.target,
       b.target_date, b.realisation_pct, b.expected_pct, b.on_track, b.value_per_unit,
       b.realised_value, b.notes
FROM benefit_metrics b
LEFT JOIN programs g ON g.key = b.program_key"""

    v_program_benefits = """SELECT pb.program_key, g.name AS program_name, pb.as_of_date, pb.as_of,
       pb.benefits, pb.benefits_measured, pb.benefits_on_track, pb.realised_value,
       pb.actual_cost, pb.roi, pb.benefits_behind_pct, pb.benefits_score, pb.benefits_weight,
       pb.benefits_explanation, pb.notes
FROM program_benefits pb
LEFT JOIN programs g ON g.key = pb.program_key"""

    v_resource_load = """SELECT r.person, r.person_id, r.email, r.matched_by, r.week,
       r.project_key, r.program_key, r.in_progress_items, r.active_sprint_points,
       r.active_sprint_items, r.project_sprint_active,
       SUM(r.in_progress_items) OVER (PARTITION BY r.person_id, r.week, r.program_key)
         AS program_in_progress_items,
       SUM(CASE WHEN r.in_progress_items > 0 THEN 1 ELSE 0 END)
         OVER (PARTITION BY r.person_id, r.week, r.program_key) AS program_projects_in_progress,
       SUM(r.active_sprint_points) OVER (PARTITION BY r.person_id, r.week, r.program_key)
         AS program_active_sprint_points,
       r.as_of
FROM resource_load r"""

    return [
        ("v_dependency_alerts", _alerts_view(dialect, person=True)),
        ("v_benefits", v_benefits),
        ("v_program_benefits", v_program_benefits),
        ("v_resource_load", v_resource_load),
    ]
