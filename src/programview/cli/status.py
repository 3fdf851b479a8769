"""``programview status``: is every stream fresh and healthy? For people, cron checks and
monitoring (exit 0 healthy, 4 stale or failed; see ``programview.status``)."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Any

import click

from programview.cli._common import EXIT_OK, EXIT_UNHEALTHY, handle_errors, load, main_group
from programview.config import parse_duration
from programview.status import collect_status, render_text
from programview.warehouse import db


class Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@main_group.command("status")
@click.option(
    "--max-age",
    type=Duration(),
    default=None,
    help="Data older than this is stale, e.g. 2h, 90m, 1d (default: [sync] max_age; "
    "unset: only failed and abandoned runs count).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for a person, json for scripts and monitoring.",
)
@click.pass_context
@handle_errors
def status_command(ctx: click.Context, max_age: timedelta | None, fmt: str) -> None:
    """Per source, scope and stream: last successful sync, last run status, records,
    requests, errors, quarantined payloads and data age.

    Runs whose process died without finishing show as `abandoned` (the next sync closes
    them). Exit codes: 0 fresh and healthy, 4 a stream is older than --max-age or its last
    run failed or was abandoned, 1 the warehouse cannot be read.
    """
    config = load(ctx, sources=False)
    db.require_existing(config.warehouse.url)
    engine = db.create_engine(config.warehouse.url)
    try:
        db.check_connection(engine)
        result = collect_status(engine, max_age=max_age or config.sync.max_age_delta)
    finally:
        engine.dispose()
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        click.echo(render_text(result), nl=False)
    sys.exit(EXIT_OK if result.healthy else EXIT_UNHEALTHY)
