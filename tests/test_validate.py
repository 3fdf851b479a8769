"""The column rules of ``programview.sync.validate``, one decision per case (the end-to-end
cases are in test_bad_input.py; fuzzing in test_fuzz.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from programview.errors import MappingError
from programview.sync.connector import Record, Replace
from programview.sync.validate import clean_mapped


def item(**values: object) -> dict[str, object]:
    base: dict[str, object] = {"id": "s:1", "item_key": "K-1", "native_id": "1"}
    return {**base, **values}


def cleaned(**values: object) -> dict[str, object]:
    (out,) = clean_mapped([Record("work_items", item(**values))])
    assert isinstance(out, Record)
    return out.values


def refused(table: str = "work_items", **values: object) -> str:
    with pytest.raises(MappingError) as info:
        clean_mapped([Record(table, item(**values) if table == "work_items" else values)])
    return str(info.value)


def test_descriptive_text_is_cleaned_and_cut_to_fit() -> None:
    assert cleaned(assignee="N" * 400)["assignee"] == "N" * 299 + "…"
    assert cleaned(title="a\x00b \ud800 c")["title"] == "ab \ufffd c"
    assert cleaned(title="x" * 100_000)["title"] == "x" * 100_000  # Text: no limit
    assert cleaned(raw_status=404)["raw_status"] == "404"  # a number where text belongs


def test_ids_and_keys_are_refused_not_repaired() -> None:
    assert "item_key is 5000 characters long" in refused(item_key="K" * 5000)
    assert "native_id contains a NUL" in refused(native_id="1\x00")
    assert "lone surrogate" in refused(item_key="K-\ud800")
    assert "reads 'None'" in refused(item_key="None")
    assert "reads 's:None'" in refused(id="s:None")
    assert "id is empty" in refused(id=" ")
    assert "parent_key is 301 characters" in refused(parent_key="P" * 301)


def test_objects_lists_and_booleans_where_scalars_belong_are_refused() -> None:
    assert "title must be text, got dict" in refused(title={"text": "x"})
    assert "priority must be text, got list" in refused(priority=["High"])
    assert "story_points must be a number, got str" in refused(story_points="5")
    assert "must be text, got bool" in refused(title=True)
    assert "not_delivered must be true or false" in refused(not_delivered="yes")
    assert cleaned(not_delivered=1)["not_delivered"] is True


def test_numbers_times_and_dates_must_be_in_range() -> None:
    assert "number out of range" in refused(story_points=float("nan"))
    assert "number out of range" in refused(time_spent_hours=1e20)
    assert cleaned(story_points=3)["story_points"] == 3.0
    assert "time out of range: 1800" in refused(created_at=datetime(1800, 1, 1))
    assert "date out of range: 9999" in refused(due_date=date(9999, 1, 1))
    assert "must be a time, got str" in refused(created_at="2025-01-01")
    aware = datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert cleaned(created_at=aware)["created_at"] == datetime(2025, 1, 1, 10)
    assert cleaned(due_date=datetime(2025, 3, 9, 23, tzinfo=UTC))["due_date"] == date(2025, 3, 9)
    assert "integer out of range" in refused("sync_runs", id=1, records=2**40)


def test_required_and_key_columns_must_be_present() -> None:
    assert "type_category is required but missing" in refused(type_category=None)
    with pytest.raises(MappingError, match="lacks its key column"):
        clean_mapped([Record("people", {"source_name": "s"})])
    with pytest.raises(MappingError, match="has no column"):
        clean_mapped([Record("work_items", item(colour="red"))])
    with pytest.raises(MappingError, match="dependencies.found_in is required"):
        clean_mapped([Replace("dependencies", {"found_in": None})])
    with pytest.raises(MappingError, match="not Record or Replace"):
        clean_mapped([("work_items", {})])
