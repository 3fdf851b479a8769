"""What the GitHub connector pulls, page by page, per repository (a scope is ``owner/repo``).

==========  ========================================================  =========================
stream      endpoint                                                  paging, cursor
==========  ========================================================  =========================
milestones  ``GET /repos/{o}/{r}/milestones?state=all``               ``Link``; ETag (304)
releases    ``GET /repos/{o}/{r}/releases``                           ``Link``; ETag (304)
issues      ``GET /repos/{o}/{r}/issues?state=all&since&sort=updated  ``Link``; cursor = newest
            &direction=asc``, then for each page of changed issues    ``updated_at``; ETag (304)
            one GraphQL ``nodes(ids:)`` call (timeline + Projects     when nothing changed
            field values) and ``…/dependencies/blocked_by`` for the
            blocked ones; GraphQL ``repository.issues`` (the *board
            pass*) when a project changed without its issues
sprints     none: the iterations of the configured projects (read     one record per
            once per run) in which this repository has items          (iteration, repository)
==========  ========================================================  =========================

Pull requests come in the issues listing; they are kept for their text (cross-tool "blocked by"
references), never as work items. Projects v2 values have no update filter: a change on the
board alone does not move the issue's ``updated_at``, so the connector asks each project once
per run whether it changed (``updatedAt`` and its item count) and only then runs the board pass,
whose pages are *patches* merged into the stored issue payloads (see docs/connectors/writing.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from programview.errors import NotFound
from programview.normalize import ANNOTATION, parse_time
from programview.sync.connector import Mapped, Page, Stream, SyncOptions
from programview.sync.paging import LinkPaginator, PageRequest, paginate, prefetch

from .mapping import (
    is_pull_request,
    key_from_url,
    label_names,
    map_issue,
    map_milestone,
    map_release,
    map_sprint,
    status_of,
)

if TYPE_CHECKING:
    from . import GitHubConnector

log = logging.getLogger("programview.connectors.github")

Raw = dict[str, Any]

#: GitHub's largest page (REST ``per_page`` and GraphQL ``first``).
PAGE = 100
#: Per-issue REST calls (blocked-by lists) at once.
PER_ISSUE_CONCURRENCY = 8
#: A full read lists and completes up to this many pages ahead of the one being written.
COMPLETE_AHEAD = 2
#: An incremental listing keeps its URL (so an unchanged one is a free 304) while its
#: ``since`` is at most this many days older than the window's.
STICKY_DAYS = 30


def github_time(moment: datetime) -> str:
    """``since`` as GitHub reads it: ISO 8601 in UTC, whole seconds."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%SZ")


class GitHubStream(Stream):
    connector: GitHubConnector

    def __init__(self, connector: GitHubConnector) -> None:
        super().__init__(connector)
        self.connector = connector

    async def _listing(
        self, path: str, params: dict[str, Any], cursor: dict[str, Any] | None
    ) -> AsyncIterator[tuple[list[Raw], str | None]]:
        """Pages of a small listing read whole every run, with a free ``304`` when nothing
        changed: the ETag of a one-page answer is kept in the cursor. Yields (records, etag)."""
        etag = (cursor or {}).get("etag")
        pages = paginate(
            self.connector.http,
            PageRequest(path, params),
            LinkPaginator(page_size=PAGE),
            etag=etag,
        )
        first = True
        async for page in pages:
            if page.http.not_modified:
                return
            one_page = first and "next" not in page.http.links
            yield page.records, (page.http.etag if one_page else None)
            first = False


# --- milestones and releases ---------------------------------------------------------------


class Milestones(GitHubStream):
    """Every milestone of the repository (``state=all``): they are its releases with due dates."""

    name = "milestones"
    page_size = PAGE
    cursor_field = None

    async def pages(
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        titles: dict[str, int] = dict((cursor or {}).get("titles") or {})
        fetched: dict[str, int] | None = None
        etag = None
        async for records, page_etag in self._listing(
            f"/repos/{scope}/milestones", {"state": "all", "sort": "due_on"}, cursor
        ):
            fetched = fetched if fetched is not None else {}
            etag = page_etag
            for m in records:
                if isinstance(m, dict) and isinstance(m.get("title"), str):
                    fetched[m["title"].strip().lower()] = int(m.get("number") or 0)
            yield Page(records)
        if fetched is not None:  # read (not a 304): remember the titles and the ETag
            titles = dict(sorted(fetched.items()))
            yield Page([], cursor={"etag": etag, "titles": titles})
        self.connector.milestone_titles[scope] = titles

    def map(self, raw: Raw, scope: str) -> Mapped:
        return map_milestone(raw, scope, self.connector.source.name)


class Releases(GitHubStream):
    """Published releases. One that carries a milestone's name is that milestone's release
    (marked, so it does not count twice); the others are releases of their own."""

    name = "releases"
    page_size = PAGE
    cursor_field = None

    async def pages(
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        titles = self.connector.milestone_titles.get(scope, {})
        read, etag = False, None
        async for records, page_etag in self._listing(f"/repos/{scope}/releases", {}, cursor):
            read, etag = True, page_etag
            for release in records:
                if not isinstance(release, dict):
                    continue
                names = {
                    str(release.get(k) or "").strip().lower() for k in ("name", "tag_name")
                } - {""}
                match = next((titles[n] for n in sorted(names) if n in titles), None)
                if match is not None:
                    release[ANNOTATION] = {"milestone": match}
            yield Page(records)
        if read:
            yield Page([], cursor={"etag": etag})

    def map(self, raw: Raw, scope: str) -> Mapped:
        return map_release(raw, scope, self.connector.source.name)


# --- issues -------------------------------------------------------------------------------


class Issues(GitHubStream):
    """Issues (and pull requests) updated since the cursor, each completed with its timeline,
    its Projects values and its blocked-by list before it is committed.

    Cursor ``{"updated_at", "recent": {id: updated_at}, "etag", "etag_params"}``: the newest
    ``updated_at`` committed; the issues within the lookback window below it (the next
    listing overlaps that window on purpose; an issue it returns unchanged is dropped before
    any further request); and the ETag of the first page of the last incremental listing.

    Two orders, each chosen for what it guarantees:

    * the first (full) read pages **oldest first** and commits the cursor with every page, so
      a sync killed half way resumes after the last committed page. An issue edited while the
      listing is read moves to its end, and every later issue one place up: the one at the
      next page boundary would be skipped. So when an issue comes back with a newer
      ``updated_at``, the final cursor is moved back to its old one, and the next run reads
      that stretch again.
    * an incremental read pages **newest first** and stops at the first page that reaches what
      the last sync saw: a change makes an issue the newest, so an unchanged first page
      (``304 Not Modified``, free) means nothing changed, however many pages the listing
      holds; an edit during the listing moves an issue onto a page already read (later ones
      shift down: seen twice, never skipped). It keeps asking the URL the last poll asked, so
      the 304 can happen, and commits the cursor after its last page.
    """

    name = "issues"
    page_size = PAGE
    cursor_field = "updated_at"
    combines: ClassVar[bool] = True
    #: Keep at most this many ids in ``recent`` (a bulk edit may touch thousands at once).
    max_recent: ClassVar[int] = 2000

    async def pages(
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        incremental = options.window.since is not None and not options.backfill
        read = self._incremental_read if incremental else self._full_read
        last_cursor = cursor
        async for page in read(scope, cursor, options):
            if page.cursor is not None:
                last_cursor = page.cursor
            yield page
        # The board pass: only an incremental run needs it (a full read already completed
        # every issue with its Projects values).
        if self.connector.board_pass_due and incremental:
            async for patches in self.connector.board_pass(scope):
                yield Page(patches, cursor=last_cursor, patch=True)

    def _issue_pages(
        self, scope: str, params: dict[str, Any], etag: str | None
    ) -> AsyncIterator[Any]:
        return paginate(
            self.connector.http,
            PageRequest(f"/repos/{scope}/issues", params),
            LinkPaginator(page_size=self.page_size),
            etag=etag,
        )

    async def _full_read(
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        """Oldest first, the cursor committed with every page (a backfill's to its own window
        state). The listing goes on in a task of its own, and each page's completion (its
        details call and blocked-by lists) starts as soon as it is listed, so while the
        engine writes one page the next ones are already being completed (``COMPLETE_AHEAD``):
        a page costs about its longest step, not the sum of its listing, completion and write.
        Pages are still yielded in listing order, each complete, with the same cursors.

        A backfill reads one page at a time as before (its pages are not completed ahead): it
        runs beside the regular syncs, and a stop must find its window half read, not already
        finished by pages completed in advance."""
        if options.backfill:
            async with contextlib.aclosing(self._full_listing(scope, cursor, options)) as listed:
                async for page, completing in listed:
                    if completing is not None:
                        await completing
                    yield page
            return
        queue: asyncio.Queue[tuple[Page, asyncio.Future[None] | None] | None] = asyncio.Queue(
            maxsize=COMPLETE_AHEAD - 1
        )

        async def produce() -> None:
            async with contextlib.aclosing(self._full_listing(scope, cursor, options)) as pages:
                async for entry in pages:
                    await queue.put(entry)
            await queue.put(None)

        producer = asyncio.ensure_future(produce())
        getter: asyncio.Future[Any] | None = None
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, producer}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():  # the listing failed: its error is the stream's
                    producer.result()
                    raise AssertionError("the listing ended without its end mark")
                entry = getter.result()
                if entry is None:
                    return
                page, completing = entry
                if completing is not None:
                    await completing
                yield page
        finally:
            # stopped, failed or closed early: nothing completed ahead is left running
            for task in (getter, producer):
                if task is not None:
                    await _cancelled(task)
            while not queue.empty():
                left = queue.get_nowait()
                if left is not None and left[1] is not None:
                    await _cancelled(left[1])

    async def _full_listing(
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncGenerator[tuple[Page, asyncio.Future[None] | None], None]:
        """The full read's pages in listing order, each with the task completing it."""
        window = options.window
        params: dict[str, Any] = {"state": "all", "sort": "updated", "direction": "asc"}
        if window.since is not None:
            params["since"] = github_time(window.since)
        newest: str | None = None
        recent: dict[str, str] = {}
        seen: dict[str, str] = {}
        moved_back: str | None = None  # the oldest old updated_at of an edit seen
        async for page in prefetch(self._issue_pages(scope, params, None)):
            fresh: list[Raw] = []
            past_window = False
            for raw in map(slim, page.records):
                if not isinstance(raw, dict):
                    fresh.append(raw)  # quarantined by the engine, with the payload
                    continue
                updated, iid = str(raw.get("updated_at") or ""), str(raw.get("id"))
                if window.until is not None and not window.contains(parse_time(updated)):
                    past_window = True
                    continue
                edited = iid in seen and seen[iid] != updated
                if edited and (moved_back is None or _later(moved_back, seen[iid])):
                    moved_back = seen[iid]
                seen[iid] = updated
                fresh.append(raw)
                if updated and (newest is None or _later(updated, newest)):
                    newest = updated
                recent[iid] = updated
            completing = asyncio.ensure_future(
                self.connector.complete_issues(scope, [r for r in fresh if isinstance(r, dict)])
            )
            # A backfill's cursor goes to its own window state (the engine's), so a stopped
            # backfill resumes there and the incremental cursor is never touched.
            page_cursor = self._cursor(newest, recent, options) if newest else cursor
            try:
                yield Page(fresh, cursor=page_cursor), completing
            except BaseException:  # closed while this page was being handed on
                await _cancelled(completing)
                raise
            if past_window:
                break
        if moved_back is not None and not options.backfill:
            log.info(
                "%s %s: issues changed while the listing was read; the next sync re-reads from %s",
                self.connector.source.name,
                scope,
                moved_back,
            )
            yield Page([], cursor={"updated_at": moved_back, "recent": {}}), None

    async def _incremental_read(
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        """Newest first, until the listing reaches what the last sync saw; the cursor committed
        after the last page. The URL stays the one the last poll asked (its ``since`` covers
        the window, and ``STICKY_DAYS`` bounds how old it gets), so an unchanged answer is a
        free 304 on the first page."""
        window = options.window
        assert window.since is not None
        state = cursor or {}
        fresh_params: dict[str, Any] = {
            "state": "all",
            "sort": "updated",
            "direction": "desc",
            "since": github_time(window.since),
        }
        params, etag = fresh_params, None
        previous = state.get("etag_params")
        oldest_kept = github_time(window.since - timedelta(days=STICKY_DAYS))
        if (
            state.get("etag")
            and isinstance(previous, dict)
            and oldest_kept <= str(previous.get("since") or "") <= fresh_params["since"]
        ):
            params, etag = dict(previous), str(state["etag"])
        known: dict[str, str] = dict(state.get("recent") or {})
        newest = str(state["updated_at"]) if state.get("updated_at") else None
        recent = dict(known)
        first_etag: str | None = None
        first = True
        # no prefetch: reading stops at the first page that reaches the known part, and a
        # page requested ahead would be a request spent for nothing
        async for page in self._issue_pages(scope, params, etag):
            if page.http.not_modified:
                return  # nothing changed: the cursor stays, so does the URL
            if first:
                first_etag, first = page.http.etag, False
            fresh: list[Raw] = []
            reached_known = False
            for raw in map(slim, page.records):
                if not isinstance(raw, dict):
                    fresh.append(raw)  # quarantined by the engine, with the payload
                    continue
                updated, iid = str(raw.get("updated_at") or ""), str(raw.get("id"))
                at = parse_time(updated)
                if at is not None and not window.contains(at):
                    reached_known = True  # older than the window: the rest is older still
                    continue
                if known.get(iid) == updated:
                    continue  # the lookback overlap: unchanged since the last sync
                fresh.append(raw)
                if updated and (newest is None or _later(updated, newest)):
                    newest = updated
                recent[iid] = updated
            await self.connector.complete_issues(scope, [r for r in fresh if isinstance(r, dict)])
            yield Page(fresh)
            if reached_known:
                break
        if newest is not None:
            yield Page(
                [],
                cursor={
                    **self._cursor(newest, recent, options),
                    "etag": first_etag,
                    "etag_params": params,
                },
            )

    def _cursor(self, newest: str, recent: dict[str, str], options: SyncOptions) -> dict[str, Any]:
        floor = parse_time(newest)
        assert floor is not None
        floor -= options.lookback
        for iid in [i for i, at in recent.items() if (parse_time(at) or floor) < floor]:
            del recent[iid]
        kept = recent if len(recent) <= self.max_recent else {}
        return {"updated_at": newest, "recent": dict(sorted(kept.items()))}

    def combine(self, stored: Raw, new: Raw) -> Raw:
        return self.connector.combine_observations(stored, new)

    def map(self, raw: Raw, scope: str) -> Mapped:
        return map_issue(raw, scope, self.connector.settings)


#: Top-level keys of an issue payload worth keeping (everything the mapping reads, and what a
#: later mapping may want); the many API URL templates, reactions and avatar links are not.
_KEEP = frozenset(
    {
        "id",
        "node_id",
        "number",
        "title",
        "body",
        "state",
        "state_reason",
        "locked",
        "labels",
        "milestone",
        "assignee",
        "assignees",
        "user",
        "closed_by",
        "comments",
        "author_association",
        "created_at",
        "updated_at",
        "closed_at",
        "html_url",
        "repository_url",
        "type",
        "parent_issue_url",
        "sub_issues_summary",
        "issue_dependencies_summary",
        "pull_request",
        "draft",
    }
)
_PERSON = ("login", "id", "type")
_LABEL = ("id", "name")
_MILESTONE = ("id", "number", "title", "state", "due_on", "closed_at")


def _pick(value: Any, keys: tuple[str, ...]) -> Any:
    return {k: value[k] for k in keys if k in value} if isinstance(value, dict) else value


def slim(raw: Raw) -> Raw:
    """An issue payload without the noise GitHub repeats in every issue (about 80% of its
    bytes: ``*_url`` templates, reactions, avatar and profile links), so hashing, storing and
    comparing it costs a fifth. Nothing the mapping reads is dropped."""
    if not isinstance(raw, dict):
        return raw
    out = {k: v for k, v in raw.items() if k in _KEEP or k == ANNOTATION}
    for key in ("user", "assignee", "closed_by"):
        if key in out:
            out[key] = _pick(out[key], _PERSON)
    if isinstance(out.get("assignees"), list):
        out["assignees"] = [_pick(a, _PERSON) for a in out["assignees"]]
    if isinstance(out.get("labels"), list):
        out["labels"] = [_pick(label, _LABEL) for label in out["labels"]]
    if "milestone" in out:
        out["milestone"] = _pick(out["milestone"], _MILESTONE)
    if "type" in out:
        out["type"] = _pick(out["type"], ("id", "name"))
    if isinstance(out.get("pull_request"), dict):
        out["pull_request"] = _pick(out["pull_request"], ("url", "merged_at"))
    return out


async def _cancelled(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait for it, whatever it ends with (its error, if any, is not
    this caller's to report). A cancellation of the caller itself while it waits goes on."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception:  # noqa: BLE001 - the task's own failure, reported where it matters
        pass


def _later(a: str, b: str) -> bool:
    ta, tb = parse_time(a), parse_time(b)
    return ta is not None and (tb is None or ta > tb)


# --- sprints ---------------------------------------------------------------------------------


class Sprints(GitHubStream):
    """One sprint per (iteration of a configured project, repository with items in it).

    The iteration definitions come from the project's iteration field (read once per run);
    which iterations this repository has items in is remembered in the cursor, so a sprint is
    never created for a repository that never had an item in it (an empty sprint would zero
    the project's velocity)."""

    name = "sprints"
    page_size = 0  # computed, no request of its own
    cursor_field = None

    async def pages(
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        connector = self.connector
        seen = set((cursor or {}).get("iterations") or []) | connector.scope_iterations.get(
            scope, set()
        )
        records = []
        for iteration_id in sorted(seen):
            found = connector.iteration(iteration_id)
            if found is None:
                continue
            project, iteration = found
            records.append(
                {
                    "id": f"{iteration_id}@{scope.lower()}",
                    "iteration": iteration,
                    "repo": scope.lower(),
                    "project": project,
                    "state": connector.iteration_state(iteration),
                }
            )
        yield Page(records, cursor={"iterations": sorted(seen)})

    def map(self, raw: Raw, scope: str) -> Mapped:
        return map_sprint(raw, scope, self.connector.source.name)


# --- per-issue completion (used by the connector) -------------------------------------------


async def blocked_by(connector: GitHubConnector, scope: str, issues: list[Raw]) -> None:
    """``programview.blocked_by`` of every issue: its blockers' keys from
    ``/dependencies/blocked_by`` when its summary says it has any, else ``[]``. Skipped where
    the instance has no issue dependencies (GitHub Enterprise Server before 3.18: 404)."""
    semaphore = asyncio.Semaphore(PER_ISSUE_CONCURRENCY)

    async def one(issue: Raw) -> None:
        summary = issue.get("issue_dependencies_summary")
        if not isinstance(summary, dict):
            return
        notes = issue.setdefault(ANNOTATION, {})
        if not int(summary.get("total_blocked_by") or 0) or not connector.dependencies_supported:
            notes["blocked_by"] = []
            return
        keys: list[str] = []
        async with semaphore:
            try:
                async for page in paginate(
                    connector.http,
                    PageRequest(
                        f"/repos/{scope}/issues/{int(issue['number'])}/dependencies/blocked_by"
                    ),
                    LinkPaginator(page_size=PAGE),
                ):
                    for blocker in page.records:
                        key = (
                            key_from_url(blocker.get("url")) if isinstance(blocker, dict) else None
                        )
                        if key:
                            keys.append(key)
            except NotFound:
                connector.dependencies_supported = False
                log.info("%s: issue dependencies are not available here", connector.source.name)
                return
        notes["blocked_by"] = sorted(set(keys))

    await asyncio.gather(*(one(i) for i in issues if not is_pull_request(i)))


def observe_in_progress(connector: GitHubConnector, raw: Raw, notes: Raw) -> None:
    """``first_in_progress_at``: now, when the issue is in progress (kept from the first
    time by ``combine``)."""
    project = notes.get("project") if isinstance(notes.get("project"), dict) else None
    status, _ = status_of(raw, label_names(raw), project, connector.settings)
    if status == "in_progress":
        notes.setdefault("first_in_progress_at", connector.observed_at)
