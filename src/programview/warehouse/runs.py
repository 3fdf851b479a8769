"""Which ``sync_runs`` rows marked ``running`` still have a live process behind them.

Why: a sync killed hard (SIGKILL, OOM, a node lost) never writes its finish, so its row
would say ``running`` forever and freshness checks would trust it. A run that died holds no
lock and no uncommitted cursor (each page commits with its cursor), so it is safe to decide
"dead" and close it as ``abandoned``; the next run does exactly that before it starts.

How a run proves it is alive:

* **PostgreSQL** (any number of machines): the run holds a session advisory lock on its id
  for as long as it runs, taken in the same transaction that inserts the row, so no other
  session can ever see the row without the lock. A row whose lock can be taken is dead.
* **SQLite** (one machine): the row's ``message`` says ``pid N on HOST`` while it runs. On
  the same host, a pid that no longer exists is dead; so is our own pid when the caller
  knows it has no run going (a restarted container often gets the same pid back).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from programview import clock
from programview.warehouse import db

ABANDONED = "abandoned"
_OWNER = re.compile(r"^pid (\d+) on (\S+)$")


def owner_note() -> str:
    """What a running row's ``message`` holds until the run finishes."""
    return f"pid {os.getpid()} on {socket.gethostname()}"


def run_lock_key(run_id: int) -> int:
    """The advisory lock key a run holds while it runs (a different space from streams')."""
    digest = hashlib.sha256(f"programview-run\0{run_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to someone else
        return True
    return True


def dead_runs(
    engine: Engine, ids: Iterable[int] | None = None, *, none_of_mine: bool = False
) -> list[int]:
    """Ids of ``running`` rows (of ``ids``, else all) whose process is gone.

    ``none_of_mine``: this process has no run going, so a row naming our own pid is a
    previous life's (see module docstring). On PostgreSQL only the advisory locks are asked
    (no table is read), so this works with the read-only role of ``db grant-readonly``."""
    if engine.dialect.name == "postgresql":
        if ids is None:
            ids = [run_id for run_id, _ in _running(engine, None)]
        return _unlocked(engine, sorted(set(ids)))
    host, me = socket.gethostname(), os.getpid()
    dead = []
    for run_id, message in _running(engine, ids):
        m = _OWNER.match(message or "")
        if not m:
            continue  # a row from an older programview: cannot tell, leave it
        pid, on = int(m.group(1)), m.group(2)
        if on != host:
            continue
        if (pid == me and none_of_mine) or (pid != me and not _pid_alive(pid)):
            dead.append(run_id)
    return dead


def _running(engine: Engine, ids: Iterable[int] | None) -> list[tuple[int, str | None]]:
    runs = db.table("sync_runs")
    query = sa.select(runs.c.id, runs.c.message).where(
        runs.c.status == "running", runs.c.finished_at.is_(None)
    )
    if ids is not None:
        query = query.where(runs.c.id.in_(list(ids)))
    with engine.connect() as conn:
        return [(int(r.id), r.message) for r in conn.execute(query).all()]


def _unlocked(engine: Engine, ids: list[int]) -> list[int]:
    """The run ids whose advisory lock nobody holds (taken and released at once here)."""
    lock_engine = sa.create_engine(engine.url, poolclass=NullPool)
    dead: list[int] = []
    if not ids:
        return dead
    try:
        with lock_engine.connect() as conn:
            for run_id in ids:
                key = run_lock_key(run_id)
                got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                if got:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    dead.append(run_id)
            conn.commit()
    finally:
        lock_engine.dispose()
    return dead


def close_abandoned(engine: Engine) -> list[int]:
    """Mark every dead ``running`` run (and its running streams) ``abandoned``; return ids.

    Called by a sync before it starts, when the calling process has no run of its own going.
    """
    dead = dead_runs(engine, none_of_mine=True)
    if not dead:
        return []
    now = clock.utc_now()
    runs, streams = db.table("sync_runs"), db.table("sync_run_streams")
    with db.transaction(engine) as conn:
        _close(conn, runs, streams, dead, now)
    return dead


def _close(
    conn: Connection, runs: sa.Table, streams: sa.Table, ids: list[int], now: object
) -> None:
    note = "abandoned: the process ended without finishing the run (killed or crashed)"
    conn.execute(
        sa.update(runs)
        .where(runs.c.id.in_(ids), runs.c.status == "running")
        .values(status=ABANDONED, finished_at=now, message=note)
    )
    conn.execute(
        sa.update(streams)
        .where(streams.c.run_id.in_(ids), streams.c.status.in_(("running", "pending")))
        .values(status=ABANDONED, finished_at=now, error=note)
    )
