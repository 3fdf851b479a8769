"""A connector used only by the test suite, registered like any third-party plugin.

``tests/plugin`` is on ``sys.path`` during tests (``pythonpath`` in pyproject.toml) and holds
``programview_testconnector-0.1.dist-info/entry_points.txt``, so
``importlib.metadata.entry_points(group="programview.connectors")`` finds ``testkind`` exactly
as it would find an installed package. The core never imports this module by name.

It talks to :class:`FakeApi`, a small deterministic in-memory API, either in-process through
``httpx.MockTransport`` (``api.transport()``, passed to the engine via ``transports=``) or over
real HTTP on 127.0.0.1 (``serve(api)``, for CLI tests). The fake can change items between
runs, delete them, break a payload (malformed field, crash in the middle of a page, Ctrl-C)
and fail requests at the transport level.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from programview.errors import MappingError
from programview.sync.connector import (
    Connector,
    ConnectorOptions,
    LiveIds,
    Mapped,
    Page,
    Raw,
    Record,
    Replace,
    Stream,
    SyncOptions,
)
from programview.warehouse.models import row_id

BASE_TIME = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
TOKEN = "tc-secret-token-5f3a9b"
STATUS_CATEGORY = {"To Do": "todo", "In Progress": "in_progress", "Done": "done"}


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    """ISO text -> naive UTC (the warehouse convention)."""
    return datetime.fromisoformat(value).astimezone(UTC).replace(tzinfo=None)


# --- the fake API ---------------------------------------------------------------------------


@dataclass
class Fault:
    """Fail requests whose path contains ``path`` ``times`` times: ``kind`` is ``connect``
    (connection refused), ``drop`` (connection dropped mid-body), ``500`` or ``garbage``
    (truncated JSON). ``times=None`` fails forever."""

    path: str
    kind: str
    times: int | None = 1
    query: dict[str, str] = field(default_factory=dict)


class FakeApi:
    """Deterministic projects of items, their status changes and sprints."""

    def __init__(self, scopes: tuple[str, ...] = ("ALPHA", "BETA"), items: int = 25) -> None:
        self.token = TOKEN
        self.items: dict[str, list[dict[str, Any]]] = {}
        self.sprints: dict[str, list[dict[str, Any]]] = {}
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, dict[str, str]]] = []
        self.complete_listing = True
        #: native ids that still exist but the token may no longer see (lookup answers 403)
        self.hidden: set[str] = set()
        self.clock = BASE_TIME + timedelta(days=30)
        self._lock = threading.Lock()
        for s, scope in enumerate(scopes):
            self.items[scope] = [self._make_item(scope, s, i) for i in range(1, items + 1)]
            self.sprints[scope] = [
                {
                    "id": s * 100 + n,
                    "name": f"{scope} Sprint {n}",
                    "state": "closed" if n < 3 else "active",
                    "start": iso(BASE_TIME + timedelta(days=14 * (n - 1))),
                    "end": iso(BASE_TIME + timedelta(days=14 * n)),
                }
                for n in (1, 2, 3)
            ]

    @staticmethod
    def _make_item(scope: str, s: int, i: int) -> dict[str, Any]:
        status = ("To Do", "In Progress", "Done")[i % 3]
        updated = BASE_TIME + timedelta(minutes=i)
        changes = []
        if status != "To Do":
            changes.append(("To Do", "In Progress"))
        if status == "Done":
            changes.append(("In Progress", "Done"))
        return {
            "id": s * 1000 + i,
            "key": f"{scope}-{i}",
            "title": f"{scope} item {i}",
            "type": ("Story", "Bug", "Task")[i % 3],
            "status": status,
            "points": (i % 5) + 1 if i % 7 else None,
            "created": iso(BASE_TIME),
            "updated": iso(updated),
            "blocked_by": [f"{scope}-{i - 1}"] if i % 4 == 0 else [],
            "changes": [
                {
                    "id": f"{s * 1000 + i}-{n}",
                    "item_id": s * 1000 + i,
                    "at": iso(BASE_TIME + timedelta(seconds=30 * n + i)),
                    "from": a,
                    "to": b,
                }
                for n, (a, b) in enumerate(changes, start=1)
            ],
        }

    # --- test controls ---

    def item(self, scope: str, key: str) -> dict[str, Any]:
        return next(i for i in self.items[scope] if i["key"] == key)

    def touch(self, scope: str, key: str, **fields: Any) -> dict[str, Any]:
        """Change an item like a user would: fields change and ``updated`` moves forward."""
        with self._lock:
            item = self.item(scope, key)
            item.update(fields)
            self.clock += timedelta(minutes=5)
            item["updated"] = iso(self.clock)
            return item

    def delete(self, scope: str, key: str) -> None:
        with self._lock:
            self.items[scope] = [i for i in self.items[scope] if i["key"] != key]

    def hide(self, scope: str, key: str) -> None:
        """The item leaves the listing but still exists: a direct lookup answers 403."""
        with self._lock:
            self.hidden.update(str(i["id"]) for i in self.items[scope] if i["key"] == key)
            self.items[scope] = [i for i in self.items[scope] if i["key"] != key]

    def item_requests(self, scope: str) -> list[dict[str, str]]:
        """Query parameters of every item-listing request for ``scope``, in order."""
        return [q for _, p, q in self.log if p == f"/api/projects/{scope}/items"]

    # --- HTTP ---

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        query = dict(request.url.params)
        with self._lock:
            self.log.append((request.method, path, query))
            fault = self._take_fault(path, query)
        if fault is not None:
            if fault.kind == "connect":
                raise httpx.ConnectError("connection refused", request=request)
            if fault.kind == "drop":
                raise httpx.RemoteProtocolError("peer closed connection", request=request)
            if fault.kind == "500":
                return httpx.Response(500, json={"message": "internal error"})
            if fault.kind == "garbage":
                return httpx.Response(
                    200, content=b'{"items": [', headers={"content-type": "application/json"}
                )
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return httpx.Response(401, json={"message": "Bad credentials"})
        with self._lock:
            return self._route(path.removeprefix("/api"), query)

    def _take_fault(self, path: str, query: dict[str, str]) -> Fault | None:
        for fault in self.faults:
            if fault.path in path and all(query.get(k) == v for k, v in fault.query.items()):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    def _route(self, path: str, query: dict[str, str]) -> httpx.Response:
        parts = path.strip("/").split("/")
        if parts == ["myself"]:
            return httpx.Response(200, json={"name": "tester"})
        if len(parts) < 2 or parts[0] != "projects":
            return httpx.Response(404, json={"message": "Not Found"})
        scope = parts[1]
        if scope not in self.items:
            return httpx.Response(404, json={"message": f"Project {scope} Not Found"})
        items = self.items[scope]
        rest = parts[2:]
        if not rest:
            return httpx.Response(200, json={"key": scope})
        if rest == ["items"]:
            selected = sorted(items, key=lambda i: (i["updated"], i["key"]))
            if "updated_since" in query:
                selected = [i for i in selected if i["updated"] >= query["updated_since"]]
            if "updated_before" in query:
                selected = [i for i in selected if i["updated"] < query["updated_before"]]
            page = int(query.get("page", "1"))
            per_page = int(query.get("per_page", "10"))
            chunk = selected[(page - 1) * per_page : page * per_page]
            more = page * per_page < len(selected)
            body = [{k: v for k, v in i.items() if k != "changes"} for i in chunk]
            return httpx.Response(
                200, json={"items": body, "next_page": page + 1 if more else None}
            )
        if rest == ["item_ids"]:
            return httpx.Response(
                200,
                json={"ids": [i.get("id") for i in items], "complete": self.complete_listing},
            )
        if len(rest) == 2 and rest[0] == "items":
            if rest[1] in self.hidden:
                return httpx.Response(403, json={"message": "Forbidden"})
            found = [i for i in items if str(i.get("id")) == rest[1]]
            if not found:
                return httpx.Response(404, json={"message": "Item Not Found"})
            return httpx.Response(200, json={"key": found[0]["key"]})
        if len(rest) == 3 and rest[0] == "items" and rest[2] == "changes":
            found = [i for i in items if str(i.get("id")) == rest[1]]
            if not found:
                return httpx.Response(404, json={"message": "Item Not Found"})
            return httpx.Response(200, json={"changes": found[0]["changes"]})
        if rest == ["sprints"]:
            return httpx.Response(200, json={"sprints": self.sprints[scope]})
        return httpx.Response(404, json={"message": "Not Found"})


@contextlib.contextmanager
def serve(api: FakeApi) -> Iterator[str]:
    """Serve ``api`` over real HTTP on 127.0.0.1; yields the base URL (``…/api``)."""

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            request = httpx.Request(
                self.command,
                f"http://127.0.0.1{self.path}",
                headers=dict(self.headers),
                content=body,
            )
            response = api.handle(request)
            payload = response.content
            self.send_response(response.status_code)
            self.send_header("content-type", response.headers.get("content-type", "text/plain"))
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _any

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()


# --- the connector --------------------------------------------------------------------------


class TestOptions(ConnectorOptions):
    page_size: int = 10


async def _item_pages(
    connector: TestConnector, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
) -> AsyncIterator[tuple[list[dict[str, Any]], dict[str, Any] | None]]:
    """Pages of items updated since the cursor (minus the lookback), oldest first."""
    params: dict[str, Any] = {"per_page": connector.options.page_size}
    if options.since is not None:
        params["updated_since"] = iso(options.since)
    elif cursor is not None:
        since = datetime.fromisoformat(cursor["updated"])
        params["updated_since"] = iso(since - timedelta(minutes=options.lookback_minutes))
    if options.until is not None:
        params["updated_before"] = iso(options.until)
    page = 1
    while True:
        body = await connector.http.get_json(
            f"/projects/{scope}/items", params={**params, "page": page}
        )
        items = body["items"]
        seen = [i["updated"] for i in items] + ([cursor["updated"]] if cursor else [])
        cursor = {"updated": max(seen)} if seen else None
        yield items, cursor
        if not body.get("next_page"):
            return
        page = body["next_page"]


class Items(Stream):
    name = "items"
    cursor_field = "updated"

    async def pages(  # type: ignore[override]
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        async for items, new_cursor in _item_pages(self.connector, scope, cursor, options):
            yield Page(records=items, cursor=new_cursor)

    def map(self, raw: Raw, scope: str) -> Mapped:
        explode = raw.get("_explode")
        if explode == "runtime":
            raise RuntimeError(f"simulated crash while mapping {raw['key']}")
        if explode == "interrupt":
            raise KeyboardInterrupt
        source = self.connector.source.name
        points = raw.get("points")
        if points is not None and not isinstance(points, int | float):
            raise MappingError(f"points must be a number, got {points!r}")
        wid = row_id(source, raw["id"])
        status = raw["status"]
        out: list[Record | Replace] = [
            Record(
                "work_items",
                {
                    "id": wid,
                    "source_name": source,
                    "scope": scope,
                    "native_id": str(raw["id"]),
                    "item_key": raw["key"],
                    "title": raw["title"],
                    "raw_type": raw["type"],
                    "type_category": raw["type"].lower(),
                    "raw_status": status,
                    "status_category": STATUS_CATEGORY[status],
                    "story_points": points,
                    "created_at": parse_time(raw["created"]),
                    "updated_at": parse_time(raw["updated"]),
                },
            ),
            Replace("dependencies", {"found_in": wid}),
        ]
        out.extend(
            Record(
                "dependencies",
                {
                    "found_in": wid,
                    "blocked_key": raw["key"],
                    "blocking_key": key,
                    "link_kind": "blocks",
                    "source_name": source,
                    "origin": "test_link",
                },
            )
            for key in raw["blocked_by"]
        )
        return out


class Changes(Stream):
    """A child stream: the status changes of the items listed since its own cursor."""

    name = "changes"
    cursor_field = "updated"

    async def pages(  # type: ignore[override]
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        async for items, new_cursor in _item_pages(self.connector, scope, cursor, options):
            records: list[Raw] = []
            for item in items:
                body = await self.connector.http.get_json(
                    f"/projects/{scope}/items/{item['id']}/changes"
                )
                records.extend(body["changes"])
            yield Page(records=records, cursor=new_cursor)

    def map(self, raw: Raw, scope: str) -> Mapped:
        source = self.connector.source.name
        return [
            Record(
                "status_changes",
                {
                    "work_item_id": row_id(source, raw["item_id"]),
                    "change_id": raw["id"],
                    "changed_at": parse_time(raw["at"]),
                    "from_status": raw["from"],
                    "to_status": raw["to"],
                    "from_category": STATUS_CATEGORY[raw["from"]],
                    "to_category": STATUS_CATEGORY[raw["to"]],
                },
            )
        ]


class Sprints(Stream):
    """Re-read whole every run (no cursor); unchanged sprints are skipped by hash."""

    name = "sprints"

    async def pages(  # type: ignore[override]
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        body = await self.connector.http.get_json(f"/projects/{scope}/sprints")
        yield Page(records=body["sprints"], cursor=None)

    def map(self, raw: Raw, scope: str) -> Mapped:
        source = self.connector.source.name
        return [
            Record(
                "sprints",
                {
                    "id": row_id(source, raw["id"]),
                    "source_name": source,
                    "scope": scope,
                    "native_id": str(raw["id"]),
                    "name": raw["name"],
                    "state": raw["state"],
                    "start_at": parse_time(raw["start"]),
                    "end_at": parse_time(raw["end"]),
                },
            )
        ]


class TestConnector(Connector):
    """``kind = "testkind"``: items (cursor, pages), changes (child stream), sprints."""

    __test__ = False  # not a pytest test class

    kind = "testkind"
    options_model = TestOptions
    credential_keys = ("token",)
    options: TestOptions

    @classmethod
    def auth_headers(cls, source: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {source.secret('token')}"}

    async def prepare(self) -> None:
        await self.http.get_json("/myself")

    def streams(self) -> list[Stream]:
        return [Items(self), Changes(self), Sprints(self)]

    async def check_scope(self, scope: str) -> None:
        await self.http.get_json(f"/projects/{scope}")

    async def live_ids(self, scope: str) -> LiveIds | None:
        body = await self.http.get_json(f"/projects/{scope}/item_ids")
        if not body.get("complete"):
            return None
        return LiveIds("items", {str(i) for i in body["ids"]})

    async def classify_missing(self, scope: str, native_ids: list[str]) -> dict[str, str]:
        verdicts = {}
        for native in native_ids:
            response = await self.http.request(
                "GET", f"/projects/{scope}/items/{native}", expect=(200, 403, 404)
            )
            verdicts[native] = {200: "live", 403: "hidden"}.get(response.status_code, "deleted")
        return verdicts


def config_toml(warehouse_url: str, base_url: str, scopes: tuple[str, ...] = ("ALPHA",)) -> str:
    """A programview.toml for this connector (token from ``$TC_TOKEN``)."""
    scope_list = json.dumps(list(scopes))
    return f"""
[warehouse]
url = {json.dumps(warehouse_url)}

[sync]
lookback_minutes = 0
reconcile_hours = 0

[[sources]]
name = "fake"
kind = "testkind"
base_url = {json.dumps(base_url)}
scopes = {scope_list}
credentials = {{ token = "${{TC_TOKEN}}" }}

[[programs]]
key = "PRG"
name = "Program"

[[projects]]
key = "P1"
name = "Project one"
program = "PRG"
scopes = {json.dumps([f"fake:{s}" for s in scopes])}
"""
