"""Shared people: what each person carries in each project this week (``resource_load``),
and the ``shared_resource_contention`` alert rule (docs/metrics.md, "Shared people").

* **in_progress_items**: the person's live, non-epic work items whose status category is
  in progress;
* **active_sprint_items / active_sprint_points**: the person's live, non-epic items in an
  active sprint (any status: the sprint's work on their plate), and their points (NULL = 0);
* per project (by the item's scope) and program; people joined across tools by
  ``transform.people``. The state is the synced state at the run (current statuses, sprints
  and assignees); history is one row per person, project and ISO week (the Monday), the
  week's latest run replacing its rows.

``shared_resource_contention`` holds for a person and a program when the person has
in-progress items in two or more of the program's projects that have an active sprint, and
those items add up to more than the WIP limit (``[[people]] wip_limit``, else
``[alerts] wip_limit``). Its identity is (rule, program, person), so it keeps its id while
the person stays over the limit and resolves when they are not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from programview.transform._sql import SCOPE_PROJECT_CTE, Ctx, fetch
from programview.transform.alerts import AlertDraft, RuleCheck
from programview.transform.people import load_people
from programview.warehouse.db import table

if TYPE_CHECKING:
    from programview.transform.settings import AlertsConfig

RULE = "shared_resource_contention"


@dataclass(frozen=True, slots=True)
class LoadRow:
    person_id: str
    person: str
    email: str | None
    matched_by: str
    wip_limit: int | None
    project_key: str
    program_key: str | None
    in_progress_items: int
    active_sprint_items: int
    active_sprint_points: float
    project_sprint_active: bool


def week_of(day: date) -> date:
    """The Monday of ``day``'s ISO week: the ``week`` of ``v_resource_load``."""
    return day - timedelta(days=day.weekday())


#: A person's work item counts (live, not an epic, assigned).
_ASSIGNED = (
    "NOT wi.is_deleted AND wi.type_category <> 'epic' "
    "AND (wi.assignee_id IS NOT NULL OR wi.assignee IS NOT NULL)"
)

#: In-progress items per assignee and project. Two statements, not one over the union: the
#: in-progress items need a pass over all items anyway (no index on status), but the active
#: sprints' few members are found through ``sprint_items`` (``_ACTIVE_LOAD``), so the pass no
#: longer probes every item for sprint membership (a third of this step's time).
_IN_PROGRESS_LOAD = f"""
WITH {SCOPE_PROJECT_CTE}
SELECT wi.source_name, wi.assignee_id, wi.assignee, sp.project_key,
  COUNT(*) AS in_progress_items, 0 AS active_sprint_items, NULL AS active_sprint_points
FROM work_items wi
JOIN scope_project sp ON sp.source_name = wi.source_name AND sp.scope = wi.scope
WHERE {_ASSIGNED} AND wi.status_category = 'in_progress'
GROUP BY wi.source_name, wi.assignee_id, wi.assignee, sp.project_key
"""

#: Items in an active sprint (any status) per assignee and project, and their points.
_ACTIVE_LOAD = f"""
WITH {SCOPE_PROJECT_CTE},
active_items AS MATERIALIZED (  -- the few memberships of active sprints, once
  SELECT DISTINCT si.work_item_id FROM sprints s JOIN sprint_items si ON si.sprint_id = s.id
  WHERE s.state = 'active' AND si.removed_at IS NULL
)
SELECT wi.source_name, wi.assignee_id, wi.assignee, sp.project_key,
  0 AS in_progress_items, COUNT(*) AS active_sprint_items,
  SUM(wi.story_points) AS active_sprint_points
FROM active_items a
JOIN work_items wi ON wi.id = a.work_item_id
JOIN scope_project sp ON sp.source_name = wi.source_name AND sp.scope = wi.scope
WHERE {_ASSIGNED}
GROUP BY wi.source_name, wi.assignee_id, wi.assignee, sp.project_key
"""

#: Projects with an active sprint (a board's sprint without a scope: its items' project).
_ACTIVE_PROJECTS = f"""
WITH {SCOPE_PROJECT_CTE}
SELECT DISTINCT COALESCE(sp.project_key, m.project_key) AS project_key
FROM sprints s
LEFT JOIN scope_project sp ON sp.source_name = s.source_name AND sp.scope = s.scope
LEFT JOIN sprint_metrics m ON m.sprint_id = s.id
WHERE s.state = 'active'
"""


def refresh_resource_load(ctx: Ctx) -> list[LoadRow]:
    """Compute this week's load per person and project, replace the week's rows, and return
    them (the contention rule reads them). Runs after the sprint metrics."""
    people = load_people(ctx.conn, ctx.config.people)
    programs = {r[0]: r[1] for r in fetch(ctx.conn, "SELECT key, program_key FROM projects")}
    active = {r[0] for r in fetch(ctx.conn, _ACTIVE_PROJECTS) if r[0] is not None}
    sums: dict[tuple[str, str], list[Any]] = {}
    for row in [*fetch(ctx.conn, _IN_PROGRESS_LOAD), *fetch(ctx.conn, _ACTIVE_LOAD)]:
        who = people.of_assignee(row.source_name, row.assignee_id, row.assignee)
        acc = sums.setdefault((who.person_id, row.project_key), [who, 0, 0, 0.0])
        acc[1] += int(row.in_progress_items or 0)
        acc[2] += int(row.active_sprint_items or 0)
        acc[3] += float(row.active_sprint_points or 0.0)
    load = [
        LoadRow(
            person_id=who.person_id,
            person=who.person,
            email=who.email,
            matched_by=who.matched_by,
            wip_limit=who.wip_limit,
            project_key=project,
            program_key=programs.get(project),
            in_progress_items=in_progress,
            active_sprint_items=sprint_items,
            active_sprint_points=points,
            project_sprint_active=project in active,
        )
        for (_, project), (who, in_progress, sprint_items, points) in sorted(sums.items())
    ]
    week = week_of(ctx.as_of_date)
    tbl = table("resource_load")
    ctx.conn.execute(tbl.delete().where(tbl.c.week == week))
    if load:
        ctx.conn.execute(
            tbl.insert(),
            [
                {
                    "person_id": r.person_id,
                    "week": week,
                    "project_key": r.project_key,
                    "person": r.person,
                    "email": r.email,
                    "matched_by": r.matched_by,
                    "program_key": r.program_key,
                    "as_of": ctx.as_of,
                    "in_progress_items": r.in_progress_items,
                    "active_sprint_items": r.active_sprint_items,
                    "active_sprint_points": r.active_sprint_points,
                    "project_sprint_active": r.project_sprint_active,
                }
                for r in load
            ],
        )
    return load


def check_person(program: str, rows: Sequence[LoadRow], cfg: AlertsConfig) -> RuleCheck:
    """``shared_resource_contention``'s verdict on one person in one program (``rows``: their
    load rows in the program's projects this week), with the reason either way.

    Like ``alerts.check_pair`` for the link rules: one code path decides the alert and the
    reason it does not hold, so the two cannot disagree. Not a link rule, so its verdicts are
    not rows of ``v_blocker_checks``.
    """
    if RULE in cfg.disabled_rules:
        return RuleCheck(RULE, None, "switched off in [alerts] disabled_rules")
    spread = sorted(
        (r for r in rows if r.in_progress_items > 0 and r.project_sprint_active),
        key=lambda r: (-r.in_progress_items, r.project_key),
    )
    parts = [f"{r.project_key} ({r.in_progress_items})" for r in spread]
    listed = ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else "".join(parts)
    if len(spread) < 2:
        where = f" ({listed})" if listed else ""
        return RuleCheck(
            RULE,
            None,
            f"in progress in {len(spread)} of the program's projects with an active sprint"
            f"{where}, not two or more",
        )
    total = sum(r.in_progress_items for r in spread)
    limit = spread[0].wip_limit or cfg.wip_limit
    if total <= limit:
        return RuleCheck(
            RULE,
            None,
            f"{total} items in progress across {listed}: within the WIP limit of {limit}",
        )
    person = spread[0].person
    draft = AlertDraft(
        rule=RULE,
        severity=cfg.severity[RULE],
        message=(
            f"{person} has {total} items in progress across {listed} of "
            f"{program}, which all have active sprints: above the WIP limit of {limit}."
        ),
        blocked=None,
        blocking=None,
        program_key=program,
        # Not a dependency: the dependencies health component does not count it.
        project_keys=(),
        identity_parts=(program, spread[0].person_id),
        person=person,
    )
    return RuleCheck(RULE, draft, draft.message)


def contention_alerts(ctx: Ctx, load: list[LoadRow]) -> list[AlertDraft]:
    """``shared_resource_contention`` drafts: one per (program, person) over the limit."""
    per: dict[tuple[str, str], list[LoadRow]] = defaultdict(list)
    for row in load:
        if row.program_key:
            per[(row.program_key, row.person_id)].append(row)
    checks = [
        check_person(program, rows, ctx.config.alerts) for (program, _), rows in sorted(per.items())
    ]
    return [c.draft for c in checks if c.draft is not None]
