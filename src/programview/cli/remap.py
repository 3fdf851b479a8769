"""``programview remap``: re-apply the current mapping to the stored raw payloads, offline,
then recompute the program view (see :mod:`programview.sync.remap`)."""

from __future__ import annotations

import sys
from typing import TextIO

import click

from programview.cli._common import EXIT_OK, EXIT_PARTIAL, handle_errors, main_group
from programview.config import load_config
from programview.sync import remap as remapping


def progress_printer(out: TextIO) -> remapping.ProgressFn:
    """Progress of a remap told on ``out``. On a terminal the stream's count is rewritten in
    place after every batch (a large site has hundreds of batches, as ``sync`` rewrites its
    page line); elsewhere (a log file, cron mail) only each stream's final count, one line."""
    live = bool(getattr(out, "isatty", lambda: False)())

    def progress(src: str, stream: str, done: int, total: int) -> None:
        text = f"remap {src} {stream}: {done:,}/{total:,}"
        if live:
            out.write("\r\x1b[K" + text + ("\n" if done >= total else ""))
        elif done >= total:
            out.write(text + "\n")
        else:
            return
        out.flush()

    return progress


@main_group.command("remap")
@click.option("--source", metavar="NAME", help="Remap only this configured source.")
@click.pass_context
@handle_errors
def remap_command(ctx: click.Context, source: str | None) -> None:
    """Map the stored raw payloads again with the current options (no API call), then run
    the transform."""
    config = load_config(ctx.obj["config_path"])
    progress = progress_printer(sys.stderr)
    result = remapping.remap(config, source=source, on_progress=progress)
    click.echo(
        f"remapped {result.records:,} stored records, {result.quarantined:,} quarantined; "
        "running the transform"
    )
    if result.quarantined:
        click.echo(
            f"warning: {result.quarantined} stored record(s) the current mapping rejects are in "
            "the quarantine table (their previous rows are kept)",
            err=True,
        )
    from programview.pipeline import refresh

    refresh(config, full=True)  # remapped history: closed sprints and releases too
    sys.exit(EXIT_PARTIAL if result.quarantined else EXIT_OK)
