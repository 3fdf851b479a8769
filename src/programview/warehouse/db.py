"""Connecting to the warehouse, migrating it, and writing to it in bulk.

SQLite (the default file) and PostgreSQL (the team warehouse) behave the same through here:
the URL decides the dialect, upserts use each dialect's ``INSERT … ON CONFLICT`` and are sent
as one executemany per table and column set, never row by row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import make_url

from programview.errors import DatabaseUnavailable, SchemaOutdated, WarehouseError
from programview.warehouse.models import Base

#: Columns whose first non-null value wins on upsert (see ``Release``).
STICKY: dict[str, frozenset[str]] = {
    "releases": frozenset({"planned_date", "released_at", "released_at_observed"}),
}

#: Rows per executemany batch: keeps SQLite under its bound-variable limit and memory flat.
BATCH_ROWS = 500


def redact_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is reported elsewhere; never echo it raw
        return "<invalid database URL>"


def normalize_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs (SQLAlchemy would pick psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str) -> Engine:
    """An engine for the warehouse URL, with SQLite tuned for one writer and many readers."""
    try:
        norm = normalize_url(url)
    except Exception as exc:
        raise WarehouseError(f"invalid warehouse URL {redact_url(url)!r}: {exc}") from None
    parsed = make_url(norm)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(norm, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        return engine
    return sa.create_engine(norm, pool_pre_ping=True, connect_args={"connect_timeout": 10})


def check_connection(engine: Engine) -> None:
    """Fail with a clear, password-free message when the database cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "connection failed"
        raise DatabaseUnavailable(
            f"cannot connect to the warehouse {redact_url(str(engine.url))}: {reason}"
        ) from None


# --- migrations ----------------------------------------------------------------------------


def alembic_config(url: str) -> AlembicConfig:
    """Alembic pointed at the migrations shipped in the package (``programview_migrations``)."""
    import programview_migrations

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(programview_migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (``programview db upgrade``)."""
    engine = create_engine(url)
    check_connection(engine)
    engine.dispose()
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision(url: str = "sqlite://") -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_current(engine: Engine) -> None:
    """Every command that writes calls this: an outdated schema is an error with the fix."""
    check_connection(engine)
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        state = "empty (no tables yet)" if current is None else f"at revision {current}"
        raise SchemaOutdated(
            f"the warehouse {redact_url(str(engine.url))} is {state}, this programview needs "
            f"revision {head}: run `programview db upgrade` first"
        )


# --- writing -------------------------------------------------------------------------------


def table(name: str) -> sa.Table:
    try:
        return Base.metadata.tables[name]
    except KeyError:
        raise WarehouseError(f"no warehouse table named {name!r}") from None


def _insert(conn: Connection, tbl: sa.Table) -> Any:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two supported databases are tested
        raise WarehouseError(f"unsupported warehouse dialect {dialect!r}")
    return insert(tbl)


def upsert(conn: Connection, table_name: str, rows: Iterable[Mapping[str, Any]]) -> int:
    """Bulk insert-or-update ``rows`` on the table's primary key. Returns rows sent.

    Rows are grouped by their column set (partial records update only their columns),
    deduplicated on the primary key (last wins: one statement may not touch a row twice on
    PostgreSQL) and sent ``BATCH_ROWS`` at a time.
    """
    tbl = table(table_name)
    pk = [c.name for c in tbl.primary_key.columns]
    sticky = STICKY.get(table_name, frozenset())
    groups: dict[tuple[str, ...], dict[tuple[Any, ...], Mapping[str, Any]]] = {}
    for row in rows:
        cols = tuple(sorted(row))
        groups.setdefault(cols, {})[tuple(row[k] for k in pk)] = row
    sent = 0
    for cols, by_key in groups.items():
        stmt = _insert(conn, tbl)
        update_cols = [c for c in cols if c not in pk]
        if update_cols:
            set_ = {
                c: (
                    sa.func.coalesce(tbl.c[c], stmt.excluded[c])
                    if c in sticky
                    else stmt.excluded[c]
                )
                for c in update_cols
            }
            stmt = stmt.on_conflict_do_update(index_elements=pk, set_=set_)
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=pk)
        values = list(by_key.values())
        # executemany of one cached statement (a multi-row VALUES statement measured 3x
        # slower: SQLAlchemy compiles it anew for every batch).
        for batch in _chunks(values, BATCH_ROWS):
            conn.execute(stmt, batch)
        sent += len(values)
    return sent


def delete_where(conn: Connection, table_name: str, column: str, values: Iterable[Any]) -> None:
    """``DELETE FROM table WHERE column IN (…)`` in batches."""
    tbl = table(table_name)
    for batch in _chunks(list(dict.fromkeys(values)), BATCH_ROWS):
        conn.execute(sa.delete(tbl).where(tbl.c[column].in_(batch)))


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction: everything inside commits together or not at all."""
    with engine.begin() as conn:
        yield conn
