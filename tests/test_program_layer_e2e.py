"""Benefits and shared people end to end: the generated organisation's benefits register and
shared people, synced from the simulated Jira over real HTTP, equal the ground truth in
``v_resource_load``, ``v_benefits``, ``v_program_benefits`` and the contention alerts; the
report shows them; ``programview demo`` shows all three (benefits, people, verify).

The generator adds the register and the shared people with random streams of their own, so
every existing item, sprint, release and link stays exactly as it was.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from programview.config import Config, parse_config
from programview.report import build_report, render_html, render_text
from programview.simulator import generator
from programview.simulator.generator import TOKENS, Organisation, generate
from programview.simulator.server import Simulator, serve
from programview.sync.engine import sync
from programview.transform import run_transform
from programview.transform.benefits import import_measurements
from programview.warehouse import db

# --- the generator ------------------------------------------------------------------------------


def _fingerprint(org: Organisation, *, assignees: bool) -> list[Any]:
    items = [
        (
            i.id,
            i.key,
            i.status_history,
            i.points_history,
            i.sprints,
            i.release_id,
            i.assignee if assignees else None,
            i.worklogs,
            i.updated,
        )
        for i in org.items.values()
    ]
    sprints = [(s.id, s.start, s.end, s.completed, s.state) for s in org.sprints.values()]
    releases = [(r.id, r.due, r.released_at) for r in org.releases.values()]
    links = [(lk.from_id, lk.to_id, lk.created) for lk in org.links]
    budgets = [(p.key, p.budget) for p in org.projects]
    return [items, sprints, releases, links, budgets, [p.email for p in org.people]]


def test_the_additions_leave_the_existing_data_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    org = generate(seed=1, size="small")
    monkeypatch.setattr(generator, "_share_people", lambda org, rng: None)
    monkeypatch.setattr(generator, "_gen_benefits", lambda org, rng: None)
    plain = generate(seed=1, size="small")
    assert _fingerprint(org, assignees=False) == _fingerprint(plain, assignees=False)
    # only assignees change, and only to the shared people
    shared = {s.person_id for s in org.shared_people}
    moved = [i for i in org.items.values() if i.assignee != plain.items[i.id].assignee]
    assert moved and {i.assignee for i in moved} <= shared
    assert plain.benefits == [] and len(org.benefits) >= 4
    # and the advance after generation is the same too
    org.advance(7)
    plain.advance(7)
    assert _fingerprint(org, assignees=False) == _fingerprint(plain, assignees=False)


def test_measurements_are_monthly_and_never_change_once_taken() -> None:
    org = generate(seed=3, size="small")
    before = org.measurements()
    assert before and all(day.day == 1 for _, day, _ in before)
    assert {k for k, _, _ in before} == {b.key for b in org.benefits}
    org.advance(40)
    after = org.measurements()
    assert after[: len(before)] != [] and set(before) <= set(after) and len(after) > len(before)
    assert generate(seed=3, size="small").measurements() == before  # deterministic


# --- over real HTTP ---------------------------------------------------------------------------

SOURCE = "sim-jira"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    # seed 2: both programs have two Jira projects, so shared people are one Jira account
    with serve(generate(seed=2, size="small")) as running:
        yield running


def sync_all(sim: Simulator, url: str, tmp_path: Path) -> tuple[Config, sa.Engine]:
    text = sim.org.config_toml(sim.base_url, url, kinds=["jira"])
    config = parse_config(text, environ=TOKENS.env())
    db.upgrade(url)
    assert sync(config).status == "ok"
    engine = db.create_engine(url)
    csv_file = tmp_path / "measurements.csv"
    csv_file.write_text(sim.org.measurements_csv())
    import_measurements(engine, csv_file, [b.key for b in config.benefits])
    run_transform(engine, config, as_of=sim.org.now.replace(tzinfo=None))
    return config, engine


def rows(engine: sa.Engine, sql: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(sql))]


def expected_load(org: Organisation) -> dict[tuple[str, str], int]:
    """(person, project) -> live non-epic Jira items in progress, from the ground truth."""
    out: Counter[tuple[str, str]] = Counter()
    for sc in org.scopes_of("jira"):
        for item in org.scope_items(sc):
            if item.assignee is None or item.type == "epic":
                continue
            if item.status_category == "in_progress":
                out[(org.person(item.assignee).name, sc.project)] += 1
    return dict(out)


def expected_contention(org: Organisation) -> set[tuple[str, str]]:
    """(program, person) over their WIP limit (the configured one of a shared person, else
    3) in two or more projects, from the ground truth (every simulated project has an
    active sprint)."""
    limits = {org.person(s.person_id).name: s.wip_limit or 3 for s in org.shared_people}
    load = expected_load(org)
    per: dict[tuple[str, str], list[int]] = defaultdict(list)
    for (person, project), n in load.items():
        per[(org.project(project).program, person)].append(n)
    return {
        (program, person)
        for (program, person), counts in per.items()
        if len(counts) >= 2 and sum(counts) > limits.get(person, 3)
    }


@pytest.mark.slow
def test_load_contention_and_benefits_equal_the_ground_truth(
    sim: Simulator, warehouse_url: str, tmp_path: Path
) -> None:
    org = sim.org
    config, engine = sync_all(sim, warehouse_url, tmp_path)
    try:
        load = rows(engine, "SELECT * FROM v_resource_load")
        got = {(r["person"], r["project_key"]): r["in_progress_items"] for r in load}
        assert {k: v for k, v in got.items() if v} == expected_load(org)
        # the generated shared people are matched by their configured name (an alias)
        shared = {org.person(s.person_id).name for s in org.shared_people}
        assert {r["matched_by"] for r in load if r["person"] in shared} == {"alias"}

        alerts = rows(
            engine,
            "SELECT program_key, person, message FROM v_dependency_alerts "
            "WHERE rule = 'shared_resource_contention' AND status = 'open'",
        )
        assert {(a["program_key"], a["person"]) for a in alerts} == expected_contention(org)
        assert alerts, "the generated organisation has someone stretched over the limit"

        by_key = {r["benefit_key"]: r for r in rows(engine, "SELECT * FROM v_benefits")}
        today = org.now.date()
        assert set(by_key) == {b.key for b in org.benefits}
        for b in org.benefits:
            day, value = max((d, v) for k, d, v in org.measurements() if k == b.key and d <= today)
            row = by_key[b.key]
            realised = 100 * (value - b.baseline) / (b.target - b.baseline)
            start = org.program(b.program).start
            planned = 100 * min(1, max(0, (day - start).days / (b.target_date - start).days))
            assert row["value"] == pytest.approx(value)
            assert row["realisation_pct"] == pytest.approx(realised)
            assert row["expected_pct"] == pytest.approx(planned)
            assert bool(row["on_track"]) == (realised >= planned)
            if b.value_per_unit is None:
                assert row["realised_value"] is None
            else:
                sign = 1 if b.target > b.baseline else -1
                money = (value - b.baseline) * sign * b.value_per_unit
                assert row["realised_value"] == pytest.approx(money)

        health = {r["program_key"]: r for r in rows(engine, "SELECT * FROM v_program_health")}
        for p in rows(engine, "SELECT * FROM v_program_benefits"):
            assert p["actual_cost"] == pytest.approx(health[p["program_key"]]["actual_cost"])
            money = [
                by_key[b.key]["realised_value"]
                for b in org.benefits
                if b.program == p["program_key"] and by_key[b.key]["realised_value"] is not None
            ]
            assert p["realised_value"] == pytest.approx(sum(money))
            assert p["roi"] == pytest.approx((sum(money) - p["actual_cost"]) / p["actual_cost"])
    finally:
        engine.dispose()


@pytest.mark.slow
def test_the_report_shows_the_most_stretched_people_and_the_benefits(
    sim: Simulator, sqlite_url: str, tmp_path: Path
) -> None:
    _config, engine = sync_all(sim, sqlite_url, tmp_path)
    try:
        report = build_report(engine)
        load = rows(
            engine,
            "SELECT * FROM v_resource_load WHERE week = (SELECT MAX(week) FROM v_resource_load)",
        )
        alerts = rows(
            engine,
            "SELECT program_key, person FROM v_dependency_alerts "
            "WHERE rule = 'shared_resource_contention' AND status = 'open'",
        )
        programs = rows(engine, "SELECT * FROM v_program_benefits")
    finally:
        engine.dispose()
    # JSON: the people entries carry the view's rows, most stretched first
    for entry in report["people"]:
        people = entry["people"]
        keys = [
            (-p["program_projects_in_progress"], -p["program_in_progress_items"]) for p in people
        ]
        assert keys == sorted(keys)
        for p in people:
            mine = [r for r in load if r["person_id"] == p["person_id"]]
            mine = [r for r in mine if r["program_key"] == entry["program_key"]]
            assert p["program_in_progress_items"] == sum(r["in_progress_items"] for r in mine)
            assert p["program_active_sprint_points"] == pytest.approx(
                sum(r["active_sprint_points"] for r in mine)
            )
            assert sorted(r["project_key"] for r in p["projects"]) == sorted(
                r["project_key"] for r in mine
            )
            assert p["contention_alert"] == (
                (entry["program_key"], p["person"])
                in {(a["program_key"], a["person"]) for a in alerts}
            )
    stretched = [p for e in report["people"] for p in e["people"] if p["contention_alert"]]
    assert stretched
    assert {b["program_key"]: b["roi"] for b in report["benefits"]} == {
        p["program_key"]: p["roi"] for p in programs
    }
    json.dumps(report)  # JSON-able
    text = render_text(report, width=100)
    assert "PEOPLE MOST STRETCHED ACROSS PROJECTS" in text
    # a stretched person's line says the alert is open and where their work in progress is
    for p in stretched:
        line = next(x for x in text.splitlines() if x.startswith(f"  {p['person']} "))
        assert "  open  " in line
        for r in p["projects"]:
            if r["in_progress_items"]:
                assert f"{r['project_key']} {r['in_progress_items']}" in line
    assert "BENEFITS" in text
    for b in report["benefits"]:
        roi = "-" if b["roi"] is None else f"{b['roi']:.0%}"
        assert f"ROI {roi}" in text
    page = render_html(report)
    assert "<h2>People most stretched across projects</h2>" in page
    assert "<h2>Benefits</h2>" in page and "(over WIP limit)" in page


@pytest.mark.slow
def test_the_demo_shows_benefits_people_and_the_sprint_check(tmp_path: Path) -> None:
    from programview.demo import closing_notes, run_demo

    lines: list[str] = []
    result = run_demo(tmp_path / "demo", size="small", seed=2, weeks=1, echo=lines.append)
    assert result.verify_text is not None
    assert "0 unexplained" in result.verify_text.splitlines()[0]
    assert "differ for documented reasons" in result.verify_text
    notes = closing_notes(result)
    assert "programview verify sprints" in notes
    assert (tmp_path / "demo" / "verify-sprints.txt").read_text() == result.verify_text
    assert "PEOPLE MOST STRETCHED" in result.report_text and "BENEFITS" in result.report_text
    engine = db.create_engine(f"sqlite:///{result.database}")
    try:
        assert rows(engine, "SELECT count(*) AS n FROM v_benefits")[0]["n"] > 0
        weeks = rows(engine, "SELECT DISTINCT week FROM v_resource_load")
        assert len(weeks) == 2  # one row set per simulated week
    finally:
        engine.dispose()
