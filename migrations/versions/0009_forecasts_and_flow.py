"""delivery forecasts and flow

New tables (transform history): ``release_forecasts`` and ``project_forecasts`` (Monte Carlo
forecast per open release / project and as_of_date), ``flow_daily`` (WIP by status
category, arrivals, departures, ageing WIP per project and day). Views:
``v_release_forecast``, ``v_project_forecast``, ``v_flow_daily`` (docs/warehouse.md).

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-02 04:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None


def _forecast_columns() -> list[sa.Column]:
    return [
        sa.Column("as_of_date", sa.Date(), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("program_key", sa.String(length=100), nullable=True),
        sa.Column("remaining_points", sa.Float(), nullable=False),
        sa.Column("remaining_items", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(length=10), nullable=True),
        sa.Column("history", sa.String(length=10), nullable=True),
        sa.Column("history_values", sa.Text(), nullable=True),
        sa.Column("step_days", sa.Integer(), nullable=True),
        sa.Column("trials", sa.Integer(), nullable=True),
        sa.Column("p50_date", sa.Date(), nullable=True),
        sa.Column("p85_date", sa.Date(), nullable=True),
        sa.Column("p95_date", sa.Date(), nullable=True),
        sa.Column("own_p85_date", sa.Date(), nullable=True),
        sa.Column("probability_on_time", sa.Float(), nullable=True),
        sa.Column("driving_blocker_key", sa.String(length=300), nullable=True),
        sa.Column("driving_blocker_release", sa.String(length=300), nullable=True),
        sa.Column("driving_blocker_p85_date", sa.Date(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "release_forecasts",
        sa.Column("release_id", sa.String(length=200), nullable=False),
        sa.Column("project_key", sa.String(length=100), nullable=False),
        sa.Column("release_name", sa.String(length=300), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("blocking_cycle", sa.Text(), nullable=True),
        *_forecast_columns(),
        sa.PrimaryKeyConstraint("release_id", "as_of_date"),
    )
    op.create_index("ix_release_forecasts_as_of_date", "release_forecasts", ["as_of_date"])
    op.create_table(
        "project_forecasts",
        sa.Column("project_key", sa.String(length=100), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        *_forecast_columns(),
        sa.PrimaryKeyConstraint("project_key", "as_of_date"),
    )
    op.create_index("ix_project_forecasts_as_of_date", "project_forecasts", ["as_of_date"])
    op.create_table(
        "flow_daily",
        sa.Column("project_key", sa.String(length=100), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("todo_items", sa.Integer(), nullable=False),
        sa.Column("in_progress_items", sa.Integer(), nullable=False),
        sa.Column("done_items", sa.Integer(), nullable=False),
        sa.Column("arrivals", sa.Integer(), nullable=False),
        sa.Column("departures", sa.Integer(), nullable=False),
        sa.Column("ageing_wip_items", sa.Integer(), nullable=False),
        sa.Column("ageing_threshold_days", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("project_key", "day"),
    )
    op.create_index("ix_flow_daily_day", "flow_daily", ["day"])
    dialect = op.get_bind().dialect.name
    for name, body in _views(dialect):
        op.execute(f"CREATE VIEW {name} AS\n{body}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, _body in reversed(_views(dialect)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_index("ix_flow_daily_day", table_name="flow_daily")
    op.drop_table("flow_daily")
    op.drop_index("ix_project_forecasts_as_of_date", table_name="project_forecasts")
    op.drop_table("project_forecasts")
    op.drop_index("ix_release_forecasts_as_of_date", table_name="release_forecasts")
    op.drop_table("release_forecasts")


# --- the views (frozen here: a migration keeps creating the same views) ----------------------


def _date_diff(dialect: str, later: str, earlier: str) -> str:
    if dialect == "postgresql":
        return f"({later} - {earlier})"
    return f"CAST(ROUND(julianday({later}) - julianday({earlier})) AS INTEGER)"


_SHARED = """f.remaining_points, f.remaining_items, f.p50_date, f.p85_date, f.p95_date,
       f.probability_on_time, f.driving_blocker_key, f.driving_blocker_release,
       f.driving_blocker_p85_date, f.own_p85_date, f.unit, f.history, f.history_values,
       f.step_days, f.trials, f.notes, f.as_of_date, f.as_of"""


def _views(dialect: str) -> list[tuple[str, str]]:
    late = _date_diff(dialect, "f.p85_date", "f.due_date")
    v_release_forecast = f"""SELECT f.release_id, f.project_key, f.program_key, f.release_name,
       f.due_date, {_SHARED},
       CASE WHEN f.p85_date IS NULL OR f.due_date IS NULL THEN NULL
            WHEN f.p85_date > f.due_date THEN {late} ELSE 0 END AS p85_days_late,
       f.blocking_cycle
FROM release_forecasts f"""
    late = _date_diff(dialect, "f.p85_date", "f.end_date")
    v_project_forecast = f"""SELECT f.project_key, f.program_key, f.end_date, {_SHARED},
       CASE WHEN f.p85_date IS NULL OR f.end_date IS NULL THEN NULL
            WHEN f.p85_date > f.end_date THEN {late} ELSE 0 END AS p85_days_late
FROM project_forecasts f"""
    week = "PARTITION BY f.project_key ORDER BY f.day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW"
    v_flow_daily = f"""SELECT f.project_key, p.program_key, f.day, f.todo_items,
       f.in_progress_items, f.done_items, f.arrivals, f.departures, f.ageing_wip_items,
       f.arrivals - f.departures AS net_flow,
       SUM(f.arrivals) OVER ({week}) AS arrivals_7d,
       SUM(f.departures) OVER ({week}) AS departures_7d,
       SUM(f.arrivals - f.departures) OVER ({week}) AS net_flow_7d,
       f.ageing_threshold_days, f.as_of
FROM flow_daily f
LEFT JOIN projects p ON p.key = f.project_key"""
    return [
        ("v_release_forecast", v_release_forecast),
        ("v_project_forecast", v_project_forecast),
        ("v_flow_daily", v_flow_daily),
    ]
