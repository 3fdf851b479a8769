"""``programview daemon``: sync + transform on the configured schedule (see programview.daemon)."""

from __future__ import annotations

import click

from programview.cli._common import handle_errors, load, log_format_option, main_group
from programview.daemon import run_daemon
from programview.logging_setup import config_secrets, setup_logging

LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


@main_group.command("daemon")
@click.option(
    "--once", is_flag=True, help="Run one sync + transform now and exit (for cron and tests)."
)
@click.option(
    "--upgrade",
    is_flag=True,
    help="Apply database migrations first (handy for a single container; with several "
    "daemons on one PostgreSQL, run `programview db upgrade` once instead).",
)
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default="INFO",
    envvar="PROGRAMVIEW_LOG_LEVEL",
    show_default=True,
    help="INFO logs one line per run; DEBUG adds detail. Env: PROGRAMVIEW_LOG_LEVEL.",
)
@click.option(
    "--serve",
    metavar="HOST:PORT",
    envvar="PROGRAMVIEW_SERVE",
    help="Serve /healthz (200 or 503 with a JSON reason) and /metrics (Prometheus) there, "
    "e.g. 0.0.0.0:9108. Env: PROGRAMVIEW_SERVE.",
)
@click.option(
    "--every",
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="Run at start, then every SECONDS (counted from the epoch, so several daemons "
    "tick together) instead of on [sync] schedule.",
)
@log_format_option
@click.pass_context
@handle_errors
def daemon(
    ctx: click.Context,
    once: bool,
    upgrade: bool,
    log_level: str,
    serve: str | None,
    every: float | None,
    log_format: str,
) -> None:
    """Sync every source and recompute metrics on [sync] schedule (cron, UTC).

    Logs one line per run to stderr. SIGTERM or Ctrl-C stops a running sync after the page
    being written (recorded `stopped`) and exits 0.
    Exit codes with --once: 0 ok, 3 partial, 1 failed; 2 for a bad config.
    """
    config = load(ctx)
    setup_logging(log_level, secrets=config_secrets(config), fmt=log_format)
    ctx.exit(run_daemon(config, once=once, upgrade=upgrade, serve=serve, every=every))
