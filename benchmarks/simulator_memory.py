"""Memory and speed of the simulator on a ``large`` organisation (prints; asserts nothing).

Generates ``large`` (200k+ items), then pages through the biggest Jira project's issues:
over real HTTP via ``/jira/rest/api/3/search/jql`` when the Jira endpoint module
serves it, else through the generator's lazy page producer rendering each page as
JSON. The target is a peak RSS under 500 MB.

    /work/venv/bin/python benchmarks/simulator_memory.py [--size large] [--seed 1]
"""

from __future__ import annotations

import argparse
import base64
import json
import resource
import sys
import time

import httpx

from programview.simulator import TOKENS, generate, serve
from programview.simulator.app import jira_time


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss: KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def page_over_http(base_url: str, key: str, page_size: int) -> tuple[int, int] | None:
    """(issues, requests) through the real Jira search endpoint, or None if absent."""
    auth = base64.b64encode(f"{TOKENS.jira_email}:{TOKENS.jira_api_token}".encode()).decode()
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Basic {auth}"}, timeout=60
    ) as client:
        params = {
            "jql": f"project = {key} ORDER BY updated ASC, key ASC",
            "fields": "summary,status,updated,issuetype,customfield_10016",
            "maxResults": page_size,
        }
        issues = requests = 0
        while True:
            r = client.get("/rest/api/3/search/jql", params=params)
            requests += 1
            if r.status_code == 404 and requests == 1:
                return None
            r.raise_for_status()
            body = r.json()
            issues += len(body["issues"])
            token = body.get("nextPageToken")
            if not token:
                return issues, requests
            params["nextPageToken"] = token


def page_lazily(org: object, key: str, page_size: int) -> tuple[int, int]:
    """(issues, pages) through ``Organisation.iter_pages``, each rendered to JSON bytes."""
    issues = pages = 0
    for page in org.iter_pages(key, page_size):  # type: ignore[attr-defined]
        body = {
            "issues": [
                {
                    "id": str(i.id),
                    "key": i.key,
                    "fields": {
                        "summary": i.title,
                        "status": {"name": i.jira_status},
                        "updated": jira_time(i.updated),
                        "customfield_10016": i.points,
                    },
                }
                for i in page
            ]
        }
        json.dumps(body).encode()
        issues += len(page)
        pages += 1
    return issues, pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="large", choices=("small", "medium", "large"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()

    print(f"baseline peak RSS            {peak_rss_mb():8.1f} MB")
    started = time.perf_counter()
    org = generate(seed=args.seed, size=args.size)
    gen_s = time.perf_counter() - started
    print(f"generate({args.size!r}) items       {len(org.items):8d}  in {gen_s:6.2f} s")
    print(
        f"  projects/scopes/links      {len(org.projects):3d} / {len(org.scopes):3d} / "
        f"{len(org.links)}"
    )
    print(f"peak RSS after generate      {peak_rss_mb():8.1f} MB")

    jira_scopes = org.scopes_of("jira")
    biggest = max(jira_scopes, key=lambda s: len(org.scope_items(s)))
    print(
        f"paging Jira project {biggest.path} ({len(org.scope_items(biggest))} issues), "
        f"{args.page_size}/page"
    )
    started = time.perf_counter()
    with serve(org) as sim:
        over_http = page_over_http(sim.jira_url, biggest.path, args.page_size)
    if over_http is not None:
        print(
            f"  over HTTP: {over_http[0]} issues in {over_http[1]} requests, "
            f"{time.perf_counter() - started:6.2f} s"
        )
    else:
        started = time.perf_counter()
        issues, pages = page_lazily(org, biggest.path, args.page_size)
        print(
            f"  (no /search/jql endpoint yet) lazily: {issues} issues in {pages} pages, "
            f"{time.perf_counter() - started:6.2f} s"
        )
    started = time.perf_counter()
    cs = org.advance(1)
    print(
        f"advance(1 day): {len(cs.changed)} items changed, {len(cs.created)} new, "
        f"{time.perf_counter() - started:6.2f} s"
    )
    print(f"peak RSS                     {peak_rss_mb():8.1f} MB  (target < 500 MB)")


if __name__ == "__main__":
    main()
