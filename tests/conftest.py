"""Shared fixtures: a fresh warehouse on SQLite and on PostgreSQL for every test that asks.

PostgreSQL tests read the server URL from ``PROGRAMVIEW_TEST_PG_URL`` (CI sets it to
``postgresql://postgres@127.0.0.1:5432/test``). Each test gets its own throw-away database, so
tests (and engineers running them at once) never see each other's rows. Without the variable
the PostgreSQL cases are skipped locally, but under CI (``CI`` set) they fail instead: they must
never be silently skipped there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine.url import make_url

from programview.warehouse import db

PG_ENV = "PROGRAMVIEW_TEST_PG_URL"


def _pg_admin_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set: PostgreSQL tests must run in CI")
        pytest.skip(f"{PG_ENV} not set (PostgreSQL tests run in CI)")
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a brand-new empty PostgreSQL database, dropped after the test."""
    admin = _pg_admin_url()
    name = f"pv_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(db.normalize_url(admin), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {db.redact_url(admin)} is not reachable: {exc.orig}")
    url = make_url(db.normalize_url(admin)).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request) -> str:  # type: ignore[no-untyped-def]
    """An empty warehouse URL, once per supported database."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def warehouse_url(db_url: str) -> str:
    """A warehouse migrated to head, once per supported database."""
    db.upgrade(db_url)
    return db_url


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[sa.Engine]:
    eng = db.create_engine(warehouse_url)
    yield eng
    eng.dispose()
