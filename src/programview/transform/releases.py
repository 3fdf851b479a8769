"""Release facts: planned vs actual date, on time, slip, content and open bugs, per release.

What "on time" means (docs/metrics.md, "Releases"):

* planned = ``planned_date`` (the first date seen while the release was unreleased; sticky,
  so a moved Jira releaseDate is a slip, not a new plan), else the current ``due_date``.
* actual = ``released_at`` (when it was seen released / closed / published). A release that
  is released but has no ``released_at`` (a Jira version already released when first synced,
  a GitLab milestone closed before we saw it) gets the latest resolution time of its done
  items, flagged ``released_at_inferred``.
* slip_days = actual date (UTC) - planned date; negative = early. While open and past
  planned + grace days: today - planned. on_time = slip <= grace days; NULL while open and
  not yet due (or without a planned date).

Open releases and releases shipped within ``REFRESH_DAYS`` (30 days) are recomputed on every
run; older shipped releases keep their figures (all of them with ``ctx.full``).
"""

from __future__ import annotations

import sqlalchemy as sa

from programview.transform._sql import IS_RELEASED, SCOPE_PROJECT_CTE, Ctx, execute, fetch
from programview.warehouse.db import table

_BATCH = 5000  # release ids per statement


def refresh_release_metrics(ctx: Ctx) -> int:
    """Recompute ``release_metrics`` of the releases that may still change. Returns how many
    releases were recomputed."""
    conn = ctx.conn
    ids = [
        r[0]
        for r in fetch(
            conn,
            f"""
SELECT r.id FROM releases r LEFT JOIN release_metrics m ON m.release_id = r.id
WHERE :full = 1 OR m.release_id IS NULL OR NOT {IS_RELEASED}
   OR COALESCE(r.released_at, m.released_at) IS NULL
   OR COALESCE(r.released_at, m.released_at) > :refresh_from
""",
            {"full": int(ctx.full), "refresh_from": ctx.refresh_from},
        )
    ]
    tbl = table("release_metrics")
    conn.execute(tbl.delete().where(tbl.c.release_id.not_in(sa.select(table("releases").c.id))))
    for i in range(0, len(ids), _BATCH):
        batch = ids[i : i + _BATCH]
        conn.execute(tbl.delete().where(tbl.c.release_id.in_(batch)))
        execute(conn, _insert_sql(ctx), {**_params(ctx), "ids": batch})
    return len(ids)


def _params(ctx: Ctx) -> dict[str, object]:
    return {
        "as_of": ctx.as_of,
        "as_of_date": ctx.as_of_date,
        "grace": ctx.config.metrics.on_time_grace_days,
    }


def _insert_sql(ctx: Ctx) -> str:
    sql = ctx.sql
    released_slip = sql.date_diff(sql.date("b.released_at"), "b.planned_date")
    open_slip = sql.date_diff(":as_of_date", "b.planned_date")
    return f"""
WITH {SCOPE_PROJECT_CTE},
items AS (
  SELECT wr.release_id,
         COUNT(*) AS item_count,
         COALESCE(SUM(wi.story_points), 0) AS points,
         COALESCE(SUM(wi.story_points) FILTER (
           WHERE wi.status_category = 'done' AND NOT wi.not_delivered), 0) AS done_points,
         COUNT(*) FILTER (WHERE wi.type_category = 'bug' AND wi.status_category <> 'done')
           AS open_bugs,
         COUNT(*) FILTER (WHERE wi.story_points IS NULL) AS unestimated_items,
         MAX(wi.resolved_at) FILTER (WHERE wi.status_category = 'done') AS last_resolved_at
  FROM work_item_releases wr
  JOIN work_items wi ON wi.id = wr.work_item_id AND NOT wi.is_deleted
  WHERE wr.release_id IN :ids
  GROUP BY wr.release_id
),
b AS (
  SELECT r.id, sp.project_key,
         COALESCE(r.planned_date, r.due_date) AS planned_date,
         CASE WHEN {IS_RELEASED} THEN 1 ELSE 0 END AS is_released,
         CASE WHEN r.released_at IS NOT NULL THEN r.released_at
              WHEN r.released = TRUE THEN i.last_resolved_at END AS released_at,
         CASE WHEN r.released_at IS NULL AND r.released = TRUE
                   AND i.last_resolved_at IS NOT NULL THEN 1 ELSE 0 END AS inferred,
         COALESCE(i.item_count, 0) AS item_count, COALESCE(i.points, 0) AS points,
         COALESCE(i.done_points, 0) AS done_points, COALESCE(i.open_bugs, 0) AS open_bugs,
         COALESCE(i.unestimated_items, 0) AS unestimated_items
  FROM releases r
  LEFT JOIN scope_project sp ON sp.source_name = r.source_name AND sp.scope = r.scope
  LEFT JOIN items i ON i.release_id = r.id
  WHERE r.id IN :ids
),
j AS (
  SELECT b.*,
         CASE WHEN b.is_released = 1 AND b.released_at IS NOT NULL
                   AND b.planned_date IS NOT NULL THEN {released_slip}
              WHEN b.is_released = 0 AND b.planned_date IS NOT NULL
                   AND {open_slip} > :grace THEN {open_slip} END AS slip_days
  FROM b
)
INSERT INTO release_metrics (release_id, project_key, planned_date, released_at,
    released_at_inferred, state, on_time, slip_days, item_count, points, done_points,
    open_bugs, unestimated_items, computed_at)
SELECT j.id, j.project_key, j.planned_date, j.released_at,
       CASE WHEN j.inferred = 1 THEN TRUE ELSE FALSE END,
       CASE WHEN j.is_released = 1 THEN 'released' ELSE 'open' END,
       CASE WHEN j.slip_days IS NULL THEN NULL WHEN j.slip_days <= :grace THEN TRUE
            ELSE FALSE END,
       j.slip_days, j.item_count, j.points, j.done_points, j.open_bugs, j.unestimated_items,
       :as_of
FROM j
"""
