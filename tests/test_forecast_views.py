"""The views of migration 0009 keep the contract of METRICS.md ("Forecasts, flow, benefits and
people"): every contract column exists (typed on PostgreSQL), and a downgrade to 0006 (the
revision 0009 follows) takes exactly 0009's objects away again."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from programview.warehouse import db

CONTRACT: dict[str, list[str]] = {
    "v_release_forecast": [
        "release_id",
        "project_key",
        "program_key",
        "release_name",
        "due_date",
        "remaining_points",
        "remaining_items",
        "p50_date",
        "p85_date",
        "p95_date",
        "probability_on_time",
        "driving_blocker_key",
    ],
    "v_flow_daily": [
        "project_key",
        "day",
        "todo_items",
        "in_progress_items",
        "done_items",
        "arrivals",
        "departures",
        "ageing_wip_items",
    ],
    "v_project_forecast": ["project_key", "end_date", "p85_date", "probability_on_time"],
}

TYPES: dict[tuple[str, str], type] = {
    ("v_release_forecast", "due_date"): sa.Date,
    ("v_release_forecast", "p85_date"): sa.Date,
    ("v_release_forecast", "probability_on_time"): sa.Float,
    ("v_release_forecast", "remaining_items"): sa.Integer,
    ("v_release_forecast", "p85_days_late"): sa.Integer,
    ("v_flow_daily", "day"): sa.Date,
    ("v_flow_daily", "ageing_wip_items"): sa.Integer,
    ("v_flow_daily", "net_flow_7d"): sa.Numeric,  # SUM over integers: bigint/numeric
}


def test_the_contract_columns_exist(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        for view, columns in CONTRACT.items():
            got = list(conn.execute(sa.text(f"SELECT * FROM {view} LIMIT 0")).keys())
            assert [c for c in columns if c not in got] == [], view


@pytest.mark.postgres
def test_column_types_on_postgresql(pg_url: str) -> None:
    db.upgrade(pg_url)
    eng = db.create_engine(pg_url)
    try:
        inspector = sa.inspect(eng)
        for (view, column), expected in TYPES.items():
            types = {c["name"]: c["type"] for c in inspector.get_columns(view)}
            got = types[column]
            ok = isinstance(got, expected) or (
                expected is sa.Numeric and isinstance(got, sa.Integer | sa.Numeric)
            )
            assert ok, (view, column, got)
    finally:
        eng.dispose()


def test_downgrade_to_0006_removes_what_0009_added(warehouse_url: str) -> None:
    db.downgrade(warehouse_url, "0006")
    eng = db.create_engine(warehouse_url)
    try:
        inspector = sa.inspect(eng)
        views = set(inspector.get_view_names())
        assert {"v_release_forecast", "v_project_forecast", "v_flow_daily"}.isdisjoint(views)
        assert {"v_resource_load", "v_dependency_alerts", "v_project_metrics"} <= views
        tables = set(inspector.get_table_names())
        assert {"release_forecasts", "project_forecasts", "flow_daily"}.isdisjoint(tables)
    finally:
        eng.dispose()
    db.upgrade(warehouse_url)  # and back up again
