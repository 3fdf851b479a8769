"""Every mapped value checked against its warehouse column before it reaches the database.

Why here, once: a value the database refuses (a 400-character name in a ``varchar(300)`` on
PostgreSQL, a NUL byte, a date past year 9999, an object where text belongs) used to abort the
whole page, on every rerun, so one bad record blocked its stream for good. The sync engine
runs every record of every connector through :func:`clean_mapped`; a record that cannot be
made valid raises :class:`~programview.errors.MappingError` and goes to quarantine alone.

The rules are driven by the SQLAlchemy model (column type, length, nullability, primary key),
so a new column is covered without touching this file. Columns fall in two classes:

* **Identity** columns (primary keys, ids, keys, scopes: what rows are found and joined by):
  a value that is too long, holds a NUL or a lone surrogate, or reads ``None`` is rejected.
  Shortening or cleaning an id would silently merge or orphan rows.
* **Descriptive** text (titles, names, statuses, labels, URLs): NUL characters are removed,
  lone surrogates become U+FFFD, and text longer than its column is cut to fit (with "…").
  The full value stays in the raw payload.

Numbers must be finite and within ``MAX_NUMBER``; integers fit 32 bits; times and dates fall
in years ``MIN_YEAR``..``MAX_YEAR`` (anything else is a corrupt or mistyped value); booleans
are booleans. Required (non-nullable) columns must not be ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from programview.errors import MappingError
from programview.sync.connector import Record, Replace
from programview.warehouse import db

__all__ = ["MAX_NUMBER", "MAX_YEAR", "MIN_YEAR", "clean_mapped", "clean_text", "is_clean_id"]

MIN_YEAR = 1900
MAX_YEAR = 2200
#: Largest magnitude of a stored number (points, hours, budgets): far beyond any real value,
#: well inside what every database and a float represent exactly enough.
MAX_NUMBER = 1e15
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
ELLIPSIS = "…"

#: Column names that identify or join rows even when they are not part of a primary key.
IDENTITY_NAMES = frozenset({"id", "native_id", "item_key", "scope", "source_name", "board_id"})


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str  # text | int | float | bool | datetime | date | bytes | any
    length: int | None
    nullable: bool
    identity: bool
    key: bool


def _kind(col: sa.Column[Any]) -> str:
    t = col.type
    if isinstance(t, sa.Boolean):
        return "bool"
    if isinstance(t, sa.Integer):
        return "int"
    if isinstance(t, sa.Float | sa.Numeric):
        return "float"
    if isinstance(t, sa.DateTime):
        return "datetime"
    if isinstance(t, sa.Date):
        return "date"
    if isinstance(t, sa.LargeBinary):
        return "bytes"
    if isinstance(t, sa.String):  # String, Text, Unicode
        return "text"
    return "any"


@lru_cache(maxsize=128)
def _rules(table_name: str) -> dict[str, _Rule]:
    tbl = db.table(table_name)
    out = {}
    for col in tbl.columns:
        identity = (
            col.primary_key
            or col.name in IDENTITY_NAMES
            or col.name.endswith(("_id", "_key"))
            or (col.name == "key")
        )
        out[col.name] = _Rule(
            kind=_kind(col),
            length=getattr(col.type, "length", None),
            nullable=bool(col.nullable) and not col.primary_key,
            identity=bool(identity),
            key=bool(col.primary_key),
        )
    return out


def _primary_key(table_name: str) -> tuple[str, ...]:
    return tuple(c.name for c in db.table(table_name).primary_key.columns)


def clean_text(value: str) -> str:
    """``value`` without NUL characters and with lone surrogates replaced by U+FFFD, so every
    database (and UTF-8) takes it. Cheap for the usual clean text."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def is_clean_id(value: str, length: int | None = None, *, key: bool = True) -> str | None:
    """Why ``value`` cannot identify a row (``None`` when it can); ``key``: it is (part of)
    a primary key, so it may not be empty either."""
    if key and not value.strip():
        return "is empty"
    if value == "None" or value.endswith(":None"):
        return f"reads {value!r} (a missing id turned into text)"
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (invalid Unicode)"
    if length is not None and len(value) > length:
        return f"is {len(value)} characters long (the column holds {length})"
    return None


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _clean_value(rule: _Rule, value: Any) -> Any:
    """The value to store, or raise ``ValueError`` saying why it cannot be stored."""
    if type(value) is str and rule.kind == "text" and value.isascii() and "\x00" not in value:
        # the common case, cheaply: clean ASCII text (most ids, keys, statuses, names)
        length = rule.length
        if not rule.identity:
            if length is not None and len(value) > length:
                return value[: length - 1] + ELLIPSIS
            return value
        if (
            (length is None or len(value) <= length)
            and value != "None"
            and not value.endswith(":None")
            and (not rule.key or value.strip())
        ):
            return value
    return _clean_slow(rule, value)


def _clean_slow(rule: _Rule, value: Any) -> Any:
    if value is None:
        if not rule.nullable:
            raise ValueError("is required but missing (None)")
        return None
    kind = rule.kind
    if kind == "text":
        if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
            raise ValueError(f"must be text, got {type(value).__name__} {_describe(value)}")
        text = value if isinstance(value, str) else str(value)
        if rule.identity:
            why = is_clean_id(text, rule.length, key=rule.key)
            if why:
                raise ValueError(why)
            return text
        text = clean_text(text)
        if rule.length is not None and len(text) > rule.length:
            text = text[: rule.length - 1] + ELLIPSIS
        return text
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise ValueError(f"must be a number, got {type(value).__name__} {_describe(value)}")
        number = float(value)
        if not math.isfinite(number) or abs(number) > MAX_NUMBER:
            raise ValueError(f"number out of range: {_describe(value)}")
        return number
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer, got {type(value).__name__} {_describe(value)}")
        if not INT_MIN <= value <= INT_MAX:
            raise ValueError(f"integer out of range: {_describe(value)}")
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(f"must be true or false, got {_describe(value)}")
    if kind == "datetime":
        if not isinstance(value, datetime):
            raise ValueError(f"must be a time, got {type(value).__name__} {_describe(value)}")
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        if not MIN_YEAR <= value.year <= MAX_YEAR:
            raise ValueError(f"time out of range: {value.isoformat()}")
        return value
    if kind == "date":
        if isinstance(value, datetime):
            value = value.date()
        if not isinstance(value, date):
            raise ValueError(f"must be a date, got {type(value).__name__} {_describe(value)}")
        if not MIN_YEAR <= value.year <= MAX_YEAR:
            raise ValueError(f"date out of range: {value.isoformat()}")
        return value
    if kind == "bytes":
        if not isinstance(value, bytes | bytearray | memoryview):
            raise ValueError(f"must be bytes, got {type(value).__name__}")
        return value
    return value


@dataclass(frozen=True, slots=True)
class _Table:
    """One table's rules, and the column sets its fast paths test membership in."""

    rules: dict[str, _Rule]
    pk: tuple[str, ...]
    plain_text: dict[str, int]  # descriptive text column -> longest value it takes
    id_text: dict[str, tuple[int, bool]]  # identity text column -> (longest value, key)
    floats: frozenset[str]
    stamps: frozenset[str]
    bools: frozenset[str]


_UNBOUNDED = 2**62


@lru_cache(maxsize=128)
def _table(table_name: str) -> _Table:
    try:
        rules, pk = _rules(table_name), _primary_key(table_name)
    except Exception as exc:
        raise MappingError(str(exc)) from None

    def names(kind: str) -> frozenset[str]:
        return frozenset(n for n, r in rules.items() if r.kind == kind)

    text = {n: r for n, r in rules.items() if r.kind == "text"}
    return _Table(
        rules=rules,
        pk=pk,
        plain_text={n: r.length or _UNBOUNDED for n, r in text.items() if not r.identity},
        id_text={n: (r.length or _UNBOUNDED, r.key) for n, r in text.items() if r.identity},
        floats=names("float"),
        stamps=names("datetime"),
        bools=names("bool"),
    )


def _clean_fields(table_name: str, fields: dict[str, Any], *, whole_key: bool) -> dict[str, Any]:
    """``fields`` made storable; ``fields`` itself when every value already is (the usual
    case: the fast paths below cover clean ASCII text, finite floats, naive datetimes in
    range and booleans without building a new row)."""
    t = _table(table_name)
    if whole_key:
        missing = [c for c in t.pk if c not in fields]
        if missing:
            raise MappingError(f"{table_name} row lacks its key column(s) {', '.join(missing)}")
    plain_text, id_text = t.plain_text, t.id_text
    out: dict[str, Any] | None = None
    name = ""
    try:
        for name, value in fields.items():
            kind = type(value)
            if kind is str:
                limit = plain_text.get(name)
                if limit is not None:
                    if len(value) <= limit and value.isascii() and "\x00" not in value:
                        continue
                else:
                    ident = id_text.get(name)
                    if (
                        ident is not None
                        and len(value) <= ident[0]
                        and value.isascii()
                        and "\x00" not in value
                        and value != "None"
                        and not value.endswith(":None")
                        and (not ident[1] or value.strip())
                    ):
                        continue
            elif kind is float:
                if name in t.floats and -MAX_NUMBER <= value <= MAX_NUMBER:
                    continue
            elif kind is datetime:
                if name in t.stamps and value.tzinfo is None and MIN_YEAR <= value.year <= MAX_YEAR:
                    continue
            elif kind is bool and name in t.bools:
                continue
            # anything else: the full rules (which also name an unknown column)
            rule = t.rules.get(name)
            if rule is None:
                unknown = [k for k in fields if k not in t.rules]
                raise MappingError(f"table {table_name!r} has no column(s) {', '.join(unknown)}")
            if value is None:
                if not (whole_key and rule.nullable):
                    # required; in a Replace's where, None would never match a row
                    raise ValueError("is required but missing (None)")
                cleaned = None
            else:
                cleaned = _clean_value(rule, value)
            if cleaned is not value:
                if out is None:
                    out = dict(fields)
                out[name] = cleaned
    except ValueError as exc:
        raise MappingError(f"{table_name}.{name} {exc}") from None
    return fields if out is None else out


def clean_mapped(mapped: Sequence[Any]) -> list[Record | Replace]:
    """``mapped`` (what a stream's ``map`` returned) with every value made storable.

    Raises :class:`MappingError` naming the table, column and reason when a value cannot be
    stored: the record is then quarantined, and the rest of its page is written.
    """
    out: list[Record | Replace] = []
    for item in mapped:
        # an item whose values were already storable is kept as it is (no copy)
        if isinstance(item, Record):
            values = _clean_fields(item.table, item.values, whole_key=True)
            out.append(item if values is item.values else Record(item.table, values))
        elif isinstance(item, Replace):
            where = _clean_fields(item.table, item.where, whole_key=False)
            out.append(item if where is item.where else Replace(item.table, where))
        else:
            raise MappingError(f"map() returned {type(item).__name__}, not Record or Replace")
    return out
