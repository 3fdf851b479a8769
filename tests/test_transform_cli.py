"""``programview transform`` and ``programview costs import`` from the command line."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from programview.cli import main
from programview.warehouse import db


def write_config(tmp_path: Path, url: str) -> str:
    path = tmp_path / "programview.toml"
    path.write_text(
        f"""
[warehouse]
url = "{url}"

[[programs]]
key = "DIGITAL"
name = "Digital"

[[projects]]
key = "PAY"
name = "Payments"
program = "DIGITAL"
budget = 10000.0
start = 2024-01-01
end = 2024-12-31
""",
        encoding="utf-8",
    )
    return str(path)


def invoke(config: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["--config", config, *args], catch_exceptions=False)


def pay_metrics(url: str) -> dict:  # type: ignore[type-arg]
    engine = db.create_engine(url)
    try:
        with engine.connect() as conn:
            tbl = db.table("project_metrics")
            rows = conn.execute(sa.select(tbl).where(tbl.c.project_key == "PAY")).all()
    finally:
        engine.dispose()
    assert len(rows) == 1
    return dict(rows[0]._mapping)


def test_transform_as_of_a_day(tmp_path: Path, warehouse_url: str) -> None:
    config = write_config(tmp_path, warehouse_url)
    result = invoke(config, "transform", "--as-of", "2024-03-10")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "transform as of 2024-03-10 23:59 UTC: 1 projects, 1 programs (0 sprints and 0 "
        "releases recomputed); 0 open alerts"
    )
    m = pay_metrics(warehouse_url)
    assert m["as_of_date"] == date(2024, 3, 10)
    # the budget comes from the config (mirrored by the command): 69 of 365 days elapsed
    assert m["planned_value"] == pytest.approx(10_000 * 69 / 365)


def test_transform_rejects_a_bad_date(tmp_path: Path, warehouse_url: str) -> None:
    result = invoke(write_config(tmp_path, warehouse_url), "transform", "--as-of", "10/03/2024")
    assert result.exit_code == 2
    assert "'10/03/2024' is not a date (2024-03-31)" in result.output


def test_transform_needs_a_migrated_warehouse(tmp_path: Path, sqlite_url: str) -> None:
    config = write_config(tmp_path, sqlite_url)
    missing = invoke(config, "transform")  # no file at all: said so, nothing created
    assert missing.exit_code == 1
    assert (
        "does not exist" in missing.output
        and "`programview db upgrade` creates it" in missing.output
    )
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    assert not path.exists()
    sqlite3.connect(path).close()  # a file, but never migrated
    result = invoke(config, "transform")
    assert result.exit_code == 1
    assert "run `programview db upgrade` first" in result.output


def test_costs_import_then_transform_uses_them(tmp_path: Path, warehouse_url: str) -> None:
    config = write_config(tmp_path, warehouse_url)
    csv = tmp_path / "costs.csv"
    csv.write_text(
        "\ufeffProject,Date,Amount,Note\n"
        "PAY,2024-02-01,1000,invoice 1\n"
        "PAY,2024-02-01,250.5,invoice 2\n"
        "\n"
        "PAY,2024-03-01,500,\n",
        encoding="utf-8",
    )
    result = invoke(config, "costs", "import", str(csv))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "imported 3 rows: 2 project-days for PAY, total 1,750.50"
    # importing the same file again replaces, not doubles
    assert invoke(config, "costs", "import", str(csv)).exit_code == 0
    assert invoke(config, "transform", "--as-of", "2024-03-10").exit_code == 0
    m = pay_metrics(warehouse_url)
    assert (m["actual_cost"], m["actual_cost_source"]) == (pytest.approx(1750.5), "costs")


def test_costs_import_reports_every_bad_line_and_imports_nothing(
    tmp_path: Path, warehouse_url: str
) -> None:
    config = write_config(tmp_path, warehouse_url)
    csv = tmp_path / "costs.csv"
    csv.write_text(
        "project,date,amount\n"
        "PAY,2024-02-01,1000\n"
        "OPS,2024-02-01,10\n"
        "PAY,2024-02-30,5\n"
        "PAY,2024-03-01,abc\n",
        encoding="utf-8",
    )
    result = invoke(config, "costs", "import", str(csv))
    assert result.exit_code == 2
    assert f"{csv}: 3 problems:" in result.output
    assert "line 3: unknown project 'OPS' (configured projects: PAY)" in result.output
    assert "line 4: date '2024-02-30' is not a date like 2024-03-31" in result.output
    assert "line 5: amount 'abc' is not a number like 1250.50" in result.output
    engine = db.create_engine(warehouse_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM project_costs")).scalar() == 0
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "when,amount\n2024-01-01,5\n",
            "line 1: header must name the columns project, date, "
            "amount (missing project, date; got when, amount)",
        ),
        ("", "the file is empty"),
        (None, "file not found"),
    ],
)
def test_costs_import_unusable_file(
    tmp_path: Path, warehouse_url: str, content: str | None, message: str
) -> None:
    config = write_config(tmp_path, warehouse_url)
    csv = tmp_path / "costs.csv"
    if content is not None:
        csv.write_text(content, encoding="utf-8")
    result = invoke(config, "costs", "import", str(csv))
    assert result.exit_code == 2
    assert message in result.output
