"""Raw Jira payloads -> normalized warehouse records.

Everything here is a pure function of its arguments (no I/O, no clock), so it is tested on
real payloads without HTTP and ``programview remap`` can re-apply it to stored raw payloads.

Two things the API does not put in one payload are added by the streams *into* the raw
payload, under the ``"programview"`` key, so that the stored raw alone is enough to map it:

* issues: ``status_categories`` — the Jira status category (new / indeterminate / done) of
  every status the changelog mentions; a changelog item only carries status ids and names,
  and the category is what decides ``started_at`` and the category history.
* versions: ``seen_unreleased`` / ``first_seen_released_at`` — Jira keeps no release timestamp,
  so the versions stream records when it first saw a version released (see ``map_version``).

Shapes that differ between deployments are handled here: the Sprint field is a list of objects
on Cloud and a list of ``…Sprint@hash[id=..,state=..]`` strings on older Server/DC; timestamps
carry ``+0000``-style offsets; changelog ``created`` is an ISO string, or epoch seconds in the
bulk changelog endpoint's documented example. Rich text (ADF on v3, plain text on v2) is never
read: no mapped column needs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from programview.errors import ConfigError, MappingError
from programview.normalize import ANNOTATION, label_list, parse_date, parse_time, strip_nul
from programview.normalize import parse_points as parse_story_points
from programview.sync.connector import Record, Replace
from programview.warehouse.models import row_id

from .options import DEFAULT_LINK_TYPES, DEFAULT_TYPE_MAP, JiraOptions

Raw = dict[str, Any]
Out = list[Record | Replace]

#: Jira status category key -> status_category.
CATEGORY_OF_JIRA = {"new": "todo", "indeterminate": "in_progress", "done": "done"}

#: Resolutions that close an item without delivering it (excluded from delivered points).
NOT_DELIVERED_RESOLUTIONS = frozenset(
    {
        "won't do",
        "won't fix",
        "wont do",
        "wont fix",
        "duplicate",
        "cannot reproduce",
        "declined",
        "rejected",
        "obsolete",
        "not a bug",
    }
)

STORY_POINTS_TYPES = frozenset(
    {
        "com.pyxis.greenhopper.jira:jsw-story-points",  # "Story point estimate"
        "com.atlassian.jira.plugin.system.customfieldtypes:float",  # classic "Story Points"
    }
)
STORY_POINTS_NAMES = ("story points", "story point estimate")
SPRINT_TYPE = "com.pyxis.greenhopper.jira:gh-sprint"
EPIC_LINK_TYPE = "com.pyxis.greenhopper.jira:gh-epic-link"

#: System fields the search asks for; story-point, sprint and epic-link fields are added.
BASE_FIELDS = (
    "summary",
    "status",
    "issuetype",
    "priority",
    "assignee",
    "reporter",
    "created",
    "updated",
    "resolution",
    "resolutiondate",
    "duedate",
    "labels",
    "fixVersions",
    "parent",
    "subtasks",
    "issuelinks",
    "project",
    "timeoriginalestimate",
    "timespent",
)


# --- field discovery ------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChoice:
    """Which custom fields hold story points, sprints and (Server/DC) epic links."""

    story_points: str | None = None
    story_points_name: str | None = None
    #: Every story-points-like field: all are fetched, so a remap can switch between them.
    story_point_candidates: tuple[str, ...] = ()
    sprint: str | None = None
    sprint_name: str | None = "Sprint"
    epic_link: str | None = None
    warnings: tuple[str, ...] = ()


def choose_fields(catalogue: Iterable[Raw], options: JiraOptions) -> FieldChoice:
    """Pick the story-points and Sprint fields from ``GET /field``.

    Matches on the field's schema type, never on a hard-coded id: ids differ per site.
    ``"auto"`` story points: a Jira Software "Story point estimate" field, or a number field
    named "Story Points" / "Story point estimate". Several candidates -> the first in that
    order, and a warning naming all of them (set ``story_points_field`` to choose).
    A configured id that the site does not have is a configuration error.
    """
    fields = [f for f in catalogue if isinstance(f, dict) and f.get("id")]
    by_id = {str(f["id"]): f for f in fields}
    warnings: list[str] = []

    def custom_type(f: Raw) -> str:
        return str((f.get("schema") or {}).get("custom") or "")

    def describe(f: Raw) -> str:
        return f"{f['id']} ({f.get('name')!r})"

    candidates = [
        f
        for f in fields
        if custom_type(f) == "com.pyxis.greenhopper.jira:jsw-story-points"
        or (
            custom_type(f) in STORY_POINTS_TYPES
            and str(f.get("name") or "").strip().lower() in STORY_POINTS_NAMES
        )
    ]
    # Jira Software's own field first, then by name order ("Story Points" before "estimate").
    candidates.sort(
        key=lambda f: (
            custom_type(f) != "com.pyxis.greenhopper.jira:jsw-story-points",
            str(f.get("name") or "").lower(),
            str(f["id"]),
        )
    )
    if options.story_points_field != "auto":
        chosen = by_id.get(options.story_points_field)
        if chosen is None:
            found = ", ".join(describe(f) for f in candidates) or "none found"
            raise ConfigError(
                f"story_points_field {options.story_points_field!r} does not exist on this "
                f"Jira (story-points-like fields: {found})"
            )
        if chosen not in candidates:
            candidates.insert(0, chosen)
    elif candidates:
        chosen = candidates[0]
        if len(candidates) > 1:
            warnings.append(
                "several story-points fields found: "
                + ", ".join(describe(f) for f in candidates)
                + f"; using {chosen['id']}. Set story_points_field to choose another."
            )
    else:
        chosen = None
        warnings.append(
            "no story-points field found (looked for 'Story Points' / 'Story point "
            "estimate'); story points stay empty. Set story_points_field if yours is named "
            "differently."
        )

    sprint: Raw | None
    if options.sprint_field != "auto":
        sprint = by_id.get(options.sprint_field)
        if sprint is None:
            raise ConfigError(f"sprint_field {options.sprint_field!r} does not exist on this Jira")
    else:
        sprints = [f for f in fields if custom_type(f) == SPRINT_TYPE]
        sprint = sprints[0] if sprints else None
        if len(sprints) > 1:
            warnings.append(
                "several Sprint fields found: "
                + ", ".join(describe(f) for f in sprints)
                + f"; using {sprints[0]['id']}. Set sprint_field to choose another."
            )
    epic = next((f for f in fields if custom_type(f) == EPIC_LINK_TYPE), None)
    return FieldChoice(
        story_points=str(chosen["id"]) if chosen else None,
        story_points_name=str(chosen.get("name")) if chosen else None,
        story_point_candidates=tuple(str(f["id"]) for f in candidates),
        sprint=str(sprint["id"]) if sprint else None,
        sprint_name=str(sprint.get("name") or "Sprint") if sprint else "Sprint",
        epic_link=str(epic["id"]) if epic else None,
        warnings=tuple(warnings),
    )


# --- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JiraSettings:
    """Everything the mapping needs beyond the raw payload (from config and ``/field``)."""

    source: str
    base_url: str = ""
    fields: FieldChoice = field(default_factory=FieldChoice)
    type_map: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TYPE_MAP))
    status_overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    link_kinds: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LINK_TYPES))
    worklogs: bool = True

    @classmethod
    def build(
        cls, source: str, base_url: str, options: JiraOptions, fields: FieldChoice
    ) -> JiraSettings:
        return cls(
            source=source,
            base_url=base_url.rstrip("/"),
            fields=fields,
            type_map=options.type_categories(),
            status_overrides=options.overrides(),
            link_kinds=options.link_kinds(),
            worklogs=options.worklogs,
        )

    def search_fields(self) -> list[str]:
        """The ``fields`` list of the issue search: only what the mapping reads."""
        wanted = list(BASE_FIELDS)
        wanted.extend(self.fields.story_point_candidates)
        for extra in (self.fields.story_points, self.fields.sprint, self.fields.epic_link):
            if extra:
                wanted.append(extra)
        if self.worklogs:
            wanted.append("worklog")
        return list(dict.fromkeys(wanted))

    def changelog_field_ids(self) -> list[str]:
        """Fields whose history the mapping reads (for the bulk changelog fetch, max 10)."""
        ids = ["status"]
        if self.fields.sprint:
            ids.append(self.fields.sprint)
        if self.fields.story_points:
            ids.append(self.fields.story_points)
        return ids


# --- scalar parsing: programview.normalize (re-exported here for the Jira tests) ------


def _hours(seconds: Any) -> float | None:
    if seconds is None or isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    return seconds / 3600.0


# --- sprints ---------------------------------------------------------------------------------

_SPRINT_KEYS = (
    "id",
    "rapidViewId",
    "state",
    "name",
    "startDate",
    "endDate",
    "completeDate",
    "activatedDate",
    "sequence",
    "goal",
    "autoStartStop",
    "synced",
    "incompleteIssuesDestinationId",
)
# Split "a=1,name=x, y,goal=..." only at commas that start a known key: names and goals may
# themselves contain commas.
_SPRINT_SPLIT = re.compile(r",(?=(?:" + "|".join(_SPRINT_KEYS) + r")=)")


def parse_sprint(value: Any) -> Raw:
    """One Sprint field element -> ``{id, name, state, boardId, startDate, endDate,
    completeDate, goal}``. Cloud sends objects; older Server/DC send
    ``com.atlassian.greenhopper.service.sprint.Sprint@1a2b[id=48,rapidViewId=58,…]``."""
    if isinstance(value, dict):
        if value.get("id") is None:
            raise MappingError(f"sprint without id: {value!r}")
        return {
            "id": str(value["id"]),
            "name": value.get("name"),
            "state": (value.get("state") or "").lower() or None,
            "boardId": value.get("boardId", value.get("originBoardId")),
            "startDate": value.get("startDate"),
            "endDate": value.get("endDate"),
            "completeDate": value.get("completeDate"),
            "goal": value.get("goal"),
        }
    if isinstance(value, str):
        return dict(_parse_legacy_sprint(value))
    raise MappingError(f"unreadable Sprint field value: {value!r}")


@lru_cache(maxsize=4096)
def _parse_legacy_sprint(value: str) -> Raw:
    """The ``Sprint@…[…]`` string form, cached: the same few sprint strings recur in every
    issue of a board (callers get a copy, see ``parse_sprint``)."""
    start, end = value.find("["), value.rfind("]")
    if start < 0 or end < start:
        raise MappingError(f"unreadable Sprint field value: {value[:200]!r}")
    parts: dict[str, str | None] = {}
    for chunk in _SPRINT_SPLIT.split(value[start + 1 : end]):
        key, _, text = chunk.partition("=")
        parts[key] = None if text in ("<null>", "") else text
    if not parts.get("id"):
        raise MappingError(f"Sprint field value without id: {value[:200]!r}")
    return {
        "id": str(parts["id"]),
        "name": parts.get("name"),
        "state": (parts.get("state") or "").lower() or None,
        "boardId": parts.get("rapidViewId"),
        "startDate": parts.get("startDate"),
        "endDate": parts.get("endDate"),
        "completeDate": parts.get("completeDate"),
        "goal": parts.get("goal"),
    }


def parse_sprint_field(value: Any) -> list[Raw]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [parse_sprint(v) for v in items if v is not None]


def _sprint_ids(text: Any) -> set[str]:
    """Changelog from/to of the Sprint field: ``"38, 40"`` (ids)."""
    if text is None:
        return set()
    return {part.strip() for part in str(text).split(",") if part.strip().isdigit()}


def sprint_membership(
    current: Iterable[str],
    changes: list[tuple[datetime, set[str], set[str]]],
    updated_at: datetime | None,
) -> dict[str, tuple[datetime | None, datetime | None]]:
    """Sprint id -> (added_at, removed_at) from the Sprint field's change history.

    * ``added_at`` is the first time the item entered the sprint; ``None`` when it was in the
      sprint from creation (in the first recorded value, or with no history at all).
    * ``removed_at`` is the last time it left, ``None`` while it is still in the sprint. An item
      that left and came back counts as never having left. Leaving and re-entering is collapsed
      into one row: the warehouse keeps one row per (sprint, item).
    * The current field value is the truth for "in it now": a sprint the history says the item
      left but the field still lists is kept in (removed_at None); a sprint the history says it
      is in but the field no longer lists gets removed_at = the item's last update (the latest
      time it can have left; happens when history is incomplete).
    """
    current_ids = {str(c) for c in current}
    changes = sorted(changes, key=lambda c: c[0])
    state: dict[str, list[Any]] = {}  # id -> [added_at, removed_at, inside]
    initial = changes[0][1] if changes else current_ids
    for sid in initial:
        state[sid] = [None, None, True]
    for when, before, after in changes:
        for sid in sorted(after - before):
            entry = state.get(sid)
            if entry is None:
                state[sid] = [when, None, True]
            else:
                entry[1], entry[2] = None, True
        for sid in sorted(before - after):
            entry = state.setdefault(sid, [None, None, True])
            entry[1], entry[2] = when, False
    for sid in current_ids:
        entry = state.setdefault(sid, [None, None, True])
        if not entry[2]:
            entry[1], entry[2] = None, True
    for sid, entry in state.items():
        if entry[2] and sid not in current_ids:
            entry[1], entry[2] = updated_at, False
    return {sid: (entry[0], entry[1]) for sid, entry in state.items()}


def _sprint_values(sprint: Raw, source: str, *, partial: bool) -> dict[str, Any]:
    """Sprint columns. ``partial`` (a sprint seen in an issue's Sprint field) leaves out what
    the element does not carry, so it never blanks what the Agile API filled in."""
    values: dict[str, Any] = {
        "name": sprint.get("name"),
        "state": sprint.get("state"),
        "board_id": str(sprint["boardId"]) if sprint.get("boardId") is not None else None,
        "start_at": parse_time(sprint.get("startDate")),
        "end_at": parse_time(sprint.get("endDate")),
        "completed_at": parse_time(sprint.get("completeDate")),
    }
    if partial:
        values = {k: v for k, v in values.items() if v is not None}
    return {
        "id": row_id(source, sprint["id"]),
        "source_name": source,
        "native_id": str(sprint["id"]),
        **values,
    }


def map_sprint(raw: Raw, scope: str, source: str) -> Out:
    """A sprint from the Agile API (``/board/{id}/sprint``) -> one ``sprints`` row."""
    values = _sprint_values(parse_sprint(raw), source, partial=False)
    values["scope"] = scope
    values["goal"] = raw.get("goal") or None
    return _without_nul([Record("sprints", values)])


# --- versions --------------------------------------------------------------------------------


def map_version(raw: Raw, scope: str, source: str) -> Out:
    """A project version (fix version) -> one ``releases`` row.

    ``planned_date`` and ``released_at`` are sticky in the warehouse (first non-null wins):

    * unreleased: planned_date = releaseDate (a later move of the date is a slip);
    * seen unreleased before, now released: released_at = the sync time it was first seen
      released (``first_seen_released_at``, recorded by the stream), observed = True; the
      releaseDate Jira rewrites on release is *not* taken as the plan;
    * already released the first time we see it (backfill): released_at stays NULL with
      released_at_observed = False, so the transform infers it from its issues' resolution
      dates; planned_date = releaseDate.
    """
    try:
        native = str(raw["id"])
    except (KeyError, TypeError):
        raise MappingError("version payload has no id") from None
    notes = raw.get(ANNOTATION) or {}
    released = bool(raw.get("released"))
    due = parse_date(raw.get("releaseDate"))
    values: dict[str, Any] = {
        "id": row_id(source, native),
        "source_name": source,
        "scope": scope,
        "native_id": native,
        "name": raw.get("name"),
        "kind": "version",
        "start_date": parse_date(raw.get("startDate")),
        "due_date": due,
        "released": released,
        "archived": bool(raw.get("archived")),
    }
    if not released:
        values["planned_date"] = due
    elif notes.get("seen_unreleased"):
        values["released_at"] = parse_time(notes.get("first_seen_released_at"))
        values["released_at_observed"] = True
    else:
        values["planned_date"] = due
        values["released_at_observed"] = False
    return _without_nul([Record("releases", values)])


# --- worklogs --------------------------------------------------------------------------------


def map_worklog(raw: Raw, work_item_id: str, source: str) -> Record:
    """One worklog -> one ``worklogs`` row (hours; the transform sums per issue and day)."""
    try:
        native = str(raw["id"])
        seconds = raw["timeSpentSeconds"]
    except (KeyError, TypeError) as exc:
        raise MappingError(f"worklog payload lacks {exc}") from None
    started = parse_time(raw.get("started"))
    if started is None:
        raise MappingError(f"worklog {native} has no start time")
    return Record(
        "worklogs",
        {
            "id": row_id(source, native),
            "work_item_id": work_item_id,
            "author": _person_name(raw.get("author")),
            "started_at": started,
            "hours": float(seconds) / 3600.0,
        },
    )


# --- issues ----------------------------------------------------------------------------------


def attach_status_categories(issue: Raw, catalogue: Mapping[str, str]) -> Raw:
    """Store in ``issue`` the Jira category of every status id its changelog mentions.

    ``catalogue`` is status id -> category key (``GET /status``). Returns ``issue``.
    Runs in the stream, before the engine can quarantine anything: a payload it cannot read
    passes unchanged (or with no categories) to the mapping, which quarantines it.
    """
    if not isinstance(issue, dict):
        return issue
    ids: set[str] = set()
    for history in _dicts((_dict(issue.get("changelog"))).get("histories")):
        for item in _dicts(history.get("items")):
            if _is_status_item(item):
                ids.update(str(v) for v in (item.get("from"), item.get("to")) if v)
    if not isinstance(issue.get(ANNOTATION), dict):
        issue[ANNOTATION] = {}
    issue[ANNOTATION]["status_categories"] = {
        i: catalogue[i] for i in sorted(ids) if i in catalogue
    }
    return issue


def changelog_is_complete(issue: Raw) -> bool:
    """True when the embedded changelog holds every history entry (search results carry
    only the first ~20-100 entries). An unreadable count is taken as complete: nothing to
    fetch, the mapping reads (or quarantines) what came."""
    log = issue.get("changelog") if isinstance(issue, dict) else None
    if not isinstance(log, dict):
        return False
    histories = log.get("histories") or []
    total = log.get("total")
    if total is None:
        return True
    try:
        return int(log.get("startAt") or 0) == 0 and len(histories) >= int(total)
    except (TypeError, ValueError, OverflowError):
        return True


def worklog_is_complete(issue: Raw) -> bool:
    """True unless the embedded worklog list says it holds fewer entries than exist (more
    than 20); an unreadable one is taken as complete (see ``changelog_is_complete``)."""
    fields = issue.get("fields") if isinstance(issue, dict) else None
    log = fields.get("worklog") if isinstance(fields, dict) else None
    if not isinstance(log, dict):
        return True  # not requested
    total = log.get("total")
    try:
        return total is None or len(log.get("worklogs") or []) >= int(total)
    except (TypeError, ValueError, OverflowError):
        return True


def _dict(value: Any) -> Raw:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[Raw]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _is_status_item(item: Raw) -> bool:
    return item.get("fieldId") == "status" or (
        item.get("fieldId") is None and str(item.get("field") or "").lower() == "status"
    )


def _is_field_item(item: Raw, field_id: str | None, field_name: str | None) -> bool:
    if field_id is None:
        return False
    if item.get("fieldId") is not None:
        return item.get("fieldId") == field_id
    # Server/DC changelogs name the field but carry no id.
    return field_name is not None and str(item.get("field") or "").lower() == field_name.lower()


def _person_name(person: Any) -> str | None:
    if not isinstance(person, dict):
        return None
    return person.get("displayName") or person.get("name") or person.get("accountId")


def _person_native(person: Any) -> str | None:
    if not isinstance(person, dict):
        return None
    native = person.get("accountId") or person.get("key") or person.get("name")
    return str(native) if native else None


def _person(person: Any, source: str) -> Record | None:
    """A ``people`` row. ``emailAddress`` (Data Center, and Cloud where the profile shows
    it) and the Data Center user ``name`` are written only when the payload has them, so a
    payload that hides the e-mail never blanks one another payload gave."""
    native = _person_native(person)
    if native is None:
        return None
    values: dict[str, Any] = {
        "id": row_id(source, native),
        "source_name": source,
        "native_id": native,
        "display_name": person.get("displayName"),
    }
    if person.get("emailAddress"):
        values["email"] = str(person["emailAddress"])
    if person.get("name"):
        values["login"] = str(person["name"])
    return Record("people", values)


def type_category(issuetype: Raw, type_map: Mapping[str, str]) -> str:
    """Issue type -> story|bug|task|epic|incident|other: by name through ``type_map``, else
    by hierarchy (level >= 1 epic, sub-task level -1 task), else other."""
    for name in (issuetype.get("name"), issuetype.get("untranslatedName")):
        if name and str(name).strip().lower() in type_map:
            return type_map[str(name).strip().lower()]
    level = issuetype.get("hierarchyLevel")
    if isinstance(level, int) and level >= 1:
        return "epic"
    if issuetype.get("subtask") or level == -1:
        return "task"
    return "other"


def status_category(
    name: str | None, jira_key: str | None, overrides: Mapping[str, str]
) -> str | None:
    """Status -> todo|in_progress|done: the project override by name, else Jira's category."""
    if name and name.strip().lower() in overrides:
        return overrides[name.strip().lower()]
    if jira_key is None:
        return None
    return CATEGORY_OF_JIRA.get(jira_key, "todo")


def _issue_url(raw: Raw, key: str, base_url: str) -> str | None:
    self_link = raw.get("self")
    if isinstance(self_link, str) and "/rest/" in self_link:
        return f"{self_link.split('/rest/', 1)[0]}/browse/{key}"
    return f"{base_url}/browse/{key}" if base_url else None


def map_issue(raw: Raw, scope: str, settings: JiraSettings) -> Out:
    """One issue (search result with ``expand=changelog``, completed by the stream) -> its
    work item and every child row: status and estimate history, sprint membership, fix
    versions, links, worklogs, people. Child collections are sent whole, each preceded by a
    ``Replace`` so a removed link or sprint disappears."""
    source = settings.source
    try:
        native = str(raw["id"])
        key = raw["key"]
    except (KeyError, TypeError) as exc:
        raise MappingError(f"issue payload lacks {exc}") from None
    if not isinstance(key, str) or not key:
        raise MappingError(f"issue {native} has no usable key: {key!r}")
    fields = raw.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise MappingError(
            f"issue {key} has no fields (the search must send a field list: the enhanced "
            "search returns only ids otherwise)"
        )
    status = fields.get("status")
    if not isinstance(status, dict) or not status.get("name"):
        raise MappingError(f"issue {key} has no status")
    issuetype = fields.get("issuetype") or {}
    if not isinstance(issuetype, dict):
        raise MappingError(f"issue {key} has an unreadable issue type: {issuetype!r}")
    item_id = row_id(source, native)
    project = (fields.get("project") or {}).get("key") or scope
    overrides = settings.status_overrides.get(project, {})
    notes = raw.get(ANNOTATION) or {}
    jira_categories: dict[str, str] = dict(notes.get("status_categories") or {})
    current_key = (status.get("statusCategory") or {}).get("key")
    if status.get("id") and current_key:
        jira_categories.setdefault(str(status["id"]), current_key)

    created_at = parse_time(fields.get("created"))
    updated_at = parse_time(fields.get("updated"))
    fc = settings.fields
    out: Out = []

    # --- history (changelog) ---
    log = raw.get("changelog")
    histories: list[Raw] = []
    if isinstance(log, dict):
        histories = [h for h in log.get("histories") or [] if isinstance(h, dict)]
    timed = sorted(
        ((parse_time(h.get("created")), _num(h.get("id")), n) for n, h in enumerate(histories)),
        key=lambda t: (t[0] or datetime.min, t[1], t[2]),
    )
    status_rows: list[dict[str, Any]] = []
    estimate_rows: list[dict[str, Any]] = []
    sprint_changes: list[tuple[datetime, set[str], set[str]]] = []

    def category(status_id: Any, name: Any) -> str | None:
        jira_key = jira_categories.get(str(status_id)) if status_id else None
        return status_category(name, jira_key, overrides)

    for when, _, n in timed:
        history = histories[n]
        if when is None:
            continue
        hid = str(history.get("id"))
        for item in history.get("items") or []:
            if _is_status_item(item):
                status_rows.append(
                    {
                        "work_item_id": item_id,
                        "change_id": hid,
                        "changed_at": when,
                        "from_status": item.get("fromString"),
                        "to_status": item.get("toString"),
                        "from_category": category(item.get("from"), item.get("fromString")),
                        "to_category": category(item.get("to"), item.get("toString")),
                    }
                )
            elif _is_field_item(item, fc.sprint, fc.sprint_name):
                sprint_changes.append(
                    (when, _sprint_ids(item.get("from")), _sprint_ids(item.get("to")))
                )
            elif _is_field_item(item, fc.story_points, fc.story_points_name):
                estimate_rows.append(
                    {
                        "work_item_id": item_id,
                        "change_id": hid,
                        "changed_at": when,
                        "from_points": parse_story_points(_first(item, "fromString", "from")),
                        "to_points": parse_story_points(_first(item, "toString", "to")),
                    }
                )

    current_category = status_category(status.get("name"), current_key, overrides) or "todo"
    started_at = next(
        (r["changed_at"] for r in status_rows if r["to_category"] == "in_progress"), None
    )
    if started_at is None:
        first_category = status_rows[0]["from_category"] if status_rows else current_category
        if first_category == "in_progress":
            started_at = created_at  # created straight into an in-progress status

    # --- the work item ---
    resolution = fields.get("resolution") or {}
    resolution_name = str(resolution.get("name") or "").strip().lower()
    parent_key = (fields.get("parent") or {}).get("key")
    if not parent_key and fc.epic_link and isinstance(fields.get(fc.epic_link), str):
        parent_key = fields[fc.epic_link]  # Server/DC: "Epic Link" holds the epic's key
    labels = label_list(fields.get("labels"))
    points = parse_story_points(fields.get(fc.story_points)) if fc.story_points else None
    out.append(
        Record(
            "work_items",
            {
                "id": item_id,
                "source_name": source,
                "scope": scope,
                "native_id": native,
                "item_key": key,
                "url": _issue_url(raw, key, settings.base_url),
                "title": fields.get("summary"),
                "raw_type": issuetype.get("name"),
                "type_category": type_category(issuetype, settings.type_map),
                "raw_status": status.get("name"),
                "status_category": current_category,
                "priority": (fields.get("priority") or {}).get("name"),
                "story_points": points,
                "original_estimate_hours": _hours(fields.get("timeoriginalestimate")),
                "time_spent_hours": _hours(fields.get("timespent")),
                "assignee": _person_name(fields.get("assignee")),
                "assignee_id": (
                    row_id(source, native_assignee)
                    if (native_assignee := _person_native(fields.get("assignee")))
                    else None
                ),
                "reporter": _person_name(fields.get("reporter")),
                "created_at": created_at,
                "updated_at": updated_at,
                "started_at": started_at,
                "resolved_at": parse_time(fields.get("resolutiondate")),
                "due_date": parse_date(fields.get("duedate")),
                "parent_key": parent_key,
                "labels": ",".join(labels) if labels else None,
                "not_delivered": current_category == "done"
                and resolution_name in NOT_DELIVERED_RESOLUTIONS,
                "is_deleted": False,
                "deleted_at": None,
            },
        )
    )
    for person in (fields.get("assignee"), fields.get("reporter")):
        rec = _person(person, source)
        if rec is not None:
            out.append(rec)

    if isinstance(log, dict):
        out.append(Replace("status_changes", {"work_item_id": item_id}))
        out.extend(Record("status_changes", r) for r in status_rows)
        out.append(Replace("estimate_changes", {"work_item_id": item_id}))
        out.extend(Record("estimate_changes", r) for r in estimate_rows)

    # --- sprints ---
    if fc.sprint and fc.sprint in fields:
        sprints = parse_sprint_field(fields.get(fc.sprint))
        for sprint in sprints:
            # A partial row: the sprints stream (Agile API) fills scope and goal.
            out.append(Record("sprints", _sprint_values(sprint, source, partial=True)))
        membership = sprint_membership([s["id"] for s in sprints], sprint_changes, updated_at)
        out.append(Replace("sprint_items", {"work_item_id": item_id}))
        for sid, (added_at, removed_at) in sorted(membership.items(), key=lambda kv: _num(kv[0])):
            out.append(
                Record(
                    "sprint_items",
                    {
                        "sprint_id": row_id(source, sid),
                        "work_item_id": item_id,
                        "added_at": added_at,
                        "removed_at": removed_at,
                    },
                )
            )

    # --- fix versions ---
    if "fixVersions" in fields:
        out.append(Replace("work_item_releases", {"work_item_id": item_id}))
        for version in fields.get("fixVersions") or []:
            if isinstance(version, dict) and version.get("id") is not None:
                out.append(
                    Record(
                        "work_item_releases",
                        {"work_item_id": item_id, "release_id": row_id(source, version["id"])},
                    )
                )

    # --- dependencies: links, parent, sub-tasks ---
    out.append(Replace("dependencies", {"found_in": item_id}))
    deps: dict[tuple[str, str, str], str] = {}
    for link in fields.get("issuelinks") or []:
        if not isinstance(link, dict):
            continue
        kind = link_kind(link.get("type") or {}, settings.link_kinds)
        if isinstance(link.get("outwardIssue"), dict) and link["outwardIssue"].get("key"):
            # "<this> blocks <other>"
            deps.setdefault((link["outwardIssue"]["key"], key, kind), "jira_link")
        elif isinstance(link.get("inwardIssue"), dict) and link["inwardIssue"].get("key"):
            # "<other> blocks <this>"
            deps.setdefault((key, link["inwardIssue"]["key"], kind), "jira_link")
    if parent_key:
        deps.setdefault((parent_key, key, "parent"), "jira_parent")
    for sub in fields.get("subtasks") or []:
        if isinstance(sub, dict) and sub.get("key"):
            deps.setdefault((key, sub["key"], "parent"), "jira_parent")
    for (blocked, blocking, kind), origin in deps.items():
        out.append(
            Record(
                "dependencies",
                {
                    "found_in": item_id,
                    "blocked_key": blocked,
                    "blocking_key": blocking,
                    "link_kind": kind,
                    "source_name": source,
                    "origin": origin,
                },
            )
        )

    # --- worklogs ---
    worklog = fields.get("worklog")
    if settings.worklogs and isinstance(worklog, dict):
        out.append(Replace("worklogs", {"work_item_id": item_id}))
        for entry in worklog.get("worklogs") or []:
            out.append(map_worklog(entry, item_id, source))
    return _without_nul(out)


def link_kind(link_type: Raw, kinds: Mapping[str, str]) -> str:
    """Issue link type -> blocks|relates|duplicates|clones: by name through ``kinds``, else by
    the outward verb, else ``relates`` (a link we cannot classify never raises an alert)."""
    name = str(link_type.get("name") or "").strip().lower()
    if name in kinds:
        return kinds[name]
    outward = str(link_type.get("outward") or "").strip().lower()
    for verb, kind in (("blocks", "blocks"), ("duplicates", "duplicates"), ("clones", "clones")):
        if outward == verb:
            return kind
    return "relates"


def _without_nul(out: Out) -> Out:
    """Drop NUL characters from text: Jira lets them into summaries (one is in DevLake's
    fixtures) and PostgreSQL refuses them in text columns."""
    for n, o in enumerate(out):
        if not isinstance(o, Record):
            continue
        for v in o.values.values():  # a plain loop: ~2x any() over a generator, per issue
            if type(v) is str and "\x00" in v:
                out[n] = Record(o.table, {k: strip_nul(x) for k, x in o.values.items()})
                break
    return out


def _first(item: Raw, *keys: str) -> Any:
    for k in keys:
        if item.get(k) not in (None, ""):
            return item[k]
    return None


def _num(value: Any) -> tuple[int, str]:
    text = str(value)
    return (int(text), text) if text.isdigit() else (0, text)


__all__ = [
    "ANNOTATION",
    "FieldChoice",
    "JiraSettings",
    "attach_status_categories",
    "changelog_is_complete",
    "choose_fields",
    "link_kind",
    "map_issue",
    "map_sprint",
    "map_version",
    "map_worklog",
    "parse_date",
    "parse_sprint",
    "parse_sprint_field",
    "parse_story_points",
    "parse_time",
    "sprint_membership",
    "status_category",
    "type_category",
    "worklog_is_complete",
]
