"""Conformance: python-gitlab, the common GitLab client written by others, runs its ordinary
calls against the simulator over real HTTP and every one succeeds with what the generated
organisation holds. If the simulator answered in a shape real GitLab never sends, python-gitlab's
own parsing and paging (``Link`` next pages, keyset cursors) would trip here, not only our
connector."""

from __future__ import annotations

from collections.abc import Iterator

import gitlab
import pytest

from programview.simulator import TOKENS, generate, serve
from programview.simulator import gitlab_api as gl
from programview.simulator.generator import DONE
from programview.simulator.server import Simulator


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with serve(generate(seed=3, size="small"), port=0) as running:
        yield running


@pytest.fixture
def client(sim: Simulator) -> Iterator[gitlab.Gitlab]:
    with gitlab.Gitlab(sim.gitlab_url, private_token=TOKENS.gitlab_token, per_page=100) as g:
        g.auth()
        yield g


def test_group_and_its_projects_with_subgroups(sim: Simulator, client: gitlab.Gitlab) -> None:
    group = client.groups.get(sim.org.gitlab_group)
    assert group.full_path == sim.org.gitlab_group
    every = group.projects.list(include_subgroups=True, get_all=True)
    live = group.projects.list(include_subgroups=True, archived=False, get_all=True)
    expected = {s.path for s in sim.org.scopes_of("gitlab")}
    assert {p.path_with_namespace for p in live} == expected
    assert {p.path_with_namespace for p in every} == expected | {gl.archived_project_path(sim.org)}
    subgroups = group.descendant_groups.list(get_all=True)
    assert {g.full_path for g in subgroups} == {g.path for g in sim.org.gitlab_groups[1:]}


def test_issues_with_offset_and_keyset_paging(sim: Simulator, client: gitlab.Gitlab) -> None:
    scope = sim.org.scopes_of("gitlab")[0]
    project = client.projects.get(scope.path)
    truth = {i.id for i in sim.org.scope_items(scope)}
    offset = project.issues.list(per_page=40, iterator=True, order_by="updated_at", sort="asc")
    assert {i.id for i in offset} == truth
    keyset = list(
        project.issues.list(
            pagination="keyset", order_by="updated_at", sort="asc", per_page=40, iterator=True
        )
    )
    assert [i.id for i in keyset] == [
        i.id for i in sorted(sim.org.scope_items(scope), key=lambda i: (i.updated, i.id))
    ]
    assert len(keyset) > 40  # more than one page was followed


def test_milestones_releases_iterations(sim: Simulator, client: gitlab.Gitlab) -> None:
    org = sim.org
    scope = org.scopes_of("gitlab")[0]
    project = client.projects.get(scope.native_id)
    milestones = project.milestones.list(get_all=True)
    assert {m.iid for m in milestones} == {r.number for r in org.releases_of(scope)}
    releases = project.releases.list(get_all=True)
    shipped = {r.tag for r in org.releases_of(scope) if r.released_at}
    assert {r.tag_name for r in releases} == shipped
    iterations = client.groups.get(org.gitlab_group, lazy=True).iterations.list(get_all=True)
    cadence = next(c for c in org.cadences if c.system == "gitlab")
    assert [i.id for i in iterations] == [s.native_id for s in org.sprints_of(cadence)]
    assert {i.state for i in iterations} <= {1, 2, 3} and iterations[0].title is None


def test_links_and_resource_events(sim: Simulator, client: gitlab.Gitlab) -> None:
    org = sim.org
    link = next(
        lk
        for lk in org.links
        if lk.kind == "blocks" and lk.via == "native" and org.items[lk.from_id].system == "gitlab"
    )
    blocker, blocked = org.items[link.from_id], org.items[link.to_id]
    issue = client.projects.get(blocker.scope.native_id, lazy=True).issues.get(blocker.number)
    linked = {(i.id, i.link_type) for i in issue.links.list(get_all=True)}
    assert (blocked.id, "blocks") in linked
    items = [i for s in org.scopes_of("gitlab") for i in org.scope_items(s)]
    moved = next(i for i in items if len(i.sprints) > 1 and i.status == DONE)
    issue = client.projects.get(moved.scope.native_id, lazy=True).issues.get(moved.number)
    adds = [e.iteration["id"] for e in issue.resource_iteration_events.list(get_all=True)]
    assert adds[: len(moved.sprints)] == [org.sprints[m.sprint_id].native_id for m in moved.sprints]
    states = [e.state for e in issue.resourcestateevents.list(get_all=True)]
    assert states[-1] == "closed"
    assert issue.resourcelabelevents.list(get_all=True)
    weights = issue.resource_weight_events.list(get_all=True)
    assert [w.weight for w in weights][-1] == (int(moved.points) if moved.points else None)
