"""The normalized warehouse tables (SQLAlchemy 2 typed ORM).

These tables are internal: the public contract is the ``v_*`` views (see docs/warehouse.md),
so columns here may change through a migration without breaking dashboards.

Conventions, so every connector writes the same shapes:

* Times are naive UTC ``datetime``; calendar dates are ``date``.
* Row ids of synced objects are strings ``"<source name>:<native id>"`` (see ``row_id``): stable
  across key changes (a moved Jira issue keeps its id) and unique across sources.
* ``scope`` is the source scope a row was synced under (Jira project key, GitHub
  ``owner/repo``, GitLab project path). ``project_scopes`` maps scopes to configured projects,
  so the transform never looks at one source's raw fields.
* Every table written by the sync engine has a primary key the engine can upsert on.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def row_id(source: str, native_id: object) -> str:
    """The warehouse id of a synced object: ``"<source>:<native id>"``."""
    return f"{source}:{native_id}"


# --- configuration mirrored into the warehouse (so views can join on it) -------------------


class Source(Base):
    __tablename__ = "sources"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # jira | github | gitlab | third-party kind
    base_url: Mapped[str | None] = mapped_column(String(500))


class Program(Base):
    __tablename__ = "programs"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    budget: Mapped[float | None] = mapped_column(Float)
    start_date: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)


class Project(Base):
    __tablename__ = "projects"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    program_key: Mapped[str | None] = mapped_column(String(100), index=True)
    budget: Mapped[float | None] = mapped_column(Float)
    start_date: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    hourly_rate: Mapped[float | None] = mapped_column(Float)


class ProjectScope(Base):
    """A configured ``"source:scope"`` string of a project, split."""

    __tablename__ = "project_scopes"
    project_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    source_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    scope: Mapped[str] = mapped_column(String(300), primary_key=True)
    __table_args__ = (Index("ix_project_scopes_source_scope", "source_name", "scope"),)


# --- synced, normalized records -------------------------------------------------------------


class WorkItem(Base):
    __tablename__ = "work_items"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source_name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(300))
    native_id: Mapped[str] = mapped_column(String(100))
    item_key: Mapped[str] = mapped_column(String(300))  # PAY-12, acme/web#45, acme/mobile#7
    url: Mapped[str | None] = mapped_column(String(1000))
    title: Mapped[str | None] = mapped_column(Text)
    raw_type: Mapped[str | None] = mapped_column(String(100))
    type_category: Mapped[str] = mapped_column(String(20))  # story|bug|task|epic|incident|other
    raw_status: Mapped[str | None] = mapped_column(String(100))
    status_category: Mapped[str] = mapped_column(String(20))  # todo|in_progress|done
    priority: Mapped[str | None] = mapped_column(String(100))
    story_points: Mapped[float | None] = mapped_column(Float)  # NULL = unestimated, not 0
    original_estimate_hours: Mapped[float | None] = mapped_column(Float)
    time_spent_hours: Mapped[float | None] = mapped_column(Float)
    assignee: Mapped[str | None] = mapped_column(String(300))
    #: The assignee's ``people.id`` where the connector knows it: how a person is matched
    #: across tools (``assignee`` is only a display name).
    assignee_id: Mapped[str | None] = mapped_column(String(200))
    reporter: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)  # first move to in_progress
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    due_date: Mapped[date | None] = mapped_column(Date)
    parent_key: Mapped[str | None] = mapped_column(String(300))
    labels: Mapped[str | None] = mapped_column(Text)  # comma-separated, for BI friendliness
    # closed as "not planned"/won't do: done, but not delivered points
    not_delivered: Mapped[bool] = mapped_column(Boolean, default=False)
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (
        Index("ix_work_items_source_scope", "source_name", "scope"),
        Index("ix_work_items_item_key", "item_key"),
    )


class StatusChange(Base):
    """One status transition (Jira changelog, GitLab state event, GitHub timeline)."""

    __tablename__ = "status_changes"
    work_item_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    change_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    changed_at: Mapped[datetime] = mapped_column(DateTime)
    from_status: Mapped[str | None] = mapped_column(String(100))
    to_status: Mapped[str | None] = mapped_column(String(100))
    from_category: Mapped[str | None] = mapped_column(String(20))
    to_category: Mapped[str | None] = mapped_column(String(20))
    __table_args__ = (Index("ix_status_changes_changed_at", "changed_at"),)


class EstimateChange(Base):
    """A story-point change (re-estimate), so points at sprint start/close can be rebuilt."""

    __tablename__ = "estimate_changes"
    work_item_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    change_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    changed_at: Mapped[datetime] = mapped_column(DateTime)
    from_points: Mapped[float | None] = mapped_column(Float)
    to_points: Mapped[float | None] = mapped_column(Float)


class Sprint(Base):
    """Jira sprint, GitLab iteration, GitHub Projects iteration."""

    __tablename__ = "sprints"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source_name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str | None] = mapped_column(String(300))
    native_id: Mapped[str] = mapped_column(String(100))
    board_id: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(300))
    state: Mapped[str | None] = mapped_column(String(20))  # future|active|closed
    start_at: Mapped[datetime | None] = mapped_column(DateTime)
    end_at: Mapped[datetime | None] = mapped_column(DateTime)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)
    goal: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (Index("ix_sprints_source_scope", "source_name", "scope"),)


class SprintItem(Base):
    """Sprint membership with history: when an item entered and (last) left a sprint."""

    __tablename__ = "sprint_items"
    sprint_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    work_item_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    added_at: Mapped[datetime | None] = mapped_column(DateTime)  # NULL = there from creation
    removed_at: Mapped[datetime | None] = mapped_column(DateTime)  # NULL = still in it
    __table_args__ = (Index("ix_sprint_items_work_item", "work_item_id"),)


class Release(Base):
    """Jira fix version, GitHub milestone or release, GitLab milestone or release.

    ``planned_date`` and ``released_at`` are *sticky*: the first value seen wins (a moved
    Jira releaseDate is a slip, not a new plan). ``due_date`` is the current value.
    """

    __tablename__ = "releases"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source_name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str | None] = mapped_column(String(300))
    native_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(20))  # version|milestone|release
    start_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    planned_date: Mapped[date | None] = mapped_column(Date)
    released: Mapped[bool | None] = mapped_column(Boolean)
    released_at: Mapped[datetime | None] = mapped_column(DateTime)
    # True when released_at was observed by us; False/NULL when nobody saw it ship (backfill
    # of an already released Jira version): the transform then infers the actual date from
    # the latest resolution of its done items, in release_metrics (this column stays NULL).
    released_at_observed: Mapped[bool | None] = mapped_column(Boolean)
    archived: Mapped[bool | None] = mapped_column(Boolean)
    __table_args__ = (Index("ix_releases_source_scope", "source_name", "scope"),)


class WorkItemRelease(Base):
    __tablename__ = "work_item_releases"
    work_item_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    release_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    __table_args__ = (Index("ix_work_item_releases_release", "release_id"),)


class Dependency(Base):
    """A link between two work items, by item key so links to not-yet-synced items resolve
    once their project syncs. ``found_in`` is the work item whose payload carried the link:
    re-syncing that item replaces its links."""

    __tablename__ = "dependencies"
    found_in: Mapped[str] = mapped_column(String(200), primary_key=True)
    blocked_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    blocking_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    link_kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    # blocks | parent | relates | duplicates | clones
    source_name: Mapped[str] = mapped_column(String(100))
    origin: Mapped[str] = mapped_column(String(50))  # jira_link, github_blocked_by, text_ref…
    __table_args__ = (
        Index("ix_dependencies_blocked", "blocked_key"),
        Index("ix_dependencies_blocking", "blocking_key"),
    )


class Person(Base):
    """One identity of a person in one source. The transform matches identities across
    tools by e-mail and by the ``[[people]]`` aliases of the config (docs/metrics.md,
    "Shared people"); a connector fills ``email`` and ``login`` where its API gives them."""

    __tablename__ = "people"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source_name: Mapped[str] = mapped_column(String(100))
    native_id: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str | None] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(300))
    #: User name / login (GitHub login, GitLab username, Jira Data Center name).
    login: Mapped[str | None] = mapped_column(String(300))


class Worklog(Base):
    __tablename__ = "worklogs"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    work_item_id: Mapped[str] = mapped_column(String(200), index=True)
    author: Mapped[str | None] = mapped_column(String(300))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    hours: Mapped[float] = mapped_column(Float)


class ProjectCost(Base):
    """Imported actual costs (``programview costs import``), one amount per project and day."""

    __tablename__ = "project_costs"
    project_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    date: Mapped[date] = mapped_column(Date, primary_key=True)
    amount: Mapped[float] = mapped_column(Float)


# --- sync bookkeeping ----------------------------------------------------------------------


class RawPayload(Base):
    """The latest raw payload of every record, with its hash: unchanged records are skipped
    and ``programview remap`` re-applies mapping without calling any API."""

    __tablename__ = "raw_payloads"
    source_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    stream: Mapped[str] = mapped_column(String(100), primary_key=True)
    native_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    scope: Mapped[str] = mapped_column(String(300))
    hash: Mapped[str] = mapped_column(String(64))  # sha256 of the canonical JSON text
    #: The canonical JSON, zlib-compressed (format: ``programview.warehouse.payloads``).
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    fetched_at: Mapped[datetime] = mapped_column(DateTime)


class PayloadDictionary(Base):
    """A zlib preset dictionary for one source's stream: a sample of its payloads, so each
    stored payload compresses against what the stream's payloads have in common. Never
    changed once written (``raw_payloads`` rows name it by id)."""

    __tablename__ = "payload_dictionaries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_name: Mapped[str] = mapped_column(String(100))
    stream: Mapped[str] = mapped_column(String(100))
    dictionary: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Quarantine(Base):
    """Payloads that failed mapping, with the error; the rest of the sync went on."""

    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(Integer)
    source_name: Mapped[str] = mapped_column(String(100))
    stream: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(300))
    native_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class SyncState(Base):
    """The committed cursor per source/scope/stream (JSON), written with the page's records."""

    __tablename__ = "sync_state"
    source_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    scope: Mapped[str] = mapped_column(String(300), primary_key=True)
    stream: Mapped[str] = mapped_column(String(100), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class SyncRun(Base):
    __tablename__ = "sync_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))  # sync | full | backfill
    source_name: Mapped[str | None] = mapped_column(String(100))  # NULL = all sources
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    # running | ok | partial | failed | stopped | abandoned (see warehouse/runs.py)
    status: Mapped[str] = mapped_column(String(20))
    records: Mapped[int] = mapped_column(Integer, default=0)  # records written
    skipped: Mapped[int] = mapped_column(Integer, default=0)  # unchanged (same raw hash)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text)


class SyncRunStream(Base):
    """Per source/scope/stream figures of a run (what ``v_sync_runs`` shows for freshness)."""

    __tablename__ = "sync_run_streams"
    run_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("sync_runs.id", ondelete="CASCADE"), primary_key=True
    )
    source_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    scope: Mapped[str] = mapped_column(String(300), primary_key=True)
    stream: Mapped[str] = mapped_column(String(100), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(20))
    records: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


# --- transform output (metrics, history, health, alerts): see metrics_models.py, and the
# explanations of health scores and alert verdicts: explain_models.py (migration 0008).
# Imported last so those tables register on Base.metadata (Alembic, tests) with the rest.
from programview.warehouse import (  # noqa: E402,F401
    explain_models,
    forecast_models,
    metrics_models,
    program_models,
)
