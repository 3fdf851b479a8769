"""The metrics of docs/metrics.md computed a second time, in plain Python, from the simulator's
ground truth (``programview.simulator.generator``), never from the warehouse or the transform.

``tests/test_metrics_ground_truth.py`` syncs the simulator over HTTP, runs the transform and
compares every ``v_*`` figure with what this module computes. The two share no code: this
module reads the generator's items, status/points history, sprint memberships, releases and
links, and applies the definitions as docs/metrics.md states them. Defaults are the documented
ones (``METRICS``, ``ALERTS``, ``HEALTH`` below), so a default that drifted in the code would
show too.

What the warehouse can know is not always the generator's whole truth; where a definition
depends on what programview observed, this module follows the docs' rule for it and says so:

* Jira keeps no release timestamp, so a version's dates depend on when programview looked:
  ``syncs`` lists, per sync, its time and what Jira showed then (``release_snapshot``).
  A version already released at its first sync is a *backfill*: planned date = the
  ``releaseDate`` Jira showed (the release day: releasing rewrites it), actual date = the
  latest resolution time of its done items. A version first seen open: planned date = the
  ``releaseDate`` shown then, actual date = the time of the first sync that saw it released.
* Settled sprints and releases (closed or shipped more than ``refresh_days`` before as_of)
  keep the figures of the run that last computed them: pass that run's ``Truth`` as
  ``previous``.
* Actual cost counts the worklogs of all of a project's items, deleted ones too (the time
  was spent); the forecast is computed in exact arithmetic, so "rounded up to whole days"
  has one right answer.
* Only the sources configured in the run count: a project's figures are over the scopes the
  config gives it (``org.config_toml(..., kinds=["jira"])`` drops the GitHub companion repo of
  a mixed project, so such a project is its Jira part).
* GitHub keeps no iteration history and no start time: with GitHub configured, pass the
  ``github_truth.Observer`` that watched the syncs. Its sprints are (iteration, repository)
  pairs with the iteration field's dates and the membership the syncs observed; an issue's
  start is the first sync that saw it in progress; a milestone's planned date is the due date
  the first sync saw, its actual date ``closed_at``. Links GitHub cannot show (relates and
  duplicates between issues) are not expected; cross-tool "Blocked by X" references count
  where the blocked item is a GitHub issue (the Jira connector reads no descriptions).
* GitLab shows exact history (tests/gitlab_truth.py states its rules): its sprints are
  (iteration, project) pairs with the iterations API's whole-day dates and the membership the
  iteration events give (a roll-over counts from the next sprint's start, a removal only before
  the iteration ended); a milestone's planned date is its due date, its actual date its
  release's; GitLab has no resolution, so only an issue closed as a duplicate is not
  delivered; links of every kind count (relates undirected, a duplicate also a relates link),
  and "Blocked by X" references in GitLab descriptions.
"""

from __future__ import annotations

import math
import statistics
import zlib
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from typing import Any

import numpy
from github_truth import Observer, iteration_dates, iteration_state
from gitlab_truth import duplicate_of as gitlab_duplicate_of
from gitlab_truth import iteration_dates as gitlab_iteration_dates
from gitlab_truth import memberships as gitlab_memberships
from gitlab_truth import sprint_name as gitlab_sprint_name

from programview.simulator.generator import Item, Link, Organisation, Release, Sprint

# --- documented defaults (docs/metrics.md) ----------------------------------------------------

METRICS: dict[str, int] = {
    "velocity_sprints": 3,
    "velocity_window_days": 14,
    "throughput_weeks": 6,
    "cycle_time_days": 90,
    "defect_window_days": 90,
    "on_time_window_days": 180,
    "on_time_grace_days": 0,
    "scope_change_days": 30,
    "bug_trend_days": 30,
    "flow_days": 90,
    "refresh_days": 30,  # fixed, not a config key ("Settled sprints and releases")
}
ALERTS: dict[str, Any] = {
    "unscheduled_window_days": 30,
    "stalled_days": 14,
    "due_soon_days": 14,
    "due_soon_high_days": 7,
    "slip_severity": ((3, "low"), (14, "medium"), (30, "high")),  # else critical
    "severity": {
        "blocker_unscheduled": "high",
        "blocker_stalled": "medium",
        "blocked_item_due_soon": "medium",
        "dependency_cycle": "critical",
        "shared_resource_contention": "medium",
    },
    "wip_limit": 3,
    "at_risk_severity": ((3, "low"), (14, "medium"), (30, "high")),  # else critical
}
#: docs/metrics.md, "Delivery forecasts" ([forecast] defaults).
FORECAST: dict[str, int] = {
    "trials": 10_000,
    "seed": 0,
    "history_sprints": 6,
    "history_weeks": 12,
    "max_steps": 520,
}
HEALTH: dict[str, Any] = {
    "weights": {
        "schedule": 0.3,
        "delivery": 0.2,
        "quality": 0.2,
        "budget": 0.15,
        "dependencies": 0.15,
    },
    "components": {
        "schedule": ("spi", "on_time_delivery_rate", "forecast_on_time_probability"),
        "delivery": ("velocity_cv", "say_do_ratio"),
        "quality": ("defect_density", "open_bug_trend_pct"),
        "budget": ("cpi",),
        "dependencies": ("alert_weight",),
    },
    "thresholds": {
        "spi": ((0.7, 0), (0.85, 50), (0.95, 75), (1.0, 100)),
        "on_time_delivery_rate": ((0.5, 0), (0.7, 50), (0.85, 75), (1.0, 100)),
        "forecast_on_time_probability": ((0.5, 0), (0.7, 50), (0.85, 75), (0.95, 100)),
        "velocity_cv": ((0.1, 100), (0.25, 75), (0.4, 50), (0.6, 0)),
        "say_do_ratio": ((0.5, 0), (0.7, 50), (0.85, 75), (1.0, 100)),
        "defect_density": ((5, 100), (10, 75), (20, 50), (40, 0)),
        "open_bug_trend_pct": ((0, 100), (10, 75), (25, 50), (50, 0)),
        "cpi": ((0.7, 0), (0.85, 50), (0.95, 75), (1.0, 100)),
        "alert_weight": ((0, 100), (2, 75), (6, 50), (12, 0)),
    },
    "severity_weights": {"low": 1.0, "medium": 2.0, "high": 4.0, "critical": 8.0},
    "green": 75.0,
    "amber": 50.0,
}

#: Jira resolutions that close an issue without delivering it (the generator uses these two).
NOT_DELIVERED_RESOLUTIONS = {"Won't Do", "Duplicate"}
#: The simulator's item types -> type_category (a Jira "Sub-task" is a task).
TYPE_CATEGORY = {"subtask": "task"}

DAY = timedelta(days=1)


# --- per-item facts, as the docs define them --------------------------------------------------


def type_category(item: Item) -> str:
    return TYPE_CATEGORY.get(item.type, item.type)


def is_done(item: Item, at: datetime) -> bool:
    """docs "Done": status category done now, resolved at or before ``at``."""
    return item.is_done and item.resolved is not None and item.resolved <= at


#: GitLab issues closed as a duplicate (``GroundTruth`` fills it for its organisation): GitLab
#: has no resolution, so these are its only issues done but not delivered.
GITLAB_DUPLICATES: set[int] = set()


def not_delivered(item: Item) -> bool:
    if item.system == "gitlab":
        return item.is_done and item.id in GITLAB_DUPLICATES
    return item.is_done and item.resolution in NOT_DELIVERED_RESOLUTIONS


def delivered(item: Item, at: datetime) -> bool:
    """Done, not closed as "not planned", not an epic."""
    return is_done(item, at) and not not_delivered(item) and item.type != "epic"


def open_at(item: Item, at: datetime) -> bool:
    """Created by ``at`` and not done by then (docs: "open 30 days ago")."""
    return item.created <= at and not is_done(item, at)


def estimate_at(item: Item, at: datetime) -> float | None:
    """docs "Estimate history": the latest estimate set at or before ``at``; before the first
    recorded change, the estimate the item started with."""
    value = item.points_history[0].points
    for change in item.points_history:
        if change.at > at:
            break
        value = change.points
    return value


def pts(value: float | None) -> float:
    """Unset is not zero, but point sums count it as 0."""
    return 0.0 if value is None else value


def percentile(values: list[float], q: float) -> float:
    """numpy's default (linear) percentile, as docs/metrics.md specifies."""
    return float(numpy.percentile(numpy.array(values, dtype=float), q * 100))


def piecewise(points: Iterable[tuple[float, float]], value: float) -> float:
    pts_ = list(points)
    if value <= pts_[0][0]:
        return float(pts_[0][1])
    for (x0, s0), (x1, s1) in zip(pts_, pts_[1:], strict=False):
        if value <= x1:
            return s0 + (s1 - s0) * (value - x0) / (x1 - x0)
    return float(pts_[-1][1])


def slip_severity(slip: int) -> str:
    for limit, name in ALERTS["slip_severity"]:
        if slip <= limit:
            return name
    return "critical"


#: release id -> (released?, the ``releaseDate`` Jira shows) at one sync
ReleaseSnapshot = dict[int, tuple[bool, date]]


def release_snapshot(org: Organisation) -> ReleaseSnapshot:
    """What a versions listing shows now: released or not, and ``releaseDate`` (the due date
    while open; releasing rewrites it to the release day, as Jira does)."""
    return {
        r.id: (r.released_at is not None, r.released_at.date() if r.released_at else r.due)
        for r in org.releases.values()
    }


# --- the result -------------------------------------------------------------------------------


@dataclass
class Truth:
    """Every figure, keyed like the views: sprints and releases by native id, projects and
    programs by key, alerts by (rule, blocked key, blocking key)."""

    as_of: datetime
    sprints: dict[str, dict[str, Any]] = field(default_factory=dict)
    releases: dict[str, dict[str, Any]] = field(default_factory=dict)
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    project_health: dict[str, dict[str, Any]] = field(default_factory=dict)
    programs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (blocked key, blocked project, blocking key, blocking project, link kind)
    dependencies: set[tuple[str, str | None, str, str | None, str]] = field(default_factory=set)
    #: (rule, blocked key, blocking key) -> {severity, slip_days, program_key}
    pair_alerts: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    #: one per knot: {items (keys), first (key), length (shortest cycle), projects, program}
    cycles: list[dict[str, Any]] = field(default_factory=list)
    #: shared_resource_contention: one per (program, person): {program_key, person, severity}
    contention: list[dict[str, Any]] = field(default_factory=list)
    #: Monte Carlo forecasts: open releases by native id, projects by key
    release_forecasts: dict[str, dict[str, Any]] = field(default_factory=dict)
    project_forecasts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: release_at_risk: release native id -> {severity, slip_days, program_key, project_key}
    at_risk: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (project key, day) -> {todo, wip, done, arrivals, departures, ageing, net_flow,
    #: net_flow_7d (from the window's 7th day)}
    flow: dict[tuple[str, date], dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class SprintView:
    """A sprint as the warehouse holds it: a Jira sprint, or a GitHub (iteration, repository)
    pair. ``members`` are (item, entered, left): ``entered`` is when the item joined (its
    creation when it was there from the start), ``left`` when it was taken out (None: still in)."""

    key: str  # the warehouse native id
    name: str
    state: str
    start: datetime
    end: datetime
    completed: datetime | None
    project: str
    members: tuple[tuple[Item, datetime, datetime | None], ...]


class GroundTruth:
    """The figures of ``org`` as of ``as_of`` (aware UTC) for the scopes in ``project_scopes``
    (project key -> scope paths: the run's configuration)."""

    def __init__(
        self,
        org: Organisation,
        project_scopes: dict[str, list[str]],
        as_of: datetime,
        syncs: list[tuple[datetime, ReleaseSnapshot]],
        previous: Truth | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.org = org
        self.observer = observer
        self.as_of = as_of
        self.syncs = syncs
        self.previous = previous
        self.today = as_of.date()
        #: scope path -> project key (a scope in two projects counts for the first key)
        self.project_of_scope: dict[str, str] = {}
        for key in sorted(project_scopes):
            for path in project_scopes[key]:
                self.project_of_scope.setdefault(path, key)
        self.projects = {p.key: p for p in org.projects if p.key in project_scopes}
        self.items: list[Item] = [
            i for path in self.project_of_scope for i in org.scope_items(path) if i.created <= as_of
        ]
        self.by_id = {i.id: i for i in self.items}
        if observer is None and any(i.system == "github" for i in self.items):
            raise ValueError("GitHub is configured: pass the Observer that watched the syncs")
        self.sprints: list[SprintView] = [
            self._jira_sprint(s)
            for cad in org.cadences
            if cad.system not in ("github", "gitlab")
            and any(p in self.project_of_scope for p in cad.scope_paths)
            for s in org.sprints_of(cad)
        ]
        self.sprints += self._github_sprints()
        self.sprints += self._gitlab_sprints()
        GITLAB_DUPLICATES.clear()
        GITLAB_DUPLICATES.update(
            i.id for i in self.items if i.system == "gitlab" and gitlab_duplicate_of(org, i)
        )
        self.releases: list[Release] = [
            r for r in org.releases.values() if r.scope_path in self.project_of_scope
        ]
        #: item id -> the sprints it is in now (not taken out)
        self.current_sprints: dict[int, list[SprintView]] = defaultdict(list)
        for view in self.sprints:
            for item, _entered, left in view.members:
                if left is None:
                    self.current_sprints[item.id].append(view)

    def _jira_sprint(self, s: Sprint) -> SprintView:
        members = tuple(
            (item, m.added, m.removed)
            for item in self.items
            for m in item.sprints
            if m.sprint_id == s.id
        )
        return SprintView(
            str(s.native_id),
            s.name,
            s.state,
            s.start,
            s.end,
            s.completed,
            self.sprint_project(s),
            members,
        )

    def _github_sprints(self) -> list[SprintView]:
        if self.observer is None:
            return []
        obs = self.observer
        sprints = obs.github_sprints()
        out = []
        for repo, iterations in sorted(obs.repo_iterations.items()):
            if repo not in self.project_of_scope:
                continue
            for iteration in sorted(iterations):
                spr = sprints[iteration]
                start, end = iteration_dates(spr)
                state = iteration_state(spr, self.as_of)
                members = tuple(
                    (
                        item,
                        entered.replace(tzinfo=UTC) if entered else item.created,
                        left.replace(tzinfo=UTC) if left else None,
                    )
                    for item in self.items
                    if item.scope.path == repo
                    for it, (entered, left) in obs.memberships(item).items()
                    if it == iteration
                )
                out.append(
                    SprintView(
                        f"{iteration}@{repo}",
                        spr.name,
                        state,
                        start.replace(tzinfo=UTC),
                        end.replace(tzinfo=UTC),
                        end.replace(tzinfo=UTC) if state == "closed" else None,
                        self.project_of_scope[repo],
                        members,
                    )
                )
        return out

    def _gitlab_sprints(self) -> list[SprintView]:
        """GitLab sprints: one per (iteration, project path) that an issue of the project was
        ever in (deleted issues were seen by the syncs before they went)."""
        out = []
        for path in sorted(self.project_of_scope):
            if self.org.scope(path).system != "gitlab":
                continue
            ever = {m.sprint_id for i in self.org.scope_items(path, True) for m in i.sprints}
            live = [i for i in self.items if i.scope.path == path]
            for sid in sorted(ever):
                spr = self.org.sprints[sid]
                start, end = (d.replace(tzinfo=UTC) for d in gitlab_iteration_dates(spr))
                members = tuple(
                    (
                        item,
                        added.replace(tzinfo=UTC) if added else item.created,
                        removed.replace(tzinfo=UTC) if removed else None,
                    )
                    for item in live
                    for it, (added, removed) in gitlab_memberships(self.org, item).items()
                    if it == sid
                )
                out.append(
                    SprintView(
                        f"{spr.native_id}@{path}",
                        gitlab_sprint_name(self.org, spr),
                        spr.state,
                        start,
                        end,
                        end if spr.state == "closed" else None,
                        self.project_of_scope[path],
                        members,
                    )
                )
        return out

    def started(self, item: Item) -> datetime | None:
        """First move to in progress: the generator's, or for GitHub the first sync that
        saw it (GitHub shows no start)."""
        if item.system == "github":
            assert self.observer is not None
            seen = self.observer.started(item)
            return seen.replace(tzinfo=UTC) if seen else None
        return item.started

    def visible(self, link: Link) -> bool:
        """Whether the synced sources show ``link``: same-tool links except GitHub's relates /
        duplicates (GitHub has none), and cross-tool references written in a blocked GitHub
        issue's body."""
        blocked = self.org.items[link.to_id]
        if link.via == "body":
            return blocked.system in ("github", "gitlab")
        return blocked.system != "github" or link.kind == "blocks"

    def project(self, item: Item) -> str:
        return self.project_of_scope[item.scope.path]

    def sprint_project(self, sprint: Sprint) -> str:
        """A Jira board's sprints belong to the board's project (the cadence owner)."""
        cad = self.org.cadence(sprint.cadence_id)
        owner = cad.owner if cad.owner in self.project_of_scope else cad.scope_paths[0]
        return self.project_of_scope[owner]

    # --- sprints ------------------------------------------------------------------------------

    def sprint_close(self, s: SprintView) -> datetime | None:
        if s.state == "closed":
            return s.completed or s.end
        if s.state == "active":
            return self.as_of
        return None

    def sprint_figures(self, s: SprintView) -> dict[str, Any]:
        start, close = s.start, self.sprint_close(s)
        out = dict.fromkeys(
            (
                "committed_points",
                "added_points",
                "removed_points",
                "completed_points",
            ),
            0.0,
        )
        out.update(
            dict.fromkeys(
                (
                    "committed_items",
                    "added_items",
                    "removed_items",
                    "completed_items",
                    "unestimated_items",
                ),
                0,
            )
        )
        for item, added, removed in s.members:
            if added <= start and (removed is None or removed > start):
                out["committed_items"] += 1
                out["committed_points"] += pts(estimate_at(item, start))
                if close is None and estimate_at(item, start) is None:
                    # a future sprint has no close: its unestimated items are those
                    # planned into it so far (docs/metrics.md, "Sprints")
                    out["unestimated_items"] += 1
            if close is None:
                continue
            if start < added <= close:
                out["added_items"] += 1
                out["added_points"] += pts(estimate_at(item, close))
            if removed is not None and start < removed <= close:
                out["removed_items"] += 1
                out["removed_points"] += pts(estimate_at(item, removed))
            in_at_close = added <= close and (removed is None or removed > close)
            if in_at_close and is_done(item, close) and not not_delivered(item):
                out["completed_items"] += 1
                out["completed_points"] += pts(estimate_at(item, close))
            if in_at_close and estimate_at(item, close) is None:
                out["unestimated_items"] += 1
        out.update(
            project_key=s.project,
            state=s.state,
            close_at=close,
            length_days=Fraction(int((s.end - s.start).total_seconds()), 86_400),
        )
        return out

    # --- releases -----------------------------------------------------------------------------

    def release_figures(self, r: Release) -> dict[str, Any]:
        members = [i for i in self.items if i.release_id == r.id]
        done_items = [i for i in members if is_done(i, self.as_of)]
        planned, seen_released, backfill = self.observed(r)
        released = seen_released is not None or backfill
        if backfill:
            actual = max((i.resolved for i in done_items if i.resolved), default=None)
        else:
            actual = seen_released
        grace = METRICS["on_time_grace_days"]
        slip: int | None = None
        if released and actual is not None and planned is not None:
            slip = (actual.date() - planned).days
        elif not released and planned is not None and (self.today - planned).days > grace:
            slip = (self.today - planned).days
        return {
            "project_key": self.project_of_scope[r.scope_path],
            "state": "released" if released else "open",
            "planned_date": planned,
            "released_at": actual,
            "slip_days": slip,
            "on_time": None if slip is None else slip <= grace,
            "item_count": len(members),
            "points": sum(pts(i.points) for i in members),
            "done_points": sum(pts(i.points) for i in done_items if not not_delivered(i)),
            "open_bugs": sum(1 for i in members if i.type == "bug" and not is_done(i, self.as_of)),
            "unestimated_items": sum(1 for i in members if i.points is None),
        }

    def observed(self, r: Release) -> tuple[date | None, datetime | None, bool]:
        """(planned date, time first seen released, released before the first sync) from
        what the syncs saw (docs/metrics.md, "What on time means"). A GitHub milestone keeps
        its due date and says when it was closed: planned = the due date the first sync saw,
        actual = ``closed_at``."""
        if r.system == "github":
            assert self.observer is not None
            return self.observer.first_due[r.id], r.released_at, False
        if r.system == "gitlab":  # due dates do not move after generation; the release dates it
            return r.due, r.released_at, False
        first: tuple[bool, date] | None = None
        for at, snapshot in self.syncs:
            if r.id not in snapshot:
                continue
            released, shown = snapshot[r.id]
            if first is None:
                first = (released, shown)
                if released:
                    return shown, None, True
            elif released:
                return first[1], at, False
        if first is None:
            raise AssertionError(f"release {r.name} of {r.scope_path} was never synced")
        return first[1], None, False

    # --- project metrics ----------------------------------------------------------------------

    def project_figures(
        self,
        key: str,
        sprints: dict[str, dict[str, Any]],
        releases: dict[str, dict[str, Any]],
        open_blockers: int,
    ) -> dict[str, Any]:
        as_of, m = self.as_of, METRICS
        proj = self.projects[key]
        items = [i for i in self.items if self.project(i) == key]
        work = [i for i in items if i.type != "epic"]
        v: dict[str, Any] = {"item_count": len(items), "open_blockers": open_blockers}

        # velocity, stability, say/do
        closed = sorted(
            (
                f
                for f in sprints.values()
                if f["project_key"] == key and f["state"] == "closed" and f["close_at"] <= as_of
            ),
            key=lambda f: f["close_at"],
            reverse=True,
        )[: m["velocity_sprints"]]
        if closed:
            series = [f["completed_points"] for f in closed]
            committed = sum(f["committed_points"] for f in closed)
            v["velocity_sprints"] = len(closed)
            v["say_do_ratio"] = sum(series) / committed if committed else None
            cadence = sum((f["length_days"] for f in closed), Fraction(0)) / len(closed)
        else:
            width = m["velocity_window_days"] * DAY
            n = max(1, (m["throughput_weeks"] * 7) // m["velocity_window_days"])
            series = [
                sum(
                    pts(i.points)
                    for i in work
                    if delivered(i, as_of)
                    and as_of - (k + 1) * width < i.resolved <= as_of - k * width
                )
                for k in range(n)
            ]
            v["velocity_sprints"] = 0
            v["say_do_ratio"] = None
            cadence = Fraction(m["velocity_window_days"])
        v["velocity_points"] = statistics.fmean(series)
        v["velocity_cv"] = (
            statistics.pstdev(series) / v["velocity_points"]
            if len(series) >= 2 and v["velocity_points"] > 0
            else None
        )

        def resolved_within(item: Item, days: int) -> bool:
            return item.resolved is not None and as_of - days * DAY < item.resolved <= as_of

        shipped = [i for i in work if delivered(i, as_of)]
        v["throughput_per_week"] = (
            sum(1 for i in shipped if resolved_within(i, 7 * m["throughput_weeks"]))
            / m["throughput_weeks"]
        )
        starts = {i.id: self.started(i) for i in shipped}
        cycle = [
            (i.resolved - starts[i.id]) / DAY  # type: ignore[operator]
            for i in shipped
            if resolved_within(i, m["cycle_time_days"])
            and starts[i.id] is not None
            and starts[i.id] <= i.resolved  # type: ignore[operator]
        ]
        v["cycle_time_items"] = len(cycle) or None
        v["cycle_time_p50_days"] = percentile(cycle, 0.5) if cycle else None
        v["cycle_time_p85_days"] = percentile(cycle, 0.85) if cycle else None

        window = m["defect_window_days"]
        v["bugs_created"] = sum(
            1 for i in items if i.type == "bug" and as_of - window * DAY < i.created <= as_of
        )
        v["delivered_points"] = sum(pts(i.points) for i in shipped if resolved_within(i, window))
        v["defect_density"] = (
            100 * v["bugs_created"] / v["delivered_points"] if v["delivered_points"] else None
        )

        # on-time delivery
        d0 = self.today - m["on_time_window_days"] * DAY
        t0 = as_of - m["on_time_window_days"] * DAY
        judged = [
            f
            for f in releases.values()
            if f["project_key"] == key
            and f["on_time"] is not None
            and (
                (f["planned_date"] is not None and d0 < f["planned_date"] <= self.today)
                or (f["released_at"] is not None and t0 < f["released_at"] <= as_of)
            )
        ]
        v["releases_judged"] = len(judged)
        v["on_time_delivery_rate"] = (
            sum(1 for f in judged if f["on_time"]) / len(judged) if judged else None
        )

        # points, bugs, coverage
        v["total_points"] = sum(pts(i.points) for i in work if not not_delivered(i))
        v["done_points"] = sum(pts(i.points) for i in shipped)
        v["remaining_points"] = v["total_points"] - v["done_points"]
        v["unestimated_items"] = sum(1 for i in work if i.points is None)
        v["estimate_coverage_pct"] = (
            100 * (len(work) - v["unestimated_items"]) / len(work) if work else None
        )
        bugs = [i for i in items if i.type == "bug"]
        v["open_bugs"] = sum(1 for i in bugs if open_at(i, as_of))
        then = sum(1 for i in bugs if open_at(i, as_of - m["bug_trend_days"] * DAY))
        v["open_bug_trend_pct"] = 100 * (v["open_bugs"] - then) / max(then, 1)

        # scope change
        ts = as_of - m["scope_change_days"] * DAY
        base = sum(pts(estimate_at(i, ts)) for i in work if open_at(i, ts))
        added = sum(pts(i.points) for i in work if ts < i.created <= as_of)
        for i in work:
            if not open_at(i, ts):
                continue
            for before, after in zip(i.points_history, i.points_history[1:], strict=False):
                if ts < after.at <= as_of and pts(after.points) > pts(before.points):
                    added += pts(after.points) - pts(before.points)
        v["scope_change_pct"] = 100 * added / base if base else None

        # budget (earned value)
        total_days = (proj.end - proj.start).days
        share = (self.today - proj.start).days / total_days
        v["planned_value"] = proj.budget * min(1.0, max(0.0, share))
        # worklogs of all the project's items, deleted ones too: the time was spent
        logs = [
            w
            for path, owner in self.project_of_scope.items()
            if owner == key
            for i in self.org.scope_items(path, include_deleted=True)
            for w in i.worklogs
            if w.started <= as_of
        ]
        hours = sum(w.seconds / 3600 for w in logs)
        has_logs = bool(logs)
        v["actual_cost"] = hours * proj.hourly_rate if has_logs else None
        v["earned_value"] = (
            proj.budget * v["done_points"] / v["total_points"] if v["total_points"] else None
        )
        ev, ac, pv = v["earned_value"], v["actual_cost"], v["planned_value"]
        v["budget_variance"] = ev - ac if ev is not None and ac is not None else None
        v["cpi"] = ev / ac if ev is not None and ac else None
        v["spi"] = ev / pv if ev is not None and pv else None

        # forecast, in exact arithmetic: "rounded up to whole days" must not depend on float
        # noise in the sprint length or the mean velocity
        velocity = sum(map(Fraction, series), Fraction(0)) / len(series)
        remaining = Fraction(v["remaining_points"])
        if remaining <= 0:
            v["forecast_finish_date"] = self.today
        elif velocity > 0:
            v["forecast_finish_date"] = (
                self.today + math.ceil(remaining / (velocity / cadence)) * DAY
            )
        else:
            v["forecast_finish_date"] = None
        finish = v["forecast_finish_date"]
        v["forecast_slip_days"] = (finish - proj.end).days if finish is not None else None
        return v

    # --- dependencies and alerts --------------------------------------------------------------

    def blocking_links(self) -> list[tuple[Item, Item]]:
        """(blocked, blocker) of every ``blocks`` link between two synced items (the Jira
        connector reads native issue links; cross-tool body references live in GitHub and
        GitLab descriptions)."""
        out = []
        for lk in self.org.links:
            if lk.kind != "blocks" or not self.visible(lk):
                continue
            blocked, blocker = self.by_id.get(lk.to_id), self.by_id.get(lk.from_id)
            if blocked is not None and blocker is not None and blocked.id != blocker.id:
                out.append((blocked, blocker))
        return out

    def dependencies(self) -> set[tuple[str, str | None, str, str | None, str]]:
        out = set()
        for lk in self.org.links:
            if not self.visible(lk):
                continue
            to, frm = self.by_id.get(lk.to_id), self.by_id.get(lk.from_id)
            if to is None or frm is None:
                continue
            if to.system == "gitlab" and lk.via == "native":
                out |= self._gitlab_link_rows(lk, to, frm)
                continue
            out.add((to.key, self.project(to), frm.key, self.project(frm), lk.kind))
        return out

    def _gitlab_link_rows(
        self, lk: Link, to: Item, frm: Item
    ) -> set[tuple[str, str | None, str, str | None, str]]:
        """A GitLab link as GitLab shows it: relates has no direction (the smaller key is
        stored first); a duplicate is a relates link plus the duplicate mark."""
        if lk.kind == "blocks":
            return {(to.key, self.project(to), frm.key, self.project(frm), "blocks")}
        a, b = sorted((to, frm), key=lambda i: i.key)
        out = {(a.key, self.project(a), b.key, self.project(b), "relates")}
        if lk.kind == "duplicates" and gitlab_duplicate_of(self.org, frm) is to:
            out.add((to.key, self.project(to), frm.key, self.project(frm), "duplicates"))
        return out

    def planned_finish(self, item: Item) -> date | None:
        dates = [item.due] if item.due is not None else []
        for spr in self.current_sprints.get(item.id, []):
            if spr.state in ("active", "future"):
                dates.append(spr.end.date())
        rel = self.org.releases.get(item.release_id) if item.release_id is not None else None
        if rel is not None and rel.released_at is None:
            dates.append(rel.due)
        return min(dates) if dates else None

    def in_active_sprint(self, item: Item) -> bool:
        return any(spr.state == "active" for spr in self.current_sprints.get(item.id, []))

    def active(self, item: Item) -> bool:
        return item.status_category == "in_progress" or self.in_active_sprint(item)

    def open_release_due(self, item: Item) -> date | None:
        rel = self.org.releases.get(item.release_id) if item.release_id is not None else None
        return rel.due if rel is not None and rel.released_at is None else None

    def alerts(self) -> tuple[dict[tuple[str, str, str], dict[str, Any]], list[dict[str, Any]]]:
        as_of, today, cfg = self.as_of, self.today, ALERTS
        open_links = [
            (a, b)
            for a, b in self.blocking_links()
            if not is_done(a, as_of) and not is_done(b, as_of)
        ]
        pairs: dict[tuple[str, str, str], dict[str, Any]] = {}
        for a, b in open_links:
            if self.project(a) == self.project(b):
                continue
            program = self.projects[self.project(a)].program

            def add(rule: str, severity: str, slip: int | None = None) -> None:
                pairs[(rule, a.key, b.key)] = {  # noqa: B023 (used at once)
                    "severity": severity,
                    "slip_days": slip,
                    "program_key": program,  # noqa: B023
                    "project_key": self.project(a),  # noqa: B023
                }

            pa, pb = self.planned_finish(a), self.planned_finish(b)
            if pa is not None and pb is not None and pb > pa:
                slip = (pb - pa).days
                add("blocker_scheduled_later", slip_severity(slip), slip)
            release_due = self.open_release_due(a)
            if pb is None and (
                self.in_active_sprint(a)
                or (
                    release_due is not None
                    and release_due <= today + cfg["unscheduled_window_days"] * DAY
                )
            ):
                add("blocker_unscheduled", cfg["severity"]["blocker_unscheduled"])
            if self.active(a) and b.updated <= as_of - cfg["stalled_days"] * DAY:
                add("blocker_stalled", cfg["severity"]["blocker_stalled"])
            if a.due is not None and a.due <= today + cfg["due_soon_days"] * DAY:
                days = (a.due - today).days
                add(
                    "blocked_item_due_soon",
                    "high"
                    if days <= cfg["due_soon_high_days"]
                    else cfg["severity"]["blocked_item_due_soon"],
                )
        return pairs, self.cycles(open_links)

    def contention(self) -> list[dict[str, Any]]:
        """``shared_resource_contention`` (docs/metrics.md, "Shared people"): a person with
        items in progress in two or more of a program's projects that have an active sprint,
        more than their WIP limit in all (the generated config gives the stretched shared
        people their own limit; everyone else has the default).

        Who is one person follows the docs' matching rules on what the tools show: a shared
        person is listed in the config's ``[[people]]`` (name, e-mail, login alias), so their
        Jira and GitHub accounts are one person; anyone else is one person per tool (GitHub
        shows no e-mail, and accounts are never joined on a name), shown by the name the
        tool gives (Jira: the display name; GitHub: the login)."""
        active = {s.project for s in self.sprints if s.state == "active"}
        configured = {s.person_id for s in self.org.shared_people}
        limits = {s.person_id: s.wip_limit for s in self.org.shared_people if s.wip_limit}
        #: (program, who) -> project -> items; who = (tool or "config", person id)
        load: dict[tuple[str, tuple[str, int]], dict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        shown: dict[tuple[str, int], str] = {}
        for item in self.items:
            if (
                item.assignee is None
                or type_category(item) == "epic"
                or item.status_category != "in_progress"
            ):
                continue
            project = self.project(item)
            if project not in active:
                continue
            person = self.org.person(item.assignee)
            if item.assignee in configured:
                who, name = ("config", person.id), person.name
            elif item.system == "github":
                who, name = ("github", person.id), person.login
            else:
                who, name = ("jira", person.id), person.name
            shown[who] = name
            load[(self.projects[project].program, who)][project] += 1
        return [
            {
                "program_key": program,
                "person": shown[who],
                "severity": ALERTS["severity"]["shared_resource_contention"],
            }
            for (program, who), counts in sorted(load.items())
            if len(counts) >= 2 and sum(counts.values()) > limits.get(who[1], ALERTS["wip_limit"])
        ]

    def cycles(self, open_links: list[tuple[Item, Item]]) -> list[dict[str, Any]]:
        """Knots: sets of two or more open items that all reach each other along blocking
        links, spanning two or more projects (mutual reachability, computed by BFS)."""
        succ: dict[int, set[int]] = defaultdict(set)  # blocker -> what it blocks
        for blocked, blocker in open_links:
            succ[blocker.id].add(blocked.id)

        def reach(start: int) -> set[int]:
            seen, queue = {start}, deque([start])
            while queue:
                for nxt in succ.get(queue.popleft(), ()):
                    if nxt not in seen:
                        seen.add(nxt)
                        queue.append(nxt)
            return seen

        nodes = sorted({n for a, b in open_links for n in (a.id, b.id)})
        reach_of = {n: reach(n) for n in nodes}
        knots: list[frozenset[int]] = []
        placed: set[int] = set()
        for n in nodes:
            if n in placed:
                continue
            knot = frozenset(x for x in reach_of[n] if n in reach_of[x])
            placed |= knot
            if len(knot) > 1 and len({self.project(self.by_id[x]) for x in knot}) > 1:
                knots.append(knot)
        out = []
        for knot in knots:
            first = min(knot, key=lambda x: (self.by_id[x].key, str(x)))
            out.append(
                {
                    "items": {self.by_id[x].key for x in knot},
                    "first": self.by_id[first].key,
                    "length": _shortest_cycle(first, knot, succ),
                    "projects": sorted({self.project(self.by_id[x]) for x in knot}),
                    "program_key": self.projects[self.project(self.by_id[first])].program,
                }
            )
        return out

    # --- forecasts (docs/metrics.md, "Delivery forecasts") -----------------------------------

    def history(
        self, key: str, sprints: dict[str, dict[str, Any]]
    ) -> tuple[list[float], int, bool]:
        """The sampled values (points, else items), the step length in days, and whether
        the unit is points."""
        as_of, f = self.as_of, FORECAST
        closed = sorted(
            (
                (x["close_at"], sid, x)
                for sid, x in sprints.items()
                if x["project_key"] == key and x["state"] == "closed" and x["close_at"] <= as_of
            ),
            key=lambda t: (t[0], t[1]),
            reverse=True,
        )[: f["history_sprints"]]
        if closed:
            points = [float(x["completed_points"]) for _c, _s, x in closed]
            items = [float(x["completed_items"]) for _c, _s, x in closed]
            lengths = [x["length_days"] for _c, _s, x in closed]
            step = max(1, round(sum(lengths, Fraction(0)) / len(lengths)))
        else:
            weeks = f["history_weeks"]
            done = [
                i
                for i in self.items
                if self.project(i) == key and i.type != "epic" and delivered(i, as_of)
            ]
            points, items = [], []
            for w in range(weeks):
                hi, lo = as_of - 7 * w * DAY, as_of - 7 * (w + 1) * DAY
                got = [i for i in done if lo < i.resolved <= hi]  # type: ignore[operator]
                points.append(sum(pts(i.points) for i in got))
                items.append(float(len(got)))
            step = 7
        return (points, step, True) if sum(points) > 0 else (items, step, False)

    def forecasts(self, truth: Truth) -> None:
        """Every open release's and project's forecast, and the release_at_risk alerts, by
        the documented method: the same seeded draws, then plain loops."""
        f, today = FORECAST, self.today
        open_releases = {
            rid: r
            for r in self.releases
            if truth.releases[
                rid := (
                    f"milestone/{r.native_id}"
                    if r.system in ("github", "gitlab")
                    else str(r.native_id)
                )
            ]["state"]
            == "open"
        }
        rid_of = {r.id: rid for rid, r in open_releases.items()}
        open_work = [i for i in self.items if i.type != "epic" and not i.is_done]
        own: dict[tuple[str, str], list[float] | None] = {}  # ("r", rid) | ("p", key)
        for key in sorted(self.projects):
            rels = sorted(
                (r for r in open_releases.values() if self.project_of_scope[r.scope_path] == key),
                key=lambda r: (r.due, r.name),
            )
            values, step, by_points = self.history(key, truth.sprints)
            mine = [i for i in open_work if self.project(i) == key]
            if sum(values) <= 0:
                for r in rels:
                    own[("r", rid_of[r.id])] = None
                own[("p", key)] = None
                continue
            amount = (lambda i: pts(i.points)) if by_points else (lambda i: 1.0)  # noqa: E731
            thresholds, acc = [], 0.0
            for r in rels:
                acc += sum(amount(i) for i in mine if i.release_id == r.id)
                thresholds.append(acc)
            total = max([sum(amount(i) for i in mine), *thresholds])
            mean = sum(values) / len(values)
            steps = max(1, min(f["max_steps"], math.ceil(2 * total / mean) + 4))
            rng = numpy.random.default_rng([f["seed"], zlib.crc32(key.encode())])
            draws = rng.integers(0, len(values), size=(f["trials"], steps)).tolist()
            finishes: list[list[float]] = [[] for _ in [*thresholds, total]]
            for row in draws:
                seq = [values[i] for i in row]
                for n, r_ in enumerate([*thresholds, total]):
                    finishes[n].append(_finish(seq, r_, step))
            for r, fin in zip(rels, finishes, strict=False):
                own[("r", rid_of[r.id])] = fin
            own[("p", key)] = finishes[-1]

        # dependencies: what blocks each open release's and project's open items
        def node(item: Item) -> tuple[str, str]:
            if item.release_id in rid_of:
                return ("r", rid_of[item.release_id])
            return ("p", self.project(item))

        blocks: dict[tuple[str, str], list[tuple[str, tuple[str, str]]]] = defaultdict(list)
        for a, b in self.blocking_links():
            if a.is_done or b.is_done:
                continue
            target = node(b)
            if a.release_id in rid_of and target != ("r", rid_of[a.release_id]):
                blocks[("r", rid_of[a.release_id])].append((b.key, target))
            if target != ("p", self.project(a)):
                blocks[("p", self.project(a))].append((b.key, target))
        # release cycles: mutual reachability among releases; links inside one are dropped
        succ: dict[str, set[str]] = defaultdict(set)
        for (kind, rid), got in blocks.items():
            for _k, (tk, tid) in got:
                if kind == "r" and tk == "r":
                    succ[tid].add(rid)

        def reach(start: str) -> set[str]:
            seen, queue = {start}, deque([start])
            while queue:
                for nxt in succ.get(queue.popleft(), ()):
                    if nxt not in seen:
                        seen.add(nxt)
                        queue.append(nxt)
            return seen

        reach_of = {rid: reach(rid) for rid in open_releases}
        finish: dict[tuple[str, str], list[float] | None] = {}

        def settle(n: tuple[str, str]) -> list[float] | None:
            if n in finish:
                return finish[n]
            mine = own.get(n)
            if mine is None:
                finish[n] = None
                return None
            out = list(mine)
            for _key, target in blocks.get(n, []):
                if (
                    n[0] == "r"
                    and target[0] == "r"
                    and n[1] in reach_of[target[1]]
                    and (target[1] in reach_of[n[1]])
                ):
                    continue  # the same cycle
                theirs = own.get(target) if target[0] == "p" else settle(target)
                if theirs is not None:
                    out = [max(x, y) for x, y in zip(out, theirs, strict=True)]
            finish[n] = out
            return out

        def quantile(values: list[float], q: float) -> float:
            ordered = sorted(values)
            return ordered[math.ceil(q * len(ordered)) - 1]

        def day(offset: float) -> date | None:
            return None if math.isinf(offset) else today + int(offset) * DAY

        def row(n: tuple[str, str], due: date | None) -> dict[str, Any]:
            fin = settle(n)
            out: dict[str, Any] = {"due": due}
            if fin is None:
                out.update(p50=None, p85=None, p95=None, probability=None, driving=None)
                return out
            out.update(
                p50=day(quantile(fin, 0.5)),
                p85=day(quantile(fin, 0.85)),
                p95=day(quantile(fin, 0.95)),
                probability=(
                    None
                    if due is None
                    else sum(1 for x in fin if x <= (due - today).days) / len(fin)
                ),
            )
            mine = own[n]
            own_p85 = quantile(mine, 0.85)  # type: ignore[arg-type]
            best: tuple[float, str] | None = None
            for key, target in blocks.get(n, []):
                if (
                    n[0] == "r"
                    and target[0] == "r"
                    and n[1] in reach_of[target[1]]
                    and (target[1] in reach_of[n[1]])
                ):
                    continue
                theirs = own.get(target) if target[0] == "p" else settle(target)
                if theirs is None:
                    continue
                p85 = quantile(theirs, 0.85)
                if p85 > own_p85 and (best is None or (p85, best[1]) > (best[0], key)):
                    best = (p85, key)
            out["driving"] = best[1] if best else None
            return out

        for rid, r in open_releases.items():
            key = self.project_of_scope[r.scope_path]
            mine = [i for i in open_work if i.release_id == r.id]
            got = row(("r", rid), r.due)
            got.update(
                project_key=key,
                remaining_points=sum(pts(i.points) for i in mine),
                remaining_items=len(mine),
            )
            truth.release_forecasts[rid] = got
            if got["p85"] is None and own.get(("r", rid)) is None:
                continue
            late = None if got["p85"] is None else (got["p85"] - r.due).days
            if late is not None and late <= 0:
                continue
            severity = "critical"
            for limit, name in ALERTS["at_risk_severity"]:
                if late is not None and late <= limit:
                    severity = name
                    break
            truth.at_risk[rid] = {
                "severity": severity,
                "slip_days": late,
                "program_key": self.projects[key].program,
                "project_key": key,
                "name": r.name,
            }
        for key, proj in self.projects.items():
            truth.project_forecasts[key] = row(("p", key), proj.end)

    # --- flow (docs/metrics.md, "Flow") ------------------------------------------------------

    def flow(self, truth: Truth) -> None:
        """Per project and day of the flow window: the status of every live non-epic item at
        the end of the day, what arrived and departed, and the ageing work in progress."""
        today, as_of = self.today, self.as_of
        days = [today - k * DAY for k in range(METRICS["flow_days"] - 1, -1, -1)]
        for key in sorted(self.projects):
            p85 = truth.projects[key]["cycle_time_p85_days"]
            facts = []
            for i in self.items:
                if self.project(i) != key or i.type == "epic":
                    continue
                created = i.created.date()
                done_day = None
                if i.is_done and i.resolved is None:
                    done_day = created
                elif i.is_done and i.resolved <= as_of:  # type: ignore[operator]
                    done_day = i.resolved.date()  # type: ignore[union-attr]
                started = self.started(i) if i.status_category != "todo" else None
                if started is not None and started > as_of:
                    started = None
                facts.append((created, done_day, started))
            for day in days:
                end = as_of if day == today else datetime.combine(day + DAY, time.min, tzinfo=UTC)
                row = dict.fromkeys(("todo", "wip", "done", "arrivals", "departures", "ageing"), 0)
                for created, done_day, started in facts:
                    if created > day:
                        continue
                    row["arrivals"] += created == day
                    row["departures"] += done_day == day
                    if done_day is not None and done_day <= day:
                        row["done"] += 1
                    elif started is not None and started.date() <= day:
                        row["wip"] += 1
                        if p85 is not None and (end - started) / DAY > p85:
                            row["ageing"] += 1
                    else:
                        row["todo"] += 1
                row["net_flow"] = row["arrivals"] - row["departures"]
                truth.flow[(key, day)] = row
            for k in range(6, len(days)):
                week = [truth.flow[(key, days[j])]["net_flow"] for j in range(k - 6, k + 1)]
                truth.flow[(key, days[k])]["net_flow_7d"] = sum(week)

    # --- health -------------------------------------------------------------------------------

    def health(self, values: dict[str, Any], alert_weight: float | None) -> dict[str, Any]:
        scores: dict[str, float | None] = {}
        metrics = dict(values, alert_weight=alert_weight)
        for comp, names in HEALTH["components"].items():
            got = [
                piecewise(HEALTH["thresholds"][n], metrics[n])
                for n in names
                if metrics.get(n) is not None
            ]
            scores[comp] = round(statistics.fmean(got), 2) if got else None
        return self._overall(scores)

    def _overall(self, scores: dict[str, float | None]) -> dict[str, Any]:
        weights = HEALTH["weights"]
        present = {c: s for c, s in scores.items() if s is not None and weights.get(c, 0) > 0}
        total = sum(weights[c] for c in present)
        score = round(sum(weights[c] * s for c, s in present.items()) / total, 2) if total else None
        status = None
        if score is not None:
            status = (
                "green"
                if score >= HEALTH["green"]
                else "amber"
                if score >= HEALTH["amber"]
                else "red"
            )
        return {"components": scores, "health_score": score, "health_status": status}

    # --- everything ---------------------------------------------------------------------------

    def compute(self) -> Truth:
        truth = Truth(as_of=self.as_of)
        settled = self.as_of - METRICS["refresh_days"] * DAY
        before = self.previous
        for s in self.sprints:
            sid = s.key
            close = self.sprint_close(s)
            if before and sid in before.sprints and s.state == "closed" and close <= settled:  # type: ignore[operator]
                truth.sprints[sid] = before.sprints[sid]  # frozen at its last computation
            else:
                truth.sprints[sid] = self.sprint_figures(s)
        for r in self.releases:
            rid = (
                f"milestone/{r.native_id}" if r.system in ("github", "gitlab") else str(r.native_id)
            )
            old = before.releases.get(rid) if before else None
            shipped = old["released_at"] if old else None
            if old and old["state"] == "released" and shipped is not None and shipped <= settled:
                truth.releases[rid] = old
            else:
                truth.releases[rid] = self.release_figures(r)
        truth.dependencies = self.dependencies()
        truth.pair_alerts, truth.cycles = self.alerts()
        truth.contention = self.contention()
        self.forecasts(truth)

        blockers: dict[str, set[tuple[int, int]]] = defaultdict(set)
        for a, b in self.blocking_links():
            if (
                self.project(a) != self.project(b)
                and not is_done(a, self.as_of)
                and not is_done(b, self.as_of)
            ):
                blockers[self.project(a)].add((a.id, b.id))
        weights = HEALTH["severity_weights"]
        alert_weight: dict[str, float] = defaultdict(float)
        for alert in truth.pair_alerts.values():
            alert_weight[alert["project_key"]] += weights[alert["severity"]]
        for knot in truth.cycles:
            for key in knot["projects"]:
                alert_weight[key] += weights[ALERTS["severity"]["dependency_cycle"]]

        for key in sorted(self.projects):
            values = self.project_figures(
                key, truth.sprints, truth.releases, len(blockers.get(key, ()))
            )
            truth.projects[key] = values
            chance = truth.project_forecasts[key]["probability"]
            truth.project_health[key] = self.health(
                dict(values, forecast_on_time_probability=chance),
                alert_weight.get(key, 0.0) if values["item_count"] else None,
            )

        self.flow(truth)
        open_alerts: dict[str, int] = defaultdict(int)
        for alert in truth.pair_alerts.values():
            open_alerts[alert["program_key"]] += 1
        for knot in truth.cycles:
            open_alerts[knot["program_key"]] += 1
        for stretched in truth.contention:
            open_alerts[stretched["program_key"]] += 1
        for risky in truth.at_risk.values():  # not in alert_weight: the schedule scores it
            open_alerts[risky["program_key"]] += 1
        for prog in self.org.programs:
            members = [k for k in sorted(self.projects) if self.projects[k].program == prog.key]
            comps: dict[str, float | None] = {}
            for comp in HEALTH["components"]:
                got = [
                    s
                    for k in members
                    if (s := truth.project_health[k]["components"][comp]) is not None
                ]
                comps[comp] = round(statistics.fmean(got), 2) if got else None

            def total(name: str) -> float | None:
                got = [truth.projects[k][name] for k in members]  # noqa: B023
                got = [x for x in got if x is not None]
                return sum(got) if got else None

            truth.programs[prog.key] = {
                **self._overall(comps),
                "project_count": len(members),
                "planned_value": total("planned_value"),
                "earned_value": total("earned_value"),
                "actual_cost": total("actual_cost"),
                "open_alerts": open_alerts.get(prog.key, 0),
            }
        return truth


def _finish(values: list[float], remaining: float, step_days: int) -> float:
    """Days until the running sum of ``values`` reaches ``remaining`` (docs, step 3)."""
    if remaining <= 0:
        return 0.0
    done = 0.0
    for k, x in enumerate(values):
        if done + x >= remaining:
            return float(math.ceil(step_days * (k + (remaining - done) / x) - 1e-9))
        done += x
    return math.inf


def _shortest_cycle(start: int, members: frozenset[int], succ: dict[int, set[int]]) -> int:
    """Number of items on a shortest blocking cycle through ``start`` inside ``members``."""
    dist = {start: 0}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in succ.get(node, ()):
            if nxt not in members:
                continue
            if nxt == start:
                return dist[node] + 1
            if nxt not in dist:
                dist[nxt] = dist[node] + 1
                queue.append(nxt)
    raise AssertionError("a knot item lies on no cycle")


def compute(
    org: Organisation,
    project_scopes: dict[str, list[str]],
    syncs: list[tuple[datetime, ReleaseSnapshot]],
    previous: Truth | None = None,
    observer: Observer | None = None,
) -> Truth:
    """Every figure of ``org`` as of its now, after the ``syncs`` so far (the last one at
    now); ``previous`` is the truth of the transform run before (settled figures);
    ``observer`` watched the syncs when GitHub is configured."""
    return GroundTruth(
        org, project_scopes, org.now.astimezone(UTC), syncs, previous, observer
    ).compute()
