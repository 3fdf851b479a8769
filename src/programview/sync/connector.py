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
from dataclasses import dataclass, field
from datetime import datetime
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


@dataclass(slots=True)
class SyncOptions:
    """What the engine tells a stream about this run."""

    full: bool = False  # ignore cursors: re-read everything (still skips unchanged by hash)
    since: datetime | None = None  # backfill window start (UTC)
    until: datetime | None = None  # backfill window end (UTC)
    lookback_minutes: int = 10


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

    def __init__(self, connector: Connector) -> None:
        self.connector = connector

    def native_id(self, raw: Raw) -> str:
        """The record's stable id (dedupes overlapping incremental pages)."""
        value: Any = raw
        for part in self.primary_key.split("."):
            value = value[part]
        return str(value)

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

    def __init__(self, source: SourceConfig, http: HttpClient) -> None:
        self.source = source
        self.http = http
        self.options = self.options_model.model_validate(source.options)

    @classmethod
    def auth_headers(cls, source: SourceConfig) -> dict[str, str]:
        """HTTP headers that authenticate to this source (built from secret credentials)."""
        return {}

    async def prepare(self) -> None:  # noqa: B027 (optional hook)
        """Run once before the streams: check credentials, discover settings (e.g. fields)."""

    @abstractmethod
    def streams(self) -> list[Stream]:
        """Streams in the order they should run for a scope (parents before children)."""

    async def check_scope(self, scope: str) -> None:  # noqa: B027 (optional hook)
        """Raise :class:`programview.errors.NotFound` when ``scope`` does not exist."""

    async def live_ids(self, scope: str) -> LiveIds | None:
        """Optional deletion reconcile for ``scope``; see :class:`LiveIds`."""
        return None

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
