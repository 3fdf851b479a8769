"""``programview benefits import``: measurements of the benefits register, from a CSV file.

Thin: load the config (the register is ``[[benefits]]``), open the warehouse, call
:func:`programview.transform.benefits.import_measurements`, print one line. A bad file exits 2
with every bad line named; nothing is imported then.
"""

from __future__ import annotations

import sys

import click

from programview.cli._common import EXIT_USAGE, handle_errors, load, main_group


@main_group.group("benefits")
def benefits_group() -> None:
    """The benefits register: what each program promised to improve ([[benefits]])."""


@benefits_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_context
@handle_errors
def benefits_import_command(ctx: click.Context, file: str) -> None:
    """Import benefit measurements from a CSV with the columns benefit,date,value.

    `benefit` is a [[benefits]] key of the config. Importing again replaces the values of the
    days in the file. Nothing is imported unless every row is good. Run `programview
    transform` afterwards to update v_benefits and v_program_benefits.
    """
    from programview.transform.benefits import BenefitsImportError, import_measurements
    from programview.warehouse import db

    config = load(ctx, sources=False)
    engine = db.create_engine(config.warehouse.url)
    try:
        db.ensure_current(engine)
        result = import_measurements(engine, file, [b.key for b in config.benefits])
    except BenefitsImportError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    finally:
        engine.dispose()
    span = f" from {result.first} to {result.last}" if result.first else ""
    click.echo(
        f"imported {result.rows} measurements of {', '.join(result.benefits) or 'no benefit'}{span}"
    )
