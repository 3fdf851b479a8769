"""One home for what every connector's mapping shares: times, vocabularies, label maps, refs.

Why one module: the warehouse has one model (ARCHITECTURE.md, "One normalized model"), so a
Jira story, a GitHub issue and a GitLab issue must land with the same categories, the same
time convention and the same reading of "unset is not zero". Each connector maps its own
payload shape, but the rules below are written once:

* **Times** are naive UTC (the warehouse convention): :func:`utc_now`, :func:`parse_time`
  (ISO 8601 with any offset style, ``Z``, ``+0000``, or epoch seconds / milliseconds) and
  :func:`parse_date` (a calendar date stays that date).
* **Vocabularies**: type (story|bug|task|epic|incident|other), status (todo|in_progress|done)
  and link kind (blocks|relates|duplicates|clones) categories, and the default name maps
  connectors merge their users' options over (:func:`merged_map`).
* **Points**: :func:`parse_points` (a number, numeric text; negative or junk is unset) and
  :func:`points_from_labels` (``points:5``, ``sp:3``, ``8 pts``).
* **Text references** between work items, across tools: :func:`blocking_references` reads
  "blocked by PAY-12", "depends on acme/web#45", "blocked by #12" from titles and bodies.

Everything here is a pure function; nothing imports from the sync engine or the warehouse.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field

from programview import clock
from programview.errors import MappingError

__all__ = [
    "ANNOTATION",
    "DEFAULT_LABEL_TYPES",
    "DEFAULT_LINK_KINDS",
    "DEFAULT_TYPE_NAMES",
    "LINK_KINDS",
    "STATUS_CATEGORIES",
    "TYPE_CATEGORIES",
    "LinkKind",
    "Reference",
    "StatusCategory",
    "TypeMapOptions",
    "TypeCategory",
    "blocking_references",
    "category_from_labels",
    "label_list",
    "merged_map",
    "parse_date",
    "parse_points",
    "parse_time",
    "points_from_labels",
    "strip_nul",
    "to_naive_utc",
    "utc_now",
]

TypeCategory = Literal["story", "bug", "task", "epic", "incident", "other"]
StatusCategory = Literal["todo", "in_progress", "done"]
LinkKind = Literal["blocks", "relates", "duplicates", "clones"]

TYPE_CATEGORIES: tuple[TypeCategory, ...] = ("story", "bug", "task", "epic", "incident", "other")
STATUS_CATEGORIES: tuple[StatusCategory, ...] = ("todo", "in_progress", "done")
LINK_KINDS: tuple[LinkKind, ...] = ("blocks", "relates", "duplicates", "clones")

#: Key under which a stream adds to a raw payload what the mapping needs beyond the API's own
#: payload (so the stored raw alone is enough to map it again: ``programview remap``).
ANNOTATION = "programview"

T = TypeVar("T")


# --- times ----------------------------------------------------------------------------------


def utc_now() -> datetime:
    """Now, as naive UTC (the warehouse convention): ``programview.clock``, which the demo
    freezes at its simulated time."""
    return clock.utc_now()


def to_naive_utc(moment: datetime) -> datetime:
    """An aware datetime converted to UTC without tzinfo; a naive one is taken as UTC."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def parse_time(value: Any) -> datetime | None:
    """An API timestamp as naive UTC, or ``None`` when empty.

    Accepts ISO 8601 with ``Z``, ``+01:00`` or Jira's ``+0000`` offsets (and fractions of any
    length), and epoch numbers: seconds, or milliseconds when too large to be seconds. Anything
    else raises :class:`MappingError` (the payload is quarantined, not silently misread).
    """
    if type(value) is str and value:  # the usual case first (a page has ~20 per issue)
        return _parse_iso(value)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise MappingError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):
            raise MappingError(f"timestamp out of range: {value!r}") from None
    if not isinstance(value, str):
        raise MappingError(f"not a timestamp: {value!r}")
    return _parse_iso(value)


@lru_cache(maxsize=8192)
def _parse_iso(text: str) -> datetime:
    """Cached: the same sprint and release dates recur in every item that shows them."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MappingError(f"not a timestamp: {text!r}") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def parse_date(value: Any) -> date | None:
    """``"2025-03-09"`` (or a timestamp's first ten characters) as a date: a calendar date
    keeps its day, no time zone shift. Epoch numbers are read as a UTC date."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        stamp = parse_time(value)
        return stamp.date() if stamp else None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise MappingError(f"not a date: {value!r}")


# --- points ---------------------------------------------------------------------------------


def parse_points(value: Any) -> float | None:
    """Story points with "unset is not zero": ``None``, ``""``, ``"-1"``, any negative, NaN
    and text that is no number are unset (``None``); numbers and numeric text are floats."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        points = float(value)
    elif isinstance(value, str):
        try:
            points = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    if math.isnan(points) or math.isinf(points) or points < 0:
        return None
    return points


# "points:5", "points: 5", "sp:3", "SP 3", "story points: 2", "estimate:8", "8 pts", "3 points"
_POINTS_LABEL = re.compile(
    r"^\s*(?:(?:story[ _-]?points?|points?|pts|sp|estimate)\s*[:=]?\s*(\d+(?:\.\d+)?)"
    r"|(\d+(?:\.\d+)?)\s*(?:pts?|points?|sp))\s*$",
    re.IGNORECASE,
)


def points_from_labels(labels: Iterable[str]) -> float | None:
    """Points carried by a label (``points:5``, ``sp:3``, ``8 pts``); the first such label wins.
    ``None`` when no label carries points (unset, never 0)."""
    for label in labels:
        m = _POINTS_LABEL.match(label)
        if m:
            return parse_points(m.group(1) or m.group(2))
    return None


# --- category vocabularies -------------------------------------------------------------------

#: Issue type name (lower case) -> type category: Jira's defaults and their common renames,
#: GitHub's issue types (Feature, Bug, Task, Epic, Incident), and the Chinese names of a zh-CN
#: Jira (as in Apache DevLake's test data).
DEFAULT_TYPE_NAMES: dict[str, TypeCategory] = {
    "story": "story",
    "user story": "story",
    "feature": "story",
    "new feature": "story",
    "improvement": "story",
    "requirement": "story",
    "故事": "story",
    "需求": "story",
    "bug": "bug",
    "defect": "bug",
    "缺陷": "bug",
    "task": "task",
    "sub-task": "task",
    "subtask": "task",
    "sub task": "task",
    "technical task": "task",
    "spike": "task",
    "chore": "task",
    "任务": "task",
    "子任务": "task",
    "epic": "epic",
    "史诗": "epic",
    "长篇故事": "epic",
    "incident": "incident",
    "[system] incident": "incident",
    "production incident": "incident",
    "事件": "incident",
}

#: Label (lower case) -> type category, for trackers that type issues by label (GitHub without
#: issue types, GitLab): plain names, GitLab scoped labels and the common prefixed styles.
_LABEL_NAMES: tuple[tuple[str, TypeCategory], ...] = (
    ("bug", "bug"),
    ("defect", "bug"),
    ("story", "story"),
    ("user story", "story"),
    ("feature", "story"),
    ("enhancement", "story"),
    ("task", "task"),
    ("chore", "task"),
    ("epic", "epic"),
    ("incident", "incident"),
)
DEFAULT_LABEL_TYPES: dict[str, TypeCategory] = {
    f"{prefix}{name}": category
    for name, category in _LABEL_NAMES
    for prefix in ("", "type::", "type:", "type: ", "kind/", "type/")
}

#: Link type name (lower case) -> link kind (Jira's defaults; GitLab's link types).
DEFAULT_LINK_KINDS: dict[str, LinkKind] = {
    "blocks": "blocks",
    "is_blocked_by": "blocks",
    "relates": "relates",
    "relates_to": "relates",
    "duplicate": "duplicates",
    "cloners": "clones",
}


def merged_map(defaults: Mapping[str, T], overrides: Mapping[str, T]) -> dict[str, T]:
    """The defaults with a user's entries merged over them, keys trimmed and lower-cased.

    A config only lists what differs: an entry for ``"Story"`` replaces the default for
    ``"story"`` and every other default stays.
    """
    merged = {k.strip().lower(): v for k, v in defaults.items()}
    merged.update({k.strip().lower(): v for k, v in overrides.items()})
    return merged


class TypeMapOptions(BaseModel):
    """The ``type_map`` option every connector offers: extra type or label names ->
    category, merged over the defaults (``type_categories`` / ``label_categories``)."""

    #: Extra issue type (or label) names -> story|bug|task|epic|incident|other, merged over
    #: the defaults and matched case-insensitively.
    type_map: dict[str, TypeCategory] = Field(default_factory=dict)

    def type_categories(
        self, defaults: Mapping[str, TypeCategory] = DEFAULT_TYPE_NAMES
    ) -> dict[str, TypeCategory]:
        return merged_map(defaults, self.type_map)

    def label_categories(
        self, defaults: Mapping[str, TypeCategory] = DEFAULT_LABEL_TYPES
    ) -> dict[str, TypeCategory]:
        return merged_map(defaults, self.type_map)


def category_from_labels(
    labels: Iterable[str], mapping: Mapping[str, TypeCategory]
) -> TypeCategory | None:
    """The type category of the first label (in the item's order) that ``mapping`` knows.

    ``mapping`` keys are lower case (see :func:`merged_map`). An ``incident`` label wins over a
    ``bug`` label on the same item: an incident is not a defect of the product backlog.
    """
    found: list[TypeCategory] = []
    for label in labels:
        category = mapping.get(label.strip().lower())
        if category is not None:
            found.append(category)
    if not found:
        return None
    return "incident" if "incident" in found else found[0]


# --- text -----------------------------------------------------------------------------------


def label_list(value: Any, *, name_key: str | None = None) -> list[str]:
    """A payload's labels as clean names. A list of names is the API shape; ``None``
    entries are skipped, a text value is read as a comma-separated list (``"a,b"`` ->
    ``["a", "b"]``, the form the warehouse stores them in), and commas inside a name split
    it, so the stored ``labels`` column never gains empty entries. An entry that is an
    object (other than ``{name_key: ...}``) or a list raises :class:`MappingError`: the
    payload is not what the connector expects, and is quarantined rather than stored as
    the text of an object."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        raise MappingError(f"labels must be a list, got {type(value).__name__}")
    out: list[str] = []
    for n, entry in enumerate(value):
        if name_key is not None and isinstance(entry, dict):
            entry = entry.get(name_key)
        if entry is None:
            continue
        if isinstance(entry, bool) or not isinstance(entry, str | int | float):
            raise MappingError(f"label {n + 1} is {type(entry).__name__}, not text")
        out.extend(p.strip() for p in str(entry).split(",") if p.strip())
    return out


def strip_nul(value: Any) -> Any:
    """Text without NUL characters (PostgreSQL refuses them; trackers let them in)."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "")
    return value


@dataclass(frozen=True, slots=True)
class Reference:
    """ "This item is blocked by ``key``", read from text. ``key`` is normalized: Jira keys
    upper case, ``owner/repo#N`` (any depth of path) lower case, ``#N`` completed with the
    repository the text belongs to."""

    key: str
    phrase: str  # the words that introduced it, e.g. "blocked by"


# "blocked by", "depends on", "depends upon", "dependent on", "waiting on/for", "requires",
# "needs", "after" is too vague. Then one or more references separated by , / and / &.
_PHRASE = re.compile(
    r"\b(blocked\s+by|depends\s+(?:on|upon)|dependent\s+on|waiting\s+(?:on|for)|requires)\b"
    r"\s*:?\s*",
    re.IGNORECASE,
)
_REF = re.compile(
    r"(?P<path>[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)+)?#(?P<num>\d+)\b"  # acme/web#45, #12
    r"|(?P<jira>\b[A-Za-z][A-Za-z0-9_]{0,30}-\d+\b)"  # PAY-12
    r"|(?P<url>https?://[^\s)>\],;]+)"  # a URL to an issue
)
_SEPARATOR = re.compile(r"\s*(?:,|;|&|\band\b|\bor\b)\s*", re.IGNORECASE)
# GitHub / GitLab issue URLs: .../owner/repo/issues/45, .../group/sub/proj/-/issues/7
_ISSUE_URL = re.compile(
    r"^https?://[^/]+/(?:api/v\d+/repos/)?(?P<path>.+?)(?:/-)?/(?:issues|work_items)/(?P<num>\d+)"
)
_JIRA_URL = re.compile(r"/browse/(?P<key>[A-Za-z][A-Za-z0-9_]*-\d+)\b")


def _normalize_ref(match: re.Match[str], repo: str | None) -> str | None:
    if match.group("num") is not None:
        path = match.group("path")
        if path is None:
            if repo is None:
                return None
            path = repo
        return f"{path.lower()}#{match.group('num')}"
    if match.group("jira") is not None:
        return match.group("jira").upper()
    url = match.group("url") or ""
    jira = _JIRA_URL.search(url)
    if jira:
        return jira.group("key").upper()
    issue = _ISSUE_URL.match(url)
    if issue:
        return f"{issue.group('path').lower()}#{issue.group('num')}"
    return None


def blocking_references(text: str | None, repo: str | None = None) -> list[Reference]:
    """The items ``text`` says its item is blocked by, in order of appearance, each once.

    Reads "Blocked by PAY-12", "depends on acme/web#45 and #46", "blocked by: #12, #13" and
    issue URLs after such a phrase. ``repo`` (``owner/repo`` or a GitLab path) completes a bare
    ``#12``; without it a bare number is ignored. Mentions without a phrase ("see PAY-12",
    "fixes #3") are not dependencies and are ignored.
    """
    if not text:
        return []
    out: dict[str, Reference] = {}
    for phrase in _PHRASE.finditer(text):
        rest = text[phrase.end() : phrase.end() + 500]
        pos = 0
        while True:
            m = _REF.match(rest, pos)
            if m is None:
                break
            key = _normalize_ref(m, repo)
            if key is not None:
                out.setdefault(key, Reference(key, " ".join(phrase.group(1).lower().split())))
            pos = m.end()
            sep = _SEPARATOR.match(rest, pos)
            if sep is None or sep.end() == pos:
                break
            pos = sep.end()
    return list(out.values())
