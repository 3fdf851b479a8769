"""GitLab REST v4 (``/gitlab/api/v4``) endpoints of the simulator.

Serves the organisation's GitLab groups (``org.gitlab_groups``: ``acme`` >
``acme/platform``, ``acme/data``) and projects (``org.scopes_of("gitlab")``) as a
Premium GitLab does, so the GitLab connector can be written and tested against it.
Auth is the app's (``PRIVATE-TOKEN`` or ``Authorization: Bearer``; bad token → 401
``{"message":"401 Unauthorized"}``; anonymous on a private project → 404).

Endpoints (``:id`` is a number or a URL-encoded path, e.g. ``acme%2Fplatform%2Fapi``):

* ``GET /groups/:id``, ``/groups/:id/subgroups``, ``/groups/:id/descendant_groups``,
  ``/groups/:id/projects`` (``include_subgroups``, ``archived``: an archived project without
  issues, ``…/legacy-portal``, is listed unless ``archived=false``), ``GET /projects/:id``.
* ``GET /projects/:id/issues`` and ``GET /groups/:id/issues`` (subgroups included):
  ``state`` opened|closed|all, ``updated_after``/``updated_before`` and
  ``created_after``/``created_before`` (inclusive), ``scope`` all (default)|created_by_me|
  assigned_to_me, ``order_by`` created_at (default)|updated_at|id|title|due_date|weight,
  ``sort`` desc (default)|asc, ``labels`` (comma list; ``None``/``Any``), ``milestone``
  (title|``None``|``Any``), ``iteration_id``, ``issue_type``, ``assignee_id``,
  ``author_id``, ``iids[]``. Offset paging (``per_page`` ≤100, default 20) with ``x-page``,
  ``x-per-page``, ``x-next-page`` (empty on the last page), ``x-prev-page``, ``x-total``,
  ``x-total-pages`` (both dropped over 10,000) and ``Link``. Keyset paging on *project*
  issues: ``pagination=keyset`` with ``order_by`` created_at|updated_at|id — follow
  ``Link rel="next"`` (opaque ``cursor``), no totals, the last page has no ``Link``; on
  group issues or another order → 405 as GitLab answers. Bad enum values →
  ``400 {"error":"state does not have a valid value"}``; bad numbers/times →
  ``400 {"error":"per_page is invalid"}``.
* ``GET /projects/:id/issues/:iid`` (404 Issue Not Found, also for deleted issues),
  ``…/links`` (``link_type`` relates_to|blocks|is_blocked_by from the requested issue's
  side; duplicates show as relates_to), ``…/resource_state_events`` (closed/reopened),
  ``…/resource_iteration_events`` (add/remove: sprint membership, carry-over is an "add" of
  the next iteration at the close), ``…/resource_weight_events`` (every estimate, the
  first one at creation), ``…/resource_label_events`` (``workflow::`` status history).
* Milestones ``GET /projects/:id/milestones``, ``/groups/:id/milestones`` (group-level
  milestones: none here; ``include_descendants=true`` adds the projects'), ``state``
  active|closed, ``updated_after``/``updated_before``, ``iids[]``, ``title``.
* Iterations ``GET /groups/:id/iterations`` (``state`` opened|upcoming|current|closed|all,
  ``include_ancestors`` default true — the cadence lives on the root group and schedules
  its iterations automatically, so their ``title`` and ``description`` are null; the
  response ``state`` is 1 upcoming, 2 current, 3 closed), ``updated_after``/``updated_before``.
  Iterations are whole days: ``start_date`` is the sprint's first day, ``due_date`` its
  last (the day before the next one starts).
* Releases ``GET /projects/:id/releases`` (shipped milestones; ``order_by``
  released_at|created_at, ``sort``; ``upcoming_release``, ``milestones[]``).

Lists come from per-organisation caches rebuilt after each ``advance()``; call
``clear_caches()`` after editing generator records by hand.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from programview.simulator.app import (
    GITLAB,
    ApiError,
    Ctx,
    Router,
    gitlab_paging_headers,
    gitlab_time,
    iso_date,
    json_response,
    page_slice,
    parse_time,
)
from programview.simulator.generator import (
    DONE,
    GITLAB_TYPES,
    GITLAB_WORKFLOW_LABELS,
    GitLabGroup,
    Item,
    Organisation,
    Release,
    Scope,
    Sprint,
)

ISSUE_STATES = ("opened", "closed", "all")
ISSUE_ORDERS = ("created_at", "updated_at", "id", "title", "due_date", "weight")
KEYSET_ORDERS = ("created_at", "updated_at", "id")
SORTS = ("asc", "desc")
SCOPES = ("all", "created_by_me", "assigned_to_me")
ITERATION_STATES = ("opened", "upcoming", "current", "closed", "all")
#: Iterations API: the response ``state`` is an integer.
ITERATION_STATE_CODE = {"future": 1, "active": 2, "closed": 3}
_SEVERITY = {"highest": "CRITICAL", "high": "HIGH"}


# --- errors and arguments --------------------------------------------------------------


def _error(status: int, body: dict[str, Any]) -> ApiError:
    return ApiError(json_response(GITLAB, body, status))


def _not_found(what: str) -> ApiError:
    return _error(404, {"message": f"404 {what} Not Found"})


def _invalid(name: str) -> ApiError:
    return _error(400, {"error": f"{name} is invalid"})


def _enum(ctx: Ctx, name: str, allowed: Sequence[str], default: str) -> str:
    value = ctx.query.get(name) or default
    if value not in allowed:
        raise _error(400, {"error": f"{name} does not have a valid value"})
    return value


def _int(ctx: Ctx, name: str) -> int | None:
    raw = ctx.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise _invalid(name) from exc


def _time(ctx: Ctx, name: str) -> datetime | None:
    raw = ctx.query.get(name)
    if not raw:
        return None
    try:
        return parse_time(raw)
    except ValueError as exc:
        raise _invalid(name) from exc


def _bool(ctx: Ctx, name: str, default: bool) -> bool:
    raw = ctx.query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1", "yes", "t"):
        return True
    if raw.lower() in ("false", "0", "no", "f"):
        return False
    raise _invalid(name)


def _paging(ctx: Ctx) -> tuple[int, int]:
    page = _int(ctx, "page") or 1
    per_page = _int(ctx, "per_page") or 20
    return max(1, page), max(1, min(100, per_page))


def _iids(ctx: Ctx) -> set[int] | None:
    raw = ctx.query.getlist("iids[]") or ctx.query.getlist("iids")
    if not raw:
        return None
    try:
        return {int(x) for x in raw}
    except ValueError as exc:
        raise _invalid("iids") from exc


def _paged(ctx: Ctx, rows: Sequence[Any], render: Callable[[Any], Any]) -> Response:
    page, per_page = _paging(ctx)
    chunk = page_slice(rows, page, per_page)
    headers = gitlab_paging_headers(ctx, page, per_page, len(rows))
    return ctx.json([render(r) for r in chunk], headers=headers)


# --- caches ----------------------------------------------------------------------------


@dataclass
class _Cache:
    version: tuple[Any, ...]
    lists: OrderedDict[tuple[Any, ...], tuple[list[Item], list[tuple[Any, ...]]]] = field(
        default_factory=OrderedDict
    )
    release_counts: dict[int, list[int]] = field(default_factory=dict)  # id -> [total, closed]
    last_activity: dict[str, datetime] = field(default_factory=dict)


_CACHES: weakref.WeakKeyDictionary[Organisation, _Cache] = weakref.WeakKeyDictionary()
_LIST_CACHE_SIZE = 64


def clear_caches() -> None:
    """Forget derived lists (only needed after editing generator records by hand)."""
    _CACHES.clear()


def _cache(org: Organisation) -> _Cache:
    version = (len(org.changes), org.now, len(org.items))
    cache = _CACHES.get(org)
    if cache is None or cache.version != version:
        cache = _Cache(version=version)
        for sc in org.scopes_of("gitlab"):
            items = org.scope_items(sc)
            cache.last_activity[sc.path] = max((i.updated for i in items), default=org.now)
            for item in items:
                if item.release_id is not None:
                    counts = cache.release_counts.setdefault(item.release_id, [0, 0])
                    counts[0] += 1
                    counts[1] += item.status == DONE
        _CACHES[org] = cache
    return cache


# --- lookups ---------------------------------------------------------------------------


def _group(ctx: Ctx) -> GitLabGroup:
    ident = ctx.params["group"]
    for grp in ctx.org.gitlab_groups:
        if (ident.isdigit() and grp.id == int(ident)) or grp.path.lower() == ident.lower():
            return grp
    raise _not_found("Group")


def _project(ctx: Ctx) -> Scope:
    scope = ctx.org.find_scope("gitlab", ctx.params["project"])
    if scope is None:
        raise _not_found("Project")
    return scope


def _issue(ctx: Ctx, scope: Scope) -> Item:
    raw = ctx.params["iid"]
    item = ctx.org.item_by_number(scope, int(raw)) if raw.isdigit() else None
    if item is None:
        raise _not_found("Issue")
    return item


def _under(path: str, group: GitLabGroup) -> bool:
    return path == group.path or path.startswith(group.path + "/")


def _group_projects(org: Organisation, group: GitLabGroup, subgroups: bool) -> list[Scope]:
    return [
        s
        for s in org.scopes_of("gitlab")
        if (_under(s.owner, group) if subgroups else s.owner == group.path)
    ]


#: An archived project (no issues) in the first GitLab project's group: listed by
#: ``/groups/:id/projects`` unless ``archived=false``, found by ``GET /projects/:id``.
ARCHIVED_PROJECT_ID = 2999


def archived_project_path(org: Organisation) -> str:
    return f"{org.scopes_of('gitlab')[0].owner}/legacy-portal"


def _is_archived_project(ctx: Ctx) -> bool:
    ident = ctx.params["project"]
    return ident == str(ARCHIVED_PROJECT_ID) or ident.lower() == archived_project_path(ctx.org)


def archived_project_json(ctx: Ctx) -> dict[str, Any]:
    org = ctx.org
    path = archived_project_path(org)
    owner = path.rsplit("/", 1)[0]
    grp = next(g for g in org.gitlab_groups if g.path == owner)
    return {
        "id": ARCHIVED_PROJECT_ID,
        "description": "Retired storefront",
        "name": "Legacy portal",
        "name_with_namespace": f"{grp.name} / Legacy portal",
        "path": "legacy-portal",
        "path_with_namespace": path,
        "created_at": gitlab_time(datetime(2024, 3, 1, 9, 0, tzinfo=org.now.tzinfo)),
        "default_branch": "main",
        "web_url": f"{ctx.base_url}/{path}",
        "archived": True,
        "visibility": "private",
        "last_activity_at": gitlab_time(datetime(2025, 1, 10, 9, 0, tzinfo=org.now.tzinfo)),
        "namespace": {
            "id": grp.id,
            "name": grp.name,
            "path": grp.path.rsplit("/", 1)[-1],
            "kind": "group",
            "full_path": grp.path,
            "parent_id": grp.parent_id,
            "web_url": f"{ctx.base_url}/groups/{grp.path}",
        },
        "issues_enabled": True,
        "open_issues_count": 0,
        "_links": {
            "self": f"{ctx.base_url}/api/v4/projects/{ARCHIVED_PROJECT_ID}",
            "issues": f"{ctx.base_url}/api/v4/projects/{ARCHIVED_PROJECT_ID}/issues",
        },
    }


def _root_group(org: Organisation) -> GitLabGroup:
    return next(g for g in org.gitlab_groups if g.parent_id is None)


# --- JSON renderers --------------------------------------------------------------------


def user_json(ctx: Ctx, person_id: int | None) -> dict[str, Any] | None:
    """A basic GitLab user (ids are person id + 1, as ``GET /user`` says)."""
    if person_id is None:
        return None
    person = ctx.org.person(person_id)
    return {
        "id": 1 + person.id,
        "username": person.login,
        "name": person.name,
        "state": "active",
        "locked": False,
        "avatar_url": f"{ctx.base_url}/uploads/-/system/user/avatar/{1 + person.id}/avatar.png",
        "web_url": f"{ctx.base_url}/{person.login}",
    }


def group_json(ctx: Ctx, grp: GitLabGroup) -> dict[str, Any]:
    created = gitlab_time(datetime(2025, 6, 2, 8, 0, tzinfo=ctx.org.now.tzinfo))
    parent_names = [g.name for g in ctx.org.gitlab_groups if _under(grp.path, g) and g is not grp]
    return {
        "id": grp.id,
        "web_url": f"{ctx.base_url}/groups/{grp.path}",
        "name": grp.name,
        "path": grp.path.rsplit("/", 1)[-1],
        "description": f"{grp.name} group",
        "visibility": "private",
        "full_name": " / ".join([*parent_names, grp.name]),
        "full_path": grp.path,
        "created_at": created,
        "parent_id": grp.parent_id,
        "organization_id": 1,
        "archived": False,
    }


def project_json(ctx: Ctx, scope: Scope) -> dict[str, Any]:
    org = ctx.org
    grp = next(g for g in org.gitlab_groups if g.path == scope.owner)
    items = org.scope_items(scope, include_deleted=True)
    created = (items[0].created if items else org.now) - timedelta(days=30)
    web = f"{ctx.base_url}/{scope.path}"
    name_ns = " / ".join(g.name for g in org.gitlab_groups if _under(scope.owner, g))
    return {
        "id": scope.native_id,
        "description": scope.name,
        "name": scope.name,
        "name_with_namespace": f"{name_ns} / {scope.name}",
        "path": scope.path.rsplit("/", 1)[-1],
        "path_with_namespace": scope.path,
        "created_at": gitlab_time(created),
        "default_branch": "main",
        "web_url": web,
        "archived": False,
        "visibility": "private",
        "last_activity_at": gitlab_time(_cache(org).last_activity.get(scope.path, org.now)),
        "namespace": {
            "id": grp.id,
            "name": grp.name,
            "path": grp.path.rsplit("/", 1)[-1],
            "kind": "group",
            "full_path": grp.path,
            "parent_id": grp.parent_id,
            "web_url": f"{ctx.base_url}/groups/{grp.path}",
        },
        "issues_enabled": True,
        "open_issues_count": sum(1 for i in items if i.deleted is None and i.status != DONE),
        "_links": {
            "self": f"{ctx.base_url}/api/v4/projects/{scope.native_id}",
            "issues": f"{ctx.base_url}/api/v4/projects/{scope.native_id}/issues",
        },
    }


def milestone_json(ctx: Ctx, rel: Release) -> dict[str, Any]:
    scope = ctx.org.scope(rel.scope_path)
    return {
        "id": rel.native_id,
        "iid": rel.number,
        "project_id": scope.native_id,
        "title": rel.name,
        "description": f"Release {rel.tag}",
        "state": "closed" if rel.released_at else "active",
        "created_at": gitlab_time(rel.created),
        "updated_at": gitlab_time(rel.updated),
        "due_date": iso_date(rel.due),
        "start_date": iso_date(rel.start),
        "expired": rel.due < ctx.org.now.date(),
        "web_url": f"{ctx.base_url}/{scope.path}/-/milestones/{rel.number}",
    }


def iteration_json(ctx: Ctx, spr: Sprint) -> dict[str, Any]:
    root = _root_group(ctx.org)
    created = min(spr.updated, spr.start - timedelta(days=14))
    return {
        "id": spr.native_id,
        "iid": spr.iid,
        "sequence": spr.sequence,
        "group_id": root.id,
        # the cadence schedules its iterations automatically: no title, no description
        "title": None,
        "description": None,
        "state": ITERATION_STATE_CODE[spr.state],
        "created_at": gitlab_time(created),
        "updated_at": gitlab_time(spr.updated),
        "start_date": iso_date(spr.start),
        # whole days: the sprint ends an hour before the next one starts, so its last
        # day is the one before its end (GitLab iterations in a cadence never overlap)
        "due_date": iso_date(spr.end - timedelta(days=1)),
        "web_url": f"{ctx.base_url}/groups/{root.path}/-/iterations/{spr.native_id}",
    }


def _gitlab_type(item: Item) -> str:
    return GITLAB_TYPES.get(item.type, ("issue", None))[0]


def _native_links(org: Organisation, item: Item) -> list[tuple[Any, Item, str]]:
    """(link, other item, link_type from ``item``'s side) for same-tool links."""
    out = []
    for lk in org.links_of(item):
        if lk.via != "native":
            continue
        other_id = lk.to_id if lk.from_id == item.id else lk.from_id
        other = org.items[other_id]
        if other.deleted is not None or other.scope.system != "gitlab":
            continue
        if lk.kind == "blocks":
            kind = "blocks" if lk.from_id == item.id else "is_blocked_by"
        else:
            kind = "relates_to"
        out.append((lk, other, kind))
    return sorted(out, key=lambda r: r[0].id)


def issue_json(ctx: Ctx, item: Item) -> dict[str, Any]:
    """An issue as ``GET /projects/:id/issues`` lists it (Premium fields included)."""
    org = ctx.org
    scope = item.scope
    api = f"{ctx.base_url}/api/v4/projects/{scope.native_id}"
    rel = org.releases.get(item.release_id) if item.release_id is not None else None
    spr = org.current_sprint(item)
    closed = item.status == DONE
    closer = item.assignee if item.assignee is not None else item.reporter
    assignees = [user_json(ctx, item.assignee)] if item.assignee is not None else []
    links = _native_links(org, item)
    duplicate_of = next(
        (o for lk, o, _ in links if lk.kind == "duplicates" and lk.from_id == item.id), None
    )
    issue_type = _gitlab_type(item)
    points = item.points
    return {
        "id": item.id,
        "iid": item.number,
        "project_id": scope.native_id,
        "title": item.title,
        "description": org.description(item),
        "state": "closed" if closed else "opened",
        "created_at": gitlab_time(item.created),
        "updated_at": gitlab_time(item.updated),
        "closed_at": gitlab_time(item.resolved),
        "closed_by": user_json(ctx, closer) if closed else None,
        "labels": list(item.source_labels),
        "milestone": milestone_json(ctx, rel) if rel is not None else None,
        "assignees": assignees,
        "author": user_json(ctx, item.reporter),
        "type": issue_type.upper(),
        "assignee": assignees[0] if assignees else None,
        "user_notes_count": (item.id * 7) % 5,
        "merge_requests_count": 0,
        "upvotes": 0,
        "downvotes": 0,
        "start_date": None,
        "due_date": iso_date(item.due),
        "confidential": False,
        "discussion_locked": None,
        "issue_type": issue_type,
        "web_url": f"{ctx.base_url}/{scope.path}/-/issues/{item.number}",
        "time_stats": {
            "time_estimate": 0,
            "total_time_spent": 0,
            "human_time_estimate": None,
            "human_total_time_spent": None,
        },
        "task_completion_status": {"count": 0, "completed_count": 0},
        "weight": int(points) if points is not None else None,
        "blocking_issues_count": sum(
            1 for _, o, kind in links if kind == "blocks" and o.status != DONE
        ),
        "has_tasks": False,
        "_links": {
            "self": f"{api}/issues/{item.number}",
            "notes": f"{api}/issues/{item.number}/notes",
            "award_emoji": f"{api}/issues/{item.number}/award_emoji",
            "project": api,
            "closed_as_duplicate_of": (
                f"{ctx.base_url}/api/v4/projects/{duplicate_of.scope.native_id}/issues/"
                f"{duplicate_of.number}"
                if duplicate_of is not None
                else None
            ),
        },
        "references": {
            "short": f"#{item.number}",
            "relative": f"#{item.number}",
            "full": f"{scope.path}#{item.number}",
        },
        "severity": _SEVERITY.get(item.priority, "UNKNOWN")
        if issue_type == "incident"
        else "UNKNOWN",
        "moved_to_id": None,
        "imported": False,
        "imported_from": "none",
        "service_desk_reply_to": None,
        "epic_iid": None,
        "epic": None,
        "iteration": iteration_json(ctx, spr) if spr is not None else None,
        "health_status": None,
    }


def release_json(ctx: Ctx, rel: Release) -> dict[str, Any]:
    scope = ctx.org.scope(rel.scope_path)
    total, closed = _cache(ctx.org).release_counts.get(rel.id, [0, 0])
    released = rel.released_at
    assert released is not None
    sha = hashlib.sha1(f"{scope.path}:{rel.tag}".encode()).hexdigest()
    return {
        "name": rel.name,
        "tag_name": rel.tag,
        "description": f"{rel.name}: milestone {rel.name} shipped.",
        "created_at": gitlab_time(released),
        "released_at": gitlab_time(released),
        "upcoming_release": released > ctx.org.now,
        "author": user_json(ctx, rel.id % len(ctx.org.people)),
        "commit": {
            "id": sha,
            "short_id": sha[:8],
            "title": f"Release {rel.tag}",
            "created_at": gitlab_time(released),
        },
        "milestones": [
            {**milestone_json(ctx, rel), "issue_stats": {"total": total, "closed": closed}}
        ],
        "commit_path": f"/{scope.path}/-/commit/{sha}",
        "tag_path": f"/{scope.path}/-/tags/{rel.tag}",
        "assets": {"count": 0, "sources": [], "links": []},
        "evidences": [],
        "_links": {"self": f"{ctx.base_url}/{scope.path}/-/releases/{rel.tag}"},
    }


def _event_base(ctx: Ctx, item: Item, n: int, at: datetime, who: int | None) -> dict[str, Any]:
    return {
        "id": item.id * 64 + n,
        "user": user_json(ctx, who if who is not None else item.reporter),
        "created_at": gitlab_time(at),
        "resource_type": "Issue",
        "resource_id": item.id,
    }


def state_events(ctx: Ctx, item: Item) -> list[dict[str, Any]]:
    """``closed``/``reopened`` per status change (empty if never closed)."""
    out: list[dict[str, Any]] = []
    hist = item.status_history
    for i in range(1, len(hist)):
        was_done, is_done = hist[i - 1].status == DONE, hist[i].status == DONE
        if was_done == is_done:
            continue
        ev = _event_base(ctx, item, len(out), hist[i].at, item.assignee)
        ev.update(
            source_commit=None,
            source_merge_request_id=None,
            state="closed" if is_done else "reopened",
        )
        out.append(ev)
    return out


def iteration_events(ctx: Ctx, item: Item) -> list[dict[str, Any]]:
    """Sprint membership: "add" at each membership start (a carry-over is the add of the
    next iteration at the close), "remove" when taken out before the close."""
    raw: list[tuple[datetime, str, Sprint]] = []
    for m in item.sprints:
        spr = ctx.org.sprints[m.sprint_id]
        raw.append((m.added, "add", spr))
        if m.removed is not None:
            raw.append((m.removed, "remove", spr))
    raw.sort(key=lambda r: r[0])
    out = []
    for n, (at, action, spr) in enumerate(raw):
        ev = _event_base(ctx, item, n, at, item.reporter)
        ev.update(iteration=iteration_json(ctx, spr), action=action)
        out.append(ev)
    return out


def weight_events(ctx: Ctx, item: Item) -> list[dict[str, Any]]:
    """Every estimate as GitLab records it (set at creation included; ``None`` = cleared)."""
    out: list[dict[str, Any]] = []
    for n, ch in enumerate(item.points_history):
        if n == 0 and ch.points is None:
            continue
        ev = _event_base(ctx, item, len(out), ch.at, item.reporter)
        del ev["resource_type"], ev["resource_id"]
        ev.update(issue_id=item.id, weight=int(ch.points) if ch.points is not None else None)
        out.append(ev)
    return out


def label_events(ctx: Ctx, item: Item) -> list[dict[str, Any]]:
    """Label history: the item's labels at creation, then the ``workflow::`` label moving
    with each status change (removed when the issue closes)."""

    def label(name: str) -> dict[str, Any]:
        lid = 7000 + int(hashlib.sha1(name.encode()).hexdigest()[:6], 16) % 100_000
        return {
            "id": lid,
            "name": name,
            "color": "#" + hashlib.sha1(name.encode()).hexdigest()[:6],
            "description": None,
        }

    raw: list[tuple[datetime, str, str]] = []
    workflow = set(GITLAB_WORKFLOW_LABELS.values())
    for name in item.source_labels:
        if name not in workflow:
            raw.append((item.created, "add", name))
    prev: str | None = None
    for ch in item.status_history:
        new = GITLAB_WORKFLOW_LABELS[ch.status] if ch.status != DONE else None
        if new == prev:
            continue
        if prev is not None:
            raw.append((ch.at, "remove", prev))
        if new is not None:
            raw.append((ch.at, "add", new))
        prev = new
    out = []
    for n, (at, action, name) in enumerate(raw):
        ev = _event_base(ctx, item, n, at, item.reporter)
        ev.update(label=label(name), action=action)
        out.append(ev)
    return out


# --- issue lists -----------------------------------------------------------------------


def _sort_value(item: Item, order_by: str) -> Any:
    if order_by == "created_at":
        return int(item.created.timestamp())
    if order_by == "updated_at":
        return int(item.updated.timestamp())
    if order_by == "title":
        return item.title
    if order_by == "due_date":  # undated last
        return item.due.toordinal() if item.due else 10**9
    if order_by == "weight":
        return item.points if item.points is not None else 10**9
    return item.id


def _issues(ctx: Ctx, scopes: list[Scope]) -> tuple[list[Item], list[tuple[Any, ...]], str, str]:
    """Filtered, ordered issues of ``scopes`` for this request (cached per org state) and
    their sort keys, plus ``order_by`` and ``sort``."""
    org = ctx.org
    q = ctx.query
    state = _enum(ctx, "state", ISSUE_STATES, "all")
    order_by = _enum(ctx, "order_by", ISSUE_ORDERS, "created_at")
    sort = _enum(ctx, "sort", SORTS, "desc")
    scope_filter = _enum(ctx, "scope", SCOPES, "all")
    bounds = tuple(
        _time(ctx, n)
        for n in ("updated_after", "updated_before", "created_after", "created_before")
    )
    iteration_id = _int(ctx, "iteration_id")
    assignee_id = _int(ctx, "assignee_id")
    author_id = _int(ctx, "author_id")
    iids = _iids(ctx)
    labels_raw = q.get("labels") or ""
    labels = tuple(sorted(x.strip() for x in labels_raw.split(",") if x.strip()))
    milestone = q.get("milestone")
    issue_type = q.get("issue_type")
    if issue_type is not None and issue_type not in ("issue", "incident", "test_case", "task"):
        raise _error(400, {"error": "issue_type does not have a valid value"})
    key = (
        tuple(s.path for s in scopes),
        state,
        order_by,
        sort,
        scope_filter,
        bounds,
        iteration_id,
        assignee_id,
        author_id,
        tuple(sorted(iids)) if iids is not None else None,
        labels,
        milestone,
        issue_type,
    )
    cache = _cache(org)
    hit = cache.lists.get(key)
    if hit is not None:
        cache.lists.move_to_end(key)
        return hit[0], hit[1], order_by, sort
    upd_after, upd_before, cre_after, cre_before = bounds
    me = ctx.user.id
    sprint_id = None
    if iteration_id is not None:
        sprint_id = next(
            (
                s.id
                for s in org.sprints.values()
                if s.system == "gitlab" and s.native_id == iteration_id
            ),
            -1,
        )

    def keep(item: Item) -> bool:
        closed = item.status == DONE
        if state == "opened" and closed or state == "closed" and not closed:
            return False
        if upd_after is not None and item.updated < upd_after:
            return False
        if upd_before is not None and item.updated > upd_before:
            return False
        if cre_after is not None and item.created < cre_after:
            return False
        if cre_before is not None and item.created > cre_before:
            return False
        if scope_filter == "created_by_me" and item.reporter != me:
            return False
        if scope_filter == "assigned_to_me" and item.assignee != me:
            return False
        if iids is not None and item.number not in iids:
            return False
        if assignee_id is not None and (item.assignee is None or item.assignee + 1 != assignee_id):
            return False
        if author_id is not None and item.reporter + 1 != author_id:
            return False
        if issue_type is not None and _gitlab_type(item) != issue_type:
            return False
        if sprint_id is not None:
            cur = org.current_sprint(item)
            if cur is None or cur.id != sprint_id:
                return False
        if labels:
            have = set(item.source_labels)
            if labels == ("None",):
                if have:
                    return False
            elif labels == ("Any",):
                if not have:
                    return False
            elif not set(labels) <= have:
                return False
        if milestone:
            rel = org.releases.get(item.release_id) if item.release_id is not None else None
            if milestone == "None":
                return rel is None
            if milestone == "Any":
                return rel is not None
            return rel is not None and rel.name == milestone
        return True

    rows = [i for s in scopes for i in org.scope_items(s) if keep(i)]
    rows.sort(key=lambda i: (_sort_value(i, order_by), i.id), reverse=sort == "desc")
    keys = [(_sort_value(i, order_by), i.id) for i in rows]
    cache.lists[key] = (rows, keys)
    if len(cache.lists) > _LIST_CACHE_SIZE:
        cache.lists.popitem(last=False)
    return rows, keys, order_by, sort


def _encode_cursor(order_by: str, key: tuple[Any, ...]) -> str:
    """Opaque keyset cursor (base64 JSON of the last row's order value and id, like
    GitLab's)."""
    payload: dict[str, Any] = {"id": str(key[1]), "_kd": "n"}
    if order_by != "id":
        payload = {order_by: key[0], **payload}
    raw = json.dumps(payload, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(order_by: str, text: str) -> tuple[Any, ...]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        ident = int(raw["id"])
        return (ident if order_by == "id" else raw[order_by], ident)
    except (ValueError, KeyError, TypeError) as exc:
        raise _invalid("cursor") from exc


def _issue_page(ctx: Ctx, scopes: list[Scope], keyset_ok: bool) -> Response:
    rows, keys, order_by, sort = _issues(ctx, scopes)
    if ctx.query.get("pagination") != "keyset":
        return _paged(ctx, rows, lambda i: issue_json(ctx, i))
    if not keyset_ok or order_by not in KEYSET_ORDERS:
        raise _error(
            405, {"message": "Keyset pagination is not yet available for this type of request"}
        )
    _, per_page = _paging(ctx)
    start = 0
    cursor = ctx.query.get("cursor")
    if cursor:
        key = _decode_cursor(order_by, cursor)
        if sort == "asc":
            start = bisect.bisect_right(keys, key)
        else:  # keys descending: first index whose key is below the cursor
            lo, hi = 0, len(keys)
            while lo < hi:
                mid = (lo + hi) // 2
                if keys[mid] >= key:
                    lo = mid + 1
                else:
                    hi = mid
            start = lo
    chunk = rows[start : start + per_page]
    headers: dict[str, str] = {}
    if start + len(chunk) < len(rows) and chunk:
        query = {k: v for k, v in ctx.query.multi_items() if k not in ("cursor", "page")}
        query["cursor"] = _encode_cursor(order_by, keys[start + len(chunk) - 1])
        query["per_page"] = str(per_page)
        url = f"{ctx.base_url}{ctx.path}?{urlencode(sorted(query.items()))}"
        headers["Link"] = f'<{url}>; rel="next"'
    return ctx.json([issue_json(ctx, i) for i in chunk], headers=headers)


# --- routes ----------------------------------------------------------------------------


def register(router: Router) -> None:
    """Add the GitLab routes to the simulator."""

    def get(path: str) -> Callable[[Callable[[Ctx], Any]], Callable[[Ctx], Any]]:
        return router.get(GITLAB, "/api/v4" + path)

    @get("/user")
    def user(ctx: Ctx) -> dict[str, Any]:
        person = ctx.user
        return {
            **(user_json(ctx, person.id) or {}),
            "email": person.email,
            "created_at": gitlab_time(ctx.org.now.replace(year=2020)),
        }

    @get("/groups/{group}")
    def group(ctx: Ctx) -> dict[str, Any]:
        return group_json(ctx, _group(ctx))

    @get("/groups/{group}/subgroups")
    def subgroups(ctx: Ctx) -> Response:
        grp = _group(ctx)
        rows = [g for g in ctx.org.gitlab_groups if g.parent_id == grp.id]
        return _paged(ctx, rows, lambda g: group_json(ctx, g))

    @get("/groups/{group}/descendant_groups")
    def descendant_groups(ctx: Ctx) -> Response:
        grp = _group(ctx)
        rows = [g for g in ctx.org.gitlab_groups if g is not grp and _under(g.path, grp)]
        return _paged(ctx, rows, lambda g: group_json(ctx, g))

    @get("/groups/{group}/projects")
    def group_projects(ctx: Ctx) -> Response:
        grp = _group(ctx)
        subgroups = _bool(ctx, "include_subgroups", False)
        rows: list[Any] = _group_projects(ctx.org, grp, subgroups)
        archived = ctx.query.get("archived")
        owner = archived_project_path(ctx.org).rsplit("/", 1)[0]
        if (_under(owner, grp) if subgroups else owner == grp.path) and (
            archived is None or _bool(ctx, "archived", True)
        ):
            rows.append(None)  # the archived project
        if archived is not None and _bool(ctx, "archived", True):
            rows = [r for r in rows if r is None]
        order_by = _enum(
            ctx, "order_by", ("created_at", "id", "name", "path", "last_activity_at"), "created_at"
        )
        sort = _enum(ctx, "sort", SORTS, "desc")

        def sort_key(s: Scope | None) -> Any:
            if s is None:
                return {"name": "Legacy portal", "path": "legacy-portal"}.get(
                    order_by, ARCHIVED_PROJECT_ID
                )
            return {
                "name": s.name,
                "path": s.path,
                "last_activity_at": _cache(ctx.org).last_activity.get(s.path, ctx.org.now),
            }.get(order_by, s.native_id)

        if order_by == "last_activity_at":
            rows = [r for r in rows if r is not None] + [r for r in rows if r is None]
        else:
            rows.sort(key=sort_key, reverse=sort == "desc")
        return _paged(
            ctx,
            rows,
            lambda s: archived_project_json(ctx) if s is None else project_json(ctx, s),
        )

    @get("/groups/{group}/issues")
    def group_issues(ctx: Ctx) -> Response:
        grp = _group(ctx)
        return _issue_page(ctx, _group_projects(ctx.org, grp, True), keyset_ok=False)

    @get("/groups/{group}/milestones")
    def group_milestones(ctx: Ctx) -> Response:
        grp = _group(ctx)
        rels: list[Release] = []
        if _bool(ctx, "include_descendants", False):
            for sc in _group_projects(ctx.org, grp, True):
                rels.extend(ctx.org.releases_of(sc))
        return _milestones(ctx, rels)

    @get("/groups/{group}/iterations")
    def iterations(ctx: Ctx) -> Response:
        grp = _group(ctx)
        state = _enum(ctx, "state", ITERATION_STATES, "all")
        ancestors = _bool(ctx, "include_ancestors", True)
        _bool(ctx, "include_descendants", False)
        after, before = _time(ctx, "updated_after"), _time(ctx, "updated_before")
        search = (ctx.query.get("search") or "").lower()
        owners = (
            {g.path for g in ctx.org.gitlab_groups if _under(grp.path, g)}
            if ancestors
            else {grp.path}
        )
        wanted = {
            "opened": ("future", "active"),
            "upcoming": ("future",),
            "current": ("active",),
            "closed": ("closed",),
            "all": ("future", "active", "closed"),
        }[state]
        rows = [
            spr
            for cad in ctx.org.cadences
            if cad.system == "gitlab" and cad.owner in owners
            for spr in ctx.org.sprints_of(cad)
            if spr.state in wanted
            and (after is None or spr.updated >= after)
            and (before is None or spr.updated <= before)
            and not search  # automatic cadence iterations have no title to match
        ]
        rows.sort(key=lambda s: (s.end, s.id))
        return _paged(ctx, rows, lambda s: iteration_json(ctx, s))

    @get("/projects/{project}")
    def project(ctx: Ctx) -> dict[str, Any]:
        if _is_archived_project(ctx):
            return archived_project_json(ctx)
        return project_json(ctx, _project(ctx))

    @get("/projects/{project}/issues")
    def project_issues(ctx: Ctx) -> Response:
        return _issue_page(ctx, [_project(ctx)], keyset_ok=True)

    @get("/projects/{project}/issues/{iid}")
    def project_issue(ctx: Ctx) -> dict[str, Any]:
        scope = _project(ctx)
        return issue_json(ctx, _issue(ctx, scope))

    @get("/projects/{project}/issues/{iid}/links")
    def issue_links(ctx: Ctx) -> list[dict[str, Any]]:
        scope = _project(ctx)
        item = _issue(ctx, scope)
        out = []
        for lk, other, kind in _native_links(ctx.org, item):
            out.append(
                {
                    **issue_json(ctx, other),
                    "issue_link_id": lk.id,
                    "link_type": kind,
                    "link_created_at": gitlab_time(lk.created),
                    "link_updated_at": gitlab_time(lk.created),
                }
            )
        return out

    def resource_events(kind: str, build: Callable[[Ctx, Item], list[dict[str, Any]]]) -> None:
        @get("/projects/{project}/issues/{iid}/" + kind)
        def handler(ctx: Ctx) -> Response:
            scope = _project(ctx)
            return _paged(ctx, build(ctx, _issue(ctx, scope)), lambda e: e)

    resource_events("resource_state_events", state_events)
    resource_events("resource_iteration_events", iteration_events)
    resource_events("resource_weight_events", weight_events)
    resource_events("resource_label_events", label_events)

    @get("/projects/{project}/milestones")
    def project_milestones(ctx: Ctx) -> Response:
        return _milestones(ctx, ctx.org.releases_of(_project(ctx)))

    @get("/projects/{project}/releases")
    def releases(ctx: Ctx) -> Response:
        scope = _project(ctx)
        order_by = _enum(ctx, "order_by", ("released_at", "created_at"), "released_at")
        sort = _enum(ctx, "sort", SORTS, "desc")
        rows = [r for r in ctx.org.releases_of(scope) if r.released_at is not None]
        rows.sort(key=lambda r: (r.released_at, r.id), reverse=sort == "desc")
        del order_by  # created_at == released_at here: releases are cut when shipped
        return _paged(ctx, rows, lambda r: release_json(ctx, r))


def _milestones(ctx: Ctx, rels: list[Release]) -> Response:
    state = ctx.query.get("state")
    if state not in (None, "", "active", "closed"):
        raise _error(400, {"error": "state does not have a valid value"})
    after, before = _time(ctx, "updated_after"), _time(ctx, "updated_before")
    iids = _iids(ctx)
    title = ctx.query.get("title")
    rows = [
        r
        for r in rels
        if (not state or (state == "closed") == (r.released_at is not None))
        and (after is None or r.updated >= after)
        and (before is None or r.updated <= before)
        and (iids is None or r.number in iids)
        and (title is None or r.name == title)
    ]
    rows.sort(key=lambda r: r.native_id, reverse=True)
    return _paged(ctx, rows, lambda r: milestone_json(ctx, r))
