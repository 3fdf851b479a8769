"""Jira Cloud and Data Center connector.

Cloud: REST v3 (enhanced JQL search, changelog bulk fetch) + Agile 1.0, credentials
``email`` + ``api_token`` (HTTP Basic). Data Center / Server: REST v2 (``startAt`` search) +
Agile 1.0, credential ``token`` (personal access token, Bearer). Set
``options.deployment = "datacenter"`` for the latter. Scopes are project keys.

See ``streams.py`` for what is pulled and ``mapping.py`` for how it lands in the warehouse;
docs/connectors/jira.md for set-up and the rules that decide the numbers.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from programview.errors import ConfigError, ConnectorError, NotFound
from programview.normalize import utc_now
from programview.sync.connector import Connector, LiveIds, SprintRef, SprintReport, Stream
from programview.sync.paging import (
    OffsetPaginator,
    PageRequest,
    Paginator,
    PagingError,
    TokenPaginator,
    paginate,
    records_of,
)

from .mapping import JiraSettings, choose_fields
from .options import JiraOptions
from .sprint_report import fetch_sprint_report
from .streams import (
    AGILE_PAGE,
    CLOUD_PAGE_CAP,
    CLOUD_SEARCH_PAGE,
    DC_SEARCH_PAGE,
    Issues,
    Sprints,
    Versions,
    annotate_statuses,
    complete_changelogs,
    complete_worklogs,
)

if TYPE_CHECKING:
    from programview.config import SourceConfig
    from programview.http import HttpClient

__all__ = ["JiraConnector", "JiraOptions"]

log = logging.getLogger("programview.connectors.jira")

Raw = dict[str, Any]

CLOUD_AUTH_HINT = (
    "check the email and API token; a Cloud 401 often means an expired API token: "
    "tokens now expire within a year, create a new one at "
    "https://id.atlassian.com/manage-profile/security/api-tokens"
)
DC_AUTH_HINT = (
    "check the personal access token (Profile > Personal Access Tokens): it may be expired "
    "or revoked, or the user may lack the Browse Projects permission"
)
#: What ``choose_fields`` reads of a ``/field`` entry (the part of the catalogue kept in state).
FIELD_KEYS = ("id", "name", "untranslatedName", "custom", "schema", "clauseNames")
#: Deletion check: per-issue lookups for ids missing from a listing, at most this many.
MAX_MISSING_LOOKUPS = 200
#: Issues with changelogs alive at once per source (see ``search``): bounds peak memory by
#: what is in flight, not by ``[sync] concurrency``. A Data Center page holds 1,000 issues,
#: so one page at a time (medium full sync at concurrency 4 peaks at 188 MB with 1 page,
#: 237 MB with 2, 324 MB unbounded); a Cloud page at most 100, so several projects' pages
#: are fetched while one is written instead of each waiting for the last to be written.
#: The bound is on *parsed* pages; as many again may wait downloaded but unparsed (a tenth
#: to a quarter of their parsed size), so a Data Center scope's next page downloads while
#: another's is written (medium full sync: 169-173 MB, was 178-202 MB one page at a time
#: from request to write).
ISSUES_IN_FLIGHT = 1000


class JiraConnector(Connector):
    """One configured Jira source. See the module docstring."""

    kind: ClassVar[str] = "jira"
    options_model = JiraOptions
    credential_keys: ClassVar[tuple[str, ...]] = ("email", "api_token", "token")
    #: A first or full sync reads every issue of the project: those ids are the deletion
    #: check, so it needs no key-only listing of its own (76 of the 167 requests of a Data
    #: Center full sync of the medium org). Incremental syncs still use ``live_ids``.
    live_stream: ClassVar[str | None] = "issues"

    options: JiraOptions

    def __init__(self, source: SourceConfig, http: HttpClient) -> None:
        super().__init__(source, http)
        self.cloud = self.options.deployment == "cloud"
        if not self.options.reconcile:
            # No deletion check at all, not even from a full read.
            self.live_stream = None  # type: ignore[misc]
        if getattr(http, "auth_hint", "missing") is None:
            http.auth_hint = CLOUD_AUTH_HINT if self.cloud else DC_AUTH_HINT
        #: Naive-UTC "now": when a version is first seen released. Replaceable in tests.
        self.clock: Callable[[], datetime] = utc_now
        #: Cleared when the site answers 404 to the changelog bulk fetch (older sites).
        self.bulk_changelog = True
        self._settings: JiraSettings | None = None
        self._statuses: dict[str, str] | None = None
        self._status_lock = asyncio.Lock()
        self._projects: dict[str, Raw] = {}
        page = CLOUD_PAGE_CAP if self.cloud else DC_SEARCH_PAGE
        #: parsed search pages alive at once (see ``search``)
        self._issue_pages = asyncio.Semaphore(max(1, ISSUES_IN_FLIGHT // page))
        #: search pages requested or downloaded but not yet parsed
        self._issue_bodies = asyncio.Semaphore(max(1, ISSUES_IN_FLIGHT // page))

    # --- auth and discovery ------------------------------------------------------------

    @classmethod
    def auth_headers(cls, source: SourceConfig) -> dict[str, str]:
        """Cloud: Basic ``email:api_token``. Data Center: Bearer personal access token."""
        options = JiraOptions.model_validate(source.options)
        where = f"sources[{source.name}].credentials"
        if options.deployment == "cloud":
            email, token = source.secret("email"), source.secret("api_token")
            missing = [k for k, v in (("email", email), ("api_token", token)) if not v]
            if missing:
                raise ConfigError(
                    f"{where}: Jira Cloud needs email and api_token (missing: "
                    f"{', '.join(missing)}); for Data Center set options.deployment = "
                    '"datacenter" and a token'
                )
            basic = base64.b64encode(f"{email}:{token}".encode()).decode("ascii")
            return {"Authorization": f"Basic {basic}", "Accept": "application/json"}
        token = source.secret("token")
        if not token:
            raise ConfigError(f"{where}: Jira Data Center needs token (a personal access token)")
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def api(self, path: str) -> str:
        """``/rest/api/3`` on Cloud, ``/rest/api/2`` on Data Center, + ``path``."""
        return f"/rest/api/{'3' if self.cloud else '2'}{path}"

    async def prepare(self) -> None:
        """Check the credentials (``/myself``), then find the story-points and Sprint fields."""
        await self.http.get_json(self.api("/myself"))
        catalogue = await self.http.get_json(self.api("/field"))
        if not isinstance(catalogue, list):
            raise ConnectorError(
                f"GET {self.api('/field')} did not return a list of fields",
                source=self.source.name,
            )
        # kept for ``programview remap``, which picks the fields again without the API
        self.state["fields"] = [
            {k: f[k] for k in FIELD_KEYS if k in f} for f in catalogue if isinstance(f, dict)
        ]
        self._build_settings(catalogue)

    def prepare_offline(self) -> None:
        """The mapping settings from the field list the last sync stored (no API call), with
        the options as configured now (a changed story-points field, type map, overrides)."""
        catalogue = self.state.get("fields")
        if not isinstance(catalogue, list):
            raise ConfigError(
                f"[{self.source.name}] remap needs the Jira field list a sync stores: run "
                f"`programview sync --source {self.source.name}` once first"
            )
        self._build_settings(catalogue)

    def _build_settings(self, catalogue: list[Any]) -> None:
        choice = choose_fields(catalogue, self.options)
        for warning in choice.warnings:
            log.warning("%s: %s", self.source.name, warning)
        self._settings = JiraSettings.build(
            self.source.name, self.source.base_url, self.options, choice
        )

    @property
    def settings(self) -> JiraSettings:
        if self._settings is None:
            raise RuntimeError("JiraConnector.prepare() must run before its streams")
        return self._settings

    def streams(self) -> list[Stream]:
        return [Sprints(self), Versions(self), Issues(self)]

    async def check_scope(self, scope: str) -> None:
        """The project must exist and be visible; its body (with versions) is kept."""
        try:
            project = await self.http.get_json(self.api(f"/project/{quote(scope)}"))
        except NotFound:
            raise NotFound(
                f"Jira project {scope!r} does not exist or this account cannot browse it "
                "(check the key in sources.scopes and the project's permissions)",
                source=self.source.name,
            ) from None
        if isinstance(project, dict):
            self._projects[scope] = project

    # --- shared fetchers used by the streams ----------------------------------------------

    async def boards(self, scope: str) -> list[Raw]:
        """The project's boards: ``options.boards[scope]`` when given, else every board."""
        if scope in self.options.boards:
            return [{"id": b} for b in self.options.boards[scope]]
        listing = paginate(
            self.http,
            PageRequest("/rest/agile/1.0/board", {"projectKeyOrId": scope}),
            OffsetPaginator(limit=AGILE_PAGE),
            records="values",
        )
        return [b async for page in listing for b in page.records if isinstance(b, dict)]

    async def project_versions(self, scope: str) -> list[Raw]:
        """All versions of the project; the project body from ``check_scope`` usually has
        them already (no extra request)."""
        cached = self._projects.get(scope, {}).get("versions")
        if isinstance(cached, list):
            return cached
        body = await self.http.get_json(self.api(f"/project/{quote(scope)}/versions"))
        if not isinstance(body, list):
            raise ConnectorError(
                f"versions of project {scope!r}: expected a list, got {type(body).__name__}",
                source=self.source.name,
            )
        return body

    async def search(
        self, jql: str, *, fields: str, expand: str | None = None
    ) -> AsyncGenerator[list[Raw], None]:
        """Pages of issues for ``jql``: enhanced search with ``nextPageToken`` on Cloud,
        ``startAt`` paging on Data Center. Raises when a listing ends early."""
        params: dict[str, Any] = {"jql": jql, "fields": fields}
        if expand:
            params["expand"] = expand
        paginator: Paginator
        if self.cloud:
            path = "/rest/api/3/search/jql"
            paginator = TokenPaginator()
            params["maxResults"] = CLOUD_SEARCH_PAGE
        else:
            path = "/rest/api/2/search"
            paginator = OffsetPaginator(limit=DC_SEARCH_PAGE, last_path=None, strict=True)
        try:
            request: PageRequest | None = paginator.first(PageRequest(path, params))
            while request is not None:
                if not expand:
                    answer = await self.http.fetch_page(request.path, params=request.params)
                    issues = records_of(answer.data, "issues")
                    request = paginator.next(request, answer, issues)
                    del answer
                    yield issues
                    del issues
                    continue
                # Bytes in flight: a page with changelogs is ~10 MB of JSON and ~4x that
                # parsed, so at most ISSUES_IN_FLIGHT issues exist parsed at once per source,
                # from the parse until the caller has written them, whatever the
                # concurrency. The request and download need only a body slot (at most
                # ISSUES_IN_FLIGHT issues' worth of unparsed bodies waiting), so another
                # scope's next page downloads while this one is written.
                async with self._issue_bodies:
                    answer = await self.http.fetch_page(
                        request.path, params=request.params, gate=self._issue_pages
                    )
                try:  # the parse slot (``gate``) is ours now
                    issues = records_of(answer.data, "issues")
                    request = paginator.next(request, answer, issues)
                    del answer
                    yield issues
                    del issues
                finally:
                    self._issue_pages.release()
        except PagingError as exc:
            raise ConnectorError(f"issue search: {exc}", source=self.source.name) from None

    async def statuses(self) -> dict[str, str]:
        """Status id -> Jira category key, from ``GET /status`` (once per run, on demand)."""
        async with self._status_lock:
            if self._statuses is None:
                body = await self.http.get_json(self.api("/status"))
                self._statuses = {
                    str(s["id"]): str((s.get("statusCategory") or {}).get("key") or "")
                    for s in body or []
                    if isinstance(s, dict) and s.get("id") is not None
                }
            return self._statuses

    async def complete_issues(self, issues: list[Raw]) -> None:
        """Make each issue self-contained: full changelog, all worklogs, status categories."""
        if not issues:
            return
        await complete_changelogs(self, issues)
        if self.options.worklogs:
            await complete_worklogs(self, issues)
        annotate_statuses(issues, await self.statuses())

    # --- checking our numbers against Jira's own -----------------------------------------

    async def sprint_report(self, sprint: SprintRef) -> SprintReport:
        """Jira's Sprint Report of a closed sprint (``sprint_report.py``)."""
        return await fetch_sprint_report(self, sprint)

    # --- deletions ------------------------------------------------------------------------

    async def live_ids(self, scope: str) -> LiveIds | None:
        """Every issue id of the project now (a key-only listing), or ``None`` when the
        listing cannot be trusted to be complete: nothing is deleted on a short listing."""
        if not self.options.reconcile:
            return None
        ids: set[str] = set()
        async for issues in self.search(f'project = "{scope}" ORDER BY key ASC', fields="id"):
            ids.update(str(i["id"]) for i in issues if isinstance(i, dict) and "id" in i)
        if self.cloud:
            # The token-paged search has no total: cross-check with the count endpoint.
            try:
                answer = await self.http.post_json(
                    "/rest/api/3/search/approximate-count", {"jql": f'project = "{scope}"'}
                )
            except NotFound:  # a site without the count endpoint: the listing ended cleanly
                answer = {}
            expected = int((answer or {}).get("count") or 0)
            if len(ids) < expected:
                log.warning(
                    "%s %s: deletion check listed %d issues but Jira counts %d; "
                    "nothing is marked deleted this time",
                    self.source.name,
                    scope,
                    len(ids),
                    expected,
                )
                return None
        return LiveIds(stream="issues", native_ids=ids)

    async def classify_missing(self, scope: str, native_ids: list[str]) -> dict[str, str]:
        """For issue ids missing from ``scope``'s listing: ``"deleted"`` (404),
        ``"hidden"`` (403: it exists but this account may no longer see it), ``"moved"``
        (it now lives in another project; its new key arrives with that project's sync),
        or ``"live"``. At most ``MAX_MISSING_LOOKUPS`` lookups; the rest are ``"unknown"``.

        Offered for the engine's reconcile; Jira Cloud answers 404 for both deleted and
        invisible issues, so ``"hidden"`` shows only where the site answers 403.
        """
        verdicts: dict[str, str] = {}
        for n, native in enumerate(native_ids):
            if n >= MAX_MISSING_LOOKUPS:
                verdicts[native] = "unknown"
                continue
            response = await self.http.request(
                "GET",
                self.api(f"/issue/{quote(native)}"),
                params={"fields": "project"},
                expect=(200, 403, 404),
            )
            if response.status_code == 404:
                verdicts[native] = "deleted"
            elif response.status_code == 403:
                verdicts[native] = "hidden"
            else:
                project = (response.json().get("fields") or {}).get("project") or {}
                verdicts[native] = "live" if project.get("key") == scope else "moved"
        return verdicts
