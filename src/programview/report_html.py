"""The HTML report: one self-contained file with inline CSS and SVG charts.

Why hand-made SVG: the file must open offline, from an e-mail attachment or a CI artifact,
without a CDN or a JavaScript library; three chart kinds (line, grouped bars, burn-up) are a
few dozen lines of SVG each. Every text from the warehouse is HTML-escaped, and every number
is formatted by ``programview.formatting`` (the same labels and units as the text report).
Each figure's cell names its view column (``data-field``) and row (``data-key``), so a test
or a scraper can check it against the warehouse.

``programview.report`` calls the fragment functions here, one per report section, and
:func:`page` puts them together.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from programview.formatting import (
    FLOW_COLUMNS,
    HEALTH_COLUMNS,
    PLAN_COLUMNS,
    field,
    fmt,
    fmt_points,
    metric_field,
)

STATUS_COLORS = {"green": "#2e7d32", "amber": "#b26a00", "red": "#c62828"}
SEVERITY_COLORS = {"critical": "#b71c1c", "high": "#e65100", "medium": "#a66f00", "low": "#607d8b"}
SERIES = ["#1f6feb", "#8250df", "#1a7f37", "#bf3989", "#9a6700", "#0969da", "#cf222e"]
GREY = "#8c959f"
MISSING = "–"

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1f2328; background: #f6f8fa; margin: 0; }
main { max-width: 1280px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 0 0 6px; }
.meta { color: #59636e; margin: 0 0 8px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 12px; }
.card, .chart, .panel { background: #fff; border: 1px solid #d0d7de; border-radius: 8px;
                padding: 12px 14px; min-width: 0; overflow-wrap: break-word; }
.panel { margin: 12px 0; }
.card .score { font-size: 34px; font-weight: 700; }
.card .why { color: #424a53; font-size: 13px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff;
         font-size: 12px; font-weight: 600; text-transform: uppercase; vertical-align: middle;
         white-space: nowrap; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 12px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #d0d7de; }
th, td { padding: 5px 8px; border-bottom: 1px solid #eaeef2; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; font-size: 13px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.msg { color: #424a53; font-size: 13px; }
td.nowrap { white-space: nowrap; }
tr.component td { background: #f6f8fa; font-weight: 600; }
td.indent { padding-left: 22px; }
.legend { font-size: 12px; color: #59636e; }
.legend span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px;
               border-radius: 2px; vertical-align: middle; }
.empty { color: #59636e; font-style: italic; }
svg { display: block; width: 100%; max-width: 560px; height: auto; overflow: hidden; }
svg text { font: 11px system-ui, sans-serif; fill: #59636e; }
.scroll { overflow-x: auto; }
.chart h3 small { white-space: nowrap; }
details > summary { cursor: pointer; color: #0969da; margin: 6px 0; }
"""


def page(report: Mapping[str, Any], fragments: Sequence[str]) -> str:
    """The whole page: title, metrics day, status legend, then each section's fragment."""
    scope = f"program {report['program']}" if report.get("program") else "all programs"
    legend = (report.get("legend") or {}).get("text") or ""
    swatches = "".join(
        f'<span style="background:{c}"></span>{_e(n)}' for n, c in STATUS_COLORS.items()
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>programview report - {_e(scope)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f"<h1>Program view - {_e(scope)}</h1>",
        f'<p class="meta">Metrics as of <b>{_e(report.get("as_of_date") or "n/a")}</b>'
        f" &middot; generated {_e(str(report.get('generated_at', ''))[:16].replace('T', ' '))}"
        " UTC</p>",
        f'<p class="legend" id="status-legend">Status {swatches} &middot; {_e(legend)}</p>',
        *fragments,
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


# --- sections ------------------------------------------------------------------------------


#: Report keys that are not view columns: where their values come from.
SOURCES = {"planned_end_date": ("v_projects", "end_date")}


def _cell(column: str, value: Any, key: Any, view: str, **extra: Any) -> str:
    """A number cell that names where its value comes from: view, row key and column."""
    view, source = SOURCES.get(column, (view, column))
    attrs = "".join(f' data-{k}="{_e(v)}"' for k, v in extra.items())
    return (
        f'<td class=num data-view="{view}" data-field="{_e(source)}" data-key="{_e(key)}"'
        f"{attrs}>{_e(fmt(column, value, missing=MISSING))}</td>"
    )


def _badge(status: str | None) -> str:
    color = STATUS_COLORS.get(status or "", GREY)
    return f'<span class="badge" style="background:{color}">{_e(status or "no data")}</span>'


def programs(report: Mapping[str, Any]) -> str:
    programs = report.get("programs") or []
    if not programs:
        return '<h2>Programs</h2><p class="empty">No program health rows yet.</p>'
    cards = []
    for p in programs:
        key = p.get("program_key")
        status = p.get("health_status")
        color = STATUS_COLORS.get(status or "", GREY)
        worst = p.get("worst")
        if worst:
            why = (
                f"Weakest: <b>{_e(worst['component'])} {_e(fmt('score', worst['score']))}</b>"
                " (explained below)"
            )
        else:
            why = "No component has data yet."
        rows = "".join(
            f"<tr><td>{_e(c['component'].capitalize())}</td>"
            + _cell(f"{c['component']}_score", c.get("score"), key, "v_program_health")
            + _cell(
                "component_weight",
                c.get("weight"),
                key,
                "v_health_inputs",
                component=c["component"],
            )
            + f"<td>{_badge(c.get('status'))}</td></tr>"
            for c in p.get("breakdown") or []
        )
        name = p.get("program_name")
        headline = fmt("health_score", p.get("health_score"), missing=MISSING)
        title = _e(key) + (f" <small>{_e(name)}</small>" if name else "")
        cards.append(
            f'<div class="card"><h3>{title}</h3>'
            f'<div><span class="score" style="color:{color}" data-view="v_program_health" '
            f'data-field="health_score" data-key="{_e(key)}">{_e(headline)}</span> '
            f"{_badge(status)}</div>"
            f'<p class="why">{why}</p>'
            "<table><tr><th>Component</th><th class=num>Score</th><th class=num>Weight</th>"
            f"<th>Status</th></tr>{rows}</table></div>"
        )
    return f'<h2>Programs</h2><div class="cards">{"".join(cards)}</div>' + "".join(
        _explained(p) for p in programs
    )


def _explained(program: Mapping[str, Any]) -> str:
    """Program score -> component -> project -> metric, as one table."""
    key = program.get("program_key")
    body = []
    for c in program.get("breakdown") or []:
        comp = c["component"]
        weight = fmt("component_weight", c.get("weight"), missing=MISSING)
        body.append(
            f'<tr class="component"><td colspan=2>{_e(comp.capitalize())} '
            f"{_badge(c.get('status'))}</td><td class=msg>weight {_e(weight)}</td><td></td>"
            + _cell(f"{comp}_score", c.get("score"), key, "v_program_health")
            + "</tr>"
        )
        if not c.get("projects"):
            body.append(
                f'<tr><td colspan=5 class="msg indent">{_e(c.get("explanation") or "no data")}'
                "</td></tr>"
            )
        for pr in c.get("projects") or []:
            pkey = pr["project_key"]
            body.append(
                f'<tr><td class="indent"><b>{_e(pkey)}</b></td><td colspan=3 class=msg>'
                f"mean of its {_e(comp)} metrics</td>"
                + _cell(f"{comp}_score", pr.get("score"), pkey, "v_project_metrics")
                + "</tr>"
            )
            for m in pr.get("metrics") or []:
                spec = metric_field(m["metric"])
                value = (
                    _cell_metric(m.get("value"), pkey, m["metric"])
                    if m.get("value") is not None
                    else f"<td class=msg>no data: {_e(m.get('reason'))}</td>"
                )
                body.append(
                    f'<tr><td class="indent"></td><td>{_e(spec.label)}</td>{value}'
                    f"<td class=msg>{_e(fmt_points(m['metric'], m.get('thresholds') or []))}</td>"
                    + _cell("score", m.get("score"), pkey, "v_health_inputs", metric=m["metric"])
                    + "</tr>"
                )
    if not body:
        return ""
    score = fmt("health_score", program.get("health_score"), missing=MISSING)
    return (
        f'<div class="panel explained" id="explained-{_e(key)}"><h3>Health of {_e(key)} '
        f"explained: {_e(score)} {_badge(program.get('health_status'))}</h3>"
        '<p class="legend">The score is the weighted mean of the components with data; a '
        "component is the mean of its projects' scores; a project's is the mean of its "
        "metrics' scores, each scored linearly between the thresholds (value → score).</p>"
        '<div class="scroll"><table><tr><th>Component / project</th><th>Metric</th>'
        "<th class=num>Value</th><th>Thresholds (value → score)</th><th class=num>Score</th>"
        f"</tr>{''.join(body)}</table></div></div>"
    )


def _cell_metric(value: Any, key: Any, metric: str) -> str:
    spec = metric_field(metric)
    return (
        f'<td class=num data-view="v_health_inputs" data-field="value" data-key="{_e(key)}" '
        f'data-metric="{_e(metric)}">{_e(fmt(spec, value, missing=MISSING))}</td>'
    )


def alerts(report: Mapping[str, Any]) -> str:
    alerts = report.get("alerts") or []
    if not alerts:
        return '<h2>Open dependency alerts</h2><p class="empty">None.</p>'
    rows = []
    for a in alerts:
        sev = a.get("severity") or "n/a"
        rows.append(
            f'<tr><td><span class="badge" style="background:{SEVERITY_COLORS.get(sev, GREY)}">'
            f"{_e(sev)}</span></td><td>{_e(a.get('rule'))}</td>"
            f"<td>{_alert_item(a, 'blocked')}</td><td>{_alert_item(a, 'blocking')}</td>"
            + _cell("slip_days", a.get("slip_days"), a.get("alert_id"), "v_dependency_alerts")
            + f"<td class=nowrap>{_e((a.get('first_seen_at') or '')[:10])}</td>"
            f'<td class="msg">{_e(a.get("message"))}</td></tr>'
        )
    return (
        f'<h2>Open dependency alerts ({len(alerts)})</h2><div class="scroll"><table '
        'id="alerts"><tr><th>Severity</th><th>Rule</th><th>Blocked</th><th>Blocking</th>'
        f"<th class=num>{_e(field('slip_days').label)}</th><th>Since</th><th>Why</th></tr>"
        f"{''.join(rows)}</table></div>"
    )


def _alert_item(alert: Mapping[str, Any], side: str) -> str:
    """``PAY-12 (PAY)``; an alert about a person (``shared_resource_contention``) has none."""
    key = alert.get(f"{side}_item_key")
    if not key:
        return MISSING
    return f"{_e(key)} <small>({_e(alert.get(f'{side}_project_key'))})</small>"


def blockers(report: Mapping[str, Any]) -> str:
    links = report.get("blockers") or []
    quiet = [b for b in links if not b.get("alerted")]
    title = f"Open blockers without an alert ({len(quiet)} of {len(links)})"
    if not quiet:
        text = (
            "No open cross-project blockers."
            if not links
            else "Every open cross-project blocker raises an alert (above)."
        )
        return f'<h2>{_e(title)}</h2><p class="empty">{text}</p>'
    rows = []
    for b in quiet:
        checks = "".join(
            f"<li><b>{_e(c['rule'])}</b>: {_e(c['reason'])}</li>" for c in b.get("checks") or []
        )
        rows.append(
            f"<tr><td class=nowrap>{_e(b['blocked_item_key'])} "
            f"<small>({_e(b.get('blocked_project_key'))})</small></td>"
            f"<td class=nowrap>{_e(b['blocking_item_key'])} "
            f"<small>({_e(b.get('blocking_project_key'))})</small></td>"
            f'<td class="msg"><ul style="margin:0;padding-left:18px">{checks}</ul></td></tr>'
        )
    return (
        f"<h2>{_e(title)}</h2>"
        '<p class="legend">Each is counted in its project\'s Blockers column; no alert rule '
        "holds for it, and each rule says why.</p>"
        '<div class="scroll"><table id="blockers"><tr><th>Blocked</th><th>Blocked by</th>'
        f"<th>Why no alert</th></tr>{''.join(rows)}</table></div>"
    )


def projects(report: Mapping[str, Any]) -> str:
    projects = report.get("projects") or []
    if not projects:
        return '<h2>Projects</h2><p class="empty">No project metrics yet.</p>'

    def table(table_id: str, columns: Sequence[str], extra: str = "") -> str:
        head = "".join(
            f'<th class=num title="{_e(field(c).help)}">{_e(field(c).label)}</th>' for c in columns
        )
        rows = "".join(
            f"<tr><td><b>{_e(p.get('project_key'))}</b></td><td>{_e(p.get('program_key'))}</td>"
            + (f"<td>{_badge(p.get('health_status'))}</td>" if extra else "")
            + "".join(
                _cell(c, p.get(c), p.get("project_key"), "v_project_metrics") for c in columns
            )
            + "</tr>"
            for p in projects
        )
        return (
            f'<div class="scroll"><table id="{table_id}"><tr><th>Project</th><th>Program</th>'
            f"{extra}{head}</tr>{rows}</table></div>"
        )

    units = "; ".join(f"{field(c).label}: {field(c).help}" for c in (*FLOW_COLUMNS, *PLAN_COLUMNS))
    return (
        f"<h2>Projects ({len(projects)})</h2>"
        + table("projects-flow", FLOW_COLUMNS)
        + "<h3 style='margin-top:12px'>Plan and budget: forecast finish vs planned end</h3>"
        + table("projects-plan", PLAN_COLUMNS)
        + f'<p class="legend">{_e(units)}</p>'
        + "<h3 style='margin-top:12px'>Project health</h3>"
        + table("projects-health", HEALTH_COLUMNS, extra="<th>Status</th>")
    )


def trends(report: Mapping[str, Any]) -> str:
    data = report.get("trends") or {}
    return (
        _health_charts(data.get("health") or [])
        + _velocity_charts(data.get("velocity") or [])
        + _burnup_charts(data.get("burnup") or [])
    )


def _health_charts(series: Sequence[Mapping[str, Any]]) -> str:
    charts = [
        _chart(
            f"Health over time - {s['program_key']}",
            _line_chart(
                [(p["date"], p.get("score"), p.get("status")) for p in s["points"]],
                y_max=100.0,
                label=f"health score of {s['program_key']} by day",
            ),
            legend=[(name, color) for name, color in STATUS_COLORS.items()],
        )
        for s in series
        if s.get("points")
    ]
    return _section("Health over time", charts, "No health history yet.")


def _velocity_charts(series: Sequence[Mapping[str, Any]]) -> str:
    charts = []
    for s in series:
        if not s.get("sprints"):
            continue
        names = [sp.get("sprint_name") or "?" for sp in s["sprints"]]
        prefix = os.path.commonprefix(names) if len(names) > 1 else ""
        prefix = prefix[: prefix.rfind(" ") + 1] if " " in prefix else ""
        subtitle = f"sprints {names[0]} to {names[-1]}" if len(names) > 1 else names[0]
        charts.append(
            _chart(
                f"Velocity per sprint - {s['project_key']}",
                _bar_chart(
                    [
                        (
                            name,
                            name[len(prefix) :] or name,
                            sp.get("committed_points"),
                            sp.get("completed_points"),
                        )
                        for name, sp in zip(names, s["sprints"], strict=True)
                    ],
                    label=f"committed and completed points per sprint of {s['project_key']}",
                ),
                legend=[("committed", "#b6d4fe"), ("completed", SERIES[0])],
                subtitle=subtitle,
            )
        )
    return _section("Velocity per sprint", charts, "No closed sprints yet.")


def _burnup_charts(series: Sequence[Mapping[str, Any]]) -> str:
    charts = []
    for s in series:
        due = s.get("due_date")
        title = f"Burn-up - {s['project_key']} {s.get('release_name') or ''}".rstrip()
        subtitle = f"due {due}" if due else "no due date"
        if s.get("state") == "released" and s.get("released_at"):
            subtitle += f", released {str(s['released_at'])[:10]}"
        charts.append(
            _chart(
                title,
                _burnup_chart(s, label=f"burn-up of {title}"),
                legend=[("scope", GREY), ("done", SERIES[2]), ("due date", "#cf222e")],
                subtitle=subtitle,
            )
        )
    return _section("Burn-up per release", charts, "No release has items yet.")


def _section(title: str, charts: list[str], empty: str) -> str:
    body = (
        f'<div class="charts">{"".join(charts)}</div>'
        if charts
        else f'<p class="empty">{empty}</p>'
    )
    return f"<h2>{_e(title)}</h2>{body}"


def _chart(
    title: str, svg: str, *, legend: Sequence[tuple[str, str]] = (), subtitle: str = ""
) -> str:
    keys = "".join(f'<span style="background:{c}"></span>{_e(n)}' for n, c in legend)
    sub = f' <small class="legend">{_e(subtitle)}</small>' if subtitle else ""
    return (
        f'<div class="chart"><h3>{_e(title)}{sub}</h3>{svg}<div class="legend">{keys}</div></div>'
    )


# --- SVG charts ----------------------------------------------------------------------------

W, H = 360, 200
LEFT, RIGHT, TOP, BOTTOM = 40, 16, 10, 28
#: Width of one label character (11 px system-ui), with a margin, for fitting labels.
CHAR_PX = 6.6


def _frame(label: str, body: list[str]) -> str:
    return (
        f'<svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{_e(label)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{_e(label)}</title>{"".join(body)}</svg>'
    )


def _y_axis(y_max: float) -> tuple[list[str], float]:
    """Grid lines and labels for 0..y_max rounded up to a nice number; returns the top."""
    step = _nice_step(y_max / 4 if y_max > 0 else 1)
    top = step * math.ceil(y_max / step) if y_max > 0 else step * 4
    out = []
    value = 0.0
    while value <= top + 1e-9:
        y = _y(value, top)
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>'
            f'<text x="{LEFT - 5}" y="{y + 4:.1f}" text-anchor="end">{_short(value)}</text>'
        )
        value += step
    return out, top


def _nice_step(raw: float) -> float:
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if mult * power >= raw:
            return mult * power
    return 10 * power


def _y(value: float, top: float) -> float:
    return TOP + (H - TOP - BOTTOM) * (1 - value / top)


def _short(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _days(iso: str) -> int:
    return date.fromisoformat(iso[:10]).toordinal()


def _x_dates(first: int, last: int) -> tuple[list[str], Any]:
    """Date x axis: a function day-ordinal -> x, with 2-4 ISO date labels (with the year),
    the first and last always, the ones between only where they do not overlap."""
    span = max(last - first, 1)

    def x(day: int) -> float:
        return LEFT + (W - LEFT - RIGHT) * (day - first) / span

    width = len("2026-01-01") * CHAR_PX
    inner = sorted({first + span // 3, first + 2 * span // 3} - {first, last})
    kept: list[tuple[int, str]] = [(first, "start")]
    right_edge = x(first) + width
    for day in inner if span > 6 else []:
        left, right = x(day) - width / 2, x(day) + width / 2
        if left >= right_edge + 6 and right <= x(last) - width - 6:
            kept.append((day, "middle"))
            right_edge = right
    if last != first:
        kept.append((last, "end"))
    out = [
        f'<text x="{x(d):.1f}" y="{H - 8}" text-anchor="{anchor}">'
        f"{date.fromordinal(d).isoformat()}</text>"
        for d, anchor in kept
    ]
    return out, x


def _line_chart(
    points: Sequence[tuple[str, float | None, str | None]], *, y_max: float, label: str
) -> str:
    """Score by day: a grey line, each day's dot in its status colour (the real status, so a
    configured threshold is never redrawn wrongly)."""
    data = [(d, float(v), s) for d, v, s in points if v is not None]
    if not data:
        return '<p class="empty">No scored days yet.</p>'
    grid, top = _y_axis(y_max)
    first, last = _days(data[0][0]), _days(data[-1][0])
    if first == last:
        first -= 1
    ticks, x = _x_dates(first, last)
    path = " ".join(
        f"{'M' if i == 0 else 'L'}{x(_days(d)):.1f},{_y(v, top):.1f}"
        for i, (d, v, _) in enumerate(data)
    )
    dots = "".join(
        f'<circle cx="{x(_days(d)):.1f}" cy="{_y(v, top):.1f}" r="3" '
        f'fill="{STATUS_COLORS.get(s or "", GREY)}"><title>{_e(d)}: {v:.0f} ({_e(s)})</title>'
        "</circle>"
        for d, v, s in data
    )
    return _frame(
        label,
        [*grid, *ticks, f'<path d="{path}" fill="none" stroke="{GREY}" stroke-width="1.5"/>', dots],
    )


def _bar_chart(bars: Sequence[tuple[str, str, float | None, float | None]], *, label: str) -> str:
    """Committed (light) and completed (solid) points side by side per sprint, labelled with
    the sprint's short name when every one fits under its bars, else its position (the full
    name is in each bar's tooltip and the chart's subtitle)."""
    values = [float(v) for *_, a, b in bars for v in (a, b) if v is not None]
    grid, top = _y_axis(max(values, default=0.0))
    slot = (W - LEFT - RIGHT) / max(len(bars), 1)
    bar = min(slot * 0.38, 22)
    fits = all(len(short) * CHAR_PX <= slot - 4 for _, short, *_ in bars)
    body = [*grid]
    for i, (name, short, committed, completed) in enumerate(bars):
        x0 = LEFT + i * slot + slot / 2 - bar
        for j, (value, color) in enumerate(((committed, "#b6d4fe"), (completed, SERIES[0]))):
            if value is None:
                continue
            y = _y(float(value), top)
            body.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{y:.1f}" width="{bar - 1:.1f}" '
                f'height="{H - BOTTOM - y:.1f}" fill="{color}"><title>{_e(name)}: '
                f"{'committed' if j == 0 else 'completed'} {_short(float(value))}</title></rect>"
            )
        body.append(
            f'<text x="{LEFT + i * slot + slot / 2:.1f}" y="{H - 8}" text-anchor="middle">'
            f"{_e(short if fits else f'#{i + 1}')}<title>{_e(name)}</title></text>"
        )
    return _frame(label, body)


def _burnup_chart(release: Mapping[str, Any], *, label: str) -> str:
    """Scope and done as step lines over time, the due date as a dashed red line."""
    scope = [(p["date"], float(p["points"])) for p in release.get("scope") or []]
    done = [(p["date"], float(p["points"])) for p in release.get("done") or []]
    if not scope and not done:
        return '<p class="empty">No dated items.</p>'
    days = [_days(d) for d, _ in scope + done]
    end_candidates = [d for d in (release.get("due_date"), release.get("as_of_date")) if d]
    if release.get("state") == "released" and release.get("released_at"):
        end_candidates = [
            release["released_at"],
            *([release["due_date"]] if release.get("due_date") else []),
        ]
    last = max(days + [_days(d) for d in end_candidates])
    first = min(days)
    if first == last:
        first -= 1
    grid, top = _y_axis(max(v for _, v in scope + done))
    ticks, x = _x_dates(first, last)
    # Lines stop at the data's day (or the release day): what comes after is not known yet.
    stop = release.get("as_of_date")
    if release.get("state") == "released" and release.get("released_at"):
        stop = release["released_at"]
    end = min(last, max(_days(stop), max(days))) if stop else last

    def steps(series: list[tuple[str, float]], color: str, width: float) -> str:
        if not series:
            return ""
        pts = [(first, 0.0)]
        for d, v in series:
            day = _days(d)
            pts += [(day, pts[-1][1]), (day, v)]
        pts.append((end, pts[-1][1]))
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{x(day):.1f},{_y(v, top):.1f}"
            for i, (day, v) in enumerate(pts)
        )
        return f'<path d="{path}" fill="none" stroke="{color}" stroke-width="{width}"/>'

    body = [*grid, *ticks, steps(scope, GREY, 1.5), steps(done, SERIES[2], 2.2)]
    if release.get("due_date"):
        xd = x(_days(release["due_date"]))
        body.append(
            f'<line x1="{xd:.1f}" x2="{xd:.1f}" y1="{TOP}" y2="{H - BOTTOM}" stroke="#cf222e" '
            f'stroke-dasharray="4 3"><title>due {_e(release["due_date"])}</title></line>'
        )
    return _frame(label, body)


# --- helpers -------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)
