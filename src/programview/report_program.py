"""Report sections beyond delivery: the people most stretched across projects, per program,
and the benefits register (realisation, on track, money, ROI).

Kept apart from ``report.py`` so the main report's layout can change without touching these:
``build_sections`` adds two keys to the report data (``people`` and ``benefits``), and the
text and HTML renderers each append their sections. Like the rest of the report it reads
only ``v_*`` views (``v_resource_load``, ``v_benefits``, ``v_program_benefits``,
``v_dependency_alerts``) and shows their values unchanged; "now" is the latest week and day
the transform wrote.
"""

from __future__ import annotations

import html
import textwrap
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

#: People shown per program, most stretched first.
TOP_PEOPLE = 5
VIEWS = ("v_resource_load", "v_benefits", "v_program_benefits")


def build_sections(conn: Connection, program: str | None) -> dict[str, Any]:
    """``{"people": [...], "benefits": [...]}``: one entry per program (filtered to
    ``program`` when given). Empty lists on a warehouse without the views."""
    present = set(sa.inspect(conn).get_view_names())
    if not set(VIEWS) <= present:
        return {"people": [], "benefits": []}
    return {"people": _people(conn, program), "benefits": _benefits(conn, program)}


def _rows(conn: Connection, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    from programview.report import _jsonable

    result = conn.execute(sa.text(sql), dict(params))
    return [
        {k: bool(v) if k in _FLAGS and v is not None else _jsonable(k, v) for k, v in row.items()}
        for row in result.mappings()
    ]


#: True/false columns of these views (SQLite hands them back as 0/1).
_FLAGS = frozenset({"on_track", "project_sprint_active"})


def _where(program: str | None) -> tuple[str, dict[str, Any]]:
    return (" AND program_key = :program", {"program": program}) if program else ("", {})


def _people(conn: Connection, program: str | None) -> list[dict[str, Any]]:
    """The latest week's load per person and program, most stretched first: most projects
    with work in progress, then most items in progress, then most active-sprint points."""
    cond, params = _where(program)
    rows = _rows(
        conn,
        "SELECT * FROM v_resource_load WHERE week = (SELECT MAX(week) FROM v_resource_load) "
        f"AND program_key IS NOT NULL{cond}",
        params,
    )
    alerts = {
        (a["program_key"], a["person"])
        for a in _rows(
            conn,
            "SELECT program_key, person FROM v_dependency_alerts WHERE status = 'open' "
            "AND rule = 'shared_resource_contention'",
            {},
        )
    }
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        grouped[(r["program_key"], r["person_id"])].append(r)
    by_program: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (prog, person_id), parts in grouped.items():
        parts.sort(key=lambda r: (-(r["in_progress_items"] or 0), r["project_key"]))
        by_program[prog].append(
            {
                "person": parts[0]["person"],
                "person_id": person_id,
                "week": parts[0]["week"],
                "in_progress_items": parts[0]["program_in_progress_items"],
                "projects_in_progress": parts[0]["program_projects_in_progress"],
                "active_sprint_points": sum(r["active_sprint_points"] or 0 for r in parts),
                "projects": [
                    {
                        "project_key": r["project_key"],
                        "in_progress_items": r["in_progress_items"],
                        "active_sprint_points": r["active_sprint_points"],
                    }
                    for r in parts
                ],
                "contention_alert": (prog, parts[0]["person"]) in alerts,
            }
        )
    out = []
    for prog, people in sorted(by_program.items()):
        people.sort(
            key=lambda p: (
                -(p["projects_in_progress"] or 0),
                -(p["in_progress_items"] or 0),
                -p["active_sprint_points"],
                p["person"],
            )
        )
        out.append({"program_key": prog, "people": people[:TOP_PEOPLE]})
    return out


def _benefits(conn: Connection, program: str | None) -> list[dict[str, Any]]:
    """The latest day's figures per program with benefits, each with its benefits."""
    cond, params = _where(program)
    programs = _rows(
        conn,
        "SELECT * FROM v_program_benefits "
        f"WHERE as_of_date = (SELECT MAX(as_of_date) FROM v_program_benefits){cond}",
        params,
    )
    benefits = _rows(
        conn,
        "SELECT * FROM v_benefits "
        f"WHERE as_of_date = (SELECT MAX(as_of_date) FROM v_benefits){cond}",
        params,
    )
    per: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for b in benefits:
        per[b["program_key"]].append(b)
    return [
        {**p, "items": sorted(per.get(p["program_key"], []), key=lambda b: b["benefit_key"])}
        for p in sorted(programs, key=lambda p: p["program_key"])
    ]


# --- text ------------------------------------------------------------------------------------


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    return spec.format(float(value))


def _money(value: Any) -> str:
    return "-" if value is None else f"{float(value):,.0f}"


def render_text_sections(report: Mapping[str, Any], width: int = 80) -> list[str]:
    """Lines of the two sections, for the end of the terminal report."""
    out: list[str] = []
    people = report.get("people") or []
    out += ["", "PEOPLE MOST STRETCHED ACROSS PROJECTS (this week)"]
    if not people:
        out.append("  no one has work in progress in a program's projects")
    for entry in people:
        out.append(f"{entry['program_key']}:")
        for p in entry["people"]:
            spread = _spread(p)
            flag = "  ! over WIP limit" if p["contention_alert"] else ""
            out.append(
                f"  {_clip(p['person'], 24):24}  {p['in_progress_items'] or 0:>3} in progress "
                f"in {p['projects_in_progress'] or 0} project(s): {spread}; "
                f"{_fmt(p['active_sprint_points'], '{:g}')} pts in active sprints{flag}"
            )
    benefits = report.get("benefits") or []
    out += ["", "BENEFITS"]
    if not benefits:
        out.append("  no benefits registered ([[benefits]] in the config)")
    for prog in benefits:
        out.append(
            f"{prog['program_key']}: {prog['benefits_on_track']}/{prog['benefits']} on track, "
            f"realised {_money(prog['realised_value'])} vs actual cost "
            f"{_money(prog['actual_cost'])}, ROI {_fmt(prog['roi'], '{:.0%}')}"
        )
        for b in prog["items"]:
            track = {True: "on track", False: "behind"}.get(b["on_track"], "not judged")
            unit = f" {b['unit']}" if b.get("unit") else ""
            out.append(
                f"  {_clip(b['benefit_name'] or b['benefit_key'], 28):28} "
                f"{_fmt(b['value'], '{:g}')}{unit} (target {b['target']:g}{unit}): "
                f"{_fmt(b['realisation_pct'], '{:.0f}')}% realised, "
                f"{_fmt(b['expected_pct'], '{:.0f}')}% planned, {track}, "
                f"value {_money(b['realised_value'])}"
            )
        if prog.get("notes"):
            out += textwrap.wrap(
                prog["notes"], width, initial_indent="    ", subsequent_indent="      "
            )
    return out


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "~"


# --- HTML ------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def render_html_sections(report: Mapping[str, Any]) -> str:
    """Two ``<h2>`` sections with tables, styled by the main report's CSS."""
    parts = ["<h2>People most stretched across projects</h2>"]
    people = report.get("people") or []
    if not people:
        parts.append('<p class="empty">No one has work in progress in a program\'s projects.</p>')
    for entry in people:
        rows = "".join(_person_row(p) for p in entry["people"])
        parts.append(
            f'<h3>{_e(entry["program_key"])}</h3><div class="scroll"><table><tr><th>Person</th>'
            "<th class=num>In progress</th><th class=num>Projects</th><th>Per project</th>"
            f"<th class=num>Active sprint points</th></tr>{rows}</table></div>"
        )
    parts.append("<h2>Benefits</h2>")
    benefits = report.get("benefits") or []
    if not benefits:
        parts.append('<p class="empty">No benefits registered.</p>')
    for prog in benefits:
        rows = "".join(_benefit_row(b) for b in prog["items"])
        parts.append(
            f"<h3>{_e(prog['program_key'])} <small>{_e(prog['benefits_on_track'])}/"
            f"{_e(prog['benefits'])} on track &middot; realised {_money(prog['realised_value'])}"
            f" &middot; actual cost {_money(prog['actual_cost'])} &middot; ROI "
            f"{_fmt(prog['roi'], '{:.0%}')}</small></h3>"
            '<div class="scroll"><table><tr><th>Benefit</th><th class=num>Value</th>'
            "<th class=num>Target</th><th class=num>Realised</th><th class=num>Planned</th>"
            f"<th>On track</th><th class=num>Money value</th></tr>{rows}</table></div>"
        )
        if prog.get("notes"):
            parts.append(f'<p class="empty">{_e(prog["notes"])}</p>')
    return "\n".join(parts)


def _benefit_row(b: Mapping[str, Any]) -> str:
    unit = f" {b['unit']}" if b.get("unit") else ""
    track = {True: "yes", False: "no"}.get(b["on_track"], "-")
    return (
        f"<tr><td>{_e(b['benefit_name'] or b['benefit_key'])}</td>"
        f"<td class=num>{_fmt(b['value'], '{:g}')}{_e(unit)}</td>"
        f"<td class=num>{_fmt(b['target'], '{:g}')}{_e(unit)}</td>"
        f"<td class=num>{_fmt(b['realisation_pct'], '{:.0f}')}%</td>"
        f"<td class=num>{_fmt(b['expected_pct'], '{:.0f}')}%</td><td>{track}</td>"
        f"<td class=num>{_money(b['realised_value'])}</td></tr>"
    )


def _spread(person: Mapping[str, Any]) -> str:
    return ", ".join(f"{x['project_key']} {x['in_progress_items']}" for x in person["projects"])


def _person_row(p: Mapping[str, Any]) -> str:
    flag = " <b>(over WIP limit)</b>" if p["contention_alert"] else ""
    return (
        f"<tr><td>{_e(p['person'])}{flag}</td>"
        f"<td class=num>{_e(p['in_progress_items'])}</td>"
        f"<td class=num>{_e(p['projects_in_progress'])}</td><td>{_e(_spread(p))}</td>"
        f"<td class=num>{_fmt(p['active_sprint_points'], '{:g}')}</td></tr>"
    )
