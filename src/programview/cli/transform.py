"""``programview transform`` and ``programview costs import``.

Thin: load the config, open the warehouse (it must be migrated), call the library
(:func:`programview.transform.run_transform`, :func:`programview.transform.costs.import_costs`)
and print one summary line. Bad input exits 2 with a message naming the problem.
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from typing import Any

import click

from programview.cli._common import EXIT_USAGE, handle_errors, load, main_group


class AsOf(click.ParamType):
    """``YYYY-MM-DD`` (the end of that day, UTC) or an ISO date-time (UTC unless it says)."""

    name = "DATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, date):
            return value
        text = str(value).strip()
        try:
            if len(text) == 10:
                return date.fromisoformat(text)
            return datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{value!r} is not a date (2024-03-31) or date-time (2024-03-31T18:00)",
                param,
                ctx,
            )


@main_group.command("transform")
@click.option(
    "--as-of",
    "as_of",
    type=AsOf(),
    default=None,
    help="Compute metrics as of this date (end of day, UTC) or date-time; default: now.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Also recompute sprints and releases closed long ago (after a backfill or remap).",
)
@click.pass_context
@handle_errors
def transform_command(ctx: click.Context, as_of: date | datetime | None, full: bool) -> None:
    """Recompute sprint, release and project metrics, health scores and dependency alerts."""
    from programview.sync.engine import mirror_config
    from programview.transform import run_transform
    from programview.warehouse import db

    config = load(ctx, sources=False)
    db.require_existing(config.warehouse.url)
    engine = db.create_engine(config.warehouse.url)
    try:
        db.ensure_current(engine)
        mirror_config(engine, config)  # budgets and projects as the config says now
        result = run_transform(engine, config, as_of=as_of, full=full)
    finally:
        engine.dispose()
    click.echo(
        f"transform as of {result.as_of:%Y-%m-%d %H:%M} UTC: {result.projects} projects, "
        f"{result.programs} programs ({result.sprints} sprints and {result.releases} "
        f"releases recomputed); {result.alerts_open} open alerts ({result.alerts_opened} "
        f"opened, {result.alerts_resolved} resolved) in {result.seconds:.2f}s"
    )


@main_group.group("costs")
def costs_group() -> None:
    """Real project costs for budget tracking (earned value)."""


@costs_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_context
@handle_errors
def costs_import_command(ctx: click.Context, file: str) -> None:
    """Import actual costs from a CSV with the columns project,date,amount.

    Rows for the same project and day are added up; importing again replaces the amounts of
    the days in the file. Nothing is imported unless every row is good. Run
    ``programview transform`` afterwards to update the budget figures.
    """
    from programview.transform.costs import CostsImportError, import_costs
    from programview.warehouse import db

    config = load(ctx, sources=False)
    engine = db.create_engine(config.warehouse.url)
    try:
        db.ensure_current(engine)
        result = import_costs(engine, file, [p.key for p in config.projects])
    except CostsImportError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    finally:
        engine.dispose()
    click.echo(
        f"imported {result.rows} rows: {result.days} project-days for "
        f"{', '.join(result.projects) or 'no project'}, total {result.total:,.2f}"
    )
