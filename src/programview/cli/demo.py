"""``programview demo``: the offline demo (simulator → sync → transform → report)."""

from __future__ import annotations

import shutil
import sys

import click

from programview.cli._common import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, handle_errors, main_group
from programview.progress import TerminalProgress


@main_group.command("demo")
@click.option(
    "--dir",
    "directory",
    default="programview-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the demo's SQLite warehouse, config and HTML report.",
)
@click.option(
    "--size",
    type=click.Choice(["small", "medium", "large"]),
    default="small",
    show_default=True,
    help="Size of the simulated organisation.",
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--weeks",
    type=click.IntRange(0, 26),
    default=4,
    show_default=True,
    help="Simulated weeks of history: one sync a week up to today.",
)
@handle_errors
def demo_command(directory: str, size: str, seed: int, weeks: int) -> None:
    """Run programview end to end against the built-in API simulator, offline."""
    from programview.demo import closing_notes, run_demo

    width = min(shutil.get_terminal_size((100, 24)).columns, 120)
    progress = TerminalProgress() if sys.stderr.isatty() else None
    result = run_demo(
        directory,
        size=size,
        seed=seed,
        weeks=weeks,
        progress=progress,
        echo=click.echo,
        width=width,
    )
    click.echo("")
    click.echo(result.report_text)
    click.echo(closing_notes(result))
    codes = {"ok": EXIT_OK, "partial": EXIT_PARTIAL}
    sys.exit(codes.get(result.status, EXIT_FAILED))
