"""The simulated Jira Cloud and Data Center over real HTTP: paging, JQL, incremental
cursors, the time-zone trap, changelogs, worklogs, agile boards, errors and faults.

Ground truth is the generated organisation itself, so every count below is computed from
the data, never hard-coded.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from programview.simulator import TOKENS, generate, serve
from programview.simulator import jira_api as jira
from programview.simulator.generator import (
    JIRA_SPRINT_FIELD,
    JIRA_STATUSES,
    JIRA_STORY_POINTS_FIELD,
    Item,
    Organisation,
)
from programview.simulator.server import Simulator

CLOUD_AUTH = {
    "Authorization": "Basic "
    + base64.b64encode(f"{TOKENS.jira_email}:{TOKENS.jira_api_token}".encode()).decode()
}
DC_AUTH = {"Authorization": f"Bearer {TOKENS.jira_dc_pat}"}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """A read-only simulator shared by the tests that do not change the organisation."""
    with serve(generate(seed=1, size="small")) as running:
        yield running


@pytest.fixture(autouse=True)
def _clean_faults(sim: Simulator) -> Iterator[None]:
    yield
    sim.faults.clear()


@pytest.fixture
def fresh() -> Iterator[Simulator]:
    """A simulator of its own, for tests that ``advance()`` the organisation."""
    with serve(generate(seed=3, size="small")) as running:
        yield running


def cloud(sim: Simulator) -> httpx.Client:
    return httpx.Client(base_url=sim.jira_url, headers=CLOUD_AUTH, timeout=30)


def dc(sim: Simulator) -> httpx.Client:
    return httpx.Client(base_url=sim.jira_dc_url, headers=DC_AUTH, timeout=30)


def jira_keys(org: Organisation) -> list[str]:
    return sorted(s.path for s in org.scopes_of("jira"))


def live(org: Organisation, key: str) -> list[Item]:
    return org.scope_items(key)


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def search_pages(
    client: httpx.Client, jql: str, method: str = "GET", **params: Any
) -> list[dict[str, Any]]:
    """Every page of an enhanced JQL search, following ``nextPageToken`` only."""
    pages = []
    token = None
    for _ in range(10_000):
        args = {"jql": jql, **params}
        if token:
            args["nextPageToken"] = token
        if method == "GET":
            r = client.get("/rest/api/3/search/jql", params=args)
        else:
            r = client.post("/rest/api/3/search/jql", json=args)
        assert r.status_code == 200, r.text
        page = r.json()
        pages.append(page)
        token = page.get("nextPageToken")
        if not token:
            return pages
    raise AssertionError("search never ended")


def assert_token_paging(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Token paging ends exactly at the data: every page but the last has a token and
    ``isLast: false``; the last has no token and ``isLast: true``; no empty page."""
    for page in pages[:-1]:
        assert page["isLast"] is False and page["nextPageToken"] and page["issues"]
    assert pages[-1]["isLast"] is True and "nextPageToken" not in pages[-1]
    issues = [i for p in pages for i in p["issues"]]
    assert len({i["id"] for i in issues}) == len(issues), "an issue came twice"
    return issues


# --- enhanced search (Cloud) ---------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_search_jql_pages_end_exactly_where_the_data_ends(sim: Simulator, method: str) -> None:
    keys = jira_keys(sim.org)
    jql = f"project in ({', '.join(keys)}) ORDER BY updated ASC, key ASC"
    fields = ["summary", "status", "updated"]
    with cloud(sim) as client:
        pages = search_pages(client, jql, method, maxResults=37, fields=fields)
    issues = assert_token_paging(pages)
    truth = [i for k in keys for i in live(sim.org, k)]
    assert {int(i["id"]) for i in issues} == {i.id for i in truth}
    assert len(pages) == -(-len(truth) // 37)
    order = [(sim.org.item(int(i["id"])).updated, i["key"]) for i in issues]
    assert [o[0] for o in order] == sorted(o[0] for o in order)
    assert set(issues[0]["fields"]) == set(fields)


def test_heavy_searches_are_capped_and_id_only_searches_are_not(sim: Simulator) -> None:
    key = jira_keys(sim.org)[0]
    total = len(live(sim.org, key))
    assert total > jira.SEARCH_PAGE_CAP  # the cap must matter for this test
    with cloud(sim) as client:
        heavy = search_pages(client, f"project = {key}", maxResults=5000, fields="*all")
        light = search_pages(client, f"project = {key}", maxResults=5000)
    assert [len(p["issues"]) for p in heavy[:-1]] == [jira.SEARCH_PAGE_CAP] * (len(heavy) - 1)
    assert sum(len(p["issues"]) for p in heavy) == total
    assert len(light) == 1 and len(light[0]["issues"]) == total
    # fields default to id only (the enhanced search's trap)
    assert light[0]["issues"][0] == {"id": light[0]["issues"][0]["id"]}


def test_keyset_token_survives_updates_between_pages(fresh: Simulator) -> None:
    """Issues updated while a client pages move to the end of an ``ORDER BY updated``
    search; the token continues after the last issue seen, so nothing is skipped (an
    offset would skip as many issues as moved out of the pages already read)."""
    org = fresh.org
    # open issues being worked on or in the running sprint: the ones advance() moves
    active = [
        i
        for k in jira_keys(org)
        for i in live(org, k)
        if not i.is_done
        and i.type != "epic"
        and (i.status != "todo" or getattr(org.current_sprint(i), "state", "") == "active")
    ][:100]
    assert len(active) >= 9
    jql = f"key in ({', '.join(i.key for i in active)}) ORDER BY updated ASC"
    params = {"jql": jql, "maxResults": len(active) // 3, "fields": "updated"}
    with cloud(fresh) as client:
        first = client.get("/rest/api/3/search/jql", params=params).json()
        seen = [int(i["id"]) for i in first["issues"]]
        cs = org.advance(3)
        moved = set(seen) & cs.changed
        assert moved, "no issue of the first page changed: the test proves nothing"
        token = first["nextPageToken"]
        rest: list[int] = []
        while token:
            page = client.get(
                "/rest/api/3/search/jql", params={**params, "nextPageToken": token}
            ).json()
            rest += [int(i["id"]) for i in page["issues"]]
            token = page.get("nextPageToken")
    still_there = {i.id for i in active if i.deleted is None}
    assert still_there - set(seen) <= set(rest)  # nothing skipped
    assert moved & still_there <= set(rest)  # the moved ones come again, at the end


def test_approximate_count_matches_the_search(sim: Simulator) -> None:
    key = jira_keys(sim.org)[0]
    with cloud(sim) as client:
        r = client.post("/rest/api/3/search/approximate-count", json={"jql": f"project = {key}"})
    assert r.status_code == 200 and r.json() == {"count": len(live(sim.org, key))}


def test_key_and_id_clauses_select_exactly_those_issues(sim: Simulator) -> None:
    key = jira_keys(sim.org)[0]
    a, b, c = live(sim.org, key)[:3]
    with cloud(sim) as client:
        pages = search_pages(client, f"key in ({a.key}, {b.key}) AND id != {b.id}", fields="key")
    assert [i["key"] for i in pages[0]["issues"]] == [a.key]
    with cloud(sim) as client:
        pages = search_pages(client, f"id = {c.id}", fields="key")
    assert [i["key"] for i in pages[0]["issues"]] == [c.key]


# --- incremental sync and the time-zone trap ------------------------------------------


def test_updated_since_epoch_ms_returns_exactly_the_changed_issues(fresh: Simulator) -> None:
    org = fresh.org
    keys = jira_keys(org)
    cs = org.advance(2)
    # changed issues have ``updated`` in (start, end], in whole seconds
    jql = f"project in ({', '.join(keys)}) AND updated >= {ms(cs.start) + 1000} ORDER BY updated"
    with cloud(fresh) as client:
        issues = assert_token_paging(search_pages(client, jql, maxResults=25, fields="updated"))
    expected = {
        i for i in cs.changed if org.items[i].scope.path in keys and org.items[i].deleted is None
    }
    assert expected, "advance(2) changed no Jira issue: the test proves nothing"
    assert {int(i["id"]) for i in issues} == expected
    deleted = {i for i in cs.deleted if org.items[i].scope.path in keys}
    assert not deleted & {int(i["id"]) for i in issues}


def test_date_strings_are_read_in_the_users_time_zone_at_minute_precision(
    sim: Simulator,
) -> None:
    """The trap the connector must avoid: a UTC wall-clock string is read as Berlin time
    (an hour or two earlier), so it returns more than the epoch-ms bound."""
    org = sim.org
    key = jira_keys(org)[0]
    items = live(org, key)
    pivot = sorted(items, key=lambda i: i.updated)[len(items) // 2]
    bound = (pivot.updated + timedelta(minutes=30)).replace(second=0)
    tz = ZoneInfo(org.jira_user_timezone)
    offset = bound.astimezone(tz).utcoffset()
    assert offset is not None and offset > timedelta(0)

    def ids(jql: str) -> set[int]:
        with cloud(sim) as client:
            pages = search_pages(client, jql, maxResults=5000)
        return {int(i["id"]) for p in pages for i in p["issues"]}

    exact = ids(f"project = {key} AND updated >= {ms(bound)}")
    as_utc = ids(f'project = {key} AND updated >= "{bound:%Y/%m/%d %H:%M}"')
    as_local = ids(f'project = {key} AND updated >= "{bound.astimezone(tz):%Y-%m-%d %H:%M}"')
    assert exact == {i.id for i in items if i.updated >= bound}
    assert as_utc == {i.id for i in items if i.updated >= bound - offset}
    assert pivot.id in as_utc - exact  # the wrong bound re-reads (or, on <=, drops) issues
    assert as_local == exact


def test_relative_periods_count_from_the_simulated_now(sim: Simulator) -> None:
    org = sim.org
    key = jira_keys(org)[0]
    with cloud(sim) as client:
        pages = search_pages(client, f"project = {key} AND updated >= -3d", maxResults=5000)
    got = {int(i["id"]) for p in pages for i in p["issues"]}
    assert got == {i.id for i in live(org, key) if i.updated >= org.now - timedelta(days=3)}


# --- Data Center search -------------------------------------------------------------


def test_dc_search_pages_by_start_at_with_total(sim: Simulator) -> None:
    key = jira_keys(sim.org)[0]
    truth = live(sim.org, key)
    got: list[dict[str, Any]] = []
    start = 0
    with dc(sim) as client:
        while True:
            r = client.get(
                "/rest/api/2/search",
                params={"jql": f"project = {key}", "startAt": start, "maxResults": 40},
            )
            assert r.status_code == 200, r.text
            page = r.json()
            assert page["total"] == len(truth) and page["startAt"] == start
            got += page["issues"]
            start += len(page["issues"])
            if start >= page["total"]:
                break
        past = client.get(
            "/rest/api/2/search", params={"jql": f"project = {key}", "startAt": len(truth)}
        ).json()
        capped = client.get(
            "/rest/api/2/search", params={"jql": f"project = {key}", "maxResults": 5000}
        ).json()
    assert sorted(int(i["id"]) for i in got) == sorted(i.id for i in truth)
    assert past["issues"] == [] and past["total"] == len(truth)
    assert capped["maxResults"] == jira.DC_SEARCH_MAX
    # DC defaults to all navigable fields and speaks v2: plain-text description
    assert isinstance(got[0]["fields"]["description"], str)


def test_dc_has_no_enhanced_search_and_no_bulkfetch(sim: Simulator) -> None:
    with dc(sim) as client:
        assert client.get("/rest/api/2/search/jql", params={"jql": "id = 1"}).status_code == 404
        r = client.post("/rest/api/2/changelog/bulkfetch", json={"issueIdsOrKeys": ["1"]})
        assert r.status_code == 404


def test_dc_embeds_the_full_changelog_and_legacy_sprint_strings(sim: Simulator) -> None:
    org = sim.org
    item = max(
        (i for k in jira_keys(org) for i in live(org, k)),
        key=lambda i: len(jira.change_events(org, i, False)),
    )
    with dc(sim) as client:
        body = client.get(
            f"/rest/api/2/issue/{item.key}",
            params={"expand": "changelog", "fields": f"status,{JIRA_SPRINT_FIELD}"},
        ).json()
    hs = body["changelog"]["histories"]
    assert body["changelog"]["total"] == len(hs) > 0
    assert [h["created"] for h in hs] == sorted(h["created"] for h in hs)
    sprints = body["fields"][JIRA_SPRINT_FIELD]
    assert sprints, "pick an issue that is in a sprint"
    assert all(s.startswith("com.atlassian.greenhopper.service.sprint.Sprint@") for s in sprints)
    assert f"rapidViewId={org.cadence(item.scope.cadence_id).native_id}," in sprints[0]


# --- changelogs -----------------------------------------------------------------------


def rich_issue(org: Organisation, at_least: int) -> Item:
    for k in jira_keys(org):
        for item in live(org, k):
            if len(jira.change_events(org, item, True)) >= at_least:
                return item
    raise AssertionError(f"no issue with {at_least} histories")


def test_issue_changelog_pages_oldest_first_to_the_end(sim: Simulator) -> None:
    item = rich_issue(sim.org, 5)
    got: list[dict[str, Any]] = []
    start = 0
    with cloud(sim) as client:
        while True:
            page = client.get(
                f"/rest/api/3/issue/{item.key}/changelog",
                params={"startAt": start, "maxResults": 2},
            ).json()
            got += page["values"]
            start += len(page["values"])
            assert page["isLast"] == (start >= page["total"])
            assert ("nextPage" in page) == (not page["isLast"])
            if page["isLast"]:
                break
    stamps = [h["created"] for h in got]
    assert stamps == sorted(stamps) and len({h["id"] for h in got}) == len(got)
    truth = jira.change_events(sim.org, item, True)
    assert len(got) == len(truth)
    status_moves = [e for h in got for e in h["items"] if e["field"] == "status"]
    assert len(status_moves) == len(item.status_history) - 1
    assert status_moves[-1]["to"] == JIRA_STATUSES[item.status][0]


def test_truncated_embedded_changelog_is_detectable(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jira, "CLOUD_CHANGELOG_EMBED", 2)  # search/jql
    monkeypatch.setattr(jira, "CLOUD_ISSUE_CHANGELOG_EMBED", 3)  # GET issue, Agile lists
    item = rich_issue(sim.org, 4)
    with cloud(sim) as client:
        pages = search_pages(
            client, f"key = {item.key}", fields="status", expand="changelog", maxResults=1
        )
        one = client.get(f"/rest/api/3/issue/{item.key}", params={"expand": "changelog"})
        full = client.get(f"/rest/api/3/issue/{item.key}/changelog").json()["values"]
    searched = pages[0]["issues"][0]["changelog"]
    assert searched["total"] == len(full) > len(searched["histories"]) == 2
    # Cloud embeds the newest entries, newest first
    assert searched["histories"] == full[::-1][:2]
    assert one.json()["changelog"]["histories"] == full[::-1][:3]
    assert one.json()["changelog"]["total"] == len(full)


def test_bulkfetch_pages_through_every_history_once(sim: Simulator) -> None:
    org = sim.org
    key = jira_keys(org)[0]
    items = live(org, key)
    got: dict[str, list[dict[str, Any]]] = {}
    token = None
    calls = 0
    with cloud(sim) as client:
        while True:
            body: dict[str, Any] = {
                "issueIdsOrKeys": [str(i.id) for i in items],
                "fieldIds": ["status", JIRA_SPRINT_FIELD],
                "maxResults": 97,
            }
            if token:
                body["nextPageToken"] = token
            r = client.post("/rest/api/3/changelog/bulkfetch", json=body)
            assert r.status_code == 200, r.text
            calls += 1
            page = r.json()
            assert sum(len(c["changeHistories"]) for c in page["issueChangeLogs"]) <= 97
            for entry in page["issueChangeLogs"]:
                got.setdefault(entry["issueId"], []).extend(entry["changeHistories"])
            token = page.get("nextPageToken")
            if not token:
                break
    ids = [h["id"] for hs in got.values() for h in hs]
    assert len(ids) == len(set(ids))
    wanted = {"status", JIRA_SPRINT_FIELD}
    expected = {
        str(i.id): sum(
            1
            for _, _, entries in jira.change_events(org, i, True)
            if any(e["fieldId"] in wanted for e in entries)
        )
        for i in items
    }
    assert {k: len(v) for k, v in got.items()} == {k: n for k, n in expected.items() if n}
    assert calls == -(-sum(expected.values()) // 97)
    assert all(e["fieldId"] in wanted for hs in got.values() for h in hs for e in h["items"])


def test_bulkfetch_limits(sim: Simulator) -> None:
    with cloud(sim) as client:
        too_many = client.post(
            "/rest/api/3/changelog/bulkfetch", json={"issueIdsOrKeys": ["1"] * 1001}
        )
        too_wide = client.post(
            "/rest/api/3/changelog/bulkfetch",
            json={"issueIdsOrKeys": ["1"], "fieldIds": [f"f{n}" for n in range(11)]},
        )
    assert too_many.status_code == 400 and too_wide.status_code == 400
    assert too_many.json()["errorMessages"]


# --- worklogs -------------------------------------------------------------------------


def test_worklog_feed_pages_to_the_end_without_repeats(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jira, "WORKLOG_FEED_PAGE", 37)
    org = sim.org
    horizon = ms(org.now) - 60_000
    truth = {
        w.id
        for k in jira_keys(org)
        for i in live(org, k)
        for w in i.worklogs
        if ms(jira.worklog_updated(org, w)) <= horizon
    }
    got: list[int] = []
    url = f"{sim.jira_url}/rest/api/3/worklog/updated?since=0"
    with cloud(sim) as client:
        for _ in range(1000):
            page = client.get(url).json()
            got += [v["worklogId"] for v in page["values"]]
            stamps = [v["updatedTime"] for v in page["values"]]
            assert stamps == sorted(stamps) and all(page["since"] <= s for s in stamps)
            if page["lastPage"]:
                break
            url = page["nextPage"]
        listed = client.post("/rest/api/3/worklog/list", json={"ids": got[:50]}).json()
    assert len(got) == len(set(got)) and set(got) == truth
    assert [int(w["id"]) for w in listed] == got[:50]
    owner = {w.id: i for k in jira_keys(org) for i in live(org, k) for w in i.worklogs}
    assert all(w["issueId"] == str(owner[int(w["id"])].id) for w in listed)


def test_deleted_issues_show_up_in_the_deleted_worklog_feed(fresh: Simulator) -> None:
    org = fresh.org
    cs = org.advance(20)
    gone = [org.items[i] for i in cs.deleted if org.items[i].scope.system == "jira"]
    expected = {w.id for i in gone for w in i.worklogs}
    with cloud(fresh) as client:
        page = client.get("/rest/api/3/worklog/deleted", params={"since": ms(cs.start)}).json()
        for item in gone:
            r = client.get(f"/rest/api/3/issue/{item.key}")
            assert r.status_code == 404
            assert r.json()["errorMessages"] == [jira.ISSUE_NOT_FOUND]
    assert {v["worklogId"] for v in page["values"]} == expected


def test_issue_worklogs_and_embedded_worklogs_agree(sim: Simulator) -> None:
    org = sim.org
    item = next(i for k in jira_keys(org) for i in live(org, k) if len(i.worklogs) >= 2)
    with cloud(sim) as client:
        full = client.get(f"/rest/api/3/issue/{item.key}/worklog").json()
        embedded = client.get(f"/rest/api/3/issue/{item.id}", params={"fields": "worklog"}).json()
    assert full["total"] == len(item.worklogs) == embedded["fields"]["worklog"]["total"]
    assert sum(w["timeSpentSeconds"] for w in full["worklogs"]) == item.time_spent_s
    assert full["worklogs"][0]["comment"]["type"] == "doc"  # v3: ADF


# --- the issue payload ----------------------------------------------------------------


def test_issue_links_point_the_right_way(sim: Simulator) -> None:
    org = sim.org
    link = next(
        lk
        for lk in org.links
        if lk.kind == "blocks"
        and lk.via == "native"
        and org.items[lk.from_id].scope.system == "jira"
    )
    blocker, blocked = org.items[link.from_id], org.items[link.to_id]
    with cloud(sim) as client:
        a = client.get(f"/rest/api/3/issue/{blocker.key}", params={"fields": "issuelinks"}).json()
        b = client.get(f"/rest/api/3/issue/{blocked.key}", params={"fields": "issuelinks"}).json()
    out = next(x for x in a["fields"]["issuelinks"] if x["id"] == str(link.id))
    inn = next(x for x in b["fields"]["issuelinks"] if x["id"] == str(link.id))
    assert out["type"]["outward"] == "blocks" and out["outwardIssue"]["key"] == blocked.key
    assert inn["type"]["inward"] == "is blocked by" and inn["inwardIssue"]["key"] == blocker.key
    assert "inwardIssue" not in out and "outwardIssue" not in inn


def test_issue_fields_carry_points_sprints_versions_and_parent(sim: Simulator) -> None:
    org = sim.org
    item = next(
        i
        for k in jira_keys(org)
        for i in live(org, k)
        if i.parent_id and i.release_id and i.points is not None and org.current_sprint(i)
    )
    with cloud(sim) as client:
        body = client.get(f"/rest/api/3/issue/{item.key}").json()
    f = body["fields"]
    assert f[JIRA_STORY_POINTS_FIELD] == item.points
    assert f["status"]["statusCategory"]["key"] == item.jira_status_category
    assert f["parent"]["id"] == str(item.parent_id)
    assert [v["id"] for v in f["fixVersions"]] == [str(org.releases[item.release_id].native_id)]
    in_sprints = {m.sprint_id for m in item.sprints if m.removed is None}
    assert {s["id"] for s in f[JIRA_SPRINT_FIELD]} == in_sprints
    assert all(("completeDate" in s) == (s["state"] == "closed") for s in f[JIRA_SPRINT_FIELD])
    assert f["created"].endswith("+0000") and len(f["created"]) == len(
        "2021-01-17T12:34:00.000+0000"
    )


def test_cross_tool_blockers_are_in_the_description(sim: Simulator) -> None:
    org = sim.org
    link = next(
        (lk for lk in org.links if lk.via == "body" and org.items[lk.to_id].scope.system == "jira"),
        None,
    )
    if link is None:
        pytest.skip("this seed has no cross-tool blocker written in a Jira description")
    item, blocker = org.items[link.to_id], org.items[link.from_id]
    with cloud(sim) as client:
        v3 = client.get(f"/rest/api/3/issue/{item.key}", params={"fields": "description"})
        v2 = client.get(f"/rest/api/2/issue/{item.key}", params={"fields": "description"})
    adf = v3.json()["fields"]["description"]
    texts = [n.get("text") for p in adf["content"] for n in p["content"]]
    assert f"Blocked by {blocker.key}" in texts
    assert f"Blocked by {blocker.key}" in v2.json()["fields"]["description"]


def test_field_catalogue_has_both_point_fields_and_the_sprint_field(sim: Simulator) -> None:
    with cloud(sim) as client:
        cloud_fields = {f["id"]: f for f in client.get("/rest/api/3/field").json()}
    with dc(sim) as client:
        dc_fields = {f["id"]: f for f in client.get("/rest/api/2/field").json()}
    customs = {f["schema"]["custom"] for f in cloud_fields.values() if f["custom"]}
    assert "com.pyxis.greenhopper.jira:jsw-story-points" in customs
    assert "com.atlassian.jira.plugin.system.customfieldtypes:float" in customs
    assert cloud_fields[JIRA_SPRINT_FIELD]["schema"]["custom"].endswith(":gh-sprint")
    assert dc_fields[JIRA_STORY_POINTS_FIELD]["schema"]["custom"].endswith(":float")
    with cloud(sim) as client:
        board = client.get("/rest/agile/1.0/board").json()["values"][0]
        conf = client.get(f"/rest/agile/1.0/board/{board['id']}/configuration").json()
    assert conf["estimation"]["field"]["fieldId"] == JIRA_STORY_POINTS_FIELD


# --- projects and versions ------------------------------------------------------------


def test_projects_and_their_404(sim: Simulator) -> None:
    keys = jira_keys(sim.org)
    with cloud(sim) as client:
        found = client.get("/rest/api/3/project/search", params=[("keys", k) for k in keys])
        one = client.get(f"/rest/api/3/project/{keys[0]}")
        missing = client.get("/rest/api/3/project/XYZ")
    assert sorted(p["key"] for p in found.json()["values"]) == keys
    assert one.json()["key"] == keys[0]
    assert missing.status_code == 404
    assert missing.json() == {
        "errorMessages": ["No project could be found with key 'XYZ'."],
        "errors": {},
    }


def test_versions_page_to_the_end(sim: Simulator) -> None:
    org = sim.org
    key = jira_keys(org)[0]
    truth = org.releases_of(key)
    got: list[dict[str, Any]] = []
    start = 0
    with cloud(sim) as client:
        unpaged = client.get(f"/rest/api/3/project/{key}/versions").json()
        while True:
            page = client.get(
                f"/rest/api/3/project/{key}/version", params={"startAt": start, "maxResults": 2}
            ).json()
            got += page["values"]
            start += len(page["values"])
            if page["isLast"]:
                break
        released = client.get(
            f"/rest/api/3/project/{key}/version", params={"status": "released", "maxResults": 50}
        ).json()
    assert len(got) == len(truth) == len(unpaged)
    assert {v["id"] for v in got} == {str(r.native_id) for r in truth}
    assert released["total"] == sum(r.released_at is not None for r in truth)
    assert all(len(v["releaseDate"]) == 10 for v in got)


# --- agile ----------------------------------------------------------------------------


def test_boards_and_sprints_page_to_the_end(sim: Simulator) -> None:
    org = sim.org
    with cloud(sim) as client:
        boards = []
        start = 0
        while True:
            page = client.get("/rest/agile/1.0/board", params={"startAt": start, "maxResults": 1})
            body = page.json()
            boards += body["values"]
            start += len(body["values"])
            if body["isLast"]:
                break
        board = boards[0]
        sprints = []
        start = 0
        while True:
            body = client.get(
                f"/rest/agile/1.0/board/{board['id']}/sprint",
                params={"startAt": start, "maxResults": 5},
            ).json()
            sprints += body["values"]
            start += len(body["values"])
            assert body["isLast"] == (start >= body["total"])
            if body["isLast"]:
                break
        by_project = client.get(
            "/rest/agile/1.0/board", params={"projectKeyOrId": board["location"]["projectKey"]}
        ).json()
    jira_boards = [c for c in org.cadences if c.system == "jira"]
    assert sorted(b["id"] for b in boards) == sorted(c.native_id for c in jira_boards)
    assert [b["id"] for b in by_project["values"]] == [board["id"]]
    cad = next(c for c in jira_boards if c.native_id == board["id"])
    assert [s["id"] for s in sprints] == sorted(
        (s.native_id for s in org.sprints_of(cad)),
        key=lambda n: ({"closed": 0, "active": 1, "future": 2}[org.sprints[n].state], n),
    )
    assert all(("completeDate" in s) == (s["state"] == "closed") for s in sprints)


def test_sprint_issues_page_by_total_without_is_last(sim: Simulator) -> None:
    org = sim.org
    cad = next(c for c in org.cadences if c.system == "jira")
    spr = max(org.sprints_of(cad), key=lambda s: len(org.sprint_members(s)))
    truth = {i.id for i, m in org.sprint_members(spr) if m.removed is None}
    got: list[dict[str, Any]] = []
    start = 0
    with cloud(sim) as client:
        while True:
            body = client.get(
                f"/rest/agile/1.0/sprint/{spr.native_id}/issue",
                params={"startAt": start, "maxResults": 7, "fields": "summary,sprint"},
            ).json()
            assert "isLast" not in body and body["total"] == len(truth)
            got += body["issues"]
            start += len(body["issues"])
            if start >= body["total"]:
                break
        board = client.get(
            f"/rest/agile/1.0/board/{cad.native_id}/issue", params={"maxResults": 1}
        ).json()
    assert {int(i["id"]) for i in got} == truth
    assert board["total"] == len(live(org, cad.owner))


# --- errors, auth, faults -------------------------------------------------------------


def test_removed_search_answers_410(sim: Simulator) -> None:
    with cloud(sim) as client:
        for path in ("/rest/api/3/search", "/rest/api/2/search"):
            for r in (client.get(path, params={"jql": "id = 1"}), client.post(path, json={})):
                assert r.status_code == 410
                assert r.json() == {"errorMessages": [jira.REMOVED_SEARCH], "errors": {}}


@pytest.mark.parametrize(
    ("jql", "message"),
    [
        ("project = XYZ", "The value 'XYZ' does not exist for the field 'project'."),
        ("ORDER BY key", jira.UNBOUNDED),
        ("", jira.UNBOUNDED),
        (
            "project PAY",
            "Error in the JQL Query: Expecting operator but got 'PAY'. The valid operators are "
            "'=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'. "
            "(line 1, character 9)",
        ),
        ("project = {key} AND", "before the end of the query"),
        ('updated >= "2026/13/45 10:00"', "Date value '2026/13/45 10:00' for field 'updated'"),
        ("project = {key} ORDER BY " + ", ".join(["key"] * 8), "at most"),
        ("key = {key}-999999", "An issue with key '{key}-999999' does not exist"),
        ("nosuchfield = 1", "Field 'nosuchfield' does not exist"),
    ],
)
def test_bad_jql_answers_400_in_jira_words(sim: Simulator, jql: str, message: str) -> None:
    key = jira_keys(sim.org)[0]
    jql, message = jql.format(key=key), message.format(key=key)
    with cloud(sim) as client:
        r = client.get("/rest/api/3/search/jql", params={"jql": jql, "fields": "key"})
    assert r.status_code == 400
    body = r.json()
    assert body["errors"] == {} and len(body["errorMessages"]) == 1
    assert message in body["errorMessages"][0]


@pytest.mark.parametrize("max_results", [0, 5001, -1])
def test_max_results_out_of_range(sim: Simulator, max_results: int) -> None:
    key = jira_keys(sim.org)[0]
    with cloud(sim) as client:
        r = client.get(
            "/rest/api/3/search/jql", params={"jql": f"project = {key}", "maxResults": max_results}
        )
    assert r.status_code == 400
    assert r.json()["errorMessages"] == ["The max results parameter has to be between 1 and 5,000."]


def test_bad_credentials_get_jiras_401(sim: Simulator) -> None:
    bad = base64.b64encode(f"{TOKENS.jira_email}:wrong".encode()).decode()
    for url, headers in (
        (f"{sim.jira_url}/rest/api/3/myself", {"Authorization": f"Basic {bad}"}),
        (f"{sim.jira_url}/rest/api/3/field", {"Authorization": "Basic bm9ib2R5Om5vcGU="}),
        (f"{sim.jira_dc_url}/rest/api/2/search", {"Authorization": "Bearer nope"}),
    ):
        r = httpx.get(url, headers=headers)
        assert r.status_code == 401
        assert r.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"
        assert r.text == "Client must be authenticated to access this resource."


@pytest.mark.parametrize("variant", ["json", "html"])
def test_rate_limit_fault_sends_429_with_retry_after(sim: Simulator, variant: str) -> None:
    sim.faults.add(f"jira:ratelimit:path=/rest/api/3/search/jql,retry_after=3,variant={variant}")
    key = jira_keys(sim.org)[0]
    with cloud(sim) as client:
        limited = client.get("/rest/api/3/search/jql", params={"jql": f"project = {key}"})
        after = client.get("/rest/api/3/search/jql", params={"jql": f"project = {key}"})
    assert limited.status_code == 429 and after.status_code == 200
    assert limited.headers["Retry-After"] == "3"
    assert datetime.strptime(limited.headers["X-RateLimit-Reset"], "%Y-%m-%dT%H:%MZ")
    if variant == "json":
        assert limited.json()["errorMessages"] == [
            "The request has been rate-limited. Please try again later."
        ]
    else:
        assert limited.headers["content-type"].startswith("text/html")


def test_unknown_issue_and_board_are_404(sim: Simulator) -> None:
    key = jira_keys(sim.org)[0]
    with cloud(sim) as client:
        issue = client.get(f"/rest/api/3/issue/{key}-999999")
        board = client.get("/rest/agile/1.0/board/999999")
    assert issue.status_code == 404 and issue.json()["errorMessages"] == [jira.ISSUE_NOT_FOUND]
    assert board.status_code == 404
