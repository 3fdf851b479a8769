"""Health scores: piecewise-linear metric scores, components with no data dropped and the
weights renormalised, program aggregation, explanations, and the config that steers them."""

from __future__ import annotations

import pytest
from test_transform_support import Scenario

from programview.config import parse_config
from programview.errors import ConfigError
from programview.transform.health import piecewise, score_program, score_project
from programview.transform.settings import HealthConfig

VALUES = {
    "spi": 0.9,  # between 0.85 -> 50 and 0.95 -> 75: 62.5
    "on_time_delivery_rate": 0.75,  # between 0.7 -> 50 and 0.85 -> 75: 58.33
    "forecast_on_time_probability": None,
    "velocity_cv": 0.25,  # exactly 75
    "say_do_ratio": 1.1,  # above the last point: 100
    "defect_density": 20.0,  # exactly 50
    "open_bug_trend_pct": None,
    "cpi": None,  # no budget data: the budget component is dropped
    "alert_weight": 4.0,  # between 2 -> 75 and 6 -> 50: 62.5
}


def test_piecewise_is_linear_between_points_and_flat_outside() -> None:
    points = [(0.8, 0.0), (0.9, 50.0), (1.0, 100.0)]
    assert piecewise(points, 0.5) == 0
    assert piecewise(points, 0.85) == pytest.approx(25)
    assert piecewise(points, 0.9) == 50
    assert piecewise(points, 0.95) == pytest.approx(75)
    assert piecewise(points, 1.3) == 100
    falling = [(0.0, 100.0), (10.0, 0.0)]  # lower is better
    assert piecewise(falling, 2.5) == pytest.approx(75)


def test_missing_component_is_dropped_and_weights_renormalised() -> None:
    h = score_project(VALUES, {"cpi": "no worklogs and no imported costs"}, HealthConfig())
    schedule = round((62.5 + (50 + 25 * 0.05 / 0.15)) / 2, 2)
    assert h.component_score("schedule") == pytest.approx(schedule)
    assert h.component_score("delivery") == pytest.approx((75 + 100) / 2)
    assert h.component_score("quality") == pytest.approx(50)
    assert h.component_score("budget") is None
    assert h.component_score("dependencies") == pytest.approx(62.5)
    expected = (0.3 * schedule + 0.2 * 87.5 + 0.2 * 50 + 0.15 * 62.5) / (0.3 + 0.2 + 0.2 + 0.15)
    assert h.score == pytest.approx(round(expected, 2))
    assert h.status == "amber"


def test_explanation_names_value_threshold_and_weight() -> None:
    h = score_project(
        VALUES,
        {
            "cpi": "no worklogs and no imported costs",
            "forecast_on_time_probability": "no end date configured for the project",
        },
        HealthConfig(),
    )
    lines = h.explanation.splitlines()
    assert lines[0] == (
        "Schedule 60.42/100 (weight 0.3): SPI 0.9 scores 62.5 (between 0.85→50 and 0.95→75); "
        "on-time delivery rate 0.75 scores 58.33 (between 0.7→50 and 0.85→75); "
        "chance to finish by the end date (Monte Carlo): no data (no end date configured for "
        "the project)."
    )
    assert lines[3] == (
        "Budget: no data (CPI: no data (no worklogs and no imported costs)); its weight 0.15 is "
        "dropped and the other weights renormalised."
    )
    assert len(lines) == 5


def test_no_data_at_all_is_null_not_100() -> None:
    h = score_project(dict.fromkeys(VALUES), {}, HealthConfig())
    assert (h.score, h.status) == (None, None)
    assert all(c.score is None for c in h.components.values())


def test_status_bands_are_configurable() -> None:
    cfg = HealthConfig(green=60, amber=40)
    assert score_project(VALUES, {}, cfg).status == "green"
    low = {
        **VALUES,
        "spi": 0.5,
        "on_time_delivery_rate": 0.2,
        "say_do_ratio": 0.3,
        "velocity_cv": 0.9,
        "defect_density": 80.0,
        "alert_weight": 20.0,
    }
    assert score_project(low, {}, cfg).status == "red"


def test_thresholds_and_weights_from_config() -> None:
    cfg = HealthConfig(
        weights={"schedule": 1.0, "delivery": 0, "quality": 0, "budget": 0, "dependencies": 0},
        thresholds={"spi": [(0.0, 0.0), (1.0, 100.0)]},
    )
    h = score_project({**VALUES, "on_time_delivery_rate": None}, {}, cfg)
    assert h.score == pytest.approx(90.0)  # only SPI 0.9 on a 0..1 line counts


def test_program_component_is_the_mean_of_projects_with_data() -> None:
    cfg = HealthConfig()
    pay = score_project(VALUES, {}, cfg)
    web = score_project({**VALUES, "defect_density": None, "spi": 1.0}, {}, cfg)
    empty = score_project(dict.fromkeys(VALUES), {}, cfg)
    program = score_program({"PAY": pay, "WEB": web, "NEW": empty}, cfg)
    assert program.component_score("quality") == pytest.approx(50)  # PAY only (WEB: no data)
    assert program.component_score("schedule") == pytest.approx(
        round((pay.component_score("schedule") + web.component_score("schedule")) / 2, 2)
    )
    assert program.component_score("budget") is None
    assert program.components["quality"].sentence == (
        "Quality 50/100 (weight 0.2): mean of PAY 50; no data for NEW, WEB."
    )


def test_program_health_in_the_warehouse_renormalises_a_missing_component(engine) -> None:  # type: ignore[no-untyped-def]
    s = Scenario(engine).source().program("DIGITAL")
    # no budgets: the budget component has no data in any project
    s.project("PAY", program="DIGITAL").project("WEB", program="DIGITAL")
    s.sprint(
        "S1",
        scope="PAY",
        state="closed",
        start="2024-05-01",
        end="2024-05-15",
        completed="2024-05-15",
    )
    s.sprint(
        "S2",
        scope="PAY",
        state="closed",
        start="2024-05-15",
        end="2024-05-29",
        completed="2024-05-29",
    )
    for n, (sprint, pts, done) in enumerate(
        [("S1", 5, True), ("S1", 3, False), ("S2", 8, True), ("S2", 2, True)]
    ):
        item = s.item(
            f"PAY-{n}",
            points=pts,
            status="done" if done else "todo",
            started="2024-05-02" if done else None,
            resolved=f"2024-05-{10 + n}" if done else None,
        )
        s.member(sprint, item)
    s.item("PAY-9", type="bug", created="2024-05-20")
    s.item("WEB-1", points=5, status="done", started="2024-05-20", resolved="2024-05-25")
    s.run("2024-06-01")

    projects = {r["project_key"]: r for r in s.rows("project_metrics")}
    program = s.row("program_health", program_key="DIGITAL")
    weights = HealthConfig().weights
    present = {}
    for name in ("schedule", "delivery", "quality", "budget", "dependencies"):
        scores = [p[f"{name}_score"] for p in projects.values() if p[f"{name}_score"] is not None]
        expected = round(sum(scores) / len(scores), 2) if scores else None
        assert program[f"{name}_score"] == pytest.approx(expected), name
        if expected is not None:
            present[name] = expected
    assert "budget" not in present
    total = sum(weights[n] for n in present)
    assert program["health_score"] == pytest.approx(
        round(sum(weights[n] * s for n, s in present.items()) / total, 2)
    )
    assert program["budget_explanation"].startswith("Budget: no data (no project has data)")
    assert program["project_count"] == 2


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[health]\nweights = { schedul = 0.3 }", "health.weights (line 2): unknown component"),
        ("[health.thresholds]\nspi = [[1.0, 100], [0.9, 50]]", "strictly increasing"),
        ("[health.thresholds]\nspeed = [[1, 0], [2, 100]]", "unknown metric 'speed'"),
        ("[health]\ngreen = 40\namber = 60", "amber (60.0) must not be above green (40.0)"),
        ("[alerts]\ndisabled_rules = ['blocker_late']", "unknown rule 'blocker_late'"),
        ("[alerts]\nseverity = { dependency_cycle = 'urgent' }", "alerts.severity"),
        ("[alerts.slip_severity]\nlow = 10\nmedium = 5", "low <= medium <= high"),
    ],
)
def test_bad_health_and_alert_settings_are_named(toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(toml, environ={})
    assert message in str(err.value)
