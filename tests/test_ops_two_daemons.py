"""Two daemons on one PostgreSQL warehouse for several ticks (issue 10, item 5).

Both tick together (``--every``, counted from the epoch); the advisory locks and the
"already synced in this tick" check split the streams: every stream is synced once per
tick, the totals are one daemon's, and when one daemon is killed in the middle of a run the
other syncs its streams on the next tick. Real processes, real PostgreSQL, the simulator.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from programview.config import parse_config
from programview.simulator.generator import Credentials, generate
from programview.simulator.server import Simulator, serve
from programview.sync.engine import sync
from programview.warehouse import db

EVERY = 10  # seconds per tick: room for a run to finish inside its tick on a loaded CI machine
STREAMS = 9  # 3 Jira projects x (issues, sprints, versions)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with serve(generate(seed=3, size="small"), latency_ms=40) as running:
        yield running


class Daemon:
    """A daemon process whose stderr lines are collected by a thread."""

    def __init__(self, config: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROGRAMVIEW_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "programview", "--config", str(config), "daemon"]
            + ["--every", str(EVERY)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**env, **Credentials().env()},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def runs(self) -> list[int]:
        return [int(m[1]) for line in self.lines if (m := re.search(r" run (\d+) \w+ in ", line))]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self._reader.join(timeout=10)


def until(predicate, what: str, limit: float = 180) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def tick_of(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1)).total_seconds() // EVERY)


@pytest.mark.postgres
def test_two_daemons_sync_each_stream_once_per_tick_and_take_over_a_killed_one(
    tmp_path: Path, sim: Simulator, pg_url: str
) -> None:
    db.upgrade(pg_url)
    text = sim.org.config_toml(sim.base_url, pg_url, kinds=["jira"])
    config = tmp_path / "pv.toml"
    config.write_text(text.replace("concurrency = 4\n", "concurrency = 2\n", 1))
    engine = db.create_engine(pg_url)

    a, b = Daemon(config), Daemon(config)
    try:
        # a few ticks with both alive
        until(lambda: len(a.runs()) >= 4 and len(b.runs()) >= 4, "four runs of each daemon")
        # kill whichever daemon is in the middle of a stream (its run row names its pid)
        by_pid = {a.proc.pid: a, b.proc.pid: b}
        holder: list[Daemon] = []

        def one_in_a_stream() -> bool:
            with engine.connect() as conn:
                messages = conn.execute(
                    sa.text(
                        "SELECT r.message FROM sync_run_streams s JOIN sync_runs r "
                        "ON r.id = s.run_id WHERE r.status = 'running' "
                        "AND s.status = 'running'"
                    )
                ).scalars()
                for message in messages:
                    m = re.match(r"pid (\d+) on ", message or "")
                    if m and int(m[1]) in by_pid:
                        holder.append(by_pid[int(m[1])])
                        return True
            return False

        until(one_in_a_stream, "a daemon in the middle of a stream")
        victim = holder[0]
        survivor = b if victim is a else a
        victim.proc.kill()
        victim.proc.wait()
        killed_tick = tick_of(datetime.now(UTC).replace(tzinfo=None))
        seen = len(survivor.runs())
        until(lambda: len(survivor.runs()) >= seen + 2, "two more runs of the other daemon")
    finally:
        a.stop()
        b.stop()

    with engine.connect() as conn:
        runs = {r.id: r for r in conn.execute(sa.text("SELECT * FROM sync_runs")).all()}
        streams = conn.execute(sa.text("SELECT * FROM sync_run_streams")).all()
    engine.dispose()
    alive_runs = set(survivor.runs())
    synced: dict[int, Counter[tuple[str, str, str]]] = {}
    for row in streams:
        if row.status in ("ok", "partial"):
            key = (row.source_name, row.scope, row.stream)
            synced.setdefault(tick_of(runs[row.run_id].started_at), Counter())[key] += 1
    first = min(tick_of(r.started_at) for r in runs.values())
    aligned = sorted(t for t in synced if first + 1 < t < killed_tick)
    assert len(aligned) >= 1, synced
    for tick in aligned:  # both alive: every stream once
        assert len(synced[tick]) == STREAMS and set(synced[tick].values()) == {1}, (
            tick,
            synced[tick],
        )
    assert all(max(c.values()) == 1 for t, c in synced.items() if t > first + 1), synced
    # after the kill: the other daemon alone syncs all nine streams each tick
    after = [t for t in synced if t > killed_tick]
    assert after, synced
    for tick in after:
        detail = [
            (r.run_id, r.scope, r.stream, r.status, r.error)
            for r in streams
            if tick_of(runs[r.run_id].started_at) == tick
        ]
        assert len(synced[tick]) == STREAMS, (tick, killed_tick, detail)
    later = [r for r in runs.values() if tick_of(r.started_at) > killed_tick]
    assert later and all(r.id in alive_runs for r in later)
    # and the killed run (it held a stream) was closed as abandoned by the other's next run
    [killed] = [r for r in runs.values() if r.status not in ("ok", "partial")]
    assert killed.status == "abandoned" and killed.id not in alive_runs
    assert any(r.run_id == killed.id and r.status == "abandoned" for r in streams)

    # the totals are one daemon's: same rows as a single sync into a fresh warehouse
    single = tmp_path / "single.db"
    url = f"sqlite:///{single}"
    db.upgrade(url)
    one = sync(parse_config(text.replace(pg_url, url), environ=Credentials().env()))
    total = sum(r.records for r in runs.values())
    assert total == one.records
    counts = {}
    for name, u in (("two", pg_url), ("one", url)):
        e = db.create_engine(u)
        with e.connect() as conn:
            counts[name] = [
                conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar()
                for t in ("work_items", "sprints", "releases", "raw_payloads")
            ]
        e.dispose()
    assert counts["two"] == counts["one"]
