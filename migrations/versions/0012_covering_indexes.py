"""covering indexes for the transform's passes over all work items

The transform reads every live work item a few times per run (the all-time counts grouped
by source and scope, each person's work in progress, logged hours). Each pass now reads a
narrow index in the order it groups by, not the wide rows (titles, labels, URLs) one by one:

* ``ix_work_items_scope_facts`` (source, scope, then every column those passes test, and the
  id the worklog join needs) replaces ``ix_work_items_source_scope``: its first two columns
  serve every lookup by (source, scope) the old index did;
* ``ix_work_items_in_progress``: the items in progress per assignee, a partial index (only
  the items in progress, a tenth or so; a full index led by the status looked cheaper than it
  is to the planners for queries on done items);
* ``ix_worklogs_item_time`` (work item, start, hours) replaces ``ix_worklogs_work_item_id``.

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
        "ix_work_items_scope_facts",
        "work_items",
        [
            "source_name",
            "scope",
            "is_deleted",
            "type_category",
            "status_category",
            "not_delivered",
            "story_points",
            "created_at",
            "started_at",
            "resolved_at",
            "id",
        ],
    ),
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
    ("ix_work_items_source_scope", "work_items", ["source_name", "scope"]),
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
