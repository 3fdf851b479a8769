"""Report sections for delivery forecasts and flow: "will each release make its date, and
what holds it back", then each project's cumulative flow and ageing work in progress.

Two :class:`programview.report.Section` objects registered after the alerts (``report.py``
imports this module last). Like the rest of the report they read only ``v_*`` views
(``v_release_forecast``, ``v_flow_daily``, ``v_work_items``) and show their values
unchanged, formatted by ``programview.formatting``; the HTML cells name their view column.
At-risk releases (P85 after the due date) come first, latest first, with their driving
blockers: that is the question a program manager opens the report with.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from programview import report_html
from programview.formatting import fmt
from programview.report import (
    Scope,
    Section,
    _clip,
    _cumulative,
    _table,
    _wrap,
    field_label,
    register_section,
)

__all__ = ["FLOW_SECTION", "FORECAST_SECTION"]

#: Releases charted (burn-up with the forecast fan), at-risk first.
CHARTED_RELEASES = 6
#: Days of cumulative flow charted per project.
CFD_DAYS = 90
#: Ageing items listed per project, oldest first.
AGEING_LISTED = 10
FORECAST_COLUMNS = ("p50_date", "p85_date", "p95_date", "probability_on_time")
#: The text report's columns (an 80-column terminal: P95 is in the JSON and HTML).
TEXT_COLUMNS = ("p50_date", "p85_date", "probability_on_time")


def at_risk(row: Mapping[str, Any]) -> bool:
    """P85 after the due date, or beyond the forecast horizon (the ``release_at_risk``
    rule)."""
    if not row.get("due_date") or not row.get("trials"):
        return False
    return row.get("p85_date") is None or (row.get("p85_days_late") or 0) > 0


# --- building --------------------------------------------------------------------------------


def build_forecasts(scope: Scope, report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The latest day's ``v_release_forecast`` rows, at-risk first (most days late first),
    then by on-time chance and due date; each with ``at_risk`` and its burn-up (``scope``,
    ``done``: cumulative points by its items' creation and resolution dates)."""
    rows = scope.rows(
        "SELECT * FROM v_release_forecast "
        "WHERE as_of_date = (SELECT MAX(as_of_date) FROM v_release_forecast)"
    )
    items = scope.rows(
        "SELECT project_key, release_name, story_points, created_at, resolved_at, "
        "status_category FROM v_work_items WHERE release_name IS NOT NULL"
    )
    members: dict[tuple[Any, Any], list[Mapping[str, Any]]] = defaultdict(list)
    for item in items:
        members[(item["project_key"], item["release_name"])].append(item)
    out = []
    for row in rows:
        added: dict[str, float] = defaultdict(float)
        done: dict[str, float] = defaultdict(float)
        for member in members.get((row["project_key"], row["release_name"]), []):
            points = float(member.get("story_points") or 0)
            if member.get("created_at"):
                added[str(member["created_at"])[:10]] += points
            if member.get("status_category") == "done" and member.get("resolved_at"):
                done[str(member["resolved_at"])[:10]] += points
        out.append(
            {**row, "at_risk": at_risk(row), "scope": _cumulative(added), "done": _cumulative(done)}
        )
    out.sort(
        key=lambda r: (
            not r["at_risk"],
            -(r.get("p85_days_late") or 10**6 if r["at_risk"] else 0),
            r.get("probability_on_time") if r.get("probability_on_time") is not None else 2.0,
            r.get("due_date") or "9999",
            str(r.get("release_name")),
        )
    )
    return out


def build_flow(scope: Scope, report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per project: its last ``CFD_DAYS`` days of ``v_flow_daily`` (``days``) and its ageing
    items (in progress longer than the threshold of the latest day), oldest first."""
    last = report.get("as_of_date")
    cutoff = (date.fromisoformat(str(last)[:10]) - timedelta(CFD_DAYS - 1)) if last else None
    since = f" AND day >= '{cutoff.isoformat()}'" if cutoff else ""
    rows = scope.rows(f"SELECT * FROM v_flow_daily WHERE 1 = 1{since}")
    wip = scope.rows(
        "SELECT item_key, title, project_key, started_at FROM v_work_items "
        "WHERE status_category = 'in_progress' AND started_at IS NOT NULL "
        "AND type_category <> 'epic'"
    )
    days: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        days[r["project_key"]].append(r)
    started: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for item in wip:
        started[item["project_key"]].append(item)
    out = []
    for key in sorted(days):
        series = sorted(days[key], key=lambda r: str(r["day"]))
        latest = series[-1]
        threshold, as_of = latest.get("ageing_threshold_days"), latest.get("as_of")
        ageing = []
        if threshold is not None and as_of:
            now = datetime.fromisoformat(str(as_of))
            for wip_item in started.get(key, []):
                age = (now - datetime.fromisoformat(str(wip_item["started_at"]))).total_seconds()
                if age / 86400 > threshold:
                    ageing.append({**wip_item, "age_days": round(age / 86400, 1)})
        ageing.sort(key=lambda i: -i["age_days"])
        out.append(
            {
                "project_key": key,
                "program_key": latest.get("program_key"),
                "latest": latest,
                "days": series,
                "ageing": ageing[:AGEING_LISTED],
            }
        )
    return out


# --- text ------------------------------------------------------------------------------------


def _driver(r: Mapping[str, Any]) -> str:
    if not r.get("driving_blocker_key"):
        return "-"
    return f"{r['driving_blocker_key']} ({r.get('driving_blocker_release') or '?'})"


def forecasts_text(report: Mapping[str, Any], width: int) -> list[str]:
    rows = report.get("forecasts") or []
    risky = sum(1 for r in rows if r["at_risk"])
    out = [f"DELIVERY FORECASTS ({risky} of {len(rows)} open releases at risk)"]
    if not rows:
        return [*out, "  no open release"]
    head = ["Release", "Due", *(field_label(c) for c in TEXT_COLUMNS)]
    cells = [
        [fmt("due_date", r.get("due_date")), *(fmt(c, r.get(c)) for c in TEXT_COLUMNS)]
        for r in rows
    ]
    fixed = sum(max([len(h), *(len(c[i]) for c in cells)]) + 2 for i, h in enumerate(head[1:]))
    room = max(12, width - 4 - fixed)
    body = [
        [
            _clip(
                f"{'! ' if r['at_risk'] else ''}{r['project_key']} {r.get('release_name')}", room
            ),
            *c,
        ]
        for r, c in zip(rows, cells, strict=True)
    ]
    out += _table(head, body, align="l" + "r" * (len(head) - 1))
    for r in rows:
        if r["at_risk"] and r.get("driving_blocker_key"):
            name = f"{r['project_key']} {r.get('release_name')}"
            out += _wrap(
                f"! {name}: P85 {fmt('p85_date', r.get('p85_date'))} vs due "
                f"{fmt('due_date', r.get('due_date'))}; driven by {r['driving_blocker_key']} "
                f"in {r.get('driving_blocker_release')}, P85 "
                f"{fmt('p85_date', r.get('driving_blocker_p85_date'))}",
                width,
                indent="  ",
            )
        if r.get("blocking_cycle"):
            out += _wrap(
                f"{r['project_key']} {r.get('release_name')}: blocking cycle with "
                f"{r['blocking_cycle']} (those links ignored)",
                width,
                indent="  ",
            )
    out += _wrap(
        "(! = at risk: P85 after the due date; Monte Carlo over the team's recent history, "
        'through what blocks its items; docs/metrics.md, "Delivery forecasts")',
        width,
        indent="  ",
    )
    return out


def flow_text(report: Mapping[str, Any], width: int) -> list[str]:
    entries = report.get("flow") or []
    out = ["FLOW (latest day; 7-day arrivals and departures)"]
    if not entries:
        return [*out, "  no flow computed yet"]
    for e in entries:
        f = e["latest"]
        ageing = ", ".join(f"{i['item_key']} {i['age_days']} d" for i in e["ageing"])
        out += _wrap(
            f"{e['project_key']} {f['day']}: to do {f['todo_items']}, in progress "
            f"{f['in_progress_items']} ({f['ageing_wip_items']} ageing"
            f"{': ' + ageing if ageing else ''}), done {f['done_items']}; last 7 days "
            f"{f['arrivals_7d']} in, {f['departures_7d']} out, net {f['net_flow_7d']:+d}",
            width,
            indent="  ",
        )
    return out


# --- HTML ------------------------------------------------------------------------------------

_e = report_html._e
FAN = "#8250df"


def forecasts_html(report: Mapping[str, Any]) -> str:
    rows = report.get("forecasts") or []
    parts = ["<h2>Delivery forecasts</h2>"]
    if not rows:
        return parts[0] + '<p class="empty">No open release.</p>'
    body = []
    for r in rows:
        key = r["release_id"]
        flag = " <b>(at risk)</b>" if r["at_risk"] else ""
        body.append(
            f"<tr><td>{_e(r['project_key'])} {_e(r.get('release_name'))}{flag}</td>"
            f"<td>{_e(fmt('due_date', r.get('due_date'), missing=report_html.MISSING))}</td>"
            + "".join(
                report_html._cell(c, r.get(c), key, "v_release_forecast") for c in FORECAST_COLUMNS
            )
            + f"<td>{_e(_driver(r))}</td></tr>"
        )
    head = "".join(f"<th class=num>{_e(field_label(c))}</th>" for c in FORECAST_COLUMNS)
    parts.append(
        '<div class="scroll"><table id="forecasts"><tr><th>Release</th><th>Due</th>'
        f"{head}<th>Driven by</th></tr>{''.join(body)}</table></div>"
    )
    charts = []
    for r in rows[:CHARTED_RELEASES]:
        title = f"{r['project_key']} {r.get('release_name') or ''}".rstrip()
        sub = f"due {r['due_date']}" if r.get("due_date") else "no due date"
        if r.get("driving_blocker_key"):
            sub += f", driven by {r['driving_blocker_key']}"
        release = {**r, "as_of_date": report.get("as_of_date")}
        charts.append(
            report_html._chart(
                f"Forecast - {title}",
                _fan_chart(release, label=f"burn-up and forecast of {title}"),
                legend=[
                    ("scope", report_html.GREY),
                    ("done", report_html.SERIES[2]),
                    ("P50 / P85 / P95", FAN),
                    ("due date", "#cf222e"),
                ],
                subtitle=sub,
            )
        )
    parts.append(f'<div class="charts">{"".join(charts)}</div>')
    return "\n".join(parts)


def _fan_chart(release: Mapping[str, Any], *, label: str) -> str:
    """The burn-up (scope and done as step lines up to the data's day) with the forecast
    fan: shaded from P50 to P95, a line at P85, the due date dashed red."""
    h = report_html
    scope = [(p["date"], float(p["points"])) for p in release.get("scope") or []]
    done = [(p["date"], float(p["points"])) for p in release.get("done") or []]
    if not scope and not done:
        return '<p class="empty">No dated items.</p>'
    p50, p85, p95 = (release.get(c) for c in ("p50_date", "p85_date", "p95_date"))
    marks = [d for d in (release.get("due_date"), release.get("as_of_date"), p50, p85, p95) if d]
    days = [h._days(d) for d, _ in scope + done]
    first, last = min(days), max(days + [h._days(d) for d in marks])
    if first == last:
        first -= 1
    grid, top = h._y_axis(max(v for _, v in scope + done))
    ticks, x = h._x_dates(first, last)
    end = h._days(release["as_of_date"]) if release.get("as_of_date") else max(days)
    y_top, y_bottom = h.TOP, h.H - h.BOTTOM

    def steps(series: list[tuple[str, float]], color: str, width: float) -> str:
        if not series:
            return ""
        pts = [(first, 0.0)]
        for d, v in series:
            pts += [(h._days(d), pts[-1][1]), (h._days(d), v)]
        pts.append((max(end, pts[-1][0]), pts[-1][1]))
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{x(day):.1f},{h._y(v, top):.1f}"
            for i, (day, v) in enumerate(pts)
        )
        return f'<path d="{path}" fill="none" stroke="{color}" stroke-width="{width}"/>'

    body = [*grid, *ticks]
    if p50 and p95:
        x0, x1 = x(h._days(p50)), x(h._days(p95))
        body.append(
            f'<rect x="{x0:.1f}" y="{y_top}" width="{max(x1 - x0, 1.5):.1f}" '
            f'height="{y_bottom - y_top}" fill="{FAN}" fill-opacity="0.15">'
            f"<title>P50 {_e(p50)} to P95 {_e(p95)}</title></rect>"
        )
    if p85:
        xp = x(h._days(p85))
        body.append(
            f'<line x1="{xp:.1f}" x2="{xp:.1f}" y1="{y_top}" y2="{y_bottom}" stroke="{FAN}" '
            f'stroke-width="2"><title>P85 {_e(p85)}</title></line>'
        )
    body += [steps(scope, h.GREY, 1.5), steps(done, h.SERIES[2], 2.2)]
    if release.get("due_date"):
        xd = x(h._days(release["due_date"]))
        body.append(
            f'<line x1="{xd:.1f}" x2="{xd:.1f}" y1="{y_top}" y2="{y_bottom}" stroke="#cf222e" '
            f'stroke-dasharray="4 3"><title>due {_e(release["due_date"])}</title></line>'
        )
    return h._frame(label, body)


def flow_html(report: Mapping[str, Any]) -> str:
    entries = report.get("flow") or []
    parts = ["<h2>Cumulative flow</h2>"]
    if not entries:
        return parts[0] + '<p class="empty">No flow computed yet.</p>'
    charts = []
    for e in entries:
        f = e["latest"]
        key = e["project_key"]
        spans = ", ".join(
            f"{label} "
            + report_html._cell(c, f.get(c), key, "v_flow_daily", day=str(f["day"])[:10])
            .replace("<td class=num", "<span")
            .replace("</td>", "</span>")
            for label, c in (
                ("to do", "todo_items"),
                ("in progress", "in_progress_items"),
                ("ageing", "ageing_wip_items"),
                ("done", "done_items"),
            )
        )
        ageing = "".join(
            f"<li>{_e(i['item_key'])} {_e(i.get('title') or '')} ({_e(i['age_days'])} d)</li>"
            for i in e["ageing"]
        )
        charts.append(
            report_html._chart(
                f"CFD - {key}",
                _cfd_chart(e["days"], label=f"cumulative flow of {key}")
                + f"<p>{spans}</p>"
                + (f"<ul>{ageing}</ul>" if ageing else ""),
                legend=[
                    ("done", report_html.SERIES[2]),
                    ("in progress", report_html.SERIES[0]),
                    ("to do", report_html.GREY),
                ],
                subtitle=str(f["day"])[:10],
            )
        )
    parts.append(f'<div class="charts">{"".join(charts)}</div>')
    return "\n".join(parts)


def _cfd_chart(days: Sequence[Mapping[str, Any]], *, label: str) -> str:
    """Stacked bands by day: done at the bottom, in progress, to do on top."""
    if not days:
        return '<p class="empty">No days.</p>'
    totals = [d["todo_items"] + d["in_progress_items"] + d["done_items"] for d in days]
    grid, top = report_html._y_axis(max(totals, default=0))
    first, last = report_html._days(str(days[0]["day"])), report_html._days(str(days[-1]["day"]))
    if first == last:
        first -= 1
    ticks, x = report_html._x_dates(first, last)
    layers = (
        ("done_items", report_html.SERIES[2]),
        ("in_progress_items", report_html.SERIES[0]),
        ("todo_items", report_html.GREY),
    )
    base = [0.0] * len(days)
    body = [*grid, *ticks]
    for column, color in layers:
        upper = [b + d[column] for b, d in zip(base, days, strict=True)]
        xs = [x(report_html._days(str(d["day"]))) for d in days]
        outline = [
            f"{xi:.1f},{report_html._y(u, top):.1f}" for xi, u in zip(xs, upper, strict=True)
        ]
        under = [
            f"{xi:.1f},{report_html._y(b, top):.1f}"
            for xi, b in zip(reversed(xs), reversed(base), strict=True)
        ]
        body.append(
            f'<polygon points="{" ".join(outline + under)}" fill="{color}" fill-opacity="0.7">'
            f"<title>{_e(column)}</title></polygon>"
        )
        base = upper
    return report_html._frame(label, body)


# --- registration ----------------------------------------------------------------------------

FORECAST_SECTION = Section(
    "forecasts",
    build_forecasts,
    forecasts_text,
    forecasts_html,
    fields=(*FORECAST_COLUMNS, "due_date"),
)
FLOW_SECTION = Section(
    "flow",
    build_flow,
    flow_text,
    flow_html,
    fields=("todo_items", "in_progress_items", "done_items", "ageing_wip_items"),
)
register_section(FORECAST_SECTION, after="alerts")
register_section(FLOW_SECTION, after="forecasts")
