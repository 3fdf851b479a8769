"""Sprint metrics and the sprint-based project metrics, pinned on a hand-built 3-sprint story.

PAY runs two-week sprints S1-S3 (closed) and S4 (active at as_of). Points move in and out
after sprint start and items are re-estimated mid-sprint, so committed (estimate at start),
added, removed and completed (estimate at close, still in the sprint) all differ.
"""

from __future__ import annotations

import statistics

import pytest
from test_transform_support import Scenario

AS_OF = "2024-02-20 12:00"


def build(engine) -> Scenario:  # type: ignore[no-untyped-def]
    s = Scenario(engine).source().project("PAY")
    s.sprint(
        "S1",
        scope="PAY",
        state="closed",
        start="2024-01-01 09:00",
        end="2024-01-15 09:00",
        completed="2024-01-15 10:00",
    )
    s.sprint(
        "S2",
        scope="PAY",
        state="closed",
        start="2024-01-15 10:00",
        end="2024-01-29 10:00",
        completed="2024-01-29 11:00",
    )
    s.sprint(
        "S3",
        scope="PAY",
        state="closed",
        start="2024-01-29 11:00",
        end="2024-02-12 11:00",
        completed="2024-02-12 12:00",
    )
    s.sprint("S4", scope="PAY", state="active", start="2024-02-12 12:00", end="2024-02-26 12:00")
    c = "2023-12-01"

    # S1 ------------------------------------------------------------------------------------
    p1 = s.item("PAY-1", points=3, status="done", created=c, resolved="2024-01-10")
    s.member("S1", p1)
    # committed at 5, re-estimated to 8 after start, done: committed 5, completed 8
    p2 = s.item("PAY-2", points=8, status="done", created=c, resolved="2024-01-12")
    s.member("S1", p2, added="2023-12-30")
    s.estimate(p2, "2024-01-05", 5, 8)
    # added after start, done
    p3 = s.item("PAY-3", points=2, status="done", created=c, resolved="2024-01-14")
    s.member("S1", p3, added="2024-01-04")
    # committed, removed after start
    p4 = s.item("PAY-4", points=3, status="todo", created=c)
    s.member("S1", p4, removed="2024-01-08")
    # unestimated through S1, carried over into S2, estimated there (NULL -> 5), done in S2
    p5 = s.item("PAY-5", points=5, status="done", created=c, resolved="2024-01-25")
    s.member("S1", p5)
    s.member("S2", p5, added="2024-01-15 10:00")
    s.estimate(p5, "2024-01-20", None, 5)

    # S2 ------------------------------------------------------------------------------------
    # closed as "not planned": done, but never delivered points
    p6 = s.item(
        "PAY-6", points=8, status="done", created=c, resolved="2024-01-20", not_delivered=True
    )
    s.member("S2", p6)
    p7 = s.item("PAY-7", points=5, status="done", created=c, resolved="2024-01-28")
    s.member("S2", p7)
    # added and removed mid-sprint: counts in both
    p8 = s.item("PAY-8", points=3, status="todo", created=c)
    s.member("S2", p8, added="2024-01-18", removed="2024-01-22")

    # S3 ------------------------------------------------------------------------------------
    p9 = s.item("PAY-9", points=5, status="done", created=c, resolved="2024-02-05")
    s.member("S3", p9)
    # done after the sprint closed: not completed in S3
    p10 = s.item("PAY-10", points=3, status="done", created=c, resolved="2024-02-13")
    s.member("S3", p10)
    # re-estimated down mid-sprint: committed 2, completed 1
    p11 = s.item("PAY-11", points=1, status="done", created=c, resolved="2024-02-08")
    s.member("S3", p11)
    s.estimate(p11, "2024-02-01", 2, 1)
    # removed, then done outside the sprint: removed, not completed
    p12 = s.item("PAY-12", points=3, status="done", created=c, resolved="2024-02-03")
    s.member("S3", p12, removed="2024-01-31")

    # S4 (active) ---------------------------------------------------------------------------
    p13 = s.item("PAY-13", points=5, status="in_progress", created=c, started="2024-02-13")
    s.member("S4", p13)
    p14 = s.item("PAY-14", points=2, status="done", created=c, resolved="2024-02-15")
    s.member("S4", p14)
    # an unestimated item outside any sprint
    s.item("PAY-15", points=None, created=c)
    return s


def test_sprint_commitment_scope_change_and_completion(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    got = {r["sprint_id"]: r for r in s.rows("sprint_metrics")}
    fields = (
        "committed_points",
        "committed_items",
        "added_points",
        "added_items",
        "removed_points",
        "removed_items",
        "completed_points",
        "completed_items",
        "unestimated_items",
    )
    expected = {
        #      committed   added   removed  completed  unestimated
        "S1": (3 + 5 + 3 + 0, 4, 2, 1, 3, 1, 3 + 8 + 2, 3, 1),
        "S2": (0 + 8 + 5, 3, 3, 1, 3, 1, 5 + 5, 2, 0),
        "S3": (5 + 3 + 2 + 3, 4, 0, 0, 3, 1, 5 + 1, 2, 0),
        "S4": (5 + 2, 2, 0, 0, 0, 0, 2, 1, 0),
    }
    for sprint_id, values in expected.items():
        assert tuple(got[sprint_id][f] for f in fields) == values, sprint_id
        assert got[sprint_id]["project_key"] == "PAY"


def test_velocity_stability_and_say_do_use_last_three_closed_sprints(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    m = s.project_metrics("PAY")
    completed = [13, 10, 6]  # S1, S2, S3; the active S4 does not count
    assert m["velocity_sprints"] == 3
    assert m["velocity_points"] == pytest.approx(sum(completed) / 3)
    assert m["velocity_cv"] == pytest.approx(
        statistics.pstdev(completed) / statistics.fmean(completed)
    )
    assert m["say_do_ratio"] == pytest.approx((13 + 10 + 6) / (11 + 13 + 13))


def test_velocity_window_follows_config(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.config = s.config.model_copy(
        update={"metrics": s.config.metrics.model_copy(update={"velocity_sprints": 2})}
    )
    s.run(AS_OF)
    m = s.project_metrics("PAY")
    assert m["velocity_sprints"] == 2
    assert m["velocity_points"] == pytest.approx((10 + 6) / 2)
    assert m["say_do_ratio"] == pytest.approx((10 + 6) / (13 + 13))


def test_unestimated_items_are_counted_not_zeroed(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    m = s.project_metrics("PAY")
    assert m["unestimated_items"] == 1  # PAY-15
    assert m["estimate_coverage_pct"] == pytest.approx(100 * 14 / 15)
    # PAY-15 adds nothing to the point totals; PAY-6 (not planned) is not part of the scope
    assert m["total_points"] == pytest.approx(3 + 8 + 2 + 3 + 5 + 5 + 3 + 5 + 3 + 1 + 3 + 5 + 2)


def test_sprint_without_scope_belongs_to_most_of_its_items(engine) -> None:  # type: ignore[no-untyped-def]
    s = Scenario(engine).source().project("PAY").project("WEB")
    s.sprint(
        "B1",
        scope=None,
        state="closed",
        start="2024-01-01",
        end="2024-01-15",
        completed="2024-01-15",
    )
    for key in ("WEB-1", "WEB-2", "PAY-1"):
        s.member("B1", s.item(key, points=1, status="done", resolved="2024-01-10"))
    s.run("2024-01-20")
    assert s.row("sprint_metrics", sprint_id="B1")["project_key"] == "WEB"
    # its completed points (all three items) become WEB's velocity
    assert s.project_metrics("WEB")["velocity_points"] == pytest.approx(3)


def test_long_closed_sprints_keep_their_figures_until_a_full_run(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    # PAY-1 (committed and completed in S1) changes estimate without any history, as a
    # remap of the story-points field would do
    s.update("work_items", {"id": "jira:PAY-1"}, story_points=13)
    result = s.run("2024-02-21 12:00")
    # S1 closed 15 Jan, more than 30 days before: kept; S2, S3 (closed since) and S4 recomputed
    assert result.sprints == 3
    s1 = s.row("sprint_metrics", sprint_id="S1")
    assert (s1["committed_points"], s1["completed_points"]) == (11, 13)
    result = s.run("2024-02-21 12:00", full=True)
    assert result.sprints == 4
    s1 = s.row("sprint_metrics", sprint_id="S1")
    assert (s1["committed_points"], s1["completed_points"]) == (13 + 5 + 3, 13 + 8 + 2)


def test_figures_of_a_sprint_gone_from_the_source_are_dropped(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    s.delete("sprints", id="S4")
    s.run(AS_OF)
    assert sorted(r["sprint_id"] for r in s.rows("sprint_metrics")) == ["S1", "S2", "S3"]


def test_an_issue_created_into_a_running_sprint_is_added_not_committed(engine) -> None:  # type: ignore[no-untyped-def]
    """``added_at`` NULL means "in the sprint since the item was created" (no changelog entry
    put it there): it entered at its creation, so one created after the sprint started is
    scope added, and one created before the start is commitment."""
    s = Scenario(engine).source().project("PAY")
    s.sprint("S1", scope="PAY", state="active", start="2024-03-01 09:00", end="2024-03-15 09:00")
    before = s.item("PAY-1", points=3, created="2024-02-20")
    s.member("S1", before)
    created_in_it = s.item(
        "PAY-2", points=5, status="done", created="2024-03-04 10:00", resolved="2024-03-06"
    )
    s.member("S1", created_in_it)
    s.run("2024-03-08 12:00")
    got = s.row("sprint_metrics", sprint_id="S1")
    assert (got["committed_items"], got["committed_points"]) == (1, 3)
    assert (got["added_items"], got["added_points"]) == (1, 5)
    assert (got["completed_items"], got["completed_points"]) == (1, 5)
