"""The transform: normalized tables -> sprint/release/project metrics, program health and
dependency alerts (docs/metrics.md). Set-based SQL that runs the same on SQLite and
PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from programview.config import Config


def run_transform(engine: Engine, config: Config) -> None:
    """Recompute every metric from the warehouse tables. Called after each sync.

    Placeholder until the transform lands; the sync CLI already calls it.
    """
    return None
