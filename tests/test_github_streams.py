"""The GitHub connector's HTTP behaviour with respx: auth and GraphQL errors, rate limits
signalled in a 200 body, pacing on a shared quota, Projects field choice, paging over
octokit's recorded ``Link`` headers, and the observations ``combine`` keeps across syncs."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from programview_connectors.github import GitHubConnector
from programview_connectors.github.streams import Issues
from pydantic import SecretStr

from programview.config import SourceConfig
from programview.errors import AuthError, ConfigError, NotFound
from programview.http import HttpClient
from programview.normalize import ANNOTATION
from programview.progress import Progress
from programview.sync.connector import Page, SyncOptions, Window

BASE = "https://api.github.com"
TOKEN = "ghp_S3cr3tT0kenValue0000000000000000000"
FIXTURES = Path(
    os.environ.get("PROGRAMVIEW_FIXTURES", Path(__file__).resolve().parents[2] / "shared/fixtures")
)


class Recorder(Progress):
    def __init__(self) -> None:
        self.waits: list[tuple[float, str]] = []

    def wait(self, source: str, seconds: float, reason: str) -> None:
        self.waits.append((seconds, reason))


class Harness:
    def __init__(self, base: str = BASE, clock: list[float] | None = None, **options: Any) -> None:
        self.source = SourceConfig(
            name="acme-gh",
            kind="github",
            base_url=base,
            credentials={"token": SecretStr(TOKEN)},
            scopes=["acme/web"],
            options=options,
        )
        self.slept: list[float] = []
        self.progress = Recorder()
        self.now = clock or [1_700_000_000.0]

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)
            self.now[0] += seconds

        self.http = HttpClient(
            base,
            source=self.source.name,
            headers=GitHubConnector.auth_headers(self.source),
            secrets=[TOKEN],
            progress=self.progress,
            sleep=sleep,
            clock=lambda: self.now[0],
            pace=GitHubConnector.pace_requests,
        )
        self.connector = GitHubConnector(self.source, self.http)


def run(fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(fn())


async def collect(pages: AsyncIterator[Page]) -> list[Page]:
    return [p async for p in pages]


PROJECT = {
    "repositoryOwner": {
        "__typename": "Organization",
        "login": "acme",
        "projectV2": {
            "id": "PVT_1",
            "title": "Delivery",
            "number": 7,
            "updatedAt": "2025-01-31T13:47:09Z",
            "items": {"totalCount": 3},
            "fields": {
                "nodes": [
                    {
                        "__typename": "ProjectV2Field",
                        "id": "F1",
                        "name": "Title",
                        "dataType": "TITLE",
                    },
                    {
                        "__typename": "ProjectV2Field",
                        "id": "F2",
                        "name": "Size",
                        "dataType": "NUMBER",
                    },
                    {
                        "__typename": "ProjectV2Field",
                        "id": "F3",
                        "name": "Estimate",
                        "dataType": "NUMBER",
                    },
                    {
                        "__typename": "ProjectV2SingleSelectField",
                        "id": "F4",
                        "name": "Status",
                        "dataType": "SINGLE_SELECT",
                        "options": [],
                    },
                    {
                        "__typename": "ProjectV2IterationField",
                        "id": "F5",
                        "name": "Sprint",
                        "dataType": "ITERATION",
                        "configuration": {
                            "duration": 14,
                            "startDay": 1,
                            "iterations": [
                                {
                                    "id": "it2",
                                    "title": "Sprint 2",
                                    "startDate": "2025-01-20",
                                    "duration": 14,
                                }
                            ],
                            "completedIterations": [
                                {
                                    "id": "it1",
                                    "title": "Sprint 1",
                                    "startDate": "2025-01-06",
                                    "duration": 14,
                                }
                            ],
                        },
                    },
                ]
            },
        },
    },
    "rateLimit": {"cost": 1, "remaining": 4999, "resetAt": "2025-01-31T14:00:00Z"},
}


def mock_prepare(project: dict[str, Any] | None = None) -> respx.Route:
    respx.get(f"{BASE}/rate_limit").respond(json={"resources": {}})
    return respx.post(f"{BASE}/graphql").respond(json={"data": project or PROJECT})


# --- auth and GraphQL errors -------------------------------------------------------------------


@respx.mock
def test_bad_token_names_the_source_and_hides_the_token() -> None:
    h = Harness()
    respx.get(f"{BASE}/rate_limit").respond(
        401,
        json={
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401",
        },
    )
    with pytest.raises(AuthError) as err:
        run(h.connector.prepare)
    text = str(err.value)
    assert "[acme-gh]" in text and "401" in text and "Bad credentials" in text and "expired" in text
    assert TOKEN not in text and TOKEN not in repr(h.http)
    assert respx.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert respx.calls[0].request.headers["X-GitHub-Api-Version"] == "2022-11-28"


@respx.mock
def test_projects_fields_are_found_by_name_and_a_missing_one_is_a_config_error() -> None:
    h = Harness(projects=["acme/7"])
    mock_prepare()
    run(h.connector.prepare)
    info = h.connector.projects["acme/7"]
    assert (info.points_field, info.iteration_field, info.status_field) == (
        "Estimate",
        "Sprint",
        "Status",
    )
    assert set(info.iterations) == {"it1", "it2"}
    assert h.connector.board_pass_due and h.connector.new_iterations == {"it1", "it2"}
    assert h.connector.state["projects"]["acme/7"]["updated_at"] == "2025-01-31T13:47:09Z"

    h = Harness(projects=["acme/7"], points_field="Story Points")
    mock_prepare()
    with pytest.raises(
        ConfigError, match=r"points_field.*no number field 'Story Points'.*Estimate, Size"
    ):
        run(h.connector.prepare)


@respx.mock
def test_graphql_errors_arrive_as_200_and_are_errors() -> None:
    h = Harness(projects=["acme/7"])
    respx.get(f"{BASE}/rate_limit").respond(json={})
    respx.post(f"{BASE}/graphql").respond(
        json={
            "data": None,
            "errors": [
                {
                    "type": "INSUFFICIENT_SCOPES",
                    "message": (
                        "Your token has not been granted the required scopes to execute this "
                        "query. The 'projectV2' field requires one of the following scopes: "
                        "['read:project']"
                    ),
                }
            ],
        }
    )
    with pytest.raises(AuthError, match="read:project"):
        run(h.connector.prepare)

    h = Harness(projects=["acme/9"])
    respx.post(f"{BASE}/graphql").respond(
        json={
            "data": {
                "repositoryOwner": {
                    "__typename": "Organization",
                    "login": "acme",
                    "projectV2": None,
                }
            },
            "errors": [
                {
                    "type": "NOT_FOUND",
                    "path": ["repositoryOwner", "projectV2"],
                    "message": "Could not resolve to a ProjectV2 with the number 9.",
                }
            ],
        }
    )
    with pytest.raises(NotFound, match="Could not resolve to a ProjectV2"):
        run(h.connector.prepare)


@respx.mock
def test_graphql_rate_limit_in_a_200_body_is_waited_out() -> None:
    h = Harness(projects=["acme/7"])
    respx.get(f"{BASE}/rate_limit").respond(json={})
    limited = {
        "data": {"rateLimit": {"cost": 1, "remaining": 0, "resetAt": "2023-11-14T22:14:20Z"}},
        "errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded for user ID 1."}],
    }
    route = respx.post(f"{BASE}/graphql").mock(
        side_effect=[httpx.Response(200, json=limited), httpx.Response(200, json={"data": PROJECT})]
    )
    h.connector.clock = lambda: datetime(2023, 11, 14, 22, 13, 20)
    run(h.connector.prepare)
    assert route.call_count == 2
    assert h.slept == [60.0]  # until resetAt
    assert any("GraphQL rate limited" in reason for _, reason in h.progress.waits)


@respx.mock
def test_requests_are_paced_when_the_shared_quota_runs_low() -> None:
    now = [1_700_000_000.0]
    h = Harness(clock=now)
    reset = str(int(now[0]) + 1000)
    respx.get(f"{BASE}/rate_limit").mock(
        side_effect=[
            httpx.Response(
                200,
                json={},
                headers={
                    "x-ratelimit-limit": "5000",
                    "x-ratelimit-remaining": "100",
                    "x-ratelimit-reset": reset,
                    "x-ratelimit-resource": "core",
                },
            ),
            httpx.Response(
                200,
                json={},
                headers={
                    "x-ratelimit-limit": "5000",
                    "x-ratelimit-remaining": "4000",
                    "x-ratelimit-reset": reset,
                },
            ),
            httpx.Response(200, json={}),
        ]
    )

    async def three() -> None:
        for _ in range(3):
            await h.http.get_json("/rate_limit")

    run(three)
    # 100 left with 1000 s to go: 10 s between requests; plenty left: no pause
    assert h.slept == [10.0]
    assert h.progress.waits and "pacing core" in h.progress.waits[0][1]


# --- paging over real recorded headers ----------------------------------------------------------


@respx.mock
def test_issues_listing_follows_octokits_recorded_link_headers() -> None:
    path = FIXTURES / "api-examples" / "github" / "octokit-paginate-issues.fixture.json"
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"fixture missing: {path}")
        pytest.skip(f"fixture missing: {path}")
    recorded = json.loads(path.read_text())
    for n, interaction in enumerate(recorded):
        headers = {
            k: v
            for k, v in interaction["headers"].items()
            if k.lower() in ("link", "etag", "content-type")
        }
        url = "https://api.github.com" + interaction["path"].split("?", 1)[0]
        page = "1" if n == 0 else str(n + 1)
        respx.get(url, params={"page": page} if n else None).respond(
            200, json=interaction["response"], headers=headers
        )
    h = Harness()
    graphql = respx.post(f"{BASE}/graphql").respond(json={"data": {"nodes": []}})
    stream = Issues(h.connector)
    pages = run(
        lambda: collect(stream.pages("octokit-fixture-org/paginate-issues", None, SyncOptions()))
    )
    numbers = [i["number"] for p in pages for i in p.records]
    assert numbers == [i["number"] for x in recorded for i in x["response"]]
    assert len(pages) == 5 and graphql.call_count == 5  # one details call per page
    assert pages[-1].cursor is not None and pages[-1].cursor["updated_at"]


# --- observations across syncs ------------------------------------------------------------------


def observed(
    h: Harness, at: str, iteration: str | None, points: float | None, status: str = "Todo"
) -> dict[str, Any]:
    h.connector.observed_at = at
    values = {
        "project": "acme/7",
        "points": points,
        "status": status,
        "iteration": {"id": iteration} if iteration else None,
        "due": None,
    }
    return {"id": 1, "state": "open", "labels": [], ANNOTATION: {"project": values}}


def test_combine_records_moves_between_iterations_when_they_are_seen() -> None:
    h = Harness()
    h.connector.new_iterations = {"it1"}
    first = observed(h, "2025-01-06T08:00:00", "it1", 3.0)
    h.connector._observe("acme/web", first, first[ANNOTATION])  # a new record: its first look
    assert first[ANNOTATION]["iterations"] == {"it1": [None, None]}
    h.connector.new_iterations = set()
    moved = h.connector.combine_observations(
        first, observed(h, "2025-01-20T08:00:00", "it2", 5.0, "In progress")
    )
    notes = moved[ANNOTATION]
    assert notes["iterations"] == {
        "it1": [None, "2025-01-20T08:00:00"],
        "it2": ["2025-01-20T08:00:00", None],
    }
    assert notes["estimates"] == [["2025-01-20T08:00:00", 3.0, 5.0]]
    assert notes["first_in_progress_at"] == "2025-01-20T08:00:00"
    back = h.connector.combine_observations(
        moved, observed(h, "2025-01-22T08:00:00", "it1", 5.0, "Todo")
    )
    notes = back[ANNOTATION]
    # it came back to it1: as if it never left; it2 is left now; first seen in progress stays
    assert notes["iterations"] == {
        "it1": [None, None],
        "it2": ["2025-01-20T08:00:00", "2025-01-22T08:00:00"],
    }
    assert notes["first_in_progress_at"] == "2025-01-20T08:00:00"
    # a fetch that could not complete the issue (no "project") keeps what was known
    bare = {"id": 1, "state": "open", "labels": []}
    kept = h.connector.combine_observations(back, bare)[ANNOTATION]
    assert (
        kept["project"] == back[ANNOTATION]["project"] and kept["iterations"] == notes["iterations"]
    )
    # an iteration first seen in this sync: an item already in it counts as committed
    h.connector.new_iterations = {"it3"}
    into_new = h.connector.combine_observations(
        back, observed(h, "2025-02-03T08:00:00", "it3", 5.0)
    )
    assert into_new[ANNOTATION]["iterations"]["it3"] == [None, None]


def test_window_and_scope_checks() -> None:
    h = Harness()
    assert h.connector.graphql_url == f"{BASE}/graphql"
    ghes = Harness(base="https://ghe.acme.test/api/v3")
    assert ghes.connector.graphql_url == "https://ghe.acme.test/api/graphql"
    assert (
        SyncOptions(lookback_minutes=10).window_for(
            {"updated_at": "2025-01-31T13:47:09Z"}, "updated_at"
        )
        != Window()
    )

    with respx.mock:
        respx.get(f"{BASE}/repos/acme/gone").respond(
            404, json={"message": "Not Found", "status": "404"}
        )
        with pytest.raises(NotFound, match=r"'acme/gone' not found or this token cannot see it"):
            run(lambda: h.connector.check_scope("acme/gone"))


@respx.mock
def test_missing_issues_are_told_apart_deleted_moved_hidden_live() -> None:
    h = Harness()
    base = f"{BASE}/repos/acme/web/issues"
    respx.get(f"{base}/1").respond(404, json={"message": "Not Found"})
    respx.get(f"{base}/2").respond(410, json={"message": "This issue was deleted"})
    # a transferred issue redirects to its new repository (followed): it moved
    respx.get(f"{base}/3").respond(301, headers={"Location": f"{BASE}/repositories/9/issues/77"})
    respx.get(f"{BASE}/repositories/9/issues/77").respond(
        json={"id": 3, "number": 77, "repository_url": f"{BASE}/repos/acme/mobile"}
    )
    respx.get(f"{base}/4").respond(403, json={"message": "Must have admin rights"})
    respx.get(f"{base}/5").respond(
        json={"id": 5, "number": 5, "repository_url": f"{BASE}/repos/Acme/Web"}
    )
    items = {str(n): f"acme/web#{n}" for n in range(1, 6)}
    verdicts = run(lambda: h.connector.classify_missing_items("acme/web", items))
    assert verdicts == {"1": "deleted", "2": "deleted", "3": "moved", "4": "hidden", "5": "live"}


def gh_issue(n: int, updated: str) -> dict[str, Any]:
    return {
        "id": n,
        "node_id": f"I_{n}",
        "number": n,
        "title": f"issue {n}",
        "state": "open",
        "labels": [],
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": updated,
        "repository_url": f"{BASE}/repos/acme/web",
    }


@respx.mock
def test_a_full_read_moves_the_cursor_back_over_an_edit_made_while_paging() -> None:
    h = Harness()
    listing = f"{BASE}/repos/acme/web/issues"
    nxt = f"{BASE}/repositories/1/issues?page=2"
    respx.get(listing).respond(
        json=[gh_issue(1, "2025-01-01T10:00:00Z"), gh_issue(2, "2025-01-02T10:00:00Z")],
        headers={"Link": f'<{nxt}>; rel="next"'},
    )
    # issue 1 was edited after page 1 was read: it is now last, and every issue moved up
    respx.get(f"{BASE}/repositories/1/issues").respond(
        json=[gh_issue(4, "2025-01-04T10:00:00Z"), gh_issue(1, "2025-01-05T10:00:00Z")]
    )
    respx.post(f"{BASE}/graphql").respond(json={"data": {"nodes": []}})
    pages = run(lambda: collect(Issues(h.connector).pages("acme/web", None, SyncOptions())))
    assert [p.cursor["updated_at"] for p in pages if p.cursor] == [
        "2025-01-02T10:00:00Z",
        "2025-01-05T10:00:00Z",
        "2025-01-01T10:00:00Z",  # back to issue 1's old time: issue 3 may have been skipped
    ]
    assert respx.calls[0].request.url.params["direction"] == "asc"


@respx.mock
def test_an_incremental_read_is_newest_first_and_free_when_nothing_changed() -> None:
    h = Harness()
    cursor = {"updated_at": "2025-01-05T10:00:00Z", "recent": {}}
    options = SyncOptions(lookback_minutes=10).for_stream(cursor, "updated_at")
    listing = f"{BASE}/repos/acme/web/issues"
    nxt = f"{BASE}/repositories/1/issues?page=2"
    route = respx.get(listing).mock(
        side_effect=[
            httpx.Response(
                200,
                json=[gh_issue(7, "2025-01-06T09:00:00Z"), gh_issue(6, "2025-01-05T10:00:00Z")],
                headers={"Link": f'<{nxt}>; rel="next"', "ETag": '"page-one"'},
            ),
            httpx.Response(304, headers={"ETag": '"page-one"'}),
        ]
    )
    respx.get(f"{BASE}/repositories/1/issues").respond(json=[gh_issue(5, "2025-01-05T09:55:00Z")])
    respx.post(f"{BASE}/graphql").respond(json={"data": {"nodes": []}})
    pages = run(lambda: collect(Issues(h.connector).pages("acme/web", cursor, options)))
    sent = route.calls[0].request.url.params
    assert (sent["direction"], sent["since"]) == ("desc", "2025-01-05T09:50:00Z")
    assert [r["number"] for p in pages for r in p.records] == [7, 6, 5]
    assert all(p.cursor is None for p in pages[:-1])  # committed only after the last page
    final = pages[-1].cursor
    assert final is not None and final["updated_at"] == "2025-01-06T09:00:00Z"
    assert final["etag"] == '"page-one"'
    # the next poll asks the same URL (its since is older than the new window's, so it covers
    # it): the first page is a free 304, nothing more is asked
    again_options = SyncOptions(lookback_minutes=10).for_stream(final, "updated_at")
    h.connector.http.requests = 0
    pages = run(lambda: collect(Issues(h.connector).pages("acme/web", final, again_options)))
    assert pages == [] and h.connector.http.requests == 1
    assert route.calls[1].request.headers["If-None-Match"] == '"page-one"'
    assert route.calls[1].request.url.params["since"] == "2025-01-05T09:50:00Z"


@respx.mock
def test_the_board_pass_runs_when_the_project_changed_and_no_more_often_than_asked() -> None:
    def prepared(state: dict[str, Any], minutes: float, at: datetime) -> GitHubConnector:
        h = Harness(projects=["acme/7"], board_pass_minutes=minutes)
        h.connector.state = json.loads(json.dumps(state))
        h.connector.clock = lambda: at
        run(h.connector.prepare)
        return h.connector

    respx.get(f"{BASE}/rate_limit").respond(json={})
    respx.post(f"{BASE}/graphql").respond(json={"data": PROJECT})
    first = prepared({}, 0, datetime(2025, 1, 31, 14, 0))
    assert first.board_pass_due  # never read: read it
    unchanged = prepared(first.state, 0, datetime(2025, 1, 31, 14, 30))
    assert not unchanged.board_pass_due  # same updatedAt and item count: no pass
    moved = json.loads(json.dumps(first.state))
    moved["projects"]["acme/7"]["updated_at"] = "2025-01-31T13:00:00Z"  # it changed since
    assert prepared(moved, 0, datetime(2025, 1, 31, 14, 30)).board_pass_due
    spaced = prepared(moved, 60, datetime(2025, 1, 31, 14, 30))
    assert not spaced.board_pass_due  # changed, but the last pass was 30 minutes ago
    assert spaced.state["projects"]["acme/7"]["updated_at"] == "2025-01-31T13:00:00Z"  # kept
    assert prepared(spaced.state, 60, datetime(2025, 1, 31, 15, 1)).board_pass_due
    assert prepared(first.state, 0, datetime(2025, 2, 1, 9, 0)).board_pass_due  # 6 h rescan
