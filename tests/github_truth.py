"""What the GitHub connector can know about the simulator's GitHub data, computed from the
generator's ground truth without any HTTP — shared by the end-to-end and ground-truth metrics
tests.

GitHub keeps no history for Projects iterations and no "started" time, so some facts depend on
when programview looked (docs/connectors/github.md): call :meth:`Observer.observe` right after
each sync, with the organisation as that sync saw it and the sync's time.

* an item already in an iteration the first time programview sees it, or in an iteration that
  is new at this sync, is a member from the start (``added_at`` NULL); a later move is
  recorded at the sync that saw it (removed from the old one, added to the new one);
* ``started_at`` is the first sync that saw the item in progress (the simulated GitHub has no
  in-progress labels, the only evidence the timeline could give);
* a milestone's planned date is the due date seen at the first sync; its actual date is
  ``closed_at``;
* sprints are (iteration, repository) pairs for the repositories that ever had an item in the
  iteration; their dates are the iteration's start date (midnight UTC) plus its duration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from programview.simulator.generator import DONE, IN_PROGRESS, IN_REVIEW, Item, Organisation, Sprint


def iteration_dates(spr: Sprint) -> tuple[datetime, datetime]:
    """(start, end) as the Projects iteration field shows the sprint: its start date at
    midnight UTC and that plus ``duration`` whole days (naive UTC)."""
    start = datetime.combine(spr.start.date(), datetime.min.time())
    days = max(1, round((spr.end - spr.start).total_seconds() / 86400))
    return start, start + timedelta(days=days)


def iteration_state(spr: Sprint, at: datetime) -> str:
    start, end = iteration_dates(spr)
    now = at.replace(tzinfo=None)
    return "closed" if now >= end else ("active" if now >= start else "future")


@dataclass
class Observer:
    org: Organisation
    syncs: list[datetime] = field(default_factory=list)
    #: item id -> iteration native id -> [added_at, removed_at] (naive UTC or None)
    logs: dict[int, dict[str, list[datetime | None]]] = field(default_factory=dict)
    current: dict[int, str | None] = field(default_factory=dict)
    first_in_progress: dict[int, datetime] = field(default_factory=dict)
    seen_iterations: set[str] = field(default_factory=set)
    repo_iterations: dict[str, set[str]] = field(default_factory=dict)
    first_due: dict[int, date] = field(default_factory=dict)

    def github_sprints(self) -> dict[str, Sprint]:
        cad = next(c for c in self.org.cadences if c.system == "github")
        return {str(s.native_id): s for s in self.org.sprints_of(cad)}

    def items(self) -> list[Item]:
        return [i for sc in self.org.scopes_of("github") for i in self.org.scope_items(sc)]

    def observe(self, at: datetime) -> None:
        """Record what a sync at ``at`` (aware UTC) saw."""
        now = at.replace(tzinfo=None)
        sprints = self.github_sprints()
        new = set(sprints) - self.seen_iterations
        for item in self.items():
            spr = self.org.current_sprint(item)
            cur = str(spr.native_id) if spr is not None else None
            if item.id not in self.logs:
                self.logs[item.id] = {cur: [None, None]} if cur else {}
            elif self.current.get(item.id) != cur:
                log = self.logs[item.id]
                for iteration, span in log.items():
                    if span[1] is None and iteration != cur:
                        span[1] = now
                if cur is not None:
                    if cur in log:
                        log[cur][1] = None
                    else:
                        log[cur] = [None if cur in new else now, None]
            self.current[item.id] = cur
            if cur is not None:
                self.repo_iterations.setdefault(item.scope.path, set()).add(cur)
            if item.status in (IN_PROGRESS, IN_REVIEW) and item.id not in self.first_in_progress:
                self.first_in_progress[item.id] = now
        for rel in self.org.releases.values():
            if rel.system == "github":
                self.first_due.setdefault(rel.id, rel.due)
        self.seen_iterations |= set(sprints)
        self.syncs.append(at)

    # --- what the warehouse must hold ---------------------------------------------------------

    def started(self, item: Item) -> datetime | None:
        return self.first_in_progress.get(item.id)

    def memberships(self, item: Item) -> dict[str, tuple[datetime | None, datetime | None]]:
        """iteration native id -> (added_at, removed_at)."""
        return {k: (v[0], v[1]) for k, v in self.logs.get(item.id, {}).items()}

    def sprint_rows(self) -> dict[str, tuple[str, datetime, datetime, str]]:
        """sprint native id ("<iteration>@<repo>") -> (name, start, end, state) at the last
        sync."""
        sprints = self.github_sprints()
        last = self.syncs[-1]
        out = {}
        for repo, iterations in self.repo_iterations.items():
            for iteration in iterations:
                spr = sprints[iteration]
                start, end = iteration_dates(spr)
                out[f"{iteration}@{repo.lower()}"] = (
                    spr.name,
                    start,
                    end,
                    iteration_state(spr, last),
                )
        return out

    def done(self, item: Item) -> bool:
        return item.status == DONE
