"""Alembic migrations: they build the schema the models describe, on both databases.

The autogenerate comparison is the guard against a model changed without its migration:
``compare_metadata`` between the models and a freshly migrated database must be empty.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from programview.warehouse import db
from programview.warehouse.models import Base


def tables(url: str) -> set[str]:
    engine = db.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_to_base_and_upgrade_again(db_url: str) -> None:
    db.upgrade(db_url)
    assert set(Base.metadata.tables) <= tables(db_url)

    db.downgrade(db_url, "base")
    assert tables(db_url) <= {"alembic_version"}
    engine = db.create_engine(db_url)
    assert db.current_revision(engine) is None
    engine.dispose()

    db.upgrade(db_url)
    engine = db.create_engine(db_url)
    assert db.current_revision(engine) == db.head_revision()
    db.ensure_current(engine)  # does not raise
    engine.dispose()


def test_models_and_migrations_agree(warehouse_url: str) -> None:
    engine = db.create_engine(warehouse_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"models differ from migrations (add them to a migration): {diff}"


def test_the_comparison_notices_a_model_without_migration(warehouse_url: str) -> None:
    """Proves the guard above can fail: a column added only to the models shows up."""
    changed = sa.MetaData()
    for tbl in Base.metadata.tables.values():
        tbl.to_metadata(changed)
    sa.Table("work_items", changed, sa.Column("new_col", sa.Integer), extend_existing=True)
    engine = db.create_engine(warehouse_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), changed)
    finally:
        engine.dispose()
    assert [(d[0], d[2], d[3].name) for d in diff] == [("add_column", "work_items", "new_col")]
