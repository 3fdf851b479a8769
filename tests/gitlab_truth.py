"""What the GitLab connector can know about the simulator's GitLab data, computed from the
generator's ground truth without any HTTP — shared by the end-to-end and ground-truth metrics
tests. The rules are docs/connectors/gitlab.md's, stated on the generator's records:

* iterations are whole days: a sprint starts at midnight UTC of its ``start_date`` and ends at
  midnight after its ``due_date`` (the simulator's due date is the day before the next sprint
  starts); a closed one completes at its end (GitLab keeps no close time);
* membership: added when the issue was added (NULL when it was there from its creation); an
  unfinished issue rolled over at a close counts in the next sprint from its start (GitLab's
  cadence moves it just after the next iteration began); a removal counts only before the
  iteration ended (a closed iteration keeps its issues);
* one sprint per (iteration, project) with an issue ever in it; its name comes from the
  cadence (the root group), its number and first day, as the automatic cadence gives no title.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from programview.simulator.generator import DONE, GITLAB_WORKFLOW_LABELS, Item, Organisation, Sprint

TYPE_CATEGORY = {"subtask": "task", "epic": "story"}


def naive(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=None)


def iteration_dates(spr: Sprint) -> tuple[datetime, datetime]:
    """(start, end) naive UTC as the iterations API dates show the sprint."""
    start = datetime.combine(spr.start.date(), datetime.min.time())
    due = (spr.end - timedelta(days=1)).date()
    return start, datetime.combine(due, datetime.min.time()) + timedelta(days=1)


def sprint_name(org: Organisation, spr: Sprint) -> str:
    start, _ = iteration_dates(spr)
    return f"{org.gitlab_group} {spr.sequence} · {start:%b} {start.day}"


def gitlab_items(org: Organisation) -> list[Item]:
    return [i for sc in org.scopes_of("gitlab") for i in org.scope_items(sc)]


Span = tuple[datetime | None, datetime | None]


def memberships(org: Organisation, item: Item) -> dict[int, Span]:
    """sprint id -> (added_at, removed_at), naive UTC."""
    out: dict[int, Span] = {}
    previous: dict[int, int] = {}  # sprint id -> the one before it in the cadence
    for cad in org.cadences:
        ids = cad.sprint_ids
        previous.update({b: a for a, b in zip(ids, ids[1:], strict=False)})
    in_before = {m.sprint_id for m in item.sprints if m.removed is None}
    for m in item.sprints:
        spr = org.sprints[m.sprint_id]
        start, end = iteration_dates(spr)
        added: datetime | None = naive(m.added)
        before = previous.get(spr.id)
        rolled = (
            before is not None
            and before in in_before
            and org.sprints[before].completed is not None
            and m.added == org.sprints[before].completed
        )
        if m.added <= item.created:
            added = None
        elif rolled and added is not None and start <= added < start + timedelta(days=1):
            added = start
        removed = naive(m.removed)
        if removed is not None and removed >= end:
            removed = None
        out[spr.id] = (added, removed)
    return out


def raw_status(item: Item) -> str:
    if item.status == DONE:
        return "closed"
    label = GITLAB_WORKFLOW_LABELS[item.status]
    return label if item.status != "todo" else "opened"


def duplicate_of(org: Organisation, item: Item) -> Item | None:
    """The issue it is marked a duplicate of (GitLab shows one: the first such link)."""
    for lk in sorted(org.links_of(item), key=lambda x: x.id):
        other = org.items[lk.to_id]
        if (
            lk.kind == "duplicates"
            and lk.via == "native"
            and lk.from_id == item.id
            and other.deleted is None
        ):
            return other
    return None


def dependencies(org: Organisation, items: list[Item]) -> set[tuple[str, str, str]]:
    """(blocked key, blocking key, link kind) GitLab shows for ``items``: native links once
    (relates undirected, smaller key first; a duplicate is also a relates link), the
    duplicate mark, and "Blocked by X" in descriptions."""
    out: set[tuple[str, str, str]] = set()
    for item in items:
        for lk in org.links_of(item):
            frm, to = org.items[lk.from_id], org.items[lk.to_id]
            if frm.deleted is not None or to.deleted is not None:
                continue
            if lk.via == "body":
                if to.id == item.id:
                    out.add((to.key.lower(), frm.key, "blocks"))
                continue
            if lk.kind == "blocks":
                out.add((to.key, frm.key, "blocks"))
            else:
                a, b = sorted((frm.key, to.key))
                out.add((a, b, "relates"))
                if lk.kind == "duplicates" and duplicate_of(org, frm) is to:
                    out.add((to.key, frm.key, "duplicates"))
    return out
