"""Cross-project dependency alerts: five named rules and an open -> resolved lifecycle.

The blocking graph is read with two set-based queries (open blocking links between live, not
done items; then the scheduling facts of the few items on cross-project links). The rules
and the cycle search run in Python over that small edge set: a cycle is a strongly connected
component of the open blocking graph whose items span two or more projects (found with an
iterative Tarjan search; one alert per component, so one knot of mutual blockers raises one
alert, not one per elementary cycle).

Lifecycle: an alert's identity is (rule, blocked item id, blocking item id), or (rule, the
sorted item ids of the cycle), or, for a rule decided elsewhere and handed to
:func:`refresh_alerts` as ``extra`` (``shared_resource_contention``, transform/resources.py),
its own ``identity_parts`` (program, person). While the identity holds on every run, the
alert keeps its id (severity, message and ``last_seen_at`` are refreshed); when it stops
holding it is resolved (``status='resolved'``, ``resolved_at``), never deleted; holding again
later opens a new alert. Every open and resolve writes one ``alert_events`` row, the outbox a
webhook sender delivers once.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from programview.transform._sql import IS_RELEASED, SCOPE_PROJECT_CTE, Ctx, fetch
from programview.transform.settings import AlertsConfig
from programview.warehouse.db import table

#: Item ids per facts query (keeps the IN list under SQLite's bound-variable limit).
_BATCH = 500


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """What the rules need to know about one item on a blocking link."""

    id: str
    key: str
    project_key: str | None
    program_key: str | None
    status: str
    due_date: date | None
    last_change: datetime | None
    sprint_end: date | None  # end of the active/future sprint it sits in
    in_active_sprint: bool
    release_due: date | None  # due date of its open release

    @property
    def planned_finish(self) -> date | None:
        """The earliest of its due date, its sprint's end and its open release's due date."""
        dates = [d for d in (self.due_date, self.sprint_end, self.release_due) if d is not None]
        return min(dates) if dates else None

    @property
    def active(self) -> bool:
        return self.status == "in_progress" or self.in_active_sprint


@dataclass(frozen=True, slots=True)
class AlertDraft:
    """An alert that holds on this run (before it is matched with the stored open alerts)."""

    rule: str
    severity: str
    message: str
    #: None for rules about something else than a blocking link (shared_resource_contention).
    blocked: ItemFacts | None
    blocking: ItemFacts | None
    program_key: str | None
    project_keys: tuple[str, ...]
    slip_days: int | None = None
    cycle_ids: tuple[str, ...] = ()
    cycle_keys: tuple[str, ...] = ()
    #: What the alert is about when it is not a link or a cycle (e.g. program and person).
    identity_parts: tuple[str, ...] = ()
    person: str | None = None

    @property
    def identity(self) -> str:
        parts = self.identity_parts or self.cycle_ids or (self._id("blocked"), self._id("blocking"))
        canonical = "\x1f".join((self.rule, *parts))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def _id(self, side: str) -> str:
        item = getattr(self, side)
        return item.id if item is not None else ""


@dataclass(slots=True)
class AlertsResult:
    opened: int = 0
    resolved: int = 0
    #: Alerts open after this run.
    open: list[AlertDraft] = field(default_factory=list)
    #: Open cross-project blocking links per blocked project (``open_blockers``).
    open_blockers: dict[str, int] = field(default_factory=dict)


# --- reading the graph ----------------------------------------------------------------------


def _open_blocking_edges(ctx: Ctx) -> list[tuple[str, str, str | None, str | None]]:
    """(blocked id, blocking id, blocked project, blocking project) of every ``blocks`` link
    between two live items that are both not done. Links are stored by item key, so a link
    to an item of a project synced later resolves once it lands."""
    rows = fetch(
        ctx.conn,
        f"""
WITH {SCOPE_PROJECT_CTE}
SELECT DISTINCT a.id AS blocked_id, b.id AS blocking_id,
       spa.project_key AS blocked_project, spb.project_key AS blocking_project
FROM dependencies d
JOIN work_items a ON a.item_key = d.blocked_key
JOIN work_items b ON b.item_key = d.blocking_key
LEFT JOIN scope_project spa ON spa.source_name = a.source_name AND spa.scope = a.scope
LEFT JOIN scope_project spb ON spb.source_name = b.source_name AND spb.scope = b.scope
WHERE d.link_kind = 'blocks' AND a.id <> b.id
  AND NOT a.is_deleted AND NOT b.is_deleted
  AND a.status_category <> 'done' AND b.status_category <> 'done'
""",
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def _facts(ctx: Ctx, ids: Iterable[str]) -> dict[str, ItemFacts]:
    wanted = sorted(set(ids))
    out: dict[str, ItemFacts] = {}
    sql = f"""
WITH {SCOPE_PROJECT_CTE}
SELECT wi.id, wi.item_key, wi.status_category, wi.due_date,
       COALESCE(wi.updated_at, wi.created_at) AS last_change,
       sp.project_key, p.program_key,
       (SELECT MIN(s.end_at) FROM sprint_items si JOIN sprints s ON s.id = si.sprint_id
         WHERE si.work_item_id = wi.id AND si.removed_at IS NULL
           AND s.state IN ('active', 'future')) AS sprint_end,
       (SELECT COUNT(*) FROM sprint_items si JOIN sprints s ON s.id = si.sprint_id
         WHERE si.work_item_id = wi.id AND si.removed_at IS NULL
           AND s.state = 'active') AS active_sprints,
       (SELECT MIN(COALESCE(r.due_date, r.planned_date))
          FROM work_item_releases wr JOIN releases r ON r.id = wr.release_id
         WHERE wr.work_item_id = wi.id AND NOT {IS_RELEASED}) AS release_due
FROM work_items wi
LEFT JOIN scope_project sp ON sp.source_name = wi.source_name AND sp.scope = wi.scope
LEFT JOIN projects p ON p.key = sp.project_key
WHERE wi.id IN :ids
"""
    types: dict[str, sa.types.TypeEngine[Any]] = {
        "due_date": sa.Date(),
        "last_change": sa.DateTime(),
        "sprint_end": sa.DateTime(),
        "release_due": sa.Date(),
    }
    for i in range(0, len(wanted), _BATCH):
        for r in fetch(ctx.conn, sql, {"ids": wanted[i : i + _BATCH]}, types):
            out[r.id] = ItemFacts(
                id=r.id,
                key=r.item_key,
                project_key=r.project_key,
                program_key=r.program_key,
                status=r.status_category,
                due_date=r.due_date,
                last_change=r.last_change,
                sprint_end=r.sprint_end.date() if r.sprint_end else None,
                in_active_sprint=bool(r.active_sprints),
                release_due=r.release_due,
            )
    return out


# --- the rules ------------------------------------------------------------------------------


def _label(item: ItemFacts) -> str:
    return f"{item.key} ({item.project_key})"


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """One rule's verdict on one blocking link: the alert when it holds, and the reason in
    words either way (``v_blocker_checks``: why a blocker raises no alert)."""

    rule: str
    draft: AlertDraft | None
    reason: str

    @property
    def holds(self) -> bool:
        return self.draft is not None


def check_pair(a: ItemFacts, b: ItemFacts, as_of: datetime, cfg: AlertsConfig) -> list[RuleCheck]:
    """Every pair rule's verdict on "A is blocked by B" (A and B open, different projects).

    One code path decides both the alerts and the reasons they do not hold, so the report's
    "why no alert" can never disagree with the alerts raised.
    """
    today = as_of.date()
    out: list[RuleCheck] = []

    def draft(rule: str, severity: str, message: str, slip: int | None = None) -> AlertDraft:
        return AlertDraft(
            rule=rule,
            severity=severity,
            message=message,
            blocked=a,
            blocking=b,
            program_key=a.program_key,
            project_keys=(a.project_key,) if a.project_key else (),
            slip_days=slip,
        )

    def verdict(rule: str, result: AlertDraft | str) -> None:
        if rule in cfg.disabled_rules:
            out.append(RuleCheck(rule, None, "switched off in [alerts] disabled_rules"))
        elif isinstance(result, AlertDraft):
            out.append(RuleCheck(rule, result, result.message))
        else:
            out.append(RuleCheck(rule, None, result))

    pa, pb = a.planned_finish, b.planned_finish
    rule = "blocker_scheduled_later"
    if pa and pb and pb > pa:
        slip = (pb - pa).days
        verdict(
            rule,
            draft(
                rule,
                cfg.slip_severity.of(slip),
                f"{_label(a)} is blocked by {_label(b)}, planned to finish {pb.isoformat()}: "
                f"{_days(slip)} after {a.key}'s planned finish "
                f"{pa.isoformat()}.",
                slip,
            ),
        )
    elif pa is None:
        verdict(rule, f"{a.key} has no planned finish (no due date, open sprint or release)")
    elif pb is None:
        verdict(rule, f"{b.key} has no planned finish to compare (see blocker_unscheduled)")
    else:
        verdict(
            rule,
            f"{b.key} is planned to finish {pb.isoformat()}, not after {a.key}'s planned "
            f"finish {pa.isoformat()}",
        )

    rule = "blocker_unscheduled"
    horizon = today + timedelta(days=cfg.unscheduled_window_days)
    if pb is not None:
        verdict(rule, f"{b.key} is scheduled (planned finish {pb.isoformat()})")
    elif a.in_active_sprint or (a.release_due is not None and a.release_due <= horizon):
        why = (
            "is in an active sprint"
            if a.in_active_sprint
            else f"is in a release due {a.release_due.isoformat()}"  # type: ignore[union-attr]
        )
        verdict(
            rule,
            draft(
                rule,
                cfg.severity["blocker_unscheduled"],
                f"{_label(a)} {why} but is blocked by {_label(b)}, which has no sprint, "
                "release or due date.",
            ),
        )
    else:
        verdict(
            rule,
            f"{b.key} is unscheduled, but {a.key} is in no active sprint and in no release "
            f"due within {_days(cfg.unscheduled_window_days)} (by {horizon.isoformat()})",
        )

    rule = "blocker_stalled"
    limit = as_of - timedelta(days=cfg.stalled_days)
    if not a.active:
        verdict(rule, f"{a.key} is not active (not in progress, in no active sprint)")
    elif b.last_change is None:
        verdict(rule, f"{b.key} has no recorded change time")
    elif b.last_change <= limit:
        idle = (as_of - b.last_change).days
        verdict(
            rule,
            draft(
                rule,
                cfg.severity["blocker_stalled"],
                f"{_label(a)} is active but its blocker {_label(b)} has not changed for "
                f"{_days(idle)}.",
            ),
        )
    else:
        idle = (as_of - b.last_change).days
        verdict(
            rule,
            f"{b.key} changed {_days(idle)} ago ({b.last_change.date().isoformat()}), within "
            f"{_days(cfg.stalled_days)}",
        )

    rule = "blocked_item_due_soon"
    if a.due_date is None:
        verdict(rule, f"{a.key} has no due date")
    elif a.due_date <= today + timedelta(days=cfg.due_soon_days):
        days = (a.due_date - today).days
        when = "today" if days == 0 else f"in {_days(days)}" if days > 0 else f"{_days(-days)} ago"
        severity = (
            "high" if days <= cfg.due_soon_high_days else cfg.severity["blocked_item_due_soon"]
        )
        verdict(
            rule,
            draft(
                rule,
                severity,
                f"{_label(a)} is due {a.due_date.isoformat()} ({when}) and its blocker "
                f"{_label(b)} is not done.",
            ),
        )
    else:
        verdict(
            rule,
            f"{a.key} is due {a.due_date.isoformat()}, more than {_days(cfg.due_soon_days)} ahead",
        )
    return out


def pair_alerts(a: ItemFacts, b: ItemFacts, as_of: datetime, cfg: AlertsConfig) -> list[AlertDraft]:
    """The rules that hold for "A is blocked by B" (A and B open, in different projects)."""
    return [c.draft for c in check_pair(a, b, as_of, cfg) if c.draft is not None]


def strongly_connected(nodes: Iterable[str], succ: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iterative (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = succ.get(node, [])
            for j in range(i, len(children)):
                child = children[j]
                if child not in index:
                    work.append((node, j + 1))
                    work.append((child, 0))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    out.append(component)
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
    return out


def _cycle_path(start: str, members: set[str], succ: dict[str, list[str]]) -> list[str]:
    """A shortest blocking cycle through ``start`` inside its component (BFS)."""
    prev: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        node = queue.popleft()
        for nxt in sorted(succ.get(node, [])):
            if nxt not in members:
                continue
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return list(reversed(path))
            if nxt not in seen:
                seen.add(nxt)
                prev[nxt] = node
                queue.append(nxt)
    return [start]  # unreachable for a real component of two or more items


def cycle_alerts(
    edges: Sequence[tuple[str, str]],
    project_of: dict[str, str | None],
    facts: dict[str, ItemFacts],
    cfg: AlertsConfig,
) -> list[AlertDraft]:
    """One ``dependency_cycle`` alert per knot of blocking links spanning two+ projects.

    ``edges`` are (blocked, blocking) pairs; ``facts`` must hold every item of a knot.
    """
    if "dependency_cycle" in cfg.disabled_rules:
        return []
    succ = _successors(edges)
    out: list[AlertDraft] = []
    for component in _knots(edges, project_of, succ):
        projects = sorted({p for n in component if (p := project_of.get(n))})
        start = min(component, key=lambda n: (facts[n].key, n))
        path = _cycle_path(start, set(component), succ)
        keys = [facts[n].key for n in path]
        first, blocker = facts[start], facts[path[-1]]
        extra = len(component) - len(path)
        more = f"; {extra} more item{'s' if extra != 1 else ''} in the knot" if extra else ""
        out.append(
            AlertDraft(
                rule="dependency_cycle",
                severity=cfg.severity["dependency_cycle"],
                message=(
                    f"Blocking cycle across {', '.join(projects)}: "
                    f"{' → '.join([*keys, keys[0]])} (each item blocks the next){more}."
                ),
                blocked=first,
                blocking=blocker,
                program_key=first.program_key,
                project_keys=tuple(projects),
                cycle_ids=tuple(sorted(component)),
                cycle_keys=tuple(keys),
            )
        )
    return out


def _successors(edges: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """blocker -> the items it blocks."""
    succ: dict[str, list[str]] = defaultdict(list)
    for blocked, blocking in edges:
        succ[blocking].append(blocked)
    return succ


def _knots(
    edges: Sequence[tuple[str, str]],
    project_of: dict[str, str | None],
    succ: dict[str, list[str]],
) -> list[list[str]]:
    """Strongly connected components of two or more items in two or more projects."""
    nodes = sorted({n for e in edges for n in e})
    return [
        comp
        for comp in strongly_connected(nodes, succ)
        if len(comp) > 1 and len({project_of.get(n) for n in comp} - {None}) > 1
    ]


def evaluate(ctx: Ctx) -> tuple[list[AlertDraft], dict[str, int], list[LinkCheck]]:
    """Every alert that holds now, the open cross-project blockers per blocked project, and
    every rule's verdict on each of those blocking links."""
    edges = _open_blocking_edges(ctx)
    project_of: dict[str, str | None] = {}
    for a, b, pa, pb in edges:
        project_of[a], project_of[b] = pa, pb
    cross = [(a, b) for a, b, pa, pb in edges if pa is not None and pb is not None and pa != pb]
    open_blockers: dict[str, int] = defaultdict(int)
    for a, _b in cross:
        open_blockers[project_of[a]] += 1  # type: ignore[index]

    plain = [(a, b) for a, b, _pa, _pb in edges]
    knots = _knots(plain, project_of, _successors(plain))
    knot_of = {n: i for i, comp in enumerate(knots) for n in comp}
    facts = _facts(ctx, [x for pair in cross for x in pair] + sorted(knot_of))

    cfg = ctx.config.alerts
    drafts: list[AlertDraft] = []
    checks: list[LinkCheck] = []
    for a, b in cross:
        verdicts = check_pair(facts[a], facts[b], ctx.as_of, cfg)
        drafts.extend(c.draft for c in verdicts if c.draft is not None)
        checks.append(LinkCheck(facts[a], facts[b], verdicts))
    knot_edges = [(a, b) for a, b in plain if a in knot_of and b in knot_of]
    cycles = cycle_alerts(knot_edges, project_of, facts, cfg)
    drafts.extend(cycles)
    by_members = {d.cycle_ids: d for d in cycles}
    for check in checks:
        blocked, blocking = check.blocked, check.blocking
        same = blocked.id in knot_of and knot_of.get(blocking.id) == knot_of[blocked.id]
        cycle = by_members.get(tuple(sorted(knots[knot_of[blocked.id]]))) if same else None
        if "dependency_cycle" in cfg.disabled_rules:
            verdict = RuleCheck("dependency_cycle", None, "switched off in [alerts] disabled_rules")
        elif cycle is not None:
            verdict = RuleCheck("dependency_cycle", cycle, cycle.message)
        else:
            verdict = RuleCheck(
                "dependency_cycle",
                None,
                f"no chain of open blocking links leads from {blocked.key} back to {blocking.key}",
            )
        check.verdicts.append(verdict)
    return drafts, dict(open_blockers), checks


@dataclass(frozen=True, slots=True)
class LinkCheck:
    """Every rule's verdict on one open cross-project blocking link."""

    blocked: ItemFacts
    blocking: ItemFacts
    verdicts: list[RuleCheck]


# --- lifecycle ------------------------------------------------------------------------------


def _item_columns(side: str, item: ItemFacts | None) -> dict[str, object]:
    return {
        f"{side}_item_id": item.id if item else None,
        f"{side}_item_key": item.key if item else None,
        f"{side}_project_key": item.project_key if item else None,
    }


def refresh_alerts(ctx: Ctx, extra: Sequence[AlertDraft] = ()) -> AlertsResult:
    """Evaluate the rules and move stored alerts along open -> resolved. ``extra`` are
    alerts other modules' rules found (``shared_resource_contention``): same lifecycle."""
    drafts, open_blockers, checks = evaluate(ctx)
    _write_checks(ctx, checks)
    drafts = [*drafts, *extra]
    alerts, events = table("dependency_alerts"), table("alert_events")
    conn, now = ctx.conn, ctx.as_of
    stored = {
        r.identity: r.id
        for r in conn.execute(
            sa.select(alerts.c.id, alerts.c.identity).where(alerts.c.status == "open")
        )
    }
    by_identity = {d.identity: d for d in drafts}

    def values(d: AlertDraft) -> dict[str, object]:
        return {
            "rule": d.rule,
            "program_key": d.program_key,
            "severity": d.severity,
            **_item_columns("blocked", d.blocked),
            **_item_columns("blocking", d.blocking),
            "cycle_item_keys": ",".join(d.cycle_keys) or None,
            "project_keys": ",".join(d.project_keys) or None,
            "person": d.person,
            "message": d.message,
            "slip_days": d.slip_days,
            "last_seen_at": now,
        }

    held = [
        {"alert_id": stored[ident], **values(d)}
        for ident, d in by_identity.items()
        if ident in stored
    ]
    if held:
        conn.execute(
            alerts.update()
            .where(alerts.c.id == sa.bindparam("alert_id"))
            .values({k: sa.bindparam(k) for k in held[0] if k != "alert_id"}),
            held,
        )
    new = [
        {**values(d), "identity": ident, "status": "open", "first_seen_at": now}
        for ident, d in by_identity.items()
        if ident not in stored
    ]
    opened_ids: list[int] = []
    if new:
        result = conn.execute(
            alerts.insert().returning(alerts.c.id, sort_by_parameter_order=True), new
        )
        opened_ids = [r[0] for r in result]
    gone = [alert_id for ident, alert_id in stored.items() if ident not in by_identity]
    for i in range(0, len(gone), _BATCH):
        conn.execute(
            alerts.update()
            .where(alerts.c.id.in_(gone[i : i + _BATCH]))
            .values(status="resolved", resolved_at=now)
        )
    event_rows = [{"alert_id": i, "event": "open", "created_at": now} for i in opened_ids] + [
        {"alert_id": i, "event": "resolve", "created_at": now} for i in gone
    ]
    if event_rows:
        conn.execute(events.insert(), event_rows)
    return AlertsResult(
        opened=len(opened_ids),
        resolved=len(gone),
        open=list(by_identity.values()),
        open_blockers=open_blockers,
    )


def _write_checks(ctx: Ctx, checks: list[LinkCheck]) -> None:
    """``blocker_checks``: a full refresh, the verdicts of this run only."""
    tbl = table("blocker_checks")
    ctx.conn.execute(tbl.delete())
    rows = [
        {
            "blocked_item_id": c.blocked.id,
            "blocking_item_id": c.blocking.id,
            "rule": v.rule,
            "blocked_item_key": c.blocked.key,
            "blocked_project_key": c.blocked.project_key,
            "blocking_item_key": c.blocking.key,
            "blocking_project_key": c.blocking.project_key,
            "program_key": c.blocked.program_key,
            "holds": v.holds,
            "reason": v.reason,
            "as_of": ctx.as_of,
        }
        for c in checks
        for v in c.verdicts
    ]
    for i in range(0, len(rows), _BATCH):
        ctx.conn.execute(tbl.insert(), rows[i : i + _BATCH])
