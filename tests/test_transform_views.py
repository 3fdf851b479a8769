"""The public ``v_*`` views: every contract column exists (with its type on PostgreSQL), and
the views return the scenario's rows correctly. Created by migrations only."""

from __future__ import annotations

from datetime import date, datetime

import pytest
import sqlalchemy as sa
from test_transform_support import Scenario, db_id, dt

from programview.warehouse import db

CONTRACT: dict[str, list[str]] = {
    "v_work_items": [
        "work_item_id",
        "source_kind",
        "source_name",
        "item_key",
        "url",
        "title",
        "project_key",
        "program_key",
        "type_category",
        "raw_type",
        "status_category",
        "raw_status",
        "story_points",
        "created_at",
        "started_at",
        "resolved_at",
        "due_date",
        "sprint_name",
        "release_name",
        "assignee",
        "labels",
        "parent_key",
    ],
    "v_sprints": [
        "sprint_id",
        "source_kind",
        "project_key",
        "program_key",
        "sprint_name",
        "state",
        "start_at",
        "end_at",
        "completed_at",
        "committed_points",
        "added_points",
        "removed_points",
        "completed_points",
        "committed_items",
        "completed_items",
    ],
    "v_releases": [
        "release_id",
        "project_key",
        "program_key",
        "release_name",
        "kind",
        "due_date",
        "released_at",
        "state",
        "on_time",
        "slip_days",
        "item_count",
        "points",
        "done_points",
        "open_bugs",
    ],
    "v_dependencies": [
        "blocked_item_key",
        "blocked_project_key",
        "blocking_item_key",
        "blocking_project_key",
        "link_kind",
        "cross_project",
        "source",
    ],
    "v_project_metrics": [
        "project_key",
        "program_key",
        "as_of_date",
        "velocity_points",
        "velocity_cv",
        "say_do_ratio",
        "throughput_per_week",
        "cycle_time_p50_days",
        "cycle_time_p85_days",
        "defect_density",
        "on_time_delivery_rate",
        "planned_value",
        "actual_cost",
        "earned_value",
        "budget_variance",
        "cpi",
        "spi",
        "scope_change_pct",
        "open_blockers",
        "unestimated_items",
    ],
    "v_program_health": [
        "program_key",
        "as_of_date",
        "health_score",
        "health_status",
        "schedule_score",
        "delivery_score",
        "quality_score",
        "budget_score",
        "dependencies_score",
        "explanation",
    ],
    "v_dependency_alerts": [
        "alert_id",
        "program_key",
        "rule",
        "severity",
        "status",
        "blocked_item_key",
        "blocked_project_key",
        "blocking_item_key",
        "blocking_project_key",
        "message",
        "slip_days",
        "first_seen_at",
        "last_seen_at",
        "resolved_at",
    ],
    "v_sync_runs": [
        "source_name",
        "stream",
        "last_finished_at",
        "last_success_at",
        "records",
        "requests",
        "errors",
        "quarantined",
    ],
}

#: The typed contract, checked on PostgreSQL (SQLite views carry no column types).
TYPES: dict[tuple[str, str], type] = {
    ("v_work_items", "story_points"): sa.Float,
    ("v_work_items", "created_at"): sa.DateTime,
    ("v_work_items", "due_date"): sa.Date,
    ("v_sprints", "committed_points"): sa.Float,
    ("v_sprints", "completed_items"): sa.Integer,
    ("v_releases", "on_time"): sa.Boolean,
    ("v_releases", "slip_days"): sa.Integer,
    ("v_releases", "due_date"): sa.Date,
    ("v_releases", "released_at"): sa.DateTime,
    ("v_dependencies", "cross_project"): sa.Boolean,
    ("v_project_metrics", "as_of_date"): sa.Date,
    ("v_project_metrics", "cpi"): sa.Float,
    ("v_project_metrics", "open_blockers"): sa.Integer,
    ("v_program_health", "health_score"): sa.Float,
    ("v_program_health", "health_status"): sa.String,
    ("v_dependency_alerts", "alert_id"): sa.Integer,
    ("v_dependency_alerts", "first_seen_at"): sa.DateTime,
    ("v_sync_runs", "last_finished_at"): sa.DateTime,
    ("v_sync_runs", "records"): sa.Integer,
}


def test_every_view_has_the_contract_columns(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        for view, columns in CONTRACT.items():
            got = conn.execute(sa.text(f"SELECT * FROM {view} LIMIT 0")).keys()
            missing = [c for c in columns if c not in got]
            assert not missing, f"{view} lacks {missing}"
    assert set(CONTRACT) <= set(sa.inspect(engine).get_view_names())


@pytest.mark.postgres
def test_view_column_types_on_postgresql(pg_url: str) -> None:
    db.upgrade(pg_url)
    eng = db.create_engine(pg_url)
    try:
        inspector = sa.inspect(eng)
        for (view, column), expected in TYPES.items():
            types = {c["name"]: c["type"] for c in inspector.get_columns(view)}
            assert isinstance(types[column], expected), (view, column, types[column])
    finally:
        eng.dispose()


def test_downgrade_drops_views_and_metric_tables(warehouse_url: str) -> None:
    db.downgrade(warehouse_url, "0001")
    eng = db.create_engine(warehouse_url)
    try:
        inspector = sa.inspect(eng)
        assert not set(CONTRACT) & set(inspector.get_view_names())
        assert "project_metrics" not in inspector.get_table_names()
        assert "work_items" in inspector.get_table_names()
    finally:
        eng.dispose()
    db.upgrade(warehouse_url)


def build(engine) -> Scenario:  # type: ignore[no-untyped-def]
    s = Scenario(engine).source("jira", "jira").source("gh", "github").program("DIGITAL")
    s.project("PAY", program="DIGITAL")
    s.project("WEB", program="DIGITAL", scopes=[("gh", "acme/web")])
    s.sprint(
        "S1",
        scope="PAY",
        state="closed",
        start="2024-02-01",
        end="2024-02-15",
        completed="2024-02-15",
        name="PAY Sprint 1",
    )
    s.sprint(
        "S2", scope="PAY", state="active", start="2024-02-15", end="2024-02-29", name="PAY Sprint 2"
    )
    s.sprint(
        "S3", scope="PAY", state="future", start="2024-02-29", end="2024-03-14", name="PAY Sprint 3"
    )
    s.release(
        "V1", scope="PAY", due="2024-02-10", released=True, released_at="2024-02-12", name="1.0"
    )
    s.release("V2", scope="PAY", due="2024-03-31", name="2.0")
    s.release("V3", scope="PAY", due="2024-03-15", name="1.1")
    # carried over from S1 into the active S2 and already planned into S3: current = S2
    p1 = s.item("PAY-1", points=3, status="in_progress", started="2024-02-05")
    s.member("S1", p1)
    s.member("S2", p1, added="2024-02-15")
    s.member("S3", p1, added="2024-02-20")
    # removed from the active sprint, still in the closed one: current = S1 (latest it is in)
    p2 = s.item("PAY-2", points=2)
    s.member("S1", p2)
    s.member("S2", p2, added="2024-02-15", removed="2024-02-16")
    # shipped in 1.0 and planned into two open releases: current = the open one due first
    s.in_release(p1, "V1")
    s.in_release(p1, "V2")
    s.in_release(p1, "V3")
    s.in_release(p2, "V1")  # only a shipped release: current = 1.0
    s.item("PAY-3", deleted=True)
    s.item("acme/web#7", source="gh", scope="acme/web", points=5, status="todo")
    s.link("acme/web#7", "PAY-1", source="gh")  # cross-tool, cross-project
    s.link("PAY-2", "PAY-1")  # same project
    s.link("PAY-1", "PAY-2", kind="relates")
    s.link("PAY-1", "GONE-1")  # to an item never synced
    s.link("PAY-3", "PAY-2")  # found in a deleted item: the link died with it
    s.link("PAY-2", "PAY-3", kind="relates")  # points at a deleted item
    return s


def view(s: Scenario, name: str, order: str) -> list[dict]:  # type: ignore[type-arg]
    return s.all(f"SELECT * FROM {name} ORDER BY {order}")


def test_v_work_items(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run("2024-02-20")
    rows = {r["item_key"]: r for r in view(s, "v_work_items", "item_key")}
    assert set(rows) == {"PAY-1", "PAY-2", "acme/web#7"}  # deleted PAY-3 is gone
    assert {k: (r["sprint_name"], r["release_name"]) for k, r in rows.items()} == {
        "PAY-1": ("PAY Sprint 2", "1.1"),
        "PAY-2": ("PAY Sprint 1", "1.0"),
        "acme/web#7": (None, None),
    }
    web = rows["acme/web#7"]
    assert (web["source_kind"], web["source_name"], web["project_key"], web["program_key"]) == (
        "github",
        "gh",
        "WEB",
        "DIGITAL",
    )
    assert rows["PAY-1"]["story_points"] == 3
    assert rows["PAY-1"]["work_item_id"] == db_id("jira", "PAY-1")


def test_v_dependencies(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run("2024-02-20")
    got = {
        (r["blocked_item_key"], r["blocking_item_key"], r["link_kind"]): (
            r["blocked_project_key"],
            r["blocking_project_key"],
            bool(r["cross_project"]),
            r["source"],
        )
        for r in view(s, "v_dependencies", "blocked_item_key, blocking_item_key")
    }
    assert got == {
        ("acme/web#7", "PAY-1", "blocks"): ("WEB", "PAY", True, "jira_link"),
        ("PAY-2", "PAY-1", "blocks"): ("PAY", "PAY", False, "jira_link"),
        ("PAY-1", "PAY-2", "relates"): ("PAY", "PAY", False, "jira_link"),
        ("PAY-1", "GONE-1", "blocks"): ("PAY", None, False, "jira_link"),
    }


def test_v_sprints_and_v_releases(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run("2024-02-20")
    sprints = {r["sprint_name"]: r for r in view(s, "v_sprints", "sprint_id")}
    assert sprints["PAY Sprint 1"]["committed_points"] == 3 + 2
    assert sprints["PAY Sprint 2"]["removed_points"] == 2
    assert sprints["PAY Sprint 2"]["program_key"] == "DIGITAL"
    assert sprints["PAY Sprint 2"]["source_kind"] == "jira"
    releases = {r["release_name"]: r for r in view(s, "v_releases", "release_id")}
    v1 = releases["1.0"]
    assert (v1["state"], bool(v1["on_time"]), v1["slip_days"], v1["item_count"]) == (
        "released",
        False,
        2,
        2,
    )
    assert releases["2.0"]["state"] == "open" and releases["2.0"]["on_time"] is None


def test_v_alerts_metrics_and_health(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run("2024-02-20")
    # acme/web#7 (WEB) is blocked by PAY-1 (PAY); make web#7 due in 3 days, before PAY-1's
    # planned finish (the end of its active sprint, 29 Feb)
    s.update("work_items", {"id": db_id("gh", "acme/web#7")}, due_date=date(2024, 2, 23))
    s.run("2024-02-20")
    got = {
        a["rule"]: (
            a["severity"],
            a["status"],
            a["blocked_item_key"],
            a["blocking_item_key"],
            a["blocked_project_key"],
            a["program_key"],
            a["slip_days"],
        )
        for a in view(s, "v_dependency_alerts", "alert_id")
    }
    assert got == {
        "blocker_scheduled_later": ("medium", "open", "acme/web#7", "PAY-1", "WEB", "DIGITAL", 6),
        "blocked_item_due_soon": ("high", "open", "acme/web#7", "PAY-1", "WEB", "DIGITAL", None),
    }
    metrics = view(s, "v_project_metrics", "project_key")
    assert [(m["project_key"], m["program_key"]) for m in metrics] == [
        ("PAY", "DIGITAL"),
        ("WEB", "DIGITAL"),
    ]
    assert metrics[1]["open_blockers"] == 1
    (health,) = view(s, "v_program_health", "program_key")
    assert health["program_name"] == "DIGITAL" and health["open_alerts"] == 2
    assert health["explanation"].count("\n") == 4


def test_v_sync_runs_shows_latest_run_per_stream(engine) -> None:  # type: ignore[no-untyped-def]
    with db.transaction(engine) as conn:
        db.upsert(conn, "sources", [{"name": "jira", "kind": "jira", "base_url": None}])
        db.upsert(
            conn,
            "sync_runs",
            [
                {
                    "id": i,
                    "kind": "sync",
                    "source_name": "jira",
                    "started_at": dt(f"2024-03-0{i}"),
                    "finished_at": dt(f"2024-03-0{i} 00:05"),
                    "status": status,
                    "records": 0,
                    "skipped": 0,
                    "requests": 0,
                    "errors": 0,
                    "quarantined": 0,
                }
                for i, status in ((1, "ok"), (2, "failed"))
            ],
        )
        db.upsert(
            conn,
            "sync_run_streams",
            [
                {
                    "run_id": 1,
                    "source_name": "jira",
                    "scope": "PAY",
                    "stream": "issues",
                    "started_at": dt("2024-03-01"),
                    "finished_at": dt("2024-03-01 00:05"),
                    "status": "ok",
                    "records": 120,
                    "skipped": 3,
                    "pages": 2,
                    "requests": 4,
                    "quarantined": 1,
                    "error": None,
                },
                {
                    "run_id": 2,
                    "source_name": "jira",
                    "scope": "PAY",
                    "stream": "issues",
                    "started_at": dt("2024-03-02"),
                    "finished_at": dt("2024-03-02 00:05"),
                    "status": "failed",
                    "records": 7,
                    "skipped": 0,
                    "pages": 1,
                    "requests": 9,
                    "quarantined": 0,
                    "error": "HTTP 503 after 5 retries",
                },
            ],
        )
        db.upsert(
            conn,
            "quarantine",
            [
                {
                    "id": 1,
                    "run_id": 1,
                    "source_name": "jira",
                    "stream": "issues",
                    "scope": "PAY",
                    "native_id": "10001",
                    "error": "bad",
                    "payload": "{}",
                    "created_at": dt("2024-03-01"),
                },
            ],
        )
    s = Scenario(engine)
    (row,) = view(s, "v_sync_runs", "source_name")
    assert (row["source_kind"], row["scope"], row["stream"], row["last_run_id"]) == (
        "jira",
        "PAY",
        "issues",
        2,
    )
    assert (row["last_status"], row["records"], row["requests"], row["errors"]) == (
        "failed",
        7,
        9,
        1,
    )
    assert row["last_error"] == "HTTP 503 after 5 retries"
    assert (row["quarantined"], row["quarantined_total"]) == (0, 1)
    with engine.connect() as conn:
        times = conn.execute(
            sa.text("SELECT last_success_at, last_finished_at FROM v_sync_runs").columns(
                last_success_at=sa.DateTime, last_finished_at=sa.DateTime
            )
        ).one()
    assert tuple(times) == (datetime(2024, 3, 1, 0, 5), datetime(2024, 3, 2, 0, 5))
