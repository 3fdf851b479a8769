"""The sync engine: runs every connector's streams and lands their pages in the warehouse.

What it guarantees (ARCHITECTURE.md, "Idempotent and resumable"):

* **A page is all or nothing.** A page's records, the deletes its ``Replace`` items ask for,
  its raw payloads and the stream's advanced cursor are written in ONE transaction. An
  exception anywhere in a page (a mapping bug, the database, the network after retries,
  Ctrl-C) leaves the warehouse at the previous page, and the next run resumes from there.
* **Unchanged records cost one query per page.** Each raw record's canonical-JSON sha256 is
  compared with the hash stored in ``raw_payloads``; equal ones are skipped without mapping.
* **Bad payloads do not stop a sync.** A record that cannot be mapped (or whose id cannot be
  read) goes to ``quarantine`` with the error and the payload; the run ends ``partial``.
* **Every run is recorded** in ``sync_runs`` and, per source/scope/stream, ``sync_run_streams``
  (records written, unchanged, pages, HTTP requests, quarantined, error).
* **Scale-out on PostgreSQL.** Each (source, scope, stream) is claimed with a session advisory
  lock for as long as it runs, so several daemons on one warehouse never run the same stream
  at once; a stream another process holds is skipped and reported.

Concurrency: sources × scopes run as asyncio tasks bounded by ``[sync] concurrency``; the
streams of one scope run in the connector's order (parents before children). Database work
runs in a worker thread behind one lock (SQLite has a single writer), so pages of other scopes
keep downloading while one page is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from programview import clock
from programview.config import Config, SourceConfig
from programview.errors import ConfigError, MappingError, ProgramviewError
from programview.http import HttpClient, tally_requests
from programview.progress import Progress
from programview.sync.connector import (
    Connector,
    LiveIds,
    Page,
    Record,
    Replace,
    Stream,
    SyncOptions,
)
from programview.sync.registry import load_connector
from programview.warehouse import db

log = logging.getLogger("programview.sync")

T = TypeVar("T")

#: Exceptions from ``Stream.map`` that mean "this payload is not what the mapping expects":
#: the payload is quarantined and the sync goes on. Anything else (RuntimeError, OSError,
#: KeyboardInterrupt …) is a bug or an outage and aborts the page, so nothing half-done lands.
QUARANTINE_ERRORS: tuple[type[BaseException], ...] = (
    MappingError,
    LookupError,
    TypeError,
    ValueError,
    AttributeError,
    ArithmeticError,
)

#: ``sync_state.stream`` value that remembers when a scope's deletions were last reconciled.
RECONCILE_STATE = "__reconcile__"
#: ``sync_state`` (scope, stream) of a connector's own state between runs (``Connector.state``).
CONNECTOR_SCOPE = "*"
CONNECTOR_STATE = "__connector__"


@dataclass
class RunResult:
    """What one sync run did (also stored in ``sync_runs``)."""

    run_id: int
    status: str  # ok | partial | failed
    records: int = 0  # raw records written (new or changed)
    skipped: int = 0  # raw records unchanged since the last run (same hash)
    requests: int = 0  # HTTP requests sent, retries included
    quarantined: int = 0
    errors: list[str] = field(default_factory=list)
    deleted: int = 0  # work items newly marked deleted by the reconcile
    notes: list[str] = field(default_factory=list)  # what connectors reported (not errors)

    @property
    def wrote(self) -> bool:
        """Whether the warehouse changed (the transform only needs to run then)."""
        return self.records > 0 or self.deleted > 0


# --- hashing ---------------------------------------------------------------------------------


def canonical_json(raw: Any) -> str:
    """Stable JSON text of a payload: sorted keys, no whitespace (the hash input)."""
    return json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def payload_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _now() -> datetime:
    """Naive UTC, the warehouse convention (``programview.clock``: simulated in the demo)."""
    return clock.utc_now()


def merge_patch(base: Any, patch: Any) -> Any:
    """``patch`` merged into ``base`` (a stored raw payload): dicts merge key by key, anything
    else in the patch replaces what ``base`` had. Neither argument is changed."""
    if not (isinstance(base, dict) and isinstance(patch, dict)):
        return patch
    out = dict(base)
    for key, value in patch.items():
        out[key] = merge_patch(base.get(key), value) if key in base else value
    return out


def keep_sticky(raw: Any, stored: Any, paths: Sequence[str]) -> None:
    """Give ``raw`` the value ``stored`` (its previous payload) has at each dotted path in
    ``paths``: the first value observed wins (e.g. when an item was first seen in progress)."""
    if not isinstance(raw, dict):
        return
    for path in paths:
        parts = path.split(".")
        old: Any = stored
        for part in parts:
            old = old.get(part) if isinstance(old, dict) else None
        if old is None:
            continue
        target: Any = raw
        for part in parts[:-1]:
            nxt = target.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                target[part] = nxt
            target = nxt
        target[parts[-1]] = old


# --- the write path (one page, one transaction) ------------------------------------------


@dataclass
class PageResult:
    records: int = 0
    skipped: int = 0
    quarantined: int = 0


class PageWriter:
    """Writes the pages of one stream of one scope. Synchronous: call it from a worker thread.

    Also used by ``benchmarks/load_speed.py``, so the benchmark measures this exact code.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        source: str,
        scope: str,
        stream: Stream,
        run_id: int | None = None,
        store_cursor: bool = True,
        cursor_text: str | None = None,
    ) -> None:
        self.engine = engine
        self.source = source
        self.scope = scope
        self.stream = stream
        self.run_id = run_id
        self.store_cursor = store_cursor
        #: The cursor as last committed (JSON text), so an unchanged cursor is not rewritten.
        self.cursor_text = cursor_text

    def write(self, page: Page) -> PageResult:
        result = PageResult()
        now = _now()
        quarantine: list[dict[str, Any]] = []

        # 1. Stable ids; a later copy of the same record in one page wins (overlapping pages).
        by_id: dict[str, Any] = {}
        for raw in page.records:
            try:
                native_id = self.stream.native_id(raw)
            except Exception as exc:  # noqa: BLE001 - any failure to read the id is data
                quarantine.append(
                    self._quarantine_row(
                        None,
                        f"cannot read the record id ({self.stream.primary_key}): {exc!r}",
                        raw,
                        now,
                    )
                )
                continue
            by_id.pop(native_id, None)
            by_id[native_id] = raw

        # 2. Skip records whose payload is byte-for-byte what we stored last time. The hash
        # lookup and, if anything changed, the writes share one transaction (one pooled
        # connection, one round of checkout and begin). Patches and sticky annotations need
        # the stored payloads themselves (see ``Page.patch`` and ``Stream.sticky``).
        with db.transaction(self.engine) as conn:
            sticky = tuple(self.stream.sticky)
            combines = self.stream.combines
            if page.patch or sticky or combines:
                stored = self._stored_payloads(conn, list(by_id))
                if page.patch:
                    by_id = {
                        nid: merge_patch(json.loads(stored[nid]), patch)
                        for nid, patch in by_id.items()
                        if nid in stored  # a patch for a record never stored has no base
                    }
                for nid, raw in list(by_id.items()):
                    if nid not in stored:
                        continue
                    previous = json.loads(stored[nid])
                    keep_sticky(raw, previous, sticky)
                    if combines:
                        by_id[nid] = self.stream.combine(previous, raw)
                known = {nid: payload_hash(text) for nid, text in stored.items()}
            texts = {nid: canonical_json(raw) for nid, raw in by_id.items()}
            hashes = {nid: payload_hash(text) for nid, text in texts.items()}
            if not (page.patch or sticky or combines):
                known = self._known_hashes(conn, list(by_id))

            # 3. Map the rest; a payload the mapping rejects is quarantined, not fatal.
            deletes: list[Replace] = []
            upserts: dict[str, list[dict[str, Any]]] = {}
            raw_rows: list[dict[str, Any]] = []
            for nid, raw in by_id.items():
                if known.get(nid) == hashes[nid]:
                    result.skipped += 1
                    continue
                try:
                    mapped = list(self.stream.map(raw, self.scope))
                    _validate(mapped)
                except QUARANTINE_ERRORS as exc:
                    quarantine.append(
                        self._quarantine_row(nid, f"{type(exc).__name__}: {exc}", raw, now)
                    )
                    continue
                for item in mapped:
                    if isinstance(item, Replace):
                        deletes.append(item)
                    else:
                        upserts.setdefault(item.table, []).append(item.values)
                raw_rows.append(
                    {
                        "source_name": self.source,
                        "stream": self.stream.name,
                        "native_id": nid,
                        "scope": self.scope,
                        "hash": hashes[nid],
                        "payload": texts[nid],
                        "fetched_at": now,
                    }
                )
                result.records += 1
            result.quarantined = len(quarantine)

            cursor_text = None
            if self.store_cursor and page.cursor is not None:
                cursor_text = json.dumps(page.cursor, sort_keys=True, default=str)
            cursor_moved = cursor_text is not None and cursor_text != self.cursor_text
            if not (raw_rows or quarantine or cursor_moved):
                return result  # nothing changed: nothing written

            # 4. Deletes, upserts, raw payloads, quarantine and cursor commit together. No
            # need to wait for the disk: a page lost to a database crash takes its cursor
            # with it and is fetched again.
            db.async_commit(conn)
            _apply_deletes(conn, deletes)
            for table_name, rows in upserts.items():
                db.upsert(conn, table_name, rows)
            if raw_rows:
                db.upsert(conn, "raw_payloads", raw_rows)
            if quarantine:
                conn.execute(sa.insert(db.table("quarantine")), quarantine)
            if cursor_moved:
                db.upsert(
                    conn,
                    "sync_state",
                    [
                        {
                            "source_name": self.source,
                            "scope": self.scope,
                            "stream": self.stream.name,
                            "cursor": cursor_text,
                            "updated_at": now,
                        }
                    ],
                )
        if cursor_moved:
            self.cursor_text = cursor_text
        return result

    def _known_hashes(self, conn: Connection, ids: list[str]) -> dict[str, str]:
        return db.lookup(
            conn,
            "raw_payloads",
            {"source_name": self.source, "stream": self.stream.name},
            "native_id",
            ids,
            "hash",
        )

    def _stored_payloads(self, conn: Connection, ids: list[str]) -> dict[str, str]:
        return db.lookup(
            conn,
            "raw_payloads",
            {"source_name": self.source, "stream": self.stream.name},
            "native_id",
            ids,
            "payload",
        )

    def _quarantine_row(
        self, native_id: str | None, error: str, raw: Any, now: datetime
    ) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "source_name": self.source,
            "stream": self.stream.name,
            "scope": self.scope,
            "native_id": native_id,
            "error": error[:4000],
            "payload": canonical_json(raw),
            "created_at": now,
        }


def _validate(mapped: Sequence[Any]) -> None:
    """Catch a mapping that returns rows the warehouse cannot take, before any write."""
    for item in mapped:
        if not isinstance(item, Record | Replace):
            raise MappingError(f"map() returned {type(item).__name__}, not Record or Replace")
        try:
            columns = db.column_names(item.table)
        except Exception as exc:
            raise MappingError(str(exc)) from None
        fields = item.values if isinstance(item, Record) else item.where
        unknown = [k for k in fields if k not in columns]
        if unknown:
            raise MappingError(f"table {item.table!r} has no column(s) {', '.join(unknown)}")


def _apply_deletes(conn: Connection, deletes: list[Replace]) -> None:
    groups: dict[tuple[str, tuple[str, ...]], list[tuple[Any, ...]]] = {}
    for rep in deletes:
        cols = tuple(sorted(rep.where))
        groups.setdefault((rep.table, cols), []).append(tuple(rep.where[c] for c in cols))
    for (table_name, cols), values in groups.items():
        if len(cols) == 1:
            db.delete_where(conn, table_name, cols[0], [v[0] for v in values])
            continue
        tbl = db.table(table_name)
        unique = list(dict.fromkeys(values))
        for i in range(0, len(unique), db.BATCH_ROWS):
            batch = unique[i : i + db.BATCH_ROWS]
            conn.execute(sa.delete(tbl).where(sa.tuple_(*(tbl.c[c] for c in cols)).in_(batch)))


# --- config mirror ----------------------------------------------------------------------------


def mirror_config(engine: Engine, config: Config) -> None:
    """Write the configured sources, programs, projects and project scopes into the warehouse.

    The views join on these, so they must match the config: programs, projects and scopes
    removed from the config are removed here too. Sources are only upserted, because synced
    rows keep referring to a source after it is dropped from the config.
    """
    with db.transaction(engine) as conn:
        db.upsert(
            conn,
            "sources",
            [{"name": s.name, "kind": s.kind, "base_url": s.base_url} for s in config.sources],
        )
        programs = [
            {
                "key": p.key,
                "name": p.name,
                "budget": p.budget,
                "start_date": p.start,
                "end_date": p.end,
            }
            for p in config.programs
        ]
        projects = [
            {
                "key": p.key,
                "name": p.name,
                "program_key": p.program,
                "budget": p.budget,
                "start_date": p.start,
                "end_date": p.end,
                "hourly_rate": p.hourly_rate,
            }
            for p in config.projects
        ]
        for name, rows in (("programs", programs), ("projects", projects)):
            tbl = db.table(name)
            conn.execute(sa.delete(tbl).where(tbl.c.key.not_in([r["key"] for r in rows])))
            db.upsert(conn, name, rows)
        scopes = db.table("project_scopes")
        conn.execute(sa.delete(scopes))
        configured = [
            {"project_key": p.key, "source_name": src, "scope": scope}
            for p in config.projects
            for src, scope in p.split_scopes()
        ]
        db.upsert(conn, "project_scopes", configured)
        db.upsert(conn, "project_scopes", _contained_scopes(conn, configured))


def _contained_scopes(conn: Connection, configured: list[dict[str, str]]) -> list[dict[str, str]]:
    """Project scope rows for the synced scopes inside a configured container scope.

    A project may name a GitHub organisation or a GitLab group (``"github:acme"``): the sync
    expands it into repositories (``acme/web``), and so must the project's scope list, or
    their items would belong to no project. A scope another project names itself stays with
    that project.
    """
    claimed = {(r["source_name"], r["scope"]) for r in configured}
    synced: dict[str, set[str]] = {}
    for source in sorted({r["source_name"] for r in configured}):
        found: set[str] = set()
        for name in ("work_items", "sprints", "releases"):
            tbl = db.table(name)
            found.update(
                conn.execute(
                    sa.select(tbl.c.scope).where(tbl.c.source_name == source).distinct()
                ).scalars()
            )
        synced[source] = {sc for sc in found if sc and "/" in sc}
    best: dict[tuple[str, str], tuple[int, str]] = {}  # (source, scope) -> (depth, project)
    for row in configured:
        prefix = row["scope"].rstrip("/") + "/"
        for sc in synced[row["source_name"]]:
            key = (row["source_name"], sc)
            if not sc.startswith(prefix) or key in claimed:
                continue
            candidate = (len(prefix), row["project_key"])  # the deepest container wins
            if key not in best or candidate > best[key]:
                best[key] = candidate
    out = [
        {"project_key": project, "source_name": src, "scope": sc}
        for (src, sc), (_, project) in sorted(best.items())
    ]
    return out


# --- advisory locks (PostgreSQL) ------------------------------------------------------------


def _lock_key(source: str, scope: str, stream: str) -> int:
    digest = hashlib.sha256(f"programview\0{source}\0{scope}\0{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _StreamLocks:
    """Session advisory locks, one dedicated connection per claimed stream (PostgreSQL only).

    A session lock (not a transaction lock) because a stream spans many page transactions.
    The connections come from their own unpooled engine so holding them never starves the
    pool the writes use.
    """

    def __init__(self, engine: Engine) -> None:
        self.enabled = engine.dialect.name == "postgresql"
        self._engine = sa.create_engine(engine.url, poolclass=NullPool) if self.enabled else None

    def claim(self, source: str, scope: str, stream: str) -> Connection | None | bool:
        """A held connection, ``True`` when locking is off (SQLite), ``None`` when taken."""
        if self._engine is None:
            return True
        conn = self._engine.connect()
        got = conn.execute(
            sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _lock_key(source, scope, stream)}
        ).scalar()
        conn.commit()
        if not got:
            conn.close()
            return None
        return conn

    @staticmethod
    def release(handle: Connection | None | bool, source: str, scope: str, stream: str) -> None:
        if isinstance(handle, Connection):
            try:
                handle.execute(
                    sa.text("SELECT pg_advisory_unlock(:k)"),
                    {"k": _lock_key(source, scope, stream)},
                )
                handle.commit()
            finally:
                handle.close()  # closing the session releases the lock in any case

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


# --- the run ----------------------------------------------------------------------------------


@dataclass
class _StreamStats:
    status: str = "pending"
    records: int = 0
    skipped: int = 0
    pages: int = 0
    requests: int = 0
    quarantined: int = 0
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class _Run:
    """State of one run; methods are the steps, in the order ``execute`` calls them."""

    def __init__(
        self,
        engine: Engine,
        config: Config,
        *,
        source: str | None,
        full: bool,
        since: datetime | None,
        until: datetime | None,
        progress: Progress,
        transports: dict[str, httpx.AsyncBaseTransport],
    ) -> None:
        self.engine = engine
        self.config = config
        self.source_name = source
        self.full = full
        self.backfill = since is not None or until is not None
        self.options = SyncOptions(
            full=full,
            since=since,
            until=until,
            lookback_minutes=config.sync.lookback_minutes,
        )
        self.kind = "backfill" if self.backfill else ("full" if full else "sync")
        self.progress = progress
        self.transports = transports
        self.run_id = 0
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.deleted = 0
        self.streams: dict[tuple[str, str, str], _StreamStats] = {}
        self.clients: list[HttpClient] = []
        self.locks = _StreamLocks(engine)
        #: (source, scope) -> the live ids a complete read of its live-items stream listed
        self._read_whole: dict[tuple[str, str], set[str]] = {}
        self._db_lock = asyncio.Lock()
        self._semaphore = asyncio.Semaphore(config.sync.concurrency)

    # --- database helpers ---

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking database work in a thread, one at a time (one writer)."""
        async with self._db_lock:
            return await asyncio.to_thread(fn, *args)

    def start(self) -> None:
        with db.transaction(self.engine) as conn:
            res = conn.execute(
                sa.insert(db.table("sync_runs")).values(
                    kind=self.kind,
                    source_name=self.source_name,
                    started_at=_now(),
                    status="running",
                    records=0,
                    skipped=0,
                    requests=0,
                    errors=0,
                    quarantined=0,
                )
            )
            self.run_id = int(res.inserted_primary_key[0])

    def _stream_row(self, key: tuple[str, str, str]) -> dict[str, Any]:
        stats = self.streams[key]
        return {
            "run_id": self.run_id,
            "source_name": key[0],
            "scope": key[1],
            "stream": key[2],
            "started_at": stats.started_at or stats.finished_at or _now(),
            "finished_at": stats.finished_at,
            "status": stats.status,
            "records": stats.records,
            "skipped": stats.skipped,
            "pages": stats.pages,
            "requests": stats.requests,
            "quarantined": stats.quarantined,
            "error": stats.error,
        }

    def _save_stream(self, key: tuple[str, str, str]) -> None:
        with db.transaction(self.engine) as conn:
            db.upsert(conn, "sync_run_streams", [self._stream_row(key)])

    def result(self, *, interrupted: str | None = None) -> RunResult:
        stats = list(self.streams.values())
        errors = list(self.errors)
        if interrupted:
            errors.append(interrupted)
        quarantined = sum(s.quarantined for s in stats)
        worked = any(s.status in ("ok", "partial") for s in stats)
        if interrupted:
            status = "failed"
        elif errors:
            status = "partial" if worked else "failed"
        else:
            status = "partial" if quarantined else "ok"
        return RunResult(
            run_id=self.run_id,
            status=status,
            records=sum(s.records for s in stats),
            skipped=sum(s.skipped for s in stats),
            requests=sum(c.requests for c in self.clients),
            quarantined=quarantined,
            errors=errors,
            deleted=self.deleted,
            notes=list(self.notes),
        )

    def finish(self, result: RunResult) -> None:
        """Close the run's rows. Synchronous on purpose: it also runs while being cancelled."""
        now = _now()
        for stats in self.streams.values():
            if stats.status == "running":
                stats.status, stats.error = "failed", stats.error or "interrupted"
            elif stats.status == "pending":  # never started (run stopped, or scope failed)
                stats.status, stats.error = "skipped", stats.error or "not run"
            stats.finished_at = stats.finished_at or now
        message = "; ".join([*result.errors, *self.notes]) or None
        with db.transaction(self.engine) as conn:
            # every stream's final row at once, including scopes that never got to run
            db.upsert(conn, "sync_run_streams", [self._stream_row(k) for k in self.streams])
            tbl = db.table("sync_runs")
            conn.execute(
                sa.update(tbl)
                .where(tbl.c.id == self.run_id)
                .values(
                    finished_at=now,
                    status=result.status,
                    records=result.records,
                    skipped=result.skipped,
                    requests=result.requests,
                    errors=len(result.errors),
                    quarantined=result.quarantined,
                    message=message,
                )
            )

    # --- the work ---

    def selected_sources(self) -> list[SourceConfig]:
        if self.source_name is None:
            return list(self.config.sources)
        return [self.config.source(self.source_name)]

    async def execute(self) -> None:
        await asyncio.gather(*(self.run_source(src) for src in self.selected_sources()))

    async def run_source(self, src: SourceConfig) -> None:
        try:
            cls = load_connector(src.kind)
            secrets = [v.get_secret_value() for v in src.credentials.values()]
            http = HttpClient(
                src.base_url,
                source=src.name,
                headers=cls.auth_headers(src),
                secrets=secrets,
                pace=cls.pace_requests,
                progress=self.progress,
                transport=self.transports.get(src.name),
            )
        except Exception as exc:
            self.errors.append(_error(src.name, "", exc))
            return
        self.clients.append(http)
        try:
            connector = cls(src, http)
            names = [s.name for s in connector.streams()]
            for scope in src.scopes:
                for name in names:
                    self.streams[(src.name, scope, name)] = _StreamStats()
            state_key = (src.name, CONNECTOR_SCOPE, CONNECTOR_STATE)
            try:
                saved = None if self.full else await self.db(self._load_cursor, state_key)
                connector.state = json.loads(saved) if saved else {}
                await connector.prepare()
                scopes = list(dict.fromkeys(await connector.scopes()))
            except Exception as exc:
                self.fail_scopes(src, src.scopes, _error(src.name, "", exc))
                return
            self._expand_scopes(src, names, scopes)
            await asyncio.gather(*(self.run_scope(connector, scope) for scope in scopes))
            self.notes.extend(f"[{src.name}] {note}" for note in connector.run_notes())
            if not self.backfill and self._source_ok(src.name):
                await self.db(self._save_state, state_key, connector.state)
        finally:
            await http.aclose()

    def _expand_scopes(self, src: SourceConfig, names: list[str], scopes: list[str]) -> None:
        """Stats rows for the scopes discovered this run; configured container scopes that
        expanded into others (an organisation into its repositories) get none of their own."""
        for scope in src.scopes:
            if scope not in scopes:
                for name in names:
                    self.streams.pop((src.name, scope, name), None)
        for scope in scopes:
            for name in names:
                self.streams.setdefault((src.name, scope, name), _StreamStats())

    def _source_ok(self, source: str) -> bool:
        return all(
            s.status in ("ok", "partial", "skipped")
            for (name, _, _), s in self.streams.items()
            if name == source
        )

    def _save_state(self, key: tuple[str, str, str], state: dict[str, Any]) -> None:
        with db.transaction(self.engine) as conn:
            db.upsert(
                conn,
                "sync_state",
                [
                    {
                        "source_name": key[0],
                        "scope": key[1],
                        "stream": key[2],
                        "cursor": json.dumps(state, sort_keys=True, default=str),
                        "updated_at": _now(),
                    }
                ],
            )

    def fail_scopes(self, src: SourceConfig, scopes: list[str], error: str) -> None:
        self.errors.append(error)
        now = _now()
        for (name, scope, _), stats in self.streams.items():
            if name == src.name and scope in scopes:
                stats.status, stats.error, stats.finished_at = "failed", error, now

    async def run_scope(self, connector: Connector, scope: str) -> None:
        src = connector.source
        async with self._semaphore:
            try:
                await connector.check_scope(scope)
            except Exception as exc:
                self.fail_scopes(src, [scope], _error(src.name, f"scope {scope!r}", exc))
                return
            failed = False
            for stream in connector.streams():
                key = (src.name, scope, stream.name)
                if failed:
                    stats = self.streams[key]
                    stats.status, stats.error = "skipped", "not run: an earlier stream failed"
                    stats.finished_at = _now()
                    await self.db(self._save_stream, key)
                    continue
                failed = not await self.run_stream(connector, stream, scope)
            if not failed and not self.backfill:
                await self.reconcile(
                    connector, scope, self._read_whole.pop((src.name, scope), None)
                )

    async def run_stream(self, connector: Connector, stream: Stream, scope: str) -> bool:
        """Run one stream of one scope; False when it failed (later streams are skipped)."""
        src = connector.source.name
        key = (src, scope, stream.name)
        stats = self.streams[key]
        stats.started_at = _now()
        handle = self.locks.claim(src, scope, stream.name)
        if handle is None:
            stats.status, stats.finished_at = "skipped", _now()
            stats.error = "another programview process is syncing this stream"
            self.notes.append(f"{src} {scope} {stream.name}: skipped, {stats.error}")
            log.info("%s %s %s: skipped, %s", src, scope, stream.name, stats.error)
            await self.db(self._save_stream, key)
            self._report(key)
            return True
        try:
            stats.status = "running"
            await self.db(self._save_stream, key)
            cursor_text = None if self.backfill else await self.db(self._load_cursor, key)
            cursor = json.loads(cursor_text) if cursor_text and not self.full else None
            options = self.options.for_stream(cursor, stream.cursor_field)
            writer = PageWriter(
                self.engine,
                source=src,
                scope=scope,
                stream=stream,
                run_id=self.run_id,
                store_cursor=not self.backfill,
                cursor_text=cursor_text,
            )
            # A complete read of the live-items stream lists every live id: keep them for
            # the deletion check (see ``reconcile``).
            whole = (
                stream.name == connector.live_stream
                and not options.window.bounded
                and not self.backfill
            )
            seen: set[str] = set()
            with tally_requests() as tally:
                try:
                    pages: AsyncIterator[Page] = stream.pages(scope, cursor, options)
                    async with _closing(pages):
                        async for page in pages:
                            if whole and not page.patch:
                                seen.update(_ids(stream, page.records))
                            done = await self.db(writer.write, page)
                            stats.pages += 1
                            stats.records += done.records
                            stats.skipped += done.skipped
                            stats.quarantined += done.quarantined
                            self.progress.page(src, scope, stream.name, len(page.records))
                            # Written: let it go before the next page is fetched and parsed,
                            # so one scope holds one page, not two (peak memory).
                            del page
                except Exception as exc:
                    stats.status, stats.error = "failed", _error(src, "", exc)
                    self.errors.append(_error(src, f"{scope} {stream.name}", exc))
                else:
                    stats.status = "partial" if stats.quarantined else "ok"
                    if whole:
                        self._read_whole[(src, scope)] = seen
                finally:
                    stats.requests = tally.count
            stats.finished_at = _now()
            await self.db(self._save_stream, key)
            self._report(key)
            return stats.status != "failed"
        finally:
            self.locks.release(handle, src, scope, stream.name)

    def _report(self, key: tuple[str, str, str]) -> None:
        stats = self.streams[key]
        self.progress.stream_done(
            *key,
            status=stats.status,
            records=stats.records,
            skipped=stats.skipped,
            pages=stats.pages,
            error=stats.error,
        )

    def _load_cursor(self, key: tuple[str, str, str]) -> str | None:
        t = db.table("sync_state")
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(t.c.cursor).where(
                    t.c.source_name == key[0], t.c.scope == key[1], t.c.stream == key[2]
                )
            ).scalar()

    async def reconcile(
        self, connector: Connector, scope: str, seen: set[str] | None = None
    ) -> None:
        """Mark work items that no longer exist in the source as deleted (and back).

        ``seen``: the ids a complete read of the connector's ``live_stream`` just listed (a
        first or full sync): they are the live ids, so no listing of its own is needed."""
        src = connector.source.name
        key = (src, scope, RECONCILE_STATE)
        every = timedelta(hours=self.config.sync.reconcile_hours)
        last = await self.db(self._load_cursor, key)
        recent = last and _now() - datetime.fromisoformat(json.loads(last)) < every
        if seen is None and recent and not self.full:
            return
        try:
            if seen is not None and connector.live_stream is not None:
                live: LiveIds | None = LiveIds(stream=connector.live_stream, native_ids=seen)
            else:
                live = await connector.live_ids(scope)
        except Exception as exc:
            self.errors.append(_error(src, f"scope {scope!r} deletion check", exc))
            return
        if live is None:
            return
        missing = await self.db(self._missing_ids, src, scope, live)
        verdicts: dict[str, str] = {}
        if missing:
            try:
                verdicts = await connector.classify_missing_items(scope, missing)
            except Exception as exc:  # a failed check deletes nothing
                self.errors.append(_error(src, f"scope {scope!r} deletion check", exc))
                return
        hidden = sorted(n for n, v in verdicts.items() if v == "hidden")
        if hidden:
            shown = ", ".join(hidden[:5]) + (
                f" and {len(hidden) - 5} more" if len(hidden) > 5 else ""
            )
            self.notes.append(
                f"[{src}] {len(hidden)} item(s) of {scope!r} still exist but this account can no "
                f"longer see them (kept, not marked deleted): {shown}"
            )
        gone = {n for n, v in verdicts.items() if v in ("deleted", "moved")}
        self.deleted += await self.db(self._apply_live_ids, src, scope, live, gone)

    def _missing_ids(self, source: str, scope: str, live: LiveIds) -> dict[str, str]:
        """Live work items of ``scope`` that the listing no longer has: native id -> key."""
        t = db.table("work_items")
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.native_id, t.c.item_key).where(
                    t.c.source_name == source, t.c.scope == scope, t.c.is_deleted.is_(False)
                )
            ).all()
            return {n: k for n, k in sorted(rows) if n not in live.native_ids}

    def _apply_live_ids(self, source: str, scope: str, live: LiveIds, gone_ids: set[str]) -> int:
        t = db.table("work_items")
        now = _now()
        with db.transaction(self.engine) as conn:
            rows = conn.execute(
                sa.select(t.c.id, t.c.native_id, t.c.is_deleted).where(
                    t.c.source_name == source, t.c.scope == scope
                )
            ).all()
            gone = [r.id for r in rows if r.native_id in gone_ids and not r.is_deleted]
            back = [r.id for r in rows if r.native_id in live.native_ids and r.is_deleted]
            for ids, values in (
                (gone, {"is_deleted": True, "deleted_at": now}),
                (back, {"is_deleted": False, "deleted_at": None}),
            ):
                for i in range(0, len(ids), db.BATCH_ROWS):
                    conn.execute(
                        sa.update(t).where(t.c.id.in_(ids[i : i + db.BATCH_ROWS])).values(values)
                    )
            db.upsert(
                conn,
                "sync_state",
                [
                    {
                        "source_name": source,
                        "scope": scope,
                        "stream": RECONCILE_STATE,
                        "cursor": json.dumps(now.isoformat()),
                        "updated_at": now,
                    }
                ],
            )
        return len(gone)


def _ids(stream: Stream, records: list[Any]) -> list[str]:
    """The native ids of a page's records that have one (the others are quarantined)."""
    out = []
    for raw in records:
        try:
            out.append(stream.native_id(raw))
        except Exception:  # noqa: BLE001 - an unreadable id is the writer's to quarantine
            continue
    return out


def _describe(exc: BaseException) -> str:
    """An exception as one line for run records: our errors speak for themselves."""
    text = " ".join(str(exc).split())
    if isinstance(exc, ProgramviewError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _error(source: str, where: str, exc: BaseException) -> str:
    """``"<source> <where>: <message>"`` without repeating a ConnectorError's ``[source]``."""
    text = _describe(exc).removeprefix(f"[{source}] ")
    return f"{source}{' ' + where if where else ''}: {text}"


@contextlib.asynccontextmanager
async def _closing(gen: AsyncIterator[Page]) -> AsyncIterator[None]:
    """Close an async generator of pages even when the consumer stops early."""
    try:
        yield
    finally:
        aclose = getattr(gen, "aclose", None)
        if aclose is not None:
            await aclose()


# --- public entry points ------------------------------------------------------------------


async def run_sync(
    config: Config,
    *,
    source: str | None = None,
    full: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Progress | None = None,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> RunResult:
    """Sync every configured source (or ``source``) into the warehouse; see module docstring.

    ``full`` ignores stored cursors (still skipping unchanged records by hash). ``since`` /
    ``until`` make a backfill: the streams read that window, and stored cursors are neither
    used nor moved. ``transports`` maps source names to httpx transports (tests, simulator).
    """
    since, until = _utc(since), _utc(until)
    if since and until and until <= since:
        raise ConfigError(f"backfill window is empty: until {until} is not after since {since}")
    if source is not None:
        config.source(source)  # unknown name: a clear ConfigError before touching anything
    progress = progress or Progress()
    engine = db.create_engine(config.warehouse.url)
    try:
        await asyncio.to_thread(db.ensure_current, engine)
        await asyncio.to_thread(mirror_config, engine, config)
        run = _Run(
            engine,
            config,
            source=source,
            full=full,
            since=since,
            until=until,
            progress=progress,
            transports=transports or {},
        )
        await asyncio.to_thread(run.start)
        try:
            await run.execute()
        except BaseException as exc:  # Ctrl-C, cancellation: record the run, then re-raise
            result = run.result(interrupted=f"interrupted: {_describe(exc)}")
            run.finish(result)
            progress.run_done(result)
            raise
        finally:
            run.locks.dispose()
        result = run.result()
        await asyncio.to_thread(run.finish, result)
        if result.wrote:  # newly discovered repositories join their container's project
            await asyncio.to_thread(mirror_config, engine, config)
        progress.run_done(result)
        return result
    finally:
        engine.dispose()


def sync(
    config: Config,
    *,
    source: str | None = None,
    full: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Progress | None = None,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> RunResult:
    """Blocking wrapper around :func:`run_sync` (CLI, daemon jobs, tests)."""
    return asyncio.run(
        run_sync(
            config,
            source=source,
            full=full,
            since=since,
            until=until,
            progress=progress,
            transports=transports,
        )
    )


def _utc(value: datetime | None) -> datetime | None:
    """Aware UTC (naive input is taken as UTC), so connectors can format it unambiguously."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


__all__ = [
    "PageWriter",
    "RunResult",
    "canonical_json",
    "mirror_config",
    "payload_hash",
    "run_sync",
    "sync",
]
