"""Shared CLI plumbing: the root group, config loading, exit codes, error reporting."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from programview import errors
from programview.config import Config, WarehouseConfig, load_config, resolve_path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
#: ``status`` and ``/healthz``: a stream is stale, or its last run failed or was abandoned
EXIT_UNHEALTHY = 4

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
@click.version_option(package_name="programview", message="programview %(version)s")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="PROGRAMVIEW_CONFIG",
    help="Config file (default: $PROGRAMVIEW_CONFIG, else ./programview.toml).",
)
@click.option(
    "--warehouse",
    "warehouse_url",
    metavar="URL",
    help="Warehouse URL, overriding [warehouse] url and $PROGRAMVIEW_WAREHOUSE_URL. With it "
    "(or the variable), commands that need no sources run without a config file.",
)
@click.option("--debug", is_flag=True, help="Show the traceback of an error, not only its line.")
@click.pass_context
def main_group(
    ctx: click.Context, config_path: str | None, warehouse_url: str | None, debug: bool
) -> None:
    """programview: Jira, GitHub and GitLab in one SQL warehouse, and a program view on top."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    ctx.obj["warehouse_url"] = warehouse_url
    ctx.obj["debug"] = debug


def load(ctx: click.Context, *, sources: bool = True) -> Config:
    """The config for a command; ``sources=False`` for commands that never call a source API.

    Those (db, transform, report, export, status) run from the warehouse URL alone
    (``--warehouse`` or ``$PROGRAMVIEW_WAREHOUSE_URL``) when there is no config file, so a
    BI host or a one-off container needs no config. A file that exists (or was named with
    ``--config`` / ``$PROGRAMVIEW_CONFIG``) is still read, and must be valid.
    """
    obj = ctx.find_root().obj or {}
    path, override = obj.get("config_path"), obj.get("warehouse_url")
    url = override or os.environ.get("PROGRAMVIEW_WAREHOUSE_URL")
    if not sources and not path and url and not resolve_path(None).exists():
        config = Config(warehouse=WarehouseConfig(url=url))
    elif not sources and not resolve_path(path).exists():
        raise errors.ConfigError(
            f"config file not found: {resolve_path(path)} (pass --config FILE or set "
            "PROGRAMVIEW_CONFIG; this command also runs without one when "
            "PROGRAMVIEW_WAREHOUSE_URL or --warehouse URL names the warehouse)"
        )
    else:
        config = load_config(path, source_secrets=sources)
    if override:
        config.warehouse = WarehouseConfig(url=override)
    return config


def log_format_option(fn: F) -> F:
    """``--log-format text|json`` (env ``PROGRAMVIEW_LOG_FORMAT``) for commands that log."""
    return click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        envvar="PROGRAMVIEW_LOG_FORMAT",
        show_default=True,
        help="json: one JSON object per line (run, source, stream, records, requests, "
        "duration, status) for log shippers. Env: PROGRAMVIEW_LOG_FORMAT.",
    )(fn)


def _debug() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and (ctx.find_root().obj or {}).get("debug"))


def handle_errors(fn: F) -> F:
    """Turn programview exceptions into one clear message on stderr and the right exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import sqlalchemy as sa

        try:
            return fn(*args, **kwargs)
        except errors.ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except errors.ProgramviewError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_FAILED)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            if _debug():
                raise
            if isinstance(exc, sa.exc.SQLAlchemyError):
                orig = getattr(exc, "orig", None) or exc
                lines = str(orig).strip().splitlines() or [type(orig).__name__]
                text = f"the warehouse failed: {lines[0].strip()}"
            else:
                text = f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}"
            click.echo(f"error: {text} (--debug shows the traceback)", err=True)
            sys.exit(EXIT_FAILED)

    return wrapper  # type: ignore[return-value]
