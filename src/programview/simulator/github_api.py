"""GitHub REST (``/github``) and GraphQL (``/github/graphql``) endpoints of the simulator.

Serves the organisation's GitHub repositories (``org.scopes_of("github")``) the way
api.github.com does, so the GitHub connector can be written and tested against it.

REST (``Authorization: Bearer|token``; ``X-GitHub-Api-Version`` 2022-11-28 or 2026-03-10,
anything else → 400 as GitHub answers it). Every ``/repos/{owner}/{repo}/…`` route is also
served as ``/repositories/{id}/…``, the form GitHub's ``Link`` URLs use:

* ``GET /repos/{o}/{r}`` — the repository.
* ``GET /repos/{o}/{r}/issues`` — issues *and pull requests* (PRs carry ``pull_request``;
  a few per repo, numbered from ``PR_NUMBER_BASE`` so they never collide with issue
  numbers). ``state`` open (default)|closed|all, ``since`` (``updated_at`` ≥, seconds),
  ``sort`` created (default)|updated|comments, ``direction`` desc (default)|asc,
  ``milestone`` number|``*``|``none``, ``labels`` (comma list, all must match),
  ``assignee``/``creator`` login (assignee also ``*``/``none``), ``type`` name|``*``|``none``,
  ``per_page`` ≤100 (default 30; not a number → default), ``page``. Bad enum values or
  ``since`` → 422 Validation Failed. ``Link`` with next/last/first/prev as GitHub orders
  them (the last page has only prev and first), ETag → 304.
* ``GET /repos/{o}/{r}/issues/{n}`` — one issue (with ``closed_by``, which lists lack);
  410 "This issue was deleted" for a deleted one, 404 for an unknown number.
* ``GET …/issues/{n}/sub_issues``, ``…/parent`` (404 when none),
  ``…/dependencies/blocked_by``, ``…/dependencies/blocking`` (same-tool "blocks" links),
  ``…/events`` and ``…/timeline`` (closed / reopened with ``state_reason``, labeled /
  unlabeled for ``points:N`` re-estimates, milestoned, assigned — from the item history),
  ``GET /repos/{o}/{r}/issues/events`` (repo-wide, newest first, with ``issue``).
* ``GET /repos/{o}/{r}/milestones`` (``state`` open|closed|all, ``sort`` due_on|completeness,
  ``direction``; ``due_on`` is US-Pacific midnight in UTC, ``T07:00:00Z``/``T08:00:00Z``),
  ``GET /repos/{o}/{r}/releases`` (shipped milestones, newest first), ``GET …/labels``,
  ``GET /orgs/{org}/issue-types``, ``GET /rate_limit`` (not counted, as on GitHub).
* ``GET /orgs/{org}``, ``GET /orgs/{org}/repos`` and ``GET /user/repos`` (``sort``,
  ``direction``, ``Link`` paging; the organisation also has one *archived* repository,
  ``ARCHIVED_REPO``, listed but empty), ``GET /repos/{o}/{r}/pulls`` (``state``, ``sort``
  created|updated, ``direction``; no ``since``, as on GitHub).

GraphQL ``POST /graphql`` is executed for real against GitHub's published schema:
see ``programview.simulator.github_graphql``.

Lists are computed from per-organisation indexes rebuilt after each ``advance()`` (keyed
by the number of advances, the clock and the item count); a test that edits generator
records by hand must call ``clear_caches()``.
"""

from __future__ import annotations

import base64
import hashlib
import random
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.responses import Response

from programview.simulator.app import (
    GITHUB,
    GITHUB_DOCS,
    ApiError,
    Ctx,
    RateLimiter,
    Router,
    api_error,
    github_link_header,
    github_time,
    iso_date,
    json_response,
    page_slice,
    parse_time,
)
from programview.simulator.generator import (
    DONE,
    GITHUB_TYPES,
    Item,
    Organisation,
    Release,
    Scope,
    Sprint,
)

#: API versions GitHub accepts in ``X-GitHub-Api-Version`` (newest first).
SUPPORTED_VERSIONS = ("2026-03-10", "2022-11-28")
#: Pull-request numbers start here, above any issue number the generator makes, so an
#: issue and a PR never share a number in one repository (as on GitHub).
PR_NUMBER_BASE = 1_000_000
PRS_PER_REPO = 4
PACIFIC = ZoneInfo("America/Los_Angeles")
PROJECT_TITLE = "Acme delivery"
ISSUE_STATES = ("open", "closed", "all")
ISSUE_SORTS = ("created", "updated", "comments")
DIRECTIONS = ("asc", "desc")
_TYPE_COLORS = {"Feature": "blue", "Bug": "red", "Task": "yellow", "Epic": "purple"}


# --- records the generator does not have ---------------------------------------------


@dataclass(slots=True, eq=False)
class PullRequest:
    """A pull request as the issues API shows it (the connector must skip these)."""

    id: int
    number: int
    scope: Scope
    title: str
    created: datetime
    updated: datetime
    closed: datetime | None
    merged: datetime | None
    author: int
    assignee: int | None

    @property
    def github_state(self) -> str:
        return "closed" if self.closed else "open"


def _generation_time(org: Organisation) -> datetime:
    """The clock when the organisation was generated (PRs never depend on advances)."""
    return org.changes[0].start if org.changes else org.now


def _make_prs(org: Organisation, scope: Scope, offset: int) -> list[PullRequest]:
    rng = random.Random(f"{org.seed}:{org.size}:{scope.path}:pulls")
    items = org.scope_items(scope, include_deleted=True)
    start = items[0].created if items else _generation_time(org) - timedelta(days=200)
    end = _generation_time(org) - timedelta(hours=2)
    out = []
    for k in range(PRS_PER_REPO):
        created = datetime.fromtimestamp(int(rng.uniform(start.timestamp(), end.timestamp())), UTC)
        closed = merged = None
        if k < PRS_PER_REPO - 1:  # all but one are merged or closed
            closed = min(end, created + timedelta(hours=rng.randint(2, 120)))
            merged = closed if rng.random() < 0.8 else None
        out.append(
            PullRequest(
                id=2_000_000_000 + offset * 1000 + k,
                number=PR_NUMBER_BASE + k + 1,
                scope=scope,
                title=f"Implement {items[rng.randrange(len(items))].title.lower()}"
                if items
                else "Update dependencies",
                created=created,
                updated=closed or created + timedelta(minutes=rng.randint(5, 600)),
                closed=closed,
                merged=merged,
                author=rng.randrange(len(org.people)),
                assignee=rng.randrange(len(org.people)) if rng.random() < 0.5 else None,
            )
        )
    return sorted(out, key=lambda p: p.number)


# --- per-organisation index ------------------------------------------------------------


Record = Item | PullRequest


@dataclass
class _Index:
    """Derived lookups for one state of the organisation (rebuilt after ``advance``)."""

    version: tuple[Any, ...]
    children: dict[int, list[Item]] = field(default_factory=dict)
    release_counts: dict[int, list[int]] = field(default_factory=dict)  # id -> [open, closed]
    releases_by_scope: dict[str, dict[int, Release]] = field(default_factory=dict)  # by number
    prs: dict[str, list[PullRequest]] = field(default_factory=dict)
    labels: dict[str, set[str]] = field(default_factory=dict)
    lists: OrderedDict[tuple[Any, ...], list[Record]] = field(default_factory=OrderedDict)
    repo_events: dict[str, list[tuple[datetime, int, Item, dict[str, Any]]]] = field(
        default_factory=dict
    )
    project_items: list[tuple[tuple[int, int], Record | None]] | None = None
    #: JSON pieces every answer repeats (users, labels, milestones, issue types), by base URL
    #: and what they show: see ``_shared``
    rendered: dict[tuple[Any, ...], Any] = field(default_factory=dict)


_INDEXES: weakref.WeakKeyDictionary[Organisation, _Index] = weakref.WeakKeyDictionary()
_LIST_CACHE_SIZE = 64


def clear_caches() -> None:
    """Forget every derived index (only needed after editing generator records by hand)."""
    _INDEXES.clear()


def _version(org: Organisation) -> tuple[Any, ...]:
    return (len(org.changes), org.now, len(org.items))


def _index(org: Organisation) -> _Index:
    idx = _INDEXES.get(org)
    if idx is not None and idx.version == _version(org):
        return idx
    idx = _Index(version=_version(org))
    for n, sc in enumerate(org.scopes_of("github")):
        labels: set[str] = set()
        for item in org.scope_items(sc):
            if item.parent_id is not None:
                idx.children.setdefault(item.parent_id, []).append(item)
            if item.release_id is not None:
                counts = idx.release_counts.setdefault(item.release_id, [0, 0])
                counts[1 if item.status == DONE else 0] += 1
            labels.update(item.source_labels)
        idx.labels[sc.path] = labels
        idx.releases_by_scope[sc.path] = {r.number: r for r in org.releases_of(sc)}
        idx.prs[sc.path] = _make_prs(org, sc, n)
    _INDEXES[org] = idx
    return idx


# --- small helpers ---------------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode().rstrip("=")


def _node(prefix: str, ident: int | str) -> str:
    return f"{prefix}{_b64(str(ident))}"


def _hex(text: str, n: int = 8) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def _web(ctx: Ctx) -> str:
    """The github.com-style HTML root for this simulator (``html_url`` fields)."""
    return ctx.base_url.rsplit("/github", 1)[0] + "/github-web"


def due_on(d: date) -> str:
    """GitHub stores a milestone due date as midnight US-Pacific: ``T07:00:00Z`` in
    summer time, ``T08:00:00Z`` in winter."""
    return github_time(datetime.combine(d, time(0), PACIFIC).astimezone(UTC)) or ""


def _validation(field_name: str, value: str, resource: str = "Issue") -> Exception:
    body = {
        "message": "Validation Failed",
        "errors": [{"value": value, "resource": resource, "field": field_name, "code": "invalid"}],
        "documentation_url": GITHUB_DOCS,
        "status": "422",
    }
    return _raw_error(body, 422)


def _raw_error(body: dict[str, Any], status: int) -> Exception:
    return ApiError(json_response(GITHUB, body, status))


def _check_version(ctx: Ctx) -> None:
    version = ctx.headers.get("x-github-api-version")
    if version is None or version in SUPPORTED_VERSIONS:
        return
    listed = ", ".join(
        f'"{v}"' + (" (most recent)" if i == 0 else "") for i, v in enumerate(SUPPORTED_VERSIONS)
    )
    message = (
        f'The version you specified in the "X-GitHub-Api-Version" request header, "{version}", '
        f"is not a supported version. The following versions are currently supported: "
        f"{listed}."
    )
    raise api_error(GITHUB, 400, message)


def _paging(ctx: Ctx, default: int = 30) -> tuple[int, int]:
    """``page`` and ``per_page`` as GitHub reads them: junk → defaults, ``per_page`` ≤ 100."""

    def num(name: str, fallback: int) -> int:
        raw = ctx.query.get(name, "")
        try:
            value = int(raw)
        except ValueError:
            return fallback
        return value if value >= 1 else fallback

    return num("page", 1), min(100, num("per_page", default))


def _enum(ctx: Ctx, name: str, allowed: Sequence[str], default: str) -> str:
    value = ctx.query.get(name) or default
    if value not in allowed:
        raise _validation(name, value)
    return value


def _repo_path(scope: Scope, suffix: str) -> str:
    return f"/repositories/{scope.native_id}{suffix}"


def _paged(
    ctx: Ctx,
    scope: Scope,
    suffix: str,
    rows: Sequence[Any],
    render: Callable[[Any], Any],
    default_per_page: int = 30,
) -> Response:
    page, per_page = _paging(ctx, default_per_page)
    chunk = page_slice(rows, page, per_page)
    headers = github_link_header(ctx, page, per_page, len(rows), _repo_path(scope, suffix))
    return ctx.json([render(r) for r in chunk], headers=headers, etag=True)


# --- JSON renderers --------------------------------------------------------------------


def _shared(ctx: Ctx, key: tuple[Any, ...], render: Callable[[], Any]) -> Any:
    """``render()`` once per state of the organisation and base URL: a page of 100 issues
    repeats the same few users, labels and milestones (rendering them was a fifth of a
    listing's time). Callers only ever place these objects in an answer, never change them."""
    cache = _index(ctx.org).rendered
    full = (ctx.base_url, *key)
    found = cache.get(full)
    if found is None:
        found = cache[full] = render()
    return found


def user_json(ctx: Ctx, person_id: int | None) -> dict[str, Any] | None:
    """A ``simple-user`` object (GitHub ids are person id + 1, as ``GET /user`` says)."""
    if person_id is None:
        return None
    return _shared(ctx, ("user", person_id), lambda: _user_json(ctx, person_id))


def _user_json(ctx: Ctx, person_id: int) -> dict[str, Any]:
    person = ctx.org.person(person_id)
    uid = 1 + person.id
    api = f"{ctx.base_url}/users/{person.login}"
    return {
        "login": person.login,
        "id": uid,
        "node_id": _node("MDQ6VXNlcj", uid),
        "avatar_url": f"{_web(ctx)}/avatars/u/{uid}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": f"{_web(ctx)}/{person.login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": "User",
        "site_admin": False,
    }


def _label_id(scope: Scope, name: str) -> int:
    return 200_000_000 + zlib.crc32(f"{scope.path}:{name}".encode()) % 800_000_000


def label_json(ctx: Ctx, scope: Scope, name: str) -> dict[str, Any]:
    return _shared(ctx, ("label", scope.path, name), lambda: _label_json(ctx, scope, name))


def _label_json(ctx: Ctx, scope: Scope, name: str) -> dict[str, Any]:
    if name.startswith("points:"):
        description = f"Story points: {name.split(':', 1)[1]}"
    elif name.startswith("priority:"):
        description = f"Priority {name.split(':', 1)[1]}"
    else:
        description = f"Work on {name}"
    lid = _label_id(scope, name)
    return {
        "id": lid,
        "node_id": _node("LA_kwDO", lid),
        "url": f"{ctx.base_url}/repos/{scope.path}/labels/{name.replace(' ', '%20')}",
        "name": name,
        "color": _hex(name, 6),
        "default": name in ("bug", "enhancement", "documentation"),
        "description": description,
    }


def _milestone_counts(ctx: Ctx, rel: Release) -> tuple[int, int]:
    counts = _index(ctx.org).release_counts.get(rel.id, [0, 0])
    return counts[0], counts[1]


def milestone_json(ctx: Ctx, rel: Release) -> dict[str, Any]:
    return _shared(ctx, ("milestone", rel.id), lambda: _milestone_json(ctx, rel))


def _milestone_json(ctx: Ctx, rel: Release) -> dict[str, Any]:
    scope = ctx.org.scope(rel.scope_path)
    api = f"{ctx.base_url}/repos/{scope.path}/milestones/{rel.number}"
    open_n, closed_n = _milestone_counts(ctx, rel)
    return {
        "url": api,
        "html_url": f"{_web(ctx)}/{scope.path}/milestone/{rel.number}",
        "labels_url": f"{api}/labels",
        "id": rel.native_id,
        "node_id": _node("MI_kwDO", rel.native_id),
        "number": rel.number,
        "title": rel.name,
        "description": f"Release {rel.tag}",
        "creator": user_json(ctx, rel.id % len(ctx.org.people)),
        "open_issues": open_n,
        "closed_issues": closed_n,
        "state": "closed" if rel.released_at else "open",
        "created_at": github_time(rel.created),
        "updated_at": github_time(rel.updated),
        "due_on": due_on(rel.due),
        "closed_at": github_time(rel.released_at),
    }


def issue_type_json(ctx: Ctx, name: str) -> dict[str, Any]:
    return _shared(ctx, ("type", name), lambda: _issue_type_json(name))


def _issue_type_json(name: str) -> dict[str, Any]:
    tid = 400 + sorted(GITHUB_TYPES.values()).index(name)
    created = github_time(datetime(2025, 3, 1, 9, 0, tzinfo=UTC))
    return {
        "id": tid,
        "node_id": _node("IT_kwDO", tid),
        "name": name,
        "description": f"{name} work item",
        "color": _TYPE_COLORS.get(name, "gray"),
        "created_at": created,
        "updated_at": created,
        "is_enabled": True,
    }


def _reactions(url: str) -> dict[str, Any]:
    return {
        "url": f"{url}/reactions",
        "total_count": 0,
        "+1": 0,
        "-1": 0,
        "laugh": 0,
        "hooray": 0,
        "confused": 0,
        "heart": 0,
        "rocket": 0,
        "eyes": 0,
    }


def _comments(rec: Record) -> int:
    return (rec.id * 7) % 6


def _issue_urls(ctx: Ctx, scope: Scope, number: int, kind: str) -> dict[str, str]:
    api = f"{ctx.base_url}/repos/{scope.path}/issues/{number}"
    return {
        "url": api,
        "repository_url": f"{ctx.base_url}/repos/{scope.path}",
        "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments",
        "events_url": f"{api}/events",
        "html_url": f"{_web(ctx)}/{scope.path}/{kind}/{number}",
    }


def _native_blocks(org: Organisation, item: Item) -> tuple[list[Item], list[Item]]:
    """(blocked_by, blocking) through same-tool links; live items only."""
    blocked_by, blocking = [], []
    for lk in org.links_of(item):
        if lk.kind != "blocks" or lk.via != "native":
            continue
        if lk.to_id == item.id:
            other = org.items[lk.from_id]
            if other.deleted is None:
                blocked_by.append(other)
        elif lk.from_id == item.id:
            other = org.items[lk.to_id]
            if other.deleted is None:
                blocking.append(other)
    return blocked_by, blocking


def issue_json(ctx: Ctx, item: Item, single: bool = False) -> dict[str, Any]:
    """An issue as ``GET /repos/{o}/{r}/issues`` lists it (``single``: as ``GET …/{n}``)."""
    org = ctx.org
    scope = item.scope
    urls = _issue_urls(ctx, scope, item.number, "issues")
    children = _index(org).children.get(item.id, [])
    done_children = sum(1 for c in children if c.status == DONE)
    blocked_by, blocking = _native_blocks(org, item)
    rel = org.releases.get(item.release_id) if item.release_id is not None else None
    parent = org.items.get(item.parent_id) if item.parent_id is not None else None
    type_name = GITHUB_TYPES.get(item.type)
    assignees = [user_json(ctx, item.assignee)] if item.assignee is not None else []
    body: dict[str, Any] = {
        **{k: v for k, v in urls.items() if k != "html_url"},
        "html_url": urls["html_url"],
        "id": item.id,
        "node_id": _node("I_kwDO", item.id),
        "number": item.number,
        "title": item.title,
        "user": user_json(ctx, item.reporter),
        "labels": [label_json(ctx, scope, n) for n in item.source_labels],
        "state": item.github_state,
        "locked": False,
        "assignee": assignees[0] if assignees else None,
        "assignees": assignees,
        "milestone": milestone_json(ctx, rel) if rel is not None else None,
        "comments": _comments(item),
        "created_at": github_time(item.created),
        "updated_at": github_time(item.updated),
        "closed_at": github_time(item.resolved),
        "author_association": "MEMBER",
        "type": issue_type_json(ctx, type_name) if type_name else None,
        "active_lock_reason": None,
        "sub_issues_summary": {
            "total": len(children),
            "completed": done_children,
            "percent_completed": (done_children * 100 // len(children)) if children else 0,
        },
        "issue_dependencies_summary": {
            "blocked_by": sum(1 for b in blocked_by if b.status != DONE),
            "total_blocked_by": len(blocked_by),
            "blocking": sum(1 for b in blocking if b.status != DONE),
            "total_blocking": len(blocking),
        },
        "parent_issue_url": (
            f"{ctx.base_url}/repos/{parent.scope.path}/issues/{parent.number}"
            if parent is not None and parent.scope.system == "github"
            else None
        ),
        "body": org.description(item),
        "reactions": _reactions(urls["url"]),
        "timeline_url": f"{urls['url']}/timeline",
        "performed_via_github_app": None,
        "pinned_comment": None,
        "state_reason": item.github_state_reason,
    }
    if single:
        closer = item.assignee if item.assignee is not None else item.reporter
        body["closed_by"] = user_json(ctx, closer) if item.status == DONE else None
    return body


def pr_issue_json(ctx: Ctx, pr: PullRequest, single: bool = False) -> dict[str, Any]:
    """A pull request as the *issues* API shows it (with ``pull_request``)."""
    scope = pr.scope
    urls = _issue_urls(ctx, scope, pr.number, "pull")
    pulls = f"{ctx.base_url}/repos/{scope.path}/pulls/{pr.number}"
    html = urls["html_url"]
    assignees = [user_json(ctx, pr.assignee)] if pr.assignee is not None else []
    body: dict[str, Any] = {
        **urls,
        "id": pr.id,
        "node_id": _node("PR_kwDO", pr.id),
        "number": pr.number,
        "title": pr.title,
        "user": user_json(ctx, pr.author),
        "labels": [],
        "state": pr.github_state,
        "locked": False,
        "assignee": assignees[0] if assignees else None,
        "assignees": assignees,
        "milestone": None,
        "comments": _comments(pr),
        "created_at": github_time(pr.created),
        "updated_at": github_time(pr.updated),
        "closed_at": github_time(pr.closed),
        "author_association": "MEMBER",
        "active_lock_reason": None,
        "draft": False,
        "pull_request": {
            "url": pulls,
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "merged_at": github_time(pr.merged),
        },
        "body": f"{pr.title}.\n\nPart of the {scope.name} roadmap.",
        "reactions": _reactions(urls["url"]),
        "timeline_url": f"{urls['url']}/timeline",
        "performed_via_github_app": None,
        "state_reason": None,
    }
    if single:
        body["closed_by"] = user_json(ctx, pr.author) if pr.closed else None
    return body


def record_json(ctx: Ctx, rec: Record, single: bool = False) -> dict[str, Any]:
    if isinstance(rec, PullRequest):
        return pr_issue_json(ctx, rec, single)
    return issue_json(ctx, rec, single)


def repo_json(ctx: Ctx, scope: Scope) -> dict[str, Any]:
    org = ctx.org
    items = org.scope_items(scope)
    owner_login = scope.owner
    api = f"{ctx.base_url}/repos/{scope.path}"
    created = min((i.created for i in items), default=org.now) - timedelta(days=30)
    updated = max((i.updated for i in items), default=created)
    open_issues = sum(1 for i in items if i.status != DONE)
    open_issues += sum(1 for p in _index(org).prs[scope.path] if p.closed is None)
    org_id = 9_000_000 + zlib.crc32(owner_login.encode()) % 1_000_000
    return {
        "id": scope.native_id,
        "node_id": _node("R_kgDO", scope.native_id),
        "name": scope.path.split("/", 1)[1],
        "full_name": scope.path,
        "private": True,
        "owner": {
            "login": owner_login,
            "id": org_id,
            "node_id": _node("O_kgDO", org_id),
            "url": f"{ctx.base_url}/users/{owner_login}",
            "html_url": f"{_web(ctx)}/{owner_login}",
            "type": "Organization",
            "site_admin": False,
        },
        "html_url": f"{_web(ctx)}/{scope.path}",
        "description": scope.name,
        "fork": False,
        "url": api,
        "issues_url": f"{api}/issues{{/number}}",
        "milestones_url": f"{api}/milestones{{/number}}",
        "labels_url": f"{api}/labels{{/name}}",
        "releases_url": f"{api}/releases{{/id}}",
        "created_at": github_time(created),
        "updated_at": github_time(updated),
        "pushed_at": github_time(updated),
        "has_issues": True,
        "has_projects": True,
        "archived": False,
        "disabled": False,
        "open_issues_count": open_issues,
        "open_issues": open_issues,
        "visibility": "private",
        "default_branch": "main",
    }


def release_json(ctx: Ctx, scope: Scope, rel: Release) -> dict[str, Any]:
    rid = 80_000_000 + rel.id
    api = f"{ctx.base_url}/repos/{scope.path}/releases/{rid}"
    return {
        "url": api,
        "assets_url": f"{api}/assets",
        "upload_url": f"{ctx.base_url}/uploads/repos/{scope.path}/releases/{rid}/assets"
        "{?name,label}",
        "html_url": f"{_web(ctx)}/{scope.path}/releases/tag/{rel.tag}",
        "id": rid,
        "author": user_json(ctx, rel.id % len(ctx.org.people)),
        "node_id": _node("RE_kwDO", rid),
        "tag_name": rel.tag,
        "target_commitish": "main",
        "name": rel.name,
        "draft": False,
        "prerelease": False,
        "created_at": github_time(rel.released_at),
        "published_at": github_time(rel.released_at),
        "assets": [],
        "tarball_url": f"{ctx.base_url}/repos/{scope.path}/tarball/{rel.tag}",
        "zipball_url": f"{ctx.base_url}/repos/{scope.path}/zipball/{rel.tag}",
        "body": f"{rel.name}: milestone {rel.number} shipped.",
    }


#: An archived repository of the organisation: listed by ``/orgs/{org}/repos`` (so an
#: organisation scope must skip it), with nothing in it.
ARCHIVED_REPO = "legacy-portal"
ARCHIVED_REPO_ID = 699_999_999


def org_json(ctx: Ctx, *, full: bool = True) -> dict[str, Any]:
    """``GET /orgs/{org}`` (``full``) or the ``organization-simple`` of listings."""
    login = ctx.org.github_org
    oid = 9_000_000 + zlib.crc32(login.encode()) % 1_000_000
    api = f"{ctx.base_url}/orgs/{login}"
    body: dict[str, Any] = {
        "login": login,
        "id": oid,
        "node_id": _node("O_kgDO", oid),
        "url": api,
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events",
        "hooks_url": f"{api}/hooks",
        "issues_url": f"{api}/issues",
        "members_url": f"{api}/members{{/member}}",
        "public_members_url": f"{api}/public_members{{/member}}",
        "avatar_url": f"{_web(ctx)}/avatars/u/{oid}?v=4",
        "description": "Acme Corp",
    }
    if full:
        repos = len(ctx.org.scopes_of("github")) + 1
        body.update(
            {
                "name": "Acme Corp",
                "company": None,
                "blog": "",
                "location": None,
                "email": None,
                "is_verified": False,
                "has_organization_projects": True,
                "has_repository_projects": True,
                "public_repos": 0,
                "public_gists": 0,
                "followers": 0,
                "following": 0,
                "html_url": f"{_web(ctx)}/{login}",
                "created_at": github_time(datetime(2019, 5, 1, 9, 0, tzinfo=UTC)),
                "updated_at": github_time(_generation_time(ctx.org)),
                "type": "Organization",
                "total_private_repos": repos,
                "owned_private_repos": repos,
                "plan": {"name": "team", "space": 976562499, "private_repos": 999999},
            }
        )
    return body


def archived_repo_json(ctx: Ctx) -> dict[str, Any]:
    """The organisation's archived repository (see ``ARCHIVED_REPO``)."""
    login = ctx.org.github_org
    path = f"{login}/{ARCHIVED_REPO}"
    created = github_time(datetime(2021, 3, 1, 9, 0, tzinfo=UTC))
    return {
        "id": ARCHIVED_REPO_ID,
        "node_id": _node("R_kgDO", ARCHIVED_REPO_ID),
        "name": ARCHIVED_REPO,
        "full_name": path,
        "private": True,
        "owner": {"login": login, "type": "Organization", "site_admin": False},
        "html_url": f"{_web(ctx)}/{path}",
        "description": "The old portal (read only)",
        "fork": False,
        "url": f"{ctx.base_url}/repos/{path}",
        "created_at": created,
        "updated_at": created,
        "pushed_at": created,
        "has_issues": True,
        "has_projects": False,
        "archived": True,
        "disabled": False,
        "open_issues_count": 0,
        "open_issues": 0,
        "visibility": "private",
        "default_branch": "main",
    }


def pull_json(ctx: Ctx, pr: PullRequest) -> dict[str, Any]:
    """A pull request as ``GET /repos/{o}/{r}/pulls`` lists it."""
    scope = pr.scope
    api = f"{ctx.base_url}/repos/{scope.path}/pulls/{pr.number}"
    html = f"{_web(ctx)}/{scope.path}/pull/{pr.number}"
    assignees = [user_json(ctx, pr.assignee)] if pr.assignee is not None else []
    repo = {"id": scope.native_id, "full_name": scope.path, "name": scope.path.split("/", 1)[1]}
    return {
        "url": api,
        "id": pr.id,
        "node_id": _node("PR_kwDO", pr.id),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": f"{ctx.base_url}/repos/{scope.path}/issues/{pr.number}",
        "number": pr.number,
        "state": pr.github_state,
        "locked": False,
        "title": pr.title,
        "user": user_json(ctx, pr.author),
        "body": f"{pr.title}.\n\nPart of the {scope.name} roadmap.",
        "labels": [],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": github_time(pr.created),
        "updated_at": github_time(pr.updated),
        "closed_at": github_time(pr.closed),
        "merged_at": github_time(pr.merged),
        "merge_commit_sha": _hex(f"merge:{pr.id}", 40) if pr.merged else None,
        "assignee": assignees[0] if assignees else None,
        "assignees": assignees,
        "requested_reviewers": [],
        "requested_teams": [],
        "head": {
            "label": f"{scope.owner}:feature-{pr.number}",
            "ref": f"feature-{pr.number}",
            "sha": _hex(f"head:{pr.id}", 40),
            "repo": repo,
        },
        "base": {
            "label": f"{scope.owner}:main",
            "ref": "main",
            "sha": _hex(f"base:{pr.id}", 40),
            "repo": repo,
        },
        "author_association": "MEMBER",
        "draft": False,
    }


# --- issue events (from the item history) -----------------------------------------------


def item_events(ctx: Ctx, item: Item) -> list[dict[str, Any]]:
    """Issue events oldest first: assigned, milestoned and labeled at creation,
    unlabeled/labeled for each re-estimate (``points:N``), closed/reopened per status
    change (the last close carries the final ``state_reason``)."""
    scope = item.scope
    actor = item.reporter
    out = []
    for eid, at, kind, detail in event_history(ctx.org, item):
        if kind == "assigned":
            extra: dict[str, Any] = {"assignee": user_json(ctx, item.assignee)}
        elif kind == "milestoned":
            extra = {"milestone": {"title": detail}}
        elif kind in ("labeled", "unlabeled"):
            extra = {"label": _short_label(str(detail))}
        else:
            extra = {"state_reason": detail}
        who = item.assignee if kind == "closed" and item.assignee is not None else actor
        ev: dict[str, Any] = {
            "id": eid,
            "node_id": _node("IE_lADO", eid),
            "url": f"{ctx.base_url}/repos/{scope.path}/issues/events/{eid}",
            "actor": user_json(ctx, who),
            "event": kind,
            "commit_id": None,
            "commit_url": None,
            "created_at": github_time(at),
            "performed_via_github_app": None,
            **extra,
        }
        if kind == "assigned":
            ev["assigner"] = user_json(ctx, actor)
        out.append(ev)
    return out


def event_history(org: Organisation, item: Item) -> list[tuple[int, datetime, str, str | None]]:
    """``(event id, at, kind, detail)`` of ``item_events`` without rendering them (GraphQL's
    timeline needs only these): detail is the label name (labeled, unlabeled), the milestone
    title (milestoned), the state reason (closed, reopened), None (assigned)."""
    raw: list[tuple[datetime, str, str | None]] = []
    if item.assignee is not None:
        raw.append((item.created, "assigned", None))
    if item.release_id is not None:
        raw.append((item.created, "milestoned", org.releases[item.release_id].name))
    first_points = item.points_history[0].points
    for name in item.source_labels:
        if name.startswith("points:"):
            continue
        raw.append((item.created, "labeled", name))
    if first_points is not None:
        raw.append((item.created, "labeled", f"points:{int(first_points)}"))
    prev = first_points
    for ch in item.points_history[1:]:
        if prev is not None:
            raw.append((ch.at, "unlabeled", f"points:{int(prev)}"))
        if ch.points is not None:
            raw.append((ch.at, "labeled", f"points:{int(ch.points)}"))
        prev = ch.points
    closes = [
        i
        for i in range(1, len(item.status_history))
        if item.status_history[i].status == DONE and item.status_history[i - 1].status != DONE
    ]
    for i in range(1, len(item.status_history)):
        before, now = item.status_history[i - 1], item.status_history[i]
        if now.status == DONE and before.status != DONE:
            reason = item.github_state_reason if i == closes[-1] else "completed"
            raw.append((now.at, "closed", reason))
        elif before.status == DONE and now.status != DONE:
            raw.append((now.at, "reopened", "reopened"))
    raw.sort(key=lambda e: e[0])
    return [(item.id * 64 + n, at, kind, detail) for n, (at, kind, detail) in enumerate(raw)]


def _short_label(name: str) -> dict[str, str]:
    return {"name": name, "color": _hex(name, 6)}


# --- issue lists -----------------------------------------------------------------------


def _records(ctx: Ctx, scope: Scope) -> list[Record]:
    recs: list[Record] = list(ctx.org.scope_items(scope))
    recs.extend(_index(ctx.org).prs[scope.path])
    return recs


def _person_by_login(org: Organisation, login: str) -> int:
    """Person id of a login; -1 (matches nobody) when unknown, as GitHub returns []."""
    return next((p.id for p in org.people if p.login.lower() == login.lower()), -1)


def _filtered_issues(ctx: Ctx, scope: Scope) -> list[Record]:
    """The issue list for this request's filters and order (cached per org state)."""
    org = ctx.org
    q = ctx.query
    state = _enum(ctx, "state", ISSUE_STATES, "open")
    sort = _enum(ctx, "sort", ISSUE_SORTS, "created")
    direction = _enum(ctx, "direction", DIRECTIONS, "desc")
    since_raw = q.get("since")
    since = None
    if since_raw:
        try:
            since = parse_time(since_raw)
        except ValueError as exc:
            raise _validation("since", since_raw) from exc
    milestone = q.get("milestone")
    labels = tuple(sorted(x.strip() for x in (q.get("labels") or "").split(",") if x.strip()))
    assignee, creator, type_ = q.get("assignee"), q.get("creator"), q.get("type")
    idx = _index(org)
    key = (scope.path, state, sort, direction, since, milestone, labels, assignee, creator, type_)
    cached = idx.lists.get(key)
    if cached is not None:
        idx.lists.move_to_end(key)
        return cached
    milestone_id: int | None = None
    if milestone not in (None, "", "*", "none"):
        rel = idx.releases_by_scope[scope.path].get(int(milestone)) if milestone.isdigit() else None
        milestone_id = rel.id if rel is not None else -1
    assignee_id = (
        _person_by_login(org, assignee) if assignee not in (None, "", "*", "none") else None
    )
    creator_id = _person_by_login(org, creator) if creator else None

    def keep(rec: Record) -> bool:
        if state != "all" and rec.github_state != state:
            return False
        if since is not None and rec.updated < since:
            return False
        is_pr = isinstance(rec, PullRequest)
        rel_id = None if is_pr else rec.release_id  # type: ignore[union-attr]
        if milestone == "*" and rel_id is None:
            return False
        if milestone == "none" and rel_id is not None:
            return False
        if milestone_id is not None and rel_id != milestone_id:
            return False
        if labels:
            have = set() if is_pr else set(rec.source_labels)  # type: ignore[union-attr]
            if not set(labels) <= have:
                return False
        if assignee == "none" and rec.assignee is not None:
            return False
        if assignee == "*" and rec.assignee is None:
            return False
        if assignee_id is not None and rec.assignee != assignee_id:
            return False
        if creator_id is not None:
            author = rec.author if is_pr else rec.reporter  # type: ignore[union-attr]
            if author != creator_id:
                return False
        if type_:
            name = None if is_pr else GITHUB_TYPES.get(rec.type)  # type: ignore[union-attr]
            if type_ == "none":
                return name is None
            if type_ == "*":
                return name is not None
            return name is not None and name.lower() == type_.lower()
        return True

    sort_key: Callable[[Record], Any] = {
        "created": lambda r: (r.created, r.id),
        "updated": lambda r: (r.updated, r.id),
        "comments": lambda r: (_comments(r), r.id),
    }[sort]
    rows = sorted(filter(keep, _records(ctx, scope)), key=sort_key, reverse=direction == "desc")
    idx.lists[key] = rows
    if len(idx.lists) > _LIST_CACHE_SIZE:
        idx.lists.popitem(last=False)
    return rows


# --- routes ----------------------------------------------------------------------------


def _scope_of(ctx: Ctx) -> Scope:
    p = ctx.params
    ident = p["repo_id"] if "repo_id" in p else f"{p['owner']}/{p['repo']}"
    if "repo_id" in p and not ident.isdigit():
        raise ctx.error(404, "Not Found")
    scope = ctx.org.find_scope("github", ident)
    if scope is None:
        raise ctx.error(404, "Not Found")
    return scope


def _record(ctx: Ctx, scope: Scope, allow_pr: bool = True) -> Record:
    """Issue (or PR) ``{number}``: 404 unknown, 410 deleted."""
    raw = ctx.params["number"]
    if not raw.isdigit():
        raise ctx.error(404, "Not Found")
    number = int(raw)
    if number > PR_NUMBER_BASE:
        pr = next((p for p in _index(ctx.org).prs[scope.path] if p.number == number), None)
        if pr is None or not allow_pr:
            raise ctx.error(404, "Not Found")
        return pr
    items = ctx.org.scope_items(scope, include_deleted=True)
    if not 1 <= number <= len(items):
        raise ctx.error(404, "Not Found")
    item = items[number - 1]
    if item.deleted is not None:
        raise ctx.error(410, "This issue was deleted")
    return item


def register(router: Router) -> None:
    """Add the GitHub routes to the simulator."""

    def repo_get(suffix: str) -> Callable[[Callable[[Ctx], Any]], Callable[[Ctx], Any]]:
        """Register a handler for ``/repos/{owner}/{repo}SUFFIX`` and the
        ``/repositories/{repo_id}SUFFIX`` form, with the API-version check."""

        def deco(handler: Callable[[Ctx], Any]) -> Callable[[Ctx], Any]:
            def wrapped(ctx: Ctx) -> Any:
                _check_version(ctx)
                return handler(ctx)

            router.get(GITHUB, "/repos/{owner}/{repo}" + suffix)(wrapped)
            router.get(GITHUB, "/repositories/{repo_id}" + suffix)(wrapped)
            return handler

        return deco

    @router.get(GITHUB, "/orgs/{org}")
    def organization(ctx: Ctx) -> Response:
        _check_version(ctx)
        if ctx.params["org"].lower() != ctx.org.github_org:
            raise ctx.error(404, "Not Found")
        return ctx.json(org_json(ctx), etag=True)

    def repo_list(ctx: Ctx, suffix: str) -> Response:
        """Repositories sorted as GitHub does (``sort`` full_name|created|updated|pushed;
        ``direction`` asc for full_name, else desc), paged with ``Link``."""
        sort = _enum(ctx, "sort", ("full_name", "created", "updated", "pushed"), "full_name")
        direction = _enum(ctx, "direction", DIRECTIONS, "asc" if sort == "full_name" else "desc")
        rows = [repo_json(ctx, sc) for sc in ctx.org.scopes_of("github")]
        rows.append(archived_repo_json(ctx))
        field = {"full_name": "full_name", "created": "created_at"}.get(sort, "updated_at")
        rows.sort(key=lambda r: (r[field], r["id"]), reverse=direction == "desc")
        page, per_page = _paging(ctx)
        chunk = page_slice(rows, page, per_page)
        headers = github_link_header(ctx, page, per_page, len(rows), suffix)
        return ctx.json(list(chunk), headers=headers, etag=True)

    @router.get(GITHUB, "/orgs/{org}/repos")
    def org_repos(ctx: Ctx) -> Response:
        _check_version(ctx)
        if ctx.params["org"].lower() != ctx.org.github_org:
            raise ctx.error(404, "Not Found")
        _enum(ctx, "type", ("all", "public", "private", "forks", "sources", "member"), "all")
        return repo_list(ctx, f"/orgs/{ctx.org.github_org}/repos")

    @router.get(GITHUB, "/user/repos")
    def user_repos(ctx: Ctx) -> Response:
        _check_version(ctx)
        return repo_list(ctx, "/user/repos")

    @router.get(GITHUB, "/user")
    def user(ctx: Ctx) -> Response:
        _check_version(ctx)
        person = ctx.user
        org = ctx.org
        body = {
            **(user_json(ctx, person.id) or {}),
            "name": person.name,
            "email": person.email,
            "created_at": github_time(org.now.replace(year=2020)),
            "updated_at": github_time(org.now),
        }
        return ctx.json(body, etag=True)  # conditional requests: If-None-Match -> 304

    @router.get(GITHUB, "/rate_limit")
    def rate_limit(ctx: Ctx) -> Response:
        """Free on GitHub: the app counts every answer, so take this one back first."""
        _check_version(ctx)
        limiter = ctx.app.limiters[GITHUB]
        resources = {}
        for name in ("core", "search", "graphql"):
            limit, used, remaining, reset = limiter.state(name)
            resources[name] = {
                "limit": limit,
                "used": used,
                "remaining": remaining,
                "reset": int(reset),
            }
        _uncount(limiter)  # after reading: the body shows the requests made before this one
        body: dict[str, Any] = {"resources": resources}
        if ctx.headers.get("x-github-api-version") != "2026-03-10":
            body["rate"] = resources["core"]  # dropped in 2026-03-10
        return ctx.json(body)

    @router.get(GITHUB, "/orgs/{org}/issue-types")
    def issue_types(ctx: Ctx) -> list[dict[str, Any]]:
        _check_version(ctx)
        if ctx.params["org"].lower() != ctx.org.github_org:
            raise ctx.error(404, "Not Found")
        return [issue_type_json(ctx, n) for n in sorted(set(GITHUB_TYPES.values()))]

    @repo_get("")
    def repo(ctx: Ctx) -> Response:
        return ctx.json(repo_json(ctx, _scope_of(ctx)), etag=True)

    @repo_get("/issues")
    def list_issues(ctx: Ctx) -> Response:
        scope = _scope_of(ctx)
        rows = _filtered_issues(ctx, scope)
        return _paged(ctx, scope, "/issues", rows, lambda r: record_json(ctx, r))

    @repo_get("/pulls")
    def pulls(ctx: Ctx) -> Response:
        """Pull requests: ``state`` open (default)|closed|all, ``sort`` created (default)|
        updated|popularity|long-running, ``direction`` (desc unless sort is created… GitHub:
        desc by default for every sort). No ``since`` (as on GitHub)."""
        scope = _scope_of(ctx)
        state = _enum(ctx, "state", ISSUE_STATES, "open")
        sort = _enum(ctx, "sort", ("created", "updated", "popularity", "long-running"), "created")
        direction = _enum(ctx, "direction", DIRECTIONS, "desc")
        rows = [
            p for p in _index(ctx.org).prs[scope.path] if state == "all" or p.github_state == state
        ]
        key: Callable[[PullRequest], Any] = (
            (lambda p: (p.updated, p.id)) if sort == "updated" else (lambda p: (p.created, p.id))
        )
        rows.sort(key=key, reverse=direction == "desc")
        return _paged(ctx, scope, "/pulls", rows, lambda p: pull_json(ctx, p))

    @repo_get("/issues/events")
    def repo_events(ctx: Ctx) -> Response:
        scope = _scope_of(ctx)
        idx = _index(ctx.org)
        rows = idx.repo_events.get(scope.path)
        if rows is None:
            rows = []
            for item in ctx.org.scope_items(scope):
                for ev in item_events(ctx, item):
                    rows.append((parse_time(ev["created_at"]), ev["id"], item, ev))
            rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
            idx.repo_events[scope.path] = rows

        def render(row: tuple[datetime, int, Item, dict[str, Any]]) -> dict[str, Any]:
            return {**row[3], "issue": issue_json(ctx, row[2])}

        return _paged(ctx, scope, "/issues/events", rows, render)

    @repo_get("/issues/{number}")
    def get_issue(ctx: Ctx) -> Response:
        scope = _scope_of(ctx)
        return ctx.json(record_json(ctx, _record(ctx, scope), single=True), etag=True)

    @repo_get("/issues/{number}/sub_issues")
    def sub_issues(ctx: Ctx) -> Response:
        scope = _scope_of(ctx)
        rec = _record(ctx, scope)
        kids = [] if isinstance(rec, PullRequest) else _index(ctx.org).children.get(rec.id, [])
        suffix = f"/issues/{rec.number}/sub_issues"
        return _paged(ctx, scope, suffix, kids, lambda i: issue_json(ctx, i))

    @repo_get("/issues/{number}/parent")
    def parent(ctx: Ctx) -> Response:
        scope = _scope_of(ctx)
        rec = _record(ctx, scope)
        par = None
        if isinstance(rec, Item) and rec.parent_id is not None:
            par = ctx.org.items.get(rec.parent_id)
        if par is None or par.deleted is not None or par.scope.system != "github":
            raise ctx.error(404, "Not Found")
        return ctx.json(issue_json(ctx, par), etag=True)

    def dependencies(ctx: Ctx, which: int) -> Response:
        scope = _scope_of(ctx)
        rec = _record(ctx, scope)
        rows = [] if isinstance(rec, PullRequest) else _native_blocks(ctx.org, rec)[which]
        suffix = "/issues/{}/dependencies/{}".format(rec.number, ("blocked_by", "blocking")[which])
        return _paged(ctx, scope, suffix, rows, lambda i: issue_json(ctx, i))

    @repo_get("/issues/{number}/dependencies/blocked_by")
    def blocked_by(ctx: Ctx) -> Response:
        return dependencies(ctx, 0)

    @repo_get("/issues/{number}/dependencies/blocking")
    def blocking(ctx: Ctx) -> Response:
        return dependencies(ctx, 1)

    def events(ctx: Ctx, timeline: bool) -> Response:
        scope = _scope_of(ctx)
        rec = _record(ctx, scope)
        rows = [] if isinstance(rec, PullRequest) else item_events(ctx, rec)
        if timeline:  # timeline entries have no API url of their own for these kinds
            rows = [{k: v for k, v in ev.items() if k != "url"} for ev in rows]
        suffix = f"/issues/{rec.number}/" + ("timeline" if timeline else "events")
        return _paged(ctx, scope, suffix, rows, lambda e: e)

    @repo_get("/issues/{number}/events")
    def issue_events(ctx: Ctx) -> Response:
        return events(ctx, timeline=False)

    @repo_get("/issues/{number}/timeline")
    def issue_timeline(ctx: Ctx) -> Response:
        return events(ctx, timeline=True)

    @repo_get("/milestones")
    def milestones(ctx: Ctx) -> Response:
        scope = _scope_of(ctx)
        state = _enum(ctx, "state", ISSUE_STATES, "open")
        sort = _enum(ctx, "sort", ("due_on", "completeness"), "due_on")
        direction = _enum(ctx, "direction", DIRECTIONS, "asc")
        rels = [
            r
            for r in ctx.org.releases_of(scope)
            if state == "all" or (state == "closed") == (r.released_at is not None)
        ]

        def completeness(r: Release) -> tuple[float, int]:
            open_n, closed_n = _milestone_counts(ctx, r)
            total = open_n + closed_n
            return (closed_n / total if total else 0.0, r.number)

        key: Callable[[Release], Any] = (
            (lambda r: (r.due, r.number)) if sort == "due_on" else completeness
        )
        rels.sort(key=key, reverse=direction == "desc")
        return _paged(ctx, scope, "/milestones", rels, lambda r: milestone_json(ctx, r))

    @repo_get("/milestones/{number}")
    def milestone(ctx: Ctx) -> Response:
        scope = _scope_of(ctx)
        raw = ctx.params["number"]
        rel = _index(ctx.org).releases_by_scope[scope.path].get(int(raw)) if raw.isdigit() else None
        if rel is None:
            raise ctx.error(404, "Not Found")
        return ctx.json(milestone_json(ctx, rel), etag=True)

    @repo_get("/releases")
    def releases(ctx: Ctx) -> Response:
        scope = _scope_of(ctx)
        rels = sorted(
            (r for r in ctx.org.releases_of(scope) if r.released_at is not None),
            key=lambda r: (r.released_at, r.id),
            reverse=True,
        )
        return _paged(ctx, scope, "/releases", rels, lambda r: release_json(ctx, scope, r))

    @repo_get("/labels")
    def labels(ctx: Ctx) -> Response:
        scope = _scope_of(ctx)
        names = sorted(_index(ctx.org).labels[scope.path])
        return _paged(ctx, scope, "/labels", names, lambda n: label_json(ctx, scope, n))

    @router.post(GITHUB, "/graphql")
    def graphql(ctx: Ctx) -> Response:
        from programview.simulator.github_graphql import graphql_answer

        return ctx.json(graphql_answer(ctx))


def _uncount(limiter: RateLimiter) -> None:
    """Take back the hit the app is about to count for this request (``/rate_limit`` is
    free on GitHub). Uses the limiter's own lock; the window may dip to -1 for the moment
    between here and the app's ``hit()``."""
    with limiter._lock:
        window = limiter._w("core")
        window.used -= 1


# --- GraphQL data (executed by programview.simulator.github_graphql) --------------------


_DRAFT_ID = 3_000_000_000


def _project_items(org: Organisation) -> list[tuple[tuple[int, int], Record | None]]:
    """Project items in position order: every live GitHub issue, the repos' PRs and one
    draft (``None``), keyed by (created epoch, id) for cursors."""
    idx = _index(org)
    if idx.project_items is None:
        rows: list[tuple[tuple[int, int], Record | None]] = []
        for sc in org.scopes_of("github"):
            for item in org.scope_items(sc):
                rows.append(((int(item.created.timestamp()), item.id), item))
            for pr in idx.prs[sc.path]:
                rows.append(((int(pr.created.timestamp()), pr.id), pr))
        draft_at = int((_generation_time(org) - timedelta(days=3)).timestamp())
        rows.append(((draft_at, _DRAFT_ID), None))
        rows.sort(key=lambda r: r[0])
        idx.project_items = rows
    return idx.project_items


def _github_sprints(org: Organisation) -> list[Sprint]:
    cad = next((c for c in org.cadences if c.system == "github"), None)
    return org.sprints_of(cad) if cad is not None else []


_FIELDS: tuple[tuple[str, str, str], ...] = (  # (name, __typename, dataType)
    ("Title", "ProjectV2Field", "TITLE"),
    ("Assignees", "ProjectV2Field", "ASSIGNEES"),
    ("Status", "ProjectV2SingleSelectField", "SINGLE_SELECT"),
    ("Labels", "ProjectV2Field", "LABELS"),
    ("Linked pull requests", "ProjectV2Field", "LINKED_PULL_REQUESTS"),
    ("Milestone", "ProjectV2Field", "MILESTONE"),
    ("Repository", "ProjectV2Field", "REPOSITORY"),
    ("Reviewers", "ProjectV2Field", "REVIEWERS"),
    ("Parent issue", "ProjectV2Field", "PARENT_ISSUE"),
    ("Sub-issues progress", "ProjectV2Field", "SUB_ISSUES_PROGRESS"),
    ("Estimate", "ProjectV2Field", "NUMBER"),
    ("Iteration", "ProjectV2IterationField", "ITERATION"),
    ("Target date", "ProjectV2Field", "DATE"),
)
_FIELD_PREFIX = {
    "ProjectV2Field": "PVTF_",
    "ProjectV2SingleSelectField": "PVTSSF_",
    "ProjectV2IterationField": "PVTIF_",
}


def _field_id(name: str) -> str:
    typename = next(t for n, t, _ in _FIELDS if n == name)
    return f"{_FIELD_PREFIX[typename]}lADO{_hex('field:' + name, 10)}"


def _option_id(name: str) -> str:
    return _hex("option:" + name)


def _iteration_json(spr: Sprint) -> dict[str, Any]:
    return {
        "id": str(spr.native_id),
        "title": spr.name,
        "titleHTML": spr.name,
        "startDate": iso_date(spr.start),
        "duration": max(1, round((spr.end - spr.start).total_seconds() / 86400)),
    }
