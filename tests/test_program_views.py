"""The views of migration 0006 keep the contract of METRICS.md ("Forecasts, flow, benefits and
people"): every contract column exists (typed on PostgreSQL), ``v_dependency_alerts`` gained
``person``, and a downgrade to 0008 (the revision 0006 follows) takes exactly 0006's objects
away again."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from programview.warehouse import db

CONTRACT: dict[str, list[str]] = {
    "v_benefits": [
        "program_key",
        "benefit_key",
        "as_of_date",
        "value",
        "realisation_pct",
        "on_track",
        "realised_value",
    ],
    "v_program_benefits": ["program_key", "as_of_date", "realised_value", "actual_cost", "roi"],
    "v_resource_load": [
        "person",
        "week",
        "project_key",
        "program_key",
        "in_progress_items",
        "active_sprint_points",
    ],
    "v_dependency_alerts": ["alert_id", "rule", "status", "message", "person"],
}

TYPES: dict[tuple[str, str], type] = {
    ("v_benefits", "as_of_date"): sa.Date,
    ("v_benefits", "realisation_pct"): sa.Float,
    ("v_benefits", "on_track"): sa.Boolean,
    ("v_program_benefits", "roi"): sa.Float,
    ("v_resource_load", "week"): sa.Date,
    ("v_resource_load", "in_progress_items"): sa.Integer,
    ("v_resource_load", "active_sprint_points"): sa.Float,
    ("v_resource_load", "program_in_progress_items"): sa.Integer,
    ("v_resource_load", "program_active_sprint_points"): sa.Float,
    ("v_dependency_alerts", "person"): sa.String,
}


def test_the_contract_columns_exist(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        for view, columns in CONTRACT.items():
            got = conn.execute(sa.text(f"SELECT * FROM {view} LIMIT 0")).keys()
            assert [c for c in columns if c not in got] == [], view


@pytest.mark.postgres
def test_column_types_on_postgresql(pg_url: str) -> None:
    db.upgrade(pg_url)
    eng = db.create_engine(pg_url)
    try:
        inspector = sa.inspect(eng)
        for (view, column), expected in TYPES.items():
            types = {c["name"]: c["type"] for c in inspector.get_columns(view)}
            assert isinstance(types[column], expected), (view, column, types[column])
    finally:
        eng.dispose()


def test_downgrade_to_0008_removes_what_0006_added(warehouse_url: str) -> None:
    db.downgrade(warehouse_url, "0008")
    eng = db.create_engine(warehouse_url)
    try:
        inspector = sa.inspect(eng)
        views = set(inspector.get_view_names())
        assert {"v_benefits", "v_program_benefits", "v_resource_load"}.isdisjoint(views)
        assert {"v_dependency_alerts", "v_blocker_checks", "v_health_inputs"} <= views
        alerts = {c["name"] for c in inspector.get_columns("v_dependency_alerts")}
        assert "person" not in alerts and "open_days" in alerts
        assert "resource_load" not in inspector.get_table_names()
        assert "email" not in {c["name"] for c in inspector.get_columns("people")}
    finally:
        eng.dispose()
    db.upgrade(warehouse_url)
