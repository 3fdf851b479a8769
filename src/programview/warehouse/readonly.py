"""``programview db grant-readonly``: a PostgreSQL role for BI tools that can read the ``v_*``
views and nothing else.

Why views only: the views are the public contract; base tables hold raw API payloads (which
may contain personal data and internal fields) and change shape between versions. PostgreSQL
runs a view with its *owner's* rights, so SELECT on the views plus USAGE on the schema is all
a reader needs; the base tables stay closed to it.

Idempotent: every run converges the role to exactly that (privileges on other tables revoked,
SELECT granted on every ``v_*`` view that exists now), so re-running after a migration covers
views added later. The password, when given, is hashed client-side (SCRAM, like psql's
``\\password``), so neither the server log nor our statement log ever sees it.

SQLite has no roles: open the file read-only instead (``sqlite:///file:warehouse.db?mode=ro&uri=true``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from programview.errors import ConfigError, WarehouseError
from programview.warehouse.db import check_connection, redact_url

log = logging.getLogger(__name__)

#: A plain PostgreSQL identifier: no quoting surprises in GRANT statements or pg_hba.conf.
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Roles PostgreSQL reserves (``pg_*``) or that would lock people out if their grants changed.
RESERVED = frozenset({"public", "postgres", "none", "current_user", "session_user", "current_role"})
VIEW_PREFIX = "v_"


class ReadonlyUnsupported(WarehouseError):
    """The warehouse database has no roles (SQLite)."""


@dataclass
class ReadonlyGrant:
    """What ``grant_readonly`` did."""

    role: str
    created: bool
    password_set: bool
    schema: str
    views: list[str] = field(default_factory=list)
    revoked_tables: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def grant_readonly(engine: Engine, role: str, *, password: str | None = None) -> ReadonlyGrant:
    """Create or update ``role`` so it can SELECT the ``v_*`` views and nothing else.

    ``password`` (optional) becomes the role's login password; without it an existing
    password is kept and a new role can only log in where pg_hba.conf trusts it.
    Raises :class:`ReadonlyUnsupported` on SQLite and ``ConfigError`` for a bad role name.
    """
    if engine.dialect.name == "sqlite":
        database = engine.url.database or "warehouse.db"
        raise ReadonlyUnsupported(
            "SQLite has no roles, so there is nothing to grant. Give BI tools read-only access "
            f"by opening the file read-only instead: sqlite:///file:{database}?mode=ro&uri=true "
            "(or copy the file for them)"
        )
    if engine.dialect.name != "postgresql":
        raise ReadonlyUnsupported(f"grant-readonly supports PostgreSQL, not {engine.dialect.name}")
    _check_name(role)
    check_connection(engine)
    try:
        return _converge(engine, role, password)
    except sa.exc.DBAPIError as exc:
        # The server's reason only: the statement text may hold the password verifier.
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise WarehouseError(
            f"cannot set up read-only role {role!r} in {redact_url(str(engine.url))}: {reason} "
            "(the user programview connects as needs CREATEROLE and must own the v_* views)"
        ) from None


def _converge(engine: Engine, role: str, password: str | None) -> ReadonlyGrant:
    with engine.begin() as conn:
        me = conn.execute(sa.text("SELECT current_user")).scalar_one()
        if role == me:
            raise ConfigError(
                f"role {role!r} is the user programview connects as "
                f"({redact_url(str(engine.url))}); pick another name for the read-only role"
            )
        existing = conn.execute(
            sa.text("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = :r"),
            {"r": role},
        ).first()
        if existing is not None and (existing.rolsuper or existing.rolcreaterole):
            raise ConfigError(
                f"role {role!r} already exists and is a superuser or can create roles; "
                "a read-only role must be a plain role: pick another name"
            )
        ident = _quote(conn, role)
        secret = _password_clause(conn, role, password) if password is not None else ""
        attrs = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"
        # exec_driver_sql: the SCRAM verifier holds ":" that text() would take for parameters.
        verb = "CREATE" if existing is None else "ALTER"
        conn.exec_driver_sql(f"{verb} ROLE {ident} WITH {attrs}{secret}")
        # Belt and braces: even a view the owner made writable stays read-only for this role.
        database = conn.execute(sa.text("SELECT current_database()")).scalar_one()
        conn.execute(
            sa.text(
                f"ALTER ROLE {ident} IN DATABASE {_quote(conn, database)} "
                "SET default_transaction_read_only = on"
            )
        )
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        qschema = _quote(conn, schema)

        conn.execute(sa.text(f"GRANT CONNECT ON DATABASE {_quote(conn, database)} TO {ident}"))
        conn.execute(sa.text(f"GRANT USAGE ON SCHEMA {qschema} TO {ident}"))
        # Converge: take back anything granted on tables, sequences and functions, then grant
        # exactly the views (a view dropped and re-created by a migration loses its grants).
        revoked = [
            r.relname
            for r in conn.execute(
                sa.text(
                    "SELECT DISTINCT c.relname FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace, "
                    "aclexplode(c.relacl) a "
                    "WHERE n.nspname = :s AND a.grantee = (SELECT oid FROM pg_roles "
                    "WHERE rolname = :r) AND NOT (c.relkind = 'v' AND c.relname LIKE 'v\\_%')"
                    " ORDER BY 1"
                ),
                {"s": schema, "r": role},
            )
        ]
        conn.execute(sa.text(f"REVOKE ALL ON ALL TABLES IN SCHEMA {qschema} FROM {ident}"))
        conn.execute(sa.text(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {qschema} FROM {ident}"))
        conn.execute(sa.text(f"REVOKE CREATE ON SCHEMA {qschema} FROM {ident}"))
        views = list(
            conn.execute(
                sa.text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relkind IN ('v', 'm') "
                    "AND c.relname LIKE 'v\\_%' ORDER BY c.relname"
                ),
                {"s": schema},
            ).scalars()
        )
        for view in views:
            conn.execute(sa.text(f"GRANT SELECT ON {qschema}.{_quote(conn, view)} TO {ident}"))

        warnings = []
        if not views:
            warnings.append(
                f"schema {schema!r} has no v_* views yet: run `programview db upgrade`, then "
                "run grant-readonly again"
            )
        if conn.execute(
            sa.text("SELECT has_schema_privilege(:r, :s, 'CREATE')"), {"r": role, "s": schema}
        ).scalar_one():
            warnings.append(
                f"every role (PUBLIC) may create tables in schema {schema!r}, so {role!r} can "
                f"too; close it with: REVOKE CREATE ON SCHEMA {qschema} FROM PUBLIC"
            )
        open_tables = list(
            conn.execute(
                sa.text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relkind IN ('r', 'p') "
                    "AND has_table_privilege(:r, c.oid, 'SELECT') ORDER BY 1"
                ),
                {"s": schema, "r": role},
            ).scalars()
        )
        if open_tables:
            warnings.append(
                f"{role!r} can still read table(s) {', '.join(open_tables)} through PUBLIC "
                "grants or role membership; revoke those to keep base tables private"
            )

    for message in warnings:
        log.warning("grant-readonly: %s", message)
    return ReadonlyGrant(
        role=role,
        created=existing is None,
        password_set=password is not None,
        schema=schema,
        views=views,
        revoked_tables=revoked,
        warnings=warnings,
    )


def _check_name(role: str) -> None:
    if not ROLE_NAME.match(role):
        raise ConfigError(
            f"role name {role!r} is not a plain PostgreSQL identifier: use lower-case letters, "
            "digits and underscores, starting with a letter or underscore (at most 63)"
        )
    if role in RESERVED or role.startswith("pg_"):
        raise ConfigError(f"role name {role!r} is reserved by PostgreSQL: pick another name")


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


def _password_clause(conn: Connection, role: str, password: str) -> str:
    """`` PASSWORD '<SCRAM verifier>'``: hashed by libpq on this side, never sent in clear."""
    if not password:
        raise ConfigError("the read-only role's password is empty")
    raw = conn.connection.driver_connection
    pgconn = getattr(raw, "pgconn", None)
    if pgconn is None:  # pragma: no cover - psycopg 3 is the only supported driver
        raise WarehouseError("setting a password needs the psycopg driver (postgresql+psycopg)")
    verifier = pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    # The verifier is ASCII (SCRAM-SHA-256$…), no quotes; escape anyway for a literal.
    text = verifier.decode("ascii").replace("'", "''")
    return f" PASSWORD '{text}'"
