"""The sync daemon: a scheduler around the functions ``programview sync`` calls.

Why so little here: everything a scheduled run does (sync every source, recompute metrics,
send alert webhooks) is a library function the CLI calls too, so a cron user running
``programview daemon --once`` (or ``programview sync``) gets exactly what the daemon does.
This module only adds the schedule (``[sync] schedule``, crontab syntax, UTC), one log line
per run, and a clean stop on SIGTERM.

Runs never overlap (``max_instances=1``); runs missed while one was still going, or while the
machine slept, collapse into one (``coalesce=True``). A failed run is logged and the daemon
keeps going: the next run may well succeed (an API outage, a database restart).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_SCHEDULER_START, SchedulerEvent
from apscheduler.schedulers.blocking import BlockingScheduler

from programview.config import Config
from programview.errors import ProgramviewError
from programview.warehouse import db

log = logging.getLogger("programview.daemon")

JOB_ID = "sync"

#: ``sync(config, *, progress=...)`` returning a ``programview.sync.engine.RunResult``
#: (``run_id``, ``status``, ``records``, ``skipped``, ``requests``, ``quarantined``, ``errors``).
SyncFn = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class CycleResult:
    """What one scheduled run did, as logged."""

    status: str  # ok | partial | failed
    run_id: int | None = None  # the sync_runs row (None when the sync did not start)
    records: int = 0  # raw records written (new or changed)
    skipped: int = 0  # raw records unchanged since the last run
    requests: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    error: str | None = None

    @property
    def exit_code(self) -> int:
        """The same codes as ``programview sync``: 0 ok, 3 partial, 1 failed."""
        return {"ok": 0, "partial": 3}.get(self.status, 1)


def _engine_sync(config: Config, **kwargs: Any) -> Any:
    from programview.sync.engine import sync

    return sync(config, **kwargs)


def run_cycle(
    config: Config,
    *,
    sync_fn: SyncFn | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> CycleResult:
    """One run: sync every source, then transform and send alert webhooks. Never raises
    (except ``BaseException``): a scheduler job that raises would only be logged by
    APScheduler with a traceback, and the next run is what matters.

    The transform runs after an ``ok`` or ``partial`` sync and after a ``failed`` one too
    (sources down, warehouse fine): time-based metrics and alerts still move on. It is
    skipped when the sync raised, which means the warehouse itself is unusable.
    """
    from programview.pipeline import refresh
    from programview.progress import Progress

    started = clock()
    error: str | None = None
    result: Any = None
    stage = "sync"
    try:
        # A silent Progress: this function logs the run's single line itself.
        result = (sync_fn or _engine_sync)(config, progress=Progress())
        stage = "transform and alert webhook"
        refresh(config)
    except ProgramviewError as exc:
        error = f"{stage}: {exc}"
    except Exception as exc:  # a bug: keep the daemon alive, keep the traceback in the log
        log.exception("%s failed with an unexpected error", stage)
        error = f"{stage}: unexpected {type(exc).__name__}: {exc}"

    status = "failed" if error else str(getattr(result, "status", "failed"))
    cycle = CycleResult(
        status=status,
        run_id=getattr(result, "run_id", None),
        records=int(getattr(result, "records", 0) or 0),
        skipped=int(getattr(result, "skipped", 0) or 0),
        requests=int(getattr(result, "requests", 0) or 0),
        quarantined=int(getattr(result, "quarantined", 0) or 0),
        seconds=clock() - started,
        error=error or _first_error(result),
    )
    level = {"ok": logging.INFO, "partial": logging.WARNING}.get(cycle.status, logging.ERROR)
    log.log(
        level,
        "run%s %s in %.1fs: %d records written, %d unchanged, %d requests, %d quarantined%s",
        f" {cycle.run_id}" if cycle.run_id is not None else "",
        cycle.status,
        cycle.seconds,
        cycle.records,
        cycle.skipped,
        cycle.requests,
        cycle.quarantined,
        f"; {cycle.error}" if cycle.error else "",
    )
    return cycle


def _first_error(result: Any) -> str | None:
    errors = list(getattr(result, "errors", None) or [])
    if not errors:
        return None
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{errors[0]}{more}"


def build_scheduler(config: Config, *, sync_fn: SyncFn | None = None) -> BlockingScheduler:
    """A scheduler holding the one job: :func:`run_cycle` on ``[sync] schedule`` (UTC)."""
    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(
        run_cycle,
        config.sync.trigger(),
        args=[config],
        kwargs={"sync_fn": sync_fn},
        id=JOB_ID,
        name="sync + transform",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,  # a late run still runs (once, thanks to coalesce)
    )
    return scheduler


def prepare_warehouse(config: Config, *, upgrade: bool = False) -> None:
    """Fail before scheduling anything when the warehouse is unreachable or not migrated
    (``upgrade`` migrates it first: convenient for a single container)."""
    if upgrade:
        db.upgrade(config.warehouse.url)
    engine = db.create_engine(config.warehouse.url)
    try:
        db.ensure_current(engine)
    finally:
        engine.dispose()


def run_daemon(
    config: Config,
    *,
    once: bool = False,
    upgrade: bool = False,
    sync_fn: SyncFn | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or one cycle with ``once``); return the exit code.

    The first SIGTERM or Ctrl-C stops scheduling and lets a running run finish (its data
    and cursors commit together, so even a hard kill loses nothing); a second one kills.
    """
    prepare_warehouse(config, upgrade=upgrade)
    if once:
        return run_cycle(config, sync_fn=sync_fn).exit_code

    scheduler = build_scheduler(config, sync_fn=sync_fn)
    stop_requested = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stop_requested
        log.info("%s received: stopping after the current run", signal.Signals(signum).name)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        stop_requested = True
        if scheduler.running:
            scheduler.shutdown(wait=False)

    def started(_event: SchedulerEvent) -> None:
        # Called by start() once the scheduler runs: a signal that came earlier only set the
        # flag (shutting down a scheduler that is not running raises), so honour it here.
        if stop_requested:
            scheduler.shutdown(wait=False)
            return
        first = scheduler.get_job(JOB_ID).next_run_time
        log.info(
            "daemon started: warehouse %s, %d source(s), schedule %r (UTC), first run %s",
            config.warehouse.safe_url,
            len(config.sources),
            config.sync.schedule,
            first.strftime("%Y-%m-%d %H:%M UTC") if first else "never",
        )

    scheduler.add_listener(started, EVENT_SCHEDULER_START)
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        scheduler.start()  # blocks until stop() shuts the scheduler down
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("daemon stopped")
    return 0
