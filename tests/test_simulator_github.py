"""The simulator's GitHub REST + GraphQL endpoints over real HTTP, checked against the
generated organisation (the ground truth the GitHub connector will be tested with)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from programview.simulator import TOKENS, generate, serve
from programview.simulator import github_api as gh
from programview.simulator.generator import DONE, GITHUB_PROJECT_STATUS, Item, Organisation
from programview.simulator.server import Simulator

AUTH = {"Authorization": f"Bearer {TOKENS.github_token}"}
PROJECT_QUERY = """
query($login: String!, $number: Int!, $cursor: String) {
  organization(login: $login) {
    projectV2(number: $number) {
      items(first: 100, after: $cursor) {
        pageInfo { hasNextPage endCursor }
        nodes {
          id type updatedAt isArchived
          content { ... on Issue { number repository { nameWithOwner } } }
          fieldValues(first: 20) {
            nodes {
              __typename
              ... on ProjectV2ItemFieldNumberValue {
                number field { ... on ProjectV2FieldCommon { name } }
              }
              ... on ProjectV2ItemFieldIterationValue {
                iterationId title startDate duration field { ... on ProjectV2FieldCommon { name } }
              }
              ... on ProjectV2ItemFieldSingleSelectValue {
                name optionId field { ... on ProjectV2FieldCommon { name } }
              }
            }
          }
        }
      }
    }
  }
  rateLimit { cost remaining resetAt }
}
"""


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with serve(generate(seed=1, size="small"), port=0) as running:
        yield running


@pytest.fixture(autouse=True)
def _reset(sim: Simulator) -> Iterator[None]:
    yield
    sim.faults.clear()


def client(sim: Simulator) -> httpx.Client:
    return httpx.Client(base_url=sim.github_url, headers=AUTH, timeout=30)


def walk(c: httpx.Client, url: str, params: dict[str, Any] | None = None) -> list[httpx.Response]:
    """Follow ``Link rel="next"`` to the end; every page's response."""
    pages = [c.get(url, params=params)]
    while "next" in pages[-1].links:
        assert pages[-1].status_code == 200
        pages.append(c.get(pages[-1].links["next"]["url"]))
        assert len(pages) < 500, "Link paging does not end"
    return pages


def repo(org: Organisation, n: int = 1) -> str:
    return org.scopes_of("github")[n].path


def live(org: Organisation, path: str) -> list[Item]:
    return org.scope_items(path)


def test_link_paging_ends_exactly_where_the_data_ends(sim: Simulator) -> None:
    org = sim.org
    path = repo(org)
    pages = walk(client(sim), f"/repos/{path}/issues", {"state": "all", "per_page": 37})
    bodies = [p.json() for p in pages]
    issues = [i for b in bodies for i in b if "pull_request" not in i]
    assert sorted(i["number"] for i in issues) == [i.number for i in live(org, path)]
    assert all(len(b) == 37 for b in bodies[:-1]) and 1 <= len(bodies[-1]) <= 37
    scope = org.scope(path)
    next_url = pages[0].links["next"]["url"]
    assert f"/repositories/{scope.native_id}/issues?" in next_url and "page=2" in next_url
    assert set(pages[0].links) == {"next", "last"}
    assert set(pages[1].links) == {"prev", "next", "last", "first"}
    assert set(pages[-1].links) == {"prev", "first"}  # the last page: only prev and first
    assert pages[0].links["last"]["url"].endswith(f"page={len(pages)}")


def test_defaults_are_open_created_desc_30(sim: Simulator) -> None:
    org = sim.org
    path = repo(org)
    r = client(sim).get(f"/repos/{path}/issues")
    body = r.json()
    assert len(body) == 30
    assert {i["state"] for i in body} == {"open"}
    created = [i["created_at"] for i in body]
    assert created == sorted(created, reverse=True)
    open_total = sum(1 for i in live(org, path) if i.status != DONE)
    open_total += sum(1 for p in gh._index(org).prs[path] if p.closed is None)
    last = int(r.links["last"]["url"].rsplit("page=", 1)[1])
    assert last == -(-open_total // 30)


def test_pull_requests_are_mixed_into_issues(sim: Simulator) -> None:
    org = sim.org
    path = repo(org)
    rows = [
        i for p in walk(client(sim), f"/repos/{path}/issues", {"state": "all"}) for i in p.json()
    ]
    prs = [i for i in rows if "pull_request" in i]
    assert len(prs) == gh.PRS_PER_REPO
    issue_numbers = {i["number"] for i in rows if "pull_request" not in i}
    assert not issue_numbers & {p["number"] for p in prs}  # one number space, no clashes
    assert all(p["pull_request"]["url"].endswith(f"/pulls/{p['number']}") for p in prs)
    assert any(p["pull_request"]["merged_at"] for p in prs)
    # a PR number is an issue number too, as on GitHub
    one = client(sim).get(f"/repos/{path}/issues/{prs[0]['number']}")
    assert one.status_code == 200 and "pull_request" in one.json()


def test_since_returns_exactly_what_advance_changed() -> None:
    org = generate(seed=3, size="small")
    with serve(org, port=0) as s:
        c = client(s)
        cs = org.advance(4)
        since = (cs.start + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for scope in org.scopes_of("github"):
            rows = [
                i
                for p in walk(
                    c,
                    f"/repos/{scope.path}/issues",
                    {"state": "all", "since": since, "sort": "updated", "direction": "asc"},
                )
                for i in p.json()
            ]
            expected = {
                i
                for i in cs.changed
                if org.items[i].scope is scope and org.items[i].deleted is None
            }
            assert {r["id"] for r in rows} == expected
            stamps = [r["updated_at"] for r in rows]
            assert stamps == sorted(stamps)
        # the bound is inclusive, to the second
        item = max(org.scope_items(repo(org)), key=lambda i: i.updated)
        exact = item.updated.strftime("%Y-%m-%dT%H:%M:%SZ")
        rows = c.get(f"/repos/{item.scope.path}/issues", params={"state": "all", "since": exact})
        assert item.id in {r["id"] for r in rows.json()}


def test_etag_304_not_counted_and_changes_with_content() -> None:
    org = generate(seed=2, size="small")
    with serve(org, port=0) as s:
        c = client(s)
        url = f"/repos/{repo(org)}/issues"
        params = {"state": "all", "sort": "updated", "per_page": 50}
        first = c.get(url, params=params)
        again = c.get(url, params=params)
        assert first.headers["ETag"] == again.headers["ETag"]
        used = int(again.headers["x-ratelimit-used"])
        cached = c.get(url, params=params, headers={"If-None-Match": first.headers["ETag"]})
        assert cached.status_code == 304 and cached.content == b""
        assert int(cached.headers["x-ratelimit-used"]) == used
        org.advance(2)
        fresh = c.get(url, params=params, headers={"If-None-Match": first.headers["ETag"]})
        assert fresh.status_code == 200 and fresh.headers["ETag"] != first.headers["ETag"]


def test_primary_and_secondary_rate_limits_on_issue_lists(sim: Simulator) -> None:
    c = client(sim)
    url = f"/repos/{repo(sim.org)}/issues"
    sim.faults.add("github:ratelimit:path=*/issues,retry_after=5")
    r = c.get(url)
    assert r.status_code == 403
    assert r.headers["x-ratelimit-remaining"] == "0"
    assert 0 < int(r.headers["x-ratelimit-reset"]) - time.time() <= 6
    assert r.json()["message"].startswith("API rate limit exceeded")
    assert c.get(url).status_code == 200
    sim.faults.add("github:ratelimit:path=*/issues,status=429")
    r = c.get(url)
    assert r.status_code == 429 and r.headers["x-ratelimit-remaining"] == "0"
    sim.faults.add("github:secondary:path=*/issues,retry_after=2")
    r = c.get(url)
    assert r.status_code == 403 and r.headers["retry-after"] == "2"
    assert r.json()["message"].startswith("You have exceeded a secondary rate limit")
    sim.faults.add("github:ratelimit:path=/graphql")
    r = c.post("/graphql", json={"query": "{ rateLimit { remaining } }"})
    assert r.status_code == 403 and r.headers["x-ratelimit-resource"] == "graphql"


def test_rate_limit_endpoint_is_free(sim: Simulator) -> None:
    c = client(sim)
    c.get(f"/repos/{repo(sim.org)}")
    a = c.get("/rate_limit")
    b = c.get("/rate_limit")
    assert a.status_code == b.status_code == 200
    assert a.headers["x-ratelimit-used"] == b.headers["x-ratelimit-used"]
    assert a.json()["resources"]["core"]["used"] == int(a.headers["x-ratelimit-used"])
    assert a.json()["rate"] == a.json()["resources"]["core"]
    new = c.get("/rate_limit", headers={"X-GitHub-Api-Version": "2026-03-10"}).json()
    assert "rate" not in new and "graphql" in new["resources"]


def test_auth_and_error_answers(sim: Simulator) -> None:
    path = repo(sim.org)
    r = httpx.get(f"{sim.github_url}/repos/{path}/issues", headers={"Authorization": "token x"})
    assert r.status_code == 401 and r.json()["message"] == "Bad credentials"
    r = httpx.get(f"{sim.github_url}/repos/{path}/issues")
    assert r.status_code == 401 and r.json()["message"] == "Requires authentication"
    c = client(sim)
    r = c.get("/repos/acme/nope/issues")
    assert r.status_code == 404 and r.json()["message"] == "Not Found"
    assert c.get(f"/repos/{path}/issues/999999").status_code == 404
    r = c.get(f"/repos/{path}/issues", params={"state": "merged"})
    assert r.status_code == 422 and r.json()["message"] == "Validation Failed"
    assert r.json()["errors"][0]["field"] == "state"
    assert c.get(f"/repos/{path}/issues", params={"since": "yesterday"}).status_code == 422
    r = c.get(f"/repos/{path}/issues", headers={"X-GitHub-Api-Version": "v3"})
    assert r.status_code == 400 and "is not a supported version" in r.json()["message"]
    ok = c.get(f"/repos/{path}/issues", headers={"X-GitHub-Api-Version": "2022-11-28"})
    assert ok.status_code == 200
    # per_page is capped at 100; junk falls back to the default
    assert (
        len(c.get(f"/repos/{path}/issues", params={"state": "all", "per_page": 500}).json()) == 100
    )
    assert len(c.get(f"/repos/{path}/issues", params={"per_page": "lots"}).json()) == 30


def test_deleted_issue_is_gone_410() -> None:
    org = generate(seed=1, size="small")
    item = org.scope_items(repo(org))[5]
    item.deleted = org.now
    gh.clear_caches()
    with serve(org, port=0) as s:
        c = client(s)
        r = c.get(f"/repos/{item.scope.path}/issues/{item.number}")
        assert r.status_code == 410 and r.json()["status"] == "410"
        rows = [
            i
            for p in walk(c, f"/repos/{item.scope.path}/issues", {"state": "all"})
            for i in p.json()
        ]
        assert item.id not in {i["id"] for i in rows}


def test_issue_fields_follow_the_ground_truth(sim: Simulator) -> None:
    org = sim.org
    c = client(sim)
    for scope in org.scopes_of("github"):
        rows = [
            i
            for p in walk(c, f"/repos/{scope.path}/issues", {"state": "all", "per_page": 100})
            for i in p.json()
            if "pull_request" not in i
        ]
        for row in rows:
            item = org.items[row["id"]]
            assert row["number"] == item.number and row["state"] == item.github_state
            assert row["state_reason"] == item.github_state_reason
            names = [lb["name"] for lb in row["labels"]]
            assert names == list(item.source_labels)
            if item.points is not None:
                assert f"points:{int(item.points)}" in names
            assert row["body"] == org.description(item)
            for blocker in org.blockers_of(item):
                if blocker.system != "github":
                    assert f"Blocked by {blocker.key}" in row["body"]
            rel = org.releases.get(item.release_id) if item.release_id else None
            assert (row["milestone"] or {}).get("number") == (rel.number if rel else None)
            assert row["closed_at"] == gh.github_time(item.resolved)
            assert (row["type"] or {}).get("name") == gh.GITHUB_TYPES.get(item.type)


def test_sub_issues_parent_and_dependencies(sim: Simulator) -> None:
    org = sim.org
    c = client(sim)
    epic = next(
        i
        for s in org.scopes_of("github")
        for i in org.scope_items(s)
        if i.type == "epic" and gh._index(org).children.get(i.id)
    )
    kids = gh._index(org).children[epic.id]
    body = c.get(f"/repos/{epic.scope.path}/issues/{epic.number}").json()
    assert body["sub_issues_summary"]["total"] == len(kids)
    assert body["sub_issues_summary"]["completed"] == sum(k.status == DONE for k in kids)
    subs = [
        i
        for p in walk(c, f"/repos/{epic.scope.path}/issues/{epic.number}/sub_issues")
        for i in p.json()
    ]
    assert {s["id"] for s in subs} == {k.id for k in kids}
    parent = c.get(f"/repos/{kids[0].scope.path}/issues/{kids[0].number}/parent")
    assert parent.json()["id"] == epic.id
    assert c.get(f"/repos/{epic.scope.path}/issues/{epic.number}/parent").status_code == 404
    link = next(
        lk
        for lk in org.links
        if lk.kind == "blocks" and lk.via == "native" and org.items[lk.to_id].system == "github"
    )
    blocked, blocker = org.items[link.to_id], org.items[link.from_id]
    base = f"/repos/{blocked.scope.path}/issues/{blocked.number}"
    assert blocker.id in {i["id"] for i in c.get(f"{base}/dependencies/blocked_by").json()}
    summary = c.get(base).json()["issue_dependencies_summary"]
    assert summary["total_blocked_by"] >= 1
    back = c.get(f"/repos/{blocker.scope.path}/issues/{blocker.number}/dependencies/blocking")
    assert blocked.id in {i["id"] for i in back.json()}


def test_events_replay_the_status_and_estimate_history(sim: Simulator) -> None:
    org = sim.org
    c = client(sim)
    item = next(
        i for s in org.scopes_of("github") for i in org.scope_items(s) if i.reopened and i.is_done
    )
    events = c.get(f"/repos/{item.scope.path}/issues/{item.number}/events").json()
    kinds = [e["event"] for e in events if e["event"] in ("closed", "reopened")]
    closes = sum(
        1
        for a, b in zip(item.status_history, item.status_history[1:], strict=False)
        if b.status == DONE and a.status != DONE
    )
    assert kinds.count("closed") == closes and kinds[-1] == "closed" and "reopened" in kinds
    last_close = [e for e in events if e["event"] == "closed"][-1]
    assert last_close["state_reason"] == item.github_state_reason
    stamps = [e["created_at"] for e in events]
    assert stamps == sorted(stamps)
    reest = next(
        i
        for s in org.scopes_of("github")
        for i in org.scope_items(s)
        if len(i.points_history) > 1 and i.points_history[0].points is not None and i.points
    )
    events = c.get(f"/repos/{reest.scope.path}/issues/{reest.number}/timeline").json()
    points = [
        e["label"]["name"]
        for e in events
        if e["event"] == "labeled" and "points:" in e["label"]["name"]
    ]
    assert points[-1] == f"points:{int(reest.points)}"
    assert any(e["event"] == "unlabeled" for e in events)


def test_milestones_and_releases(sim: Simulator) -> None:
    org = sim.org
    c = client(sim)
    scope = org.scopes_of("github")[0]
    rows = c.get(f"/repos/{scope.path}/milestones", params={"state": "all"}).json()
    rels = {r.number: r for r in org.releases_of(scope)}
    assert {m["number"] for m in rows} == set(rels)
    for m in rows:
        rel = rels[m["number"]]
        assert m["due_on"][:10] == rel.due.isoformat()
        assert m["due_on"][10:] in ("T07:00:00Z", "T08:00:00Z")
        assert m["state"] == ("closed" if rel.released_at else "open")
        truth = [
            i for s in org.scopes_of("github") for i in org.scope_items(s) if i.release_id == rel.id
        ]
        assert m["open_issues"] + m["closed_issues"] == len(truth)
    assert [m["number"] for m in rows] == sorted(m["number"] for m in rows)  # due_on asc
    default = c.get(f"/repos/{scope.path}/milestones").json()
    assert {m["state"] for m in default} <= {"open"}
    releases = c.get(f"/repos/{scope.path}/releases").json()
    assert {r["tag_name"] for r in releases} == {r.tag for r in rels.values() if r.released_at}
    labels = c.get(f"/repos/{scope.path}/labels", params={"per_page": 100}).json()
    assert any(lb["name"].startswith("points:") for lb in labels)


def project_pages(c: httpx.Client, org: Organisation) -> list[dict[str, Any]]:
    pages, cursor = [], None
    while True:
        r = c.post(
            "/graphql",
            json={
                "query": PROJECT_QUERY,
                "variables": {"login": "acme", "number": 1, "cursor": cursor},
            },
        )
        assert r.status_code == 200 and "errors" not in r.json(), r.text[:500]
        items = r.json()["data"]["organization"]["projectV2"]["items"]
        pages.append(r.json())
        if not items["pageInfo"]["hasNextPage"]:
            return pages
        cursor = items["pageInfo"]["endCursor"]
        assert len(pages) < 100


def test_graphql_project_items_page_to_the_end_with_field_values(sim: Simulator) -> None:
    org = sim.org
    pages = project_pages(client(sim), org)
    nodes = [n for p in pages for n in p["data"]["organization"]["projectV2"]["items"]["nodes"]]
    issues = [n for n in nodes if n["type"] == "ISSUE"]
    truth = {
        (i.scope.path, i.number): i for s in org.scopes_of("github") for i in org.scope_items(s)
    }
    seen = {(n["content"]["repository"]["nameWithOwner"], n["content"]["number"]) for n in issues}
    assert seen == set(truth) and len(issues) == len(truth)
    assert {n["type"] for n in nodes} == {"ISSUE", "PULL_REQUEST", "DRAFT_ISSUE"}
    assert all(n["content"] == {} for n in nodes if n["type"] != "ISSUE")  # no fragment asked
    for n in issues:
        item = truth[(n["content"]["repository"]["nameWithOwner"], n["content"]["number"])]
        values = {v["field"]["name"]: v for v in n["fieldValues"]["nodes"] if "field" in v}
        assert values["Status"]["name"] == GITHUB_PROJECT_STATUS[item.status]
        assert values.get("Estimate", {}).get("number") == item.points
        spr = org.current_sprint(item)
        assert values.get("Iteration", {}).get("title") == (spr.name if spr else None)
        if spr is not None:
            assert values["Iteration"]["iterationId"] == spr.native_id
            assert values["Iteration"]["startDate"] == spr.start.date().isoformat()
        assert n["updatedAt"] == gh.github_time(item.updated)
        # value types without a fragment in the query show only their __typename
        assert {"__typename": "ProjectV2ItemFieldTextValue"} in n["fieldValues"]["nodes"]
    assert pages[-1]["data"]["rateLimit"]["cost"] >= 1


def test_graphql_cursor_survives_deletions_between_pages() -> None:
    org = generate(seed=4, size="small")
    with serve(org, port=0) as s:
        c = client(s)
        first = c.post(
            "/graphql",
            json={"query": PROJECT_QUERY, "variables": {"login": "acme", "number": 1}},
        ).json()
        items = first["data"]["organization"]["projectV2"]["items"]
        seen = {n["id"] for n in items["nodes"]}
        before = {
            i.id for sc in org.scopes_of("github") for i in org.scope_items(sc) if i.deleted is None
        }
        org.advance(5)
        rest: list[dict[str, Any]] = []
        cursor = items["pageInfo"]["endCursor"]
        while cursor:
            r = c.post(
                "/graphql",
                json={
                    "query": PROJECT_QUERY,
                    "variables": {"login": "acme", "number": 1, "cursor": cursor},
                },
            ).json()
            page = r["data"]["organization"]["projectV2"]["items"]
            rest.extend(page["nodes"])
            cursor = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
        ids = seen | {n["id"] for n in rest}
        survivors = {i for i in before if org.items[i].deleted is None}
        assert {f"PVTI_lADO{gh._b64(str(i))}" for i in survivors} <= ids


def test_graphql_errors(sim: Simulator) -> None:
    c = client(sim)

    def ask(query: str, **variables: Any) -> dict[str, Any]:
        r = c.post("/graphql", json={"query": query, "variables": variables})
        assert r.status_code == 200
        return r.json()

    too_many = PROJECT_QUERY.replace("items(first: 100", "items(first: 101")
    err = ask(too_many, login="acme", number=1)["errors"][0]
    assert err["type"] == "EXCESSIVE_PAGINATION" and "101" in err["message"]
    missing = PROJECT_QUERY.replace("items(first: 100, after: $cursor)", "items(after: $cursor)")
    assert ask(missing, login="acme", number=1)["errors"][0]["type"] == (
        "MISSING_PAGINATION_BOUNDARIES"
    )
    answer = ask(PROJECT_QUERY, login="acme", number=9)
    assert answer["data"]["organization"]["projectV2"] is None
    assert answer["errors"][0]["type"] == "NOT_FOUND"
    assert answer["errors"][0]["path"] == ["organization", "projectV2"]
    answer = ask(PROJECT_QUERY, login="nobody", number=1)
    assert answer["data"]["organization"] is None and answer["errors"][0]["type"] == "NOT_FOUND"
    r = httpx.post(
        f"{sim.github_url}/graphql",
        json={"query": "{ rateLimit { remaining } }"},
        headers={"Authorization": "bearer wrong"},
    )
    assert r.status_code == 401 and r.json()["message"] == "Bad credentials"
    assert ask("{ viewer { login } }")["data"]["viewer"]["login"] == sim.org.people[0].login


def test_issue_filters_select_what_the_ground_truth_says(sim: Simulator) -> None:
    org = sim.org
    c = client(sim)
    scope = org.scopes_of("github")[1]
    items = org.scope_items(scope)
    url = f"/repos/{scope.path}/issues"

    def numbers(**params: Any) -> set[int]:
        pages = walk(c, url, {"state": "all", "per_page": 100, **params})
        return {r["number"] for p in pages for r in p.json()}

    rel = next(r for r in org.releases_of(scope) if any(i.release_id == r.id for i in items))
    assert numbers(milestone=str(rel.number)) == {i.number for i in items if i.release_id == rel.id}
    assert numbers(milestone="*") == {i.number for i in items if i.release_id is not None}
    assert numbers(labels="priority:high,points:5") == {
        i.number for i in items if i.priority == "high" and i.points == 5
    }
    assert numbers(type="Bug") == {i.number for i in items if i.type == "bug"}
    login = org.people[items[0].reporter].login
    assert numbers(creator=login) == {
        i.number for i in items if i.reporter == items[0].reporter
    } | {p.number for p in gh._index(org).prs[scope.path] if p.author == items[0].reporter}
    closed = numbers(state="closed")
    assert {i.number for i in items if i.status == DONE} <= closed
