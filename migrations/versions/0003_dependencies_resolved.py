"""v_dependencies: a ``resolved`` column for references to items programview does not sync

Cross-tool text references ("blocked by PAY-12" in a GitHub issue) may name an item of a tool
or project that is not synced. Such a link is kept and now says so: ``resolved`` is true when
both of its keys are live synced work items, false otherwise (a reference never silently
dropped, and one a dashboard can list).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: Frozen copies (a migration keeps creating the same view whatever the code does later).
_SCOPE_PROJECT = (
    "(SELECT source_name, scope, CAST(MIN(project_key) AS VARCHAR(100)) AS project_key "
    "FROM project_scopes GROUP BY source_name, scope)"
)


def _item_project(key_expr: str, column: str = "sp.project_key") -> str:
    return (
        f"(SELECT CAST(MIN({column}) AS VARCHAR(100)) FROM work_items w "
        f"LEFT JOIN {_SCOPE_PROJECT} sp ON sp.source_name = w.source_name AND sp.scope = w.scope "
        f"WHERE w.item_key = {key_expr} AND NOT w.is_deleted)"
    )


def _live(key_expr: str) -> str:
    return f"EXISTS (SELECT 1 FROM work_items r WHERE r.item_key = {key_expr} AND NOT r.is_deleted)"


def _view(resolved: bool) -> str:
    extra = ""
    inner = ""
    if resolved:
        extra = ", x.resolved"
        inner = (
            f",\n             CASE WHEN {_live('d.blocked_key')} AND {_live('d.blocking_key')} "
            "THEN TRUE ELSE FALSE END AS resolved"
        )
    return f"""SELECT DISTINCT x.blocked_item_key, x.blocked_project_key,
       x.blocking_item_key, x.blocking_project_key, x.link_kind,
       CASE WHEN x.blocked_project_key <> x.blocking_project_key THEN TRUE ELSE FALSE END
         AS cross_project,
       x.source, x.source_name, x.blocked_status_category, x.blocking_status_category{extra}
FROM (SELECT d.blocked_key AS blocked_item_key,
             {_item_project("d.blocked_key")} AS blocked_project_key,
             d.blocking_key AS blocking_item_key,
             {_item_project("d.blocking_key")} AS blocking_project_key,
             d.link_kind, d.origin AS source, d.source_name,
             {_item_project("d.blocked_key", "w.status_category")} AS blocked_status_category,
             {_item_project("d.blocking_key", "w.status_category")}
               AS blocking_status_category{inner}
      FROM dependencies d
      -- a link dies with its item: skip links found in, or pointing at, a deleted item
      -- (a key not synced yet has no row at all and is kept, to resolve later)
      WHERE NOT EXISTS (SELECT 1 FROM work_items g WHERE g.id = d.found_in AND g.is_deleted)
        AND NOT EXISTS (SELECT 1 FROM work_items g
                        WHERE g.item_key IN (d.blocked_key, d.blocking_key) AND g.is_deleted
                          AND NOT EXISTS (SELECT 1 FROM work_items h
                                          WHERE h.item_key = g.item_key AND NOT h.is_deleted))
      ) x"""


def upgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_dependencies")
    op.execute(f"CREATE VIEW v_dependencies AS\n{_view(resolved=True)}")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_dependencies")
    op.execute(f"CREATE VIEW v_dependencies AS\n{_view(resolved=False)}")
