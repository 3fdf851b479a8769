"""Runs an operator can trust (issue 10): ``status`` exit codes and abandoned runs, a
graceful stop on SIGTERM, and one clear line when PostgreSQL drops the connections.

Real processes against the API simulator on 127.0.0.1 (Jira, small organisation, with some
latency so a run is still going when the test interferes), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from programview.config import parse_config
from programview.simulator.generator import Credentials, generate
from programview.simulator.server import Simulator, serve
from programview.sync.engine import sync
from programview.warehouse import db

SOURCE = "sim-jira"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with serve(generate(seed=3, size="small")) as running:
        yield running


@pytest.fixture
def slow(sim: Simulator) -> Iterator[Simulator]:
    """Every response 250 ms late: a run lasts a few seconds."""
    sim.app.latency_ms = 250
    yield sim
    sim.app.latency_ms = 0


def write_config(tmp_path: Path, sim: Simulator, url: str, extra: str = "") -> Path:
    text = sim.org.config_toml(sim.base_url, url, kinds=["jira"])
    text = text.replace("concurrency = 4\n", "concurrency = 2\n" + extra, 1)
    path = tmp_path / "programview.toml"
    path.write_text(text)
    return path


def env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PROGRAMVIEW_")}
    return {**base, **Credentials().env()}


def cli(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "programview", "--config", str(config), *args],
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "programview", "--config", str(config), *args],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def scalar(url: str, sql: str) -> object:
    engine = db.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


def wait_for(url: str, sql: str, proc: subprocess.Popen[str], limit: float = 60) -> None:
    """Poll until ``sql`` returns something truthy (the run got that far)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the sync ended early: {proc.communicate()}"
        try:
            if scalar(url, sql):
                return
        except sa.exc.OperationalError:
            pass  # SQLite busy, PostgreSQL starting up
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"the sync never got to: {sql}")


def jira_items(sim: Simulator) -> int:
    return sum(len(sim.org.scope_items(sc)) for sc in sim.org.scopes_of("jira"))


def assert_complete(url: str, sim: Simulator) -> None:
    """Nothing lost, nothing doubled: every simulated issue once, each with its payload."""
    assert scalar(url, "SELECT COUNT(*) FROM work_items") == jira_items(sim)
    assert scalar(url, "SELECT COUNT(*) FROM raw_payloads WHERE stream = 'issues'") == jira_items(
        sim
    )


# --- status -------------------------------------------------------------------------------


def test_status_exit_codes_max_age_and_abandoned_runs(
    tmp_path: Path, sim: Simulator, warehouse_url: str
) -> None:
    config = write_config(tmp_path, sim, warehouse_url, 'max_age = "2h"\n')
    first = sync(parse_config(config.read_text(), environ=Credentials().env()))
    assert first.status == "ok"

    fresh = cli(config, "status")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert fresh.stdout.splitlines()[-1] == "healthy: 9 stream(s) (max age 2h)"
    assert f"{SOURCE}  PAY    issues" in fresh.stdout

    # three hours later (the data's clock moved back instead): stale for [sync] max_age
    engine = db.create_engine(warehouse_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE sync_run_streams SET started_at = :t, finished_at = :t"),
            {"t": first_finish(engine) - timedelta(hours=3)},
        )
    stale = cli(config, "status", "--format", "json")
    assert stale.returncode == 4, stale.stderr
    report = json.loads(stale.stdout)
    assert report["healthy"] is False and report["max_age_seconds"] == 7200
    assert len(report["problems"]) == 9
    assert report["problems"][0].startswith(f"{SOURCE} CHK issues: data is 3h")
    assert cli(config, "status", "--max-age", "4h").returncode == 0  # the option wins

    # a sync killed hard leaves its row "running": shown abandoned, exit 4
    sim.app.latency_ms = 250
    try:
        proc = start(config, "sync", "--full")
        wait_for(
            warehouse_url,
            "SELECT COUNT(*) FROM sync_run_streams WHERE status = 'ok' "
            "AND run_id = (SELECT MAX(id) FROM sync_runs WHERE status = 'running')",
            proc,
        )
        proc.kill()
        proc.wait()
    finally:
        sim.app.latency_ms = 0
    killed = scalar(warehouse_url, "SELECT MAX(id) FROM sync_runs")
    assert scalar(warehouse_url, f"SELECT status FROM sync_runs WHERE id = {killed}") == "running"
    deadline = time.monotonic() + 30  # PostgreSQL notices the dead session's socket
    while True:
        seen = cli(config, "status", "--format", "json")
        rows = json.loads(seen.stdout)["streams"]
        if any(r["last_status"] == "abandoned" for r in rows) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert seen.returncode == 4
    abandoned = [r for r in rows if r["last_run_id"] == killed]
    assert abandoned and all(r["last_status"] in ("abandoned", "ok") for r in abandoned)
    assert any(r["last_status"] == "abandoned" for r in abandoned)
    assert f"last run {killed} abandoned" in "\n".join(json.loads(seen.stdout)["problems"])

    # the next run closes it as such, and completes what the killed one did not
    again = cli(config, "sync")
    assert again.returncode == 0, again.stderr
    assert scalar(warehouse_url, f"SELECT status FROM sync_runs WHERE id = {killed}") == (
        "abandoned"
    )
    assert scalar(warehouse_url, f"SELECT finished_at FROM sync_runs WHERE id = {killed}")
    assert not scalar(
        warehouse_url,
        f"SELECT COUNT(*) FROM sync_run_streams WHERE run_id = {killed} AND status = 'running'",
    )
    assert cli(config, "status").returncode == 0
    assert_complete(warehouse_url, sim)
    engine.dispose()


def first_finish(engine: sa.Engine) -> datetime:
    runs = db.table("sync_runs")
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(runs.c.finished_at))).scalar()


# --- graceful stop -------------------------------------------------------------------------


def test_sigterm_mid_sync_records_a_stopped_run_and_the_rerun_completes(
    tmp_path: Path, slow: Simulator, warehouse_url: str
) -> None:
    config = write_config(tmp_path, slow, warehouse_url)
    proc = start(config, "sync")
    wait_for(warehouse_url, "SELECT COUNT(*) FROM raw_payloads WHERE stream = 'issues'", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)  # "within seconds": far less than the whole run
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "SIGTERM received: stopping" in err
    assert "stopped: the next sync carries on from the last committed page" in err
    assert ": stopped, " in out

    assert scalar(warehouse_url, "SELECT status FROM sync_runs") == "stopped"
    assert scalar(warehouse_url, "SELECT finished_at FROM sync_runs")
    assert not scalar(
        warehouse_url, "SELECT COUNT(*) FROM sync_run_streams WHERE status = 'running'"
    )
    # every page whole: each stored issue payload has its work item, and the other way round
    payloads = scalar(warehouse_url, "SELECT COUNT(*) FROM raw_payloads WHERE stream = 'issues'")
    assert payloads == scalar(warehouse_url, "SELECT COUNT(*) FROM work_items")
    assert 0 < int(payloads) < jira_items(slow)  # type: ignore[call-overload]

    slow.app.latency_ms = 0
    rerun = cli(config, "sync")
    assert rerun.returncode == 0, rerun.stderr
    assert_complete(warehouse_url, slow)


# --- the database drops the connections --------------------------------------------------------


@pytest.mark.postgres
def test_connections_terminated_mid_sync_give_one_line_each_and_a_clean_rerun(
    tmp_path: Path, slow: Simulator, pg_url: str
) -> None:
    db.upgrade(pg_url)
    config = write_config(tmp_path, slow, pg_url)
    admin = db.create_engine(pg_url)
    name = admin.url.database
    proc = start(config, "sync")
    wait_for(pg_url, "SELECT COUNT(*) FROM raw_payloads WHERE stream = 'issues'", proc)
    # what a failover or an admin does: every session of the database, again and again
    terminated = 0
    with admin.connect() as conn:
        while proc.poll() is None and terminated < 200:
            terminated += int(
                conn.execute(
                    sa.text(
                        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = :d AND pid <> pg_backend_pid()"
                    ),
                    {"d": name},
                ).scalar()
                or 0
            )
            conn.commit()
            time.sleep(0.05)
    out, err = proc.communicate(timeout=60)
    admin.dispose()
    assert terminated > 0
    assert "Traceback" not in err and "asyncio" not in err, err
    lines = [line for line in err.splitlines() if "several story-points fields" not in line]
    assert lines, "a failure must be reported"
    assert all(line.startswith(("error: ", "warning: ")) for line in lines), err
    assert len(lines) <= 9 + 1, err  # at most one per stream, plus the run's own
    assert proc.returncode in (1, 3), (out, err)

    slow.app.latency_ms = 0
    rerun = cli(config, "sync")
    assert rerun.returncode == 0, rerun.stderr
    assert_complete(pg_url, slow)


def test_sigterm_stops_daemon_once_mid_sync(
    tmp_path: Path, slow: Simulator, sqlite_url: str
) -> None:
    db.upgrade(sqlite_url)
    config = write_config(tmp_path, slow, sqlite_url)
    proc = start(config, "daemon", "--once")
    wait_for(sqlite_url, "SELECT COUNT(*) FROM raw_payloads WHERE stream = 'issues'", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "SIGTERM received: stopping after the page being written" in err
    assert " INFO programview.daemon: run 1 stopped in " in err
    assert scalar(sqlite_url, "SELECT status FROM sync_runs") == "stopped"


@pytest.mark.postgres
def test_status_works_with_the_read_only_role(tmp_path: Path, sim: Simulator, pg_url: str) -> None:
    import uuid

    from sqlalchemy.engine.url import make_url

    from programview.warehouse.readonly import grant_readonly

    db.upgrade(pg_url)
    config = write_config(tmp_path, sim, pg_url)
    assert sync(parse_config(config.read_text(), environ=Credentials().env())).status == "ok"
    role = f"pv_ro_{uuid.uuid4().hex[:8]}"
    owner = db.create_engine(pg_url)
    try:
        grant_readonly(owner, role)
        reader = make_url(pg_url).set(username=role).render_as_string(hide_password=False)
        result = subprocess.run(
            [sys.executable, "-m", "programview", "--warehouse", reader, "status"],
            env=env(),
            cwd=(tmp_path / "bi").mkdir() or tmp_path / "bi",  # a BI host: no config file
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == "healthy: 9 stream(s)"
    finally:
        with owner.begin() as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        owner.dispose()
