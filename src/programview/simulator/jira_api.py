"""Jira Cloud (``/jira``) and Data Center (``/jira-dc``) endpoints of the simulator.

The generated organisation's Jira projects served the way the real services answer
(``/work/shared/reference/apis.md`` section 1): same paths, parameters, paging, error
bodies, and payload keys/types (``tests/test_simulator_shapes_jira.py`` checks them
against the official examples and recorded payloads).

Routes (Cloud serves ``/rest/api/3`` and ``/rest/api/2``; v3 renders rich text as ADF
JSON, v2 as plain strings. Data Center serves ``/rest/api/2`` and ``/rest/api/latest``)::

    both    GET  myself, field, status, issueLinkType, project, project/{key}
            GET  project/{key}/versions, project/{key}/version (paged)
            GET  issue/{idOrKey}  (?fields, ?expand=changelog), issue/{key}/worklog
            GET  worklog/updated?since=, worklog/deleted?since=;  POST worklog/list
            GET  /rest/agile/1.0/board, board/{id}, board/{id}/configuration,
                 board/{id}/sprint, board/{id}/issue, sprint/{id}, sprint/{id}/issue
    Cloud   GET|POST search/jql, POST search/approximate-count, GET project/search,
            GET issue/{key}/changelog, POST changelog/bulkfetch,
            GET|POST /rest/api/{2,3,latest}/search -> 410 (removed, CHANGE-2046)
    DC      GET|POST /rest/api/2/search (startAt/maxResults/total)

Choices where the real service is vague (importable constants, so tests and connector
authors can find them):

* ``SEARCH_PAGE_CAP`` (100): ``/search/jql`` accepts ``maxResults`` 1..5000 but answers
  at most 100 issues a page unless only ``id``/``key`` are requested and nothing is
  expanded (then up to 5000), like Jira shrinking pages for heavy requests. Clients
  must page on ``nextPageToken`` only. The token is a keyset cursor (the sort key of
  the last issue), so an issue updated between two pages moves to the end instead of
  shifting the others past a page boundary.
* ``CLOUD_CHANGELOG_EMBED`` (20): ``/search/jql?expand=changelog`` embeds the *newest*
  20 histories, newest first (as recorded Cloud payloads are ordered), in ``changelog``
  with ``{startAt: 0, maxResults: <returned>, total: <all>}``; ``total >
  len(histories)`` tells the client to fetch the rest (``/issue/{key}/changelog`` or
  bulkfetch, both oldest first). ``GET /issue/{key}`` and the Agile issue lists embed
  the newest 100 (``CLOUD_ISSUE_CHANGELOG_EMBED``, the old search's limit). Data Center
  embeds the full changelog, oldest first.
* Story points: Cloud uses ``customfield_10016`` "Story point estimate"
  (``jsw-story-points``, the board's estimation field); a classic float "Story Points"
  field ``customfield_10026`` exists but is empty. Data Center has no jsw-story-points
  type: ``customfield_10016`` is the float "Story Points" there. Sprint is
  ``customfield_10020`` (Cloud objects, DC legacy ``Sprint@…[…]`` strings).
* The Sprint field lists every sprint the issue is in or was in when it closed; an
  issue taken out of a sprint before it closed drops it (as Jira does).
* JQL: a subset (``project``, ``key``/``issuekey``, ``id``, ``updated``, ``created``,
  ``AND``, ``ORDER BY`` updated|created|key|issuekey|id). Dates are epoch ms, periods
  (``-15m``), or ``yyyy/MM/dd [HH:mm]`` / ``yyyy-MM-dd [HH:mm]`` read in the user's time
  zone (``Organisation.jira_user_timezone``) at minute precision. Without ORDER BY the
  order is ``created DESC``. Other syntax answers 400 in Jira's error shape.
* ``/worklog/updated`` and ``/worklog/deleted``: ``since`` inclusive, 1000 a page, the
  last minute ignored; a page never splits worklogs sharing one ``updatedTime`` and
  ``nextPage`` continues at ``until + 1``, so following it neither repeats nor skips.
  A worklog's updated time is the end of the work it logs; deleting an issue deletes
  its worklogs (``updatedTime`` = the deletion).
* ``/changelog/bulkfetch`` pages on histories (``maxResults`` default 1000): one issue's
  histories may continue on the next page; issues without matching histories are left
  out.
"""

from __future__ import annotations

import base64
import bisect
import json
import re
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.responses import Response

from programview.simulator.app import (
    JIRA,
    JIRA_DC,
    ApiError,
    Ctx,
    Router,
    agile_page,
    api_error,
    iso_date,
    jira_agile_time,
    jira_time,
    json_response,
)
from programview.simulator.generator import (
    DONE,
    JIRA_PRIORITIES,
    JIRA_SPRINT_FIELD,
    JIRA_STATUSES,
    JIRA_STORY_POINTS_FIELD,
    JIRA_TYPES,
    Cadence,
    Item,
    Organisation,
    Person,
    Release,
    Scope,
    Sprint,
    Worklog,
)

# --- limits and documented choices ----------------------------------------------------

SEARCH_MAX_RESULTS = 5000  # /search/jql maxResults must be 1..5000
SEARCH_DEFAULT_RESULTS = 50
SEARCH_PAGE_CAP = 100  # real page size unless only id/key are asked for
DC_SEARCH_MAX = 1000  # jira.search.views.default.max
CLOUD_CHANGELOG_EMBED = 20  # /search/jql (migration guide)
CLOUD_ISSUE_CHANGELOG_EMBED = 100  # GET /issue/{key}, Agile issue lists
CHANGELOG_PAGE_MAX = 100
BULKFETCH_MAX_ISSUES = 1000
BULKFETCH_MAX_FIELDS = 10
BULKFETCH_MAX_RESULTS = 10_000
BULKFETCH_DEFAULT_RESULTS = 1000
WORKLOG_EMBED = 20
WORKLOG_FEED_PAGE = 1000
WORKLOG_LIST_MAX = 1000
ISSUE_WORKLOG_MAX = 5000
AGILE_LIST_MAX = 50  # boards, sprints
AGILE_ISSUES_MAX = 100
PROJECT_SEARCH_MAX = 100
ORDER_BY_MAX = 7

CLASSIC_POINTS_FIELD = "customfield_10026"  # Cloud: exists, unused by the boards
EPIC_LINK_FIELD = "customfield_10014"  # DC: "Epic Link" (Cloud retired it for ``parent``)
REMOVED_SEARCH = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at "
    "https://developer.atlassian.com/changelog/#CHANGE-2046"
)
ISSUE_NOT_FOUND = "Issue does not exist or you do not have permission to see it."
UNBOUNDED = (
    "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
)
BAD_TOKEN = "The provided next page token is invalid or expired."

_CATEGORIES = {  # statusCategory key -> (name, colorName)
    "new": ("To Do", "blue-gray"),
    "indeterminate": ("In Progress", "yellow"),
    "done": ("Done", "green"),
}
_TYPE_IDS = {
    "epic": "10000",
    "story": "10001",
    "task": "10002",
    "subtask": "10003",
    "bug": "10004",
    "incident": "10005",
}
_TYPE_TEXT = {
    "epic": "A big user story that needs to be broken down.",
    "story": "Functionality or a feature expressed as a user goal.",
    "task": "A small, distinct piece of work.",
    "subtask": "A small piece of work that's part of a larger task.",
    "bug": "A problem or error.",
    "incident": "A problem that disrupts the service.",
}
_RESOLUTIONS = {  # name -> (id, description)
    "Done": ("10000", "Work has been completed on this issue."),
    "Won't Do": ("10001", "This issue won't be actioned."),
    "Duplicate": ("10002", "The problem is a duplicate of an existing issue."),
}
#: link kind -> (id, name, inward, outward). "Cloners" is listed, never used.
LINK_TYPES: dict[str, tuple[str, str, str, str]] = {
    "blocks": ("10000", "Blocks", "is blocked by", "blocks"),
    "cloners": ("10001", "Cloners", "is cloned by", "clones"),
    "duplicates": ("10002", "Duplicate", "is duplicated by", "duplicates"),
    "relates": ("10003", "Relates", "relates to", "relates to"),
}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ISSUE_EXPAND = "operations,versionedRepresentations,editmeta,changelog,renderedFields"

#: Every issue field the simulator serves (``*all`` / ``*navigable``).
ISSUE_FIELDS: tuple[str, ...] = (
    "summary",
    "status",
    "issuetype",
    "priority",
    "assignee",
    "reporter",
    "creator",
    "created",
    "updated",
    "resolution",
    "resolutiondate",
    "statuscategorychangedate",
    "duedate",
    "labels",
    "components",
    "fixVersions",
    "versions",
    "parent",
    "subtasks",
    "issuelinks",
    "project",
    "description",
    "environment",
    "timeoriginalestimate",
    "timeestimate",
    "timespent",
    "aggregatetimeoriginalestimate",
    "aggregatetimeestimate",
    "aggregatetimespent",
    "timetracking",
    "worklog",
    "lastViewed",
    "progress",
    "aggregateprogress",
    "workratio",
    "votes",
    "watches",
    "security",
    "issuerestriction",
    JIRA_STORY_POINTS_FIELD,
    JIRA_SPRINT_FIELD,
    "customfield_10026",  # CLASSIC_POINTS_FIELD
    "customfield_10014",  # EPIC_LINK_FIELD
)
#: Fields only one deployment has (the rest are served by both).
_CLOUD_ONLY = frozenset(
    ("statuscategorychangedate", "security", "issuerestriction", "customfield_10026")
)
_DC_ONLY = frozenset(("customfield_10014",))
_AGILE_EXTRA = ("sprint", "closedSprints", "flagged", "epic")
#: ``*all`` / ``*navigable``: everything served, plus the Agile API's extra fields there.
_ALL_FIELDS = frozenset((*ISSUE_FIELDS, *_AGILE_EXTRA))

# --- small helpers ----------------------------------------------------------------------


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _cloud(ctx: Ctx) -> bool:
    return ctx.api == JIRA


def _v3(ctx: Ctx) -> bool:
    return ctx.path.startswith("/rest/api/3/")


def _points_name(cloud: bool) -> str:
    return "Story point estimate" if cloud else "Story Points"


def _num(value: float | None) -> str | None:
    if value is None:
        return None
    return str(int(value)) if float(value).is_integer() else str(value)


def _duration(seconds: int) -> str:
    """Jira's time-tracking text with 8-hour days and 5-day weeks: ``1w 2d 3h 20m``."""
    out = []
    minutes = seconds // 60
    for unit, size in (("w", 5 * 8 * 60), ("d", 8 * 60), ("h", 60), ("m", 1)):
        n, minutes = divmod(minutes, size)
        if n:
            out.append(f"{n}{unit}")
    return " ".join(out) or "0m"


def _adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document: a paragraph per blank-line block, line breaks
    as ``hardBreak``."""
    content = []
    for block in text.split("\n\n"):
        nodes: list[dict[str, Any]] = []
        for n, line in enumerate(block.split("\n")):
            if n:
                nodes.append({"type": "hardBreak"})
            if line:
                nodes.append({"type": "text", "text": line})
        if nodes:
            content.append({"type": "paragraph", "content": nodes})
    return {"type": "doc", "version": 1, "content": content}


def _user_date(d: date) -> str:
    return f"{d.day}/{_MONTHS[d.month - 1]}/{d.year}"


def _split_list(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def _encode_token(data: Any) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(api: str, token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError as exc:
        raise api_error(api, 400, BAD_TOKEN) from exc


def _bad_request(ctx: Ctx, message: str) -> ApiError:
    return api_error(ctx.api, 400, message)


def _int_arg(ctx: Ctx, name: str, default: int) -> int:
    raw = ctx.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise _bad_request(ctx, f"The value '{raw}' for parameter '{name}' is not valid.") from exc


def _body_int(ctx: Ctx, body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_request(ctx, f"The value '{value}' for field '{name}' is not valid.")
    return value


# --- per-organisation index -------------------------------------------------------------


def _generated(org: Organisation) -> datetime:
    return org.changes[0].start if org.changes else org.now


def worklog_updated(org: Organisation, w: Worklog) -> datetime:
    """When a worklog was last written: the end of the work it logs (never after the
    organisation was generated; ``advance`` adds no worklogs)."""
    return min(w.started + timedelta(seconds=w.seconds), _generated(org))


class _Index:
    """Lookups the endpoints need, built once per organisation state.

    Rebuilt when ``advance()`` ran or items were added (``version``), so a request costs
    a bisect or a dict lookup instead of a scan of a project (``large`` has ~20k issues
    a project). Query results are cached (a few, LRU) so paging a search sorts once.
    """

    def __init__(self, org: Organisation) -> None:
        self.version = _version(org)
        scopes = sorted(org.scopes_of("jira"), key=lambda s: s.path)
        self.scopes: dict[str, Scope] = {s.path: s for s in scopes}
        self.rank = {s.path: n for n, s in enumerate(scopes)}
        self.by_updated: dict[str, tuple[list[int], list[Item]]] = {}
        self.children: dict[int, list[Item]] = {}
        self.sprint_items: dict[int, list[Item]] = {}
        self.boards: dict[int, Cadence] = {
            c.native_id: c for c in org.cadences if c.system == "jira"
        }
        feed: list[tuple[int, int]] = []
        deleted: list[tuple[int, int]] = []
        generated_ms = _ms(_generated(org))  # as worklog_updated, in ms (it runs 100k+ times)
        self.worklogs: dict[int, tuple[Item, Worklog]] = {}
        for sc in scopes:
            live = []
            for item in org.scope_items(sc, include_deleted=True):
                if item.deleted is not None:
                    deleted.extend((_ms(item.deleted), w.id) for w in item.worklogs)
                    continue
                live.append(item)
                if item.parent_id is not None:
                    self.children.setdefault(item.parent_id, []).append(item)
                for m in item.sprints:
                    if m.removed is None:
                        self.sprint_items.setdefault(m.sprint_id, []).append(item)
                for w in item.worklogs:
                    self.worklogs[w.id] = (item, w)
                    done_ms = int(w.started.timestamp()) * 1000 + w.seconds * 1000
                    feed.append((min(done_ms, generated_ms), w.id))
            live.sort(key=lambda i: (i.updated, i.id))
            self.by_updated[sc.path] = ([_ms(i.updated) for i in live], live)
        feed.sort()
        deleted.sort()
        self.worklog_feed = feed
        self.deleted_feed = deleted
        self.results: OrderedDict[Any, tuple[list[tuple[int, ...]], list[Item]]] = OrderedDict()

    def live(self, org: Organisation, item_id: int) -> Item | None:
        item = org.items.get(item_id)
        if item is None or item.deleted is not None or item.scope.path not in self.scopes:
            return None
        return item


def _version(org: Organisation) -> tuple[int, int]:
    return (len(org.changes), len(org.items))


_INDEXES: weakref.WeakKeyDictionary[Organisation, _Index] = weakref.WeakKeyDictionary()


def _index(org: Organisation) -> _Index:
    idx = _INDEXES.get(org)
    if idx is None or idx.version != _version(org):
        idx = _INDEXES[org] = _Index(org)
    return idx


def find_issue(org: Organisation, id_or_key: str) -> Item | None:
    """The live Jira issue for an id (``10042``) or key (``PAY-12``, any case)."""
    idx = _index(org)
    if id_or_key.isdigit():
        return idx.live(org, int(id_or_key))
    item = org.item_by_key(id_or_key.upper())
    return item if item is not None and item.scope.path in idx.scopes else None


# --- JQL --------------------------------------------------------------------------------

_LO, _HI = -(2**62), 2**62
_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<op>!=|>=|<=|!~|=|>|<|~)
    |(?P<punct>[(),])
    |(?P<word>[^\s"'(),=!<>~]+)""",
    re.X,
)
_OPERATORS = (
    "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', "
    "'IS' and 'IS NOT'."
)
#: JQL name (lower case) -> the date it filters on / the sort it means.
_DATE_FIELDS = {
    "updated": "updated",
    "updateddate": "updated",
    "created": "created",
    "createddate": "created",
}
_ORDER_FIELDS = {**_DATE_FIELDS, "key": "key", "issuekey": "key", "id": "id"}
#: Real Jira fields the simulator does not filter on (a clear 400 instead of a wrong answer).
_UNSUPPORTED_FIELDS = frozenset(
    (
        *("status", "statuscategory", "assignee", "reporter", "creator", "issuetype", "type"),
        *("labels", "sprint", "fixversion", "resolution", "resolved", "resolutiondate"),
        *("priority", "parent", "text", "summary", "description", "component", "duedate"),
        *("due", "epic", "watcher", "voter", "worklogdate", "rank"),
    )
)
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*-\d+")
_PERIOD = re.compile(r"([-+])?\s*((?:\d+\s*[wdhm]\s*)+)", re.I)
_DATE_FORMATS = ("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d")


@dataclass(frozen=True)
class _Tok:
    kind: str  # str | op | punct | word | end
    text: str
    pos: int  # 1-based character

    @property
    def value(self) -> str:
        if self.kind == "str":
            return re.sub(r"\\(.)", r"\1", self.text[1:-1])
        return self.text

    @property
    def shown(self) -> str:
        return self.value if self.kind == "str" else self.text


@dataclass
class _Clause:
    field: _Tok
    op: str
    values: list[_Tok]


@dataclass(frozen=True)
class Query:
    """A compiled JQL query (hashable: it keys the result cache)."""

    scopes: frozenset[str] | None = None
    include: frozenset[int] | None = None
    exclude: frozenset[int] = frozenset()
    updated: tuple[int, int] = (_LO, _HI)
    created: tuple[int, int] = (_LO, _HI)
    order: tuple[tuple[str, bool], ...] = (("created", True),)
    bounded: bool = False
    extra: tuple[Any, ...] = field(default=())  # e.g. ("sprint", 12): agile restrictions


def _jql_error(message: str, tok: _Tok) -> ApiError:
    return api_error(JIRA, 400, f"Error in the JQL Query: {message} (line 1, character {tok.pos})")


def _tokenize(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # an unterminated quote, or a lone '!'
            tok = _Tok("word", text[pos:], pos + 1)
            if text[pos] in "\"'":
                msg = f"The quoted string '{text[pos + 1 :]}' has not been completed."
            else:
                msg = f"Illegal character '{text[pos]}'."
            raise _jql_error(msg, tok)
        kind = m.lastgroup or "ws"
        if kind != "ws":
            out.append(_Tok(kind, m.group(), pos + 1))
        pos = m.end()
    out.append(_Tok("end", "", len(text) + 1))
    return out


class _Parser:
    """Recursive descent over the supported subset; errors carry Jira's wording."""

    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def is_word(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "word" and tok.text.lower() in words

    def parse(self) -> tuple[list[_Clause], list[tuple[_Tok, bool]]]:
        clauses: list[_Clause] = []
        order: list[tuple[_Tok, bool]] = []
        if self.peek().kind != "end" and not self.is_word("order"):
            clauses.append(self.clause())
            while True:
                if self.is_word("and"):
                    self.take()
                    clauses.append(self.clause())
                elif self.is_word("or"):
                    raise _jql_error(
                        "'OR' is not supported by the API simulator (only AND).", self.peek()
                    )
                else:
                    break
        if self.is_word("order"):
            self.take()
            if not self.is_word("by"):
                raise _jql_error(f"Expecting 'by' but got '{self.peek().shown}'.", self.peek())
            self.take()
            while True:
                tok = self.take()
                if tok.kind not in ("word", "str"):
                    raise _jql_error(
                        f"Expecting a field name but got '{tok.shown}'."
                        if tok.kind != "end"
                        else "Expecting a field name before the end of the query.",
                        tok,
                    )
                desc = False
                if self.is_word("asc", "desc"):
                    desc = self.take().text.lower() == "desc"
                order.append((tok, desc))
                if self.peek().kind == "punct" and self.peek().text == ",":
                    self.take()
                    continue
                break
        tok = self.peek()
        if tok.kind != "end":
            raise _jql_error(f"Expecting either 'OR' or 'AND' but got '{tok.shown}'.", tok)
        return clauses, order

    def clause(self) -> _Clause:
        fld = self.take()
        if fld.kind == "punct" and fld.text == "(":
            raise _jql_error("Parentheses are not supported by the API simulator.", fld)
        if fld.kind not in ("word", "str"):
            msg = (
                "Expecting a field name before the end of the query."
                if fld.kind == "end"
                else f"Expecting a field name but got '{fld.shown}'."
            )
            raise _jql_error(msg, fld)
        tok = self.take()
        if tok.kind == "op":
            op = tok.text
        elif tok.kind == "word" and tok.text.lower() == "in":
            op = "in"
        elif tok.kind == "word" and tok.text.lower() == "not" and self.is_word("in"):
            self.take()
            op = "not in"
        else:
            got = "the end of the query" if tok.kind == "end" else f"'{tok.shown}'"
            raise _jql_error(f"Expecting operator but got {got}. {_OPERATORS}", tok)
        if op in ("in", "not in"):
            return _Clause(fld, op, self.value_list())
        return _Clause(fld, op, [self.value()])

    def value(self) -> _Tok:
        tok = self.take()
        if tok.kind == "end":
            raise _jql_error(
                "Expecting either a value, list or function before the end of the query.", tok
            )
        if tok.kind not in ("word", "str") or (
            tok.kind == "word" and tok.text.lower() in ("and", "or", "order", "not", "in")
        ):
            raise _jql_error(
                f"Expecting either a value, list or function but got '{tok.shown}'. You must "
                f"surround '{tok.shown}' in quotation marks to use it as a value.",
                tok,
            )
        nxt = self.peek()
        if tok.kind == "word" and nxt.kind == "punct" and nxt.text == "(":
            raise _jql_error(
                f"The function '{tok.text}' is not supported by the API simulator.", tok
            )
        return tok

    def value_list(self) -> list[_Tok]:
        tok = self.take()
        if not (tok.kind == "punct" and tok.text == "("):
            raise _jql_error(f"Expecting '(' but got '{tok.shown}'.", tok)
        values = [self.value()]
        while True:
            tok = self.take()
            if tok.kind == "punct" and tok.text == ",":
                values.append(self.value())
            elif tok.kind == "punct" and tok.text == ")":
                return values
            else:
                got = "the end of the query" if tok.kind == "end" else f"'{tok.shown}'"
                raise _jql_error(f"Expecting ')' but got {got}.", tok)


def _instant(org: Organisation, tok: _Tok, field_name: str) -> int:
    """Epoch ms for a JQL date value: epoch ms, a period (``-15m``, ``"-4w 2d"``) from the
    simulated now, or a date string in the user's time zone (minute precision)."""
    text = tok.value.strip()
    if text.isdigit():
        return int(text)
    m = _PERIOD.fullmatch(text)
    if m:
        total = 0
        for n, unit in re.findall(r"(\d+)\s*([wdhm])", m.group(2), re.I):
            total += int(n) * {"w": 7 * 1440, "d": 1440, "h": 60, "m": 1}[unit.lower()]
        sign = -1 if m.group(1) == "-" else 1
        return _ms(org.now) + sign * total * 60_000
    tz = ZoneInfo(org.jira_user_timezone)
    for fmt in _DATE_FORMATS:
        try:
            local = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return _ms(local.replace(tzinfo=tz))
    raise api_error(
        JIRA,
        400,
        f"Date value '{text}' for field '{field_name}' is invalid. Valid formats include: "
        "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period "
        "format e.g. '-5d', '4w 2d'.",
    )


def _range(lo_hi: tuple[int, int], op: str, ms: int) -> tuple[int, int]:
    lo, hi = lo_hi
    if op == ">=":
        lo = max(lo, ms)
    elif op == ">":
        lo = max(lo, ms + 1)
    elif op == "<=":
        hi = min(hi, ms)
    else:  # "<"
        hi = min(hi, ms - 1)
    return lo, hi


def _project_of(org: Organisation, idx: _Index, tok: _Tok) -> str:
    text = tok.value.strip()
    for sc in idx.scopes.values():
        if text.upper() == sc.path or text == str(sc.native_id) or text.lower() == sc.name.lower():
            return sc.path
    raise api_error(JIRA, 400, f"The value '{text}' does not exist for the field 'project'.")


def _issue_of(org: Organisation, idx: _Index, tok: _Tok, name: str) -> int:
    text = tok.value.strip()
    if name == "id":
        item = idx.live(org, int(text)) if text.isdigit() else None
    else:
        if not _KEY.fullmatch(text) and not text.isdigit():
            raise api_error(JIRA, 400, f"The issue key '{text}' for field '{name}' is invalid.")
        item = find_issue(org, text)
    if item is None:
        raise api_error(JIRA, 400, f"An issue with key '{text}' does not exist for field '{name}'.")
    return item.id


def compile_jql(org: Organisation, text: str | None, default_order: bool = True) -> Query:
    """Parse and check a JQL string against the organisation (400 errors as Jira words
    them). Errors are raised in the Jira Cloud shape; DC uses the same bodies."""
    idx = _index(org)
    clauses, order_toks = _Parser(text or "").parse()
    scopes: set[str] | None = None
    include: set[int] | None = None
    exclude: set[int] = set()
    ranges = {"updated": (_LO, _HI), "created": (_LO, _HI)}
    for cl in clauses:
        name = cl.field.value.strip().lower()
        shown = cl.field.value.strip()
        positive = cl.op in ("=", "in")
        if name == "project":
            if cl.op not in ("=", "!=", "in", "not in"):
                raise api_error(
                    JIRA, 400, f"The operator '{cl.op}' is not supported by the 'project' field."
                )
            found = {_project_of(org, idx, v) for v in cl.values}
            chosen = found if positive else set(idx.scopes) - found
            scopes = chosen if scopes is None else scopes & chosen
        elif name in ("key", "issuekey", "id"):
            if cl.op not in ("=", "!=", "in", "not in"):
                raise api_error(
                    JIRA, 400, f"The operator '{cl.op}' is not supported by the '{shown}' field."
                )
            ids = {_issue_of(org, idx, v, "id" if name == "id" else shown) for v in cl.values}
            if positive:
                include = ids if include is None else include & ids
            else:
                exclude |= ids
        elif name in _DATE_FIELDS:
            if cl.op not in (">=", ">", "<=", "<"):
                raise api_error(
                    JIRA,
                    400,
                    f"The operator '{cl.op}' is not supported by the API simulator for the "
                    f"'{shown}' field (use >=, >, <=, <).",
                )
            key = _DATE_FIELDS[name]
            ranges[key] = _range(ranges[key], cl.op, _instant(org, cl.values[0], shown))
        elif name in _UNSUPPORTED_FIELDS or name.startswith("cf["):
            raise _jql_error(
                f"The field '{shown}' is not supported by the API simulator.", cl.field
            )
        else:
            raise api_error(
                JIRA,
                400,
                f"Field '{shown}' does not exist or you do not have permission to view it.",
            )
    if len(order_toks) > ORDER_BY_MAX:
        raise _jql_error(
            f"The ORDER BY clause may have at most {ORDER_BY_MAX} fields.",
            order_toks[ORDER_BY_MAX][0],
        )
    order: list[tuple[str, bool]] = []
    for tok, desc in order_toks:
        name = tok.value.strip().lower()
        if name in _ORDER_FIELDS:
            order.append((_ORDER_FIELDS[name], desc))
        elif name in _UNSUPPORTED_FIELDS:
            raise _jql_error(
                f"Ordering by '{tok.value}' is not supported by the API simulator.", tok
            )
        else:
            raise api_error(
                JIRA,
                400,
                f"Field '{tok.value}' does not exist or you do not have permission to view it.",
            )
    return Query(
        scopes=frozenset(scopes) if scopes is not None else None,
        include=frozenset(include) if include is not None else None,
        exclude=frozenset(exclude),
        updated=ranges["updated"],
        created=ranges["created"],
        order=tuple(order) if order or not default_order else (("created", True),),
        bounded=bool(clauses),
    )


def _sort_key(idx: _Index, order: Sequence[tuple[str, bool]]) -> Callable[[Item], tuple[int, ...]]:
    rank = idx.rank

    def key(item: Item) -> tuple[int, ...]:
        parts: list[int] = []
        for name, desc in order:
            if name == "updated":
                values: tuple[int, ...] = (_ms(item.updated),)
            elif name == "created":
                values = (_ms(item.created),)
            elif name == "key":
                values = (rank[item.scope.path], item.number)
            else:
                values = (item.id,)
            parts.extend(-v if desc else v for v in values)
        parts.append(item.id)  # total order: ties never straddle a page boundary
        return tuple(parts)

    return key


def run_query(
    org: Organisation, query: Query, base: Sequence[Item] | None = None
) -> tuple[list[tuple[int, ...]], list[Item]]:
    """Matching live issues in query order, with their sort keys (for keyset paging).
    ``base`` restricts to a board's or sprint's issues (then ``query.extra`` names it)."""
    idx = _index(org)
    cached = idx.results.get(query)
    if cached is not None:
        idx.results.move_to_end(query)
        return cached
    lo, hi = query.updated
    c_lo, c_hi = query.created
    if base is not None:
        cands: Iterable[Item] = (i for i in base if lo <= _ms(i.updated) <= hi)
    elif query.include is not None:
        cands = (
            item
            for item in (idx.live(org, i) for i in query.include)
            if item is not None and lo <= _ms(item.updated) <= hi
        )
    else:
        chunks = []
        for path in sorted(query.scopes if query.scopes is not None else idx.scopes):
            stamps, items = idx.by_updated[path]
            chunks.append(items[bisect.bisect_left(stamps, lo) : bisect.bisect_right(stamps, hi)])
        cands = (i for chunk in chunks for i in chunk)
    matched = [
        i
        for i in cands
        if (query.scopes is None or i.scope.path in query.scopes)
        and (query.include is None or i.id in query.include)
        and i.id not in query.exclude
        and (c_lo == _LO and c_hi == _HI or c_lo <= _ms(i.created) <= c_hi)
    ]
    key = _sort_key(idx, query.order)
    decorated = sorted((key(i), i) for i in matched) if matched else []
    result = ([k for k, _ in decorated], [i for _, i in decorated])
    idx.results[query] = result
    if len(idx.results) > 16:
        idx.results.popitem(last=False)
    return result


# --- rendering --------------------------------------------------------------------------


def parse_fields(raw: Sequence[str] | None, default: str) -> frozenset[str] | None:
    """The issue fields asked for: ``*all``/``*navigable`` (everything served), names,
    ``-name`` exclusions. None = only ``id`` (the enhanced search default)."""
    names = _split_list(raw) if raw else [default]
    chosen: set[str] = set()
    for name in names:
        if name in ("*all", "*navigable"):
            chosen.update(_ALL_FIELDS)
        elif not name.startswith("-"):
            chosen.add(name)
    for name in names:
        if name.startswith("-"):
            chosen.discard(name[1:])
    chosen.discard("id")
    if not chosen and "id" in names:
        return None
    return frozenset(chosen)


class _Render:
    """Renders organisation objects as one request's Jira flavour: Cloud or DC users,
    v3 ADF or v2 strings, URLs under the request's base URL. Caches the small shared
    objects (users, statuses…) for the request."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.org = ctx.org
        self.idx = _index(ctx.org)
        self.cloud = _cloud(ctx)
        self.adf = _v3(ctx)
        self.base = ctx.base_url
        self.api = f"{ctx.base_url}/rest/api/{'3' if self.adf else '2'}"
        self.tz = ctx.org.jira_user_timezone
        self._users: dict[int, dict[str, Any]] = {}
        self._statuses: dict[str, dict[str, Any]] = {}

    # --- small objects ---
    def avatars(self, kind: str, ident: str) -> dict[str, str]:
        return {
            size: f"{self.base}/secure/{kind}avatar?size={name}&avatarId={ident}"
            for size, name in (
                ("48x48", "large"),
                ("24x24", "small"),
                ("16x16", "xsmall"),
                ("32x32", "medium"),
            )
        }

    def user(self, person_id: int | None) -> dict[str, Any] | None:
        """A user as embedded in payloads. Cloud leaves ``emailAddress`` out (profile
        privacy hides it for almost everyone; ``/myself`` shows one's own); DC sends it."""
        if person_id is None:
            return None
        cached = self._users.get(person_id)
        if cached is not None:
            return cached
        p: Person = self.org.person(person_id)
        if self.cloud:
            out = {
                "self": f"{self.api}/user?accountId={p.account_id}",
                "accountId": p.account_id,
                "avatarUrls": self.avatars("user", p.account_id),
                "displayName": p.name,
                "active": True,
                "timeZone": self.tz,
                "accountType": "atlassian",
            }
        else:
            out = {
                "self": f"{self.api}/user?username={p.login}",
                "name": p.login,
                "key": f"JIRAUSER{10000 + p.id}",
                "emailAddress": p.email,
                "avatarUrls": self.avatars("user", p.login),
                "displayName": p.name,
                "active": True,
                "timeZone": self.tz,
            }
        self._users[person_id] = out
        return out

    def status(self, status: str) -> dict[str, Any]:
        cached = self._statuses.get(status)
        if cached is None:
            sid, name, cat, cat_id = JIRA_STATUSES[status]
            cat_name, color = _CATEGORIES[cat]
            cached = self._statuses[status] = {
                "self": f"{self.api}/status/{sid}",
                "description": "",
                "iconUrl": f"{self.base}/images/icons/statuses/generic.png",
                "name": name,
                "id": sid,
                "statusCategory": {
                    "self": f"{self.api}/statuscategory/{cat_id}",
                    "id": cat_id,
                    "key": cat,
                    "colorName": color,
                    "name": cat_name,
                },
            }
        return cached

    def issuetype(self, typ: str, embedded: bool = False) -> dict[str, Any]:
        """Cloud adds ``untranslatedName`` and ``hierarchyLevel`` (1 epic, 0 standard,
        -1 sub-task); Server/DC issue types have neither."""
        name, level = JIRA_TYPES[typ]
        tid = _TYPE_IDS[typ]
        out: dict[str, Any] = {
            "self": f"{self.api}/issuetype/{tid}",
            "id": tid,
            "description": _TYPE_TEXT[typ],
            "iconUrl": f"{self.base}/rest/api/2/universal_avatar/view/type/issuetype/avatar/"
            f"{10300 + int(tid) - 10000}?size=medium",
            "name": name,
            "subtask": level == -1,
            "avatarId": 10300 + int(tid) - 10000,
        }
        if self.cloud:
            if not embedded:  # not inside parent/subtasks/issuelinks references
                out["untranslatedName"] = name
            out["hierarchyLevel"] = level
        return out

    def priority(self, priority: str) -> dict[str, Any]:
        pid, name = JIRA_PRIORITIES[priority]
        return {
            "self": f"{self.api}/priority/{pid}",
            "iconUrl": f"{self.base}/images/icons/priorities/{priority}.svg",
            "name": name,
            "id": pid,
        }

    def resolution(self, name: str | None) -> dict[str, Any] | None:
        if name is None:
            return None
        rid, text = _RESOLUTIONS[name]
        return {
            "self": f"{self.api}/resolution/{rid}",
            "id": rid,
            "description": text,
            "name": name,
        }

    def project_ref(self, sc: Scope) -> dict[str, Any]:
        out: dict[str, Any] = {
            "self": f"{self.api}/project/{sc.native_id}",
            "id": str(sc.native_id),
            "key": sc.path,
            "name": sc.name,
        }
        if self.cloud:  # team-managed ("simplified") projects are a Cloud thing
            out.update(projectTypeKey="software", simplified=False)
        out["avatarUrls"] = self.avatars("project", str(sc.native_id))
        return out

    def project(self, sc: Scope, expand: Iterable[str] = ()) -> dict[str, Any]:
        out = {
            "expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
            **self.project_ref(sc),
            "projectTypeKey": "software",
        }
        if self.cloud:
            out.update(style="classic", isPrivate=False, properties={})
        if "insight" in expand:
            stamps, items = self.idx.by_updated[sc.path]
            out["insight"] = {
                "totalIssueCount": len(items),
                "lastIssueUpdateTime": jira_time(items[-1].updated) if items else None,
            }
        return out

    def project_full(self, sc: Scope) -> dict[str, Any]:
        program_project = self.org.project(sc.project)
        out = self.project(sc)
        out.update(
            description=f"{sc.name} ({program_project.name})",
            lead=self.user(sc.native_id % len(self.org.people)),
            components=[],
            issueTypes=[self.issuetype(t) for t in _TYPE_IDS],
            assigneeType="UNASSIGNED",
            versions=[self.version(r, full=True) for r in self.org.releases_of(sc)],
            archived=False,
            roles={},
        )
        return out

    def version(self, rel: Release, full: bool = False) -> dict[str, Any]:
        released = rel.released_at is not None
        # Jira keeps no release timestamp: releasing usually rewrites releaseDate.
        day = rel.released_at.date() if rel.released_at is not None else rel.due
        out: dict[str, Any] = {
            "self": f"{self.api}/version/{rel.native_id}",
            "id": str(rel.native_id),
            "description": "",
            "name": rel.name,
            "archived": False,
            "released": released,
            "releaseDate": iso_date(day),
        }
        if full:
            out.update(
                startDate=iso_date(rel.start),
                userStartDate=_user_date(rel.start),
                userReleaseDate=_user_date(day),
                overdue=not released and rel.due < self.org.now.date(),
                projectId=self.org.scope(rel.scope_path).native_id,
            )
        return out

    def issue_ref(self, item: Item) -> dict[str, Any]:
        """The short issue inside parent/subtasks/issuelinks."""
        return {
            "id": str(item.id),
            "key": item.key,
            "self": f"{self.api}/issue/{item.id}",
            "fields": {
                "summary": item.title,
                "status": self.status(item.status),
                "priority": self.priority(item.priority),
                "issuetype": self.issuetype(item.type, embedded=True),
            },
        }

    def sprint(self, spr: Sprint, board: int, agile: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"id": spr.native_id}
        if agile:
            out["self"] = f"{self.base}/rest/agile/1.0/sprint/{spr.native_id}"
        out.update(
            state=spr.state,
            name=spr.name,
            startDate=jira_agile_time(spr.start),
            endDate=jira_agile_time(spr.end),
        )
        if spr.state == "closed":
            out["completeDate"] = jira_agile_time(spr.completed)
        out["originBoardId" if agile else "boardId"] = board
        out["goal"] = spr.goal
        return out

    def sprint_legacy(self, spr: Sprint, board: int) -> str:
        """Server/DC ``com.atlassian.greenhopper.service.sprint.Sprint@…[…]`` form."""
        done = jira_agile_time(spr.completed) if spr.state == "closed" else "<null>"
        active = jira_agile_time(spr.start) if spr.state != "future" else "<null>"
        return (
            f"com.atlassian.greenhopper.service.sprint.Sprint@{zlib.crc32(spr.name.encode()):x}"
            f"[id={spr.native_id},rapidViewId={board},state={spr.state.upper()},"
            f"name={spr.name},startDate={jira_agile_time(spr.start)},"
            f"endDate={jira_agile_time(spr.end)},completeDate={done},activatedDate={active},"
            f"sequence={spr.native_id},goal={spr.goal},synced=false,autoStartStop=false,"
            f"incompleteIssuesDestinationId=<null>]"
        )

    def sprints_of(self, item: Item) -> list[Sprint]:
        ids = sorted({m.sprint_id for m in item.sprints if m.removed is None})
        return [self.org.sprints[s] for s in ids]

    def board_of(self, item: Item) -> int:
        cid = item.scope.cadence_id
        return self.org.cadence(cid).native_id if cid is not None else 0

    # --- time tracking ---
    def _tracking(self, item: Item) -> tuple[int | None, int | None, int | None]:
        spent = item.time_spent_s or None
        orig = item.original_estimate_s
        remaining = max(0, orig - (spent or 0)) if orig is not None else None
        return orig, remaining, spent

    # --- the issue ---
    def issue(
        self,
        item: Item,
        fields: frozenset[str] | None,
        changelog: bool = False,
        agile: bool = False,
        embed: int | None = None,
    ) -> dict[str, Any]:
        """An issue with the requested fields; ``changelog`` embeds the newest ``embed``
        histories on Cloud (default ``CLOUD_ISSUE_CHANGELOG_EMBED``), all of them on DC."""
        if fields is None:
            return {"id": str(item.id)}
        out: dict[str, Any] = {
            "expand": _ISSUE_EXPAND,
            "id": str(item.id),
            "self": (
                f"{self.base}/rest/agile/1.0/issue/{item.id}"
                if agile
                else f"{self.api}/issue/{item.id}"
            ),
            "key": item.key,
            "fields": {name: self.field(item, name) for name in self._order(fields, agile)},
        }
        if not self.cloud and item.type != "subtask":
            # Server/DC: only sub-tasks have a parent; epics link through "Epic Link"
            out["fields"].pop("parent", None)
        if changelog:
            limit = CLOUD_ISSUE_CHANGELOG_EMBED if embed is None else embed
            out["changelog"] = self.embedded_changelog(item, limit)
        return out

    def _order(self, fields: frozenset[str], agile: bool) -> list[str]:
        """Requested fields this flavour serves, in a stable order; unknown names are
        left out (as Jira does)."""
        skip = _DC_ONLY if self.cloud else _CLOUD_ONLY
        served = [f for f in ISSUE_FIELDS if f in fields and f not in skip]
        if agile:
            served += [f for f in _AGILE_EXTRA if f in fields]
        return served

    def field(self, item: Item, name: str) -> Any:
        """One issue field's value in this flavour (one branch per field)."""
        org = self.org
        if name == "summary":
            return item.title
        if name == "status":
            return self.status(item.status)
        if name == "issuetype":
            return self.issuetype(item.type)
        if name == "priority":
            return self.priority(item.priority)
        if name == "assignee":
            return self.user(item.assignee)
        if name in ("reporter", "creator"):
            return self.user(item.reporter)
        if name == "created":
            return jira_time(item.created)
        if name == "updated":
            return jira_time(item.updated)
        if name == "resolution":
            return self.resolution((item.resolution or "Done") if item.is_done else None)
        if name == "resolutiondate":
            return jira_time(item.resolved)
        if name == "statuscategorychangedate":
            last = item.status_history[0].at
            for prev, ch in zip(item.status_history, item.status_history[1:], strict=False):
                if JIRA_STATUSES[prev.status][2] != JIRA_STATUSES[ch.status][2]:
                    last = ch.at
            return jira_time(last)
        if name == "duedate":
            return iso_date(item.due)
        if name == "labels":
            return list(item.labels)
        if name in ("components", "versions"):
            return []
        if name == "fixVersions":
            rel = org.releases.get(item.release_id) if item.release_id is not None else None
            return [self.version(rel)] if rel is not None else []
        if name == "parent":
            parent = self.idx.live(org, item.parent_id) if item.parent_id is not None else None
            return self.issue_ref(parent) if parent is not None else None
        if name == EPIC_LINK_FIELD:
            parent = self.idx.live(org, item.parent_id) if item.parent_id is not None else None
            return parent.key if parent is not None and parent.type == "epic" else None
        if name == "subtasks":
            return [self.issue_ref(c) for c in self.idx.children.get(item.id, ())]
        if name == "issuelinks":
            return self.issuelinks(item)
        if name == "project":
            return self.project_ref(item.scope)
        if name == "description":
            text = org.description(item)
            return _adf(text) if self.adf else text
        if name in ("environment", "lastViewed"):
            return None
        if name in ("timeoriginalestimate", "timeestimate", "timespent"):
            pos = ("timeoriginalestimate", "timeestimate", "timespent").index(name)
            return self._tracking(item)[pos]
        if name.startswith("aggregatetime"):  # the issue plus its sub-tasks
            pos = {"aggregatetimeoriginalestimate": 0, "aggregatetimeestimate": 1}.get(name, 2)
            family = (item, *self.idx.children.get(item.id, ()))
            values = [v for v in (self._tracking(i)[pos] for i in family) if v is not None]
            return sum(values) if values else None
        if name in ("progress", "aggregateprogress"):
            members = [item]
            if name == "aggregateprogress":
                members += self.idx.children.get(item.id, [])
            done = sum(self._tracking(i)[2] or 0 for i in members)
            left = sum(self._tracking(i)[1] or 0 for i in members)
            out_p: dict[str, Any] = {"progress": done, "total": done + left}
            if done + left:
                out_p["percent"] = done * 100 // (done + left)
            return out_p
        if name == "workratio":
            orig, _, spent = self._tracking(item)
            return (spent or 0) * 100 // orig if orig else -1
        if name == "votes":
            return {"self": f"{self.api}/issue/{item.key}/votes", "votes": 0, "hasVoted": False}
        if name == "watches":
            return {
                "self": f"{self.api}/issue/{item.key}/watchers",
                "watchCount": 1,
                "isWatching": False,
            }
        if name == "security":
            return None
        if name == "issuerestriction":
            return {"issuerestrictions": {}, "shouldDisplay": False}
        if name == "timetracking":
            orig, remaining, spent = self._tracking(item)
            out: dict[str, Any] = {}
            if orig is not None:
                out["originalEstimate"] = _duration(orig)
                out["remainingEstimate"] = _duration(remaining or 0)
            if spent is not None:
                out["timeSpent"] = _duration(spent)
            if orig is not None:
                out["originalEstimateSeconds"] = orig
                out["remainingEstimateSeconds"] = remaining
            if spent is not None:
                out["timeSpentSeconds"] = spent
            return out
        if name == "worklog":
            logs = item.worklogs
            return {
                "startAt": 0,
                "maxResults": WORKLOG_EMBED,
                "total": len(logs),
                "worklogs": [self.worklog(item, w) for w in logs[:WORKLOG_EMBED]],
            }
        if name == JIRA_STORY_POINTS_FIELD:
            return item.points
        if name == CLASSIC_POINTS_FIELD:
            return None
        if name == JIRA_SPRINT_FIELD:
            sprints = self.sprints_of(item)
            if not sprints:
                return None
            board = self.board_of(item)
            if self.cloud:
                return [self.sprint(s, board) for s in sprints]
            return [self.sprint_legacy(s, board) for s in sprints]
        if name in _AGILE_EXTRA:
            return self.agile_field(item, name)
        return None

    def agile_field(self, item: Item, name: str) -> Any:
        board = self.board_of(item)
        if name == "flagged":
            return False
        if name == "sprint":
            current = self.org.current_sprint(item)
            return (
                self.sprint(current, board, agile=True)
                if current is not None and current.state != "closed"
                else None
            )
        if name == "closedSprints":
            return [
                self.sprint(s, board, agile=True)
                for s in self.sprints_of(item)
                if s.state == "closed"
            ]
        parent = self.idx.live(self.org, item.parent_id) if item.parent_id is not None else None
        if parent is None or parent.type != "epic":
            return None
        return {
            "id": parent.id,
            "key": parent.key,
            "self": f"{self.base}/rest/agile/1.0/epic/{parent.id}",
            "name": parent.title,
            "summary": parent.title,
            "color": {"key": f"color_{parent.id % 9 + 1}"},
            "done": parent.is_done,
        }

    def issuelinks(self, item: Item) -> list[dict[str, Any]]:
        out = []
        for lk in self.org.links_of(item):
            if lk.via != "native" or lk.kind not in LINK_TYPES:
                continue
            outward = lk.from_id == item.id
            other = self.idx.live(self.org, lk.to_id if outward else lk.from_id)
            if other is None:
                continue
            tid, name, inward, outward_text = LINK_TYPES[lk.kind]
            out.append(
                {
                    "id": str(lk.id),
                    "self": f"{self.api}/issueLink/{lk.id}",
                    "type": {
                        "id": tid,
                        "name": name,
                        "inward": inward,
                        "outward": outward_text,
                        "self": f"{self.api}/issueLinkType/{tid}",
                    },
                    # outwardIssue: this issue <outward> it ("blocks"); inwardIssue: this
                    # issue <inward> it ("is blocked by").
                    ("outwardIssue" if outward else "inwardIssue"): self.issue_ref(other),
                }
            )
        return out

    def worklog(self, item: Item, w: Worklog) -> dict[str, Any]:
        when = jira_time(worklog_updated(self.org, w))
        text = f"Worked on {item.key}"
        return {
            "self": f"{self.api}/issue/{item.id}/worklog/{w.id}",
            "author": self.user(w.author),
            "updateAuthor": self.user(w.author),
            "comment": _adf(text) if self.adf else text,
            "created": when,
            "updated": when,
            "started": jira_time(w.started),
            "timeSpent": _duration(w.seconds),
            "timeSpentSeconds": w.seconds,
            "id": str(w.id),
            "issueId": str(item.id),
        }

    # --- changelog ---
    def histories(self, item: Item) -> list[dict[str, Any]]:
        """The issue's changelog, oldest first: status (+ resolution), story points and
        Sprint changes, grouped per instant. Ids are stable across ``advance``."""
        return [
            {
                "id": str(item.id * 1000 + n),
                "author": self.user(author),
                "created": jira_time(at),
                "items": entries,
            }
            for n, (at, author, entries) in enumerate(change_events(self.org, item, self.cloud))
        ]

    def embedded_changelog(self, item: Item, limit: int) -> dict[str, Any]:
        hs = self.histories(item)
        shown = hs[::-1][:limit] if self.cloud else hs
        return {"startAt": 0, "maxResults": len(shown), "total": len(hs), "histories": shown}


def change_events(
    org: Organisation, item: Item, cloud: bool
) -> list[tuple[datetime, int, list[dict[str, Any]]]]:
    """An issue's changelog as (instant, author person id, changelog items), oldest
    first: what every changelog endpoint renders (``cloud`` names the points field)."""
    events: dict[datetime, list[dict[str, Any]]] = {}
    author = item.assignee if item.assignee is not None else item.reporter
    hist = item.status_history
    last_done = max((n for n, ch in enumerate(hist) if ch.status == DONE), default=-1)
    for n in range(1, len(hist)):
        prev, ch = hist[n - 1], hist[n]
        old, new = JIRA_STATUSES[prev.status], JIRA_STATUSES[ch.status]
        entries = events.setdefault(ch.at, [])
        entries.append(
            {
                "field": "status",
                "fieldtype": "jira",
                "fieldId": "status",
                "from": old[0],
                "fromString": old[1],
                "to": new[0],
                "toString": new[1],
            }
        )
        if ch.status == DONE and prev.status != DONE:
            res = (item.resolution or "Done") if n == last_done and item.is_done else "Done"
            rid = _RESOLUTIONS[res][0]
            entries.append(_res_item(None, None, rid, res))
        elif prev.status == DONE and ch.status != DONE:
            entries.append(_res_item("10000", "Done", None, None))
    name = _points_name(cloud)
    for prev_p, ch_p in zip(item.points_history, item.points_history[1:], strict=False):
        if prev_p.points != ch_p.points:
            events.setdefault(ch_p.at, []).append(
                {
                    "field": name,
                    "fieldtype": "custom",
                    "fieldId": JIRA_STORY_POINTS_FIELD,
                    "from": None,
                    "fromString": _num(prev_p.points),
                    "to": None,
                    "toString": _num(ch_p.points),
                }
            )
    moments = sorted(
        {m.added for m in item.sprints if m.added > item.created}
        | {m.removed for m in item.sprints if m.removed is not None}
    )
    for at in moments:
        before = sorted(
            {
                m.sprint_id
                for m in item.sprints
                if m.added < at and (m.removed is None or m.removed >= at)
            }
        )
        after = sorted(
            {
                m.sprint_id
                for m in item.sprints
                if m.added <= at and (m.removed is None or m.removed > at)
            }
        )
        if before != after:
            events.setdefault(at, []).append(
                {
                    "field": "Sprint",
                    "fieldtype": "custom",
                    "fieldId": JIRA_SPRINT_FIELD,
                    "from": ", ".join(str(org.sprints[s].native_id) for s in before),
                    "fromString": ", ".join(org.sprints[s].name for s in before),
                    "to": ", ".join(str(org.sprints[s].native_id) for s in after),
                    "toString": ", ".join(org.sprints[s].name for s in after),
                }
            )
    return [(at, author, events[at]) for at in sorted(events)]


def _res_item(frm: str | None, frm_s: str | None, to: str | None, to_s: str | None) -> dict:
    return {
        "field": "resolution",
        "fieldtype": "jira",
        "fieldId": "resolution",
        "from": frm,
        "fromString": frm_s,
        "to": to,
        "toString": to_s,
    }


# --- static catalogues ------------------------------------------------------------------


def _field_list(ctx: Ctx) -> list[dict[str, Any]]:
    cloud = _cloud(ctx)
    system: list[tuple[str, str, dict[str, Any], bool]] = [  # id, name, schema, orderable
        ("summary", "Summary", {"type": "string"}, True),
        ("status", "Status", {"type": "status"}, False),
        ("issuetype", "Issue Type", {"type": "issuetype"}, True),
        ("priority", "Priority", {"type": "priority"}, True),
        ("assignee", "Assignee", {"type": "user"}, True),
        ("reporter", "Reporter", {"type": "user"}, True),
        ("creator", "Creator", {"type": "user"}, False),
        ("created", "Created", {"type": "datetime"}, False),
        ("updated", "Updated", {"type": "datetime"}, False),
        ("resolution", "Resolution", {"type": "resolution"}, True),
        ("resolutiondate", "Resolved", {"type": "datetime"}, False),
        ("statuscategorychangedate", "Status Category Changed", {"type": "datetime"}, False),
        ("duedate", "Due date", {"type": "date"}, True),
        ("labels", "Labels", {"type": "array", "items": "string"}, True),
        ("components", "Components", {"type": "array", "items": "component"}, True),
        ("fixVersions", "Fix versions", {"type": "array", "items": "version"}, True),
        ("versions", "Affects versions", {"type": "array", "items": "version"}, True),
        ("parent", "Parent", {"type": "issuelink"}, True),
        ("subtasks", "Sub-tasks", {"type": "array", "items": "issuelinks"}, False),
        ("issuelinks", "Linked Issues", {"type": "array", "items": "issuelinks"}, True),
        ("project", "Project", {"type": "project"}, False),
        ("description", "Description", {"type": "string"}, True),
        ("environment", "Environment", {"type": "string"}, True),
        ("timeoriginalestimate", "Original estimate", {"type": "number"}, False),
        ("timeestimate", "Remaining Estimate", {"type": "number"}, False),
        ("timespent", "Time Spent", {"type": "number"}, False),
        ("aggregatetimeoriginalestimate", "Σ Original Estimate", {"type": "number"}, False),
        ("aggregatetimeestimate", "Σ Remaining Estimate", {"type": "number"}, False),
        ("aggregatetimespent", "Σ Time Spent", {"type": "number"}, False),
        ("timetracking", "Time tracking", {"type": "timetracking"}, True),
        ("worklog", "Log Work", {"type": "array", "items": "worklog"}, True),
        ("lastViewed", "Last Viewed", {"type": "datetime"}, False),
        ("progress", "Progress", {"type": "progress"}, False),
        ("aggregateprogress", "Σ Progress", {"type": "progress"}, False),
        ("workratio", "Work Ratio", {"type": "number"}, False),
        ("votes", "Votes", {"type": "votes"}, False),
        ("watches", "Watchers", {"type": "watches"}, False),
        ("security", "Security Level", {"type": "securitylevel"}, True),
        ("issuerestriction", "Restrict to", {"type": "issuerestriction"}, True),
    ]
    skip = _DC_ONLY if cloud else _CLOUD_ONLY
    out: list[dict[str, Any]] = []
    for fid, name, schema, orderable in system:
        if fid in skip:
            continue
        out.append(
            {
                "id": fid,
                **({"key": fid} if cloud else {}),  # Server/DC field entries have no key
                "name": name,
                "custom": False,
                "orderable": orderable,
                "navigable": True,
                "searchable": True,
                "clauseNames": [fid],
                "schema": {**schema, "system": fid},
            }
        )
    out.append(
        {
            "id": "issuekey",
            **({"key": "issuekey"} if cloud else {}),
            "name": "Key",
            "custom": False,
            "orderable": False,
            "navigable": True,
            "searchable": False,
            "clauseNames": ["id", "issue", "issuekey", "key"],
        }
    )
    customs: list[tuple[str, str, str, dict[str, Any]]] = [
        (
            JIRA_SPRINT_FIELD,
            "Sprint",
            "com.pyxis.greenhopper.jira:gh-sprint",
            {"type": "array", "items": "json" if cloud else "string"},
        )
    ]
    if cloud:
        customs += [
            (
                JIRA_STORY_POINTS_FIELD,
                "Story point estimate",
                "com.pyxis.greenhopper.jira:jsw-story-points",
                {"type": "number"},
            ),
            (
                CLASSIC_POINTS_FIELD,
                "Story Points",
                "com.atlassian.jira.plugin.system.customfieldtypes:float",
                {"type": "number"},
            ),
        ]
    else:
        customs += [
            (
                JIRA_STORY_POINTS_FIELD,
                "Story Points",
                "com.atlassian.jira.plugin.system.customfieldtypes:float",
                {"type": "number"},
            ),
            (
                EPIC_LINK_FIELD,
                "Epic Link",
                "com.pyxis.greenhopper.jira:gh-epic-link",
                {"type": "any"},
            ),
        ]
    for fid, name, custom, schema in customs:
        num = int(fid.rsplit("_", 1)[1])
        entry: dict[str, Any] = {
            "id": fid,
            **({"key": fid} if cloud else {}),
            "name": name,
            "custom": True,
            "orderable": True,
            "navigable": True,
            "searchable": True,
            "clauseNames": [f"cf[{num}]", name],
            "schema": {**schema, "custom": custom, "customId": num},
        }
        if cloud:
            entry["untranslatedName"] = name
        out.append(entry)
    return out


# --- shared endpoint helpers -----------------------------------------------------------


def _offset_page(
    ctx: Ctx, values: Sequence[Any], start: int, size: int, **query: Any
) -> dict[str, Any]:
    """Jira platform list page ``{self, nextPage, maxResults, startAt, total, isLast,
    values}`` (``nextPage`` only when there is one)."""
    chunk = list(values[start : start + size])
    last = start + len(chunk) >= len(values)
    out: dict[str, Any] = {
        "self": ctx.url(ctx.path, **query, startAt=start, maxResults=size),
    }
    if not last:
        out["nextPage"] = ctx.url(ctx.path, **query, startAt=start + size, maxResults=size)
    out.update(maxResults=size, startAt=start, total=len(values), isLast=last, values=chunk)
    return out


def _other_args(ctx: Ctx) -> dict[str, list[str]]:
    """The request's query arguments except the paging ones (for self/nextPage URLs)."""
    return {k: ctx.query.getlist(k) for k in ctx.query if k not in ("startAt", "maxResults")}


def _scope_or_404(ctx: Ctx, key: str) -> Scope:
    idx = _index(ctx.org)
    for sc in idx.scopes.values():
        if key.upper() == sc.path or key == str(sc.native_id):
            return sc
    raise ctx.error(404, f"No project could be found with key '{key}'.")


def _issue_or_404(ctx: Ctx, ident: str) -> Item:
    item = find_issue(ctx.org, ident)
    if item is None:
        raise ctx.error(404, ISSUE_NOT_FOUND)
    return item


def _expand_list(value: Any) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, str):
        return set(_split_list([value]))
    return set(_split_list(str(v) for v in value))


def _search_args(ctx: Ctx) -> dict[str, Any]:
    """GET query or POST body of a search, normalised."""
    if ctx.method == "POST":
        body = ctx.json_body() or {}
        if not isinstance(body, dict):
            raise _bad_request(ctx, "Invalid request payload. Refer to the REST API documentation.")
        fields = body.get("fields")
        if isinstance(fields, str):
            fields = [fields]
        return {
            "jql": body.get("jql"),
            "fields": [str(f) for f in fields] if isinstance(fields, list) else None,
            "expand": _expand_list(body.get("expand")),
            "maxResults": body.get("maxResults"),
            "nextPageToken": body.get("nextPageToken"),
            "startAt": body.get("startAt"),
        }
    return {
        "jql": ctx.query.get("jql"),
        "fields": ctx.query.getlist("fields") or None,
        "expand": _expand_list(ctx.query.getlist("expand")),
        "maxResults": ctx.query.get("maxResults"),
        "nextPageToken": ctx.query.get("nextPageToken"),
        "startAt": ctx.query.get("startAt"),
    }


def _as_int(ctx: Ctx, value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        return int(value)
    except (TypeError, ValueError) as exc:
        raise _bad_request(
            ctx, f"The value '{value}' for parameter '{name}' is not valid."
        ) from exc


# --- endpoints --------------------------------------------------------------------------

CLOUD_VERSIONS = ("3", "2")
DC_VERSIONS = ("2", "latest")
_Handler = Callable[[Ctx], Any]


def _platform(
    router: Router, method: str, path: str, cloud: bool = True, dc: bool = True
) -> Callable[[_Handler], _Handler]:
    """Register one handler on the platform API of Cloud (v3, v2) and/or DC (v2, latest)."""

    def deco(handler: _Handler) -> _Handler:
        if cloud:
            for v in CLOUD_VERSIONS:
                router.route(JIRA, method, f"/rest/api/{v}{path}")(handler)
        if dc:
            for v in DC_VERSIONS:
                router.route(JIRA_DC, method, f"/rest/api/{v}{path}")(handler)
        return handler

    return deco


def _agile(router: Router, path: str) -> Callable[[_Handler], _Handler]:
    return router.get((JIRA, JIRA_DC), f"/rest/agile/1.0{path}")


def register(router: Router) -> None:
    """Add the Jira routes to the simulator."""
    _register_platform(router)
    _register_search(router)
    _register_history(router)
    _register_worklogs(router)
    _register_agile(router)


def _register_platform(router: Router) -> None:
    @_platform(router, "GET", "/myself")
    def myself(ctx: Ctx) -> dict[str, Any]:
        person = ctx.user
        r = _Render(ctx)
        body: dict[str, Any] = dict(r.user(person.id) or {})
        body["emailAddress"] = person.email
        body.update(
            locale="en_GB",
            groups={"size": 1, "items": []},
            applicationRoles={"size": 1, "items": []},
            expand="groups,applicationRoles",
        )
        return body

    @_platform(router, "GET", "/field")
    def fields(ctx: Ctx) -> list[dict[str, Any]]:
        return _field_list(ctx)

    @_platform(router, "GET", "/status")
    def statuses(ctx: Ctx) -> list[dict[str, Any]]:
        r = _Render(ctx)
        out = []
        for st in JIRA_STATUSES:
            entry = dict(r.status(st))
            if r.cloud:  # the catalogue has it; statuses embedded in issues do not
                entry["untranslatedName"] = entry["name"]
            out.append(entry)
        return out

    @_platform(router, "GET", "/issueLinkType")
    def link_types(ctx: Ctx) -> dict[str, Any]:
        return {
            "issueLinkTypes": [
                {
                    "id": tid,
                    "name": name,
                    "inward": inward,
                    "outward": outward,
                    "self": ctx.url(f"/rest/api/{'3' if _v3(ctx) else '2'}/issueLinkType/{tid}"),
                }
                for tid, name, inward, outward in LINK_TYPES.values()
            ]
        }

    @_platform(router, "GET", "/project")
    def projects(ctx: Ctx) -> list[dict[str, Any]]:
        r = _Render(ctx)
        expand = _expand_list(ctx.query.get("expand"))
        return [r.project(sc, expand) for sc in r.idx.scopes.values()]

    @_platform(router, "GET", "/project/search", dc=False)
    def project_search(ctx: Ctx) -> dict[str, Any]:
        r = _Render(ctx)
        keys = {k.upper() for k in _split_list(ctx.query.getlist("keys"))}
        ids = set(_split_list(ctx.query.getlist("id")))
        query = (ctx.query.get("query") or "").lower()
        start = max(0, _int_arg(ctx, "startAt", 0))
        size = min(max(1, _int_arg(ctx, "maxResults", 50)), PROJECT_SEARCH_MAX)
        expand = _expand_list(ctx.query.get("expand"))
        chosen = [
            sc
            for sc in r.idx.scopes.values()
            if (not keys or sc.path in keys)
            and (not ids or str(sc.native_id) in ids)
            and (not query or query in sc.path.lower() or query in sc.name.lower())
        ]
        page = _offset_page(ctx, chosen, start, size, **_other_args(ctx))
        page["values"] = [r.project(sc, expand) for sc in page["values"]]
        return page

    @_platform(router, "GET", "/project/{key}")
    def project(ctx: Ctx) -> dict[str, Any]:
        return _Render(ctx).project_full(_scope_or_404(ctx, ctx.params["key"]))

    @_platform(router, "GET", "/project/{key}/versions")
    def versions(ctx: Ctx) -> list[dict[str, Any]]:
        sc = _scope_or_404(ctx, ctx.params["key"])
        r = _Render(ctx)
        return [r.version(rel, full=True) for rel in _releases(ctx.org, sc)]

    @_platform(router, "GET", "/project/{key}/version")
    def versions_paged(ctx: Ctx) -> dict[str, Any]:
        sc = _scope_or_404(ctx, ctx.params["key"])
        r = _Render(ctx)
        rels = _releases(ctx.org, sc)
        status = set(_split_list(ctx.query.getlist("status")))
        bad = status - {"released", "unreleased", "archived"}
        if bad:
            raise _bad_request(ctx, f"Invalid status value: {sorted(bad)[0]}.")
        if status:
            rels = [
                rel
                for rel in rels
                if ("released" in status and rel.released_at is not None)
                or ("unreleased" in status and rel.released_at is None)
            ]
        text = (ctx.query.get("query") or "").lower()
        if text:
            rels = [rel for rel in rels if text in rel.name.lower()]
        order = ctx.query.get("orderBy") or "sequence"
        desc, name = order.startswith("-"), order.lstrip("+-")
        sorters: dict[str, Callable[[Release], Any]] = {
            "sequence": lambda rel: rel.due,
            "name": lambda rel: rel.name,
            "startDate": lambda rel: rel.start,
            "releaseDate": lambda rel: rel.released_at.date() if rel.released_at else rel.due,
            "description": lambda rel: "",
        }
        if name not in sorters:
            raise _bad_request(ctx, f"Invalid orderBy value: {order}.")
        rels = sorted(rels, key=sorters[name], reverse=desc)
        start = max(0, _int_arg(ctx, "startAt", 0))
        size = min(max(1, _int_arg(ctx, "maxResults", 50)), 50)
        page = _offset_page(ctx, rels, start, size, **_other_args(ctx))
        page["values"] = [r.version(rel, full=True) for rel in page["values"]]
        return page

    @_platform(router, "GET", "/issue/{key}")
    def issue(ctx: Ctx) -> dict[str, Any]:
        item = _issue_or_404(ctx, ctx.params["key"])
        fields = parse_fields(ctx.query.getlist("fields") or None, "*all")
        expand = _expand_list(ctx.query.getlist("expand"))
        body = _Render(ctx).issue(item, fields or frozenset(), changelog="changelog" in expand)
        return body


def _releases(org: Organisation, sc: Scope) -> list[Release]:
    return sorted(org.releases_of(sc), key=lambda rel: (rel.due, rel.native_id))


def _register_search(router: Router) -> None:
    for v in ("2", "3", "latest"):
        for method in ("GET", "POST"):

            @router.route(JIRA, method, f"/rest/api/{v}/search")
            def removed(ctx: Ctx) -> Response:
                return ctx.json({"errorMessages": [REMOVED_SEARCH], "errors": {}}, status=410)

    @_platform(router, "GET", "/search/jql", dc=False)
    @_platform(router, "POST", "/search/jql", dc=False)
    def search_jql(ctx: Ctx) -> dict[str, Any]:
        args = _search_args(ctx)
        size = _as_int(ctx, args["maxResults"], "maxResults", SEARCH_DEFAULT_RESULTS)
        if not 1 <= size <= SEARCH_MAX_RESULTS:
            raise _bad_request(ctx, "The max results parameter has to be between 1 and 5,000.")
        query = compile_jql(ctx.org, args["jql"])
        if not query.bounded:
            raise _bad_request(ctx, UNBOUNDED)
        fields = parse_fields(args["fields"], "id")
        changelog = "changelog" in args["expand"]
        light = (fields is None or fields <= {"key"}) and not args["expand"]
        size = min(size, SEARCH_MAX_RESULTS if light else SEARCH_PAGE_CAP)
        keys, items = run_query(ctx.org, query)
        start = 0
        token = args["nextPageToken"]
        if token:
            state = _decode_token(ctx.api, str(token))
            if not isinstance(state, dict) or state.get("q") != _query_tag(query):
                raise _bad_request(ctx, BAD_TOKEN)
            start = bisect.bisect_right(keys, tuple(state.get("k") or ()))
        chunk = items[start : start + size]
        r = _Render(ctx)
        embed = CLOUD_CHANGELOG_EMBED
        body: dict[str, Any] = {
            "issues": [r.issue(i, fields, changelog, embed=embed) for i in chunk]
        }
        end = start + len(chunk)
        if end < len(items):
            body["nextPageToken"] = _encode_token({"q": _query_tag(query), "k": keys[end - 1]})
        body["isLast"] = end >= len(items)
        return body

    @_platform(router, "POST", "/search/approximate-count", dc=False)
    def approximate_count(ctx: Ctx) -> dict[str, Any]:
        body = ctx.json_body() or {}
        jql = body.get("jql") if isinstance(body, dict) else None
        query = compile_jql(ctx.org, jql)
        if not query.bounded:
            raise _bad_request(ctx, UNBOUNDED)
        return {"count": len(run_query(ctx.org, query)[1])}

    @router.route(JIRA_DC, "GET", "/rest/api/2/search")
    @router.route(JIRA_DC, "POST", "/rest/api/2/search")
    @router.route(JIRA_DC, "GET", "/rest/api/latest/search")
    @router.route(JIRA_DC, "POST", "/rest/api/latest/search")
    def search_dc(ctx: Ctx) -> dict[str, Any]:
        args = _search_args(ctx)
        start = max(0, _as_int(ctx, args["startAt"], "startAt", 0))
        size = min(max(0, _as_int(ctx, args["maxResults"], "maxResults", 50)), DC_SEARCH_MAX)
        query = compile_jql(ctx.org, args["jql"])
        fields = parse_fields(args["fields"], "*navigable")
        changelog = "changelog" in args["expand"]
        items = run_query(ctx.org, query)[1]
        r = _Render(ctx)
        return {
            "expand": "schema,names",
            "startAt": start,
            "maxResults": size,
            "total": len(items),
            "issues": [
                r.issue(i, fields or frozenset(), changelog) for i in items[start : start + size]
            ],
        }


def _query_tag(query: Query) -> int:
    """Ties a page token to its query (a token of another query is rejected). Built from
    sorted values: set iteration order is not stable across equal sets."""
    canon = (
        sorted(query.scopes) if query.scopes is not None else None,
        sorted(query.include) if query.include is not None else None,
        sorted(query.exclude),
        query.updated,
        query.created,
        query.order,
        query.extra,
    )
    return zlib.crc32(repr(canon).encode())


def _register_history(router: Router) -> None:
    @_platform(router, "GET", "/issue/{key}/changelog", dc=False)
    def changelog(ctx: Ctx) -> dict[str, Any]:
        item = _issue_or_404(ctx, ctx.params["key"])
        start = max(0, _int_arg(ctx, "startAt", 0))
        size = min(max(1, _int_arg(ctx, "maxResults", CHANGELOG_PAGE_MAX)), CHANGELOG_PAGE_MAX)
        hs = _Render(ctx).histories(item)
        return _offset_page(ctx, hs, start, size)

    @_platform(router, "POST", "/changelog/bulkfetch", dc=False)
    def bulkfetch(ctx: Ctx) -> dict[str, Any]:
        body = ctx.json_body()
        if not isinstance(body, dict):
            raise _bad_request(ctx, "Invalid request payload. Refer to the REST API documentation.")
        idents = body.get("issueIdsOrKeys")
        if not isinstance(idents, list) or not idents:
            raise _bad_request(ctx, "issueIdsOrKeys must contain between 1 and 1000 issues.")
        if len(idents) > BULKFETCH_MAX_ISSUES:
            raise _bad_request(ctx, "issueIdsOrKeys must contain between 1 and 1000 issues.")
        field_ids = body.get("fieldIds") or []
        if not isinstance(field_ids, list) or len(field_ids) > BULKFETCH_MAX_FIELDS:
            raise _bad_request(ctx, "fieldIds must contain at most 10 fields.")
        size = _body_int(ctx, body, "maxResults", BULKFETCH_DEFAULT_RESULTS)
        if not 1 <= size <= BULKFETCH_MAX_RESULTS:
            raise _bad_request(ctx, "maxResults must be between 1 and 10000.")
        pos_issue, pos_hist = 0, 0
        token = body.get("nextPageToken")
        if token:
            state = _decode_token(ctx.api, str(token))
            if not isinstance(state, list) or len(state) != 2:
                raise _bad_request(ctx, BAD_TOKEN)
            pos_issue, pos_hist = int(state[0]), int(state[1])
        wanted = {str(f) for f in field_ids}
        r = _Render(ctx)
        seen: set[int] = set()
        items: list[Item] = []
        for ident in idents:
            item = find_issue(ctx.org, str(ident))
            if item is not None and item.id not in seen:
                seen.add(item.id)
                items.append(item)
        out: list[dict[str, Any]] = []
        budget = size
        n = pos_issue
        next_token = None
        while n < len(items):
            hs = r.histories(items[n])
            if wanted:
                hs = [
                    {**h, "items": [e for e in h["items"] if e.get("fieldId") in wanted]}
                    for h in hs
                ]
                hs = [h for h in hs if h["items"]]
            first = pos_hist if n == pos_issue else 0
            rest = hs[first:]
            take = rest[:budget]
            if take:
                out.append({"issueId": str(items[n].id), "changeHistories": take})
            budget -= len(take)
            if len(take) < len(rest):
                next_token = [n, first + len(take)]
                break
            n += 1
            if budget == 0 and n < len(items):
                next_token = [n, 0]
                break
        answer: dict[str, Any] = {"issueChangeLogs": out}
        if next_token is not None:
            answer["nextPageToken"] = _encode_token(next_token)
        return answer


def _register_worklogs(router: Router) -> None:
    @_platform(router, "GET", "/issue/{key}/worklog")
    def issue_worklogs(ctx: Ctx) -> dict[str, Any]:
        item = _issue_or_404(ctx, ctx.params["key"])
        start = max(0, _int_arg(ctx, "startAt", 0))
        size = min(max(1, _int_arg(ctx, "maxResults", ISSUE_WORKLOG_MAX)), ISSUE_WORKLOG_MAX)
        after = _int_arg(ctx, "startedAfter", -(2**62))
        before = _int_arg(ctx, "startedBefore", 2**62)
        logs = [w for w in item.worklogs if after <= _ms(w.started) < before]
        r = _Render(ctx)
        return {
            "startAt": start,
            "maxResults": size,
            "total": len(logs),
            "worklogs": [r.worklog(item, w) for w in logs[start : start + size]],
        }

    def feed_page(ctx: Ctx, feed: list[tuple[int, int]]) -> dict[str, Any]:
        since = _int_arg(ctx, "since", 0)
        horizon = _ms(ctx.org.now) - 60_000  # the last minute is not reported yet
        start = bisect.bisect_left(feed, (since, -1))
        stop = bisect.bisect_right(feed, (horizon, 2**62))
        end = min(start + WORKLOG_FEED_PAGE, max(start, stop))
        while start < end < stop and feed[end][0] == feed[end - 1][0]:
            end += 1  # never split one updatedTime across pages
        values = [
            {"worklogId": wid, "updatedTime": ms, "properties": []} for ms, wid in feed[start:end]
        ]
        until = feed[end - 1][0] if end > start else since
        nxt = until + 1 if end > start else since
        return {
            "values": values,
            "since": since,
            "until": until,
            "self": ctx.url(ctx.path, since=since),
            "nextPage": ctx.url(ctx.path, since=nxt),
            "lastPage": end >= stop,
        }

    @_platform(router, "GET", "/worklog/updated")
    def worklogs_updated(ctx: Ctx) -> dict[str, Any]:
        return feed_page(ctx, _index(ctx.org).worklog_feed)

    @_platform(router, "GET", "/worklog/deleted")
    def worklogs_deleted(ctx: Ctx) -> dict[str, Any]:
        return feed_page(ctx, _index(ctx.org).deleted_feed)

    @_platform(router, "POST", "/worklog/list")
    def worklog_list(ctx: Ctx) -> list[dict[str, Any]]:
        body = ctx.json_body()
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            raise _bad_request(ctx, "Worklog IDs must be provided.")
        if len(ids) > WORKLOG_LIST_MAX:
            raise _bad_request(ctx, "The number of worklog IDs must be less than or equal to 1000.")
        idx = _index(ctx.org)
        r = _Render(ctx)
        out = []
        for wid in ids:
            found = idx.worklogs.get(int(wid)) if str(wid).isdigit() else None
            if found is not None:
                out.append(r.worklog(*found))
        return out


def _register_agile(router: Router) -> None:
    def board_json(ctx: Ctx, cad: Cadence) -> dict[str, Any]:
        sc = _index(ctx.org).scopes[cad.owner]
        return {
            "id": cad.native_id,
            "self": ctx.url(f"/rest/agile/1.0/board/{cad.native_id}"),
            "name": cad.name,
            "type": "scrum",
            "location": {
                "projectId": sc.native_id,
                "displayName": f"{sc.name} ({sc.path})",
                "projectName": sc.name,
                "projectKey": sc.path,
                "projectTypeKey": "software",
                "avatarURI": f"/secure/projectavatar?size=small&pid={sc.native_id}",
                "name": f"{sc.name} ({sc.path})",
            },
        }

    def board_or_404(ctx: Ctx) -> Cadence:
        raw = ctx.params["board_id"]
        cad = _index(ctx.org).boards.get(int(raw)) if raw.isdigit() else None
        if cad is None:
            raise ctx.error(404, "Board does not exist or you do not have permission to see it.")
        return cad

    def sprint_or_404(ctx: Ctx) -> Sprint:
        raw = ctx.params["sprint_id"]
        spr = ctx.org.sprints.get(int(raw)) if raw.isdigit() else None
        if spr is None or spr.system != "jira":
            raise ctx.error(404, "Sprint does not exist or you do not have permission to see it.")
        return spr

    def agile_start_size(ctx: Ctx, cap: int) -> tuple[int, int]:
        start = max(0, _int_arg(ctx, "startAt", 0))
        return start, min(max(1, _int_arg(ctx, "maxResults", 50)), cap)

    @_agile(router, "/board")
    def boards(ctx: Ctx) -> dict[str, Any]:
        idx = _index(ctx.org)
        wanted = ctx.query.get("projectKeyOrId")
        cads = sorted(idx.boards.values(), key=lambda c: c.native_id)
        if wanted:
            sc = next(
                (
                    s
                    for s in idx.scopes.values()
                    if wanted.upper() == s.path or wanted == str(s.native_id)
                ),
                None,
            )
            if sc is None:
                raise ApiError(
                    json_response(
                        ctx.api,
                        {
                            "errorMessages": [],
                            "errors": {
                                "projectKeyOrId": f"No project could be found with key or id "
                                f"'{wanted}'"
                            },
                        },
                        400,
                    )
                )
            cads = [c for c in cads if c.owner == sc.path]
        types = set(_split_list(ctx.query.getlist("type")))
        if types and "scrum" not in types:
            cads = []
        name = (ctx.query.get("name") or "").lower()
        if name:
            cads = [c for c in cads if name in c.name.lower()]
        start, size = agile_start_size(ctx, AGILE_LIST_MAX)
        page = agile_page(cads, start, size)
        page["values"] = [board_json(ctx, c) for c in page["values"]]
        return page

    @_agile(router, "/board/{board_id}")
    def board(ctx: Ctx) -> dict[str, Any]:
        return board_json(ctx, board_or_404(ctx))

    @_agile(router, "/board/{board_id}/configuration")
    def board_configuration(ctx: Ctx) -> dict[str, Any]:
        cad = board_or_404(ctx)
        r = _Render(ctx)
        columns = [("To Do", "todo"), ("In Progress", "in_progress"), ("In Review", "in_review")]
        columns.append(("Done", "done"))
        return {
            "id": cad.native_id,
            "name": cad.name,
            "type": "scrum",
            "self": ctx.url(f"/rest/agile/1.0/board/{cad.native_id}/configuration"),
            "location": {
                "type": "project",
                "key": cad.owner,
                "id": str(r.idx.scopes[cad.owner].native_id),
            },
            "filter": {
                "id": str(10000 + cad.native_id),
                "self": f"{r.api}/filter/{10000 + cad.native_id}",
            },
            "columnConfig": {
                "columns": [
                    {
                        "name": name,
                        "statuses": [{"id": JIRA_STATUSES[st][0], "self": r.status(st)["self"]}],
                    }
                    for name, st in columns
                ],
                "constraintType": "issueCount",
            },
            "estimation": {
                "type": "field",
                "field": {
                    "fieldId": JIRA_STORY_POINTS_FIELD,
                    "displayName": _points_name(r.cloud),
                },
            },
            "ranking": {"rankCustomFieldId": 10019},
        }

    @_agile(router, "/board/{board_id}/sprint")
    def board_sprints(ctx: Ctx) -> dict[str, Any]:
        cad = board_or_404(ctx)
        states = set(_split_list(ctx.query.getlist("state"))) or {"future", "active", "closed"}
        bad = states - {"future", "active", "closed"}
        if bad:
            raise ctx.error(
                400,
                f"The state value '{sorted(bad)[0]}' is not valid. Valid values are: future, "
                "active, closed.",
            )
        rank = {"closed": 0, "active": 1, "future": 2}
        sprints = sorted(
            (s for s in ctx.org.sprints_of(cad) if s.state in states),
            key=lambda s: (rank[s.state], s.sequence),
        )
        start, size = agile_start_size(ctx, AGILE_LIST_MAX)
        page = agile_page(sprints, start, size)
        r = _Render(ctx)
        page["values"] = [r.sprint(s, cad.native_id, agile=True) for s in page["values"]]
        return page

    @_agile(router, "/sprint/{sprint_id}")
    def sprint(ctx: Ctx) -> dict[str, Any]:
        spr = sprint_or_404(ctx)
        return _Render(ctx).sprint(spr, ctx.org.cadence(spr.cadence_id).native_id, agile=True)

    def issue_page(ctx: Ctx, base: list[Item], tag: tuple[Any, ...]) -> dict[str, Any]:
        query = compile_jql(ctx.org, ctx.query.get("jql"), default_order=False)
        # without ORDER BY: board rank, which is the project's creation order here
        query = replace(query, order=query.order or (("key", False),), extra=tag)
        items = run_query(ctx.org, query, base)[1]
        start, size = agile_start_size(ctx, AGILE_ISSUES_MAX)
        fields = parse_fields(ctx.query.getlist("fields") or None, "*navigable")
        changelog = "changelog" in _expand_list(ctx.query.getlist("expand"))
        r = _Render(ctx)
        return {
            "expand": "schema,names",
            "startAt": start,
            "maxResults": size,
            "total": len(items),
            "issues": [
                r.issue(i, fields or frozenset(), changelog, agile=True)
                for i in items[start : start + size]
            ],
        }

    @_agile(router, "/board/{board_id}/issue")
    def board_issues(ctx: Ctx) -> dict[str, Any]:
        cad = board_or_404(ctx)
        idx = _index(ctx.org)
        base = idx.by_updated[cad.owner][1]
        return issue_page(ctx, base, ("board", cad.native_id))

    @_agile(router, "/sprint/{sprint_id}/issue")
    def sprint_issues(ctx: Ctx) -> dict[str, Any]:
        spr = sprint_or_404(ctx)
        idx = _index(ctx.org)
        base = idx.sprint_items.get(spr.id, [])
        return issue_page(ctx, base, ("sprint", spr.id))
