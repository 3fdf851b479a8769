"""GitHub sync against the API simulator: requests vs the minimum, GraphQL points, items/s,
peak memory, and wall time against the network floor at 50 ms of latency.

The simulator runs in a child process (its organisation and GraphQL execution would otherwise
share this process's CPU and memory), serving a generated organisation's GitHub repositories
and its Projects v2 project over real HTTP on 127.0.0.1. This process syncs them into a fresh
warehouse and reports, for

1. a full sync: requests per kind vs the minimum (REST pages of 100, one GraphQL details call
   per page of issues, one blocked-by call per blocked issue, one call each for the project
   probe, the repository check, its milestones and its releases; the deletion reconcile is a
   line of its own), GraphQL points, work items per second and peak RSS;
2. a poll with nothing changed (minimum: one request per repository and stream, plus the
   free ``/rate_limit`` and the project probe), twice: the second is all 304s;
3. an incremental sync after ``advance(7)`` (changed issues plus the board pass);
4. with ``--latency-ms`` (default 50) a second full sync into another warehouse: wall time vs
   the network floor = minimum requests x latency / concurrency.

Prints figures only; nothing is asserted.

    .venv/bin/python benchmarks/github_sync.py [--size large] [--latency-ms 50]

SQLite by default; PostgreSQL when ``PROGRAMVIEW_BENCH_PG_URL`` is set.
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
from multiprocessing.connection import Connection
from typing import Any

from _scratch import bytes_line, postgres_database

from programview.config import parse_config
from programview.sync.engine import RunResult, sync
from programview.warehouse import db

PAGE = 100


def _simulator(conn: Connection, seed: int, size: str) -> None:
    """Child process: generate, work out the minimum requests, serve until told to stop."""
    from programview.simulator import github_api as gh
    from programview.simulator.generator import generate
    from programview.simulator.server import serve

    org = generate(seed=seed, size=size)

    def minimum() -> tuple[dict[str, int], int]:
        need: Counter[str] = Counter({"discovery": 1, "graphql": 1})  # /rate_limit, probe
        items = 0
        for sc in org.scopes_of("github"):
            live = org.scope_items(sc)
            items += len(live)
            listed = len(live) + len(gh._index(org).prs[sc.path])
            pages = max(1, math.ceil(listed / PAGE))
            need["repository"] += 1
            need["milestones"] += max(1, math.ceil(len(org.releases_of(sc)) / PAGE))
            shipped = [r for r in org.releases_of(sc) if r.released_at is not None]
            need["releases"] += max(1, math.ceil(len(shipped) / PAGE))
            need["issues"] += pages
            need["graphql"] += max(1, math.ceil(len(live) / PAGE))  # details; PRs need none
            need["blocked_by"] += sum(1 for i in live if gh._native_blocks(org, i)[0])
        return dict(need), items

    with serve(org) as sim:
        need, items = minimum()
        sim.app.limiters["github"].limit = 10**9  # measure our pace, not the sim's hour
        conn.send(
            {
                "config": org.config_toml(sim.base_url, "URL", kinds=["github"]),
                "items": items,
                "repos": len(org.scopes_of("github")),
                "minimum": need,
            }
        )
        while True:
            command, arg = conn.recv()
            if command == "log":
                conn.send([(r.method, r.path, r.query, r.status) for r in sim.requests.records])
            elif command == "clear":
                sim.requests.clear()
            elif command == "advance":
                changes = org.advance(arg)
                github = {i.id for s in org.scopes_of("github") for i in org.scope_items(s)}
                conn.send(len(changes.changed & github))
            elif command == "latency":
                sim.latency_ms = arg
            elif command == "minimum":
                conn.send(minimum()[0])
            else:
                break


def _category(method: str, path: str, query: str) -> str:
    if path == "/rate_limit":
        return "discovery"
    if path.endswith("/milestones"):
        return "milestones"
    if path.endswith("/releases"):
        return "releases"
    if "dependencies/blocked_by" in path:
        return "blocked_by"
    if path.endswith("/issues"):
        return "reconcile" if "since=" not in query and "sort=updated" not in query else "issues"
    if path.startswith("/repos/") and path.count("/") == 3:
        return "repository"
    return "graphql"


@contextmanager
def _warehouse(name: str) -> Iterator[tuple[str, str]]:
    admin = os.environ.get("PROGRAMVIEW_BENCH_PG_URL")
    if not admin:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/{name}.db", "SQLite"
        return
    with postgres_database(admin) as url:
        yield url, "PostgreSQL"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _report(
    title: str,
    run: RunResult,
    seconds: float,
    log: list[tuple[str, str, str, int]],
    minimum: dict[str, int] | None,
) -> int:
    made: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    for method, path, query, status in log:
        made[_category(method, path, query)] += 1
        statuses[status] += 1
    print(
        f"\n{title}: status {run.status}, {run.records} records written, "
        f"{run.skipped} unchanged, {seconds:.1f} s; answers {dict(sorted(statuses.items()))}"
    )
    if minimum is not None:
        print(f"  {'requests':<12}{'made':>8}{'minimum':>9}")
        for cat in sorted(set(made) | set(minimum)):
            print(f"  {cat:<12}{made[cat]:>8}{minimum.get(cat, 0):>9}")
        total_min = sum(v for k, v in minimum.items() if k != "reconcile")
        data = sum(v for k, v in made.items() if k != "reconcile")
        print(
            f"  {'total':<12}{sum(made.values()):>8}{sum(minimum.values()):>9}   "
            f"(without the reconcile listing {data} vs {total_min}: "
            f"{data / max(total_min, 1):.3f}x)"
        )
    else:
        for cat, n in sorted(made.items()):
            print(f"  {cat:<12}{n:>8}")
    return sum(made.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", default="large", choices=("small", "medium", "large"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    from programview.simulator.generator import TOKENS

    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=_simulator, args=(theirs, args.seed, args.size))
    started = time.perf_counter()
    child.start()
    try:
        info: dict[str, Any] = ours.recv()
        print(
            f"GitHub, size {args.size} (seed {args.seed}): {info['items']} issues in "
            f"{info['repos']} repositories; simulator ready in "
            f"{time.perf_counter() - started:.1f} s"
        )
        with _warehouse("bench") as (url, kind):
            db.upgrade(url)
            print(f"warehouse {kind}")
            config = parse_config(info["config"].replace("URL", url), environ=TOKENS.env())
            baseline = _rss_mb()
            t0 = time.perf_counter()
            first = sync(config)
            full_s = time.perf_counter() - t0
            peak = _rss_mb()  # the sync's, before the request log is received
            ours.send(("log", None))
            _report("Full sync", first, full_s, ours.recv(), info["minimum"])
            connector_points = _points(first)
            print(f"  GraphQL     {connector_points}")
            print(f"  throughput  {info['items'] / full_s:,.0f} work items/s")
            print(f"  peak RSS    {peak:,.0f} MB (process before the sync: {baseline:,.0f} MB)")
            print(bytes_line(url, info["items"]))

            unchanged = {"probes": 2, "per repository and stream": 4 * info["repos"]}
            for n in (1, 2):
                ours.send(("clear", None))
                t0 = time.perf_counter()
                again = sync(config)
                seconds = time.perf_counter() - t0
                ours.send(("log", None))
                made = _report(f"Poll {n}, nothing changed", again, seconds, ours.recv(), None)
                print(
                    f"  total {made} vs minimum {sum(unchanged.values())} "
                    f"(one per repository and stream, plus /rate_limit and the probe)"
                )

            ours.send(("advance", 7))
            changed = ours.recv()
            ours.send(("clear", None))
            t0 = time.perf_counter()
            third = sync(config)
            seconds = time.perf_counter() - t0
            peak = _rss_mb()
            ours.send(("log", None))
            _report(
                f"Incremental after 7 simulated days ({changed} issues changed)",
                third,
                seconds,
                ours.recv(),
                None,
            )
            print(f"  GraphQL     {_points(third)}")
            print(f"  peak RSS    {peak:,.0f} MB")

        if args.latency_ms:
            ours.send(("minimum", None))
            need = ours.recv()
            ours.send(("latency", args.latency_ms))
            with _warehouse("latency") as (url, _kind):
                db.upgrade(url)
                config = parse_config(info["config"].replace("URL", url), environ=TOKENS.env())
                ours.send(("clear", None))
                t0 = time.perf_counter()
                run = sync(config)
                seconds = time.perf_counter() - t0
                ours.send(("log", None))
                made = len(ours.recv())
                floor = sum(need.values()) * args.latency_ms / 1000 / config.sync.concurrency
                print(
                    f"\nFull sync at {args.latency_ms:.0f} ms latency: {seconds:.1f} s, "
                    f"{made} requests; network floor {floor:.1f} s "
                    f"(minimum {sum(need.values())} requests x latency / concurrency "
                    f"{config.sync.concurrency}): {seconds / floor:.2f}x; status {run.status}"
                )
    finally:
        ours.send(("stop", None))
        child.join(timeout=30)


def _points(run: RunResult) -> str:
    """GraphQL points the run spent, from its notes (the connector reports them)."""
    return "; ".join(n for n in run.notes if "GraphQL" in n) or "none"


if __name__ == "__main__":
    main()
