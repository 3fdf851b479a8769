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
