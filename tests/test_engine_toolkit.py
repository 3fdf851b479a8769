"""The engine services every connector builds on: cursor windows derived from a stream's
``cursor_field``, sticky annotations, patch pages, scope discovery and connector state.

A small in-test connector (no HTTP) drives the real engine against SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from programview.config import Config, ProjectConfig, SourceConfig, WarehouseConfig
from programview.normalize import ANNOTATION
from programview.sync import engine as engine_module
from programview.sync.connector import (
    Connector,
    LiveIds,
    Mapped,
    Page,
    Record,
    Replace,
    Stream,
    SyncOptions,
    Window,
)
from programview.sync.engine import CONNECTOR_SCOPE, CONNECTOR_STATE, sync
from programview.warehouse import db
from programview.warehouse.models import row_id
from programview.warehouse.payloads import read_text

SOURCE = "tk"


class World:
    """What the fake source holds; tests edit it between runs."""

    def __init__(self) -> None:
        self.items: dict[str, list[dict[str, Any]]] = {}
        self.patches: dict[str, list[dict[str, Any]]] = {}
        self.now = "2026-01-01T00:00:00"
        self.windows: list[tuple[str, Window]] = []
        self.containers: dict[str, list[str]] = {}
        self.fail_scope: str | None = None
        self.send_items = True  # False: the listing returns nothing (nothing changed)
        self.listings = 0  # deletion-check listings asked of the connector
        self.prepared_state: list[dict[str, Any]] = []


WORLD = World()


def _map_item(raw: dict[str, Any], scope: str) -> Mapped:
    item_id = row_id(SOURCE, raw["id"])
    notes = raw.get(ANNOTATION) or {}
    return [
        Record(
            "work_items",
            {
                "id": item_id,
                "source_name": SOURCE,
                "scope": scope,
                "native_id": str(raw["id"]),
                "item_key": f"{scope}#{raw['id']}",
                "title": raw.get("title"),
                "type_category": "story",
                "status_category": raw.get("status", "todo"),
                "story_points": notes.get("points"),
                "started_at": datetime.fromisoformat(notes["seen"]) if notes.get("seen") else None,
                "is_deleted": bool(raw.get("moved")),
            },
        ),
        Replace("dependencies", {"found_in": item_id}),
    ]


class Items(Stream):
    name = "items"
    cursor_field = "updated"
    sticky: ClassVar[tuple[str, ...]] = (f"{ANNOTATION}.seen",)

    def is_live(self, raw: dict[str, Any]) -> bool:
        return not raw.get("moved")  # like a GitLab issue moved to another project

    async def pages(
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        WORLD.windows.append((scope, options.window))
        if scope == WORLD.fail_scope:
            raise RuntimeError(f"{scope} is down")
        records = []
        for item in WORLD.items.get(scope, []) if WORLD.send_items else []:
            raw = json.loads(json.dumps(item))
            if raw.get("status") == "in_progress":  # an observation: first seen now
                raw.setdefault(ANNOTATION, {})["seen"] = WORLD.now
            records.append(raw)
        yield Page(records, cursor={"updated": WORLD.now})
        if WORLD.patches.get(scope):
            yield Page(json.loads(json.dumps(WORLD.patches[scope])), patch=True)

    def map(self, raw: dict[str, Any], scope: str) -> Mapped:
        return _map_item(raw, scope)


class Toolkit(Connector):
    kind: ClassVar[str] = "toolkit"
    live_stream: ClassVar[str | None] = "items"

    async def live_ids(self, scope: str) -> LiveIds | None:
        WORLD.listings += 1
        return LiveIds("items", {str(i["id"]) for i in WORLD.items.get(scope, [])})

    def streams(self) -> list[Stream]:
        return [Items(self)]

    async def prepare(self) -> None:
        WORLD.prepared_state.append(dict(self.state))
        self.state["runs"] = int(self.state.get("runs", 0)) + 1

    async def scopes(self) -> list[str]:
        out: list[str] = []
        for scope in self.source.scopes:
            out.extend(WORLD.containers.get(scope, [scope]))
        return out


@pytest.fixture(autouse=True)
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    global WORLD
    WORLD = World()
    monkeypatch.setattr(engine_module, "load_connector", lambda kind: Toolkit)
    return WORLD


def config(url: str, scopes: list[str], projects: dict[str, list[str]] | None = None) -> Config:
    return Config(
        warehouse=WarehouseConfig(url=url),
        sources=[
            SourceConfig(name=SOURCE, kind="toolkit", base_url="http://tk.test", scopes=scopes)
        ],
        projects=[
            ProjectConfig(key=k, name=k, scopes=[f"{SOURCE}:{s}" for s in v])
            for k, v in (projects or {}).items()
        ],
    )


def rows(engine: sa.Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


# --- windows ---------------------------------------------------------------------------------


def test_window_helper_cases() -> None:
    cursor = {"updated": "2026-01-01T10:00:00+00:00"}
    assert SyncOptions(lookback_minutes=5).window_for(cursor, "updated") == Window(
        datetime(2026, 1, 1, 9, 55, tzinfo=UTC)
    )
    assert SyncOptions().window_for(None, "updated") == Window()
    assert SyncOptions().window_for(cursor, None) == Window()
    assert SyncOptions(full=True).window_for(cursor, "updated") == Window()
    since, until = datetime(2025, 1, 1), datetime(2025, 2, 1, tzinfo=UTC)
    backfill = SyncOptions(since=since, until=until).window_for(cursor, "updated")
    assert backfill == Window(since.replace(tzinfo=UTC), until)
    assert backfill.contains(datetime(2025, 1, 15)) and not backfill.contains(datetime(2025, 3, 1))


def test_engine_derives_each_streams_window_from_its_cursor(
    engine: sa.Engine, warehouse_url: str, world: World
) -> None:
    world.items["A"] = [{"id": 1, "title": "one"}]
    cfg = config(warehouse_url, ["A"])
    sync(cfg)
    world.now = "2026-01-02T00:00:00"
    sync(cfg)
    assert [w for _, w in world.windows] == [
        Window(),
        Window(datetime(2026, 1, 1, tzinfo=UTC) - timedelta(minutes=10)),
    ]


# --- sticky annotations ----------------------------------------------------------------------


def test_first_observation_is_kept_while_the_payload_repeats_it_later(
    engine: sa.Engine, warehouse_url: str, world: World
) -> None:
    world.items["A"] = [{"id": 1, "title": "one", "status": "in_progress"}]
    cfg = config(warehouse_url, ["A"])
    first = sync(cfg)
    world.now = "2026-01-05T00:00:00"  # the stream would say "seen now" again
    second = sync(cfg)
    assert (first.records, second.records, second.skipped) == (1, 0, 1)
    world.items["A"][0]["title"] = "one, renamed"
    world.items["A"][0]["status"] = "done"  # no observation in the new payload
    third = sync(cfg)
    assert third.records == 1
    (row,) = rows(engine, "SELECT title, started_at FROM work_items")
    assert row.title == "one, renamed"
    assert str(row.started_at).startswith("2026-01-01")  # the first observation survives
    (stored,) = rows(engine, "SELECT payload FROM raw_payloads")
    assert (
        json.loads(payload_text(engine, stored.payload))[ANNOTATION]["seen"]
        == "2026-01-01T00:00:00"
    )


# --- patch pages -----------------------------------------------------------------------------


def test_patches_merge_into_stored_payloads_and_only_changes_are_mapped(
    engine: sa.Engine, warehouse_url: str, world: World
) -> None:
    world.items["A"] = [{"id": 1, "title": "one"}, {"id": 2, "title": "two"}]
    world.patches["A"] = [
        {"id": 1, ANNOTATION: {"points": 3.0}},
        {"id": 9, ANNOTATION: {"points": 8.0}},  # never stored: ignored
    ]
    cfg = config(warehouse_url, ["A"])
    first = sync(cfg)
    # page 1 writes both items; the patch page rewrites item 1 with its points
    assert first.records == 3 and first.status == "ok"
    points = dict(rows(engine, "SELECT native_id, story_points FROM work_items"))
    assert points == {"1": 3.0, "2": None}
    assert rows(engine, "SELECT COUNT(*) FROM raw_payloads")[0][0] == 2

    # nothing changed in the listing and the same patch comes again: nothing is mapped
    world.send_items = False
    second = sync(cfg)
    assert (second.records, second.skipped) == (0, 1)
    # a changed patch value changes that work item only; the rest of its payload stays
    world.patches["A"] = [{"id": 2, ANNOTATION: {"points": 5.0}}]
    third = sync(cfg)
    assert third.records == 1
    points = dict(rows(engine, "SELECT native_id, story_points FROM work_items"))
    assert points == {"1": 3.0, "2": 5.0}
    (title,) = rows(engine, "SELECT title FROM work_items WHERE native_id = '2'")[0]
    assert title == "two"
    (stored,) = rows(engine, "SELECT payload FROM raw_payloads WHERE native_id = '2'")
    assert json.loads(payload_text(engine, stored.payload)) == {
        "id": 2,
        "title": "two",
        ANNOTATION: {"points": 5.0},
    }


# --- scope discovery and containers ---------------------------------------------------------


def test_container_scopes_expand_and_their_project_takes_the_new_scopes(
    engine: sa.Engine, warehouse_url: str, world: World
) -> None:
    world.containers["org"] = ["org/web", "org/api"]
    world.items["org/web"] = [{"id": 1}]
    world.items["org/api"] = [{"id": 2}]
    world.items["solo"] = [{"id": 3}]
    cfg = config(
        warehouse_url, ["org", "solo"], {"WEB": ["org"], "API": ["org/api"], "SOLO": ["solo"]}
    )
    result = sync(cfg)
    assert result.status == "ok"
    streams = rows(engine, "SELECT scope FROM sync_run_streams WHERE run_id = :r", r=result.run_id)
    assert sorted(s.scope for s in streams) == ["org/api", "org/web", "solo"]
    scopes = set(rows(engine, "SELECT project_key, scope FROM project_scopes"))
    # the organisation's project takes the repository nobody names; API keeps its own
    assert scopes == {
        ("WEB", "org"),
        ("WEB", "org/web"),
        ("API", "org/api"),
        ("SOLO", "solo"),
    }
    projects = dict(rows(engine, "SELECT item_key, project_key FROM v_work_items"))
    assert projects == {"org/web#1": "WEB", "org/api#2": "API", "solo#3": "SOLO"}
    # a repository created later is picked up by the next run without a config edit
    world.containers["org"].append("org/docs")
    world.items["org/docs"] = [{"id": 4}]
    sync(cfg)
    projects = dict(rows(engine, "SELECT item_key, project_key FROM v_work_items"))
    assert projects["org/docs#4"] == "WEB"


# --- connector state --------------------------------------------------------------------------


def test_connector_state_persists_only_across_successful_runs(
    engine: sa.Engine, warehouse_url: str, world: World
) -> None:
    world.items["A"] = [{"id": 1}]
    world.items["B"] = [{"id": 2}]
    cfg = config(warehouse_url, ["A", "B"])
    sync(cfg)
    sync(cfg)
    assert world.prepared_state == [{}, {"runs": 1}]
    world.fail_scope = "B"
    failed = sync(cfg)
    assert failed.status == "partial"
    world.fail_scope = None
    sync(cfg)
    # the failed run's state was not saved: the next run starts from the last good one
    assert world.prepared_state[-2:] == [{"runs": 2}, {"runs": 2}]
    sync(cfg, full=True)  # a full sync starts from nothing
    assert world.prepared_state[-1] == {}
    (saved,) = rows(
        engine,
        "SELECT cursor FROM sync_state WHERE scope = :s AND stream = :st",
        s=CONNECTOR_SCOPE,
        st=CONNECTOR_STATE,
    )
    assert json.loads(saved.cursor) == {"runs": 1}
    assert db.column_names("sync_state")  # the state lives in the ordinary cursor table


def test_a_complete_read_is_the_deletion_checks_listing(
    engine: sa.Engine, warehouse_url: str, world: World
) -> None:
    world.items["A"] = [{"id": 1}, {"id": 2}]
    cfg = config(warehouse_url, ["A"])
    sync(cfg)
    assert world.listings == 0  # the first read listed every live id already
    del world.items["A"][1]
    sync(cfg, full=True)  # a full read of what is there now: item 2 is gone
    assert world.listings == 0
    live = {r.native_id: bool(r.is_deleted) for r in rows(engine, "SELECT * FROM work_items")}
    assert live == {"1": False, "2": True}
    world.now = "2026-01-02T00:00:00"
    cfg.sync.reconcile_hours = 0  # an incremental read lists nothing whole: it asks
    sync(cfg)
    assert world.listings == 1


def test_a_complete_read_does_not_count_a_moved_item_live(
    engine: sa.Engine, warehouse_url: str, world: World
) -> None:
    """A full read lists an item moved elsewhere (mapped deleted): the deletion check that
    uses the read's ids must not bring it back."""
    world.items["A"] = [{"id": 1}, {"id": 2, "moved": True}]
    sync(config(warehouse_url, ["A"]), full=True)
    assert world.listings == 0
    live = {r.native_id: bool(r.is_deleted) for r in rows(engine, "SELECT * FROM work_items")}
    assert live == {"1": False, "2": True}


def payload_text(engine: sa.Engine, blob: bytes) -> str:
    """A stored (compressed) raw payload as its JSON text."""
    with engine.connect() as conn:
        return read_text(conn, blob)
