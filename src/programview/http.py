"""The one HTTP client every connector uses: async httpx, tenacity retries, rate limits.

Why one shared layer: Jira, GitHub and GitLab each signal rate limits and errors their own way
(see shared/reference/apis.md), and a sync must survive all of them the same way:

* **Transient failures** (5xx, timeouts, dropped connections, a truncated JSON body) are
  retried with exponential backoff and jitter, ``max_retries`` times.
* **Rate limits** are waited out exactly as long as the server asks (``Retry-After``, GitHub's
  ``x-ratelimit-reset``, GitLab's ``RateLimit-Reset``, Jira's ISO ``X-RateLimit-Reset``), each
  wait is reported to the progress display, and waiting does not use up the retry budget. A
  wait longer than ``max_wait`` (or waits adding up to more) raises :class:`RateLimited`
  instead of hanging a sync for hours.
* **Caller errors** are never retried: 401 and a 403 that is not a rate limit raise
  :class:`AuthError` with the server's reason and a hint, 404 :class:`NotFound`, other 4xx
  :class:`ApiError`.
* **Secrets** (auth headers, credential values) are removed from every message this module
  builds, and ``repr`` shows only the base URL and source name.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json as jsonlib
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpcore  # noqa: F401 - see below
import httpx
import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from programview.errors import ApiError, AuthError, NotFound, RateLimited
from programview.progress import Progress

log = logging.getLogger("programview.http")

# ``httpcore`` (with ``trio`` when installed) is loaded by the first ``httpx.AsyncClient``, not
# by ``import httpx``: imported with this module, so the first sync of a process does not
# spend ~0.15 s importing it between its first requests.

#: Header names whose values are credentials (besides anything containing these words).
_SENSITIVE_WORDS = ("auth", "token", "key", "secret", "cookie", "session", "password")
#: Rate-limit waits allowed for one request before giving up (a server that says "retry in 1s"
#: forever would otherwise loop without end).
MAX_RATE_LIMIT_WAITS = 50
#: Backoff for transient errors: 1, 2, 4 … seconds, capped, plus up to 1 s of jitter.
BACKOFF_MAX = 60.0
#: A rate limit without any hint of how long: 5, 10, 20 … seconds, capped.
RATE_FALLBACK_MAX = 120.0
#: GitHub: "without retry-after wait at least 60 s" for secondary rate limits.
SECONDARY_MIN_WAIT = 60.0
#: Pace requests once fewer than this share of a rate-limit window is left (see ``_pace``).
PACE_RESERVE = 0.1


async def _sleep(seconds: float) -> None:
    """The real sleep. Tests replace this module attribute to run retries instantly."""
    await asyncio.sleep(seconds)


# --- per-stream request counting ----------------------------------------------------------


@dataclass
class RequestTally:
    """Requests sent by the code running inside :func:`tally_requests` (one stream)."""

    count: int = 0


_tally: ContextVar[RequestTally | None] = ContextVar("programview_http_tally", default=None)


@contextlib.contextmanager
def tally_requests() -> Iterator[RequestTally]:
    """Count the requests made in this asyncio task (and tasks it starts) while inside.

    One ``HttpClient`` serves every scope of a source concurrently, so its ``requests`` total
    cannot tell streams apart; a context variable follows the task instead.
    """
    tally = RequestTally()
    token = _tally.set(tally)
    try:
        yield tally
    finally:
        _tally.reset(token)


# --- one page of a listing ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpPage:
    """A decoded answer with what paging and conditional requests need from the response.

    ``links`` is the parsed ``Link`` header by ``rel`` (GitHub, GitLab next-page URLs);
    ``not_modified`` is a ``304`` to a conditional request (``If-None-Match``): no body, and on
    GitHub it costs no quota.
    """

    data: Any
    status: int
    headers: httpx.Headers
    links: dict[str, str]
    url: str

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")


# --- internal retry signal -----------------------------------------------------------------


class _Retry(Exception):
    """Raised inside one attempt to ask tenacity for another one after ``delay`` seconds."""

    def __init__(
        self, reason: str, *, delay: float, rate_limited: bool, status: int | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay
        self.rate_limited = rate_limited
        self.status = status


@dataclass
class _Budget:
    """What one logical request has used so far."""

    transient: int = 0  # failed attempts that count against max_retries
    rate_waits: int = 0
    rate_waited: float = 0.0


class HttpClient:
    """Async HTTP for one configured source. See the module docstring for the behaviour.

    ``path`` arguments are relative to ``base_url`` (``http://h/jira`` + ``/rest/api/3/myself``
    is ``http://h/jira/rest/api/3/myself``) or absolute URLs (``Link`` next-page URLs).

    ``sleep`` and ``clock`` exist for tests: a fake sleep makes waits instant and observable,
    a fake clock makes reset-epoch arithmetic exact.
    """

    def __init__(
        self,
        base_url: str,
        *,
        source: str,
        headers: dict[str, str] | None = None,
        progress: Progress | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 60.0,
        max_retries: int = 6,
        max_wait: float = 900.0,
        pace: bool = False,
        auth_hint: str | None = None,
        secrets: Iterable[str] = (),
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.source = source
        self.progress = progress or Progress()
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.auth_hint = auth_hint
        #: Every HTTP request sent, retries included.
        self.requests = 0
        self._sleep_fn = sleep
        self._clock = clock
        self._secrets = _secret_strings(headers or {}, secrets)
        #: Pacing (``pace``): earliest time the next request of a rate-limit resource may go.
        self.pace = pace
        self._pace_until: dict[str, float] = {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers=headers,
            transport=transport,
            timeout=timeout,
            follow_redirects=True,
        )

    def __repr__(self) -> str:
        return f"HttpClient(base_url={self.redact(self.base_url)!r}, source={self.source!r})"

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def redact(self, text: str) -> str:
        """``text`` with every known secret replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # --- public calls -----------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        expect: Collection[int] = (200,),
    ) -> httpx.Response:
        """Send with retries; return the response when its status is in ``expect``."""
        response, _ = await self._call(method, path, params, json, headers, expect, parse=False)
        return response

    async def get_json(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """GET and decode JSON; a malformed or truncated body is retried like a 5xx."""
        _, data = await self._call("GET", path, params, None, headers, (200,), parse=True)
        return data

    async def post_json(
        self, path: str, json: Any, *, params: Mapping[str, Any] | None = None
    ) -> Any:
        """POST a JSON body (searches, GraphQL) and decode the JSON answer."""
        _, data = await self._call("POST", path, params, json, None, (200, 201), parse=True)
        return data

    async def get_page(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        etag: str | None = None,
    ) -> HttpPage:
        """GET one page of a listing: JSON, headers and parsed links (see :meth:`fetch_page`)."""
        return await self.fetch_page(path, params=params, headers=headers, etag=etag)

    async def fetch_page(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        etag: str | None = None,
        gate: asyncio.Semaphore | None = None,
    ) -> HttpPage:
        """One page of a listing: GET (POST when ``json`` is given), decoded JSON plus headers
        and parsed ``Link`` relations, with the same retries as :meth:`get_json` (a truncated
        body is fetched again). ``etag`` makes it conditional: ``If-None-Match``, and a ``304``
        comes back as a page with ``not_modified`` and no data.

        ``gate``: acquired once the body has arrived, before it is parsed, and still held
        when the page is returned (the caller releases it; on an error it is released here).
        So the request and the download need no slot, only the parsed page does: a caller
        bounding parsed pages in memory still has the next request in flight meanwhile."""
        sent = dict(headers or {})
        expect: tuple[int, ...] = (200, 201)
        if etag:
            sent["If-None-Match"] = etag
            expect = (200, 201, 304)
        method = "GET" if json is None else "POST"
        response, data = await self._call(
            method, path, params, json, sent or None, expect, parse=True, gate=gate
        )
        links = {
            str(rel): str(link["url"])
            for rel, link in response.links.items()
            if isinstance(link, dict) and link.get("url")
        }
        return HttpPage(
            data=data,
            status=response.status_code,
            headers=response.headers,
            links=links,
            url=str(response.url),
        )

    # --- the retry loop ---------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        expect: Collection[int],
        *,
        parse: bool,
        gate: asyncio.Semaphore | None = None,
    ) -> tuple[httpx.Response, Any]:
        budget = _Budget()
        where = f"{method} {self._path_of(path)}"

        def stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _Retry) and exc.rate_limited:
                return budget.rate_waits > MAX_RATE_LIMIT_WAITS
            return budget.transient > self.max_retries

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return exc.delay if isinstance(exc, _Retry) else 1.0

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            seconds = state.upcoming_sleep
            if isinstance(exc, _Retry) and exc.rate_limited:
                log.warning("%s: %s: %s; waiting %.0fs", self.source, where, exc.reason, seconds)
                self.progress.wait(self.source, seconds, exc.reason)
            else:
                reason = f"{exc}; retry {budget.transient}/{self.max_retries}"
                log.info("%s: %s: %s in %.1fs", self.source, where, reason, seconds)
                self.progress.wait(self.source, seconds, reason)

        retrying = AsyncRetrying(
            sleep=self._pause,
            stop=stop,
            wait=wait,
            retry=retry_if_exception_type(_Retry),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(
                        method, path, params, json, headers, expect, parse, budget, where, gate
                    )
        except _Retry as exc:
            if exc.rate_limited:
                raise RateLimited(
                    f"{where}: still rate limited after {budget.rate_waits} waits "
                    f"({budget.rate_waited:.0f}s): {exc.reason}",
                    source=self.source,
                ) from None
            raise ApiError(
                f"{where} failed after {budget.transient} attempts: {exc.reason}",
                source=self.source,
                status=exc.status,
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover - tenacity returns or raises

    async def _pause(self, seconds: float) -> None:
        await (self._sleep_fn or _sleep)(seconds)

    async def wait(self, seconds: float, reason: str) -> None:
        """Sleep ``seconds`` for a rate limit the API signalled in a body rather than a status
        (GitHub GraphQL's ``RATE_LIMITED`` error in a 200), shown in progress like the others."""
        log.warning("%s: %s; waiting %.0fs", self.source, reason, seconds)
        self.progress.wait(self.source, seconds, reason)
        await self._pause(seconds)

    async def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        expect: Collection[int],
        parse: bool,
        budget: _Budget,
        where: str,
        gate: asyncio.Semaphore | None = None,
    ) -> tuple[httpx.Response, Any]:
        resource = _resource_of(path)
        pause = self._pace_until.get(resource, 0.0) - self._clock()
        if pause > 0:
            if pause >= 1:
                self.progress.wait(self.source, pause, f"pacing {resource} requests: quota low")
            await self._pause(pause)
        self.requests += 1
        tally = _tally.get()
        if tally is not None:
            tally.count += 1
        try:
            response = await self._client.request(
                method, path, params=params, json=json, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise self._transient(budget, f"timed out ({type(exc).__name__})") from None
        except httpx.ConnectError as exc:
            detail = self.redact(str(exc)) or type(exc).__name__
            url = self._client.base_url
            hint = (
                f"is the server running? check the host {url.host} and port "
                f"{url.port or (443 if url.scheme == 'https' else 80)} of base_url"
            )
            raise self._transient(budget, f"connection failed ({detail}; {hint})") from None
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.DecodingError) as exc:
            detail = self.redact(str(exc)) or type(exc).__name__
            raise self._transient(budget, f"connection failed ({detail})") from None

        status = response.status_code
        self.progress.response(self.source, status)
        if self.pace:
            self._pace(response, resource)
        limited = self._rate_limit(response, budget)
        if limited is not None:
            delay, reason = limited
            if delay > self.max_wait:
                raise RateLimited(
                    f"{where}: {reason}; the server asks to wait {delay:.0f}s, more than the "
                    f"{self.max_wait:.0f}s limit: try again later",
                    source=self.source,
                )
            if budget.rate_waited + delay > self.max_wait:
                raise RateLimited(
                    f"{where}: {reason}; already waited {budget.rate_waited:.0f}s for rate "
                    f"limits on this request, more than the {self.max_wait:.0f}s limit",
                    source=self.source,
                )
            budget.rate_waits += 1
            budget.rate_waited += delay
            raise _Retry(reason, delay=delay, rate_limited=True, status=status)

        if status in expect:
            data: Any = None
            if parse and status not in (204, 304) and response.content:
                body = response.content
                if len(body) > ORJSON_MAX_BYTES:
                    # A big page (1,000 Jira issues with changelogs): keep one copy of it,
                    # not three. ``json`` parses text, so the bytes go once decoded; the
                    # caller needs the parsed data and the headers, never the body again.
                    text: bytes | str = body.decode("utf-8", "surrogatepass")
                    response._content = b""  # noqa: SLF001 - httpx has no public way
                    del body
                else:
                    text = body
                if gate is not None:
                    await gate.acquire()
                try:
                    data = parse_json(text)
                except BaseException as exc:
                    if gate is not None:
                        gate.release()
                    if not isinstance(exc, ValueError):
                        raise
                    raise self._transient(
                        budget, f"malformed JSON body ({exc})", status=status
                    ) from None
                del text
            elif gate is not None:
                await gate.acquire()
            return response, data

        if status >= 500:
            message = self._server_message(response)
            reason = f"HTTP {status}" + (f": {message}" if message else "")
            raise self._transient(budget, reason, status=status)
        raise self._client_error(response, where)

    def _transient(self, budget: _Budget, reason: str, *, status: int | None = None) -> _Retry:
        budget.transient += 1
        delay = min(BACKOFF_MAX, 2.0 ** (budget.transient - 1)) + random.uniform(0, 1)
        return _Retry(reason, delay=delay, rate_limited=False, status=status)

    # --- pacing ----------------------------------------------------------------------

    def _pace(self, response: httpx.Response, resource: str) -> None:
        """Spread what is left of a rate-limit window over the time until it resets.

        Below ``PACE_RESERVE`` of the limit, the next request of the same resource waits
        ``seconds to reset / requests left``, so a sync never runs the quota dry, and several
        sources sharing one token (each reading the same headers) slow down together.
        """
        h = response.headers
        remaining = h.get("x-ratelimit-remaining", h.get("ratelimit-remaining"))
        limit = h.get("x-ratelimit-limit", h.get("ratelimit-limit"))
        reset = h.get("x-ratelimit-reset", h.get("ratelimit-reset"))
        if remaining is None or limit is None or reset is None:
            return
        try:
            left, total = int(remaining), int(limit)
        except ValueError:
            return
        now = self._clock()
        until = _until(reset, now)
        if total <= 0 or left <= 0 or until is None or left > total * PACE_RESERVE:
            self._pace_until.pop(resource, None)
            return
        self._pace_until[resource] = now + min(until / left, self.max_wait)

    # --- classifying answers ----------------------------------------------------------

    def _rate_limit(self, response: httpx.Response, budget: _Budget) -> tuple[float, str] | None:
        """``(seconds to wait, reason)`` when ``response`` is a rate limit, else ``None``."""
        status = response.status_code
        h = response.headers
        exhausted = h.get("x-ratelimit-remaining", "").strip() == "0"
        secondary = False
        if status == 403:
            text = response.text[:2000].lower()
            secondary = "secondary rate limit" in text or "abuse detection" in text
            if not (exhausted or secondary):
                return None
        elif status == 503:
            if "retry-after" not in h:
                return None
        elif status != 429:
            return None

        now = self._clock()
        delay = parse_retry_after(h.get("retry-after"), now)
        if delay is not None:
            hint = f"Retry-After {h.get('retry-after')}"
        elif exhausted and h.get("x-ratelimit-reset"):
            delay, hint = _until(h["x-ratelimit-reset"], now), "until x-ratelimit-reset"
        elif h.get("ratelimit-reset"):
            delay, hint = _until(h["ratelimit-reset"], now), "until RateLimit-Reset"
        elif h.get("x-ratelimit-reset"):
            delay, hint = _until(h["x-ratelimit-reset"], now), "until X-RateLimit-Reset"
        else:
            delay, hint = None, ""
        if delay is None:
            if secondary:
                delay, hint = SECONDARY_MIN_WAIT, "no retry-after"
            else:
                delay = min(RATE_FALLBACK_MAX, 5.0 * 2.0**budget.rate_waits)
                delay += random.uniform(0, 1)
                hint = "no reset hint, backing off"
        kind = (
            "secondary rate limit"
            if secondary
            else ("rate limit exhausted" if exhausted else "rate limited")
        )
        reason = f"HTTP {status} {kind} ({hint})"
        return max(0.0, delay), reason

    def _client_error(self, response: httpx.Response, where: str) -> Exception:
        status = response.status_code
        message = self._server_message(response)
        said = f": {message}" if message else ""
        if status in (401, 403):
            what = "authentication failed" if status == 401 else "access denied"
            hint = f" ({self.auth_hint})" if self.auth_hint else ""
            return AuthError(f"{where}: HTTP {status} {what}{said}{hint}", source=self.source)
        if status == 404:
            return NotFound(f"{where}: HTTP 404 not found{said}", source=self.source)
        return ApiError(f"{where}: HTTP {status}{said}", source=self.source, status=status)

    def _server_message(self, response: httpx.Response) -> str:
        """The human part of an error body: Jira errorMessages, GitHub/GitLab message…"""
        return self.redact(_extract_message(response))[:500]

    def _path_of(self, path: str) -> str:
        """The URL path for messages: never the query string (it may carry tokens)."""
        try:
            url = self._client.build_request("GET", path).url
        except Exception:  # a malformed path is still worth naming
            return self.redact(path.split("?", 1)[0])
        return self.redact(url.path)


# --- helpers -------------------------------------------------------------------------------


def _secret_strings(headers: Mapping[str, str], extra: Iterable[str]) -> list[str]:
    found: set[str] = set()
    for name, value in headers.items():
        if any(word in name.lower() for word in _SENSITIVE_WORDS):
            found.add(value)
            # "Bearer abc" / "Basic abc": the credential part alone may be echoed too.
            found.update(part for part in value.split() if len(part) >= 8)
    found.update(s for s in extra if s)
    # Very short strings would blank out ordinary words; longest first so overlaps redact whole.
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date."""
    now = time.time() if now is None else now
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _resource_of(path: str) -> str:
    """The rate-limit resource a request counts against (GitHub keeps GraphQL apart)."""
    return "graphql" if path.split("?", 1)[0].rstrip("/").endswith("/graphql") else "core"


def _until(value: str, now: float) -> float | None:
    """Seconds until a reset given as epoch seconds (GitHub, GitLab) or ISO time (Jira)."""
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        reset = float(value)
    else:
        try:
            reset = datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    # A reset already past (clock skew) still gets a second, or we would hammer the API.
    return max(1.0, reset - now)


#: Bodies up to this size are parsed by orjson; bigger ones by ``json``. orjson builds a
#: whole intermediate document first: parsing a 33 MB page of Jira issues peaked at 478 MB
#: (``json``: 107 MB), which would break the memory bound on 1,000-issue pages.
ORJSON_MAX_BYTES = 4 * 1024 * 1024


def parse_json(body: bytes | str) -> Any:
    """A response body as JSON. orjson takes a third of ``json``'s time, and parsing is most
    of the event loop's work on a page; a big body goes to ``json`` (see
    ``ORJSON_MAX_BYTES``), as does what orjson refuses but ``json`` reads and the APIs'
    bodies can hold (a lone surrogate escape ``\\ud800``, NaN, an integer past 64 bits).
    A body neither reads raises ``ValueError``."""
    if len(body) <= ORJSON_MAX_BYTES:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return jsonlib.loads(body)


def _extract_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        if not text:
            return ""
        if "<html" in text[:500].lower():
            title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
            return title.group(1).strip() if title else "(HTML error page)"
        return " ".join(text.split())[:300]
    if not isinstance(body, dict):
        return ""
    parts: list[str] = []
    messages = body.get("errorMessages")
    if isinstance(messages, list):
        parts.extend(str(m) for m in messages if m)
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts.extend(f"{k}: {v}" for k, v in errors.items())
    message = body.get("message")
    if isinstance(message, str):
        parts.append(message)
    elif isinstance(message, dict):
        inner = message.get("error")
        parts.append(str(inner) if inner else jsonlib.dumps(message, sort_keys=True))
    for key in ("error_description", "error"):
        value = body.get(key)
        if isinstance(value, str) and value not in parts:
            parts.append(value)
            break
    scope = body.get("scope")
    if body.get("error") == "insufficient_scope" and isinstance(scope, str) and scope:
        # OAuth 2 (RFC 6750): the answer names the scope the request needs (GitLab does).
        parts.append(f"the token needs the {scope!r} scope for this request")
    if isinstance(errors, list):
        for err in errors[:5]:
            if isinstance(err, dict):
                parts.append(
                    str(err.get("message") or ", ".join(f"{k}={v}" for k, v in err.items()))
                )
    return "; ".join(parts)
