"""The transform: normalized tables -> sprint/release/project metrics, program health and
dependency alerts (docs/metrics.md). Set-based SQL that runs the same on SQLite and
PostgreSQL.

It reads only the normalized tables (never one source's raw fields), so every connector's
data lands in the same figures. One run is one transaction: dashboards never see half a run,
and a failed run changes nothing. Order matters and is fixed:

1. ``sprint_metrics`` and ``release_metrics`` (current facts; sprints and releases closed
   more than 30 days ago keep theirs unless ``full``);
2. dependency alerts (open -> resolved lifecycle, ``alert_events`` outbox);
3. ``project_metrics`` with project health, then ``program_health``: history, one row per
   key and ``as_of_date`` (a rerun on the same day replaces that day's rows).

The project aggregates over synced tables (the heaviest queries) do not depend on steps 1-2,
so they run on side connections meanwhile (``transform.run``).

``as_of`` is the clock of every window ("bugs created in the last 90 days" ends at as_of);
it defaults to now (UTC). The simulator's organisation has its own "now", so tests and the
demo pass it explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from programview.config import Config

__all__ = ["TransformResult", "normalize_as_of", "run_transform"]


@dataclass(frozen=True, slots=True)
class TransformResult:
    """What one run did. ``sprints``/``releases``: how many were recomputed this run."""

    as_of: datetime
    sprints: int
    releases: int
    projects: int
    programs: int
    alerts_open: int
    alerts_opened: int
    alerts_resolved: int
    seconds: float


def normalize_as_of(as_of: datetime | date | None) -> datetime:
    """Naive UTC datetime: now if None, converted to UTC if aware, end of day for a date."""
    if as_of is None:
        from programview.clock import utc_now

        return utc_now()
    if isinstance(as_of, datetime):
        if as_of.tzinfo is not None:
            return as_of.astimezone(UTC).replace(tzinfo=None)
        return as_of
    return datetime.combine(as_of, time.max)


def run_transform(
    engine: Engine,
    config: Config,
    as_of: datetime | date | None = None,
    *,
    full: bool = False,
) -> TransformResult:
    """Recompute every metric, alert and health score from the warehouse tables.

    Called after each sync and by ``programview transform``. ``as_of`` (default: now, UTC)
    ends every window; a ``date`` means the end of that day. Sprints closed and releases
    shipped more than 30 days before ``as_of`` keep their stored figures
    unless ``full`` is set (after a backfill or remap that rewrote history).
    """
    # Imported here: programview.config imports this package (for its settings), and the
    # transform's dependencies (SQLAlchemy, Alembic, numpy) should not slow every CLI start.
    from programview.transform.run import run

    return run(engine, config, normalize_as_of(as_of), full=full)
