"""Alembic environment for the programview warehouse.

Used by ``programview db upgrade`` (which points Alembic here through
``programview.warehouse.db.alembic_config``) and by developers running ``alembic`` from the
repository root (``alembic.ini``). The URL comes from the Alembic config, else from
``$PROGRAMVIEW_WAREHOUSE_URL``.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context
from sqlalchemy import pool

from programview.warehouse.db import normalize_url
from programview.warehouse.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("PROGRAMVIEW_WAREHOUSE_URL")
    if not url:
        raise SystemExit("set sqlalchemy.url or PROGRAMVIEW_WAREHOUSE_URL")
    return normalize_url(url)


def run_migrations_offline() -> None:
    context.configure(
        url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = sa.create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
