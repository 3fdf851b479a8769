"""Jira connector over HTTP (respx): endpoints, paging, cursors, changelog completion, auth,
rate limits, deletions. Mapping itself is tested on real payloads in test_jira_mapping.py.

Every request goes through the real ``programview.http.HttpClient`` with a recording sleep, so
a 429's wait is asserted without waiting.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
import sqlalchemy as sa
from programview_connectors.jira import CLOUD_AUTH_HINT, JiraConnector
from programview_connectors.jira.mapping import ANNOTATION
from programview_connectors.jira.streams import epoch_ms, issues_jql
from pydantic import SecretStr
from test_jira_mapping import _raw as devlake_raw

from programview.config import SourceConfig, parse_config
from programview.errors import AuthError, ConfigError, NotFound
from programview.http import HttpClient
from programview.progress import Progress
from programview.sync.connector import Page, Record, SyncOptions
from programview.sync.engine import sync
from programview.warehouse import db

CLOUD = "https://acme.atlassian.net"
DC = "https://jira.example.com/ctx"
TOKEN = "atl-token-5b10a2844c20165700"
PAT = "dc-pat-NzA0MDk5ODc1OTEyOkP"

FIELDS = [
    {"id": "summary", "name": "Summary", "custom": False, "schema": {"type": "string"}},
    {
        "id": "customfield_10016",
        "name": "Story point estimate",
        "custom": True,
        "schema": {"type": "number", "custom": "com.pyxis.greenhopper.jira:jsw-story-points"},
    },
    {
        "id": "customfield_10020",
        "name": "Sprint",
        "custom": True,
        "schema": {"type": "array", "custom": "com.pyxis.greenhopper.jira:gh-sprint"},
    },
]
STATUSES = [
    {"id": "1", "name": "To Do", "statusCategory": {"key": "new"}},
    {"id": "3", "name": "In Progress", "statusCategory": {"key": "indeterminate"}},
    {"id": "5", "name": "Done", "statusCategory": {"key": "done"}},
]


class Recorder(Progress):
    def __init__(self) -> None:
        self.waits: list[tuple[str, float, str]] = []

    def wait(self, source: str, seconds: float, reason: str) -> None:
        self.waits.append((source, seconds, reason))


class Harness:
    def __init__(self, deployment: str = "cloud", **options: Any) -> None:
        self.base = CLOUD if deployment == "cloud" else DC
        credentials = (
            {"email": SecretStr("me@acme.test"), "api_token": SecretStr(TOKEN)}
            if deployment == "cloud"
            else {"token": SecretStr(PAT)}
        )
        self.source = SourceConfig(
            name="acme-jira",
            kind="jira",
            base_url=self.base,
            credentials=credentials,
            scopes=["PAY"],
            options={"deployment": deployment, **options},
        )
        self.slept: list[float] = []
        self.progress = Recorder()

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)

        self.http = HttpClient(
            self.base,
            source=self.source.name,
            headers=JiraConnector.auth_headers(self.source),
            secrets=[TOKEN, PAT],
            progress=self.progress,
            sleep=sleep,
        )
        self.connector = JiraConnector(self.source, self.http)
        self.connector.clock = lambda: datetime(2025, 2, 20, 10, 30)

    def url(self, path: str) -> str:
        return self.base + path

    def mock_prepare(self) -> None:
        v = "3" if self.connector.cloud else "2"
        respx.get(self.url(f"/rest/api/{v}/myself")).respond(json={"displayName": "Me"})
        respx.get(self.url(f"/rest/api/{v}/field")).respond(json=FIELDS)
        respx.get(self.url(f"/rest/api/{v}/status")).respond(json=STATUSES)


def run(coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(coro_fn())


async def collect(pages: AsyncIterator[Page]) -> list[Page]:
    return [page async for page in pages]


def query(call: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(str(call.request.url)).query).items()}


def issue(
    n: int,
    updated: str,
    *,
    histories: list[dict[str, Any]] | None = None,
    total: int | None = None,
    worklogs: list[dict[str, Any]] | None = None,
    worklog_total: int | None = None,
) -> dict[str, Any]:
    histories = histories or []
    worklogs = worklogs or []
    return {
        "id": str(10000 + n),
        "key": f"PAY-{n}",
        "self": f"{CLOUD}/rest/api/3/issue/{10000 + n}",
        "fields": {
            "summary": f"Item {n}",
            "status": {
                "id": "3",
                "name": "In Progress",
                "statusCategory": {"key": "indeterminate"},
            },
            "issuetype": {"name": "Story", "hierarchyLevel": 0},
            "created": "2025-01-02T10:00:00.000+0000",
            "updated": updated,
            "project": {"key": "PAY"},
            "customfield_10016": 3.0,
            "customfield_10020": [
                {"id": 38, "name": "PAY Sprint 14", "state": "active", "boardId": 5}
            ],
            "worklog": {
                "startAt": 0,
                "maxResults": 20,
                "total": len(worklogs) if worklog_total is None else worklog_total,
                "worklogs": worklogs,
            },
        },
        "changelog": {
            "startAt": 0,
            "maxResults": len(histories),
            "total": len(histories) if total is None else total,
            "histories": histories,
        },
    }


def status_history(
    hid: int, when: str, to: tuple[str, str] = ("3", "In Progress")
) -> dict[str, Any]:
    return {
        "id": str(hid),
        "created": when,
        "items": [
            {
                "field": "status",
                "fieldtype": "jira",
                "fieldId": "status",
                "from": "1",
                "fromString": "To Do",
                "to": to[0],
                "toString": to[1],
            }
        ],
    }


def worklog(wid: int, seconds: int = 3600) -> dict[str, Any]:
    return {
        "id": str(wid),
        "started": "2025-01-03T09:00:00.000+0000",
        "timeSpentSeconds": seconds,
        "author": {"displayName": "Mia"},
    }


# --- auth, discovery, scope -------------------------------------------------------------------


def test_auth_headers_cloud_basic_and_datacenter_bearer() -> None:
    cloud = Harness()
    header = JiraConnector.auth_headers(cloud.source)["Authorization"]
    assert header == "Basic " + base64.b64encode(f"me@acme.test:{TOKEN}".encode()).decode()
    dc = Harness("datacenter")
    assert JiraConnector.auth_headers(dc.source)["Authorization"] == f"Bearer {PAT}"
    missing = cloud.source.model_copy(update={"credentials": {"email": SecretStr("me@acme.test")}})
    with pytest.raises(ConfigError, match="api_token"):
        JiraConnector.auth_headers(missing)
    assert TOKEN not in repr(cloud.source) and TOKEN not in repr(cloud.http)


@respx.mock
def test_prepare_finds_fields_and_warns_on_several_story_point_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness()
    respx.get(h.url("/rest/api/3/myself")).respond(json={"displayName": "Me"})
    catalogue = [
        *FIELDS,
        {
            "id": "customfield_10026",
            "name": "Story Points",
            "custom": True,
            "schema": {
                "type": "number",
                "custom": "com.atlassian.jira.plugin.system.customfieldtypes:float",
            },
        },
    ]
    respx.get(h.url("/rest/api/3/field")).respond(json=catalogue)
    with caplog.at_level(logging.WARNING, logger="programview.connectors.jira"):
        run(h.connector.prepare)
    assert h.connector.settings.fields.story_points == "customfield_10016"
    assert h.connector.settings.fields.sprint == "customfield_10020"
    assert "customfield_10026" in caplog.text and "acme-jira" in caplog.text
    assert h.http.requests == 2  # /myself and /field; statuses only when issues change


@respx.mock
def test_cloud_401_names_the_source_and_suggests_an_expired_token() -> None:
    h = Harness()
    respx.get(h.url("/rest/api/3/myself")).respond(
        401,
        text="Client must be authenticated to access this resource.",
        headers={"X-Seraph-LoginReason": "AUTHENTICATED_FAILED"},
    )
    with pytest.raises(AuthError) as err:
        run(h.connector.prepare)
    message = str(err.value)
    assert "[acme-jira]" in message and "401" in message
    assert "expire within a year" in message and CLOUD_AUTH_HINT in message
    assert TOKEN not in message
    assert h.http.requests == 1  # never retried


@respx.mock
def test_datacenter_uses_v2_and_bearer() -> None:
    h = Harness("datacenter")
    h.mock_prepare()
    run(h.connector.prepare)
    calls = respx.calls
    assert [c.request.url.path for c in calls] == [
        "/ctx/rest/api/2/myself",
        "/ctx/rest/api/2/field",
    ]
    assert calls[0].request.headers["authorization"] == f"Bearer {PAT}"


@respx.mock
def test_missing_project_is_a_clear_not_found() -> None:
    h = Harness()
    respx.get(h.url("/rest/api/3/project/NOPE")).respond(
        404, json={"errorMessages": ["No project could be found with key 'NOPE'."], "errors": {}}
    )
    with pytest.raises(NotFound, match=r"\[acme-jira\] Jira project 'NOPE' does not exist"):
        run(lambda: h.connector.check_scope("NOPE"))


# --- the issue search: JQL, paging, cursor ----------------------------------------------


def test_jql_bound_is_epoch_ms_minus_lookback() -> None:
    cursor = {"updated": "2025-01-31T13:47:09.120000+00:00"}
    jql, bound = issues_jql("PAY", cursor, SyncOptions(lookback_minutes=10))
    expected = datetime(2025, 1, 31, 13, 37, 9, 120000, tzinfo=UTC)
    assert bound == expected
    assert (
        jql == f'project = "PAY" AND updated >= {epoch_ms(expected)} ORDER BY updated ASC, key ASC'
    )
    assert epoch_ms(expected) == 1738330629120
    first, none = issues_jql("PAY", None, SyncOptions())
    assert first == 'project = "PAY" ORDER BY updated ASC, key ASC' and none is None
    window, _ = issues_jql(
        "PAY",
        cursor,
        SyncOptions(since=datetime(2025, 1, 1, tzinfo=UTC), until=datetime(2025, 1, 2, tzinfo=UTC)),
    )
    assert "updated >= 1735689600000 AND updated <= 1735776000000" in window


@respx.mock
def test_cloud_search_pages_on_next_page_token_and_advances_the_cursor() -> None:
    h = Harness()
    h.mock_prepare()
    pages = [
        {
            "issues": [
                issue(1, "2025-02-01T10:00:00.000+0000"),
                issue(2, "2025-02-01T11:00:00.000+0000"),
            ],
            "nextPageToken": "CAEaAggB",
            "isLast": False,
        },
        {"issues": [issue(3, "2025-02-01T12:30:00.000+0000")], "isLast": True},
    ]
    search = respx.get(h.url("/rest/api/3/search/jql")).mock(
        side_effect=[httpx.Response(200, json=p) for p in pages]
    )
    run(h.connector.prepare)
    stream = h.connector.streams()[2]
    got = run(
        lambda: collect(
            stream.pages(
                "PAY", {"updated": "2025-01-31T00:00:00+00:00"}, SyncOptions(lookback_minutes=10)
            )
        )
    )

    assert [len(p.records) for p in got] == [2, 1]
    # The cursor: newest updated, and the issues within the lookback window below it.
    at = {
        n: epoch_ms(datetime(2025, 2, 1, h_, m, tzinfo=UTC))
        for n, h_, m in ((1, 10, 0), (2, 11, 0), (3, 12, 30))
    }
    assert got[0].cursor == {"updated": "2025-02-01T11:00:00+00:00", "recent": {"10002": at[2]}}
    assert got[1].cursor == {"updated": "2025-02-01T12:30:00+00:00", "recent": {"10003": at[3]}}
    first, second = (query(c) for c in search.calls)
    bound = epoch_ms(datetime(2025, 1, 30, 23, 50, tzinfo=UTC))
    assert first["jql"] == f'project = "PAY" AND updated >= {bound} ORDER BY updated ASC, key ASC'
    assert first["maxResults"] == "5000" and first["expand"] == "changelog"
    assert "nextPageToken" not in first and second["nextPageToken"] == "CAEaAggB"
    fields = first["fields"].split(",")
    assert {"customfield_10016", "customfield_10020", "status", "issuelinks", "worklog"} <= set(
        fields
    )
    assert "description" not in fields and "comment" not in fields
    # Mapped through the connector's settings: story points and sprint membership land.
    records = stream.map(got[0].records[0], "PAY")
    item = next(r for r in records if isinstance(r, Record) and r.table == "work_items")
    assert item.values["story_points"] == 3.0 and item.values["item_key"] == "PAY-1"


@respx.mock
def test_datacenter_search_pages_on_start_at_until_total() -> None:
    h = Harness("datacenter")
    h.mock_prepare()
    batch1 = [issue(n, f"2025-02-01T10:0{n}:00.000+0000") for n in range(1, 4)]
    batch2 = [issue(n, f"2025-02-01T10:0{n}:00.000+0000") for n in range(4, 6)]
    search = respx.get(h.url("/rest/api/2/search")).mock(
        side_effect=[
            httpx.Response(200, json={"startAt": 0, "maxResults": 3, "total": 5, "issues": batch1}),
            httpx.Response(200, json={"startAt": 3, "maxResults": 3, "total": 5, "issues": batch2}),
        ]
    )
    run(h.connector.prepare)
    got = run(lambda: collect(h.connector.streams()[2].pages("PAY", None, SyncOptions())))
    assert sum(len(p.records) for p in got) == 5
    starts = [query(c)["startAt"] for c in search.calls]
    assert starts == ["0", "3"]  # advances by what the server returned, not by maxResults
    assert query(search.calls[0])["maxResults"] == "1000"
    assert got[-1].cursor["updated"] == "2025-02-01T10:05:00+00:00"
    assert set(got[-1].cursor["recent"]) == {"10001", "10002", "10003", "10004", "10005"}


@respx.mock
def test_issue_edited_while_paging_rewinds_the_cursor() -> None:
    """PAY-1 is edited between pages and comes back at the end of the listing: an offset
    listing has then skipped one issue at the boundary, so the next sync re-reads the run's
    window instead of trusting the newest timestamp."""
    h = Harness("datacenter")
    h.mock_prepare()
    respx.get(h.url("/rest/api/2/search")).mock(
        side_effect=[
            httpx.Response(
                200,
                json={
                    "total": 3,
                    "issues": [
                        issue(1, "2025-02-01T10:00:00.000+0000"),
                        issue(2, "2025-02-01T10:05:00.000+0000"),
                    ],
                },
            ),
            httpx.Response(
                200, json={"total": 3, "issues": [issue(1, "2025-02-01T10:20:00.000+0000")]}
            ),
        ]
    )
    run(h.connector.prepare)
    got = run(lambda: collect(h.connector.streams()[2].pages("PAY", None, SyncOptions())))
    assert got[-1].records == []
    assert got[-1].cursor == {"updated": "2025-02-01T10:00:00+00:00", "recent": {}}


@respx.mock
def test_lookback_overlap_costs_no_request_for_unchanged_issues() -> None:
    """The search overlaps the last sync by the lookback window; issues it returns with
    the ``updated`` the cursor remembers are dropped before any per-issue work."""
    h = Harness()
    h.mock_prepare()
    same = issue(1, "2025-02-01T10:00:00.000+0000", total=50)  # truncated: would cost a call
    changed = issue(2, "2025-02-01T10:03:00.000+0000")
    respx.get(h.url("/rest/api/3/search/jql")).respond(
        json={"issues": [same, changed], "isLast": True}
    )
    bulk = respx.post(h.url("/rest/api/3/changelog/bulkfetch")).respond(
        json={"issueChangeLogs": []}
    )
    cursor = {
        "updated": "2025-02-01T10:01:00+00:00",
        "recent": {
            "10001": epoch_ms(datetime(2025, 2, 1, 10, tzinfo=UTC)),
            "10002": epoch_ms(datetime(2025, 2, 1, 10, 1, tzinfo=UTC)),
        },
    }
    run(h.connector.prepare)
    (page,) = run(lambda: collect(h.connector.streams()[2].pages("PAY", cursor, SyncOptions())))
    assert [i["key"] for i in page.records] == ["PAY-2"]
    assert bulk.call_count == 0
    assert page.cursor["updated"] == "2025-02-01T10:03:00+00:00"
    assert set(page.cursor["recent"]) == {"10001", "10002"}  # both still inside the window

    respx.get(h.url("/rest/api/3/search/jql")).respond(json={"issues": [same], "isLast": True})
    before = h.http.requests
    (again,) = run(
        lambda: collect(h.connector.streams()[2].pages("PAY", page.cursor, SyncOptions()))
    )
    assert again.records == [] and h.http.requests - before == 1  # just the search


# --- changelog and worklog completion ---------------------------------------------------------


@respx.mock
def test_truncated_changelogs_are_completed_in_one_bulk_call() -> None:
    h = Harness()
    h.mock_prepare()
    full = issue(
        1,
        "2025-02-01T10:00:00.000+0000",
        histories=[status_history(1, "2025-01-05T10:00:00.000+0000")],
    )
    cut = issue(
        2,
        "2025-02-01T10:00:00.000+0000",
        histories=[status_history(9, "2025-01-20T10:00:00.000+0000", ("5", "Done"))],
        total=3,
    )
    cut2 = issue(3, "2025-02-01T10:00:00.000+0000", histories=[], total=1)
    respx.get(h.url("/rest/api/3/search/jql")).respond(
        json={"issues": [full, cut, cut2], "isLast": True}
    )
    bulk = respx.post(h.url("/rest/api/3/changelog/bulkfetch")).mock(
        side_effect=[
            httpx.Response(
                200,
                json={
                    "issueChangeLogs": [
                        {
                            "issueId": "10002",
                            "changeHistories": [status_history(7, "2025-01-06T10:00:00.000+0000")],
                        },
                    ],
                    "nextPageToken": "next",
                },
            ),
            httpx.Response(
                200,
                json={
                    "issueChangeLogs": [
                        {"issueId": "10002", "changeHistories": [status_history(8, 1736330400)]},
                        {
                            "issueId": "10003",
                            "changeHistories": [status_history(4, "2025-01-04T10:00:00.000+0000")],
                        },
                    ]
                },
            ),
        ]
    )
    run(h.connector.prepare)
    stream = h.connector.streams()[2]
    (page,) = run(lambda: collect(stream.pages("PAY", None, SyncOptions())))

    assert bulk.call_count == 2
    body = json.loads(bulk.calls[0].request.content)
    assert body["issueIdsOrKeys"] == ["10002", "10003"]  # never the complete one
    assert body["fieldIds"] == ["status", "customfield_10020", "customfield_10016"]
    assert json.loads(bulk.calls[1].request.content)["nextPageToken"] == "next"
    histories = page.records[1]["changelog"]["histories"]
    assert [h_["id"] for h_ in histories] == ["7", "8", "9"]  # oldest first, embedded kept
    assert page.records[1]["changelog"]["total"] == 3
    assert page.records[1][ANNOTATION]["status_categories"] == {
        "1": "new",
        "3": "indeterminate",
        "5": "done",
    }
    changes = [
        r
        for r in stream.map(page.records[1], "PAY")
        if isinstance(r, Record) and r.table == "status_changes"
    ]
    assert [c.values["change_id"] for c in changes] == ["7", "8", "9"]
    assert changes[-1].values["to_category"] == "done"


@respx.mock
def test_truncated_changelogs_of_several_pages_share_one_bulk_call() -> None:
    h = Harness()
    h.mock_prepare()
    pages = [
        {
            "issues": [issue(n, f"2025-02-01T10:0{n}:00.000+0000", total=30)],
            "nextPageToken": f"t{n}",
            "isLast": False,
        }
        for n in range(1, 4)
    ]
    pages[-1] = {"issues": pages[-1]["issues"], "isLast": True}
    respx.get(h.url("/rest/api/3/search/jql")).mock(
        side_effect=[httpx.Response(200, json=p) for p in pages]
    )
    bulk = respx.post(h.url("/rest/api/3/changelog/bulkfetch")).respond(
        json={"issueChangeLogs": []}
    )
    run(h.connector.prepare)
    got = run(lambda: collect(h.connector.streams()[2].pages("PAY", None, SyncOptions())))
    assert bulk.call_count == 1
    assert json.loads(bulk.calls[0].request.content)["issueIdsOrKeys"] == [
        "10001",
        "10002",
        "10003",
    ]
    # Still three pages, committed in order, each with the cursor of what it holds.
    assert [p.records[0]["key"] for p in got] == ["PAY-1", "PAY-2", "PAY-3"]
    assert [p.cursor["updated"] for p in got] == [
        "2025-02-01T10:01:00+00:00",
        "2025-02-01T10:02:00+00:00",
        "2025-02-01T10:03:00+00:00",
    ]


@respx.mock
def test_no_extra_request_when_nothing_is_truncated() -> None:
    h = Harness()
    h.mock_prepare()
    items = [issue(n, "2025-02-01T10:00:00.000+0000", worklogs=[worklog(n)]) for n in range(1, 4)]
    respx.get(h.url("/rest/api/3/search/jql")).respond(json={"issues": items, "isLast": True})
    run(h.connector.prepare)
    before = h.http.requests
    run(lambda: collect(h.connector.streams()[2].pages("PAY", None, SyncOptions())))
    assert h.http.requests - before == 2  # the search and the status catalogue, nothing per issue


@respx.mock
def test_without_bulk_fetch_changelogs_come_per_issue() -> None:
    h = Harness()
    h.mock_prepare()
    respx.get(h.url("/rest/api/3/search/jql")).respond(
        json={"issues": [issue(2, "2025-02-01T10:00:00.000+0000", total=150)], "isLast": True}
    )
    respx.post(h.url("/rest/api/3/changelog/bulkfetch")).respond(
        404, json={"errorMessages": ["Not found"]}
    )
    per_issue = respx.get(h.url("/rest/api/3/issue/10002/changelog")).mock(
        side_effect=[
            httpx.Response(
                200,
                json={
                    "startAt": 0,
                    "maxResults": 100,
                    "total": 150,
                    "isLast": False,
                    "values": [
                        status_history(n, "2025-01-05T10:00:00.000+0000") for n in range(100)
                    ],
                },
            ),
            httpx.Response(
                200,
                json={
                    "startAt": 100,
                    "maxResults": 100,
                    "total": 150,
                    "isLast": True,
                    "values": [
                        status_history(n, "2025-01-06T10:00:00.000+0000") for n in range(100, 150)
                    ],
                },
            ),
        ]
    )
    run(h.connector.prepare)
    (page,) = run(lambda: collect(h.connector.streams()[2].pages("PAY", None, SyncOptions())))
    assert [query(c)["startAt"] for c in per_issue.calls] == ["0", "100"]
    assert len(page.records[0]["changelog"]["histories"]) == 150
    assert h.connector.bulk_changelog is False


@respx.mock
def test_datacenter_truncated_changelog_and_long_worklogs_per_issue() -> None:
    h = Harness("datacenter")
    h.mock_prepare()
    long = issue(
        4,
        "2025-02-01T10:00:00.000+0000",
        total=2,
        worklogs=[worklog(n) for n in range(20)],
        worklog_total=25,
    )
    respx.get(h.url("/rest/api/2/search")).respond(json={"total": 1, "issues": [long]})
    one = respx.get(h.url("/rest/api/2/issue/10004")).respond(
        json={
            "changelog": {
                "histories": [
                    status_history(1, "2025-01-05T10:00:00.000+0000"),
                    status_history(2, "2025-01-06T10:00:00.000+0000"),
                ]
            }
        }
    )
    logs = respx.get(h.url("/rest/api/2/issue/10004/worklog")).respond(
        json={
            "startAt": 0,
            "maxResults": 5000,
            "total": 25,
            "worklogs": [worklog(n) for n in range(25)],
        }
    )
    run(h.connector.prepare)
    (page,) = run(lambda: collect(h.connector.streams()[2].pages("PAY", None, SyncOptions())))
    assert query(one.calls[0]) == {"fields": "status", "expand": "changelog"}
    assert logs.call_count == 1
    record = page.records[0]
    assert len(record["changelog"]["histories"]) == 2
    assert len(record["fields"]["worklog"]["worklogs"]) == 25
    worklogs = [
        r
        for r in h.connector.streams()[2].map(record, "PAY")
        if getattr(r, "table", "") == "worklogs"
    ]
    assert len(worklogs) == 26  # the Replace and 25 rows


# --- rate limits ------------------------------------------------------------------------


@respx.mock
def test_429_waits_retry_after_and_goes_on() -> None:
    h = Harness()
    h.mock_prepare()
    respx.get(h.url("/rest/api/3/search/jql")).mock(
        side_effect=[
            httpx.Response(
                429,
                headers={"Retry-After": "7", "RateLimit-Reason": "jira-burst-based"},
                json={"errorMessages": ["The request has been rate-limited."]},
            ),
            httpx.Response(
                200, json={"issues": [issue(1, "2025-02-01T10:00:00.000+0000")], "isLast": True}
            ),
        ]
    )
    run(h.connector.prepare)
    got = run(lambda: collect(h.connector.streams()[2].pages("PAY", None, SyncOptions())))
    assert len(got[0].records) == 1
    assert h.slept == [7.0]
    assert (
        h.progress.waits
        and h.progress.waits[0][0] == "acme-jira"
        and "429" in h.progress.waits[0][2]
    )


# --- boards and sprints ---------------------------------------------------------------------


@respx.mock
def test_sprints_from_every_scrum_board_with_agile_paging() -> None:
    h = Harness()
    h.mock_prepare()
    respx.get(h.url("/rest/agile/1.0/board")).mock(
        side_effect=[
            httpx.Response(
                200,
                json={
                    "startAt": 0,
                    "maxResults": 2,
                    "total": 4,
                    "isLast": False,
                    "values": [
                        {"id": 5, "type": "scrum", "location": {"projectKey": "PAY"}},
                        {"id": 6, "type": "kanban", "location": {"projectKey": "PAY"}},
                    ],
                },
            ),
            httpx.Response(
                200,
                json={
                    "startAt": 2,
                    "maxResults": 2,
                    "total": 4,
                    "isLast": True,
                    "values": [
                        {
                            "id": 7,
                            "type": "scrum",
                            "location": {"projectKey": "WEB"},
                        },  # shared board of WEB
                        {"id": 8, "type": "simple", "location": {"projectKey": "PAY"}},
                    ],
                },
            ),
        ]
    )
    sprint = lambda sid, board, state="closed": {  # noqa: E731
        "id": sid,
        "state": state,
        "name": f"S{sid}",
        "originBoardId": board,
        "startDate": "2025-01-06T09:00:00.000Z",
        "endDate": "2025-01-20T09:00:00.000Z",
    }
    board5 = respx.get(h.url("/rest/agile/1.0/board/5/sprint")).mock(
        side_effect=[
            httpx.Response(
                200,
                json={
                    "startAt": 0,
                    "maxResults": 2,
                    "isLast": False,
                    "values": [sprint(1, 5), sprint(2, 5)],
                },
            ),
            httpx.Response(
                200,
                json={
                    "startAt": 2,
                    "maxResults": 2,
                    "isLast": True,
                    "values": [sprint(3, 5, "active"), sprint(9, 7, "future")],
                },
            ),
        ]
    )
    respx.get(h.url("/rest/agile/1.0/board/8/sprint")).respond(
        400, json={"errorMessages": ["The board does not support sprints"]}
    )
    run(h.connector.prepare)
    got = run(lambda: collect(h.connector.streams()[0].pages("PAY", None, SyncOptions())))
    ids = [s["id"] for p in got for s in p.records]
    assert ids == [1, 2, 3]  # sprint 9 belongs to WEB's board; kanban board 6 never asked
    assert [query(c)["startAt"] for c in board5.calls] == ["0", "2"]
    assert not any("/board/6/" in str(c.request.url) for c in respx.calls)
    (rec,) = h.connector.streams()[0].map(got[0].records[0], "PAY")
    assert rec.values["scope"] == "PAY" and rec.values["state"] == "closed"


# --- versions --------------------------------------------------------------------------------


@respx.mock
def test_versions_remember_when_first_seen_released() -> None:
    h = Harness()
    h.mock_prepare()
    v1 = {
        "id": "100",
        "name": "v1",
        "released": True,
        "archived": False,
        "releaseDate": "2025-01-10",
    }
    v2 = {
        "id": "200",
        "name": "v2",
        "released": False,
        "archived": False,
        "releaseDate": "2025-02-14",
    }
    route = respx.get(h.url("/rest/api/3/project/PAY/versions")).mock(
        side_effect=[
            httpx.Response(200, json=[v1, v2]),
            httpx.Response(200, json=[v1, dict(v2, released=True, releaseDate="2025-02-20")]),
            httpx.Response(200, json=[v1, dict(v2, released=True, releaseDate="2025-02-20")]),
        ]
    )
    run(h.connector.prepare)
    stream = h.connector.streams()[1]

    (first,) = run(lambda: collect(stream.pages("PAY", None, SyncOptions())))
    assert first.cursor == {"unreleased": ["200"], "released_at": {}}
    assert ANNOTATION not in first.records[0]  # released before we ever saw it

    h.connector.clock = lambda: datetime(2025, 2, 20, 10, 30)
    (second,) = run(lambda: collect(stream.pages("PAY", first.cursor, SyncOptions())))
    assert second.records[1][ANNOTATION] == {
        "seen_unreleased": True,
        "first_seen_released_at": "2025-02-20T10:30:00",
    }
    assert second.cursor == {"unreleased": [], "released_at": {"200": "2025-02-20T10:30:00"}}

    h.connector.clock = lambda: datetime(2025, 3, 1)
    (third,) = run(lambda: collect(stream.pages("PAY", second.cursor, SyncOptions())))
    assert third.records == second.records  # same payload: skipped by hash, no new date
    (rec,) = stream.map(third.records[1], "PAY")
    assert rec.values["released_at"] == datetime(2025, 2, 20, 10, 30)
    assert route.call_count == 3


@respx.mock
def test_versions_come_with_the_project_when_it_lists_them() -> None:
    h = Harness()
    respx.get(h.url("/rest/api/3/project/PAY")).respond(
        json={"id": "1", "key": "PAY", "versions": [{"id": "100", "name": "v1", "released": False}]}
    )
    run(lambda: h.connector.check_scope("PAY"))
    versions = run(lambda: h.connector.project_versions("PAY"))
    assert versions[0]["name"] == "v1" and h.http.requests == 1


# --- deletions ---------------------------------------------------------------------------------


@respx.mock
def test_reconcile_lists_ids_and_refuses_a_short_listing() -> None:
    h = Harness()
    search = respx.get(h.url("/rest/api/3/search/jql")).mock(
        side_effect=[
            httpx.Response(200, json={"issues": [{"id": "1"}, {"id": "2"}], "nextPageToken": "t"}),
            httpx.Response(200, json={"issues": [{"id": "3"}], "isLast": True}),
            httpx.Response(200, json={"issues": [{"id": "1"}], "isLast": True}),
        ]
    )
    count = respx.post(h.url("/rest/api/3/search/approximate-count")).mock(
        side_effect=[httpx.Response(200, json={"count": 3}), httpx.Response(200, json={"count": 3})]
    )
    live = run(lambda: h.connector.live_ids("PAY"))
    assert live is not None and live.native_ids == {"1", "2", "3"} and live.stream == "issues"
    assert (
        query(search.calls[0])["fields"] == "id" and query(search.calls[0])["maxResults"] == "5000"
    )
    assert json.loads(count.calls[0].request.content) == {"jql": 'project = "PAY"'}
    # Jira counts 3 but the listing gave 1: deletes nothing.
    assert run(lambda: h.connector.live_ids("PAY")) is None
    off = Harness(reconcile=False)
    assert run(lambda: off.connector.live_ids("PAY")) is None


@respx.mock
def test_datacenter_reconcile_uses_the_total() -> None:
    h = Harness("datacenter")
    respx.get(h.url("/rest/api/2/search")).respond(
        json={"total": 2, "issues": [{"id": "1"}, {"id": "2"}]}
    )
    live = run(lambda: h.connector.live_ids("PAY"))
    assert live is not None and live.native_ids == {"1", "2"}


@respx.mock
def test_missing_issues_are_told_apart() -> None:
    h = Harness()
    respx.get(h.url("/rest/api/3/issue/1")).respond(
        404, json={"errorMessages": ["Issue does not exist"]}
    )
    respx.get(h.url("/rest/api/3/issue/2")).respond(403, json={"errorMessages": ["Forbidden"]})
    respx.get(h.url("/rest/api/3/issue/3")).respond(
        json={"id": "3", "fields": {"project": {"key": "WEB"}}}
    )
    verdicts = run(lambda: h.connector.classify_missing("PAY", ["1", "2", "3"]))
    assert verdicts == {"1": "deleted", "2": "hidden", "3": "moved"}


# --- through the sync engine into the warehouse (SQLite and PostgreSQL) ------------------------


class DevLakeSite:
    """A Jira Cloud site in memory serving Apache DevLake's real EE payloads (30 issues,
    30 sprints, the status catalogue) through the endpoints the connector calls."""

    def __init__(self) -> None:
        rows = devlake_raw("raw_tables/_raw_jira_api_issues.csv")
        self.issues = [i for i in rows if i["key"].startswith("EE-")]
        self.sprints = devlake_raw("raw_tables/_raw_jira_api_sprints.csv")
        self.statuses = devlake_raw("raw_tables/_raw_jira_api_status.csv")
        versions: dict[str, dict[str, Any]] = {}
        for item in self.issues:
            for v in item["fields"].get("fixVersions") or []:
                versions[v["id"]] = {
                    k: v[k] for k in ("id", "name", "released", "archived", "releaseDate") if k in v
                }
        self.versions = list(versions.values())
        self.log: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.log.append(path)
        params = dict(request.url.params)
        if path == "/rest/api/3/myself":
            return httpx.Response(200, json={"displayName": "Me"})
        if path == "/rest/api/3/field":
            return httpx.Response(
                200,
                json=[
                    {
                        "id": "customfield_10024",
                        "name": "Story Points",
                        "custom": True,
                        "schema": {
                            "type": "number",
                            "custom": "com.atlassian.jira.plugin.system.customfieldtypes:float",
                        },
                    },
                    {
                        "id": "customfield_10020",
                        "name": "Sprint",
                        "custom": True,
                        "schema": {
                            "type": "array",
                            "custom": "com.pyxis.greenhopper.jira:gh-sprint",
                        },
                    },
                ],
            )
        if path == "/rest/api/3/status":
            return httpx.Response(200, json=self.statuses)
        if path == "/rest/api/3/project/EE":
            return httpx.Response(200, json={"id": "10003", "key": "EE", "versions": self.versions})
        if path == "/rest/agile/1.0/board":
            return httpx.Response(
                200,
                json={
                    "startAt": 0,
                    "total": 1,
                    "isLast": True,
                    "values": [{"id": 8, "type": "scrum", "location": {"projectKey": "EE"}}],
                },
            )
        if path == "/rest/agile/1.0/board/8/sprint":
            start = int(params["startAt"])
            page = self.sprints[start : start + 50]
            return httpx.Response(
                200,
                json={"startAt": start, "isLast": start + 50 >= len(self.sprints), "values": page},
            )
        if path == "/rest/api/3/search/jql":
            bound = re.search(r"updated >= (\d+)", params["jql"])
            wanted = [
                i
                for i in self.issues
                if bound is None
                or epoch_ms(datetime.fromisoformat(i["fields"]["updated"])) >= int(bound.group(1))
            ]
            wanted.sort(key=lambda i: (datetime.fromisoformat(i["fields"]["updated"]), i["key"]))
            start = int(params.get("nextPageToken") or 0)
            size = 12  # pages shrink when many fields are asked for
            page = wanted[start : start + size]
            if params["fields"] == "id":
                page = [{"id": i["id"]} for i in page]
            body: dict[str, Any] = {"issues": page, "isLast": start + size >= len(wanted)}
            if start + size < len(wanted):
                body["nextPageToken"] = str(start + size)
            return httpx.Response(200, json=body)
        if path == "/rest/api/3/search/approximate-count":
            return httpx.Response(200, json={"count": len(self.issues)})
        return httpx.Response(404, json={"errorMessages": [f"no route {path}"]})


CONFIG = """
[warehouse]
url = "{url}"
[[sources]]
name = "merico"
kind = "jira"
base_url = "http://jira.test"
scopes = ["EE"]
[sources.credentials]
email = "${{JIRA_EMAIL}}"
api_token = "${{JIRA_TOKEN}}"
[sources.options]
story_points_field = "customfield_10024"
[[projects]]
key = "EE"
name = "Enterprise Edition"
scopes = ["merico:EE"]
"""


def test_engine_syncs_devlake_site_and_second_run_is_minimal(warehouse_url: str) -> None:
    site = DevLakeSite()
    config = parse_config(
        CONFIG.format(url=warehouse_url), environ={"JIRA_EMAIL": "me@x.test", "JIRA_TOKEN": TOKEN}
    )
    transport = httpx.MockTransport(site.handler)
    first = sync(config, transports={"merico": transport})
    assert first.status == "ok", first.errors
    engine = db.create_engine(warehouse_url)
    try:
        with engine.connect() as conn:

            def q(sql: str) -> list[Any]:
                return conn.execute(sa.text(sql)).all()

            items = {r.item_key: r for r in q("SELECT * FROM work_items")}
            assert len(items) == 30
            assert items["EE-2"].story_points == 2.0 and items["EE-1"].story_points is None
            assert items["EE-4"].title == "\u200b问题分布的帕累托图"  # the NUL is gone (PostgreSQL)
            assert items["EE-25"].parent_key == "EE-1"
            members = q("SELECT sprint_id, removed_at FROM sprint_items")
            assert sum(1 for m in members if m.removed_at is None) == 28
            assert len(members) == 32
            sprints = q("SELECT id, scope, goal FROM sprints")
            # Board 8's own 29 sprints; sprint 15 (created on board 13, shown on 8) is not EE's.
            assert len(sprints) == 29 and {s.scope for s in sprints} == {"EE"}
            assert "merico:15" not in {s.id for s in sprints}
            releases = q("SELECT name, released_at_observed, planned_date FROM releases")
            assert {r.name for r in releases} == {"v2.5.4", "v2.6.0", "v2.7.0"}
            # All were released before the first sync: actual dates are inferred later.
            assert all(r.released_at_observed in (False, 0) for r in releases)
            assert all(r.released_at_observed is not None for r in releases)
            fix_versions = sum(len(i["fields"].get("fixVersions") or []) for i in site.issues)
            assert len(q("SELECT * FROM work_item_releases")) == fix_versions
            assert len(q("SELECT * FROM status_changes")) > 100
    finally:
        engine.dispose()

    site.log.clear()
    second = sync(config, transports={"merico": transport})
    assert second.status == "ok" and second.records == 0
    # Nothing changed: discovery, the project check, boards, one sprint page, one empty
    # search. No status catalogue (no issue to map), no versions call (came with the project).
    assert site.log == [
        "/rest/api/3/myself",
        "/rest/api/3/field",
        "/rest/api/3/project/EE",
        "/rest/agile/1.0/board",
        "/rest/agile/1.0/board/8/sprint",
        "/rest/api/3/search/jql",
    ]
    assert second.requests == 6


def test_big_search_pages_are_written_in_chunks_taken_out_of_the_page() -> None:
    """A 1,000-issue Data Center page goes to the writer ``WRITE_CHUNK`` issues at a time,
    each chunk removed from its page as it is handed on (so a written chunk can be freed)."""
    from programview_connectors.jira.streams import WRITE_CHUNK, _in_chunks

    page = [{"id": str(n)} for n in range(2 * WRITE_CHUNK + 10)]
    left: list[int] = []

    async def pages() -> Any:
        yield page
        yield []

    async def collect() -> list[int]:
        sizes = []
        async for chunk in _in_chunks(pages()):
            sizes.append(len(chunk))
            left.append(len(page))
        return sizes

    assert asyncio.run(collect()) == [WRITE_CHUNK, WRITE_CHUNK, 10]
    assert left == [WRITE_CHUNK + 10, 10, 0]
