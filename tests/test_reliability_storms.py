"""Fault storms per connector: nothing lost, nothing duplicated.

A full sync of each connector against the simulator (real HTTP on 127.0.0.1) while it answers
with storms of one kind: primary rate limits, GitHub's secondary limit, 5xx bursts, dropped
connections (half a body then a closed socket) and truncated pages (invalid JSON), and a
``mixed`` storm of all of them. The sync must end ``ok`` with a warehouse equal, row for row,
to a clean sync's (``reliability.table_checksums``), and every storm must really have blown.

Storm windows are seeded (``random.Random("storm:<connector>:<kind>")``) over the clean sync's
request count, separated by quiet gaps so no single request meets more consecutive failures
than the client's retry budget (``max_retries`` = 6): a storm tests resilience, not the
give-up path (test_http covers that). Waits are instant (``programview.http._sleep``).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability import (
    GITHUB,
    GITLAB,
    JIRA,
    JIRA_DC,
    Target,
    checksum_diff,
    config_text,
    table_checksums,
)

from programview import http
from programview.config import parse_config
from programview.simulator.faults import FaultRule
from programview.simulator.generator import TOKENS, generate
from programview.simulator.server import Simulator, serve
from programview.sync.engine import sync
from programview.warehouse import db

pytestmark = pytest.mark.slow

FULL = os.environ.get("PROGRAMVIEW_RELIABILITY_FULL") == "1"
KINDS = ("ratelimit", "secondary", "5xx", "drop", "malformed", "mixed")
#: Consecutive failures per window, at most (below the client's 6 retries).
BURST = 5


def cases() -> list[tuple[Target, str]]:
    out = []
    for target in (JIRA, JIRA_DC, GITHUB, GITLAB):
        # GitLab syncs ~1,500 requests per run: its mixed storm by default, each kind in full.
        kinds = KINDS if (target is not GITLAB or FULL) else ("mixed",)
        out += [(target, k) for k in kinds if k != "secondary" or target is GITHUB]
    return out


@pytest.fixture(autouse=True)
def instant_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(http, "_sleep", fake_sleep)
    return slept


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with serve(generate(seed=7, size="small")) as running:
        yield running


_clean: dict[str, tuple[int, dict[str, tuple[int, str]]]] = {}


def run_sync(sim: Simulator, target: Target, url: str) -> tuple[str, list[str], int]:
    db.upgrade(url)
    before = len(sim.requests)
    result = sync(parse_config(config_text(sim, target, url), environ=TOKENS.env()))
    return result.status, result.errors, len(sim.requests) - before


def clean(sim: Simulator, target: Target, where: Path) -> tuple[int, dict[str, tuple[int, str]]]:
    """Requests and checksums of an undisturbed full sync (once per connector)."""
    if target.name not in _clean:
        url = f"sqlite:///{where / 'clean.db'}"
        status, errors, requests = run_sync(sim, target, url)
        assert status == "ok", errors
        _clean[target.name] = (requests, table_checksums(url))
    return _clean[target.name]


def storm(target: Target, kind: str, requests: int) -> list[FaultRule]:
    """Seeded windows of ``kind`` faults, with quiet gaps between them, over the run."""
    rng = random.Random(f"storm:{target.name}:{kind}")
    kinds = ["ratelimit", "5xx", "drop", "malformed"] if kind == "mixed" else [kind]
    if kind == "mixed" and target is GITHUB:
        kinds.append("secondary")
    windows = max(4, min(40, requests // 10))
    rules, at = [], 1
    for _ in range(windows):
        if at > requests:
            break
        count = rng.randint(1, BURST)
        rule = FaultRule(api=target.api, kind=rng.choice(kinds), at=at, count=count)
        if rule.kind == "5xx":
            rule.status = rng.choice((500, 502, 503, 504))
        if rule.kind in ("ratelimit", "secondary"):
            rule.retry_after = float(rng.randint(1, 30))
        rules.append(rule)
        # Every rule counts every request: the next window starts after this one's end
        # plus a gap, so no request meets two windows in a row.
        at += count + BURST + rng.randint(1, max(1, requests // windows))
    return rules


@pytest.mark.parametrize(("target", "kind"), cases(), ids=lambda v: getattr(v, "name", v))
def test_a_sync_through_a_fault_storm_equals_a_clean_sync(
    sim: Simulator, target: Target, kind: str, tmp_path: Path, instant_waits: list[float]
) -> None:
    requests, want = clean(sim, target, tmp_path)
    rules = storm(target, kind, requests)
    for rule in rules:
        sim.faults.add(rule)
    try:
        url = f"sqlite:///{tmp_path / 'storm.db'}"
        status, errors, _ = run_sync(sim, target, url)
    finally:
        sim.faults.clear()
    fired = sum(r.fired for r in rules)
    assert fired >= len(rules) // 2, f"only {fired} faults fired: {rules}"
    assert status == "ok", errors
    assert len(instant_waits) >= fired  # each fault was waited out and retried, none fatal
    got = table_checksums(url)
    assert got == want, f"{kind} storm ({fired} faults): " + checksum_diff(got, want)
