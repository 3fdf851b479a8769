"""The README's first command: ``programview demo`` works offline, end to end.

Runs the demo on a ``small`` organisation (the README runs ``medium``) through the real CLI in
a subprocess: simulator over real HTTP on 127.0.0.1, sync into a fresh SQLite file,
transform, report.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_builds_a_queryable_warehouse_and_report(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "programview", "demo", "--size", "small", "--dir", str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout

    database = folder / "programview-demo.db"
    html = folder / "programview-report.html"
    assert str(database) in out and str(html) in out
    assert html.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")

    with sqlite3.connect(database) as conn:
        items = conn.execute("SELECT count(*) FROM v_work_items").fetchone()[0]
        programs = [r[0] for r in conn.execute("SELECT DISTINCT program_key FROM v_program_health")]
        sprints = conn.execute("SELECT count(*) FROM v_sprints").fetchone()[0]
        kinds = {r[0] for r in conn.execute("SELECT DISTINCT source_kind FROM v_work_items")}
        github_blocked_by_jira = conn.execute(
            "SELECT count(*) FROM v_dependencies d JOIN v_work_items a "
            "ON a.item_key = d.blocked_item_key JOIN v_work_items b "
            "ON b.item_key = d.blocking_item_key "
            "WHERE a.source_kind = 'github' AND b.source_kind = 'jira' AND d.resolved"
        ).fetchone()[0]
    assert items > 500, "the demo should sync the simulated Jira projects"
    assert sprints > 0
    assert {"jira", "github"} <= kinds
    assert github_blocked_by_jira > 0, "a GitHub issue blocked by a Jira issue, across tools"
    assert programs, "health scores are computed for the simulated programs"
    # The terminal report names every program that got a score.
    for key in programs:
        assert key in out
    # The config written for the user references secrets by environment variable only.
    config = (folder / "programview.toml").read_text(encoding="utf-8")
    assert "${PROGRAMVIEW_SIM_JIRA_TOKEN}" in config
    assert "sim-jira-api-token" not in config
    # GitLab is synced too, and one of its issues is blocked by a Jira or GitHub issue.
    with sqlite3.connect(database) as conn:
        gitlab_items = conn.execute(
            "SELECT count(*) FROM v_work_items WHERE source_kind = 'gitlab'"
        ).fetchone()[0]
        gitlab_blocked_across_tools = conn.execute(
            "SELECT count(*) FROM v_dependencies d JOIN v_work_items a "
            "ON a.item_key = d.blocked_item_key JOIN v_work_items b "
            "ON b.item_key = d.blocking_item_key "
            "WHERE a.source_kind = 'gitlab' AND b.source_kind IN ('jira', 'github') "
            "AND d.cross_project"
        ).fetchone()[0]
    assert gitlab_items > 0, "the demo should sync the simulated GitLab projects"
    assert gitlab_blocked_across_tools > 0, "a GitLab issue blocked by a Jira or GitHub issue"


def _views(database: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every v_* view, sorted. Left out: the simulator's URLs (a free port each
    run) and v_sync_runs.requests (a request shared by a source's streams, like its status
    catalogue, is counted by whichever stream's job gets there first)."""
    out: dict[str, list[tuple[object, ...]]] = {}
    with sqlite3.connect(database) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'view' AND name LIKE 'v\\_%' "
                "ESCAPE '\\' ORDER BY name"
            )
        ]
        for name in names:
            cursor = conn.execute(f"SELECT * FROM {name}")
            keep = [i for i, d in enumerate(cursor.description) if d[0] not in ("url", "requests")]
            out[name] = sorted((tuple(row[i] for i in keep) for row in cursor), key=repr)
    return out


def test_same_seed_and_utc_date_give_the_same_warehouse_whatever_the_time_of_day(
    tmp_path: Path,
) -> None:
    """Two demos of one seed on one UTC date, at 01:31 and at 19:36: every view is identical
    (figures, health, alerts, even the sync run records, which carry the simulated time)."""
    from datetime import UTC, datetime

    from programview.demo import run_demo

    runs = [
        run_demo(
            tmp_path / f"at-{hour}",
            size="small",
            seed=3,
            weeks=1,
            echo=lambda _line: None,
            now=datetime(2026, 12, 1, hour, minute, tzinfo=UTC),
        )
        for hour, minute in ((1, 31), (19, 36))
    ]
    first, second = (_views(r.database) for r in runs)
    assert first["v_work_items"] and first["v_program_health"]
    assert sorted(first) == sorted(second)
    different = [name for name in first if first[name] != second[name]]
    assert not different, f"views that differ between the two runs: {different}"
    assert runs[0].report_text.split("\n", 2)[2] == runs[1].report_text.split("\n", 2)[2]
    # The figures are as of the run's date: its last sync is at midnight UTC of that day.
    assert {r[2] for r in first["v_program_health"]} == {"2026-11-24", "2026-12-01"}
