"""The shared vocabulary every connector maps with (programview.normalize)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from programview.errors import MappingError
from programview.normalize import (
    DEFAULT_LABEL_TYPES,
    Reference,
    blocking_references,
    category_from_labels,
    merged_map,
    parse_date,
    parse_points,
    parse_time,
    points_from_labels,
)


@pytest.mark.parametrize(
    "text",
    [
        "2025-01-31T13:47:09.120+0000",  # Jira
        "2025-01-31T13:47:09.12Z",
        "2025-01-31T14:47:09.120+01:00",
        "2025-01-31T08:47:09.120-05:00",
    ],
)
def test_every_offset_style_is_the_same_naive_utc_moment(text: str) -> None:
    assert parse_time(text) == datetime(2025, 1, 31, 13, 47, 9, 120000)


def test_epoch_numbers_and_bad_values() -> None:
    assert parse_time(1738331229) == datetime(2025, 1, 31, 13, 47, 9)
    assert parse_time(1738331229120) == datetime(2025, 1, 31, 13, 47, 9, 120000)
    assert parse_time(None) is None and parse_time("") is None
    for bad in ("yesterday", True, {"at": 1}, 1e20):
        with pytest.raises(MappingError):
            parse_time(bad)
    assert parse_date("2025-02-14T08:00:00Z") == date(2025, 2, 14)
    with pytest.raises(MappingError):
        parse_date("14/02/2025")


def test_unset_points_are_none_never_zero() -> None:
    assert [parse_points(v) for v in (3, "2.0", " 5 ", 0)] == [3.0, 2.0, 5.0, 0.0]
    assert [parse_points(v) for v in (None, "", "-1", -2, "n/a", float("nan"), True)] == [None] * 7
    assert points_from_labels(["backend", "points:5"]) == 5.0
    assert points_from_labels(["SP: 3"]) == 3.0
    assert points_from_labels(["8 pts"]) == 8.0
    assert points_from_labels(["story points: 2.5"]) == 2.5
    assert points_from_labels(["priority:high", "p1", "v2"]) is None


def test_labels_type_items_and_user_entries_merge_over_defaults() -> None:
    mapping = merged_map(DEFAULT_LABEL_TYPES, {"Defect": "task", "needs-design": "story"})
    assert category_from_labels(["frontend", "Bug"], mapping) == "bug"
    assert category_from_labels(["type::bug"], mapping) == "bug"
    assert category_from_labels(["kind/feature"], mapping) == "story"
    assert category_from_labels(["defect"], mapping) == "task"  # the user's entry wins
    assert category_from_labels(["needs-design"], mapping) == "story"
    assert category_from_labels(["bug", "incident"], mapping) == "incident"
    assert category_from_labels(["frontend"], mapping) is None


def test_blocking_references_across_tools() -> None:
    text = (
        "Refund flow.\n\nBlocked by PAY-12\nDepends on acme/web#45 and #46, also see LEDG-9.\n"
        "blocked by: https://github.com/Acme/Mobile/issues/7; acme/platform/api#3\n"
        "Fixes #99. Waiting on https://jira.example.com/browse/risk-4"
    )
    refs = blocking_references(text, repo="acme/checkout-ui")
    assert [r.key for r in refs] == [
        "PAY-12",
        "acme/web#45",
        "acme/checkout-ui#46",
        "acme/mobile#7",
        "acme/platform/api#3",
        "RISK-4",
    ]
    assert refs[1] == Reference("acme/web#45", "depends on")
    # a bare number needs the repository; mentions without a phrase are not dependencies
    assert blocking_references("blocked by #12") == []
    assert blocking_references("see PAY-12, closes #3", repo="a/b") == []
    assert blocking_references(None) == []
