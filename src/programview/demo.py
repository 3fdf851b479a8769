"""``programview demo``: the whole product, offline, in one command.

Starts the API simulator on 127.0.0.1, writes a config for it, syncs every installed
connector the simulator serves into a fresh SQLite file (the embedded default), runs the
transform, prints the report and says where the database and the HTML report are.

It goes through exactly the same functions as a real deployment (config parsing, migrations,
the sync engine over real HTTP, the transform, the report); only the base URLs differ.

Reproducible: the organisation is generated as of midnight UTC of the run's date (not the
time of day), and every sync and transform runs with ``programview.clock`` frozen at the
simulated moment, so the same seed on the same UTC date gives the same figures and alerts.
Which sources it syncs is simply every installed connector of a kind the simulator serves
(``SIMULATED_KINDS``): a new connector joins the demo by being installed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from programview import clock
from programview.config import parse_config
from programview.progress import Progress
from programview.sync import engine as sync_engine
from programview.sync.registry import connector_entry_points
from programview.warehouse import db

#: Where the demo writes ``programview verify sprints``'s full output.
VERIFY_FILE = "verify-sprints.txt"
#: The source kinds the simulator serves.
SIMULATED_KINDS = ("jira", "github", "gitlab")


@dataclass
class DemoResult:
    directory: Path
    database: Path
    config: Path
    html_report: Path
    status: str  # the sync run's status: ok | partial | failed
    kinds: list[str]
    items: int
    requests: int
    seconds: float
    report_text: str
    #: ``programview verify sprints`` against the simulated Jira (None without Jira).
    verify_text: str | None = None


def run_demo(
    directory: str | Path = "programview-demo",
    *,
    size: str = "small",
    seed: int = 1,
    weeks: int = 4,
    progress: Progress | None = None,
    echo: Callable[[str], None] = print,
    width: int = 100,
    now: datetime | None = None,
) -> DemoResult:
    """Run the demo into ``directory`` (created; its database is replaced).

    The organisation starts ``weeks`` weeks before midnight UTC of ``now``'s date (default:
    the wall clock) and is synced once a simulated week until that midnight, as a daemon
    would have: so the trend charts have history, and releases that shipped late show as
    late (a Jira version's plan is only known if it was seen before it shipped). Only the
    UTC date of ``now`` matters, never its time of day.
    """
    from programview.report import build_report, render_html, render_text
    from programview.simulator.generator import generate
    from programview.simulator.server import serve
    from programview.transform import run_transform
    from programview.transform.benefits import import_measurements

    started = time.monotonic()
    folder = Path(directory).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "programview-demo.db"
    for stale in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        stale.unlink(missing_ok=True)
    url = f"sqlite:///{database}"

    installed = set(connector_entry_points())
    kinds = [k for k in SIMULATED_KINDS if k in installed]
    if not kinds:
        raise RuntimeError(
            "no connector for Jira, GitHub or GitLab is installed: reinstall programview"
        )

    echo(f"Generating a simulated organisation (size {size}, seed {seed})…")
    today = clock.start_of_utc_day(now)
    org = generate(seed, size, now=today - timedelta(weeks=weeks))
    with serve(org, port=0) as sim:
        echo(f"Simulator serving Jira, GitHub and GitLab APIs at {sim.base_url}")
        text = org.config_toml(sim.base_url, url, kinds=kinds)
        config_path = folder / "programview.toml"
        config_path.write_text(text, encoding="utf-8")
        env = org.tokens.env()
        config = parse_config(text, path=str(config_path), environ={**env})

        echo(f"Creating the warehouse {database} (alembic upgrade head)…")
        db.upgrade(url)
        engine = db.create_engine(url)
        requests = 0
        measurements = folder / "benefit-measurements.csv"
        for week in range(weeks + 1):
            if week:
                org.advance(7)
            when = org.now.strftime("%Y-%m-%d")
            echo(f"Syncing {', '.join(kinds)} as of {when}, then computing the program view…")
            with clock.frozen(org.now):
                result = sync_engine.sync(config, progress=progress)
                requests += result.requests
                # the benefits register's measurements, as a PMO would import them each week
                measurements.write_text(org.measurements_csv(), encoding="utf-8")
                import_measurements(engine, measurements, [b.key for b in config.benefits])
                run_transform(engine, config, as_of=org.now)
        if "jira" in kinds:
            with clock.frozen(org.now):
                verify_text = _verify(config, engine, echo)
            (folder / VERIFY_FILE).write_text(verify_text, encoding="utf-8")
        else:
            verify_text = None

    try:
        report = build_report(engine)
        report_text = render_text(report, width=width)
        html_path = folder / "programview-report.html"
        html_path.write_text(render_html(report), encoding="utf-8")
        with engine.connect() as conn:
            from sqlalchemy import text as sql

            items = conn.execute(sql("SELECT count(*) FROM v_work_items")).scalar_one()
    finally:
        engine.dispose()
    return DemoResult(
        directory=folder,
        database=database,
        config=config_path,
        html_report=html_path,
        status=result.status,
        kinds=kinds,
        items=int(items),
        requests=requests,
        seconds=time.monotonic() - started,
        report_text=report_text,
        verify_text=verify_text,
    )


def _verify(config: Any, engine: Any, echo: Callable[[str], None]) -> str:
    """Jira's own Sprint Reports beside ours (``programview verify sprints``)."""
    from programview.verify import render_verify, verify_sprints

    echo("Checking the sprint figures against Jira's own Sprint Reports…")
    return render_verify(verify_sprints(config, engine=engine))


def _verify_notes(result: DemoResult) -> list[str]:
    if not result.verify_text:
        return []
    path = result.directory / VERIFY_FILE
    return [
        "Sprint figures checked against Jira's own Sprint Reports (programview verify sprints):",
        f"  {result.verify_text.splitlines()[0]}",
        f"  every sprint and each difference explained: {path}",
        "",
    ]


def closing_notes(result: DemoResult) -> str:
    """What to do next: where the files are and how to query them."""
    db_path = result.database
    return "\n".join(
        [
            f"Synced {result.items} work items from {', '.join(result.kinds)} with "
            f"{result.requests} API requests in {result.seconds:.0f} s, one sync a simulated "
            f"week (last run {result.status}).",
            "",
            f"  warehouse (SQLite): {db_path}",
            f"  HTML report:        {result.html_report}",
            f"  config used:        {result.config}",
            "",
            "Query it:",
            f"  sqlite3 {db_path} 'SELECT program_key, as_of_date, health_score, "
            "health_status FROM v_program_health'",
            f"  sqlite3 {db_path} 'SELECT * FROM v_dependency_alerts WHERE status = ''open'''",
            f"  sqlite3 {db_path} 'SELECT person, project_key, in_progress_items FROM "
            "v_resource_load ORDER BY program_in_progress_items DESC LIMIT 10'",
            f"  sqlite3 {db_path} 'SELECT program_key, as_of_date, realised_value, "
            "actual_cost, roi FROM v_program_benefits'",
            "  Every v_* view is described in docs/warehouse.md (Tableau, Power BI, ODBC).",
            "",
            *_verify_notes(result),
            "Again, on your own systems: `programview config init` writes a programview.toml",
            "to edit, then",
            "  programview db upgrade && programview sync && programview report",
            "  programview export --format xlsx   # every v_* view as a spreadsheet",
        ]
    )
