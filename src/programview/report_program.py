"""Report sections beyond delivery: the people most stretched across projects, per program,
and the benefits register (realisation, on track, money, ROI).

Two :class:`programview.report.Section` objects, registered after the blockers section
(``report.py`` imports this module last). Like the rest of the report they read only
``v_*`` views (``v_resource_load``, ``v_benefits``, ``v_program_benefits``; the contention
alerts come from the ``alerts`` section built before them) and show their values unchanged,
every number formatted by ``programview.formatting`` with its cell naming its view column
in the HTML. "Now" is the latest week and day the transform wrote.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from programview import report_html
from programview.formatting import field, fmt
from programview.report import (
    Scope,
    Section,
    _clip,
    _table,
    _wrap,
    field_label,
    register_section,
)

__all__ = ["BENEFITS_SECTION", "PEOPLE_SECTION", "TOP_PEOPLE"]

#: People shown per program, most stretched first.
TOP_PEOPLE = 5
#: The contention rule whose open alerts mark a person as over their WIP limit.
CONTENTION_RULE = "shared_resource_contention"

PEOPLE_COLUMNS = (
    "program_in_progress_items",
    "program_projects_in_progress",
    "program_active_sprint_points",
)
PROGRAM_BENEFIT_COLUMNS = (
    "benefits",
    "benefits_measured",
    "benefits_on_track",
    "realised_value",
    "actual_cost",
    "roi",
    "benefits_behind_pct",
    "benefits_score",
    "benefits_weight",
)
BENEFIT_COLUMNS = ("value", "target", "realisation_pct", "expected_pct", "realised_value")


# --- building --------------------------------------------------------------------------------


def build_people(scope: Scope, report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The latest week's load per person and program, most stretched first: most projects
    with work in progress, then most items in progress, then most active-sprint points.

    Each person carries the program-wide columns of their ``v_resource_load`` rows (the same
    on each of them) and the rows themselves (``projects``), with ``contention_alert`` true
    when a ``shared_resource_contention`` alert is open for them in that program.
    """
    rows = scope.rows(
        "SELECT * FROM v_resource_load WHERE week = (SELECT MAX(week) FROM v_resource_load) "
        "AND program_key IS NOT NULL"
    )
    alerted = {
        (a.get("program_key"), a.get("person"))
        for a in report.get("alerts") or []
        if a.get("rule") == CONTENTION_RULE
    }
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        grouped[(r["program_key"], r["person_id"])].append(r)
    by_program: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (program, person_id), parts in grouped.items():
        parts.sort(key=lambda r: (-(r["in_progress_items"] or 0), r["project_key"]))
        first = parts[0]
        by_program[program].append(
            {
                "person": first["person"],
                "person_id": person_id,
                "week": first["week"],
                **{c: first[c] for c in PEOPLE_COLUMNS},
                "contention_alert": (program, first["person"]) in alerted,
                "projects": parts,
            }
        )
    out = []
    for program, people in sorted(by_program.items()):
        people.sort(
            key=lambda p: (
                -(p["program_projects_in_progress"] or 0),
                -(p["program_in_progress_items"] or 0),
                -(p["program_active_sprint_points"] or 0),
                p["person"],
            )
        )
        out.append(
            {"program_key": program, "week": people[0]["week"], "people": people[:TOP_PEOPLE]}
        )
    return out


def build_benefits(scope: Scope, report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The latest day's ``v_program_benefits`` row per program, each with its latest
    ``v_benefits`` rows (``items``)."""
    programs = scope.rows(
        "SELECT * FROM v_program_benefits "
        "WHERE as_of_date = (SELECT MAX(as_of_date) FROM v_program_benefits)"
    )
    benefits = scope.rows(
        "SELECT * FROM v_benefits WHERE as_of_date = (SELECT MAX(as_of_date) FROM v_benefits)"
    )
    per: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for b in benefits:
        per[b["program_key"]].append(b)
    return [
        {**p, "items": sorted(per.get(p["program_key"], []), key=lambda b: b["benefit_key"])}
        for p in sorted(programs, key=lambda p: p["program_key"])
    ]


# --- text ------------------------------------------------------------------------------------


def _spread(person: Mapping[str, Any]) -> list[str]:
    """``["PAY 3", "WEB 2"]``: the projects where the person has work in progress."""
    return [
        f"{r['project_key']} {fmt('in_progress_items', r['in_progress_items'])}"
        for r in person["projects"]
        if r.get("in_progress_items")
    ]


def _fit(parts: list[str], room: int) -> str:
    """``parts`` joined, as many as fit in ``room`` characters, then ``+N`` for the rest."""
    for n in range(len(parts), 0, -1):
        rest = len(parts) - n
        text = ", ".join(parts[:n]) + (f" +{rest}" if rest else "")
        if len(text) <= room:
            return text
    return f"+{len(parts)}" if parts else "-"


def people_text(report: Mapping[str, Any], width: int) -> list[str]:
    entries = report.get("people") or []
    out = ["PEOPLE MOST STRETCHED ACROSS PROJECTS"]
    if not entries:
        return [*out, "  no one has work in progress in a program's projects"]
    head = ["Person", *(field_label(c) for c in PEOPLE_COLUMNS), "Alert", "In progress in"]
    for entry in entries:
        out.append(f"  {entry['program_key']} (week of {entry['week']}):")
        people = entry["people"]
        figures = [[fmt(c, p.get(c)) for c in PEOPLE_COLUMNS] for p in people]
        widths = [max([len(h), *(len(r[i]) for r in figures)]) for i, h in enumerate(head[1:4])]
        fixed = sum(w + 2 for w in widths) + len("Alert") + 2
        names = [str(p["person"]) for p in people]
        # the name column takes up to 24 characters, down to 12 when the projects need room
        name_w = max(len(head[0]), min(24, max(len(n) for n in names)))
        spread_room = width - 2 - name_w - fixed - 2
        if spread_room < 16:
            name_w = max(12, name_w - (16 - spread_room))
            spread_room = width - 2 - name_w - fixed - 2
        body = [
            [
                _clip(name, name_w),
                *cells,
                "open" if p["contention_alert"] else "-",
                _fit(_spread(p), max(8, spread_room)),
            ]
            for name, p, cells in zip(names, people, figures, strict=True)
        ]
        out += _table(head, body, align="lrrrll")
    out += _wrap(
        f"({'; '.join(f'{field_label(c)}: {field(c).help}' for c in PEOPLE_COLUMNS)}; "
        f"Alert open: {CONTENTION_RULE}, over the WIP limit in two or more projects with "
        "active sprints)",
        width,
        indent="  ",
    )
    return out


def _track(benefit: Mapping[str, Any], missing: str = "-") -> str:
    on_track = benefit.get("on_track")
    return missing if on_track is None else ("yes" if on_track else "no")


def benefits_text(report: Mapping[str, Any], width: int) -> list[str]:
    programs = report.get("benefits") or []
    out = ["BENEFITS"]
    if not programs:
        return [*out, "  no benefits registered ([[benefits]] in the config)"]
    head = ["Benefit", *(field_label(c) for c in BENEFIT_COLUMNS), "On track"]
    for p in programs:
        score = ""
        if p.get("benefits_score") is not None:
            score = (
                f"; benefits score {fmt('benefits_score', p['benefits_score'])} "
                f"(weight {fmt('benefits_weight', p.get('benefits_weight'))})"
            )
        out += _wrap(
            f"{p['program_key']}: {fmt('benefits_on_track', p.get('benefits_on_track'))} of "
            f"{fmt('benefits', p.get('benefits'))} on track "
            f"({fmt('benefits_measured', p.get('benefits_measured'))} measured), "
            f"behind plan {fmt('benefits_behind_pct', p.get('benefits_behind_pct'))}; "
            f"money value {fmt('realised_value', p.get('realised_value'))} vs actual cost "
            f"{fmt('actual_cost', p.get('actual_cost'))}: ROI {fmt('roi', p.get('roi'))}"
            f"{score}",
            width,
            indent="  ",
        )
        items = p.get("items") or []
        numbers = [[fmt(c, b.get(c)) for c in BENEFIT_COLUMNS] for b in items]
        fixed = sum(
            max([len(h), *(len(r[i]) for r in numbers)]) + 2 for i, h in enumerate(head[1:-1])
        )
        name_room = max(12, width - 2 - fixed - len(head[-1]) - 2)
        body = [
            [
                _clip(str(b.get("benefit_name") or b["benefit_key"]), name_room),
                *cells,
                _track(b),
            ]
            for b, cells in zip(items, numbers, strict=True)
        ]
        if body:
            out += _table(head, body, align="l" + "r" * len(BENEFIT_COLUMNS) + "l")
        if p.get("notes"):
            out += _wrap(str(p["notes"]), width, indent="    ")
    return out


# --- HTML ------------------------------------------------------------------------------------

_e = report_html._e
MISSING = report_html.MISSING
_H3 = "style='margin-top:12px'"


def _span(column: str, value: Any, key: Any, view: str, **extra: Any) -> str:
    """A figure inside a sentence, naming its view, row and column like a table cell."""
    attrs = "".join(f' data-{k}="{_e(v)}"' for k, v in extra.items())
    return (
        f'<span data-view="{view}" data-field="{_e(column)}" data-key="{_e(key)}"{attrs}>'
        f"{_e(fmt(column, value, missing=MISSING))}</span>"
    )


def _th(columns: Sequence[str]) -> str:
    return "".join(
        f'<th class=num title="{_e(field(c).help)}">{_e(field(c).label)}</th>' for c in columns
    )


def people_html(report: Mapping[str, Any]) -> str:
    entries = report.get("people") or []
    parts = ["<h2>People most stretched across projects</h2>"]
    if not entries:
        parts.append('<p class="empty">No one has work in progress in a program\'s projects.</p>')
    for entry in entries:
        program = entry["program_key"]
        rows = []
        for p in entry["people"]:
            first = p["projects"][0]["project_key"]
            ids = {"program": program, "project": first}
            flag = " <b>(over WIP limit)</b>" if p["contention_alert"] else ""
            spread = ", ".join(
                f"{_e(r['project_key'])} "
                + _span(
                    "in_progress_items",
                    r["in_progress_items"],
                    p["person_id"],
                    "v_resource_load",
                    program=program,
                    project=r["project_key"],
                )
                for r in p["projects"]
                if r.get("in_progress_items")
            )
            rows.append(
                f"<tr><td>{_e(p['person'])}{flag}</td>"
                + "".join(
                    report_html._cell(c, p.get(c), p["person_id"], "v_resource_load", **ids)
                    for c in PEOPLE_COLUMNS
                )
                + f"<td>{spread or MISSING}</td></tr>"
            )
        parts.append(
            f"<h3 {_H3}>{_e(program)} <small>week of {_e(entry['week'])}</small></h3>"
            f'<div class="scroll"><table id="people-{_e(program)}"><tr><th>Person</th>'
            f"{_th(PEOPLE_COLUMNS)}<th>In progress in</th></tr>{''.join(rows)}</table></div>"
        )
    return "\n".join(parts)


def benefits_html(report: Mapping[str, Any]) -> str:
    programs = report.get("benefits") or []
    parts = ["<h2>Benefits</h2>"]
    if not programs:
        parts.append('<p class="empty">No benefits registered.</p>')
    for p in programs:
        key = p["program_key"]

        def span(column: str, p: Mapping[str, Any] = p, key: Any = key) -> str:
            return _span(column, p.get(column), key, "v_program_benefits")

        score = ""
        if p.get("benefits_score") is not None:
            score = (
                f" &middot; benefits score {span('benefits_score')} "
                f"(weight {span('benefits_weight')})"
            )
        rows = "".join(
            f"<tr><td>{_e(b.get('benefit_name') or b['benefit_key'])}</td>"
            f"<td>{_e(b.get('unit'))}</td>"
            + "".join(
                report_html._cell(c, b.get(c), b["benefit_key"], "v_benefits")
                for c in BENEFIT_COLUMNS
            )
            + f"<td>{_track(b, MISSING)}</td></tr>"
            for b in p.get("items") or []
        )
        parts.append(
            f"<h3 {_H3}>{_e(key)} <small>{span('benefits_on_track')} of {span('benefits')} "
            f"on track ({span('benefits_measured')} measured) &middot; behind plan "
            f"{span('benefits_behind_pct')} &middot; money value {span('realised_value')} vs "
            f"actual cost {span('actual_cost')} &middot; ROI {span('roi')}{score}</small></h3>"
            f'<div class="scroll"><table id="benefits-{_e(key)}"><tr><th>Benefit</th>'
            f"<th>Unit</th>{_th(BENEFIT_COLUMNS)}<th>On track</th></tr>{rows}</table></div>"
        )
        if p.get("notes"):
            parts.append(f'<p class="empty">{_e(p["notes"])}</p>')
    return "\n".join(parts)


# --- registration ----------------------------------------------------------------------------

PEOPLE_SECTION = Section(
    "people",
    build_people,
    people_text,
    people_html,
    fields=(*PEOPLE_COLUMNS, "in_progress_items"),
)
BENEFITS_SECTION = Section(
    "benefits",
    build_benefits,
    benefits_text,
    benefits_html,
    fields=(*PROGRAM_BENEFIT_COLUMNS, *BENEFIT_COLUMNS),
)
register_section(PEOPLE_SECTION, after="blockers")
register_section(BENEFITS_SECTION, after="people")
