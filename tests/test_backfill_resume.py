"""Backfills an operator can interrupt (issue 10, item 6): progress with an ETA on a
terminal, a stopped backfill resumes its window from its own cursor, and the incremental
cursors are never moved (backwards or at all) by a backfill. Real processes and the API
simulator on 127.0.0.1."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from programview.config import parse_config
from programview.progress import TerminalProgress
from programview.simulator.generator import Credentials, generate
from programview.simulator.server import Simulator, serve
from programview.sync.engine import sync
from programview.warehouse import db


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with serve(generate(seed=3, size="small")) as running:
        yield running


def config_text(sim: Simulator, url: str, kind: str = "jira") -> str:
    text = sim.org.config_toml(sim.base_url, url, kinds=[kind])
    return text.replace("concurrency = 4\n", "concurrency = 1\n", 1)


def rows(url: str, sql: str) -> list[sa.Row]:  # type: ignore[type-arg]
    engine = db.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)).all())
    finally:
        engine.dispose()


def incremental_cursors(url: str) -> list[sa.Row]:  # type: ignore[type-arg]
    return rows(
        url,
        "SELECT source_name, scope, stream, cursor FROM sync_state "
        "WHERE stream NOT LIKE '%#backfill%' ORDER BY 1, 2, 3",
    )


def issue_requests(url: str, run_id: int) -> int:
    [(n,)] = rows(
        url,
        f"SELECT SUM(requests) FROM sync_run_streams WHERE run_id = {run_id} AND stream = 'issues'",
    )
    return int(n)


def test_backfill_shows_pages_and_an_eta(tmp_path: Path, sim: Simulator) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    db.upgrade(url)
    config = parse_config(config_text(sim, url), environ=Credentials().env())
    out = io.StringIO()
    since = sim.org.now - timedelta(days=120)
    result = sync(config, since=since, progress=TerminalProgress(out))
    assert result.status == "ok"
    text = out.getvalue()
    assert "sim-jira PAY issues: 1 pages, 100 records, " in text
    assert "% of the window, ETA " in text


@pytest.mark.parametrize("kind", ["jira", "github", "gitlab"])
def test_a_stopped_backfill_resumes_its_window_and_never_moves_the_sync_cursor(
    tmp_path: Path, sim: Simulator, warehouse_url: str, kind: str
) -> None:
    text = config_text(sim, warehouse_url, kind)
    path = tmp_path / "pv.toml"
    path.write_text(text)
    first = sync(parse_config(text, environ=Credentials().env()))
    assert first.status == "ok"
    cursors = incremental_cursors(warehouse_url)
    assert cursors

    since = (sim.org.now - timedelta(days=365)).strftime("%Y-%m-%d")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGRAMVIEW_")}
    args = [sys.executable, "-m", "programview", "--config", str(path), "backfill"]
    sim.app.latency_ms = 250
    try:
        proc = subprocess.Popen(
            [*args, "--since", since],
            env={**env, **Credentials().env()},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 90
        while not rows(
            warehouse_url, "SELECT 1 FROM sync_state WHERE stream LIKE 'issues#backfill %'"
        ):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the backfill never committed a page"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=30)
    finally:
        sim.app.latency_ms = 0
    assert proc.returncode == 0, err
    assert ": stopped, " in out
    [(stopped_id, status)] = rows(
        warehouse_url, "SELECT id, status FROM sync_runs WHERE kind = 'backfill'"
    )
    assert status == "stopped"
    saved = rows(warehouse_url, "SELECT stream FROM sync_state WHERE stream LIKE '%#backfill%'")
    assert saved and all(s.endswith("..now") for (s,) in saved)
    assert incremental_cursors(warehouse_url) == cursors  # untouched by the backfill

    env_run = {**env, **Credentials().env()}
    resumed = subprocess.run(
        [*args, "--since", since], env=env_run, capture_output=True, text=True, timeout=180
    )
    assert resumed.returncode == 0, resumed.stderr
    [(resumed_id, message)] = rows(
        warehouse_url, f"SELECT id, message FROM sync_runs WHERE id > {stopped_id}"
    )
    assert "backfill resumed from" in (message or "")
    # done: the window's own cursor is gone (a new backfill reads the whole window again)
    assert not rows(warehouse_url, "SELECT 1 FROM sync_state WHERE stream LIKE '%#backfill%'")
    assert incremental_cursors(warehouse_url) == cursors

    fresh = subprocess.run(
        [*args, "--since", since], env=env_run, capture_output=True, text=True, timeout=180
    )
    assert fresh.returncode == 0, fresh.stderr
    [(fresh_id, fresh_message)] = rows(
        warehouse_url, f"SELECT id, message FROM sync_runs WHERE id > {resumed_id}"
    )
    assert "resumed" not in (fresh_message or "")
    # the resumed run skipped what the stopped one had committed
    assert issue_requests(warehouse_url, resumed_id) < issue_requests(warehouse_url, fresh_id)
    assert incremental_cursors(warehouse_url) == cursors
    [(items,)] = rows(warehouse_url, "SELECT COUNT(*) FROM work_items")
    assert items == sum(len(sim.org.scope_items(s)) for s in sim.org.scopes_of(kind))
