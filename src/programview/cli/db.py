"""``programview db upgrade`` and ``programview db current``: the warehouse schema.

Every write command refuses an outdated schema (``db.ensure_current``) and points here, so
upgrading is always an explicit step the operator sees.
"""

from __future__ import annotations

import click

from programview.cli._common import handle_errors, load, main_group
from programview.errors import WarehouseError
from programview.warehouse import db


def _current(url: str) -> str | None:
    engine = db.create_engine(url)
    try:
        db.check_connection(engine)
        return db.current_revision(engine)
    finally:
        engine.dispose()


@main_group.group("db")
def db_group() -> None:
    """Warehouse schema migrations."""


@db_group.command("upgrade")
@click.pass_context
@handle_errors
def upgrade_command(ctx: click.Context) -> None:
    """Apply every pending migration to the configured warehouse."""
    config = load(ctx, sources=False)
    url = config.warehouse.url
    before = db.upgrade(url)  # read under the migration lock: replicas may race us
    after = _current(url)
    where = config.warehouse.safe_url
    if before == after:
        click.echo(f"{where}: already at revision {after} (head)")
    else:
        click.echo(f"{where}: upgraded from {before or 'an empty database'} to revision {after}")


@db_group.command("current")
@click.pass_context
@handle_errors
def current_command(ctx: click.Context) -> None:
    """Show the warehouse's schema revision and whether it is up to date."""
    config = load(ctx, sources=False)
    where = config.warehouse.safe_url
    try:
        db.require_existing(config.warehouse.url)
    except WarehouseError:  # say so without creating the file by opening it
        click.echo(f"{where}: empty (the file does not exist yet); run `programview db upgrade`")
        return
    current = _current(config.warehouse.url)
    head = db.head_revision()
    if current == head:
        click.echo(f"{where}: revision {current} (head)")
    elif current is None:
        click.echo(f"{where}: empty (no tables yet); run `programview db upgrade`")
    else:
        click.echo(f"{where}: revision {current}, head is {head}; run `programview db upgrade`")
