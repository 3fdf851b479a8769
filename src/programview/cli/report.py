"""``programview report`` and ``programview db grant-readonly``: thin layers over
``programview.report`` and ``programview.warehouse.readonly``."""

from __future__ import annotations

import os
import sys

import click

from programview.cli._common import EXIT_FAILED, EXIT_USAGE, handle_errors, load, main_group
from programview.cli.db import db_group
from programview.report import FORMATS, NoMetricsError, UnknownProgramError, write_report
from programview.warehouse import db
from programview.warehouse.readonly import ReadonlyUnsupported, grant_readonly


@main_group.command("report")
@click.option("--program", "program", metavar="KEY", help="Only this program and its projects.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text for a terminal, json for scripts, html for a self-contained page with charts.",
)
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to FILE instead of standard output.",
)
@click.pass_context
@handle_errors
def report(ctx: click.Context, program: str | None, fmt: str, output: str | None) -> None:
    """Program health, project metrics and open dependency alerts from the latest metrics.

    Reads only the v_* views, so it works with the read-only role of `db grant-readonly`.
    Exit codes: 0 ok, 1 no metrics yet or the warehouse cannot be read, 2 unknown program.
    """
    config = load(ctx, sources=False)
    db.require_existing(config.warehouse.url)
    engine = db.create_engine(config.warehouse.url)
    try:
        db.check_connection(engine)
        rendered = write_report(engine, fmt, output, program=program)
    except UnknownProgramError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except NoMetricsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    finally:
        engine.dispose()
    if output:
        click.echo(f"wrote {fmt} report to {output}", err=True)
    else:
        click.echo(rendered, nl=False)


@db_group.command("grant-readonly")
@click.argument("role")
@click.option(
    "--password-env",
    "password_env",
    metavar="VAR",
    help="Environment variable holding the role's login password (never pass it as an "
    "argument: it would land in shell history and the process list).",
)
@click.pass_context
@handle_errors
def grant_readonly_cmd(ctx: click.Context, role: str, password_env: str | None) -> None:
    """Create or update a PostgreSQL ROLE that can read the v_* views and nothing else.

    For BI tools. Idempotent: run it again after `db upgrade` to cover new views.
    SQLite has no roles: open the file read-only instead (exit 2).
    """
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            click.echo(f"error: environment variable {password_env} is not set or empty", err=True)
            sys.exit(EXIT_USAGE)
    config = load(ctx, sources=False)
    engine = db.create_engine(config.warehouse.url)
    try:
        result = grant_readonly(engine, role, password=password)
    except ReadonlyUnsupported as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    finally:
        engine.dispose()
    verb = "created" if result.created else "updated"
    click.echo(
        f"role {result.role} {verb}: SELECT on {len(result.views)} view(s) in schema "
        f"{result.schema}, no access to tables" + ("; password set" if result.password_set else "")
    )
    for view in result.views:
        click.echo(f"  {view}")
    if result.revoked_tables:
        click.echo(f"revoked earlier grants on: {', '.join(result.revoked_tables)}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.created and not result.password_set:
        click.echo(
            "note: the role has no password; set one with --password-env VAR, or let "
            "pg_hba.conf decide how it logs in",
            err=True,
        )
