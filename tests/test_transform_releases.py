"""Release facts (planned vs actual, slip, on time, content) and the on-time delivery rate."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from test_transform_support import Scenario

AS_OF = "2024-06-15 12:00"


def build(engine, grace: int = 0) -> Scenario:  # type: ignore[no-untyped-def]
    s = Scenario(engine).source().project("PAY")
    s.config = s.config.model_copy(
        update={"metrics": s.config.metrics.model_copy(update={"on_time_grace_days": grace})}
    )
    # planned 1 March (first date seen while unreleased); the date was later moved to 5 March,
    # which must not hide the slip; shipped 2 March: one day late.
    s.release(
        "R1",
        scope="PAY",
        planned="2024-03-01",
        due="2024-03-05",
        released=True,
        released_at="2024-03-02 10:00",
    )
    # shipped late in the evening of its due day: on time
    s.release("R2", scope="PAY", due="2024-04-01", released=True, released_at="2024-04-01 23:00")
    # already released when first synced (Jira backfill): actual = last resolution of its items
    s.release("R3", scope="PAY", due="2024-05-01", released=True)
    for key, pts, typ, status, resolved in (
        ("PAY-30", 3, "story", "done", "2024-04-28 10:00"),
        ("PAY-31", 5, "story", "done", "2024-04-30 15:00"),
        ("PAY-32", 1, "bug", "todo", None),
        ("PAY-33", 8, "story", "done", "2024-04-29"),
    ):
        item = s.item(
            key,
            points=pts,
            type=typ,
            status=status,
            resolved=resolved,
            not_delivered=key == "PAY-33",
        )
        s.in_release(item, "R3")
    # open and overdue by 5 days; open and not yet due; released early; too old to count
    s.release("R4", scope="PAY", due="2024-06-10")
    s.release("R5", scope="PAY", due="2024-07-01")
    s.release(
        "R6",
        scope="PAY",
        planned="2024-06-20",
        due="2024-06-20",
        released=True,
        released_at="2024-06-12 08:00",
    )
    s.release("R7", scope="PAY", due="2023-10-01", released=True, released_at="2023-10-05")
    return s


def test_release_facts(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    got = {r["release_id"]: r for r in s.rows("release_metrics")}
    fields = ("planned_date", "state", "slip_days", "on_time", "released_at_inferred")
    assert {k: tuple(r[f] for f in fields) for k, r in got.items()} == {
        "R1": (date(2024, 3, 1), "released", 1, False, False),
        "R2": (date(2024, 4, 1), "released", 0, True, False),
        "R3": (date(2024, 5, 1), "released", -1, True, True),
        "R4": (date(2024, 6, 10), "open", 5, False, False),
        "R5": (date(2024, 7, 1), "open", None, None, False),
        "R6": (date(2024, 6, 20), "released", -8, True, False),
        "R7": (date(2023, 10, 1), "released", 4, False, False),
    }
    assert got["R3"]["released_at"] == datetime(2024, 4, 30, 15, 0)
    assert got["R1"]["released_at"] == datetime(2024, 3, 2, 10, 0)
    # content: the "not planned" item is in the release but delivers no points
    r3 = got["R3"]
    assert (r3["item_count"], r3["points"], r3["done_points"], r3["open_bugs"]) == (
        4,
        3 + 5 + 1 + 8,
        3 + 5,
        1,
    )


def test_on_time_delivery_rate_counts_releases_due_or_released_in_window(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    m = s.project_metrics("PAY")
    # judged: R1 late, R2 on time, R3 on time, R4 overdue, R6 early; R5 not due; R7 too old
    assert m["releases_judged"] == 5
    assert m["on_time_delivery_rate"] == pytest.approx(3 / 5)


def test_grace_days_forgive_a_short_slip(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine, grace=1)
    s.run(AS_OF)
    r1 = s.row("release_metrics", release_id="R1")
    assert (r1["slip_days"], r1["on_time"]) == (1, True)
    assert s.project_metrics("PAY")["on_time_delivery_rate"] == pytest.approx(4 / 5)


def test_no_releases_means_no_rate_not_a_perfect_one(engine) -> None:  # type: ignore[no-untyped-def]
    s = Scenario(engine).source().project("PAY")
    s.item("PAY-1", points=3)
    s.run(AS_OF)
    m = s.project_metrics("PAY")
    assert m["on_time_delivery_rate"] is None
    assert "on_time_delivery_rate: no release due or released in the last 180 days" in m["notes"]
