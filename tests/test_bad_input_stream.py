"""Bad input the Jira issue stream itself reads, before the engine can quarantine anything.

The stream reads every issue of a search page for its own bookkeeping (``updated`` for the
cursor, the changelog's completeness, the status ids to annotate) before the page reaches the
mapping. A payload it cannot read there must pass on to the mapping, which quarantines that
one issue; raising in the stream would stop the whole stream on every rerun.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from programview_connectors.jira import JiraConnector

from programview.config import parse_config
from programview.simulator.generator import TOKENS, generate
from programview.simulator.server import serve
from programview.sync.engine import sync
from programview.warehouse import db

#: How each chosen issue is spoiled, by case name (the stream reads each of these fields).
MUTATIONS: dict[str, Any] = {
    "updated_not_a_time": lambda i: i["fields"].update(updated="yesterday-ish"),
    "changelog_not_an_object": lambda i: i.update(changelog="truncated"),
    "changelog_total_not_a_number": lambda i: i["changelog"].update(total={"n": 1}, startAt=0),
    "histories_of_strings": lambda i: i["changelog"].update(histories=["x", 3]),
    "fields_not_an_object": lambda i: i.update(fields=["summary"]),
    "worklog_total_not_a_number": lambda i: i["fields"].update(
        worklog={"total": "many", "worklogs": []}
    ),
}


def test_a_payload_the_stream_cannot_read_is_quarantined_not_a_stopped_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logging.getLogger("programview.connectors.jira").setLevel(logging.ERROR)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    db.upgrade(url)
    org = generate(seed=7, size="small")
    items = [i for sc in org.scopes_of("jira") for i in org.scope_items(sc) if i.deleted is None]
    keys = {items[n * 5].key: case for n, case in enumerate(MUTATIONS)}
    original = JiraConnector.search

    async def spoiled(self: Any, jql: str, **kw: Any) -> AsyncGenerator[list[Any], None]:
        async for page in original(self, jql, **kw):
            for issue in page:
                case = keys.get(issue.get("key"))
                if case is not None:
                    MUTATIONS[case](issue)
                    issue["pv_test_case"] = case
            yield page

    monkeypatch.setattr(JiraConnector, "search", spoiled)
    with serve(org) as sim:
        text = sim.org.config_toml(sim.base_url, url, "cloud", kinds=["jira"])
        config = parse_config(text, environ=TOKENS.env())
        first = sync(config)
        rerun = sync(config, full=True)

    for run in (first, rerun):
        assert run.errors == [], run.errors  # no stream stopped
        assert run.status == "partial"
    engine = db.create_engine(url)
    try:
        with engine.connect() as conn:
            loaded = conn.execute(
                sa.text("SELECT COUNT(*) FROM work_items WHERE NOT is_deleted")
            ).scalar_one()
            held = [
                json.loads(r.payload).get("pv_test_case")
                for r in conn.execute(sa.text("SELECT payload FROM quarantine"))
            ]
    finally:
        engine.dispose()
    # Unreadable where no repair is possible: quarantined (once per run). The changelog
    # cases are read or repaired (a changelog that is not an object counts as cut short and
    # is fetched whole again), so those issues load; every issue is one or the other.
    quarantined = {c for c in held if c}
    assert {"updated_not_a_time", "fields_not_an_object"} <= quarantined
    assert loaded == len(items) - len(quarantined)
