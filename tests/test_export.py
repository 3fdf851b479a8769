"""``programview export``: the v_* views as xlsx (opened with openpyxl), CSV and Parquet, typed
and equal to the warehouse, on SQLite and PostgreSQL; ``--view`` and ``--program`` filters."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from test_report import seed

from programview.cli import main


@pytest.fixture
def config(engine: sa.Engine, warehouse_url: str, tmp_path: Path) -> str:
    seed(engine)
    path = tmp_path / "programview.toml"
    path.write_text(f'[warehouse]\nurl = "{warehouse_url}"\n', encoding="utf-8")
    return str(path)


def cli(config: str, *args: str) -> Any:
    return CliRunner().invoke(main, ["--config", config, "export", *args])


def view_rows(engine: sa.Engine, view: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {view}"))]


def sheet_rows(sheet: Any) -> list[dict[str, Any]]:
    rows = list(sheet.iter_rows())
    head = [c.value for c in rows[0]]
    return [dict(zip(head, row, strict=True)) for row in rows[1:]]


def test_xlsx_has_a_sheet_per_view_with_typed_values(
    config: str, engine: sa.Engine, tmp_path: Path
) -> None:
    target = tmp_path / "out" / "pm.xlsx"
    result = cli(config, "--format", "xlsx", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert f"as xlsx: {target}" in result.output

    book = openpyxl.load_workbook(target)
    assert book.sheetnames[:4] == [
        "v_program_health",
        "v_project_metrics",
        "v_health_inputs",
        "v_dependency_alerts",
    ]
    assert {"v_work_items", "v_releases", "v_sprints", "v_sync_runs"} <= set(book.sheetnames)

    metrics = sheet_rows(book["v_project_metrics"])
    assert len(metrics) == len(view_rows(engine, "v_project_metrics")) == 4  # two days of PAY
    pay = next(
        r for r in sheet_rows(book["v_project_metrics"]) if r["velocity_points"].value == 21.0
    )
    # Numbers stay the warehouse's exact values; formats make them read as the report does.
    assert pay["say_do_ratio"].value == 0.875 and pay["say_do_ratio"].number_format == "0%"
    assert pay["cpi"].value == 0.91 and pay["cpi"].number_format == "0.00"
    assert pay["cycle_time_p50_days"].value == 3.25
    assert pay["open_blockers"].value == 2
    # Dates are dates, timestamps are timestamps: real Excel date cells.
    assert pay["as_of_date"].value == datetime(2026, 11, 3)
    assert pay["as_of_date"].number_format == "yyyy-mm-dd"
    assert pay["as_of"].value == datetime(2026, 11, 3, 6)
    assert pay["as_of"].is_date
    assert pay["project_name"].value == "Payments API"

    alerts = {r["alert_id"].value: r for r in sheet_rows(book["v_dependency_alerts"])}
    assert alerts[1]["slip_days"].value == 10
    assert alerts[1]["first_seen_at"].value == datetime(2026, 11, 1, 6)
    assert alerts[3]["status"].value == "resolved"
    checks = sheet_rows(book["v_blocker_checks"])
    assert {c["holds"].value for c in checks} == {True, False}  # booleans, not 0/1

    # Every cell of every sheet equals its view (same rows, same values).
    for view in ("v_program_health", "v_project_metrics", "v_releases"):
        want = view_rows(engine, view)
        got = sheet_rows(book[view])
        assert len(got) == len(want)
        for column in want[0]:
            values = sorted(
                (str(r[column])[:10] if column.endswith("_date") else r[column])
                for r in want
                if r[column] is not None and not column.endswith(("_at", "as_of"))
            )
            shown = sorted(
                (c.value.date().isoformat() if isinstance(c.value, datetime) else c.value)
                for r in got
                if (c := r[column]).value is not None and not column.endswith(("_at", "as_of"))
            )
            if values and isinstance(values[0], bool | int | float):
                assert [float(v) for v in shown] == pytest.approx([float(v) for v in values])
            else:
                assert [str(v) for v in shown] == [str(v) for v in values], (view, column)


def test_program_filter_and_chosen_views(config: str, tmp_path: Path) -> None:
    target = tmp_path / "mobile.xlsx"
    result = cli(
        config,
        "--output",
        str(target),
        "--program",
        "MOBILE",
        "--view",
        "v_project_metrics",
        "--view",
        "v_dependency_alerts",
    )
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(target)
    assert book.sheetnames == ["v_project_metrics", "v_dependency_alerts"]
    assert [r["project_key"].value for r in sheet_rows(book["v_project_metrics"])] == ["APP"]
    assert [r["alert_id"].value for r in sheet_rows(book["v_dependency_alerts"])] == [3]


def test_csv_and_parquet_one_file_per_view(config: str, engine: sa.Engine, tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    assert cli(config, "--format", "csv", "--output", str(folder)).exit_code == 0
    frame = pd.read_csv(folder / "v_project_metrics.csv")
    assert sorted(frame["velocity_points"].dropna()) == [8.0, 10.0, 13.0, 21.0]
    assert set(frame["as_of_date"]) == {"2026-11-02", "2026-11-03"}
    assert set(pd.read_csv(folder / "v_dependency_alerts.csv")["first_seen_at"]) == {
        "2026-10-01 06:00:00",
        "2026-11-01 06:00:00",
        "2026-11-02 06:00:00",
    }

    single = tmp_path / "alerts.parquet"
    result = cli(config, "--format", "parquet", "--view", "v_dependency_alerts", "-o", str(single))
    assert result.exit_code == 0, result.output
    alerts = pd.read_parquet(single)
    assert len(alerts) == len(view_rows(engine, "v_dependency_alerts")) == 3
    assert str(alerts["first_seen_at"].dtype).startswith("datetime64")
    releases = pd.read_parquet(cli_parquet(config, tmp_path, "v_releases"))
    assert str(releases["due_date"].iloc[0]) == "2026-11-20"  # a calendar date (date32)
    assert alerts.set_index("alert_id").loc[1, "slip_days"] == 10


def cli_parquet(config: str, tmp_path: Path, view: str) -> Path:
    path = tmp_path / f"{view}.parquet"
    assert cli(config, "--format", "parquet", "--view", view, "-o", str(path)).exit_code == 0
    return path


def test_unknown_view_or_program_is_a_usage_error(config: str, tmp_path: Path) -> None:
    result = cli(config, "--view", "v_nope", "-o", str(tmp_path / "x.xlsx"))
    assert result.exit_code == 2
    assert "no view 'v_nope'" in result.stderr and "v_project_metrics" in result.stderr
    result = cli(config, "--program", "NOPE", "-o", str(tmp_path / "x.xlsx"))
    assert result.exit_code == 2
    assert "no program 'NOPE'" in result.stderr and "MOBILE, PAYMENTS" in result.stderr
