"""Shared helpers of the reliability suite: run the real CLI in a subprocess against a running
simulator, kill it with SIGKILL after a chosen number of HTTP requests, and compare warehouses
row for row.

Why a checksum of the normalized tables rather than counts: "nothing lost, nothing duplicated"
means every row and every value equal to what a clean sync writes. Sync bookkeeping (runs,
cursors, when a payload was fetched or an item marked deleted) legitimately differs between
two runs and is left out; everything a user queries is in.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from programview.simulator.generator import TOKENS
from programview.simulator.server import Simulator
from programview.warehouse import db

#: Sync bookkeeping: differs between any two runs by design, so not compared.
BOOKKEEPING_TABLES = frozenset({"sync_runs", "sync_run_streams", "sync_state", "quarantine"})
#: Wall-clock columns the engine stamps (not data from the API).
BOOKKEEPING_COLUMNS = {"raw_payloads": {"fetched_at", "payload"}, "work_items": {"deleted_at"}}
#: The synced, normalized tables (models.py) plus the config-derived ones they join to.
NORMALIZED_TABLES = (
    "sources",
    "programs",
    "projects",
    "project_scopes",
    "work_items",
    "status_changes",
    "estimate_changes",
    "sprints",
    "sprint_items",
    "releases",
    "work_item_releases",
    "dependencies",
    "people",
    "worklogs",
    "project_costs",
    "raw_payloads",  # hash only: the same payload stored whatever the encoding
)


def _canonical(value: Any) -> str:
    """One text form per value on SQLite and PostgreSQL (floats rounded, datetimes naive)."""
    if value is None:
        return "\x00"
    if isinstance(value, float):
        return repr(round(value, 9))
    if isinstance(value, bool):
        return "1" if value else "0"
    if hasattr(value, "isoformat"):
        tz = getattr(value, "tzinfo", None)
        return (value.replace(tzinfo=None) if tz is not None else value).isoformat()
    return str(value)


def table_checksums(url: str) -> dict[str, tuple[int, str]]:
    """``{table: (row count, sha256 of its sorted canonical rows)}`` of the normalized tables."""
    engine = db.create_engine(url)
    out: dict[str, tuple[int, str]] = {}
    try:
        with engine.connect() as conn:
            for name in NORMALIZED_TABLES:
                tbl = db.table(name)
                skip = BOOKKEEPING_COLUMNS.get(name, set())
                cols = [c for c in tbl.c if c.name not in skip]
                lines = sorted(
                    "\x1f".join(_canonical(v) for v in row)
                    for row in conn.execute(sa.select(*cols))
                )
                digest = hashlib.sha256("\n".join(lines).encode("utf-8", "surrogatepass"))
                out[name] = (len(lines), digest.hexdigest())
    finally:
        engine.dispose()
    return out


def checksum_diff(got: dict[str, tuple[int, str]], want: dict[str, tuple[int, str]]) -> str:
    """The tables that differ, with row counts, for a readable assertion message."""
    return ", ".join(
        f"{t}: {got.get(t, (0, ''))[0]} rows vs {want[t][0]} clean"
        for t in want
        if got.get(t) != want[t]
    )


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI subprocess: no PROGRAMVIEW_* of the caller, simulator tokens."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGRAMVIEW_")}
    env.update(TOKENS.env())
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Target:
    """One connector (and deployment) as the suite syncs it: few scopes, to stay quick."""

    kind: str
    deployment: str = "cloud"
    scopes: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        return self.kind if self.deployment == "cloud" else f"{self.kind}-{self.deployment}"

    @property
    def api(self) -> str:
        """The simulator API of its fault rules."""
        return "jira-dc" if self.deployment == "datacenter" else self.kind


JIRA = Target("jira", scopes=("PAY", "RISK"))
JIRA_DC = Target("jira", "datacenter", scopes=("PAY", "RISK"))
GITHUB = Target("github", scopes=("acme/pay-sdk", "acme/web"))
#: GitLab reads every changed issue's resource events: one project keeps it short.
GITLAB = Target("gitlab", scopes=("acme/data/etl",))


def config_text(
    sim: Simulator, target: Target, url: str, sync_keys: dict[str, str] | None = None
) -> str:
    """A config for one connector of the simulator, with only the target's scopes."""
    text = sim.org.config_toml(sim.base_url, url, target.deployment, kinds=[target.kind])
    if target.scopes is not None:
        text = _keep_scopes(text, list(target.scopes))
    extra = "".join(f"{k} = {v}\n" for k, v in (sync_keys or {}).items())
    return text.replace("[sync]\n", "[sync]\n" + extra, 1)


def write_config(
    sim: Simulator,
    path: Path,
    url: str,
    target: Target,
    sync_keys: dict[str, str] | None = None,
) -> Path:
    """The config file of :func:`config_text`."""
    path.write_text(config_text(sim, target, url, sync_keys))
    return path


def _keep_scopes(text: str, scopes: list[str]) -> str:
    """The config with only ``scopes`` on its source, and without the projects (and their
    benefits) that then have no synced scope: a quicker sync of the same connector."""
    blocks = text.split("\n\n")
    dropped: set[str] = set()
    kept: list[str] = []
    for block in blocks:
        lines = block.splitlines()
        if "[[sources]]" in lines:
            lines = [
                "scopes = [" + ", ".join(f'"{s}"' for s in scopes) + "]"
                if line.startswith("scopes = [")
                else line
                for line in lines
            ]
        elif "[[projects]]" in lines:
            scope_line = next(line for line in lines if line.startswith("scopes = ["))
            if not any(f':{s}"' in scope_line for s in scopes):
                dropped.update(line.split('"')[1] for line in lines if line.startswith("key = "))
                continue
        elif any(line.startswith("project = ") and line.split('"')[1] in dropped for line in lines):
            continue
        kept.append("\n".join(lines))
    return "\n\n".join(kept)


def cli_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "programview", "--config", str(config), *args]


def run_cli(
    config: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``programview --config CONFIG ARGS…`` to the end and capture its output."""
    return subprocess.run(
        cli_command(config, *args),
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@dataclass
class Killed:
    """How a killed run went: ``killed`` False means it finished before the kill point."""

    killed: bool
    requests_seen: int
    returncode: int | None


def sync_killed_after(sim: Simulator, config: Path, requests: int, timeout: float = 300) -> Killed:
    """Start ``programview sync`` and SIGKILL it once the simulator has answered ``requests``
    more requests: a crash at a point chosen by request count (deterministic per seed) rather
    than by wall time (which depends on how busy the machine is)."""
    start = len(sim.requests)
    proc = subprocess.Popen(
        cli_command(config, "sync"),
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            if len(sim.requests) - start >= requests:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                return Killed(True, len(sim.requests) - start, proc.returncode)
            if time.monotonic() > deadline:
                raise TimeoutError(f"programview sync still running after {timeout:.0f} s")
            time.sleep(0.002)
        return Killed(False, len(sim.requests) - start, proc.returncode)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
