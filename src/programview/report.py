"""``programview report``: the program view on one page, as text, JSON or a self-contained HTML
file.

Why it reads only the ``v_*`` views: they are the warehouse's public contract (the same
columns BI dashboards use), so the report shows exactly what a dashboard would, keeps working
when the tables behind the views change, and can run with the read-only role from
``programview db grant-readonly``.

The report is built once as a plain JSON-able dict (:func:`build_report`), then rendered:
:func:`render_text` for an 80-column terminal, ``json.dumps`` for scripts, and
:func:`render_html` (``programview.report_html``) for a file with inline SVG charts that opens
offline. Every number is formatted by ``programview.formatting`` (one label, unit and
precision per column, the same in every format). "Now" is the latest ``as_of_date`` the
transform wrote, not the wall clock, so a report of an old warehouse describes that day
consistently.

The report is a list of :class:`Section` objects (:data:`SECTIONS`): each reads what it needs
from the views into ``report[section.key]`` and renders its own part of the text and the
HTML page. A new part of the report is one more section (:func:`register_section`).
"""

from __future__ import annotations

import json
import textwrap
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from programview import report_html
from programview.errors import ProgramviewError, SchemaOutdated
from programview.formatting import (
    FLOW_COLUMNS,
    HEALTH_COLUMNS,
    PLAN_COLUMNS,
    describe,
    field,
    fmt,
    fmt_points,
    fmt_status_legend,
    metric_field,
)
from programview.transform.settings import COMPONENTS

FORMATS = ("text", "json", "html")

#: Views the report reads. A missing one means the schema is older than this programview.
REQUIRED_VIEWS = (
    "v_program_health",
    "v_project_metrics",
    "v_dependency_alerts",
    "v_sprints",
    "v_releases",
    "v_work_items",
    "v_health_inputs",
    "v_blocker_checks",
    "v_projects",
    "v_resource_load",
    "v_benefits",
    "v_program_benefits",
)
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
#: Closed sprints per project in the velocity trend.
VELOCITY_SPRINTS = 8
#: Releases per project in the burn-up charts: open ones first, then the latest released.
BURNUP_RELEASES = 2
#: Columns that are true/false (SQLite hands them back as 0/1).
BOOLEAN_COLUMNS = frozenset(
    {
        "on_time",
        "cross_project",
        "released_at_inferred",
        "archived",
        "not_delivered",
        "holds",
        "start_date_inferred",
        "on_track",
        "project_sprint_active",
    }
)
NO_METRICS_HINT = "run `programview sync` then `programview transform`"


class NoMetricsError(ProgramviewError):
    """The warehouse has no computed metrics yet."""


class UnknownProgramError(ProgramviewError):
    """``--program`` names a program the warehouse has no metrics for."""


# --- sections ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What a section's ``build`` gets: the connection, the ``--program`` filter and the
    metrics day the report describes."""

    conn: Connection
    program: str | None
    as_of_date: str | None

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """Rows of ``sql`` (ending in a WHERE clause) as JSON-able dicts, filtered by program."""
        return _rows(self.conn, sql, self.program)


@dataclass(frozen=True)
class Section:
    """One part of the report.

    ``build(scope, report)`` returns the JSON-able data stored under ``report[key]`` (it may
    read what earlier sections built); ``text(report, width)`` returns its lines of the text
    report, ``html(report)`` its HTML fragment. ``fields`` names the view columns it shows,
    for the JSON report's ``fields`` block.
    """

    key: str
    build: Callable[[Scope, Mapping[str, Any]], Any]
    text: Callable[[Mapping[str, Any], int], list[str]] | None = None
    html: Callable[[Mapping[str, Any]], str] | None = None
    fields: tuple[str, ...] = ()


SECTIONS: list[Section] = []


def register_section(section: Section, *, after: str | None = None) -> None:
    """Add ``section`` to the report (at the end, or right after the section ``after``)."""
    keys = [s.key for s in SECTIONS]
    if section.key in keys:
        SECTIONS[keys.index(section.key)] = section
        return
    SECTIONS.insert(keys.index(after) + 1 if after in keys else len(SECTIONS), section)


# --- building ------------------------------------------------------------------------------


def build_report(engine: Engine, *, program: str | None = None) -> dict[str, Any]:
    """Everything the report shows, as JSON-able data (dates and times as ISO strings).

    Keys: ``generated_at``, ``as_of_date``, ``program`` (the filter), ``legend`` (the status
    thresholds in force), ``fields`` (label, unit and precision of every column shown), then
    one key per section (docs/report.md: ``programs``, ``projects``, ``alerts``,
    ``blockers``, ``people``, ``benefits``, ``trends``).

    Raises :class:`NoMetricsError` when the transform has not run yet and
    :class:`UnknownProgramError` when ``program`` has no metrics.
    """
    with engine.connect() as conn:
        _check_views(conn)
        health = _rows(conn, "SELECT program_key, as_of_date FROM v_program_health WHERE 1 = 1")
        projects = _rows(conn, "SELECT program_key, as_of_date FROM v_project_metrics WHERE 1 = 1")
        if not health and not projects:
            raise NoMetricsError(f"the warehouse has no metrics yet: {NO_METRICS_HINT}")
        known = sorted({r["program_key"] for r in health + projects if r["program_key"]})
        if program is not None and program not in known:
            raise UnknownProgramError(
                f"no metrics for program {program!r} "
                f"(programs with metrics: {', '.join(known) or 'none'})"
            )
        as_of = max(
            (
                r["as_of_date"]
                for r in health + projects
                if r.get("as_of_date") and (program is None or r["program_key"] == program)
            ),
            default=None,
        )
        scope = Scope(conn, program, as_of)
        report: dict[str, Any] = {
            "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "as_of_date": as_of,
            "program": program,
            "legend": _legend(scope),
        }
        for section in SECTIONS:
            report[section.key] = section.build(scope, report)
    report["fields"] = describe(dict.fromkeys(c for s in SECTIONS for c in s.fields))
    return report


def _legend(scope: Scope) -> dict[str, Any]:
    """The status thresholds the transform scored with on the report's day."""
    rows = scope.rows(
        "SELECT green_at, amber_at FROM v_health_inputs "
        "WHERE as_of_date = (SELECT MAX(as_of_date) FROM v_health_inputs)"
    )
    green = rows[0]["green_at"] if rows else None
    amber = rows[0]["amber_at"] if rows else None
    return {"green_at": green, "amber_at": amber, "text": fmt_status_legend(green, amber)}


def status_of(score: float | None, legend: Mapping[str, Any]) -> str | None:
    """green | amber | red for a component score, by the thresholds in force."""
    green, amber = legend.get("green_at"), legend.get("amber_at")
    if score is None or green is None or amber is None:
        return None
    return "green" if score >= green else "amber" if score >= amber else "red"


def _build_programs(scope: Scope, report: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = _latest(scope.rows("SELECT * FROM v_program_health WHERE 1 = 1"))
    inputs = scope.rows(
        "SELECT * FROM v_health_inputs "
        "WHERE as_of_date = (SELECT MAX(as_of_date) FROM v_health_inputs)"
    )
    return [
        _program_entry(r, inputs, report["legend"]) for r in sorted(rows, key=_by("program_key"))
    ]


def _build_projects(scope: Scope, report: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = _latest(scope.rows("SELECT * FROM v_project_metrics WHERE 1 = 1"))
    plans = {
        r["project_key"]: r
        for r in scope.rows("SELECT project_key, start_date, end_date FROM v_projects WHERE 1 = 1")
    }
    for row in rows:
        plan = plans.get(row["project_key"], {})
        row["planned_start_date"] = plan.get("start_date")
        row["planned_end_date"] = plan.get("end_date")
    return sorted(rows, key=_by("program_key", "project_key"))


def _build_alerts(scope: Scope, report: Mapping[str, Any]) -> list[dict[str, Any]]:
    alerts = scope.rows("SELECT * FROM v_dependency_alerts WHERE status = 'open'")
    alerts.sort(
        key=lambda a: (
            SEVERITY_ORDER.get(a.get("severity") or "", 9),
            -(a.get("slip_days") or 0),
            a.get("first_seen_at") or "",
        )
    )
    return alerts


def _build_blockers(scope: Scope, report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Open cross-project blocking links, each with every rule's verdict and reason."""
    from programview.transform.settings import LINK_RULES

    order = {rule: i for i, rule in enumerate(LINK_RULES)}
    links: dict[tuple[Any, Any], dict[str, Any]] = {}
    for r in scope.rows("SELECT * FROM v_blocker_checks WHERE 1 = 1"):
        link = links.setdefault(
            (r["blocked_item_key"], r["blocking_item_key"]),
            {
                "program_key": r["program_key"],
                "blocked_item_key": r["blocked_item_key"],
                "blocked_project_key": r["blocked_project_key"],
                "blocking_item_key": r["blocking_item_key"],
                "blocking_project_key": r["blocking_project_key"],
                "alerted": False,
                "checks": [],
            },
        )
        link["alerted"] = link["alerted"] or r["holds"]
        link["checks"].append({"rule": r["rule"], "holds": r["holds"], "reason": r["reason"]})
    for link in links.values():
        link["checks"].sort(key=lambda c: order.get(c["rule"], 99))
    return sorted(
        links.values(),
        key=_by("blocked_project_key", "blocked_item_key", "blocking_item_key"),
    )


def _build_trends(scope: Scope, report: Mapping[str, Any]) -> dict[str, Any]:
    health = scope.rows("SELECT * FROM v_program_health WHERE 1 = 1")
    sprints = scope.rows("SELECT * FROM v_sprints WHERE state = 'closed'")
    releases = scope.rows("SELECT * FROM v_releases WHERE 1 = 1")
    items = scope.rows(
        "SELECT project_key, program_key, release_name, story_points, created_at, "
        "resolved_at, status_category FROM v_work_items WHERE release_name IS NOT NULL",
    )
    return {
        "health": _health_trend(health),
        "velocity": _velocity_trend(sprints),
        "burnup": _burnup(releases, items, scope.as_of_date),
    }


def _check_views(conn: Connection) -> None:
    present = set(sa.inspect(conn).get_view_names())
    missing = [v for v in REQUIRED_VIEWS if v not in present]
    if missing:
        raise SchemaOutdated(
            f"the warehouse has no {', '.join(missing)} view(s): run `programview db upgrade`, "
            f"then {NO_METRICS_HINT}"
        )


def _rows(
    conn: Connection, sql: str, program: str | None = None, **params: Any
) -> list[dict[str, Any]]:
    """Rows of ``sql`` (which ends in a WHERE clause when ``program`` is given) as dicts."""
    if program is not None:
        sql += " AND program_key = :program"
        params["program"] = program
    result = conn.execute(sa.text(sql), params)
    return [{k: _jsonable(k, v) for k, v in row.items()} for row in result.mappings()]


def _jsonable(column: str, value: Any) -> Any:
    """One value as JSON would carry it, the same on SQLite and PostgreSQL.

    Views lose column types on SQLite, so the naming convention of the contract decides:
    ``*_at`` and ``*as_of`` are UTC timestamps, ``*_date`` calendar dates, known flags
    booleans.
    """
    if value is None:
        return None
    if isinstance(value, Decimal):
        return float(value)
    if column in BOOLEAN_COLUMNS:
        return bool(value)
    if column.endswith(("_at", "as_of")):
        moment = value if isinstance(value, datetime) else _parse_datetime(value)
        if moment is not None:
            if moment.tzinfo is not None:
                moment = moment.astimezone(UTC).replace(tzinfo=None)
            return moment.replace(microsecond=0).isoformat()
    if column.endswith("_date"):
        if isinstance(value, datetime):
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        moment = _parse_datetime(value)
        if moment is not None:
            return moment.date().isoformat()
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _parse_datetime(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _latest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the latest ``as_of_date`` (the views keep one row per day of history)."""
    dates = [r["as_of_date"] for r in rows if r.get("as_of_date")]
    if not dates:
        return rows
    last = max(dates)
    return [r for r in rows if r.get("as_of_date") == last]


def _by(*keys: str) -> Any:
    return lambda row: tuple(str(row.get(k) or "") for k in keys)


def component_names(row: Mapping[str, Any]) -> list[str]:
    """Health components in a ``v_program_health`` row: every ``<name>_score`` column."""
    return [k.removesuffix("_score") for k in row if k.endswith("_score") and k != "health_score"]


def _program_entry(
    row: dict[str, Any], inputs: Sequence[Mapping[str, Any]], legend: Mapping[str, Any]
) -> dict[str, Any]:
    """A program's latest health row, its components with the projects and metrics behind
    each (``breakdown``), and the worst component."""
    names = component_names(row)
    components = {name: row.get(f"{name}_score") for name in names}
    explanations = _explanations(row, names)
    scored = [(score, name) for name, score in components.items() if score is not None]
    worst = None
    if scored:
        score, name = min(scored)
        worst = {"component": name, "score": score, "why": explanations.get(name)}
    mine = [i for i in inputs if i.get("program_key") == row.get("program_key")]
    breakdown = []
    for name in names:
        rows = [i for i in mine if i.get("component") == name]
        weight = rows[0]["component_weight"] if rows else None
        projects = []
        for key in sorted({str(i["project_key"]) for i in rows}):
            metrics = [i for i in rows if i["project_key"] == key]
            order = {m: n for n, m in enumerate(COMPONENTS.get(name, ()))}
            metrics.sort(key=lambda i: order.get(i["metric"], 99))
            projects.append(
                {
                    "project_key": key,
                    "score": metrics[0]["component_score"],
                    "metrics": [
                        {
                            "metric": i["metric"],
                            "label": metric_field(i["metric"]).label,
                            "value": i["value"],
                            "score": i["score"],
                            "thresholds": json.loads(i["thresholds"] or "[]"),
                            "reason": i["reason"],
                        }
                        for i in metrics
                    ],
                }
            )
        breakdown.append(
            {
                "component": name,
                "score": components[name],
                "weight": weight,
                "status": status_of(components[name], legend),
                "explanation": explanations.get(name),
                "projects": projects,
            }
        )
    moved = {f"{n}_score" for n in names} | {f"{n}_explanation" for n in names}
    entry = {k: v for k, v in row.items() if k not in moved}
    entry.update(components=components, explanations=explanations, worst=worst)
    entry["breakdown"] = breakdown
    return entry


def _explanations(row: Mapping[str, Any], names: Sequence[str]) -> dict[str, str]:
    """Per-component sentences: the ``<component>_explanation`` columns, else the sentences
    of the combined ``explanation`` column that start with the component's name."""
    out = {n: str(row[f"{n}_explanation"]) for n in names if row.get(f"{n}_explanation")}
    combined = str(row.get("explanation") or "")
    for part in (p.strip() for p in combined.replace("\n", ";").split(";")):
        for name in names:
            if part.lower().startswith(name) and name not in out:
                out[name] = part
                break
    return out


def _health_trend(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    by_program: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("as_of_date") and r.get("program_key"):
            by_program[r["program_key"]].append(
                {
                    "date": r["as_of_date"],
                    "score": r.get("health_score"),
                    "status": r.get("health_status"),
                }
            )
    return [
        {"program_key": key, "points": sorted(points, key=lambda p: p["date"])}
        for key, points in sorted(by_program.items())
    ]


def _velocity_trend(sprints: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    by_project: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for s in sprints:
        if s.get("project_key"):
            by_project[s["project_key"]].append(s)
    out = []
    for key, rows in sorted(by_project.items()):
        rows = sorted(rows, key=lambda s: s.get("end_at") or s.get("completed_at") or "")
        out.append(
            {
                "project_key": key,
                "program_key": rows[-1].get("program_key"),
                "sprints": [
                    {
                        "sprint_name": s.get("sprint_name"),
                        "end_at": s.get("end_at"),
                        "committed_points": s.get("committed_points"),
                        "completed_points": s.get("completed_points"),
                    }
                    for s in rows[-VELOCITY_SPRINTS:]
                ],
            }
        )
    return out


def _burnup(
    releases: Iterable[Mapping[str, Any]],
    items: Iterable[Mapping[str, Any]],
    as_of: str | None,
) -> list[dict[str, Any]]:
    """Scope and done points over time per release, from its items' created/resolved dates.

    Scope counts an item from its creation (so added scope shows as a rising scope line);
    done counts it from its resolution while it is done. Unestimated items count 0 points.
    """
    by_release: dict[tuple[Any, Any], list[Mapping[str, Any]]] = defaultdict(list)
    for item in items:
        by_release[(item.get("project_key"), item.get("release_name"))].append(item)
    per_project: dict[Any, list[Mapping[str, Any]]] = defaultdict(list)
    for rel in releases:
        per_project[rel.get("project_key")].append(rel)
    chosen: list[Mapping[str, Any]] = []
    for _key, rels in sorted(per_project.items(), key=lambda kv: str(kv[0])):
        open_ = sorted(
            (r for r in rels if r.get("state") != "released"),
            key=lambda r: r.get("due_date") or "9999",
        )
        released = sorted(
            (r for r in rels if r.get("state") == "released"),
            key=lambda r: r.get("released_at") or r.get("due_date") or "",
            reverse=True,
        )
        chosen.extend((open_ + released)[:BURNUP_RELEASES])

    out = []
    for rel in chosen:
        members = by_release.get((rel.get("project_key"), rel.get("release_name")), [])
        if not members:
            continue
        scope: dict[str, float] = defaultdict(float)
        done: dict[str, float] = defaultdict(float)
        for item in members:
            points = float(item.get("story_points") or 0)
            created = (item.get("created_at") or "")[:10]
            if created:
                scope[created] += points
            resolved = (item.get("resolved_at") or "")[:10]
            if item.get("status_category") == "done" and resolved:
                done[resolved] += points
        out.append(
            {
                "project_key": rel.get("project_key"),
                "program_key": rel.get("program_key"),
                "release_name": rel.get("release_name"),
                "state": rel.get("state"),
                "due_date": rel.get("due_date"),
                "released_at": rel.get("released_at"),
                "as_of_date": as_of,
                "scope": _cumulative(scope),
                "done": _cumulative(done),
            }
        )
    return out


def _cumulative(per_day: Mapping[str, float]) -> list[dict[str, Any]]:
    total = 0.0
    points = []
    for day in sorted(per_day):
        total += per_day[day]
        points.append({"date": day, "points": round(total, 2)})
    return points


# --- rendering ------------------------------------------------------------------------------


def render_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def render_html(report: Mapping[str, Any]) -> str:
    """A single self-contained HTML page (inline CSS and SVG, no script, no network)."""
    return report_html.page(report, [s.html(report) for s in SECTIONS if s.html is not None])


def render_text(report: Mapping[str, Any], *, width: int = 80) -> str:
    """The terminal report, lines at most ``width`` wide (tables are laid out for 80
    columns; long sentences wrap)."""
    scope = f"program {report['program']}" if report.get("program") else "all programs"
    out = [
        f"programview report - {scope}",
        f"metrics as of {report.get('as_of_date') or 'n/a'}, "
        f"generated {str(report.get('generated_at', ''))[:16].replace('T', ' ')} UTC",
    ]
    out += _wrap(f"status: {(report.get('legend') or {}).get('text', '')}", width, indent="")
    for section in SECTIONS:
        if section.text is not None:
            out += ["", *section.text(report, width)]
    return "\n".join(line.rstrip() for line in out) + "\n"


def _health_table(rows: Sequence[Mapping[str, Any]], key: str, title: str) -> list[str]:
    """Key, health, status and the five component scores, one row each."""
    columns = HEALTH_COLUMNS
    head = [title, *(field_label(c) for c in columns[:1]), "Status"]
    head += [field_label(c) for c in columns[1:]]
    body = [
        [
            _clip(str(r.get(key)), 10),
            fmt("health_score", r.get("health_score")),
            (r.get("health_status") or "-").upper(),
            *(fmt(c, r.get(c)) for c in columns[1:]),
        ]
        for r in rows
    ]
    return _table(head, body, align="lrl" + "r" * (len(columns) - 1))


def _programs_text(report: Mapping[str, Any], width: int) -> list[str]:
    programs = report.get("programs") or []
    out = [f"PROGRAMS ({len(programs)})"]
    if not programs:
        return [*out, "  no program health rows (no programs configured?)"]
    flat = [
        {
            **p,
            **{f"{n}_score": s for n, s in (p.get("components") or {}).items()},
        }
        for p in programs
    ]
    out += _health_table(flat, "program_key", "Program")
    out += ["", "HEALTH EXPLAINED"]
    for p in programs:
        out.append(
            f"  {p.get('program_key')} {fmt('health_score', p.get('health_score'))} "
            f"{(p.get('health_status') or 'no score').upper()}: weighted mean of the "
            "components with data"
        )
        for c in p.get("breakdown") or []:
            weight = fmt("component_weight", c.get("weight"))
            status = c.get("status") or "no data"
            head = (
                f"{c['component'].capitalize()} {fmt('score', c.get('score'))} "
                f"(weight {weight}, {status})"
            )
            if c.get("score") is None or not c.get("projects"):
                why = c.get("explanation") or "no data"
                out += _wrap(f"{head}: {why}", width, indent="    ")
                continue
            members = ", ".join(
                f"{pr['project_key']} {fmt('score', pr.get('score'))}"
                for pr in c.get("projects") or []
            )
            out += _wrap(f"{head} = mean of {members or 'no project'}", width, indent="    ")
            for pr in c.get("projects") or []:
                out.append(f"      {pr['project_key']} {fmt('score', pr.get('score'))}:")
                for m in pr.get("metrics") or []:
                    out += _wrap(_metric_sentence(m), width, indent="        ")
    return out


def _metric_sentence(m: Mapping[str, Any]) -> str:
    """``SPI 0.79 → 29.6 (scored on 0.70→0, 0.85→50, 0.95→75, 1.00→100)``."""
    spec = metric_field(m["metric"])
    points = fmt_points(m["metric"], m.get("thresholds") or [])
    if m.get("value") is None:
        return f"{spec.label}: no data ({m.get('reason') or 'not available'})"
    return (
        f"{spec.label} {fmt(spec, m['value'])} → {fmt('score', m.get('score'))} "
        f"(scored on {points})"
    )


def _projects_text(report: Mapping[str, Any], width: int) -> list[str]:
    projects = report.get("projects") or []
    out = [f"PROJECTS ({len(projects)})"]
    if not projects:
        return [*out, "  no project metrics"]
    for title, columns in (("Flow", FLOW_COLUMNS), ("Plan and budget", PLAN_COLUMNS)):
        out.append(f"  {title}:")
        head = ["Project", *(field_label(c) for c in columns)]
        rows, groups = [], []
        for program, members in _by_program(projects):
            groups.append((program, len(members)))
            rows += [[_clip(str(p.get("project_key")), 8), *_cells(p, columns)] for p in members]
        table = _table(head, rows, align="l" + "r" * len(columns))
        out.append(table[0])
        lines = iter(table[1:])
        for program, count in groups:
            out.append(f"  {program}:")
            out += [next(lines) for _ in range(count)]
    out += _wrap(
        "("
        + "; ".join(f"{field_label(c)}: {_help(c)}" for c in (*FLOW_COLUMNS, *PLAN_COLUMNS))
        + ")",
        width,
        indent="  ",
    )
    out += ["", "PROJECT HEALTH"]
    out += _health_table(projects, "project_key", "Project")
    return out


def _cells(row: Mapping[str, Any], columns: Sequence[str]) -> list[str]:
    return [fmt(c, row.get(c)) for c in columns]


def _by_program(
    projects: Sequence[Mapping[str, Any]],
) -> list[tuple[str, list[Mapping[str, Any]]]]:
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for p in projects:
        groups[p.get("program_key") or "(no program)"].append(p)
    return list(groups.items())


def _alerts_text(report: Mapping[str, Any], width: int) -> list[str]:
    alerts = report.get("alerts") or []
    out = [f"OPEN ALERTS ({len(alerts)})"]
    if not alerts:
        return [*out, "  none"]
    head = ["Severity", "Rule", "Blocked", "Blocking", field_label("slip_days"), "Since"]
    rows = [
        [
            a.get("severity"),
            a.get("rule"),
            _clip(_item(a, "blocked"), 17),
            _clip(_item(a, "blocking"), 17),
            fmt("slip_days", a.get("slip_days")),
            (a.get("first_seen_at") or "")[:10],
        ]
        for a in alerts
    ]
    table = _table(head, rows, align="llllrl")
    out.append(table[0])
    for a, line in zip(alerts, table[1:], strict=True):
        out.append(line)
        if a.get("message"):
            out += _wrap(str(a["message"]), width, indent="    ")
    return out


def _blockers_text(report: Mapping[str, Any], width: int) -> list[str]:
    links = report.get("blockers") or []
    quiet = [b for b in links if not b.get("alerted")]
    out = [f"OPEN BLOCKERS WITHOUT AN ALERT ({len(quiet)} of {len(links)})"]
    if not links:
        return [*out, "  no open cross-project blockers"]
    if not quiet:
        return [*out, "  every open cross-project blocker raises an alert (above)"]
    out += _wrap(
        "Each is counted in its project's Blockers; no alert rule holds for it, because:",
        width,
        indent="  ",
    )
    for b in quiet:
        out.append(
            f"  {b['blocked_item_key']} ({b.get('blocked_project_key')}) is blocked by "
            f"{b['blocking_item_key']} ({b.get('blocking_project_key')})"
        )
        for c in b.get("checks") or []:
            out += _wrap(f"{c['rule']}: {c['reason']}", width, indent="    ")
    return out


def field_label(column: str) -> str:
    return field(column).label


def _help(column: str) -> str:
    return field(column).help


def _item(alert: Mapping[str, Any], side: str) -> str:
    key = alert.get(f"{side}_item_key") or "-"
    return str(key)


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "~"


def _wrap(text: str, width: int, *, indent: str) -> list[str]:
    return textwrap.wrap(
        " ".join(text.split()), width=width, initial_indent=indent, subsequent_indent=indent + "  "
    ) or [indent]


def _table(
    head: Sequence[str], rows: Sequence[Sequence[Any]], *, align: str, first_width: int = 0
) -> list[str]:
    """Header line and one line per row, columns padded to their widest cell."""
    cells = [[str(c) if c is not None else "-" for c in row] for row in rows]
    widths = [max([len(head[i]), *(len(r[i]) for r in cells)]) for i in range(len(head))]
    widths[0] = max(widths[0], first_width) if first_width else widths[0]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if a == "r" else v.ljust(w)
            for v, w, a in zip(values, widths, align, strict=True)
        ]
        return "  " + "  ".join(parts)

    return [line(list(head))] + [line(r) for r in cells]


# --- the built-in sections, in report order -------------------------------------------------

for _section in (
    Section(
        "programs",
        _build_programs,
        _programs_text,
        report_html.programs,
        fields=(*HEALTH_COLUMNS, "component_weight", "score"),
    ),
    Section(
        "projects",
        _build_projects,
        _projects_text,
        report_html.projects,
        fields=(*FLOW_COLUMNS, *PLAN_COLUMNS, *HEALTH_COLUMNS),
    ),
    Section("alerts", _build_alerts, _alerts_text, report_html.alerts, fields=("slip_days",)),
    Section("blockers", _build_blockers, _blockers_text, report_html.blockers),
    Section("trends", _build_trends, None, report_html.trends),
):
    register_section(_section)

# The people and benefits sections register themselves after "blockers" (report_program.py).
from programview import report_program  # noqa: E402,F401

# --- one call for the CLI and the demo -----------------------------------------------------


def write_report(
    engine: Engine, format: str, path: str | Path | None = None, program: str | None = None
) -> str:
    """Build and render the report in ``format`` (text|json|html); write it to ``path`` when
    given (UTF-8, parent folders created). Returns the rendered text either way."""
    if format not in FORMATS:
        raise ValueError(f"unknown report format {format!r} (choose from {', '.join(FORMATS)})")
    report = build_report(engine, program=program)
    if format == "json":
        rendered = render_json(report)
    elif format == "html":
        rendered = render_html(report)
    else:
        rendered = render_text(report)
    if path is not None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(rendered, encoding="utf-8")
    return rendered
