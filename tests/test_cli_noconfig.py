"""Commands that need no sources run from the warehouse URL alone (issue 10, item 1).

A BI host or a one-off container has a warehouse URL and no config file; `db upgrade`,
`db current`, `transform`, `report`, `export`, `status` and `db grant-readonly` must work
there, and a read command pointed at a SQLite file that does not exist must say so and
leave nothing behind. Run as real processes in an empty directory, as a new user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from programview.warehouse import db


def run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PROGRAMVIEW_")}
    return subprocess.run(
        [sys.executable, "-m", "programview", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_db_transform_report_export_status_with_only_the_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    env = {"PROGRAMVIEW_WAREHOUSE_URL": url}

    up = run(tmp_path, "db", "upgrade", **env)
    assert up.returncode == 0, up.stderr
    assert "upgraded from an empty database to revision" in up.stdout
    current = run(tmp_path, "db", "current", **env)
    assert current.returncode == 0 and "(head)" in current.stdout, current.stderr

    # --warehouse works the same, without the variable
    transform = run(tmp_path, "--warehouse", url, "transform")
    assert transform.returncode == 0, transform.stderr
    assert transform.stdout.startswith("transform as of ")
    report = run(tmp_path, "report", "--format", "json", **env)  # it read the warehouse:
    assert report.returncode == 1  # an empty one, so it says what to do
    assert report.stderr.startswith("error: the warehouse has no metrics yet: run `programview")
    export = run(tmp_path, "export", "--format", "csv", "-o", str(tmp_path / "out"), **env)
    assert export.returncode == 0, export.stderr
    assert (tmp_path / "out").is_dir()
    status = run(tmp_path, "status", **env)
    assert status.returncode == 0, status.stderr
    assert "no sync has run yet" in status.stdout


def test_report_on_a_missing_file_says_so_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "warehouse.db"
    current = run(tmp_path, "--warehouse", f"sqlite:///{missing}", "db", "current")
    assert current.returncode == 0
    assert "empty (the file does not exist yet); run `programview db upgrade`" in current.stdout
    for args in (["report"], ["status"], ["transform"], ["export", "-o", "x.xlsx"]):
        result = run(tmp_path, "--warehouse", f"sqlite:///{missing}", *args)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.strip() == (
            f"error: the warehouse file {missing} does not exist (check [warehouse] url, "
            "PROGRAMVIEW_WAREHOUSE_URL or --warehouse; `programview db upgrade` creates it)"
        )
    assert not missing.parent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_without_url_or_config_the_message_names_both_ways(tmp_path: Path) -> None:
    result = run(tmp_path, "report")
    assert result.returncode == 2
    assert "config file not found: programview.toml" in result.stderr
    assert "PROGRAMVIEW_WAREHOUSE_URL or --warehouse URL" in result.stderr
    # sync needs its sources: no such shortcut
    sync = run(tmp_path, "sync", PROGRAMVIEW_WAREHOUSE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    assert sync.returncode == 2 and "config file not found" in sync.stderr
    assert not (tmp_path / "x.db").exists()


def test_a_config_file_present_is_still_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    (tmp_path / "programview.toml").write_text('[sync]\nschedule = "never"\n')
    result = run(tmp_path, "db", "upgrade", PROGRAMVIEW_WAREHOUSE_URL=url)
    assert result.returncode == 2 and "sync.schedule" in result.stderr


def test_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = run(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"programview {version('programview')}"


@pytest.mark.postgres
def test_grant_readonly_with_only_the_url(tmp_path: Path, pg_url: str) -> None:
    db.upgrade(pg_url)
    role = f"pv_ro_{uuid.uuid4().hex[:8]}"
    try:
        result = run(tmp_path, "db", "grant-readonly", role, PROGRAMVIEW_WAREHOUSE_URL=pg_url)
        assert result.returncode == 0, result.stderr
        assert f"role {role} created" in result.stdout
    finally:
        engine = db.create_engine(pg_url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        engine.dispose()
