"""Flow per project and day (docs/metrics.md, "Flow"): the cumulative-flow bands, arrivals,
departures, net flow and ageing WIP, pinned on a small hand-built week."""

from __future__ import annotations

from datetime import date

from test_transform_support import Scenario

AS_OF = "2024-06-15 12:00"
COLUMNS = (
    "todo_items",
    "in_progress_items",
    "done_items",
    "arrivals",
    "departures",
    "net_flow",
    "ageing_wip_items",
)


def build(engine) -> Scenario:  # type: ignore[no-untyped-def]
    s = Scenario(engine).source().project("PAY").project("CORE")
    s.config = s.config.model_copy(
        update={"metrics": s.config.metrics.model_copy(update={"flow_days": 5})}
    )
    s.item("PAY-1", created="2024-06-01")  # to do throughout
    s.item("PAY-2", created="2024-06-12 10:00")  # arrives on the 12th
    # in progress since the 10th: older than the cycle-time P85 (2.25 days) from the 12th
    s.item("PAY-3", created="2024-06-01", status="in_progress", started="2024-06-10 00:00")
    # the only cycle time: 11th 09:00 -> 13th 15:00 = 2.25 days
    s.item(
        "PAY-4",
        created="2024-06-01",
        status="done",
        started="2024-06-11 09:00",
        resolved="2024-06-13 15:00",
    )
    s.item("PAY-5", created="2024-06-01", status="done", resolved="2024-06-14 08:00")  # no start
    # to do now, though it was started once: to do on every day
    s.item("PAY-6", created="2024-06-14 09:00", started="2024-06-14 10:00")
    s.item("PAY-7", created="2024-06-12", type="epic", status="in_progress", started="2024-06-12")
    # done only after as_of: still in progress; 2.25 days old at as_of, so not ageing yet
    s.item(
        "PAY-8",
        created="2024-06-13 05:00",
        status="done",
        started="2024-06-13 06:00",
        resolved="2024-06-15 18:00",
    )
    s.item("PAY-9", created="2024-06-16")  # after as_of
    s.item("PAY-10", created="2024-06-12 11:00", status="done")  # done without a time
    return s


def flow(s: Scenario, project: str) -> dict[date, tuple[int, ...]]:
    rows = s.all("SELECT * FROM v_flow_daily WHERE project_key = :p ORDER BY day", p=project)
    return {date.fromisoformat(str(r["day"])[:10]): tuple(r[c] for c in COLUMNS) for r in rows}


def test_flow_figures_of_a_small_week(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    assert s.project_metrics("PAY")["cycle_time_p85_days"] == 2.25
    assert flow(s, "PAY") == {
        #                  todo wip done arr dep net ageing
        date(2024, 6, 11): (2, 2, 0, 0, 0, 0, 0),
        date(2024, 6, 12): (3, 2, 1, 2, 1, 1, 1),
        date(2024, 6, 13): (3, 2, 2, 1, 1, 0, 1),
        date(2024, 6, 14): (3, 2, 3, 1, 1, 0, 1),
        date(2024, 6, 15): (3, 2, 3, 0, 0, 0, 1),
    }
    last = s.one("SELECT * FROM v_flow_daily WHERE project_key = 'PAY' AND day = '2024-06-15'")
    assert (last["arrivals_7d"], last["departures_7d"], last["net_flow_7d"]) == (4, 3, 1)
    assert last["ageing_threshold_days"] == 2.25
    # a project without items: zeros, and no threshold
    assert set(flow(s, "CORE").values()) == {(0, 0, 0, 0, 0, 0, 0)}


def test_a_later_run_rewrites_its_window_and_keeps_older_days(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    s.run("2024-06-16 12:00")
    got = flow(s, "PAY")
    assert sorted(got) == [date(2024, 6, d) for d in range(11, 17)]
    # PAY-8 is done now (18:00 on the 15th) and PAY-9 arrived
    assert got[date(2024, 6, 15)][:5] == (3, 1, 4, 0, 1)
    assert got[date(2024, 6, 16)][:5] == (4, 1, 4, 1, 0)


def test_refresh_flow_on_its_own_writes_what_the_runner_wrote(engine) -> None:  # type: ignore[no-untyped-def]
    """The runner hands the flow its reads (the counts before the window ride the project
    metrics' pass); called on its own it reads them itself: the same rows either way."""
    from test_transform_support import dt

    from programview.transform._sql import Ctx, Sql
    from programview.transform.flow import refresh_flow
    from programview.warehouse import db

    s = build(engine)
    s.run(AS_OF)
    before = {p: flow(s, p) for p in ("PAY", "CORE")}
    with db.transaction(engine) as conn:
        conn.exec_driver_sql("DELETE FROM flow_daily")
        ctx = Ctx(conn=conn, config=s.config, as_of=dt(AS_OF), sql=Sql(conn.dialect.name))
        refresh_flow(ctx, {"PAY": 2.25, "CORE": None})
    assert {p: flow(s, p) for p in ("PAY", "CORE")} == before
    assert before["PAY"][date(2024, 6, 12)] == (3, 2, 1, 2, 1, 1, 1)
