"""The one "now" of programview: naive UTC, the warehouse convention.

Why one place: the sync engine (run records, the reconcile schedule) and connectors (Jira
stamps a version with the moment it is first seen released) ask for the current time. In a
real deployment that is the wall clock. The demo replays simulated weeks in a few seconds,
and its figures must not depend on the time of day it runs: :func:`frozen` makes every
caller see the simulated clock instead, so the same seed and UTC date give the same
warehouse.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time

__all__ = ["frozen", "start_of_utc_day", "utc_now"]

_lock = threading.Lock()
_override: datetime | None = None


def utc_now() -> datetime:
    """Now, naive UTC (the frozen moment inside :func:`frozen`)."""
    moment = _override
    if moment is not None:
        return moment
    return datetime.now(UTC).replace(tzinfo=None)


@contextmanager
def frozen(moment: datetime) -> Iterator[None]:
    """Every :func:`utc_now` in the process returns ``moment`` inside the block.

    Process-wide, not per task: the sync engine runs connectors on threads and event loops
    of its own, and all of them must agree. Not for concurrent use with different moments.
    """
    global _override
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    with _lock:
        previous, _override = _override, moment
    try:
        yield
    finally:
        with _lock:
            _override = previous


def start_of_utc_day(when: datetime | date | None = None) -> datetime:
    """Midnight UTC (aware) of the UTC date of ``when`` (default: the wall clock).

    The clock the simulator generates with when it should be "current": a function of the
    date only, so two runs on the same day see the same organisation. A naive datetime is
    taken as UTC.
    """
    if when is None:
        when = datetime.now(UTC)
    if isinstance(when, datetime):
        when = (when.astimezone(UTC) if when.tzinfo is not None else when).date()
    return datetime.combine(when, time(0), UTC)
