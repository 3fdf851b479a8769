"""The warehouse's figures equal those computed independently from the simulator's ground truth.

The Jira part of a generated organisation is synced over real HTTP (simulator, connector,
sync engine), the transform runs as of the organisation's "now", and every figure of the
public views is compared with ``ground_truth_metrics`` — a second, plain-Python computation of
docs/metrics.md straight from the generator's items, histories, sprint memberships, releases
and links (it shares no code with the transform).

Scope of the comparison: only the Jira connector exists, so the config is
``org.config_toml(..., kinds=["jira"])``: a project whose companion GitHub repo is dropped
(PAY, CHK) is configured, synced and computed as its Jira part on both sides. Exact equality
for counts, dates and verdicts; 1e-6 relative for fractional figures.

Every difference is collected before failing, one line each (view, row, column, warehouse
value, ground truth), so a failure shows the whole picture at once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from ground_truth_metrics import Truth, compute

from programview.config import Config, parse_config
from programview.simulator.generator import Organisation, generate
from programview.simulator.server import serve
from programview.sync.engine import sync
from programview.transform import run_transform

pytestmark = pytest.mark.slow

#: Four Jira projects (two of them with a GitHub companion), three programs, cycles.
SEED = 2
SOURCE = "sim-jira"


@pytest.fixture(autouse=True)
def _quiet_field_warning(caplog: pytest.LogCaptureFixture) -> None:
    # The simulated Cloud site has two story-points fields on purpose (one unused).
    caplog.set_level(logging.ERROR, logger="programview.connectors.jira")


@pytest.fixture(scope="module")
def org() -> Organisation:
    return generate(SEED, "small")


# --- reading the views, typed the same on both databases ---------------------------------------


def view(engine: sa.Engine, name: str, where: str = "", **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.execute(sa.text(f"SELECT * FROM {name} {where}"), params)
        return [dict(r._mapping) for r in result]


def as_date(value: Any) -> date | None:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(str(value)[:10])


def as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def as_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def naive(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=None)


class Differences:
    """Collects mismatches: ``where``, column, warehouse value, ground truth."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: str, column: str, got: Any, want: Any) -> None:
        self.lines.append(f"{where}: {column} warehouse={got!r} ground truth={want!r}")

    def exact(self, where: str, column: str, got: Any, want: Any) -> None:
        if got != want:
            self.add(where, column, got, want)

    def number(self, where: str, column: str, got: Any, want: Any) -> None:
        if got is None or want is None:
            if got is not want:
                self.add(where, column, got, want)
        elif not math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1e-9):
            self.add(where, column, got, want)

    def keys(self, where: str, got: set[Any], want: set[Any]) -> None:
        if got != want:
            self.lines.append(
                f"{where}: only in warehouse {sorted(map(str, got - want))}, "
                f"only in ground truth {sorted(map(str, want - got))}"
            )

    def report(self) -> str:
        return f"{len(self.lines)} differences:\n" + "\n".join(self.lines)


# --- the comparisons -----------------------------------------------------------------------------

SPRINT_COUNTS = (
    "committed_items",
    "added_items",
    "removed_items",
    "completed_items",
    "unestimated_items",
)
SPRINT_POINTS = ("committed_points", "added_points", "removed_points", "completed_points")


def native(row_id: str) -> str:
    prefix = f"{SOURCE}:"
    assert row_id.startswith(prefix), row_id
    return row_id[len(prefix) :]


def compare_sprints(engine: sa.Engine, truth: Truth, diff: Differences) -> None:
    rows = {native(r["sprint_id"]): r for r in view(engine, "v_sprints")}
    diff.keys("v_sprints", set(rows), set(truth.sprints))
    for sid, want in truth.sprints.items():
        row = rows.get(sid)
        if row is None:
            continue
        where = f"v_sprints {row['sprint_name']} ({want['state']})"
        diff.exact(where, "project_key", row["project_key"], want["project_key"])
        diff.exact(where, "state", row["state"], want["state"])
        for col in SPRINT_COUNTS:
            diff.exact(where, col, row[col], want[col])
        for col in SPRINT_POINTS:
            diff.number(where, col, row[col], want[col])


RELEASE_NUMBERS = ("points", "done_points")
RELEASE_COUNTS = ("item_count", "open_bugs", "unestimated_items", "slip_days")


def compare_releases(engine: sa.Engine, truth: Truth, diff: Differences) -> None:
    rows = {native(r["release_id"]): r for r in view(engine, "v_releases")}
    diff.keys("v_releases", set(rows), set(truth.releases))
    for rid, want in truth.releases.items():
        row = rows.get(rid)
        if row is None:
            continue
        where = f"v_releases {row['project_key']} {row['release_name']} ({want['state']})"
        diff.exact(where, "project_key", row["project_key"], want["project_key"])
        diff.exact(where, "state", row["state"], want["state"])
        diff.exact(where, "due_date (planned)", as_date(row["due_date"]), want["planned_date"])
        diff.exact(
            where, "released_at", as_datetime(row["released_at"]), naive(want["released_at"])
        )
        diff.exact(where, "on_time", as_bool(row["on_time"]), want["on_time"])
        for col in RELEASE_COUNTS:
            diff.exact(where, col, row[col], want[col])
        for col in RELEASE_NUMBERS:
            diff.number(where, col, row[col], want[col])


PROJECT_NUMBERS = (
    "velocity_points",
    "velocity_cv",
    "say_do_ratio",
    "throughput_per_week",
    "cycle_time_p50_days",
    "cycle_time_p85_days",
    "defect_density",
    "delivered_points",
    "on_time_delivery_rate",
    "planned_value",
    "actual_cost",
    "earned_value",
    "budget_variance",
    "cpi",
    "spi",
    "scope_change_pct",
    "open_bug_trend_pct",
    "total_points",
    "done_points",
    "remaining_points",
    "estimate_coverage_pct",
)
PROJECT_COUNTS = (
    "item_count",
    "velocity_sprints",
    "cycle_time_items",
    "bugs_created",
    "releases_judged",
    "open_blockers",
    "open_bugs",
    "unestimated_items",
    "forecast_slip_days",
)
COMPONENTS = ("schedule", "delivery", "quality", "budget", "dependencies")


def compare_projects(engine: sa.Engine, truth: Truth, diff: Differences) -> None:
    day = truth.as_of.date()
    rows = {
        r["project_key"]: r
        for r in view(engine, "v_project_metrics")
        if as_date(r["as_of_date"]) == day
    }
    diff.keys("v_project_metrics", set(rows), set(truth.projects))
    for key, want in truth.projects.items():
        row = rows.get(key)
        if row is None:
            continue
        where = f"v_project_metrics {key}"
        for col in PROJECT_COUNTS:
            diff.exact(where, col, row[col], want[col])
        for col in PROJECT_NUMBERS:
            diff.number(where, col, row[col], want[col])
        diff.exact(
            where,
            "forecast_finish_date",
            as_date(row["forecast_finish_date"]),
            want["forecast_finish_date"],
        )
        health = truth.project_health[key]
        diff.number(where, "health_score", row["health_score"], health["health_score"])
        diff.exact(where, "health_status", row["health_status"], health["health_status"])
        for comp in COMPONENTS:
            diff.number(where, f"{comp}_score", row[f"{comp}_score"], health["components"][comp])


def compare_programs(engine: sa.Engine, truth: Truth, diff: Differences) -> None:
    day = truth.as_of.date()
    rows = {
        r["program_key"]: r
        for r in view(engine, "v_program_health")
        if as_date(r["as_of_date"]) == day
    }
    diff.keys("v_program_health", set(rows), set(truth.programs))
    for key, want in truth.programs.items():
        row = rows.get(key)
        if row is None:
            continue
        where = f"v_program_health {key}"
        diff.exact(where, "project_count", row["project_count"], want["project_count"])
        diff.exact(where, "open_alerts", row["open_alerts"], want["open_alerts"])
        diff.exact(where, "health_status", row["health_status"], want["health_status"])
        diff.number(where, "health_score", row["health_score"], want["health_score"])
        for comp in COMPONENTS:
            present = row[f"{comp}_score"] is not None
            diff.exact(
                where, f"{comp}_score present", present, want["components"][comp] is not None
            )
            diff.number(where, f"{comp}_score", row[f"{comp}_score"], want["components"][comp])
        for col in ("planned_value", "earned_value", "actual_cost"):
            diff.number(where, col, row[col], want[col])


def compare_dependencies(engine: sa.Engine, truth: Truth, diff: Differences) -> None:
    got = set()
    for r in view(engine, "v_dependencies", "WHERE link_kind <> 'parent'"):
        got.add(
            (
                r["blocked_item_key"],
                r["blocked_project_key"],
                r["blocking_item_key"],
                r["blocking_project_key"],
                r["link_kind"],
            )
        )
        cross = r["blocked_project_key"] != r["blocking_project_key"]
        if as_bool(r["cross_project"]) != cross:
            diff.add(
                f"v_dependencies {r['blocked_item_key']} <- {r['blocking_item_key']}",
                "cross_project",
                r["cross_project"],
                cross,
            )
    diff.keys("v_dependencies (links)", got, truth.dependencies)
    cross_blocks = {d for d in truth.dependencies if d[4] == "blocks" and d[1] != d[3]}
    assert cross_blocks, "the seed must have cross-project blocking links to compare"


def compare_alerts(engine: sa.Engine, truth: Truth, diff: Differences) -> None:
    rows = view(engine, "v_dependency_alerts", "WHERE status = 'open'")
    pairs = {
        (r["rule"], r["blocked_item_key"], r["blocking_item_key"]): r
        for r in rows
        if r["rule"] != "dependency_cycle"
    }
    diff.keys("v_dependency_alerts (open pair alerts)", set(pairs), set(truth.pair_alerts))
    for ident, want in truth.pair_alerts.items():
        row = pairs.get(ident)
        if row is None:
            continue
        where = f"v_dependency_alerts {' '.join(ident)}"
        diff.exact(where, "severity", row["severity"], want["severity"])
        diff.exact(where, "slip_days", row["slip_days"], want["slip_days"])
        diff.exact(where, "program_key", row["program_key"], want["program_key"])

    cycles = {r["blocked_item_key"]: r for r in rows if r["rule"] == "dependency_cycle"}
    diff.keys(
        "v_dependency_alerts (open cycles, by first item)",
        set(cycles),
        {c["first"] for c in truth.cycles},
    )
    for knot in truth.cycles:
        row = cycles.get(knot["first"])
        if row is None:
            continue
        where = f"v_dependency_alerts dependency_cycle {knot['first']}"
        path = (row["cycle_item_keys"] or "").split(",")
        diff.exact(where, "cycle length", len(path), knot["length"])
        diff.exact(where, "cycle items outside the knot", set(path) - knot["items"], set())
        diff.exact(where, "severity", row["severity"], "critical")
        diff.exact(where, "program_key", row["program_key"], knot["program_key"])


# --- the test -----------------------------------------------------------------------------------


def project_scopes(config: Config) -> dict[str, list[str]]:
    """Project key -> scope paths, as configured (the sources the run syncs)."""
    return {p.key: [scope for _src, scope in p.split_scopes()] for p in config.projects}


@pytest.fixture
def synced(org: Organisation, warehouse_url: str, engine: sa.Engine) -> Iterator[Config]:
    """The Jira part of ``org`` synced into the warehouse over real HTTP."""
    with serve(org, port=0) as sim:
        text = org.config_toml(sim.base_url, warehouse_url, kinds=["jira"])
        config = parse_config(text, environ=org.tokens.env())
        result = sync(config)
        assert result.status == "ok", result.errors
        assert result.quarantined == 0
        yield config


def test_warehouse_figures_equal_ground_truth(
    org: Organisation, synced: Config, engine: sa.Engine
) -> None:
    as_of = org.now.replace(tzinfo=None)
    run_transform(engine, synced, as_of=as_of)
    truth = compute(org, project_scopes(synced), org.now)
    assert truth.sprints and truth.releases and len(truth.projects) >= 3

    diff = Differences()
    compare_sprints(engine, truth, diff)
    compare_releases(engine, truth, diff)
    compare_dependencies(engine, truth, diff)
    compare_alerts(engine, truth, diff)
    compare_projects(engine, truth, diff)
    compare_programs(engine, truth, diff)
    assert not diff.lines, diff.report()
