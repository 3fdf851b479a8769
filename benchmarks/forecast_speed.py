"""Forecast speed: the Monte Carlo release/project forecast (and the flow refresh) on a
``large`` warehouse (200,000 work items, the simulator's ``large`` size).

Builds the warehouse the way ``transform_speed.py`` does (synthesised rows bulk-inserted
into the normalized tables: projects in programs, sprints with carry-over, monthly
releases, blocking links within and across projects), runs the transform once (so
``sprint_metrics`` holds the sprint history the forecast samples), then times, on its own
transaction each:

* ``refresh_forecasts``: the reads (histories, open releases' remaining work, blocking
  links) and the trials (default 10,000 per project, through dependencies), and writing
  ``release_forecasts`` / ``project_forecasts``;
* ``refresh_flow``: ``v_flow_daily``'s 90 days per project.

It prints the figures (median of ``--repeat`` runs); nothing is asserted.

    .venv/bin/python benchmarks/forecast_speed.py [--items 200000] [--trials 10000]
        [--repeat 3]

SQLite always; PostgreSQL too when ``PROGRAMVIEW_BENCH_PG_URL`` is set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import sqlalchemy as sa
from _scratch import postgres_database
from transform_speed import AS_OF, generate, load, sqlite_url

from programview.config import Config
from programview.transform import run_transform
from programview.transform._sql import Ctx, Sql
from programview.transform.flow import refresh_flow
from programview.transform.forecast import compute, refresh_forecasts
from programview.warehouse import db


def _timed(engine: sa.Engine, config: Config, fn: Any) -> tuple[float, Any]:
    with engine.begin() as conn:
        ctx = Ctx(conn=conn, config=config, as_of=AS_OF, sql=Sql(conn.dialect.name))
        t0 = time.perf_counter()
        out = fn(ctx)
        return time.perf_counter() - t0, out


def bench(url: str, items: int, trials: int, repeat: int) -> None:
    db.upgrade(url)
    engine = db.create_engine(url)
    try:
        t0 = time.perf_counter()
        load(engine, generate(items))
        load_s = time.perf_counter() - t0
        config = Config()
        config = config.model_copy(
            update={"forecast": config.forecast.model_copy(update={"trials": trials})}
        )
        t0 = time.perf_counter()
        run_transform(engine, config, as_of=AS_OF)
        transform_s = time.perf_counter() - t0
        forecast = [_timed(engine, config, refresh_forecasts) for _ in range(repeat)]
        reads = [_timed(engine, config, _reads_only) for _ in range(repeat)]
        p85 = {}
        with engine.connect() as conn:
            for key, value in conn.execute(
                sa.text(
                    "SELECT project_key, cycle_time_p85_days FROM project_metrics "
                    "WHERE as_of_date = (SELECT MAX(as_of_date) FROM project_metrics)"
                )
            ):
                p85[key] = value
        flow = [_timed(engine, config, lambda c: refresh_flow(c, p85)) for _ in range(repeat)]
        result = forecast[0][1]
        with engine.connect() as conn:
            links = conn.execute(sa.text("SELECT count(*) FROM dependencies")).scalar_one()
        dated = sum(1 for r in result.releases.values() if r.finish is not None and r.due_date)
        print(
            f"  {engine.dialect.name}: {items:,} items, {len(result.projects)} projects, "
            f"{len(result.releases)} open releases ({dated} with a due date and a forecast), "
            f"{links:,} links; loaded in {load_s:.1f}s, first transform {transform_s:.1f}s"
        )
        fc = statistics.median(t for t, _ in forecast)
        rd = statistics.median(t for t, _ in reads)
        print(
            f"    forecast ({trials:,} trials a project, through dependencies): "
            f"{fc * 1000:.0f} ms (reads and trials without writing: {rd * 1000:.0f} ms)"
        )
        print(
            f"    flow (90 days a project): {statistics.median(t for t, _ in flow) * 1000:.0f} ms"
        )
    finally:
        engine.dispose()


def _reads_only(ctx: Ctx) -> Any:
    return compute(ctx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with sqlite_url() as url:
        bench(url, args.items, args.trials, args.repeat)
    pg = os.environ.get("PROGRAMVIEW_BENCH_PG_URL")
    if pg:
        with postgres_database(pg) as url:
            bench(url, args.items, args.trials, args.repeat)


if __name__ == "__main__":
    main()
