"""Raw GitHub payloads -> normalized warehouse records.

Pure functions of their arguments (no I/O, no clock): tested on DevLake's recorded GitHub
payloads and GitHub's own examples without HTTP, and re-applied by ``programview remap``.

An issue's REST payload does not carry everything, so the ``issues`` stream adds, under the
``"programview"`` key (``normalize.ANNOTATION``):

* ``project``: the issue's values in the configured Projects v2 project (``points``,
  ``status``, ``iteration`` ``{id, title, start, duration}``, ``due``), ``None`` when the issue
  is on none of them;
* ``timeline``: ``[[at, "labeled"|"unlabeled"|"closed"|"reopened", label or state reason]]``
  (GraphQL timeline: status and estimate history);
* ``blocked_by``: keys of the issues it is blocked by (``/dependencies/blocked_by``);
* observations kept across syncs by the stream's ``combine`` (GitHub keeps no history for
  them): ``first_in_progress_at``, ``iterations`` ``{id: [added_at, removed_at]}`` and
  ``estimates`` ``[[at, from, to]]`` (changes of the Projects number field).

Pull requests come through the same listing; they are never work items, but "blocked by"
references in their text make the issues they close blocked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from programview.errors import MappingError
from programview.normalize import (
    ANNOTATION,
    DEFAULT_LABEL_TYPES,
    DEFAULT_TYPE_NAMES,
    blocking_references,
    category_from_labels,
    label_list,
    parse_date,
    parse_points,
    parse_time,
    points_from_labels,
    strip_nul,
)
from programview.sync.connector import Record, Replace
from programview.warehouse.models import row_id

Raw = dict[str, Any]
Out = list[Record | Replace]

PACIFIC = ZoneInfo("America/Los_Angeles")
#: Closed for one of these reasons: done, but not delivered (no delivered points).
NOT_DELIVERED_REASONS = frozenset({"not_planned", "duplicate"})
_PRIORITY = re.compile(r"^(?:priority|prio)\s*(?:::|:|/|=|-)\s*(.+)$", re.IGNORECASE)
_CLOSES = re.compile(
    r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\b\s*:?\s*"
    r"((?:[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+)?#\d+|https?://\S+/issues/\d+)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class GitHubSettings:
    """What the mapping needs beyond the payload (from the source config)."""

    source: str
    in_progress: frozenset[str] = frozenset({"in progress", "in review"})
    issue_types: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TYPE_NAMES))
    label_types: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LABEL_TYPES))


# --- keys ---------------------------------------------------------------------------------


def repo_of(raw: Raw, scope: str) -> str:
    """``owner/repo`` (lower case) of an issue: from ``repository_url``, else the scope."""
    url = raw.get("repository_url")
    if isinstance(url, str) and "/repos/" in url:
        return url.split("/repos/", 1)[1].strip("/").lower()
    return scope.lower()


def issue_key(repo: str, number: Any) -> str:
    return f"{repo.lower()}#{int(number)}"


def key_from_url(url: Any) -> str | None:
    """``…/repos/o/r/issues/12`` (API) or ``…/o/r/issues/12`` (web) -> ``o/r#12``."""
    if not isinstance(url, str) or "/issues/" not in url:
        return None
    path = urlsplit(url).path
    if "/repos/" in path:
        path = path.split("/repos/", 1)[1]
    head, _, number = path.strip("/").rpartition("/issues/")
    if not number.isdigit():
        return None
    parts = head.split("/")
    return issue_key("/".join(parts[-2:]), number) if len(parts) >= 2 else None


def is_pull_request(raw: Raw) -> bool:
    return isinstance(raw, dict) and "pull_request" in raw


# --- small readers ------------------------------------------------------------------------


def label_names(raw: Raw) -> list[str]:
    """Label names (label objects or names; see ``normalize.label_list``)."""
    return label_list(raw.get("labels"), name_key="name")


def due_on_date(value: Any) -> date | None:
    """A milestone's ``due_on`` (a date GitHub stores as US-Pacific midnight, i.e.
    ``T07:00:00Z`` or ``T08:00:00Z``) -> that Pacific calendar date."""
    moment = parse_time(value)
    if moment is None:
        return None
    return moment.replace(tzinfo=ZoneInfo("UTC")).astimezone(PACIFIC).date()


def _login(user: Any) -> str | None:
    return user.get("login") if isinstance(user, dict) else None


def _person_id(user: Any, source: str) -> str | None:
    """The ``people.id`` of a GitHub user (by its numeric id: a login can be renamed)."""
    if not isinstance(user, dict) or user.get("id") is None:
        return None
    return row_id(source, f"user/{user['id']}")


def _person(user: Any, source: str) -> Record | None:
    """A ``people`` row. GitHub gives no e-mail on an issue's users; the login is what a
    ``[[people]]`` alias (``"github:LOGIN"`` or the bare login) matches."""
    person_id = _person_id(user, source)
    if person_id is None:
        return None
    return Record(
        "people",
        {
            "id": person_id,
            "source_name": source,
            "native_id": str(user["id"]),
            "display_name": user.get("login"),
            "login": user.get("login"),
        },
    )


def _priority(labels: Iterable[str]) -> str | None:
    for label in labels:
        m = _PRIORITY.match(label.strip())
        if m:
            return m.group(1).strip()
    return None


def type_of(raw: Raw, labels: list[str], settings: GitHubSettings) -> tuple[str, str | None]:
    """(type category, raw type): the issue's ``type`` wins, else labels, else ``other``."""
    issue_type = raw.get("type")
    name = issue_type.get("name") if isinstance(issue_type, dict) else None
    if isinstance(name, str) and name.strip().lower() in settings.issue_types:
        return settings.issue_types[name.strip().lower()], name
    category = category_from_labels(labels, settings.label_types)  # type: ignore[arg-type]
    if category is not None:
        label = next(
            (x for x in labels if settings.label_types.get(x.strip().lower()) == category), None
        )
        return category, name or label
    return "other", name


def status_of(
    raw: Raw, labels: list[str], project: Raw | None, settings: GitHubSettings
) -> tuple[str, str]:
    """(status category, raw status): closed -> done; open -> in progress when the Projects
    status or a label is one of ``in_progress``, else todo."""
    board = project.get("status") if isinstance(project, dict) else None
    if raw.get("state") == "closed":
        return "done", board or "closed"
    names = {x.strip().lower() for x in labels}
    if board and board.strip().lower() in settings.in_progress:
        return "in_progress", board
    hit = next((x for x in labels if x.strip().lower() in settings.in_progress), None)
    if hit is not None or names & settings.in_progress:
        return "in_progress", board or hit or "open"
    return "todo", board or "open"


# --- history ------------------------------------------------------------------------------


def _timeline(notes: Raw) -> list[tuple[datetime, str, str | None]]:
    out = []
    for entry in notes.get("timeline") or []:
        if not isinstance(entry, list | tuple) or len(entry) < 2:
            raise MappingError(f"unreadable timeline entry {entry!r}")
        at = parse_time(entry[0])
        if at is None:
            continue
        value = entry[2] if len(entry) > 2 else None
        out.append((at, str(entry[1]), value if isinstance(value, str) or value is None else None))
    return sorted(out, key=lambda e: (e[0], e[1]))


def _label_history(
    events: list[tuple[datetime, str, str | None]],
) -> list[tuple[datetime, frozenset[str]]]:
    """The issue's label set after each moment labels changed (events at one moment together)."""
    labels: set[str] = set()
    out: list[tuple[datetime, frozenset[str]]] = []
    for at, kind, value in events:
        if kind not in ("labeled", "unlabeled") or value is None:
            continue
        if kind == "labeled":
            labels.add(value)
        else:
            labels.discard(value)
        if out and out[-1][0] == at:
            out[-1] = (at, frozenset(labels))
        else:
            out.append((at, frozenset(labels)))
    return out


def estimate_rows(
    item_id: str,
    created: datetime | None,
    events: list[tuple[datetime, str, str | None]],
    notes: Raw,
) -> list[dict[str, Any]]:
    """Re-estimates: from ``points:N`` label changes when the timeline shows any (exact);
    else the observed changes of the Projects number field. A value set at creation is the
    starting estimate, not a change."""
    history = _label_history(events)
    values = [(at, points_from_labels(sorted(labels))) for at, labels in history]
    if any(v is not None for _, v in values):
        rows: list[dict[str, Any]] = []
        previous: float | None = None
        for at, value in values:
            if value != previous and (created is None or at > created):
                rows.append(
                    {
                        "work_item_id": item_id,
                        "change_id": f"label:{at.isoformat()}",
                        "changed_at": at,
                        "from_points": previous,
                        "to_points": value,
                    }
                )
            previous = value
        return rows
    rows = []
    observed_at: datetime | None
    for entry in notes.get("estimates") or []:
        if not isinstance(entry, list | tuple) or len(entry) != 3:
            raise MappingError(f"unreadable estimate observation {entry!r}")
        observed_at = parse_time(entry[0])
        if observed_at is None:
            continue
        rows.append(
            {
                "work_item_id": item_id,
                "change_id": f"observed:{observed_at.isoformat()}",
                "changed_at": observed_at,
                "from_points": parse_points(entry[1]),
                "to_points": parse_points(entry[2]),
            }
        )
    return rows


def status_rows(
    item_id: str,
    created: datetime | None,
    events: list[tuple[datetime, str, str | None]],
    in_progress: frozenset[str],
    first_in_progress: datetime | None,
) -> tuple[list[dict[str, Any]], datetime | None]:
    """Status transitions (closed, reopened, an in-progress label, the first time it was
    seen in progress) and ``started_at``: the first move to in progress shown by the timeline
    (an in-progress label), else the sync that first saw it in progress."""
    moves: list[tuple[datetime, str, str, str]] = []  # at, kind, to_status, to_category
    started: datetime | None = None
    for at, kind, value in events:
        if kind == "labeled" and value and value.strip().lower() in in_progress:
            moves.append((at, f"labeled:{value}", value, "in_progress"))
            started = started or at
        elif kind == "closed":
            moves.append((at, "closed", "closed", "done"))
        elif kind == "reopened":
            moves.append((at, "reopened", "open", "todo"))
    if first_in_progress is not None and started is None:
        started = first_in_progress
        moves.append((first_in_progress, "seen_in_progress", "in progress", "in_progress"))
    moves.sort(key=lambda m: (m[0], m[1]))
    rows = []
    category, status = "todo", "open"
    for at, kind, to_status, to_category in moves:
        rows.append(
            {
                "work_item_id": item_id,
                "change_id": f"{kind}:{at.isoformat()}"[:100],
                "changed_at": at,
                "from_status": status,
                "to_status": to_status,
                "from_category": category,
                "to_category": to_category,
            }
        )
        category, status = to_category, to_status
    if started is not None and created is not None and started < created:
        started = created
    return rows, started


def _iteration_rows(item_id: str, repo: str, source: str, notes: Raw) -> list[Record]:
    out = []
    for iteration_id, span in sorted((notes.get("iterations") or {}).items()):
        if not isinstance(span, list | tuple) or len(span) != 2:
            raise MappingError(f"unreadable iteration membership {span!r}")
        out.append(
            Record(
                "sprint_items",
                {
                    "sprint_id": row_id(source, sprint_native_id(iteration_id, repo)),
                    "work_item_id": item_id,
                    "added_at": parse_time(span[0]),
                    "removed_at": parse_time(span[1]),
                },
            )
        )
    return out


def sprint_native_id(iteration_id: str, repo: str) -> str:
    """One sprint per (iteration, repository): a Projects iteration shared by several
    repositories is counted for each repository's own project."""
    return f"{iteration_id}@{repo.lower()}"


# --- issues -------------------------------------------------------------------------------


def map_issue(raw: Raw, scope: str, settings: GitHubSettings) -> Out:
    """One issue (REST payload + annotation) -> its work item and child rows; a pull
    request -> only the dependencies its text states for the issues it closes."""
    if not isinstance(raw, dict):
        raise MappingError(f"issue payload is a {type(raw).__name__}, not an object")
    if is_pull_request(raw):
        return map_pull_request(raw, scope, settings)
    source = settings.source
    try:
        native = str(int(raw["id"]))
        number = int(raw["number"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MappingError(f"issue payload lacks a usable id/number: {exc!r}") from None
    repo = repo_of(raw, scope)
    key = issue_key(repo, number)
    item_id = row_id(source, native)
    notes = raw.get(ANNOTATION) or {}
    if not isinstance(notes, dict):
        raise MappingError(f"unreadable {ANNOTATION} annotation: {notes!r}")
    project = notes.get("project") if isinstance(notes.get("project"), dict) else None
    labels = label_names(raw)
    category, raw_type = type_of(raw, labels, settings)
    status, raw_status = status_of(raw, labels, project, settings)
    created = parse_time(raw.get("created_at"))
    events = _timeline(notes)
    changes, started = status_rows(
        item_id,
        created,
        events,
        settings.in_progress,
        parse_time(notes.get("first_in_progress_at")),
    )
    points = parse_points(project.get("points")) if project else None
    if points is None:
        points = points_from_labels(labels)
    reason = str(raw.get("state_reason") or "").lower()
    assignees = [a for a in raw.get("assignees") or [] if isinstance(a, dict)]
    if not assignees and isinstance(raw.get("assignee"), dict):
        assignees = [raw["assignee"]]
    title = raw.get("title")
    out: Out = [
        Record(
            "work_items",
            {
                "id": item_id,
                "source_name": source,
                "scope": scope,
                "native_id": native,
                "item_key": key,
                "url": raw.get("html_url"),
                "title": strip_nul(title) if isinstance(title, str) else None,
                "raw_type": raw_type,
                "type_category": category,
                "raw_status": raw_status,
                "status_category": status,
                "priority": _priority(labels),
                "story_points": points,
                "assignee": _login(assignees[0]) if assignees else None,
                "assignee_id": _person_id(assignees[0], source) if assignees else None,
                "reporter": _login(raw.get("user")),
                "created_at": created,
                "updated_at": parse_time(raw.get("updated_at")),
                "started_at": started,
                "resolved_at": parse_time(raw.get("closed_at")) if status == "done" else None,
                "due_date": parse_date(project.get("due")) if project else None,
                "parent_key": key_from_url(raw.get("parent_issue_url")),
                "labels": ",".join(x.replace(",", " ") for x in labels) or None,
                "not_delivered": status == "done" and reason in NOT_DELIVERED_REASONS,
                "is_deleted": False,
                "deleted_at": None,
            },
        )
    ]
    for user in (raw.get("user"), *assignees):
        person = _person(user, source)
        if person is not None:
            out.append(person)

    out.append(Replace("status_changes", {"work_item_id": item_id}))
    out.extend(Record("status_changes", r) for r in changes)
    out.append(Replace("estimate_changes", {"work_item_id": item_id}))
    out.extend(
        Record("estimate_changes", r) for r in estimate_rows(item_id, created, events, notes)
    )
    out.append(Replace("sprint_items", {"work_item_id": item_id}))
    out.extend(_iteration_rows(item_id, repo, source, notes))

    out.append(Replace("work_item_releases", {"work_item_id": item_id}))
    milestone = raw.get("milestone")
    if isinstance(milestone, dict) and milestone.get("id") is not None:
        out.append(
            Record(
                "work_item_releases",
                {
                    "work_item_id": item_id,
                    "release_id": row_id(source, f"milestone/{milestone['id']}"),
                },
            )
        )

    out.append(Replace("dependencies", {"found_in": item_id}))
    deps: dict[tuple[str, str, str], str] = {}
    parent = key_from_url(raw.get("parent_issue_url"))
    if parent:
        deps.setdefault((parent, key, "parent"), "github_sub_issue")
    for blocker in notes.get("blocked_by") or []:
        if isinstance(blocker, str) and blocker != key:
            deps.setdefault((key, blocker, "blocks"), "github_dependency")
    text = "\n".join(t for t in (title, raw.get("body")) if isinstance(t, str))
    for ref in blocking_references(text, repo=repo):
        if ref.key != key:
            deps.setdefault((key, ref.key, "blocks"), "text")
    out.extend(_dependency_rows(item_id, source, deps))
    return out


def _dependency_rows(found_in: str, source: str, deps: Mapping[tuple[str, str, str], str]) -> Out:
    return [
        Record(
            "dependencies",
            {
                "found_in": found_in,
                "blocked_key": blocked,
                "blocking_key": blocking,
                "link_kind": kind,
                "source_name": source,
                "origin": origin,
            },
        )
        for (blocked, blocking, kind), origin in deps.items()
    ]


def closed_issues(text: str, repo: str) -> list[str]:
    """Keys of the issues a pull request closes ("fixes #12", "closes acme/web#3")."""
    out: list[str] = []
    for m in _CLOSES.finditer(text):
        ref = m.group(1)
        if ref.startswith("http"):
            key = key_from_url(ref)
        else:
            path, _, number = ref.partition("#")
            key = issue_key(path or repo, number)
        if key and key not in out:
            out.append(key)
    return out


def map_pull_request(raw: Raw, scope: str, settings: GitHubSettings) -> Out:
    """A pull request is no work item. "Blocked by X" in its text means the issues it closes
    are blocked by X (their work ships with it)."""
    try:
        native = str(int(raw["id"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise MappingError(f"pull request payload lacks a usable id: {exc!r}") from None
    repo = repo_of(raw, scope)
    found_in = row_id(settings.source, f"pull/{native}")
    text = "\n".join(t for t in (raw.get("title"), raw.get("body")) if isinstance(t, str))
    deps: dict[tuple[str, str, str], str] = {}
    refs = blocking_references(text, repo=repo)
    for issue in closed_issues(text, repo):
        for ref in refs:
            if ref.key != issue:
                deps.setdefault((issue, ref.key, "blocks"), "text_pull_request")
    return [
        Replace("dependencies", {"found_in": found_in}),
        *_dependency_rows(found_in, settings.source, deps),
    ]


# --- milestones, releases, iterations -----------------------------------------------------


def map_milestone(raw: Raw, scope: str, source: str) -> Out:
    """A milestone -> one ``releases`` row (kind ``milestone``). Due date: the Pacific
    calendar date of ``due_on``; actual: ``closed_at``. ``planned_date`` is sticky (the first
    due date seen), so a moved due date is a slip."""
    try:
        native = f"milestone/{int(raw['id'])}"
    except (KeyError, TypeError, ValueError):
        raise MappingError("milestone payload has no id") from None
    closed = raw.get("state") == "closed"
    due = due_on_date(raw.get("due_on"))
    values: dict[str, Any] = {
        "id": row_id(source, native),
        "source_name": source,
        "scope": scope,
        "native_id": native,
        "name": strip_nul(raw.get("title")),
        "kind": "milestone",
        "due_date": due,
        "planned_date": due,
        "released": closed,
        "archived": False,
    }
    if closed and raw.get("closed_at"):
        values["released_at"] = parse_time(raw.get("closed_at"))
        values["released_at_observed"] = True
    return [Record("releases", values)]


def map_release(raw: Raw, scope: str, source: str) -> Out:
    """A published release -> a ``releases`` row (kind ``release``), unless it is the
    release of a milestone of the same name (the stream marks it): that milestone is the
    release, one row, not two. Drafts are not releases yet."""
    try:
        native = f"release/{int(raw['id'])}"
    except (KeyError, TypeError, ValueError):
        raise MappingError("release payload has no id") from None
    notes = raw.get(ANNOTATION) or {}
    if raw.get("draft") or notes.get("milestone"):
        return [Replace("releases", {"id": row_id(source, native)})]
    published = parse_time(raw.get("published_at") or raw.get("created_at"))
    return [
        Record(
            "releases",
            {
                "id": row_id(source, native),
                "source_name": source,
                "scope": scope,
                "native_id": native,
                "name": strip_nul(raw.get("name") or raw.get("tag_name")),
                "kind": "release",
                "released": True,
                "released_at": published,
                "released_at_observed": True,
                "archived": bool(raw.get("prerelease")),
            },
        )
    ]


def map_sprint(raw: Raw, scope: str, source: str) -> Out:
    """One (iteration, repository) -> a ``sprints`` row. Start = the iteration's start date
    (midnight UTC), end = start + duration days; state from those dates at the sync
    (``state``, set by the stream); a closed iteration completed at its end."""
    try:
        iteration = raw["iteration"]
        native = sprint_native_id(str(iteration["id"]), raw["repo"])
        start_day = parse_date(iteration["startDate"])
        duration = int(iteration["duration"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MappingError(f"iteration payload lacks {exc!r}") from None
    if start_day is None:
        raise MappingError("iteration has no start date")
    start = datetime.combine(start_day, datetime.min.time())
    end = start + timedelta(days=duration)
    state = raw.get("state")
    if state not in ("future", "active", "closed"):
        raise MappingError(f"iteration state {state!r}")
    return [
        Record(
            "sprints",
            {
                "id": row_id(source, native),
                "source_name": source,
                "scope": raw["repo"],
                "native_id": native,
                "board_id": raw.get("project"),
                "name": strip_nul(iteration.get("title")),
                "state": state,
                "start_at": start,
                "end_at": end,
                "completed_at": end if state == "closed" else None,
            },
        )
    ]


__all__ = [
    "GitHubSettings",
    "closed_issues",
    "due_on_date",
    "estimate_rows",
    "is_pull_request",
    "issue_key",
    "key_from_url",
    "map_issue",
    "map_milestone",
    "map_pull_request",
    "map_release",
    "map_sprint",
    "repo_of",
    "sprint_native_id",
    "status_of",
    "status_rows",
    "type_of",
]
