"""``programview daemon --serve``: /healthz and /metrics scraped over HTTP from a real
daemon process, after a real sync against the API simulator (issue 10, item 3)."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from programview.simulator.generator import Credentials, generate
from programview.simulator.server import Simulator, serve
from programview.warehouse import db

SOURCE = "sim-jira"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with serve(generate(seed=3, size="small")) as running:
        yield running


def readline(proc: subprocess.Popen[str], timeout: float = 90) -> str:
    assert proc.stderr is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        if not sel.select(timeout):
            proc.kill()
            pytest.fail("the daemon printed nothing for a while")
    return proc.stderr.readline()


def wait_line(proc: subprocess.Popen[str], pattern: str) -> re.Match[str]:
    seen = []
    while True:
        line = readline(proc)
        assert line, f"the daemon exited: {''.join(seen)}"
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_healthz_and_metrics_after_a_real_sync(
    tmp_path: Path, sim: Simulator, warehouse_url: str
) -> None:
    text = sim.org.config_toml(sim.base_url, warehouse_url, kinds=["jira"])
    path = tmp_path / "pv.toml"
    path.write_text(text.replace("[sync]\n", '[sync]\nmax_age = "2h"\n', 1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGRAMVIEW_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "programview", "--config", str(path), "daemon"]
        + ["--every", "3600", "--serve", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**env, **Credentials().env()},
    )
    try:
        base = "http://" + wait_line(proc, r"serving /healthz and /metrics on http://(\S+)")[1]
        run_id = int(wait_line(proc, r"run (\d+) ok in ")[1])  # the first run starts at once

        health = httpx.get(f"{base}/healthz")
        assert health.status_code == 200, health.text
        assert health.json()["healthy"] is True and health.json()["reasons"] == []
        assert health.json()["streams"] == 9

        scraped = httpx.get(f"{base}/metrics")
        assert scraped.status_code == 200
        got = samples(scraped.text)
        engine = db.create_engine(warehouse_url)
        with engine.connect() as conn:
            run = conn.execute(
                sa.text("SELECT records, skipped, requests FROM sync_runs WHERE id = :i"),
                {"i": run_id},
            ).one()
        src = (("source", SOURCE),)
        assert got[("programview_runs_total", (("status", "ok"),))] == 1
        assert got[("programview_records_written_total", src)] == run.records > 0
        assert got[("programview_records_skipped_total", src)] == run.skipped
        assert got[("programview_requests_total", (("source", SOURCE), ("status", "200")))] == (
            run.requests
        )
        assert got[("programview_quarantined_payloads_total", src)] == 0
        assert got[("programview_run_duration_seconds_count", ())] == 1
        assert got[("programview_healthy", ())] == 1
        ages = {
            labels: value
            for (name, labels), value in got.items()
            if name == "programview_data_age_seconds"
        }
        assert len(ages) == 9 and all(0 <= v < 3600 for v in ages.values())
        assert (("scope", "PAY"), ("source", SOURCE), ("stream", "issues")) in ages

        # three hours without a sync: stale for [sync] max_age = "2h"
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE sync_run_streams SET started_at = :t, finished_at = :t"),
                {"t": run_finished(engine) - timedelta(hours=3)},
            )
        engine.dispose()
        stale = httpx.get(f"{base}/healthz")
        assert stale.status_code == 503
        body = json.loads(stale.text)
        assert body["healthy"] is False and len(body["reasons"]) == 9
        assert "data is 3h" in body["reasons"][0] and "more than 2h" in body["reasons"][0]
        assert samples(httpx.get(f"{base}/metrics").text)[("programview_healthy", ())] == 0
        assert httpx.get(f"{base}/other").status_code == 404

        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
        assert proc.returncode == 0, rest
    finally:
        if proc.poll() is None:
            proc.kill()


def run_finished(engine: sa.Engine):  # type: ignore[no-untyped-def]
    t = db.table("sync_runs")
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(t.c.finished_at))).scalar()
