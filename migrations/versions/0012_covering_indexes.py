"""indexes for the transform's reads of work in progress and logged hours

* ``ix_work_items_in_progress``: each person's items in progress, a partial index of only
  those items (a tenth or so), covering what the resource-load query reads, so it no longer
  passes over every work item. Partial on purpose: led by the status, a full index looked
  cheaper than it is to the planners for queries on done items. Writes stay as cheap: a
  covering index over every item (tried) made first loads 15% slower.
* ``ix_worklogs_item_time`` (work item, start, hours) replaces ``ix_worklogs_work_item_id``:
  the hours per scope come from the index alone.

Only indexes: no data changes, and the downgrade restores the old ones.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: (index name, table, columns), as ``programview.warehouse.metrics_models`` declares them.
_NEW: list[tuple[str, str, list[str]]] = [
    (
        "ix_work_items_in_progress",
        "work_items",
        ["source_name", "scope", "assignee_id", "assignee", "type_category", "is_deleted"],
    ),
    ("ix_worklogs_item_time", "worklogs", ["work_item_id", "started_at", "hours"]),
]
#: ``ix_work_items_in_progress`` holds only the items in progress.
_PARTIAL = {"ix_work_items_in_progress": "status_category = 'in_progress'"}
#: What the new indexes replace: (index name, table, columns).
_OLD: list[tuple[str, str, list[str]]] = [
    ("ix_worklogs_work_item_id", "worklogs", ["work_item_id"]),
]


def upgrade() -> None:
    for name, tbl, columns in _NEW:
        where = sa.text(_PARTIAL[name]) if name in _PARTIAL else None
        op.create_index(name, tbl, columns, sqlite_where=where, postgresql_where=where)
    for name, tbl, _columns in _OLD:
        op.drop_index(name, table_name=tbl)


def downgrade() -> None:
    for name, tbl, columns in _OLD:
        op.create_index(name, tbl, columns)
    for name, tbl, _columns in _NEW:
        op.drop_index(name, table_name=tbl)
