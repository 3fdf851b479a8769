"""The simulator's ASGI app: one port, four APIs, real auth, rate-limit headers, faults.

Prefixes (the connectors' base URLs): ``/jira`` (Jira Cloud: ``/rest/api/3``,
``/rest/agile/1.0``), ``/jira-dc`` (Jira Data Center: ``/rest/api/2`` + agile),
``/github`` (REST, GraphQL at ``/github/graphql``), ``/gitlab`` (``/api/v4``).

Writing an endpoint module (``jira_api.py``, ``github_api.py``, ``gitlab_api.py``)::

    from programview.simulator.app import GITHUB, Ctx, Router

    def register(router: Router) -> None:
        @router.get(GITHUB, "/repos/{owner}/{repo}/issues")
        def list_issues(ctx: Ctx) -> Response | dict | list:
            scope = ctx.org.find_scope("github", f"{ctx.params['owner']}/{ctx.params['repo']}")
            ...
            return ctx.json(page, headers=github_link_header(...), etag=True)

Paths are relative to the API prefix; ``{name}`` matches one percent-encoded segment
(GitLab's ``acme%2Fplatform%2Fapi`` included: params arrive decoded), ``{name:path}``
matches the rest. A handler gets a ``Ctx`` and returns a ``Response``, or plain
JSON-able data (sent with the API's content type). Raise ``ApiError`` (build it with
``api_error(api, status, message)``) for error answers. Handlers should be plain ``def``:
the app runs them holding ``org.lock`` so ``advance()`` from a test thread never
interleaves; ``async def`` works too but runs without the lock.

The app does the rest for every request, in this order: request log, latency (global
+ fault rules), auth (real 401 bodies/headers), pre-handler faults (rate limit,
secondary limit, 5xx), enforced rate limit (off by default), routing (404 in the API's
style), the handler, ETag → 304 (GitHub style, not counted), rate-limit headers on
every response, post-handler faults (malformed body, dropped connection).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import importlib
import inspect
import json
import logging
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlencode

import httpx
import orjson
from starlette.datastructures import Headers, QueryParams
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from programview.simulator.faults import FaultPlan, FaultRule
from programview.simulator.generator import Credentials, Organisation, Person

log = logging.getLogger("programview.simulator")

JIRA, JIRA_DC, GITHUB, GITLAB = "jira", "jira-dc", "github", "gitlab"
APIS: tuple[str, ...] = (JIRA, JIRA_DC, GITHUB, GITLAB)
PREFIXES: dict[str, str] = {
    JIRA: "/jira",
    JIRA_DC: "/jira-dc",
    GITHUB: "/github",
    GITLAB: "/gitlab",
}
CONTENT_TYPES: dict[str, str] = {
    JIRA: "application/json;charset=UTF-8",
    JIRA_DC: "application/json;charset=UTF-8",
    GITHUB: "application/json; charset=utf-8",
    GITLAB: "application/json",
}
#: Endpoint modules loaded by default; each has ``register(router: Router) -> None``.
ENDPOINT_MODULES: tuple[str, ...] = (
    "programview.simulator.jira_api",
    "programview.simulator.jira_sprint_report",
    "programview.simulator.github_api",
    "programview.simulator.gitlab_api",
)
GITHUB_DOCS = "https://docs.github.com/rest"
JIRA_UNAUTHORIZED = "Client must be authenticated to access this resource."

# --- time formats (each API's own style) ----------------------------------------------


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


def jira_time(dt: datetime | None) -> str | None:
    """Jira REST: ``2021-01-17T12:34:00.000+0000`` (no colon in the offset)."""
    if dt is None:
        return None
    dt = _utc(dt)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+0000"


def jira_agile_time(dt: datetime | None) -> str | None:
    """Jira Agile sprint dates: ``2025-01-20T09:00:00.000Z``."""
    if dt is None:
        return None
    dt = _utc(dt)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@lru_cache(maxsize=1 << 16)
def github_time(dt: datetime | None) -> str | None:
    """GitHub: ``2025-01-31T13:47:09Z`` (seconds). Cached: a GraphQL answer formats the same
    few times over and over (an item's stamps, its field values' stamps)."""
    if dt is None:
        return None
    return _utc(dt).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def gitlab_time(dt: datetime | None) -> str | None:
    """GitLab: ``2025-01-31T13:47:09.120Z`` (milliseconds)."""
    return jira_agile_time(dt)


def iso_date(d: date | datetime | None) -> str | None:
    """Date-only fields everywhere: ``2025-02-14``."""
    if d is None:
        return None
    return (d.date() if isinstance(d, datetime) else d).isoformat()


def http_date(dt: datetime) -> str:
    """``Fri, 31 Jan 2025 13:47:09 GMT`` (HTTP headers)."""
    return format_datetime(_utc(dt), usegmt=True)


def parse_time(text: str) -> datetime:
    """Parse the timestamps clients send (``since``, ``updated_after``, ``startedAfter``):
    ISO with ``Z``, ``+00:00`` or ``+0000``, or a bare date (midnight UTC)."""
    t = text.strip().replace(" ", "+") if "T" in text else text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    m = re.match(r"(.*[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?)([+-]\d\d)(\d\d)$", t)
    if m:
        t = f"{m.group(1)}{m.group(2)}:{m.group(3)}"
    dt = datetime.fromisoformat(t)
    return _utc(dt)


# --- errors ---------------------------------------------------------------------------


class ApiError(Exception):
    """Raise from a handler to answer with ``response`` (see ``api_error``)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def json_response(
    api: str, data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """Compact JSON with the API's exact content type."""
    try:
        body = orjson.dumps(data)  # the same compact UTF-8 text, at a fifth of the CPU
    except TypeError:  # what orjson cannot write (e.g. an integer past 64 bits)
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status, headers=headers, media_type=CONTENT_TYPES[api])


def error_body(api: str, status: int, message: str) -> Any:
    """The API's error shape: Jira ``errorMessages``, GitHub ``message/documentation_url/
    status`` (string), GitLab ``message`` (pass the full text, e.g. "404 Project Not Found")."""
    if api in (JIRA, JIRA_DC):
        return {"errorMessages": [message], "errors": {}}
    if api == GITHUB:
        return {"message": message, "documentation_url": GITHUB_DOCS, "status": str(status)}
    return {"message": message}


def api_error(
    api: str, status: int, message: str, headers: dict[str, str] | None = None
) -> ApiError:
    """``raise api_error(JIRA, 404, "Issue does not exist or you do not have permission to
    see it.")``."""
    return ApiError(json_response(api, error_body(api, status, message), status, headers))


def not_found(api: str) -> Response:
    """Unknown route, as each real service answers it."""
    if api in (JIRA, JIRA_DC):
        return json_response(api, {"errorMessages": ["null for uri"], "errors": {}}, 404)
    if api == GITHUB:
        return json_response(api, error_body(api, 404, "Not Found"), 404)
    return json_response(api, {"error": "404 Not Found"}, 404)


# --- paging helpers -------------------------------------------------------------------


def page_slice(seq: Sequence[Any], page: int, per_page: int) -> Sequence[Any]:
    """1-based page of a sequence (GitHub/GitLab offset paging)."""
    start = (max(1, page) - 1) * per_page
    return seq[start : start + per_page]


def encode_page_token(offset: int) -> str:
    """Opaque Jira ``nextPageToken`` (base64, like the real one)."""
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_page_token(token: str | None) -> int:
    """Offset from a token made by ``encode_page_token``; raises ApiError 400 if bad."""
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not raw.startswith("o:"):
            raise ValueError(raw)
        return int(raw[2:])
    except ValueError as exc:
        raise api_error(JIRA, 400, "The provided next page token is invalid or expired.") from exc


def agile_page(values: Sequence[Any], start_at: int, max_results: int) -> dict[str, Any]:
    """Jira Agile list page ``{maxResults,startAt,total,isLast,values}``."""
    chunk = list(values[start_at : start_at + max_results])
    return {
        "maxResults": max_results,
        "startAt": start_at,
        "total": len(values),
        "isLast": start_at + len(chunk) >= len(values),
        "values": chunk,
    }


def _link(url: str, query: dict[str, Any], page: int, rel: str) -> str:
    q = dict(query)
    q["page"] = page
    return f'<{url}?{urlencode(q, doseq=True)}>; rel="{rel}"'


def github_link_header(
    ctx: Ctx, page: int, per_page: int, total: int, path: str | None = None
) -> dict[str, str]:
    """GitHub ``Link`` (prev, next, last, first as GitHub orders them; the last page has
    only prev and first). ``path`` overrides the request path, e.g.
    ``/repositories/{id}/issues`` as real next links use. Returns {} for one page."""
    url = ctx.base_url + (path or ctx.path)
    query: dict[str, Any] = {k: v for k, v in ctx.query.multi_items() if k != "page"}
    query["per_page"] = per_page
    last = max(1, math.ceil(total / per_page))
    parts = []
    if page > 1:
        parts.append(_link(url, query, page - 1, "prev"))
    if page < last:
        parts.append(_link(url, query, page + 1, "next"))
        parts.append(_link(url, query, last, "last"))
    if page > 1:
        parts.append(_link(url, query, 1, "first"))
    return {"Link": ", ".join(parts)} if parts else {}


def gitlab_paging_headers(ctx: Ctx, page: int, per_page: int, total: int) -> dict[str, str]:
    """GitLab offset paging: ``x-page``, ``x-per-page``, ``x-next-page`` (empty on the last
    page), ``x-prev-page``, ``x-total``, ``x-total-pages`` and ``Link``; totals and
    ``rel="last"`` are dropped above 10,000 results, as GitLab does."""
    url = ctx.base_url + ctx.path
    query: dict[str, Any] = {k: v for k, v in ctx.query.multi_items() if k != "page"}
    query["per_page"] = per_page
    pages = max(1, math.ceil(total / per_page))
    has_next = page < pages
    headers = {
        "x-page": str(page),
        "x-per-page": str(per_page),
        "x-next-page": str(page + 1) if has_next else "",
        "x-prev-page": str(page - 1) if page > 1 else "",
    }
    links = []
    if page > 1:
        links.append(_link(url, query, page - 1, "prev"))
    if has_next:
        links.append(_link(url, query, page + 1, "next"))
    links.append(_link(url, query, 1, "first"))
    if total <= 10_000:
        headers["x-total"] = str(total)
        headers["x-total-pages"] = str(pages)
        links.append(_link(url, query, pages, "last"))
    headers["Link"] = ", ".join(links)
    return headers


# --- request context ------------------------------------------------------------------


@dataclass
class Ctx:
    """Everything a handler needs about one request."""

    app: SimApp
    api: str
    method: str
    path: str  # after the API prefix, percent-encoded as sent, no query
    params: dict[str, str]  # path parameters, decoded
    query: QueryParams  # .get(), .getlist() for repeated keys (keys=A&keys=B)
    headers: Headers
    body: bytes
    base_url: str  # scheme://host:port + API prefix, for self/next URLs

    @property
    def org(self) -> Organisation:
        return self.app.org

    @property
    def user(self) -> Person:
        """The authenticated user (every simulator token belongs to person 0)."""
        return self.app.org.people[0]

    def json_body(self) -> Any:
        """Request JSON, or an API-style 400 when it is not JSON."""
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise api_error(
                self.api,
                400,
                "Invalid request payload. Refer to the REST API documentation and try again.",
            ) from exc

    def int_arg(
        self,
        name: str,
        default: int,
        lo: int | None = None,
        hi: int | None = None,
        clamp: bool = True,
    ) -> int:
        """Integer query argument; out of range → clamped (or ApiError 400 when not
        ``clamp``); not a number → ApiError 400."""
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError as exc:
            raise api_error(self.api, 400, f"Invalid value for {name}: {raw}") from exc
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            if not clamp:
                raise api_error(self.api, 400, f"{name} must be between {lo} and {hi}")
            value = max(
                lo if lo is not None else value, min(hi if hi is not None else value, value)
            )
        return value

    def url(self, path: str, **query: Any) -> str:
        """Absolute URL under this API's prefix (for ``self`` fields and links)."""
        q = f"?{urlencode(query, doseq=True)}" if query else ""
        return f"{self.base_url}{path}{q}"

    def json(
        self,
        data: Any,
        status: int = 200,
        headers: dict[str, str] | None = None,
        etag: bool = False,
    ) -> Response:
        """JSON response in the API's style. ``etag=True`` adds a strong ETag of the body;
        the app turns a matching ``If-None-Match`` into 304 (empty, not counted)."""
        resp = json_response(self.api, data, status, headers)
        if etag:
            resp.headers["ETag"] = '"' + hashlib.sha1(resp.body).hexdigest() + '"'
        return resp

    def error(self, status: int, message: str) -> ApiError:
        """``raise ctx.error(404, "Not Found")`` in the API's error shape."""
        return api_error(self.api, status, message)


Handler = Callable[[Ctx], Any]


class Router:
    """Routes per API. Endpoint modules call ``router.get(api_or_apis, path)``."""

    def __init__(self) -> None:
        self._static: dict[tuple[str, str, str], Handler] = {}
        self._dynamic: list[tuple[str, str, re.Pattern[str], Handler]] = []

    def route(
        self, apis: str | Iterable[str], method: str, path: str
    ) -> Callable[[Handler], Handler]:
        """Decorator registering ``handler`` for ``method path`` on one or more APIs."""
        api_list = (apis,) if isinstance(apis, str) else tuple(apis)
        for api in api_list:
            if api not in APIS:
                raise ValueError(f"unknown API {api!r}")

        def deco(handler: Handler) -> Handler:
            for api in api_list:
                if "{" not in path:
                    self._static[(api, method.upper(), path)] = handler
                else:
                    self._dynamic.append((api, method.upper(), _compile(path), handler))
            return handler

        return deco

    def get(self, apis: str | Iterable[str], path: str) -> Callable[[Handler], Handler]:
        return self.route(apis, "GET", path)

    def post(self, apis: str | Iterable[str], path: str) -> Callable[[Handler], Handler]:
        return self.route(apis, "POST", path)

    def match(self, api: str, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        """Handler and decoded params for a percent-encoded path, or None."""
        method = "GET" if method == "HEAD" else method
        handler = self._static.get((api, method, path))
        if handler is not None:
            return handler, {}
        for r_api, r_method, pattern, handler in self._dynamic:
            if r_api == api and r_method == method:
                m = pattern.fullmatch(path)
                if m:
                    return handler, {k: unquote(v) for k, v in m.groupdict().items()}
        return None

    def routes(self) -> list[tuple[str, str, str]]:
        """(api, method, pattern) of everything registered, for docs and debugging."""
        out = [(a, m, p) for (a, m, p) in self._static]
        out += [(a, m, p.pattern) for a, m, p, _ in self._dynamic]
        return sorted(out)


def _compile(template: str) -> re.Pattern[str]:
    regex = ""
    for part in re.split(r"(\{[a-zA-Z_][a-zA-Z0-9_]*(?::path)?\})", template):
        if part.startswith("{"):
            name, _, conv = part[1:-1].partition(":")
            regex += f"(?P<{name}>.+)" if conv == "path" else f"(?P<{name}>[^/]+)"
        else:
            regex += re.escape(part)
    return re.compile(regex)


# --- request log ----------------------------------------------------------------------


@dataclass
class RequestRecord:
    api: str
    method: str
    path: str
    query: str
    status: int = 0
    fault: str | None = None  # fault kind applied, if any
    at: float = field(default_factory=time.time)


class RequestLog:
    """Every request the simulator received (tests and benchmarks assert on it)."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def __len__(self) -> int:
        return len(self.records)

    def count(
        self,
        api: str | None = None,
        path: str | None = None,
        method: str | None = None,
        status: int | None = None,
    ) -> int:
        """Requests matching all given filters (``path`` is an fnmatch glob)."""
        return sum(
            1
            for r in list(self.records)
            if (api is None or r.api == api)
            and (path is None or fnmatchcase(r.path, path))
            and (method is None or r.method == method)
            and (status is None or r.status == status)
        )

    def by_api(self) -> dict[str, int]:
        return dict(Counter(r.api for r in list(self.records)))

    def clear(self) -> None:
        self.records.clear()


# --- rate limits ----------------------------------------------------------------------


@dataclass
class _Window:
    limit: int
    seconds: int
    used: int = 0
    reset: float = 0.0

    def roll(self, now: float) -> None:
        if now >= self.reset:
            self.used, self.reset = 0, math.floor(now) + self.seconds


class RateLimiter:
    """Per-API counting behind the rate-limit headers on every response.

    Not enforced by default: when a window fills up it simply restarts, so a client
    that honours ``remaining == 0`` never waits an hour in a benchmark. With
    ``enforce=True`` the API's real limit answer is sent until the window resets.
    """

    LIMITS: dict[str, tuple[int, int]] = {  # api -> (limit, window seconds)
        JIRA: (1000, 60),
        JIRA_DC: (1000, 60),
        GITHUB: (5000, 3600),
        GITLAB: (2000, 60),
    }

    def __init__(
        self, api: str, enforce: bool = False, limit: int | None = None, window_s: int | None = None
    ) -> None:
        self.api = api
        self.enforce = enforce
        default_limit, default_window = self.LIMITS[api]
        self.limit = limit or default_limit
        self.window_s = window_s or default_window
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def _w(self, resource: str) -> _Window:
        w = self._windows.get(resource)
        if w is None:
            limit = 30 if resource == "search" else self.limit
            w = self._windows[resource] = _Window(
                limit, 60 if resource == "search" else self.window_s
            )
        w.roll(time.time())
        return w

    def exhausted(self, resource: str = "core") -> bool:
        with self._lock:
            w = self._w(resource)
            return self.enforce and w.used >= w.limit

    def hit(self, resource: str = "core") -> None:
        with self._lock:
            w = self._w(resource)
            if w.used >= w.limit and not self.enforce:
                w.used, w.reset = 0, math.floor(time.time()) + w.seconds
            w.used += 1

    def state(self, resource: str = "core") -> tuple[int, int, int, float]:
        """(limit, used, remaining, reset epoch seconds)."""
        with self._lock:
            w = self._w(resource)
            return w.limit, w.used, max(0, w.limit - w.used), w.reset

    def headers(self, resource: str = "core") -> dict[str, str]:
        """The API's own rate-limit headers for the current state."""
        limit, used, remaining, reset = self.state(resource)
        if self.api == GITHUB:
            return {
                "x-ratelimit-limit": str(limit),
                "x-ratelimit-remaining": str(remaining),
                "x-ratelimit-used": str(used),
                "x-ratelimit-reset": str(int(reset)),
                "x-ratelimit-resource": resource,
            }
        if self.api == GITLAB:
            return {
                "RateLimit-Limit": str(limit),
                "RateLimit-Observed": str(used),
                "RateLimit-Remaining": str(remaining),
                "RateLimit-Reset": str(int(reset)),
                "RateLimit-ResetTime": http_date(datetime.fromtimestamp(reset, UTC)),
            }
        if self.api == JIRA_DC:
            return {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Interval-Seconds": str(self.window_s),
                "X-RateLimit-FillRate": str(max(1, limit // self.window_s)),
            }
        headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining)}
        if remaining < limit * 0.2:
            headers["X-RateLimit-NearLimit"] = "true"
        return headers


def github_resource(path: str) -> str:
    """GitHub's rate-limit bucket for a path."""
    if path == "/graphql":
        return "graphql"
    if path.startswith("/search/"):
        return "search"
    return "core"


# --- fault and auth answers -----------------------------------------------------------


def _jira_reset(retry_after: float) -> str:
    """``X-RateLimit-Reset: 2025-01-31T13:45Z`` (ISO, minutes, rounded up)."""
    ts = math.ceil((time.time() + retry_after) / 60) * 60
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%MZ")


def rate_limit_response(
    app: SimApp, api: str, rule: FaultRule | None, path: str, request_id: str
) -> Response:
    """The API's real rate-limit answer (also used when an enforced limit runs out)."""
    retry = rule.retry_after if rule and rule.retry_after is not None else app.faults.retry_after_s
    retry_hdr = str(max(0, math.ceil(retry)))
    kind = rule.kind if rule else "ratelimit"
    variant = rule.variant if rule else None
    limiter = app.limiters[api]
    if api == GITHUB:
        resource = github_resource(path)
        status = rule.status if rule and rule.status in (403, 429) else 403
        headers = limiter.headers(resource)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if kind == "secondary":
            message = (
                "You have exceeded a secondary rate limit. Please wait a few minutes "
                "before you try again. If you reach out to GitHub Support for help, "
                f"please include the request ID {request_id} and timestamp {stamp}."
            )
            doc = (
                "https://docs.github.com/free-pro-team@latest/rest/overview/"
                "rate-limits-for-the-rest-api#about-secondary-rate-limits"
            )
            headers["retry-after"] = retry_hdr
        else:
            message = (
                "API rate limit exceeded for user ID 1. If you reach out to GitHub "
                "Support for help, please include the request ID "
                f"{request_id} and timestamp {stamp}."
            )
            doc = (
                "https://docs.github.com/rest/overview/"
                "rate-limits-for-the-rest-api#about-primary-rate-limits"
            )
            headers["x-ratelimit-remaining"] = "0"
            headers["x-ratelimit-used"] = headers["x-ratelimit-limit"]
            headers["x-ratelimit-reset"] = str(math.ceil(time.time() + retry))
        body: dict[str, Any] = {
            "message": message,
            "documentation_url": doc,
            "status": str(status),
        }
        return json_response(api, body, status, headers)
    if api == GITLAB:
        limit = limiter.limit
        reset = math.ceil(time.time() + retry)
        headers = {
            "Retry-After": retry_hdr,
            "RateLimit-Limit": str(limit),
            "RateLimit-Observed": str(limit + 1),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(reset),
            "RateLimit-ResetTime": http_date(datetime.fromtimestamp(reset, UTC)),
        }
        if variant == "text":
            return Response(b"Retry later\n", 429, headers, media_type="text/plain")
        if variant == "bare":  # GitLab issues 365728, 352409: no hint at all
            return Response(b"Retry later\n", 429, {"x-sim-bare": "1"}, media_type="text/plain")
        body = {
            "message": {
                "error": "This endpoint has been requested too many times. Try again later."
            }
        }
        return json_response(api, body, 429, headers)
    headers = {
        "Retry-After": retry_hdr,
        "X-RateLimit-Limit": str(limiter.limit),
        "X-RateLimit-Remaining": "0",
    }
    if api == JIRA:
        headers["X-RateLimit-Reset"] = _jira_reset(retry)
        headers["RateLimit-Reason"] = "jira-burst-based"
        headers["X-RateLimit-NearLimit"] = "true"
    else:
        headers["X-RateLimit-Interval-Seconds"] = str(limiter.window_s)
        headers["X-RateLimit-FillRate"] = str(max(1, limiter.limit // limiter.window_s))
    if variant == "html":
        html = (
            b"<html><head><title>429 Too Many Requests</title></head>"
            b"<body>Rate limited</body></html>"
        )
        return Response(html, 429, headers, media_type="text/html;charset=UTF-8")
    body = {
        "errorMessages": ["The request has been rate-limited. Please try again later."],
        "errors": {},
        "status": 429,
    }
    return json_response(api, body, 429, headers)


_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def server_error_response(api: str, rule: FaultRule) -> Response:
    """5xx: 500 in the API's JSON error shape; 502/503/504 as the gateway's HTML page.
    ``Retry-After`` only when the rule sets ``retry_after``."""
    status = rule.status or 503
    headers: dict[str, str] = {}
    if rule.retry_after is not None:
        headers["Retry-After"] = str(max(0, math.ceil(rule.retry_after)))
    reason = _REASONS.get(status, "Server Error")
    if status == 500:
        message = {GITLAB: "500 Internal Server Error", GITHUB: "Server Error"}.get(
            api, "Internal server error"
        )
        return json_response(api, error_body(api, status, message), status, headers)
    html = (
        f"<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}"
        f"</h1></body></html>".encode()
    )
    return Response(html, status, headers, media_type="text/html")


def _basic(header: str) -> tuple[str, str] | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, pw = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, pw


def _bearer(header: str, schemes: tuple[str, ...] = ("bearer",)) -> str | None:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() in schemes and token.strip() else None


def check_auth(api: str, headers: Headers, path: str, creds: Credentials) -> Response | None:
    """None when authenticated, else the API's real unauthenticated answer."""
    auth = headers.get("authorization", "")
    if api in (JIRA, JIRA_DC):
        if api == JIRA:
            ok = _basic(auth) == (creds.jira_email, creds.jira_api_token)
        else:
            ok = _bearer(auth) == creds.jira_dc_pat or _basic(auth) == (
                creds.jira_dc_user,
                creds.jira_dc_password,
            )
        if ok:
            return None
        return Response(
            JIRA_UNAUTHORIZED.encode(),
            401,
            {
                "X-Seraph-LoginReason": "AUTHENTICATED_FAILED",
                "WWW-Authenticate": 'Basic realm="protected-area"',
            },
            media_type="text/plain;charset=UTF-8",
        )
    if api == GITHUB:
        token = _bearer(auth, ("bearer", "token"))
        if token == creds.github_token:
            return None
        message = "Bad credentials" if auth else "Requires authentication"
        return json_response(api, error_body(api, 401, message), 401)
    token = headers.get("private-token") or _bearer(auth)
    if token == creds.gitlab_token:
        return None
    if not token and not auth:  # anonymous: private things are invisible, not 401
        if path.startswith("/api/v4/projects/"):
            return json_response(api, {"message": "404 Project Not Found"}, 404)
        if path.startswith("/api/v4/groups/"):
            return json_response(api, {"message": "404 Group Not Found"}, 404)
    return json_response(api, {"message": "401 Unauthorized"}, 401)


# --- the app --------------------------------------------------------------------------


class DroppedConnection(httpx.RemoteProtocolError):
    """Raised by the app after sending part of a body, so the server closes the socket.

    It subclasses httpx's error so that in-process use (``httpx.ASGITransport``, which
    re-raises app exceptions) looks to the client exactly like a real dropped
    connection over HTTP."""

    def __init__(self) -> None:
        super().__init__("simulator dropped the connection mid-body (fault injection)")


class _DropFilter(logging.Filter):
    """Keep uvicorn's log free of the tracebacks of deliberate drops."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


logging.getLogger("uvicorn.error").addFilter(_DropFilter())


class SimApp:
    """The ASGI app. ``org``, ``faults``, ``latency_ms`` may be changed at runtime."""

    def __init__(
        self,
        org: Organisation,
        *,
        faults: FaultPlan | str | None = None,
        latency_ms: float = 0.0,
        retry_after_s: float = 1.0,
        enforce_rate_limits: bool = False,
        modules: Iterable[str] = ENDPOINT_MODULES,
    ) -> None:
        self.org = org
        if isinstance(faults, FaultPlan):
            self.faults = faults
        else:
            self.faults = FaultPlan.parse(faults, retry_after_s)
        self.latency_ms = latency_ms
        self.requests = RequestLog()
        self.limiters = {api: RateLimiter(api, enforce_rate_limits) for api in APIS}
        self.router = Router()
        self._request_seq = 0
        for name in modules:
            module = importlib.import_module(name)
            module.register(self.router)

    # ASGI entry point
    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        raw = scope.get("raw_path") or scope["path"].encode()
        full_path = raw.decode("latin-1").split("?", 1)[0]
        api, path = _split_api(full_path)
        if api is None:
            await Response(b"Not Found", 404, media_type="text/plain")(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = Headers(scope=scope)
        host = headers.get("host", "127.0.0.1")
        ctx = Ctx(
            app=self,
            api=api,
            method=scope["method"],
            path=path,
            params={},
            query=QueryParams(scope.get("query_string", b"")),
            headers=headers,
            body=body,
            base_url=f"{scope.get('scheme', 'http')}://{host}{PREFIXES[api]}",
        )
        record = RequestRecord(api, ctx.method, path, scope.get("query_string", b"").decode())
        self.requests.records.append(record)
        self._request_seq += 1
        request_id = f"{self._request_seq:04X}:{self._request_seq * 7919 % 65536:04X}:SIM"

        decision = self.faults.decide(api, ctx.method, path)
        delay = self.latency_ms + decision.latency_ms
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        resource = github_resource(path) if api == GITHUB else "core"
        response = check_auth(api, headers, path, self.org.tokens)
        if response is None and decision.pre is not None:
            record.fault = decision.pre.kind
            if decision.pre.kind == "5xx":
                response = server_error_response(api, decision.pre)
            else:
                response = rate_limit_response(self, api, decision.pre, path, request_id)
        if response is None and self.limiters[api].exhausted(resource):
            record.fault = "ratelimit"
            response = rate_limit_response(self, api, None, path, request_id)
        if response is None:
            response = await self._dispatch(ctx)
            etag = response.headers.get("etag")
            if (
                etag
                and response.status_code == 200
                and etag in _etags(headers.get("if-none-match"))
            ):
                response = Response(b"", 304, {"ETag": etag})
            elif response.status_code != 304:
                self.limiters[api].hit(resource)
        elif response.status_code == 401 or record.fault:
            self.limiters[api].hit(resource)
        bare = response.headers.get("x-sim-bare") is not None
        if bare:  # a throttle answer without any rate-limit header (GitLab's "bare" 429)
            del response.headers["x-sim-bare"]
        for name, value in self.limiters[api].headers(resource).items():
            if not bare and name.lower() not in response.headers:
                response.headers[name] = value
        # The simulated world's clock, as real servers send theirs: a client that stamps
        # observations with the server's Date stays in simulated time.
        response.headers["date"] = http_date(self.org.now)
        if api == GITHUB:
            response.headers.setdefault("x-github-request-id", request_id)
            response.headers.setdefault("x-github-media-type", "github.v3; format=json")
        record.status = response.status_code
        if decision.post is not None and record.fault is None and response.status_code == 200:
            record.fault = decision.post.kind
            if decision.post.kind == "malformed":
                broken = response.body[: max(1, len(response.body) // 2)]
                response.body = broken
                response.headers["content-length"] = str(len(broken))
            else:
                await _send_partial(response, send)
                raise DroppedConnection()
        await response(scope, receive, send)

    async def _dispatch(self, ctx: Ctx) -> Response:
        found = self.router.match(ctx.api, ctx.method, ctx.path)
        if found is None:
            return not_found(ctx.api)
        handler, ctx.params = found
        try:
            if inspect.iscoroutinefunction(handler):
                result = await handler(ctx)
            else:
                with self.org.lock:
                    result = handler(ctx)
        except ApiError as exc:
            return exc.response
        except Exception:  # a bug in an endpoint: answer 500 and say where
            log.exception("simulator endpoint %s %s%s failed", ctx.method, ctx.api, ctx.path)
            return json_response(ctx.api, error_body(ctx.api, 500, "Internal server error"), 500)
        if isinstance(result, Response):
            return result
        return json_response(ctx.api, result)


def _split_api(path: str) -> tuple[str | None, str]:
    for api in (JIRA_DC, JIRA, GITHUB, GITLAB):  # jira-dc before jira
        prefix = PREFIXES[api]
        if path == prefix or path.startswith(prefix + "/"):
            return api, path[len(prefix) :] or "/"
    return None, path


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {t.strip().removeprefix("W/") for t in header.split(",")}


async def _send_partial(
    response: Response, send: Callable[[dict[str, Any]], Awaitable[None]]
) -> None:
    """Send headers promising the whole body, then only half of it."""
    body = response.body
    response.headers["content-length"] = str(len(body))
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    with contextlib.suppress(Exception):
        await asyncio.sleep(0.01)  # let the server flush what was sent before closing
