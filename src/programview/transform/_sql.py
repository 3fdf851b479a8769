"""Small helpers so the transform's SQL reads as SQL and runs the same on SQLite and PostgreSQL.

Two things differ between the databases and matter here:

* date arithmetic (``julianday`` on SQLite, interval/date subtraction on PostgreSQL), hidden
  behind :class:`Sql`;
* SQLite keeps timestamps as text, so every bound date or datetime must go through
  SQLAlchemy's type processing (``2024-01-01 10:00:00.000000``, the stored format) rather than
  the driver's default (which drops zero microseconds and would compare wrongly at
  boundaries). :func:`stmt` binds every parameter with its SQLAlchemy type, and result
  columns holding dates are declared so they come back as ``date``/``datetime`` objects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

if TYPE_CHECKING:
    from programview.config import Config

#: A scope mapped to two projects by mistake must not double-count: the smaller key wins.
SCOPE_PROJECT_CTE = (
    "scope_project AS (SELECT source_name, scope, MIN(project_key) AS project_key "
    "FROM project_scopes GROUP BY source_name, scope)"
)

#: A closed sprint's and a shipped release's figures are recomputed on every run for this many
#: days after the close/ship date, then kept as they were (like Jira's sprint report, frozen at
#: close): late syncs and corrections land within it. ``programview transform --full``
#: recomputes all of them (after a backfill or remap that rewrote history).
REFRESH_DAYS = 30

#: A release counts as released when released (flag) or its release time is known.
IS_RELEASED = "(r.released_at IS NOT NULL OR COALESCE(r.released, FALSE))"


@dataclass(frozen=True, slots=True)
class Sql:
    """Dialect-specific SQL fragments."""

    dialect: str

    def date(self, expr: str) -> str:
        """The calendar date (UTC) of a timestamp expression."""
        if self.dialect == "postgresql":
            return f"CAST({expr} AS DATE)"
        return f"date({expr})"

    def day_number(self, expr: str) -> str:
        """The day of a timestamp expression as an integer: Python's ``date.toordinal()`` of
        its calendar date (UTC). An integer, not a date, where Python reads many rows: no
        date parsing per value on the way out."""
        if self.dialect == "postgresql":
            return f"(CAST({expr} AS DATE) - DATE '0001-01-01' + 1)"
        # julianday of day D at 00:00 is D's ordinal + 1721424.5; the time of day only adds
        # a fraction below 1, which the cast drops
        return f"CAST(julianday({expr}) - 1721424.5 AS INTEGER)"

    def days_between(self, later: str, earlier: str) -> str:
        """Fractional days from ``earlier`` to ``later`` (timestamps)."""
        if self.dialect == "postgresql":
            return f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) / 86400.0 AS DOUBLE PRECISION)"
        return f"(julianday({later}) - julianday({earlier}))"

    def floor(self, expr: str) -> str:
        """Largest integer <= a non-negative number."""
        if self.dialect == "postgresql":
            return f"CAST(FLOOR({expr}) AS INTEGER)"
        return f"CAST({expr} AS INTEGER)"

    def date_diff(self, later: str, earlier: str) -> str:
        """Whole days from ``earlier`` to ``later`` (dates)."""
        if self.dialect == "postgresql":
            return f"({later} - {earlier})"
        return f"CAST(ROUND(julianday({later}) - julianday({earlier})) AS INTEGER)"


@dataclass(frozen=True, slots=True)
class Ctx:
    """One transform run: the connection (one transaction), the settings and the clock."""

    conn: Connection
    config: Config
    as_of: datetime
    sql: Sql
    #: Recompute every sprint and release, not only the open and recently closed ones.
    full: bool = False

    @property
    def as_of_date(self) -> date:
        return self.as_of.date()

    @property
    def refresh_from(self) -> datetime:
        """Sprints closed and releases shipped before this keep their stored figures."""
        return self.as_of - timedelta(days=REFRESH_DAYS)


_PARAM = re.compile(r"(?<![:\w]):(\w+)")


def _type_of(value: Any) -> sa.types.TypeEngine[Any] | None:
    if isinstance(value, datetime):
        return sa.DateTime()
    if isinstance(value, date):
        return sa.Date()
    if isinstance(value, bool):
        return sa.Boolean()
    if isinstance(value, float):
        return sa.Float()
    if isinstance(value, int):
        return sa.Integer()
    return None


def stmt(
    sql: str,
    params: Mapping[str, Any] | None = None,
    columns: Mapping[str, sa.types.TypeEngine[Any]] | None = None,
) -> sa.TextClause:
    """``text(sql)`` with every parameter it uses bound with its type, and typed result
    columns. Parameters the statement does not mention are ignored, so queries can share
    one parameter dict."""
    clause = sa.text(sql)
    used = set(_PARAM.findall(sql))
    if params:
        clause = clause.bindparams(
            *(
                sa.bindparam(name, value, expanding=True)
                if isinstance(value, (list, tuple))
                else sa.bindparam(name, value, type_=_type_of(value))
                for name, value in params.items()
                if name in used
            )
        )
    if columns:
        return clause.columns(**columns)  # type: ignore[return-value]
    return clause


def fetch(
    conn: Connection,
    sql: str,
    params: Mapping[str, Any] | None = None,
    columns: Mapping[str, sa.types.TypeEngine[Any]] | None = None,
) -> Sequence[Row[*tuple[Any, ...]]]:
    return conn.execute(stmt(sql, params, columns)).all()


def fetch_tuples(
    conn: Connection, sql: str, params: Mapping[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    """The rows as the driver returns them, without SQLAlchemy's per-row result processing
    (half the cost of a read of many rows). The driver's types: SQLite returns timestamps as
    text; for the reads of many rows that Python loops over."""
    result = conn.execute(stmt(sql, params))
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def execute(conn: Connection, sql: str, params: Mapping[str, Any] | None = None) -> int:
    return conn.execute(stmt(sql, params)).rowcount


def points_at(item: str, at: str) -> str:
    """SQL expression: the estimate of work item ``item`` at time ``at``, rebuilt from
    ``estimate_changes`` (docs/metrics.md): the latest ``to_points`` changed at or before
    ``at``; if every change is later, the earliest change's ``from_points``.

    Only meaningful for items that have estimate changes; callers use the current
    ``story_points`` for the others (most items), so these subqueries run on few rows, each
    an index walk on ``(work_item_id, changed_at, change_id)`` without a sort. EXISTS
    decides the branch because a change may set the estimate *to* NULL.
    """
    before = f"e.work_item_id = {item} AND e.changed_at <= {at}"
    return (
        f"CASE WHEN EXISTS (SELECT 1 FROM estimate_changes e WHERE {before}) "
        f"THEN (SELECT e.to_points FROM estimate_changes e WHERE {before} "
        f"ORDER BY e.changed_at DESC, e.change_id DESC LIMIT 1) "
        f"ELSE (SELECT e.from_points FROM estimate_changes e WHERE e.work_item_id = {item} "
        f"ORDER BY e.changed_at, e.change_id LIMIT 1) END"
    )


def scope_projects(ctx: Ctx) -> dict[tuple[str, str], str]:
    """(source, scope) -> project key (a scope configured twice: the smaller key wins)."""
    rows = fetch(
        ctx.conn,
        "SELECT source_name, scope, MIN(project_key) FROM project_scopes "
        "GROUP BY source_name, scope",
    )
    return {(r[0], r[1]): r[2] for r in rows}
