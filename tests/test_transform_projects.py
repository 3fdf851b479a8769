"""Project metrics pinned on a hand-built project without sprints (WEB), as of 1 July 2024.

Windows ending at as_of 2024-07-01 00:00: throughput and fallback velocity (6 weeks, three
14-day windows: (17 Jun, 1 Jul], (3 Jun, 17 Jun], (20 May, 3 Jun]), defect density and
cycle time (90 days, from 2 Apr), scope change and bug trend (30 days, from 1 Jun).
"""

from __future__ import annotations

import statistics
from datetime import date, datetime, timedelta

import numpy
import pytest
from test_transform_support import Scenario

AS_OF = "2024-07-01 00:00"


def build(engine, program: str | None = None) -> Scenario:  # type: ignore[no-untyped-def]
    s = Scenario(engine).source()
    if program:
        s.program(program)
    s.project(
        "WEB",
        program=program,
        budget=120_000,
        start="2024-01-01",
        end="2024-12-31",
        hourly_rate=100,
    )
    done = "done"
    w1 = s.item("WEB-1", points=5, status=done, started="2024-06-20", resolved="2024-06-25 12:00")
    s.estimate(w1, "2024-06-10", 3, 5)  # re-estimated upward inside the scope window
    w2 = s.item("WEB-2", points=3, status=done, started="2024-06-05", resolved="2024-06-10")
    w3 = s.item("WEB-3", points=8, status=done, started="2024-05-21", resolved="2024-05-25")
    s.item("WEB-4", points=2, type="task", status=done, started="2024-05-25", resolved="2024-06-01")
    s.item(
        "WEB-5",
        points=1,
        type="bug",
        status=done,
        created="2024-06-01 12:00",
        started="2024-06-02",
        resolved="2024-06-03",
    )
    s.item("WEB-6", points=5, status=done, started="2024-04-01", resolved="2024-04-10")
    s.item("WEB-7", points=20, type="epic", status=done, resolved="2024-06-15")  # container
    s.item("WEB-8", points=3, status=done, resolved="2024-06-20", not_delivered=True)
    s.item("WEB-9", points=2, status=done, started="2024-02-20", resolved="2024-03-01")
    s.item("WEB-10", type="bug", created="2024-06-20")  # open, unestimated
    s.item("WEB-11", type="bug", created="2024-03-01")  # open since March, unestimated
    w12 = s.item("WEB-12", points=8)
    s.estimate(w12, "2024-06-05", 10, 8)  # re-estimated down: no scope added
    s.item("WEB-13", points=5, created="2024-06-15")  # new work inside the scope window
    s.item("WEB-14", points=13, created="2024-07-02")  # after as_of: not yet there
    s.worklog(w1, "2024-03-01", 200)
    s.worklog(w2, "2024-06-05", 100)
    s.worklog(w3, "2024-07-02", 50)  # after as_of
    return s


def test_flow_metrics(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    m = s.project_metrics("WEB")
    # WEB-1..5 delivered in the last 6 weeks (the epic and the "not planned" item do not count)
    assert m["throughput_per_week"] == pytest.approx(5 / 6)
    # no sprints: points delivered per 14-day window, newest first: 5 | 3 | 8 + 2 + 1
    windows = [5, 3, 11]
    assert m["velocity_sprints"] == 0
    assert m["velocity_points"] == pytest.approx(19 / 3)
    assert m["velocity_cv"] == pytest.approx(statistics.pstdev(windows) / (19 / 3))
    assert m["say_do_ratio"] is None


def test_cycle_time_percentiles_use_linear_interpolation(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    m = s.project_metrics("WEB")
    days = [5.5, 5.0, 4.0, 7.0, 1.0, 9.0]  # WEB-1..6; WEB-9 finished before the window
    assert m["cycle_time_items"] == 6
    assert m["cycle_time_p50_days"] == pytest.approx(5.25)
    assert m["cycle_time_p85_days"] == pytest.approx(7.5)
    assert pytest.approx(tuple(numpy.percentile(days, [50, 85]))) == (5.25, 7.5)


def test_defect_density_and_bug_trend(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    m = s.project_metrics("WEB")
    # bugs created in 90 days: WEB-5, WEB-10; points delivered in 90 days: WEB-1..6
    assert m["bugs_created"] == 2
    assert m["delivered_points"] == pytest.approx(5 + 3 + 8 + 2 + 1 + 5)
    assert m["defect_density"] == pytest.approx(100 * 2 / 24)
    # open bugs: WEB-10 and WEB-11 now; only WEB-11 thirty days ago
    assert m["open_bugs"] == 2
    assert m["open_bug_trend_pct"] == pytest.approx(100.0)


def test_scope_change_against_open_points_thirty_days_ago(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    m = s.project_metrics("WEB")
    # open on 1 June at their estimate then: WEB-1 3, WEB-2 3, WEB-8 3, WEB-12 10
    base = 3 + 3 + 3 + 10
    # created since: WEB-5 1, WEB-13 5 (WEB-10 unestimated); re-estimated up: WEB-1 +2
    added = 1 + 5 + 2
    assert m["scope_change_pct"] == pytest.approx(100 * added / base)


def test_point_totals_and_estimate_coverage(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    m = s.project_metrics("WEB")
    assert m["total_points"] == pytest.approx(5 + 3 + 8 + 2 + 1 + 5 + 2 + 8 + 5)
    assert m["done_points"] == pytest.approx(5 + 3 + 8 + 2 + 1 + 5 + 2)
    assert m["remaining_points"] == pytest.approx(8 + 5)
    assert m["unestimated_items"] == 2  # WEB-10, WEB-11
    assert m["estimate_coverage_pct"] == pytest.approx(100 * 10 / 12)


def test_earned_value_from_worklogs(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    m = s.project_metrics("WEB")
    pv = 120_000 * 182 / 365  # 182 of 365 schedule days elapsed
    ev = 120_000 * 26 / 39  # 26 of 39 points delivered
    ac = (200 + 100) * 100  # hours logged up to as_of x hourly rate
    assert m["planned_value"] == pytest.approx(pv)
    assert m["earned_value"] == pytest.approx(ev)
    assert (m["actual_cost"], m["actual_cost_source"]) == (pytest.approx(ac), "worklogs")
    assert m["budget_variance"] == pytest.approx(ev - ac)
    assert m["cpi"] == pytest.approx(ev / ac)
    assert m["spi"] == pytest.approx(ev / pv)


def test_imported_costs_replace_worklog_estimates(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.cost("WEB", "2024-06-01", 10_000)
    s.cost("WEB", "2024-06-15", 5_000)
    s.cost("WEB", "2024-07-05", 999)  # after as_of
    s.run(AS_OF)
    m = s.project_metrics("WEB")
    assert (m["actual_cost"], m["actual_cost_source"]) == (pytest.approx(15_000), "costs")
    assert m["cpi"] == pytest.approx((120_000 * 26 / 39) / 15_000)


def test_forecast_finish_at_current_velocity(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    m = s.project_metrics("WEB")
    # 13 points left at 19/3 points per 14 days -> 28.7 -> 29 days
    assert m["forecast_finish_date"] == date(2024, 7, 30)
    assert m["forecast_slip_days"] == (date(2024, 7, 30) - date(2024, 12, 31)).days


def test_forecast_rounds_a_whole_number_of_days_exactly(engine) -> None:  # type: ignore[no-untyped-def]
    """128 points left at 16/3 points per 13 d 23 h sprint is exactly 335 days: float
    arithmetic (and SQLite's julianday sprint length) makes it a hair over 335, one day more."""
    s = Scenario(engine).source().project("FC", end="2025-12-31")
    start = datetime(2024, 1, 1, 10)
    for n, points in enumerate((5, 5, 6)):
        begin = start + n * timedelta(days=14)
        close = begin + timedelta(days=13, hours=23)
        sprint = s.sprint(
            f"FC-S{n}",
            scope="FC",
            state="closed",
            start=f"{begin:%Y-%m-%d %H:%M}",
            end=f"{close:%Y-%m-%d %H:%M}",
            completed=f"{close:%Y-%m-%d %H:%M}",
        )
        done = s.item(
            f"FC-{n}",
            points=points,
            status="done",
            resolved=f"{close - timedelta(days=1):%Y-%m-%d}",
        )
        s.member(sprint, done)
    s.item("FC-9", points=128)
    s.run("2024-03-01 12:00")
    m = s.project_metrics("FC")
    assert m["velocity_points"] == pytest.approx(16 / 3)
    assert m["remaining_points"] == 128
    assert m["forecast_finish_date"] == date(2024, 3, 1) + timedelta(days=335)


def test_missing_budget_inputs_give_null_with_a_reason(engine) -> None:  # type: ignore[no-untyped-def]
    s = Scenario(engine).source().project("OPS", budget=50_000)  # no start/end, no rate
    ops = s.item("OPS-1", points=3, status="done", resolved="2024-06-20")
    s.worklog(ops, "2024-06-01", 10)
    s.run(AS_OF)
    m = s.project_metrics("OPS")
    assert m["planned_value"] is None and m["spi"] is None
    assert m["actual_cost"] is None and m["cpi"] is None
    assert m["earned_value"] == pytest.approx(50_000)  # all points done
    assert "planned_value: no start/end configured for the project" in m["notes"]
    assert "actual_cost: no imported costs and no hourly_rate configured for worklogs" in m["notes"]


def test_project_without_items_has_no_made_up_numbers(engine) -> None:  # type: ignore[no-untyped-def]
    s = Scenario(engine).source().project("NEW")
    s.run(AS_OF)
    m = s.project_metrics("NEW")
    for name in (
        "velocity_points",
        "throughput_per_week",
        "defect_density",
        "scope_change_pct",
        "cycle_time_p50_days",
        "earned_value",
        "health_score",
        "schedule_score",
        "delivery_score",
        "quality_score",
        "budget_score",
        "dependencies_score",
    ):
        assert m[name] is None, name
    assert m["item_count"] == 0
    assert m["health_status"] is None


def test_history_keeps_one_row_per_day_and_the_last_run_wins(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine, program="DIGITAL")
    s.run("2024-07-01 06:00")
    first = s.project_metrics("WEB")
    s.item("WEB-20", points=4, status="done", created="2024-06-30", resolved="2024-07-01 10:00")
    s.run("2024-07-01 18:00")
    rows = s.rows("project_metrics", project_key="WEB")
    assert len(rows) == 1
    assert rows[0]["done_points"] == first["done_points"] + 4
    assert rows[0]["as_of"].hour == 18
    assert len(s.rows("program_health", program_key="DIGITAL")) == 1
    s.run("2024-07-02 06:00")
    days = sorted(r["as_of_date"] for r in s.rows("project_metrics", project_key="WEB"))
    assert days == [date(2024, 7, 1), date(2024, 7, 2)]
    assert len(s.rows("program_health", program_key="DIGITAL")) == 2


def test_concurrent_and_inline_runs_agree(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The synced-table aggregates run on side connections when there are CPUs to spare;
    with one CPU they run inline on the main connection. Same figures either way."""
    s = build(engine)
    s.run(AS_OF)
    concurrent = s.project_metrics("WEB")
    monkeypatch.setattr("programview.transform.run.os.cpu_count", lambda: 1)
    s.run(AS_OF)
    assert s.project_metrics("WEB") == concurrent
