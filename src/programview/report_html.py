"""The HTML report: one self-contained file with inline CSS and SVG charts.

Why hand-made SVG: the file must open offline, from an e-mail attachment or a CI artifact,
without a CDN or a JavaScript library; three chart kinds (line, grouped bars, burn-up) are a
few dozen lines of SVG each. Every text from the warehouse is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from programview.report_program import render_html_sections

STATUS_COLORS = {"green": "#2e7d32", "amber": "#d98e04", "red": "#c62828"}
SEVERITY_COLORS = {"critical": "#b71c1c", "high": "#e65100", "medium": "#c79100", "low": "#607d8b"}
SERIES = ["#1f6feb", "#8250df", "#1a7f37", "#bf3989", "#9a6700", "#0969da", "#cf222e"]
GREY = "#8c959f"

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1f2328; background: #f6f8fa; margin: 0; }
main { max-width: 1140px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 0 0 6px; }
.meta { color: #59636e; margin: 0 0 8px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 12px; }
.card, .chart { background: #fff; border: 1px solid #d0d7de; border-radius: 8px;
                padding: 12px 14px; }
.card .score { font-size: 34px; font-weight: 700; }
.card .why { color: #424a53; font-size: 13px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff;
         font-size: 12px; font-weight: 600; text-transform: uppercase; vertical-align: middle; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 12px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #d0d7de; }
th, td { padding: 5px 8px; border-bottom: 1px solid #eaeef2; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; font-size: 13px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.msg { color: #424a53; font-size: 13px; }
td.nowrap { white-space: nowrap; }
.legend { font-size: 12px; color: #59636e; }
.legend span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px;
               border-radius: 2px; vertical-align: middle; }
.empty { color: #59636e; font-style: italic; }
svg { display: block; max-width: 540px; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: #59636e; }
.scroll { overflow-x: auto; }
"""


def render_html(report: Mapping[str, Any]) -> str:
    """The whole page for a report built by ``programview.report.build_report``."""
    scope = f"program {report['program']}" if report.get("program") else "all programs"
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
        _programs(report.get("programs") or []),
        _health_charts(report["trends"].get("health") or []),
        _alerts(report.get("alerts") or []),
        _projects(report.get("projects") or []),
        _velocity_charts(report["trends"].get("velocity") or []),
        _burnup_charts(report["trends"].get("burnup") or []),
        render_html_sections(report),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


# --- sections ------------------------------------------------------------------------------


def _programs(programs: Sequence[Mapping[str, Any]]) -> str:
    if not programs:
        return '<h2>Programs</h2><p class="empty">No program health rows yet.</p>'
    cards = []
    for p in programs:
        status = p.get("health_status") or "n/a"
        color = STATUS_COLORS.get(status, GREY)
        worst = p.get("worst")
        if worst:
            reason = worst.get("why") or "no explanation recorded"
            why = (
                f"<b>Worst: {_e(worst['component'])} {_num(worst['score'], '{:.0f}')}</b>"
                f"<br>{_e(reason)}"
            )
        else:
            why = "No component has data yet."
        comps = p.get("components") or {}
        rows = "".join(
            f"<tr><td>{_e(name)}</td><td class=num>{_num(score, '{:.0f}')}</td>"
            f'<td class="msg">{_e((p.get("explanations") or {}).get(name, ""))}</td></tr>'
            for name, score in comps.items()
        )
        name = p.get("program_name") or p.get("name")
        title = _e(p.get("program_key")) + (f" <small>{_e(name)}</small>" if name else "")
        cards.append(
            f'<div class="card"><h3>{title}</h3>'
            f'<div><span class="score" style="color:{color}">'
            f"{_num(p.get('health_score'), '{:.0f}')}</span> "
            f'<span class="badge" style="background:{color}">{_e(status)}</span></div>'
            f'<p class="why">{why}</p>'
            f"<details><summary>Components</summary><table>{rows}</table></details></div>"
        )
    return f'<h2>Programs</h2><div class="cards">{"".join(cards)}</div>'


def _health_charts(series: Sequence[Mapping[str, Any]]) -> str:
    charts = [
        _chart(
            f"Health over time - {s['program_key']}",
            _line_chart(
                [(p["date"], p.get("score"), p.get("status")) for p in s["points"]],
                y_max=100.0,
                label=f"health score of {s['program_key']} by day",
            ),
            legend=[
                ("green", STATUS_COLORS["green"]),
                ("amber", STATUS_COLORS["amber"]),
                ("red", STATUS_COLORS["red"]),
            ],
        )
        for s in series
        if s.get("points")
    ]
    return _section("Health over time", charts, "No health history yet.")


def _alerts(alerts: Sequence[Mapping[str, Any]]) -> str:
    if not alerts:
        return '<h2>Open dependency alerts</h2><p class="empty">None.</p>'
    rows = []
    for a in alerts:
        sev = a.get("severity") or "n/a"
        rows.append(
            f'<tr><td><span class="badge" style="background:{SEVERITY_COLORS.get(sev, GREY)}">'
            f"{_e(sev)}</span></td><td>{_e(a.get('rule'))}</td>"
            f"<td>{_e(a.get('blocked_item_key'))} <small>({_e(a.get('blocked_project_key'))})"
            f"</small></td><td>{_e(a.get('blocking_item_key'))} "
            f"<small>({_e(a.get('blocking_project_key'))})</small></td>"
            f"<td class=num>{_num(a.get('slip_days'), '{:.0f}')}</td>"
            f"<td class=nowrap>{_e((a.get('first_seen_at') or '')[:10])}</td>"
            f'<td class="msg">{_e(a.get("message"))}</td></tr>'
        )
    return (
        f'<h2>Open dependency alerts ({len(alerts)})</h2><div class="scroll"><table><tr>'
        "<th>Severity</th><th>Rule</th><th>Blocked</th><th>Blocking</th>"
        "<th class=num>Slip days</th><th>Since</th><th>Why</th></tr>"
        f"{''.join(rows)}</table></div>"
    )


PROJECT_COLUMNS = [
    ("velocity_points", "Velocity", "{:.1f}"),
    ("say_do_ratio", "Say/do", "{:.0%}"),
    ("throughput_per_week", "Items/wk", "{:.1f}"),
    ("cycle_time_p50_days", "Cycle p50 (d)", "{:.1f}"),
    ("cycle_time_p85_days", "Cycle p85 (d)", "{:.1f}"),
    ("defect_density", "Bugs/100 pts", "{:.1f}"),
    ("on_time_delivery_rate", "On time", "{:.0%}"),
    ("cpi", "CPI", "{:.2f}"),
    ("spi", "SPI", "{:.2f}"),
    ("scope_change_pct", "Scope change", "{:.0%}"),
    ("open_blockers", "Blocked by", "{:.0f}"),
]


def _projects(projects: Sequence[Mapping[str, Any]]) -> str:
    if not projects:
        return '<h2>Projects</h2><p class="empty">No project metrics yet.</p>'
    head = "".join(f"<th class=num>{_e(label)}</th>" for _, label, _ in PROJECT_COLUMNS)
    rows = "".join(
        f"<tr><td><b>{_e(p.get('project_key'))}</b></td><td>{_e(p.get('program_key'))}</td>"
        + "".join(
            f"<td class=num>{_num(p.get(col), spec)}</td>" for col, _, spec in PROJECT_COLUMNS
        )
        + "</tr>"
        for p in projects
    )
    return (
        f'<h2>Projects ({len(projects)})</h2><div class="scroll"><table><tr><th>Project</th>'
        f"<th>Program</th>{head}</tr>{rows}</table></div>"
    )


def _velocity_charts(series: Sequence[Mapping[str, Any]]) -> str:
    charts = [
        _chart(
            f"Velocity per sprint - {s['project_key']}",
            _bar_chart(
                [
                    (
                        sp.get("sprint_name") or "?",
                        sp.get("committed_points"),
                        sp.get("completed_points"),
                    )
                    for sp in s["sprints"]
                ],
                label=f"committed and completed points per sprint of {s['project_key']}",
            ),
            legend=[("committed", "#b6d4fe"), ("completed", SERIES[0])],
        )
        for s in series
        if s.get("sprints")
    ]
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
    """Date x axis: a function day-ordinal -> x, with 2-4 date labels."""
    span = max(last - first, 1)

    def x(day: int) -> float:
        return LEFT + (W - LEFT - RIGHT) * (day - first) / span

    labels = (
        sorted({first, first + span // 3, first + 2 * span // 3, last})
        if span > 6
        else [first, last]
    )
    out = [
        f'<text x="{x(d):.1f}" y="{H - 8}" text-anchor="{anchor}">'
        f"{date.fromordinal(d).strftime('%b %d')}</text>"
        for d, anchor in zip(
            labels, ["start"] + ["middle"] * (len(labels) - 2) + ["end"], strict=False
        )
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


def _bar_chart(bars: Sequence[tuple[str, float | None, float | None]], *, label: str) -> str:
    """Committed (light) and completed (solid) points side by side per sprint."""
    values = [float(v) for _, a, b in bars for v in (a, b) if v is not None]
    grid, top = _y_axis(max(values, default=0.0))
    slot = (W - LEFT - RIGHT) / max(len(bars), 1)
    bar = min(slot * 0.38, 22)
    body = [*grid]
    for i, (name, committed, completed) in enumerate(bars):
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
            f"{_e(_clip(name, max(int(slot / 6.5), 3)))}</text>"
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


def _num(value: Any, spec: str) -> str:
    if value is None:
        return "&ndash;"
    try:
        return _e(spec.format(float(value)))
    except (TypeError, ValueError):
        return _e(value)


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"
