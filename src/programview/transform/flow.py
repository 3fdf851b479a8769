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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from programview.transform._sql import Ctx, fetch, fetch_tuples, scope_projects
from programview.warehouse.db import table

_EPOCH = date(1970, 1, 1)


#: The three events of an item, as SQL over ``work_items wi`` (live, non-epic, created by
#: ``:as_of``): it is created; it is done (``r`` valid: done, resolved by ``:as_of`` or without
#: a time, which counts as done the day it was created); it was started (``s`` valid: not to
#: do, started by ``:as_of``).
_NOT_TODO_STARTED = "wi.status_category <> 'todo' AND wi.started_at <= :as_of"
_CREATED_BEFORE = "(wi.created_at IS NULL OR wi.created_at < :flow_start)"

#: Items whose created / left to do / done day falls before the window, as ``FILTER``
#: conditions (see ``_left``: an event is never before the day the item was created, and an
#: item leaves to do on the earlier of its start and its done day). Every other item's events
#: are on days inside the window, and only those items are read one by one
#: (``_items_sql``): most items are long done, so the counts before the window come from one
#: aggregate, which the project metrics' pass over all items computes alongside its own
#: (``BEFORE_COUNTS`` is spliced into it), and the window reads a sixth of the items.
BEFORE_COUNTS: dict[str, str] = {
    "flow_before_c": f"wi.type_category <> 'epic' AND {_CREATED_BEFORE}",
    "flow_before_l": (
        f"wi.type_category <> 'epic' AND {_CREATED_BEFORE} AND ("
        "(wi.status_category <> 'todo' AND wi.started_at < :flow_start) OR "
        "(wi.status_category = 'done' "
        "AND (wi.resolved_at IS NULL OR wi.resolved_at < :flow_start)))"
    ),
    "flow_before_r": (
        f"wi.type_category <> 'epic' AND {_CREATED_BEFORE} AND wi.status_category = 'done' "
        "AND (wi.resolved_at IS NULL OR wi.resolved_at < :flow_start)"
    ),
}

#: In progress at some point of the window (ageing WIP): started by as_of, not done before the
#: window started (done without a time: done since it was created, never ageing).
_WIP = (
    f"{_NOT_TODO_STARTED} "
    "AND NOT (wi.status_category = 'done' AND wi.resolved_at IS NULL) "
    "AND (wi.status_category <> 'done' OR wi.resolved_at > :flow_start)"
)
#: May have an event inside the window or be ``_WIP``: a superset, cheap to test on every
#: item (which events are inside, and whether it is ``_WIP``, is decided per item read).
_MAYBE_IN_WINDOW = (
    "(wi.created_at >= :flow_start OR wi.resolved_at >= :flow_start "
    "OR wi.started_at >= :flow_start "
    "OR (wi.status_category NOT IN ('todo', 'done') AND wi.started_at IS NOT NULL))"
)
_LIVE_COUNTED = (
    "NOT wi.is_deleted AND wi.type_category <> 'epic' "
    "AND (wi.created_at IS NULL OR wi.created_at <= :as_of)"
)


def before_columns() -> str:
    """``BEFORE_COUNTS`` as select-list columns over ``work_items wi``, each ending ``,``."""
    return "".join(
        f"  COUNT(*) FILTER (WHERE {cond}) AS {name},\n" for name, cond in BEFORE_COUNTS.items()
    )


def before_sql() -> str:
    """``BEFORE_COUNTS`` per (source, scope), on its own (when the project metrics' pass did
    not compute them)."""
    return f"""
SELECT
{before_columns()}  wi.source_name, wi.scope
FROM work_items wi
WHERE NOT wi.is_deleted AND (wi.created_at IS NULL OR wi.created_at <= :as_of)
GROUP BY wi.source_name, wi.scope
"""


def _items_sql(ctx: Ctx) -> str:
    """The items with an event inside the window or in progress during it: their (created,
    started, done) days as day numbers (``Sql.day_number``; every day before the window one
    bucket, ``:epoch``), and for those in progress their start and creation time. No join:
    the scope's project is looked up in Python, so the database reads the covering
    ``resolved_at`` index alone. The day an item left to do is derived in Python (``_left``):
    in SQL its nested CASEs would be expanded into every expression using them."""
    n = ctx.sql.day_number

    def day(ts: str) -> str:
        return f"CASE WHEN {ts} < :flow_start THEN :epoch ELSE {n(ts)} END"

    created = f"CASE WHEN wi.created_at IS NULL THEN :epoch ELSE {day('wi.created_at')} END"
    return f"""
SELECT wi.source_name, wi.scope,
  {created} AS c,
  CASE WHEN {_NOT_TODO_STARTED} THEN {day("wi.started_at")} END AS s,
  CASE WHEN wi.status_category = 'done' AND wi.resolved_at IS NULL THEN {created}
       WHEN wi.status_category = 'done' AND wi.resolved_at <= :as_of
       THEN {day("wi.resolved_at")} END AS r,
  CASE WHEN {_WIP} THEN wi.started_at END AS wip_started,
  CASE WHEN {_WIP} THEN wi.created_at END AS wip_created
FROM work_items wi
WHERE {_LIVE_COUNTED} AND {_MAYBE_IN_WINDOW}
"""


def _left(c: int, s: int | None, r: int | None) -> tuple[int, int | None, int | None]:
    """(created, left to do, done) day numbers: an item leaves to do when it starts, or when
    it is done without a start; neither before the day it was created."""
    left = r if s is None else (s if r is None or s < r else r)
    return c, (c if left is not None and left < c else left), (c if r is not None and r < c else r)


def window_start(ctx: Ctx) -> date:
    """The first day of the flow window (``metrics.flow_days`` days ending today)."""
    return ctx.as_of_date - timedelta(days=ctx.config.metrics.flow_days - 1)


def _params(ctx: Ctx) -> dict[str, Any]:
    return {
        "as_of": ctx.as_of,
        "epoch": _EPOCH.toordinal(),
        "flow_start": datetime.combine(window_start(ctx), time.min),
    }


def flow_params(ctx: Ctx) -> dict[str, Any]:
    """The parameters ``BEFORE_COUNTS`` needs (``:flow_start``; ``:as_of`` is shared)."""
    return {"flow_start": _params(ctx)["flow_start"]}


@dataclass(frozen=True, slots=True)
class FlowReads:
    """What the flow reads from synced tables: per project, the items created / left to do /
    done before the window (``flow_before_c/l/r``), and the items of ``_items_sql``."""

    before: dict[str, dict[str, float]]
    items: Sequence[tuple[Any, ...]]
    #: (source, scope) -> project, for ``items``
    scopes: dict[tuple[str, str], str]


def read_items(ctx: Ctx) -> list[tuple[Any, ...]]:
    """``_items_sql``'s rows as plain tuples (days are integers; SQLite's timestamps text,
    parsed here): reads synced tables only, so it may run on a side connection."""
    rows = fetch_tuples(ctx.conn, _items_sql(ctx), _params(ctx))
    if ctx.sql.dialect != "sqlite":
        return rows
    iso = datetime.fromisoformat
    return [
        r if r[5] is None else (*r[:5], iso(r[5]), None if r[6] is None else iso(r[6]))
        for r in rows
    ]


def read_flow(ctx: Ctx, scopes: dict[tuple[str, str], str]) -> FlowReads:
    """Both reads on ``ctx``'s connection (when nothing computed the counts before the
    window already)."""
    before: dict[str, dict[str, float]] = {}
    for row in fetch(ctx.conn, before_sql(), _params(ctx)):
        project = scopes.get((row.source_name, row.scope))
        if project is None:
            continue
        acc = before.setdefault(project, defaultdict(float))
        for name in BEFORE_COUNTS:
            acc[name] += float(row._mapping[name] or 0)
    return FlowReads(before, read_items(ctx), scopes)


def refresh_flow(
    ctx: Ctx, cycle_p85: dict[str, float | None], reads: FlowReads | None = None
) -> int:
    """Rewrite ``flow_daily`` for the last ``metrics.flow_days`` days of every project.
    ``cycle_p85``: each project's cycle-time P85 (days) of this run; ``reads``: the synced
    data, when the runner read it already (``read_flow`` here otherwise). Returns rows
    written."""
    if reads is None:
        reads = read_flow(ctx, scope_projects(ctx))
    today = ctx.as_of_date
    start = window_start(ctx)
    days = [start + timedelta(days=k) for k in range((today - start).days + 1)]
    base: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for key, before in reads.before.items():
        for kind in ("c", "l", "r"):
            base[key][kind] = int(before.get(f"flow_before_{kind}", 0))
    daily: dict[str, dict[tuple[str, int], int]] = defaultdict(lambda: defaultdict(int))
    # Ageing: an item counts from the first day that ends more than P85 days after its
    # start (for today: as_of) until the day before it is done. A difference array per
    # project: one step per item, not one per item and day.
    ageing: dict[str, list[int]] = defaultdict(lambda: [0] * (len(days) + 1))
    scopes = reads.scopes
    # rows unpacked as tuples, days as day numbers (ordinals): this loop runs once per item
    as_of, first_day, last = ctx.as_of, start.toordinal(), len(days) - 1
    today_n = today.toordinal()
    p85_span = {p: timedelta(days=v) for p, v in cycle_p85.items() if v is not None}
    for source, scope, c, s, r, started, created in reads.items:
        project = scopes.get((source, scope))
        if project is None:
            continue
        # days before the window are counted in ``reads.before``
        if (
            c >= first_day
            or (s is not None and s >= first_day)
            or (r is not None and r >= first_day)
        ):
            got = daily[project]
            for kind, n in zip(("c", "l", "r"), _left(c, s, r), strict=True):
                if n is not None and n >= first_day:
                    got[(kind, n)] += 1
        if started is None:
            continue
        span = p85_span.get(project)
        if span is None:
            continue
        done_day = r
        first = max(started.toordinal(), created.toordinal()) if created else started.toordinal()
        old = started + span  # older than P85 after this moment
        # a day before today ends at the next midnight: ageing from old's own date on
        lo = max(first, old.toordinal())
        stop = min(done_day or today_n, today_n)  # exclusive, before today's special case
        steps = ageing[project]
        if lo < stop:
            steps[lo - first_day if lo > first_day else 0] += 1
            steps[max(0, stop - first_day)] -= 1
        if (done_day is None or done_day > today_n) and first <= today_n and as_of > old:
            steps[last] += 1
            steps[last + 1] -= 1
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
            n = first_day + k
            for kind in ("c", "l", "r"):
                acc[kind] = acc.get(kind, 0) + got.get((kind, n), 0)
            created, left, done = acc["c"], acc["l"], acc["r"]
            rows.append(
                {
                    "project_key": project,
                    "day": day,
                    "as_of": ctx.as_of,
                    "todo_items": created - left,
                    "in_progress_items": left - done,
                    "done_items": done,
                    "arrivals": got.get(("c", n), 0),
                    "departures": got.get(("r", n), 0),
                    "ageing_wip_items": counts[project][k] if project in counts else 0,
                    "ageing_threshold_days": cycle_p85.get(project),
                }
            )
    tbl = table("flow_daily")
    ctx.conn.execute(tbl.delete().where(tbl.c.day >= start))
    for i in range(0, len(rows), 5000):
        ctx.conn.execute(tbl.insert(), rows[i : i + 5000])
    return len(rows)
