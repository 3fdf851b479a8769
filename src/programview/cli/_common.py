"""Shared CLI plumbing: the root group, config loading, exit codes, error reporting."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from programview import errors

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="PROGRAMVIEW_CONFIG",
    help="Config file (default: $PROGRAMVIEW_CONFIG, else ./programview.toml).",
)
@click.pass_context
def main_group(ctx: click.Context, config_path: str | None) -> None:
    """programview: Jira, GitHub and GitLab in one SQL warehouse, and a program view on top."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


def handle_errors(fn: F) -> F:
    """Turn programview exceptions into one clear message on stderr and the right exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except errors.ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except errors.ProgramviewError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_FAILED)

    return wrapper  # type: ignore[return-value]
