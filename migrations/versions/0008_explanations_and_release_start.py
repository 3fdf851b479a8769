"""explanations of health and alerts; v_projects; v_releases.start_date filled

* ``health_inputs`` / ``v_health_inputs``: each metric's value, the threshold points it was
  scored against and its score, per project and day, with the component score and weight
  and the status thresholds in force.
* ``blocker_checks`` / ``v_blocker_checks``: each alert rule's verdict, with its reason, on
  every open cross-project blocking link (why a blocker does or does not raise an alert).
* ``v_projects``: the configured projects with their planned dates and budget (the report's
  "forecast finish vs planned end").
* ``v_releases`` re-created: ``start_date`` is the source's start date, else the previous
  release's due date in the same scope (``start_date_inferred`` says which).

Revision ID: 0008
Revises: 0003
Create Date: 2026-12-01 12:00:00
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0003"
branch_labels = None
depends_on = None

#: A scope mapped to two projects by mistake must not duplicate rows: the smaller key wins.
_SCOPE_PROJECT = (
    "(SELECT source_name, scope, CAST(MIN(project_key) AS VARCHAR(100)) AS project_key "
    "FROM project_scopes GROUP BY source_name, scope)"
)
_IS_RELEASED = "(r.released_at IS NOT NULL OR COALESCE(r.released, FALSE))"
#: The previous release's (planned, else current) due date in the same source and scope.
_PREVIOUS_DUE = """(SELECT MAX(COALESCE(qm.planned_date, q.planned_date, q.due_date))
          FROM releases q LEFT JOIN release_metrics qm ON qm.release_id = q.id
          WHERE q.source_name = r.source_name AND q.scope = r.scope AND q.id <> r.id
            AND COALESCE(qm.planned_date, q.planned_date, q.due_date)
                < COALESCE(m.planned_date, r.planned_date, r.due_date))"""

V_RELEASES = f"""SELECT r.id AS release_id, src.kind AS source_kind, r.source_name,
       sp.project_key, p.program_key,
       r.name AS release_name, r.kind,
       COALESCE(m.planned_date, r.planned_date, r.due_date) AS due_date,
       r.due_date AS current_due_date,
       COALESCE(r.start_date, {_PREVIOUS_DUE}) AS start_date,
       CASE WHEN r.start_date IS NULL AND {_PREVIOUS_DUE} IS NOT NULL THEN TRUE ELSE FALSE END
         AS start_date_inferred,
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

V_HEALTH_INPUTS = """SELECT h.program_key, h.project_key, h.as_of_date, h.as_of, h.component,
       h.component_score, h.component_weight, h.metric, h.value, h.score, h.thresholds,
       h.reason, h.green_at, h.amber_at
FROM health_inputs h"""

V_BLOCKER_CHECKS = """SELECT c.program_key, c.blocked_item_key, c.blocked_project_key,
       c.blocking_item_key, c.blocking_project_key, c.rule, c.holds, c.reason, c.as_of
FROM blocker_checks c"""

V_PROJECTS = """SELECT p.key AS project_key, p.name AS project_name, p.program_key,
       g.name AS program_name, p.budget, p.start_date, p.end_date, p.hourly_rate
FROM projects p
LEFT JOIN programs g ON g.key = p.program_key"""

NEW_VIEWS = [
    ("v_health_inputs", V_HEALTH_INPUTS),
    ("v_blocker_checks", V_BLOCKER_CHECKS),
    ("v_projects", V_PROJECTS),
]


def upgrade() -> None:
    op.create_table(
        "health_inputs",
        sa.Column("project_key", sa.String(length=100), nullable=False),
        sa.Column("as_of_date", sa.Date(), nullable=False),
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("program_key", sa.String(length=100), nullable=True),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("component", sa.String(length=20), nullable=False),
        sa.Column("component_score", sa.Float(), nullable=True),
        sa.Column("component_weight", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("thresholds", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("green_at", sa.Float(), nullable=False),
        sa.Column("amber_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("project_key", "as_of_date", "metric"),
    )
    op.create_index("ix_health_inputs_as_of_date", "health_inputs", ["as_of_date"])
    op.create_table(
        "blocker_checks",
        sa.Column("blocked_item_id", sa.String(length=200), nullable=False),
        sa.Column("blocking_item_id", sa.String(length=200), nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("blocked_item_key", sa.String(length=300), nullable=False),
        sa.Column("blocked_project_key", sa.String(length=100), nullable=True),
        sa.Column("blocking_item_key", sa.String(length=300), nullable=False),
        sa.Column("blocking_project_key", sa.String(length=100), nullable=True),
        sa.Column("program_key", sa.String(length=100), nullable=True),
        sa.Column("holds", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("blocked_item_id", "blocking_item_id", "rule"),
    )
    op.create_index(
        "ix_blocker_checks_blocked_project_key", "blocker_checks", ["blocked_project_key"]
    )
    op.execute("DROP VIEW IF EXISTS v_releases")
    op.execute(f"CREATE VIEW v_releases AS\n{V_RELEASES}")
    for name, body in NEW_VIEWS:
        op.execute(f"CREATE VIEW {name} AS\n{body}")


def downgrade() -> None:
    for name, _body in reversed(NEW_VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute("DROP VIEW IF EXISTS v_releases")
    # The v_releases of 0002, as that migration froze it.
    previous = importlib.import_module("programview_migrations.versions.0002_metrics_and_views")
    body = dict(previous._views(op.get_bind().dialect.name))["v_releases"]
    op.execute(f"CREATE VIEW v_releases AS\n{body}")
    op.drop_index("ix_blocker_checks_blocked_project_key", table_name="blocker_checks")
    op.drop_table("blocker_checks")
    op.drop_index("ix_health_inputs_as_of_date", table_name="health_inputs")
    op.drop_table("health_inputs")
