"""``programview remap``: the current mapping applied again to the stored raw payloads.

Why: the warehouse keeps every record's latest raw payload (``raw_payloads``), and each
stream's ``map`` is a pure function of that payload and the connector's settings. After a
mapping option changes (the story-points field, the type map, a status override) or a new
programview version maps better, the rows can be rebuilt without one API call: no quota
spent, no waiting on a large site. Connectors set themselves up with
:meth:`~programview.sync.connector.Connector.prepare_offline`; their HTTP client is given a
transport that refuses every request, so "no API call" is guaranteed, not hoped for.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from programview.config import Config, SourceConfig
from programview.errors import ProgramviewError
from programview.http import HttpClient
from programview.sync.connector import Connector
from programview.sync.engine import (
    CONNECTOR_SCOPE,
    CONNECTOR_STATE,
    PageWriter,
    mirror_config,
)
from programview.sync.registry import load_connector
from programview.warehouse import db
from programview.warehouse.payloads import PayloadCodec

__all__ = ["RemapResult", "remap"]

#: Stored payloads mapped and written per transaction.
BATCH = 500

#: ``on_progress(source, stream, done, total)`` after each batch.
ProgressFn = Callable[[str, str, int, int], None]


class OfflineError(ProgramviewError):
    """An API call was attempted during a remap (a connector bug: remap is offline)."""


@dataclass
class RemapResult:
    records: int = 0  # stored payloads mapped again
    quarantined: int = 0  # stored payloads the current mapping rejects
    streams: dict[tuple[str, str], int] = field(default_factory=dict)


def _refuse(request: httpx.Request) -> httpx.Response:
    sent = f"{request.method} {request.url.path}"
    raise OfflineError(f"remap makes no API calls, yet {sent} was sent")


def remap(
    config: Config, *, source: str | None = None, on_progress: ProgressFn | None = None
) -> RemapResult:
    """Re-map the stored raw payloads of every source (or ``source``); see module docstring.
    The caller runs the transform afterwards (with ``full``: history may have changed)."""
    sources = [config.source(source)] if source is not None else list(config.sources)
    engine = db.create_engine(config.warehouse.url)
    result = RemapResult()
    try:
        db.ensure_current(engine)
        mirror_config(engine, config)
        for src in sources:
            _remap_source(engine, src, result, on_progress)
    finally:
        engine.dispose()
    return result


def _remap_source(
    engine: Engine, src: SourceConfig, result: RemapResult, on_progress: ProgressFn | None
) -> None:
    cls = load_connector(src.kind)
    http = HttpClient(src.base_url, source=src.name, transport=httpx.MockTransport(_refuse))
    connector: Connector = cls(src, http)
    connector.state = _load_state(engine, src.name)
    connector.prepare_offline()
    # Children first, parents last: a parent stream's own full rows (a Jira sprint from the
    # Agile API) then win over the partial copies children embed (the sprint as an
    # issue's Sprint field saw it, possibly before it closed), as in the sync that wrote them.
    for stream in reversed(connector.streams()):
        total = _count(engine, src.name, stream.name)
        done = 0
        for scope, stored in _batches(engine, src.name, stream.name):
            writer = PageWriter(engine, source=src.name, scope=scope, stream=stream)
            page = writer.remap(stored)
            result.records += page.records
            result.quarantined += page.quarantined
            done += len(stored)
            if on_progress is not None:
                on_progress(src.name, stream.name, done, total)
        result.streams[(src.name, stream.name)] = done


def _load_state(engine: Engine, source: str) -> dict[str, Any]:
    t = db.table("sync_state")
    with engine.connect() as conn:
        text = conn.execute(
            sa.select(t.c.cursor).where(
                t.c.source_name == source,
                t.c.scope == CONNECTOR_SCOPE,
                t.c.stream == CONNECTOR_STATE,
            )
        ).scalar()
    return json.loads(text) if text else {}


def _count(engine: Engine, source: str, stream: str) -> int:
    t = db.table("raw_payloads")
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(t)
                .where(t.c.source_name == source, t.c.stream == stream)
            ).scalar_one()
        )


def _batches(engine: Engine, source: str, stream: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(scope, native id -> payload text), at most ``BATCH`` payloads a read, read by keyset
    on the primary key so memory stays flat and no read sorts the whole stream."""
    t = db.table("raw_payloads")
    codec = PayloadCodec()
    after: str | None = None
    while True:
        query = sa.select(t.c.scope, t.c.native_id, t.c.payload).where(
            t.c.source_name == source, t.c.stream == stream
        )
        if after is not None:
            query = query.where(t.c.native_id > after)
        with engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.native_id).limit(BATCH)).all()
            if not rows:
                return
            texts = codec.decode(conn, [r.payload for r in rows])
        by_scope: dict[str, dict[str, str]] = {}
        for row, text in zip(rows, texts, strict=True):
            by_scope.setdefault(row.scope, {})[row.native_id] = text
        yield from by_scope.items()
        after = rows[-1].native_id
