"""Sprint metrics: commitment, scope change and completion of every sprint, from membership
history (``sprint_items.added_at/removed_at``) and estimate history.

Definitions (docs/metrics.md, "Sprints"):

* start = ``start_at``; close = ``completed_at`` (else ``end_at``) for a closed sprint, the
  transform's ``as_of`` for an active one (completed *so far*); a future sprint has no close.
* committed: in the sprint at its start (added at or before start, not removed by then),
  valued at the estimate at start. ``added_at`` NULL means "in it since the item was
  created", so it counts as added at ``created_at``: an issue created straight into a
  running sprint is scope added after start, not commitment (as Jira's sprint report has it).
* added: entered after start, at or before close; removed: left after start, at or before
  close (an item both added and removed mid-sprint counts in both). Added is valued at the
  estimate at close, removed at the estimate when it left.
* completed: still in the sprint at close, done, resolved at or before close, and not closed
  as "not planned"; valued at the estimate at close.
* unestimated_items: in the sprint at close with no estimate then.

Unset estimates are NULL and count as 0 points in the sums.

One pass over ``sprint_items`` (in sprint order, so grouping needs no sort), joined to its
sprint and item; the estimate history is only consulted for the few items that have one.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import sqlalchemy as sa

from programview.transform._sql import SCOPE_PROJECT_CTE, Ctx, fetch, points_at
from programview.warehouse.db import table

# When the item entered the sprint: NULL ``added_at`` = there since the item was created.
_ENTERED = "COALESCE(si.added_at, wi.created_at)"
# Conditions on one membership (si) of sprint s, from its start (ref_start) and close (close_at).
_IN_AT_START = (
    f"({_ENTERED} IS NULL OR {_ENTERED} <= s.ref_start) "
    "AND (si.removed_at IS NULL OR si.removed_at > s.ref_start)"
)
_ADDED = f"{_ENTERED} > s.ref_start AND {_ENTERED} <= s.close_at"
_REMOVED = "si.removed_at > s.ref_start AND si.removed_at <= s.close_at"
_IN_AT_CLOSE = (
    f"({_ENTERED} IS NULL OR {_ENTERED} <= s.close_at) "
    "AND (si.removed_at IS NULL OR si.removed_at > s.close_at)"
)
_COMPLETED = (
    "s.closes = 1 AND wi.status_category = 'done' AND NOT wi.not_delivered "
    f"AND (wi.resolved_at IS NULL OR wi.resolved_at <= s.close_at) AND {_IN_AT_CLOSE}"
)


def _points(at: str) -> str:
    """The item's estimate at ``at``: its current points unless it has estimate history."""
    return (
        f"CASE WHEN ch.work_item_id IS NULL THEN wi.story_points "
        f"ELSE {points_at('si.work_item_id', at)} END"
    )


def refresh_sprint_metrics(ctx: Ctx) -> int:
    """Recompute ``sprint_metrics`` of the sprints that may still change: not closed, closed
    within ``REFRESH_DAYS`` (30 days), or never computed (every sprint with ``ctx.full``).
    Returns how many sprints were recomputed."""
    conn = ctx.conn
    candidates = fetch(
        conn,
        f"""
WITH {SCOPE_PROJECT_CTE}
SELECT s.id, sp.project_key,
       CASE WHEN s.state = 'closed' THEN COALESCE(s.completed_at, s.end_at, :as_of)
            WHEN s.state = 'active' THEN :as_of END AS close_at
FROM sprints s
LEFT JOIN scope_project sp ON sp.source_name = s.source_name AND sp.scope = s.scope
LEFT JOIN sprint_metrics m ON m.sprint_id = s.id
WHERE :full = 1 OR m.sprint_id IS NULL OR s.state IS NULL OR s.state <> 'closed'
   OR COALESCE(s.completed_at, s.end_at) IS NULL
   OR COALESCE(s.completed_at, s.end_at) > :refresh_from
""",
        {"as_of": ctx.as_of, "full": int(ctx.full), "refresh_from": ctx.refresh_from},
        {"close_at": sa.DateTime()},
    )
    tbl = table("sprint_metrics")
    # figures of sprints that no longer exist go too
    conn.execute(tbl.delete().where(tbl.c.sprint_id.not_in(sa.select(table("sprints").c.id))))
    ids = [c.id for c in candidates]
    figures: dict[str, Any] = {}
    for i in range(0, len(ids), _BATCH):
        batch = ids[i : i + _BATCH]
        for row in fetch(conn, _FIGURES, {"as_of": ctx.as_of, "ids": batch}):
            figures[row.sprint_id] = row._mapping
        conn.execute(tbl.delete().where(tbl.c.sprint_id.in_(batch)))
    voted = _project_by_items(ctx, [c.id for c in candidates if c.project_key is None])
    out: list[dict[str, Any]] = []
    for c in candidates:
        got = figures.get(c.id)
        out.append(
            {
                "sprint_id": c.id,
                "project_key": c.project_key or voted.get(c.id),
                "close_at": c.close_at,
                "computed_at": ctx.as_of,
                **{k: ((got[k] or 0) if got is not None else 0) for k in _FIELDS},
            }
        )
    if out:
        conn.execute(tbl.insert(), out)
    return len(out)


_BATCH = 5000  # sprint ids per statement (a full run is usually one batch)
_FIELDS = (
    "committed_points",
    "added_points",
    "removed_points",
    "completed_points",
    "committed_items",
    "added_items",
    "removed_items",
    "completed_items",
    "unestimated_items",
)
_FIGURES = f"""
WITH s AS MATERIALIZED (  -- once: its CASEs would otherwise be inlined into every test
  SELECT id, state,
         COALESCE(start_at, :as_of) AS ref_start,
         CASE WHEN state = 'closed' THEN COALESCE(completed_at, end_at, :as_of)
              WHEN state = 'active' THEN :as_of
              ELSE COALESCE(start_at, :as_of) END AS close_at,
         CASE WHEN state IN ('closed', 'active') THEN 1 ELSE 0 END AS closes
  FROM sprints WHERE id IN :ids
),
ch AS MATERIALIZED (  -- members with estimate history (few): only they need the lookups
  SELECT DISTINCT x.work_item_id FROM sprint_items x
  WHERE x.sprint_id IN :ids
    AND EXISTS (SELECT 1 FROM estimate_changes e WHERE e.work_item_id = x.work_item_id)
)
SELECT si.sprint_id,
  COUNT(*) FILTER (WHERE {_IN_AT_START}) AS committed_items,
  SUM({_points("s.ref_start")}) FILTER (WHERE {_IN_AT_START}) AS committed_points,
  COUNT(*) FILTER (WHERE {_ADDED}) AS added_items,
  SUM({_points("s.close_at")}) FILTER (WHERE {_ADDED}) AS added_points,
  COUNT(*) FILTER (WHERE {_REMOVED}) AS removed_items,
  SUM({_points("si.removed_at")}) FILTER (WHERE {_REMOVED}) AS removed_points,
  COUNT(*) FILTER (WHERE {_COMPLETED}) AS completed_items,
  SUM({_points("s.close_at")}) FILTER (WHERE {_COMPLETED}) AS completed_points,
  COUNT(*) FILTER (WHERE {_IN_AT_CLOSE} AND {_points("s.close_at")} IS NULL)
    AS unestimated_items
FROM s
JOIN sprint_items si ON si.sprint_id = s.id
JOIN work_items wi ON wi.id = si.work_item_id
LEFT JOIN ch ON ch.work_item_id = si.work_item_id
WHERE NOT wi.is_deleted
GROUP BY si.sprint_id
"""


def _project_by_items(ctx: Ctx, sprint_ids: list[str]) -> dict[str, str]:
    """A board's sprint may have no scope of its own: it belongs to the project most of its
    items belong to (ties: the smaller key)."""
    votes: dict[str, Counter[str]] = {}
    sql = f"""
WITH {SCOPE_PROJECT_CTE}
SELECT si.sprint_id, sp.project_key, COUNT(*) AS n
FROM sprint_items si
JOIN work_items wi ON wi.id = si.work_item_id
JOIN scope_project sp ON sp.source_name = wi.source_name AND sp.scope = wi.scope
WHERE si.sprint_id IN :ids
GROUP BY si.sprint_id, sp.project_key
"""
    for i in range(0, len(sprint_ids), 500):
        for sprint_id, project, n in fetch(ctx.conn, sql, {"ids": sprint_ids[i : i + 500]}):
            votes.setdefault(sprint_id, Counter())[project] = n
    return {
        sprint_id: min(counter.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        for sprint_id, counter in votes.items()
    }


_ITEM_FIGURES = f"""
WITH s AS MATERIALIZED (
  SELECT id, state, start_at,
         COALESCE(start_at, :as_of) AS ref_start,
         CASE WHEN state = 'closed' THEN COALESCE(completed_at, end_at, :as_of)
              WHEN state = 'active' THEN :as_of
              ELSE COALESCE(start_at, :as_of) END AS close_at,
         CASE WHEN state IN ('closed', 'active') THEN 1 ELSE 0 END AS closes
  FROM sprints WHERE id IN :ids
),
ch AS MATERIALIZED (
  SELECT DISTINCT x.work_item_id FROM sprint_items x
  WHERE x.sprint_id IN :ids
    AND EXISTS (SELECT 1 FROM estimate_changes e WHERE e.work_item_id = x.work_item_id)
)
SELECT si.sprint_id, wi.id AS work_item_id, wi.native_id, wi.item_key, wi.is_deleted,
  wi.status_category, wi.resolved_at, wi.not_delivered, wi.story_points,
  {_ENTERED} AS entered_at, si.removed_at, s.ref_start, s.close_at,
  CASE WHEN {_IN_AT_START} THEN 1 ELSE 0 END AS committed,
  CASE WHEN {_ADDED} THEN 1 ELSE 0 END AS added,
  CASE WHEN {_REMOVED} THEN 1 ELSE 0 END AS removed,
  CASE WHEN {_COMPLETED} THEN 1 ELSE 0 END AS completed,
  {_points("s.ref_start")} AS points_at_start,
  {_points("si.removed_at")} AS points_at_removal,
  {_points("s.close_at")} AS points_at_close
FROM s
JOIN sprint_items si ON si.sprint_id = s.id
JOIN work_items wi ON wi.id = si.work_item_id
LEFT JOIN ch ON ch.work_item_id = si.work_item_id
ORDER BY si.sprint_id, wi.item_key
"""


def sprint_item_figures(conn: Any, sprint_ids: list[str], as_of: Any) -> list[Any]:
    """Per (sprint, item): which of committed / added / removed / completed the item counts
    in, with the same definitions (and the same SQL) as ``refresh_sprint_metrics``, and the
    estimates each is valued at. Deleted items are included (``is_deleted``) so a caller can
    say why they no longer count; the sprint figures leave them out.

    For ``programview verify sprints``, which explains our figures item by item."""
    types = {
        "entered_at": sa.DateTime(),
        "removed_at": sa.DateTime(),
        "ref_start": sa.DateTime(),
        "close_at": sa.DateTime(),
        "resolved_at": sa.DateTime(),
    }
    out: list[Any] = []
    for i in range(0, len(sprint_ids), _BATCH):
        batch = sprint_ids[i : i + _BATCH]
        out.extend(fetch(conn, _ITEM_FIGURES, {"as_of": as_of, "ids": batch}, types))
    return out
