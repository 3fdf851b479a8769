"""Paginators and ``HttpClient.fetch_page`` against respx-mocked APIs: every paging shape our
three APIs use, how each one ends, and the failures that must not end a listing quietly."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import respx

from programview import http as http_module
from programview.http import HttpClient
from programview.sync.paging import (
    CursorPaginator,
    KeysetPaginator,
    LinkPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    PageRequest,
    Paginator,
    PagingError,
    TokenPaginator,
    paginate,
    prefetch,
)

BASE = "https://api.test"


@pytest.fixture(autouse=True)
def instant(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_sleep(seconds: float) -> None:
        return None

    monkeypatch.setattr(http_module, "_sleep", no_sleep)


def collect(
    request: PageRequest, paginator: Paginator, records: Any = None, **kw: Any
) -> tuple[list[list[Any]], HttpClient]:
    async def go() -> tuple[list[list[Any]], HttpClient]:
        client = HttpClient(BASE, source="t")
        try:
            got = [
                p.records async for p in paginate(client, request, paginator, records=records, **kw)
            ]
        finally:
            await client.aclose()
        return got, client

    return asyncio.run(go())


def query(call: Any) -> dict[str, str]:
    return dict(call.request.url.params)


@respx.mock
def test_offset_paging_ends_on_is_last_total_or_a_short_page() -> None:
    route = respx.get(f"{BASE}/board").mock(
        side_effect=[
            httpx.Response(200, json={"startAt": 0, "isLast": False, "values": [1, 2]}),
            httpx.Response(200, json={"startAt": 2, "isLast": True, "values": [3]}),
        ]
    )
    pages, client = collect(
        PageRequest("/board", {"projectKeyOrId": "PAY"}), OffsetPaginator(limit=2), "values"
    )
    assert pages == [[1, 2], [3]]
    assert [query(c) for c in route.calls] == [
        {"projectKeyOrId": "PAY", "startAt": "0", "maxResults": "2"},
        {"projectKeyOrId": "PAY", "startAt": "2", "maxResults": "2"},
    ]
    assert client.requests == 2

    # total without isLast (Agile issue lists): stop when startAt + records reaches it
    respx.get(f"{BASE}/issues").mock(
        side_effect=[
            httpx.Response(200, json={"total": 3, "issues": [1, 2]}),
            httpx.Response(200, json={"total": 3, "issues": [3]}),
        ]
    )
    pages, _ = collect(PageRequest("/issues"), OffsetPaginator(limit=2), "issues")
    assert pages == [[1, 2], [3]]

    # neither: a page shorter than the limit is the last
    respx.get(f"{BASE}/plain").mock(return_value=httpx.Response(200, json={"values": [1]}))
    pages, client = collect(PageRequest("/plain"), OffsetPaginator(limit=50), "values")
    assert pages == [[1]] and client.requests == 1


@respx.mock
def test_strict_offset_paging_refuses_to_end_short_of_total() -> None:
    respx.get(f"{BASE}/search").mock(
        side_effect=[
            httpx.Response(200, json={"total": 5, "issues": [1, 2]}),
            httpx.Response(200, json={"total": 5, "issues": []}),
        ]
    )
    with pytest.raises(PagingError, match="empty page at 2 of 5"):
        collect(PageRequest("/search"), OffsetPaginator(limit=2, strict=True), "issues")


@respx.mock
def test_token_paging_as_parameter_and_in_the_json_body() -> None:
    route = respx.get(f"{BASE}/search/jql").mock(
        side_effect=[
            httpx.Response(200, json={"issues": [1], "nextPageToken": "T1", "isLast": False}),
            httpx.Response(200, json={"issues": [2], "isLast": True}),
        ]
    )
    pages, _ = collect(PageRequest("/search/jql", {"jql": "x"}), TokenPaginator(), "issues")
    assert pages == [[1], [2]]
    assert "nextPageToken" not in query(route.calls[0])
    assert query(route.calls[1])["nextPageToken"] == "T1"

    bulk = respx.post(f"{BASE}/bulkfetch").mock(
        side_effect=[
            httpx.Response(200, json={"issueChangeLogs": [1], "nextPageToken": "N"}),
            httpx.Response(200, json={"issueChangeLogs": [2]}),
        ]
    )
    pages, _ = collect(
        PageRequest("/bulkfetch", json={"issueIdsOrKeys": ["1"]}),
        TokenPaginator(in_json=True, last_path=None),
        "issueChangeLogs",
    )
    assert pages == [[1], [2]]
    bodies = [json.loads(c.request.content) for c in bulk.calls]
    assert bodies == [{"issueIdsOrKeys": ["1"]}, {"issueIdsOrKeys": ["1"], "nextPageToken": "N"}]


@respx.mock
def test_token_page_that_says_more_but_has_no_token_raises() -> None:
    respx.get(f"{BASE}/search/jql").mock(
        return_value=httpx.Response(200, json={"issues": [1], "isLast": False})
    )
    with pytest.raises(PagingError, match="no token"):
        collect(PageRequest("/search/jql"), TokenPaginator(), "issues")


@respx.mock
def test_link_paging_follows_next_until_only_prev_and_first_remain() -> None:
    nxt = f"{BASE}/repositories/1/issues?per_page=2&state=all&page=2"
    first = respx.get(f"{BASE}/repos/o/r/issues").mock(
        return_value=httpx.Response(
            200,
            json=[{"n": 1}, {"n": 2}],
            headers={"Link": f'<{nxt}>; rel="next", <{nxt[:-1]}2>; rel="last"'},
        )
    )
    second = respx.get(f"{BASE}/repositories/1/issues").mock(
        return_value=httpx.Response(
            200,
            json=[{"n": 3}],
            headers={"Link": f'<{nxt[:-1]}1>; rel="prev", <{nxt[:-1]}1>; rel="first"'},
        )
    )
    pages, client = collect(
        PageRequest("/repos/o/r/issues", {"state": "all"}), LinkPaginator(page_size=2)
    )
    assert pages == [[{"n": 1}, {"n": 2}], [{"n": 3}]]
    assert query(first.calls[0]) == {"state": "all", "per_page": "2"}
    assert query(second.calls[0]) == {"per_page": "2", "state": "all", "page": "2"}
    assert client.requests == 2


@respx.mock
def test_gitlab_page_numbers_never_read_x_total() -> None:
    route = respx.get(f"{BASE}/projects/1/issues").mock(
        side_effect=[
            httpx.Response(200, json=[1, 2], headers={"x-next-page": "2", "x-total": "2"}),
            httpx.Response(200, json=[3], headers={"x-next-page": ""}),  # >10k: no x-total
        ]
    )
    pages, _ = collect(PageRequest("/projects/1/issues"), PageNumberPaginator(page_size=2))
    assert pages == [[1, 2], [3]]
    assert [query(c)["page"] for c in route.calls] == ["1", "2"]

    # headers stripped by a proxy: a full page means "try the next one"
    respx.get(f"{BASE}/bare").mock(
        side_effect=[httpx.Response(200, json=[1, 2]), httpx.Response(200, json=[])]
    )
    pages, client = collect(PageRequest("/bare"), PageNumberPaginator(page_size=2))
    assert pages == [[1, 2], []] and client.requests == 2


@respx.mock
def test_keyset_paging_asks_for_keyset_and_follows_links() -> None:
    nxt = f"{BASE}/projects?cursor=abc&pagination=keyset&per_page=100"
    route = respx.get(f"{BASE}/projects").mock(
        side_effect=[
            httpx.Response(200, json=[1], headers={"Link": f'<{nxt}>; rel="next"'}),
            httpx.Response(200, json=[2]),
        ]
    )
    pages, _ = collect(PageRequest("/projects"), KeysetPaginator(page_size=100))
    assert pages == [[1], [2]]
    assert query(route.calls[0]) == {
        "per_page": "100",
        "pagination": "keyset",
        "order_by": "id",
        "sort": "asc",
    }
    assert query(route.calls[1])["cursor"] == "abc"


@respx.mock
def test_graphql_cursor_paging_sends_end_cursor_as_after() -> None:
    def page(nodes: list[int], more: bool, cursor: str | None) -> httpx.Response:
        info = {"hasNextPage": more, "endCursor": cursor}
        return httpx.Response(
            200, json={"data": {"p": {"items": {"pageInfo": info, "nodes": nodes}}}}
        )

    route = respx.post(f"{BASE}/graphql").mock(
        side_effect=[page([1, 2], True, "C2"), page([3], False, "C3")]
    )
    pages, _ = collect(
        PageRequest("/graphql", json={"query": "q", "variables": {"n": 7}}),
        CursorPaginator(("data", "p", "items", "pageInfo")),
        ("data", "p", "items", "nodes"),
    )
    assert pages == [[1, 2], [3]]
    variables = [json.loads(c.request.content)["variables"] for c in route.calls]
    assert variables == [{"n": 7}, {"n": 7, "after": "C2"}]


@respx.mock
def test_etag_gives_a_free_304_and_a_truncated_page_is_fetched_again() -> None:
    route = respx.get(f"{BASE}/repos/o/r/issues").mock(
        side_effect=[
            httpx.Response(200, content=b'[{"n": 1}, {"n"'),  # cut off mid-body
            httpx.Response(200, json=[{"n": 1}], headers={"ETag": '"abc"'}),
            httpx.Response(304, headers={"ETag": '"abc"'}),
        ]
    )

    async def go() -> tuple[Any, Any]:
        async with HttpClient(BASE, source="t") as client:
            first = await client.fetch_page("/repos/o/r/issues")
            again = [
                p
                async for p in paginate(
                    client, PageRequest("/repos/o/r/issues"), LinkPaginator(), etag=first.etag
                )
            ]
            return first, again

    first, again = asyncio.run(go())
    assert first.data == [{"n": 1}] and first.etag == '"abc"' and first.links == {}
    assert len(again) == 1 and again[0].http.not_modified and again[0].records == []
    assert route.calls[2].request.headers["If-None-Match"] == '"abc"'
    assert len(route.calls) == 3


def test_prefetch_requests_the_next_page_while_this_one_is_worked_on() -> None:
    order: list[str] = []

    async def pages() -> Any:
        for n in range(3):
            order.append(f"fetched {n}")
            yield n
            await asyncio.sleep(0)

    async def go() -> list[int]:
        got = []
        async for n in prefetch(pages()):
            await asyncio.sleep(0.01)  # the work on page n: page n + 1 is fetched meanwhile
            order.append(f"worked {n}")
            got.append(n)
        return got

    assert asyncio.run(go()) == [0, 1, 2]
    assert order.index("fetched 1") < order.index("worked 0")
    assert order.index("fetched 2") < order.index("worked 1")

    async def failing() -> Any:
        yield 1
        raise PagingError("cut short")

    async def drain() -> list[int]:
        return [n async for n in prefetch(failing())]

    with pytest.raises(PagingError, match="cut short"):
        asyncio.run(drain())
