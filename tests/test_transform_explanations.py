"""What the transform writes down to explain itself (migration 0008): every rule's verdict on
each open cross-project blocker (``v_blocker_checks``), every metric behind each project's
health (``v_health_inputs``), and release start dates (``v_releases.start_date``)."""

from __future__ import annotations

import json
from datetime import date

import sqlalchemy as sa
from test_transform_alerts import AS_OF, RECENT, build
from test_transform_support import Scenario

from programview.config import Config
from programview.transform.health import piecewise
from programview.transform.settings import COMPONENTS, LINK_RULES, AlertsConfig, HealthConfig


def checks(s: Scenario) -> dict[tuple[str, str], dict[str, tuple[bool, str]]]:
    """(blocked, blocking) -> rule -> (holds, reason), read through the public view."""
    out: dict[tuple[str, str], dict[str, tuple[bool, str]]] = {}
    for r in s.all("SELECT * FROM v_blocker_checks"):
        link = (r["blocked_item_key"], r["blocking_item_key"])
        out.setdefault(link, {})[r["rule"]] = (bool(r["holds"]), r["reason"])
    return out


def test_each_open_cross_project_blocker_has_every_rules_verdict(engine: sa.Engine) -> None:
    s = build(engine)
    # PAY-12 is blocked by WEB-12, which is planned to finish first: nothing is wrong.
    s.item("PAY-12", due="2024-06-30", updated=RECENT)
    s.item("WEB-12", due="2024-05-01", updated=RECENT)
    s.link("PAY-12", "WEB-12")
    s.run(AS_OF)
    got = checks(s)

    # Exactly the open cross-project blocking links (what open_blockers counts), 5 rules each:
    # pairs 1-6 and 12 blocked in PAY (not 7-11), and WEB-6 blocked by PAY-6 (the cycle).
    blockers = {
        r["project_key"]: r["open_blockers"]
        for r in s.all("SELECT project_key, open_blockers FROM v_project_metrics")
    }
    assert blockers == {"PAY": 7, "WEB": 1}
    assert sorted(link for link in got if link[0].startswith("WEB")) == [("WEB-6", "PAY-6")]
    assert len(got) == 8
    assert all(set(rules) == set(LINK_RULES) for rules in got.values())

    # A pair rule holds exactly where an open alert of that rule exists; dependency_cycle
    # holds on every link inside an open cycle alert's knot.
    open_alerts = s.all("SELECT * FROM v_dependency_alerts WHERE status = 'open'")
    holding = {
        (rule, link[0])
        for link, rules in got.items()
        for rule, (holds, _why) in rules.items()
        if holds and rule != "dependency_cycle"
    }
    assert holding == {
        (r["rule"], r["blocked_item_key"]) for r in open_alerts if r["rule"] != "dependency_cycle"
    }
    in_cycles = {link for link, rules in got.items() if rules["dependency_cycle"][0]}
    knots = [
        set(r["cycle_item_keys"].split(",")) for r in open_alerts if r["rule"] == "dependency_cycle"
    ]
    assert in_cycles == {link for link in got if any(set(link) <= k for k in knots)}
    assert in_cycles == {("PAY-6", "WEB-6"), ("WEB-6", "PAY-6")}

    assert got[("PAY-12", "WEB-12")] == {
        "blocker_scheduled_later": (
            False,
            "WEB-12 is planned to finish 2024-05-01, not after PAY-12's planned finish 2024-06-30",
        ),
        "blocker_unscheduled": (False, "WEB-12 is scheduled (planned finish 2024-05-01)"),
        "blocker_stalled": (False, "PAY-12 is not active (not in progress, in no active sprint)"),
        "blocked_item_due_soon": (False, "PAY-12 is due 2024-06-30, more than 14 days ahead"),
        "dependency_cycle": (
            False,
            "no chain of open blocking links leads from PAY-12 back to WEB-12",
        ),
    }
    # A holding rule's reason is the alert's own message.
    holds, reason = got[("PAY-1", "WEB-1")]["blocker_scheduled_later"]
    assert holds and reason.startswith("PAY-1 (PAY) is blocked by WEB-1 (WEB)")
    assert got[("PAY-6", "WEB-6")]["dependency_cycle"][0]
    assert got[("PAY-3", "WEB-3")]["blocker_stalled"][0]
    assert got[("PAY-2", "WEB-2")]["blocker_stalled"][1] == (
        "WEB-2 changed 1 day ago (2024-03-09), within 14 days"
    )


def test_a_switched_off_rule_says_so(engine: sa.Engine) -> None:
    config = Config(alerts=AlertsConfig(disabled_rules=["blocker_scheduled_later"]))
    s = Scenario(engine, config).source().program("DIGITAL")
    s.project("PAY", program="DIGITAL").project("WEB", program="DIGITAL")
    s.item("PAY-1", due="2024-06-30", updated=RECENT)
    s.item("WEB-1", due="2024-07-30", updated=RECENT)
    s.link("PAY-1", "WEB-1")
    s.run(AS_OF)
    assert checks(s)[("PAY-1", "WEB-1")]["blocker_scheduled_later"] == (
        False,
        "switched off in [alerts] disabled_rules",
    )
    assert not s.all("SELECT * FROM v_dependency_alerts")
    # A later run replaces the verdicts: the link is done, nothing is left to check.
    s.update("work_items", {"item_key": "WEB-1"}, status_category="done")
    s.run(AS_OF)
    assert checks(s) == {}


def test_every_metric_behind_a_project_health_score(engine: sa.Engine) -> None:
    health = HealthConfig(green=80.0, amber=55.0, thresholds={"spi": [(0.8, 0.0), (1.0, 100.0)]})
    s = Scenario(engine, Config(health=health)).source().program("DIGITAL")
    s.project("PAY", program="DIGITAL", budget=1000.0, start="2024-01-01", end="2024-06-30")
    for n in range(1, 9):
        s.item(f"PAY-{n}", points=3.0, status="done", created="2024-01-05", resolved="2024-02-20")
    s.item("PAY-9", points=5.0)
    s.run(AS_OF)

    rows = s.all("SELECT * FROM v_health_inputs WHERE project_key = 'PAY'")
    metrics = s.project_metrics("PAY")
    by_metric = {r["metric"]: r for r in rows}
    assert set(by_metric) == {m for ms in COMPONENTS.values() for m in ms}
    for r in rows:
        assert r["metric"] in COMPONENTS[r["component"]]
        assert r["component_score"] == metrics[f"{r['component']}_score"]
        assert r["component_weight"] == health.weights[r["component"]]
        assert (r["green_at"], r["amber_at"]) == (80.0, 55.0)
        assert str(r["as_of_date"])[:10] == "2024-03-10"
        points = [tuple(p) for p in json.loads(r["thresholds"])]
        assert points == [tuple(map(float, p)) for p in health.points(r["metric"])]
        if r["value"] is None:
            assert r["score"] is None and r["reason"], r
        else:
            assert r["reason"] is None
            assert abs(r["score"] - piecewise(points, r["value"])) < 1e-9
    # The configured points, not the defaults; SPI equals v_project_metrics.spi.
    assert json.loads(by_metric["spi"]["thresholds"]) == [[0.8, 0.0], [1.0, 100.0]]
    assert by_metric["spi"]["value"] == metrics["spi"]
    # No cost data: a reason instead of a number.
    assert by_metric["cpi"]["value"] is None
    assert "hourly_rate" in by_metric["cpi"]["reason"]


def test_release_start_is_the_sources_else_the_previous_due_date(engine: sa.Engine) -> None:
    s = Scenario(engine).source().project("PAY")
    s.release("v1", scope="PAY", due="2024-02-01", released=True, released_at="2024-02-01")
    s.release("v2", scope="PAY", due="2024-03-15")
    s.release("v3", scope="PAY", due="2024-05-01")
    s.release("o1", scope="OTHER", due="2024-04-01")
    s.flush()
    s.update("releases", {"id": "v3"}, start_date=date(2024, 3, 20))
    s.run(AS_OF)
    got = {
        r["release_id"]: (
            str(r["start_date"])[:10] if r["start_date"] else None,
            bool(r["start_date_inferred"]),
        )
        for r in s.all("SELECT release_id, start_date, start_date_inferred FROM v_releases")
    }
    assert got == {
        "v1": (None, False),  # the first release of its scope: nothing before it
        "v2": ("2024-02-01", True),  # derived: v1's due date
        "v3": ("2024-03-20", False),  # the source's own start date wins
        "o1": (None, False),  # another scope's releases do not count
    }
