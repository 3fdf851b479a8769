"""What the GitLab connector pulls, page by page, per project (a scope is a project path).

==========  =========================================================  ========================
stream      endpoint (``/api/v4``)                                     paging, cursor
==========  =========================================================  ========================
issues      ``/projects/:id/issues?scope=all&order_by=updated_at       keyset (``Link``), offset
            &sort=asc&updated_after``, then per issue that came back:  (``x-next-page``) where
            ``resource_state|label|weight|iteration_events`` and       keyset is unavailable;
            ``/links``                                                 cursor = newest
                                                                       ``updated_at``
milestones  ``/projects/:id/releases`` (shared with ``releases``) and  offset; cursor remembers
            ``/projects/:id/milestones?include_ancestors=true``        milestones seen open
releases    the releases listing above (no request of its own)         none
sprints     ``/groups/:namespace/iterations?include_ancestors=true``   offset; cursor remembers
            (once per namespace and run)                               the iterations the
                                                                       project has items in
==========  =========================================================  ========================

History comes only for issues the listing returns (changed since the cursor), and an issue the
lookback overlap returns unchanged is dropped before any event request. A group iteration or
group milestone becomes a sprint or release of a project only once one of its issues is in it:
an empty sprint would zero the project's velocity.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from programview.normalize import ANNOTATION, parse_time
from programview.sync.connector import Mapped, Page, Stream, SyncOptions

from .mapping import (
    map_issue,
    map_milestone,
    map_release,
    map_sprint,
    milestone_native_id,
    release_native_id,
)

if TYPE_CHECKING:
    from . import GitLabConnector

log = logging.getLogger("programview.connectors.gitlab")

Raw = dict[str, Any]

#: GitLab's largest page (``per_page`` max 100).
PAGE = 100


def gitlab_time(moment: datetime) -> str:
    """``updated_after`` as GitLab reads it: ISO 8601 UTC with milliseconds."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%S.") + f"{aware.microsecond // 1000:03d}Z"


class GitLabStream(Stream):
    connector: GitLabConnector

    def __init__(self, connector: GitLabConnector) -> None:
        super().__init__(connector)
        self.connector = connector


# --- issues ------------------------------------------------------------------------------------


class Issues(GitLabStream):
    """Issues updated since the cursor (``updated_after`` is inclusive: minus the lookback,
    the overlap deduplicated by id), each completed with its resource events and links
    before it is committed.

    Cursor ``{"updated_at", "recent": {id: updated_at}}``: the newest ``updated_at`` committed,
    and the issues inside the lookback window below it (an overlap issue that comes back
    unchanged costs no event request), plus ``iterations`` and ``group_milestones``: what the
    committed issues are in, so a run killed before the sprints and milestones streams still
    creates those sprints and releases on the rerun. Offset paging can skip an issue at a
    page boundary when an earlier one is edited while we page; that shows as an issue coming
    back with a newer ``updated_at``, and then the final cursor goes back to the oldest
    ``updated_at`` of the run.
    """

    name = "issues"
    page_size = PAGE
    cursor_field = "updated_at"
    primary_key = "id"
    #: Keep at most this many ids in ``recent`` (a bulk edit may touch thousands at once).
    max_recent: ClassVar[int] = 2000

    def is_live(self, raw: Raw) -> bool:
        return not (isinstance(raw, dict) and raw.get("moved_to_id") is not None)

    async def pages(
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        connector = self.connector
        window = options.window
        params: dict[str, Any] = {"scope": "all", "order_by": "updated_at", "sort": "asc"}
        if window.since is not None:
            params["updated_after"] = gitlab_time(window.since)
        if window.until is not None:
            params["updated_before"] = gitlab_time(window.until)
        state = cursor or {}
        # What the issues committed so far use, restored first: a run killed after some issue
        # pages but before the sprints and milestones streams must not forget them.
        connector.scope_iterations.setdefault(scope, set()).update(
            str(x) for x in state.get("iterations") or []
        )
        connector.scope_milestones.setdefault(scope, set()).update(
            str(x) for x in state.get("group_milestones") or []
        )
        known: dict[str, str] = dict(state.get("recent") or {}) if window.since else {}
        newest = str(state["updated_at"]) if state.get("updated_at") and not options.full else None
        recent = dict(known)
        seen: dict[str, str] = {}
        oldest: str | None = None
        shifted = False
        async for records in connector.issue_pages(scope, params):
            fresh: list[Raw] = []
            for raw in records:
                if not isinstance(raw, dict):
                    fresh.append(raw)  # quarantined by the engine, with the payload
                    continue
                iid, updated = str(raw.get("id")), str(raw.get("updated_at") or "")
                if iid in seen and seen[iid] != updated:
                    shifted = True
                seen[iid] = updated
                if known.get(iid) == updated:
                    continue  # the lookback overlap: unchanged since the last sync
                fresh.append(raw)
                if updated and (newest is None or _later(updated, newest)):
                    newest = updated
                if updated and (oldest is None or _later(oldest, updated)):
                    oldest = updated
                recent[iid] = updated
            await connector.complete_issues(scope, [r for r in fresh if isinstance(r, dict)])
            next_cursor = self._cursor(scope, newest, recent, options) if newest else cursor
            # a backfill's cursor goes to its own window state: a stopped backfill resumes
            yield Page(fresh, cursor=next_cursor)
        if shifted and oldest is not None and not options.backfill:
            log.info(
                "%s %s: issues changed while paging; the next sync re-reads from %s",
                connector.source.name,
                scope,
                oldest,
            )
            yield Page([], cursor={**self._uses(scope), "updated_at": oldest, "recent": {}})

    def _uses(self, scope: str) -> dict[str, list[str]]:
        """The iterations and group milestones the project's issues are in, committed with
        each issue page (the sprints and milestones streams read them from the connector)."""
        connector = self.connector
        return {
            "iterations": sorted(connector.scope_iterations.get(scope, set())),
            "group_milestones": sorted(connector.scope_milestones.get(scope, set())),
        }

    def _cursor(
        self, scope: str, newest: str, recent: dict[str, str], options: SyncOptions
    ) -> dict[str, Any]:
        floor = parse_time(newest)
        assert floor is not None
        floor -= options.lookback
        for iid in [i for i, at in recent.items() if (parse_time(at) or floor) < floor]:
            del recent[iid]
        kept = recent if len(recent) <= self.max_recent else {}
        return {**self._uses(scope), "updated_at": newest, "recent": dict(sorted(kept.items()))}

    def map(self, raw: Raw, scope: str) -> Mapped:
        return map_issue(raw, scope, self.connector.settings)


def _later(a: str, b: str) -> bool:
    ta, tb = parse_time(a), parse_time(b)
    return ta is not None and (tb is None or ta > tb)


# --- milestones and releases -------------------------------------------------------------------


class Milestones(GitLabStream):
    """The project's milestones (and its ancestor groups' milestones that its issues use),
    each annotated with the release that names it and, once seen closed after being seen
    open, when that happened (GitLab keeps no close time: its ``updated_at`` then).

    Cursor ``{"open": [ids seen open], "closed_at": {id: time}, "group": [group milestone
    ids the project's issues use]}``."""

    name = "milestones"
    page_size = PAGE
    cursor_field = None
    #: A group milestone is one record per project (``milestone/<id>@<path>``).
    primary_key = f"{ANNOTATION}.native_id"

    async def pages(
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        connector = self.connector
        state = cursor or {}
        opened = {str(x) for x in state.get("open") or []}
        closed_at: dict[str, str] = dict(state.get("closed_at") or {})
        used = {str(x) for x in state.get("group") or []} | connector.scope_milestones.get(
            scope, set()
        )
        releases = {
            str(m["id"]): r
            for r in await connector.releases(scope)
            for m in r.get("milestones") or []
            if isinstance(m, dict) and m.get("id") is not None
        }
        records: list[Raw] = []
        for milestone in await connector.milestones(scope):
            if not isinstance(milestone, dict) or milestone.get("id") is None:
                records.append(milestone)  # quarantined, with the payload
                continue
            mid = str(milestone["id"])
            if milestone.get("project_id") is None and mid not in used:
                continue  # a group milestone none of this project's issues is in
            record = dict(milestone)
            notes: Raw = {}
            release = releases.get(mid)
            if release is not None:
                notes["release"] = {
                    "tag_name": release.get("tag_name"),
                    "released_at": release.get("released_at"),
                    "upcoming": bool(release.get("upcoming_release")),
                }
            if milestone.get("state") == "closed":
                if mid in opened or mid in closed_at:
                    closed_at.setdefault(mid, str(milestone.get("updated_at") or ""))
                    notes["closed_at"] = closed_at[mid]
                opened.discard(mid)
            else:
                opened.add(mid)
                closed_at.pop(mid, None)
            notes["native_id"] = milestone_native_id(milestone, scope)
            record[ANNOTATION] = notes
            records.append(record)
        for start in range(0, max(1, len(records)), PAGE):
            yield Page(records[start : start + PAGE])
        yield Page(
            [],
            cursor={
                "open": sorted(opened),
                "closed_at": dict(sorted(closed_at.items())),
                "group": sorted(used),
            },
        )

    def map(self, raw: Raw, scope: str) -> Mapped:
        return map_milestone(raw, scope, self.connector.source.name)


class Releases(GitLabStream):
    """The project's releases (read once for both streams). One that names a milestone is
    that milestone's release (the milestone row carries its date); the others are releases
    of their own."""

    name = "releases"
    page_size = PAGE
    cursor_field = None
    #: Tags are unique per project only: ``release/<tag>@<path>``.
    primary_key = f"{ANNOTATION}.native_id"

    async def pages(
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        records = []
        for release in await self.connector.releases(scope):
            record = dict(release)
            if isinstance(release, dict) and release.get("tag_name"):
                record[ANNOTATION] = {"native_id": release_native_id(release, scope)}
            records.append(record)
        for start in range(0, max(1, len(records)), PAGE):
            yield Page(records[start : start + PAGE])

    def map(self, raw: Raw, scope: str) -> Mapped:
        return map_release(raw, scope, self.connector.source.name)


# --- sprints -----------------------------------------------------------------------------------


class Sprints(GitLabStream):
    """One sprint per (iteration, project with issues in it). The iterations come from the
    project's group with its ancestors (a cadence usually lives on the top group), read once
    per group and run; which of them this project has issues in is remembered in the cursor,
    so a sprint is never created for a project that never had an issue in it."""

    name = "sprints"
    page_size = PAGE
    cursor_field = None

    async def pages(
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        connector = self.connector
        seen = {str(x) for x in (cursor or {}).get("iterations") or []}
        seen |= connector.scope_iterations.get(scope, set())
        records = []
        if seen:
            for iteration in await connector.iterations(scope):
                if isinstance(iteration, dict) and str(iteration.get("id")) in seen:
                    records.append(
                        {
                            "id": f"{iteration['id']}@{scope.lower()}",
                            "iteration": iteration,
                            "project": scope.lower(),
                        }
                    )
        yield Page(records, cursor={"iterations": sorted(seen)})

    def map(self, raw: Raw, scope: str) -> Mapped:
        return map_sprint(raw, scope, self.connector.source.name)
