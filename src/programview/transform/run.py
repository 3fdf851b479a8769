"""Running the transform: the steps of ``run_transform`` in order, in one transaction, and
writing the day's history rows (see the package docstring)."""

from __future__ import annotations

import json
import os
import time as _time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from programview.transform import TransformResult
from programview.transform._sql import Ctx, Sql, fetch
from programview.transform.alerts import AlertDraft, refresh_alerts
from programview.transform.benefits import refresh_benefits
from programview.transform.flow import refresh_flow
from programview.transform.forecast import ForecastResult, at_risk_alerts, refresh_forecasts
from programview.transform.health import Component, Health, score_program, score_project
from programview.transform.projects import (
    ProjectResult,
    compute_project_metrics,
    flow_reads,
    synced_reads,
)
from programview.transform.releases import refresh_release_metrics
from programview.transform.resources import contention_alerts, refresh_resource_load
from programview.transform.settings import COMPONENTS
from programview.transform.sprints import refresh_sprint_metrics
from programview.warehouse.db import table

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from programview.config import Config

#: PostgreSQL advisory lock id: two daemons sharing a warehouse never transform at once
#: (their alert lifecycles would race). ASCII "pvtransf".
_LOCK_ID = 0x7076_7472_616E_7366


def run(engine: Engine, config: Config, clock: datetime, *, full: bool = False) -> TransformResult:
    """One transform run at ``clock`` (naive UTC), in one transaction."""
    started = _time.perf_counter()
    with engine.begin() as conn, _tuned(conn):
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        ctx = Ctx(conn=conn, config=config, as_of=clock, sql=Sql(conn.dialect.name), full=full)
        reads = synced_reads(ctx)
        with _concurrently(engine, ctx, reads.tasks()) as results:
            n_sprints = refresh_sprint_metrics(ctx)
            n_releases = refresh_release_metrics(ctx)
            load = refresh_resource_load(ctx)
            forecast = refresh_forecasts(ctx)
            alerts = refresh_alerts(
                ctx, [*contention_alerts(ctx, load), *at_risk_alerts(ctx, forecast)]
            )
            synced = results()
            projects = compute_project_metrics(ctx, alerts.open_blockers, reads, synced)
        refresh_flow(
            ctx,
            {p.info.key: p.values.get("cycle_time_p85_days") for p in projects},
            flow_reads(reads, synced),
        )
        healths = _project_health(ctx, projects, alerts.open, forecast)
        _write_projects(ctx, projects, healths)
        _write_health_inputs(ctx, projects, healths)
        program_components = refresh_benefits(ctx, projects)
        n_programs = _write_programs(ctx, projects, healths, alerts.open, program_components)
    return TransformResult(
        as_of=clock,
        sprints=n_sprints,
        releases=n_releases,
        projects=len(projects),
        programs=n_programs,
        alerts_open=len(alerts.open),
        alerts_opened=alerts.opened,
        alerts_resolved=alerts.resolved,
        seconds=_time.perf_counter() - started,
    )


#: Connections reading synced tables next to the main one (see ``_concurrently``).
_SIDE_WORKERS = 2


@contextmanager
def _concurrently(
    engine: Engine, ctx: Ctx, tasks: dict[str, Callable[[Ctx], Any]]
) -> Iterator[Callable[[], dict[str, Any]]]:
    """Start read-only ``tasks`` on their own connections while the caller goes on; yields a
    function that waits for their results.

    The heavy project aggregates read only synced tables, nothing this run writes, so they
    can overlap the sprint, release and alert refresh (the database does the work; Python
    waits with the GIL released). Each sees the data committed when it starts, a moment
    after the main connection's first query: a sync committing during the run may be seen by
    some queries and not others, which the run after that sync evens out (the daemon syncs
    and transforms in turn, so it does not happen there). An in-memory SQLite database cannot
    be shared between connections, so there (and with one CPU) the tasks run inline.
    """
    in_memory = engine.dialect.name == "sqlite" and (
        engine.url.database in (None, "", ":memory:") or "mode=memory" in str(engine.url)
    )
    if in_memory or (os.cpu_count() or 1) < 2:
        yield lambda: {name: task(ctx) for name, task in tasks.items()}
        return
    pool = ThreadPoolExecutor(max_workers=_SIDE_WORKERS, thread_name_prefix="pv-transform")
    futures = {name: pool.submit(_on_side_connection, engine, ctx, t) for name, t in tasks.items()}
    try:
        yield lambda: {name: future.result() for name, future in futures.items()}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _on_side_connection(engine: Engine, ctx: Ctx, task: Callable[[Ctx], Any]) -> Any:
    with engine.connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            _pg_settings(conn)
        return task(replace(ctx, conn=conn))


def _pg_settings(conn: Connection) -> None:
    """SET LOCAL: for this transaction only. JIT compiling the correlated subqueries costs far
    more than it saves on these row counts; sorts and hashes stay in memory; index lookups
    are cheap here (the tables are hot in the cache), without which the planner reads all
    of work_items to hash-join a few thousand links."""
    conn.exec_driver_sql("SET LOCAL jit = off")
    conn.exec_driver_sql(f"SET LOCAL work_mem = '{_PG_WORK_MEM}'")
    conn.exec_driver_sql("SET LOCAL random_page_cost = 1.1")


@contextmanager
def _tuned(conn: Connection) -> Iterator[None]:
    """Per-run database settings.

    PostgreSQL: see ``_pg_settings`` (``SET LOCAL``, so they end with the transaction).
    SQLite: ``PRAGMA optimize`` at the end keeps the planner's statistics current, as SQLite
    recommends for long-lived databases (it does nothing when they are); the transform's
    plans rely on them (which index to group by, which side of a join to scan). A bigger
    page cache was measured and does not pay off: the OS cache serves the pages as fast.
    """
    if conn.dialect.name == "postgresql":
        _pg_settings(conn)
    yield
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA optimize")


#: Memory per sort/hash in the transform's PostgreSQL transaction.
_PG_WORK_MEM = "64MB"


#: Alerts about the schedule, not dependencies: the schedule component scores the forecast
#: itself, so they stay out of the dependencies component (no double count).
_SCHEDULE_RULES = frozenset({"release_at_risk"})


def _project_health(
    ctx: Ctx,
    projects: list[ProjectResult],
    open_alerts: list[AlertDraft],
    forecast: ForecastResult,
) -> dict[str, Health]:
    weights = ctx.config.health.severity_weights
    alert_weight: dict[str, float] = {}
    for alert in open_alerts:
        if alert.rule in _SCHEDULE_RULES:
            continue
        for key in alert.project_keys:
            alert_weight[key] = alert_weight.get(key, 0.0) + weights[alert.severity]
    out: dict[str, Health] = {}
    for p in projects:
        v, why = p.values, dict(p.reasons)
        chance, no_chance = forecast.project_probability(p.info.key)
        if no_chance:
            why["forecast_on_time_probability"] = no_chance
        values = {
            "spi": v.get("spi"),
            "on_time_delivery_rate": v.get("on_time_delivery_rate"),
            "forecast_on_time_probability": chance,
            "velocity_cv": v.get("velocity_cv"),
            "say_do_ratio": v.get("say_do_ratio"),
            "defect_density": v.get("defect_density"),
            "open_bug_trend_pct": v.get("open_bug_trend_pct"),
            "cpi": v.get("cpi"),
            # Alerts were evaluated over the project's items: none open is a real 100.
            "alert_weight": alert_weight.get(p.info.key, 0.0) if v["item_count"] else None,
        }
        if not v["item_count"]:
            why["alert_weight"] = "no work items synced for this project"
        out[p.info.key] = score_project(values, why, ctx.config.health)
    return out


def _write_projects(ctx: Ctx, projects: list[ProjectResult], healths: dict[str, Health]) -> None:
    tbl = table("project_metrics")
    rows: list[dict[str, Any]] = []
    for p in projects:
        h = healths[p.info.key]
        row: dict[str, Any] = dict.fromkeys(tbl.columns.keys())
        row.update({k: val for k, val in p.values.items() if k in row})
        row.update(
            project_key=p.info.key,
            program_key=p.info.program_key,
            as_of_date=ctx.as_of_date,
            as_of=ctx.as_of,
            health_score=h.score,
            health_status=h.status,
            explanation=h.explanation,
            notes="; ".join(f"{k}: {why}" for k, why in sorted(p.reasons.items())) or None,
            **{f"{name}_score": c.score for name, c in h.components.items()},
        )
        rows.append(row)
    _replace_day(ctx.conn, "project_metrics", ctx.as_of_date, rows)


def _write_health_inputs(
    ctx: Ctx, projects: list[ProjectResult], healths: dict[str, Health]
) -> None:
    """``health_inputs``: every metric behind every project's components, as scored."""
    cfg = ctx.config.health
    rows = [
        {
            "project_key": p.info.key,
            "as_of_date": ctx.as_of_date,
            "metric": m.metric,
            "program_key": p.info.program_key,
            "as_of": ctx.as_of,
            "component": c.name,
            "component_score": c.score,
            "component_weight": c.weight,
            "value": m.value,
            "score": m.score,
            "thresholds": json.dumps([[x, y] for x, y in m.points]),
            "reason": m.reason,
            "green_at": cfg.green,
            "amber_at": cfg.amber,
        }
        for p in projects
        for c in healths[p.info.key].components.values()
        for m in c.metrics
    ]
    _replace_day(ctx.conn, "health_inputs", ctx.as_of_date, rows)


def _write_programs(
    ctx: Ctx,
    projects: list[ProjectResult],
    healths: dict[str, Health],
    open_alerts: list[AlertDraft],
    program_components: dict[str, dict[str, Component]] | None = None,
) -> int:
    """``program_components``: per program, its program-level components (``benefits``);
    only those with a weight join the score (an unweighted one changes nothing)."""
    by_program: dict[str, list[ProjectResult]] = {}
    for p in projects:
        if p.info.program_key:
            by_program.setdefault(p.info.program_key, []).append(p)
    alerts_per_program: dict[str | None, int] = {}
    for alert in open_alerts:
        alerts_per_program[alert.program_key] = alerts_per_program.get(alert.program_key, 0) + 1

    def total(members: list[ProjectResult], name: str) -> float | None:
        values = [p.values[name] for p in members if p.values.get(name) is not None]
        return sum(values) if values else None

    rows: list[dict[str, Any]] = []
    for (key,) in fetch(ctx.conn, "SELECT key FROM programs ORDER BY key"):
        members = by_program.get(key, [])
        extra = {
            name: c for name, c in (program_components or {}).get(key, {}).items() if c.weight > 0
        }
        h = score_program(
            {p.info.key: healths[p.info.key] for p in members}, ctx.config.health, extra
        )
        comps = {n: c for n, c in h.components.items() if n in COMPONENTS}
        rows.append(
            {
                "program_key": key,
                "as_of_date": ctx.as_of_date,
                "as_of": ctx.as_of,
                "project_count": len(members),
                "health_score": h.score,
                "health_status": h.status,
                "explanation": h.explanation,
                "planned_value": total(members, "planned_value"),
                "earned_value": total(members, "earned_value"),
                "actual_cost": total(members, "actual_cost"),
                "open_alerts": alerts_per_program.get(key, 0),
                **{f"{n}_score": c.score for n, c in comps.items()},
                **{f"{n}_explanation": c.sentence for n, c in comps.items()},
            }
        )
    _replace_day(ctx.conn, "program_health", ctx.as_of_date, rows)
    return len(rows)


def _replace_day(conn: Connection, name: str, day: date, rows: list[dict[str, Any]]) -> None:
    """History keeps one row per key and day: the day's latest run replaces its rows."""
    tbl = table(name)
    conn.execute(tbl.delete().where(tbl.c.as_of_date == day))
    if rows:
        conn.execute(tbl.insert(), rows)
