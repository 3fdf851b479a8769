"""Jira sync against the API simulator: requests made vs the minimum, items/s, peak memory.

The simulator runs in a child process (its generated organisation holds a lot of memory of
its own), serving a ``large`` organisation over real HTTP on 127.0.0.1; this process runs
``programview.sync.engine.sync`` into a fresh warehouse and reports:

* requests made per endpoint vs the minimum possible: the pages needed at the largest page
  the simulated API serves (``SEARCH_PAGE_CAP`` issues a search page when fields and the
  changelog are asked for, 5000 for a key-only listing; 50 boards or sprints a page; 1000
  issues a changelog bulk fetch; one call per issue with more than the embedded worklogs);
* work items per second of the full sync;
* peak resident memory (RSS) of the syncing process;
* the same for a second run with nothing changed, whose minimum is one search page per
  project plus what the lookback window below the cursor holds.

Prints figures only; nothing is asserted.

    /work/venv/bin/python benchmarks/jira_sync.py [--size large] [--deployment cloud]

SQLite by default; PostgreSQL when ``PROGRAMVIEW_BENCH_PG_URL`` is set (a throw-away database
is created there and dropped afterwards).
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing as mp
import os
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import parse_qs

from _scratch import bytes_line, postgres_database

from programview.config import parse_config
from programview.sync.engine import RunResult, sync
from programview.warehouse import db

#: ``lookback_minutes`` of the generated config.
LOOKBACK = timedelta(minutes=10)


def _endpoint(method: str, path: str, query: str) -> str:
    """``METHOD path`` with ids folded, for counting per endpoint; a key-only search (the
    deletion check) is told apart from the issue search."""
    parts = ["{n}" if p.isdigit() else p for p in path.split("/")]
    if len(parts) > 5 and parts[2] == "api" and parts[4] in ("project", "issue"):
        parts[5] = "{key}"
    ids_only = parse_qs(query).get("fields") == ["id"]
    return f"{method} {'/'.join(parts)}" + (" (ids only)" if ids_only else "")


def _simulator(
    conn: Connection, seed: int, size: str, deployment: str, db_url: str, latency_ms: float = 0
) -> None:
    """Child process: generate, work out the minimum requests, serve until told to stop."""
    from programview.simulator import jira_api
    from programview.simulator.generator import generate
    from programview.simulator.server import serve

    org = generate(seed=seed, size=size)
    cloud = deployment == "cloud"
    search_page = jira_api.SEARCH_PAGE_CAP if cloud else jira_api.DC_SEARCH_MAX
    minimum: Counter[str] = Counter()
    unchanged: Counter[str] = Counter()
    items = 0
    for sc in org.scopes_of("jira"):
        live = org.scope_items(sc)
        items += len(live)
        boards = [c for c in org.cadences if c.system == "jira" and c.owner == sc.path]
        sprint_pages = sum(max(1, math.ceil(len(org.sprints_of(c)) / 50)) for c in boards)
        truncated = 0
        if cloud:
            truncated = sum(
                1
                for i in live
                if len(jira_api.change_events(org, i, cloud)) > jira_api.CLOUD_CHANGELOG_EMBED
            )
        long_worklogs = sum(1 for i in live if len(i.worklogs) > jira_api.WORKLOG_EMBED)
        for counter in (minimum, unchanged):
            counter["project"] += 1
            counter["boards"] += max(1, math.ceil(len(boards) / 50))
            counter["sprints"] += sprint_pages
        minimum["search"] += max(1, math.ceil(len(live) / search_page))
        # An unchanged run still re-reads the lookback window below the cursor (the
        # generator puts many updates at its "now", so that window is not small here).
        newest = max((i.updated for i in live), default=None)
        window = [i for i in live if newest and i.updated >= newest - LOOKBACK]
        unchanged["search"] += max(1, math.ceil(len(window) / search_page))
        minimum["changelog"] += math.ceil(truncated / 1000)
        minimum["worklog"] += long_worklogs
        # No deletion listing: the full read of the issues is the deletion check.
    for counter in (minimum, unchanged):
        counter["discovery"] = 2  # /myself, /field
    minimum["discovery"] += 1  # /status, once issues are mapped
    with serve(org, latency_ms=latency_ms) as sim:
        conn.send(
            {
                "config": org.config_toml(sim.base_url, db_url, deployment, kinds=["jira"]),
                "items": items,
                "minimum": dict(minimum),
                "unchanged": dict(unchanged),
            }
        )
        while True:
            command = conn.recv()
            if command == "log":
                conn.send(
                    Counter(_endpoint(r.method, r.path, r.query) for r in sim.requests.records)
                )
            elif command == "clear":
                sim.requests.clear()
            else:
                break


def _category(endpoint: str) -> str:
    method, path = endpoint.split(" ", 1)
    if path.endswith(("/myself", "/field", "/status")):
        return "discovery"
    if path.endswith("/project/{key}"):
        return "project"
    if path.endswith("/versions"):
        return "versions"
    if path.endswith("/board"):
        return "boards"
    if path.endswith("/sprint"):
        return "sprints"
    if "changelog" in path or (method == "GET" and path.endswith("/issue/{key}")):
        return "changelog"
    if path.endswith("/worklog"):
        return "worklog"
    if path.endswith(("approximate-count", "(ids only)")):
        return "reconcile"
    return "search"


@contextmanager
def _warehouse() -> Iterator[tuple[str, str]]:
    admin = os.environ.get("PROGRAMVIEW_BENCH_PG_URL")
    if not admin:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db", "SQLite"
        return
    with postgres_database(admin) as url:
        yield url, "PostgreSQL"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _report(
    title: str, run: RunResult, seconds: float, log: Counter[str], minimum: dict[str, int]
) -> None:
    made: Counter[str] = Counter()
    for endpoint, n in log.items():
        made[_category(endpoint)] += n
    print(
        f"\n{title}: status {run.status}, {run.records} records written, "
        f"{run.skipped} unchanged, {seconds:.1f} s"
    )
    print(f"  {'requests':<12}{'made':>8}{'minimum':>9}")
    for cat in sorted(set(made) | set(minimum)):
        print(f"  {cat:<12}{made[cat]:>8}{minimum.get(cat, 0):>9}")
    total_min = sum(minimum.values())
    print(
        f"  {'total':<12}{sum(made.values()):>8}{total_min:>9}   "
        f"(client counted {run.requests}; {sum(made.values()) / max(total_min, 1):.2f}x)"
    )
    for endpoint, n in sorted(log.items(), key=lambda kv: -kv[1])[:8]:
        print(f"    {n:>7}  {endpoint}")


def _floor_line(seconds: float, minimum: dict[str, int], latency_ms: float, conc: int) -> None:
    """With latency: the full sync's wall time against the network floor (minimum requests x
    latency / concurrency; target <= 1.2x)."""
    if not latency_ms:
        return
    need = sum(minimum.values())
    floor = need * latency_ms / 1000 / conc
    print(
        f"  at {latency_ms:.0f} ms latency: {seconds:.1f} s; network floor {floor:.1f} s "
        f"(minimum {need} requests x latency / concurrency {conc}): {seconds / floor:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", default="large", choices=("small", "medium", "large"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="added to every simulator answer"
    )
    parser.add_argument("--deployment", default="cloud", choices=("cloud", "datacenter"))
    parser.add_argument(
        "--concurrency", type=int, default=None, help="[sync] concurrency (default: the config's)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    from programview.simulator.generator import TOKENS

    with _warehouse() as (url, kind):
        db.upgrade(url)
        ctx = mp.get_context("spawn")
        ours, theirs = ctx.Pipe()
        child = ctx.Process(
            target=_simulator,
            args=(theirs, args.seed, args.size, args.deployment, url, args.latency_ms),
        )
        started = time.perf_counter()
        child.start()
        try:
            info: dict[str, Any] = ours.recv()
            print(
                f"Jira {args.deployment}, size {args.size} (seed {args.seed}): "
                f"{info['items']} issues; warehouse {kind}; simulator ready in "
                f"{time.perf_counter() - started:.1f} s"
            )
            text = info["config"]
            if args.concurrency is not None:
                text = text.replace("concurrency = 4", f"concurrency = {args.concurrency}", 1)
            config = parse_config(text, environ=TOKENS.env())
            baseline = _rss_mb()

            t0 = time.perf_counter()
            first = sync(config)
            full_s = time.perf_counter() - t0
            peak = _rss_mb()  # the sync's, before the request log is received
            ours.send("log")
            _report("Full sync", first, full_s, ours.recv(), info["minimum"])
            print(f"  throughput  {info['items'] / full_s:,.0f} work items/s")
            print(f"  peak RSS    {peak:,.0f} MB (process before the sync: {baseline:,.0f} MB)")
            print(bytes_line(url, info["items"]))
            _floor_line(full_s, info["minimum"], args.latency_ms, config.sync.concurrency)

            ours.send("clear")
            t0 = time.perf_counter()
            second = sync(config)
            again_s = time.perf_counter() - t0
            ours.send("log")
            _report("Second run, nothing changed", second, again_s, ours.recv(), info["unchanged"])
        finally:
            ours.send("stop")
            child.join(timeout=30)


if __name__ == "__main__":
    main()
