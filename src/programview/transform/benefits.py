"""The benefits register: what each program promised to improve, how far it got, what that
is worth, and the program's return on what it cost (docs/metrics.md, "Benefits").

The register is the config's ``[[benefits]]`` (program, key, name, unit, baseline, target,
target_date, value_per_unit); measurements over time come from ``programview benefits import
FILE.csv`` (``benefit,date,value``). Per benefit and ``as_of_date``:

* **value**: the latest measurement on or before the as_of date (``measured_on``);
* **realisation_pct** = 100 × (value − baseline) / (target − baseline): 0 at the baseline,
  100 at the target, above 100 beyond it, negative when it moved the wrong way;
* **expected_pct**: the straight line from the program's start (0 %) to the target date
  (100 %), read at the measurement's date (a benefit measured monthly is judged on the day
  it was measured), clamped to 0–100;
* **on_track** = realisation_pct ≥ expected_pct;
* **realised_value** = improvement towards the target × value_per_unit, i.e.
  (value − baseline) × sign(target − baseline) × value_per_unit (negative when it got worse).

Per program and day: **realised_value** (sum over its monetised benefits), **actual_cost**
(the sum of its projects' actual costs, exactly as ``v_program_health.actual_cost``),
**roi** = (realised_value − actual_cost) / actual_cost, and the optional ``benefits`` health
component from ``benefits_behind_pct`` (mean percentage points behind the line). Anything
whose inputs are missing is NULL, and ``notes`` says why.

History like ``project_metrics``: one row per benefit (program) and as_of_date, a rerun on
the same day replacing the day's rows.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from programview import clock
from programview.errors import ProgramviewError
from programview.transform._sql import Ctx, fetch
from programview.transform.health import Component, score_component
from programview.transform.settings import PROGRAM_COMPONENTS
from programview.warehouse import db

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from programview.transform.projects import ProjectResult

REQUIRED = ("benefit", "date", "value")


# --- importing measurements -----------------------------------------------------------------


class BenefitsImportError(ProgramviewError):
    """The measurements file is unusable; ``problems`` holds one message per bad line."""

    def __init__(self, problems: list[str], path: str | None = None) -> None:
        self.problems = problems
        where = f"{path}: " if path else ""
        if len(problems) == 1:
            text = f"{where}{problems[0]}"
        else:
            text = f"{where}{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(text)


@dataclass(frozen=True, slots=True)
class MeasurementsImported:
    rows: int
    benefits: tuple[str, ...]
    first: date | None
    last: date | None


def parse_measurements(
    text: str, benefits: Collection[str], *, path: str | None = None
) -> dict[tuple[str, date], float]:
    """Validate the CSV text (header ``benefit,date,value``, any order, extra columns
    ignored); return the value per (benefit, day), or raise listing every bad line. A benefit
    measured twice on one day is an error: which value would be the truth?"""
    reader = csv.reader(io.StringIO(text))
    problems: list[str] = []
    header: list[str] | None = None
    values: dict[tuple[str, date], float] = {}
    first_line: dict[tuple[str, date], int] = {}
    known = set(benefits)
    idx: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in row]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise BenefitsImportError(
                    [
                        f"line {line}: header must name the columns benefit, date, value "
                        f"(missing {', '.join(missing)}; got {', '.join(header) or 'nothing'})"
                    ],
                    path,
                )
            idx = {c: header.index(c) for c in REQUIRED}
            continue
        cells = {c: (row[i].strip() if i < len(row) else "") for c, i in idx.items()}
        errors: list[str] = []
        key = cells["benefit"]
        if not key:
            errors.append("benefit is empty")
        elif key not in known:
            shown = ", ".join(sorted(known)) or "none"
            errors.append(f"unknown benefit {key!r} (benefits in the config: {shown})")
        day: date | None = None
        try:
            day = date.fromisoformat(cells["date"])
        except ValueError:
            errors.append(f"date {cells['date']!r} is not a date like 2024-03-31")
        value: float | None = None
        try:
            value = float(cells["value"])
            if not math.isfinite(value):
                raise ValueError
        except ValueError:
            errors.append(f"value {cells['value']!r} is not a number like 2.75")
            value = None
        if not errors and day is not None and value is not None:
            if (key, day) in values:
                errors.append(
                    f"{key} is measured twice on {day} (first on line {first_line[(key, day)]})"
                )
            else:
                values[(key, day)] = value
                first_line[(key, day)] = line
        if errors:
            problems.append(f"line {line}: {'; '.join(errors)}")
    if header is None:
        raise BenefitsImportError(
            ["the file is empty (expected a header benefit,date,value)"], path
        )
    if problems:
        raise BenefitsImportError(problems, path)
    return values


def import_measurements(
    engine: Engine, file: str | Path, benefits: Collection[str]
) -> MeasurementsImported:
    """Check every row of ``file`` against the register's benefit keys, then upsert the
    measurements in one transaction (importing a file again replaces its days)."""
    path = str(file)
    try:
        text = Path(file).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BenefitsImportError(["file not found"], path) from None
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise BenefitsImportError([problem], path) from None
    except OSError as exc:
        raise BenefitsImportError([f"cannot read the file: {exc.strerror}"], path) from None
    values = parse_measurements(text, benefits, path=path)
    now = clock.utc_now()
    rows = [
        {"benefit_key": k, "date": d, "value": v, "imported_at": now}
        for (k, d), v in sorted(values.items())
    ]
    with db.transaction(engine) as conn:
        db.upsert(conn, "benefit_measurements", rows)
    days = [d for _, d in values]
    return MeasurementsImported(
        rows=len(rows),
        benefits=tuple(sorted({k for k, _ in values})),
        first=min(days, default=None),
        last=max(days, default=None),
    )


# --- the figures ----------------------------------------------------------------------------


def _latest(conn: Connection, day: date) -> dict[str, tuple[date, float]]:
    """Per benefit, its latest measurement on or before ``day``."""
    rows = fetch(
        conn,
        """
SELECT m.benefit_key, m.date, m.value FROM benefit_measurements m
WHERE m.date = (SELECT MAX(x.date) FROM benefit_measurements x
                WHERE x.benefit_key = m.benefit_key AND x.date <= :d)
""",
        {"d": day},
        {"date": sa.Date()},
    )
    return {r[0]: (r[1], float(r[2])) for r in rows}


def benefit_figures(
    baseline: float,
    target: float,
    target_date: date,
    value_per_unit: float | None,
    program_start: date | None,
    measured: tuple[date, float] | None,
) -> tuple[dict[str, Any], list[str]]:
    """One benefit's figures from its register entry and latest measurement, and why any is
    NULL. Pure, so every rule is tested without a database."""
    out: dict[str, Any] = dict.fromkeys(
        ("value", "measured_on", "realisation_pct", "expected_pct", "on_track", "realised_value")
    )
    why: list[str] = []
    if measured is None:
        why.append("value: no measurement on or before the as_of date")
        return out, why
    day, value = measured
    out["value"], out["measured_on"] = value, day
    out["realisation_pct"] = 100.0 * (value - baseline) / (target - baseline)
    if program_start is None:
        why.append("expected_pct: the program has no start date (the line starts there)")
    else:
        span = (target_date - program_start).days
        share = (day - program_start).days / span if span > 0 else 1.0
        out["expected_pct"] = 100.0 * min(1.0, max(0.0, share))
        out["on_track"] = out["realisation_pct"] >= out["expected_pct"]
    if value_per_unit is None:
        why.append("realised_value: no value_per_unit configured for the benefit")
    else:
        direction = 1.0 if target > baseline else -1.0
        out["realised_value"] = (value - baseline) * direction * value_per_unit
    return out, why


def refresh_benefits(ctx: Ctx, projects: list[ProjectResult]) -> dict[str, dict[str, Component]]:
    """Write the day's ``benefit_metrics`` and ``program_benefits`` rows; return, per
    program, its ``benefits`` health component (scored even when it weighs 0)."""
    cfg = ctx.config
    starts = {p.key: p.start for p in cfg.programs}
    latest = _latest(ctx.conn, ctx.as_of_date) if cfg.benefits else {}
    metric_rows: list[dict[str, Any]] = []
    by_program: dict[str, list[dict[str, Any]]] = {}
    for b in cfg.benefits:
        figures, why = benefit_figures(
            b.baseline,
            b.target,
            b.target_date,
            b.value_per_unit,
            starts.get(b.program),
            latest.get(b.key),
        )
        row = {
            "benefit_key": b.key,
            "as_of_date": ctx.as_of_date,
            "as_of": ctx.as_of,
            "program_key": b.program,
            "benefit_name": b.name,
            "unit": b.unit or None,
            "baseline": b.baseline,
            "target": b.target,
            "target_date": b.target_date,
            "value_per_unit": b.value_per_unit,
            **figures,
            "notes": "; ".join(why) or None,
        }
        metric_rows.append(row)
        by_program.setdefault(b.program, []).append(row)

    costs: dict[str, list[float]] = {}
    for p in projects:
        if p.info.program_key and p.values.get("actual_cost") is not None:
            costs.setdefault(p.info.program_key, []).append(p.values["actual_cost"])
    weight = cfg.health.weights.get("benefits", 0.0)
    components: dict[str, dict[str, Component]] = {}
    program_rows: list[dict[str, Any]] = []
    for program in sorted({p.key for p in cfg.programs} | set(by_program)):
        rows = by_program.get(program, [])
        component = _component(ctx, rows)
        components[program] = {"benefits": component}
        if not rows:
            continue
        program_rows.append(_program_row(ctx, program, rows, costs.get(program), component))
    _replace_day(ctx.conn, "benefit_metrics", ctx.as_of_date, metric_rows)
    _replace_day(ctx.conn, "program_benefits", ctx.as_of_date, program_rows)
    return components if weight > 0 else {}


def _behind(rows: list[dict[str, Any]]) -> float | None:
    gaps = [
        max(0.0, r["expected_pct"] - r["realisation_pct"])
        for r in rows
        if r["on_track"] is not None
    ]
    return sum(gaps) / len(gaps) if gaps else None


def _component(ctx: Ctx, rows: list[dict[str, Any]]) -> Component:
    behind = _behind(rows)
    if not rows:
        reason = "no benefits registered for the program"
    elif behind is None:
        reason = "no benefit has a measurement and a start date to judge it by"
    else:
        reason = ""
    return score_component(
        "benefits",
        PROGRAM_COMPONENTS["benefits"],
        {"benefits_behind_pct": behind},
        {"benefits_behind_pct": reason},
        ctx.config.health,
    )


def _program_row(
    ctx: Ctx,
    program: str,
    rows: list[dict[str, Any]],
    costs: list[float] | None,
    component: Component,
) -> dict[str, Any]:
    why: list[str] = []
    monetised = [r["realised_value"] for r in rows if r["realised_value"] is not None]
    realised = sum(monetised) if monetised else None
    if realised is None:
        why.append("realised_value: no benefit of the program has a measured money value")
    actual = sum(costs) if costs else None
    if actual is None:
        why.append(
            "actual_cost: no project of the program has an actual cost (imported costs, or "
            "worklogs with an hourly_rate)"
        )
    roi = None
    if realised is not None and actual is not None:
        if actual == 0:
            why.append("roi: the actual cost is 0")
        else:
            roi = (realised - actual) / actual
    elif realised is None or actual is None:
        why.append("roi: needs realised_value and actual_cost")
    return {
        "program_key": program,
        "as_of_date": ctx.as_of_date,
        "as_of": ctx.as_of,
        "benefits": len(rows),
        "benefits_measured": sum(1 for r in rows if r["value"] is not None),
        "benefits_on_track": sum(1 for r in rows if r["on_track"]),
        "realised_value": realised,
        "actual_cost": actual,
        "roi": roi,
        "benefits_behind_pct": _behind(rows),
        "benefits_score": component.score,
        "benefits_weight": component.weight,
        "benefits_explanation": component.sentence,
        "notes": "; ".join(why) or None,
    }


def _replace_day(conn: Connection, name: str, day: date, rows: list[dict[str, Any]]) -> None:
    tbl = db.table(name)
    conn.execute(tbl.delete().where(tbl.c.as_of_date == day))
    if rows:
        conn.execute(tbl.insert(), rows)
