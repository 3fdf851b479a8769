"""Connecting to the warehouse, migrating it, and writing to it in bulk.

SQLite (the default file) and PostgreSQL (the team warehouse) behave the same through here:
the URL decides the dialect, upserts use each dialect's ``INSERT … ON CONFLICT`` and are sent
per table and column set, never row by row: PostgreSQL gets larger groups by ``COPY`` into a
temporary table and one ``INSERT … SELECT``, everything else is one cached executemany.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from operator import itemgetter
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

#: On PostgreSQL, column-set groups at least this big go through COPY (see ``upsert``); below
#: it the staging table's extra round trips cost more than executemany's per-row work
#: (measured on work_items: executemany wins at 10 rows, COPY from about 20-40 on).
COPY_MIN_ROWS = 30

#: Keys per ``lookup`` query on SQLite (well under its 32,766 bound variables): one page, one query.
LOOKUP_ROWS = 5000


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


def require_existing(url: str) -> None:
    """Commands that only read refuse a SQLite file that does not exist, before opening it:
    SQLite would create an empty file (and ``create_engine`` its folder) at a mistyped path,
    and the user would get "no tables" instead of "wrong path"."""
    try:
        parsed = make_url(normalize_url(url))
    except Exception as exc:
        raise WarehouseError(f"invalid warehouse URL {redact_url(url)!r}: {exc}") from None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database).expanduser()
    if not path.exists():
        raise WarehouseError(
            f"the warehouse file {path} does not exist (check [warehouse] url, "
            "PROGRAMVIEW_WAREHOUSE_URL or --warehouse; `programview db upgrade` creates it)"
        )


def check_connection(engine: Engine) -> None:
    """Fail with a clear, password-free message when the database cannot be reached, saying
    what to check (server running, host, port; or the SQLite file's folder)."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "connection failed"
        raise DatabaseUnavailable(
            f"cannot connect to the warehouse {redact_url(str(engine.url))}: {reason}"
            f" ({connection_hint(engine.url)})"
        ) from None


def connection_hint(url: sa.URL) -> str:
    """What to check when the warehouse at ``url`` cannot be reached."""
    where = "[warehouse] url or PROGRAMVIEW_WAREHOUSE_URL"
    if url.get_backend_name() == "sqlite":
        return (
            f"check that the folder of {url.database or 'the file'} exists and is writable; "
            f"the path comes from {where}"
        )
    host, port = url.host or "localhost", url.port or 5432
    return (
        f"check that the database server is running and accepts connections on {host} port "
        f"{port}, and that host, port, database name and user in {where} are right"
    )


# --- migrations ----------------------------------------------------------------------------


def alembic_config(url: str) -> AlembicConfig:
    """Alembic pointed at the migrations shipped in the package (``programview_migrations``)."""
    import programview_migrations

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(programview_migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


#: PostgreSQL advisory lock held while migrating (any value no other lock of ours uses)
MIGRATION_LOCK = 0x70766D6967726174  # "pvmigrat"


def upgrade(url: str, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision`` (``programview db upgrade``); return the revision
    the database was at (None: empty), read under the same lock.

    On PostgreSQL under an advisory lock: several replicas that start at once (each
    container runs ``db upgrade`` first) migrate one after the other, and the later ones
    find the schema current instead of racing to create the same tables."""
    engine = create_engine(url)
    check_connection(engine)
    if engine.dialect.name != "postgresql":
        before = current_revision(engine)
        engine.dispose()
        command.upgrade(alembic_config(url), revision)
        return before
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
            conn.commit()
            try:
                before = MigrationContext.configure(conn).get_current_revision()
                conn.commit()
                cfg = alembic_config(url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                conn.commit()
            finally:
                conn.rollback()
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                conn.commit()
    finally:
        engine.dispose()
    return before


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


@cache
def column_names(table_name: str) -> frozenset[str]:
    """The columns of a warehouse table, for checking many rows cheaply."""
    return frozenset(table(table_name).c.keys())


def _insert(dialect: str, tbl: sa.Table) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(tbl)
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(tbl)
    # pragma: no cover - only the two supported databases are tested
    raise WarehouseError(f"unsupported warehouse dialect {dialect!r}")


def upsert(conn: Connection, table_name: str, rows: Iterable[Mapping[str, Any]]) -> int:
    """Bulk insert-or-update ``rows`` on the table's primary key. Returns rows sent.

    Rows are grouped by their column set (partial records update only their columns) and
    deduplicated on the primary key (last wins: one statement may not touch a row twice on
    PostgreSQL). ``STICKY`` columns keep the value already stored unless it is NULL.

    How a group travels depends on the database: on PostgreSQL (psycopg 3, inside a
    transaction) a group of ``COPY_MIN_ROWS`` or more is streamed with ``COPY`` into a
    temporary table and merged by one ``INSERT … SELECT … ON CONFLICT``, which costs the server
    one statement instead of one per row; everything else is an executemany of one cached
    ``INSERT … ON CONFLICT`` statement, ``BATCH_ROWS`` at a time.
    """
    tbl = table(table_name)
    pk = [c.name for c in tbl.primary_key.columns]
    key_of = itemgetter(*pk)
    groups: dict[tuple[str, ...], dict[Any, Mapping[str, Any]]] = {}
    by_order: dict[tuple[str, ...], dict[Any, Mapping[str, Any]]] = {}  # rows' own key order
    for row in rows:
        group = by_order.get(order := tuple(row))
        if group is None:
            cols = tuple(sorted(order))
            group = groups.get(cols)
            if group is None:
                _check_columns(tbl, cols, pk)
                group = groups[cols] = {}
            by_order[order] = group
        group[key_of(row)] = row
    copy = _can_copy(conn, tbl)
    sent = 0
    for cols, by_key in groups.items():
        values = list(by_key.values())
        if copy and len(values) >= COPY_MIN_ROWS:
            _copy_upsert(conn, tbl, cols, values)
        else:
            plan = _many_plan(conn.dialect, tbl.name, cols) if _plain_defaults(tbl) else None
            if plan is not None:
                _driver_upsert(conn, plan, values)
            else:
                # Aware datetimes become naive UTC, as the COPY path does: SQLite would store
                # the wall-clock time and drop the offset.
                stamps = [c for c in cols if isinstance(tbl.c[c].type, sa.DateTime)]
                if stamps:
                    values = [_row_naive_utc(row, stamps) for row in values]
                stmt = _upsert_statement(conn.dialect.name, tbl.name, cols)
                # executemany of one cached statement (a multi-row VALUES statement measured
                # 3x slower: SQLAlchemy compiles it anew for every batch).
                for batch in _chunks(values, BATCH_ROWS):
                    conn.execute(stmt, batch)
        sent += len(values)
    return sent


def _row_naive_utc(row: Mapping[str, Any], columns: list[str]) -> Mapping[str, Any]:
    """``row`` with aware datetimes in ``columns`` as naive UTC (the warehouse convention)."""
    if all(getattr(row[c], "tzinfo", None) is None for c in columns):
        return row
    return {**row, **{c: _naive_utc(row[c]) for c in columns}}


def _check_columns(tbl: sa.Table, cols: tuple[str, ...], pk: list[str]) -> None:
    """A row naming a column the table lacks, or missing the key, is a caller bug: say so."""
    unknown = [c for c in cols if c not in tbl.c]
    if unknown:
        raise WarehouseError(f"table {tbl.name!r} has no column(s) {', '.join(unknown)}")
    missing = [c for c in pk if c not in cols]
    if missing:
        raise WarehouseError(
            f"rows for table {tbl.name!r} need the primary key column(s) {', '.join(missing)}"
        )


@lru_cache(maxsize=1024)
def _upsert_statement(dialect: str, table_name: str, cols: tuple[str, ...]) -> Any:
    """``INSERT (cols) VALUES … ON CONFLICT`` for one table and column set, built once."""
    tbl = table(table_name)
    return _on_conflict(_insert(dialect, tbl), tbl, cols)


def _on_conflict(stmt: Any, tbl: sa.Table, cols: Sequence[str]) -> Any:
    """``ON CONFLICT (pk) DO UPDATE`` of the given non-key columns (sticky ones coalesced)."""
    pk = [c.name for c in tbl.primary_key.columns]
    sticky = STICKY.get(tbl.name, frozenset())
    update_cols = [c for c in cols if c not in pk]
    if not update_cols:
        return stmt.on_conflict_do_nothing(index_elements=pk)
    set_ = {
        c: (sa.func.coalesce(tbl.c[c], stmt.excluded[c]) if c in sticky else stmt.excluded[c])
        for c in update_cols
    }
    return stmt.on_conflict_do_update(index_elements=pk, set_=set_)


# --- executemany straight to the driver --------------------------------------------------


@dataclass(frozen=True)
class _ManyPlan:
    """One table and column set's ``INSERT … ON CONFLICT`` as driver SQL, with what turns a
    row into its parameters. SQLAlchemy's own executemany builds and type-processes a
    parameter dict per row (measured: 40% of a page's write on SQLite); this does the same
    conversions from a tuple, with the statement compiled once."""

    sql: str
    pick: Callable[[Mapping[str, Any]], Any]  # row -> tuple of the group's columns
    converters: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, converter)
    defaults: tuple[Any, ...]  # values of the defaulted columns the group lacks
    place: Callable[[tuple[Any, ...]], Any] | None  # (*cols, *defaults) -> statement order


@cache
def _plain_defaults(tbl: sa.Table) -> bool:
    """Whether every column default is a constant (which ``_ManyPlan`` can fill in)."""
    return all(
        (c.default is None or c.default.is_scalar) and c.onupdate is None for c in tbl.columns
    )


def _defaults_lacking(tbl: sa.Table, cols: Sequence[str]) -> dict[str, Any]:
    """The constant defaults of the columns a group lacks, which a new row must get (the
    COPY and driver paths fill them in, as SQLAlchemy's INSERT would)."""
    return {
        c.name: c.default.arg  # type: ignore[attr-defined]  # _plain_defaults: scalar
        for c in tbl.columns
        if c.name not in cols and c.default is not None
    }


@lru_cache(maxsize=1024)
def _many_plan(dialect: sa.Dialect, table_name: str, cols: tuple[str, ...]) -> _ManyPlan | None:
    """The plan, or ``None`` where the driver takes named parameters (SQLAlchemy's path)."""
    tbl = table(table_name)
    defaults = _defaults_lacking(tbl, cols)
    columns = (*cols, *defaults)
    stmt = _insert(dialect.name, tbl).values(
        {c: sa.bindparam(c, type_=tbl.c[c].type) for c in columns}
    )
    compiled = _on_conflict(stmt, tbl, cols).compile(dialect=dialect)
    order = tuple(compiled.positiontup or ())
    if not compiled.positional or sorted(order) != sorted(columns):
        return None
    converters = [(i, f) for i, c in enumerate(cols) if (f := _many_converter(tbl.c[c], dialect))]
    getter = itemgetter(*cols)
    pick = (lambda row: (getter(row),)) if len(cols) == 1 else getter
    # the statement takes its columns in table order; rows come as (*cols, *defaults)
    place = itemgetter(*(columns.index(c) for c in order)) if order != columns else None
    return _ManyPlan(compiled.string, pick, tuple(converters), tuple(defaults.values()), place)


def _driver_upsert(conn: Connection, plan: _ManyPlan, rows: list[Mapping[str, Any]]) -> None:
    converters, tail, place = plan.converters, plan.defaults, plan.place
    params: list[Any] = []
    for row in rows:
        values = plan.pick(row)
        if converters:
            values = list(values)
            for i, convert in converters:
                if values[i] is not None:
                    values[i] = convert(values[i])
        values = (*values, *tail) if tail else tuple(values)
        params.append(place(values) if place is not None else values)
    for batch in _chunks(params, BATCH_ROWS):
        conn.exec_driver_sql(plan.sql, batch)


#: SQLAlchemy's default storage format for SQLite DATETIME columns.
_SQLITE_DATETIME = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)


def _many_converter(col: sa.Column[Any], dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    """The column type's bind processor, after an aware datetime becomes naive UTC (SQLite
    would store the wall-clock time and drop the offset)."""
    impl = col.type.dialect_impl(dialect)
    process = impl.bind_processor(dialect)
    if not isinstance(col.type, sa.DateTime):
        return process
    if getattr(impl, "_storage_format", None) == _SQLITE_DATETIME and process is not None:
        # SQLite's DATETIME text, by datetime's C isoformat instead of a %-format per value
        # (the same text: tests/test_upsert.py); anything but a datetime goes the usual way
        slow = process

        def stamp(value: Any) -> Any:
            if type(value) is datetime:
                if value.tzinfo is not None:
                    value = value.astimezone(UTC).replace(tzinfo=None)
                return value.isoformat(" ", "microseconds")
            return slow(_naive_utc(value))

        return stamp
    if process is None:
        return _naive_utc

    def convert(value: Any) -> Any:
        return process(_naive_utc(value))

    return convert


# --- PostgreSQL: COPY into a temporary table, then one INSERT … SELECT … ON CONFLICT ---------


def _can_copy(conn: Connection, tbl: sa.Table) -> bool:
    """Whether ``upsert`` may take the COPY path for ``tbl`` on this connection.

    It needs psycopg 3 (``cursor.copy``), an open transaction (what one group stages must not
    leak into the next transaction) and column defaults the COPY path can reproduce
    (constants; the executemany path lets SQLAlchemy evaluate anything else).
    """
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
        return False
    if getattr(conn.connection.driver_connection, "autocommit", True):
        return False
    return _plain_defaults(tbl)


@dataclass(frozen=True)
class _CopyPlan:
    """Everything about one table and column set that does not depend on the rows."""

    columns: tuple[str, ...]  # the group's columns, then defaulted ones it lacks
    defaults: tuple[Any, ...]  # values of the defaulted columns, appended to every row
    converters: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, converter)
    prepare_sql: str  # create the staging table if needed, empty it
    copy_sql: str
    merge: Any  # INSERT … SELECT … FROM staging ON CONFLICT …


@lru_cache(maxsize=1024)
def _copy_plan(dialect: sa.Dialect, table_name: str, cols: tuple[str, ...]) -> _CopyPlan:
    tbl = table(table_name)
    defaults = _defaults_lacking(tbl, cols)
    columns = (*cols, *defaults)
    quote = dialect.identifier_preparer.quote
    stage = f"pv_stage_{tbl.name}"
    col_sql = ", ".join(quote(c) for c in columns)
    staged = sa.table(stage, *(sa.column(c) for c in columns))
    merge = _insert(dialect.name, tbl).from_select(columns, sa.select(*staged.c))
    converters = [(i, f) for i, c in enumerate(cols) if (f := _copy_converter(tbl.c[c], dialect))]
    return _CopyPlan(
        columns=columns,
        defaults=tuple(defaults.values()),
        converters=tuple(converters),
        # The staging table copies only column types (no NOT NULL, no keys), lives for the
        # session and is emptied at every commit; the DELETE empties what an earlier group
        # of the same transaction staged. Two statements, no parameters: one round trip.
        prepare_sql=(
            f"CREATE TEMP TABLE IF NOT EXISTS {quote(stage)} ON COMMIT DELETE ROWS AS "
            f"SELECT * FROM {dialect.identifier_preparer.format_table(tbl)} WITH NO DATA; "
            f"DELETE FROM {quote(stage)}"
        ),
        copy_sql=f"COPY {quote(stage)} ({col_sql}) FROM STDIN",
        merge=_on_conflict(merge, tbl, cols),
    )


def _copy_upsert(
    conn: Connection, tbl: sa.Table, cols: tuple[str, ...], rows: list[Mapping[str, Any]]
) -> None:
    """Upsert one column-set group through ``COPY`` (see ``upsert``).

    Column defaults are filled in here, as SQLAlchemy does for an ``INSERT``, so a new row
    gets them; the ``ON CONFLICT`` update still touches only the group's own columns.
    """
    plan = _copy_plan(conn.dialect, tbl.name, cols)
    converters, tail = plan.converters, list(plan.defaults)
    pick = itemgetter(*cols)
    driver = conn.connection.driver_connection
    with driver.cursor() as cur:  # type: ignore[union-attr]
        cur.execute(plan.prepare_sql)
        with cur.copy(plan.copy_sql) as copy:
            for row in rows:
                values = [pick(row)] if len(cols) == 1 else list(pick(row))
                for i, convert in converters:
                    if values[i] is not None:
                        values[i] = convert(values[i])
                copy.write_row(values + tail if tail else values)
    conn.execute(plan.merge)


def _copy_converter(col: sa.Column[Any], dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    """What a value must become for COPY's text input to store what executemany would.

    The column type's bind processor runs as usual (e.g. Boolean's check of 0/1). Two
    conversions the server does to a typed bind parameter, but not to COPY text, are done
    here: an aware datetime for a naive ``TIMESTAMP`` becomes naive UTC (the warehouse
    convention; COPY would silently drop the offset) and a float for an integer column is
    rounded (COPY would reject ``3.0``).
    """
    steps: list[Callable[[Any], Any]] = []
    if isinstance(col.type, sa.DateTime) and not col.type.timezone:
        steps.append(_naive_utc)
    if isinstance(col.type, sa.Integer):
        steps.append(_round_float)
    process = col.type.dialect_impl(dialect).bind_processor(dialect)
    if process is not None:
        steps.append(process)
    if len(steps) < 2:
        return steps[0] if steps else None

    def convert(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value

    return convert


def _naive_utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _round_float(value: Any) -> Any:
    return round(value) if isinstance(value, float) else value


def in_values(conn: Connection, column: sa.ColumnElement[Any], values: Sequence[Any]) -> Any:
    """``column IN values`` as the cheapest condition the database takes.

    On PostgreSQL that is ``column IN (SELECT unnest(:array))``: one bound array, so the
    statement text is the same for every call (no 500-placeholder ``IN`` rendered, parsed and
    planned anew) and any number of values fits. Not ``column = ANY(:array)``: once psycopg
    prepares the repeated statement, PostgreSQL may switch to a generic plan that compares
    every scanned row with every array element (measured: 90 ms a page for a 500-id
    ``Replace``), while the semi-join stays a hash or index lookup. Elsewhere a plain
    expanding ``IN``; callers keep SQLite's lists under its bound-variable limit.
    """
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        array = sa.bindparam(None, list(values), type_=ARRAY(column.type))
        return column.in_(sa.select(sa.func.unnest(array)))
    return column.in_(values)


def lookup(
    conn: Connection,
    table_name: str,
    where: Mapping[str, Any],
    key: str,
    keys: Sequence[Any],
    column: str,
) -> dict[Any, Any]:
    """``{key: column}`` for the rows matching ``where`` whose ``key`` is one of ``keys``.

    Meant for a unique index ending in ``key`` (raw payload hashes by source, stream and id).
    On PostgreSQL it probes that index once per key (a ``LATERAL … LIMIT 1`` join over the
    unnested keys): a plain ``key = ANY(…)`` is planned from column statistics, and before
    autovacuum has analysed a freshly filled table the planner reads every row matching
    ``where`` instead, which made each page of a first sync slower than the last.
    """
    tbl = table(table_name)
    conditions = [tbl.c[c] == v for c, v in where.items()]
    found: dict[Any, Any] = {}
    if not keys:
        return found
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        wanted = (
            sa.func.unnest(sa.bindparam("keys", list(keys), type_=ARRAY(tbl.c[key].type)))
            .table_valued("key")
            .render_derived("wanted")
        )
        row = (
            sa.select(tbl.c[column])
            .where(*conditions, tbl.c[key] == wanted.c.key)
            .limit(1)
            .lateral()
        )
        stmt = sa.select(wanted.c.key, row.c[column]).select_from(wanted.join(row, sa.true()))
        found.update((r[0], r[1]) for r in conn.execute(stmt))
        return found
    for batch in _chunks(list(keys), LOOKUP_ROWS):
        stmt = sa.select(tbl.c[key], tbl.c[column]).where(*conditions, tbl.c[key].in_(batch))
        found.update((r[0], r[1]) for r in conn.execute(stmt))
    return found


def delete_where(conn: Connection, table_name: str, column: str, values: Iterable[Any]) -> None:
    """``DELETE FROM table WHERE column IN (…)``, in batches where the database needs them."""
    tbl = table(table_name)
    unique = list(dict.fromkeys(values))
    size = len(unique) if conn.dialect.name == "postgresql" else BATCH_ROWS
    plain = conn.dialect.name == "sqlite" and _plain_binds(conn.dialect, table_name, column)
    for batch in _chunks(unique, max(size, 1)):
        if plain:
            conn.exec_driver_sql(
                _delete_sql(conn.dialect, table_name, column, len(batch)), tuple(batch)
            )
        else:
            conn.execute(sa.delete(tbl).where(in_values(conn, tbl.c[column], batch)))


@lru_cache(maxsize=256)
def _plain_binds(dialect: sa.Dialect, table_name: str, column: str) -> bool:
    """Whether ``column``'s values go to the driver as they are (no bind processor)."""
    col = table(table_name).c[column]
    return col.type.dialect_impl(dialect).bind_processor(dialect) is None


@lru_cache(maxsize=1024)
def _delete_sql(dialect: sa.Dialect, table_name: str, column: str, n: int) -> str:
    """``DELETE … WHERE column IN (?, …)`` as driver SQL (SQLite), built once per size: the
    SQLAlchemy statement renders its expanding ``IN`` anew on every call (measured: a
    tenth of a Jira page's write, six child tables a page)."""
    quote = dialect.identifier_preparer.quote
    marks = ", ".join("?" * n)
    return f"DELETE FROM {quote(table_name)} WHERE {quote(column)} IN ({marks})"


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction: everything inside commits together or not at all."""
    with engine.begin() as conn:
        yield conn


def async_commit(conn: Connection) -> None:
    """Let this transaction's commit return before the database has flushed it to disk.

    For work that can be redone, like a sync page (its cursor is in the same transaction, so
    a lost page is simply fetched again). On PostgreSQL this is ``synchronous_commit = off``
    for the current transaction only: a server crash may lose the last few such
    transactions, each whole, never part of one, and the next ordinary commit flushes them
    all. That is the guarantee SQLite already gives every commit here (WAL with
    ``synchronous=NORMAL``), so on SQLite this does nothing.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
