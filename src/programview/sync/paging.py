"""Paginators: how to get from one page of an API listing to the next.

Our three APIs page six ways (shared/reference/apis.md). Each way is one small class here, so a
connector states *which* way a stream pages and never writes the loop again::

    pages = paginate(
        http,
        PageRequest("/rest/agile/1.0/board", {"projectKeyOrId": "PAY"}),
        OffsetPaginator(limit=50),
        records="values",
    )
    async for page in pages:
        ...  # page.records, page.http (headers, links, status)

=========================  =================================================================
paginator                  pages by …
=========================  =================================================================
:class:`OffsetPaginator`   ``startAt``/``maxResults`` with ``total`` and/or ``isLast`` (Jira
                           Agile, Jira Data Center search, changelog pages)
:class:`TokenPaginator`    ``nextPageToken`` in the body, sent back as a parameter or in the
                           JSON body (Jira Cloud enhanced search, changelog bulk fetch)
:class:`LinkPaginator`     the ``Link: <…>; rel="next"`` header (GitHub REST)
:class:`PageNumberPaginator`  ``page`` with the next number in ``x-next-page`` (GitLab offset
                           paging; never ``x-total``, which vanishes above 10,000)
:class:`KeysetPaginator`   GitLab keyset paging: ``pagination=keyset`` then ``Link rel=next``
:class:`CursorPaginator`   GraphQL ``pageInfo { hasNextPage endCursor }`` sent back as the
                           ``after`` variable (GitHub Projects v2)
=========================  =================================================================

A paginator only decides the next request from the last one and its answer (like the Singer
SDK's and dlt's ``rest_client`` paginators); :func:`paginate` does the requests. A listing that
says more follows but gives no way to get it raises :class:`PagingError` rather than ending
quietly short: a short listing would look like deletions.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from programview.errors import ConnectorError

if TYPE_CHECKING:
    from programview.http import HttpClient, HttpPage

__all__ = [
    "CursorPaginator",
    "KeysetPaginator",
    "LinkPaginator",
    "OffsetPaginator",
    "PageNumberPaginator",
    "PageRequest",
    "Paginator",
    "PagingError",
    "RecordPage",
    "SinglePage",
    "TokenPaginator",
    "dig",
    "paginate",
    "prefetch",
]


class PagingError(ConnectorError):
    """A listing cannot be followed to its end (more pages announced, no way to reach them)."""


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One request of a listing: a path (or an absolute next-page URL), query parameters, and
    a JSON body for listings paged by POST (GraphQL, Jira bulk fetch)."""

    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: dict[str, Any] | None = None

    def with_params(self, **params: Any) -> PageRequest:
        return replace(self, params={**self.params, **params})

    def with_json(self, **values: Any) -> PageRequest:
        return replace(self, json={**(self.json or {}), **values})


@dataclass(slots=True)
class RecordPage:
    """A page as :func:`paginate` yields it: the records and the HTTP answer they came in."""

    records: list[Any]
    http: HttpPage
    request: PageRequest

    @property
    def body(self) -> Any:
        return self.http.data


def dig(body: Any, path: str | Sequence[str]) -> Any:
    """``body["a"]["b"]`` for ``path="a.b"`` (or ``("a", "b")``); ``None`` when absent."""
    parts = path.split(".") if isinstance(path, str) else path
    value = body
    for part in parts:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class Paginator(ABC):
    """Decides the first request of a listing and each next one."""

    def first(self, request: PageRequest) -> PageRequest:
        """The first request (page-size and start parameters added)."""
        return request

    @abstractmethod
    def next(self, request: PageRequest, page: HttpPage, records: list[Any]) -> PageRequest | None:
        """The request for the page after ``page`` (answer to ``request``), ``None`` at the end."""


class SinglePage(Paginator):
    """An unpaged endpoint (Jira project versions, GitHub issue types)."""

    def next(self, request: PageRequest, page: HttpPage, records: list[Any]) -> PageRequest | None:
        return None


@dataclass
class OffsetPaginator(Paginator):
    """``startAt`` + ``maxResults`` paging. The end is ``isLast`` when the API sends it, else
    ``startAt + records >= total``, else a page shorter than ``limit``; an empty page always
    ends it. ``strict``: an empty page before ``total`` is reached raises instead of ending
    quietly short (Jira DC search)."""

    limit: int
    offset_param: str = "startAt"
    limit_param: str = "maxResults"
    total_path: str | None = "total"
    last_path: str | None = "isLast"
    strict: bool = False

    def first(self, request: PageRequest) -> PageRequest:
        return request.with_params(**{self.offset_param: 0, self.limit_param: self.limit})

    def next(self, request: PageRequest, page: HttpPage, records: list[Any]) -> PageRequest | None:
        start = int(request.params.get(self.offset_param, 0))
        body = page.data
        total = dig(body, self.total_path) if self.total_path else None
        if self.last_path and isinstance(body, dict) and self.last_path in body:
            if body[self.last_path]:
                return None
        elif total is not None:
            if start + len(records) >= int(total):
                return None
        elif len(records) < self.limit:
            return None  # neither flag nor total: a short page is the last one
        if not records:
            if self.strict and total is not None:
                raise PagingError(f"{request.path}: empty page at {start} of {total} results")
            return None
        return request.with_params(**{self.offset_param: start + len(records)})


@dataclass
class TokenPaginator(Paginator):
    """A continuation token in the answer (``nextPageToken``), sent back as a query parameter
    or, with ``in_json``, in the POST body. No token means the end; a token-less page that
    says ``isLast: false`` raises."""

    token_path: str = "nextPageToken"
    param: str = "nextPageToken"
    in_json: bool = False
    last_path: str | None = "isLast"

    def next(self, request: PageRequest, page: HttpPage, records: list[Any]) -> PageRequest | None:
        token = dig(page.data, self.token_path)
        if not token:
            if self.last_path and dig(page.data, self.last_path) is False:
                raise PagingError(f"{request.path}: page says more follow but gives no token")
            return None
        if self.in_json:
            return request.with_json(**{self.param: token})
        return request.with_params(**{self.param: token})


@dataclass
class LinkPaginator(Paginator):
    """Follows ``Link: <url>; rel="next"`` (the URL carries every parameter). The page size
    goes on the first request only."""

    page_size: int | None = None
    size_param: str = "per_page"
    rel: str = "next"

    def first(self, request: PageRequest) -> PageRequest:
        if self.page_size is None:
            return request
        return request.with_params(**{self.size_param: self.page_size})

    def next(self, request: PageRequest, page: HttpPage, records: list[Any]) -> PageRequest | None:
        url = page.links.get(self.rel)
        if not url:
            return None
        return PageRequest(url, {}, request.json)


@dataclass
class KeysetPaginator(LinkPaginator):
    """GitLab keyset paging: ``pagination=keyset`` with an ``order_by`` the endpoint supports,
    then ``Link rel="next"`` (no totals; the end is a page without the link)."""

    order_by: str = "id"
    sort: str = "asc"

    def first(self, request: PageRequest) -> PageRequest:
        return (
            super()
            .first(request)
            .with_params(pagination="keyset", order_by=self.order_by, sort=self.sort)
        )


@dataclass
class PageNumberPaginator(Paginator):
    """``page`` numbers with the next one in a header (GitLab's ``x-next-page``, empty on the
    last page). Without the header (some proxies strip it) a full page means "try the next"."""

    page_size: int
    page_param: str = "page"
    size_param: str = "per_page"
    next_header: str = "x-next-page"

    def first(self, request: PageRequest) -> PageRequest:
        return request.with_params(**{self.page_param: 1, self.size_param: self.page_size})

    def next(self, request: PageRequest, page: HttpPage, records: list[Any]) -> PageRequest | None:
        if self.next_header in page.headers:
            following = page.headers[self.next_header].strip()
            if not following:
                return None
            return request.with_params(**{self.page_param: int(following)})
        if len(records) < self.page_size:
            return None
        return request.with_params(**{self.page_param: int(request.params[self.page_param]) + 1})


@dataclass
class CursorPaginator(Paginator):
    """GraphQL connections: ``pageInfo { hasNextPage endCursor }`` at ``page_info_path``,
    ``endCursor`` sent back as the ``variable`` of the POST body's ``variables``."""

    page_info_path: Sequence[str]
    variable: str = "after"

    def next(self, request: PageRequest, page: HttpPage, records: list[Any]) -> PageRequest | None:
        info = dig(page.data, self.page_info_path)
        if not isinstance(info, dict) or not info.get("hasNextPage"):
            return None
        cursor = info.get("endCursor")
        if not cursor:
            raise PagingError(f"{request.path}: hasNextPage without an endCursor")
        variables = {**((request.json or {}).get("variables") or {}), self.variable: cursor}
        return request.with_json(variables=variables)


Records = str | Sequence[str] | Callable[[Any], list[Any]] | None


def records_of(body: Any, records: Records) -> list[Any]:
    """The records of one answer's body (``records`` as in :func:`paginate`)."""
    if callable(records):
        return list(records(body))
    value = body if records is None else dig(body, records)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PagingError(f"expected a list of records, got {type(value).__name__}")
    return value


async def paginate(
    http: HttpClient,
    request: PageRequest,
    paginator: Paginator,
    *,
    records: Records = None,
    etag: str | None = None,
) -> AsyncIterator[RecordPage]:
    """Request every page of a listing, yielding each as it arrives.

    ``records``: where the records sit in the body (``"values"``, ``("data", "x", "nodes")``,
    a function of the body, or ``None`` for a body that is the list). ``etag``: sent as
    ``If-None-Match`` on the first request; a ``304 Not Modified`` answer is yielded as one
    page without records (``page.http.not_modified``) and ends the listing.
    """
    current: PageRequest | None = paginator.first(request)
    first = True
    while current is not None:
        answer = await http.fetch_page(
            current.path,
            params=current.params or None,
            json=current.json,
            etag=etag if first else None,
        )
        first = False
        if answer.not_modified:
            yield RecordPage([], answer, current)
            return
        found = records_of(answer.data, records)
        yield RecordPage(found, answer, current)
        current = paginator.next(current, answer, found)
        # Drop this page before the next request: a big page (1000 Jira issues with their
        # changelogs) must not stay alive while the next one is parsed.
        del answer, found


T = TypeVar("T")


async def prefetch(pages: AsyncIterator[T]) -> AsyncIterator[T]:
    """The same pages, the next one already requested while the caller works on this one.

    A listing paged by ``Link`` or a token can only be read one page after another, but the
    caller's work on a page (a details call, the warehouse write) need not wait: with the next
    request in flight meanwhile, a sync takes about the time of its requests, not of its
    requests plus its own work. At most one page is held ahead.
    """
    iterator = aiter(pages)
    pending: asyncio.Task[T] | None = asyncio.ensure_future(anext(iterator))
    try:
        while pending is not None:
            try:
                page = await pending
            except StopAsyncIteration:
                return
            pending = asyncio.ensure_future(anext(iterator))
            yield page
    finally:
        if pending is not None:
            if not pending.done():
                pending.cancel()
            with contextlib.suppress(BaseException):
                await pending  # also retrieves a StopAsyncIteration or error nobody asked for
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(BaseException):
                await aclose()
