"""GitLab sync against the API simulator: requests vs the minimum, items/s, peak memory.

The simulator runs in a child process (its organisation would otherwise share this process's
CPU and memory), serving a generated organisation's GitLab group over real HTTP on 127.0.0.1.
This process syncs it into a fresh warehouse and reports, for

1. a full sync: requests per kind vs the minimum (``/user``; per project its lookup, issue
   pages of 100, the four resource event lists and the links of every issue, its releases and
   milestones; the iterations once per group; no deletion listing: the issues read are it),
   work items per second and peak RSS;
2. a poll with nothing changed (minimum: ``/user``, per project its lookup, its releases and
   milestones and the issues pages of the lookback window, and the iterations once per group);
3. an incremental sync after ``advance(7)``, whose minimum counts the event calls of the
   changed issues only.

Prints figures only; nothing is asserted.

    .venv/bin/python benchmarks/gitlab_sync.py [--size large]

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
from datetime import timedelta
from multiprocessing.connection import Connection
from typing import Any

from _scratch import bytes_line, postgres_database

from programview.config import parse_config
from programview.sync.engine import RunResult, sync
from programview.warehouse import db

PAGE = 100
#: ``lookback_minutes`` of the generated config.
LOOKBACK = timedelta(minutes=10)
#: Requests per changed issue: four resource event lists and the links.
PER_ISSUE = 5


def _simulator(conn: Connection, seed: int, size: str, latency_ms: float = 0) -> None:
    """Child process: generate, work out the minimum requests, serve until told to stop."""
    from programview.simulator.generator import generate
    from programview.simulator.server import serve

    org = generate(seed=seed, size=size)
    scopes = org.scopes_of("gitlab")

    def minimum(changed: dict[str, int] | None) -> dict[str, int]:
        """Full read (``changed`` None) or an incremental one (issues changed per project)."""
        need: Counter[str] = Counter({"user": 1})
        need["iterations"] = len({s.owner for s in scopes})
        for sc in scopes:
            live = len(org.scope_items(sc))
            n = live if changed is None else changed.get(sc.path, 0)
            need["projects"] += 1
            need["issues"] += max(1, math.ceil(n / PAGE))
            need["events"] += PER_ISSUE * n
            need["releases"] += max(1, math.ceil(len(org.releases_of(sc)) / PAGE))
            need["milestones"] += max(1, math.ceil(len(org.releases_of(sc)) / PAGE))
            if changed is not None:  # a full read's ids are the deletion check
                need["reconcile"] += max(1, math.ceil(live / PAGE))
        return dict(need)

    def poll_minimum() -> int:
        """``/user``, per project its lookup, its releases and milestones and the issues
        pages of the lookback window below the cursor (issues there come back, unchanged, and
        are dropped before any event request), and the iterations once per group."""
        need = 1 + len({s.owner for s in scopes})
        for sc in scopes:
            items = org.scope_items(sc)
            newest = max(i.updated for i in items)
            window = sum(1 for i in items if i.updated >= newest - LOOKBACK)
            need += 3 + max(1, math.ceil(window / PAGE))
        return need

    with serve(org, latency_ms=latency_ms) as sim:
        sim.app.limiters["gitlab"].limit = 10**9  # measure our pace, not the sim's minute
        conn.send(
            {
                "config": org.config_toml(sim.base_url, "URL", kinds=["gitlab"]),
                "items": sum(len(org.scope_items(s)) for s in scopes),
                "projects": len(scopes),
                "minimum": minimum(None),
                "poll": poll_minimum(),
            }
        )
        while True:
            command, arg = conn.recv()
            if command == "log":
                conn.send(_tally(sim.requests.records))
            elif command == "clear":
                sim.requests.clear()
            elif command == "advance":
                changes = org.advance(arg)
                per_scope: Counter[str] = Counter()
                for sc in scopes:
                    live = {i.id for i in org.scope_items(sc)}
                    per_scope[sc.path] = len(changes.changed & live)
                conn.send((sum(per_scope.values()), minimum(dict(per_scope))))
            else:
                break


def _tally(records: list[Any]) -> tuple[dict[str, int], dict[int, int]]:
    """Requests by category and answers by status, counted here in the simulator's process:
    shipping the log itself (276,351 requests at large: 21 MB pickled, 53 MB unpickled) to
    the syncing process would count in the peak RSS the benchmark reports for the sync."""
    made: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    for r in records:
        made[_category(r.method, r.path, r.query)] += 1
        statuses[r.status] += 1
    return dict(made), dict(statuses)


def _category(method: str, path: str, query: str) -> str:
    name = path.rsplit("/", 1)[-1]
    if name == "user":
        return "user"
    if name.startswith("resource_") or name == "links":
        return "events"
    if name == "issues":
        return "reconcile" if "order_by=id" in query else "issues"
    if name in ("milestones", "releases", "iterations"):
        return name
    return "projects"


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
    log: tuple[dict[str, int], dict[int, int]],
    minimum: dict[str, int],
) -> None:
    made, statuses = Counter(log[0]), log[1]
    print(
        f"\n{title}: status {run.status}, {run.records} records written, "
        f"{run.skipped} unchanged, {seconds:.1f} s; answers {dict(sorted(statuses.items()))}"
    )
    print(f"  {'requests':<12}{'made':>9}{'minimum':>9}")
    for cat in sorted(set(made) | set(minimum)):
        print(f"  {cat:<12}{made[cat]:>9}{minimum.get(cat, 0):>9}")
    total, need = sum(made.values()), sum(minimum.values())
    print(f"  {'total':<12}{total:>9}{need:>9}   ({total / max(need, 1):.3f}x)")


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
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    from programview.simulator.generator import TOKENS

    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=_simulator, args=(theirs, args.seed, args.size, args.latency_ms))
    started = time.perf_counter()
    child.start()
    try:
        info: dict[str, Any] = ours.recv()
        print(
            f"GitLab, size {args.size} (seed {args.seed}): {info['items']} issues in "
            f"{info['projects']} projects; simulator ready in "
            f"{time.perf_counter() - started:.1f} s"
        )
        with _warehouse("bench") as (url, kind):
            db.upgrade(url)
            print(f"warehouse {kind}")
            text = info["config"].replace("URL", url)
            text = text.replace("[sync]\n", "[sync]\nreconcile_hours = 0\n", 1)
            config = parse_config(text, environ=TOKENS.env())
            baseline = _rss_mb()
            t0 = time.perf_counter()
            first = sync(config)
            full_s = time.perf_counter() - t0
            peak = _rss_mb()  # the sync's, before anything of the report is received
            ours.send(("log", None))
            _report("Full sync", first, full_s, ours.recv(), info["minimum"])
            print(f"  throughput  {info['items'] / full_s:,.0f} work items/s")
            before = f"(process before the sync: {baseline:,.0f} MB)"
            print(f"  peak RSS    {peak:,.0f} MB {before}")
            print(bytes_line(url, info["items"]))
            _floor_line(full_s, info["minimum"], args.latency_ms, config.sync.concurrency)

            quiet = parse_config(info["config"].replace("URL", url), environ=TOKENS.env())
            ours.send(("clear", None))
            t0 = time.perf_counter()
            again = sync(quiet)
            seconds = time.perf_counter() - t0
            ours.send(("log", None))
            polled = sum(ours.recv()[0].values())
            print(
                f"\nPoll, nothing changed: status {again.status}, {again.records} records "
                f"written, {seconds:.1f} s; {polled} requests vs minimum {info['poll']}"
            )

            ours.send(("advance", 7))
            changed, need = ours.recv()
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
                need,
            )
            print(f"  peak RSS    {peak:,.0f} MB")
    finally:
        ours.send(("stop", None))
        child.join(timeout=30)


if __name__ == "__main__":
    main()
