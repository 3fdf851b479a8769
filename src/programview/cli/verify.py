"""``programview verify sprints``: our sprint figures checked against the source's own
sprint report (Jira's Sprint Report), every difference explained or flagged.

Thin: load the config (with the source credentials: it calls the source's API), call
:func:`programview.verify.verify_sprints`, print :func:`programview.verify.render_verify`.
Exit 0 when every difference is explained, 3 when one is not; 1 when the source or the
warehouse cannot be read, 2 for a bad config, an unknown source or project.
"""

from __future__ import annotations

import shutil
import sys

import click

from programview.cli._common import EXIT_USAGE, handle_errors, load, main_group


@main_group.group("verify")
def verify_group() -> None:
    """Check programview's numbers against the source tools' own reports."""


@verify_group.command("sprints")
@click.option(
    "--source", "source", metavar="NAME", help="Only this source (default: all that can)."
)
@click.option("--project", "project", metavar="KEY", help="Only the sprints of this project.")
@click.pass_context
@handle_errors
def verify_sprints_command(ctx: click.Context, source: str | None, project: str | None) -> None:
    """Compare every closed sprint's committed / added / removed / completed points with the
    source's sprint report (Jira: the Sprint Report page), explaining each difference by
    item. Exit 0 when every difference is explained, 3 otherwise."""
    from programview.verify import VerifyError, render_verify, verify_sprints

    config = load(ctx)
    try:
        result = verify_sprints(config, source=source, project=project)
    except VerifyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    width = min(shutil.get_terminal_size((100, 24)).columns, 140)
    click.echo(render_verify(result, width=width), nl=False)
    sys.exit(result.exit_code)
