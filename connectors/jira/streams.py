"""What the Jira connector pulls, page by page: endpoints, paging, cursors.

Streams, in the order they run for a project (a scope is a Jira project key):

=========  ====================================================  ==========================
stream     endpoint (Cloud v3 / Data Center v2)                   paging, cursor
=========  ====================================================  ==========================
sprints    ``/rest/agile/1.0/board?projectKeyOrId=`` then         ``startAt`` + ``isLast``;
           ``/board/{id}/sprint`` per (non-kanban) board          always re-read (few)
versions   ``/rest/api/N/project/{key}/versions``                 unpaged; cursor remembers
                                                                  which were seen unreleased
issues     Cloud ``GET /rest/api/3/search/jql``,                  ``nextPageToken`` (Cloud),
           DC ``GET /rest/api/2/search``, ``expand=changelog``    ``startAt`` (DC); cursor =
                                                                  max ``updated`` seen
=========  ====================================================  ==========================

Worklogs ride along with issues: the search returns up to 20 worklogs per issue in the
``worklog`` field, and adding, editing or deleting a worklog moves the issue's ``updated``, so
the issue cursor already finds them. Only an issue with more worklogs than embedded costs a
request (``/issue/{id}/worklog``). Likewise the changelog: the search embeds the first entries;
only truncated ones are completed, in bulk on Cloud (``POST /changelog/bulkfetch``, 1000 issues
a call) and per issue on Data Center.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from programview.errors import ApiError, MappingError, NotFound
from programview.sync.connector import Mapped, Page, Stream, SyncOptions
from programview.sync.paging import OffsetPaginator, PageRequest, TokenPaginator, paginate

from .mapping import (
    ANNOTATION,
    attach_status_categories,
    changelog_is_complete,
    map_issue,
    map_sprint,
    map_version,
    parse_time,
    worklog_is_complete,
)

if TYPE_CHECKING:
    from . import JiraConnector

log = logging.getLogger("programview.connectors.jira")

Raw = dict[str, Any]

#: Enhanced JQL search: ``maxResults`` 1..5000 (the server may return fewer per page).
CLOUD_SEARCH_PAGE = 5000
#: What Cloud returns per page, whatever ``maxResults``, once fields beyond id and key are
#: asked for ("pages shrink when many fields are requested (~100)").
CLOUD_PAGE_CAP = 100
#: Data Center: ``jira.search.views.default.max`` is 1000 unless an admin changed it.
DC_SEARCH_PAGE = 1000
#: Agile API list endpoints (boards, sprints) serve at most 50 per page.
AGILE_PAGE = 50
#: ``POST /changelog/bulkfetch``: up to 1000 issues and 10000 histories per call.
BULK_CHANGELOG_ISSUES = 1000
BULK_CHANGELOG_PAGE = 10000
#: ``/issue/{id}/changelog`` page size (Cloud, when bulk fetch is unavailable).
ISSUE_CHANGELOG_PAGE = 100
#: ``/issue/{id}/worklog`` page size.
WORKLOG_PAGE = 5000
#: Issues held back (pages not yet committed) while filling one bulk changelog call.
MAX_HELD_ISSUES = 5000
#: Per-issue completions (changelog on DC, long worklogs) run this many at a time.
PER_ISSUE_CONCURRENCY = 8
#: Issues written per page transaction: a bigger search page (Data Center: 1,000) is
#: written in chunks of this many, each committed with its own cursor (see ``_in_chunks``).
WRITE_CHUNK = 250


def epoch_ms(moment: datetime) -> int:
    """A naive-UTC or aware datetime as epoch milliseconds (JQL reads numbers as epoch ms)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return int(aware.timestamp() * 1000)


def jql_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def issues_jql(
    scope: str, cursor: dict[str, Any] | None, options: SyncOptions
) -> tuple[str, datetime | None]:
    """The search JQL for one project, and the lower bound it uses.

    The window comes from :meth:`SyncOptions.window_for` on the ``updated`` cursor (the
    committed cursor minus ``lookback_minutes``, or the backfill window). The bound is sent
    as epoch milliseconds: a date string in JQL is read in the API user's time zone at minute
    precision, which makes a sync skip issues updated in the minute of the cursor. The
    lookback overlap is deduplicated by issue id.
    """
    window = options.window_for(cursor, Issues.cursor_field)
    clauses = [f"project = {jql_quote(scope)}"]
    if window.since is not None:
        clauses.append(f"updated >= {epoch_ms(window.since)}")
    if window.until is not None:
        clauses.append(f"updated <= {epoch_ms(window.until)}")
    return " AND ".join(clauses) + " ORDER BY updated ASC, key ASC", window.since


async def _bounded(tasks: list[Callable[[], Awaitable[None]]], limit: int) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def run(task: Callable[[], Awaitable[None]]) -> None:
        async with semaphore:
            await task()

    await asyncio.gather(*(run(t) for t in tasks))


class JiraStream(Stream):
    connector: JiraConnector

    def __init__(self, connector: JiraConnector) -> None:
        super().__init__(connector)
        self.connector = connector


# --- sprints ----------------------------------------------------------------------------------


class Sprints(JiraStream):
    """Every sprint (future, active, closed) of the project's boards, from the Agile API.

    A sprint is attributed to the project whose board it was created on (``originBoardId``):
    a multi-project board lists the same sprints for each project, and only the board's own
    project (its ``location``) keeps them. Kanban boards have no sprints and are skipped.
    """

    name = "sprints"
    page_size = AGILE_PAGE
    cursor_field = None
    primary_key = "id"

    async def pages(
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        http = self.connector.http
        owned = {str(b["id"]) for b in await self.connector.boards(scope) if _owns(b, scope)}
        seen: set[str] = set()
        for board_id in sorted(owned, key=lambda b: (len(b), b)):
            listing = paginate(
                http,
                PageRequest(f"/rest/agile/1.0/board/{board_id}/sprint"),
                OffsetPaginator(limit=self.page_size),
                records="values",
            )
            try:
                async for page in listing:
                    records = []
                    for sprint in page.records:
                        if not isinstance(sprint, dict):
                            continue
                        sid = str(sprint.get("id"))
                        origin = sprint.get("originBoardId")
                        if sid in seen or (origin is not None and str(origin) not in owned):
                            continue
                        seen.add(sid)
                        records.append(sprint)
                    if records:
                        yield Page(records)
            except ApiError as exc:
                if exc.status != 400:  # 400: "The board does not support sprints"
                    raise

    def map(self, raw: Raw, scope: str) -> Mapped:
        return map_sprint(raw, scope, self.connector.source.name)


def _owns(board: Raw, scope: str) -> bool:
    location = board.get("location")
    if not isinstance(location, dict) or not location.get("projectKey"):
        return board.get("type") != "kanban"
    return location["projectKey"] == scope and board.get("type") != "kanban"


# --- versions ---------------------------------------------------------------------------------


class Versions(JiraStream):
    """The project's versions (fix versions), all of them in one unpaged call.

    Jira keeps no release timestamp, so the cursor remembers which versions were seen
    unreleased and when each was first seen released; that time travels in the raw payload
    (``programview.first_seen_released_at``) so the mapping stays a pure function.
    """

    name = "versions"
    page_size = 0  # unpaged
    cursor_field = None
    primary_key = "id"

    async def pages(
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        versions = await self.connector.project_versions(scope)
        state = cursor or {}
        unreleased = {str(v) for v in state.get("unreleased") or []}
        released_at: dict[str, str] = dict(state.get("released_at") or {})
        now = self.connector.clock().isoformat()
        records: list[Raw] = []
        for version in versions:
            if not isinstance(version, dict) or version.get("id") is None:
                records.append(version)  # quarantined by the engine, with the payload
                continue
            vid = str(version["id"])
            record = dict(version)
            if version.get("released"):
                if vid in unreleased or vid in released_at:
                    released_at.setdefault(vid, now)
                    record[ANNOTATION] = {
                        "seen_unreleased": True,
                        "first_seen_released_at": released_at[vid],
                    }
                unreleased.discard(vid)
            else:
                unreleased.add(vid)
                released_at.pop(vid, None)
            records.append(record)
        yield Page(
            records,
            cursor={
                "unreleased": sorted(unreleased),
                "released_at": dict(sorted(released_at.items())),
            },
        )

    def map(self, raw: Raw, scope: str) -> Mapped:
        return map_version(raw, scope, self.connector.source.name)


# --- issues -----------------------------------------------------------------------------------


class Issues(JiraStream):
    """Issues of one project by JQL, with changelog (and worklogs), incrementally.

    Cursor ``{"updated": <ISO UTC>, "recent": {id: updated epoch ms}}``: the newest
    ``updated`` seen, committed with each page, so a killed sync resumes after the last
    committed page; and the issues inside the lookback window below it. The next search
    overlaps that window on purpose, and an issue it returns with the same ``updated`` is
    dropped before any further request (no changelog, worklog or status lookups for it).

    Pages with truncated changelogs are held back (at most ``MAX_HELD_ISSUES`` issues) until
    those fill one bulk fetch call, so 1000 truncated issues cost one extra request, not one
    per search page; held pages are then committed in order, each with its own cursor. Pages
    without truncated changelogs are committed at once.

    If an issue already read comes back later in the same listing with a newer ``updated``
    (edited while we paged: an offset listing then skips one issue at a page boundary), the
    final cursor is moved back to the oldest ``updated`` of this run, so the next run reads
    that window again.
    """

    name = "issues"
    page_size = CLOUD_SEARCH_PAGE
    cursor_field = "updated"
    primary_key = "id"
    #: Keep at most this many ids in the cursor's ``recent`` map (a bulk edit can touch
    #: thousands of issues in one minute; they are then simply re-read).
    max_recent: ClassVar[int] = 2000

    async def pages(
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        connector = self.connector
        settings = connector.settings
        jql, _ = issues_jql(scope, cursor, options)
        fields = ",".join(settings.search_fields())
        lookback = options.lookback
        newest: datetime | None = None
        known: dict[str, int] = {}
        if cursor and cursor.get("updated"):
            newest = datetime.fromisoformat(str(cursor["updated"]))
            known = {str(k): int(v) for k, v in (cursor.get("recent") or {}).items()}
        recent = dict(known)
        oldest_seen: datetime | None = None
        seen: dict[str, int | None] = {}
        shifted = False
        pending: list[Page] = []
        pending_truncated = 0
        # Closed at once if this stream stops early: the search holds an issue-page slot.
        search = _in_chunks(connector.search(jql, fields=fields, expand="changelog"))
        async with contextlib.aclosing(search):
            async for issues in search:
                if not issues:
                    continue
                fresh: list[Raw] = []
                for issue in issues:
                    # a payload that is not an object passes on to the mapping (quarantined)
                    got = issue.get("fields") if isinstance(issue, dict) else None
                    iid = str(issue.get("id")) if isinstance(issue, dict) else ""
                    updated = _time_or_none(got.get("updated")) if isinstance(got, dict) else None
                    stamp = epoch_ms(updated) if updated else None
                    if iid in seen and seen[iid] != stamp:
                        shifted = True
                    seen[iid] = stamp
                    if stamp is not None and known.get(iid) == stamp:
                        continue  # the lookback overlap: unchanged since the last sync
                    fresh.append(issue)
                    if updated is None or stamp is None:
                        continue
                    aware = updated.replace(tzinfo=UTC)
                    newest = aware if newest is None or aware > newest else newest
                    if oldest_seen is None or aware < oldest_seen:
                        oldest_seen = aware
                    recent[iid] = stamp
                # Hold pages back until their truncated changelogs fill one bulk fetch call:
                # search pages hold at most ~100 issues, a bulk fetch takes 1000.
                truncated = sum(1 for i in fresh if not changelog_is_complete(i))
                if pending and (
                    pending_truncated + truncated > BULK_CHANGELOG_ISSUES
                    or sum(len(p.records) for p in pending) >= MAX_HELD_ISSUES
                ):
                    await connector.complete_issues([i for p in pending for i in p.records])
                    for held in pending:
                        yield held
                    pending, pending_truncated = [], 0
                cursor_now = self._cursor(newest, recent, lookback) if newest else cursor
                pending.append(Page(fresh, cursor=cursor_now))
                pending_truncated += truncated
                if not pending_truncated:  # nothing to batch: commit now, hold nothing
                    await connector.complete_issues(fresh)
                    yield pending.pop()
                # Written (or held): drop this page's references before the next search page.
                del issues, fresh
        if pending:
            await connector.complete_issues([i for p in pending for i in p.records])
            for held in pending:
                yield held
        if shifted and oldest_seen is not None:
            log.info(
                "%s %s: issues changed while paging; the next sync re-reads from %s",
                connector.source.name,
                scope,
                oldest_seen.isoformat(),
            )
            yield Page([], cursor={"updated": oldest_seen.isoformat(), "recent": {}})

    def _cursor(self, newest: datetime, recent: dict[str, int], lookback: timedelta) -> Raw:
        floor = epoch_ms(newest - lookback)
        for iid in [i for i, stamp in recent.items() if stamp < floor]:
            del recent[iid]
        kept = recent if len(recent) <= self.max_recent else {}
        return {"updated": newest.isoformat(), "recent": dict(sorted(kept.items()))}

    def map(self, raw: Raw, scope: str) -> Mapped:
        return map_issue(raw, scope, self.connector.settings)


def _time_or_none(value: Any) -> datetime | None:
    """``parse_time`` for the stream's own bookkeeping (cursor, changelog order), which runs
    before the engine can quarantine a record: an unreadable time is left to the mapping,
    which quarantines that one issue, instead of stopping the stream."""
    try:
        return parse_time(value)
    except MappingError:
        return None


async def _in_chunks(
    pages: AsyncGenerator[list[Raw], None], size: int = WRITE_CHUNK
) -> AsyncGenerator[list[Raw], None]:
    """Search pages cut into chunks of at most ``size`` issues, each taken out of its page
    as it is handed on: a written chunk is freed while the rest of its page waits, and one
    chunk's rows, texts and compressed payloads are built at a time (a Data Center page
    holds 1,000 issues). The requests are the same: the page is still one request."""
    async with contextlib.aclosing(pages):
        async for page in pages:
            while page:
                chunk = page[:size]
                del page[:size]
                yield chunk
                del chunk


# --- per-issue completion (used by the connector) -----------------------------------------


async def complete_changelogs(connector: JiraConnector, issues: list[Raw]) -> int:
    """Replace truncated embedded changelogs with complete ones; returns how many.

    Cloud: ``POST /rest/api/3/changelog/bulkfetch`` for up to 1000 issues per call, asking
    only for the fields the mapping reads (status, Sprint, story points). If the site does not
    offer it (404), per issue ``/issue/{id}/changelog``. Data Center: per issue
    ``/issue/{id}?expand=changelog`` (its search rarely truncates).
    """
    # (an issue without an id cannot be fetched: the mapping quarantines it)
    truncated = [
        i
        for i in issues
        if isinstance(i, dict) and i.get("id") is not None and not changelog_is_complete(i)
    ]
    if not truncated:
        return 0
    fetched: dict[str, list[Raw]] = {}
    if connector.cloud and connector.bulk_changelog:
        try:
            fetched = await _bulk_changelogs(connector, [str(i["id"]) for i in truncated])
        except NotFound:
            connector.bulk_changelog = False
            log.info(
                "%s: changelog bulk fetch not available; fetching per issue", connector.source.name
            )
    if not (connector.cloud and connector.bulk_changelog):

        def fetch_one(issue_id: str) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                fetched[issue_id] = await _issue_changelog(connector, issue_id)

            return run

        await _bounded([fetch_one(str(i["id"])) for i in truncated], PER_ISSUE_CONCURRENCY)
    for issue in truncated:
        changelog = issue.get("changelog")
        embedded = [
            h
            for h in (changelog.get("histories") or [] if isinstance(changelog, dict) else [])
            if isinstance(h, dict)
        ]
        got = fetched.get(str(issue["id"]), [])
        by_id = {str(h.get("id")): h for h in got if isinstance(h, dict)}
        by_id.update({str(h.get("id")): h for h in embedded})  # embedded ones have every item
        histories = sorted(
            by_id.values(),
            key=lambda h: (_time_or_none(h.get("created")) or datetime.min, str(h.get("id"))),
        )
        issue["changelog"] = {
            "startAt": 0,
            "maxResults": len(histories),
            "total": len(histories),
            "histories": histories,
        }
    return len(truncated)


async def _bulk_changelogs(connector: JiraConnector, ids: list[str]) -> dict[str, list[Raw]]:
    out: dict[str, list[Raw]] = {}
    field_ids = connector.settings.changelog_field_ids()[:10]
    for i in range(0, len(ids), BULK_CHANGELOG_ISSUES):
        body: Raw = {
            "issueIdsOrKeys": ids[i : i + BULK_CHANGELOG_ISSUES],
            "fieldIds": field_ids,
            "maxResults": BULK_CHANGELOG_PAGE,
        }
        listing = paginate(
            connector.http,
            PageRequest("/rest/api/3/changelog/bulkfetch", json=body),
            TokenPaginator(in_json=True, last_path=None),
            records="issueChangeLogs",
        )
        async for page in listing:
            for entry in page.records:
                out.setdefault(str(entry.get("issueId")), []).extend(
                    entry.get("changeHistories") or []
                )
    return out


async def _issue_changelog(connector: JiraConnector, issue_id: str) -> list[Raw]:
    http = connector.http
    if not connector.cloud:
        body = await http.get_json(
            f"/rest/api/2/issue/{quote(issue_id)}",
            params={"fields": "status", "expand": "changelog"},
        )
        return list((body.get("changelog") or {}).get("histories") or [])
    histories: list[Raw] = []
    listing = paginate(
        http,
        PageRequest(f"/rest/api/3/issue/{quote(issue_id)}/changelog"),
        OffsetPaginator(limit=ISSUE_CHANGELOG_PAGE),
        records="values",
    )
    async for page in listing:
        histories.extend(page.records)
    return histories


async def complete_worklogs(connector: JiraConnector, issues: list[Raw]) -> int:
    """Fetch all worklogs of issues whose embedded list was cut short (more than 20)."""
    short = [
        i
        for i in issues
        if isinstance(i, dict) and i.get("id") is not None and not worklog_is_complete(i)
    ]

    def fetch(issue: Raw) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            entries: list[Raw] = []
            listing = paginate(
                connector.http,
                PageRequest(connector.api(f"/issue/{quote(str(issue['id']))}/worklog")),
                OffsetPaginator(limit=WORKLOG_PAGE, last_path=None),
                records="worklogs",
            )
            async for page in listing:
                entries.extend(page.records)
            issue["fields"]["worklog"] = {
                "startAt": 0,
                "maxResults": len(entries),
                "total": len(entries),
                "worklogs": entries,
            }

        return run

    await _bounded([fetch(i) for i in short], PER_ISSUE_CONCURRENCY)
    return len(short)


def annotate_statuses(issues: list[Raw], catalogue: dict[str, str]) -> None:
    for issue in issues:
        attach_status_categories(issue, catalogue)
