"""Monte Carlo release forecasts (docs/metrics.md, "Delivery forecasts"): exact dates from a
constant history, a seeded case against a plain-Python reimplementation, blockers in other
projects, cycles, and the ``release_at_risk`` alert's lifecycle."""

from __future__ import annotations

import json
import math
import zlib
from datetime import date, datetime, timedelta

import numpy as np
from test_transform_support import Scenario

from programview.alerts_webhook import build_message

AS_OF = "2024-06-15 12:00"
TODAY = date(2024, 6, 15)


def weekly(s: Scenario, prefix: str, values: list[float], *, as_of: str = AS_OF) -> None:
    """Delivered history without sprints: ``values[w]`` points done in week w before as_of
    (week 0 = the last 7 days), one item a week."""
    end = datetime.fromisoformat(as_of)
    for w, pts in enumerate(values):
        if pts:
            at = end - timedelta(days=7 * w + 3)
            s.item(
                f"{prefix}-{900 + w}",
                points=pts,
                status="done",
                started=(at - timedelta(days=1)).isoformat(sep=" "),
                resolved=at.isoformat(sep=" "),
            )


def open_items(
    s: Scenario, prefix: str, release: str, points: list[float], first: int = 1
) -> list[str]:
    ids = []
    for i, pts in enumerate(points, start=first):
        item = s.item(f"{prefix}-{i}", points=pts)
        s.in_release(item, release)
        ids.append(item)
    return ids


def forecast(s: Scenario, release: str) -> dict:  # type: ignore[type-arg]
    return s.one("SELECT * FROM v_release_forecast WHERE release_id = :r", r=release)


def as_day(value: object) -> date | None:
    if value is None or isinstance(value, date):
        return value  # type: ignore[return-value]
    return date.fromisoformat(str(value)[:10])


def test_constant_weekly_history_gives_exact_dates(engine) -> None:  # type: ignore[no-untyped-def]
    s = Scenario(engine).source().project("PAY")
    weekly(s, "PAY", [5] * 12)
    s.release("R1", scope="PAY", due="2024-07-02")  # today + 17
    s.release("R2", scope="PAY", due="2024-07-01")  # due earlier: worked first
    open_items(s, "PAY", "R1", [8, 4])  # 12 points
    open_items(s, "PAY", "R2", [3], first=10)
    s.run(AS_OF)
    r2 = forecast(s, "R2")
    # 3 points at 5 a week: 0.6 of a week = 4.2 days -> 5 days
    assert [as_day(r2[c]) for c in ("p50_date", "p85_date", "p95_date")] == [
        TODAY + timedelta(5)
    ] * 3
    r1 = forecast(s, "R1")
    # R1 comes after R2: 15 points = exactly 3 weeks
    assert [as_day(r1[c]) for c in ("p50_date", "p85_date", "p95_date")] == [
        TODAY + timedelta(21)
    ] * 3
    assert (r1["remaining_points"], r1["remaining_items"]) == (12, 2)
    assert r1["probability_on_time"] == 0.0 and r2["probability_on_time"] == 1.0
    assert (r1["unit"], r1["history"], r1["step_days"]) == ("points", "weeks", 7)
    assert r1["history_values"] == ",".join(["5"] * 12)
    assert r1["driving_blocker_key"] is None
    project = s.one("SELECT * FROM v_project_forecast WHERE project_key = 'PAY'")
    assert as_day(project["p85_date"]) == TODAY + timedelta(21)


def test_constant_sprint_history_uses_the_sprint_length(engine) -> None:  # type: ignore[no-untyped-def]
    s = Scenario(engine).source().project("PAY")
    for n, start in enumerate(("2024-04-22", "2024-05-06", "2024-05-20")):
        sid = s.sprint(
            f"S{n}",
            scope="PAY",
            state="closed",
            start=f"{start} 09:00",
            end=(date.fromisoformat(start) + timedelta(14)).isoformat() + " 09:00",
            completed=(date.fromisoformat(start) + timedelta(14)).isoformat() + " 09:00",
        )
        done = date.fromisoformat(start) + timedelta(5)
        item = s.item(f"PAY-{100 + n}", points=10, status="done", resolved=f"{done} 10:00")
        s.member(sid, item, added=f"{start} 08:00")
    s.release("R1", scope="PAY", due="2024-07-20")
    open_items(s, "PAY", "R1", [20, 5])
    s.run(AS_OF)
    r1 = forecast(s, "R1")
    # 25 points at 10 a 14-day sprint: 2.5 sprints = 35 days
    assert as_day(r1["p85_date"]) == TODAY + timedelta(35)
    assert (r1["history"], r1["step_days"], r1["history_values"]) == ("sprints", 14, "10,10,10")
    assert r1["probability_on_time"] == 1.0


def reimplementation(values: list[float], remaining: float, trials: int, seed: int, key: str):  # type: ignore[no-untyped-def]
    """The documented method in plain Python (only the draws come from numpy's generator)."""
    mean = sum(values) / len(values)
    steps = min(520, math.ceil(2 * remaining / mean) + 4)
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    idx = rng.integers(0, len(values), size=(trials, steps)).tolist()
    days = []
    for row in idx:
        done = 0.0
        finish = math.inf
        for k, i in enumerate(row):
            x = values[i]
            if done + x >= remaining:
                finish = math.ceil(7 * (k + (remaining - done) / x) - 1e-9)
                break
            done += x
        days.append(finish)
    days.sort()

    def q(share: float) -> date:
        return TODAY + timedelta(days=days[math.ceil(share * trials) - 1])

    return q(0.5), q(0.85), q(0.95)


def test_seeded_stochastic_forecast_matches_a_plain_reimplementation(engine) -> None:  # type: ignore[no-untyped-def]
    s = Scenario(engine).source().project("PAY")
    history = [3, 0, 8, 5, 2, 13, 1, 0, 5, 8, 3, 2]
    weekly(s, "PAY", history)
    s.config = s.config.model_copy(
        update={"forecast": s.config.forecast.model_copy(update={"trials": 2000, "seed": 7})}
    )
    s.release("R1", scope="PAY", due="2024-08-01")
    open_items(s, "PAY", "R1", [13, 8, 5, 8, 3])  # 37 points
    s.run(AS_OF)
    r1 = forecast(s, "R1")
    got = tuple(as_day(r1[c]) for c in ("p50_date", "p85_date", "p95_date"))
    assert got == reimplementation([float(x) for x in history], 37, 2000, 7, "PAY")
    assert got[0] < got[1] < got[2]
    # and the same again on a second run (seeded; any time of day)
    s.run("2024-06-15 23:59")
    assert tuple(as_day(forecast(s, "R1")[c]) for c in ("p50_date", "p85_date", "p95_date")) == got


def two_projects(engine, *, core_in_release: bool = True) -> Scenario:  # type: ignore[no-untyped-def]
    s = (
        Scenario(engine)
        .source()
        .program("PRG")
        .project("PAY", program="PRG")
        .project("CORE", program="PRG")
    )
    weekly(s, "PAY", [10] * 12)
    weekly(s, "CORE", [2] * 12)
    s.release("R1", scope="PAY", due="2024-06-25", name="Payments 2.0")  # today + 10
    open_items(s, "PAY", "R1", [10])  # own: 1 week
    s.release("C1", scope="CORE", due="2024-07-15", name="Core 1.1")
    core = s.item("CORE-1", points=4)  # 2 weeks at 2 a week
    if core_in_release:
        s.in_release(core, "C1")
    s.link("PAY-1", "CORE-1")
    return s


def test_a_blocker_in_another_project_moves_p85(engine) -> None:  # type: ignore[no-untyped-def]
    s = two_projects(engine)
    s.run(AS_OF)
    r1 = forecast(s, "R1")
    assert as_day(r1["own_p85_date"]) == TODAY + timedelta(7)
    # blocked by CORE-1 in Core 1.1, which finishes after 14 days: a week later than alone
    assert as_day(r1["p85_date"]) == TODAY + timedelta(14)
    assert r1["driving_blocker_key"] == "CORE-1"
    assert r1["driving_blocker_release"] == "Core 1.1"
    assert as_day(r1["driving_blocker_p85_date"]) == TODAY + timedelta(14)
    # alone it would make its date (today + 10); blocked, it cannot
    assert r1["probability_on_time"] == 0.0
    assert forecast(s, "C1")["driving_blocker_key"] is None


def test_a_blocker_outside_releases_counts_with_its_projects_open_work(engine) -> None:  # type: ignore[no-untyped-def]
    s = two_projects(engine, core_in_release=False)
    s.item("CORE-2", points=2)  # CORE's open work: 6 points at 2 a week = 3 weeks
    s.run(AS_OF)
    r1 = forecast(s, "R1")
    assert as_day(r1["p85_date"]) == TODAY + timedelta(21)
    assert r1["driving_blocker_key"] == "CORE-1"
    assert r1["driving_blocker_release"] == "CORE's work outside releases"


def test_a_blocker_in_a_release_no_project_maps_counts_as_outside_releases(engine) -> None:  # type: ignore[no-untyped-def]
    """A blocking item whose release belongs to a scope no configured project maps (another
    source's copy of the project, an unmapped scope) has no forecast of its own: the blocked
    release is still forecast, and the transform does not fail."""
    s = two_projects(engine, core_in_release=False)
    s.release("X1", scope="OTHER", due="2024-07-01", name="Unmapped")  # no project maps OTHER
    s.in_release(s.item("CORE-2", points=2), "X1")
    s.link("PAY-1", "CORE-2")
    s.run(AS_OF)
    r1 = forecast(s, "R1")
    assert r1["driving_blocker_key"] in ("CORE-1", "CORE-2")
    assert as_day(r1["p85_date"]) == TODAY + timedelta(21)  # CORE's open work, 6 points
    assert s.one("SELECT COUNT(*) AS n FROM v_release_forecast WHERE release_id = 'X1'")["n"] == 0


def test_a_blocking_cycle_is_reported_not_looped_on(engine) -> None:  # type: ignore[no-untyped-def]
    s = two_projects(engine)
    core2 = s.item("CORE-2", points=2)
    s.in_release(core2, "C1")
    s.link("CORE-2", "PAY-1")  # C1 waits for R1, which waits for C1
    s.run(AS_OF)
    r1, c1 = forecast(s, "R1"), forecast(s, "C1")
    assert r1["blocking_cycle"] == "Core 1.1 (CORE)"
    assert c1["blocking_cycle"] == "Payments 2.0 (PAY)"
    # the cycle's links are ignored: each release on its own work
    assert as_day(r1["p85_date"]) == TODAY + timedelta(7)
    assert as_day(c1["p85_date"]) == TODAY + timedelta(21)


def alerts(s: Scenario) -> list[dict]:  # type: ignore[type-arg]
    return s.all(
        "SELECT rule, severity, status, slip_days, message, project_keys FROM dependency_alerts "
        "WHERE rule = 'release_at_risk' ORDER BY id"
    )


def test_release_at_risk_opens_and_resolves(engine) -> None:  # type: ignore[no-untyped-def]
    s = two_projects(engine)
    s.run(AS_OF)
    [alert] = alerts(s)
    assert (alert["status"], alert["slip_days"], alert["severity"]) == ("open", 4, "medium")
    assert alert["project_keys"] == "PAY"
    assert alert["message"] == (
        "Release Payments 2.0 (PAY) is at risk: P85 finish 2024-06-29, 4 days after its due "
        "date 2024-06-25 (on time in 0% of trials); driven by CORE-1 in Core 1.1, P85 "
        "2024-06-29."
    )
    s.run("2024-06-15 18:00")  # holds again: the same alert, no new event
    assert len(alerts(s)) == 1
    # the blocker is done: PAY makes its date
    s.update(
        "work_items",
        {"item_key": "CORE-1"},
        status_category="done",
        resolved_at=datetime(2024, 6, 15, 20, 0),
    )
    s.run("2024-06-15 21:00")
    [alert] = alerts(s)
    assert alert["status"] == "resolved"
    events = s.all(
        "SELECT e.event FROM alert_events e JOIN dependency_alerts a ON a.id = e.alert_id "
        "WHERE a.rule = 'release_at_risk' ORDER BY e.id"
    )
    assert [e["event"] for e in events] == ["open", "resolve"]


def test_release_at_risk_severity_thresholds_come_from_config(engine) -> None:  # type: ignore[no-untyped-def]
    s = two_projects(engine)
    alerts_cfg = s.config.alerts.model_copy(
        update={
            "at_risk_severity": s.config.alerts.at_risk_severity.model_copy(
                update={"low": 1, "medium": 2, "high": 3}
            )
        }
    )
    s.config = s.config.model_copy(update={"alerts": alerts_cfg})
    s.run(AS_OF)
    assert [a["severity"] for a in alerts(s)] == ["critical"]


def test_the_webhook_message_names_the_release(engine) -> None:  # type: ignore[no-untyped-def]
    s = two_projects(engine)
    s.run(AS_OF)
    [alert] = s.all("SELECT * FROM v_dependency_alerts WHERE rule = 'release_at_risk'")
    opened = build_message("open", alert)
    assert opened["text"] == (
        "[PRG] MEDIUM alert: release Payments 2.0 (PAY) is at risk (release_at_risk), slip 4 days"
    )
    assert "driven by CORE-1 in Core 1.1" in json.dumps(opened["blocks"])
    resolved = build_message("resolve", alert)["text"]
    assert (
        resolved
        == "[PRG] Resolved: release Payments 2.0 (PAY) is no longer at risk (release_at_risk)"
    )


def test_a_team_that_does_not_estimate_is_forecast_in_items(engine) -> None:  # type: ignore[no-untyped-def]
    s = Scenario(engine).source().project("OPS")
    end = datetime.fromisoformat(AS_OF)
    for w in range(12):  # two unestimated items done every week
        for n in range(2):
            at = (end - timedelta(days=7 * w + 2 + n)).isoformat(sep=" ")
            s.item(f"OPS-{500 + 2 * w + n}", status="done", started=at, resolved=at)
    s.release("O1", scope="OPS", due="2024-06-30")
    open_items(s, "OPS", "O1", [None, None, None, None, None])  # type: ignore[list-item]
    s.run(AS_OF)
    o1 = forecast(s, "O1")
    # 5 items at 2 a week: 2.5 weeks = 17.5 days -> 18
    assert (o1["unit"], as_day(o1["p85_date"])) == ("items", TODAY + timedelta(18))
    assert (o1["remaining_points"], o1["remaining_items"]) == (0, 5)


def test_no_history_no_forecast_and_beyond_the_horizon_is_late(engine) -> None:  # type: ignore[no-untyped-def]
    s = Scenario(engine).source().project("PAY").project("NEW")
    weekly(s, "PAY", [5] * 12)
    s.config = s.config.model_copy(
        update={"forecast": s.config.forecast.model_copy(update={"max_steps": 2})}
    )
    s.release("R1", scope="PAY", due="2024-07-01")
    open_items(s, "PAY", "R1", [20, 20])  # 8 weeks of work, 2 weeks simulated
    s.release("N1", scope="NEW", due="2024-07-01")
    open_items(s, "NEW", "N1", [3])
    s.run(AS_OF)
    r1, n1 = forecast(s, "R1"), forecast(s, "N1")
    assert (r1["p50_date"], r1["p85_date"], r1["probability_on_time"]) == (None, None, 0.0)
    assert n1["p85_date"] is None and n1["probability_on_time"] is None
    assert n1["notes"] == "no delivered work in the last 6 closed sprints or 12 weeks"
    [alert] = alerts(s)  # R1 only: N1 has no forecast to judge
    assert alert["severity"] == "critical" and alert["slip_days"] is None
    assert (
        "P85 finish beyond the forecast horizon, after its due date 2024-07-01"
        in (alert["message"])
    )
