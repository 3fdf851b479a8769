"""The GitLab connector end to end: real HTTP on 127.0.0.1 against the API simulator, the sync
engine, a warehouse on SQLite and PostgreSQL, compared with the generator's ground truth as
GitLab shows it (tests/gitlab_truth.py).

* full sync = ground truth (items, weights, statuses and their history from label and state
  events, re-estimates from weight events, iterations per project with exact membership from
  iteration events, milestones with their releases' dates, links once, text references);
* a poll with nothing changed makes only the minimum requests and writes nothing;
* after ``org.advance()`` an incremental sync lists and completes only the changed issues,
  marks deleted ones, and matches ground truth again;
* a group scope finds every project of the group and its subgroups but the archived one;
* a GitLab issue blocked by a Jira issue is a resolved cross-tool dependency;
* rate limits (JSON, plain text, no headers at all), server errors and broken pages lose
  nothing; a bad token and an unknown project are clear.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from gitlab_truth import (
    TYPE_CATEGORY,
    dependencies,
    duplicate_of,
    gitlab_items,
    iteration_dates,
    memberships,
    naive,
    raw_status,
    sprint_name,
)

from programview import http
from programview.config import Config, parse_config
from programview.simulator import gitlab_api as gl
from programview.simulator.generator import STATUS_CATEGORY, TOKENS, Organisation, generate
from programview.simulator.server import Simulator, serve
from programview.sync.engine import RunResult, sync
from programview.warehouse import db

pytestmark = pytest.mark.slow

SOURCE = "sim-gitlab"


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
    sim: Simulator, url: str, kinds: tuple[str, ...] = ("gitlab",), **sync_keys: Any
) -> Config:
    text = sim.org.config_toml(sim.base_url, url, kinds=list(kinds))
    extra = "".join(f"{k} = {v}\n" for k, v in sync_keys.items())
    text = text.replace("[sync]\n", "[sync]\n" + extra, 1)
    return parse_config(text, environ=TOKENS.env())


def rows(engine: sa.Engine, table: str) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(sa.select(db.table(table))).all()


def stream_records(engine: sa.Engine, run: RunResult, stream: str) -> int:
    return sum(
        r.records
        for r in rows(engine, "sync_run_streams")
        if r.run_id == run.run_id and r.stream == stream
    )


class Seen:
    """(sprint id, project path) pairs with an issue in them, over every sync so far (the
    connector remembers the iterations a project's issues were ever in)."""

    def __init__(self, org: Organisation) -> None:
        self.org = org
        self.pairs: set[tuple[int, str]] = set()

    def observe(self) -> None:
        for item in gitlab_items(self.org):
            for m in item.sprints:
                self.pairs.add((m.sprint_id, item.scope.path))


# --- the comparison with ground truth ---------------------------------------------------


def assert_matches_ground_truth(engine: sa.Engine, org: Organisation, seen: Seen) -> None:
    items = gitlab_items(org)
    by_id = {f"{SOURCE}:{i.id}": i for i in items}
    got = {r.id: r for r in rows(engine, "work_items") if not r.is_deleted}
    assert set(got) == set(by_id)
    for rid, item in by_id.items():
        row = got[rid]
        where = item.key
        assert row.item_key == item.key and row.scope == item.scope.path, where
        assert row.type_category == TYPE_CATEGORY.get(item.type, item.type), where
        assert row.status_category == item.status_category, where
        assert row.raw_status == raw_status(item), where
        assert row.story_points == item.points, where
        assert row.created_at == naive(item.created), where
        assert row.updated_at == naive(item.updated), where
        assert row.resolved_at == naive(item.resolved), where
        assert row.started_at == naive(item.started), where
        assert row.due_date == item.due, where
        assert row.parent_key is None, where
        assert (row.labels or "") == ",".join(item.source_labels), where
        assert row.priority == item.priority, where
        assignee = org.person(item.assignee).name if item.assignee is not None else None
        assert row.assignee == assignee, where
        dup = item.is_done and duplicate_of(org, item) is not None
        assert bool(row.not_delivered) == dup, where

    changes: dict[str, list[tuple[Any, str | None]]] = {}
    for r in rows(engine, "status_changes"):
        changes.setdefault(r.work_item_id, []).append((r.changed_at, r.to_category))
    for rid, item in by_id.items():
        expected = [(naive(ch.at), STATUS_CATEGORY[ch.status]) for ch in item.status_history[1:]]
        assert sorted(changes.get(rid, [])) == expected, item.key

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

    # Sprints: one per (iteration, project with an issue in it), whole days.
    sprints = {r.native_id: r for r in rows(engine, "sprints")}
    expected_s = {f"{org.sprints[s].native_id}@{path}": (s, path) for s, path in seen.pairs}
    assert set(sprints) == set(expected_s)
    for native, (sid, path) in expected_s.items():
        spr, row = org.sprints[sid], sprints[native]
        start, end = iteration_dates(spr)
        assert (row.name, row.state, row.scope) == (sprint_name(org, spr), spr.state, path)
        assert (row.start_at, row.end_at) == (start, end), native
        assert row.completed_at == (end if spr.state == "closed" else None), native
    members = {
        (r.sprint_id, r.work_item_id): (r.added_at, r.removed_at)
        for r in rows(engine, "sprint_items")
        if r.work_item_id in by_id
    }
    expected_m = {
        (f"{SOURCE}:{org.sprints[sid].native_id}@{item.scope.path}", rid): span
        for rid, item in by_id.items()
        for sid, span in memberships(org, item).items()
    }
    assert members == expected_m

    # Milestones (with their releases' dates), one row each; no separate release rows.
    releases = {r.id: r for r in rows(engine, "releases")}
    gitlab_releases = [r for sc in org.scopes_of("gitlab") for r in org.releases_of(sc)]
    assert set(releases) == {f"{SOURCE}:milestone/{r.native_id}" for r in gitlab_releases}
    for rel in gitlab_releases:
        row = releases[f"{SOURCE}:milestone/{rel.native_id}"]
        assert (row.name, row.scope, row.kind) == (rel.name, rel.scope_path, "milestone")
        assert (row.due_date, row.start_date) == (rel.due, rel.start)
        assert bool(row.released) == (rel.released_at is not None)
        assert row.released_at == naive(rel.released_at)
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

    # Links once (both issues list each), duplicates, text references.
    deleted_keys = {r.item_key for r in rows(engine, "work_items") if r.is_deleted}
    found = [
        r
        for r in rows(engine, "dependencies")
        if not ({r.blocked_key, r.blocking_key} & deleted_keys)
    ]
    triples = [(r.blocked_key, r.blocking_key, r.link_kind) for r in found]
    assert len(triples) == len(set(triples))  # stored once
    assert set(triples) == dependencies(org, items)


def no_change_minimum(org: Organisation) -> int:
    """A poll with nothing new: ``/user``, then per project its lookup, one issues page, its
    releases and its milestones, and the iterations once per group."""
    scopes = org.scopes_of("gitlab")
    return 1 + 4 * len(scopes) + len({s.owner for s in scopes})


# --- the tests --------------------------------------------------------------------------------


def test_full_then_incremental_sync_match_ground_truth(sim: Simulator, warehouse_url: str) -> None:
    org = sim.org
    seen = Seen(org)
    config = make_config(sim, warehouse_url)
    first = sync(config)
    assert first.status == "ok", first.errors
    assert first.quarantined == 0 and first.requests == len(sim.requests)
    seen.observe()
    engine = db.create_engine(warehouse_url)
    try:
        assert_matches_ground_truth(engine, org, seen)
        issues = len(gitlab_items(org))
        assert sim.requests.count(path="*/resource_iteration_events") == issues
        # the full read's ids are the deletion check: no listing by id of its own
        by_id = [r for r in sim.requests.records if "order_by=id" in r.query]
        assert by_id == []

        sim.requests.clear()
        again = sync(config)
        assert again.status == "ok" and again.records == 0, again.errors
        assert again.requests == len(sim.requests) == no_change_minimum(org)

        changes = org.advance(7)
        live = {i.id for i in gitlab_items(org)}
        changed = live & changes.changed
        deleted = {i for i in changes.deleted if org.items[i].scope.system == "gitlab"}
        assert changed and deleted, "the simulated week changed or deleted no GitLab issue"
        sim.requests.clear()
        third = sync(make_config(sim, warehouse_url, reconcile_hours=0))
        assert third.status == "ok", third.errors
        seen.observe()
        # only the changed issues were listed and completed with their history
        assert stream_records(engine, third, "issues") == len(changed)
        for kind in ("resource_state_events", "resource_label_events", "links"):
            assert sim.requests.count(path=f"*/issues/*/{kind}") == len(changed), kind
        lists = [r for r in sim.requests.records if r.path.endswith("/issues")]
        incremental = [r for r in lists if "updated_after=" in r.query]
        assert len(incremental) >= len(org.scopes_of("gitlab"))
        assert all("pagination=keyset" in r.query for r in lists)
        assert_matches_ground_truth(engine, org, seen)
        gone = {r.native_id for r in rows(engine, "work_items") if r.is_deleted}
        assert gone == {str(i) for i in deleted}
    finally:
        engine.dispose()


def test_a_group_scope_finds_every_project_but_the_archived(
    sim: Simulator, sqlite_url: str
) -> None:
    org = sim.org
    db.upgrade(sqlite_url)
    text = org.config_toml(sim.base_url, sqlite_url, kinds=["gitlab"])
    projects = [s.path for s in org.scopes_of("gitlab")]
    listed = "[" + ", ".join(f'"{p}"' for p in projects) + "]"
    assert listed in text
    text = text.replace(f"scopes = {listed}", f'scopes = ["{org.gitlab_group}"]', 1)
    result = sync(parse_config(text, environ=TOKENS.env()))
    assert result.status == "ok", result.errors
    engine = db.create_engine(sqlite_url)
    try:
        synced = {r.scope for r in rows(engine, "sync_run_streams") if r.run_id == result.run_id}
        assert synced == set(projects)
        assert gl.archived_project_path(org) not in synced
        assert {r.scope for r in rows(engine, "work_items")} == set(projects)
        # the project that names the group owns what the group expanded into
        owners = {(r.scope, r.project_key) for r in rows(engine, "project_scopes")}
        for sc in org.scopes_of("gitlab"):
            assert (sc.path, sc.project) in owners
        assert not [r for r in sim.requests.records if "legacy-portal" in r.path]
    finally:
        engine.dispose()


def test_a_gitlab_issue_blocked_by_a_jira_issue_is_a_cross_tool_dependency(
    sim: Simulator, sqlite_url: str
) -> None:
    org = sim.org
    db.upgrade(sqlite_url)
    cross = {
        (org.items[lk.to_id].key, org.items[lk.from_id].key)
        for lk in org.links
        if lk.kind == "blocks"
        and lk.via == "body"
        and org.items[lk.to_id].scope.system == "gitlab"
        and org.items[lk.from_id].scope.system == "jira"
        and org.items[lk.to_id].deleted is None
        and org.items[lk.from_id].deleted is None
    }
    assert cross, "the generated organisation has no GitLab issue blocked by a Jira issue"
    result = sync(make_config(sim, sqlite_url, kinds=("jira", "gitlab")))
    assert result.status == "ok", result.errors
    engine = db.create_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                sa.text(
                    "SELECT blocked_item_key, blocking_item_key, blocked_project_key, "
                    "blocking_project_key, cross_project, source, resolved FROM v_dependencies "
                    "WHERE link_kind = 'blocks'"
                )
            ).all()
        seen = {(r.blocked_item_key, r.blocking_item_key): r for r in found}
        for blocked, blocking in cross:
            row = seen[(blocked, blocking)]
            assert row.source == "text" and bool(row.cross_project) and bool(row.resolved)
            assert row.blocked_project_key == org.item_by_key(blocked).project
            assert row.blocking_project_key == org.item_by_key(blocking).project
    finally:
        engine.dispose()


def test_rate_limits_server_errors_and_broken_pages_lose_nothing(
    sim: Simulator, sqlite_url: str, instant_waits: list[float]
) -> None:
    clean_url = sqlite_url.replace("warehouse.db", "clean.db")
    for url in (sqlite_url, clean_url):
        db.upgrade(url)
    assert sync(make_config(sim, clean_url)).status == "ok"
    for rule in (
        "gitlab:ratelimit:at=3,count=2,retry_after=2",
        "gitlab:ratelimit:at=9,variant=text",
        "gitlab:ratelimit:at=14,count=2,variant=bare,path=*/links",
        "gitlab:5xx:at=5,count=3",
        "gitlab:5xx:at=30,status=500,path=*/resource_label_events",
        "gitlab:drop:at=12",
        "gitlab:malformed:at=2,path=*/issues",
        "gitlab:malformed:at=40,path=*/resource_iteration_events",
    ):
        sim.faults.add(rule)
    faulty = sync(make_config(sim, sqlite_url))
    fired = [r.fired for r in sim.faults.rules]
    sim.faults.clear()
    assert faulty.status == "ok", faulty.errors
    assert all(fired), fired  # every fault happened
    assert 2.0 in instant_waits  # Retry-After was honoured
    assert len(instant_waits) >= sum(fired)  # each was waited out, none was fatal
    tables = (
        "work_items",
        "status_changes",
        "estimate_changes",
        "sprint_items",
        "sprints",
        "releases",
        "work_item_releases",
        "dependencies",
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


def test_wrong_token_and_missing_project_are_clear(sim: Simulator, sqlite_url: str) -> None:
    db.upgrade(sqlite_url)
    text = sim.org.config_toml(sim.base_url, sqlite_url, kinds=["gitlab"])
    env = dict(TOKENS.env(), PROGRAMVIEW_SIM_GITLAB_TOKEN="glpat-notthetoken0000")
    bad = sync(parse_config(text, environ=env))
    assert bad.status == "failed"
    assert any("sim-gitlab" in e and "401" in e and "read_api" in e for e in bad.errors)
    assert not any("glpat-notthetoken" in e for e in bad.errors)
    queries = [r.query.lower() for r in sim.requests.records]
    assert queries and not any("token" in q for q in queries)  # a header, never a parameter

    first = sim.org.scopes_of("gitlab")[0].path
    text = text.replace(f'"{first}"', f'"{first}", "acme/nope"', 1)
    partial = sync(parse_config(text, environ=TOKENS.env()))
    assert partial.status == "partial"
    assert any("'acme/nope'" in e and "not found or no access" in e for e in partial.errors)
    engine = db.create_engine(sqlite_url)
    try:
        assert {r.scope for r in rows(engine, "work_items")} == {
            s.path for s in sim.org.scopes_of("gitlab")
        }
    finally:
        engine.dispose()
