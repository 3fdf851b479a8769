"""Monte Carlo delivery forecasts per open release and per project, through dependencies
(docs/metrics.md, "Delivery forecasts").

Why Monte Carlo: a linear forecast (remaining / mean velocity) gives one date and no sense of
how likely it is; sampling the team's own recent history gives P50/P85/P95 dates and the
probability of making the due date, and it carries the variation the team really has.

The method, exactly (so a figure can be reproduced by hand):

* history per project: the completed points (and items) of its last ``history_sprints``
  closed sprints, one *step* = the mean length of those sprints in whole days (rounded); a
  project without closed sprints uses its delivered points (and items) per 7-day week over
  the last ``history_weeks`` weeks, one step = 7 days. The unit is points when that history
  holds any points, else items (teams that do not estimate).
* work: an open release's remaining work is its open (not done, not epic) items' points, or
  their count. A team works its open releases in due-date order (no due date last), so a
  release's threshold is its own remaining work plus that of the project's releases due
  before it; the project's threshold is all its open work.
* trials: ``rng = numpy.random.default_rng([seed, crc32(project_key)])``, then
  ``idx = rng.integers(0, n, size=(trials, steps))`` draws each trial's sequence of history
  values (with replacement), ``steps = min(max_steps, ceil(2 * total / mean) + 4)``. In a
  trial with cumulative sums S_k, work R finishes in step k (the first with S_k >= R), after
  ``ceil(step_days * (k - 1 + (R - S_{k-1}) / x_k))`` days; R <= 0 finishes today. A trial
  that does not reach R within ``steps`` steps finishes "beyond the horizon" (late).
* dependencies: in every trial a release finishes at the later of its own finish and the
  finish of whatever blocks its open items (the blocking item's open release, or, for a
  blocking item in no open release, its project's finish of all its open work). A cycle
  among releases is broken (its links are ignored) and reported in ``blocking_cycle``.
* P50/P85/P95: the smallest day by which at least that share of trials finish; the
  probability of finishing on time: the share of trials finishing on or before the due date.
* the driving blocker: the blocking item whose finish has the latest P85, when that P85 is
  later than the release's own P85.

Everything is keyed on the transform's ``as_of`` date, so the same inputs give the same
figures at any time of day.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from graphlib import TopologicalSorter
from typing import Any

import numpy as np
import sqlalchemy as sa

from programview.transform._sql import IS_RELEASED, SCOPE_PROJECT_CTE, Ctx, fetch
from programview.transform.alerts import AlertDraft, strongly_connected
from programview.warehouse.db import table

log = logging.getLogger(__name__)

#: Float noise guard when rounding a finish up to whole days (10.000000001 days is 10).
_EPS = 1e-9
_QUANTILES = {"p50": 0.50, "p85": 0.85, "p95": 0.95}
_QUANTILE_SHARES = tuple(_QUANTILES.values())


@dataclass(frozen=True, slots=True)
class History:
    """One project's sampled history: values per step and the step length in days."""

    points: tuple[float, ...]
    items: tuple[float, ...]
    step_days: int
    kind: str  # sprints | weeks

    @property
    def unit(self) -> str:
        return "points" if sum(self.points) > 0 else "items"

    @property
    def values(self) -> tuple[float, ...]:
        return self.points if self.unit == "points" else self.items


@dataclass(slots=True)
class Node:
    """A release (or a project's whole open work) being forecast."""

    id: str
    project_key: str
    program_key: str | None
    name: str | None
    due_date: date | None
    remaining_points: float = 0.0
    remaining_items: int = 0
    own: np.ndarray | None = None  # finish offset in days per trial (inf: beyond horizon)
    finish: np.ndarray | None = None
    cycle_names: list[str] = field(default_factory=list)
    driving_key: str | None = None
    driving_name: str | None = None
    driving_p85: date | None = None
    note: str | None = None
    #: id(array) -> (array, its quantiles): see ``quantile``
    _quantiles: dict[int, tuple[np.ndarray, dict[float, float]]] = field(
        default_factory=dict, repr=False
    )

    def quantile(self, which: str, q: float) -> float:
        """``quantile_day`` of the ``own`` or ``finish`` array, the quantiles written
        (P50/P85/P95) found by one partition per array: the forecast asks for them again
        and again (every release a blocker holds up reads its P85), and partitioning 10,000
        trials each time was a third of the Monte Carlo's cost."""
        arr = self.own if which == "own" else self.finish
        assert arr is not None
        got = self._quantiles.get(id(arr))
        if got is None or got[0] is not arr:
            got = self._quantiles[id(arr)] = (arr, quantile_days(arr, _QUANTILE_SHARES))
        return got[1][q] if q in got[1] else quantile_day(arr, q)


# --- the method (pure functions, no database) -----------------------------------------------


def step_count(total: float, history: tuple[float, ...], max_steps: int) -> int:
    """How many steps each trial draws: twice the mean-pace need, plus 4, capped."""
    mean = sum(history) / len(history)
    return max(1, min(max_steps, math.ceil(2 * max(total, 0.0) / mean) + 4))


def draw(
    project_key: str, history: tuple[float, ...], trials: int, steps: int, seed: int
) -> np.ndarray[Any, Any]:
    """The sampled history values, shape (trials, steps): a seeded, per-project stream (a new
    project elsewhere does not change this one's figures)."""
    rng = np.random.default_rng([seed, zlib.crc32(project_key.encode())])
    idx = rng.integers(0, len(history), size=(trials, steps))
    return np.asarray(history, dtype=np.float64)[idx]


#: Trials per block in ``finish_days``: a block's arrays stay in the CPU cache (a whole
#: project's 10,000 x 50 matrices do not), which makes the passes over them a third faster.
_BLOCK_ROWS = 1024


def finish_days(samples: np.ndarray, thresholds: list[float], step_days: int) -> list[np.ndarray]:
    """Per threshold, the finish offset (days from today) of every trial; inf when the work is
    not done within the drawn steps. Trials are independent: computed in blocks of rows."""
    out = [np.empty(samples.shape[0]) for _ in thresholds]
    for a in range(0, samples.shape[0], _BLOCK_ROWS):
        block = samples[a : a + _BLOCK_ROWS]
        for o, got in zip(out, _finish_block(block, thresholds, step_days), strict=True):
            o[a : a + _BLOCK_ROWS] = got
    return out


def _finish_block(samples: np.ndarray, thresholds: list[float], step_days: int) -> list[np.ndarray]:
    cum = np.cumsum(samples, axis=1)
    prev = np.concatenate([np.zeros((cum.shape[0], 1)), cum[:, :-1]], axis=1)
    rows = np.arange(cum.shape[0])
    out: list[np.ndarray] = []
    for r in thresholds:
        if r <= 0:
            out.append(np.zeros(cum.shape[0]))
            continue
        reached = cum >= r
        k = np.argmax(reached, axis=1)  # 0-based step that reaches r
        x = samples[rows, k]
        with np.errstate(divide="ignore", invalid="ignore"):
            steps = k + (r - prev[rows, k]) / x
        days = np.ceil(step_days * steps - _EPS)
        out.append(np.where(reached[:, -1], days, np.inf))
    return out


def quantile_day(finish: np.ndarray, q: float) -> float:
    """The smallest day by which at least share ``q`` of trials finish (may be inf)."""
    k = max(0, math.ceil(q * len(finish)) - 1)
    return float(np.partition(finish, k)[k])  # the k-th smallest, without a full sort


def quantile_days(finish: np.ndarray, shares: tuple[float, ...]) -> dict[float, float]:
    """``quantile_day`` for several shares from one partition (each k-th smallest is in
    place after it, so the values are the same)."""
    ks = [max(0, math.ceil(q * len(finish)) - 1) for q in shares]
    part = np.partition(finish, ks)
    return {q: float(part[k]) for q, k in zip(shares, ks, strict=True)}


def on_time_share(finish: np.ndarray, today: date, due: date | None) -> float | None:
    if due is None:
        return None
    return float(np.mean(finish <= (due - today).days))


# --- reading the warehouse ------------------------------------------------------------------


def _histories(ctx: Ctx) -> dict[str, History]:
    cfg = ctx.config.forecast
    rows = fetch(
        ctx.conn,
        f"""
WITH {SCOPE_PROJECT_CTE}
SELECT COALESCE(sp.project_key, m.project_key) AS project_key,
       m.completed_points, m.completed_items, s.start_at, s.end_at
FROM sprint_metrics m
JOIN sprints s ON s.id = m.sprint_id
LEFT JOIN scope_project sp ON sp.source_name = s.source_name AND sp.scope = s.scope
WHERE s.state = 'closed' AND m.close_at <= :as_of
  AND COALESCE(sp.project_key, m.project_key) IS NOT NULL
ORDER BY 1, m.close_at DESC, m.sprint_id DESC
""",
        {"as_of": ctx.as_of},
        {"start_at": sa.DateTime(), "end_at": sa.DateTime()},
    )
    sprints: dict[str, list[tuple[float, float, float | None]]] = defaultdict(list)
    for project, pts, items, start, end in rows:
        if len(sprints[project]) < cfg.history_sprints:
            length = (end - start).total_seconds() / 86400 if start and end else None
            sprints[project].append((float(pts or 0), float(items or 0), length))
    out: dict[str, History] = {}
    for project, got in sprints.items():
        lengths = [x[2] for x in got if x[2]]
        step = max(1, round(sum(lengths) / len(lengths))) if lengths else 14
        out[project] = History(tuple(x[0] for x in got), tuple(x[1] for x in got), step, "sprints")
    weeks = cfg.history_weeks
    t0 = ctx.as_of - timedelta(days=7 * weeks)
    week = ctx.sql.floor(f"{ctx.sql.days_between(':as_of', 'wi.resolved_at')} / 7")
    weekly = fetch(
        ctx.conn,
        f"""
WITH {SCOPE_PROJECT_CTE}
SELECT sp.project_key, {week} AS week, COALESCE(SUM(wi.story_points), 0) AS points,
       COUNT(*) AS items
FROM work_items wi
JOIN scope_project sp ON sp.source_name = wi.source_name AND sp.scope = wi.scope
WHERE wi.resolved_at > :t0 AND wi.resolved_at <= :as_of AND wi.status_category = 'done'
  AND NOT wi.not_delivered AND wi.type_category <> 'epic' AND NOT wi.is_deleted
GROUP BY sp.project_key, {week}
""",
        {"as_of": ctx.as_of, "t0": t0},
    )
    per_week: dict[str, dict[int, tuple[float, float]]] = defaultdict(dict)
    for project, w, pts, items in weekly:
        per_week[project][min(int(w), weeks - 1)] = (float(pts), float(items))
    for project, by_week in per_week.items():
        if project in out:
            continue
        series = [by_week.get(w, (0.0, 0.0)) for w in range(weeks)]
        out[project] = History(tuple(x[0] for x in series), tuple(x[1] for x in series), 7, "weeks")
    return out


_OPEN_ITEM = (
    "NOT wi.is_deleted AND wi.status_category <> 'done' AND wi.type_category <> 'epic' "
    "AND (wi.created_at IS NULL OR wi.created_at <= :as_of)"
)


def _nodes(ctx: Ctx) -> tuple[dict[str, Node], dict[str, Node]]:
    """Open releases (by id) and projects (by key), with their remaining work."""
    params = {"as_of": ctx.as_of}
    releases: dict[str, Node] = {}
    for r in fetch(
        ctx.conn,
        f"""
WITH {SCOPE_PROJECT_CTE},
rem AS (  -- open releases only: their members, not every release's (most have shipped)
  SELECT wr.release_id, COUNT(*) AS items, COALESCE(SUM(wi.story_points), 0) AS points
  FROM work_item_releases wr
  JOIN work_items wi ON wi.id = wr.work_item_id
  WHERE wr.release_id IN (
      SELECT r.id FROM releases r WHERE NOT {IS_RELEASED} AND NOT COALESCE(r.archived, FALSE)
    ) AND {_OPEN_ITEM}
  GROUP BY wr.release_id
)
SELECT r.id, r.name, COALESCE(r.due_date, r.planned_date) AS due, sp.project_key,
       p.program_key, COALESCE(rem.items, 0) AS items, COALESCE(rem.points, 0) AS points
FROM releases r
JOIN scope_project sp ON sp.source_name = r.source_name AND sp.scope = r.scope
LEFT JOIN projects p ON p.key = sp.project_key
LEFT JOIN rem ON rem.release_id = r.id
WHERE NOT {IS_RELEASED} AND NOT COALESCE(r.archived, FALSE)
ORDER BY r.id
""",
        params,
        {"due": sa.Date()},
    ):
        releases[r.id] = Node(
            r.id, r.project_key, r.program_key, r.name, r.due, float(r.points), int(r.items)
        )
    projects: dict[str, Node] = {}
    for r in fetch(
        ctx.conn,
        f"""
WITH {SCOPE_PROJECT_CTE},
rem AS (
  SELECT sp.project_key, COUNT(*) AS items, COALESCE(SUM(wi.story_points), 0) AS points
  FROM work_items wi
  JOIN scope_project sp ON sp.source_name = wi.source_name AND sp.scope = wi.scope
  WHERE {_OPEN_ITEM}
  GROUP BY sp.project_key
)
SELECT p.key, p.name, p.program_key, p.end_date, COALESCE(rem.items, 0) AS items,
       COALESCE(rem.points, 0) AS points
FROM projects p LEFT JOIN rem ON rem.project_key = p.key
ORDER BY p.key
""",
        params,
        {"end_date": sa.Date()},
    ):
        projects[r.key] = Node(
            r.key, r.key, r.program_key, r.name, r.end_date, float(r.points), int(r.items)
        )
    return releases, projects


@dataclass(frozen=True, slots=True)
class _Edge:
    blocked_id: str  # item
    blocking_id: str
    blocking_key: str


def _blocking(ctx: Ctx) -> tuple[list[_Edge], dict[str, list[str]], dict[str, str]]:
    """Open ``blocks`` links between live open items (any project, any tool); each involved
    item's open releases (earliest due first) and project."""
    edges = [
        _Edge(r[0], r[1], r[2])
        for r in fetch(
            ctx.conn,
            """
SELECT DISTINCT a.id, b.id, b.item_key
FROM dependencies d
JOIN work_items a ON a.item_key = d.blocked_key
JOIN work_items b ON b.item_key = d.blocking_key
WHERE d.link_kind = 'blocks' AND a.id <> b.id AND NOT a.is_deleted AND NOT b.is_deleted
  AND a.status_category <> 'done' AND b.status_category <> 'done'
ORDER BY 1, 2
""",
        )
    ]
    ids = sorted({e.blocked_id for e in edges} | {e.blocking_id for e in edges})
    releases_of: dict[str, list[str]] = defaultdict(list)
    project_of: dict[str, str] = {}
    for i in range(0, len(ids), 500):
        batch = ids[i : i + 500]
        for item_id, release_id in fetch(
            ctx.conn,
            f"""
SELECT wr.work_item_id, r.id FROM work_item_releases wr JOIN releases r ON r.id = wr.release_id
WHERE wr.work_item_id IN :ids AND NOT {IS_RELEASED} AND NOT COALESCE(r.archived, FALSE)
ORDER BY wr.work_item_id, COALESCE(r.due_date, r.planned_date), r.id
""",
            {"ids": batch},
        ):
            releases_of[item_id].append(release_id)
        for item_id, project in fetch(
            ctx.conn,
            f"""
WITH {SCOPE_PROJECT_CTE}
SELECT wi.id, sp.project_key FROM work_items wi
JOIN scope_project sp ON sp.source_name = wi.source_name AND sp.scope = wi.scope
WHERE wi.id IN :ids
""",
            {"ids": batch},
        ):
            project_of[item_id] = project
    return edges, releases_of, project_of


# --- putting it together --------------------------------------------------------------------


@dataclass(slots=True)
class ForecastResult:
    today: date
    releases: dict[str, Node]
    projects: dict[str, Node]
    histories: dict[str, History]

    def project_probability(self, key: str) -> tuple[float | None, str | None]:
        """P(the project's open work finishes by its end date), or why there is none."""
        node = self.projects.get(key)
        if node is not None and node.due_date is None:
            return None, "no end date configured for the project"
        if node is None or node.finish is None:
            return None, (node.note if node else None) or "no forecast for this project"
        return on_time_share(node.finish, self.today, node.due_date), None


def compute(ctx: Ctx) -> ForecastResult:
    cfg = ctx.config.forecast
    today = ctx.as_of_date
    histories = _histories(ctx)
    releases, projects = _nodes(ctx)
    edges, releases_of, project_of = _blocking(ctx)
    # only releases that are forecast: a release of a scope no configured project maps
    # (another source's copy, an unmapped scope) has no node of its own
    releases_of = {
        item: kept
        for item, ids in releases_of.items()
        if (kept := [r for r in ids if r in releases])
    }

    by_project: dict[str, list[Node]] = defaultdict(list)
    for node in releases.values():
        by_project[node.project_key].append(node)
    for key, proj in projects.items():
        rels = sorted(
            by_project.get(key, []),
            key=lambda n: (n.due_date is None, n.due_date or date.max, n.name or "", n.id),
        )
        hist = histories.get(key)
        if hist is None or sum(hist.values) <= 0:
            why = (
                f"no delivered work in the last {cfg.history_sprints} closed sprints or "
                f"{cfg.history_weeks} weeks"
            )
            for n in (*rels, proj):
                n.note = why
            continue
        use_points = hist.unit == "points"
        work = [n.remaining_points if use_points else float(n.remaining_items) for n in rels]
        thresholds = list(np.cumsum(work)) if work else []
        total = proj.remaining_points if use_points else float(proj.remaining_items)
        total = max([total, *thresholds])
        steps = step_count(total, hist.values, cfg.max_steps)
        samples = draw(key, hist.values, cfg.trials, steps, cfg.seed)
        finishes = finish_days(samples, [*thresholds, total], hist.step_days)
        for n, f in zip((*rels, proj), finishes, strict=True):
            n.own = f

    _through_dependencies(releases, projects, edges, releases_of, project_of, today)
    return ForecastResult(today, releases, projects, histories)


def _through_dependencies(
    releases: dict[str, Node],
    projects: dict[str, Node],
    edges: list[_Edge],
    releases_of: dict[str, list[str]],
    project_of: dict[str, str],
    today: date,
) -> None:
    """finish = max(own, finish of every blocker), in blocking order; cycles broken."""

    def blocker_node(item_id: str) -> tuple[str, Node] | None:
        rels = releases_of.get(item_id)
        if rels:
            return "r", releases[rels[0]]
        project = project_of.get(item_id)
        return ("p", projects[project]) if project in projects else None

    # release id -> [(blocking item key, kind, node)]
    blocks: dict[str, list[tuple[str, str, Node]]] = defaultdict(list)
    project_blocks: dict[str, list[tuple[str, str, Node]]] = defaultdict(list)
    for e in edges:
        target = blocker_node(e.blocking_id)
        if target is None:
            continue
        kind, node = target
        for rid in releases_of.get(e.blocked_id, []):
            if not (kind == "r" and node.id == rid):
                blocks[rid].append((e.blocking_key, kind, node))
        proj = project_of.get(e.blocked_id)
        if proj in projects and not (kind == "p" and node.id == proj):
            project_blocks[proj].append((e.blocking_key, kind, node))

    # release graph: blocker release -> blocked releases; cycles broken
    succ: dict[str, list[str]] = defaultdict(list)
    for rid, got in blocks.items():
        for _key, kind, node in got:
            if kind == "r":
                succ[node.id].append(rid)
    comp_of: dict[str, int] = {}
    for i, comp in enumerate(strongly_connected(sorted(releases), succ)):
        for rid in comp:
            comp_of[rid] = i
        if len(comp) > 1:
            names = sorted(f"{releases[r].name} ({releases[r].project_key})" for r in comp)
            log.warning("blocking cycle between releases %s: its links are ignored", names)
            for rid in comp:
                releases[rid].cycle_names = [
                    n for n in names if n != f"{releases[rid].name} ({releases[rid].project_key})"
                ]
    kept: dict[str, list[tuple[str, str, Node]]] = {
        rid: [b for b in got if not (b[1] == "r" and comp_of[b[2].id] == comp_of[rid])]
        for rid, got in blocks.items()
    }

    order = TopologicalSorter(
        {rid: {b[2].id for b in kept.get(rid, []) if b[1] == "r"} for rid in releases}
    ).static_order()

    def settle(node: Node, blockers: list[tuple[str, str, Node]]) -> None:
        if node.own is None:
            node.finish = None
            return
        finish = node.own
        own_p85 = node.quantile("own", 0.85)
        best: tuple[float, str, Node] | None = None
        for key, kind, other in blockers:
            # a blocking release has settled already (blocking order); a project's open work
            # counts with its own finish only (what blocks it is not followed further)
            which = "own" if kind == "p" else "finish"
            theirs = other.own if kind == "p" else other.finish
            if theirs is None:
                continue
            finish = np.maximum(finish, theirs)
            p85 = other.quantile(which, 0.85)
            if p85 > own_p85 and (best is None or (p85, best[1]) > (best[0], key)):
                best = (p85, key, other)
        node.finish = finish
        if best is not None:
            node.driving_key = best[1]
            other = best[2]
            node.driving_name = (
                other.name if other.id in releases else f"{other.id}'s work outside releases"
            )
            node.driving_p85 = _day(today, best[0])

    for rid in order:
        settle(releases[rid], kept.get(rid, []))
    for key, project_node in projects.items():
        settle(project_node, project_blocks.get(key, []))


def _day(today: date, offset: float) -> date | None:
    return None if math.isinf(offset) else today + timedelta(days=int(offset))


# --- writing --------------------------------------------------------------------------------


def _row(ctx: Ctx, node: Node, hist: History | None) -> dict[str, Any]:
    today = ctx.as_of_date
    row: dict[str, Any] = {
        "as_of_date": today,
        "as_of": ctx.as_of,
        "project_key": node.project_key,
        "program_key": node.program_key,
        "remaining_points": node.remaining_points,
        "remaining_items": node.remaining_items,
        "unit": hist.unit if hist and node.finish is not None else None,
        "history": hist.kind if hist and node.finish is not None else None,
        "history_values": (
            ",".join(f"{x:g}" for x in hist.values) if hist and node.finish is not None else None
        ),
        "step_days": hist.step_days if hist and node.finish is not None else None,
        "trials": ctx.config.forecast.trials if node.finish is not None else None,
        "driving_blocker_key": node.driving_key,
        "driving_blocker_release": node.driving_name,
        "driving_blocker_p85_date": node.driving_p85,
        "notes": node.note,
    }
    for name, q in _QUANTILES.items():
        row[f"{name}_date"] = (
            _day(today, node.quantile("finish", q)) if node.finish is not None else None
        )
    row["own_p85_date"] = _day(today, node.quantile("own", 0.85)) if node.own is not None else None
    row["probability_on_time"] = (
        on_time_share(node.finish, today, node.due_date) if node.finish is not None else None
    )
    return row


def refresh_forecasts(ctx: Ctx) -> ForecastResult:
    """Forecast every open release and project as of today; write the day's rows."""
    result = compute(ctx)
    rel_rows = []
    for node in result.releases.values():
        row = _row(ctx, node, result.histories.get(node.project_key))
        row.update(
            release_id=node.id,
            release_name=node.name,
            due_date=node.due_date,
            blocking_cycle="; ".join(node.cycle_names) or None,
        )
        rel_rows.append(row)
    proj_rows = []
    for node in result.projects.values():
        row = _row(ctx, node, result.histories.get(node.project_key))
        row.update(end_date=node.due_date)
        proj_rows.append(row)
    for name, rows in (("release_forecasts", rel_rows), ("project_forecasts", proj_rows)):
        tbl = table(name)
        ctx.conn.execute(tbl.delete().where(tbl.c.as_of_date == ctx.as_of_date))
        if rows:
            ctx.conn.execute(tbl.insert(), rows)
    return result


def at_risk_alerts(ctx: Ctx, result: ForecastResult) -> list[AlertDraft]:
    """``release_at_risk``: an open release whose P85 finish is after its due date."""
    cfg = ctx.config.alerts
    if "release_at_risk" in cfg.disabled_rules:
        return []
    today = ctx.as_of_date
    out: list[AlertDraft] = []
    for node in result.releases.values():
        if node.finish is None or node.due_date is None:
            continue
        p85_day = _day(today, node.quantile("finish", 0.85))
        late = None if p85_day is None else (p85_day - node.due_date).days
        if late is not None and late <= 0:
            continue
        share = on_time_share(node.finish, today, node.due_date) or 0.0
        when = (
            "beyond the forecast horizon, after"
            if p85_day is None or late is None
            else f"{p85_day.isoformat()}, {late} day{'s' if late != 1 else ''} after"
        )
        driven = (
            f"; driven by {node.driving_key} in {node.driving_name}, P85 "
            f"{node.driving_p85.isoformat() if node.driving_p85 else 'beyond the horizon'}"
            if node.driving_key
            else ""
        )
        days = 10**6 if late is None else late
        out.append(
            AlertDraft(
                rule="release_at_risk",
                severity=cfg.at_risk_severity.of(days),
                message=(
                    f"Release {node.name} ({node.project_key}) is at risk: P85 finish {when} "
                    f"its due date {node.due_date.isoformat()} (on time in "
                    f"{round(100 * share)}% of trials){driven}."
                ),
                blocked=None,
                blocking=None,
                program_key=node.program_key,
                project_keys=(node.project_key,),
                slip_days=late,
                identity_parts=("release", node.id),
            )
        )
    return out
