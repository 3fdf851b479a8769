"""The benefits register: realisation %, on track against the straight line, money realised,
ROI against the budget metrics' actual cost, NULLs with reasons, the optional ``benefits``
health component, and the measurements import (library and CLI). Hand-built: program
DIGITAL runs from 2024-01-01, its benefits are due 2024-12-31 (365 days); today is
2024-07-10."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from test_transform_support import Scenario, d

from programview.cli import main
from programview.config import parse_config
from programview.errors import ConfigError
from programview.transform.benefits import (
    BenefitsImportError,
    benefit_figures,
    import_measurements,
    parse_measurements,
)
from programview.warehouse import db

AS_OF = "2024-07-10 12:00"

REGISTER = """
[[programs]]
key = "DIGITAL"
name = "Digital"
start = 2024-01-01

[[programs]]
key = "OPS"
name = "Operations, no start date"

[[projects]]
key = "PAY"
name = "Payments"
program = "DIGITAL"

[[benefits]]
program = "DIGITAL"
key = "conversion"
name = "Checkout conversion"
unit = "%"
baseline = 2.0
target = 3.0
target_date = 2024-12-31
value_per_unit = 100000.0

[[benefits]]
program = "DIGITAL"
key = "cost"
name = "Cost per order"
unit = "EUR"
baseline = 10.0
target = 6.0
target_date = 2024-12-31
value_per_unit = 1000.0

[[benefits]]
program = "DIGITAL"
key = "unmeasured"
name = "Not measured yet"
baseline = 1.0
target = 2.0
target_date = 2024-12-31
value_per_unit = 5.0

[[benefits]]
program = "DIGITAL"
key = "nps"
name = "NPS, no money value"
baseline = 30.0
target = 50.0
target_date = 2024-12-31

[[benefits]]
program = "OPS"
key = "uptime"
name = "Uptime"
baseline = 99.0
target = 99.9
target_date = 2024-12-31
value_per_unit = 10.0
"""

MEASUREMENTS = """benefit,date,value,comment
conversion,2024-03-01,2.3,first read
conversion,2024-06-30,2.4,
conversion,2024-08-01,2.9,after as_of: ignored
cost,2024-07-01,7.5,
nps,2024-07-01,40,
uptime,2024-07-01,99.45,
"""


def config(extra: str = ""):  # type: ignore[no-untyped-def]
    return parse_config(REGISTER + extra, environ={})


def build(engine, tmp_path: Path, extra: str = "") -> Scenario:  # type: ignore[no-untyped-def]
    s = Scenario(engine, config(extra))
    s.source().program("DIGITAL", start_date=d("2024-01-01")).program("OPS")
    s.project("PAY", program="DIGITAL")
    s.item("PAY-1", points=3, status="done", resolved="2024-07-01")
    s.cost("PAY", "2024-06-15", 30_000.0)
    s.flush()
    csv_file = tmp_path / "measurements.csv"
    csv_file.write_text(MEASUREMENTS)
    import_measurements(engine, csv_file, [b.key for b in s.config.benefits])
    return s


def benefits(s: Scenario) -> dict[str, dict]:  # type: ignore[type-arg]
    return {r["benefit_key"]: r for r in s.all("SELECT * FROM v_benefits")}


def test_realisation_on_track_and_money_per_benefit(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = build(engine, tmp_path)
    s.run(AS_OF)
    got = benefits(s)

    conv = got["conversion"]
    # the latest measurement on or before as_of (2.4 on 30 Jun), not the August one
    assert conv["value"] == pytest.approx(2.4)
    assert str(conv["measured_on"])[:10] == "2024-06-30"
    assert conv["realisation_pct"] == pytest.approx(40.0)  # (2.4 - 2) / (3 - 2)
    # the line at the measurement's date: 181 of 365 days
    assert conv["expected_pct"] == pytest.approx(100 * 181 / 365)
    assert not conv["on_track"]
    assert conv["realised_value"] == pytest.approx(0.4 * 100_000)

    cost = got["cost"]  # a benefit that should go down: 10 -> 6, measured 7.5
    assert cost["realisation_pct"] == pytest.approx(62.5)
    assert cost["expected_pct"] == pytest.approx(100 * 182 / 365)
    assert cost["on_track"]
    assert cost["realised_value"] == pytest.approx(2.5 * 1000)  # 2.5 EUR less per order

    unmeasured = got["unmeasured"]
    assert unmeasured["value"] is None and unmeasured["realisation_pct"] is None
    assert unmeasured["on_track"] is None and unmeasured["realised_value"] is None
    assert "no measurement on or before the as_of date" in unmeasured["notes"]

    nps = got["nps"]  # measured, but no money value configured
    assert nps["realisation_pct"] == pytest.approx(50.0)
    assert nps["realised_value"] is None
    assert "no value_per_unit" in nps["notes"]

    uptime = got["uptime"]  # its program has no start: no line to judge it by
    assert uptime["realisation_pct"] == pytest.approx(50.0)
    assert uptime["expected_pct"] is None and uptime["on_track"] is None
    assert "the program has no start date" in uptime["notes"]
    assert uptime["realised_value"] == pytest.approx(0.45 * 10)


def test_program_roi_uses_the_budget_metrics_actual_cost(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = build(engine, tmp_path)
    s.run(AS_OF)
    programs = {r["program_key"]: r for r in s.all("SELECT * FROM v_program_benefits")}
    health = {r["program_key"]: r for r in s.all("SELECT * FROM v_program_health")}

    digital = programs["DIGITAL"]
    assert digital["benefits"] == 4
    assert digital["benefits_measured"] == 3
    # cost and nps (50 % realised, 49.9 % planned on 1 Jul); conversion is behind
    assert digital["benefits_on_track"] == 2
    assert digital["realised_value"] == pytest.approx(40_000 + 2_500)
    # the same actual cost as v_program_health (imported costs of PAY)
    assert digital["actual_cost"] == health["DIGITAL"]["actual_cost"] == pytest.approx(30_000)
    assert digital["roi"] == pytest.approx((42_500 - 30_000) / 30_000)

    ops = programs["OPS"]  # no project, so no actual cost: no ROI, and notes say why
    assert ops["realised_value"] == pytest.approx(4.5)
    assert ops["actual_cost"] is None and ops["roi"] is None
    assert "actual_cost: no project of the program has an actual cost" in ops["notes"]


def test_history_one_row_per_benefit_and_day(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = build(engine, tmp_path)
    s.run("2024-07-10 08:00")
    s.run(AS_OF)  # the same day: replaces
    s.run("2024-08-02 12:00")  # a later day: the August measurement now counts
    rows = s.all(
        "SELECT as_of_date, value FROM v_benefits WHERE benefit_key = 'conversion' "
        "ORDER BY as_of_date"
    )
    assert [(str(r["as_of_date"])[:10], r["value"]) for r in rows] == [
        ("2024-07-10", pytest.approx(2.4)),
        ("2024-08-02", pytest.approx(2.9)),
    ]
    assert len(s.all("SELECT * FROM v_program_benefits WHERE program_key = 'DIGITAL'")) == 2


def test_benefits_component_weighs_nothing_unless_configured(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = build(engine, tmp_path)
    s.run(AS_OF)
    before = s.one("SELECT * FROM v_program_health WHERE program_key = 'DIGITAL'")
    scored = s.one("SELECT * FROM v_program_benefits WHERE program_key = 'DIGITAL'")
    # judged benefits: conversion 181/365*100 - 40 = 9.59 points behind, cost and nps 0
    behind = (100 * 181 / 365 - 40.0) / 3
    assert scored["benefits_behind_pct"] == pytest.approx(behind)
    expected_score = round(100 - 25 * behind / 10, 2)  # between 0 -> 100 and 10 -> 75
    assert scored["benefits_score"] == pytest.approx(expected_score)
    assert scored["benefits_weight"] == 0
    # weight 0: the health score and its explanation are what they were without benefits
    assert "Benefits" not in before["explanation"]
    assert before["explanation"].count("\n") == 4

    weights = (
        "\n[health]\nweights = { schedule = 0.3, delivery = 0.2, quality = 0.2, "
        "budget = 0.15, dependencies = 0.15, benefits = 0.25 }\n"
    )
    s.config = config(weights)
    s.run(AS_OF)
    after = s.one("SELECT * FROM v_program_health WHERE program_key = 'DIGITAL'")
    comps = {
        "schedule": 0.3,
        "delivery": 0.2,
        "quality": 0.2,
        "budget": 0.15,
        "dependencies": 0.15,
    }
    present = {n: w for n, w in comps.items() if before[f"{n}_score"] is not None}
    total = sum(w * before[f"{n}_score"] for n, w in present.items()) + 0.25 * expected_score
    assert after["health_score"] == pytest.approx(
        round(total / (sum(present.values()) + 0.25), 2), abs=0.011
    )
    assert f"Benefits {expected_score:g}/100 (weight 0.25)" in after["explanation"]
    # the per-component columns of v_program_health are the project components only
    assert after["schedule_score"] == before["schedule_score"]


def test_benefit_figures_edge_cases() -> None:
    start, due = d("2024-01-01"), d("2024-12-31")
    # before the program started the line is at 0 %, beyond the target date at 100 %
    early, _ = benefit_figures(2.0, 3.0, due, None, start, (d("2023-12-01"), 2.0))
    assert early["expected_pct"] == 0 and early["on_track"] is True
    late, _ = benefit_figures(2.0, 3.0, due, None, start, (d("2025-02-01"), 2.9))
    assert late["expected_pct"] == 100 and late["on_track"] is False
    # overshooting the target is more than 100 % and on track; moving away loses money
    over, _ = benefit_figures(2.0, 3.0, due, 10.0, start, (d("2024-12-31"), 3.5))
    assert over["realisation_pct"] == pytest.approx(150.0) and over["on_track"]
    worse, _ = benefit_figures(10.0, 6.0, due, 100.0, start, (d("2024-06-01"), 11.0))
    assert worse["realisation_pct"] == pytest.approx(-25.0)
    assert worse["realised_value"] == pytest.approx(-100.0)
    assert worse["on_track"] is False


# --- the register in the config ---------------------------------------------------------------


def test_register_problems_are_reported_with_their_keys() -> None:
    bad = """
[[programs]]
key = "P"
name = "P"
start = 2025-01-06

[[benefits]]
program = "NOPE"
key = "a"
name = "A"
baseline = 1
target = 1
target_date = 2025-12-31

[[benefits]]
program = "P"
key = "b"
name = "B"
baseline = 1
target = 2
target_date = 2024-12-31
"""
    with pytest.raises(ConfigError) as err:
        parse_config(bad, environ={})
    text = str(err.value)
    assert "benefits[0] (line 7): target equals baseline" in text
    with pytest.raises(ConfigError) as err:
        parse_config(bad.replace("target = 1\n", "target = 5\n"), environ={})
    text = str(err.value)
    assert "benefits[0].program (line 8): unknown program 'NOPE'" in text
    assert "benefits[1].target_date (line 21): target_date 2024-12-31 is not after" in text


# --- importing measurements -------------------------------------------------------------------


def test_a_bad_file_names_every_bad_line_and_imports_nothing(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = (
        "date,value,benefit\n"
        "2024-03-01,2.1,conversion\n"
        "2024-03-01,2.2,conversion\n"
        "yesterday,2.5,conversion\n"
        "2024-04-01,lots,cost\n"
        "2024-04-01,1,nope\n"
    )
    with pytest.raises(BenefitsImportError) as err:
        parse_measurements(text, ["conversion", "cost"], path="m.csv")
    assert err.value.problems == [
        "line 3: conversion is measured twice on 2024-03-01 (first on line 2)",
        "line 4: date 'yesterday' is not a date like 2024-03-31",
        "line 5: value 'lots' is not a number like 2.75",
        "line 6: unknown benefit 'nope' (benefits in the config: conversion, cost)",
    ]
    file = tmp_path / "bad.csv"
    file.write_text(text)
    with pytest.raises(BenefitsImportError):
        import_measurements(engine, file, ["conversion", "cost"])
    with engine.connect() as conn:
        assert conn.execute(db.table("benefit_measurements").select()).all() == []
    with pytest.raises(BenefitsImportError, match="header must name the columns"):
        parse_measurements("benefit,when,value\n", ["a"])
    with pytest.raises(BenefitsImportError, match="file not found"):
        import_measurements(engine, tmp_path / "missing.csv", ["a"])


def test_importing_again_replaces_the_days_in_the_file(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    file = tmp_path / "m.csv"
    file.write_text("\ufeffbenefit,date,value\nconversion,2024-03-01,2.1\ncost,2024-03-01,9\n")
    first = import_measurements(engine, file, ["conversion", "cost"])
    assert (first.rows, first.benefits) == (2, ("conversion", "cost"))
    file.write_text("benefit,date,value\nconversion,2024-03-01,2.2\n")
    import_measurements(engine, file, ["conversion", "cost"])
    with engine.connect() as conn:
        rows = conn.execute(db.table("benefit_measurements").select()).all()
    values = {(r.benefit_key, str(r.date)): r.value for r in rows}
    assert values == {("conversion", "2024-03-01"): 2.2, ("cost", "2024-03-01"): 9.0}


def test_cli_import_then_transform(warehouse_url: str, tmp_path: Path) -> None:
    cfg = tmp_path / "programview.toml"
    cfg.write_text(f'[warehouse]\nurl = "{warehouse_url}"\n' + REGISTER)
    good = tmp_path / "m.csv"
    good.write_text(MEASUREMENTS)
    runner = CliRunner()
    result = runner.invoke(main, ["--config", str(cfg), "benefits", "import", str(good)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "imported 6 measurements of conversion, cost, nps, uptime from 2024-03-01 to 2024-08-01"
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("benefit,date,value\nconversion,2024-13-01,1\n")
    result = runner.invoke(main, ["--config", str(cfg), "benefits", "import", str(bad)])
    assert result.exit_code == 2
    assert "line 2: date '2024-13-01' is not a date" in result.stderr
    result = runner.invoke(main, ["--config", str(cfg), "transform", "--as-of", "2024-07-10"])
    assert result.exit_code == 0, result.output
    engine = db.create_engine(warehouse_url)
    try:
        with engine.connect() as conn:
            import sqlalchemy as sa

            n = conn.execute(sa.text("SELECT count(*) FROM v_benefits")).scalar_one()
    finally:
        engine.dispose()
    assert n == 5
