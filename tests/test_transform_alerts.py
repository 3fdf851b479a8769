"""Dependency alerts: each rule fires on its own hand-built link, severities follow the
defaults, and an alert keeps its id while it holds, is resolved (not deleted) when it stops
holding, and opens anew if it holds again. Today is 2024-03-10."""

from __future__ import annotations

from datetime import datetime

import pytest
from test_transform_support import Scenario, db_id

from programview.transform.settings import AlertsConfig, SlipSeverity

AS_OF = "2024-03-10 12:00"
RECENT = "2024-03-09"


def build(engine) -> Scenario:  # type: ignore[no-untyped-def]
    s = Scenario(engine).source().program("DIGITAL")
    s.project("PAY", program="DIGITAL").project("WEB", program="DIGITAL")
    s.sprint("PAY-S", scope="PAY", state="active", start="2024-03-04", end="2024-03-18")
    s.sprint("WEB-S", scope="WEB", state="future", start="2024-03-18", end="2024-04-01")

    def pair(
        n: int,
        *,
        a: dict,
        b: dict,
        a_sprint: str | None = None,  # type: ignore[type-arg]
        b_sprint: str | None = None,
    ) -> None:
        a_id = s.item(f"PAY-{n}", updated=RECENT, **a)
        b_id = s.item(f"WEB-{n}", updated=RECENT, **b)
        if a_sprint:
            s.member(a_sprint, a_id)
        if b_sprint:
            s.member(b_sprint, b_id)
        s.link(f"PAY-{n}", f"WEB-{n}")

    # 1 scheduled later: PAY-1 ends with its sprint on 18 Mar, WEB-1 with its sprint on 1 Apr
    pair(1, a={}, b={}, a_sprint="PAY-S", b_sprint="WEB-S")
    # 2 unscheduled blocker while PAY-2 is in an active sprint
    pair(2, a={}, b={}, a_sprint="PAY-S")
    # 3 stalled: PAY-3 in progress, WEB-3 untouched since 20 Feb (due before... any time)
    s.item("PAY-3", status="in_progress", updated=RECENT)
    s.item("WEB-3", due="2024-03-30", updated="2024-02-20")
    s.link("PAY-3", "WEB-3")
    # 4 due in 5 days (high) and 5 due in 10 days (medium), blockers planned earlier
    pair(4, a={"due": "2024-03-15"}, b={"due": "2024-03-14"})
    pair(5, a={"due": "2024-03-20"}, b={"due": "2024-03-19"})
    # 6 a cycle across the two projects, nothing else wrong with it
    pair(6, a={"due": "2024-04-30"}, b={"due": "2024-04-30"})
    s.link("WEB-6", "PAY-6")
    # no alert: same project; blocker done; "relates" link; blocked item done
    s.member("PAY-S", s.item("PAY-7", updated=RECENT))
    s.item("PAY-8", updated=RECENT)
    s.link("PAY-7", "PAY-8")
    pair(9, a={}, b={"status": "done", "resolved": "2024-03-01"}, a_sprint="PAY-S")
    s.member("PAY-S", s.item("PAY-10", updated=RECENT))
    s.item("WEB-10", updated=RECENT)
    s.link("PAY-10", "WEB-10", kind="relates")
    pair(11, a={"status": "done", "resolved": "2024-03-01"}, b={})
    return s


def alerts(s: Scenario, status: str | None = None) -> dict[tuple[str, str], dict]:  # type: ignore[type-arg]
    where = {"status": status} if status else {}
    return {(r["rule"], r["blocked_item_key"]): r for r in s.rows("dependency_alerts", **where)}


def test_each_rule_fires_with_its_default_severity(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    result = s.run(AS_OF)
    got = {k: (r["severity"], r["blocking_item_key"], r["slip_days"]) for k, r in alerts(s).items()}
    assert got == {
        ("blocker_scheduled_later", "PAY-1"): ("medium", "WEB-1", 14),
        ("blocker_unscheduled", "PAY-2"): ("high", "WEB-2", None),
        ("blocker_stalled", "PAY-3"): ("medium", "WEB-3", None),
        ("blocked_item_due_soon", "PAY-4"): ("high", "WEB-4", None),
        ("blocked_item_due_soon", "PAY-5"): ("medium", "WEB-5", None),
        ("dependency_cycle", "PAY-6"): ("critical", "WEB-6", None),
    }
    assert result.alerts_open == result.alerts_opened == 6
    row = alerts(s)[("blocker_scheduled_later", "PAY-1")]
    assert row["program_key"] == "DIGITAL"
    assert (row["blocked_project_key"], row["blocking_project_key"]) == ("PAY", "WEB")
    assert row["message"] == (
        "PAY-1 (PAY) is blocked by WEB-1 (WEB), planned to finish 2024-04-01: 14 days after "
        "PAY-1's planned finish 2024-03-18."
    )
    assert "has not changed for 19 days" in alerts(s)[("blocker_stalled", "PAY-3")]["message"]


def test_cycle_across_two_projects_is_one_critical_alert(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    cycle = alerts(s)[("dependency_cycle", "PAY-6")]
    assert cycle["cycle_item_keys"] == "PAY-6,WEB-6"
    assert cycle["project_keys"] == "PAY,WEB"
    assert cycle["message"] == (
        "Blocking cycle across PAY, WEB: PAY-6 → WEB-6 → PAY-6 (each item blocks the next)."
    )


def test_cycle_through_an_in_project_link(engine) -> None:  # type: ignore[no-untyped-def]
    s = Scenario(engine).source().project("PAY").project("WEB")
    for key in ("PAY-20", "PAY-21", "WEB-20"):
        s.item(key, updated=RECENT)
    s.link("PAY-21", "PAY-20")  # PAY-20 blocks PAY-21
    s.link("WEB-20", "PAY-21")  # PAY-21 blocks WEB-20
    s.link("PAY-20", "WEB-20")  # WEB-20 blocks PAY-20
    s.run(AS_OF)
    (cycle,) = s.rows("dependency_alerts", rule="dependency_cycle")
    assert cycle["cycle_item_keys"] == "PAY-20,PAY-21,WEB-20"


def test_open_blockers_count_cross_project_links_of_open_items(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    assert s.project_metrics("PAY")["open_blockers"] == 6  # PAY-1..6
    assert s.project_metrics("WEB")["open_blockers"] == 1  # WEB-6 (the cycle)


def test_lifecycle_same_id_while_it_holds_resolved_then_reopened(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    before = alerts(s)
    unscheduled = before[("blocker_unscheduled", "PAY-2")]

    # WEB-2 gets a due date before PAY-2's sprint ends: the unscheduled alert stops holding
    s.update("work_items", {"id": db_id("jira", "WEB-2")}, due_date=datetime(2024, 3, 16).date())
    result = s.run("2024-03-11 12:00")
    after = alerts(s)
    assert (result.alerts_opened, result.alerts_resolved) == (0, 1)
    resolved = after[("blocker_unscheduled", "PAY-2")]
    assert resolved["id"] == unscheduled["id"]
    assert (resolved["status"], resolved["resolved_at"]) == ("resolved", datetime(2024, 3, 11, 12))
    for key, row in before.items():
        if key != ("blocker_unscheduled", "PAY-2"):
            assert after[key]["id"] == row["id"], key
            assert after[key]["status"] == "open"
            assert after[key]["first_seen_at"] == datetime(2024, 3, 10, 12)
            assert after[key]["last_seen_at"] == datetime(2024, 3, 11, 12)

    # the due date is removed again: a new alert opens, the old one stays resolved
    s.update("work_items", {"id": db_id("jira", "WEB-2")}, due_date=None)
    s.run("2024-03-12 12:00")
    rows = s.rows("dependency_alerts", rule="blocker_unscheduled")
    assert sorted((r["id"] == unscheduled["id"], r["status"]) for r in rows) == [
        (False, "open"),
        (True, "resolved"),
    ]

    # the outbox: one event per open and per resolve, none delivered yet
    events = sorted((e["alert_id"], e["event"]) for e in s.rows("alert_events"))
    reopened = next(r["id"] for r in rows if r["status"] == "open")
    assert events == sorted(
        [(r["id"], "open") for r in before.values()]
        + [(unscheduled["id"], "resolve"), (reopened, "open")]
    )
    assert all(e["delivered_at"] is None for e in s.rows("alert_events"))


def test_a_resolved_cycle_when_one_item_is_done(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    cycle_id = alerts(s)[("dependency_cycle", "PAY-6")]["id"]
    s.update("work_items", {"id": db_id("jira", "WEB-6")}, status_category="done")
    s.run("2024-03-11")
    assert s.row("dependency_alerts", id=cycle_id)["status"] == "resolved"


def test_disabled_rules_and_configured_severities(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.config = s.config.model_copy(
        update={
            "alerts": AlertsConfig(
                disabled_rules=["blocker_stalled"],
                severity={"dependency_cycle": "high"},
                slip_severity=SlipSeverity(low=20, medium=25, high=30),
            )
        }
    )
    s.run(AS_OF)
    got = alerts(s)
    assert ("blocker_stalled", "PAY-3") not in got
    assert got[("dependency_cycle", "PAY-6")]["severity"] == "high"
    assert got[("blocker_scheduled_later", "PAY-1")]["severity"] == "low"  # 14 <= 20


@pytest.mark.parametrize(
    ("slip", "severity"),
    [
        (1, "low"),
        (3, "low"),
        (4, "medium"),
        (14, "medium"),
        (15, "high"),
        (30, "high"),
        (31, "critical"),
    ],
)
def test_slip_severity_bands(slip: int, severity: str) -> None:
    assert SlipSeverity().of(slip) == severity


def test_every_rule_resolves_when_its_blocker_is_done(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    opened = {r["id"]: r["rule"] for r in s.rows("dependency_alerts")}
    assert set(opened.values()) == {
        "blocker_scheduled_later",
        "blocker_unscheduled",
        "blocker_stalled",
        "blocked_item_due_soon",
        "dependency_cycle",
    }
    for n in (1, 2, 3, 4, 5, 6):
        s.update("work_items", {"id": db_id("jira", f"WEB-{n}")}, status_category="done")
    result = s.run("2024-03-11 09:00")
    assert (result.alerts_open, result.alerts_resolved) == (0, len(opened))
    rows = {r["id"]: r for r in s.rows("dependency_alerts")}
    assert set(rows) == set(opened)  # resolved, not deleted
    assert {(r["status"], r["resolved_at"]) for r in rows.values()} == {
        ("resolved", datetime(2024, 3, 11, 9))
    }
    resolves = sorted(e["alert_id"] for e in s.rows("alert_events", event="resolve"))
    assert resolves == sorted(opened)
