"""``programview sync``, ``programview backfill`` and ``programview connectors``.

Thin: parse options, call :func:`programview.sync.engine.sync`, print a summary, run the
transform when something changed, and exit 0 ok / 1 failed / 3 partial (2 is bad usage or
config, from ``handle_errors``).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import FrameType
from typing import NoReturn

import click

from programview.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    handle_errors,
    load,
    log_format_option,
    main_group,
)
from programview.config import Config
from programview.progress import Progress, TerminalProgress
from programview.sync import engine as sync_engine
from programview.sync.registry import connector_entry_points, load_connector

#: a stopped run (SIGTERM, Ctrl-C) exits 0: it was asked for, and nothing is lost
EXIT_CODES = {"ok": EXIT_OK, "partial": EXIT_PARTIAL, "failed": EXIT_FAILED, "stopped": EXIT_OK}
DATE = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"])


def _progress() -> Progress | None:
    """Live lines only for a person watching; cron and pipes get the summary alone."""
    return TerminalProgress() if sys.stderr.isatty() else None


@contextmanager
def graceful_stop() -> Iterator[threading.Event]:
    """The first SIGTERM or Ctrl-C asks the run to stop (the page being written commits,
    the run is recorded ``stopped``); a second one kills at once, as usual."""
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        click.echo(
            f"{signal.Signals(signum).name} received: stopping (the page being written "
            "commits; send it again to kill)",
            err=True,
        )
        stop.set()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals can only be caught in the main thread
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _json_logs(config: Config, log_format: str) -> None:
    """Text keeps Python's plain warnings on stderr (as before, less the libraries' echoes
    of an error we report in one line); json switches every log line, stream lines
    included, to one JSON object per line (Kubernetes, Airflow)."""
    from programview.logging_setup import config_secrets, quiet_libraries, setup_logging

    if log_format == "json":
        setup_logging("INFO", secrets=config_secrets(config), fmt="json")
    else:
        quiet_libraries()


def _finish(config: Config, result: sync_engine.RunResult) -> NoReturn:
    click.echo(
        f"run {result.run_id}: {result.status}, {result.records} records written, "
        f"{result.skipped} unchanged, {result.requests} requests, "
        f"{result.quarantined} quarantined"
        + (f", {result.deleted} marked deleted" if result.deleted else "")
    )
    for error in result.errors:
        click.echo(f"error: {error}", err=True)
    if result.quarantined:
        click.echo(
            f"warning: {result.quarantined} record(s) could not be mapped and are in the "
            f"quarantine table (run_id = {result.run_id})",
            err=True,
        )
    if result.status == "stopped":
        click.echo("stopped: the next sync carries on from the last committed page", err=True)
        sys.exit(EXIT_OK)  # no transform: whoever stopped us wants the process gone
    # Always, even when nothing changed: time-based alerts (stalled blockers, items due soon)
    # move on with the clock.
    from programview.pipeline import refresh

    refresh(config)
    sys.exit(EXIT_CODES[result.status])


@main_group.command("sync")
@click.option("--source", metavar="NAME", help="Sync only this configured source.")
@click.option(
    "--scope",
    metavar="SCOPE",
    help="With --source: only this configured scope (one task per scope for an "
    "orchestrator such as Kubernetes CronJobs or Airflow).",
)
@click.option("--full", is_flag=True, help="Ignore stored cursors and re-read everything.")
@log_format_option
@click.pass_context
@handle_errors
def sync_command(
    ctx: click.Context, source: str | None, scope: str | None, full: bool, log_format: str
) -> None:
    """Pull what changed since the last run from every source (or one, or one scope)."""
    if scope is not None and source is None:
        raise click.UsageError("--scope needs --source (a scope belongs to one source)")
    config = load(ctx)
    _json_logs(config, log_format)
    with graceful_stop() as stop:
        result = sync_engine.sync(
            config, source=source, scope=scope, full=full, progress=_progress(), stop=stop
        )
    _finish(config, result)


@main_group.command("backfill")
@click.option("--since", required=True, type=DATE, help="Window start, UTC (YYYY-MM-DD).")
@click.option("--until", type=DATE, help="Window end, UTC (default: now).")
@click.option("--source", metavar="NAME", help="Backfill only this configured source.")
@log_format_option
@click.pass_context
@handle_errors
def backfill_command(
    ctx: click.Context,
    since: datetime,
    until: datetime | None,
    source: str | None,
    log_format: str,
) -> None:
    """Re-read items updated in a time window, without moving the sync cursors."""
    if until is not None and until <= since:
        raise click.BadParameter("must be after --since", param_hint="--until")
    config = load(ctx)
    _json_logs(config, log_format)
    with graceful_stop() as stop:
        result = sync_engine.sync(
            config, source=source, since=since, until=until, progress=_progress(), stop=stop
        )
    _finish(config, result)


@main_group.command("connectors")
@handle_errors
def connectors_command() -> None:
    """List the installed connector kinds, where they come from and their version."""
    eps = connector_entry_points()
    if not eps:
        click.echo("no connectors installed", err=True)
        sys.exit(EXIT_USAGE)
    broken = False
    for kind in sorted(eps):
        ep = eps[kind]
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "unknown package"
        try:
            load_connector(kind)
            state = ""
        except Exception as exc:  # a broken plugin must not hide the others
            state = f"  (cannot load: {exc})"
            broken = True
        click.echo(f"{kind}\t{ep.value}\t{dist}{state}")
    sys.exit(EXIT_FAILED if broken else EXIT_OK)
