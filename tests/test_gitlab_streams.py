"""GitLab connector over HTTP (respx): the token header, keyset paging with its offset fallback,
the lookback overlap, errors (401, 404 no access, 403 insufficient scope, 429 without any
hint). Mapping is tested on real payloads in test_gitlab_mapping.py, the whole connector
against the simulator in test_gitlab_e2e.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
from programview_connectors.gitlab import GitLabConnector
from programview_connectors.gitlab.streams import Issues
from pydantic import SecretStr

from programview.config import SourceConfig
from programview.errors import AuthError, NotFound
from programview.http import HttpClient
from programview.normalize import ANNOTATION
from programview.sync.connector import Page, SyncOptions

BASE = "https://gitlab.example.com"
API = BASE + "/api/v4"
TOKEN = "glpat-Zq8kJ2xV9mN4pR7sT1uW"


class Harness:
    def __init__(self, scopes: list[str] | None = None) -> None:
        self.source = SourceConfig(
            name="acme-gitlab",
            kind="gitlab",
            base_url=BASE,
            credentials={"token": SecretStr(TOKEN)},
            scopes=scopes or ["acme/pay"],
            options={},
        )
        self.slept: list[float] = []

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)

        self.http = HttpClient(
            BASE,
            source=self.source.name,
            headers=GitLabConnector.auth_headers(self.source),
            secrets=[TOKEN],
            sleep=sleep,
        )
        self.connector = GitLabConnector(self.source, self.http)


def run(coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(coro_fn())


async def collect(pages: AsyncIterator[Page]) -> list[Page]:
    return [page async for page in pages]


def query(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}


def issue(n: int, updated: str) -> dict[str, Any]:
    return {
        "id": 1000 + n,
        "iid": n,
        "project_id": 3,
        "title": f"Issue {n}",
        "state": "opened",
        "labels": [],
        "created_at": "2025-01-01T00:00:00.000Z",
        "updated_at": updated,
        "references": {"full": f"acme/pay#{n}"},
    }


def mock_history() -> respx.Route:
    """Every per-issue call answers an empty list."""
    return respx.get(url__regex=rf"{API}/projects/3/issues/\d+/.*").respond(json=[])


@respx.mock
def test_token_header_keyset_paging_and_history_per_issue() -> None:
    h = Harness()
    first = respx.get(f"{API}/projects/acme%2Fpay/issues").mock(
        side_effect=lambda request: (
            httpx.Response(
                200,
                json=[issue(1, "2025-01-02T00:00:00.000Z")],
                headers={"Link": f'<{API}/projects/acme%2Fpay/issues?cursor=abc>; rel="next"'},
            )
            if "cursor" not in query(request)
            else httpx.Response(200, json=[issue(2, "2025-01-03T00:00:00.000Z")])
        )
    )
    history = mock_history()
    pages = run(lambda: collect(Issues(h.connector).pages("acme/pay", None, SyncOptions())))
    sent = first.calls[0].request
    assert sent.headers["PRIVATE-TOKEN"] == TOKEN and "token" not in str(sent.url).lower()
    q = query(sent)
    assert (q["pagination"], q["order_by"], q["sort"], q["per_page"]) == (
        "keyset",
        "updated_at",
        "asc",
        "100",
    )
    assert q["scope"] == "all" and "updated_after" not in q  # a full read
    assert [len(p.records) for p in pages] == [1, 1]
    assert pages[-1].cursor["updated_at"] == "2025-01-03T00:00:00.000Z"
    assert history.call_count == 2 * 5  # four event lists and the links, per issue
    assert set(pages[0].records[0][ANNOTATION]) >= {"state_events", "links", "iteration_events"}


@respx.mock
def test_without_keyset_for_issues_offset_paging_follows_x_next_page() -> None:
    h = Harness()

    def answer(request: httpx.Request) -> httpx.Response:
        q = query(request)
        if q.get("pagination") == "keyset":  # GitLab before 18.3
            message = "Keyset pagination is not yet available for this type of request"
            return httpx.Response(405, json={"message": message})
        page = int(q["page"])
        rows = [issue(page, f"2025-01-0{page}T00:00:00.000Z")]
        # no x-total (it vanishes above 10,000): only x-next-page says whether more follow
        return httpx.Response(200, json=rows, headers={"x-next-page": "2" if page == 1 else ""})

    route = respx.get(f"{API}/projects/acme%2Fpay/issues").mock(side_effect=answer)
    mock_history()
    options = SyncOptions().for_stream({"updated_at": "2025-01-01T00:10:00Z"}, "updated_at")
    pages = run(lambda: collect(Issues(h.connector).pages("acme/pay", None, options)))
    assert [p.records[0]["iid"] for p in pages] == [1, 2]
    assert h.connector.keyset is False  # remembered for the run
    assert query(route.calls[1].request)["updated_after"] == "2025-01-01T00:00:00.000Z"


@respx.mock
def test_the_lookback_overlap_costs_no_event_request() -> None:
    h = Harness()
    respx.get(f"{API}/projects/acme%2Fpay/issues").respond(
        json=[issue(1, "2025-01-05T00:00:00.000Z"), issue(2, "2025-01-05T00:01:00.000Z")]
    )
    history = mock_history()
    cursor = {
        "updated_at": "2025-01-05T00:00:00.000Z",
        "recent": {"1001": "2025-01-05T00:00:00.000Z"},
    }
    options = SyncOptions().for_stream(cursor, "updated_at")
    pages = run(lambda: collect(Issues(h.connector).pages("acme/pay", cursor, options)))
    assert [r["iid"] for p in pages for r in p.records] == [2]
    assert history.call_count == 5  # only issue 2's history
    assert pages[-1].cursor["recent"] == {
        "1001": "2025-01-05T00:00:00.000Z",
        "1002": "2025-01-05T00:01:00.000Z",
    }


@respx.mock
def test_errors_name_the_problem() -> None:
    h = Harness(["acme/pay", "acme/secret"])
    respx.get(f"{API}/user").respond(401, json={"message": "401 Unauthorized"})
    with pytest.raises(AuthError) as caught:
        run(h.connector.prepare)
    text = str(caught.value)
    assert "acme-gitlab" in text and "401" in text and "read_api" in text and TOKEN not in text

    respx.get(f"{API}/projects/acme%2Fpay").respond(json={"id": 3, "namespace": {"id": 9}})
    for kind in ("projects", "groups"):
        what = "Project" if kind == "projects" else "Group"
        respx.get(f"{API}/{kind}/acme%2Fsecret").respond(
            404, json={"message": f"404 {what} Not Found"}
        )
    assert run(h.connector.scopes) == ["acme/pay", "acme/secret"]
    run(lambda: h.connector.check_scope("acme/pay"))
    with pytest.raises(NotFound, match="not found or no access"):
        run(lambda: h.connector.check_scope("acme/secret"))

    scope = {
        "error": "insufficient_scope",
        "error_description": "The request requires higher privileges than provided by the "
        "access token.",
        "scope": "api",
    }
    respx.get(f"{API}/projects/acme%2Fpay/milestones").respond(403, json=scope)
    with pytest.raises(AuthError) as caught:
        run(lambda: h.connector.milestones("acme/pay"))
    assert "needs the 'api' scope" in str(caught.value) and "403" in str(caught.value)


@respx.mock
def test_429_without_any_hint_backs_off_and_goes_on() -> None:
    h = Harness()
    route = respx.get(f"{API}/projects/acme%2Fpay/releases").mock(
        side_effect=[
            httpx.Response(429, text="Retry later\n", headers={"content-type": "text/plain"}),
            httpx.Response(
                429, json={"message": "429 Too Many Requests"}, headers={"Retry-After": "7"}
            ),
            httpx.Response(200, json=[{"tag_name": "v1"}], headers={"x-next-page": ""}),
        ]
    )
    assert run(lambda: h.connector.releases("acme/pay")) == [{"tag_name": "v1"}]
    assert route.call_count == 3
    assert h.slept[0] >= 5 and h.slept[1] == 7  # a backoff, then exactly what was asked


@respx.mock
def test_the_issues_cursor_keeps_what_committed_issues_are_in() -> None:
    """A run killed after some issue pages, before the sprints and milestones streams, must
    not forget the iterations and group milestones of the issues it committed: they ride in
    the issues cursor and the next run starts from them."""
    h = Harness()
    raw = issue(1, "2025-01-02T00:00:00.000Z")
    raw["iteration"] = {"id": 77}
    raw["milestone"] = {"id": 55, "group_id": 9}  # a group milestone (no project_id)
    respx.get(f"{API}/projects/acme%2Fpay/issues").respond(json=[raw])
    mock_history()
    pages = run(lambda: collect(Issues(h.connector).pages("acme/pay", None, SyncOptions())))
    cursor = pages[-1].cursor
    assert cursor["iterations"] == ["77"] and cursor["group_milestones"] == ["55"]

    rerun = Harness()  # a new process: nothing in memory
    respx.get(f"{API}/projects/acme%2Fpay/issues").respond(json=[])
    options = SyncOptions().for_stream(cursor, "updated_at")
    run(lambda: collect(Issues(rerun.connector).pages("acme/pay", cursor, options)))
    assert rerun.connector.scope_iterations["acme/pay"] == {"77"}
    assert rerun.connector.scope_milestones["acme/pay"] == {"55"}
