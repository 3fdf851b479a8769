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
import gc
import hashlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from programview import clock
from programview.config import Config, SourceConfig
from programview.errors import ConfigError, MappingError, ProgramviewError, WarehouseError
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
    Window,
)
from programview.sync.registry import load_connector
from programview.sync.validate import clean_mapped, clean_text, is_clean_id
from programview.warehouse import db, runs
from programview.warehouse.payloads import PayloadCodec

log = logging.getLogger("programview.sync")
#: one line per finished stream (see ``_Run._report``)
stream_log = logging.getLogger("programview.sync.streams")

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
    RecursionError,  # a payload nested thousands of levels deep
)
#: How deep a quarantined payload is kept (deeper levels are replaced by a marker): a payload
#: nested thousands of levels cannot even be serialised, yet its quarantine row must be.
QUARANTINE_DEPTH = 100

#: ``raw_payloads.native_id`` and ``quarantine.native_id`` hold this many characters.
NATIVE_ID_LENGTH = 200

#: ``sync_state.stream`` value that remembers when a scope's deletions were last reconciled.
RECONCILE_STATE = "__reconcile__"
#: ``sync_state`` (scope, stream) of a connector's own state between runs (``Connector.state``).
CONNECTOR_SCOPE = "*"
CONNECTOR_STATE = "__connector__"


class Stopped(ProgramviewError):
    """A stop was requested (SIGTERM, Ctrl-C): work in flight between pages is dropped."""


@dataclass
class RunResult:
    """What one sync run did (also stored in ``sync_runs``)."""

    run_id: int
    status: str  # ok | partial | failed | stopped
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


#: orjson leaves these to ``default=str``, as ``json.dumps`` did, so such a value (never in an
#: API's JSON, sometimes in a combined payload) keeps its text.
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def canonical_json(raw: Any) -> str:
    """Stable JSON text of a payload: sorted keys, no whitespace (the hash input).

    orjson writes the same text as ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` five times faster (it was a fifth of a page's write time, and most
    of an unchanged page's). What it cannot write (integers past 64 bits, lone surrogates,
    non-text keys, nesting past 254 levels) goes through ``json.dumps`` as before. Two
    spellings differ: a float below 1e-4 (``0.000015``, not ``1.5e-05``) and NaN or Infinity
    (not JSON; written ``null``): the first only costs one rewrite of such a record after an
    upgrade, the second was never a value a column takes.
    """
    try:
        return orjson.dumps(raw, default=str, option=_ORJSON_OPTIONS).decode()
    except (orjson.JSONEncodeError, TypeError):  # TypeError: a key that is not text
        return json.dumps(
            raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )


def payload_hash(text: str) -> str:
    """sha256 of the canonical text. ``surrogatepass``: a lone surrogate in an API's JSON
    (``"\\ud800"``) must not crash the hash; for valid text this is plain UTF-8."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _pruned(value: Any, depth: int) -> Any:
    """``value`` with containers deeper than ``depth`` replaced by a marker string."""
    if isinstance(value, dict):
        if depth <= 0:
            return "<nested deeper than this: cut>"
        return {str(k): _pruned(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if depth <= 0:
            return "<nested deeper than this: cut>"
        return [_pruned(v, depth - 1) for v in value]
    return value


def quarantine_json(raw: Any) -> str:
    """JSON text of any payload that every database accepts: non-ASCII escaped (lone
    surrogates and NUL included), levels deeper than ``QUARANTINE_DEPTH`` cut."""
    try:
        return json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    except (RecursionError, ValueError, TypeError):
        pruned = _pruned(raw, QUARANTINE_DEPTH)
        return json.dumps(pruned, sort_keys=True, separators=(",", ":"), default=str)


def payload_key(raw: Any) -> str:
    """The quarantine id of a record whose own id cannot be read: a stable hash of its
    payload, so the same bad record quarantined twice is recognisably the same."""
    return "sha256:" + payload_hash(quarantine_json(raw))


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
        state_stream: str | None = None,
    ) -> None:
        self.engine = engine
        self.source = source
        self.scope = scope
        self.stream = stream
        self.run_id = run_id
        self.store_cursor = store_cursor
        #: The cursor as last committed (JSON text), so an unchanged cursor is not rewritten.
        self.cursor_text = cursor_text
        #: the ``sync_state.stream`` the cursor goes to: a backfill keeps its own
        self.state_stream = state_stream or stream.name
        #: Compresses raw payloads (with the stream's preset dictionary, once it has one).
        self.codec = PayloadCodec()

    def write(self, page: Page) -> PageResult:
        try:
            return self._write(page)
        except BaseException:
            # a dictionary the codec created in the failed transaction is gone with it
            self.codec = PayloadCodec()
            raise

    def _write(self, page: Page) -> PageResult:
        result = PageResult()
        now = _now()
        quarantine: list[dict[str, Any]] = []

        # 1. Stable ids; a later copy of the same record in one page wins (overlapping pages).
        by_id: dict[str, Any] = {}
        for raw in page.records:
            try:
                native_id = self.stream.native_id(raw)
                why = is_clean_id(native_id, NATIVE_ID_LENGTH)
                if why:
                    raise ValueError(f"the id {why}")
            except Exception as exc:  # noqa: BLE001 - any failure to read the id is data
                quarantine.append(
                    self._quarantine_row(
                        payload_key(raw),
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
        bundles: list[_Bundle] = []  # the page's records, one by one (see _write_singly)
        refused: sa.exc.StatementError | None = None
        try:
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
                texts: dict[str, str] = {}
                for nid, raw in list(by_id.items()):
                    try:
                        texts[nid] = canonical_json(raw)
                    except (RecursionError, ValueError, TypeError) as exc:
                        del by_id[nid]  # nested too deep (or circular) to store: quarantined
                        quarantine.append(
                            self._quarantine_row(
                                nid, f"payload cannot be stored as JSON: {_describe(exc)}", raw, now
                            )
                        )
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
                        mapped = clean_mapped(list(self.stream.map(raw, self.scope)))
                    except QUARANTINE_ERRORS as exc:
                        quarantine.append(
                            self._quarantine_row(nid, f"{type(exc).__name__}: {exc}", raw, now)
                        )
                        continue
                    bundle = _Bundle(nid, raw)
                    for item in mapped:
                        if isinstance(item, Replace):
                            deletes.append(item)
                            bundle.deletes.append(item)
                        else:
                            upserts.setdefault(item.table, []).append(item.values)
                            bundle.upserts.setdefault(item.table, []).append(item.values)
                    bundle.raw_row = {
                        "source_name": self.source,
                        "stream": self.stream.name,
                        "native_id": nid,
                        "scope": self.scope,
                        "hash": hashes[nid],
                        "payload": texts[nid],  # compressed when written
                        "fetched_at": now,
                    }
                    raw_rows.append(bundle.raw_row)
                    bundles.append(bundle)
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
                self._commit(
                    conn, deletes, upserts, raw_rows, quarantine, cursor_moved, cursor_text
                )
        except sa.exc.StatementError as exc:
            if not (bundles and _refused_data(exc)):
                raise
            refused = exc  # the transaction is rolled back: nothing of the page was written
        if refused is not None:
            # The database refused a value the validator let through: find the record(s),
            # one transaction each, so the rest of the page still lands (and the stream is
            # not blocked by the same record on every rerun).
            self.codec = PayloadCodec()  # a dictionary made in the failed attempt is gone
            self._write_singly(bundles, quarantine, cursor_moved, cursor_text, result, now)
        if cursor_moved:
            self.cursor_text = cursor_text
        return result

    def _commit(
        self,
        conn: Connection,
        deletes: list[Replace],
        upserts: dict[str, list[dict[str, Any]]],
        raw_rows: list[dict[str, Any]],
        quarantine: list[dict[str, Any]],
        cursor_moved: bool,
        cursor_text: str | None,
    ) -> None:
        db.async_commit(conn)
        _apply_deletes(conn, deletes)
        for table_name, rows in upserts.items():
            db.upsert(conn, table_name, rows)
        if raw_rows:
            texts = [r["payload"] for r in raw_rows]
            blobs = self.codec.encode(conn, self.source, self.stream.name, texts)
            db.upsert(
                conn,
                "raw_payloads",
                [{**row, "payload": blob} for row, blob in zip(raw_rows, blobs, strict=True)],
            )
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
                        "stream": self.state_stream,
                        "cursor": cursor_text,
                        "updated_at": _now(),
                    }
                ],
            )

    def _write_singly(
        self,
        bundles: list[_Bundle],
        quarantine: list[dict[str, Any]],
        cursor_moved: bool,
        cursor_text: str | None,
        result: PageResult,
        now: datetime,
    ) -> None:
        """Each record of a refused page in its own transaction; those the database refuses
        are quarantined with its error. The quarantine and the cursor go last, so a crash
        in between only means the page is fetched again (every write here is an upsert)."""
        for bundle in bundles:
            try:
                with db.transaction(self.engine) as conn:
                    self._commit(
                        conn, bundle.deletes, bundle.upserts, [bundle.raw_row], [], False, None
                    )
            except sa.exc.StatementError as exc:
                if not _refused_data(exc):
                    raise
                self.codec = PayloadCodec()
                error = f"the database refused the record: {_describe(exc.orig or exc)}"
                quarantine.append(self._quarantine_row(bundle.nid, error, bundle.raw, now))
                result.records -= 1
        result.quarantined = len(quarantine)
        with db.transaction(self.engine) as conn:
            self._commit(conn, [], {}, [], quarantine, cursor_moved, cursor_text)

    def remap(self, stored: dict[str, str]) -> PageResult:
        """Map stored raw payloads (native id -> canonical JSON) again and write their rows,
        one transaction (``programview remap``). Raw payloads and cursors stay as they are;
        a payload the mapping now rejects is quarantined and keeps its previous rows."""
        result = PageResult()
        now = _now()
        quarantine: list[dict[str, Any]] = []
        deletes: list[Replace] = []
        upserts: dict[str, list[dict[str, Any]]] = {}
        for nid, text in stored.items():
            raw = json.loads(text)
            try:
                mapped = clean_mapped(list(self.stream.map(raw, self.scope)))
            except QUARANTINE_ERRORS as exc:
                quarantine.append(
                    self._quarantine_row(nid, f"{type(exc).__name__}: {exc}", raw, now)
                )
                continue
            for item in mapped:
                if isinstance(item, Replace):
                    deletes.append(item)
                else:
                    upserts.setdefault(item.table, []).append(_keep_deleted(item))
            result.records += 1
        result.quarantined = len(quarantine)
        with db.transaction(self.engine) as conn:
            _apply_deletes(conn, deletes)
            for table_name, rows in upserts.items():
                db.upsert(conn, table_name, rows)
            if quarantine:
                conn.execute(sa.insert(db.table("quarantine")), quarantine)
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
        """Stored payloads as canonical JSON text, by native id."""
        found = db.lookup(
            conn,
            "raw_payloads",
            {"source_name": self.source, "stream": self.stream.name},
            "native_id",
            ids,
            "payload",
        )
        return dict(zip(found, self.codec.decode(conn, found.values()), strict=True))

    def _quarantine_row(
        self, native_id: str | None, error: str, raw: Any, now: datetime
    ) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "source_name": self.source,
            "stream": self.stream.name,
            "scope": self.scope,
            "native_id": native_id,
            "error": clean_text(error)[:4000],
            "payload": quarantine_json(raw),
            "created_at": now,
        }


def _keep_deleted(record: Record) -> dict[str, Any]:
    """A remapped row's values without ``is_deleted = False``: the deletion check (not the
    payload) decided that an item is gone, so a remap of its last payload must not bring
    it back. A mapping that itself marks an item deleted (moved away) still does."""
    values = record.values
    if record.table == "work_items" and values.get("is_deleted") is False:
        return {k: v for k, v in values.items() if k not in ("is_deleted", "deleted_at")}
    return values


@dataclass
class _Bundle:
    """What one record writes (for writing a refused page record by record)."""

    nid: str
    raw: Any
    deletes: list[Replace] = field(default_factory=list)
    upserts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    raw_row: dict[str, Any] = field(default_factory=dict)


def _refused_data(exc: sa.exc.StatementError) -> bool:
    """Whether the database (or its driver) refused a *value*, not failed: a value too long
    or out of range, a NUL, a constraint, a value the driver cannot send. Connection loss,
    lock timeouts and SQL bugs are not data: they abort the page as before."""
    if isinstance(exc, sa.exc.OperationalError) or getattr(exc, "connection_invalidated", False):
        return False
    if isinstance(exc, sa.exc.DataError | sa.exc.IntegrityError):
        return True
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else getattr(exc, "orig", None)
    if isinstance(orig, TypeError | ValueError | OverflowError | UnicodeError):
        return True
    text = str(orig or exc).lower()
    return any(
        hint in text
        for hint in ("cannot adapt", "binding parameter", "not supported", "nul (0x00)")
    )


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
        """Never raises: a lock connection the server terminated (a restart,
        ``pg_terminate_backend``) already released its lock with its session, and the
        stream's outcome is recorded elsewhere; a traceback here only hid the real error."""
        if isinstance(handle, Connection):
            _close_quietly(
                handle,
                "SELECT pg_advisory_unlock(:k)",
                {"k": _lock_key(source, scope, stream)},
            )

    def connect(self) -> Connection:
        assert self._engine is not None
        return self._engine.connect()

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def _inserted_id(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _close_quietly(conn: Connection, sql: str | None = None, params: Any = None) -> None:
    """Run ``sql`` (an unlock) and close ``conn``, whatever state the session is in."""
    try:
        if sql is not None:
            conn.execute(sa.text(sql), params or {})
            conn.commit()
    except sa.exc.SQLAlchemyError as exc:
        log.debug("unlock on a broken lock connection: %s", _describe(exc))
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            conn.invalidate()
    finally:
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            conn.close()  # closing the session releases its locks in any case


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
        stop: threading.Event | None = None,
        fresh_since: datetime | None = None,
        fresh_until: datetime | None = None,
        scope: str | None = None,
    ) -> None:
        self.engine = engine
        self.fresh_since = fresh_since
        self.fresh_until = fresh_until
        self.only_scope = scope
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
        #: set from a signal handler (or the daemon) in another thread: see ``stopping``
        self.stop_requested = stop or threading.Event()
        self._stop = asyncio.Event()
        self._run_lock: Connection | None = None

    # --- stopping ---

    async def watch_stop(self) -> None:
        """Turn the thread-safe stop flag into the event the run's awaits race against."""
        while not self.stop_requested.is_set():
            await asyncio.sleep(0.1)
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    async def until_stopped(self, aw: Any) -> Any:
        """Await ``aw`` (a download, a rate-limit wait), or raise ``Stopped`` as soon as a
        stop is requested. Page writes never go through here: they always finish whole."""
        if self._stop.is_set():
            if asyncio.iscoroutine(aw):
                aw.close()
            raise Stopped("stopped before it started")
        task = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise Stopped("stopped during a download; nothing of it was written")

    # --- database helpers ---

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking database work in a thread, one at a time (one writer)."""
        async with self._db_lock:
            return await asyncio.to_thread(fn, *args)

    def start(self) -> None:
        """Close runs that died without finishing, then record this one as ``running``.

        On PostgreSQL the row is inserted on a connection of its own that takes the run's
        advisory lock in the same transaction and holds it until ``finish``: whoever sees
        the row ``running`` without that lock held knows the run is dead (``runs``)."""
        abandoned = runs.close_abandoned(self.engine)
        if abandoned:
            log.info("closed %d abandoned run(s): %s", len(abandoned), abandoned)
        insert = sa.insert(db.table("sync_runs")).values(
            kind=self.kind,
            source_name=self.source_name,
            started_at=_now(),
            status="running",
            records=0,
            skipped=0,
            requests=0,
            errors=0,
            quarantined=0,
            message=runs.owner_note(),
        )
        if not self.locks.enabled:
            with db.transaction(self.engine) as conn:
                self.run_id = _inserted_id(conn.execute(insert))
            return
        conn = self.locks.connect()
        try:
            self.run_id = _inserted_id(conn.execute(insert))
            conn.execute(
                sa.text("SELECT pg_advisory_lock(:k)"), {"k": runs.run_lock_key(self.run_id)}
            )
            conn.commit()
        except BaseException:
            _close_quietly(conn)
            raise
        self._run_lock = conn

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
        elif self.stopped:
            status = "stopped"
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
            elif stats.status == "pending" and self.stopped:
                stats.status, stats.error = "stopped", stats.error or "not run: stopped"
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
        self.release_run_lock()

    def release_run_lock(self) -> None:
        if self._run_lock is not None:
            _close_quietly(self._run_lock)
            self._run_lock = None

    # --- the work ---

    def selected_sources(self) -> list[SourceConfig]:
        if self.source_name is None:
            return list(self.config.sources)
        src = self.config.source(self.source_name)
        if self.only_scope is not None:  # the connector sees (and expands) only that scope
            src = src.model_copy(update={"scopes": [self.only_scope]})
        return [src]

    async def execute(self) -> None:
        """Every source to its end, even when one of them hits a bug or a dead database:
        a task left running would be cancelled by ``asyncio.run`` at shutdown and print its
        traceback there, after the run was already recorded."""
        watcher = asyncio.ensure_future(self.watch_stop())
        try:
            sources = self.selected_sources()
            outcomes = await asyncio.gather(
                *(self.run_source(src) for src in sources), return_exceptions=True
            )
        finally:
            watcher.cancel()
        for src, outcome in zip(sources, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome
                self.errors.append(_error(src.name, "", outcome))

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
                await self.until_stopped(connector.prepare())
                scopes = list(dict.fromkeys(await self.until_stopped(connector.scopes())))
            except Exception as exc:
                self.fail_scopes(src, src.scopes, _error(src.name, "", exc), exc)
                return
            self._expand_scopes(src, names, scopes)
            outcomes = await asyncio.gather(
                *(self.run_scope(connector, scope) for scope in scopes), return_exceptions=True
            )
            for scope, outcome in zip(scopes, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, Exception):
                        raise outcome
                    self.fail_scopes(src, [scope], _error(src.name, f"scope {scope!r}", outcome))
            self.notes.extend(f"[{src.name}] {note}" for note in connector.run_notes())
            if not self.backfill and not self.stopped and self._source_ok(src.name):
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

    def fail_scopes(
        self,
        src: SourceConfig,
        scopes: list[str],
        error: str,
        exc: BaseException | None = None,
    ) -> None:
        """Every not yet finished stream of ``scopes`` failed (or stopped, for ``Stopped``)."""
        status = "stopped" if isinstance(exc, Stopped) else "failed"
        if status == "failed":
            self.errors.append(error)
        else:
            error = "not run: stopped"
        now = _now()
        for (name, scope, _), stats in self.streams.items():
            if name == src.name and scope in scopes and stats.finished_at is None:
                stats.status, stats.error, stats.finished_at = status, error, now

    async def run_scope(self, connector: Connector, scope: str) -> None:
        src = connector.source
        async with self._semaphore:
            try:
                await self.until_stopped(connector.check_scope(scope))
            except Exception as exc:
                self.fail_scopes(src, [scope], _error(src.name, f"scope {scope!r}", exc), exc)
                return
            failed = False
            for stream in connector.streams():
                key = (src.name, scope, stream.name)
                if self.stopped:
                    failed = True
                    continue  # ``finish`` records them as stopped, not run
                if failed:
                    stats = self.streams[key]
                    stats.status, stats.error = "skipped", "not run: an earlier stream failed"
                    stats.finished_at = _now()
                    await self.db(self._save_stream, key)
                    continue
                failed = not await self.run_stream(connector, stream, scope)
            if not failed and not self.backfill and not self.stopped:
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
        if handle is None and self.fresh_since is not None:
            handle = await self._claim_after_an_overrun(key)
        if handle is None:
            stats.status, stats.finished_at = "skipped", _now()
            stats.error = "another programview process is syncing this stream"
            self.notes.append(f"{src} {scope} {stream.name}: skipped, {stats.error}")
            log.info("%s %s %s: skipped, %s", src, scope, stream.name, stats.error)
            await self.db(self._save_stream, key)
            self._report(key)
            return True
        try:
            fresh = await self.db(self._synced_since, key) if self.fresh_since else None
            if fresh is not None:
                stats.status, stats.finished_at = "skipped", _now()
                stats.error = f"already synced in this tick by run {fresh}"
                log.info("%s %s %s: skipped, %s", src, scope, stream.name, stats.error)
                await self.db(self._save_stream, key)
                self._report(key)
                return True
            stats.status = "running"
            await self.db(self._save_stream, key)
            state_key = key
            if self.backfill:
                # its own window cursor: a stopped or crashed backfill resumes where it was,
                # and the incremental cursor is never touched (never moved backwards)
                state_key = (src, scope, backfill_state(stream.name, self.options))
            cursor_text = None
            if not self.backfill or stream.cursor_field:
                cursor_text = await self.db(self._load_cursor, state_key)
            cursor = json.loads(cursor_text) if cursor_text and not self.full else None
            options = self.options.for_stream(cursor, stream.cursor_field)
            if self.backfill:
                options = self._resume_window(options, cursor, stream.cursor_field, key)
            writer = PageWriter(
                self.engine,
                source=src,
                scope=scope,
                stream=stream,
                run_id=self.run_id,
                store_cursor=not self.backfill or bool(stream.cursor_field),
                cursor_text=cursor_text,
                state_stream=state_key[2],
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
                        while True:
                            try:
                                page = await self.until_stopped(anext(pages))
                            except StopAsyncIteration:
                                break
                            if whole and not page.patch:
                                seen.update(_ids(stream, page.records))
                            done = await self.db(writer.write, page)
                            stats.pages += 1
                            stats.records += done.records
                            stats.skipped += done.skipped
                            stats.quarantined += done.quarantined
                            self.progress.page(src, scope, stream.name, len(page.records))
                            if self.backfill:
                                self._report_position(key, page, stream.cursor_field)
                            # Written: let it go before the next page is fetched and parsed,
                            # so one scope holds one page, not two (peak memory).
                            del page
                except Stopped:
                    stats.status, stats.error = "stopped", "stopped after page " + str(stats.pages)
                except Exception as exc:
                    stats.status, stats.error = "failed", _error(src, "", exc)
                    self.errors.append(_error(src, f"{scope} {stream.name}", exc))
                else:
                    stats.status = "partial" if stats.quarantined else "ok"
                    if whole:
                        self._read_whole[(src, scope)] = seen
                    if state_key != key:  # the window is done: a rerun starts it afresh
                        await self.db(self._drop_state, state_key)
                finally:
                    stats.requests = tally.count
            stats.finished_at = _now()
            await self._save_stream_quietly(key)
            self._report(key)
            return stats.status not in ("failed", "stopped")
        finally:
            self.locks.release(handle, src, scope, stream.name)

    async def _save_stream_quietly(self, key: tuple[str, str, str]) -> None:
        """The stream's row now, for a live view; when the warehouse refuses (the very
        failure the stream just recorded), ``finish`` writes it again with the run."""
        try:
            await self.db(self._save_stream, key)
        except sa.exc.SQLAlchemyError as exc:
            log.debug("could not record %s yet: %s", key, _describe(exc))

    def _report(self, key: tuple[str, str, str]) -> None:
        stats = self.streams[key]
        seconds = 0.0
        if stats.started_at and stats.finished_at:
            seconds = (stats.finished_at - stats.started_at).total_seconds()
        self.progress.stream_done(
            *key,
            status=stats.status,
            records=stats.records,
            skipped=stats.skipped,
            pages=stats.pages,
            error=stats.error,
            requests=stats.requests,
            seconds=seconds,
        )
        # One structured line per stream for log shippers (`--log-format json`); the text
        # format shows them only at DEBUG (the daemon promises one line per run).
        stream_log.info(
            "%s %s %s: %s, %d records written, %d unchanged, %d requests in %.1fs%s",
            *key,
            stats.status,
            stats.records,
            stats.skipped,
            stats.requests,
            seconds,
            f"; {stats.error}" if stats.error else "",
            extra={
                "run": self.run_id,
                "source": key[0],
                "scope": key[1],
                "stream": key[2],
                "status": stats.status,
                "records": stats.records,
                "skipped": stats.skipped,
                "requests": stats.requests,
                "quarantined": stats.quarantined,
                "duration": round(seconds, 3),
                "error": stats.error,
            },
        )

    def _resume_window(
        self,
        options: SyncOptions,
        cursor: dict[str, Any] | None,
        cursor_field: str | None,
        key: tuple[str, str, str],
    ) -> SyncOptions:
        """A backfill window that starts where an earlier run of the same window stopped
        (its committed cursor, minus the lookback; pages come in cursor order)."""
        if not cursor or not cursor_field or not cursor.get(cursor_field):
            return options
        reached = datetime.fromisoformat(str(cursor[cursor_field]))
        reached = reached.replace(tzinfo=UTC) if reached.tzinfo is None else reached
        since = options.window.since
        start = max(since, reached - options.lookback) if since else reached - options.lookback
        log.info("%s %s %s: resuming the backfill from %s", *key, start.isoformat())
        self.notes.append(f"{' '.join(key)}: backfill resumed from {start:%Y-%m-%d %H:%M}")
        # the rest of the window is a backfill of its own (connectors derive their window
        # from ``since``/``until``); its state key stays the whole window's
        return replace(options, since=start, window=Window(start, options.window.until))

    def _report_position(
        self, key: tuple[str, str, str], page: Page, cursor_field: str | None
    ) -> None:
        """How far into the backfill window the stream is (0..1), for the ETA."""
        window = self.options.window_for(None, None)
        value = (page.cursor or {}).get(cursor_field) if cursor_field else None
        if window.since is None or not value:
            return
        try:
            reached = datetime.fromisoformat(str(value))
        except ValueError:
            return
        reached = reached.replace(tzinfo=UTC) if reached.tzinfo is None else reached
        end = window.until or datetime.now(UTC)
        total = (end - window.since).total_seconds()
        if total > 0:
            done = min(max((reached - window.since).total_seconds() / total, 0.0), 1.0)
            self.progress.position(*key, done)

    def _drop_state(self, key: tuple[str, str, str]) -> None:
        t = db.table("sync_state")
        with db.transaction(self.engine) as conn:
            conn.execute(
                sa.delete(t).where(
                    t.c.source_name == key[0], t.c.scope == key[1], t.c.stream == key[2]
                )
            )

    async def _claim_after_an_overrun(self, key: tuple[str, str, str]) -> Connection | None | bool:
        """The stream is claimed. By a run of this tick: it syncs the stream for this tick,
        skip it. By a run of an earlier tick that overran into this one: wait for it (until
        the tick ends), so the stream is still synced once in this tick."""
        started = await self.db(self._holder_started, key)
        if started is None or self.fresh_since is None or started >= self.fresh_since:
            return None
        while not self.stopped and (self.fresh_until is None or _now() < self.fresh_until):
            await asyncio.sleep(0.2)
            handle = self.locks.claim(*key)
            if handle is not None:
                return handle
        return None

    def _holder_started(self, key: tuple[str, str, str]) -> datetime | None:
        """When the other run now syncing this stream started (None: none recorded yet)."""
        t, r = db.table("sync_run_streams"), db.table("sync_runs")
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.max(r.c.started_at))
                .select_from(t)
                .join(r, r.c.id == t.c.run_id)
                .where(
                    t.c.source_name == key[0],
                    t.c.scope == key[1],
                    t.c.stream == key[2],
                    t.c.run_id != self.run_id,
                    t.c.status == "running",
                    r.c.status == "running",
                )
            ).scalar()

    def _synced_since(self, key: tuple[str, str, str]) -> int | None:
        """Another run of this tick (started in ``fresh_since`` .. ``fresh_until``) that
        synced this stream successfully. Several daemons on one schedule: the stream's lock
        is ours now, so that run is done with it. The run's start decides the tick, not the
        stream's: a run that overran into the next tick does not count for that one."""
        t, r = db.table("sync_run_streams"), db.table("sync_runs")
        in_tick = r.c.started_at >= self.fresh_since
        if self.fresh_until is not None:
            in_tick = sa.and_(in_tick, r.c.started_at < self.fresh_until)
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.max(t.c.run_id))
                .join(r, r.c.id == t.c.run_id)
                .where(
                    t.c.source_name == key[0],
                    t.c.scope == key[1],
                    t.c.stream == key[2],
                    t.c.run_id != self.run_id,
                    t.c.status.in_(("ok", "partial")),
                    in_tick,
                )
            ).scalar()

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
                live = await self.until_stopped(connector.live_ids(scope))
        except Stopped:
            return
        except Exception as exc:
            self.errors.append(_error(src, f"scope {scope!r} deletion check", exc))
            return
        if live is None:
            return
        missing = await self.db(self._missing_ids, src, scope, live)
        verdicts: dict[str, str] = {}
        if missing:
            try:
                verdicts = await self.until_stopped(
                    connector.classify_missing_items(scope, missing)
                )
            except Stopped:
                return
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


def backfill_state(stream: str, options: SyncOptions) -> str:
    """The ``sync_state.stream`` of a backfill window's own cursor: one per window, so
    rerunning the same ``backfill --since --until`` resumes it, and a different window
    starts afresh."""
    since = options.since.strftime("%Y%m%dT%H%M%S") if options.since else "start"
    until = options.until.strftime("%Y%m%dT%H%M%S") if options.until else "now"
    return f"{stream}#backfill {since}..{until}"


def _ids(stream: Stream, records: list[Any]) -> list[str]:
    """The native ids of a page's live records that have one (the others are quarantined)."""
    out = []
    for raw in records:
        try:
            if stream.is_live(raw):
                out.append(stream.native_id(raw))
        except Exception:  # noqa: BLE001 - an unreadable id is the writer's to quarantine
            continue
    return out


def _describe(exc: BaseException) -> str:
    """An exception as one line for run records: our errors speak for themselves, a
    database error by its server message (not SQLAlchemy's statement and parameters)."""
    if isinstance(exc, sa.exc.DBAPIError):
        return "warehouse: " + db_message(exc)
    text = " ".join(str(exc).split())
    if isinstance(exc, ProgramviewError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def db_message(exc: sa.exc.SQLAlchemyError) -> str:
    """The first line the database (driver) said, without SQL or bound values."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    first = text[0].strip() if text else type(exc).__name__
    return first or type(orig or exc).__name__


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
    stop: threading.Event | None = None,
    fresh_since: datetime | None = None,
    scope: str | None = None,
    fresh_until: datetime | None = None,
) -> RunResult:
    """Sync every configured source (or ``source``) into the warehouse; see module docstring.

    ``scope`` (with ``source``) syncs only that configured scope: one task of an external
    orchestrator. ``fresh_since`` .. ``fresh_until`` (naive UTC, the schedule tick) skips a
    stream another run of that tick synced successfully: several daemons on one schedule
    sync each stream once per tick.

    ``stop`` (set from a signal handler or another thread) ends the run within moments: the
    page being written commits whole, downloads and waits in flight are dropped, and the
    run is recorded ``stopped``; the next run carries on from the last committed page.
    A database failure of the run's own bookkeeping raises ``WarehouseError`` (one line).

    ``full`` ignores stored cursors (still skipping unchanged records by hash). ``since`` /
    ``until`` make a backfill: the streams read that window, and stored cursors are neither
    used nor moved. ``transports`` maps source names to httpx transports (tests, simulator).
    """
    since, until = _utc(since), _utc(until)
    if since and until and until <= since:
        raise ConfigError(f"backfill window is empty: until {until} is not after since {since}")
    if source is not None:
        src = config.source(source)  # unknown name: a clear ConfigError before touching anything
        if scope is not None and scope not in src.scopes:
            known = ", ".join(src.scopes) or "none"
            raise ConfigError(
                f"source {source!r} has no scope {scope!r}: its configured scopes are {known}"
            )
    elif scope is not None:
        raise ConfigError("--scope needs --source: a scope belongs to one source")
    progress = progress or Progress()
    engine = db.create_engine(config.warehouse.url)
    try:
        return await _run_sync(
            engine,
            config,
            source,
            full,
            since,
            until,
            progress,
            transports,
            stop,
            fresh_since,
            scope,
            fresh_until,
        )
    except sa.exc.SQLAlchemyError as exc:
        raise WarehouseError(
            f"the warehouse {db.redact_url(config.warehouse.url)} failed: {db_message(exc)} "
            "(committed pages are kept; run the sync again once the database is back)"
        ) from None
    finally:
        engine.dispose()


async def _run_sync(
    engine: Engine,
    config: Config,
    source: str | None,
    full: bool,
    since: datetime | None,
    until: datetime | None,
    progress: Progress,
    transports: dict[str, httpx.AsyncBaseTransport] | None,
    stop: threading.Event | None,
    fresh_since: datetime | None,
    scope: str | None,
    fresh_until: datetime | None = None,
) -> RunResult:
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
        stop=stop,
        fresh_since=fresh_since,
        fresh_until=fresh_until,
        scope=scope,
    )
    await asyncio.to_thread(run.start)
    try:
        try:
            await run.execute()
        except BaseException as exc:  # Ctrl-C, cancellation: record the run, then re-raise
            result = run.result(interrupted=f"interrupted: {_describe(exc)}")
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                run.finish(result)
            progress.run_done(result)
            raise
        result = run.result()
        await asyncio.to_thread(run.finish, result)
    finally:
        run.release_run_lock()  # after finish: the row is never "running" without it
        run.locks.dispose()
    if result.wrote:  # newly discovered repositories join their container's project
        await asyncio.to_thread(mirror_config, engine, config)
    progress.run_done(result)
    return result


def sync(
    config: Config,
    *,
    source: str | None = None,
    full: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Progress | None = None,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    stop: threading.Event | None = None,
    fresh_since: datetime | None = None,
    scope: str | None = None,
    fresh_until: datetime | None = None,
) -> RunResult:
    """Blocking wrapper around :func:`run_sync` (CLI, daemon jobs, tests)."""
    with _fewer_collections():
        return asyncio.run(
            run_sync(
                config,
                source=source,
                full=full,
                since=since,
                until=until,
                progress=progress,
                transports=transports,
                stop=stop,
                fresh_since=fresh_since,
                scope=scope,
                fresh_until=fresh_until,
            )
        )


#: The garbage collector's first threshold while a sync runs (Python's default: 700).
#: Parsing a page makes a million short-lived objects, each 700 of which started a
#: collection; at 10,000 a Jira Cloud full sync took 10-15% less time at the same peak
#: memory (50,000 raised the peak by half: cycles wait too long).
SYNC_GC_THRESHOLD = 10_000
_gc_lock = threading.Lock()
_gc_users = 0
_gc_saved: tuple[int, int, int] = (700, 10, 10)


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Raise the first GC threshold for the sync's duration; the last concurrent sync (the
    daemon may run several in threads) to finish puts the old thresholds back."""
    global _gc_users, _gc_saved
    with _gc_lock:
        if _gc_users == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(max(_gc_saved[0], SYNC_GC_THRESHOLD), *_gc_saved[1:])
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0:
                gc.set_threshold(*_gc_saved)


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
