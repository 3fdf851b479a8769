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
    assert items > 500, "the demo should sync the simulated Jira projects"
    assert sprints > 0
    assert programs, "health scores are computed for the simulated programs"
    # The terminal report names every program that got a score.
    for key in programs:
        assert key in out
    # The config written for the user references secrets by environment variable only.
    config = (folder / "programview.toml").read_text(encoding="utf-8")
    assert "${PROGRAMVIEW_SIM_JIRA_TOKEN}" in config
    assert "sim-jira-api-token" not in config
