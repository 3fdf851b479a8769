"""The GitHub connector end to end: real HTTP on 127.0.0.1 against the API simulator (REST and
GraphQL executed against GitHub's schema), the sync engine, a warehouse on SQLite and
PostgreSQL, compared with the generator's ground truth as observed by the syncs
(``github_truth``: GitHub keeps no iteration history, so membership is what each sync saw).

* full sync = ground truth (items, points, statuses, history, iterations as sprints with
  membership, milestones, dependencies: sub-issues, native blocked-by, cross-tool text);
* a second run with nothing changed: one free 304 per repository and stream;
* after ``org.advance()`` an incremental sync reads only the changed issues and matches again;
* an organisation scope finds every repository but the archived one;
* a GitHub issue blocked by a Jira issue shows in ``v_dependencies``;
* rate limits, 5xx, dropped connections and truncated pages: nothing lost, nothing doubled.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import programview_connectors.github as github_connector
import pytest
import sqlalchemy as sa
from github_truth import Observer

from programview import http
from programview.config import Config, parse_config
from programview.simulator import github_api as gh
from programview.simulator.generator import (
    DONE,
    GITHUB_PROJECT_STATUS,
    TOKENS,
    Item,
    Organisation,
    generate,
)
from programview.simulator.server import Simulator, serve
from programview.sync.engine import RunResult, sync
from programview.warehouse import db

pytestmark = pytest.mark.slow

SOURCE = "sim-github"
TYPES = {"story": "story", "bug": "bug", "task": "task", "epic": "epic", "incident": "incident"}


@pytest.fixture(autouse=True)
def instant_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(http, "_sleep", fake_sleep)
    return slept


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with serve(generate(seed=7, size="small")) as running:
        yield running


def make_config(
    sim: Simulator, url: str, kinds: tuple[str, ...] = ("github",), **sync_keys: Any
) -> Config:
    text = sim.org.config_toml(sim.base_url, url, kinds=list(kinds))
    extra = "".join(f"{k} = {v}\n" for k, v in sync_keys.items())
    text = text.replace("[sync]\n", "[sync]\n" + extra, 1)
    return parse_config(text, environ=TOKENS.env())


def at_clock(monkeypatch: pytest.MonkeyPatch, org: Organisation) -> None:
    """The connector observes at the simulated clock (its "now")."""
    monkeypatch.setattr(github_connector, "utc_now", lambda: org.now.replace(tzinfo=None))


def naive(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=None)


def github_items(org: Organisation) -> list[Item]:
    return [i for sc in org.scopes_of("github") for i in org.scope_items(sc)]


def rows(engine: sa.Engine, table: str) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(sa.select(db.table(table))).all()


def stream_records(engine: sa.Engine, run: RunResult, stream: str) -> int:
    return sum(
        r.records
        for r in rows(engine, "sync_run_streams")
        if r.run_id == run.run_id and r.stream == stream
    )


# --- the comparison with ground truth ---------------------------------------------------------


def assert_matches_ground_truth(engine: sa.Engine, obs: Observer) -> None:
    org = obs.org
    items = github_items(org)
    by_id = {f"{SOURCE}:{i.id}": i for i in items}
    got = {r.id: r for r in rows(engine, "work_items") if not r.is_deleted}
    assert set(got) == set(by_id)
    for rid, item in by_id.items():
        row, where = got[rid], item.key
        parent = org.items.get(item.parent_id) if item.parent_id is not None else None
        assert row.item_key == item.key, where
        assert row.scope == item.scope.path, where
        assert row.type_category == TYPES[item.type], where
        assert row.status_category == item.status_category, where
        assert row.raw_status == GITHUB_PROJECT_STATUS[item.status], where
        assert row.story_points == item.points, where
        assert row.created_at == naive(item.created), where
        assert row.updated_at == naive(item.updated), where
        assert row.resolved_at == naive(item.resolved), where
        assert row.started_at == obs.started(item), where
        assert row.due_date == item.due, where
        assert row.priority == item.priority, where
        github_parent = parent is not None and parent.scope.system == "github"
        assert row.parent_key == (parent.key if github_parent else None), where
        assert (row.labels or "") == ",".join(item.source_labels), where
        login = org.person(item.assignee).login if item.assignee is not None else None
        assert row.assignee == login, where
        assert bool(row.not_delivered) == (item.github_state_reason in ("not_planned", "duplicate"))

    # Status history: closes, reopens and the first time a sync saw it in progress.
    changes: dict[str, set[tuple[Any, str | None]]] = {}
    for r in rows(engine, "status_changes"):
        changes.setdefault(r.work_item_id, set()).add((r.changed_at, r.to_category))
    for rid, item in by_id.items():
        expected: set[tuple[Any, str | None]] = set()
        hist = item.status_history
        for a, b in zip(hist, hist[1:], strict=False):
            if b.status == DONE and a.status != DONE:
                expected.add((naive(b.at), "done"))
            elif a.status == DONE and b.status != DONE:
                expected.add((naive(b.at), "todo"))
        if obs.started(item) is not None:
            expected.add((obs.started(item), "in_progress"))
        assert changes.get(rid, set()) == expected, item.key

    # Re-estimates: the points:N label history (exact), the value at creation not a change.
    estimates: dict[str, list[tuple[Any, ...]]] = {}
    for r in rows(engine, "estimate_changes"):
        estimates.setdefault(r.work_item_id, []).append((r.changed_at, r.from_points, r.to_points))
    for rid, item in by_id.items():
        hist = item.points_history
        expected_e = [
            (naive(b.at), a.points, b.points)
            for a, b in zip(hist, hist[1:], strict=False)
            if a.points != b.points
        ]
        assert sorted(estimates.get(rid, [])) == expected_e, item.key

    # Sprints: one per (iteration, repository with items in it), dates from the field.
    sprints = {r.native_id: r for r in rows(engine, "sprints") if r.source_name == SOURCE}
    expected_s = obs.sprint_rows()
    assert set(sprints) == set(expected_s)
    for native, (name, start, end, state) in expected_s.items():
        row = sprints[native]
        assert (row.name, row.start_at, row.end_at, row.state) == (name, start, end, state)
        assert row.completed_at == (end if state == "closed" else None)
        assert row.scope == native.split("@", 1)[1]
    members = {
        (r.sprint_id, r.work_item_id): (r.added_at, r.removed_at)
        for r in rows(engine, "sprint_items")
        if r.work_item_id in by_id
    }
    expected_m = {
        (f"{SOURCE}:{iteration}@{item.scope.path}", rid): span
        for rid, item in by_id.items()
        for iteration, span in obs.memberships(item).items()
    }
    assert members == expected_m

    # Milestones (the releases of the simulated repositories carry their names: one row each).
    releases = {r.id: r for r in rows(engine, "releases") if r.source_name == SOURCE}
    github_releases = [r for sc in org.scopes_of("github") for r in org.releases_of(sc)]
    assert set(releases) == {f"{SOURCE}:milestone/{r.native_id}" for r in github_releases}
    for rel in github_releases:
        row = releases[f"{SOURCE}:milestone/{rel.native_id}"]
        assert (row.name, row.scope, row.kind, row.due_date) == (
            rel.name,
            rel.scope_path,
            "milestone",
            rel.due,
        )
        assert row.planned_date == obs.first_due[rel.id]
        assert row.released_at == naive(rel.released_at)
        assert bool(row.released) == (rel.released_at is not None)
    fix = {
        (r.work_item_id, r.release_id)
        for r in rows(engine, "work_item_releases")
        if r.work_item_id in by_id
    }
    assert fix == {
        (rid, f"{SOURCE}:milestone/{org.releases[i.release_id].native_id}")
        for rid, i in by_id.items()
        if i.release_id is not None
    }

    # Dependencies: native blocked-by between GitHub issues, cross-tool "Blocked by X" in the
    # blocked issue's body, and sub-issues (GitHub has no "relates" links: none expected).
    deps = {
        (r.blocked_key, r.blocking_key, r.link_kind)
        for r in rows(engine, "dependencies")
        if r.found_in in by_id
    }
    expected_d: set[tuple[str, str, str]] = set()
    for item in items:
        for link in org.links_of(item):
            if link.kind != "blocks" or link.to_id != item.id:
                continue
            blocker = org.items[link.from_id]
            if blocker.deleted is None and (link.via == "body" or blocker.scope.system == "github"):
                expected_d.add((item.key, blocker.key, "blocks"))
        parent = org.items.get(item.parent_id) if item.parent_id is not None else None
        if parent is not None and parent.scope.system == "github" and parent.deleted is None:
            expected_d.add((parent.key, item.key, "parent"))
    assert deps == expected_d


def no_change_minimum(org: Organisation) -> int:
    """A poll with nothing new: /rate_limit (free) and the project probe, then per repository
    one conditional request for the repository, its milestones, releases and issues (all 304)."""
    return 2 + 4 * len(org.scopes_of("github"))


# --- the tests --------------------------------------------------------------------------------


def test_full_then_incremental_sync_match_ground_truth(
    sim: Simulator, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = sim.org
    at_clock(monkeypatch, org)
    obs = Observer(org)
    config = make_config(sim, warehouse_url)
    first = sync(config)
    reconciling = make_config(sim, warehouse_url, reconcile_hours=0)
    assert first.status == "ok", first.errors
    assert first.quarantined == 0 and first.requests == len(sim.requests)
    obs.observe(org.now)
    engine = db.create_engine(warehouse_url)
    try:
        assert_matches_ground_truth(engine, obs)

        # nothing changed: one request per repository and stream (the first incremental
        # listing has a new URL, with ``since``), then the next poll is all free 304s
        for _ in range(2):
            sim.requests.clear()
            again = sync(config)
            assert again.status == "ok" and again.records == 0, again.errors
            assert again.requests == len(sim.requests) == no_change_minimum(org)
            graphql = [r for r in sim.requests.records if r.path == "/graphql"]
            assert len(graphql) == 1  # the project probe
        rest = [r for r in sim.requests.records if r.path.startswith("/repos/")]
        assert rest and all(r.status == 304 for r in rest)

        changes = org.advance(7)
        changed = {i.id for i in github_items(org)} & changes.changed
        assert changed, "the simulated week changed no GitHub issue"
        sim.requests.clear()
        third = sync(reconciling)
        assert third.status == "ok", third.errors
        obs.observe(org.now)
        # only changed issues came back from the issues listing (plus the board pass)
        lists = [
            r for r in sim.requests.records if r.path.endswith("/issues") and "since=" in r.query
        ]
        assert lists and all(r.status in (200, 304) for r in lists)
        assert stream_records(engine, third, "issues") >= len(changed)
        assert_matches_ground_truth(engine, obs)
        gone = {r.native_id for r in rows(engine, "work_items") if r.is_deleted}
        deleted = {str(i) for i in changes.deleted if org.items[i].scope.system == "github"}
        assert gone == deleted

        # the poll after one that saw changes asks the same URLs again: free 304s
        sim.requests.clear()
        quiet = sync(config)
        assert quiet.status == "ok" and quiet.records == 0, quiet.errors
        rest = [r for r in sim.requests.records if r.path.startswith("/repos/")]
        assert rest and all(r.status == 304 for r in rest), [
            (r.path, r.status) for r in rest if r.status != 304
        ]
    finally:
        engine.dispose()


def test_an_organisation_scope_finds_every_repository_but_the_archived(
    sim: Simulator, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = sim.org
    at_clock(monkeypatch, org)
    db.upgrade(sqlite_url)
    text = org.config_toml(sim.base_url, sqlite_url, kinds=["github"])
    repos = [s.path for s in org.scopes_of("github")]
    listed = "[" + ", ".join(f'"{r}"' for r in repos) + "]"
    assert listed in text
    text = text.replace(f"scopes = {listed}", 'scopes = ["acme"]', 1)
    result = sync(parse_config(text, environ=TOKENS.env()))
    assert result.status == "ok", result.errors
    engine = db.create_engine(sqlite_url)
    try:
        synced = {r.scope for r in rows(engine, "sync_run_streams") if r.run_id == result.run_id}
        assert synced == set(repos)  # acme/legacy-portal is archived
        assert gh.ARCHIVED_REPO not in str(synced)
        items = {r.scope for r in rows(engine, "work_items")}
        assert items == set(repos)
        # the next run lists the organisation again (a new repository would be picked up),
        # conditionally: free when nothing changed; listed repositories need no check
        sim.requests.clear()
        again = sync(parse_config(text, environ=TOKENS.env()))
        assert again.status == "ok", again.errors
        listing = [r for r in sim.requests.records if r.path == "/orgs/acme/repos"]
        assert [r.status for r in listing] == [304]
        assert not [
            r
            for r in sim.requests.records
            if r.path.count("/") == 3 and r.path.startswith("/repos/")
        ]
    finally:
        engine.dispose()


def test_a_github_issue_blocked_by_a_jira_issue_is_a_cross_tool_dependency(
    sim: Simulator, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = sim.org
    at_clock(monkeypatch, org)
    cross = {
        (lk_to.key, lk_from.key)
        for lk in org.links
        if lk.kind == "blocks" and lk.via == "body"
        for lk_to, lk_from in [(org.items[lk.to_id], org.items[lk.from_id])]
        if lk_to.scope.system == "github"
        and lk_from.scope.system == "jira"
        and lk_to.deleted is None
        and lk_from.deleted is None
    }
    assert cross, "the generated organisation has no GitHub issue blocked by a Jira issue"

    def dependencies(engine: sa.Engine) -> dict[tuple[str, str], Any]:
        with engine.connect() as conn:
            found = conn.execute(
                sa.text(
                    "SELECT blocked_item_key, blocking_item_key, blocked_project_key, "
                    "blocking_project_key, cross_project, source, resolved FROM v_dependencies "
                    "WHERE link_kind = 'blocks'"
                )
            ).all()
        return {(r.blocked_item_key, r.blocking_item_key): r for r in found}

    engine = db.create_engine(warehouse_url)
    try:
        # GitHub alone: the references to Jira issues are kept, visibly unresolved
        assert sync(make_config(sim, warehouse_url)).status == "ok"
        seen = dependencies(engine)
        for pair in cross:
            row = seen[pair]
            assert not row.resolved and row.blocking_project_key is None
        # with Jira synced too they resolve, across tools and projects
        result = sync(make_config(sim, warehouse_url, kinds=("jira", "github")))
        assert result.status == "ok", result.errors
        seen = dependencies(engine)
        for blocked, blocking in cross:
            row = seen[(blocked, blocking)]
            assert row.source == "text" and bool(row.cross_project) and bool(row.resolved)
            assert row.blocked_project_key == org.item_by_key(blocked).project
            assert row.blocking_project_key == org.item_by_key(blocking).project
    finally:
        engine.dispose()


def test_rate_limits_server_errors_and_broken_pages_lose_nothing(
    sim: Simulator, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, instant_waits: list[float]
) -> None:
    org = sim.org
    at_clock(monkeypatch, org)
    clean_url = sqlite_url.replace("warehouse.db", "clean.db")
    for url in (sqlite_url, clean_url):
        db.upgrade(url)
    assert sync(make_config(sim, clean_url)).status == "ok"
    for rule in (
        "github:ratelimit:at=3,count=2",
        "github:secondary:at=9",
        "github:ratelimit:path=/graphql,at=2",
        "github:5xx:at=5,count=3",
        "github:drop:at=12",
        "github:malformed:at=15,path=*/issues",
    ):
        sim.faults.add(rule)
    faulty = sync(make_config(sim, sqlite_url))
    sim.faults.clear()
    assert faulty.status == "ok", faulty.errors
    assert len(instant_waits) >= 6  # every limit and error was waited out, none was fatal
    tables = (
        "work_items",
        "sprint_items",
        "sprints",
        "releases",
        "dependencies",
        "estimate_changes",
    )
    clean, dirty = db.create_engine(clean_url), db.create_engine(sqlite_url)
    try:
        for name in tables:
            a = sorted(tuple(r) for r in rows(clean, name))
            b = sorted(tuple(r) for r in rows(dirty, name))
            assert a == b, name
    finally:
        clean.dispose()
        dirty.dispose()


def test_wrong_token_and_missing_repository_are_clear(
    sim: Simulator, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_clock(monkeypatch, sim.org)
    text = sim.org.config_toml(sim.base_url, warehouse_url, kinds=["github"])
    env = dict(TOKENS.env(), PROGRAMVIEW_SIM_GITHUB_TOKEN="ghp_notthetoken1234567")
    bad = sync(parse_config(text, environ=env))
    assert bad.status == "failed"
    assert any("sim-github" in e and "401" in e and "Bad credentials" in e for e in bad.errors)
    assert not any("ghp_notthetoken" in e for e in bad.errors)

    first = sim.org.scopes_of("github")[0].path
    text = text.replace(f'"{first}"', f'"{first}", "acme/nope"', 1)
    partial = sync(parse_config(text, environ=TOKENS.env()))
    assert partial.status == "partial"
    assert any("'acme/nope'" in e and "not found" in e for e in partial.errors)
    engine = db.create_engine(warehouse_url)
    try:
        assert {r.scope for r in rows(engine, "work_items")} == {
            s.path for s in sim.org.scopes_of("github")
        }
    finally:
        engine.dispose()
