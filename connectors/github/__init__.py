"""GitHub connector (github.com and GitHub Enterprise Server).

REST v3 for repositories, issues, milestones, releases and dependencies; GraphQL for issue
timelines and Projects v2 (story points, board status, iterations). Credential ``token`` (a
classic or fine-grained personal access token, or an App token), sent as ``Authorization:
Bearer``. A scope is ``owner/repo``, or an organisation (or user) name = all its repositories
that are not archived.

See ``streams.py`` for what is pulled, ``mapping.py`` for how it lands in the warehouse,
``queries.py`` for the GraphQL sent, and docs/connectors/github.md for set-up and the rules
that decide the numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from programview.errors import AuthError, ConfigError, ConnectorError, NotFound, RateLimited
from programview.normalize import ANNOTATION, parse_date, parse_time, utc_now
from programview.sync.connector import Connector, LiveIds, Stream
from programview.sync.paging import LinkPaginator, PageRequest, paginate

from . import queries
from .mapping import GitHubSettings, is_pull_request
from .options import AUTO_DUE_FIELDS, AUTO_POINTS_FIELDS, GitHubOptions
from .streams import PAGE, Issues, Milestones, Releases, Sprints, blocked_by, observe_in_progress

if TYPE_CHECKING:
    from programview.config import SourceConfig
    from programview.http import HttpClient

__all__ = ["GitHubConnector", "GitHubOptions"]

log = logging.getLogger("programview.connectors.github")

Raw = dict[str, Any]

API_VERSION = "2022-11-28"
AUTH_HINT = (
    "check the token: it may be expired or revoked; a classic token needs the repo scope "
    "(and read:project for Projects), a fine-grained one Issues: read, Metadata: read and "
    "Projects: read on the organisation"
)
#: GraphQL "RATE_LIMITED" answers waited out before giving up on one request.
MAX_GRAPHQL_WAITS = 5
#: Deletion check: per-issue lookups for ids missing from a listing, at most this many.
MAX_MISSING_LOOKUPS = 200


def graphql_url(base_url: str) -> str:
    """``https://api.github.com`` -> ``…/graphql``; GHES ``https://HOST/api/v3`` ->
    ``https://HOST/api/graphql``."""
    base = base_url.rstrip("/")
    if base.endswith("/api/v3"):
        return base[: -len("/v3")] + "/graphql"
    return base + "/graphql"


@dataclass
class ProjectInfo:
    """One configured Projects v2 project, as read this run."""

    key: str  # "owner/number", lower case
    title: str
    updated_at: str
    items: int
    points_field: str | None  # field names as the project spells them; None: no such field
    iteration_field: str | None
    status_field: str | None
    due_field: str | None
    iterations: dict[str, Raw] = field(default_factory=dict)


class GitHubConnector(Connector):
    """One configured GitHub source. See the module docstring."""

    kind: ClassVar[str] = "github"
    options_model = GitHubOptions
    credential_keys: ClassVar[tuple[str, ...]] = ("token",)
    pace_requests: ClassVar[bool] = True
    live_stream: ClassVar[str | None] = "issues"

    options: GitHubOptions

    def __init__(self, source: SourceConfig, http: HttpClient) -> None:
        super().__init__(source, http)
        if getattr(http, "auth_hint", "missing") is None:
            http.auth_hint = AUTH_HINT
        #: Naive-UTC "now": the observation time of this run. Replaceable in tests.
        self.clock: Callable[[], datetime] = utc_now
        self.observed_at = ""
        self.graphql_url = graphql_url(source.base_url)
        self.settings = GitHubSettings(
            source=source.name,
            in_progress=self.options.in_progress_names(),
            issue_types=self.options.issue_types(),
            label_types=self.options.label_types(),
        )
        self.projects: dict[str, ProjectInfo] = {}
        #: A project changed since the last run: run the board pass (cards moved).
        self.board_pass_due = False
        #: Iterations first seen this run: items already in them count as committed.
        self.new_iterations: set[str] = set()
        #: Iterations this run saw items of each scope in (for the sprints stream).
        self.scope_iterations: dict[str, set[str]] = {}
        self.milestone_titles: dict[str, dict[str, int]] = {}
        #: Repositories an organisation listing named this run (they need no check).
        self.listed: set[str] = set()
        self.dependencies_supported = True
        #: GraphQL rate-limit points spent this run (reported in the run's notes).
        self.graphql_points = 0
        #: (kind, field name) -> alias in the ``ItemValues`` fragment built by ``prepare``.
        self.value_alias: dict[tuple[str, str], str] = {}
        self.values_fragment = queries.item_values([])

    def run_notes(self) -> list[str]:
        if not self.graphql_points:
            return []
        board = "; projects changed: the board was read" if self.board_pass_due else ""
        return [f"GraphQL: {self.graphql_points} rate-limit points{board}"]

    # --- auth, projects, scopes ------------------------------------------------------------

    @classmethod
    def auth_headers(cls, source: SourceConfig) -> dict[str, str]:
        token = source.secret("token")
        if not token:
            raise ConfigError(f"sources[{source.name}].credentials: GitHub needs token")
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }

    def streams(self) -> list[Stream]:
        return [Milestones(self), Releases(self), Issues(self), Sprints(self)]

    async def prepare(self) -> None:
        """Check the token (``/rate_limit``, free), then read each configured project's fields
        and decide whether its board changed since the last run."""
        now = self.clock()
        with contextlib.suppress(NotFound):  # GitHub Enterprise Server, rate limiting off
            answer = await self.http.fetch_page("/rate_limit")
            now = _server_time(answer.headers.get("date")) or now
        self.observed_at = now.isoformat()
        saved: dict[str, Any] = dict(self.state.get("projects") or {})
        for key in self.options.projects:
            info = await self._read_project(key)
            prev = saved.get(info.key) or {}
            rescan = timedelta(hours=self.options.project_rescan_hours)
            scanned = parse_time(prev.get("scanned_at")) if prev.get("scanned_at") else None
            spacing = timedelta(minutes=self.options.board_pass_minutes)
            moved = prev.get("updated_at") != info.updated_at or prev.get("items") != info.items
            changed = (
                scanned is None or now - scanned >= rescan or (moved and now - scanned >= spacing)
            )
            self.board_pass_due = self.board_pass_due or changed
            known = set(prev.get("iterations") or [])
            self.new_iterations.update(i for i in info.iterations if i not in known)
            saved[info.key] = {
                # a change left for a later board pass stays a change until that pass
                "updated_at": info.updated_at if changed else prev.get("updated_at"),
                "items": info.items if changed else prev.get("items"),
                "scanned_at": self.observed_at if changed else prev.get("scanned_at"),
                "iterations": sorted(known | set(info.iterations)),
            }
            self.projects[info.key] = info
        self.state["projects"] = saved
        self._build_values_fragment()

    def _build_values_fragment(self) -> None:
        """One aliased ``fieldValueByName`` per field name the configured projects use."""
        fields: list[tuple[str, str, str]] = []
        self.value_alias = {}
        for info in self.projects.values():
            for kind, name in (
                ("points", info.points_field),
                ("status", info.status_field),
                ("iteration", info.iteration_field),
                ("due", info.due_field),
            ):
                if name is None or (kind, name) in self.value_alias:
                    continue
                alias = f"{kind}_{len(fields)}"
                self.value_alias[(kind, name)] = alias
                fields.append((alias, kind, name))
        self.values_fragment = queries.item_values(fields)

    async def _read_project(self, key: str) -> ProjectInfo:
        owner, _, number = key.partition("/")
        data, _ = await self.graphql(
            queries.PROJECT, {"login": owner, "number": int(number)}, what=f"project {key}"
        )
        holder = data.get("repositoryOwner")
        project = holder.get("projectV2") if isinstance(holder, dict) else None
        if not isinstance(project, dict):
            raise NotFound(
                f"project {key!r} not found: check options.projects (OWNER/NUMBER, from the "
                f"project's URL) and that the token can read it (read:project)",
                source=self.source.name,
            )
        fields = [f for f in (project.get("fields") or {}).get("nodes") or [] if f]
        by_type: dict[str, list[Raw]] = {}
        for f in fields:
            by_type.setdefault(str(f.get("dataType")), []).append(f)

        def pick(kind: str, wanted: str, auto: tuple[str, ...] | None, option: str) -> str | None:
            """The project's field of type ``kind`` to read, by its own spelling."""
            names = {
                str(f.get("name")).strip().lower(): str(f.get("name"))
                for f in by_type.get(kind, [])
            }
            if wanted.strip().lower() != "auto":
                if wanted.strip().lower() not in names:
                    found = ", ".join(sorted(names.values()))
                    raise ConfigError(
                        f"sources[{self.source.name}].options.{option}: project {key} has no "
                        f"{kind.lower().replace('_', '-')} field {wanted!r} "
                        f"(it has: {found or 'none'})"
                    )
                return names[wanted.strip().lower()]
            if auto is None:
                return next(iter(names.values()), None)
            return next((names[n] for n in auto if n in names), None)

        iteration_field = pick("ITERATION", self.options.iteration_field, None, "iteration_field")
        iterations: dict[str, Raw] = {}
        for f in by_type.get("ITERATION", []):
            if str(f.get("name")) != iteration_field:
                continue
            config = f.get("configuration") or {}
            for it in [
                *(config.get("iterations") or []),
                *(config.get("completedIterations") or []),
            ]:
                if isinstance(it, dict) and it.get("id"):
                    iterations[str(it["id"])] = {
                        "id": str(it["id"]),
                        "title": it.get("title"),
                        "startDate": it.get("startDate"),
                        "duration": it.get("duration"),
                    }
        status = pick("SINGLE_SELECT", "auto", (self.options.status_field.strip().lower(),), "")
        if status is None:
            log.warning(
                "%s: project %s has no single-select field %r; status comes from labels only",
                self.source.name,
                key,
                self.options.status_field,
            )
        return ProjectInfo(
            key=key.lower(),
            title=str(project.get("title") or ""),
            updated_at=str(project.get("updatedAt") or ""),
            items=int((project.get("items") or {}).get("totalCount") or 0),
            points_field=pick(
                "NUMBER", self.options.points_field, AUTO_POINTS_FIELDS, "points_field"
            ),
            iteration_field=iteration_field,
            status_field=status,
            due_field=pick("DATE", "auto", AUTO_DUE_FIELDS, "due_field"),
            iterations=iterations,
        )

    async def scopes(self) -> list[str]:
        """``owner/repo`` scopes as given; an organisation (or user) name expands into its
        repositories that are not archived, so a new repository is picked up. A one-page
        listing is asked for conditionally (free when nothing changed)."""
        out: list[str] = []
        owners: dict[str, Raw] = self.state.setdefault("owners", {})
        for scope in self.source.scopes:
            if "/" in scope:
                out.append(scope)
                continue
            names = await self._owner_repos(scope, owners)
            self.listed.update(names)
            out.extend(names)
        return out

    async def _owner_repos(self, owner: str, saved: dict[str, Raw]) -> list[str]:
        previous = saved.get(owner) or {}
        for path in (f"/orgs/{owner}/repos", f"/users/{owner}/repos"):
            repos: list[Raw] = []
            try:
                listing = paginate(
                    self.http,
                    PageRequest(path, {"type": "all", "sort": "full_name"}),
                    LinkPaginator(page_size=PAGE),
                    etag=previous.get("etag") if previous.get("path") == path else None,
                )
                etag: str | None = None
                async for n, page in _numbered(listing):
                    if page.http.not_modified:
                        return list(previous.get("repos") or [])
                    repos.extend(r for r in page.records if isinstance(r, dict))
                    one_page = n == 0 and "next" not in page.http.links
                    etag = page.http.etag if one_page else None
            except NotFound:
                continue
            names = sorted(
                str(r["full_name"]) for r in repos if r.get("full_name") and not r.get("archived")
            )
            saved[owner] = {"path": path, "etag": etag, "repos": names}
            return names
        raise NotFound(
            f"{owner!r} is neither owner/repo nor an organisation or user this token can see "
            "(check sources.scopes)",
            source=self.source.name,
        )

    async def check_scope(self, scope: str) -> None:
        """The repository must exist and be visible (a conditional request: free when it did
        not change). A repository its organisation's listing just named exists."""
        if scope in self.listed:
            return
        etags: dict[str, str] = self.state.setdefault("repo_etags", {})  # shared by all scopes
        try:
            page = await self.http.fetch_page(f"/repos/{scope}", etag=etags.get(scope))
        except NotFound:
            raise NotFound(
                f"repository {scope!r} not found or this token cannot see it (renamed, "
                "deleted or private without access? check sources.scopes)",
                source=self.source.name,
            ) from None
        if page.etag:
            etags[scope] = page.etag

    # --- GraphQL -----------------------------------------------------------------------------

    async def graphql(
        self, query: str, variables: dict[str, Any], *, what: str
    ) -> tuple[Raw, list[Raw]]:
        """(data, tolerated errors) of one GraphQL request. GraphQL errors come as HTTP 200
        with ``errors``: rate limits are waited out, errors about single nodes (an issue this
        token cannot see) are returned, anything else raises with GitHub's message."""
        for _ in range(MAX_GRAPHQL_WAITS + 1):
            body = await self.http.post_json(
                self.graphql_url, {"query": query, "variables": variables}
            )
            if not isinstance(body, dict):
                raise ConnectorError(
                    f"GraphQL {what}: the answer is not a JSON object", source=self.source.name
                )
            data: Raw = body["data"] if isinstance(body.get("data"), dict) else {}
            cost = (data.get("rateLimit") or {}).get("cost") if data else None
            self.graphql_points += int(cost or 0)
            errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
            limited = next((e for e in errors if e.get("type") == "RATE_LIMITED"), None)
            if limited is not None:
                reset = parse_time((data.get("rateLimit") or {}).get("resetAt")) if data else None
                wait = (reset - self.clock()).total_seconds() if reset else 60.0
                await self.http.wait(
                    max(1.0, min(wait, 900.0)), f"GraphQL rate limited: {limited.get('message')}"
                )
                continue
            fatal = [e for e in errors if not _node_error(e)]
            if fatal:
                raise _graphql_error(fatal[0], what, self.source.name)
            return data, errors
        raise RateLimited(
            f"GraphQL {what}: still rate limited after {MAX_GRAPHQL_WAITS} waits",
            source=self.source.name,
        )

    # --- completing issues (used by the issues stream) ----------------------------------------

    async def complete_issues(self, scope: str, issues: list[Raw]) -> None:
        """Give every issue of a page (pull requests need nothing) its timeline, Projects
        values and blocked-by list: one GraphQL request per page, plus one REST request per
        blocked issue."""
        wanted = [i for i in issues if not is_pull_request(i) and i.get("node_id")]
        if not wanted:
            return
        by_node = {str(i["node_id"]): i for i in wanted}
        data, _ = await self.graphql(
            queries.issue_details(self.values_fragment),
            {"ids": list(by_node), "withProjects": bool(self.projects)},
            what=f"issue details of {scope}",
        )
        for node in data.get("nodes") or []:
            if not isinstance(node, dict) or str(node.get("id")) not in by_node:
                continue
            raw = by_node[str(node["id"])]
            notes = raw.setdefault(ANNOTATION, {})
            events = (node.get("timelineItems") or {}).get("nodes") or []
            info = (node.get("timelineItems") or {}).get("pageInfo") or {}
            if info.get("hasNextPage"):
                events = [
                    *events,
                    *await self._more_timeline(str(node["id"]), info.get("endCursor")),
                ]
            notes["timeline"] = _timeline(events)
            if self.projects:
                notes["project"] = self.project_values(
                    (node.get("projectItems") or {}).get("nodes") or []
                )
            self._observe(scope, raw, notes)
        await blocked_by(self, scope, wanted)

    async def _more_timeline(self, node_id: str, cursor: str | None) -> list[Raw]:
        out: list[Raw] = []
        while cursor:
            data, _ = await self.graphql(
                queries.ISSUE_TIMELINE, {"id": node_id, "cursor": cursor}, what="issue timeline"
            )
            timeline = ((data.get("node") or {}).get("timelineItems")) or {}
            out.extend(timeline.get("nodes") or [])
            info = timeline.get("pageInfo") or {}
            cursor = info.get("endCursor") if info.get("hasNextPage") else None
        return out

    def _observe(self, scope: str, raw: Raw, notes: Raw) -> None:
        project = notes.get("project") if isinstance(notes.get("project"), dict) else None
        iteration = (project or {}).get("iteration")
        if isinstance(iteration, dict) and iteration.get("id"):
            notes.setdefault("iterations", {str(iteration["id"]): [None, None]})
            self.scope_iterations.setdefault(scope, set()).add(str(iteration["id"]))
        observe_in_progress(self, raw, notes)

    async def board_pass(self, scope: str) -> AsyncIterator[list[Raw]]:
        """Pages of patches with the current Projects values of every issue of ``scope``:
        the board may have changed without the issues changing."""
        owner, _, name = scope.partition("/")
        cursor: str | None = None
        while True:
            data, _ = await self.graphql(
                queries.board(self.values_fragment),
                {"owner": owner, "name": name, "cursor": cursor},
                what=f"board of {scope}",
            )
            issues = ((data.get("repository") or {}).get("issues")) or {}
            patches = []
            for node in issues.get("nodes") or []:
                if not isinstance(node, dict) or node.get("databaseId") is None:
                    continue
                values = self.project_values((node.get("projectItems") or {}).get("nodes") or [])
                iteration = (values or {}).get("iteration")
                if isinstance(iteration, dict) and iteration.get("id"):
                    self.scope_iterations.setdefault(scope, set()).add(str(iteration["id"]))
                patches.append({"id": node["databaseId"], ANNOTATION: {"project": values}})
            if patches:
                yield patches
            info = issues.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return
            cursor = info.get("endCursor")

    def project_values(self, items: list[Raw]) -> Raw | None:
        """The issue's values in the first configured project it is on (``None``: on none).
        Every key is always present (``None`` when unset), so a patch replaces them all."""
        for key in self.options.projects:
            info = self.projects.get(key.lower())
            if info is None:
                continue
            for item in items:
                if not isinstance(item, dict):
                    continue
                project = item.get("project") or {}
                owner = (project.get("owner") or {}).get("login")
                if f"{owner}/{project.get('number')}".lower() != info.key:
                    continue
                values: Raw = {"project": info.key}
                for kind, name in (
                    ("points", info.points_field),
                    ("status", info.status_field),
                    ("iteration", info.iteration_field),
                    ("due", info.due_field),
                ):
                    alias = self.value_alias.get((kind, name)) if name else None
                    values[kind] = _value(kind, item.get(alias) if alias else None)
                return values
        return None

    def combine_observations(self, stored: Raw, new: Raw) -> Raw:
        """What only observation tells, carried from the stored payload to the new one: the
        first time the issue was seen in progress, its iteration membership (GitHub keeps no
        history: a change seen now happened now; an item already in an iteration the first
        time that iteration is seen counts as committed) and changes of its Projects points.
        Values the new payload lacks (a fetch that could not complete it) are kept."""
        old: Raw = stored[ANNOTATION] if isinstance(stored.get(ANNOTATION), dict) else {}
        notes = new.setdefault(ANNOTATION, {})
        if not isinstance(notes, dict):
            return new
        for key in ("project", "timeline", "blocked_by"):
            if key not in notes and key in old:
                notes[key] = old[key]
        now = self.observed_at
        if old.get("first_in_progress_at"):
            notes["first_in_progress_at"] = old["first_in_progress_at"]
        log_: dict[str, list[Any]] = {k: list(v) for k, v in (old.get("iterations") or {}).items()}
        project = notes.get("project")
        if "project" in notes:
            iteration = project.get("iteration") if isinstance(project, dict) else None
            current = (
                str(iteration["id"])
                if isinstance(iteration, dict) and iteration.get("id")
                else None
            )
            for iteration_id, span in log_.items():
                if span[1] is None and iteration_id != current:
                    span[1] = now
            if current is not None:
                if current in log_:
                    log_[current][1] = None  # left and came back: as if it never left
                else:
                    log_[current] = [None if current in self.new_iterations else now, None]
        if log_:
            notes["iterations"] = dict(sorted(log_.items()))
        else:
            notes.pop("iterations", None)
        estimates = list(old.get("estimates") or [])
        before = old.get("project")
        if (
            isinstance(before, dict)
            and isinstance(project, dict)
            and before.get("points") != project.get("points")
        ):
            estimates.append([now, before.get("points"), project.get("points")])
        if estimates:
            notes["estimates"] = estimates
        if not notes.get("first_in_progress_at"):
            observe_in_progress(self, new, notes)
        return new

    # --- iterations (used by the sprints stream) -----------------------------------------------

    def iteration(self, iteration_id: str) -> tuple[str, Raw] | None:
        for info in self.projects.values():
            if iteration_id in info.iterations:
                return info.key, info.iterations[iteration_id]
        return None

    def iteration_state(self, iteration: Raw) -> str:
        """future / active / closed from the iteration's dates at this run's clock."""
        start = parse_date(iteration.get("startDate"))
        if start is None:
            return "future"
        begin = datetime.combine(start, datetime.min.time())
        end = begin + timedelta(days=int(iteration.get("duration") or 0))
        now = parse_time(self.observed_at) or self.clock()
        if now >= end:
            return "closed"
        return "active" if now >= begin else "future"

    # --- deletions -----------------------------------------------------------------------------

    async def live_ids(self, scope: str) -> LiveIds | None:
        """Every issue id of the repository now (pull requests are no work items)."""
        if not self.options.reconcile:
            return None
        ids: set[str] = set()
        async for page in paginate(
            self.http,
            PageRequest(f"/repos/{scope}/issues", {"state": "all"}),
            LinkPaginator(page_size=PAGE),
        ):
            ids.update(
                str(i["id"]) for i in page.records if isinstance(i, dict) and not is_pull_request(i)
            )
        return LiveIds(stream="issues", native_ids=ids)

    async def classify_missing_items(self, scope: str, items: dict[str, str]) -> dict[str, str]:
        """Issues missing from the listing: 404/410 deleted, transferred (the answer is the
        issue in another repository) moved, 403 hidden."""
        verdicts: dict[str, str] = {}

        async def one(native: str, key: str) -> None:
            number = key.rsplit("#", 1)[-1]
            response = await self.http.request(
                "GET", f"/repos/{scope}/issues/{number}", expect=(200, 403, 404, 410)
            )
            if response.status_code in (404, 410):
                verdicts[native] = "deleted"
            elif response.status_code == 403:
                verdicts[native] = "hidden"
            else:
                body = response.json()
                repo = str(body.get("repository_url") or "").lower()
                verdicts[native] = "live" if repo.endswith(f"/repos/{scope.lower()}") else "moved"

        chosen = list(items.items())[:MAX_MISSING_LOOKUPS]
        await asyncio.gather(*(one(n, k) for n, k in chosen))
        for native in list(items)[MAX_MISSING_LOOKUPS:]:
            verdicts[native] = "unknown"
        return verdicts


async def _numbered(pages: AsyncIterator[Any]) -> AsyncIterator[tuple[int, Any]]:
    n = 0
    async for page in pages:
        yield n, page
        n += 1


def _value(kind: str, value: Any) -> Any:
    """One Projects field value as the annotation keeps it (``None`` when unset)."""
    if not isinstance(value, dict) or not value:
        return None
    if kind == "points":
        return value.get("number")
    if kind == "status":
        return value.get("name")
    if kind == "due":
        return value.get("date")
    if not value.get("iterationId"):
        return None
    return {
        "id": str(value["iterationId"]),
        "title": value.get("title"),
        "startDate": value.get("startDate"),
        "duration": value.get("duration"),
    }


def _server_time(header: str | None) -> datetime | None:
    """The API's own clock (``Date`` header) as naive UTC: observations are stamped in the
    server's time, like the ``updated_at`` they are compared with."""
    if not header:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _timeline(events: list[Raw]) -> list[list[Any]]:
    """GraphQL timeline items -> ``[at, kind, label or state reason]``, oldest first."""
    kinds = {
        "LabeledEvent": "labeled",
        "UnlabeledEvent": "unlabeled",
        "ClosedEvent": "closed",
        "ReopenedEvent": "reopened",
    }
    out = []
    for ev in events:
        if not isinstance(ev, dict) or ev.get("__typename") not in kinds:
            continue
        kind = kinds[ev["__typename"]]
        if kind in ("labeled", "unlabeled"):
            value = (ev.get("label") or {}).get("name")
        else:
            value = str(ev.get("stateReason") or "").lower() or None
        out.append([ev.get("createdAt"), kind, value])
    return sorted(out, key=lambda e: (str(e[0]), e[1]))


def _node_error(error: Raw) -> bool:
    """An error about one node of a list (an issue gone or invisible): that node is null."""
    path = error.get("path") or []
    return bool(path) and path[0] == "nodes" and error.get("type") in ("NOT_FOUND", "FORBIDDEN")


def _graphql_error(error: Raw, what: str, source: str) -> ConnectorError:
    kind = str(error.get("type") or "")
    message = str(error.get("message") or "GraphQL error")
    if kind == "INSUFFICIENT_SCOPES":
        return AuthError(
            f"GraphQL {what}: the token lacks a scope ({message}); Projects v2 needs "
            "read:project (classic token) or Projects: read (fine-grained)",
            source=source,
        )
    if kind == "FORBIDDEN":
        return AuthError(f"GraphQL {what}: access denied: {message}", source=source)
    if kind == "NOT_FOUND":
        return NotFound(f"GraphQL {what}: {message}", source=source)
    return ConnectorError(f"GraphQL {what}: {kind + ': ' if kind else ''}{message}", source=source)
