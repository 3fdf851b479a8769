"""The connector interface: what a source system plugs into the sync engine.

A connector is a class registered under the entry-point group ``programview.connectors``
(the built-in ones register themselves exactly like a third-party package would, and the core
never imports a connector by name). It declares its streams; a stream yields pages of raw
records for one scope, given the last committed cursor, and maps one raw record to normalized
records. The engine does everything else: concurrency, hashing, upserts, cursors, quarantine,
run bookkeeping.

Writing a stream reads like a Singer SDK stream (name, key, cursor and page size stated up
front) and pages like a dlt resource (a plain async generator)::

    class Issues(Stream):
        name = "issues"
        page_size = 100
        cursor_field = "updated"

        async def pages(self, scope, cursor):
            ...
            yield Page(records=body["issues"], cursor={"updated": newest})

        def map(self, raw, scope):
            return map_issue(raw, self.connector.settings, scope)   # a pure function
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from programview.config import SourceConfig
    from programview.http import HttpClient

Raw = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Record:
    """One normalized row for ``table`` (a warehouse table name).

    Upserted on the table's primary key; only the columns given are written, so a partial
    record (a sprint seen inside an issue's Sprint field) does not erase columns another
    stream filled (the sprint's goal from the Agile API).
    """

    table: str
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Replace:
    """Delete the rows of ``table`` matching ``where`` (column = value) before this page's
    records are upserted, in the same transaction. Used for child collections that are
    re-sent whole with their parent (an issue's links), so a removed link disappears."""

    table: str
    where: dict[str, Any]


Mapped = Sequence[Record | Replace]


@dataclass(slots=True)
class Page:
    """One page of raw records and the cursor to store once the page is committed.

    ``cursor`` is ``None`` for streams that always re-read everything (a few boards, versions);
    the engine then keeps no state but still skips unchanged records by hash.
    """

    records: list[Raw]
    cursor: dict[str, Any] | None = None
    #: The records are partial payloads to merge into the stored raw payloads of the same
    #: ids (e.g. Projects field values of an issue whose REST payload did not change); the
    #: merged payload is hashed, mapped and stored as usual. Ids never stored are ignored.
    patch: bool = False


@dataclass(frozen=True, slots=True)
class Window:
    """The time window a stream reads this run, on its ``cursor_field``.

    ``since`` is an inclusive lower bound (``None``: from the beginning), ``until`` an
    inclusive upper bound (``None``: up to now); both aware UTC. An incremental run reads from
    the committed cursor minus the lookback (clock skew, minute-precision filters, search index
    lag: the overlap is deduplicated by stable id); a backfill reads its own window.
    """

    since: datetime | None = None
    until: datetime | None = None

    @property
    def bounded(self) -> bool:
        return self.since is not None or self.until is not None

    def contains(self, moment: datetime | None) -> bool:
        """Whether ``moment`` (naive UTC or aware) falls inside the window."""
        if moment is None:
            return not self.bounded
        aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
        if self.since is not None and aware < self.since:
            return False
        return self.until is None or aware <= self.until


@dataclass(slots=True)
class SyncOptions:
    """What the engine tells a stream about this run.

    ``window`` is computed by the engine, once, from the stream's declared ``cursor_field``
    and its committed cursor (see :meth:`window_for`); streams read ``window.since`` /
    ``window.until`` and never do cursor or lookback arithmetic of their own.
    """

    full: bool = False  # ignore cursors: re-read everything (still skips unchanged by hash)
    since: datetime | None = None  # backfill window start (UTC)
    until: datetime | None = None  # backfill window end (UTC)
    lookback_minutes: int = 10
    window: Window = field(default_factory=Window)

    @property
    def backfill(self) -> bool:
        return self.since is not None or self.until is not None

    @property
    def lookback(self) -> timedelta:
        return timedelta(minutes=self.lookback_minutes)

    def window_for(self, cursor: dict[str, Any] | None, cursor_field: str | None) -> Window:
        """The window a stream with ``cursor_field`` reads given its committed ``cursor``.

        Backfill: exactly ``since``..``until``. Full sync or no cursor yet: everything.
        Incremental: from ``cursor[cursor_field]`` (an ISO timestamp) minus the lookback.
        """
        if self.backfill:
            return Window(_aware(self.since), _aware(self.until))
        if self.full or not cursor or not cursor_field or not cursor.get(cursor_field):
            return Window()
        last = _aware(datetime.fromisoformat(str(cursor[cursor_field])))
        assert last is not None
        return Window(last - self.lookback, None)

    def for_stream(self, cursor: dict[str, Any] | None, cursor_field: str | None) -> SyncOptions:
        """These options with ``window`` set for one stream (what the engine passes)."""
        return replace(self, window=self.window_for(cursor, cursor_field))


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class ConnectorOptions(BaseModel):
    """Base for a connector's kind-specific ``[sources.options]``; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class Stream(ABC):
    """One kind of object of one source, pulled per scope."""

    name: ClassVar[str]
    #: Largest page size the API allows for this endpoint (requests are our users' quota).
    page_size: ClassVar[int] = 100
    #: The raw field the incremental cursor follows (documentation; the stream builds it).
    cursor_field: ClassVar[str | None] = None
    #: Path to the record's stable native id in the raw payload.
    primary_key: ClassVar[str] = "id"
    #: Dotted paths in the raw payload whose first stored value wins over what a later
    #: payload says (observations such as "first seen in progress at"): the engine copies
    #: them from the stored payload before hashing, so the raw stays self-contained.
    sticky: ClassVar[tuple[str, ...]] = ()

    def __init__(self, connector: Connector) -> None:
        self.connector = connector

    #: Whether :meth:`combine` is used (the engine then loads the stored payloads).
    combines: ClassVar[bool] = False

    def combine(self, stored: Raw, new: Raw) -> Raw:
        """The payload to store given the stored one and the one just fetched (only called
        when ``combines`` is set and the record was stored before). For what only observation
        over time can tell, e.g. when an item was seen entering a GitHub iteration: the API
        keeps no history, so the stored payload carries it and each fetch adds to it."""
        return new

    def native_id(self, raw: Raw) -> str:
        """The record's stable id (dedupes overlapping incremental pages)."""
        value: Any = raw
        for part in self.primary_key.split("."):
            value = value[part]
        if isinstance(value, bool) or not isinstance(value, str | int):
            # None, an object, a list: str() would make "None" or "{...}" a stable id
            kind = type(value).__name__
            raise ValueError(f"{self.primary_key} is {kind}, not a string or number")
        return str(value)

    def is_live(self, raw: Raw) -> bool:
        """Whether a record of the connector's ``live_stream`` is a live item of the scope.
        A full read lists some records that are not (GitLab lists an issue moved to another
        project, with ``moved_to_id``): counting them live would undo their deletion."""
        return True

    @abstractmethod
    def pages(
        self, scope: str, cursor: dict[str, Any] | None, options: SyncOptions
    ) -> AsyncIterator[Page]:
        """Yield pages for ``scope`` starting after ``cursor`` (``None``: from the start)."""

    @abstractmethod
    def map(self, raw: Raw, scope: str) -> Mapped:
        """Raw payload -> normalized records. Pure: no I/O. Raise to quarantine the payload."""


@dataclass(slots=True)
class LiveIds:
    """A complete listing of the native ids of ``stream`` that exist in ``scope`` now.

    Returned by :meth:`Connector.live_ids`; the engine marks work items of that scope whose
    ids are missing as deleted. A connector returns ``None`` instead when the listing failed or
    may be partial: nothing is ever deleted on a partial listing.
    """

    stream: str
    native_ids: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class SprintRef:
    """A closed sprint as the warehouse knows it, to ask its source for its own report."""

    native_id: str
    board_id: str | None
    scope: str | None
    name: str | None


#: Where a sprint report puts an item at the sprint's close.
Outcome = Literal["completed", "not_completed", "removed", "completed_elsewhere"]


@dataclass(frozen=True, slots=True)
class SprintReportItem:
    """One item of a source's own sprint report, in the source's own terms."""

    native_id: str | None
    key: str
    #: completed / not_completed (in the sprint at close) / removed during the sprint /
    #: completed_elsewhere (done outside this sprint, e.g. before it started)
    outcome: Outcome
    #: Added after the sprint started (not part of its commitment).
    added_during_sprint: bool
    #: The estimate when the sprint started, or when the item was added to it.
    points_at_entry: float | None
    #: The estimate at the sprint's close (a removed item: when it left).
    points_at_close: float | None


@dataclass(frozen=True, slots=True)
class SprintReport:
    """A source's own figures for one closed sprint (Jira's Sprint Report), item by item,
    so ``programview verify sprints`` can explain every difference from ours."""

    items: tuple[SprintReportItem, ...]
    #: The field the source estimated with (Jira: the board's estimation field).
    estimate_field: str | None = None
    #: When the source says the sprint started and closed (naive UTC), if it says.
    started_at: datetime | None = None
    completed_at: datetime | None = None
    #: The report's own totals by figure ("completed", "removed"), where it gives them: a
    #: check that its items add up (None = nothing estimated).
    totals: dict[str, float | None] = field(default_factory=dict)


class Connector(ABC):
    """A source system. One instance per configured source and run."""

    #: The ``kind`` users write in ``[[sources]]``.
    kind: ClassVar[str]
    #: Kind-specific options model (validated at config load, unknown keys rejected).
    options_model: ClassVar[type[ConnectorOptions]] = ConnectorOptions
    #: Credential keys this kind accepts (each must be an ``${ENV_VAR}`` reference).
    credential_keys: ClassVar[tuple[str, ...]] = ()
    #: The stream whose complete read (no window: a first or ``--full`` sync) lists every
    #: live item of the scope, by the work items' native ids: after such a read the deletion
    #: check uses the ids it saw instead of a listing of its own.
    live_stream: ClassVar[str | None] = None
    #: Spread requests over what is left of the rate-limit window once it runs low (an API
    #: whose quota is shared by every tool using the same token, like GitHub's 5,000/hour).
    pace_requests: ClassVar[bool] = False

    def __init__(self, source: SourceConfig, http: HttpClient) -> None:
        self.source = source
        self.http = http
        self.options = self.options_model.model_validate(source.options)
        self.state = {}

    @classmethod
    def auth_headers(cls, source: SourceConfig) -> dict[str, str]:
        """HTTP headers that authenticate to this source (built from secret credentials)."""
        return {}

    #: Connector-wide state kept between runs (what no single stream owns, e.g. when a
    #: GitHub project was last scanned). Loaded by the engine before :meth:`prepare`; saved
    #: after a run in which every stream of the source succeeded. JSON-serialisable.
    state: dict[str, Any]

    async def prepare(self) -> None:  # noqa: B027 (optional hook)
        """Run once before the streams: check credentials, discover settings (e.g. fields)."""

    def prepare_offline(self) -> None:  # noqa: B027 (optional hook)
        """Set up what the streams' ``map`` needs from the options and :attr:`state` alone,
        without any API call (``programview remap`` re-maps stored raw payloads offline).
        A connector whose ``prepare`` discovers mapping settings keeps what it found in
        ``state`` so this can rebuild them; raise ``ConfigError`` when it cannot."""

    async def scopes(self) -> list[str]:
        """The scopes to sync this run. Default: the configured ones. A connector whose
        configured scopes may name containers (a GitHub organisation, a GitLab group)
        expands them here, so a new repository or project is picked up without a config
        edit. Expanded scopes are paths under the container (``acme`` -> ``acme/web``)."""
        return list(self.source.scopes)

    @abstractmethod
    def streams(self) -> list[Stream]:
        """Streams in the order they should run for a scope (parents before children)."""

    def run_notes(self) -> list[str]:
        """What this run should report beyond its figures (kept in ``sync_runs.message``),
        e.g. the GraphQL points a GitHub sync spent."""
        return []

    async def check_scope(self, scope: str) -> None:  # noqa: B027 (optional hook)
        """Raise :class:`programview.errors.NotFound` when ``scope`` does not exist."""

    async def live_ids(self, scope: str) -> LiveIds | None:
        """Optional deletion reconcile for ``scope``; see :class:`LiveIds`."""
        return None

    async def classify_missing_items(self, scope: str, items: dict[str, str]) -> dict[str, str]:
        """Like :meth:`classify_missing`, given native id -> item key (a GitHub issue is looked
        up by its number, which only its key holds). Defaults to :meth:`classify_missing`."""
        return await self.classify_missing(scope, list(items))

    async def sprint_report(self, sprint: SprintRef) -> SprintReport | None:
        """Optional capability: the source's own report of a closed sprint (what was committed,
        added, removed and completed, per item), for ``programview verify sprints``.
        ``None`` (the default) means this connector has no such report."""
        return None

    @classmethod
    def reports_sprints(cls) -> bool:
        """Whether this connector implements :meth:`sprint_report`."""
        return cls.sprint_report is not Connector.sprint_report

    async def classify_missing(self, scope: str, native_ids: list[str]) -> dict[str, str]:
        """Why items are missing from :meth:`live_ids`' listing, by native id.

        ``"deleted"`` and ``"moved"`` (out of this scope; a move into another synced scope is
        followed by the stable id) mark the work item deleted; ``"hidden"`` (it exists but
        this account can no longer see it, e.g. a 403 on a direct lookup) keeps it and says so
        in the run; ``"live"``/``"unknown"`` change nothing. The default trusts the listing.
        """
        return dict.fromkeys(native_ids, "deleted")
