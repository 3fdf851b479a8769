"""``programview report``: the program view on one page, as text, JSON or a self-contained HTML
file.

Why it reads only the ``v_*`` views: they are the warehouse's public contract (the same
columns BI dashboards use), so the report shows exactly what a dashboard would, keeps working
when the tables behind the views change, and can run with the read-only role from
``programview db grant-readonly``.

The report is built once as a plain JSON-able dict (:func:`build_report`), then rendered:
:func:`render_text` for an 80-column terminal, ``json.dumps`` for scripts, and
:func:`render_html` (``programview.report_html``) for a file with inline SVG charts that opens
offline. "Now" is the latest ``as_of_date`` the transform wrote, not the wall clock, so a
report of an old warehouse describes that day consistently.
"""

from __future__ import annotations

import json
import textwrap
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from programview.errors import ProgramviewError, SchemaOutdated
from programview.report_program import build_sections, render_text_sections

FORMATS = ("text", "json", "html")

#: Views the report reads. A missing one means the schema is older than this programview.
REQUIRED_VIEWS = (
    "v_program_health",
    "v_project_metrics",
    "v_dependency_alerts",
    "v_sprints",
    "v_releases",
    "v_work_items",
)
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
#: Closed sprints per project in the velocity trend.
VELOCITY_SPRINTS = 8
#: Releases per project in the burn-up charts: open ones first, then the latest released.
BURNUP_RELEASES = 2
#: Columns that are true/false (SQLite hands them back as 0/1).
BOOLEAN_COLUMNS = frozenset(
    {"on_time", "cross_project", "released_at_inferred", "archived", "not_delivered"}
)
NO_METRICS_HINT = "run `programview sync` then `programview transform`"


class NoMetricsError(ProgramviewError):
    """The warehouse has no computed metrics yet."""


class UnknownProgramError(ProgramviewError):
    """``--program`` names a program the warehouse has no metrics for."""


# --- building ------------------------------------------------------------------------------


def build_report(engine: Engine, *, program: str | None = None) -> dict[str, Any]:
    """Everything the report shows, as JSON-able data (dates and times as ISO strings).

    Keys: ``generated_at``, ``as_of_date``, ``program`` (the filter), ``programs`` (latest
    health per program, with ``components`` scores, ``explanations`` and the ``worst``
    component), ``projects`` (latest metrics row per project), ``alerts`` (open dependency
    alerts, worst first) and ``trends`` (``health`` history per program, ``velocity`` per
    closed sprint per project, ``burnup`` per release).

    Raises :class:`NoMetricsError` when the transform has not run yet and
    :class:`UnknownProgramError` when ``program`` has no metrics.
    """
    with engine.connect() as conn:
        _check_views(conn)
        health_rows = _rows(conn, "SELECT * FROM v_program_health")
        project_rows = _rows(conn, "SELECT * FROM v_project_metrics")
        if not health_rows and not project_rows:
            raise NoMetricsError(f"the warehouse has no metrics yet: {NO_METRICS_HINT}")
        known = sorted({r["program_key"] for r in health_rows + project_rows if r["program_key"]})
        if program is not None and program not in known:
            raise UnknownProgramError(
                f"no metrics for program {program!r} "
                f"(programs with metrics: {', '.join(known) or 'none'})"
            )

        health_rows = [r for r in health_rows if program is None or r["program_key"] == program]
        project_rows = [r for r in project_rows if program is None or r["program_key"] == program]
        alerts = _rows(conn, "SELECT * FROM v_dependency_alerts WHERE status = 'open'", program)
        sprints = _rows(conn, "SELECT * FROM v_sprints WHERE state = 'closed'", program)
        releases = _rows(conn, "SELECT * FROM v_releases WHERE 1 = 1", program)
        items = _rows(
            conn,
            "SELECT project_key, program_key, release_name, story_points, created_at, "
            "resolved_at, status_category FROM v_work_items WHERE release_name IS NOT NULL",
            program,
        )
        sections = build_sections(conn, program)  # people and benefits (report_program.py)

    latest_health = _latest(health_rows)
    latest_projects = _latest(project_rows)
    as_of = max(
        (r["as_of_date"] for r in latest_health + latest_projects if r.get("as_of_date")),
        default=None,
    )
    alerts.sort(
        key=lambda a: (
            SEVERITY_ORDER.get(a.get("severity") or "", 9),
            -(a.get("slip_days") or 0),
            a.get("first_seen_at") or "",
        )
    )
    return {
        "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "as_of_date": as_of,
        "program": program,
        "programs": [_program_entry(r) for r in sorted(latest_health, key=_by("program_key"))],
        "projects": sorted(latest_projects, key=_by("program_key", "project_key")),
        "alerts": alerts,
        "trends": {
            "health": _health_trend(health_rows),
            "velocity": _velocity_trend(sprints),
            "burnup": _burnup(releases, items, as_of),
        },
        **sections,
    }


def _check_views(conn: Connection) -> None:
    present = set(sa.inspect(conn).get_view_names())
    missing = [v for v in REQUIRED_VIEWS if v not in present]
    if missing:
        raise SchemaOutdated(
            f"the warehouse has no {', '.join(missing)} view(s): run `programview db upgrade`, "
            f"then {NO_METRICS_HINT}"
        )


def _rows(conn: Connection, sql: str, program: str | None = None) -> list[dict[str, Any]]:
    """Rows of ``sql`` (which ends in a WHERE clause when ``program`` is given) as dicts."""
    params = {}
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


def _program_entry(row: dict[str, Any]) -> dict[str, Any]:
    names = component_names(row)
    components = {name: row.get(f"{name}_score") for name in names}
    explanations = _explanations(row, names)
    scored = [(score, name) for name, score in components.items() if score is not None]
    worst = None
    if scored:
        score, name = min(scored)
        worst = {"component": name, "score": score, "why": explanations.get(name)}
    moved = {f"{n}_score" for n in names} | {f"{n}_explanation" for n in names}
    entry = {k: v for k, v in row.items() if k not in moved}
    entry.update(components=components, explanations=explanations, worst=worst)
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
        done = sorted(
            (r for r in rels if r.get("state") == "released"),
            key=lambda r: r.get("released_at") or r.get("due_date") or "",
            reverse=True,
        )
        chosen.extend((open_ + done)[:BURNUP_RELEASES])

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


# --- rendering -----------------------------------------------------------------------------


def render_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def render_html(report: Mapping[str, Any]) -> str:
    """A single self-contained HTML page (inline CSS and SVG, no script, no network)."""
    from programview.report_html import render_html as _render

    return _render(report)


COMPONENT_LABELS = {
    "schedule": "Sched",
    "delivery": "Deliv",
    "quality": "Qual",
    "budget": "Budget",
    "dependencies": "Deps",
}


def render_text(report: Mapping[str, Any], *, width: int = 80) -> str:
    """The terminal report: programs, projects and open alerts, lines at most ``width`` wide
    (tables are laid out for 80 columns; long sentences wrap)."""
    out: list[str] = []
    scope = f"program {report['program']}" if report.get("program") else "all programs"
    out.append(f"programview report - {scope}")
    out.append(
        f"metrics as of {report.get('as_of_date') or 'n/a'}, "
        f"generated {str(report.get('generated_at', ''))[:16].replace('T', ' ')} UTC"
    )

    programs = report.get("programs") or []
    out += ["", f"PROGRAMS ({len(programs)})"]
    if programs:
        names = list(programs[0].get("components") or {})
        head = ["Program", "Score", "Status"] + [
            COMPONENT_LABELS.get(n, n[:6].title()) for n in names
        ]
        rows = []
        for p in programs:
            comps = p.get("components") or {}
            rows.append(
                [
                    p.get("program_key"),
                    _fmt(p.get("health_score"), "{:.0f}"),
                    (p.get("health_status") or "n/a").upper(),
                    *(_fmt(comps.get(n), "{:.0f}") for n in names),
                ]
            )
        table = _table(head, rows, align="lrl" + "r" * len(names), first_width=16)
        out.append(table[0])
        for p, line in zip(programs, table[1:], strict=True):
            out.append(line)
            worst = p.get("worst")
            if worst:
                why = worst.get("why") or "no explanation recorded"
                if not why.lower().startswith(worst["component"]):
                    why = f"{worst['component']} {_fmt(worst['score'], '{:.0f}')} - {why}"
                out += _wrap(f"worst: {why}", width, indent="    ")
            elif p.get("health_score") is None:
                out += _wrap("no component has data yet, so no score", width, indent="    ")
    else:
        out.append("  no program health rows (no programs configured?)")

    projects = report.get("projects") or []
    out += ["", f"PROJECTS ({len(projects)})"]
    if projects:
        head = [
            "Project",
            "Velocity",
            "Say/do",
            "Thru/wk",
            "Cycle",
            "Bugs",
            "On-time",
            "CPI",
            "SPI",
            "Blocked",
        ]
        by_program: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for p in projects:
            by_program[p.get("program_key") or "(no program)"].append(p)
        rows_by_group = []
        for program, members in by_program.items():
            rows_by_group.append(
                (
                    program,
                    [
                        [
                            _clip(str(p.get("project_key")), 16),
                            _fmt(p.get("velocity_points"), "{:.1f}"),
                            _fmt(p.get("say_do_ratio"), "{:.0%}"),
                            _fmt(p.get("throughput_per_week"), "{:.1f}"),
                            _fmt(p.get("cycle_time_p50_days"), "{:.1f}"),
                            _fmt(p.get("defect_density"), "{:.1f}"),
                            _fmt(p.get("on_time_delivery_rate"), "{:.0%}"),
                            _fmt(p.get("cpi"), "{:.2f}"),
                            _fmt(p.get("spi"), "{:.2f}"),
                            _fmt(p.get("open_blockers"), "{:.0f}"),
                        ]
                        for p in members
                    ],
                )
            )
        all_rows = [r for _, rows in rows_by_group for r in rows]
        table = _table(head, all_rows, align="l" + "r" * 9)
        out.append(table[0])
        lines = iter(table[1:])
        for program, rows in rows_by_group:
            out.append(f"{program}:")
            out += [next(lines) for _ in rows]
        out += _wrap(
            "(Velocity: points per sprint; Thru: items done per week; Cycle: median days from"
            " start to done; Bugs: bugs per 100 points delivered; Blocked: open cross-project"
            " blockers)",
            width,
            indent="  ",
        )
    else:
        out.append("  no project metrics")

    alerts = report.get("alerts") or []
    out += ["", f"OPEN ALERTS ({len(alerts)})"]
    if alerts:
        head = ["Severity", "Rule", "Blocked", "Blocking", "Slip", "Since"]
        rows = [
            [
                a.get("severity"),
                a.get("rule"),
                _clip(_item(a, "blocked"), 17),
                _clip(_item(a, "blocking"), 17),
                _fmt(a.get("slip_days"), "{:.0f}d"),
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
    else:
        out.append("  none")
    out += render_text_sections(report, width)
    return "\n".join(line.rstrip() for line in out) + "\n"


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    try:
        return spec.format(float(value))
    except (TypeError, ValueError):
        return str(value)


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


# --- one call for the CLI and the demo -----------------------------------------------------


def write_report(
    engine: Engine, fmt: str, path: str | Path | None = None, program: str | None = None
) -> str:
    """Build and render the report in ``fmt`` (text|json|html); write it to ``path`` when
    given (UTF-8, parent folders created). Returns the rendered text either way."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r} (choose from {', '.join(FORMATS)})")
    report = build_report(engine, program=program)
    if fmt == "json":
        rendered = render_json(report)
    elif fmt == "html":
        rendered = render_html(report)
    else:
        rendered = render_text(report)
    if path is not None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(rendered, encoding="utf-8")
    return rendered
