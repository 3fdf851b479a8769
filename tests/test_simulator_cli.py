"""``programview simulate``: serves on 127.0.0.1 and prints URLs, tokens and a config that
works as printed (for the connectors installed)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta

import httpx

from programview.config import parse_config
from programview.simulator import TOKENS
from programview.sync.registry import connector_entry_points


def test_simulate_serves_and_prints_a_working_config() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "programview", "simulate", "--size", "small", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        lines: list[str] = []
        for line in proc.stderr:  # stderr says when the config has been printed
            if "serving" in line:
                break
        else:
            raise AssertionError("simulate exited early: " + proc.stdout.read())
        jira_url = None
        while True:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("#   Jira Cloud:"):
                jira_url = line.split(":", 1)[1].strip()
            if line.startswith("hourly_rate"):  # the last project's last key
                break
        assert jira_url and jira_url.startswith("http://127.0.0.1:")
        me = httpx.get(
            f"{jira_url}/rest/api/3/myself",
            auth=(TOKENS.jira_email, TOKENS.jira_api_token),
            timeout=10,
        )
        assert me.status_code == 200
        assert httpx.get(f"{jira_url}/rest/api/3/myself", timeout=10).status_code == 401
        # Current as of today, not a fixed day in the past: the latest issue update is from
        # the last day before midnight UTC today.
        projects = httpx.get(
            f"{jira_url}/rest/api/3/project/search",
            params={"expand": "insight"},
            auth=(TOKENS.jira_email, TOKENS.jira_api_token),
            timeout=10,
        ).json()["values"]
        latest = max(
            datetime.strptime(p["insight"]["lastIssueUpdateTime"], "%Y-%m-%dT%H:%M:%S.%f%z")
            for p in projects
        )
        midnight = datetime.combine(datetime.now(UTC).date(), time(0), UTC)
        assert midnight - timedelta(days=1) < latest <= midnight
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0

    out = "".join(lines) + rest
    assert f"data as of {datetime.now(UTC):%Y-%m-%d} 00:00 UTC" in out
    exports = dict(re.findall(r"^export (\w+)=(\S+)$", out, re.M))
    assert exports["PROGRAMVIEW_SIM_JIRA_TOKEN"] == TOKENS.jira_api_token
    config_text = out.split("# ---- programview.toml ----", 1)[1]
    config = parse_config(config_text, environ=exports)  # valid as printed
    installed = connector_entry_points()
    # only sources whose connector is installed (Jira today), so `config check` passes
    assert [s.kind for s in config.sources] == [
        k for k in ("jira", "github", "gitlab") if k in installed
    ]
    assert config.projects and all(p.scopes for p in config.projects)
