"""GitLab connector (GitLab.com and self-managed GitLab), REST v4.

Credential ``token`` (a personal, group or project access token with ``read_api``), sent as
the ``PRIVATE-TOKEN`` header, never in a query string. ``base_url`` is the instance
(``https://gitlab.com``, ``https://HOST[/path]``); the API is ``BASE/api/v4``. A scope is a
project path, or a group path = every project of the group and its subgroups that is not
archived (listed again each run, so a new project is picked up).

See ``streams.py`` for what is pulled, ``mapping.py`` for how it lands in the warehouse and
docs/connectors/gitlab.md for set-up and the rules that decide the numbers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from programview.errors import ApiError, ConfigError, NotFound
from programview.normalize import ANNOTATION
from programview.sync.connector import Connector, LiveIds, Stream
from programview.sync.paging import (
    KeysetPaginator,
    PageNumberPaginator,
    PageRequest,
    paginate,
    prefetch,
)

from .mapping import GitLabSettings
from .options import GitLabOptions
from .streams import PAGE, Issues, Milestones, Releases, Sprints

if TYPE_CHECKING:
    from programview.config import SourceConfig
    from programview.http import HttpClient

__all__ = ["GitLabConnector", "GitLabOptions"]

log = logging.getLogger("programview.connectors.gitlab")

Raw = dict[str, Any]

AUTH_HINT = (
    "check the token: it may be expired or revoked; it needs the read_api scope (a personal, "
    "group or project access token) and access to the projects"
)
#: Per-issue requests (resource events, links) in flight at once, over all projects.
PER_ISSUE_CONCURRENCY = 8
#: Deletion check: per-issue lookups for ids missing from a listing, at most this many.
MAX_MISSING_LOOKUPS = 200
#: The resource event lists an issue's history comes from, by annotation key.
EVENT_LISTS = {
    "state_events": "resource_state_events",
    "label_events": "resource_label_events",
    "weight_events": "resource_weight_events",
    "iteration_events": "resource_iteration_events",
}


def enc(path: str) -> str:
    """A project or group path as a URL id: ``acme%2Fplatform%2Fapi``."""
    return quote(path, safe="")


class GitLabConnector(Connector):
    """One configured GitLab source. See the module docstring."""

    kind: ClassVar[str] = "gitlab"
    options_model = GitLabOptions
    credential_keys: ClassVar[tuple[str, ...]] = ("token",)
    #: A first or full sync reads every issue of the project (``scope=all``): those ids are
    #: the deletion check, so it needs no listing by id of its own (552 of the 276,351
    #: requests of a full sync of the large org). Incremental syncs still use ``live_ids``.
    live_stream: ClassVar[str | None] = "issues"

    options: GitLabOptions

    def __init__(self, source: SourceConfig, http: HttpClient) -> None:
        super().__init__(source, http)
        if not self.options.reconcile:
            # No deletion check at all, not even from a full read.
            self.live_stream = None  # type: ignore[misc]
        if getattr(http, "auth_hint", "missing") is None:
            http.auth_hint = AUTH_HINT
        base = source.base_url.rstrip("/")
        #: ``/api/v4``, unless the configured base URL already ends with it.
        self.api_prefix = "" if base.endswith("/api/v4") else "/api/v4"
        self.settings = GitLabSettings(
            source=source.name,
            in_progress=self.options.in_progress(),
            label_types=self.options.label_types(),
        )
        #: Cleared when the instance refuses keyset paging of project issues (before 18.3).
        self.keyset = True
        #: Project bodies by scope, read while expanding or checking scopes.
        self.projects: dict[str, Raw] = {}
        #: Configured scopes that are neither a project nor a group we can see -> message.
        self.missing: dict[str, str] = {}
        #: Iterations and group milestones the issues read this run are in, per scope.
        self.scope_iterations: dict[str, set[str]] = {}
        self.scope_milestones: dict[str, set[str]] = {}
        self._releases: dict[str, asyncio.Task[list[Raw]]] = {}
        self._iterations: dict[str, asyncio.Task[list[Raw]]] = {}
        self._per_issue = asyncio.Semaphore(PER_ISSUE_CONCURRENCY)

    def api(self, path: str) -> str:
        return self.api_prefix + path

    # --- auth, scopes --------------------------------------------------------------------------

    @classmethod
    def auth_headers(cls, source: SourceConfig) -> dict[str, str]:
        token = source.secret("token")
        if not token:
            raise ConfigError(f"sources[{source.name}].credentials: GitLab needs token")
        return {"PRIVATE-TOKEN": token, "Accept": "application/json"}

    def streams(self) -> list[Stream]:
        # Issues first: they tell which group iterations and milestones the project uses.
        return [Issues(self), Milestones(self), Releases(self), Sprints(self)]

    async def prepare(self) -> None:
        """Check the token once (``GET /user``): a bad one fails here with GitLab's reason."""
        await self.http.get_json(self.api("/user"))

    async def scopes(self) -> list[str]:
        """Project paths as given; a group path expands into the projects of the group and its
        subgroups that are not archived. A scope that is neither stays, so that its check
        fails on its own and the other scopes still sync."""
        out: list[str] = []
        for scope in self.source.scopes:
            try:
                self.projects[scope] = await self.http.get_json(self.api(f"/projects/{enc(scope)}"))
                out.append(scope)
                continue
            except NotFound:
                pass
            try:
                group = await self.http.get_json(self.api(f"/groups/{enc(scope)}"))
            except NotFound:
                self.missing[scope] = (
                    f"GitLab project or group {scope!r} not found or no access (a private "
                    "project or group answers 404 to a token that cannot see it: check "
                    "sources.scopes and the token's membership)"
                )
                out.append(scope)
                continue
            out.extend(await self._group_projects(group))
        return out

    async def _group_projects(self, group: Raw) -> list[str]:
        names: list[str] = []
        listing = paginate(
            self.http,
            PageRequest(
                self.api(f"/groups/{group['id']}/projects"),
                {
                    "include_subgroups": "true",
                    "archived": "false",
                    "with_shared": "false",
                    "order_by": "id",
                    "sort": "asc",
                },
            ),
            PageNumberPaginator(page_size=PAGE),
        )
        async for page in listing:
            for project in page.records:
                if not isinstance(project, dict) or project.get("archived"):
                    continue
                path = str(project.get("path_with_namespace") or "")
                if path:
                    self.projects[path] = project
                    names.append(path)
        return sorted(names)

    async def check_scope(self, scope: str) -> None:
        """The project must exist and be visible (known already when the scope was listed)."""
        if scope in self.missing:
            raise NotFound(self.missing[scope], source=self.source.name)
        if scope in self.projects:
            return
        try:
            self.projects[scope] = await self.http.get_json(self.api(f"/projects/{enc(scope)}"))
        except NotFound:
            raise NotFound(
                f"GitLab project {scope!r} not found or no access (check sources.scopes and "
                "the token's membership)",
                source=self.source.name,
            ) from None

    # --- issues (used by the issues stream) ------------------------------------------------------

    async def issue_pages(
        self, scope: str, params: dict[str, Any], order_by: str = "updated_at"
    ) -> AsyncIterator[list[Raw]]:
        """Pages of the project's issues for ``params``: keyset paging where the instance
        offers it for project issues (GitLab 18.3+), offset paging (``x-next-page``, never
        ``x-total``) otherwise. The next page is requested while this one is completed."""
        path = self.api(f"/projects/{enc(scope)}/issues")
        if self.keyset:
            keyset = paginate(
                self.http,
                PageRequest(path, params),
                KeysetPaginator(page_size=PAGE, order_by=order_by, sort="asc"),
            )
            started = False
            try:
                async for page in prefetch(keyset):
                    started = True
                    yield list(page.records)
                return
            except ApiError as exc:
                if started or exc.status not in (400, 405):
                    raise
                self.keyset = False
                log.info("%s: keyset paging of issues unavailable: offset paging", self.source.name)
        offset = paginate(self.http, PageRequest(path, params), PageNumberPaginator(page_size=PAGE))
        async for page in prefetch(offset):
            yield list(page.records)

    async def complete_issues(self, scope: str, issues: list[Raw]) -> None:
        """Give each issue its history (the four resource event lists) and its links, under
        ``programview``: five requests per changed issue, ``PER_ISSUE_CONCURRENCY`` at once."""
        await asyncio.gather(*(self._complete(scope, issue) for issue in issues))

    async def _complete(self, scope: str, issue: Raw) -> None:
        try:
            base = self.api(f"/projects/{int(issue['project_id'])}/issues/{int(issue['iid'])}")
        except (KeyError, TypeError, ValueError):
            return  # the mapping quarantines it
        notes: Raw = {}
        try:
            lists = await asyncio.gather(
                *(self._bounded(self._events, f"{base}/{path}") for path in EVENT_LISTS.values()),
                self._bounded(self.http.get_json, f"{base}/links"),
            )
        except NotFound:  # deleted since the listing: the deletion check will confirm it
            lists = [[] for _ in range(len(EVENT_LISTS) + 1)]
        state, labels, weights, iterations, links = lists
        notes["state_events"] = [[e.get("created_at"), e.get("state")] for e in state]
        notes["label_events"] = [
            [e.get("created_at"), e.get("action"), (e.get("label") or {}).get("name")]
            for e in labels
        ]
        notes["weight_events"] = [[e.get("created_at"), e.get("weight")] for e in weights]
        notes["iteration_events"] = [
            [e.get("created_at"), e.get("action"), _iteration_ref(e.get("iteration"))]
            for e in iterations
        ]
        notes["links"] = [
            [
                link.get("issue_link_id"),
                link.get("link_type"),
                link.get("id"),
                (link.get("references") or {}).get("full") or _link_key(link),
            ]
            for link in links or []
            if isinstance(link, dict)
        ]
        issue[ANNOTATION] = notes
        used = self.scope_iterations.setdefault(scope, set())
        for ref in [issue.get("iteration"), *(e[2] for e in notes["iteration_events"])]:
            if isinstance(ref, dict) and ref.get("id") is not None:
                used.add(str(ref["id"]))
        milestone = issue.get("milestone")
        if (
            isinstance(milestone, dict)
            and milestone.get("project_id") is None  # a group milestone
            and milestone.get("id") is not None
        ):
            self.scope_milestones.setdefault(scope, set()).add(str(milestone["id"]))

    async def _bounded(self, fn: Callable[[str], Awaitable[Any]], path: str) -> Any:
        async with self._per_issue:
            return await fn(path)

    async def _events(self, path: str) -> list[Raw]:
        out: list[Raw] = []
        async for page in paginate(self.http, PageRequest(path), PageNumberPaginator(PAGE)):
            out.extend(e for e in page.records if isinstance(e, dict))
        return out

    # --- milestones, releases, iterations (shared by streams) -----------------------------------

    async def milestones(self, scope: str) -> list[Raw]:
        """The project's milestones, with its ancestor groups' (``include_ancestors``)."""
        out: list[Raw] = []
        async for page in paginate(
            self.http,
            PageRequest(
                self.api(f"/projects/{enc(scope)}/milestones"), {"include_ancestors": "true"}
            ),
            PageNumberPaginator(page_size=PAGE),
        ):
            out.extend(page.records)
        return out

    async def releases(self, scope: str) -> list[Raw]:
        """The project's releases, read once per run for the milestones and releases streams."""
        task = self._releases.get(scope)
        if task is None:
            task = self._releases[scope] = asyncio.ensure_future(self._read_releases(scope))
        return await asyncio.shield(task)

    async def _read_releases(self, scope: str) -> list[Raw]:
        out: list[Raw] = []
        async for page in paginate(
            self.http,
            PageRequest(
                self.api(f"/projects/{enc(scope)}/releases"),
                {"order_by": "released_at", "sort": "asc"},
            ),
            PageNumberPaginator(page_size=PAGE),
        ):
            out.extend(page.records)
        return out

    async def iterations(self, scope: str) -> list[Raw]:
        """The iterations the project's group sees (its own and its ancestors'), read once per
        group and run. None for a project in a user namespace or on a tier without them."""
        project = self.projects.get(scope) or {}
        namespace = project.get("namespace") or {}
        if namespace.get("kind", "group") != "group" or namespace.get("id") is None:
            return []
        key = str(namespace["id"])
        task = self._iterations.get(key)
        if task is None:
            task = self._iterations[key] = asyncio.ensure_future(self._read_iterations(key))
        return await asyncio.shield(task)

    async def _read_iterations(self, group_id: str) -> list[Raw]:
        out: list[Raw] = []
        try:
            async for page in paginate(
                self.http,
                PageRequest(
                    self.api(f"/groups/{group_id}/iterations"),
                    {"state": "all", "include_ancestors": "true"},
                ),
                PageNumberPaginator(page_size=PAGE),
            ):
                out.extend(page.records)
        except NotFound:
            log.info("%s: no iterations here (GitLab Premium feature)", self.source.name)
        return out

    # --- deletions -------------------------------------------------------------------------------

    async def live_ids(self, scope: str) -> LiveIds | None:
        """Every issue id of the project now; a moved issue is not live here (its copy in the
        other project is)."""
        if not self.options.reconcile:
            return None
        ids: set[str] = set()
        # by id: an issue edited while we page does not move in the listing
        async for records in self.issue_pages(
            scope, {"scope": "all", "order_by": "id", "sort": "asc"}, order_by="id"
        ):
            ids.update(
                str(i["id"])
                for i in records
                if isinstance(i, dict) and "id" in i and i.get("moved_to_id") is None
            )
        return LiveIds(stream="issues", native_ids=ids)

    async def classify_missing_items(self, scope: str, items: dict[str, str]) -> dict[str, str]:
        """Issues missing from the listing, looked up by iid: 404 deleted (GitLab keeps no
        tombstone), moved to another project, 403 hidden, else live."""
        verdicts: dict[str, str] = {}

        async def one(native: str, key: str) -> None:
            iid = key.rsplit("#", 1)[-1]
            async with self._per_issue:
                response = await self.http.request(
                    "GET",
                    self.api(f"/projects/{enc(scope)}/issues/{iid}"),
                    expect=(200, 403, 404),
                )
            if response.status_code == 404:
                verdicts[native] = "deleted"
            elif response.status_code == 403:
                verdicts[native] = "hidden"
            else:
                body = response.json()
                same = str(body.get("id")) == native
                moved = body.get("moved_to_id") is not None
                verdicts[native] = "moved" if moved or not same else "live"

        chosen = list(items.items())[:MAX_MISSING_LOOKUPS]
        await asyncio.gather(*(one(n, k) for n, k in chosen))
        for native in list(items)[MAX_MISSING_LOOKUPS:]:
            verdicts[native] = "unknown"
        return verdicts


def _iteration_ref(iteration: Any) -> Raw | None:
    """What the mapping needs of an event's iteration (its id and dates): its state and
    title change over time and would make every stored issue look changed."""
    if not isinstance(iteration, dict):
        return None
    return {k: iteration.get(k) for k in ("id", "start_date", "due_date")}


def _link_key(link: Raw) -> str:
    """A linked issue's key without ``references`` (older GitLab): from its ``web_url``."""
    url = str(link.get("web_url") or "")
    head, _, iid = url.rpartition("/issues/")
    path = head.split("://", 1)[-1].split("/", 1)[-1].removesuffix("/-")
    return f"{path.lower()}#{iid}" if iid.isdigit() else ""
