"""``db.upsert`` semantics, on SQLite and PostgreSQL (the ``engine`` fixture runs both).

On PostgreSQL a column-set group of ``COPY_MIN_ROWS`` or more rows goes through COPY and a
staging table, a smaller one through executemany, so most cases run at both sizes: the
result must not depend on the path.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from programview.errors import WarehouseError
from programview.warehouse import db

#: Below the COPY threshold, at it, and more rows than one executemany batch (SQLite).
SIZES = [3, db.COPY_MIN_ROWS, db.BATCH_ROWS * 2 + 7]

NASTY_TEXT = [
    "tab\there",
    "line\nbreak and\r\ncarriage return",
    "back\\slash \\N \\t \\\\",
    "\\N",
    "",
    "quotes ' \" and commas, ;",
    "unicode: Zürich, Łódź, 東京, emoji 🚀, combining é",
    "x" * 5000,
]


def item(n: int, **values: Any) -> dict[str, Any]:
    """A complete work_items row (every NOT NULL column set)."""
    row: dict[str, Any] = {
        "id": f"t:{n}",
        "source_name": "t",
        "scope": "S",
        "native_id": str(n),
        "item_key": f"S-{n}",
        "type_category": "story",
        "status_category": "todo",
        "title": f"Item {n}",
        "priority": "High",
        "story_points": 3.0,
        "created_at": datetime(2025, 1, 1, 9, 30) + timedelta(minutes=n),
    }
    row.update(values)
    return row


def upsert(engine: sa.Engine, table: str, rows: list[dict[str, Any]]) -> int:
    with db.transaction(engine) as conn:
        return db.upsert(conn, table, rows)


def rows_of(engine: sa.Engine, table: str, *columns: str) -> dict[Any, tuple[Any, ...]]:
    """``{primary key: (columns…)}`` of every row."""
    tbl = db.table(table)
    pk = list(tbl.primary_key.columns)
    with engine.connect() as conn:
        result = conn.execute(sa.select(*pk, *(tbl.c[c] for c in columns))).all()
    width = len(pk)
    return {(r[0] if width == 1 else tuple(r[:width])): tuple(r[width:]) for r in result}


@pytest.mark.parametrize("n", SIZES)
def test_inserts_then_updates_every_row(engine: sa.Engine, n: int) -> None:
    assert upsert(engine, "work_items", [item(i) for i in range(n)]) == n
    assert upsert(engine, "work_items", [item(i, title=f"new {i}") for i in range(n)]) == n
    stored = rows_of(engine, "work_items", "title", "priority")
    assert stored == {f"t:{i}": (f"new {i}", "High") for i in range(n)}


@pytest.mark.parametrize("n", SIZES)
def test_partial_rows_update_only_their_columns(engine: sa.Engine, n: int) -> None:
    upsert(engine, "work_items", [item(i) for i in range(n)])
    partial = [
        {k: v for k, v in item(i, title=f"renamed {i}").items() if k not in ("priority",)}
        for i in range(n)
    ]
    upsert(engine, "work_items", partial)
    stored = rows_of(engine, "work_items", "title", "priority", "story_points")
    assert stored == {f"t:{i}": (f"renamed {i}", "High", 3.0) for i in range(n)}


@pytest.mark.parametrize("n", SIZES)
def test_groups_of_different_columns_in_one_call(engine: sa.Engine, n: int) -> None:
    upsert(engine, "work_items", [item(i) for i in range(n)])
    rows = []
    for i in range(n):
        if i % 2:
            rows.append(item(i, priority="Low") | {"title": "odd"})
        else:
            row = item(i, title="even")
            del row["priority"], row["story_points"]
            rows.append(row)
    assert upsert(engine, "work_items", rows) == n
    stored = rows_of(engine, "work_items", "title", "priority", "story_points")
    for i in range(n):
        expected = ("odd", "Low", 3.0) if i % 2 else ("even", "High", 3.0)
        assert stored[f"t:{i}"] == expected


@pytest.mark.parametrize("n", SIZES)
def test_duplicates_in_one_call_last_wins(engine: sa.Engine, n: int) -> None:
    rows = [item(i, title="first") for i in range(n)]
    rows += [item(i, title="second") for i in range(n)]
    rows += [item(0, title="third")]
    assert upsert(engine, "work_items", rows) == n
    stored = rows_of(engine, "work_items", "title")
    assert stored["t:0"] == ("third",)
    assert {v for k, v in stored.items() if k != "t:0"} <= {("second",)}
    assert len(stored) == n


@pytest.mark.parametrize("n", SIZES)
def test_sticky_columns_keep_the_first_non_null_value(engine: sa.Engine, n: int) -> None:
    def release(i: int, planned: date | None, due: date | None) -> dict[str, Any]:
        return {
            "id": f"t:r{i}",
            "source_name": "t",
            "native_id": f"r{i}",
            "kind": "version",
            "planned_date": planned,
            "due_date": due,
            "released_at": None,
        }

    june, july, august = date(2025, 6, 1), date(2025, 7, 1), date(2025, 8, 1)
    upsert(engine, "releases", [release(i, None, june) for i in range(n)])
    upsert(engine, "releases", [release(i, july, july) for i in range(n)])
    upsert(engine, "releases", [release(i, august, august) for i in range(n)])
    upsert(engine, "releases", [release(i, None, None) for i in range(n)])
    stored = rows_of(engine, "releases", "planned_date", "due_date")
    # planned_date: NULL is filled once, then never moves; due_date follows every update
    assert stored == {f"t:r{i}": (july, None) for i in range(n)}


@pytest.mark.parametrize("n", SIZES)
def test_nulls_are_written_and_can_clear_a_value(engine: sa.Engine, n: int) -> None:
    upsert(engine, "work_items", [item(i) for i in range(n)])
    upsert(engine, "work_items", [item(i, title=None, story_points=None) for i in range(n)])
    stored = rows_of(engine, "work_items", "title", "story_points", "priority")
    assert stored == {f"t:{i}": (None, None, "High") for i in range(n)}


@pytest.mark.parametrize("n", SIZES)
def test_values_round_trip_unchanged(engine: sa.Engine, n: int) -> None:
    def values(i: int) -> dict[str, Any]:
        return {
            "title": NASTY_TEXT[i % len(NASTY_TEXT)],
            "story_points": [0.1, 1e-9, 123456.789, -2.5, 0.0][i % 5],
            "created_at": datetime(2024, 2, 29, 23, 59, 59, 123456) + timedelta(hours=i),
            "due_date": date(2025, 12, 31) - timedelta(days=i),
            "not_delivered": bool(i % 2),
            "is_deleted": i % 3 == 0,
        }

    rows = [item(i, **values(i)) for i in range(n)]
    upsert(engine, "work_items", rows)
    columns = list(values(0))
    stored = rows_of(engine, "work_items", *columns)
    assert stored == {f"t:{i}": tuple(values(i)[c] for c in columns) for i in range(n)}
    assert {type(v[4]) for v in stored.values()} == {bool}


@pytest.mark.parametrize("n", SIZES)
def test_defaults_apply_to_new_rows_only(engine: sa.Engine, n: int) -> None:
    upsert(engine, "work_items", [item(i) for i in range(n)])  # no is_deleted given
    assert set(rows_of(engine, "work_items", "is_deleted").values()) == {(False,)}
    with db.transaction(engine) as conn:
        tbl = db.table("work_items")
        conn.execute(sa.update(tbl).values(is_deleted=True))
    upsert(engine, "work_items", [item(i, title="again") for i in range(n)])
    stored = rows_of(engine, "work_items", "is_deleted", "title")
    assert stored == {f"t:{i}": (True, "again") for i in range(n)}


@pytest.mark.parametrize("n", SIZES)
def test_rows_of_only_key_columns_are_inserted_once(engine: sa.Engine, n: int) -> None:
    rows = [{"project_key": "P", "source_name": "t", "scope": f"S{i}"} for i in range(n)]
    assert upsert(engine, "project_scopes", rows) == n
    assert upsert(engine, "project_scopes", rows) == n
    assert len(rows_of(engine, "project_scopes")) == n


@pytest.mark.parametrize("n", SIZES)
def test_floats_for_integer_columns_are_rounded(engine: sa.Engine, n: int) -> None:
    with db.transaction(engine) as conn:
        conn.execute(
            sa.insert(db.table("sync_runs")).values(
                id=1, kind="sync", started_at=datetime(2025, 1, 1), status="running"
            )
        )
    rows = [
        {
            "run_id": 1,
            "source_name": "t",
            "scope": "S",
            "stream": f"s{i}",
            "started_at": datetime(2025, 1, 1),
            "status": "ok",
            "records": 7.0,
        }
        for i in range(n)
    ]
    upsert(engine, "sync_run_streams", rows)
    stored = rows_of(engine, "sync_run_streams", "records", "pages")
    assert {v for v in stored.values()} == {(7, 0)}


@pytest.mark.parametrize("n", SIZES)
def test_aware_datetimes_are_stored_as_naive_utc(engine: sa.Engine, n: int) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2025, 3, 1, 10, 0, tzinfo=plus_two)
    upsert(engine, "work_items", [item(i, created_at=local) for i in range(n)])
    stored = rows_of(engine, "work_items", "created_at")
    expected = local.astimezone(UTC).replace(tzinfo=None)
    assert set(stored.values()) == {(expected,)}


def test_failed_transaction_leaves_nothing_behind(engine: sa.Engine) -> None:
    n = SIZES[-1]
    upsert(engine, "work_items", [item(i) for i in range(n)])
    with pytest.raises(sa.exc.IntegrityError), db.transaction(engine) as conn:
        db.upsert(conn, "work_items", [item(i, title="lost") for i in range(n)])
        db.upsert(conn, "work_items", [item(n + i, item_key=None) for i in range(n)])
    upsert(engine, "work_items", [item(2 * n + i) for i in range(n)])
    stored = rows_of(engine, "work_items", "title")
    assert len(stored) == 2 * n
    assert ("lost",) not in stored.values()


def test_rows_staged_in_one_transaction_do_not_reach_the_next(engine: sa.Engine) -> None:
    """A later page must never re-apply an earlier page's rows over newer values."""
    n = SIZES[-1]
    upsert(engine, "work_items", [item(i, title="page 1") for i in range(n)])
    with db.transaction(engine) as conn:
        conn.execute(sa.update(db.table("work_items")).values(title="edited"))
    for _ in range(3):  # several transactions, likely on the same pooled connection
        upsert(engine, "work_items", [item(n + i, title="page 2") for i in range(n)])
    stored = rows_of(engine, "work_items", "title")
    assert [stored[f"t:{i}"] for i in range(n)] == [("edited",)] * n
    assert [stored[f"t:{n + i}"] for i in range(n)] == [("page 2",)] * n


def test_two_calls_for_one_table_in_one_transaction(engine: sa.Engine) -> None:
    n = SIZES[-1]
    with db.transaction(engine) as conn:
        db.upsert(conn, "work_items", [item(i, title="a") for i in range(n)])
        db.upsert(conn, "work_items", [item(n + i, title="b") for i in range(n)])
        db.upsert(conn, "work_items", [item(i, title="c") for i in range(0, n, 2)])
    stored = rows_of(engine, "work_items", "title")
    assert len(stored) == 2 * n
    assert all(stored[f"t:{i}"] == ("c" if i % 2 == 0 else "a",) for i in range(n))
    assert all(stored[f"t:{n + i}"] == ("b",) for i in range(n))


def test_async_commit_commits_and_ends_with_its_transaction(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        with conn.begin():
            db.async_commit(conn)
            db.upsert(conn, "work_items", [item(i) for i in range(SIZES[1])])
        if engine.dialect.name == "postgresql":  # the next transaction flushes as usual
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
    assert len(rows_of(engine, "work_items")) == SIZES[1]


def test_empty_input_sends_nothing(engine: sa.Engine) -> None:
    assert upsert(engine, "work_items", []) == 0
    assert rows_of(engine, "work_items") == {}


def test_unknown_column_is_a_clear_error(engine: sa.Engine) -> None:
    with pytest.raises(WarehouseError, match=r"'work_items' has no column\(s\) colour"):
        upsert(engine, "work_items", [item(1, colour="red")])
    assert rows_of(engine, "work_items") == {}


def test_missing_primary_key_is_a_clear_error(engine: sa.Engine) -> None:
    row = item(1)
    del row["id"]
    with pytest.raises(WarehouseError, match="need the primary key column"):
        upsert(engine, "work_items", [row])


def test_unknown_table_is_a_clear_error(engine: sa.Engine) -> None:
    with pytest.raises(WarehouseError, match="no warehouse table named 'nope'"):
        upsert(engine, "nope", [{"id": 1}])


def test_lookup_finds_only_matching_keys(engine: sa.Engine) -> None:
    rows = [
        {
            "source_name": src,
            "stream": "issues",
            "native_id": str(i),
            "scope": "S",
            "hash": f"{src}-{i}",
            "payload": b"{}",
            "fetched_at": datetime(2025, 1, 1),
        }
        for src in ("a", "b")
        for i in range(SIZES[-1])
    ]
    upsert(engine, "raw_payloads", rows)
    wanted = ["0", "5", "999999", "17"]
    with engine.connect() as conn:
        found = db.lookup(
            conn,
            "raw_payloads",
            {"source_name": "b", "stream": "issues"},
            "native_id",
            wanted,
            "hash",
        )
        none = db.lookup(conn, "raw_payloads", {"source_name": "b"}, "native_id", [], "hash")
    assert found == {"0": "b-0", "5": "b-5", "17": "b-17"}
    assert none == {}


def test_delete_where_removes_only_listed_values(engine: sa.Engine) -> None:
    n = SIZES[-1]
    upsert(engine, "work_items", [item(i) for i in range(n)])
    doomed = [f"t:{i}" for i in range(0, n, 3)] + ["t:0", "t:missing"]
    with db.transaction(engine) as conn:
        db.delete_where(conn, "work_items", "id", doomed)
    assert set(rows_of(engine, "work_items")) == {f"t:{i}" for i in range(n) if i % 3}


def test_sqlite_datetime_text_is_what_sqlalchemy_writes(tmp_path: Any) -> None:
    """The engine's executemany formats SQLite DATETIME text itself (for speed): it must be
    the exact text SQLAlchemy's own type writes, or SQL comparing stored times as text
    (the transform's date filters) would see two spellings of one time."""
    engine = db.create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    db.upgrade(str(engine.url))
    stamps = [
        datetime(2025, 1, 1),
        datetime(1900, 3, 4, 5, 6, 7, 89),
        datetime(2200, 12, 31, 23, 59, 59, 999999),
        datetime(2025, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=-7))),
    ]
    upsert(engine, "work_items", [item(i, created_at=s) for i, s in enumerate(stamps)])
    with engine.connect() as conn:
        text = dict(conn.execute(sa.text("SELECT id, created_at FROM work_items")).all())
    sa_type = sa.DateTime().dialect_impl(engine.dialect)
    process = sa_type.bind_processor(engine.dialect)
    assert process is not None
    naive = [s.astimezone(UTC).replace(tzinfo=None) if s.tzinfo else s for s in stamps]
    assert text == {f"t:{i}": process(s) for i, s in enumerate(naive)}
    engine.dispose()
