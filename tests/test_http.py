"""The shared HTTP layer: retries, rate limits of the three APIs, error classes, secrets.

Sleeps go through a fake that records the seconds, so every wait is asserted exactly and the
tests run instantly; the clock is fixed so reset-epoch arithmetic is exact too.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest
import respx

from programview import http as http_module
from programview.errors import ApiError, AuthError, NotFound, RateLimited
from programview.http import HttpClient, tally_requests
from programview.progress import Progress

BASE = "https://jira.example.test/jira"
NOW = 1_750_000_000.0
TOKEN = "tok-9f8e7d6c5b4a"


class Recorder(Progress):
    def __init__(self) -> None:
        self.waits: list[tuple[str, float, str]] = []

    def wait(self, source: str, seconds: float, reason: str) -> None:
        self.waits.append((source, seconds, reason))


class Harness:
    """An HttpClient with a recording sleep and a fixed clock."""

    def __init__(self, **kwargs: Any) -> None:
        self.slept: list[float] = []
        self.progress = Recorder()

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)

        kwargs.setdefault("headers", {"Authorization": f"Bearer {TOKEN}"})
        self.client = HttpClient(
            BASE,
            source="jira",
            progress=self.progress,
            sleep=sleep,
            clock=lambda: NOW,
            **kwargs,
        )


def run(coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(coro_fn())


@pytest.fixture
def h() -> Harness:
    return Harness()


def ok(body: Any = None) -> httpx.Response:
    return httpx.Response(200, json=body if body is not None else {"ok": True})


# --- URLs and counting -------------------------------------------------------------------------


@respx.mock
def test_relative_paths_join_onto_base_url_with_its_prefix(h: Harness) -> None:
    route = respx.get(f"{BASE}/rest/api/3/myself").mock(return_value=ok({"name": "me"}))
    assert run(lambda: h.client.get_json("/rest/api/3/myself")) == {"name": "me"}
    assert route.called
    assert route.calls[0].request.headers["authorization"] == f"Bearer {TOKEN}"


@respx.mock
def test_absolute_next_page_urls_are_used_as_given(h: Harness) -> None:
    route = respx.get("https://api.github.test/repositories/1/issues").mock(return_value=ok([1]))
    data = run(lambda: h.client.get_json("https://api.github.test/repositories/1/issues?page=2"))
    assert data == [1]
    assert route.calls[0].request.url.params["page"] == "2"


@respx.mock
def test_post_json_sends_the_body(h: Harness) -> None:
    route = respx.post(f"{BASE}/rest/api/3/search/jql").mock(return_value=ok({"issues": []}))
    assert run(lambda: h.client.post_json("/rest/api/3/search/jql", {"jql": "x"})) == {"issues": []}
    assert route.calls[0].request.content == b'{"jql":"x"}'


@respx.mock
def test_every_request_is_counted_including_retries_and_per_task_tally(h: Harness) -> None:
    respx.get(f"{BASE}/a").mock(side_effect=[httpx.Response(502), ok()])
    respx.get(f"{BASE}/b").mock(return_value=ok())

    async def go() -> int:
        with tally_requests() as tally:
            await h.client.get_json("/a")
        await h.client.get_json("/b")
        return tally.count

    assert run(go) == 2
    assert h.client.requests == 3


# --- transient failures ------------------------------------------------------------------------


@respx.mock
@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500),
        httpx.Response(502, text="Bad Gateway"),
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("peer closed connection without sending complete body"),
        httpx.ReadError("connection reset mid-body"),
    ],
    ids=["500", "502", "timeout", "connect", "dropped-mid-body", "read-error"],
)
def test_transient_failure_is_retried_then_succeeds(h: Harness, failure: Any) -> None:
    respx.get(f"{BASE}/x").mock(side_effect=[failure, failure, ok({"v": 1})])
    assert run(lambda: h.client.get_json("/x")) == {"v": 1}
    assert h.client.requests == 3
    assert len(h.slept) == 2
    assert h.slept[1] > h.slept[0] - 1  # exponential: 1-2 s, then 2-3 s
    assert all(0 < s <= 61 for s in h.slept)


def test_a_server_that_is_not_running_says_what_to_check() -> None:
    """Real connection refused (nothing listens on the port): the error names host and port."""
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    h = Harness(max_retries=1)
    h.client = HttpClient(
        f"http://127.0.0.1:{port}/jira", source="jira", sleep=h.client._sleep_fn, max_retries=1
    )
    with pytest.raises(ApiError) as err:
        run(lambda: h.client.get_json("/x"))
    assert "connection failed" in str(err.value)
    assert f"is the server running? check the host 127.0.0.1 and port {port} of base_url" in str(
        err.value
    )


@respx.mock
def test_truncated_json_body_is_retried(h: Harness) -> None:
    respx.get(f"{BASE}/x").mock(
        side_effect=[httpx.Response(200, content=b'{"issues": [{"id"'), ok({"issues": []})]
    )
    assert run(lambda: h.client.get_json("/x")) == {"issues": []}
    assert h.client.requests == 2


@respx.mock
def test_fetch_page_gate_is_taken_after_the_download_and_held_on_return(h: Harness) -> None:
    """The gate bounds parsed pages, not requests: the request goes out while another page
    holds the only slot, the body is parsed once the slot is free, and the slot is the
    caller's on return; a malformed body gives it back before the retry."""
    respx.get(f"{BASE}/x").mock(
        side_effect=[httpx.Response(200, content=b'{"issues": [{"id"'), ok({"issues": [1]})]
    )

    async def scenario() -> None:
        gate = asyncio.Semaphore(1)
        await gate.acquire()  # another page is being written
        fetch = asyncio.ensure_future(h.client.fetch_page("/x", gate=gate))
        for _ in range(20):
            await asyncio.sleep(0)
        assert h.client.requests == 1  # sent (and downloaded) without the slot
        assert not fetch.done()
        gate.release()  # that page is written
        page = await fetch
        assert page.data == {"issues": [1]}
        assert h.client.requests == 2  # the malformed body was fetched again
        assert gate.locked()  # the slot is held for the caller
        gate.release()

    run(scenario)


@respx.mock
def test_retries_are_bounded_then_a_clear_api_error() -> None:
    h = Harness(max_retries=2)
    respx.get(f"{BASE}/x").mock(return_value=httpx.Response(503, json={"message": "down"}))
    with pytest.raises(ApiError) as err:
        run(lambda: h.client.get_json("/x"))
    assert h.client.requests == 3  # first try + 2 retries
    assert err.value.status == 503
    assert "[jira]" in str(err.value) and "down" in str(err.value)


# --- rate limits -------------------------------------------------------------------------------


@respx.mock
def test_429_retry_after_is_waited_exactly_and_reported(h: Harness) -> None:
    respx.get(f"{BASE}/x").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), ok()]
    )
    run(lambda: h.client.get_json("/x"))
    assert h.slept == [7.0]
    assert h.progress.waits[0][:2] == ("jira", 7.0)
    assert "429" in h.progress.waits[0][2]


@respx.mock
def test_rate_limit_waits_do_not_use_the_retry_budget() -> None:
    h = Harness(max_retries=1)
    limited = httpx.Response(429, headers={"Retry-After": "2"})
    respx.get(f"{BASE}/x").mock(side_effect=[limited, limited, limited, httpx.Response(500), ok()])
    run(lambda: h.client.get_json("/x"))
    assert h.slept[:3] == [2.0, 2.0, 2.0]
    assert h.client.requests == 5


@respx.mock
def test_jira_429_with_only_iso_reset(h: Harness) -> None:
    reset = "2025-06-15T15:08Z"  # NOW is 2025-06-15T15:06:40Z
    respx.get(f"{BASE}/x").mock(
        side_effect=[
            httpx.Response(
                429,
                headers={"X-RateLimit-Reset": reset},
                json={"errorMessages": ["The request has been rate-limited."]},
            ),
            ok(),
        ]
    )
    run(lambda: h.client.get_json("/x"))
    assert h.slept == [80.0]


@respx.mock
def test_503_with_retry_after_is_a_wait_not_a_retry(h: Harness) -> None:
    respx.get(f"{BASE}/x").mock(
        side_effect=[httpx.Response(503, headers={"Retry-After": "12"}), ok()]
    )
    run(lambda: h.client.get_json("/x"))
    assert h.slept == [12.0]


@respx.mock
@pytest.mark.parametrize("status", [403, 429])
def test_github_primary_limit_waits_until_reset(h: Harness, status: int) -> None:
    respx.get(f"{BASE}/x").mock(
        side_effect=[
            httpx.Response(
                status,
                headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 42)},
                json={"message": "API rate limit exceeded for user ID 1."},
            ),
            ok(),
        ]
    )
    run(lambda: h.client.get_json("/x"))
    assert h.slept == [42.0]
    assert "exhausted" in h.progress.waits[0][2]


@respx.mock
@pytest.mark.parametrize(("headers", "expected"), [({"retry-after": "5"}, 5.0), ({}, 60.0)])
def test_github_secondary_limit(h: Harness, headers: dict[str, str], expected: float) -> None:
    body = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."}
    respx.get(f"{BASE}/x").mock(side_effect=[httpx.Response(403, headers=headers, json=body), ok()])
    run(lambda: h.client.get_json("/x"))
    assert h.slept == [expected]
    assert "secondary" in h.progress.waits[0][2]


@respx.mock
def test_gitlab_plain_text_retry_later_backs_off(h: Harness) -> None:
    respx.get(f"{BASE}/x").mock(
        side_effect=[
            httpx.Response(429, text="Retry later"),
            httpx.Response(429, text="Retry later"),
            ok(),
        ]
    )
    run(lambda: h.client.get_json("/x"))
    assert len(h.slept) == 2
    assert 5 <= h.slept[0] < 6 and 10 <= h.slept[1] < 11


@respx.mock
def test_gitlab_ratelimit_reset_epoch(h: Harness) -> None:
    respx.get(f"{BASE}/x").mock(
        side_effect=[
            httpx.Response(
                429, headers={"RateLimit-Reset": str(int(NOW) + 30)}, text="Retry later"
            ),
            ok(),
        ]
    )
    run(lambda: h.client.get_json("/x"))
    assert h.slept == [30.0]


@respx.mock
def test_wait_longer_than_max_wait_raises_rate_limited_without_sleeping() -> None:
    h = Harness(max_wait=100)
    respx.get(f"{BASE}/x").mock(
        return_value=httpx.Response(
            403, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 3600)}
        )
    )
    with pytest.raises(RateLimited, match="3600s"):
        run(lambda: h.client.get_json("/x"))
    assert h.slept == []


@respx.mock
def test_waits_adding_up_past_max_wait_raise_rate_limited() -> None:
    h = Harness(max_wait=25)
    respx.get(f"{BASE}/x").mock(return_value=httpx.Response(429, headers={"Retry-After": "10"}))
    with pytest.raises(RateLimited):
        run(lambda: h.client.get_json("/x"))
    assert h.slept == [10.0, 10.0]


# --- caller errors: never retried --------------------------------------------------------------


@respx.mock
def test_401_names_source_status_server_message_and_hint_but_not_the_token() -> None:
    email, token = "me@example.test", "ATATT3xFfGF0-secret-api-token"
    basic = base64.b64encode(f"{email}:{token}".encode()).decode()
    hint = "a Cloud 401 often means an expired API token: tokens now expire within a year"
    h = Harness(headers={"Authorization": f"Basic {basic}"}, auth_hint=hint, secrets=[token])
    respx.get(f"{BASE}/rest/api/3/myself").mock(
        return_value=httpx.Response(
            401,
            json={"message": f"Client must be authenticated (got {token})", "status-code": 401},
        )
    )
    with pytest.raises(AuthError) as err:
        run(lambda: h.client.get_json("/rest/api/3/myself"))
    text = str(err.value)
    assert "[jira]" in text and "401" in text and "Client must be authenticated" in text
    assert hint in text
    assert token not in text and basic not in text
    assert h.client.requests == 1
    assert token not in repr(h.client) and basic not in repr(h.client)
    assert BASE in repr(h.client)


@respx.mock
def test_gitlab_insufficient_scope_403_is_an_auth_error(h: Harness) -> None:
    respx.get(f"{BASE}/x").mock(
        return_value=httpx.Response(
            403,
            json={
                "error": "insufficient_scope",
                "error_description": "The request requires higher privileges than provided.",
                "scope": "api",
            },
        )
    )
    with pytest.raises(AuthError, match="higher privileges") as caught:
        run(lambda: h.client.get_json("/x"))
    assert "needs the 'api' scope" in str(caught.value)  # which scope, as GitLab says
    assert h.client.requests == 1


@respx.mock
def test_404_is_not_found_with_message_and_path_without_query_secrets() -> None:
    h = Harness(secrets=["qs-secret-123"])
    respx.get(f"{BASE}/rest/api/3/project/XYZ").mock(
        return_value=httpx.Response(
            404, json={"errorMessages": ["No project could be found with key 'XYZ'."], "errors": {}}
        )
    )
    with pytest.raises(NotFound) as err:
        run(
            lambda: h.client.get_json(
                "/rest/api/3/project/XYZ", params={"private_token": "qs-secret-123"}
            )
        )
    text = str(err.value)
    assert "/jira/rest/api/3/project/XYZ" in text and "No project could be found" in text
    assert "qs-secret-123" not in text and "private_token" not in text
    assert h.client.requests == 1


@respx.mock
@pytest.mark.parametrize(
    ("status", "body", "fragment"),
    [
        (410, {"errorMessages": ["The requested API has been removed."]}, "removed"),
        (422, {"message": "Validation Failed", "errors": [{"code": "invalid"}]}, "Validation"),
        (400, {"errors": {"jql": "Error in the JQL Query"}}, "jql: Error in the JQL Query"),
    ],
)
def test_other_4xx_are_api_errors_without_retry(
    h: Harness, status: int, body: dict[str, Any], fragment: str
) -> None:
    respx.get(f"{BASE}/x").mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(ApiError) as err:
        run(lambda: h.client.get_json("/x"))
    assert err.value.status == status
    assert fragment in str(err.value)
    assert h.client.requests == 1 and h.slept == []


@respx.mock
def test_expected_statuses_are_returned_as_responses(h: Harness) -> None:
    respx.get(f"{BASE}/x").mock(return_value=httpx.Response(304))
    response = run(lambda: h.client.request("GET", "/x", expect=(200, 304)))
    assert response.status_code == 304


def test_context_manager_closes_the_client() -> None:
    async def go() -> bool:
        async with HttpClient(BASE, source="s") as client:
            pass
        return client._client.is_closed

    assert run(go)


@pytest.mark.parametrize("big", [False, True], ids=["orjson", "json-over-size-limit"])
@respx.mock
def test_bodies_parse_the_same_whichever_parser_reads_them(
    h: Harness, big: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``json`` reads, the client reads, whichever parser it picks: a lone surrogate
    escape, NaN and a 70-bit integer, which orjson refuses, included; a malformed body is
    still retried."""
    if big:
        monkeypatch.setattr(http_module, "ORJSON_MAX_BYTES", 10)
    odd = b'{"s":"lone \\ud800 half","p":NaN,"id":1180591620717411303424,"u":"\xc3\xbc"}'
    respx.get(f"{BASE}/x").mock(
        side_effect=[
            httpx.Response(200, content=b'{"issues": [{"id"'),
            httpx.Response(200, content=odd),
            httpx.Response(200, content=b'{"plain": [1, 2.5, "\xc3\xbc"]}'),
        ]
    )
    data = run(lambda: h.client.get_json("/x"))
    assert h.client.requests == 2  # the truncated body was retried
    assert data["s"] == "lone \ud800 half" and data["u"] == "\u00fc"
    assert data["p"] != data["p"]  # NaN
    assert data["id"] == 2**70
    assert run(lambda: h.client.get_json("/x")) == {"plain": [1, 2.5, "\u00fc"]}
