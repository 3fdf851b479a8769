"""Throw-away PostgreSQL databases for the benchmarks (created, yielded, dropped)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine.url import make_url

from programview.warehouse import db


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """URL of a new empty database on the server of ``admin_url``, dropped afterwards."""
    name = f"pv_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(db.normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(db.normalize_url(admin_url))
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def warehouse_bytes(url: str) -> int | None:
    """Bytes on disk of a SQLite warehouse (file and WAL), or the PostgreSQL database size."""
    engine = sa.create_engine(db.normalize_url(url))
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                pages = conn.exec_driver_sql("PRAGMA page_count").scalar() or 0
                size = conn.exec_driver_sql("PRAGMA page_size").scalar() or 0
                return int(pages) * int(size)
            return int(
                conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
            )
    finally:
        engine.dispose()


def bytes_line(url: str, items: int) -> str:
    """``warehouse N MB, B bytes per work item`` for the benchmarks' reports."""
    total = warehouse_bytes(url) or 0
    return f"  warehouse   {total / 1e6:,.1f} MB, {total / max(items, 1):,.0f} bytes per work item"
