"""Bad input never blocks a stream: each record either maps to valid rows or is quarantined
with its error, and the rest of its page commits (issue 11, "Bad input").

End to end: a real Jira sync over HTTP against the simulator, on SQLite and PostgreSQL, with
one issue of the page mutated per case as the reported examples were (after the stream read
it, exactly what reaches the sync engine's write path). The run loads every other issue, a
rerun is not blocked, and each case lands as documented in docs/operations.md ("Bad input").
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from programview_connectors.jira import streams as jira_streams

from programview.config import parse_config
from programview.simulator.generator import TOKENS, generate
from programview.simulator.server import serve
from programview.sync.engine import payload_key, sync
from programview.warehouse import db

pytestmark = pytest.mark.slow

SOURCE = "sim-jira"
Raw = dict[str, Any]


def _nested(levels: int) -> Raw:
    doc: Raw = {"type": "text", "text": "deep"}
    for _ in range(levels):
        doc = {"type": "paragraph", "content": [doc]}
    return {"type": "doc", "version": 1, "content": [doc]}


def _set_assignee_name(raw: Raw, name: str) -> None:
    raw["fields"]["assignee"] = {"accountId": "pv-test-long-name", "displayName": name}


#: case -> (mutation of one issue payload, expected: "loaded" or "quarantined")
CASES: dict[str, tuple[Callable[[Raw], None], str]] = {
    "assignee_400_chars": (lambda r: _set_assignee_name(r, "N" * 400), "loaded"),
    "summary_lone_surrogate": (
        lambda r: r["fields"].__setitem__("summary", "broken \ud800 text"),
        "loaded",
    ),
    "summary_nul": (lambda r: r["fields"].__setitem__("summary", "nul\x00byte"), "loaded"),
    "created_1e20": (lambda r: r["fields"].__setitem__("created", 1e20), "quarantined"),
    "summary_object": (
        lambda r: r["fields"].__setitem__("summary", {"text": "an object"}),
        "quarantined",
    ),
    "priority_name_object": (
        lambda r: r["fields"].__setitem__("priority", {"name": {"en": "High"}}),
        "quarantined",
    ),
    "description_5000_levels": (
        lambda r: r["fields"].__setitem__("description", _nested(5000)),
        "quarantined",
    ),
    "id_with_nul": (lambda r: r.__setitem__("id", r["id"] + "\x00"), "quarantined"),
    "key_5000_chars": (lambda r: r.__setitem__("key", "K" * 5000), "quarantined"),
    "id_null": (lambda r: r.__setitem__("id", None), "quarantined"),
    "key_null": (lambda r: r.__setitem__("key", None), "quarantined"),
    "labels_text": (lambda r: r["fields"].__setitem__("labels", "a,b"), "loaded"),
    "labels_null_and_object": (
        lambda r: r["fields"].__setitem__("labels", [None, {"x": 1}]),
        "quarantined",
    ),
}

#: What the quarantine error says for each quarantined case.
ERRORS = {
    "created_1e20": "timestamp out of range",
    "summary_object": "work_items.title must be text, got dict",
    "priority_name_object": "work_items.priority must be text, got dict",
    "description_5000_levels": "RecursionError",
    "id_with_nul": "the id contains a NUL character",
    "key_5000_chars": "work_items.item_key is 5000 characters long (the column holds 300)",
    "id_null": "id is NoneType, not a string or number",
    "key_null": "has no usable key: None",
    "labels_null_and_object": "label 2 is dict, not text",
}
#: Cases quarantined under the hash of their payload (their id cannot be read).
NO_ID = {"id_with_nul", "id_null"}


def _pg_database() -> Iterator[str]:
    import uuid

    from conftest import _pg_admin_url
    from sqlalchemy.engine.url import make_url

    admin = _pg_admin_url()
    name = f"pv_test_{uuid.uuid4().hex[:10]}"
    eng = sa.create_engine(db.normalize_url(admin), isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(db.normalize_url(admin))
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with eng.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        eng.dispose()


class Outcome:
    """Two runs of one mutated sync and what the warehouse holds afterwards."""

    def __init__(self, url: str, keys: dict[str, str], total: int) -> None:
        self.url, self.keys, self.total = url, keys, total
        self.first: Any = None
        self.rerun: Any = None
        self.unchanged: Any = None

    def rows(self, sql: str, **params: Any) -> list[Any]:
        engine = db.create_engine(self.url)
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text(sql), params).all()
        finally:
            engine.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def outcome(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Outcome]:
    logging.getLogger("programview.connectors.jira").setLevel(logging.ERROR)
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path_factory.mktemp('bad') / 'w.db'}"])
    else:
        urls = _pg_database()
    url = next(urls)
    db.upgrade(url)
    org = generate(seed=7, size="small")
    items = [i for sc in org.scopes_of("jira") for i in org.scope_items(sc) if i.deleted is None]
    assert len(items) > len(CASES) + 5
    keys = {case: items[n * 3].key for n, case in enumerate(CASES)}  # spread over the pages
    by_key = {key: case for case, key in keys.items()}
    original = jira_streams.Issues.pages

    async def mutated_pages(self: Any, scope: str, cursor: Any, options: Any) -> AsyncIterator[Any]:
        async for page in original(self, scope, cursor, options):
            for raw in page.records:
                case = by_key.get(raw.get("key"))
                if case is not None:
                    raw["pv_test_case"] = case
                    CASES[case][0](raw)
            yield page

    mp = pytest.MonkeyPatch()
    mp.setattr(jira_streams.Issues, "pages", mutated_pages)
    result = Outcome(url, keys, len(items))
    try:
        with serve(org) as sim:
            text = sim.org.config_toml(sim.base_url, url, "cloud", kinds=["jira"])
            config = parse_config(text, environ=TOKENS.env())
            result.first = sync(config)
            result.rerun = sync(config, full=True)  # re-reads every issue, bad ones included
            result.unchanged = sync(config, full=True)
        yield result
    finally:
        mp.undo()
        for _ in urls:  # drops the PostgreSQL database
            pass


def _item(outcome: Outcome, case: str) -> Any:
    found = outcome.rows("SELECT * FROM work_items WHERE item_key = :k", k=outcome.keys[case])
    return found[0] if found else None


def _quarantined(outcome: Outcome, case: str) -> list[Any]:
    rows = outcome.rows("SELECT native_id, error, payload, run_id FROM quarantine")
    return [r for r in rows if json.loads(r.payload).get("pv_test_case") == case]


def test_every_other_issue_is_loaded_and_reruns_are_not_blocked(outcome: Outcome) -> None:
    bad = sum(1 for _, expected in CASES.values() if expected == "quarantined")
    for run in (outcome.first, outcome.rerun):
        assert run.errors == [], run.errors
        assert run.status == "partial"
        assert run.quarantined == bad
    (count,) = outcome.rows("SELECT COUNT(*) FROM work_items WHERE NOT is_deleted")[0]
    assert count == outcome.total - bad
    # a bad record is not remembered as "unchanged": each full read quarantines it again,
    # and the loaded ones (the surrogate summary included) are skipped by their hash
    assert outcome.unchanged.records == 0
    assert outcome.unchanged.quarantined == bad


@pytest.mark.parametrize("case", [c for c, (_, e) in CASES.items() if e == "quarantined"])
def test_bad_record_is_quarantined_alone_with_its_error(outcome: Outcome, case: str) -> None:
    assert _item(outcome, case) is None
    found = _quarantined(outcome, case)
    runs = {r.run_id for r in found}
    assert len(found) == 3 and len(runs) == 3  # once per run
    error = found[0].error
    assert ERRORS[case] in error, error
    if case in NO_ID:  # filed under the stable hash of its payload
        ids = {r.native_id for r in found}
        assert len(ids) == 1
        assert ids == {payload_key(json.loads(found[0].payload))}
    else:
        assert found[0].native_id and not found[0].native_id.startswith("sha256:")


def test_400_character_assignee_is_cut_to_fit(outcome: Outcome) -> None:
    row = _item(outcome, "assignee_400_chars")
    assert row.assignee == "N" * 299 + "…"
    (person,) = outcome.rows("SELECT display_name FROM people WHERE display_name LIKE 'NNNN%'")
    assert len(person.display_name) == 300


def test_lone_surrogate_and_nul_are_replaced_in_text(outcome: Outcome) -> None:
    assert _item(outcome, "summary_lone_surrogate").title == "broken \ufffd text"
    assert _item(outcome, "summary_nul").title == "nulbyte"


def test_labels_given_as_text_are_read_as_a_list(outcome: Outcome) -> None:
    assert _item(outcome, "labels_text").labels == "a,b"


# --- the database's own refusal: the safety net behind the validator ------------------------


def test_a_value_the_database_refuses_quarantines_only_its_record(
    engine: sa.Engine, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the validator ever to miss a value, the database's refusal (a bind error for an
    object, on both databases) must still cost only that record, on every rerun."""
    from programview_testconnector import TOKEN, FakeApi, config_toml

    from programview.sync import engine as engine_module

    monkeypatch.setattr(engine_module, "clean_mapped", list)  # a validator with a gap
    api = FakeApi(scopes=("ALPHA",), items=12)
    api.item("ALPHA", "ALPHA-4")["title"] = {"not": "text"}
    config = parse_config(
        config_toml(warehouse_url, "http://fake.test/api", ("ALPHA",)),
        environ={"TC_TOKEN": TOKEN},
    )
    for full in (False, True):
        result = sync(config, transports={"fake": api.transport()}, full=full)
        assert result.errors == [] and result.status == "partial" and result.quarantined == 1
    with engine.connect() as conn:
        keys = set(conn.execute(sa.text("SELECT item_key FROM work_items")).scalars())
        errors = conn.execute(sa.text("SELECT error FROM quarantine")).scalars().all()
        cursor = conn.execute(
            sa.text("SELECT cursor FROM sync_state WHERE scope = 'ALPHA' AND stream = 'items'")
        ).scalar()
    assert keys == {i["key"] for i in api.items["ALPHA"]} - {"ALPHA-4"}
    assert len(errors) == 2 and all("the database refused the record" in e for e in errors)
    assert cursor is not None  # the page's cursor moved: the stream goes on
