"""``programview config check`` and ``config init``: validate the config file and show what
it configures; write a starter config.

Why a separate check: a typo in a scope or a missing environment variable should show up when
the file is edited, not at 3 a.m. in the daemon's log. Exit 0 with a short summary, or exit 2
with every problem (key path, line, what is wrong). Secrets are never printed.
"""

from __future__ import annotations

import click

from programview.cli._common import handle_errors, load, main_group
from programview.config import Config, resolve_path, write_example_config


@main_group.group("config")
def config_group() -> None:
    """Write and check the configuration file."""


@config_group.command("init")
@click.option("--force", is_flag=True, help="Replace an existing file.")
@click.pass_context
@handle_errors
def init(ctx: click.Context, force: bool) -> None:
    """Write a starter config (every key, commented) to --config, else ./programview.toml.

    It is the shipped config.example.toml: it passes `config check` once the two Jira
    variables it references are exported. Exit 2 if the file exists (use --force).
    """
    target = write_example_config(resolve_path(ctx.obj.get("config_path")), force=force)
    click.echo(f"wrote {target}")
    click.echo("next: edit its sources, scopes, programs and projects, then")
    click.echo("  export JIRA_EMAIL=you@example.com JIRA_API_TOKEN=...")
    click.echo(f"  programview --config {target} config check")


@config_group.command("check")
@click.pass_context
@handle_errors
def check(ctx: click.Context) -> None:
    """Validate the config file: exit 0 with a summary, or 2 listing every problem."""
    config = load(ctx)
    for line in summary(config):
        click.echo(line)


def summary(config: Config) -> list[str]:
    """A few lines a person can compare with what they meant to configure (no secrets)."""
    lines = [
        f"{config.path}: ok",
        f"warehouse: {config.warehouse.safe_url}",
        f"sync: schedule {config.sync.schedule!r} (UTC), lookback {config.sync.lookback_minutes}"
        f" min, concurrency {config.sync.concurrency}",
        f"sources ({len(config.sources)}):",
    ]
    for src in config.sources:
        lines.append(
            f"  {src.name}: {src.kind} at {src.base_url}, {_count(src.scopes, 'scope')}"
            f" ({', '.join(src.scopes) or 'none'})"
        )
    lines.append(f"programs ({len(config.programs)}):")
    for program in config.programs:
        lines.append(f"  {program.key}: {program.name}")
    lines.append(f"projects ({len(config.projects)}):")
    for project in config.projects:
        where = f", program {project.program}" if project.program else ""
        lines.append(f"  {project.key}: {project.name}{where}, {_count(project.scopes, 'scope')}")
    webhook = "set" if config.alerts.webhook_url is not None else "not set (no notifications)"
    lines.append(f"alerts: webhook {webhook}")
    return lines


def _count(items: list[str], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"
