"""Jira's Sprint Report (``/rest/greenhopper/1.0/rapid/charts/sprintreport``), computed from
the generated organisation with Jira's own rules, on Cloud (``/jira``) and Data Center
(``/jira-dc``).

The payload has the shape real Jira sends (as Apache DevLake's sprint report collector
reads it): ``contents`` with ``completedIssues``, ``issuesNotCompletedInCurrentSprint``,
``puntedIssues``, ``issuesCompletedInAnotherSprint`` (issue entries with ``estimateStatistic``
/ ``currentEstimateStatistic``), the ``…EstimateSum`` totals (``{"text": "null"}`` when
nothing is estimated) and ``issueKeysAddedDuringSprint``; ``sprint`` with user-format and ISO
dates; ``lastUserToClose``; ``supportsPages``.

Jira's rules, which differ from programview's in documented ways (so ``programview verify
sprints`` has real differences to explain; see :func:`report_entries`):

* the report is frozen at the close: an issue done then counts as completed even if it was
  reopened later;
* every issue in a done status is completed, resolution "Won't Do" included;
* an issue added during the sprint is valued at its estimate when added
  (``estimateStatistic``), not at the close.

``?rapidViewId`` must name the sprint's board (404 otherwise, in Jira's words); a future
sprint's report is empty, an active sprint's shows it as of now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from programview.simulator.app import JIRA, JIRA_DC, Ctx, Router
from programview.simulator.generator import (
    DONE,
    JIRA_STATUSES,
    JIRA_STORY_POINTS_FIELD,
    JIRA_TYPES,
    Item,
    Organisation,
    Sprint,
)
from programview.simulator.jira_api import _index, _Render

PATH = "/rest/greenhopper/1.0/rapid/charts/sprintreport"

#: outcome -> contents key
BUCKETS = {
    "completed": "completedIssues",
    "not_completed": "issuesNotCompletedInCurrentSprint",
    "removed": "puntedIssues",
    "completed_elsewhere": "issuesCompletedInAnotherSprint",
}


@dataclass(frozen=True, slots=True)
class ReportEntry:
    """One issue of a sprint report: the ground truth of what Jira shows."""

    item: Item
    outcome: str  # completed | not_completed | removed | completed_elsewhere
    added_during_sprint: bool
    points_at_entry: float | None
    points_at_close: float | None


def report_entries(org: Organisation, sprint: Sprint) -> list[ReportEntry]:
    """The report of ``sprint`` by Jira's rules (module docstring), from the ground truth.

    The snapshot is taken at the close (a closed sprint) or now (an active one). An issue
    that entered the sprint and left it before it started is not in the report; one that
    left during it is punted, at its estimate when it left; one that was already done when
    it entered is completed in another sprint.
    """
    if sprint.state == "future":
        return []
    at = sprint.completed if sprint.completed is not None else org.now
    out: list[ReportEntry] = []
    for item, m in org.sprint_members(sprint):
        entered = max(m.added, sprint.start)
        if m.removed is not None and m.removed <= sprint.start:
            continue
        if m.added > at:
            continue
        added = m.added > sprint.start
        at_entry = item.points_at(entered)
        if m.removed is not None and m.removed <= at:
            out.append(ReportEntry(item, "removed", added, at_entry, item.points_at(m.removed)))
            continue
        if item.status_at(entered) == DONE:
            outcome = "completed_elsewhere"
        elif item.status_at(at) == DONE:
            outcome = "completed"
        else:
            outcome = "not_completed"
        out.append(ReportEntry(item, outcome, added, at_entry, item.points_at(at)))
    out.sort(key=lambda e: (e.item.number, e.item.id))
    return out


def _stat(points: float | None) -> dict[str, Any]:
    value: dict[str, Any] = {} if points is None else {"value": float(points)}
    return {"statFieldId": JIRA_STORY_POINTS_FIELD, "statFieldValue": value}


def _sum(values: list[float | None]) -> dict[str, Any]:
    known = [v for v in values if v is not None]
    if not known:
        return {"text": "null"}
    total = float(sum(known))
    return {"value": total, "text": str(total)}


def _user_format(moment: datetime | None, tz: str) -> str:
    """``06/Jan/25 9:00 AM`` in the user's time zone, or ``None`` (as Jira writes it)."""
    if moment is None:
        return "None"
    local = moment.astimezone(ZoneInfo(tz))
    return local.strftime("%d/%b/%y ") + local.strftime("%I:%M %p").lstrip("0")


def _iso(moment: datetime | None, tz: str) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M:%S%z")


def _entry(r: _Render, e: ReportEntry, at: datetime) -> dict[str, Any]:
    item = e.item
    status_key = item.status_at(at) or item.status
    status = r.status(status_key)
    name, _level = JIRA_TYPES[item.type]
    prio = r.priority(item.priority)
    out: dict[str, Any] = {
        "id": item.id,
        "key": item.key,
        "hidden": False,
        "typeName": name,
        "typeId": r.issuetype(item.type)["id"],
        "summary": item.title,
        "typeUrl": r.issuetype(item.type)["iconUrl"],
        "priorityUrl": prio["iconUrl"],
        "priorityName": prio["name"],
        "done": status_key == DONE,
    }
    user = r.user(item.assignee)
    if user is not None:
        if r.cloud:
            out["assignee"] = user["accountId"]
            out["assigneeAccountId"] = user["accountId"]
        else:
            out["assignee"] = user["name"]
            out["assigneeKey"] = user["key"]
        out["assigneeName"] = user["displayName"]
        out["avatarUrl"] = user["avatarUrls"]["16x16"]
        out["hasCustomUserAvatar"] = False
    out.update(
        flagged=False,
        currentEstimateStatistic=_stat(e.points_at_close),
        estimateStatisticRequired=False,
        estimateStatistic=_stat(e.points_at_entry),
        statusId=JIRA_STATUSES[status_key][0],
        statusName=status["name"],
        statusUrl=status["iconUrl"],
        status=status,
        fixVersions=[r.org.releases[item.release_id].native_id] if item.release_id else [],
        projectId=item.scope.native_id,
        linkedPagesCount=0,
        updatedAt=int(min(item.updated, at).timestamp() * 1000),
    )
    return out


def render_report(ctx: Ctx, sprint: Sprint) -> dict[str, Any]:
    r = _Render(ctx)
    tz = ctx.org.jira_user_timezone
    entries = report_entries(ctx.org, sprint)
    at = sprint.completed if sprint.completed is not None else ctx.org.now
    contents: dict[str, Any] = {key: [] for key in BUCKETS.values()}
    for e in entries:
        contents[BUCKETS[e.outcome]].append(_entry(r, e, at))

    def of(outcome: str) -> list[ReportEntry]:
        return [e for e in entries if e.outcome == outcome]

    for outcome, prefix in (
        ("completed", "completedIssues"),
        ("not_completed", "issuesNotCompleted"),
        ("removed", "puntedIssues"),
        ("completed_elsewhere", "issuesCompletedInAnotherSprint"),
    ):
        contents[f"{prefix}InitialEstimateSum"] = _sum([e.points_at_entry for e in of(outcome)])
        contents[f"{prefix}EstimateSum"] = _sum([e.points_at_close for e in of(outcome)])
    contents["allIssuesEstimateSum"] = _sum(
        [e.points_at_close for e in entries if e.outcome in ("completed", "not_completed")]
    )
    contents["issueKeysAddedDuringSprint"] = {
        e.item.key: True for e in entries if e.added_during_sprint
    }
    closer = r.user(0)
    return {
        "contents": contents,
        "sprint": {
            "id": sprint.native_id,
            "sequence": sprint.native_id,
            "name": sprint.name,
            "state": sprint.state.upper(),
            "linkedPagesCount": 0,
            "goal": sprint.goal,
            "startDate": _user_format(sprint.start, tz),
            "endDate": _user_format(sprint.end, tz),
            "isoStartDate": _iso(sprint.start, tz),
            "isoEndDate": _iso(sprint.end, tz),
            "completeDate": _user_format(sprint.completed, tz),
            "isoCompleteDate": _iso(sprint.completed, tz),
            "canUpdateSprint": True,
            "remoteLinks": [],
            "daysRemaining": 0,
        },
        "lastUserToClose": (
            f'<a href="{r.base}/secure/ViewProfile.jspa">{closer["displayName"]}</a>'
            if closer and sprint.state == "closed"
            else None
        ),
        "supportsPages": True,
    }


def register(router: Router) -> None:
    """Add the Sprint Report route to Jira Cloud and Data Center."""

    @router.get((JIRA, JIRA_DC), PATH)
    def sprint_report(ctx: Ctx) -> dict[str, Any]:
        board_raw = ctx.query.get("rapidViewId") or ""
        sprint_raw = ctx.query.get("sprintId") or ""
        if not board_raw.isdigit() or not sprint_raw.isdigit():
            raise ctx.error(400, "rapidViewId and sprintId must be given as numbers")
        board = _index(ctx.org).boards.get(int(board_raw))
        if board is None:
            raise ctx.error(
                404,
                "The requested board cannot be viewed because it either does not exist or "
                "you do not have permission to view it.",
            )
        sprint = ctx.org.sprints.get(int(sprint_raw))
        if sprint is None or sprint.system != "jira" or sprint.id not in board.sprint_ids:
            raise ctx.error(404, f"Sprint with id {sprint_raw} not found on this board.")
        return render_report(ctx, sprint)
