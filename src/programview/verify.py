"""``programview verify sprints``: our sprint figures beside the source's own sprint report,
with every difference explained item by item, or flagged as unexplained.

A program manager who sees "say/do 82 %" in programview and 88 % on Jira's Sprint Report
page must learn *why* the two differ, or that something is wrong. So for each closed sprint
of a source whose connector offers a sprint report (``Connector.sprint_report``: Jira's
Sprint Report), this compares, per item and per figure (committed, added, removed,
completed), what programview counts (``transform.sprints``, the same SQL as ``v_sprints``)
with what the report counts, and explains each difference by a documented rule, checked
against our own history of the item (docs/metrics.md, "Checked against Jira's own figures"):

* **re-estimated**: Jira values work added during the sprint at its estimate when it was
  added, programview at the close; and removed work at its estimate now, programview when it
  left. Explained when our estimate history reproduces Jira's number;
* **not delivered**: Jira counts every issue in a done status at the close as completed,
  programview only delivered work (not "won't do", duplicates, not planned);
* **reopened after the close**: Jira's report is frozen at the close; programview counts an
  item completed in a sprint only while it is still done, resolved at or before the close;
* **completed before the sprint**: Jira lists it as completed outside this sprint;
* **added after start**: added after the sprint's start date but before Jira actually
  started the sprint, which Jira counts as committed;
* **deleted**: deleted in, or moved out of, the synced projects since; programview leaves it
  out (or, for a sprint whose figures were kept from before the deletion, still counts it
  while Jira's report leaves it out).

Anything else is unexplained: the exit status is 0 when every difference is explained and 3
otherwise. The core never imports a connector by name: it asks the registry for the
source's connector and whether it ``reports_sprints()``.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import sqlalchemy as sa

from programview import clock
from programview.errors import ConfigError, ProgramviewError, SchemaOutdated
from programview.sync.connector import SprintRef, SprintReport, SprintReportItem
from programview.warehouse import db

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from programview.config import Config, SourceConfig

FIGURES = ("committed", "added", "removed", "completed")
#: Points closer than this are equal (sums of floats).
EPSILON = 1e-6
EXIT_OK, EXIT_UNEXPLAINED = 0, 3


# --- what we know about an item ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OurItem:
    """One item of a sprint as programview counts it, with the history that explains it.

    A figure's value is ``None`` when the item does not count in it (an unestimated item
    that counts is 0.0)."""

    native_id: str
    key: str
    deleted: bool
    committed: float | None
    added: float | None
    removed: float | None
    completed: float | None
    entered_at: datetime | None
    removed_at: datetime | None
    status: str
    resolved_at: datetime | None
    not_delivered: bool
    points_now: float | None
    #: (changed_at, from_points, to_points), oldest first
    estimates: tuple[tuple[datetime, float | None, float | None], ...] = ()
    #: (changed_at, to_category), oldest first
    statuses: tuple[tuple[datetime, str | None], ...] = ()

    def figure(self, name: str) -> float | None:
        return getattr(self, name)

    def points_at(self, moment: datetime | None) -> float | None:
        """The estimate at ``moment`` from the estimate history (as ``transform._sql``)."""
        if not self.estimates or moment is None:
            return self.points_now
        before = [e for e in self.estimates if e[0] <= moment]
        return before[-1][2] if before else self.estimates[0][1]

    def category_at(self, moment: datetime) -> str | None:
        before = [s for s in self.statuses if s[0] <= moment]
        return before[-1][1] if before else None


@dataclass(frozen=True, slots=True)
class SprintWindow:
    start: datetime | None
    close: datetime | None


def theirs(item: SprintReportItem, name: str) -> float | None:
    """What the source's report counts for ``item`` in figure ``name`` (velocity-chart
    rules: committed = in the sprint when it started, at that estimate; added = added during
    it, at the estimate then; removed and completed at their closing estimate; an issue
    completed outside the sprint counts in none)."""
    if item.outcome == "completed_elsewhere":
        return None
    counts = {
        "committed": not item.added_during_sprint,
        "added": item.added_during_sprint,
        "removed": item.outcome == "removed",
        "completed": item.outcome == "completed",
    }[name]
    if not counts:
        return None
    points = item.points_at_entry if name in ("committed", "added") else item.points_at_close
    return points or 0.0


# --- the comparison (pure) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Difference:
    figure: str
    key: str
    ours: float
    theirs: float
    #: Why, for an explained difference; None when no documented rule explains it.
    reason: str | None
    #: What we know, for an unexplained one.
    detail: str = ""

    @property
    def delta(self) -> float:
        return self.ours - self.theirs

    @property
    def explained(self) -> bool:
        return self.reason is not None


def compare_sprint(
    ours: Sequence[OurItem],
    report: SprintReport,
    window: SprintWindow,
) -> list[Difference]:
    """Every per-item, per-figure difference between our items and the report's, each with
    its explanation (or none). Items are matched by native id, else by key."""
    by_id = {o.native_id: o for o in ours}
    by_key = {o.key: o for o in ours}
    pairs: list[tuple[OurItem | None, SprintReportItem | None]] = []
    matched: set[str] = set()
    for reported in report.items:
        mine = by_id.get(reported.native_id or "") or by_key.get(reported.key)
        if mine is not None:
            matched.add(mine.native_id)
        pairs.append((mine, reported))
    pairs.extend((o, None) for o in ours if o.native_id not in matched)

    out: list[Difference] = []
    for mine, item in pairs:
        for name in FIGURES:
            a = (mine.figure(name) if mine is not None and not mine.deleted else None) or 0.0
            b = (theirs(item, name) if item is not None else None) or 0.0
            if abs(a - b) <= EPSILON:
                continue
            key = mine.key if mine is not None else item.key  # type: ignore[union-attr]
            reason = _explain(name, mine, item, window, report)
            detail = "" if reason else _detail(mine, item)
            out.append(Difference(name, key, a, b, reason, detail))
    return out


def _fmt_points(value: float | None) -> str:
    return "unestimated" if value is None else f"{value:g}"


def _day(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d") if moment else "?"


def _changes_between(
    mine: OurItem, after: datetime | None, until: datetime | None
) -> list[tuple[datetime, float | None, float | None]]:
    return [
        e
        for e in mine.estimates
        if (after is None or e[0] > after) and (until is None or e[0] <= until)
    ]


def _explain(
    name: str,
    mine: OurItem | None,
    item: SprintReportItem | None,
    window: SprintWindow,
    report: SprintReport,
) -> str | None:
    if mine is None or item is None:
        return None
    if mine.deleted:
        return (
            "deleted in (or moved out of) the synced projects since the sprint; programview "
            "leaves deleted items out, Jira's report still lists it"
        )
    start, close = window.start, window.close
    ours_in = mine.figure(name) is not None
    jira_in = theirs(item, name) is not None

    if item.outcome == "completed_elsewhere" and name in ("committed", "completed") and ours_in:
        if mine.resolved_at is not None and start is not None and mine.resolved_at <= start:
            return (
                f"completed before the sprint started ({_day(mine.resolved_at)}): Jira lists "
                "it as completed outside this sprint, programview counts it in the sprint"
            )
        return None

    if name == "completed" and jira_in and not ours_in and close is not None:
        if mine.status == "done" and mine.not_delivered:
            return (
                "closed without delivering (won't do, duplicate, not planned): Jira's report "
                "counts every issue in a done status at the close as completed, programview "
                "counts delivered work only"
            )
        if mine.category_at(close) == "done":
            later = [s for s in mine.statuses if s[0] > close and s[1] != "done"]
            if later:
                return (
                    f"done at the close, reopened on {_day(later[0][0])}: Jira's report is "
                    "frozen at the close, programview counts an item completed in a sprint "
                    "only while it is still done (resolved at or before the close)"
                )
        return None

    if name in ("committed", "added") and item.added_during_sprint != (mine.added is not None):
        jira_start, entered = report.started_at, mine.entered_at
        if (
            mine.added is not None
            and start is not None
            and jira_start is not None
            and entered is not None
            and entered <= jira_start
        ):
            return (
                f"added after start: at {entered:%Y-%m-%d %H:%M}, after the sprint's start "
                f"date ({start:%Y-%m-%d %H:%M}) but before Jira started the sprint "
                f"({jira_start:%Y-%m-%d %H:%M}): Jira counts it as committed, programview "
                "as added"
            )
        return None

    if ours_in and jira_in and name == "added":
        at_entry = mine.points_at(mine.entered_at)
        if _same(at_entry, item.points_at_entry):
            changes = _changes_between(mine, mine.entered_at, close)
            when = ", ".join(_day(c[0]) for c in changes) or "?"
            return (
                f"re-estimated from {_fmt_points(at_entry)} to {_fmt_points(mine.added)} "
                f"after it was added (on {when}): Jira values work added during the sprint at "
                "its estimate when added, programview at the close"
            )
        return None

    if ours_in and jira_in and name == "removed":
        now_or_close = (mine.points_at(close), mine.points_now)
        if any(_same(p, item.points_at_close) for p in now_or_close):
            changes = _changes_between(mine, mine.removed_at, None)
            when = ", ".join(_day(c[0]) for c in changes) or "?"
            return (
                f"re-estimated to {_fmt_points(item.points_at_close)} after it left the "
                f"sprint (on {when}): Jira shows removed work at its later estimate, "
                f"programview at its estimate when it left ({_fmt_points(mine.removed)})"
            )
        return None
    return None


def _same(a: float | None, b: float | None) -> bool:
    return abs((a or 0.0) - (b or 0.0)) <= EPSILON


def _detail(mine: OurItem | None, item: SprintReportItem | None) -> str:
    if mine is None:
        return "Jira's report lists it; programview has no record of it in this sprint"
    if item is None:
        return "programview counts it; Jira's report does not list it"
    where = {
        "completed": "completed",
        "not_completed": "not completed",
        "removed": "removed during the sprint",
        "completed_elsewhere": "completed outside this sprint",
    }[item.outcome]
    if item.added_during_sprint:
        where += ", added during the sprint"
    jira = (
        f"Jira: {where}, estimate {_fmt_points(item.points_at_entry)} → "
        f"{_fmt_points(item.points_at_close)}"
    )
    counted = [f"{n} {v:g}" for n in FIGURES if (v := mine.figure(n)) is not None]
    return f"{jira}; programview: {', '.join(counted) or 'counted in no figure'}"


# --- one sprint, and a whole run --------------------------------------------------------------


@dataclass(slots=True)
class SprintCheck:
    source: str
    sprint_id: str
    sprint_name: str | None
    project_key: str | None
    closed_at: datetime | None
    #: Our figures as ``v_sprints`` shows them.
    ours: dict[str, float]
    #: The report's figures (None when it could not be read).
    theirs: dict[str, float] | None
    differences: list[Difference] = field(default_factory=list)
    #: Problems that are not one item's (stale stored figures, a report Jira does not have).
    problems: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.problems or any(not d.explained for d in self.differences):
            return "unexplained"
        if self.differences:
            return "explained"
        return "match"


@dataclass(slots=True)
class VerifyResult:
    checks: list[SprintCheck]
    sources: list[str]

    @property
    def exit_code(self) -> int:
        return EXIT_UNEXPLAINED if any(c.verdict == "unexplained" for c in self.checks) else 0

    def count(self, verdict: str) -> int:
        return sum(1 for c in self.checks if c.verdict == verdict)


class VerifyError(ProgramviewError):
    """Nothing can be verified: no source offers sprint reports, or no figures exist yet."""


def verify_sprints(
    config: Config,
    *,
    source: str | None = None,
    project: str | None = None,
    engine: Engine | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> VerifyResult:
    """Compare every closed sprint of ``source`` (default: every source whose connector
    reports sprints) with the source's own report. ``project`` narrows to one project."""
    from programview.sync.registry import load_connector

    if project is not None and project not in {p.key for p in config.projects}:
        known = ", ".join(p.key for p in config.projects) or "none"
        raise ConfigError(f"unknown project {project!r}: configured projects are {known}")
    if source is not None:
        chosen = [config.source(source)]
        cls = load_connector(chosen[0].kind)
        if not cls.reports_sprints():
            raise VerifyError(
                f"source {source!r} (kind {chosen[0].kind!r}) has no sprint report to check "
                "against; sources that have one: "
                + (", ".join(s.name for s in _reporting(config)) or "none")
            )
    else:
        chosen = _reporting(config)
        if not chosen:
            kinds = ", ".join(sorted({s.kind for s in config.sources})) or "none"
            raise VerifyError(
                f"no configured source offers a sprint report (kinds configured: {kinds}); "
                "Jira does"
            )
    own = engine is None
    eng = engine if engine is not None else db.create_engine(config.warehouse.url)
    try:
        db.ensure_current(eng)
        checks: list[SprintCheck] = []
        for src in chosen:
            with eng.connect() as conn:
                sprints, items = _ours(conn, src.name, project)
            reports = asyncio.run(_fetch(src, sprints, (transports or {}).get(src.name), config))
            for sprint in sprints:
                checks.append(_check(src.name, sprint, items.get(sprint["id"], []), reports))
        return VerifyResult(checks, [s.name for s in chosen])
    finally:
        if own:
            eng.dispose()


def _reporting(config: Config) -> list[SourceConfig]:
    from programview.sync.registry import load_connector

    return [s for s in config.sources if load_connector(s.kind).reports_sprints()]


def _ours(
    conn: Connection, source: str, project: str | None
) -> tuple[list[dict[str, Any]], dict[str, list[OurItem]]]:
    """The source's closed sprints with their ``v_sprints`` figures, and our items per sprint."""
    from programview.transform._sql import fetch
    from programview.transform.sprints import sprint_item_figures

    rows = fetch(
        conn,
        """
SELECT s.id, s.native_id, s.board_id, s.scope, s.name, s.start_at, s.completed_at, s.end_at,
       v.project_key, v.committed_points, v.added_points, v.removed_points, v.completed_points
FROM sprints s JOIN v_sprints v ON v.sprint_id = s.id
WHERE s.source_name = :source AND s.state = 'closed'
""",
        {"source": source},
        {"start_at": sa.DateTime(), "completed_at": sa.DateTime(), "end_at": sa.DateTime()},
    )
    sprints = [dict(r._mapping) for r in rows if project is None or r.project_key == project]
    if not sprints:
        return [], {}
    if any(s["committed_points"] is None for s in sprints):
        raise SchemaOutdated(
            "some closed sprints have no figures yet: run `programview transform` first"
        )
    sprints.sort(key=lambda s: (s["project_key"] or "", s["completed_at"] or s["end_at"], s["id"]))
    now = clock.utc_now()
    figures = sprint_item_figures(conn, [s["id"] for s in sprints], now)
    ids = sorted({f.work_item_id for f in figures})
    estimates: dict[str, list[tuple[datetime, float | None, float | None]]] = defaultdict(list)
    statuses: dict[str, list[tuple[datetime, str | None]]] = defaultdict(list)
    types = {"changed_at": sa.DateTime()}
    for i in range(0, len(ids), 500):
        batch = ids[i : i + 500]
        for r in fetch(
            conn,
            "SELECT work_item_id, changed_at, from_points, to_points FROM estimate_changes "
            "WHERE work_item_id IN :ids ORDER BY work_item_id, changed_at, change_id",
            {"ids": batch},
            types,
        ):
            estimates[r[0]].append((r[1], r[2], r[3]))
        for r in fetch(
            conn,
            "SELECT work_item_id, changed_at, to_category FROM status_changes "
            "WHERE work_item_id IN :ids ORDER BY work_item_id, changed_at, change_id",
            {"ids": batch},
            types,
        ):
            statuses[r[0]].append((r[1], r[2]))
    items: dict[str, list[OurItem]] = defaultdict(list)
    for f in figures:

        def value(flag: int, points: float | None) -> float | None:
            return (points or 0.0) if flag else None

        items[f.sprint_id].append(
            OurItem(
                native_id=str(f.native_id),
                key=f.item_key,
                deleted=bool(f.is_deleted),
                committed=value(f.committed, f.points_at_start),
                added=value(f.added, f.points_at_close),
                removed=value(f.removed, f.points_at_removal),
                completed=value(f.completed, f.points_at_close),
                entered_at=f.entered_at,
                removed_at=f.removed_at,
                status=f.status_category,
                resolved_at=f.resolved_at,
                not_delivered=bool(f.not_delivered),
                points_now=f.story_points,
                estimates=tuple(estimates.get(f.work_item_id, ())),
                statuses=tuple(statuses.get(f.work_item_id, ())),
            )
        )
    return sprints, items


async def _fetch(
    src: SourceConfig,
    sprints: list[dict[str, Any]],
    transport: httpx.AsyncBaseTransport | None,
    config: Config,
) -> dict[str, SprintReport | str]:
    """Each sprint's report (or the error that stopped it), a few requests at a time."""
    from programview.http import HttpClient
    from programview.sync.registry import load_connector

    if not sprints:
        return {}
    cls = load_connector(src.kind)
    http = HttpClient(
        src.base_url,
        source=src.name,
        headers=cls.auth_headers(src),
        secrets=[v.get_secret_value() for v in src.credentials.values()],
        transport=transport,
    )
    out: dict[str, SprintReport | str] = {}
    try:
        connector = cls(src, http)
        await connector.prepare()
        gate = asyncio.Semaphore(config.sync.concurrency)

        async def one(sprint: dict[str, Any]) -> None:
            ref = SprintRef(
                native_id=str(sprint["native_id"]),
                board_id=sprint["board_id"],
                scope=sprint["scope"],
                name=sprint["name"],
            )
            async with gate:
                try:
                    report = await connector.sprint_report(ref)
                except ProgramviewError as exc:
                    out[sprint["id"]] = str(exc)
                    return
            out[sprint["id"]] = report if report is not None else "the source has no report"

        await asyncio.gather(*(one(s) for s in sprints))
    finally:
        await http.aclose()
    return out


def _check(
    source: str,
    sprint: dict[str, Any],
    items: list[OurItem],
    reports: Mapping[str, SprintReport | str],
) -> SprintCheck:
    stored = {name: float(sprint[f"{name}_points"] or 0.0) for name in FIGURES}
    check = SprintCheck(
        source=source,
        sprint_id=sprint["id"],
        sprint_name=sprint["name"],
        project_key=sprint["project_key"],
        closed_at=sprint["completed_at"] or sprint["end_at"],
        ours=stored,
        theirs=None,
    )
    live = [i for i in items if not i.deleted]
    # Figures kept from before an item was deleted: the stored sum still counts it.
    kept_deleted: list[str] = []
    for name in FIGURES:
        summed = sum(v for i in live if (v := i.figure(name)) is not None)
        with_deleted = sum(v for i in items if (v := i.figure(name)) is not None)
        if abs(summed - stored[name]) > EPSILON and abs(with_deleted - stored[name]) <= EPSILON:
            kept_deleted.append(name)
        elif abs(summed - stored[name]) > EPSILON:
            check.problems.append(
                f"programview's stored {name} points ({stored[name]:g}) differ from its items' "
                f"({summed:g}): figures of sprints closed more than 30 days ago are kept as "
                "computed then; run `programview transform --full`"
            )
    report = reports.get(sprint["id"])
    if not isinstance(report, SprintReport):
        check.problems.append(f"no sprint report: {report or 'not fetched'}")
        return check
    check.theirs = {
        name: sum(v for it in report.items if (v := theirs(it, name)) is not None)
        for name in FIGURES
    }
    for name, total in report.totals.items():
        if name in check.theirs and abs((total or 0.0) - check.theirs[name]) > EPSILON:
            check.problems.append(
                f"Jira's own {name} sum ({total or 0:g}) differs from its issues' "
                f"({check.theirs[name]:g}): the report is inconsistent"
            )
    window = SprintWindow(
        start=sprint["start_at"], close=sprint["completed_at"] or sprint["end_at"]
    )
    check.differences = compare_sprint(items, report, window)
    listed = {it.native_id for it in report.items} | {it.key for it in report.items}
    for name in kept_deleted:
        for item in items:
            value = item.figure(name)
            if not item.deleted or value is None or {item.native_id, item.key} & listed:
                continue
            check.differences.append(
                Difference(
                    name,
                    item.key,
                    value,
                    0.0,
                    "deleted after programview kept this closed sprint's figures (figures of "
                    "sprints closed more than 30 days ago are kept as computed then); Jira's "
                    "report leaves deleted issues out",
                )
            )
    return check


# --- rendering ----------------------------------------------------------------------------------


def render_verify(result: VerifyResult, *, width: int = 100) -> str:
    """Per sprint: our committed / added / removed / completed points beside Jira's
    (``ours | theirs``), then each difference with its explanation."""
    out: list[str] = []
    total = len(result.checks)
    out.append(
        f"Sprint reports of {', '.join(result.sources)} checked against programview: "
        f"{total} closed sprint{'s' if total != 1 else ''}, {result.count('match')} match, "
        f"{result.count('explained')} differ for documented reasons, "
        f"{result.count('unexplained')} unexplained."
    )
    if not total:
        out.append("No closed sprints in the warehouse yet: run `programview sync` first.")
        return "\n".join(out) + "\n"
    out.append("")
    head = ["Sprint", "Closed", *(n.capitalize() for n in FIGURES), "Verdict"]
    rows = []
    for c in result.checks:
        name = f"{c.sprint_name or c.sprint_id} ({c.project_key or '-'})"
        pairs = [
            f"{c.ours[n]:g} | {c.theirs[n]:g}" if c.theirs is not None else f"{c.ours[n]:g} | -"
            for n in FIGURES
        ]
        rows.append([name, (c.closed_at.strftime("%Y-%m-%d") if c.closed_at else "-"), *pairs])
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(len(head) - 1)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=False)).rstrip()

    out.append(line(head[:-1]) + "  " + head[-1])
    out.append(f"{'':{widths[0]}}  {'':{widths[1]}}  (programview | Jira points)")
    for c, row in zip(result.checks, rows, strict=True):
        out.append(line(row) + "  " + c.verdict)
        for problem in c.problems:
            out += _wrap(f"! {problem}", width)
        for d in c.differences:
            sign = f"{d.delta:+g}"
            text = d.reason if d.explained else f"UNEXPLAINED: {d.detail}"
            out += _wrap(f"{d.key} {d.figure} {sign}: {text}", width)
    return "\n".join(out) + "\n"


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent="    ", subsequent_indent="      ")
