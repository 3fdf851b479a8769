"""Transform speed: ``run_transform`` against one plain full scan of ``work_items``.

Builds a large warehouse straight into the normalized tables with bulk inserts (projects in
programs, two-week sprints with carry-over and mid-sprint scope changes, re-estimates,
monthly releases, blocking links within and across projects, worklogs), then times, in the
same run and on the same database:

* a plain full scan that reads every work item
  (``SELECT count(*), sum(story_points), max(updated_at), sum(length(title)) FROM work_items``);
* ``run_transform``: the first run (every sprint and release computed, every alert opened,
  SQLite statistics gathered) and the median of repeat runs, the steady state after each
  sync (sprints and releases closed more than 30 days ago keep their figures).

It prints the times, the transform/scan ratio (target: at most 10x) and, across the sizes,
how the time grows (linear growth: time per 100k items stays flat). Nothing is asserted.

    /work/venv/bin/python benchmarks/transform_speed.py [--sizes 100000 200000] [--repeat 3]
        [--stages]

SQLite always; PostgreSQL too when ``PROGRAMVIEW_BENCH_PG_URL`` is set (a throw-away database
is created on that server and dropped afterwards).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _scratch import postgres_database

from programview.config import Config
from programview.transform import run_transform
from programview.warehouse import db

AS_OF = datetime(2025, 6, 30, 18, 0)
HISTORY_DAYS = 730
SPRINT_DAYS = 14
ITEMS_PER_PROJECT = 5000
PROJECTS_PER_PROGRAM = 5
SCAN_SQL = "SELECT count(*), sum(story_points), max(updated_at), sum(length(title)) FROM work_items"
WORDS = [
    "api",
    "auth",
    "cart",
    "checkout",
    "db",
    "deploy",
    "flaky",
    "login",
    "mobile",
    "order",
    "pay",
    "refund",
    "search",
    "ui",
]


def generate(items: int, seed: int = 11) -> dict[str, list[dict[str, Any]]]:
    """Deterministic normalized rows for ``items`` work items."""
    rnd = random.Random(seed)
    start = AS_OF - timedelta(days=HISTORY_DAYS)
    n_projects = max(2, items // ITEMS_PER_PROJECT)
    rows: dict[str, list[dict[str, Any]]] = {
        name: []
        for name in (
            "sources",
            "programs",
            "projects",
            "project_scopes",
            "sprints",
            "work_items",
            "sprint_items",
            "estimate_changes",
            "releases",
            "work_item_releases",
            "dependencies",
            "worklogs",
        )
    }
    rows["sources"].append({"name": "jira", "kind": "jira", "base_url": None})
    n_sprints = HISTORY_DAYS // SPRINT_DAYS + 2
    keys: list[list[str]] = []
    for p in range(n_projects):
        key, program = f"P{p:03d}", f"G{p // PROJECTS_PER_PROGRAM:02d}"
        if p % PROJECTS_PER_PROGRAM == 0:
            rows["programs"].append({"key": program, "name": f"Program {program}"})
        rows["projects"].append(
            {
                "key": key,
                "name": f"Project {key}",
                "program_key": program,
                "budget": 1_000_000.0,
                "start_date": start.date(),
                "end_date": (AS_OF + timedelta(days=180)).date(),
                "hourly_rate": 95.0,
            }
        )
        rows["project_scopes"].append({"project_key": key, "source_name": "jira", "scope": key})
        for s in range(n_sprints):
            s_start = start + timedelta(days=SPRINT_DAYS * s)
            s_end = s_start + timedelta(days=SPRINT_DAYS)
            state = "closed" if s_end <= AS_OF else ("active" if s_start <= AS_OF else "future")
            rows["sprints"].append(
                {
                    "id": f"jira:{key}-s{s}",
                    "source_name": "jira",
                    "scope": key,
                    "native_id": f"{key}-s{s}",
                    "name": f"{key} Sprint {s}",
                    "state": state,
                    "start_at": s_start,
                    "end_at": s_end,
                    "completed_at": s_end if state == "closed" else None,
                }
            )
        for r in range(HISTORY_DAYS // 30 + 3):
            due = start.date() + timedelta(days=30 * (r + 1))
            shipped = due <= AS_OF.date()
            released_at = datetime.combine(due, datetime.min.time()) + timedelta(
                days=rnd.choice((-2, 0, 0, 1, 3, 8)), hours=15
            )
            backfilled = shipped and r < 3  # released before the first sync: inferred
            rows["releases"].append(
                {
                    "id": f"jira:{key}-r{r}",
                    "source_name": "jira",
                    "scope": key,
                    "native_id": f"{key}-r{r}",
                    "name": f"{key} {r}.0",
                    "kind": "version",
                    "due_date": due,
                    "planned_date": None if backfilled else due,
                    "released": shipped,
                    "released_at": released_at if shipped and not backfilled else None,
                    "released_at_observed": shipped and not backfilled,
                }
            )
        keys.append([])

    per_project = items // n_projects
    for p in range(n_projects):
        key = f"P{p:03d}"
        for i in range(per_project):
            item_key = f"{key}-{i + 1}"
            item_id = f"jira:{item_key}"
            keys[p].append(item_key)
            created = start + timedelta(minutes=rnd.randint(0, HISTORY_DAYS * 24 * 60))
            kind = rnd.choices(("story", "bug", "task", "epic"), (60, 20, 18, 2))[0]
            points = rnd.choice((None, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0))
            start_at = created + timedelta(hours=rnd.randint(1, 24 * 10))
            resolve_at = start_at + timedelta(hours=rnd.randint(4, 24 * 20))
            started: datetime | None = start_at
            resolved: datetime | None = resolve_at
            if resolve_at <= AS_OF and rnd.random() < 0.9:
                status = "done"
            else:
                status, resolved = rnd.choice(("todo", "in_progress")), None
                started = start_at if status == "in_progress" and start_at <= AS_OF else None
            rows["work_items"].append(
                {
                    "id": item_id,
                    "source_name": "jira",
                    "scope": key,
                    "native_id": str(i),
                    "item_key": item_key,
                    "url": f"https://jira.example.test/browse/{item_key}",
                    "title": f"{item_key}: " + " ".join(rnd.choices(WORDS, k=6)),
                    "raw_type": kind.capitalize(),
                    "type_category": kind,
                    "raw_status": status,
                    "status_category": status,
                    "priority": "Medium",
                    "story_points": points,
                    "assignee": f"user{rnd.randint(1, 60)}",
                    "created_at": created,
                    "updated_at": min(AS_OF, (resolved or created) + timedelta(hours=3)),
                    "started_at": started,
                    "resolved_at": resolved,
                    "due_date": (created + timedelta(days=rnd.randint(5, 60))).date()
                    if rnd.random() < 0.2
                    else None,
                    "labels": ",".join(rnd.sample(WORDS, 2)),
                    "not_delivered": status == "done" and rnd.random() < 0.03,
                    "is_deleted": rnd.random() < 0.01,
                }
            )
            sprint = int((created - start).days // SPRINT_DAYS) + 1
            if kind != "epic" and sprint < n_sprints and rnd.random() < 0.75:
                s_start = start + timedelta(days=SPRINT_DAYS * sprint)
                added = (
                    s_start + timedelta(days=rnd.randint(1, 10)) if rnd.random() < 0.08 else None
                )
                removed = (
                    s_start + timedelta(days=rnd.randint(2, 12)) if rnd.random() < 0.04 else None
                )
                rows["sprint_items"].append(
                    {
                        "sprint_id": f"jira:{key}-s{sprint}",
                        "work_item_id": item_id,
                        "added_at": added,
                        "removed_at": removed,
                    }
                )
                if status != "done" and sprint + 1 < n_sprints and rnd.random() < 0.5:
                    rows["sprint_items"].append(
                        {
                            "sprint_id": f"jira:{key}-s{sprint + 1}",
                            "work_item_id": item_id,
                            "added_at": s_start + timedelta(days=SPRINT_DAYS),
                            "removed_at": None,
                        }
                    )
            if points is not None and rnd.random() < 0.15:
                rows["estimate_changes"].append(
                    {
                        "work_item_id": item_id,
                        "change_id": f"{item_id}-e1",
                        "changed_at": created + timedelta(days=rnd.randint(0, 15)),
                        "from_points": rnd.choice((None, 1.0, 3.0, 5.0)),
                        "to_points": points,
                    }
                )
            if rnd.random() < 0.6:
                r = min(int((created - start).days // 30), HISTORY_DAYS // 30 + 2)
                rows["work_item_releases"].append(
                    {"work_item_id": item_id, "release_id": f"jira:{key}-r{r}"}
                )
            for w in range(rnd.choice((0, 0, 1, 2))):
                rows["worklogs"].append(
                    {
                        "id": f"{item_id}-w{w}",
                        "work_item_id": item_id,
                        "author": "dev",
                        "started_at": created + timedelta(hours=w + 1),
                        "hours": rnd.choice((0.5, 1.0, 2.0, 4.0)),
                    }
                )
    for p in range(n_projects):
        for item_key in keys[p]:
            if rnd.random() < 0.03:
                other = rnd.randrange(n_projects) if rnd.random() < 0.3 else p
                blocking = rnd.choice(keys[other])
                if blocking != item_key:
                    rows["dependencies"].append(
                        {
                            "found_in": f"jira:{item_key}",
                            "blocked_key": item_key,
                            "blocking_key": blocking,
                            "link_kind": "blocks",
                            "source_name": "jira",
                            "origin": "jira_link",
                        }
                    )
    return rows


def load(engine: sa.Engine, rows: dict[str, list[dict[str, Any]]]) -> None:
    with db.transaction(engine) as conn:
        for name, batch in rows.items():
            tbl = db.table(name)
            for i in range(0, len(batch), 5000):
                conn.execute(tbl.insert(), batch[i : i + 5000])
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process, all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


@contextmanager
def stage_timer(enabled: bool) -> Iterator[dict[str, float]]:
    """Wrap the transform's steps to print where the time goes (``--stages``)."""
    import programview.transform.run as run_module

    spent: dict[str, float] = {}
    names = (
        "refresh_sprint_metrics",
        "refresh_release_metrics",
        "refresh_resource_load",
        "refresh_forecasts",
        "contention_alerts",
        "at_risk_alerts",
        "refresh_alerts",
        "compute_project_metrics",
        "refresh_flow",
        "_project_health",
        "_write_projects",
        "_write_health_inputs",
        "refresh_benefits",
        "_write_programs",
    )
    originals = {n: getattr(run_module, n) for n in names}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def inner(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0

        return inner

    if enabled:
        for n, fn in originals.items():
            setattr(run_module, n, wrap(n, fn))
    try:
        yield spent
    finally:
        for n, fn in originals.items():
            setattr(run_module, n, fn)


def bench(url: str, items: int, repeat: int, stages: bool) -> dict[str, float]:
    db.upgrade(url)
    engine = db.create_engine(url)
    try:
        rows = generate(items)
        t0 = time.perf_counter()
        load(engine, rows)
        load_s = time.perf_counter() - t0
        config = Config()

        def scan() -> None:
            with engine.connect() as conn:
                conn.execute(sa.text(SCAN_SQL)).one()

        scan()  # warm the cache the same way the transform's first run will be warm
        first, _cpu = timed(lambda: run_transform(engine, config, as_of=AS_OF))
        # Alternate the two, so both see the same machine load (a shared box is noisy).
        runs: list[tuple[float, float]] = []
        scans: list[tuple[float, float]] = []
        with stage_timer(stages) as spent:
            for _ in range(repeat):
                runs.append(timed(lambda: run_transform(engine, config, as_of=AS_OF)))
                scans.append(timed(scan))
        transform_s = statistics.median(w for w, _ in runs)
        scan_s = statistics.median(w for w, _ in scans)
        cpu_ratio = statistics.median(c for _, c in runs) / statistics.median(c for _, c in scans)
        with engine.connect() as conn:
            counts = {
                name: conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()
                for name in (
                    "work_items",
                    "sprint_items",
                    "sprints",
                    "releases",
                    "dependencies",
                    "dependency_alerts",
                )
            }
        print(
            f"  {items:>8,} items ({counts['sprint_items']:,} sprint memberships, "
            f"{counts['sprints']:,} sprints, {counts['releases']:,} releases, "
            f"{counts['dependencies']:,} links, {counts['dependency_alerts']:,} alerts; "
            f"loaded in {load_s:.1f}s)"
        )
        # SQLite works inside this process, so its CPU time is measurable too (steadier than
        # wall time when other work shares the machine); PostgreSQL's is in the server.
        cpu = f", CPU {cpu_ratio:.1f}x" if engine.dialect.name == "sqlite" else ""
        print(
            f"    full scan {scan_s * 1000:8.1f} ms | transform first {first * 1000:8.1f} ms, "
            f"repeat (median of {repeat}) {transform_s * 1000:8.1f} ms | "
            f"ratio {transform_s / scan_s:5.1f}x{cpu} (target <= 10x)"
        )
        if stages:
            for name, secs in spent.items():
                print(f"      {name:<26} {secs / repeat * 1000:8.1f} ms")
        return {"scan": scan_s, "transform": transform_s}
    finally:
        engine.dispose()


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"


postgres_url = postgres_database  # a throw-away database (benchmarks/_scratch.py)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 200_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stages", action="store_true", help="time each transform step")
    args = parser.parse_args()
    targets: list[tuple[str, Callable[[], Any]]] = [("SQLite", sqlite_url)]
    if os.environ.get("PROGRAMVIEW_BENCH_PG_URL"):
        pg = os.environ["PROGRAMVIEW_BENCH_PG_URL"]
        targets.append(("PostgreSQL", lambda: postgres_url(pg)))
    print(f"transform speed, as of {AS_OF:%Y-%m-%d %H:%M} ({date.today()})")
    for label, make_url_ctx in targets:
        print(f"{label}:")
        results = []
        for size in args.sizes:
            with make_url_ctx() as url:
                results.append((size, bench(url, size, args.repeat, args.stages)))
        if len(results) > 1:
            per = [f"{r['transform'] / size * 100_000 * 1000:.0f} ms" for size, r in results]
            print(f"  transform time per 100k items: {' -> '.join(per)} (flat = linear growth)")


if __name__ == "__main__":
    main()
