"""Conformance: PyGithub, a widely used GitHub client written by others, runs its ordinary
calls against the simulator over real HTTP and every one succeeds with what the generated
organisation holds. If the simulator answered in a shape real GitHub never sends, PyGithub's
own parsing and paging would trip here, not only our connector."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from github import Auth, Github, GithubException

from programview.simulator import TOKENS, generate, serve
from programview.simulator import github_api as gh
from programview.simulator.generator import DONE
from programview.simulator.server import Simulator


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with serve(generate(seed=3, size="small"), port=0) as running:
        yield running


@pytest.fixture
def g(sim: Simulator) -> Iterator[Github]:
    client = Github(base_url=sim.github_url, auth=Auth.Token(TOKENS.github_token), per_page=100)
    yield client
    client.close()


def test_organisation_and_its_repositories(sim: Simulator, g: Github) -> None:
    org = g.get_organization("acme")
    assert org.login == "acme"
    names = sorted(r.full_name for r in org.get_repos())
    expected = sorted([s.path for s in sim.org.scopes_of("github")] + [f"acme/{gh.ARCHIVED_REPO}"])
    assert names == expected
    archived = [r.full_name for r in org.get_repos() if r.archived]
    assert archived == [f"acme/{gh.ARCHIVED_REPO}"]
    assert sorted(r.full_name for r in g.get_user().get_repos()) == expected


def test_issues_page_to_the_end_with_pull_requests_mixed_in(sim: Simulator, g: Github) -> None:
    scope = sim.org.scopes_of("github")[0]
    repo = g.get_repo(scope.path)
    assert repo.full_name == scope.path and not repo.archived
    listed = list(repo.get_issues(state="all", sort="updated", direction="asc"))
    issues = [i for i in listed if "/pull/" not in i.html_url]
    pulls = [i for i in listed if "/pull/" in i.html_url]
    truth = sim.org.scope_items(scope)
    assert sorted(i.number for i in issues) == sorted(i.number for i in truth)
    assert len(pulls) == gh.PRS_PER_REPO
    assert [i.updated_at for i in listed] == sorted(i.updated_at for i in listed)
    by_number = {i.number: i for i in truth}
    for issue in issues[:50]:
        item = by_number[issue.number]
        assert issue.state == ("closed" if item.status == DONE else "open")
        assert issue.title == item.title
    # incremental: since= returns what changed at or after the moment
    moment = max(i.updated for i in truth) - timedelta(days=3)
    recent = {
        i.number for i in repo.get_issues(state="all", since=moment) if "/pull/" not in i.html_url
    }
    assert recent == {i.number for i in truth if i.updated >= moment}


def test_milestones_releases_labels_and_pulls(sim: Simulator, g: Github) -> None:
    scope = sim.org.scopes_of("github")[0]
    repo = g.get_repo(scope.path)
    milestones = list(repo.get_milestones(state="all"))
    releases = sim.org.releases_of(scope)
    assert sorted(m.number for m in milestones) == sorted(r.number for r in releases)
    shipped = [r for r in releases if r.released_at is not None]
    assert sorted(r.tag_name for r in repo.get_releases()) == sorted(r.tag for r in shipped)
    assert any(label.name.startswith("points:") for label in repo.get_labels())
    pulls = list(repo.get_pulls(state="all"))
    assert len(pulls) == gh.PRS_PER_REPO and all(p.number > gh.PR_NUMBER_BASE for p in pulls)
    assert {p.state for p in repo.get_pulls(state="open")} <= {"open"}


def test_events_sub_issues_and_one_issue(sim: Simulator, g: Github) -> None:
    org = sim.org
    parent = next(
        i
        for s in org.scopes_of("github")
        for i in org.scope_items(s)
        if any(c.parent_id == i.id for c in org.scope_items(s))
    )
    repo = g.get_repo(parent.scope.path)
    issue = repo.get_issue(parent.number)
    children = {c.number for c in org.scope_items(parent.scope) if c.parent_id == parent.id}
    assert {s.number for s in issue.get_sub_issues()} == children
    events = [e.event for e in issue.get_events()]
    assert events and set(events) <= {
        "assigned",
        "milestoned",
        "labeled",
        "unlabeled",
        "closed",
        "reopened",
    }
    with pytest.raises(GithubException) as missing:
        repo.get_issue(10**6 - 1)
    assert missing.value.status == 404


def test_bad_token_is_a_401_pygithub_understands(sim: Simulator) -> None:
    bad = Github(base_url=sim.github_url, auth=Auth.Token("ghp_wrong"))
    with pytest.raises(GithubException) as err:
        bad.get_organization("acme")
    assert err.value.status == 401 and err.value.data["message"] == "Bad credentials"
