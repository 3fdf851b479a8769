"""Every figure the report shows equals its ``v_*`` column, in text, JSON and HTML.

A generated organisation's Jira is synced over real HTTP into a warehouse (SQLite and
PostgreSQL) and transformed twice, a week apart. Then each number of each format is read
back *as a person reads it* ("88%", "53.0%", "3.2 d", "1,200") and compared with the view
column it claims to show, at the precision shown. The reading side knows only the views'
naming convention (``*_ratio`` / ``*_rate`` are fractions shown as percentages, ``*_pct``
are percentages already; docs/warehouse.md), not the formatting code, so a percentage
formatted twice (53.0 shown as 5301%) fails here.

The people and benefits sections are checked the same way: the scenario's config has a
benefits register and shared people (the generator's), and the measurements are imported
before each transform, as a PMO would.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime
from html.parser import HTMLParser
from typing import Any

import pytest
import sqlalchemy as sa

from programview import clock
from programview.config import parse_config
from programview.formatting import (
    FIELDS,
    FLOW_COLUMNS,
    HEALTH_COLUMNS,
    METRIC_FIELDS,
    PLAN_COLUMNS,
)
from programview.report import build_report, render_html, render_json, render_text
from programview.report_program import BENEFIT_COLUMNS, PEOPLE_COLUMNS
from programview.simulator.generator import generate
from programview.simulator.server import serve
from programview.sync.engine import sync
from programview.transform import run_transform
from programview.transform.benefits import import_measurements

pytestmark = pytest.mark.slow

NBSP = "\u00a0"


@pytest.fixture
def synced(
    warehouse_url: str,
    engine: sa.Engine,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Any,
) -> sa.Engine:
    """Seed 12 (blockers planned to finish late: alerts with slip days), two weekly runs,
    the benefits' measurements imported before each transform."""
    caplog.set_level(logging.ERROR, logger="programview.connectors.jira")
    org = generate(12, "small")
    measurements = tmp_path / "measurements.csv"
    with serve(org, port=0) as sim:
        text = org.config_toml(sim.base_url, warehouse_url, kinds=["jira"])
        config = parse_config(text, environ=org.tokens.env())
        for week in range(2):
            if week:
                org.advance(7)
            with clock.frozen(org.now):
                assert sync(config).status == "ok"
                measurements.write_text(org.measurements_csv(), encoding="utf-8")
                import_measurements(engine, measurements, [b.key for b in config.benefits])
                run_transform(engine, config, as_of=org.now)
    return engine


# --- the warehouse side ------------------------------------------------------------------------


class Views:
    """The latest day's rows of the views the report shows, by key."""

    def __init__(self, engine: sa.Engine) -> None:
        def rows(sql: str) -> list[dict[str, Any]]:
            with engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(sa.text(sql))]

        def latest(view: str) -> str:
            return f"SELECT * FROM {view} WHERE as_of_date = (SELECT MAX(as_of_date) FROM {view})"

        self.programs = {r["program_key"]: r for r in rows(latest("v_program_health"))}
        self.forecasts = {r["release_id"]: r for r in rows(latest("v_release_forecast"))}
        self.flow = {
            (r["project_key"], str(r["day"])[:10]): r for r in rows("SELECT * FROM v_flow_daily")
        }
        self.projects = {r["project_key"]: r for r in rows(latest("v_project_metrics"))}
        self.inputs = {(r["project_key"], r["metric"]): r for r in rows(latest("v_health_inputs"))}
        self.weights: dict[tuple[str, str], set[float]] = defaultdict(set)
        for r in self.inputs.values():
            self.weights[(r["program_key"], r["component"])].add(r["component_weight"])
        self.alerts = {
            str(r["alert_id"]): r
            for r in rows("SELECT * FROM v_dependency_alerts WHERE status = 'open'")
        }
        self.plans = {r["project_key"]: r for r in rows("SELECT * FROM v_projects")}
        self.checks = rows("SELECT * FROM v_blocker_checks")
        self.load = {
            (r["person_id"], r["project_key"], r["program_key"]): r
            for r in rows(
                "SELECT * FROM v_resource_load WHERE week = (SELECT MAX(week) FROM v_resource_load)"
            )
        }
        self.benefits = {r["benefit_key"]: r for r in rows(latest("v_benefits"))}
        self.program_benefits = {r["program_key"]: r for r in rows(latest("v_program_benefits"))}


#: Columns documented as fractions without the ``_ratio`` / ``_rate`` suffix (docs/metrics.md:
#: ``roi`` = (realised value - actual cost) / actual cost; "Delivery forecasts": the
#: probabilities are shares of trials).
FRACTIONS = frozenset({"roi", "probability_on_time", "forecast_on_time_probability"})


def is_fraction(unit_of: str) -> bool:
    return unit_of.endswith(("_ratio", "_rate")) or unit_of in FRACTIONS


def same(shown: str, value: Any, unit_of: str, *, missing: str) -> str | None:
    """None when ``shown`` reads as ``value``, else what is wrong. ``unit_of`` is the view
    column (or health metric) whose naming says how the value is shown."""
    shown = shown.replace(NBSP, " ").strip()
    if value is None:
        return None if shown == missing else f"{shown!r} shown for NULL"
    if isinstance(value, date | datetime) or unit_of.endswith("_date"):
        expected = value.isoformat()[:10] if isinstance(value, date) else str(value)[:10]
        return None if shown == expected else f"{shown!r} != {expected!r}"
    m = re.fullmatch(r"(-?[\d,]+(?:\.(\d+))?)(%| d)?", shown)
    if not m:
        return f"{shown!r} is not a number"
    number = float(m.group(1).replace(",", ""))
    places = len(m.group(2) or "")
    expected = float(value) * (100 if is_fraction(unit_of) else 1)
    if m.group(3) == "%" and not (is_fraction(unit_of) or unit_of.endswith("_pct")):
        return f"{shown!r}: a percent sign on {unit_of}"
    if abs(number - expected) > 0.5 * 10**-places + 1e-9:
        return f"{shown!r} != {value!r}"
    return None


# --- HTML ---------------------------------------------------------------------------------------


class Cells(HTMLParser):
    """Every element with a data-field attribute, with its text."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[dict[str, str], str]] = []
        self._open: list[tuple[dict[str, str], list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        data = {k.removeprefix("data-"): v or "" for k, v in attrs if k.startswith("data-")}
        if "field" in data:
            self._open.append((data, []))

    def handle_data(self, data: str) -> None:
        for _attrs, parts in self._open:
            parts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "span") and self._open:
            attrs, parts = self._open.pop()
            self.cells.append((attrs, "".join(parts)))


def html_problems(page: str, views: Views) -> tuple[list[str], set[str]]:
    parser = Cells()
    parser.feed(page)
    problems, seen = [], set()
    for attrs, text in parser.cells:
        view, column, key = attrs["view"], attrs["field"], attrs["key"]
        seen.add(column)
        where = f"HTML {view}.{column} [{key}{' ' + attrs.get('metric', '')}]"
        if view == "v_program_health":
            value, unit_of = views.programs[key][column], column
        elif view == "v_project_metrics":
            value, unit_of = views.projects[key][column], column
        elif view == "v_projects":
            value, unit_of = views.plans[key][column], column
        elif view == "v_dependency_alerts":
            value, unit_of = views.alerts[key][column], column
        elif view == "v_health_inputs" and column == "component_weight":
            (value,) = views.weights[(key, attrs["component"])]
            unit_of = column
        elif view == "v_health_inputs":
            value = views.inputs[(key, attrs["metric"])][column]
            unit_of = attrs["metric"] if column == "value" else column
        elif view == "v_resource_load":
            value = views.load[(key, attrs["project"], attrs["program"])][column]
            unit_of = column
        elif view == "v_benefits":
            value, unit_of = views.benefits[key][column], column
        elif view == "v_program_benefits":
            value, unit_of = views.program_benefits[key][column], column
        elif view == "v_release_forecast":
            value, unit_of = views.forecasts[key][column], column
        elif view == "v_flow_daily":
            value, unit_of = views.flow[(key, attrs["day"])][column], column
        else:
            problems.append(f"{where}: unknown view")
            continue
        wrong = same(text, value, unit_of, missing="–")
        if wrong:
            problems.append(f"{where}: {wrong}")
    return problems, seen


# --- text ---------------------------------------------------------------------------------------

LABELS = {FIELDS[c].label: c for c in (*FLOW_COLUMNS, *PLAN_COLUMNS, *HEALTH_COLUMNS)}
METRIC_LABELS = {f.label: m for m, f in METRIC_FIELDS.items()}


def table_rows(lines: list[str], start: int) -> Iterator[dict[str, str]]:
    """Rows of the text table whose header is ``lines[start]``, as {label: cell}; group
    lines ("  PROGRAM:") are skipped; ends at a blank or non-table line."""
    head = re.split(r"\s{2,}", lines[start].strip())
    for line in lines[start + 1 :]:
        if not line.strip() or line.startswith("  (") or line.rstrip().endswith(":"):
            if line.rstrip().endswith(":") and not line.startswith("    "):
                continue
            return
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) != len(head) or cells[0] == head[0]:  # the end, or the next table
            return
        yield dict(zip(head, cells, strict=True))


def text_problems(text: str, views: Views) -> tuple[list[str], set[str]]:
    lines = text.splitlines()
    problems: list[str] = []
    seen: set[str] = set()

    def check(where: str, shown: str, value: Any, unit_of: str) -> None:
        wrong = same(shown, value, unit_of, missing="-")
        if wrong:
            problems.append(f"text {where}: {wrong}")

    headers = [i for i, line in enumerate(lines) if re.match(r"  (Program|Project)\s{2,}", line)]
    assert len(headers) == 4, "programs, flow, plan and project health tables"
    for i in headers:
        for row in table_rows(lines, i):
            key_label = "Program" if "Program" in row else "Project"
            key = row.pop(key_label)
            source = views.programs if key_label == "Program" else views.projects
            row.pop("Status", None)
            for label, shown in row.items():
                column = LABELS[label]
                seen.add(column)
                if column == "planned_end_date":
                    check(f"{key} {label}", shown, views.plans[key]["end_date"], "end_date")
                else:
                    check(f"{key} {label}", shown, source[key][column], column)

    # HEALTH EXPLAINED: program -> component -> project -> metric.
    start = lines.index("HEALTH EXPLAINED")
    program = component = project = None
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        if m := re.match(r"^  (\S+) (\S+) [A-Z ]+: weighted mean", line):
            program = m.group(1)
            check(f"{program} health", m.group(2), views.programs[program]["health_score"], "x")
        elif m := re.match(r"^    ([A-Z][a-z]+) (\S+) \(weight (\S+), [a-z ]+\)", line):
            component = m.group(1).lower()
            score = views.programs[program][f"{component}_score"]
            check(f"{program} {component}", m.group(2), score, "x")
            if m.group(3) != "-":
                (weight,) = views.weights[(program, component)]
                check(f"{program} {component} weight", m.group(3), weight, "x")
        elif m := re.match(r"^      (\S+) (\S+):$", line):
            project = m.group(1)
            score = views.projects[project][f"{component}_score"]
            check(f"{project} {component}", m.group(2), score, "x")
        elif m := re.match(r"^        (.+?) (-?[\d,.]+(?:%| d)?) → (\S+) \(scored on", line):
            metric = METRIC_LABELS[m.group(1)]
            row = views.inputs[(project, metric)]
            check(f"{project} {metric}", m.group(2), row["value"], metric)
            check(f"{project} {metric} score", m.group(3), row["score"], "score")
            seen.add(metric)
        elif m := re.match(r"^        (.+?): no data", line):
            metric = METRIC_LABELS[m.group(1)]
            check(f"{project} {metric}", "-", views.inputs[(project, metric)]["value"], metric)
    return problems, seen


def people_and_benefits_text_problems(
    text: str, data: dict[str, Any], views: Views
) -> tuple[list[str], set[str]]:
    """The people and benefits sections of the text report. Their rows are in the JSON
    report's order, which says which view row each line shows (a long name is clipped)."""
    lines = text.splitlines()
    problems: list[str] = []
    seen: set[str] = set()

    def check(where: str, shown: str, value: Any, column: str) -> None:
        seen.add(column)
        wrong = same(shown, value, column, missing="-")
        if wrong:
            problems.append(f"text {where}: {wrong}")

    labels = {FIELDS[c].label: c for c in PEOPLE_COLUMNS}
    for entry in data["people"]:
        program = entry["program_key"]
        start = lines.index(f"  {program} (week of {entry['week']}):") + 1
        rows = list(table_rows(lines, start))
        assert len(rows) == len(entry["people"]), f"people of {program}"
        for row, person in zip(rows, entry["people"], strict=True):
            pid = person["person_id"]
            first = person["projects"][0]["project_key"]
            for label, column in labels.items():
                value = views.load[(pid, first, program)][column]
                check(f"{program} {pid} {column}", row[label], value, column)
            alerted = row["Alert"] == "open"
            if alerted != person["contention_alert"]:
                problems.append(f"text {program} {pid}: Alert {row['Alert']!r}")
            if row["In progress in"] == "-":
                if person["program_in_progress_items"]:
                    problems.append(f"text {program} {pid}: no project shown")
                continue
            for part in row["In progress in"].split(", "):
                m = re.fullmatch(r"(\S+) (\S+)(?: \+\d+)?", part)
                assert m, part
                value = views.load[(pid, m.group(1), program)]["in_progress_items"]
                check(f"{program} {pid} {m.group(1)}", m.group(2), value, "in_progress_items")

    labels = {FIELDS[c].label: c for c in BENEFIT_COLUMNS}
    summary = re.compile(
        r"(\S+): (\S+) of (\S+) on track \((\S+) measured\), behind plan (\S+); money "
        r"value (\S+) vs actual cost (\S+): ROI (\S+?)(?:; benefits score (\S+) \(weight "
        r"(\S+)\))?"
    )
    summary_columns = (
        "benefits_on_track",
        "benefits",
        "benefits_measured",
        "benefits_behind_pct",
        "realised_value",
        "actual_cost",
        "roi",
        "benefits_score",
        "benefits_weight",
    )
    for program in data["benefits"]:
        key = program["program_key"]
        start = next(i for i, line in enumerate(lines) if line.startswith(f"  {key}: "))
        end = start + 1
        while lines[end].startswith("    "):
            end += 1
        m = summary.fullmatch(" ".join(line.strip() for line in lines[start:end]))
        assert m and m.group(1) == key, lines[start:end]
        want = views.program_benefits[key]
        for column, shown in zip(summary_columns, m.groups()[1:], strict=True):
            if shown is not None:
                check(f"{key} {column}", shown, want[column], column)
        rows = list(table_rows(lines, end))
        assert len(rows) == len(program["items"]), f"benefits of {key}"
        for row, benefit in zip(rows, program["items"], strict=True):
            bkey = benefit["benefit_key"]
            for label, column in labels.items():
                check(f"{bkey} {column}", row[label], views.benefits[bkey][column], column)
    return problems, seen


def people_and_benefits_json_problems(data: dict[str, Any], views: Views) -> list[str]:
    problems = []
    for entry in data["people"]:
        for person in entry["people"]:
            for r in person["projects"]:
                want = views.load[(person["person_id"], r["project_key"], entry["program_key"])]
                for column in (*PEOPLE_COLUMNS, "in_progress_items", "active_sprint_points"):
                    if r[column] != want[column] and not (
                        isinstance(want[column], float) and abs(r[column] - want[column]) < 1e-9
                    ):
                        problems.append(f"JSON people {person['person_id']}.{column}")
    for program in data["benefits"]:
        want = views.program_benefits[program["program_key"]]
        for column in ("benefits", "benefits_on_track", "realised_value", "roi"):
            if program[column] != want[column]:
                problems.append(f"JSON benefits {program['program_key']}.{column}")
        for b in program["items"]:
            for column in BENEFIT_COLUMNS:
                if b[column] != views.benefits[b["benefit_key"]][column]:
                    problems.append(f"JSON benefits {b['benefit_key']}.{column}")
    return problems


# --- the test -----------------------------------------------------------------------------------


def test_every_figure_in_text_json_and_html_equals_its_view_column(synced: sa.Engine) -> None:
    views = Views(synced)
    assert views.alerts and views.projects and views.inputs, "the scenario has data"
    # Jira versions carry startDate: v_releases.start_date is the source's, not derived.
    starts = release_starts(synced)
    assert starts and all(start is not None and not inferred for start, inferred in starts)
    report = build_report(synced)

    # JSON: the rows are the view rows, so every value equals its column exactly.
    data = json.loads(render_json(report))
    problems = []
    for p in data["projects"]:
        row = views.projects[p["project_key"]]
        for column, value in row.items():
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if number and (p[column] is None or abs(p[column] - value) > 1e-9):
                problems.append(f"JSON projects {p['project_key']}.{column}: {p[column]}")
        assert p["planned_end_date"] == str(views.plans[p["project_key"]]["end_date"])[:10]
    for p in data["programs"]:
        row = views.programs[p["program_key"]]
        assert p["health_score"] == row["health_score"]
        for c in p["breakdown"]:
            assert c["score"] == row[f"{c['component']}_score"]
            for pr in c["projects"]:
                for m in pr["metrics"]:
                    want = views.inputs[(pr["project_key"], m["metric"])]
                    assert (m["value"], m["score"]) == (want["value"], want["score"])
                    assert m["thresholds"] == json.loads(want["thresholds"])
    assert {a["alert_id"] for a in data["alerts"]} == {int(k) for k in views.alerts}
    assert sum(len(b["checks"]) for b in data["blockers"]) == len(views.checks)

    assert data["people"] and data["benefits"], "the scenario has shared people and benefits"
    problems += people_and_benefits_json_problems(data, views)

    html_wrong, html_seen = html_problems(render_html(report), views)
    text = render_text(report)
    text_wrong, text_seen = text_problems(text, views)
    extra_wrong, extra_seen = people_and_benefits_text_problems(text, data, views)
    problems += html_wrong + text_wrong + extra_wrong
    text_seen |= extra_seen
    assert not problems, f"{len(problems)} figures differ:\n" + "\n".join(problems)

    # Every table column was checked in both formats, and every metric's value.
    shown = set(HEALTH_COLUMNS) | {"velocity_points", "scope_change_pct", "say_do_ratio"}
    assert shown <= html_seen and shown <= text_seen
    assert set(METRIC_FIELDS) - {"alert_weight"} <= text_seen
    assert {"value", "score", "component_weight", "slip_days", "end_date"} <= html_seen
    shown = {*PEOPLE_COLUMNS, "in_progress_items", *BENEFIT_COLUMNS, "roi", "actual_cost"}
    assert shown <= html_seen and shown <= text_seen
    # the forecast table and the flow figures (HTML)
    assert {"p50_date", "p85_date", "p95_date", "probability_on_time"} <= html_seen
    assert {"todo_items", "in_progress_items", "done_items", "ageing_wip_items"} <= html_seen


def release_starts(engine: sa.Engine) -> list[tuple[Any, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT start_date, start_date_inferred FROM v_releases"))
        return [(r[0], bool(r[1])) for r in rows]
