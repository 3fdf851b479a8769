"""Flow metrics per project and day (docs/metrics.md, "Flow"): the data of a cumulative flow
diagram (items to do, in progress and done at the end of each day), arrivals and departures,
and ageing work in progress (in progress longer than the project's cycle-time P85).

Why from timestamps and not replayed status changes: ``created_at``, ``started_at`` (first
move to in progress) and ``resolved_at`` exist for every tool, while status histories differ
(GitHub keeps none); three dates per item make the counts one set-based pass. Each item
contributes three events (created, left to do, done) on calendar days; the counts at the end
of a day are the running sums of those events, so the database groups events by day and
Python only adds up a few hundred numbers per project.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from programview.transform._sql import SCOPE_PROJECT_CTE, Ctx, fetch
from programview.warehouse.db import table

_EPOCH = date(1970, 1, 1)


def _events_sql(ctx: Ctx) -> str:
    """How many items per project and (created, started, done) days; every day before
    the window is one bucket (``:epoch``), so old items fall into a few groups and only the
    recent timestamps need a calendar date. The day an item left to do is derived from these
    in Python (``_left``), per group: in SQL its nested CASEs would be expanded into every
    expression using them (three times the date arithmetic per row)."""
    d = ctx.sql.date

    def day(ts: str) -> str:
        return f"CASE WHEN {ts} < :start THEN :epoch ELSE {d(ts)} END"

    return f"""
WITH {SCOPE_PROJECT_CTE},
it AS (
  SELECT sp.project_key,
         CASE WHEN wi.created_at IS NULL THEN :epoch ELSE {day("wi.created_at")} END AS c,
         CASE WHEN wi.status_category <> 'todo' AND wi.started_at <= :as_of
              THEN {day("wi.started_at")} END AS s,
         CASE WHEN wi.status_category = 'done' AND wi.resolved_at IS NULL
              THEN CASE WHEN wi.created_at IS NULL THEN :epoch ELSE {day("wi.created_at")} END
              WHEN wi.status_category = 'done' AND wi.resolved_at <= :as_of
              THEN {day("wi.resolved_at")} END AS r
  FROM work_items wi
  JOIN scope_project sp ON sp.source_name = wi.source_name AND sp.scope = wi.scope
  WHERE NOT wi.is_deleted AND wi.type_category <> 'epic'
    AND (wi.created_at IS NULL OR wi.created_at <= :as_of)
)
SELECT project_key, c, s, r, COUNT(*) AS n FROM it GROUP BY project_key, c, s, r
"""


def _left(c: date, s: date | None, r: date | None) -> tuple[date, date | None, date | None]:
    """(created, left to do, done) days: an item leaves to do when it starts, or when it is
    done without a start; neither before the day it was created."""
    left = r if s is None else (s if r is None or s < r else r)
    return c, (c if left is not None and left < c else left), (c if r is not None and r < c else r)


def _wip_sql(ctx: Ctx) -> str:
    """Items in progress at some point of the window, with their start and done day."""
    d = ctx.sql.date
    return f"""
WITH {SCOPE_PROJECT_CTE}
SELECT sp.project_key, wi.started_at, wi.created_at,
       CASE WHEN wi.status_category = 'done' AND wi.resolved_at <= :as_of
            THEN {d("wi.resolved_at")} END AS r
FROM work_items wi
JOIN scope_project sp ON sp.source_name = wi.source_name AND sp.scope = wi.scope
WHERE NOT wi.is_deleted AND wi.type_category <> 'epic' AND wi.status_category <> 'todo'
  AND (wi.created_at IS NULL OR wi.created_at <= :as_of)
  AND wi.started_at <= :as_of
  AND NOT (wi.status_category = 'done' AND wi.resolved_at IS NULL)
  AND (wi.status_category <> 'done' OR wi.resolved_at > :start)
"""


def refresh_flow(ctx: Ctx, cycle_p85: dict[str, float | None]) -> int:
    """Rewrite ``flow_daily`` for the last ``metrics.flow_days`` days of every project.
    ``cycle_p85``: each project's cycle-time P85 (days) of this run. Returns rows written."""
    today = ctx.as_of_date
    start = today - timedelta(days=ctx.config.metrics.flow_days - 1)
    days = [start + timedelta(days=k) for k in range((today - start).days + 1)]
    params: dict[str, Any] = {
        "as_of": ctx.as_of,
        "epoch": _EPOCH,
        "start": datetime.combine(start, time.min),
    }
    base: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    daily: dict[str, dict[tuple[str, date], int]] = defaultdict(lambda: defaultdict(int))
    types = {"c": sa.Date(), "s": sa.Date(), "r": sa.Date()}
    for project, c, s, r, n in fetch(ctx.conn, _events_sql(ctx), params, types):
        for kind, day in zip(("c", "l", "r"), _left(c, s, r), strict=True):
            if day is None:
                continue
            if day < start:
                base[project][kind] += int(n)
            else:
                daily[project][(kind, day)] += int(n)

    # Ageing: an item counts from the first day that ends more than P85 days after its
    # start (for today: as_of) until the day before it is done. A difference array per
    # project: one step per item, not one per item and day.
    ageing: dict[str, list[int]] = defaultdict(lambda: [0] * (len(days) + 1))
    for project, started, created, done_day in fetch(
        ctx.conn,
        _wip_sql(ctx),
        params,
        {"started_at": sa.DateTime(), "created_at": sa.DateTime(), "r": sa.Date()},
    ):
        p85 = cycle_p85.get(project)
        if p85 is None:
            continue
        first = max(started.date(), created.date()) if created else started.date()
        old = started + timedelta(days=p85)  # older than P85 after this moment
        # a day before today ends at the next midnight: ageing from old's own date on
        lo = max(first, old.date())
        stop = min(done_day or today, today)  # exclusive, before today's special case
        steps = ageing[project]
        if lo < stop:
            steps[(lo - start).days if lo > start else 0] += 1
            steps[max(0, (stop - start).days)] -= 1
        if (done_day is None or done_day > today) and first <= today and ctx.as_of > old:
            steps[len(days) - 1] += 1
            steps[len(days)] -= 1
    counts: dict[str, list[int]] = {}
    for project, steps in ageing.items():
        total, out = 0, []
        for k in range(len(days)):
            total += steps[k]
            out.append(total)
        counts[project] = out

    rows: list[dict[str, Any]] = []
    projects = [r[0] for r in fetch(ctx.conn, "SELECT key FROM projects ORDER BY key")]
    for project in projects:
        acc = dict(base[project])
        got = daily[project]
        for k, day in enumerate(days):
            for kind in ("c", "l", "r"):
                acc[kind] = acc.get(kind, 0) + got.get((kind, day), 0)
            created, left, done = acc["c"], acc["l"], acc["r"]
            rows.append(
                {
                    "project_key": project,
                    "day": day,
                    "as_of": ctx.as_of,
                    "todo_items": created - left,
                    "in_progress_items": left - done,
                    "done_items": done,
                    "arrivals": got.get(("c", day), 0),
                    "departures": got.get(("r", day), 0),
                    "ageing_wip_items": counts[project][k] if project in counts else 0,
                    "ageing_threshold_days": cycle_p85.get(project),
                }
            )
    tbl = table("flow_daily")
    ctx.conn.execute(tbl.delete().where(tbl.c.day >= start))
    for i in range(0, len(rows), 5000):
        ctx.conn.execute(tbl.insert(), rows[i : i + 5000])
    return len(rows)
