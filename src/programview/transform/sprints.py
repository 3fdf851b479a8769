"""Sprint metrics: commitment, scope change and completion of every sprint, from membership
history (``sprint_items.added_at/removed_at``) and estimate history, in one SQL statement.

Definitions (docs/metrics.md, "Sprints"):

* start = ``start_at``; close = ``completed_at`` (else ``end_at``) for a closed sprint, the
  transform's ``as_of`` for an active one (completed *so far*); a future sprint has no close.
* committed: in the sprint at its start (``added_at`` NULL or <= start, not removed by then),
  valued at the estimate at start.
* added: entered after start, at or before close; removed: left after start, at or before
  close (an item both added and removed mid-sprint counts in both). Added is valued at the
  estimate at close, removed at the estimate when it left.
* completed: still in the sprint at close, done, resolved at or before close, and not closed
  as "not planned"; valued at the estimate at close.
* unestimated_items: in the sprint at close with no estimate then.

Unset estimates are NULL and count as 0 points in the sums.
"""

from __future__ import annotations

import sqlalchemy as sa

from programview.transform._sql import SCOPE_PROJECT_CTE, Ctx, execute, points_at


def _points(at: str) -> str:
    rebuilt = points_at("f.work_item_id", at)
    return f"CASE WHEN f.has_changes = 0 THEN f.story_points ELSE {rebuilt} END"


def refresh_sprint_metrics(ctx: Ctx) -> int:
    """Recompute ``sprint_metrics`` for every sprint. Returns the number of sprints."""
    sql = f"""
WITH {SCOPE_PROJECT_CTE},
sp_scoped AS (
  SELECT s.id AS sprint_id, sp.project_key
  FROM sprints s JOIN scope_project sp ON sp.source_name = s.source_name AND sp.scope = s.scope
),
-- A board's sprint may have no scope of its own: it belongs to the project most of its
-- items belong to (ties: the smaller key).
sp_voted AS (
  SELECT sprint_id, project_key FROM (
    SELECT si.sprint_id, sp.project_key,
           ROW_NUMBER() OVER (PARTITION BY si.sprint_id
                              ORDER BY COUNT(*) DESC, sp.project_key) AS rn
    FROM sprint_items si
    JOIN work_items wi ON wi.id = si.work_item_id
    JOIN scope_project sp ON sp.source_name = wi.source_name AND sp.scope = wi.scope
    WHERE si.sprint_id NOT IN (SELECT sprint_id FROM sp_scoped)
    GROUP BY si.sprint_id, sp.project_key
  ) ranked WHERE rn = 1
),
s AS (
  SELECT s.id, s.state,
         COALESCE(s.start_at, :as_of) AS ref_start,
         CASE WHEN s.state = 'closed' THEN COALESCE(s.completed_at, s.end_at, :as_of)
              WHEN s.state = 'active' THEN :as_of
              ELSE COALESCE(s.start_at, :as_of) END AS close_at
  FROM sprints s
),
f AS (
  SELECT si.sprint_id, si.work_item_id, si.removed_at, s.ref_start, s.close_at,
         wi.story_points,
         CASE WHEN ch.work_item_id IS NULL THEN 0 ELSE 1 END AS has_changes,
         CASE WHEN (si.added_at IS NULL OR si.added_at <= s.ref_start)
                   AND (si.removed_at IS NULL OR si.removed_at > s.ref_start)
              THEN 1 ELSE 0 END AS is_committed,
         CASE WHEN si.added_at > s.ref_start AND si.added_at <= s.close_at
              THEN 1 ELSE 0 END AS is_added,
         CASE WHEN si.removed_at > s.ref_start AND si.removed_at <= s.close_at
              THEN 1 ELSE 0 END AS is_removed,
         CASE WHEN (si.added_at IS NULL OR si.added_at <= s.close_at)
                   AND (si.removed_at IS NULL OR si.removed_at > s.close_at)
              THEN 1 ELSE 0 END AS in_at_close,
         CASE WHEN s.state IN ('closed', 'active') AND wi.status_category = 'done'
                   AND NOT wi.not_delivered
                   AND (wi.resolved_at IS NULL OR wi.resolved_at <= s.close_at)
              THEN 1 ELSE 0 END AS done_at_close
  FROM sprint_items si
  JOIN s ON s.id = si.sprint_id
  JOIN work_items wi ON wi.id = si.work_item_id AND NOT wi.is_deleted
  LEFT JOIN (SELECT DISTINCT work_item_id FROM estimate_changes) ch
         ON ch.work_item_id = si.work_item_id
),
p AS (
  SELECT f.sprint_id, f.is_committed, f.is_added, f.is_removed, f.in_at_close,
         f.in_at_close * f.done_at_close AS is_completed,
         CASE WHEN f.is_committed = 1 THEN {_points("f.ref_start")} END AS points_start,
         CASE WHEN f.in_at_close = 1 OR f.is_added = 1 THEN {_points("f.close_at")} END
           AS points_close,
         CASE WHEN f.is_removed = 1 THEN {_points("f.removed_at")} END AS points_removed
  FROM f
),
agg AS (
  SELECT sprint_id,
         COALESCE(SUM(CASE WHEN is_committed = 1 THEN points_start END), 0) AS committed_points,
         COALESCE(SUM(CASE WHEN is_added = 1 THEN points_close END), 0) AS added_points,
         COALESCE(SUM(CASE WHEN is_removed = 1 THEN points_removed END), 0) AS removed_points,
         COALESCE(SUM(CASE WHEN is_completed = 1 THEN points_close END), 0)
           AS completed_points,
         SUM(is_committed) AS committed_items,
         SUM(is_added) AS added_items,
         SUM(is_removed) AS removed_items,
         SUM(is_completed) AS completed_items,
         SUM(CASE WHEN in_at_close = 1 AND points_close IS NULL THEN 1 ELSE 0 END)
           AS unestimated_items
  FROM p GROUP BY sprint_id
)
INSERT INTO sprint_metrics (sprint_id, project_key, close_at, committed_points, added_points,
    removed_points, completed_points, committed_items, added_items, removed_items,
    completed_items, unestimated_items, computed_at)
SELECT s.id, COALESCE(sc.project_key, sv.project_key),
       CASE WHEN s.state IN ('closed', 'active') THEN s.close_at END,
       COALESCE(a.committed_points, 0), COALESCE(a.added_points, 0),
       COALESCE(a.removed_points, 0), COALESCE(a.completed_points, 0),
       COALESCE(a.committed_items, 0), COALESCE(a.added_items, 0),
       COALESCE(a.removed_items, 0), COALESCE(a.completed_items, 0),
       COALESCE(a.unestimated_items, 0), :as_of
FROM s
LEFT JOIN agg a ON a.sprint_id = s.id
LEFT JOIN sp_scoped sc ON sc.sprint_id = s.id
LEFT JOIN sp_voted sv ON sv.sprint_id = s.id
"""
    execute(ctx.conn, "DELETE FROM sprint_metrics")
    execute(ctx.conn, sql, {"as_of": ctx.as_of})
    # counted, not rowcount: SQLite reports -1 for a statement that starts with WITH
    return int(ctx.conn.execute(sa.text("SELECT count(*) FROM sprint_metrics")).scalar_one())
