"""``programview simulate``: serve a generated organisation as Jira, GitHub and GitLab.

For trying programview without accounts or network: it prints the base URLs, the
simulator tokens as ``export`` lines and a ready config file, then serves until Ctrl-C.
"""

from __future__ import annotations

import signal
import time
from types import FrameType

import click

from programview.cli._common import EXIT_USAGE, main_group


@main_group.command("simulate")
@click.option("--seed", type=int, default=1, show_default=True, help="Organisation seed.")
@click.option(
    "--size",
    type=click.Choice(["small", "medium", "large"]),
    default="small",
    show_default=True,
    help="~2k, ~20k or 200k+ work items.",
)
@click.option(
    "--port",
    type=int,
    default=8321,
    show_default=True,
    help="Port on 127.0.0.1 (0 = any free port).",
)
@click.option(
    "--latency-ms",
    type=float,
    default=0.0,
    show_default=True,
    help="Delay added to every response.",
)
@click.option(
    "--faults",
    "faults_spec",
    default=None,
    metavar="SPEC",
    help="Fault rules, e.g. 'github:ratelimit:at=3;jira:5xx:count=2' "
    "(grammar: programview.simulator.faults).",
)
@click.option(
    "--retry-after",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds in Retry-After / rate-limit resets of injected faults.",
)
@click.option(
    "--db-url",
    default="sqlite:///programview.db",
    show_default=True,
    help="Warehouse URL written into the printed config.",
)
@click.option(
    "--jira-deployment",
    type=click.Choice(["cloud", "datacenter"]),
    default="cloud",
    show_default=True,
    help="Which Jira API the printed config uses.",
)
def simulate(
    seed: int,
    size: str,
    port: int,
    latency_ms: float,
    faults_spec: str | None,
    retry_after: float,
    db_url: str,
    jira_deployment: str,
) -> None:
    """Serve a generated organisation as Jira, GitHub and GitLab APIs on 127.0.0.1."""
    from programview.simulator import generate, serve
    from programview.simulator.faults import FaultPlan, FaultSpecError

    try:
        plan = FaultPlan.parse(faults_spec, retry_after)
    except FaultSpecError as exc:
        click.echo(f"error: --faults: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from exc
    from programview.clock import start_of_utc_day

    started = time.perf_counter()
    # Current as of today (midnight UTC: the same organisation all day long).
    org = generate(seed=seed, size=size, now=start_of_utc_day())
    click.echo(
        f"# generated {len(org.items)} work items in {len(org.projects)} projects, "
        f"{len(org.programs)} programs ({time.perf_counter() - started:.1f} s)",
        err=True,
    )
    with serve(
        org, port=port, latency_ms=latency_ms, faults=plan, retry_after_s=retry_after
    ) as sim:
        click.echo(
            f"# programview API simulator (seed {seed}, size {size}, data as of "
            f"{org.now:%Y-%m-%d %H:%M} UTC)"
        )
        click.echo(f"#   Jira Cloud:       {sim.jira_url}")
        click.echo(f"#   Jira Data Center: {sim.jira_dc_url}")
        click.echo(f"#   GitHub:           {sim.github_url}  (GraphQL: {sim.github_url}/graphql)")
        click.echo(f"#   GitLab:           {sim.gitlab_url}")
        if plan.rules:
            click.echo(f"#   faults:           {';'.join(r.spec() for r in plan.rules)}")
        click.echo("\n# credentials")
        for name, value in org.tokens.env().items():
            click.echo(f"export {name}={value}")
        from programview.sync.registry import connector_entry_points

        installed = [k for k in ("jira", "github", "gitlab") if k in connector_entry_points()]
        click.echo("\n# ---- programview.toml ----")
        click.echo(f"# sources for the installed connectors: {', '.join(installed) or 'none'}")
        click.echo(sim.config_toml(db_url, jira_deployment, kinds=installed))
        click.echo("# serving; Ctrl-C to stop", err=True)
        signal.signal(signal.SIGTERM, _interrupt)  # docker stop / kill: same clean exit
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            click.echo(
                f"# stopped after {len(sim.requests)} requests: {sim.requests.by_api()}", err=True
            )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
