"""kill -9 of a real ``programview sync`` at seeded random points of a full sync, per connector.

Each case starts a full sync of one connector against the simulator (real HTTP on 127.0.0.1)
in a subprocess, SIGKILLs it once the simulator has answered a seeded random number of its
requests, runs ``programview sync`` again, and requires the warehouse to equal, row for row,
the one a clean uninterrupted sync writes (``reliability.table_checksums``).

Points are request counts drawn from ``random.Random("kill:<connector>")`` over the clean
sync's request count, so a failing point reproduces. By default ``KILL_POINTS`` per connector
(kept small for CI); ``PROGRAMVIEW_RELIABILITY_FULL=1`` runs the 20 points the promise is
stated for, and Jira Data Center too.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from reliability import (
    GITHUB,
    GITLAB,
    JIRA,
    JIRA_DC,
    Target,
    checksum_diff,
    run_cli,
    sync_killed_after,
    table_checksums,
    write_config,
)

from programview.simulator.generator import generate
from programview.simulator.server import Simulator, serve
from programview.warehouse import db

pytestmark = pytest.mark.slow

FULL = os.environ.get("PROGRAMVIEW_RELIABILITY_FULL") == "1"
KILL_POINTS = 20 if FULL else 3


TARGETS = [JIRA, GITHUB, GITLAB]
if FULL:
    TARGETS.append(JIRA_DC)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with serve(generate(seed=7, size="small")) as running:
        yield running


@dataclass
class Clean:
    requests: int
    checksums: dict[str, tuple[int, str]]


_clean: dict[str, Clean] = {}


def configure(sim: Simulator, target: Target, where: Path, url: str | None = None) -> Path:
    url = url or f"sqlite:///{where / 'warehouse.db'}"
    db.upgrade(url)
    return write_config(sim, where / "pv.toml", url, target)


def clean_sync(sim: Simulator, target: Target, tmp_path_factory: pytest.TempPathFactory) -> Clean:
    """The reference: one uninterrupted full sync (computed once per connector)."""
    if target.name not in _clean:
        where = tmp_path_factory.mktemp(f"clean-{target.name}")
        config = configure(sim, target, where)
        before = len(sim.requests)
        done = run_cli(config, "sync")
        assert done.returncode == 0, done.stderr
        _clean[target.name] = Clean(
            len(sim.requests) - before, table_checksums(f"sqlite:///{where / 'warehouse.db'}")
        )
    return _clean[target.name]


def kill_points(target: Target, total_requests: int) -> list[int]:
    rng = random.Random(f"kill:{target.name}")
    # At least one request answered, at least two still to come: the run is mid-way.
    return [rng.randint(1, max(1, total_requests - 2)) for _ in range(KILL_POINTS)]


@pytest.mark.parametrize("point", range(KILL_POINTS))
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_a_rerun_after_kill_9_equals_a_clean_sync(
    sim: Simulator,
    target: Target,
    point: int,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    clean = clean_sync(sim, target, tmp_path_factory)
    at = kill_points(target, clean.requests)[point]
    config = configure(sim, target, tmp_path)

    killed = sync_killed_after(sim, config, at)
    assert killed.killed, f"the sync finished before request {at} of {clean.requests}"
    assert killed.returncode == -9

    rerun = run_cli(config, "sync")
    assert rerun.returncode == 0, f"killed after {at} requests; rerun: {rerun.stderr}"
    got = table_checksums(f"sqlite:///{tmp_path / 'warehouse.db'}")
    assert got == clean.checksums, (
        f"killed after {at}/{clean.requests} requests, the rerun differs from a clean sync: "
        + checksum_diff(got, clean.checksums)
    )


@pytest.mark.postgres
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_on_postgresql_a_rerun_after_kill_9_equals_a_clean_sync(
    sim: Simulator,
    target: Target,
    pg_url: str,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """One seeded point per connector on PostgreSQL (same clean reference: the checksums are
    database-independent)."""
    clean = clean_sync(sim, target, tmp_path_factory)
    at = random.Random(f"kill-pg:{target.name}").randint(1, max(1, clean.requests - 2))
    config = configure(sim, target, tmp_path, pg_url)

    killed = sync_killed_after(sim, config, at)
    assert killed.killed, f"the sync finished before request {at} of {clean.requests}"

    rerun = run_cli(config, "sync")
    assert rerun.returncode == 0, f"killed after {at} requests; rerun: {rerun.stderr}"
    got = table_checksums(pg_url)
    assert got == clean.checksums, (
        f"killed after {at}/{clean.requests} requests, the rerun differs from a clean sync: "
        + checksum_diff(got, clean.checksums)
    )
