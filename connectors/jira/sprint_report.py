"""Jira's own Sprint Report for one closed sprint, for ``programview verify sprints``.

The Sprint Report page of a Jira Software board reads
``GET /rest/greenhopper/1.0/rapid/charts/sprintreport?rapidViewId=<board>&sprintId=<sprint>``
(Cloud and Data Center alike; an internal but long-lived endpoint that Apache DevLake and
many reporting tools read too). Its ``contents`` hold the frozen snapshot Jira took at close:

* ``completedIssues``, ``issuesNotCompletedInCurrentSprint`` (older servers:
  ``incompletedIssues``), ``puntedIssues`` (removed during the sprint) and
  ``issuesCompletedInAnotherSprint``: issue entries with ``id``, ``key``,
  ``estimateStatistic`` (the estimate when the sprint started, or when the issue was added)
  and ``currentEstimateStatistic`` (at close), each ``{statFieldId, statFieldValue: {value,
  text}}`` with an empty ``statFieldValue`` for an unestimated issue;
* ``issueKeysAddedDuringSprint``: ``{"PAY-12": true, …}``;
* sums such as ``completedIssuesEstimateSum`` (``{"value": 13.0, "text": "13.0"}``, or
  ``{"text": "null"}`` when nothing is estimated), which are the per-issue values added up.

``parse_sprint_report`` is a pure function of that body (tested on payloads); the connector
only fetches it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from programview.errors import ConnectorError, MappingError, NotFound
from programview.sync.connector import Outcome, SprintRef, SprintReport, SprintReportItem

from .mapping import parse_time

if TYPE_CHECKING:
    from . import JiraConnector

PATH = "/rest/greenhopper/1.0/rapid/charts/sprintreport"

#: contents key -> outcome. ``incompletedIssues`` is the older servers' name.
BUCKETS: tuple[tuple[str, Outcome], ...] = (
    ("completedIssues", "completed"),
    ("issuesNotCompletedInCurrentSprint", "not_completed"),
    ("incompletedIssues", "not_completed"),
    ("puntedIssues", "removed"),
    ("issuesCompletedInAnotherSprint", "completed_elsewhere"),
)


#: figure -> the report's own sum of it (``{"value": 13.0, "text": "13.0"}``)
SUMS = {"completed": "completedIssuesEstimateSum", "removed": "puntedIssuesEstimateSum"}


async def fetch_sprint_report(connector: JiraConnector, sprint: SprintRef) -> SprintReport:
    """GET the report of ``sprint`` on its board; a clear error when Jira has none."""
    if not sprint.board_id:
        raise ConnectorError(
            f"sprint {sprint.name or sprint.native_id!r} has no board id in the warehouse "
            "(sync the sprints stream again), so its Sprint Report cannot be asked for",
            source=connector.source.name,
        )
    try:
        body = await connector.http.get_json(
            PATH, params={"rapidViewId": sprint.board_id, "sprintId": sprint.native_id}
        )
    except NotFound:
        raise NotFound(
            f"Jira has no Sprint Report for sprint {sprint.name or sprint.native_id!r} on board "
            f"{sprint.board_id} (the board or sprint is gone, or this account cannot see it)",
            source=connector.source.name,
        ) from None
    try:
        return parse_sprint_report(body)
    except MappingError as exc:
        raise ConnectorError(
            f"Sprint Report of sprint {sprint.name or sprint.native_id!r}: {exc}",
            source=connector.source.name,
        ) from None


def parse_sprint_report(body: Any) -> SprintReport:
    """The report body -> :class:`SprintReport`. Raises MappingError on a malformed body."""
    if not isinstance(body, dict) or not isinstance(body.get("contents"), dict):
        raise MappingError("the answer has no 'contents' object (not a Sprint Report)")
    contents = body["contents"]
    added = _added_keys(contents.get("issueKeysAddedDuringSprint"))
    items: list[SprintReportItem] = []
    field: str | None = None
    for name, outcome in BUCKETS:
        entries = contents.get(name)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise MappingError(f"contents.{name} is not a list")
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get("key"):
                raise MappingError(f"contents.{name} holds an entry without a key: {entry!r}")
            key = str(entry["key"])
            stat = entry.get("estimateStatistic") or {}
            field = field or (stat.get("statFieldId") if isinstance(stat, dict) else None)
            items.append(
                SprintReportItem(
                    native_id=str(entry["id"]) if entry.get("id") is not None else None,
                    key=key,
                    outcome=outcome,
                    added_during_sprint=key in added,
                    points_at_entry=_points(stat),
                    points_at_close=_points(entry.get("currentEstimateStatistic")),
                )
            )
    raw_sprint = body.get("sprint")
    sprint: dict[str, Any] = raw_sprint if isinstance(raw_sprint, dict) else {}
    totals = {
        figure: _points({"statFieldValue": contents[name]})
        for figure, name in SUMS.items()
        if isinstance(contents.get(name), dict)
    }
    return SprintReport(
        items=tuple(items),
        estimate_field=field,
        started_at=_time(sprint.get("isoStartDate")),
        completed_at=_time(sprint.get("isoCompleteDate")),
        totals=totals,
    )


def _added_keys(value: Any) -> set[str]:
    """``{"PAY-1": true}`` (current servers) or ``["PAY-1"]`` (some older ones)."""
    if isinstance(value, dict):
        return {str(k) for k, v in value.items() if v}
    if isinstance(value, list):
        return {str(k) for k in value}
    if value is None:
        return set()
    raise MappingError(f"issueKeysAddedDuringSprint is neither an object nor a list: {value!r}")


def _points(stat: Any) -> float | None:
    """``{statFieldValue: {value: 5.0}}`` -> 5.0; an empty statFieldValue -> None."""
    if not isinstance(stat, dict):
        return None
    value = (stat.get("statFieldValue") or {}).get("value")
    if value is None or isinstance(value, bool):
        return None
    try:
        points = float(value)
    except (TypeError, ValueError):
        raise MappingError(f"estimate {value!r} is not a number") from None
    return points if math.isfinite(points) else None


def _time(value: Any) -> Any:
    try:
        return parse_time(value) if value not in (None, "", "None") else None
    except MappingError:
        return None
