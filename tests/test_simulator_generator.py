"""The generated organisation: deterministic, the right size, and believable to a PM."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from programview.simulator.generator import (
    DEFAULT_NOW,
    DONE,
    FIBONACCI,
    JIRA_STATUSES,
    STATUS_CATEGORY,
    Organisation,
    generate,
)


@pytest.fixture(scope="module")
def org() -> Organisation:
    return generate(seed=1, size="small")


def _fingerprint(org: Organisation) -> list[object]:
    items = [
        (
            i.id,
            i.key,
            i.type,
            i.status_history,
            i.points_history,
            i.sprints,
            i.release_id,
            i.assignee,
            i.labels,
            i.parent_id,
            i.worklogs,
            i.updated,
        )
        for i in org.items.values()
    ]
    sprints = [(s.id, s.name, s.start, s.end, s.completed, s.state) for s in org.sprints.values()]
    releases = [(r.id, r.name, r.due, r.original_due, r.released_at) for r in org.releases.values()]
    links = [(lk.kind, lk.from_id, lk.to_id, lk.created, lk.via) for lk in org.links]
    return [items, sprints, releases, links, [p.key for p in org.projects]]


def test_same_seed_same_data_and_different_seed_different_data(org: Organisation) -> None:
    assert _fingerprint(generate(seed=1, size="small")) == _fingerprint(org)
    assert _fingerprint(generate(seed=2, size="small")) != _fingerprint(org)
    assert org.now == DEFAULT_NOW


@pytest.mark.parametrize(("size", "expected"), [("small", 2_000), ("medium", 20_000)])
def test_sizes_are_roughly_right(size: str, expected: int) -> None:
    org = generate(seed=5, size=size)
    assert 0.9 * expected <= len(org.items) <= 1.1 * expected
    assert 2 <= len(org.programs) <= 3
    assert 6 <= len(org.projects) <= 10
    assert {s.system for s in org.scopes} == {"jira", "github", "gitlab"}
    assert any(len(p.scope_paths) == 2 for p in org.projects)  # Jira project + its repo


def test_unknown_size_is_refused() -> None:
    with pytest.raises(ValueError, match="size must be one of"):
        generate(size="huge")


def test_status_history_is_consistent(org: Organisation) -> None:
    for item in org.items.values():
        history = item.status_history
        assert history[0].at == item.created
        assert all(a.at <= b.at for a, b in zip(history, history[1:], strict=False))
        assert history[-1].at <= org.now
        assert item.status_category == STATUS_CATEGORY[history[-1].status]
        assert item.jira_status_category == JIRA_STATUSES[history[-1].status][2]
        assert {"new": "todo", "indeterminate": "in_progress", "done": "done"}[
            item.jira_status_category
        ] == item.status_category
        if item.status == DONE:
            assert item.resolved is not None and item.resolved > item.created
            assert item.resolution is not None
        else:
            assert item.resolved is None
        assert item.created <= item.updated <= org.now


def test_estimates_are_fibonacci_or_unset(org: Organisation) -> None:
    values = [p.points for i in org.items.values() for p in i.points_history]
    assert set(values) <= {*FIBONACCI, None}
    assert None in values
    assert any(len(i.points_history) > 1 for i in org.items.values())  # re-estimates
    gh = [i for i in org.items.values() if i.system == "github" and i.points is not None]
    assert all(f"points:{int(i.points)}" in i.source_labels for i in gh)  # type: ignore[arg-type]


def test_sprints_do_not_overlap_and_have_the_expected_states(org: Organisation) -> None:
    for cad in org.cadences:
        sprints = org.sprints_of(cad)
        for a, b in zip(sprints, sprints[1:], strict=False):
            assert a.end < b.start
        states = [s.state for s in sprints]
        assert states.count("active") == 1
        assert 1 <= states.count("future") <= 2
        assert states == sorted(states, key=["closed", "active", "future"].index)
        assert all(s.completed is not None for s in sprints if s.state == "closed")


def test_sprint_membership_history(org: Organisation) -> None:
    carried = added_late = removed = 0
    for item in org.items.values():
        cad = item.scope.cadence_id
        for m in item.sprints:
            sprint = org.sprints[m.sprint_id]
            assert sprint.cadence_id == cad
            assert m.added >= item.created
            added_late += m.added > sprint.start
            if m.removed is not None:
                removed += 1
                assert m.added <= m.removed
                # only taken out before the sprint closed: a closed sprint's issues are frozen
                assert sprint.completed is None or m.removed < sprint.completed, item.key
        carried += len(item.sprints) > 1
    assert carried and added_late and removed


def test_releases_some_late_some_open_some_moved(org: Organisation) -> None:
    releases = list(org.releases.values())
    assert any(r.on_time is False for r in releases)
    assert any(r.on_time is True for r in releases)
    assert any(r.state == "open" for r in releases)
    moved = [r for r in releases if r.due_changes]
    assert 1 <= len(moved) <= 2 and all(r.due != r.original_due for r in moved)


def test_links_cross_projects_and_tools_with_a_cycle(org: Organisation) -> None:
    blocks = [lk for lk in org.links if lk.kind == "blocks"]
    cross = [lk for lk in blocks if org.items[lk.from_id].project != org.items[lk.to_id].project]
    assert cross
    body = [lk for lk in cross if lk.via == "body"]
    assert body and all(org.items[lk.from_id].system != org.items[lk.to_id].system for lk in body)
    blocked = org.items[body[0].to_id]
    assert f"Blocked by {org.items[body[0].from_id].key}" in org.description(blocked)
    assert {lk.kind for lk in org.links} >= {"blocks", "relates", "duplicates"}

    graph: dict[int, list[int]] = defaultdict(list)
    for lk in blocks:
        graph[lk.from_id].append(lk.to_id)

    def cycle_from(start: int) -> list[int] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return path
                if nxt not in path and len(path) < 6:
                    stack.append((nxt, [*path, nxt]))
        return None

    cycles = [c for lk in cross if (c := cycle_from(lk.from_id))]
    assert any(len({org.items[i].project for i in c}) >= 2 for c in cycles)


def test_ground_truth_accessors(org: Organisation) -> None:
    project = org.projects[0]
    items = org.items_for(project)
    assert items and all(i.project == project.key for i in items)
    first = items[0]
    assert org.item_by_key(first.key) is first
    assert org.item_by_number(first.scope, first.number) is first
    assert org.find_scope(first.system, first.scope.path) is first.scope
    assert org.find_scope(first.system, first.scope.native_id) is first.scope
    jira = [i for i in org.items.values() if i.system == "jira"]
    assert any(i.worklogs for i in jira) and any(i.original_estimate_s for i in jira)
    assert not any(i.worklogs for i in org.items.values() if i.system != "jira")
    gl_open = [i for i in org.items.values() if i.system == "gitlab" and i.status != DONE]
    assert all(any(lb.startswith("workflow::") for lb in i.source_labels) for i in gl_open)
    assert {i.github_state_reason for i in org.items.values() if i.system == "github"} >= {
        "completed",
        None,
    }
    pages = list(org.iter_pages(first.scope, 100))
    assert sum(len(p) for p in pages) == len(org.scope_items(first.scope))
    keys = [(i.updated, i.number) for p in pages for i in p]
    assert keys == sorted(keys)


def test_advance_touches_exactly_the_changed_items() -> None:
    org = generate(seed=3, size="small")
    before = {i.id: i.updated for i in org.items.values()}
    sprint_states = {s.id: s.state for s in org.sprints.values()}
    start = org.now
    cs = org.advance(20)  # crosses at least one sprint boundary
    assert org.now == start + timedelta(days=20) == cs.end
    changed = {iid for iid, item in org.items.items() if before.get(iid) != item.updated}
    assert changed == cs.changed
    assert cs.created and cs.deleted and cs.sprints and cs.releases
    for iid in cs.changed:
        assert start < org.items[iid].updated <= org.now
    assert {i.id for i in org.changed_since(start + timedelta(seconds=1))} == (
        cs.changed - set(cs.deleted)
    )
    assert any(sprint_states[s] != org.sprints[s].state for s in cs.sprints if s in sprint_states)
    for cad in org.cadences:
        assert [s.state for s in org.sprints_of(cad)].count("active") <= 1
    deleted = org.items[cs.deleted[0]]
    assert deleted not in org.items_for(deleted.project)
    assert org.item_by_key(deleted.key) is None
    # deterministic too
    again = generate(seed=3, size="small")
    again.advance(20)
    assert _fingerprint(again) == _fingerprint(org)


def test_advance_keeps_sprint_membership_possible() -> None:
    """Items created while a sprint closes never join it, nor are carried over from it,
    "before" they existed: every membership starts at or after the item's creation and while
    its sprint was still open."""
    org = generate(seed=7, size="small")
    for _ in range(5):  # seed 7 creates items between a sprint's end and its close
        org.advance(9)
    created_in_sprint = 0
    for item in org.items.values():
        for m in item.sprints:
            sprint = org.sprints[m.sprint_id]
            assert m.added >= item.created, (item.key, sprint.name)
            assert sprint.completed is None or m.added <= sprint.completed, (item.key, sprint.name)
            created_in_sprint += m.added == item.created
    assert created_in_sprint


def test_advance_refuses_going_back() -> None:
    with pytest.raises(ValueError):
        generate(seed=3, size="small").advance(0)


def test_now_can_be_given() -> None:
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    org = generate(seed=1, size="small", now=now)
    assert all(i.updated <= now for i in org.items.values())


def test_config_toml_is_a_valid_programview_config(org: Organisation) -> None:
    from programview.config import parse_config
    from programview.errors import ConfigError

    for deployment in ("cloud", "datacenter"):
        text = org.config_toml("http://127.0.0.1:8321", "sqlite:///pv.db", deployment)
        try:
            config = parse_config(text, environ=org.tokens.env())
        except ConfigError as exc:  # only tolerate connectors not installed yet
            assert exc.problems and all(".kind" in p for p in exc.problems), str(exc)
            continue
        assert {p.key for p in config.projects} == {p.key for p in org.projects}
