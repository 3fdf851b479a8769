"""``programview report``: built from the v_* views of a migrated warehouse (SQLite and
PostgreSQL), rendered as text, JSON and self-contained HTML, and run through the CLI.

The transform's tables behind the views are seeded directly (the transform has its own
tests); everything the report reads goes through the real migration's views.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from programview.cli import main
from programview.report import (
    NoMetricsError,
    UnknownProgramError,
    build_report,
    render_html,
    render_text,
    write_report,
)
from programview.warehouse import db

LATEST = date(2026, 11, 3)


def _insert(conn: sa.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert rows with differing keys (missing ones NULL, as executemany needs one shape)."""
    keys = {k for row in rows for k in row}
    conn.execute(db.table(table).insert(), [{k: row.get(k) for k in keys} for row in rows])


def _health(
    program: str, day: date, score: float | None, status: str | None, **components: Any
) -> dict[str, Any]:
    row = {
        "program_key": program,
        "as_of_date": day,
        "as_of": datetime(day.year, day.month, day.day, 6),
        "project_count": 2,
        "health_score": score,
        "health_status": status,
        "open_alerts": 0,
    }
    for name in ("schedule", "delivery", "quality", "budget", "dependencies"):
        row[f"{name}_score"] = components.get(name)
        row[f"{name}_explanation"] = components.get(f"{name}_why")
    return row


def _metrics(project: str, program: str, day: date, **values: Any) -> dict[str, Any]:
    return {
        "project_key": project,
        "program_key": program,
        "as_of_date": day,
        "as_of": datetime(day.year, day.month, day.day, 6),
        **values,
    }


def _item(key: str, scope: str, source: str, **values: Any) -> dict[str, Any]:
    return {
        "id": f"{source}:{key}",
        "source_name": source,
        "scope": scope,
        "native_id": key,
        "item_key": key,
        "type_category": "story",
        "status_category": "todo",
        "title": f"Item {key}",
        "url": f"https://tracker.example/{key}",
        **values,
    }


def seed(engine: sa.Engine) -> None:
    """Two programs, three projects, three days of health history, sprints, a release with
    items, and alerts (two open, one resolved)."""
    with engine.begin() as conn:
        _insert(
            conn,
            "sources",
            [
                {"name": "jira", "kind": "jira", "base_url": "https://jira.example"},
                {"name": "github", "kind": "github", "base_url": "https://api.github.example"},
            ],
        )
        _insert(
            conn,
            "programs",
            [
                {"key": "PAYMENTS", "name": "Payments platform"},
                {"key": "MOBILE", "name": "Mobile app"},
            ],
        )
        _insert(
            conn,
            "projects",
            [
                {"key": "PAY", "name": "Payments API", "program_key": "PAYMENTS"},
                {"key": "WEB", "name": "Web checkout", "program_key": "PAYMENTS"},
                {"key": "APP", "name": "Mobile app", "program_key": "MOBILE"},
            ],
        )
        _insert(
            conn,
            "project_scopes",
            [
                {"project_key": "PAY", "source_name": "jira", "scope": "PAY"},
                {"project_key": "WEB", "source_name": "github", "scope": "acme/web"},
                {"project_key": "APP", "source_name": "github", "scope": "acme/app"},
            ],
        )
        _insert(
            conn,
            "program_health",
            [
                _health("PAYMENTS", date(2026, 11, 1), 74.0, "amber", schedule=80.0),
                _health("PAYMENTS", date(2026, 11, 2), 66.0, "amber", schedule=75.0),
                _health(
                    "PAYMENTS",
                    LATEST,
                    58.0,
                    "amber",
                    schedule=70.0,
                    schedule_why="schedule 70/100: SPI 0.92 (target 1.0)",
                    delivery=82.0,
                    delivery_why="delivery 82/100: say/do 88%",
                    quality=64.0,
                    quality_why="quality 64/100: 6.1 bugs per 100 points",
                    dependencies=30.0,
                    dependencies_why="dependencies 30/100: 2 open alerts (1 critical, 1 high)",
                ),
                _health("MOBILE", date(2026, 11, 2), 79.0, "green", delivery=79.0),
                _health(
                    "MOBILE",
                    LATEST,
                    81.0,
                    "green",
                    delivery=81.0,
                    delivery_why="delivery 81/100: velocity stable (CV 0.12)",
                ),
            ],
        )
        _insert(
            conn,
            "project_metrics",
            [
                _metrics("PAY", "PAYMENTS", date(2026, 11, 2), velocity_points=10.0),
                _metrics(
                    "PAY",
                    "PAYMENTS",
                    LATEST,
                    velocity_points=21.0,
                    say_do_ratio=0.875,
                    throughput_per_week=4.5,
                    cycle_time_p50_days=3.25,
                    defect_density=6.1,
                    on_time_delivery_rate=0.5,
                    cpi=0.91,
                    spi=0.92,
                    open_blockers=2,
                ),
                _metrics("WEB", "PAYMENTS", LATEST, velocity_points=13.0, open_blockers=0),
                _metrics("APP", "MOBILE", LATEST, velocity_points=8.0),
            ],
        )
        _insert(
            conn,
            "dependency_alerts",
            [
                {
                    "id": 1,
                    "identity": "a1",
                    "rule": "blocker_scheduled_later",
                    "program_key": "PAYMENTS",
                    "severity": "high",
                    "status": "open",
                    "blocked_item_key": "PAY-12",
                    "blocked_project_key": "PAY",
                    "blocking_item_key": "acme/web#45",
                    "blocking_project_key": "WEB",
                    "message": "PAY-12 due 11-10 waits on acme/web#45 planned 11-20 <late>",
                    "slip_days": 10,
                    "first_seen_at": datetime(2026, 11, 1, 6),
                    "last_seen_at": datetime(2026, 11, 3, 6),
                },
                {
                    "id": 2,
                    "identity": "a2",
                    "rule": "dependency_cycle",
                    "program_key": "PAYMENTS",
                    "severity": "critical",
                    "status": "open",
                    "blocked_item_key": "PAY-20",
                    "blocked_project_key": "PAY",
                    "blocking_item_key": "acme/web#50",
                    "blocking_project_key": "WEB",
                    "message": "cycle PAY-20 -> acme/web#50 -> PAY-20",
                    "first_seen_at": datetime(2026, 11, 2, 6),
                    "last_seen_at": datetime(2026, 11, 3, 6),
                },
                {
                    "id": 3,
                    "identity": "a3",
                    "rule": "blocker_stalled",
                    "program_key": "MOBILE",
                    "severity": "medium",
                    "status": "resolved",
                    "blocked_item_key": "acme/app#1",
                    "blocked_project_key": "APP",
                    "blocking_item_key": "PAY-1",
                    "blocking_project_key": "PAY",
                    "message": "stalled",
                    "slip_days": None,
                    "first_seen_at": datetime(2026, 10, 1, 6),
                    "last_seen_at": datetime(2026, 10, 9, 6),
                    "resolved_at": datetime(2026, 10, 10, 6),
                },
            ],
        )
        spi_points = "[[0.7, 0.0], [0.85, 50.0], [0.95, 75.0], [1.0, 100.0]]"
        _insert(
            conn,
            "health_inputs",
            [
                {
                    "project_key": "PAY",
                    "program_key": "PAYMENTS",
                    "as_of_date": LATEST,
                    "as_of": datetime(2026, 11, 3, 6),
                    "component": "schedule",
                    "component_score": 70.0,
                    "component_weight": 0.3,
                    "metric": metric,
                    "value": value,
                    "score": score,
                    "thresholds": spi_points if metric == "spi" else "[[0.0, 100.0], [60.0, 0.0]]",
                    "reason": reason,
                    "green_at": 75.0,
                    "amber_at": 50.0,
                }
                for metric, value, score, reason in (
                    ("spi", 0.93, 70.0, None),
                    ("forecast_slip_days", None, None, "no end date configured for the project"),
                )
            ],
        )
        checks = []
        for blocked, blocking, holding in (
            ("PAY-12", "acme/web#45", "blocker_scheduled_later"),
            ("PAY-30", "acme/web#60", None),
        ):
            for rule in ("blocker_scheduled_later", "blocked_item_due_soon"):
                checks.append(
                    {
                        "blocked_item_id": f"jira:{blocked}",
                        "blocking_item_id": f"github:{blocking}",
                        "rule": rule,
                        "blocked_item_key": blocked,
                        "blocked_project_key": "PAY",
                        "blocking_item_key": blocking,
                        "blocking_project_key": "WEB",
                        "program_key": "PAYMENTS",
                        "holds": rule == holding,
                        "reason": f"{rule} reason for {blocked}",
                        "as_of": datetime(2026, 11, 3, 6),
                    }
                )
        _insert(conn, "blocker_checks", checks)
        sprints = []
        sprint_metrics = []
        for n, (committed, completed) in enumerate([(20, 18), (22, 15), (25, 24), (30, 0)], 1):
            closed = n < 4
            sprints.append(
                {
                    "id": f"jira:s{n}",
                    "source_name": "jira",
                    "scope": "PAY",
                    "native_id": str(n),
                    "name": f"PAY Sprint {n}",
                    "state": "closed" if closed else "active",
                    "start_at": datetime(2026, 9, 1) + timedelta(days=14 * (n - 1)),
                    "end_at": datetime(2026, 9, 15) + timedelta(days=14 * (n - 1)),
                }
            )
            sprint_metrics.append(
                {
                    "sprint_id": f"jira:s{n}",
                    "project_key": "PAY",
                    "committed_points": committed,
                    "added_points": 0,
                    "removed_points": 0,
                    "completed_points": completed,
                    "committed_items": 5,
                    "added_items": 0,
                    "removed_items": 0,
                    "completed_items": 4,
                    "unestimated_items": 0,
                    "computed_at": datetime(2026, 11, 3, 6),
                }
            )
        _insert(conn, "sprints", sprints)
        _insert(conn, "sprint_metrics", sprint_metrics)
        _insert(
            conn,
            "releases",
            [
                {
                    "id": "jira:v1",
                    "source_name": "jira",
                    "scope": "PAY",
                    "native_id": "v1",
                    "name": "1.0",
                    "kind": "version",
                    "due_date": date(2026, 11, 20),
                    "released": False,
                },
            ],
        )
        _insert(
            conn,
            "work_items",
            [
                _item(
                    "PAY-1",
                    "PAY",
                    "jira",
                    story_points=5.0,
                    status_category="done",
                    created_at=datetime(2026, 10, 1),
                    resolved_at=datetime(2026, 10, 20),
                ),
                _item(
                    "PAY-2",
                    "PAY",
                    "jira",
                    story_points=3.0,
                    status_category="done",
                    created_at=datetime(2026, 10, 1),
                    resolved_at=datetime(2026, 10, 25, 15),
                ),
                _item("PAY-3", "PAY", "jira", story_points=8.0, created_at=datetime(2026, 10, 15)),
                _item("PAY-4", "PAY", "jira", story_points=None, created_at=datetime(2026, 10, 16)),
                _item("PAY-12", "PAY", "jira", story_points=2.0),
            ],
        )
        _insert(
            conn,
            "work_item_releases",
            [{"work_item_id": f"jira:PAY-{n}", "release_id": "jira:v1"} for n in (1, 2, 3, 4)],
        )


@pytest.fixture
def seeded(engine: sa.Engine) -> sa.Engine:
    seed(engine)
    return engine


def test_report_uses_latest_day_and_names_the_worst_component(seeded: sa.Engine) -> None:
    report = build_report(seeded)

    assert report["as_of_date"] == "2026-11-03"
    programs = {p["program_key"]: p for p in report["programs"]}
    assert set(programs) == {"PAYMENTS", "MOBILE"}
    pay = programs["PAYMENTS"]
    assert pay["health_score"] == 58.0  # the 2026-11-03 row, not an older day
    assert pay["health_status"] == "amber"
    assert pay["program_name"] == "Payments platform"
    assert pay["components"]["budget"] is None  # no data stays null, not 100
    assert pay["worst"] == {
        "component": "dependencies",
        "score": 30.0,
        "why": "dependencies 30/100: 2 open alerts (1 critical, 1 high)",
    }
    assert programs["MOBILE"]["worst"]["component"] == "delivery"

    projects = {p["project_key"]: p for p in report["projects"]}
    assert set(projects) == {"PAY", "WEB", "APP"}
    assert projects["PAY"]["velocity_points"] == 21.0
    assert projects["PAY"]["as_of_date"] == "2026-11-03"


def test_open_alerts_only_worst_first(seeded: sa.Engine) -> None:
    alerts = build_report(seeded)["alerts"]
    assert [(a["alert_id"], a["severity"]) for a in alerts] == [(2, "critical"), (1, "high")]
    assert alerts[1]["first_seen_at"] == "2026-11-01T06:00:00"


def test_trends_health_velocity_and_burnup(seeded: sa.Engine) -> None:
    trends = build_report(seeded)["trends"]

    health = {s["program_key"]: s["points"] for s in trends["health"]}
    assert [(p["date"], p["score"]) for p in health["PAYMENTS"]] == [
        ("2026-11-01", 74.0),
        ("2026-11-02", 66.0),
        ("2026-11-03", 58.0),
    ]

    (velocity,) = trends["velocity"]
    assert velocity["project_key"] == "PAY"
    # Closed sprints only (the active sprint 4 is not velocity yet), oldest first.
    assert [
        (s["sprint_name"], s["committed_points"], s["completed_points"])
        for s in velocity["sprints"]
    ] == [
        ("PAY Sprint 1", 20.0, 18.0),
        ("PAY Sprint 2", 22.0, 15.0),
        ("PAY Sprint 3", 25.0, 24.0),
    ]

    (burnup,) = trends["burnup"]
    assert (burnup["project_key"], burnup["release_name"], burnup["due_date"]) == (
        "PAY",
        "1.0",
        "2026-11-20",
    )
    # Scope grows as items are created (an unestimated item adds 0), done as they resolve.
    assert burnup["scope"] == [
        {"date": "2026-10-01", "points": 8.0},
        {"date": "2026-10-15", "points": 16.0},
        {"date": "2026-10-16", "points": 16.0},
    ]
    assert burnup["done"] == [
        {"date": "2026-10-20", "points": 5.0},
        {"date": "2026-10-25", "points": 8.0},
    ]


def test_program_filter(seeded: sa.Engine) -> None:
    report = build_report(seeded, program="MOBILE")
    assert [p["program_key"] for p in report["programs"]] == ["MOBILE"]
    assert [p["project_key"] for p in report["projects"]] == ["APP"]
    assert report["alerts"] == []  # MOBILE's only alert is resolved
    assert report["trends"]["velocity"] == [] and report["trends"]["burnup"] == []

    with pytest.raises(UnknownProgramError, match=r"'NOPE'.*MOBILE, PAYMENTS"):
        build_report(seeded, program="NOPE")


def test_no_metrics_yet_says_what_to_run(engine: sa.Engine) -> None:
    with pytest.raises(NoMetricsError, match=r"programview sync.*programview transform"):
        build_report(engine)


def test_text_fits_a_terminal_and_shows_what_matters(seeded: sa.Engine) -> None:
    text = render_text(build_report(seeded))
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    assert "metrics as of 2026-11-03" in text
    payments = next(line for line in lines if line.lstrip().startswith("PAYMENTS "))
    assert "58" in payments and "AMBER" in payments
    flat = " ".join(text.split())
    assert "Dependencies 30.0 (weight -, red): dependencies 30/100: 2 open alerts" in flat
    # Explained to the bottom: component, project, metric value, thresholds, score.
    assert "Schedule 70.0 (weight 0.30, amber) = mean of PAY 70.0" in flat
    assert "SPI 0.93 → 70.0 (scored on 0.70→0, 0.85→50, 0.95→75, 1.00→100)" in flat.replace(
        "\u00a0", " "
    )
    assert "Forecast slip: no data (no end date configured for the project)" in flat
    assert "status: green: score ≥ 75.0 · amber: 50.0 to below 75.0 · red: below 50.0" in flat
    # The blocker without an alert, with every rule's reason; the alerted one is not listed.
    assert "OPEN BLOCKERS WITHOUT AN ALERT (1 of 2)" in text
    assert "PAY-30 (PAY) is blocked by acme/web#60 (WEB)" in text
    assert "blocked_item_due_soon: blocked_item_due_soon reason for PAY-30" in flat
    assert "reason for PAY-12" not in flat
    assert "OPEN ALERTS (2)" in text
    critical = lines.index(next(line for line in lines if "dependency_cycle" in line))
    high = lines.index(next(line for line in lines if "blocker_scheduled_later" in line))
    assert critical < high
    assert "acme/web#45" in text and "PAY-12" in text
    assert "stalled" not in text  # resolved alert stays out


def test_json_is_the_report_and_identical_across_databases(seeded: sa.Engine) -> None:
    data = json.loads(write_report(seeded, "json"))
    expected = build_report(seeded)
    data.pop("generated_at"), expected.pop("generated_at")
    assert data == expected
    # Types a script can rely on, whatever the database: ISO dates, booleans, numbers.
    alert = data["alerts"][0]
    assert isinstance(alert["open_days"], float | int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", alert["last_seen_at"])


def test_html_is_self_contained_with_charts(seeded: sa.Engine, tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    page = write_report(seeded, "html", target)
    assert target.read_text(encoding="utf-8") == page

    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    # Nothing loaded from elsewhere: no src/href/url() pointing at a network resource.
    assert not re.search(r"""(src|href)\s*=|url\(|@import|<link""", page, re.I)
    svgs = re.findall(r"<svg\b", page)
    # health for 2 programs + velocity for PAY + burn-up for PAY 1.0
    assert len(svgs) == 4
    assert "Health over time - PAYMENTS" in page and "Burn-up - PAY 1.0" in page
    # Warehouse text is escaped, never interpreted as markup.
    assert "&lt;late&gt;" in page and "<late>" not in page


def test_render_html_without_history_still_renders(seeded: sa.Engine) -> None:
    report = build_report(seeded, program="MOBILE")
    page = render_html(report)
    assert "No closed sprints yet." in page and "No release has items yet." in page


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "programview.toml"
    path.write_text(f'[warehouse]\nurl = "{url}"\n', encoding="utf-8")
    return path


def test_cli_report_formats_and_errors(
    seeded: sa.Engine, warehouse_url: str, tmp_path: Path
) -> None:
    config = str(_config(tmp_path, warehouse_url))
    runner = CliRunner()

    text = runner.invoke(main, ["--config", config, "report"])
    assert text.exit_code == 0, text.output
    assert "PROGRAMS (2)" in text.stdout

    as_json = runner.invoke(
        main, ["--config", config, "report", "--format", "json", "--program", "PAYMENTS"]
    )
    assert as_json.exit_code == 0, as_json.output
    assert [p["program_key"] for p in json.loads(as_json.stdout)["programs"]] == ["PAYMENTS"]

    out = tmp_path / "r.html"
    html = runner.invoke(main, ["--config", config, "report", "--format", "html", "-o", str(out)])
    assert html.exit_code == 0, html.output
    assert html.stdout == "" and out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    unknown = runner.invoke(main, ["--config", config, "report", "--program", "NOPE"])
    assert unknown.exit_code == 2
    assert "no metrics for program 'NOPE'" in unknown.stderr


def test_cli_report_on_empty_warehouse(warehouse_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(_config(tmp_path, warehouse_url)), "report"])
    assert result.exit_code == 1
    assert "run `programview sync` then `programview transform`" in result.stderr


def test_json_explains_health_to_the_bottom_and_blockers_without_alerts(
    seeded: sa.Engine,
) -> None:
    report = build_report(seeded)
    assert report["legend"] == {
        "green_at": 75.0,
        "amber_at": 50.0,
        "text": "green: score ≥ 75.0 · amber: 50.0 to below 75.0 · red: below 50.0",
    }
    pay = next(p for p in report["programs"] if p["program_key"] == "PAYMENTS")
    schedule = next(c for c in pay["breakdown"] if c["component"] == "schedule")
    assert (schedule["score"], schedule["weight"], schedule["status"]) == (70.0, 0.3, "amber")
    (project,) = schedule["projects"]
    assert project["project_key"] == "PAY" and project["score"] == 70.0
    assert project["metrics"] == [
        {
            "metric": "spi",
            "label": "SPI",
            "value": 0.93,
            "score": 70.0,
            "thresholds": [[0.7, 0.0], [0.85, 50.0], [0.95, 75.0], [1.0, 100.0]],
            "reason": None,
        },
        {
            "metric": "forecast_slip_days",
            "label": "Forecast slip",
            "value": None,
            "score": None,
            "thresholds": [[0.0, 100.0], [60.0, 0.0]],
            "reason": "no end date configured for the project",
        },
    ]
    by_link = {(b["blocked_item_key"], b["blocking_item_key"]): b for b in report["blockers"]}
    assert by_link[("PAY-12", "acme/web#45")]["alerted"] is True
    quiet = by_link[("PAY-30", "acme/web#60")]
    assert quiet["alerted"] is False
    assert [c["rule"] for c in quiet["checks"]] == [
        "blocker_scheduled_later",
        "blocked_item_due_soon",
    ]
    # The units a script needs to show the numbers as the report does.
    assert report["fields"]["say_do_ratio"]["unit"] == "fraction"
    assert report["fields"]["scope_change_pct"]["unit"] == "percent"
    assert report["fields"]["cycle_time_p50_days"]["label"] == "Cycle p50"
