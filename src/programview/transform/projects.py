"""Project metrics (docs/metrics.md, "Project metrics"): one row per project and day.

The heavy lifting is a handful of set-based queries, each returning a row per project or
per (source, scope):

* one pass over all live ``work_items`` for every all-time count and point sum at once
  (``FILTER`` clauses, grouped in the order of the source/scope index, so without a sort);
* one index range scan over the items resolved in the recent windows (throughput,
  delivered points, velocity windows, cycle-time percentiles);
* the few items re-estimated inside the scope-change window;
* worklogs joined to their items, imported costs;
* the small derived tables (``sprint_metrics``, ``release_metrics``).

Those over synced tables only are independent of what the transform writes, so the runner
may run them on side connections (``SyncedReads``). Combining them per project is plain
Python over a few dozen numbers.

Conventions shared by every metric:

* project membership: ``work_items`` join ``project_scopes`` on (source, scope);
* *delivered* = done (resolved at or before as_of), not closed as "not planned", not an epic
  (epics are containers: their points, if any, duplicate their children's);
* point sums count an unestimated item (NULL) as 0 and ``unestimated_items`` counts it;
* windows are (as_of - N days, as_of];
* a metric without the data it needs is NULL and ``notes`` says why.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

import sqlalchemy as sa

from programview.transform._sql import SCOPE_PROJECT_CTE, Ctx, fetch, points_at, scope_projects
from programview.transform.flow import (
    BEFORE_COUNTS,
    FlowReads,
    before_columns,
    flow_params,
    read_items,
)


@dataclass(frozen=True, slots=True)
class ProjectInfo:
    key: str
    program_key: str | None
    budget: float | None
    start: date | None
    end: date | None
    hourly_rate: float | None


def _projects(ctx: Ctx) -> list[ProjectInfo]:
    rows = fetch(
        ctx.conn,
        "SELECT key, program_key, budget, start_date, end_date, hourly_rate FROM projects "
        "ORDER BY key",
        columns={"start_date": sa.Date(), "end_date": sa.Date()},
    )
    return [ProjectInfo(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


def _velocity_windows(ctx: Ctx) -> list[tuple[datetime, datetime]]:
    """(start, end] of the fallback velocity windows, newest first."""
    m = ctx.config.metrics
    width = timedelta(days=m.velocity_window_days)
    count = max(1, (m.throughput_weeks * 7) // m.velocity_window_days)
    return [(ctx.as_of - (k + 1) * width, ctx.as_of - k * width) for k in range(count)]


#: "open at {t}": created by then and not done by then (done without a date: done).
_OPEN_AT = (  # the "not done" test first: it is false for most items and ends the AND early
    "NOT (wi.status_category = 'done' AND (wi.resolved_at IS NULL OR wi.resolved_at <= {t})) "
    "AND (wi.created_at IS NULL OR wi.created_at <= {t})"
)
_LIVE = "NOT wi.is_deleted AND (wi.created_at IS NULL OR wi.created_at <= :as_of)"
_DELIVERED = "wi.status_category = 'done' AND NOT wi.not_delivered AND wi.type_category <> 'epic'"


Sums = dict[str, float]


def _by_project(scopes: dict[tuple[str, str], str], rows: Any) -> dict[str, Sums]:
    """Add up rows grouped by (source_name, scope) into their projects."""
    out: dict[str, Sums] = {}
    for row in rows:
        project = scopes.get((row.source_name, row.scope))
        if project is None:
            continue
        acc = out.setdefault(project, defaultdict(float))
        for name, value in row._mapping.items():
            if name not in ("source_name", "scope"):
                acc[name] += float(value or 0)
    return out


def _item_aggregates(ctx: Ctx, scopes: dict[tuple[str, str], str]) -> dict[str, Sums]:
    """Every all-time count and point sum over live work items, in one pass grouped by
    (source, scope) in the order of the source/scope index (so without a sort). The flow's
    counts before its window (``flow.BEFORE_COUNTS``) ride along: the same pass, not another
    read of every item."""
    m = ctx.config.metrics
    days = timedelta(days=1)
    params: dict[str, Any] = {
        "as_of": ctx.as_of,
        "t_defect": ctx.as_of - m.defect_window_days * days,
        "t_scope": ctx.as_of - m.scope_change_days * days,
        "t_trend": ctx.as_of - m.bug_trend_days * days,
        **flow_params(ctx),
    }
    flow = before_columns()
    sql = f"""
SELECT wi.source_name, wi.scope,
  COUNT(*) AS item_count,
  COUNT(*) FILTER (WHERE wi.type_category <> 'epic') AS countable_items,
  COUNT(*) FILTER (WHERE wi.type_category <> 'epic' AND wi.story_points IS NULL)
    AS unestimated_items,
  SUM(wi.story_points) FILTER (WHERE wi.type_category <> 'epic' AND NOT wi.not_delivered)
    AS total_points,
  SUM(wi.story_points) FILTER (
    WHERE {_DELIVERED} AND (wi.resolved_at IS NULL OR wi.resolved_at <= :as_of)) AS done_points,
  COUNT(*) FILTER (WHERE wi.type_category = 'bug' AND {_OPEN_AT.format(t=":as_of")})
    AS open_bugs,
  COUNT(*) FILTER (WHERE wi.type_category = 'bug' AND {_OPEN_AT.format(t=":t_trend")})
    AS open_bugs_then,
  COUNT(*) FILTER (WHERE wi.type_category = 'bug' AND wi.created_at > :t_defect)
    AS bugs_created,
  SUM(wi.story_points) FILTER (WHERE wi.type_category <> 'epic' AND wi.created_at > :t_scope)
    AS scope_added_points,
{flow}  SUM(wi.story_points) FILTER (
    WHERE wi.type_category <> 'epic' AND {_OPEN_AT.format(t=":t_scope")}) AS scope_base_points
FROM work_items wi
WHERE {_LIVE}
GROUP BY wi.source_name, wi.scope
"""
    return _by_project(scopes, fetch(ctx.conn, sql, params))


@dataclass(slots=True)
class Recent:
    """What the items delivered inside the longest recent window add up to, per project."""

    sums: Sums
    cycle_items: int = 0
    cycle_p50: float | None = None
    cycle_p85: float | None = None


#: Cycle-time percentiles taken (percent).
_PERCENTILES = (50, 85)


def _recent_deliveries(ctx: Ctx) -> dict[str, Recent]:
    """Throughput, delivered points, the fallback velocity windows and cycle-time
    percentiles, per project: one index range scan over the items resolved in the longest of
    those windows.

    Percentiles are numpy's default (linear interpolation between closest ranks): for n
    values sorted ascending and q in [0, 1], h = (n - 1) * q and the result is
    x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]). SQLite has no percentile
    function, so the two ranks around h are picked with ROW_NUMBER (on both databases, one
    code path) and interpolated here.
    """
    m = ctx.config.metrics
    sql = ctx.sql
    days = timedelta(days=1)
    windows = _velocity_windows(ctx)
    params: dict[str, Any] = {
        "as_of": ctx.as_of,
        "t_thru": ctx.as_of - 7 * m.throughput_weeks * days,
        "t_defect": ctx.as_of - m.defect_window_days * days,
        "t_cycle": ctx.as_of - m.cycle_time_days * days,
    }
    params["t_min"] = min(*params.values(), windows[-1][0])
    for k, (start, end) in enumerate(windows):
        params[f"vw{k}_start"], params[f"vw{k}_end"] = start, end
    vw = "".join(
        f"    SUM(story_points) FILTER (WHERE resolved_at > :vw{k}_start "
        f"AND resolved_at <= :vw{k}_end) AS vw{k},\n"
        for k in range(len(windows))
    )
    ranks = "".join(
        f"    MAX(cycle_days) FILTER (WHERE i = {sql.floor(_rank(q))}) AS p{q}_lo,\n"
        f"    MAX(cycle_days) FILTER (WHERE i = {sql.floor(_rank(q))} + 1) AS p{q}_hi,\n"
        for q in _PERCENTILES
    )
    rows = fetch(
        ctx.conn,
        f"""
WITH {SCOPE_PROJECT_CTE},
r AS MATERIALIZED (
  SELECT sp.project_key, wi.story_points, wi.resolved_at,
         CASE WHEN wi.resolved_at > :t_cycle AND wi.started_at <= wi.resolved_at
              THEN {sql.days_between("wi.resolved_at", "wi.started_at")} END AS cycle_days
  FROM work_items wi
  JOIN scope_project sp ON sp.source_name = wi.source_name AND sp.scope = wi.scope
  WHERE wi.resolved_at > :t_min AND wi.resolved_at <= :as_of AND {_DELIVERED} AND {_LIVE}
),
ranked AS (
  SELECT project_key, cycle_days,
         ROW_NUMBER() OVER (PARTITION BY project_key ORDER BY cycle_days) - 1 AS i,
         COUNT(*) OVER (PARTITION BY project_key) AS n
  FROM r WHERE cycle_days IS NOT NULL
),
pct AS (
  SELECT project_key,
{ranks}    MAX(n) AS cycle_items
  FROM ranked GROUP BY project_key
),
totals AS (
  SELECT project_key,
{vw}    COUNT(*) FILTER (WHERE resolved_at > :t_thru) AS throughput_items,
    SUM(story_points) FILTER (WHERE resolved_at > :t_defect) AS delivered_points
  FROM r GROUP BY project_key
)
SELECT t.*, pct.cycle_items, {", ".join(f"pct.p{q}_lo, pct.p{q}_hi" for q in _PERCENTILES)}
FROM totals t LEFT JOIN pct ON pct.project_key = t.project_key
""",
        params,
    )
    out: dict[str, Recent] = {}
    for row in rows:
        r = row._mapping
        sums: Sums = defaultdict(float)
        for name in (
            "throughput_items",
            "delivered_points",
            *(f"vw{k}" for k in range(len(windows))),
        ):
            sums[name] = float(r[name] or 0)
        n = int(r["cycle_items"] or 0)
        p50, p85 = (_interpolate(n, q / 100, r[f"p{q}_lo"], r[f"p{q}_hi"]) for q in _PERCENTILES)
        out[r["project_key"]] = Recent(sums, n, p50, p85)
    return out


def _rank(q: int) -> str:
    """h = (n - 1) * q in double precision (as numpy and _interpolate compute it; a
    PostgreSQL numeric product could floor to a different rank)."""
    return f"(n - 1) * CAST({q / 100} AS DOUBLE PRECISION)"


def _interpolate(n: int, q: float, lo: float | None, hi: float | None) -> float | None:
    """numpy's linear percentile from the values at ranks floor(h) and floor(h) + 1."""
    if not n or lo is None:
        return None
    h = (n - 1) * q
    frac = h - math.floor(h)
    return float(lo) if hi is None or frac == 0 else float(lo) + frac * (float(hi) - float(lo))


def _estimate_history(ctx: Ctx, scopes: dict[tuple[str, str], str]) -> dict[str, Sums]:
    """Scope-change inputs that need estimate history: the base valued at each item's
    estimate at the start of the window rather than today's (a correction to the all-time
    pass), and the points added by raising estimates inside the window. Only items
    re-estimated since the window started can differ, so this reads the few changes in the
    window (an index range), not the whole history."""
    t0 = ctx.as_of - timedelta(days=ctx.config.metrics.scope_change_days)
    rows = fetch(
        ctx.conn,
        f"""
SELECT wi.source_name, wi.scope,
  SUM(COALESCE({points_at("wi.id", ":t0")}, 0) - COALESCE(wi.story_points, 0))
    AS scope_base_fix,
  SUM((SELECT SUM(e.to_points - COALESCE(e.from_points, 0)) FROM estimate_changes e
        WHERE e.work_item_id = wi.id AND e.changed_at > :t0 AND e.changed_at <= :as_of
          AND e.to_points > COALESCE(e.from_points, 0))) AS reestimated_up
FROM (SELECT DISTINCT work_item_id FROM estimate_changes WHERE changed_at > :t0) ch
JOIN work_items wi ON wi.id = ch.work_item_id
WHERE {_LIVE} AND wi.type_category <> 'epic' AND {_OPEN_AT.format(t=":t0")}
GROUP BY wi.source_name, wi.scope
""",
        {"t0": t0, "as_of": ctx.as_of},
    )
    return _by_project(scopes, rows)


@dataclass(frozen=True, slots=True)
class SprintFigures:
    committed: float
    completed: float
    #: exact (a float from SQLite's julianday is off by ~1e-10, enough to push a forecast
    #: that is a whole number of days one day later)
    length_days: Fraction | None


def _closed_sprints(ctx: Ctx) -> dict[str, list[SprintFigures]]:
    """The last ``velocity_sprints`` closed sprints of each project, newest first."""
    rows = fetch(
        ctx.conn,
        f"""
WITH {SCOPE_PROJECT_CTE}
SELECT COALESCE(sp.project_key, m.project_key) AS project_key,
       m.committed_points, m.completed_points, s.start_at, s.end_at
FROM sprint_metrics m
JOIN sprints s ON s.id = m.sprint_id
LEFT JOIN scope_project sp ON sp.source_name = s.source_name AND sp.scope = s.scope
WHERE s.state = 'closed' AND m.close_at <= :as_of
  AND COALESCE(sp.project_key, m.project_key) IS NOT NULL
ORDER BY 1, m.close_at DESC, m.sprint_id DESC
""",
        {"as_of": ctx.as_of},
        {"start_at": sa.DateTime(), "end_at": sa.DateTime()},
    )
    out: dict[str, list[SprintFigures]] = defaultdict(list)
    limit = ctx.config.metrics.velocity_sprints
    for project, committed, completed, start, end in rows:
        if len(out[project]) < limit:
            length = None
            if start is not None and end is not None:
                length = Fraction((end - start) // _MICROSECOND, _MICROSECONDS_A_DAY)
            out[project].append(SprintFigures(float(committed), float(completed), length))
    return out


_MICROSECOND = timedelta(microseconds=1)
_MICROSECONDS_A_DAY = 86_400_000_000


def _on_time(ctx: Ctx) -> dict[str, tuple[int, int]]:
    """(on time, judged) releases per project: due or released in the window, with a verdict."""
    days = ctx.config.metrics.on_time_window_days
    rows = fetch(
        ctx.conn,
        f"""
WITH {SCOPE_PROJECT_CTE}
SELECT COALESCE(sp.project_key, m.project_key) AS project_key,
       SUM(CASE WHEN m.on_time THEN 1 ELSE 0 END) AS on_time, COUNT(*) AS judged
FROM release_metrics m
JOIN releases r ON r.id = m.release_id
LEFT JOIN scope_project sp ON sp.source_name = r.source_name AND sp.scope = r.scope
WHERE m.on_time IS NOT NULL AND COALESCE(sp.project_key, m.project_key) IS NOT NULL
  AND ((m.planned_date > :d0 AND m.planned_date <= :d1)
       OR (m.released_at > :t0 AND m.released_at <= :as_of))
GROUP BY COALESCE(sp.project_key, m.project_key)
""",
        {
            "d0": ctx.as_of_date - timedelta(days=days),
            "d1": ctx.as_of_date,
            "t0": ctx.as_of - timedelta(days=days),
            "as_of": ctx.as_of,
        },
    )
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def _actuals(
    ctx: Ctx, scopes: dict[tuple[str, str], str], projects: list[ProjectInfo]
) -> tuple[dict[str, float], dict[str, float]]:
    """Imported costs (of projects with any import) and hours logged up to as_of (of
    projects with an hourly rate and no import: the only ones whose actual cost comes from
    worklogs, so the worklog join is skipped when there are none)."""
    costs = {
        r[0]: float(r[1])
        for r in fetch(
            ctx.conn,
            "SELECT project_key, COALESCE(SUM(CASE WHEN date <= :d THEN amount END), 0) "
            "FROM project_costs GROUP BY project_key",
            {"d": ctx.as_of_date},
        )
    }
    if not any(p.hourly_rate is not None and p.key not in costs for p in projects):
        return costs, {}
    hours = fetch(
        ctx.conn,
        """
SELECT wi.source_name, wi.scope, SUM(wl.hours) AS hours
FROM worklogs wl
JOIN work_items wi ON wi.id = wl.work_item_id
WHERE wl.started_at <= :as_of
GROUP BY wi.source_name, wi.scope
""",
        {"as_of": ctx.as_of},
    )
    return costs, {k: v["hours"] for k, v in _by_project(scopes, hours).items()}


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


@dataclass(slots=True)
class ProjectResult:
    """One project's metric values (``project_metrics`` columns) and why some are NULL."""

    info: ProjectInfo
    values: dict[str, Any]
    reasons: dict[str, str]


@dataclass(frozen=True, slots=True)
class SyncedReads:
    """The heavy aggregates over synced tables only (work_items, worklogs, estimate
    changes): they do not depend on anything the transform writes, so the runner may start
    them on other connections while it refreshes sprints, releases and alerts."""

    scopes: dict[tuple[str, str], str]
    projects: list[ProjectInfo]

    def tasks(self) -> dict[str, Callable[[Ctx], Any]]:
        """Independent read-only queries by name; each takes a Ctx (its own connection)."""
        return {
            "items": lambda c: _item_aggregates(c, self.scopes),
            "actuals": lambda c: _actuals(c, self.scopes, self.projects),
            "recent": _recent_deliveries,
            "history": lambda c: _estimate_history(c, self.scopes),
            "flow": read_items,
        }


def flow_reads(reads: SyncedReads, results: dict[str, Any]) -> FlowReads:
    """The flow's synced data out of ``reads.tasks()``'s results (``items`` holds its counts
    before the window)."""
    before = {
        project: {name: sums.get(name, 0.0) for name in BEFORE_COUNTS}
        for project, sums in results["items"].items()
    }
    return FlowReads(before, results["flow"], reads.scopes)


def synced_reads(ctx: Ctx) -> SyncedReads:
    """The small lookups the heavy synced-table queries need (read on the main connection)."""
    return SyncedReads(scope_projects(ctx), _projects(ctx))


def compute_project_metrics(
    ctx: Ctx,
    open_blockers: dict[str, int],
    reads: SyncedReads | None = None,
    results: dict[str, Any] | None = None,
) -> list[ProjectResult]:
    """Every project's metrics. ``results`` holds the outcome of ``reads.tasks()`` when the
    runner already ran them (concurrently); otherwise they run here, in order."""
    reads = reads or synced_reads(ctx)
    if results is None:
        results = {name: task(ctx) for name, task in reads.tasks().items()}
    agg, recent, history = results["items"], results["recent"], results["history"]
    costs, hours = results["actuals"]
    sprints = _closed_sprints(ctx)
    on_time = _on_time(ctx)
    nothing = Recent(defaultdict(float))

    out: list[ProjectResult] = []
    for info in reads.projects:
        v: dict[str, Any] = {"open_blockers": open_blockers.get(info.key, 0)}
        why: dict[str, str] = {}
        a = agg.get(info.key)
        r = recent.get(info.key, nothing)
        v["item_count"] = int(a["item_count"]) if a else 0
        if a is None:
            for name in _ITEM_METRICS:
                why[name] = "no work items synced for this project"
        pace = _velocity(ctx, v, why, sprints.get(info.key, []), r, has_items=a is not None)
        if a is not None:
            _item_figures(ctx, v, why, a, r, history.get(info.key, defaultdict(float)))
        _cycle_time(ctx, v, why, r, has_items=a is not None)
        _on_time_rate(ctx, v, why, on_time.get(info.key))
        _budget(ctx, info, v, why, costs, hours)
        _forecast(ctx, info, v, why, pace)
        # a reason only for what stayed NULL
        why = {k: reason for k, reason in why.items() if v.get(k) is None}
        out.append(ProjectResult(info, v, why))
    return out


#: Metrics that need the project's work items (NULL, with a reason, without any).
_ITEM_METRICS = (
    "velocity_points",
    "velocity_cv",
    "say_do_ratio",
    "throughput_per_week",
    "cycle_time",
    "defect_density",
    "open_bug_trend_pct",
    "scope_change_pct",
    "earned_value",
    "forecast_slip_days",
)


def _velocity(
    ctx: Ctx,
    v: dict[str, Any],
    why: dict[str, str],
    closed: list[SprintFigures],
    recent: Recent,
    *,
    has_items: bool,
) -> Fraction | None:
    """Velocity, its stability and say/do. Returns the pace the forecast divides by, points
    per day (velocity / mean sprint or window length), in exact arithmetic: "rounded up to
    whole days" must give the same day on every database, also when the quotient is a whole
    number (float noise would make it one day more). None without work items."""
    m = ctx.config.metrics
    if closed:
        series = [s.completed for s in closed]
        v["velocity_sprints"] = len(closed)
        v["say_do_ratio"] = _div(sum(series), sum(s.committed for s in closed))
        if v["say_do_ratio"] is None:
            why["say_do_ratio"] = "no points committed in the last closed sprints"
        lengths = [s.length_days for s in closed if s.length_days]
        cadence = (
            sum(lengths, Fraction(0)) / len(lengths)
            if lengths
            else Fraction(m.velocity_window_days)
        )
    elif has_items:
        series = [recent.sums[f"vw{k}"] for k in range(len(_velocity_windows(ctx)))]
        v["velocity_sprints"] = 0
        why["say_do_ratio"] = "no closed sprints (nothing was committed)"
        cadence = Fraction(m.velocity_window_days)
    else:
        return None
    v["velocity_points"] = statistics.fmean(series)
    if len(series) >= 2 and v["velocity_points"] > 0:
        v["velocity_cv"] = statistics.pstdev(series) / v["velocity_points"]
    else:
        why["velocity_cv"] = (
            "fewer than 2 closed sprints" if len(series) < 2 else ("no points delivered")
        )
    return sum(map(Fraction, series), Fraction(0)) / len(series) / cadence


def _item_figures(
    ctx: Ctx, v: dict[str, Any], why: dict[str, str], a: Sums, r: Recent, fix: Sums
) -> None:
    """Throughput, defects, bugs, point totals, estimate coverage and scope change."""
    m = ctx.config.metrics
    v["throughput_per_week"] = r.sums["throughput_items"] / m.throughput_weeks
    v["bugs_created"] = int(a["bugs_created"])
    v["delivered_points"] = r.sums["delivered_points"]
    v["defect_density"] = _div(100.0 * v["bugs_created"], v["delivered_points"])
    if v["defect_density"] is None:
        why["defect_density"] = f"no points delivered in the last {m.defect_window_days} days"
    v["open_bugs"] = int(a["open_bugs"])
    then = int(a["open_bugs_then"])
    v["open_bug_trend_pct"] = 100.0 * (v["open_bugs"] - then) / max(then, 1)
    v["total_points"] = a["total_points"]
    v["done_points"] = a["done_points"]
    v["remaining_points"] = a["total_points"] - a["done_points"]
    v["unestimated_items"] = int(a["unestimated_items"])
    countable = int(a["countable_items"])
    if countable:
        v["estimate_coverage_pct"] = 100.0 * (countable - v["unestimated_items"]) / countable
    base = a["scope_base_points"] + fix["scope_base_fix"]
    added = a["scope_added_points"] + fix["reestimated_up"]
    v["scope_change_pct"] = _div(100.0 * added, base)
    if v["scope_change_pct"] is None:
        why["scope_change_pct"] = f"no open estimated points {m.scope_change_days} days ago"


def _cycle_time(
    ctx: Ctx, v: dict[str, Any], why: dict[str, str], r: Recent, *, has_items: bool
) -> None:
    if r.cycle_items:
        v["cycle_time_p50_days"] = r.cycle_p50
        v["cycle_time_p85_days"] = r.cycle_p85
        v["cycle_time_items"] = r.cycle_items
    elif has_items:
        days = ctx.config.metrics.cycle_time_days
        why["cycle_time"] = f"no item with a start time delivered in the last {days} days"


def _on_time_rate(
    ctx: Ctx, v: dict[str, Any], why: dict[str, str], judged: tuple[int, int] | None
) -> None:
    if judged:
        v["on_time_delivery_rate"] = judged[0] / judged[1]
        v["releases_judged"] = judged[1]
    else:
        v["releases_judged"] = 0
        days = ctx.config.metrics.on_time_window_days
        why["on_time_delivery_rate"] = f"no release due or released in the last {days} days"


def _budget(
    ctx: Ctx,
    info: ProjectInfo,
    v: dict[str, Any],
    why: dict[str, str],
    costs: dict[str, float],
    hours: dict[str, float],
) -> None:
    """Earned value management: PV, AC, EV, CV, CPI, SPI (docs/metrics.md, "Budget")."""
    if info.budget is None or info.start is None or info.end is None:
        missing = [
            n
            for n, x in (("budget", info.budget), ("start", info.start), ("end", info.end))
            if x is None
        ]
        why["planned_value"] = f"no {'/'.join(missing)} configured for the project"
    else:
        total_days = (info.end - info.start).days
        elapsed = (ctx.as_of_date - info.start).days
        share = (1.0 if elapsed >= 0 else 0.0) if total_days <= 0 else elapsed / total_days
        v["planned_value"] = info.budget * min(1.0, max(0.0, share))

    if info.key in costs:
        v["actual_cost"], v["actual_cost_source"] = costs[info.key], "costs"
    elif info.hourly_rate is None:
        why["actual_cost"] = "no imported costs and no hourly_rate configured for worklogs"
    elif info.key in hours:
        v["actual_cost"] = hours[info.key] * info.hourly_rate
        v["actual_cost_source"] = "worklogs"
    else:
        why["actual_cost"] = "no imported costs and no worklogs up to as_of"

    total = v.get("total_points")
    if info.budget is None:
        why["earned_value"] = "no budget configured for the project"
    elif not total:
        why.setdefault("earned_value", "no estimated points in the project")
    else:
        v["earned_value"] = info.budget * v["done_points"] / total

    ev, ac, pv = v.get("earned_value"), v.get("actual_cost"), v.get("planned_value")
    if ev is not None and ac is not None:
        v["budget_variance"] = ev - ac
    v["cpi"] = _div(ev, ac)
    v["spi"] = _div(ev, pv)
    if v["cpi"] is None:
        why["cpi"] = why.get("earned_value") or why.get("actual_cost") or "actual cost is 0"
    if v["spi"] is None:
        why["spi"] = why.get("earned_value") or why.get("planned_value") or "planned value is 0"


def _forecast(
    ctx: Ctx, info: ProjectInfo, v: dict[str, Any], why: dict[str, str], pace: Fraction | None
) -> None:
    """Finish date at the current velocity (``pace``: points per day, exact), against the
    project's end date."""
    remaining = v.get("remaining_points")
    if remaining is None or pace is None:
        why.setdefault("forecast_slip_days", "no work items synced for this project")
        return
    if remaining <= 0:
        v["forecast_finish_date"] = ctx.as_of_date
    elif pace <= 0:
        why["forecast_slip_days"] = "velocity is 0, so no finish date can be forecast"
        return
    else:
        days = math.ceil(Fraction(remaining) / pace)
        v["forecast_finish_date"] = ctx.as_of_date + timedelta(days=days)
    if info.end is None:
        why["forecast_slip_days"] = "no end date configured for the project"
    else:
        v["forecast_slip_days"] = (v["forecast_finish_date"] - info.end).days
