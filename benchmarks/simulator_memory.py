"""Memory and speed of the simulator on a ``large`` organisation (prints; asserts nothing).

Generates ``large`` (200k+ items), then pages through the biggest Jira project's issues
over real HTTP via ``/jira/rest/api/3/search/jql`` (following ``nextPageToken`` only,
as the connector does), twice: a few fields, then every field with the changelog (the
connector's request). Prints requests, time per page, whether the count matches the
ground truth, and the peak RSS (target: under 500 MB).

    /work/venv/bin/python benchmarks/simulator_memory.py [--size large] [--seed 1]
"""

from __future__ import annotations

import argparse
import base64
import resource
import sys
import time

import httpx

from programview.simulator import TOKENS, generate, jira_api, serve


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss: KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def page_over_http(
    base_url: str, key: str, page_size: int, fields: str, expand: str | None = None
) -> tuple[int, int, float]:
    """(issues, requests, seconds) of one full project through the enhanced search."""
    auth = base64.b64encode(f"{TOKENS.jira_email}:{TOKENS.jira_api_token}".encode()).decode()
    started = time.perf_counter()
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Basic {auth}"}, timeout=60
    ) as client:
        params: dict[str, str | int] = {
            "jql": f"project = {key} ORDER BY updated ASC, key ASC",
            "fields": fields,
            "maxResults": page_size,
        }
        if expand:
            params["expand"] = expand
        issues = requests = 0
        while True:
            r = client.get("/rest/api/3/search/jql", params=params)
            requests += 1
            r.raise_for_status()
            body = r.json()
            issues += len(body["issues"])
            token = body.get("nextPageToken")
            if not token:
                return issues, requests, time.perf_counter() - started
            params["nextPageToken"] = token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="large", choices=("small", "medium", "large"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--page-size", type=int, default=5000, help="maxResults asked for")
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
        f"maxResults={args.page_size} (the simulator serves at most "
        f"{jira_api.SEARCH_PAGE_CAP} a page when fields beyond id/key are asked)"
    )
    truth = len(org.scope_items(biggest))
    runs = (
        ("summary,status,updated,issuetype,customfield_10016", None),
        ("*all", "changelog"),
    )
    with serve(org) as sim:
        for fields, expand in runs:
            issues, requests, seconds = page_over_http(
                sim.jira_url, biggest.path, args.page_size, fields, expand
            )
            print(
                f"  fields={fields[:24]!r:27} expand={expand or '-':9} {issues} issues in "
                f"{requests} requests, {seconds:6.2f} s ({1000 * seconds / requests:5.1f} "
                f"ms/page), matches ground truth: {'yes' if issues == truth else 'NO'}"
            )
        print(f"peak RSS after paging        {peak_rss_mb():8.1f} MB")
    started = time.perf_counter()
    cs = org.advance(1)
    print(
        f"advance(1 day): {len(cs.changed)} items changed, {len(cs.created)} new, "
        f"{time.perf_counter() - started:6.2f} s"
    )
    print(f"peak RSS                     {peak_rss_mb():8.1f} MB  (target < 500 MB)")


if __name__ == "__main__":
    main()
