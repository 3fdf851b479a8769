"""The generated organisation the API simulator serves, and its ground truth.

Everything here is plain Python data, deterministic from ``(seed, size)``: the same
arguments give identical data, so tests can compute expected metrics from this ground
truth without any HTTP and compare with what programview computed from the APIs.

Data model (all timestamps are timezone-aware UTC ``datetime`` with whole seconds)
-------------------------------------------------------------------------------------
``Organisation``
    ``seed``, ``size``, ``now`` (simulated clock, default 2026-11-01T12:00Z),
    ``people`` (list[Person]), ``programs`` (list[Program]), ``projects``
    (list[Project]), ``scopes`` (list[Scope]), ``cadences`` (list[Cadence]),
    ``sprints`` (dict id -> Sprint), ``releases`` (dict id -> Release), ``links``
    (list[Link]), ``items`` (dict id -> Item, deleted ones included),
    ``gitlab_groups`` (list[GitLabGroup]), ``changes`` (list[ChangeSet], one per
    ``advance()``), ``tokens`` (Credentials), ``jira_user_timezone``, ``lock``.

``Program``  key, name, budget, start, end, project_keys.
``Project``  programview project: key, name, program, budget, start, end,
    hourly_rate, scope_paths (one or two scopes: e.g. Jira ``PAY`` + GitHub repo).
``Scope``    one container in one source system: ``system`` (jira|github|gitlab),
    ``path`` (Jira key ``PAY`` / GitHub ``acme/web`` / GitLab ``acme/platform/api``;
    unique across systems: Jira keys have no slash, GitHub paths two segments, GitLab
    three), ``native_id`` (Jira project id / GitHub repo id / GitLab project id),
    ``name``, ``project`` (programview key), ``cadence_id``, ``namespace_id`` (GitLab
    subgroup id).
``Cadence``  a team's sprint rhythm: a Jira scrum board (``native_id`` = board id),
    the GitLab group iteration cadence, or the GitHub Projects v2 iteration field.
    ``sprint_ids`` are in time order and never overlap (2-week sprints, 1 h gap).
``Sprint``   id (unique in the org), ``native_id`` (Jira sprint id, GitLab iteration
    id, GitHub iteration id as 8 hex chars), ``iid``, ``sequence``, name, start, end,
    ``completed`` (closed only), ``state`` (future|active|closed), goal, updated.
``Release``  Jira fix version / GitHub milestone (+ release) / GitLab milestone
    (+ release): ``native_id``, ``number`` (GitHub milestone number, GitLab iid),
    name, ``tag``, ``start``, ``due`` (current due date), ``original_due`` (first
    plan), ``due_changes`` (list of (changed_at, old, new)), ``released_at`` (None
    while open), ``state`` (open|released), ``on_time`` property, updated.
``Item``     a work item. ``id`` (native id: Jira issue id, GitHub issue id, GitLab
    global id), ``number`` (Jira key number / GitHub number / GitLab iid), ``key``
    (``PAY-12``, ``acme/web#45``, ``acme/platform/api#7``), ``type``
    (story|bug|task|epic|incident|subtask), ``status_history`` (tuple of
    StatusChange(at, status) with status in todo|in_progress|in_review|done, oldest
    first, starting at ``created``), ``status`` / ``status_category``
    (todo|in_progress|done) / ``jira_status`` / ``jira_status_category``
    (new|indeterminate|done) properties, ``resolution`` (None|Done|Won't Do|
    Duplicate; GitHub ``state_reason`` via ``github_state_reason``),
    ``points_history`` (PointsChange(at, points); points None = unestimated; first
    entry at ``created``) and ``points``, ``sprints`` (SprintMembership(sprint_id,
    added, removed): ``removed`` is set only when taken out before the sprint
    closed; an unfinished item carried over keeps its old membership and gets a new
    one in the next sprint, added at the old sprint's close), ``release_id``,
    ``assignee``/``reporter`` (Person ids), ``priority`` (highest..lowest), ``due``,
    ``labels`` (generic ones; ``source_labels`` adds the per-system ones),
    ``parent_id`` (epic for stories, story for sub-tasks),
    ``original_estimate_s`` and ``worklogs`` (Jira only; Worklog(id, author,
    started, seconds)), ``created``, ``updated`` (latest change of anything above,
    links included), ``deleted`` (set by ``advance()``), ``title`` (derived).
``Link``     ``kind`` blocks|relates|duplicates, read "``from_id`` <kind> ``to_id``"
    (so for blocks: from = blocker, to = blocked), ``via`` native|body: ``body``
    links are cross-tool text references written in the blocked item's description
    (``Organisation.description(item)`` renders "Blocked by PAY-12").

Per-system rendering hints (so the three endpoint modules agree):
    Jira statuses ``JIRA_STATUSES``; GitLab ``workflow::`` scoped labels
    ``GITLAB_WORKFLOW_LABELS`` (closed = done; in ``source_labels``); GitHub Projects
    "Status" options ``GITHUB_PROJECT_STATUS`` (issue state closed = done). Types per system in
    ``JIRA_TYPES`` / ``GITHUB_TYPES`` / ``GITLAB_TYPES``. Points: Jira story-point
    field, GitLab ``weight``, GitHub Projects number field "Estimate" *and* a
    ``points:N`` label (``Item.source_labels`` carries it for GitHub items).
    Priorities: Jira ``priority``, GitHub ``priority:high`` label, GitLab
    ``priority::high`` label (both in ``source_labels``).

Memory: items are ``__slots__`` dataclasses holding tuples; titles and descriptions are
derived on demand; API pages should be produced lazily (``iter_pages``) so a ``large``
organisation (200k+ items) stays well under 500 MB.
"""

from __future__ import annotations

import bisect
import math
import random
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

# --- constants ------------------------------------------------------------------------

SIZES: dict[str, int] = {"small": 2_000, "medium": 20_000, "large": 200_000}
DEFAULT_NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
HISTORY_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday: first sprint day
SPRINT_DAYS = 14
DAY = 86_400

TODO, IN_PROGRESS, IN_REVIEW, DONE = "todo", "in_progress", "in_review", "done"
STATUSES = (TODO, IN_PROGRESS, IN_REVIEW, DONE)
STATUS_CATEGORY = {TODO: "todo", IN_PROGRESS: "in_progress", IN_REVIEW: "in_progress", DONE: "done"}
#: status -> (Jira status id, name, statusCategory key, statusCategory id)
JIRA_STATUSES: dict[str, tuple[str, str, str, int]] = {
    TODO: ("10000", "To Do", "new", 2),
    IN_PROGRESS: ("3", "In Progress", "indeterminate", 4),
    IN_REVIEW: ("10001", "In Review", "indeterminate", 4),
    DONE: ("10002", "Done", "done", 3),
}
#: open GitLab issues carry one of these scoped labels (closed issues: none needed).
GITLAB_WORKFLOW_LABELS = {
    TODO: "workflow::todo",
    IN_PROGRESS: "workflow::in dev",
    IN_REVIEW: "workflow::in review",
    DONE: "workflow::done",
}
#: GitHub Projects v2 single-select "Status" option names.
GITHUB_PROJECT_STATUS = {
    TODO: "Todo",
    IN_PROGRESS: "In progress",
    IN_REVIEW: "In review",
    DONE: "Done",
}

TYPES = ("story", "bug", "task", "epic", "incident", "subtask")
#: type -> (Jira issuetype name, hierarchyLevel)
JIRA_TYPES = {
    "story": ("Story", 0),
    "bug": ("Bug", 0),
    "task": ("Task", 0),
    "epic": ("Epic", 1),
    "incident": ("Incident", 0),
    "subtask": ("Sub-task", -1),
}
#: type -> GitHub org issue type name (``GET /orgs/acme/issue-types``)
GITHUB_TYPES = {
    "story": "Feature",
    "bug": "Bug",
    "task": "Task",
    "epic": "Epic",
    "incident": "Incident",
}
#: type -> (GitLab issue_type, extra scoped label or None). GitLab has no epics here.
GITLAB_TYPES = {
    "story": ("issue", "type::story"),
    "bug": ("issue", "type::bug"),
    "task": ("task", None),
    "incident": ("incident", None),
}
PRIORITIES = ("highest", "high", "medium", "low", "lowest")
JIRA_PRIORITIES = {
    "highest": ("1", "Highest"),
    "high": ("2", "High"),
    "medium": ("3", "Medium"),
    "low": ("4", "Low"),
    "lowest": ("5", "Lowest"),
}
FIBONACCI = (1.0, 2.0, 3.0, 5.0, 8.0, 13.0)
RESOLUTION_DONE, RESOLUTION_WONT, RESOLUTION_DUP = "Done", "Won't Do", "Duplicate"

GITHUB_ORG = "acme"
GITLAB_GROUP = "acme"
GITHUB_PROJECT_NUMBER = 1
JIRA_USER_TIMEZONE = "Europe/Berlin"  # /myself.timeZone: JQL minutes are in this zone
JIRA_STORY_POINTS_FIELD = "customfield_10016"
JIRA_SPRINT_FIELD = "customfield_10020"


@dataclass(frozen=True, slots=True)
class Credentials:
    """The fixed simulator credentials (they are not secrets: the simulator is local)."""

    jira_email: str = "sim@acme.example"
    jira_api_token: str = "sim-jira-api-token"
    jira_dc_pat: str = "sim-jira-dc-pat"
    jira_dc_user: str = "sim"
    jira_dc_password: str = "sim-password"
    github_token: str = "ghp_simulatortoken000000000000000000000"
    gitlab_token: str = "glpat-simulatortoken0000"

    def env(self) -> dict[str, str]:
        """Environment variables the printed config file refers to."""
        return {
            "PROGRAMVIEW_SIM_JIRA_EMAIL": self.jira_email,
            "PROGRAMVIEW_SIM_JIRA_TOKEN": self.jira_api_token,
            "PROGRAMVIEW_SIM_JIRA_DC_TOKEN": self.jira_dc_pat,
            "PROGRAMVIEW_SIM_GITHUB_TOKEN": self.github_token,
            "PROGRAMVIEW_SIM_GITLAB_TOKEN": self.gitlab_token,
        }


TOKENS = Credentials()


# --- records --------------------------------------------------------------------------


class StatusChange(NamedTuple):
    at: datetime
    status: str


class PointsChange(NamedTuple):
    at: datetime
    points: float | None


class SprintMembership(NamedTuple):
    sprint_id: int
    added: datetime
    removed: datetime | None  # only when removed before the sprint closed


class Worklog(NamedTuple):
    id: int
    author: int  # Person.id
    started: datetime
    seconds: int


@dataclass(slots=True)
class Person:
    id: int
    name: str
    email: str
    login: str  # GitHub login / GitLab username / Jira DC name
    account_id: str  # Jira Cloud accountId


@dataclass(slots=True)
class Program:
    key: str
    name: str
    budget: float
    start: date
    end: date
    project_keys: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Project:
    key: str
    name: str
    program: str
    budget: float
    start: date
    end: date
    hourly_rate: float
    scope_paths: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Scope:
    system: str  # jira | github | gitlab
    path: str
    native_id: int
    name: str
    project: str
    cadence_id: int | None = None
    namespace_id: int | None = None  # GitLab subgroup id
    next_number: int = 1

    @property
    def owner(self) -> str:
        """GitHub owner / GitLab namespace path / Jira key."""
        return self.path.rsplit("/", 1)[0] if "/" in self.path else self.path


@dataclass(slots=True)
class GitLabGroup:
    id: int
    path: str  # full path, e.g. "acme/platform"
    name: str
    parent_id: int | None


@dataclass(slots=True)
class Cadence:
    id: int
    system: str
    native_id: int  # Jira board id / GitLab cadence id / GitHub iteration field number
    name: str
    owner: str  # Jira project key / GitLab group path / GitHub "acme/1"
    scope_paths: tuple[str, ...]
    sprint_ids: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Sprint:
    id: int
    native_id: int | str
    cadence_id: int
    system: str
    sequence: int
    iid: int
    name: str
    start: datetime
    end: datetime
    completed: datetime | None
    state: str  # future | active | closed
    goal: str
    updated: datetime


@dataclass(slots=True)
class Release:
    id: int
    native_id: int
    number: int
    scope_path: str
    system: str
    name: str
    tag: str
    start: date
    due: date
    original_due: date
    due_changes: list[tuple[datetime, date, date]]
    released_at: datetime | None
    created: datetime
    updated: datetime

    @property
    def state(self) -> str:
        return "released" if self.released_at is not None else "open"

    @property
    def on_time(self) -> bool | None:
        """Released on or before the *original* due date (a moved date is a slip)."""
        if self.released_at is None:
            return None
        return self.released_at.date() <= self.original_due

    @property
    def slip_days(self) -> int | None:
        if self.released_at is None:
            return None
        return (self.released_at.date() - self.original_due).days


@dataclass(slots=True, eq=False)
class Link:
    id: int
    kind: str  # blocks | relates | duplicates
    from_id: int  # blocks: the blocker
    to_id: int  # blocks: the blocked item
    created: datetime
    via: str  # native | body


@dataclass(slots=True)
class Benefit:
    """An entry of a program's benefits register (``[[benefits]]`` in the config)."""

    program: str
    key: str
    name: str
    unit: str
    baseline: float
    target: float
    target_date: date
    value_per_unit: float | None
    #: How fast the measured value really moves, relative to the straight-line plan (1.0 on
    #: the line, below 1 behind it): ground truth for "on track".
    pace: float


@dataclass(frozen=True, slots=True)
class SharedPerson:
    """A person given in-progress work in several projects of one program (a PM's fight)."""

    person_id: int
    program: str
    projects: tuple[str, ...]
    #: Their own WIP limit in the config (``[[people]] wip_limit``): the stretched one works
    #: part-time for the program; None = the default.
    wip_limit: int | None = None


_WORDS_A = (
    "Add",
    "Fix",
    "Refactor",
    "Support",
    "Migrate",
    "Improve",
    "Remove",
    "Speed up",
    "Document",
    "Validate",
    "Cache",
    "Retry",
    "Split",
    "Audit",
    "Expose",
)
_WORDS_B = (
    "refund flow",
    "checkout page",
    "ledger export",
    "login form",
    "webhook delivery",
    "invoice PDF",
    "search index",
    "rate limiter",
    "user settings",
    "billing report",
    "card tokenisation",
    "payout batch",
    "mobile onboarding",
    "audit log",
    "API client",
)
_WORDS_C = (
    "",
    " for EU",
    " on Android",
    " in v2",
    " under load",
    " for admins",
    " (follow-up)",
    " edge cases",
    " timeouts",
    " with retries",
)


@dataclass(slots=True, eq=False)
class Item:
    id: int
    number: int
    scope: Scope
    type: str
    created: datetime
    updated: datetime
    status_history: tuple[StatusChange, ...]
    points_history: tuple[PointsChange, ...]
    sprints: tuple[SprintMembership, ...]
    resolution: str | None
    release_id: int | None
    assignee: int | None
    reporter: int
    priority: str
    due: date | None
    labels: tuple[str, ...]
    parent_id: int | None
    original_estimate_s: int | None
    worklogs: tuple[Worklog, ...]
    deleted: datetime | None = None

    @property
    def key(self) -> str:
        if self.scope.system == "jira":
            return f"{self.scope.path}-{self.number}"
        return f"{self.scope.path}#{self.number}"

    @property
    def system(self) -> str:
        return self.scope.system

    @property
    def project(self) -> str:
        return self.scope.project

    @property
    def title(self) -> str:
        h = (self.id * 2654435761) & 0xFFFFFFFF
        return f"{_WORDS_A[h % 15]} {_WORDS_B[(h >> 8) % 15]}{_WORDS_C[(h >> 16) % 10]}"

    @property
    def status(self) -> str:
        return self.status_history[-1].status

    @property
    def status_category(self) -> str:
        """programview category: todo | in_progress | done."""
        return STATUS_CATEGORY[self.status]

    @property
    def jira_status(self) -> str:
        return JIRA_STATUSES[self.status][1]

    @property
    def jira_status_category(self) -> str:
        """Jira statusCategory key: new | indeterminate | done."""
        return JIRA_STATUSES[self.status][2]

    @property
    def is_done(self) -> bool:
        return self.status == DONE

    @property
    def resolved(self) -> datetime | None:
        """Time of the last move to done, if the item is done now."""
        return self.status_history[-1].at if self.status == DONE else None

    @property
    def started(self) -> datetime | None:
        """First move to an in-progress status."""
        for ch in self.status_history:
            if ch.status in (IN_PROGRESS, IN_REVIEW):
                return ch.at
        return None

    @property
    def reopened(self) -> bool:
        seen_done = False
        for ch in self.status_history:
            if ch.status == DONE:
                seen_done = True
            elif seen_done:
                return True
        return False

    @property
    def points(self) -> float | None:
        return self.points_history[-1].points

    def points_at(self, at: datetime) -> float | None:
        """Estimate in force at ``at`` (None before creation or when unestimated)."""
        value: float | None = None
        for ch in self.points_history:
            if ch.at > at:
                break
            value = ch.points
        return value

    def status_at(self, at: datetime) -> str | None:
        value: str | None = None
        for ch in self.status_history:
            if ch.at > at:
                break
            value = ch.status
        return value

    @property
    def github_state(self) -> str:
        return "closed" if self.status == DONE else "open"

    @property
    def github_state_reason(self) -> str | None:
        if self.status == DONE:
            return {RESOLUTION_WONT: "not_planned", RESOLUTION_DUP: "duplicate"}.get(
                self.resolution or "", "completed"
            )
        return "reopened" if self.reopened else None

    @property
    def source_labels(self) -> tuple[str, ...]:
        """Labels exactly as the source shows them now: ``labels`` plus, on GitHub,
        ``points:N`` and ``priority:x``; on GitLab ``priority::x``, ``type::…`` and the
        ``workflow::`` label of an open issue. Derived, so never stale after advance()."""
        if self.scope.system == "github":
            pts = self.points
            extra = (f"points:{int(pts)}",) if pts is not None else ()
            return (*self.labels, *extra, f"priority:{self.priority}")
        if self.scope.system == "gitlab":
            out = [*self.labels, f"priority::{self.priority}"]
            gl_type = GITLAB_TYPES.get(self.type, ("issue", None))[1]
            if gl_type:
                out.append(gl_type)
            if self.status != DONE:
                out.append(GITLAB_WORKFLOW_LABELS[self.status])
            return tuple(out)
        return self.labels

    @property
    def time_spent_s(self) -> int:
        return sum(w.seconds for w in self.worklogs)


@dataclass(slots=True)
class ChangeSet:
    """What one ``advance()`` call changed; ``updated`` of these items is in (start, end]."""

    start: datetime
    end: datetime
    created: list[int] = field(default_factory=list)
    changed: set[int] = field(default_factory=set)  # created and deleted included
    deleted: list[int] = field(default_factory=list)
    sprints: set[int] = field(default_factory=set)
    releases: set[int] = field(default_factory=set)


# --- catalogue ------------------------------------------------------------------------

# (project key, name, primary system, primary path, companion GitHub repo or None)
_CATALOGUE: tuple[tuple[str, str, str, str, str | None], ...] = (
    ("PAY", "Payments API", "jira", "PAY", "acme/pay-sdk"),
    ("LEDG", "Ledger", "jira", "LEDG", None),
    ("RISK", "Risk engine", "jira", "RISK", None),
    ("CHK", "Checkout", "jira", "CHK", "acme/checkout-ui"),
    ("WEB", "Web storefront", "github", "acme/web", None),
    ("MOBILE", "Mobile app", "github", "acme/mobile", None),
    ("DOCS", "Developer portal", "github", "acme/docs", None),
    ("API", "Platform API", "gitlab", "acme/platform/api", None),
    ("INFRA", "Infrastructure", "gitlab", "acme/platform/infra", None),
    ("ETL", "Data pipelines", "gitlab", "acme/data/etl", None),
)
_PROGRAMS = (
    ("PAYMENTS", "Payments modernisation"),
    ("DIGITAL", "Digital channels"),
    ("PLATFORM", "Platform reliability"),
)
_FIRST = (
    "Ada",
    "Ben",
    "Chloe",
    "Dev",
    "Elif",
    "Femi",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Kira",
    "Liam",
    "Mona",
    "Nils",
    "Olga",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Uma",
    "Viktor",
    "Wen",
    "Xavi",
    "Yara",
    "Zoe",
)
_LAST = (
    "Okafor",
    "Schmidt",
    "Rossi",
    "Nguyen",
    "Kowalski",
    "Haddad",
    "Silva",
    "Berg",
    "Tanaka",
    "Murphy",
    "Novak",
    "Dubois",
    "Larsen",
    "Costa",
    "Ivanova",
    "Patel",
)
_LABELS = ("backend", "frontend", "security", "tech-debt", "customer", "performance", "ux", "infra")


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(int(ts), tz=UTC)


def _ts(dt: datetime) -> float:
    return dt.timestamp()


def _midnight(d: date) -> datetime:
    return datetime.combine(d, datetime.min.time(), UTC)


# --- the organisation -----------------------------------------------------------------


class Organisation:
    """A generated organisation: ground truth plus the mutation API (``advance``)."""

    def __init__(self, seed: int, size: str, now: datetime) -> None:
        self.seed = seed
        self.size = size
        self.now = now
        self.tokens = TOKENS
        self.jira_user_timezone = JIRA_USER_TIMEZONE
        self.github_org = GITHUB_ORG
        self.github_project_number = GITHUB_PROJECT_NUMBER
        self.gitlab_group = GITLAB_GROUP
        self.people: list[Person] = []
        self.programs: list[Program] = []
        self.projects: list[Project] = []
        self.scopes: list[Scope] = []
        self.gitlab_groups: list[GitLabGroup] = []
        self.cadences: list[Cadence] = []
        self.sprints: dict[int, Sprint] = {}
        self.releases: dict[int, Release] = {}
        self.links: list[Link] = []
        self.items: dict[int, Item] = {}
        self.changes: list[ChangeSet] = []
        #: The benefits register and the people shared between projects (see
        #: ``_gen_benefits`` / ``_share_people``; their own random streams).
        self.benefits: list[Benefit] = []
        self.shared_people: list[SharedPerson] = []
        #: Held by the app around every handler and by ``advance()``: a request never
        #: sees a half-applied advance.
        self.lock = threading.RLock()
        self._scope_by_path: dict[str, Scope] = {}
        self._scope_items: dict[str, list[Item]] = {}
        self._links_by_item: dict[int, list[Link]] = {}
        self._key_index: dict[str, int] | None = None
        self._ids = {
            "jira": 10_000,
            "github": 1_000_000_000,
            "gitlab": 5_000_000,
            "link": 10_000,
            "worklog": 100_000,
            "sprint": 0,
            "release": 0,
        }

    # ---- lookups ---------------------------------------------------------------------

    def scope(self, path: str) -> Scope:
        """Scope by its path (``PAY``, ``acme/web``, ``acme/platform/api``)."""
        return self._scope_by_path[path]

    def find_scope(self, system: str, ident: str | int) -> Scope | None:
        """Scope of ``system`` by path or native id (GitLab ``:id`` is either; a
        percent-encoded path must be decoded first). None when unknown."""
        text = str(ident)
        if text.isdigit():
            return next(
                (s for s in self.scopes if s.system == system and s.native_id == int(text)), None
            )
        sc = self._scope_by_path.get(text)
        if sc is None:  # GitHub/GitLab paths are case-insensitive
            sc = next((s for s in self.scopes if s.path.lower() == text.lower()), None)
        return sc if sc is not None and sc.system == system else None

    def scopes_of(self, system: str) -> list[Scope]:
        return [s for s in self.scopes if s.system == system]

    def project(self, key: str) -> Project:
        return next(p for p in self.projects if p.key == key)

    def program(self, key: str) -> Program:
        return next(p for p in self.programs if p.key == key)

    def scope_items(self, scope: Scope | str, include_deleted: bool = False) -> list[Item]:
        """Items of one scope in creation order (the internal list: do not mutate)."""
        path = scope if isinstance(scope, str) else scope.path
        items = self._scope_items[path]
        if include_deleted:
            return items
        return [i for i in items if i.deleted is None]

    def items_for(self, project: Project | str, include_deleted: bool = False) -> list[Item]:
        """Live items of a programview project (all its scopes)."""
        proj = self.project(project) if isinstance(project, str) else project
        out: list[Item] = []
        for path in proj.scope_paths:
            out.extend(self.scope_items(path, include_deleted))
        return out

    def live_items(self) -> Iterator[Item]:
        return (i for i in self.items.values() if i.deleted is None)

    def item(self, item_id: int) -> Item:
        return self.items[item_id]

    def item_by_key(self, key: str) -> Item | None:
        """Item by key (``PAY-12`` / ``acme/web#3``); deleted ones are not found."""
        if self._key_index is None:
            self._key_index = {i.key: i.id for i in self.items.values()}
        iid = self._key_index.get(key)
        item = self.items.get(iid) if iid is not None else None
        return item if item is not None and item.deleted is None else None

    def item_by_number(self, scope: Scope | str, number: int) -> Item | None:
        """Live item by its scope and number (GitHub number, GitLab iid, Jira key number)."""
        items = self._scope_items[scope if isinstance(scope, str) else scope.path]
        if 1 <= number <= len(items):
            item = items[number - 1]  # numbers are dense per scope, in creation order
            return item if item.deleted is None else None
        return None

    def links_of(self, item: Item | int) -> list[Link]:
        """All links where the item is on either end."""
        return self._links_by_item.get(item if isinstance(item, int) else item.id, [])

    def blockers_of(self, item: Item) -> list[Item]:
        return [
            self.items[lk.from_id]
            for lk in self.links_of(item)
            if lk.kind == "blocks" and lk.to_id == item.id
        ]

    def description(self, item: Item) -> str:
        """Item body; carries the cross-tool "Blocked by X" references (``via='body'``)."""
        lines = [f"{item.title}.", ""]
        for lk in self.links_of(item):
            if lk.via == "body" and lk.kind == "blocks" and lk.to_id == item.id:
                lines.append(f"Blocked by {self.items[lk.from_id].key}")
        return "\n".join(lines).strip()

    def cadence(self, cadence_id: int) -> Cadence:
        return next(c for c in self.cadences if c.id == cadence_id)

    def sprints_of(self, cadence: Cadence | int) -> list[Sprint]:
        cad = self.cadence(cadence) if isinstance(cadence, int) else cadence
        return [self.sprints[s] for s in cad.sprint_ids]

    def current_sprint(self, item: Item) -> Sprint | None:
        """Latest sprint the item is still a member of (what a Sprint/iteration field shows)."""
        for m in reversed(item.sprints):
            if m.removed is None:
                return self.sprints[m.sprint_id]
        return None

    def sprint_members(self, sprint: Sprint | int) -> list[tuple[Item, SprintMembership]]:
        """(item, membership) pairs ever added to the sprint (linear scan of its scopes)."""
        sid = sprint if isinstance(sprint, int) else sprint.id
        cad = self.cadence(self.sprints[sid].cadence_id)
        out: list[Any] = []
        for path in cad.scope_paths:
            for item in self._scope_items[path]:
                if item.deleted is None:
                    out.extend((item, m) for m in item.sprints if m.sprint_id == sid)
        return out

    def releases_of(self, scope: Scope | str) -> list[Release]:
        path = scope if isinstance(scope, str) else scope.path
        return [r for r in self.releases.values() if r.scope_path == path]

    def person(self, person_id: int) -> Person:
        return self.people[person_id]

    def iter_pages(
        self,
        scope: Scope | str,
        page_size: int,
        updated_since: datetime | None = None,
        order: str = "updated",
    ) -> Iterator[list[Item]]:
        """Live items of a scope in pages, lazily (``order``: ``updated`` then number, or
        ``number``). The basis of every paged issue endpoint; keeps memory flat."""
        items: Iterable[Item] = self.scope_items(scope)
        if updated_since is not None:
            items = [i for i in items if i.updated >= updated_since]
        ordered = sorted(
            items,
            key=(lambda i: (i.updated, i.number)) if order == "updated" else (lambda i: i.number),
        )
        for start in range(0, len(ordered), page_size):
            yield ordered[start : start + page_size]

    def changed_since(self, since: datetime) -> list[Item]:
        """Live items whose ``updated`` is at or after ``since`` (incremental ground truth)."""
        return [i for i in self.live_items() if i.updated >= since]

    # ---- benefits ----------------------------------------------------------------------

    def measurements(self) -> list[tuple[str, date, float]]:
        """Monthly measurements of every benefit (the 1st of each month from its program's
        start up to now), oldest first. Each value depends only on (seed, size, benefit, day),
        so measurements taken before an ``advance()`` never change after it."""
        out: list[tuple[str, date, float]] = []
        today = self.now.date()
        for b in self.benefits:
            start = self.program(b.program).start
            day = date(start.year, start.month, 1)
            while day <= today:
                if day >= start:
                    out.append((b.key, day, self._measure(b, day)))
                day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        return out

    def _measure(self, b: Benefit, day: date) -> float:
        start = self.program(b.program).start
        share = max(0.0, (day - start).days / max(1, (b.target_date - start).days))
        rng = random.Random(f"{self.seed}:{self.size}:measure:{b.key}:{day.isoformat()}")
        noise = rng.gauss(0.0, 0.02) * abs(b.target - b.baseline)
        return round(b.baseline + (b.target - b.baseline) * b.pace * share + noise, 4)

    def measurements_csv(self) -> str:
        """The measurements as ``programview benefits import`` reads them."""
        rows = ["benefit,date,value"]
        rows += [f"{k},{d.isoformat()},{v:g}" for k, d, v in self.measurements()]
        return "\n".join(rows) + "\n"

    # ---- config ----------------------------------------------------------------------

    def config_toml(
        self,
        base_url: str,
        db_url: str,
        jira_deployment: str = "cloud",
        kinds: Iterable[str] | None = None,
    ) -> str:
        """A ready programview config for this organisation served at ``base_url``.

        ``jira_deployment`` ``cloud`` uses ``/jira`` (Basic email:token), ``datacenter``
        uses ``/jira-dc`` (Bearer PAT). Secrets are ``${ENV}`` references; see
        ``Credentials.env()`` for their values. ``kinds`` keeps only sources of those kinds
        (the connectors installed), dropping project scopes on the others and projects left
        with no scope.
        """
        keep = set(kinds) if kinds is not None else {"jira", "github", "gitlab"}
        base = base_url.rstrip("/")

        def arr(values: Iterable[str]) -> str:
            return "[" + ", ".join(f'"{v}"' for v in values) + "]"

        out = [
            "# programview config for the API simulator",
            f"# (seed {self.seed}, size {self.size}); tokens: export PROGRAMVIEW_SIM_* first",
            "[warehouse]",
            f'url = "{db_url}"',
            "",
            "[sync]",
            "lookback_minutes = 10",
            "concurrency = 4",
            "",
        ]
        src_of = {"jira": "sim-jira", "github": "sim-github", "gitlab": "sim-gitlab"}
        if jira_deployment == "cloud":
            jira_url, jira_creds = (
                f"{base}/jira",
                (
                    '{ email = "${PROGRAMVIEW_SIM_JIRA_EMAIL}", '
                    'api_token = "${PROGRAMVIEW_SIM_JIRA_TOKEN}" }'
                ),
            )
        else:
            jira_url, jira_creds = (
                f"{base}/jira-dc",
                '{ token = "${PROGRAMVIEW_SIM_JIRA_DC_TOKEN}" }',
            )
        sections = {
            "jira": [
                "[[sources]]",
                'name = "sim-jira"',
                'kind = "jira"',
                f'base_url = "{jira_url}"',
                f"scopes = {arr(s.path for s in self.scopes_of('jira'))}",
                f"credentials = {jira_creds}",
                f'options = {{ deployment = "{jira_deployment}", story_points_field = "auto" }}',
                "",
            ],
            "github": [
                "[[sources]]",
                'name = "sim-github"',
                'kind = "github"',
                f'base_url = "{base}/github"',
                f"scopes = {arr(s.path for s in self.scopes_of('github'))}",
                'credentials = { token = "${PROGRAMVIEW_SIM_GITHUB_TOKEN}" }',
                f'options = {{ projects = ["{self.github_org}/{self.github_project_number}"] }}',
                "",
            ],
            "gitlab": [
                "[[sources]]",
                'name = "sim-gitlab"',
                'kind = "gitlab"',
                f'base_url = "{base}/gitlab"',
                f"scopes = {arr(s.path for s in self.scopes_of('gitlab'))}",
                'credentials = { token = "${PROGRAMVIEW_SIM_GITLAB_TOKEN}" }',
                'options = { in_progress_labels = ["workflow::in dev", "workflow::in review"] }',
                "",
            ],
        }
        for kind, lines in sections.items():
            if kind in keep:
                out += lines
        for prog in self.programs:
            out += [
                "[[programs]]",
                f'key = "{prog.key}"',
                f'name = "{prog.name}"',
                f"budget = {prog.budget:.1f}",
                f"start = {prog.start.isoformat()}",
                f"end = {prog.end.isoformat()}",
                "",
            ]
        for proj in self.projects:
            scopes = [
                f"{src_of[self.scope(p).system]}:{p}"
                for p in proj.scope_paths
                if self.scope(p).system in keep
            ]
            if not scopes:
                continue
            out += [
                "[[projects]]",
                f'key = "{proj.key}"',
                f'name = "{proj.name}"',
                f'program = "{proj.program}"',
                f"scopes = {arr(scopes)}",
                f"budget = {proj.budget:.1f}",
                f"start = {proj.start.isoformat()}",
                f"end = {proj.end.isoformat()}",
                f"hourly_rate = {proj.hourly_rate:.1f}",
                "",
            ]
        for b in self.benefits:
            out += [
                "[[benefits]]",
                f'program = "{b.program}"',
                f'key = "{b.key}"',
                f'name = "{b.name}"',
                f'unit = "{b.unit}"',
                f"baseline = {b.baseline!r}",
                f"target = {b.target!r}",
                f"target_date = {b.target_date.isoformat()}",
                *([f"value_per_unit = {b.value_per_unit!r}"] if b.value_per_unit else []),
                "",
            ]
        for shared in self.shared_people:
            person = self.person(shared.person_id)
            if any(f'name = "{person.name}"' == line for line in out):
                continue
            out += [
                "[[people]]",
                f'name = "{person.name}"',
                f'emails = ["{person.email}"]',
                f'aliases = ["{person.login}"]',
                *([f"wip_limit = {shared.wip_limit}"] if shared.wip_limit else []),
                "",
            ]
        return "\n".join(out)

    # ---- internal helpers ------------------------------------------------------------

    def _next_id(self, kind: str, step: int = 1) -> int:
        self._ids[kind] += step
        return self._ids[kind]

    def _add_link(self, link: Link) -> None:
        self.links.append(link)
        self._links_by_item.setdefault(link.from_id, []).append(link)
        self._links_by_item.setdefault(link.to_id, []).append(link)

    def _add_item(self, item: Item) -> None:
        self.items[item.id] = item
        self._scope_items[item.scope.path].append(item)
        if self._key_index is not None:
            self._key_index[item.key] = item.id

    # ---- time moves ------------------------------------------------------------------

    def advance(self, days: float) -> ChangeSet:
        """Move the clock forward ``days`` deterministically and mutate the organisation.

        Per simulated day: new items (some added to the active sprint after its start),
        status moves of active items, re-estimates, releases shipped (on time or late),
        a new cross-project blocker now and then, a deletion now and then; sprints
        close at their end (unfinished items carried over) and the next one starts.
        Every change sets ``updated`` of what changed to the change time, which is in
        ``(old now, new now]``; nothing else is touched. Returns (and appends to
        ``changes``) the ChangeSet.
        """
        if days <= 0:
            raise ValueError("days must be positive")
        with self.lock:
            rng = random.Random(f"{self.seed}:{self.size}:advance:{len(self.changes)}")
            start, end = self.now, self.now + timedelta(days=days)
            cs = ChangeSet(start=start, end=end)
            t = _ts(start)
            t_end = _ts(end)
            while t < t_end:
                step_end = min(t + DAY, t_end)
                self._advance_step(rng, t, step_end, cs)
                t = step_end
            self.now = end
            self.changes.append(cs)
            return cs

    def _advance_step(self, rng: random.Random, t0: float, t1: float, cs: ChangeSet) -> None:
        frac = (t1 - t0) / DAY

        def when() -> datetime:
            return _dt(rng.uniform(t0 + 1, t1))

        def touch(item: Item, at: datetime) -> None:
            item.updated = max(item.updated, at)
            cs.changed.add(item.id)

        open_by_scope = {
            s.path: [i for i in self._scope_items[s.path] if i.deleted is None and not i.is_done]
            for s in self.scopes
        }
        active = {
            c.id: next(
                (self.sprints[s] for s in c.sprint_ids if self.sprints[s].state == "active"), None
            )
            for c in self.cadences
        }
        # status moves, re-estimates
        for path, items in open_by_scope.items():
            sc = self._scope_by_path[path]
            spr = active.get(sc.cadence_id) if sc.cadence_id is not None else None
            for item in items:
                cur = self.current_sprint(item)
                in_active = spr is not None and cur is not None and cur.id == spr.id
                if item.type == "epic" or not (in_active or item.status != TODO):
                    continue
                if rng.random() < 0.18 * frac:
                    at = when()
                    nxt = {
                        TODO: IN_PROGRESS,
                        IN_PROGRESS: rng.choice((IN_REVIEW, DONE)),
                        IN_REVIEW: DONE,
                    }[item.status]
                    item.status_history = (*item.status_history, StatusChange(at, nxt))
                    if nxt == DONE:
                        item.resolution = RESOLUTION_DONE
                    touch(item, at)
                elif item.points is not None and rng.random() < 0.01 * frac:
                    at = when()
                    new = rng.choice([p for p in FIBONACCI if p != item.points])
                    item.points_history = (*item.points_history, PointsChange(at, new))
                    touch(item, at)
        # new items
        for sc in self.scopes:
            rate = max(1.0, len(self._scope_items[sc.path]) / 300.0) * frac
            n = int(rate) + (1 if rng.random() < rate - int(rate) else 0)
            spr = active.get(sc.cadence_id) if sc.cadence_id is not None else None
            for _ in range(n):
                at = when()
                item = self._new_item(rng, sc, rng.choice(("story", "story", "bug", "task")), at)
                # Into the sprint running at ``at`` only: one that ends inside this step is
                # closed at the step's end, and an item created after its end joining it
                # would be carried over "before" it existed.
                if spr is not None and rng.random() < 0.5 and at < spr.end:
                    item.sprints = (SprintMembership(spr.id, at, None),)
                self._add_item(item)
                cs.created.append(item.id)
                touch(item, at)
        # a new cross-project blocker
        if rng.random() < 0.5 * frac:
            a_scope, b_scope = rng.sample(self.scopes, 2)
            a_open, b_open = open_by_scope[a_scope.path], open_by_scope[b_scope.path]
            if a_open and b_open and a_scope.project != b_scope.project:
                blocked, blocker = rng.choice(a_open), rng.choice(b_open)
                at = when()
                via = "native" if a_scope.system == b_scope.system else "body"
                self._add_link(
                    Link(self._next_id("link"), "blocks", blocker.id, blocked.id, at, via)
                )
                touch(blocked, at)
                if via == "native":
                    touch(blocker, at)
        # releases ship (on time with p .6 on the due day, later with p .4 a day)
        for rel in self.releases.values():
            if rel.released_at is not None or _ts(_midnight(rel.due)) >= t1:
                continue
            if rng.random() < (0.6 if (_dt(t1).date() - rel.due).days <= 1 else 0.4) * frac:
                at = when()
                rel.released_at = at
                rel.updated = at
                cs.releases.add(rel.id)
        # a deletion now and then (never an item with links: keeps alerts simple)
        if rng.random() < 0.4 * frac:
            sc = rng.choice(self.scopes)
            cands = [
                i
                for i in open_by_scope[sc.path]
                if i.status == TODO and not self.links_of(i) and i.id not in cs.changed
            ]
            if cands:
                item = rng.choice(cands)
                at = when()
                item.deleted = at
                touch(item, at)
                cs.deleted.append(item.id)
        # sprint close / start at the boundaries inside this step
        for cad in self.cadences:
            for sid in list(cad.sprint_ids):
                spr = self.sprints[sid]
                if spr.state == "active" and _ts(spr.end) <= t1:
                    self._close_sprint(rng, cad, spr, cs, touch, t1)
                elif spr.state == "future" and _ts(spr.start) <= t1:
                    spr.state = "active"
                    spr.updated = spr.start if _ts(spr.start) > t0 else _dt(t0 + 1)
                    cs.sprints.add(spr.id)

    def _close_sprint(
        self,
        rng: random.Random,
        cad: Cadence,
        spr: Sprint,
        cs: ChangeSet,
        touch: Callable[[Item, datetime], None],
        t1: float,
    ) -> None:
        completed = _dt(min(_ts(spr.end) + rng.randint(60, 3000), t1))
        spr.completed, spr.state, spr.updated = completed, "closed", completed
        cs.sprints.add(spr.id)
        idx = cad.sprint_ids.index(spr.id)
        if idx + 1 >= len(cad.sprint_ids) - 1:  # keep two future sprints
            self._append_sprint(cad)
        nxt = self.sprints[cad.sprint_ids[idx + 1]]
        for item, m in self.sprint_members(spr):
            if m.removed is None and not item.is_done and self.current_sprint(item) is spr:
                item.sprints = (*item.sprints, SprintMembership(nxt.id, completed, None))
                touch(item, completed)

    def _append_sprint(self, cad: Cadence) -> Sprint:
        last = self.sprints[cad.sprint_ids[-1]]
        start = last.end + timedelta(hours=1)
        return self._make_sprint(cad, last.sequence + 1, start, created=self.now)

    def _make_sprint(self, cad: Cadence, seq: int, start: datetime, created: datetime) -> Sprint:
        sid = self._next_id("sprint")
        end = start + timedelta(days=SPRINT_DAYS) - timedelta(hours=1)
        if cad.system == "jira":
            native: int | str = sid
            name = f"{cad.owner} Sprint {seq}"
        elif cad.system == "gitlab":
            native, name = 500 + sid, f"Iteration {seq}"
        else:
            native, name = f"{(sid * 2654435761) & 0xFFFFFFFF:08x}", f"Iteration {seq}"
        state = "closed" if end <= self.now else ("active" if start <= self.now else "future")
        spr = Sprint(
            id=sid,
            native_id=native,
            cadence_id=cad.id,
            system=cad.system,
            sequence=seq,
            iid=seq,
            name=name,
            start=start,
            end=end,
            completed=None,
            state=state,
            goal="",
            updated=max(created, min(start, self.now)),
        )
        self.sprints[sid] = spr
        cad.sprint_ids.append(sid)
        return spr

    def _new_item(self, rng: random.Random, sc: Scope, typ: str, created: datetime) -> Item:
        """A fresh todo item created at ``created`` (used by ``advance``)."""
        pts = rng.choice(FIBONACCI) if typ != "epic" and rng.random() < 0.8 else None
        item = Item(
            id=self._next_id(sc.system),
            number=sc.next_number,
            scope=sc,
            type=typ,
            created=created,
            updated=created,
            status_history=(StatusChange(created, TODO),),
            points_history=(PointsChange(created, pts),),
            sprints=(),
            resolution=None,
            release_id=None,
            assignee=rng.randrange(len(self.people)),
            reporter=rng.randrange(len(self.people)),
            priority="medium",
            due=None,
            labels=(),
            parent_id=None,
            original_estimate_s=None,
            worklogs=(),
        )
        sc.next_number += 1
        return item


# --- generation -----------------------------------------------------------------------


_LABEL_CACHE: dict[tuple[str, ...], tuple[str, ...]] = {}


def _intern(labels: tuple[str, ...]) -> tuple[str, ...]:
    """Share identical label tuples between items (a large org has few distinct ones)."""
    return _LABEL_CACHE.setdefault(labels, labels)


def generate(seed: int = 1, size: str = "small", now: datetime | None = None) -> Organisation:
    """Generate the organisation for ``(seed, size)``; ``now`` defaults to 2026-11-01T12:00Z."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    now = (now or DEFAULT_NOW).astimezone(UTC).replace(microsecond=0)
    org = Organisation(seed, size, now)
    rng = random.Random(f"{seed}:{size}")
    _gen_people(org, rng)
    _gen_structure(org, rng)
    _gen_cadences(org, rng)
    _gen_releases(org, rng)
    _gen_items(org, rng, SIZES[size])
    _gen_links(org, rng)
    _finish_updated(org)
    _fit_budgets(org, random.Random(f"{seed}:{size}:budgets"))
    # Own random streams: the data above stays exactly as it was without these.
    _share_people(org, random.Random(f"{seed}:{size}:people"))
    _gen_benefits(org, random.Random(f"{seed}:{size}:benefits"))
    return org


def _share_people(org: Organisation, rng: random.Random) -> None:
    """Per program with two or more projects, two people shared between two of them: one
    carrying more in-progress work than their WIP limit of 2 (they work part-time for the
    program; two in-progress items in each project, and four to-do items in each of its
    open sprints, so they stay stretched as the weeks go by: ``shared_resource_contention``
    holds), and one
    within it (one item in each). Projects of one tool first, so the person is the same
    account without any alias; items of each project's own scope (not a companion repo).
    Only ``assignee`` of those items changes."""
    chosen: set[int] = set()
    taken: set[int] = set()
    for prog in sorted(org.programs, key=lambda p: p.key):
        projects = sorted(
            (org.project(k) for k in prog.project_keys),
            key=lambda p: (org.scope(p.scope_paths[0]).system != "jira", p.key),
        )
        if len(projects) < 2:
            continue
        pair = projects[:2]
        # a configured name also matches display names: only people whose name is unique
        names = Counter(p.name for p in org.people)
        pool = [p.id for p in org.people if p.id not in chosen and names[p.name] == 1]
        for person, per_project, todo in zip(rng.sample(pool, 2), (2, 1), (4, 0), strict=True):
            chosen.add(person)
            for proj in pair:
                home = org.scope_items(proj.scope_paths[0])  # not a companion repo
                items = [i for i in home if i.type != "epic" and i.id not in taken]
                doing = [i for i in items if i.status_category == "in_progress"]
                in_sprint = [i for i in doing if _sprint_is(org, i, "active")]
                others = [i for i in doing if not _sprint_is(org, i, "active")]
                picked = rng.sample(in_sprint, min(per_project, len(in_sprint)))
                short = per_project - len(picked)
                picked += rng.sample(others, min(short, len(others)))
                # to-do work of theirs in every sprint to come, so the stretch lasts
                by_sprint: dict[int, list[Item]] = defaultdict(list)
                for i in items:
                    sprint = org.current_sprint(i)
                    if i.status == TODO and sprint is not None and sprint.state != "closed":
                        by_sprint[sprint.id].append(i)
                for sprint_id in sorted(by_sprint):
                    planned = by_sprint[sprint_id]
                    picked += rng.sample(planned, min(todo, len(planned)))
                for item in picked:
                    item.assignee = person
                    taken.add(item.id)
            limit = 2 if todo else None
            org.shared_people.append(
                SharedPerson(person, prog.key, tuple(p.key for p in pair), limit)
            )


def _sprint_is(org: Organisation, item: Item, state: str) -> bool:
    sprint = org.current_sprint(item)
    return sprint is not None and sprint.state == state


#: (key suffix, name, unit, baseline, target, monetised)
_BENEFITS: tuple[tuple[str, str, str, float, float, bool], ...] = (
    ("conversion", "Checkout conversion", "%", 2.1, 3.0, True),
    ("cost-per-txn", "Cost per transaction", "EUR", 0.42, 0.3, True),
    ("p1-incidents", "P1 incidents per month", "incidents", 14.0, 4.0, True),
    ("onboarding", "Merchant onboarding time", "days", 12.0, 5.0, True),
    ("nps", "Net promoter score", "points", 31.0, 45.0, False),
    ("availability", "API availability", "%", 99.5, 99.95, True),
)


def _gen_benefits(org: Organisation, rng: random.Random) -> None:
    """Two benefits per program (one may have no money value), measured monthly
    (``Organisation.measurements``). Money per unit is set so that reaching every target
    returns 0.8–1.6 times the program's budget; the pace puts some ahead of the line and
    some behind it."""
    catalogue = list(_BENEFITS)
    rng.shuffle(catalogue)
    for n, prog in enumerate(sorted(org.programs, key=lambda p: p.key)):
        for suffix, name, unit, baseline, target, monetised in catalogue[2 * n : 2 * n + 2]:
            value = None
            if monetised:
                share = prog.budget * rng.uniform(0.4, 0.8)
                value = float(f"{share / abs(target - baseline):.2g}")
            org.benefits.append(
                Benefit(
                    program=prog.key,
                    key=f"{prog.key.lower()}-{suffix}",
                    name=name,
                    unit=unit,
                    baseline=baseline,
                    target=target,
                    target_date=prog.end,
                    value_per_unit=value,
                    pace=round(rng.uniform(0.6, 1.3), 2),
                )
            )


def _fit_budgets(org: Organisation, rng: random.Random) -> None:
    """Budgets in proportion to the work, so cost figures look like a real portfolio.

    A project whose items carry worklogs gets ``budget = hours the whole scope will take at
    the pace logged so far × hourly_rate × 0.85..1.2``: its CPI lands around 0.8–1.2 instead
    of a random budget that no amount of logged work matches. Programs get the sum of their
    projects. Projects without worklogs (GitHub/GitLab only) keep their generated budget.
    """
    for proj in org.projects:
        logged = total = done = 0.0
        for item in org.items_for(proj):
            if item.type == "epic":
                continue
            logged += sum(w.seconds for w in item.worklogs)
            total += item.points or 0
            if item.status_category == "done":
                done += item.points or 0
        if logged and done:
            hours_at_completion = logged / 3600 * total / done
            budget = hours_at_completion * proj.hourly_rate * rng.uniform(0.85, 1.2)
            proj.budget = float(max(1000, round(budget, -3)))
    for prog in org.programs:
        prog.budget = float(sum(p.budget for p in org.projects if p.program == prog.key))


def _gen_people(org: Organisation, rng: random.Random) -> None:
    n = {"small": 30, "medium": 80, "large": 250}[org.size]
    seen: set[str] = set()
    for pid in range(n):
        while True:
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            login = f"{first}.{last}".lower()
            if login not in seen:
                break
            login = f"{login}{pid}"
            if login not in seen:
                break
        seen.add(login)
        org.people.append(
            Person(
                id=pid,
                name=f"{first} {last}",
                email=f"{login}@acme.example",
                login=login,
                account_id=f"5b10a2844c2016{pid:010x}",
            )
        )


def _gen_structure(org: Organisation, rng: random.Random) -> None:
    n_programs = rng.choice((2, 3))
    by_system = {s: [c for c in _CATALOGUE if c[2] == s] for s in ("jira", "github", "gitlab")}
    chosen = []
    for cands in by_system.values():  # at least two projects per system
        chosen += rng.sample(cands, 2)
    rest = [c for c in _CATALOGUE if c not in chosen]
    chosen += rng.sample(rest, rng.randint(0, len(rest)))
    chosen.sort(key=lambda c: _CATALOGUE.index(c))
    if not any(c[4] for c in chosen):  # at least one project spanning two systems
        chosen[0] = _CATALOGUE[0]
    for key, name in _PROGRAMS[:n_programs]:
        start = date(2026, 1, 5)
        org.programs.append(
            Program(
                key=key,
                name=name,
                budget=float(rng.randrange(4, 13) * 100_000),
                start=start,
                end=date(2026, 12, rng.randint(11, 18)),
            )
        )
    # GitLab groups: acme > acme/platform, acme/data
    gl_root = GitLabGroup(id=100, path=GITLAB_GROUP, name="Acme", parent_id=None)
    org.gitlab_groups.append(gl_root)
    for cat in chosen:
        key, name, system, path, companion = cat
        prog = org.programs[_CATALOGUE.index(cat) % n_programs]
        proj = Project(
            key=key,
            name=name,
            program=prog.key,
            budget=float(rng.randrange(8, 30) * 10_000),
            start=date(2026, 1, 5),
            end=date(2026, rng.randint(8, 11), 28),
            hourly_rate=float(rng.choice((85, 90, 95, 110, 120))),
        )
        prog.project_keys.append(key)
        org.projects.append(proj)
        for spath, ssys in ((path, system), (companion, "github")):
            if spath is None:
                continue
            ns_id = None
            if ssys == "gitlab":
                ns_path = spath.rsplit("/", 1)[0]
                grp = next((g for g in org.gitlab_groups if g.path == ns_path), None)
                if grp is None:
                    grp = GitLabGroup(
                        id=100 + len(org.gitlab_groups),
                        path=ns_path,
                        name=ns_path.split("/")[-1].title(),
                        parent_id=gl_root.id,
                    )
                    org.gitlab_groups.append(grp)
                ns_id = grp.id
            native = {
                "jira": 10_000 + len(org.scopes),
                "github": 700_000_000 + len(org.scopes),
                "gitlab": 2_000 + len(org.scopes),
            }[ssys]
            sc = Scope(
                system=ssys,
                path=spath,
                native_id=native,
                name=name if spath == path else f"{name} SDK",
                project=key,
                namespace_id=ns_id,
            )
            org.scopes.append(sc)
            org._scope_by_path[spath] = sc
            org._scope_items[spath] = []
            proj.scope_paths.append(spath)


def _gen_cadences(org: Organisation, rng: random.Random) -> None:
    """Jira: one scrum board per Jira project; GitLab: one group cadence; GitHub: the
    Projects v2 iteration field. Each has closed sprints, one active, two future."""
    specs: list[tuple[str, int, str, str, tuple[str, ...]]] = []
    for sc in org.scopes_of("jira"):
        specs.append(("jira", 10 + len(specs), f"{sc.path} board", sc.path, (sc.path,)))
    gh = tuple(s.path for s in org.scopes_of("github"))
    gl = tuple(s.path for s in org.scopes_of("gitlab"))
    specs.append(("gitlab", 30, f"{GITLAB_GROUP} iterations", GITLAB_GROUP, gl))
    specs.append(
        ("github", GITHUB_PROJECT_NUMBER, "Iteration", f"{GITHUB_ORG}/{GITHUB_PROJECT_NUMBER}", gh)
    )
    for n_cad, (system, native, name, owner, paths) in enumerate(specs, start=1):
        cad = Cadence(
            id=n_cad, system=system, native_id=native, name=name, owner=owner, scope_paths=paths
        )
        org.cadences.append(cad)
        for p in paths:
            org.scope(p).cadence_id = cad.id
        # phase: teams start on different weekdays of the first fortnight
        start = HISTORY_START + timedelta(days=rng.randrange(0, 10), hours=1)
        seq = 1
        while True:
            spr = org._make_sprint(cad, seq, start, created=start - timedelta(days=3))
            if spr.state == "closed":
                spr.completed = spr.end + timedelta(seconds=rng.randint(60, 3000))
                spr.updated = spr.completed
            seq += 1
            start = spr.end + timedelta(hours=1)
            if (
                spr.state == "future"
                and sum(org.sprints[s].state == "future" for s in cad.sprint_ids) >= 2
            ):
                break
        for sid in cad.sprint_ids:
            if rng.random() < 0.5:
                org.sprints[sid].goal = rng.choice(
                    ("Refunds", "Stabilise", "Beta launch", "Tech debt", "Performance", "GA")
                )


def _gen_releases(org: Organisation, rng: random.Random) -> None:
    """Roughly every six weeks per scope; ~1/3 late; one or two moved due dates."""
    now_d = org.now.date()
    for sc in org.scopes:
        due = date(2026, 2, 6) + timedelta(days=rng.randrange(0, 21))
        minor = 0
        while True:
            rid = org._next_id("release")
            prev_due = due - timedelta(days=42)
            created = datetime.combine(prev_due, datetime.min.time(), UTC) + timedelta(hours=10)
            released_at = None
            rel_day = due + timedelta(
                days=rng.randint(-3, 0) if rng.random() < 0.62 else rng.randint(1, 12)
            )
            if rel_day < now_d:
                released_at = datetime.combine(rel_day, datetime.min.time(), UTC) + timedelta(
                    hours=rng.randint(9, 18), minutes=rng.randint(0, 59)
                )
            native = {"jira": 10_000 + rid, "github": 1_000_000 + rid, "gitlab": 900 + rid}
            rel = Release(
                id=rid,
                native_id=native[sc.system],
                number=minor + 1,
                scope_path=sc.path,
                system=sc.system,
                name=f"v1.{minor}",
                tag=f"v1.{minor}.0",
                start=prev_due,
                due=due,
                original_due=due,
                due_changes=[],
                released_at=released_at,
                created=min(created, org.now),
                updated=min(released_at or created, org.now),
            )
            org.releases[rid] = rel
            minor += 1
            due += timedelta(days=42)
            if due > now_d + timedelta(days=60):
                break
    # move the due date of one or two open or late releases (the plan slipped)
    cands = [
        r
        for r in org.releases.values()
        if r.original_due > now_d - timedelta(days=90) and (r.on_time is not True)
    ]
    for rel in rng.sample(cands, min(len(cands), rng.choice((1, 2)))):
        new_due = rel.due + timedelta(days=rng.choice((7, 14)))
        changed = datetime.combine(rel.due - timedelta(days=5), datetime.min.time(), UTC)
        changed = min(changed + timedelta(hours=11), org.now)
        rel.due_changes.append((changed, rel.due, new_due))
        rel.due = new_due
        rel.updated = max(rel.updated, changed)


def _gen_items(org: Organisation, rng: random.Random, total: int) -> None:
    weights = [
        0.45 if "/" in sc.path and sc.path.endswith(("-sdk", "-ui")) else 1.0 for sc in org.scopes
    ]
    wsum = sum(weights)
    now_ts = _ts(org.now)
    rel_by_scope = {sc.path: sorted(org.releases_of(sc), key=lambda r: r.due) for sc in org.scopes}
    for sc, w in zip(org.scopes, weights, strict=True):
        n = max(20, round(total * w / wsum))
        cad = org.cadence(sc.cadence_id) if sc.cadence_id is not None else None
        sprints = org.sprints_of(cad) if cad else []
        start_ts = _ts(HISTORY_START)
        plan = _SprintPlan(sprints)
        rels = [
            (_ts(r.released_at or org.now), r.released_at is None, r.id)
            for r in rel_by_scope[sc.path]
        ]
        epics: list[Item] = []
        stories: list[Item] = []
        # creation times: sorted so numbers follow creation order
        created_list = sorted(rng.uniform(start_ts - 10 * DAY, now_ts - 3600) for _ in range(n))
        for created_ts in created_list:
            typ = _pick_type(rng, sc.system)
            if typ == "subtask" and not stories:
                typ = "task"
            item = _gen_one(org, rng, sc, typ, created_ts, plan, now_ts, rels)
            if typ == "epic":
                epics.append(item)
            elif typ == "story":
                stories.append(item)
                if epics and rng.random() < 0.7:
                    item.parent_id = rng.choice(epics[-8:]).id
            elif typ == "subtask":
                item.parent_id = rng.choice(stories[-20:]).id
            org._add_item(item)


def _pick_type(rng: random.Random, system: str) -> str:
    r = rng.random()
    if r < 0.03:
        return "epic" if system != "gitlab" else "story"
    if r < 0.06:
        return "incident"
    if r < 0.10:
        return "subtask" if system == "jira" else "task"
    if r < 0.30:
        return "bug"
    if r < 0.45:
        return "task"
    return "story"


class _SprintPlan:
    """A cadence's sprint times as floats, for fast lookups while generating."""

    __slots__ = ("sprints", "starts", "ends", "completed", "closed")

    def __init__(self, sprints: list[Sprint]) -> None:
        self.sprints = sprints
        self.starts = [_ts(s.start) for s in sprints]
        self.ends = [_ts(s.end) for s in sprints]
        self.completed = [_ts(s.completed) if s.completed else 0.0 for s in sprints]
        self.closed = [s.state == "closed" for s in sprints]


def _gen_one(
    org: Organisation,
    rng: random.Random,
    sc: Scope,
    typ: str,
    created_ts: float,
    plan_: _SprintPlan,
    now_ts: float,
    releases: list[tuple[float, bool, int]],
) -> Item:
    """One item's whole life: plan, sprint memberships, status flow, estimates, worklogs."""
    created = _dt(created_ts)
    events: list[tuple[float, str]] = [(created_ts, TODO)]
    members: list[SprintMembership] = []
    plannable = typ not in ("epic", "subtask")
    sprints, starts, ends = plan_.sprints, plan_.starts, plan_.ends
    cycle = min(40.0, max(0.2, rng.lognormvariate(math.log(4.0), 0.7))) * DAY
    start_ts: float | None = None
    done_ts: float | None = None
    plan = rng.random()
    spr_idx = None
    if plannable and sprints and plan > 0.18:
        # next sprint after creation (committed), or 20%: added to the active one mid-sprint
        k0 = bisect.bisect_left(starts, created_ts)  # first sprint starting after creation
        spr_idx = k0 if k0 < len(starts) else None
        mid = k0 - 1 if k0 > 0 and created_ts < ends[k0 - 1] else None
        if mid is not None and (rng.random() < 0.2 or spr_idx is None):
            spr_idx = mid
    if spr_idx is not None:
        s_start = starts[spr_idx]
        added_ts = max(created_ts + 60, s_start - rng.uniform(0, 2 * DAY))
        if added_ts > now_ts:
            added_ts = max(created_ts + 1, now_ts - 1)
        if rng.random() < 0.07 and s_start < now_ts:
            # removed before close, back to the backlog, never started (a closed sprint's
            # issues are frozen: nothing leaves it after its close)
            close = plan_.completed[spr_idx] if plan_.closed[spr_idx] else now_ts
            removed = min(
                now_ts - 1, close - 1, max(added_ts, s_start) + rng.uniform(0.5, 10) * DAY
            )
            members.append(SprintMembership(sprints[spr_idx].id, _dt(added_ts), _dt(removed)))
        else:
            start_ts = max(added_ts, s_start) + rng.uniform(0, 0.6) * SPRINT_DAYS * DAY
            done_ts = start_ts + cycle
            k = spr_idx
            while True:
                members.append(SprintMembership(sprints[k].id, _dt(added_ts), None))
                if not plan_.closed[k] or done_ts < ends[k] or k + 1 >= len(sprints):
                    break
                added_ts = plan_.completed[k]  # carried over at close
                k += 1
    elif typ != "subtask" and rng.random() < 0.55:
        start_ts = created_ts + rng.expovariate(1 / (8 * DAY))
        done_ts = start_ts + cycle * (3 if typ == "epic" else 1)
    elif typ == "subtask":
        start_ts = created_ts + rng.uniform(0, 3) * DAY
        done_ts = start_ts + cycle / 2
    resolution = None
    if start_ts is not None and start_ts < now_ts:
        events.append((start_ts, IN_PROGRESS))
        assert done_ts is not None
        if rng.random() < 0.5:
            review = start_ts + 0.7 * (done_ts - start_ts)
            if review < now_ts:
                events.append((review, IN_REVIEW))
        if done_ts < now_ts:
            events.append((done_ts, DONE))
            resolution = RESOLUTION_WONT if rng.random() < 0.04 else RESOLUTION_DONE
            if rng.random() < 0.05:  # reopened, maybe done again
                reopen = done_ts + rng.uniform(0.5, 5) * DAY
                if reopen < now_ts:
                    events.append((reopen, IN_PROGRESS))
                    resolution = None
                    again = reopen + rng.uniform(1, 6) * DAY
                    if again < now_ts:
                        events.append((again, DONE))
                        resolution = RESOLUTION_DONE
    status_history = tuple(StatusChange(_dt(ts), st) for ts, st in events)
    final = events[-1][1]
    # estimates
    pts_hist: list[PointsChange] = []
    if typ in ("epic", "subtask") or rng.random() < 0.12:
        pts_hist.append(PointsChange(created, None))
        if typ not in ("epic", "subtask") and rng.random() < 0.5:
            at = created_ts + rng.uniform(0.1, 3) * DAY
            if at < now_ts:
                pts_hist.append(PointsChange(_dt(at), rng.choice(FIBONACCI)))
    else:
        pts_hist.append(PointsChange(created, rng.choice(FIBONACCI)))
        if rng.random() < 0.12:  # re-estimate, usually before work started
            hi = min(now_ts, start_ts + cycle / 2 if start_ts is not None else now_ts)
            at = rng.uniform(created_ts, hi)
            if created_ts < at < now_ts:
                cur = pts_hist[-1].points
                pts_hist.append(
                    PointsChange(_dt(at), rng.choice([p for p in FIBONACCI if p != cur]))
                )
    points = pts_hist[-1].points
    # release: done items -> first release shipped after done; open planned -> first open one
    release_id = None
    if typ not in ("epic", "subtask") and releases and rng.random() < 0.8:
        if final == DONE:
            rdone = events[-1][0]
            release_id = next((rid for ts, _, rid in releases if ts >= rdone), None)
        elif members:
            release_id = next((rid for _, is_open, rid in releases if is_open), None)
    priority = PRIORITIES[min(4, max(0, int(rng.gauss(2, 0.9))))]
    if typ == "incident":
        priority = rng.choice(("highest", "high"))
    extra: tuple[str, ...] = ()
    if rng.random() < 0.4:
        extra = (rng.choice(_LABELS),)
    labels = _intern(extra)
    due = None
    if rng.random() < 0.15:
        due = (created + timedelta(days=rng.randint(7, 60))).date()
    people = len(org.people)
    base = (sc.native_id * 7) % people
    assignee = (base + rng.randrange(10)) % people if rng.random() < 0.9 else None
    if final == TODO and rng.random() < 0.4:
        assignee = None
    reporter = rng.randrange(people)
    # Jira time tracking
    orig_est = None
    worklogs: tuple[Worklog, ...] = ()
    if sc.system == "jira" and typ != "epic":
        if rng.random() < 0.6:
            orig_est = int((points or 2) * 4 * 3600)
        if start_ts is not None and start_ts < now_ts:
            hi = min(now_ts - 3600, events[-1][0] if final == DONE else now_ts - 3600)
            wl = []
            for _ in range(rng.randint(1, 3)):
                st = rng.uniform(start_ts, max(start_ts, hi))
                wl.append(
                    Worklog(
                        org._next_id("worklog"),
                        assignee if assignee is not None else reporter,
                        _dt(st),
                        rng.randint(1, 16) * 1800,
                    )
                )
            worklogs = tuple(sorted(wl, key=lambda w: w.started))
    item = Item(
        id=org._next_id(sc.system),
        number=sc.next_number,
        scope=sc,
        type=typ,
        created=created,
        updated=created,
        status_history=status_history,
        points_history=tuple(pts_hist),
        sprints=tuple(members),
        resolution=resolution,
        release_id=release_id,
        assignee=assignee,
        reporter=reporter,
        priority=priority,
        due=due,
        labels=labels,
        parent_id=None,
        original_estimate_s=orig_est,
        worklogs=worklogs,
    )
    sc.next_number += 1
    return item


def _gen_links(org: Organisation, rng: random.Random) -> None:
    """Blocks inside and across projects and tools, relates/duplicates, and cycles."""
    now_ts = _ts(org.now)
    pools = {
        sc.path: [i for i in org._scope_items[sc.path] if i.type not in ("epic", "subtask")]
        for sc in org.scopes
    }
    open_pools = {p: [i for i in items if not i.is_done] for p, items in pools.items()}

    def link(kind: str, frm: Item, to: Item) -> None:
        lo = max(_ts(frm.created), _ts(to.created))
        at = _dt(rng.uniform(lo, min(now_ts - 60, lo + 10 * DAY)))
        via = "native" if frm.scope.system == to.scope.system else "body"
        if via == "body":  # written in the blocked item's body when it was created
            at = to.created if to.created > frm.created else _dt(lo)
        org._add_link(Link(org._next_id("link"), kind, frm.id, to.id, at, via))

    total = sum(len(v) for v in pools.values())
    scopes = org.scopes
    for sc in scopes:  # inside one scope
        items = pools[sc.path]
        for _ in range(max(2, len(items) * 3 // 100)):
            a, b = rng.sample(items, 2)
            link("blocks", a, b)
        for _ in range(max(1, len(items) // 100)):
            a, b = rng.sample(items, 2)
            link("relates", a, b)
        for _ in range(max(1, len(items) * 3 // 1000)):
            a, b = rng.sample(items, 2)
            link("duplicates", a, b)
    # across projects, same tool (native links) and across tools (body references)
    for _ in range(max(6, total // 120)):
        sa, sb = rng.sample(scopes, 2)
        if sa.project == sb.project or not open_pools[sb.path]:
            continue
        link("blocks", rng.choice(pools[sa.path]), rng.choice(open_pools[sb.path]))
    jira = [s for s in scopes if s.system == "jira"]
    others = [s for s in scopes if s.system != "jira"]
    for _ in range(max(4, total // 400)):  # "Blocked by PAY-12" in GitHub/GitLab bodies
        sj, so = rng.choice(jira), rng.choice(others)
        if open_pools[so.path] and open_pools[sj.path]:
            link("blocks", rng.choice(open_pools[sj.path]), rng.choice(open_pools[so.path]))
    # dependency cycles across projects among open items (one same-tool, one cross-tool)
    by_project: dict[str, list[Scope]] = {}
    for s in scopes:
        if open_pools[s.path]:
            by_project.setdefault(s.project, []).append(s)
    same = [s for s in jira if open_pools[s.path]]
    cycle_sets = []
    if len(same) >= 2:
        cycle_sets.append(rng.sample(same, min(3, len(same))))
    mixed = [rng.choice(v) for v in by_project.values()]
    rng.shuffle(mixed)
    if len(mixed) >= 3:
        cycle_sets.append(mixed[:3])
    for ring in cycle_sets:
        nodes = [rng.choice(open_pools[s.path]) for s in ring]
        for k, node in enumerate(nodes):
            link("blocks", node, nodes[(k + 1) % len(nodes)])


def _finish_updated(org: Organisation) -> None:
    """``updated`` = latest change of anything shown on the item."""
    for item in org.items.values():
        last = max(item.status_history[-1].at, item.points_history[-1].at)
        for m in item.sprints:
            last = max(last, m.removed or m.added)
        for w in item.worklogs:
            last = max(last, w.started + timedelta(seconds=w.seconds))
        for lk in org.links_of(item):
            if lk.via == "native" or lk.to_id == item.id:
                last = max(last, lk.created)
        item.updated = min(max(item.updated, last), org.now)
