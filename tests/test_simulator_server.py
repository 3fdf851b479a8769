"""The simulator app over real HTTP: auth, rate-limit headers, faults, latency, ETags."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.datastructures import Headers, QueryParams

from programview.simulator import TOKENS, generate, serve, transport
from programview.simulator.app import (
    GITLAB,
    Ctx,
    RateLimiter,
    Router,
    SimApp,
    decode_page_token,
    encode_page_token,
    github_link_header,
    github_time,
    gitlab_paging_headers,
    gitlab_time,
    jira_time,
    parse_time,
)
from programview.simulator.faults import FaultPlan, FaultSpecError
from programview.simulator.server import Simulator

JIRA_AUTH = (
    "Basic " + base64.b64encode(f"{TOKENS.jira_email}:{TOKENS.jira_api_token}".encode()).decode()
)
GH_AUTH = {"Authorization": f"Bearer {TOKENS.github_token}"}
GL_AUTH = {"PRIVATE-TOKEN": TOKENS.gitlab_token}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with serve(generate(seed=1, size="small"), port=0) as running:
        yield running


@pytest.fixture(autouse=True)
def _reset(sim: Simulator) -> Iterator[None]:
    yield
    sim.faults.clear()
    sim.latency_ms = 0


def jira(sim: Simulator) -> httpx.Client:
    return httpx.Client(base_url=sim.jira_url, headers={"Authorization": JIRA_AUTH})


def github(sim: Simulator) -> httpx.Client:
    return httpx.Client(base_url=sim.github_url, headers=GH_AUTH)


def gitlab(sim: Simulator) -> httpx.Client:
    return httpx.Client(base_url=sim.gitlab_url, headers=GL_AUTH)


def test_serves_all_apis_on_one_free_port(sim: Simulator) -> None:
    assert sim.port > 0 and sim.base_url.startswith("http://127.0.0.1:")
    assert sim.jira_url.endswith("/jira") and sim.gitlab_url.endswith("/gitlab")
    me = jira(sim).get("/rest/api/3/myself")
    assert me.status_code == 200 and me.headers["content-type"] == "application/json;charset=UTF-8"
    assert me.json()["timeZone"] == sim.org.jira_user_timezone
    dc = httpx.get(
        f"{sim.jira_dc_url}/rest/api/2/myself",
        headers={"Authorization": f"Bearer {TOKENS.jira_dc_pat}"},
    )
    assert dc.status_code == 200 and "accountId" not in dc.json() and dc.json()["name"]
    assert github(sim).get("/user").json()["login"] == sim.org.people[0].login
    assert gitlab(sim).get("/api/v4/user").json()["username"] == sim.org.people[0].login
    assert httpx.get(f"{sim.base_url}/elsewhere").status_code == 404
    before = sim.requests.count(api="github", path="/user")
    github(sim).get("/user")
    assert sim.requests.count(api="github", path="/user") == before + 1
    assert set(sim.requests.by_api()) >= {"jira", "jira-dc", "github", "gitlab"}


def test_unknown_routes_answer_in_each_api_style(sim: Simulator) -> None:
    r = github(sim).get("/nope")
    assert r.status_code == 404 and r.json()["message"] == "Not Found"
    assert r.json()["status"] == "404"
    assert gitlab(sim).get("/api/v4/nope").json() == {"error": "404 Not Found"}
    assert "errorMessages" in jira(sim).get("/rest/api/3/nope").json()


def test_jira_cloud_rejects_bad_credentials(sim: Simulator) -> None:
    bad = "Basic " + base64.b64encode(b"sim@acme.example:wrong").decode()
    for headers in ({"Authorization": bad}, {}):
        r = httpx.get(f"{sim.jira_url}/rest/api/3/myself", headers=headers)
        assert r.status_code == 401
        assert r.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"
        assert r.text == "Client must be authenticated to access this resource."
    # a Cloud token is not a DC PAT
    r = httpx.get(
        f"{sim.jira_dc_url}/rest/api/2/myself",
        headers={"Authorization": f"Bearer {TOKENS.jira_api_token}"},
    )
    assert r.status_code == 401 and r.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"


def test_github_rejects_bad_credentials(sim: Simulator) -> None:
    r = httpx.get(f"{sim.github_url}/user", headers={"Authorization": "token nope"})
    assert r.status_code == 401
    assert r.json() == {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }
    ok = httpx.get(
        f"{sim.github_url}/user", headers={"Authorization": f"token {TOKENS.github_token}"}
    )
    assert ok.status_code == 200


def test_gitlab_rejects_bad_credentials(sim: Simulator) -> None:
    r = httpx.get(f"{sim.gitlab_url}/api/v4/user", headers={"PRIVATE-TOKEN": "nope"})
    assert r.status_code == 401 and r.json() == {"message": "401 Unauthorized"}
    r = httpx.get(f"{sim.gitlab_url}/api/v4/user", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    ok = httpx.get(
        f"{sim.gitlab_url}/api/v4/user", headers={"Authorization": f"Bearer {TOKENS.gitlab_token}"}
    )
    assert ok.status_code == 200
    # anonymous on a private project: 404, not 401 (as GitLab does)
    r = httpx.get(f"{sim.gitlab_url}/api/v4/projects/acme%2Fplatform%2Fapi/issues")
    assert r.status_code == 404 and r.json() == {"message": "404 Project Not Found"}


def test_rate_limit_headers_on_every_response(sim: Simulator) -> None:
    gh = github(sim).get("/user").headers
    for name in ("limit", "remaining", "used", "reset", "resource"):
        assert f"x-ratelimit-{name}" in gh
    assert int(gh["x-ratelimit-reset"]) > time.time()
    gl = gitlab(sim).get("/api/v4/user").headers
    for name in ("Limit", "Observed", "Remaining", "Reset", "ResetTime"):
        assert f"RateLimit-{name}" in gl
    assert "X-RateLimit-Remaining" in jira(sim).get("/rest/api/3/myself").headers


def test_etag_gives_304_not_counted(sim: Simulator) -> None:
    client = github(sim)
    first = client.get("/user")
    etag = first.headers["ETag"]
    used = int(first.headers["x-ratelimit-used"])
    again = client.get("/user", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert int(again.headers["x-ratelimit-used"]) == used
    assert client.get("/user", headers={"If-None-Match": '"other"'}).status_code == 200


def test_github_primary_rate_limit(sim: Simulator) -> None:
    rule = sim.faults.add("github:ratelimit:at=2,retry_after=2")
    client = github(sim)
    assert client.get("/user").status_code == 200
    r = client.get("/user")
    assert r.status_code == 403 and r.headers["x-ratelimit-remaining"] == "0"
    assert 0 < int(r.headers["x-ratelimit-reset"]) - time.time() <= 3
    assert r.json()["message"].startswith("API rate limit exceeded for user ID 1.")
    assert r.json()["status"] == "403" and "documentation_url" in r.json()
    assert client.get("/user").status_code == 200
    assert (rule.seen, rule.fired) == (3, 1)
    sim.faults.add("github:ratelimit:status=429")
    assert client.get("/user").status_code == 429


def test_github_secondary_rate_limit(sim: Simulator) -> None:
    sim.faults.add("github:secondary:retry_after=1")
    r = github(sim).get("/user")
    assert r.status_code == 403 and r.headers["retry-after"] == "1"
    assert r.json()["message"].startswith("You have exceeded a secondary rate limit.")
    assert r.headers["x-ratelimit-remaining"] != "0"


def test_jira_rate_limit(sim: Simulator) -> None:
    sim.faults.add("jira:ratelimit")
    r = jira(sim).get("/rest/api/3/myself")
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\dZ", r.headers["X-RateLimit-Reset"])
    assert r.json()["errorMessages"] == [
        "The request has been rate-limited. Please try again later."
    ]


def test_gitlab_rate_limit_json_and_text(sim: Simulator) -> None:
    sim.faults.add("gitlab:ratelimit:count=1")
    sim.faults.add("gitlab:ratelimit:at=2,variant=text")
    client = gitlab(sim)
    r = client.get("/api/v4/user")
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert r.headers["RateLimit-Remaining"] == "0" and "RateLimit-Reset" in r.headers
    assert r.json() == {
        "message": {"error": "This endpoint has been requested too many times. Try again later."}
    }
    r = client.get("/api/v4/user")
    assert r.status_code == 429 and r.text.strip() == "Retry later"
    assert client.get("/api/v4/user").status_code == 200


def test_5xx_burst_then_ok(sim: Simulator) -> None:
    sim.faults.add("jira:5xx:count=2,status=503,retry_after=1")
    client = jira(sim)
    first, second, third = (client.get("/rest/api/3/myself") for _ in range(3))
    assert first.status_code == second.status_code == 503
    assert first.headers["Retry-After"] == "1"
    assert third.status_code == 200
    sim.faults.add("gitlab:5xx:status=500")
    r = gitlab(sim).get("/api/v4/user")
    assert r.status_code == 500 and "Retry-After" not in r.headers
    assert r.json() == {"message": "500 Internal Server Error"}


def test_path_pattern_limits_a_fault(sim: Simulator) -> None:
    sim.faults.add("*:5xx:count=0,path=/api/v4/*")
    assert gitlab(sim).get("/api/v4/user").status_code == 503
    assert github(sim).get("/user").status_code == 200


def test_malformed_page(sim: Simulator) -> None:
    sim.faults.add("github:malformed")
    r = github(sim).get("/user")
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_dropped_connection_really_drops(sim: Simulator) -> None:
    sim.faults.add("gitlab:drop:path=/api/v4/user")
    with pytest.raises(httpx.RemoteProtocolError):
        gitlab(sim).get("/api/v4/user")
    assert gitlab(sim).get("/api/v4/user").status_code == 200


def test_latency_applies(sim: Simulator) -> None:
    client = github(sim)
    client.get("/user")
    sim.latency_ms = 150
    started = time.perf_counter()
    client.get("/user")
    assert time.perf_counter() - started >= 0.15
    sim.latency_ms = 0
    sim.faults.add("github:latency:ms=200")
    started = time.perf_counter()
    client.get("/user")
    assert time.perf_counter() - started >= 0.2


def test_in_process_transport() -> None:
    org = generate(seed=1, size="small")

    async def run() -> None:
        tr = transport(org, faults="github:drop:at=2")
        async with httpx.AsyncClient(
            transport=tr, base_url="http://sim/github", headers=GH_AUTH
        ) as client:
            assert (await client.get("/user")).status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get("/user")
        assert isinstance(tr.app, SimApp) and len(tr.app.requests) == 2

    asyncio.run(run())


def test_fault_spec_grammar() -> None:
    plan = FaultPlan.parse(" github:ratelimit:at=3,status=429 ; *:latency:ms=5,count=0")
    assert [(r.api, r.kind, r.at, r.status) for r in plan.rules] == [
        ("github", "ratelimit", 3, 429),
        ("*", "latency", 1, None),
    ]
    assert FaultPlan.parse(plan.rules[0].spec()).rules[0] == plan.rules[0]
    for bad in (
        "github",
        "svn:5xx",
        "github:boom",
        "github:5xx:at",
        "github:5xx:x=1",
        "github:5xx:at=zero",
    ):
        with pytest.raises(FaultSpecError):
            FaultPlan.parse(bad)


def test_router_decodes_gitlab_paths() -> None:
    router = Router()

    @router.get(GITLAB, "/api/v4/projects/{id}/issues")
    def issues(ctx: Ctx) -> None:  # pragma: no cover - not called
        return None

    found = router.match(GITLAB, "GET", "/api/v4/projects/acme%2Fplatform%2Fapi/issues")
    assert found is not None and found[1] == {"id": "acme/platform/api"}
    assert router.match(GITLAB, "POST", "/api/v4/projects/1/issues") is None


def _ctx(api: str, path: str, query: str) -> Ctx:
    app = SimApp(generate(seed=1, size="small"), modules=())
    return Ctx(
        app=app,
        api=api,
        method="GET",
        path=path,
        params={},
        query=QueryParams(query),
        headers=Headers({}),
        body=b"",
        base_url=f"http://h/{api}",
    )


def test_paging_helpers() -> None:
    ctx = _ctx("github", "/repos/acme/web/issues", "state=all&page=2")
    link = github_link_header(ctx, 2, 10, 45, path="/repositories/7/issues")["Link"]
    rels = re.findall(r'page=(\d+)>; rel="(\w+)"', link)
    assert rels == [("1", "prev"), ("3", "next"), ("5", "last"), ("1", "first")]
    assert "/repositories/7/issues?state=all&per_page=10&page=3" in link
    last = github_link_header(ctx, 5, 10, 45)["Link"]
    assert 'rel="next"' not in last and 'rel="prev"' in last
    assert github_link_header(ctx, 1, 100, 45) == {}

    ctx = _ctx("gitlab", "/api/v4/projects/acme%2Fweb/issues", "per_page=20")
    h = gitlab_paging_headers(ctx, 3, 20, 45)
    assert (h["x-page"], h["x-next-page"], h["x-prev-page"], h["x-total"], h["x-total-pages"]) == (
        "3",
        "",
        "2",
        "45",
        "3",
    )
    assert "acme%2Fweb" in h["Link"]
    big = gitlab_paging_headers(ctx, 1, 20, 20_000)
    assert "x-total" not in big and 'rel="last"' not in big["Link"] and big["x-next-page"] == "2"
    assert decode_page_token(encode_page_token(300)) == 300


def test_time_formats() -> None:
    dt = parse_time("2025-01-31T13:47:09.120Z")
    assert jira_time(dt) == "2025-01-31T13:47:09.120+0000"
    assert github_time(dt) == "2025-01-31T13:47:09Z"
    assert gitlab_time(dt) == "2025-01-31T13:47:09.120Z"
    assert parse_time("2025-01-31T13:47:09.120+0000") == dt
    assert parse_time("2025-01-31") == parse_time("2025-01-31T00:00:00+00:00")


def test_enforced_rate_limit_counts_down() -> None:
    limiter = RateLimiter("github", enforce=True, limit=2)
    limiter.hit()
    limiter.hit()
    assert limiter.exhausted()
    assert limiter.headers()["x-ratelimit-remaining"] == "0"
    relaxed = RateLimiter("github", limit=2)
    for _ in range(5):
        relaxed.hit()
    assert not relaxed.exhausted() and relaxed.headers()["x-ratelimit-remaining"] != "0"
