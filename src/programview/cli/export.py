"""``programview export``: a thin layer over ``programview.export``."""

from __future__ import annotations

import sys

import click

from programview.cli._common import EXIT_USAGE, handle_errors, load, main_group
from programview.export import FORMATS, UnknownProgramError, UnknownViewError, export_views
from programview.warehouse import db


@main_group.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="xlsx",
    show_default=True,
    help="xlsx: one workbook, a sheet per view; csv / parquet: a file per view.",
)
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Path(),
    help="xlsx: the workbook (default programview-export.xlsx); csv / parquet: the folder "
    "(default programview-export/), or the file when one --view is chosen.",
)
@click.option(
    "--view",
    "views",
    multiple=True,
    metavar="v_NAME",
    help="Only this view (repeat for several). Default: every v_* view.",
)
@click.option("--program", "program", metavar="KEY", help="Only this program's rows.")
@click.pass_context
@handle_errors
def export(
    ctx: click.Context, fmt: str, output: str | None, views: tuple[str, ...], program: str | None
) -> None:
    """Write the v_* views as a spreadsheet (typed dates and numbers), CSV or Parquet.

    Reads only the warehouse (its URL from the config), so it works with the read-only
    role of `db grant-readonly`. Exit codes: 0 ok, 1 the warehouse cannot be read, 2 unknown
    view or program.
    """
    config = load(ctx, sources=False)
    db.require_existing(config.warehouse.url)
    engine = db.create_engine(config.warehouse.url)
    try:
        db.check_connection(engine)
        result = export_views(engine, fmt, output, views=views, program=program)
    except (UnknownViewError, UnknownProgramError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    finally:
        engine.dispose()
    total = sum(result.rows.values())
    where = ", ".join(str(p) for p in result.paths[:3]) + (
        f" and {len(result.paths) - 3} more" if len(result.paths) > 3 else ""
    )
    click.echo(f"wrote {len(result.rows)} view(s), {total} rows, as {fmt}: {where}")
