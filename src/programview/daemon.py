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
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_SCHEDULER_START, SchedulerEvent
from apscheduler.schedulers.blocking import BlockingScheduler

from programview import clock as pv_clock
from programview.config import Config
from programview.errors import ProgramviewError
from programview.warehouse import db

if TYPE_CHECKING:
    from programview.ops_server import OpsServer

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
        """The same codes as ``programview sync``: 0 ok (or stopped on request), 3 partial,
        1 failed."""
        return {"ok": 0, "partial": 3, "stopped": 0}.get(self.status, 1)


def _engine_sync(config: Config, **kwargs: Any) -> Any:
    from programview.sync.engine import sync

    return sync(config, **kwargs)


def run_cycle(
    config: Config,
    *,
    sync_fn: SyncFn | None = None,
    clock: Callable[[], float] = time.monotonic,
    stop: threading.Event | None = None,
    server: OpsServer | None = None,
    tick: float | None = None,
) -> CycleResult:
    """One run: sync every source, then transform and send alert webhooks. Never raises
    (except ``BaseException``): a scheduler job that raises would only be logged by
    APScheduler with a traceback, and the next run is what matters.

    The transform runs after an ``ok`` or ``partial`` sync and after a ``failed`` one too
    (sources down, warehouse fine): time-based metrics and alerts still move on. It is
    skipped when the sync raised, which means the warehouse itself is unusable.
    """
    from programview.logging_setup import once_per_run
    from programview.pipeline import refresh
    from programview.progress import Progress

    once_per_run.reset()  # a warning is said once per run, in every run
    started = clock()
    error: str | None = None
    result: Any = None
    stage = "sync"
    extra: dict[str, Any] = {}
    if stop is not None:
        extra["stop"] = stop
    if tick is not None:
        # Several daemons on one schedule: a stream another one already synced in this
        # tick is not synced again (see ``engine.run_sync``'s ``fresh_since``).
        extra["fresh_since"] = tick_start(pv_clock.utc_now(), tick)
        extra["fresh_until"] = extra["fresh_since"] + timedelta(seconds=tick)
    try:
        # A silent Progress (counting for /metrics): this function logs the run's line.
        progress = server.metrics.progress() if server is not None else Progress()
        result = (sync_fn or _engine_sync)(config, progress=progress, **extra)
        stage = "transform and alert webhook"
        if getattr(result, "status", None) != "stopped":  # stopping: leave promptly
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
    level = {"ok": logging.INFO, "partial": logging.WARNING, "stopped": logging.INFO}.get(
        cycle.status, logging.ERROR
    )
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
        extra={
            "run": cycle.run_id,
            "status": cycle.status,
            "records": cycle.records,
            "skipped": cycle.skipped,
            "requests": cycle.requests,
            "quarantined": cycle.quarantined,
            "duration": round(cycle.seconds, 3),
            "error": cycle.error,
        },
    )
    if server is not None:
        server.state.last_status, server.state.last_error = cycle.status, cycle.error
        server.metrics.record_run(config.warehouse.url, cycle.run_id, cycle.status, cycle.seconds)
    return cycle


def tick_start(now: datetime, seconds: float) -> datetime:
    """The start of the schedule tick ``now`` is in: ``seconds`` long ticks counted from the
    epoch (``--every``), or whole minutes for a cron schedule (its resolution). Every daemon
    on the same schedule computes the same moment, whatever machine it runs on."""
    epoch = datetime(1970, 1, 1)
    elapsed = (now - epoch).total_seconds()
    return epoch + timedelta(seconds=elapsed - elapsed % seconds)


def _first_error(result: Any) -> str | None:
    errors = list(getattr(result, "errors", None) or [])
    if not errors:
        return None
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{errors[0]}{more}"


def build_scheduler(
    config: Config,
    *,
    sync_fn: SyncFn | None = None,
    every: float | None = None,
    stop: threading.Event | None = None,
    server: OpsServer | None = None,
) -> BlockingScheduler:
    """A scheduler holding the one job: :func:`run_cycle` on ``[sync] schedule`` (UTC), or
    every ``every`` seconds counted from the epoch (so several daemons tick together)."""
    from apscheduler.triggers.interval import IntervalTrigger

    scheduler = BlockingScheduler(timezone="UTC")
    trigger: Any = config.sync.trigger()
    first: dict[str, Any] = {}
    if every is not None:
        trigger = IntervalTrigger(
            seconds=every, start_date=datetime(2000, 1, 1, tzinfo=UTC), timezone="UTC"
        )
        first["next_run_time"] = datetime.now(UTC)  # an interval daemon starts with a run
    scheduler.add_job(
        run_cycle,
        trigger,
        args=[config],
        kwargs={
            "sync_fn": sync_fn,
            "stop": stop,
            "server": server,
            "tick": every if every is not None else 60.0,
        },
        id=JOB_ID,
        name="sync + transform",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,  # a late run still runs (once, thanks to coalesce)
        **first,
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
    serve: str | None = None,
    every: float | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or one cycle with ``once``); return the exit code.

    The first SIGTERM or Ctrl-C stops scheduling and stops a running sync within moments
    (the page being written commits, the run is recorded ``stopped``); a second one kills,
    which is safe too (each page commits with its cursor; the run shows as ``abandoned``).
    ``serve`` (``HOST:PORT``) exposes ``/healthz`` and ``/metrics`` while it runs.
    """
    prepare_warehouse(config, upgrade=upgrade)
    server = _start_server(config, serve) if serve else None
    stop_event = threading.Event()
    try:
        if once:
            with _stop_on_signals(stop_event):
                return run_cycle(config, sync_fn=sync_fn, server=server, stop=stop_event).exit_code
        return _run_scheduled(config, sync_fn, every, stop_event, server)
    finally:
        if server is not None:
            server.stop()


@contextmanager
def _stop_on_signals(stop_event: threading.Event) -> Iterator[None]:
    """``--once`` (cron, Kubernetes Jobs): the first SIGTERM or Ctrl-C stops the sync after
    the page being written, as in the scheduled daemon; a second one kills."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: stopping after the page being written", signal.Signals(signum).name)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        stop_event.set()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_server(config: Config, address: str) -> OpsServer:
    from programview.errors import ConfigError
    from programview.ops_server import OpsServer, parse_address

    try:
        host, port = parse_address(address)
        server = OpsServer(host, port, config.warehouse.url, config.sync.max_age_delta)
    except ValueError as exc:
        raise ConfigError(f"--serve: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"--serve {address}: cannot listen there: {exc.strerror}") from None
    server.start()
    log.info("serving /healthz and /metrics on http://%s", server.address)
    return server


def _run_scheduled(
    config: Config,
    sync_fn: SyncFn | None,
    every: float | None,
    stop_event: threading.Event,
    server: OpsServer | None,
) -> int:
    scheduler = build_scheduler(
        config, sync_fn=sync_fn, every=every, stop=stop_event, server=server
    )

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info(
            "%s received: stopping (a running sync stops after the page being written)",
            signal.Signals(signum).name,
        )
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        stop_event.set()
        if scheduler.running:
            # Waits for the running job, which the event stops within moments; a second
            # signal (handlers are reset above) kills the process meanwhile, as documented.
            scheduler.shutdown(wait=True)

    def started(_event: SchedulerEvent) -> None:
        # Called by start() once the scheduler runs: a signal that came earlier only set the
        # flag (shutting down a scheduler that is not running raises), so honour it here.
        if stop_event.is_set():
            scheduler.shutdown(wait=False)
            return
        first = scheduler.get_job(JOB_ID).next_run_time
        log.info(
            "daemon started: warehouse %s, %d source(s), schedule %s, first run %s",
            config.warehouse.safe_url,
            len(config.sources),
            f"every {every:g}s" if every is not None else f"{config.sync.schedule!r} (UTC)",
            first.strftime("%Y-%m-%d %H:%M:%S UTC") if first else "never",
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
