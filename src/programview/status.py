"""Freshness and health of the sync, per source, scope and stream (``programview status``,
the daemon's ``/healthz`` and the data-age gauges of ``/metrics``).

Why one function for all three: an operator's cron check, the load balancer's probe and the
dashboard must agree on what "healthy" means. Healthy = every stream's last run did not
fail (nor die: ``abandoned``) and, with a maximum age, every stream's last successful sync
is at most that old. Reads only the ``v_sync_runs`` view (and, on PostgreSQL, advisory
locks), so it works with the read-only role of ``db grant-readonly``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from programview import clock
from programview.warehouse import runs

#: last statuses that make a stream unhealthy whatever its age
BAD = ("failed", "abandoned")


@dataclass(frozen=True, slots=True)
class StreamStatus:
    source: str
    scope: str
    stream: str
    last_run_id: int
    last_status: str  # ok | partial | failed | skipped | stopped | running | abandoned
    last_started_at: datetime | None
    last_success_at: datetime | None
    age_seconds: float | None  # since the last successful sync; None: never succeeded
    records: int
    requests: int
    errors: int
    quarantined: int  # payloads in quarantine for this stream, all runs
    last_error: str | None
    problem: str | None  # why it is unhealthy, None when it is fine


@dataclass(frozen=True, slots=True)
class SyncStatus:
    checked_at: datetime
    max_age: timedelta | None
    streams: list[StreamStatus] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        out = [f"{s.source} {s.scope} {s.stream}: {s.problem}" for s in self.streams if s.problem]
        if not self.streams and self.max_age is not None:
            out.append("no sync has run yet")
        return out

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "checked_at": _iso(self.checked_at),
            "max_age_seconds": self.max_age.total_seconds() if self.max_age else None,
            "problems": self.problems,
            "streams": [
                {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in asdict(s).items()}
                for s in self.streams
            ],
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


def collect_status(
    engine: Engine, *, max_age: timedelta | None = None, now: datetime | None = None
) -> SyncStatus:
    """The state of every stream that has ever run; see the module docstring."""
    now = now or clock.utc_now()
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT source_name, scope, stream, last_run_id, last_status, last_started_at,"
                " last_success_at, records, requests, errors, last_error, quarantined_total"
                " FROM v_sync_runs ORDER BY source_name, scope, stream"
            )
        ).all()
    running = [r.last_run_id for r in rows if r.last_status == "running"]
    dead = set(runs.dead_runs(engine, running)) if running else set()
    streams = []
    for r in rows:
        status = (
            runs.ABANDONED
            if r.last_status == "running" and r.last_run_id in dead
            else (r.last_status)
        )
        success = _naive(r.last_success_at)
        age = (now - success).total_seconds() if success is not None else None
        problem = None
        if status in BAD:
            problem = f"last run {r.last_run_id} {status}" + (
                f": {r.last_error}" if r.last_error else ""
            )
        elif max_age is not None and age is None:
            problem = "never synced successfully"
        elif max_age is not None and age is not None and age > max_age.total_seconds():
            problem = f"data is {format_age(age)} old, more than {format_age(max_age)}"
        streams.append(
            StreamStatus(
                source=r.source_name,
                scope=r.scope,
                stream=r.stream,
                last_run_id=int(r.last_run_id),
                last_status=status,
                last_started_at=_naive(r.last_started_at),
                last_success_at=success,
                age_seconds=age,
                records=int(r.records or 0),
                requests=int(r.requests or 0),
                errors=int(r.errors or 0),
                quarantined=int(r.quarantined_total or 0),
                last_error=r.last_error,
                problem=problem,
            )
        )
    return SyncStatus(checked_at=now, max_age=max_age, streams=streams)


def _naive(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite returns view columns of MAX() as text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=None) if value.tzinfo else value


def format_age(value: float | timedelta | None) -> str:
    """``3d4h``, ``2h5m``, ``12m``, ``40s``: short enough for a table column."""
    if value is None:
        return "never"
    seconds = int(value.total_seconds() if isinstance(value, timedelta) else value)
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def render_text(status: SyncStatus) -> str:
    """A table a person reads, then one verdict line."""
    if not status.streams:
        return "no sync has run yet\n" + (
            "unhealthy: no sync has run yet\n" if status.problems else ""
        )
    header = (
        "source",
        "scope",
        "stream",
        "last run",
        "status",
        "last success (UTC)",
        "age",
        "records",
        "requests",
        "errors",
        "quarantined",
    )
    table = [header]
    for s in status.streams:
        table.append(
            (
                s.source,
                s.scope,
                s.stream,
                str(s.last_run_id),
                s.last_status,
                s.last_success_at.strftime("%Y-%m-%d %H:%M") if s.last_success_at else "never",
                format_age(s.age_seconds),
                str(s.records),
                str(s.requests),
                str(s.errors),
                str(s.quarantined),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    limit = f" (max age {format_age(status.max_age)})" if status.max_age else ""
    if status.healthy:
        lines.append(f"healthy: {len(status.streams)} stream(s){limit}")
    else:
        lines.append(f"unhealthy{limit}: {len(status.problems)} problem(s)")
        lines.extend(f"  {p}" for p in status.problems)
    return "\n".join(lines) + "\n"
