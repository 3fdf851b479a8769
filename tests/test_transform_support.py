"""A tiny builder for hand-written transform scenarios (imported by tests/test_transform_*.py;
holds no tests itself).

Scenarios insert rows straight into the normalized tables, the transform's only input, so
each test reads as the story it checks: "PAY-1 (3 points) was in the sprint at its start and
done before it closed".
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from programview.config import Config
from programview.transform import TransformResult, run_transform
from programview.warehouse import db


def dt(text: str) -> datetime:
    """``"2024-03-01 10:00"`` or ``"2024-03-01"`` -> naive UTC datetime."""
    return datetime.fromisoformat(text)


def d(text: str) -> date:
    return date.fromisoformat(text)


class Scenario:
    """Collects rows, writes them with the warehouse's bulk upsert, runs the transform."""

    def __init__(self, engine: sa.Engine, config: Config | None = None) -> None:
        self.engine = engine
        self.config = config or Config()
        self._pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._n = 0

    # --- config mirror ---------------------------------------------------------------------
    def source(self, name: str = "jira", kind: str = "jira") -> Scenario:
        self._pending["sources"].append({"name": name, "kind": kind, "base_url": None})
        return self

    def program(self, key: str, **kw: Any) -> Scenario:
        self._pending["programs"].append(
            {
                "key": key,
                "name": kw.pop("name", key),
                "budget": None,
                "start_date": None,
                "end_date": None,
                **kw,
            }
        )
        return self

    def project(
        self,
        key: str,
        *,
        program: str | None = None,
        scopes: list[tuple[str, str]] | None = None,
        budget: float | None = None,
        start: str | None = None,
        end: str | None = None,
        hourly_rate: float | None = None,
    ) -> Scenario:
        self._pending["projects"].append(
            {
                "key": key,
                "name": key,
                "program_key": program,
                "budget": budget,
                "start_date": d(start) if start else None,
                "end_date": d(end) if end else None,
                "hourly_rate": hourly_rate,
            }
        )
        for source, scope in scopes if scopes is not None else [("jira", key)]:
            self._pending["project_scopes"].append(
                {"project_key": key, "source_name": source, "scope": scope}
            )
        return self

    # --- synced records --------------------------------------------------------------------
    def item(
        self,
        key: str,
        *,
        scope: str | None = None,
        source: str = "jira",
        type: str = "story",
        status: str = "todo",
        points: float | None = None,
        created: str = "2024-01-01",
        updated: str | None = None,
        started: str | None = None,
        resolved: str | None = None,
        due: str | None = None,
        not_delivered: bool = False,
        deleted: bool = False,
        title: str | None = None,
    ) -> str:
        """Add a work item; ``scope`` defaults to the key's prefix (PAY-1 -> PAY)."""
        item_id = db_id(source, key)
        self._pending["work_items"].append(
            {
                "id": item_id,
                "source_name": source,
                "scope": scope or key.split("-")[0],
                "native_id": key,
                "item_key": key,
                "url": f"https://example.test/browse/{key}",
                "title": title or f"Item {key}",
                "raw_type": type.capitalize(),
                "type_category": type,
                "raw_status": status,
                "status_category": status,
                "story_points": points,
                "created_at": dt(created),
                "updated_at": dt(updated or resolved or started or created),
                "started_at": dt(started) if started else None,
                "resolved_at": dt(resolved) if resolved else None,
                "due_date": d(due) if due else None,
                "not_delivered": not_delivered,
                "is_deleted": deleted,
                "labels": None,
                "assignee": None,
                "parent_key": None,
            }
        )
        return item_id

    def sprint(
        self,
        sprint_id: str,
        *,
        scope: str | None,
        state: str,
        start: str | None,
        end: str | None,
        completed: str | None = None,
        source: str = "jira",
        name: str | None = None,
    ) -> str:
        self._pending["sprints"].append(
            {
                "id": sprint_id,
                "source_name": source,
                "scope": scope,
                "native_id": sprint_id,
                "name": name or sprint_id,
                "state": state,
                "start_at": dt(start) if start else None,
                "end_at": dt(end) if end else None,
                "completed_at": dt(completed) if completed else None,
            }
        )
        return sprint_id

    def member(
        self, sprint_id: str, item_id: str, *, added: str | None = None, removed: str | None = None
    ) -> None:
        self._pending["sprint_items"].append(
            {
                "sprint_id": sprint_id,
                "work_item_id": item_id,
                "added_at": dt(added) if added else None,
                "removed_at": dt(removed) if removed else None,
            }
        )

    def estimate(self, item_id: str, at: str, from_points: float | None, to: float | None) -> None:
        self._n += 1
        self._pending["estimate_changes"].append(
            {
                "work_item_id": item_id,
                "change_id": str(self._n),
                "changed_at": dt(at),
                "from_points": from_points,
                "to_points": to,
            }
        )

    def release(
        self,
        release_id: str,
        *,
        scope: str,
        due: str | None = None,
        planned: str | None = None,
        released: bool = False,
        released_at: str | None = None,
        kind: str = "version",
        source: str = "jira",
        name: str | None = None,
    ) -> str:
        self._pending["releases"].append(
            {
                "id": release_id,
                "source_name": source,
                "scope": scope,
                "native_id": release_id,
                "name": name or release_id,
                "kind": kind,
                "due_date": d(due) if due else None,
                "planned_date": d(planned) if planned else None,
                "released": released,
                "released_at": dt(released_at) if released_at else None,
                "released_at_observed": released_at is not None,
            }
        )
        return release_id

    def in_release(self, item_id: str, release_id: str) -> None:
        self._pending["work_item_releases"].append(
            {"work_item_id": item_id, "release_id": release_id}
        )

    def link(self, blocked: str, blocking: str, kind: str = "blocks", source: str = "jira") -> None:
        """``blocked`` is blocked by ``blocking`` (item keys)."""
        self._pending["dependencies"].append(
            {
                "found_in": db_id(source, blocked),
                "blocked_key": blocked,
                "blocking_key": blocking,
                "link_kind": kind,
                "source_name": source,
                "origin": "jira_link",
            }
        )

    def worklog(self, item_id: str, at: str, hours: float) -> None:
        self._n += 1
        self._pending["worklogs"].append(
            {"id": f"wl{self._n}", "work_item_id": item_id, "started_at": dt(at), "hours": hours}
        )

    def cost(self, project: str, day: str, amount: float) -> None:
        self._pending["project_costs"].append(
            {"project_key": project, "date": d(day), "amount": amount}
        )

    # --- running ---------------------------------------------------------------------------
    def flush(self) -> None:
        """Write the collected rows (parents first), then forget them."""
        with db.transaction(self.engine) as conn:
            for name, rows in self._pending.items():
                if rows:
                    db.upsert(conn, name, rows)
        self._pending.clear()

    def run(self, as_of: str, *, full: bool = False) -> TransformResult:
        self.flush()
        return run_transform(self.engine, self.config, as_of=dt(as_of), full=full)

    def delete(self, table_name: str, **where: Any) -> None:
        tbl = db.table(table_name)
        with db.transaction(self.engine) as conn:
            conn.execute(tbl.delete().where(*(tbl.c[k] == v for k, v in where.items())))

    def update(self, table_name: str, where: dict[str, Any], **values: Any) -> None:
        tbl = db.table(table_name)
        cond = sa.and_(*(tbl.c[k] == v for k, v in where.items()))
        with db.transaction(self.engine) as conn:
            conn.execute(tbl.update().where(cond).values(**values))

    # --- reading results -------------------------------------------------------------------
    def one(self, sql: str, **params: Any) -> dict[str, Any]:
        rows = self.all(sql, **params)
        assert len(rows) == 1, f"expected one row, got {len(rows)}: {rows}"
        return rows[0]

    def all(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]

    def rows(self, table_name: str, **where: Any) -> list[dict[str, Any]]:
        """Typed rows of a table (dates come back as dates on both databases)."""
        tbl = db.table(table_name)
        query = sa.select(tbl).where(*(tbl.c[k] == v for k, v in where.items()))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def row(self, table_name: str, **where: Any) -> dict[str, Any]:
        rows = self.rows(table_name, **where)
        assert len(rows) == 1, f"expected one {table_name} row for {where}, got {len(rows)}"
        return rows[0]

    def project_metrics(self, key: str) -> dict[str, Any]:
        """The project's metrics row (the scenario runs one day)."""
        return self.row("project_metrics", project_key=key)


def db_id(source: str, key: str) -> str:
    return f"{source}:{key}"
