"""The simulator's GitLab v4 endpoints over real HTTP, checked against the generated
organisation (the ground truth the GitLab connector will be tested with)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from programview.simulator import TOKENS, generate, serve
from programview.simulator import gitlab_api as gl
from programview.simulator.generator import DONE, GITLAB_WORKFLOW_LABELS, Organisation
from programview.simulator.server import Simulator

AUTH = {"PRIVATE-TOKEN": TOKENS.gitlab_token}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with serve(generate(seed=1, size="small"), port=0) as running:
        yield running


@pytest.fixture(autouse=True)
def _reset(sim: Simulator) -> Iterator[None]:
    yield
    sim.faults.clear()


def client(sim: Simulator) -> httpx.Client:
    return httpx.Client(base_url=sim.gitlab_url + "/api/v4", headers=AUTH, timeout=30)


def enc(path: str) -> str:
    return quote(path, safe="")


def offset_walk(c: httpx.Client, url: str, params: dict[str, Any]) -> list[httpx.Response]:
    """Follow ``x-next-page`` until it is empty."""
    pages = [c.get(url, params=params)]
    while pages[-1].headers["x-next-page"]:
        assert pages[-1].status_code == 200, pages[-1].text
        pages.append(c.get(url, params={**params, "page": pages[-1].headers["x-next-page"]}))
        assert len(pages) < 500
    return pages


def keyset_walk(c: httpx.Client, url: str, params: dict[str, Any]) -> list[httpx.Response]:
    """Follow ``Link rel="next"`` until there is none."""
    pages = [c.get(url, params=params)]
    while "next" in pages[-1].links:
        assert pages[-1].status_code == 200, pages[-1].text
        pages.append(c.get(pages[-1].links["next"]["url"]))
        assert len(pages) < 500
    return pages


def project(org: Organisation, n: int = 0) -> str:
    return org.scopes_of("gitlab")[n].path


def test_offset_paging_ends_exactly_where_the_data_ends(sim: Simulator) -> None:
    org = sim.org
    path = project(org)
    pages = offset_walk(client(sim), f"/projects/{enc(path)}/issues", {"per_page": 23})
    rows = [i for p in pages for i in p.json()]
    truth = org.scope_items(path)
    assert sorted(r["iid"] for r in rows) == [i.number for i in truth]
    last = pages[-1].headers
    assert last["x-total"] == str(len(truth))
    assert last["x-total-pages"] == str(len(pages)) == last["x-page"]
    assert last["x-next-page"] == "" and last["x-prev-page"] == str(len(pages) - 1)
    assert 'rel="next"' not in last["link"] and 'rel="prev"' in last["link"]
    assert pages[0].headers["x-per-page"] == "23" and pages[0].headers["x-prev-page"] == ""
    created = [r["created_at"] for r in pages[0].json()]
    assert created == sorted(created, reverse=True)  # default: created_at desc


def test_keyset_paging_follows_link_to_the_end(sim: Simulator) -> None:
    org = sim.org
    scope = org.scopes_of("gitlab")[1]
    for order_by in ("updated_at", "id"):
        params = {"pagination": "keyset", "order_by": order_by, "sort": "asc", "per_page": 40}
        pages = keyset_walk(client(sim), f"/projects/{scope.native_id}/issues", params)
        rows = [i for p in pages for i in p.json()]

        def key(i: Any, order_by: str = order_by) -> tuple[Any, ...]:
            return (i.updated, i.id) if order_by == "updated_at" else (i.id,)

        assert [r["id"] for r in rows] == [i.id for i in sorted(org.scope_items(scope), key=key)]
        assert all("x-total" not in p.headers for p in pages)
        assert "link" not in pages[-1].headers
    r = client(sim).get("/groups/acme/issues", params={"pagination": "keyset"})
    assert r.status_code == 405
    assert r.json() == {
        "message": "Keyset pagination is not yet available for this type of request"
    }


def test_group_issues_include_subgroups(sim: Simulator) -> None:
    org = sim.org
    c = client(sim)
    everything = {i.id for s in org.scopes_of("gitlab") for i in org.scope_items(s)}
    rows = [i for p in offset_walk(c, "/groups/acme/issues", {"per_page": 100}) for i in p.json()]
    assert {r["id"] for r in rows} == everything and len(rows) == len(everything)
    sub = org.gitlab_groups[1]
    rows = [
        i for p in offset_walk(c, f"/groups/{sub.id}/issues", {"per_page": 100}) for i in p.json()
    ]
    under = {
        i.id
        for s in org.scopes_of("gitlab")
        if s.path.startswith(sub.path + "/")
        for i in org.scope_items(s)
    }
    assert {r["id"] for r in rows} == under


def test_updated_after_returns_exactly_what_advance_changed() -> None:
    org = generate(seed=5, size="small")
    with serve(org, port=0) as s:
        c = client(s)
        cs = org.advance(4)
        after = (cs.start + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        params = {"updated_after": after, "order_by": "updated_at", "sort": "asc", "per_page": 100}
        rows = [r for p in offset_walk(c, "/groups/acme/issues", params) for r in p.json()]
        expected = {
            i for i in cs.changed if org.items[i].system == "gitlab" and not org.items[i].deleted
        }
        assert {r["id"] for r in rows} == expected and expected
        stamps = [r["updated_at"] for r in rows]
        assert stamps == sorted(stamps)
        # inclusive bound, keyset too
        item = max(org.scope_items(project(org)), key=lambda i: i.updated)
        exact = item.updated.strftime("%Y-%m-%dT%H:%M:%SZ")
        rows = [
            r
            for p in keyset_walk(
                c,
                f"/projects/{item.scope.native_id}/issues",
                {
                    "pagination": "keyset",
                    "order_by": "updated_at",
                    "sort": "asc",
                    "updated_after": exact,
                },
            )
            for r in p.json()
        ]
        assert item.id in {r["id"] for r in rows}
        before = c.get(
            f"/projects/{item.scope.native_id}/issues",
            params={"updated_before": exact, "per_page": 100, "order_by": "updated_at"},
        ).json()
        assert before[0]["id"] == item.id  # updated_before is inclusive as well


def test_issue_fields_follow_the_ground_truth(sim: Simulator) -> None:
    org = sim.org
    c = client(sim)
    scope = org.scopes_of("gitlab")[0]
    rows = [
        r
        for p in offset_walk(c, f"/projects/{scope.native_id}/issues", {"per_page": 100})
        for r in p.json()
    ]
    assert any(r["iteration"] for r in rows) and any(r["milestone"] for r in rows)
    for r in rows:
        item = org.items[r["id"]]
        assert r["iid"] == item.number and r["project_id"] == scope.native_id
        assert r["state"] == ("closed" if item.status == DONE else "opened")
        assert r["weight"] == (int(item.points) if item.points is not None else None)
        assert r["labels"] == list(item.source_labels)
        if item.status != DONE:
            assert GITLAB_WORKFLOW_LABELS[item.status] in r["labels"]
        assert r["references"]["full"] == f"{scope.path}#{item.number}"
        assert r["type"] == r["issue_type"].upper()
        spr = org.current_sprint(item)
        if spr is None:
            assert r["iteration"] is None
        else:
            assert r["iteration"]["id"] == spr.native_id
            assert r["iteration"]["state"] == {"future": 1, "active": 2, "closed": 3}[spr.state]
        assert r["description"] == org.description(item)
    closed = c.get(f"/projects/{scope.native_id}/issues", params={"state": "closed"}).json()
    assert closed and {r["state"] for r in closed} == {"closed"}


def test_issue_links_from_each_side(sim: Simulator) -> None:
    org = sim.org
    c = client(sim)
    link = next(
        lk
        for lk in org.links
        if lk.kind == "blocks" and lk.via == "native" and org.items[lk.from_id].system == "gitlab"
    )
    blocker, blocked = org.items[link.from_id], org.items[link.to_id]
    out = c.get(f"/projects/{blocker.scope.native_id}/issues/{blocker.number}/links").json()
    mine = next(r for r in out if r["issue_link_id"] == link.id)
    assert mine["id"] == blocked.id and mine["link_type"] == "blocks"
    back = c.get(f"/projects/{blocked.scope.native_id}/issues/{blocked.number}/links").json()
    theirs = next(r for r in back if r["issue_link_id"] == link.id)
    assert theirs["id"] == blocker.id and theirs["link_type"] == "is_blocked_by"
    assert theirs["link_created_at"] == gl.gitlab_time(link.created)


def test_resource_events_carry_state_sprint_and_estimate_history(sim: Simulator) -> None:
    org = sim.org
    c = client(sim)
    items = [i for s in org.scopes_of("gitlab") for i in org.scope_items(s)]
    reopened = next(i for i in items if i.reopened)
    base = f"/projects/{reopened.scope.native_id}/issues/{reopened.number}"
    states = [e["state"] for e in c.get(f"{base}/resource_state_events").json()]
    assert states[0] == "closed" and "reopened" in states
    never = next(i for i in items if i.status != DONE and not i.reopened)
    url = f"/projects/{never.scope.native_id}/issues/{never.number}/resource_state_events"
    assert c.get(url).json() == []
    carried = next(i for i in items if len(i.sprints) > 1)
    base = f"/projects/{carried.scope.native_id}/issues/{carried.number}"
    events = c.get(f"{base}/resource_iteration_events").json()
    adds = [e["iteration"]["id"] for e in events if e["action"] == "add"]
    assert adds == [org.sprints[m.sprint_id].native_id for m in carried.sprints]
    removed = next(i for i in items if any(m.removed for m in i.sprints))
    base = f"/projects/{removed.scope.native_id}/issues/{removed.number}"
    assert "remove" in {e["action"] for e in c.get(f"{base}/resource_iteration_events").json()}
    reest = next(i for i in items if len(i.points_history) > 1 and i.points is not None)
    base = f"/projects/{reest.scope.native_id}/issues/{reest.number}"
    weights = c.get(f"{base}/resource_weight_events").json()
    assert weights[-1]["weight"] == int(reest.points) and weights[-1]["issue_id"] == reest.id
    labels = c.get(f"{base}/resource_label_events").json()
    workflow = [e["label"]["name"] for e in labels if e["label"]["name"].startswith("workflow::")]
    assert workflow[0] == "workflow::todo"


def test_groups_projects_milestones_iterations_releases(sim: Simulator) -> None:
    org = sim.org
    c = client(sim)
    root = c.get("/groups/acme").json()
    assert root["id"] == 100 and root["full_path"] == "acme" and root["parent_id"] is None
    direct = c.get("/groups/acme/projects").json()
    deep = c.get("/groups/acme/projects", params={"include_subgroups": "true"}).json()
    live = c.get(
        "/groups/acme/projects", params={"include_subgroups": "true", "archived": "false"}
    ).json()
    assert direct == [] and {p["path_with_namespace"] for p in live} == {
        s.path for s in org.scopes_of("gitlab")
    }
    archived = [p for p in deep if p["archived"]]
    assert [p["path_with_namespace"] for p in archived] == [gl.archived_project_path(org)]
    assert c.get(f"/projects/{enc(gl.archived_project_path(org))}").json()["archived"] is True
    scope = org.scopes_of("gitlab")[0]
    assert c.get(f"/projects/{enc(scope.path)}").json()["id"] == scope.native_id
    assert c.get(f"/projects/{scope.native_id}").json()["path_with_namespace"] == scope.path
    ms = c.get(f"/projects/{scope.native_id}/milestones", params={"per_page": 100}).json()
    assert {m["iid"] for m in ms} == {r.number for r in org.releases_of(scope)}
    active = c.get(f"/projects/{scope.native_id}/milestones", params={"state": "active"}).json()
    assert {m["state"] for m in active} == {"active"}
    assert c.get("/groups/acme/milestones").json() == []
    grouped = c.get(
        "/groups/acme/milestones", params={"include_descendants": "true", "per_page": 100}
    ).json()
    assert len(grouped) == sum(len(org.releases_of(s)) for s in org.scopes_of("gitlab"))
    cad = next(cd for cd in org.cadences if cd.system == "gitlab")
    sprints = org.sprints_of(cad)
    its = c.get("/groups/acme%2Fplatform/iterations", params={"per_page": 100}).json()
    assert [i["id"] for i in its] == [s.native_id for s in sprints]  # inherited from acme
    current = c.get("/groups/acme/iterations", params={"state": "current"}).json()
    assert [i["state"] for i in current] == [2]
    opened = c.get("/groups/acme/iterations", params={"state": "opened"}).json()
    assert {i["state"] for i in opened} == {1, 2}
    for a, b in zip(its, its[1:], strict=False):
        assert a["due_date"] < b["start_date"]  # whole days, never overlapping
    rels = c.get(f"/projects/{scope.native_id}/releases").json()
    shipped = [r for r in org.releases_of(scope) if r.released_at]
    assert {r["tag_name"] for r in rels} == {r.tag for r in shipped}
    assert all(r["milestones"][0]["state"] == "closed" for r in rels)


def test_errors_in_gitlab_shapes(sim: Simulator) -> None:
    c = client(sim)
    path = project(sim.org)
    r = c.get(f"/projects/{enc(path)}/issues", params={"state": "open"})
    assert r.status_code == 400 and r.json() == {"error": "state does not have a valid value"}
    r = c.get(f"/projects/{enc(path)}/issues", params={"per_page": "x"})
    assert r.status_code == 400 and r.json() == {"error": "per_page is invalid"}
    assert (
        c.get(f"/projects/{enc(path)}/issues", params={"updated_after": "soon"}).status_code == 400
    )
    assert c.get("/projects/acme%2Fnope").json() == {"message": "404 Project Not Found"}
    assert c.get("/groups/nope/issues").json() == {"message": "404 Group Not Found"}
    r = c.get(f"/projects/{enc(path)}/issues/99999")
    assert r.status_code == 404 and r.json() == {"message": "404 Issue Not Found"}
    r = httpx.get(
        f"{sim.gitlab_url}/api/v4/projects/{enc(path)}/issues",
        headers={"PRIVATE-TOKEN": "glpat-wrong"},
    )
    assert r.status_code == 401 and r.json() == {"message": "401 Unauthorized"}
    r = httpx.get(f"{sim.gitlab_url}/api/v4/projects/{enc(path)}/issues")
    assert r.status_code == 404 and r.json() == {"message": "404 Project Not Found"}
    big = c.get(f"/projects/{enc(path)}/issues", params={"per_page": 1000})
    assert big.headers["x-per-page"] == "100" and len(big.json()) == 100


def test_rate_limits_answer_as_gitlab(sim: Simulator) -> None:
    c = client(sim)
    url = f"/projects/{enc(project(sim.org))}/issues"
    sim.faults.add("gitlab:ratelimit:path=*/issues,retry_after=3")
    r = c.get(url)
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert r.headers["RateLimit-Remaining"] == "0" and "RateLimit-ResetTime" in r.headers
    assert r.json() == {
        "message": {"error": "This endpoint has been requested too many times. Try again later."}
    }
    sim.faults.add("gitlab:ratelimit:path=*/issues,variant=text")
    r = c.get(url)
    assert r.status_code == 429 and r.text.strip() == "Retry later"
    sim.faults.add("gitlab:ratelimit:path=*/issues,variant=bare")
    r = c.get(url)
    assert r.status_code == 429 and r.text.strip() == "Retry later"
    assert "retry-after" not in r.headers and "ratelimit-remaining" not in r.headers
    assert c.get(url).status_code == 200


def test_deleted_issue_is_404_and_leaves_the_lists() -> None:
    org = generate(seed=1, size="small")
    item = org.scope_items(project(org))[3]
    item.deleted = org.now
    gl.clear_caches()
    with serve(org, port=0) as s:
        c = client(s)
        r = c.get(f"/projects/{item.scope.native_id}/issues/{item.number}")
        assert r.status_code == 404 and r.json() == {"message": "404 Issue Not Found"}
        rows = c.get(
            f"/projects/{item.scope.native_id}/issues",
            params={"per_page": 100, "iids[]": [item.number]},
        )
        assert rows.json() == []


def test_issue_filters_select_what_the_ground_truth_says(sim: Simulator) -> None:
    org = sim.org
    c = client(sim)
    scope = org.scopes_of("gitlab")[0]
    items = org.scope_items(scope)
    url = f"/projects/{scope.native_id}/issues"

    def ids(**params: Any) -> set[int]:
        rows = offset_walk(c, url, {"per_page": 100, **params})
        return {r["id"] for p in rows for r in p.json()}

    rel = next(r for r in org.releases_of(scope) if any(i.release_id == r.id for i in items))
    assert ids(milestone=rel.name) == {i.id for i in items if i.release_id == rel.id}
    assert ids(milestone="None") == {i.id for i in items if i.release_id is None}
    assert ids(labels="workflow::in dev") == {
        i.id for i in items if "workflow::in dev" in i.source_labels
    }
    assert ids(labels="Any", milestone="None") == {i.id for i in items if i.release_id is None}
    cad = next(cd for cd in org.cadences if cd.system == "gitlab")
    spr = next(s for s in org.sprints_of(cad) if s.state == "active")
    assert ids(iteration_id=spr.native_id) == {
        i.id for i in items if (cur := org.current_sprint(i)) is not None and cur.id == spr.id
    }
    assert ids(scope="assigned_to_me") == {i.id for i in items if i.assignee == 0}
    assert ids(issue_type="incident") == {i.id for i in items if i.type == "incident"}
