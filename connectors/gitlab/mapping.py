"""Raw GitLab payloads -> normalized warehouse records.

Pure functions of their arguments (no I/O, no clock): tested on DevLake's recorded GitLab
payloads and GitLab's documentation examples without HTTP, and re-applied by
``programview remap``.

An issue's REST payload does not carry its history or its links, so the ``issues`` stream adds
them under the ``"programview"`` key (``normalize.ANNOTATION``), compacted:

* ``state_events`` ``[[at, "closed"|"reopened"]]`` (``resource_state_events``),
* ``label_events`` ``[[at, "add"|"remove", label]]`` (``resource_label_events``),
* ``weight_events`` ``[[at, weight]]`` (``resource_weight_events``),
* ``iteration_events`` ``[[at, "add"|"remove", {id, start_date, due_date}]]``
  (``resource_iteration_events``),
* ``links`` ``[[link_id, link_type, other_id, other_key]]`` (``/links``, ``link_type`` from
  this issue's side).

Iterations and group milestones are shared by the projects of a group; programview counts
them per project (``"<id>@<project path>"``), so a project's velocity is over its own items.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from programview.errors import MappingError
from programview.normalize import (
    ANNOTATION,
    DEFAULT_LABEL_TYPES,
    blocking_references,
    category_from_labels,
    label_list,
    parse_date,
    parse_points,
    parse_time,
    strip_nul,
)
from programview.sync.connector import Record, Replace
from programview.warehouse.models import row_id

from .options import DEFAULT_IN_PROGRESS_LABELS, ISSUE_TYPES

Raw = dict[str, Any]
Out = list[Record | Replace]

#: Iterations API: the response ``state`` is an integer.
ITERATION_STATES = {1: "future", 2: "active", 3: "closed"}
_PRIORITY = re.compile(r"^(?:priority|prio)\s*(?:::|:|/|=|-)\s*(.+)$", re.IGNORECASE)
_ISSUE_API_URL = re.compile(r"/projects/(?P<project>[^/]+)/issues/(?P<iid>\d+)/?$")
_GROUP_URL = re.compile(r"/groups/(?P<path>.+?)/-/")
#: dependencies.origin of a GitLab issue link (the rows the blocking side may also write).
LINK_ORIGIN = "gitlab_link"


@dataclass(frozen=True)
class GitLabSettings:
    """What the mapping needs beyond the payload (from the source config)."""

    source: str
    in_progress: frozenset[str] = frozenset(x.lower() for x in DEFAULT_IN_PROGRESS_LABELS)
    label_types: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LABEL_TYPES))


# --- keys ----------------------------------------------------------------------------------


def project_path(raw: Raw) -> str:
    """The issue's project path, lower case, from ``references.full`` (``acme/pay#6``)."""
    full = (raw.get("references") or {}).get("full")
    if not isinstance(full, str) or "#" not in full:
        raise MappingError(f"issue {raw.get('id')} has no references.full")
    return full.rsplit("#", 1)[0].lower()


def issue_key(raw: Raw) -> str:
    """``references.full`` with the path lower-cased: ``acme/platform/api#7`` (the form
    ``normalize.blocking_references`` gives text references)."""
    return f"{project_path(raw)}#{int(raw['iid'])}"


def sprint_native_id(iteration_id: Any, project: str) -> str:
    """One sprint per (iteration, project): a group's iteration is counted per project."""
    return f"{iteration_id}@{project.lower()}"


def milestone_native_id(milestone: Raw, project: str) -> str:
    """``milestone/<id>``; a group milestone is one release per project (``…@<path>``)."""
    mid = int(milestone["id"])
    if milestone.get("project_id") is None and milestone.get("group_id") is not None:
        return f"milestone/{mid}@{project.lower()}"
    return f"milestone/{mid}"


def release_native_id(release: Raw, project: str) -> str:
    """``release/<tag>@<path>``: tags are unique per project only."""
    return f"release/{release['tag_name']}@{project.lower()}"


# --- small readers ---------------------------------------------------------------------------


def _name(user: Any) -> str | None:
    if not isinstance(user, dict):
        return None
    return user.get("name") or user.get("username")


def _person(user: Any, source: str) -> Record | None:
    if not isinstance(user, dict) or user.get("id") is None:
        return None
    return Record(
        "people",
        {
            "id": row_id(source, f"user/{user['id']}"),
            "source_name": source,
            "native_id": str(user["id"]),
            "display_name": _name(user),
        },
    )


def _hours(seconds: Any) -> float | None:
    """``time_stats`` seconds as hours; 0 means nothing set or logged (unset, not zero)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        return None
    return seconds / 3600.0


def _priority(labels: Iterable[str]) -> str | None:
    for label in labels:
        m = _PRIORITY.match(label.strip())
        if m:
            return m.group(1).strip()
    return None


def type_of(raw: Raw, labels: list[str], settings: GitLabSettings) -> tuple[str, str | None]:
    """(type category, raw type): ``issue_type`` incident/task first (an incident is not a
    bug, whatever its labels), else labels (``type::bug``, ``feature``…), else other."""
    issue_type = str(raw.get("issue_type") or raw.get("type") or "issue").lower()
    if issue_type in ISSUE_TYPES:
        return ISSUE_TYPES[issue_type], issue_type
    category = category_from_labels(labels, settings.label_types)  # type: ignore[arg-type]
    if category is not None:
        label = next(
            (x for x in labels if settings.label_types.get(x.strip().lower()) == category), None
        )
        return category, label or issue_type
    return "other", issue_type


def status_of(state: Any, labels: Iterable[str], settings: GitLabSettings) -> tuple[str, str]:
    """(status category, raw status): closed -> done; opened -> in_progress when a label is one
    of ``in_progress_labels`` (that label is the raw status), else todo."""
    if state == "closed":
        return "done", "closed"
    hit = next((x for x in labels if x.strip().lower() in settings.in_progress), None)
    if hit is not None:
        return "in_progress", hit
    return "todo", "opened"


def epic_key(epic: Any) -> str | None:
    """An epic reference ``group/path&5`` (the group from the epic's URL)."""
    if not isinstance(epic, dict) or epic.get("iid") is None:
        return None
    m = _GROUP_URL.search(str(epic.get("url") or epic.get("web_url") or ""))
    group = m.group("path").lower() if m else f"group-{epic.get('group_id')}"
    return f"{group}&{int(epic['iid'])}"


# --- history -------------------------------------------------------------------------------


def _events(notes: Raw, name: str, width: int) -> list[list[Any]]:
    out = []
    for entry in notes.get(name) or []:
        if not isinstance(entry, list | tuple) or len(entry) < width:
            raise MappingError(f"unreadable {name} entry {entry!r}")
        at = parse_time(entry[0])
        if at is None:
            continue
        out.append([at, *entry[1:]])
    out.sort(key=lambda e: e[0])
    return out


def status_rows(
    item_id: str,
    created: datetime | None,
    notes: Raw,
    settings: GitLabSettings,
) -> tuple[list[dict[str, Any]], datetime | None]:
    """Status transitions from the label and state events, and ``started_at`` (the first time
    the issue was in progress: an in-progress label added, or one it was created with).

    Events at one moment are taken together (closing removes the workflow label and closes the
    issue at once); events at the creation time are the issue's initial state, not a move.
    """
    moments: dict[datetime, list[tuple[str, Any]]] = {}
    for at, action, label in _events(notes, "label_events", 3):
        moments.setdefault(at, []).append((f"label_{action}", label))
    for at, state in _events(notes, "state_events", 2):
        moments.setdefault(at, []).append(("state", state))
    labels: set[str] = set()
    state = "opened"
    rows: list[dict[str, Any]] = []
    started: datetime | None = None
    category, raw = "todo", "opened"
    for at in sorted(moments):
        for kind, value in moments[at]:
            if kind == "label_add" and isinstance(value, str):
                labels.add(value)
            elif kind == "label_remove" and isinstance(value, str):
                labels.discard(value)
            elif kind == "state":
                state = "closed" if value == "closed" else "opened"
        new_category, new_raw = status_of(state, sorted(labels), settings)
        if new_category == "in_progress" and started is None:
            started = at
        if (new_category, new_raw) == (category, raw):
            continue
        if created is None or at > created:
            rows.append(
                {
                    "work_item_id": item_id,
                    "change_id": at.isoformat(),
                    "changed_at": at,
                    "from_status": raw,
                    "to_status": new_raw,
                    "from_category": category,
                    "to_category": new_category,
                }
            )
        category, raw = new_category, new_raw
    if started is not None and created is not None and started < created:
        started = created
    return rows, started


def estimate_rows(item_id: str, created: datetime | None, notes: Raw) -> list[dict[str, Any]]:
    """Re-estimates from the weight events. A weight set at creation is the starting estimate,
    not a change; before the first event the issue had no weight."""
    rows: list[dict[str, Any]] = []
    previous: float | None = None
    for n, (at, weight) in enumerate(_events(notes, "weight_events", 2)):
        value = parse_points(weight)
        if created is not None and at <= created:
            previous = value
            continue
        if value != previous:
            rows.append(
                {
                    "work_item_id": item_id,
                    "change_id": f"weight:{at.isoformat()}:{n}",
                    "changed_at": at,
                    "from_points": previous,
                    "to_points": value,
                }
            )
        previous = value
    return rows


def iteration_span(iteration: Any) -> tuple[datetime, datetime] | None:
    """(start, end) of an iteration as naive UTC: its start date at midnight and the day
    after its due date (iterations are whole days)."""
    if not isinstance(iteration, dict):
        return None
    start, due = parse_date(iteration.get("start_date")), parse_date(iteration.get("due_date"))
    if start is None or due is None:
        return None
    return _midnight(start), _midnight(due) + timedelta(days=1)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


def iteration_membership(
    created: datetime | None,
    events: list[list[Any]],
    current: Any,
    updated: datetime | None,
) -> dict[str, tuple[datetime | None, datetime | None]]:
    """Iteration id -> (added_at, removed_at) from ``resource_iteration_events``.

    * An ``add`` of B while in A means leaving A (GitLab records only the add).
    * Leaving an iteration after it ended is no removal: a closed iteration keeps its issues
      (an unfinished one rolled over to the next still counts as not completed in the old).
    * A roll-over (added to B while leaving an iteration that had ended, on B's first day:
      GitLab's cadence moves unfinished issues when the old iteration closes, just after B
      began) counts as in B from its start: committed, as in Jira's sprint report.
    * ``added_at`` NULL: in it since the issue was created (an add at creation, or an issue in
      an iteration with no event at all). Left and came back: as if it never left.
    * The current ``iteration`` field is the truth for "in it now"; one the events say it is in
      but the field no longer shows is left at the issue's last update.
    """
    spans: dict[str, tuple[datetime, datetime] | None] = {}
    state: dict[str, list[Any]] = {}  # id -> [added_at, removed_at]
    inside: str | None = None

    def leave(iid: str, at: datetime) -> None:
        span = spans.get(iid)
        entry = state.get(iid)
        if entry is None or entry[1] is not None:
            return
        if span is not None and at >= span[1]:
            return  # ended before: its membership was frozen at the close
        entry[1] = at

    for at, action, iteration in events:
        if not isinstance(iteration, dict) or iteration.get("id") is None:
            raise MappingError(f"iteration event without an iteration: {iteration!r}")
        iid = str(iteration["id"])
        spans[iid] = iteration_span(iteration)
        if action == "remove":
            leave(iid, at)
            if inside == iid:
                inside = None
            continue
        if action != "add":
            continue
        rolled = False
        if inside is not None and inside != iid:
            before = spans.get(inside)
            rolled = before is not None and at >= before[1]
            leave(inside, at)
        added: datetime | None = at
        if created is not None and at <= created:
            added = None
        elif rolled:
            span = spans[iid]
            if span is not None and span[0] <= at < span[0] + timedelta(days=1):
                added = span[0]
        entry = state.get(iid)
        if entry is None:
            state[iid] = [added, None]
        else:
            entry[1] = None  # came back
        inside = iid
    now = str(current["id"]) if isinstance(current, dict) and current.get("id") else None
    if now is not None:
        spans.setdefault(now, iteration_span(current))
        entry = state.setdefault(now, [None, None])
        entry[1] = None
    if inside is not None and inside != now and updated is not None:
        leave(inside, updated)
    return {iid: (v[0], v[1]) for iid, v in state.items()}


# --- issues --------------------------------------------------------------------------------


def map_issue(raw: Raw, scope: str, settings: GitLabSettings) -> Out:
    """One issue (REST payload + annotation) -> its work item and every child row: status and
    estimate history, iteration membership, milestone, links, text references, people.
    Child collections are sent whole, each after a ``Replace``."""
    if not isinstance(raw, dict):
        raise MappingError(f"issue payload is a {type(raw).__name__}, not an object")
    source = settings.source
    try:
        native = str(int(raw["id"]))
        path = project_path(raw)
        key = issue_key(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise MappingError(f"issue payload lacks a usable id/iid: {exc!r}") from None
    item_id = row_id(source, native)
    notes = raw.get(ANNOTATION) or {}
    if not isinstance(notes, dict):
        raise MappingError(f"unreadable {ANNOTATION} annotation: {notes!r}")
    labels = label_list(raw.get("labels"), name_key="name")
    category, raw_type = type_of(raw, labels, settings)
    status, raw_status = status_of(raw.get("state"), labels, settings)
    created = parse_time(raw.get("created_at"))
    updated = parse_time(raw.get("updated_at"))
    changes, started = status_rows(item_id, created, notes, settings)
    links = _links(notes)
    duplicate_of = _duplicate_target(raw, links)
    moved = raw.get("moved_to_id") is not None
    stats = raw.get("time_stats") or {}
    assignees = [a for a in raw.get("assignees") or [] if isinstance(a, dict)]
    if not assignees and isinstance(raw.get("assignee"), dict):
        assignees = [raw["assignee"]]
    title = raw.get("title")
    parent = epic_key(raw.get("epic"))
    closed_at = parse_time(raw.get("closed_at"))
    out: Out = [
        Record(
            "work_items",
            {
                "id": item_id,
                "source_name": source,
                "scope": scope,
                "native_id": native,
                "item_key": key,
                "url": raw.get("web_url"),
                "title": strip_nul(title) if isinstance(title, str) else None,
                "raw_type": raw_type,
                "type_category": category,
                "raw_status": "moved" if moved else raw_status,
                "status_category": status,
                "priority": _priority(labels),
                # Premium's weight; absent (lower tiers) or unset is NULL, never 0.
                "story_points": parse_points(raw.get("weight")),
                "original_estimate_hours": _hours(stats.get("time_estimate")),
                "time_spent_hours": _hours(stats.get("total_time_spent")),
                "assignee": _name(assignees[0]) if assignees else None,
                "reporter": _name(raw.get("author")),
                "created_at": created,
                "updated_at": updated,
                "started_at": started,
                "resolved_at": closed_at if status == "done" else None,
                "due_date": parse_date(raw.get("due_date")),
                "parent_key": parent,
                "labels": ",".join(x.replace(",", " ") for x in labels) or None,
                "not_delivered": status == "done" and duplicate_of is not None,
                # Moved to another project: the copy there is the live item (counted once).
                "is_deleted": moved,
                "deleted_at": (closed_at or updated) if moved else None,
            },
        )
    ]
    for user in (raw.get("author"), *assignees):
        person = _person(user, source)
        if person is not None:
            out.append(person)

    out.append(Replace("status_changes", {"work_item_id": item_id}))
    out.extend(Record("status_changes", r) for r in changes)
    out.append(Replace("estimate_changes", {"work_item_id": item_id}))
    out.extend(Record("estimate_changes", r) for r in estimate_rows(item_id, created, notes))

    membership = iteration_membership(
        created, _events(notes, "iteration_events", 3), raw.get("iteration"), updated
    )
    out.append(Replace("sprint_items", {"work_item_id": item_id}))
    for iteration_id, (added_at, removed_at) in sorted(membership.items()):
        out.append(
            Record(
                "sprint_items",
                {
                    "sprint_id": row_id(source, sprint_native_id(iteration_id, path)),
                    "work_item_id": item_id,
                    "added_at": added_at,
                    "removed_at": removed_at,
                },
            )
        )

    out.append(Replace("work_item_releases", {"work_item_id": item_id}))
    milestone = raw.get("milestone")
    if isinstance(milestone, dict) and milestone.get("id") is not None:
        out.append(
            Record(
                "work_item_releases",
                {
                    "work_item_id": item_id,
                    "release_id": row_id(source, milestone_native_id(milestone, path)),
                },
            )
        )

    out.extend(_dependencies(raw, item_id, key, path, links, duplicate_of, parent, source))
    return out


def _links(notes: Raw) -> list[tuple[str, str, str, str]]:
    """(link id, link_type, other issue id, other key) of the annotation."""
    out = []
    for entry in notes.get("links") or []:
        if not isinstance(entry, list | tuple) or len(entry) < 4:
            raise MappingError(f"unreadable link entry {entry!r}")
        out.append((str(entry[0]), str(entry[1]), str(entry[2]), str(entry[3]).lower()))
    return out


def _duplicate_target(raw: Raw, links: list[tuple[str, str, str, str]]) -> str | None:
    """Key of the issue this one was closed as a duplicate of (``_links``
    ``closed_as_duplicate_of`` names it by project id and iid; the key comes from the link
    GitLab adds between the two)."""
    url = (raw.get("_links") or {}).get("closed_as_duplicate_of")
    m = _ISSUE_API_URL.search(str(url or ""))
    if m is None:
        return None
    iid = m.group("iid")
    project = m.group("project")
    own = str(raw.get("project_id"))
    for _, _, _, other in links:
        if other.rsplit("#", 1)[-1] == iid:
            return other
    if project == own:
        return f"{project_path(raw)}#{iid}"
    return None


def _dependencies(
    raw: Raw,
    item_id: str,
    key: str,
    path: str,
    links: list[tuple[str, str, str, str]],
    duplicate_of: str | None,
    parent: str | None,
    source: str,
) -> Out:
    """Dependency rows, each link stored once although both its issues list it.

    A link row is *found in* its blocked issue (relates: the issue with the smaller key), so
    both sides write the same row: whichever project is synced keeps it, and a run that reads
    both writes one row. An issue replaces the rows found in it (its links and text references)
    and the link rows where it is the blocking side, so a removed link disappears from
    whichever side is read again.
    """
    out: Out = [
        Replace("dependencies", {"found_in": item_id}),
        Replace(
            "dependencies", {"blocking_key": key, "origin": LINK_ORIGIN, "source_name": source}
        ),
    ]
    rows: dict[tuple[str, str, str], tuple[str, str]] = {}  # -> (found_in, origin)
    for _, link_type, other_id, other in links:
        if other == key:
            continue
        other_item = row_id(source, other_id)
        if link_type == "is_blocked_by":
            rows.setdefault((key, other, "blocks"), (item_id, LINK_ORIGIN))
        elif link_type == "blocks":
            rows.setdefault((other, key, "blocks"), (other_item, LINK_ORIGIN))
        else:  # relates_to (duplicates show as one too): undirected, smaller key first
            first = item_id if key < other else other_item
            pair = (key, other) if key < other else (other, key)
            rows.setdefault((*pair, "relates"), (first, LINK_ORIGIN))
    if duplicate_of and duplicate_of != key:
        rows.setdefault((duplicate_of, key, "duplicates"), (item_id, "gitlab_duplicate"))
    if parent:
        rows.setdefault((parent, key, "parent"), (item_id, "gitlab_epic"))
    text = "\n".join(t for t in (raw.get("title"), raw.get("description")) if isinstance(t, str))
    for ref in blocking_references(text, repo=path):
        if ref.key != key:
            rows.setdefault((key, ref.key, "blocks"), (item_id, "text"))
    for (blocked, blocking, kind), (found_in, origin) in rows.items():
        out.append(
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
        )
    return out


# --- milestones, releases, iterations ----------------------------------------------------------


def map_milestone(raw: Raw, scope: str, source: str) -> Out:
    """A project or group milestone -> one ``releases`` row (kind ``milestone``).

    Released: closed, or its release is out. Actual date: the release's ``released_at`` when a
    release names it (``programview.release``, added by the stream), else the time it was seen
    closed (``programview.closed_at``: the milestone's ``updated_at`` at the first sync that saw
    it closed after seeing it open); a milestone already closed when first synced gets none here
    and the transform takes the latest close of its issues (GitLab keeps no close time).
    ``planned_date`` is sticky (the first due date seen), so a moved due date is a slip."""
    try:
        native = milestone_native_id(raw, scope)
    except (KeyError, TypeError, ValueError):
        raise MappingError("milestone payload has no id") from None
    notes = raw.get(ANNOTATION) or {}
    release = notes.get("release") if isinstance(notes.get("release"), dict) else None
    shipped = release is not None and not release.get("upcoming")
    due = parse_date(raw.get("due_date"))
    values: dict[str, Any] = {
        "id": row_id(source, native),
        "source_name": source,
        "scope": scope,
        "native_id": native,
        "name": strip_nul(raw.get("title")),
        "kind": "milestone",
        "start_date": parse_date(raw.get("start_date")),
        "due_date": due,
        "planned_date": due,
        "released": raw.get("state") == "closed" or shipped,
        "archived": False,
    }
    if shipped and release is not None and release.get("released_at"):
        values["released_at"] = parse_time(release["released_at"])
        values["released_at_observed"] = True
    elif raw.get("state") == "closed" and notes.get("closed_at"):
        values["released_at"] = parse_time(notes["closed_at"])
        values["released_at_observed"] = True
    return [Record("releases", values)]


def map_release(raw: Raw, scope: str, source: str) -> Out:
    """A release -> a ``releases`` row (kind ``release``) unless it names a milestone: then the
    milestone is the release (one row, not two; the milestone takes its date)."""
    try:
        native = release_native_id(raw, scope)
    except (KeyError, TypeError):
        raise MappingError("release payload has no tag_name") from None
    if [m for m in raw.get("milestones") or [] if isinstance(m, dict)]:
        return [Replace("releases", {"id": row_id(source, native)})]
    upcoming = bool(raw.get("upcoming_release"))
    released_at = parse_time(raw.get("released_at") or raw.get("created_at"))
    values: dict[str, Any] = {
        "id": row_id(source, native),
        "source_name": source,
        "scope": scope,
        "native_id": native,
        "name": strip_nul(raw.get("name") or raw.get("tag_name")),
        "kind": "release",
        "released": not upcoming,
        "archived": False,
    }
    if upcoming:
        values["due_date"] = released_at.date() if released_at else None
        values["planned_date"] = values["due_date"]
    else:
        values["released_at"] = released_at
        values["released_at_observed"] = True
    return [Record("releases", values)]


def iteration_name(iteration: Raw) -> str:
    """The title, or for an iteration of an automatic cadence (null title) short enough for a
    chart axis: its group (the last part of the path), number in the cadence and first day,
    ``acme 13 · Jan 6`` (the dates are the sprint's start and end columns)."""
    title = iteration.get("title")
    if isinstance(title, str) and title.strip():
        return title
    m = _GROUP_URL.search(str(iteration.get("web_url") or ""))
    group = m.group("path").rsplit("/", 1)[-1] if m else "iteration"
    number = iteration.get("sequence") or iteration.get("iid") or iteration.get("id")
    start = parse_date(iteration.get("start_date"))
    return f"{group} {number}" + (f" · {start:%b} {start.day}" if start else "")


def map_sprint(raw: Raw, scope: str, source: str) -> Out:
    """One (iteration, project) -> a ``sprints`` row: start = the start date at midnight UTC,
    end = the day after the due date; the state GitLab gives (1 upcoming, 2 current,
    3 closed); a closed iteration completed at its end (GitLab keeps no close time)."""
    try:
        iteration = raw["iteration"]
        project = str(raw["project"])
        native = sprint_native_id(iteration["id"], project)
    except (KeyError, TypeError) as exc:
        raise MappingError(f"iteration record lacks {exc!r}") from None
    span = iteration_span(iteration)
    if span is None:
        raise MappingError(f"iteration {iteration.get('id')} has no start or due date")
    state = ITERATION_STATES.get(iteration.get("state"))
    if state is None:
        raise MappingError(f"iteration state {iteration.get('state')!r}")
    start, end = span
    return [
        Record(
            "sprints",
            {
                "id": row_id(source, native),
                "source_name": source,
                "scope": project,
                "native_id": native,
                "board_id": str(iteration.get("group_id")),
                "name": strip_nul(iteration_name(iteration)),
                "state": state,
                "start_at": start,
                "end_at": end,
                "completed_at": end if state == "closed" else None,
                "goal": strip_nul(iteration.get("description")),
            },
        )
    ]


__all__ = [
    "ITERATION_STATES",
    "LINK_ORIGIN",
    "GitLabSettings",
    "epic_key",
    "estimate_rows",
    "issue_key",
    "iteration_membership",
    "iteration_name",
    "iteration_span",
    "map_issue",
    "map_milestone",
    "map_release",
    "map_sprint",
    "milestone_native_id",
    "project_path",
    "release_native_id",
    "sprint_native_id",
    "status_of",
    "status_rows",
    "type_of",
]
