"""The sync engine against the test connector (an entry-point plugin) and its fake API.

Every test runs on SQLite and on PostgreSQL (the ``warehouse_url`` fixture).
"""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from programview_testconnector import TOKEN, FakeApi, Fault, config_toml

from programview import http
from programview.config import Config, parse_config
from programview.errors import SchemaOutdated
from programview.sync.engine import canonical_json, payload_hash, payload_key, sync
from programview.warehouse import db
from programview.warehouse.payloads import read_text

DATA_TABLES = ("work_items", "dependencies", "status_changes", "sprints", "raw_payloads")


@pytest.fixture(autouse=True)
def instant_retries(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """HTTP retry backoff sleeps are recorded instead of slept."""
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(http, "_sleep", fake_sleep)
    return slept


def make_config(url: str, scopes: tuple[str, ...] = ("ALPHA", "BETA")) -> Config:
    return parse_config(
        config_toml(url, "http://fake.test/api", scopes), environ={"TC_TOKEN": TOKEN}
    )


def run(config: Config, api: FakeApi, **kwargs: Any) -> Any:
    return sync(config, transports={"fake": api.transport()}, **kwargs)


def dump(engine: sa.Engine, *tables: str) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with engine.connect() as conn:
        for name in tables or DATA_TABLES:
            tbl = db.table(name)
            rows = conn.execute(sa.select(tbl)).all()
            out[name] = sorted(tuple(r) for r in rows)
    return out


def keys(engine: sa.Engine, scope: str) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.execute(
                sa.text("SELECT item_key FROM work_items WHERE scope = :s"), {"s": scope}
            ).scalars()
        )


def cursor_of(engine: sa.Engine, scope: str, stream: str = "items") -> dict[str, Any] | None:
    with engine.connect() as conn:
        text = conn.execute(
            sa.text("SELECT cursor FROM sync_state WHERE scope = :s AND stream = :st"),
            {"s": scope, "st": stream},
        ).scalar()
    return json.loads(text) if text else None


def run_row(engine: sa.Engine, run_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM sync_runs WHERE id = :i"), {"i": run_id}).one()


def item_count(api: FakeApi) -> int:
    return sum(len(v) for v in api.items.values())


# --- the happy path and idempotence ------------------------------------------------------------


def test_sync_lands_everything_and_a_second_run_changes_nothing(
    engine: sa.Engine, warehouse_url: str
) -> None:
    api = FakeApi()
    config = make_config(warehouse_url)

    first = run(config, api)

    assert first.status == "ok" and first.errors == []
    changes = sum(len(i["changes"]) for v in api.items.values() for i in v)
    sprints = sum(len(v) for v in api.sprints.values())
    assert first.records == item_count(api) + changes + sprints
    assert first.requests == len(api.log)
    data = dump(engine)
    assert len(data["work_items"]) == item_count(api)
    assert keys(engine, "BETA") == {i["key"] for i in api.items["BETA"]}
    assert len(data["status_changes"]) == changes
    blocked = [(i["key"], b) for v in api.items.values() for i in v for b in i["blocked_by"]]
    assert sorted((r[1], r[2]) for r in data["dependencies"]) == sorted(blocked)
    row = run_row(engine, first.run_id)
    assert (row.status, row.records, row.requests) == ("ok", first.records, len(api.log))
    with engine.connect() as conn:
        streams = conn.execute(
            sa.text(
                "SELECT scope, stream, status, records, requests FROM sync_run_streams "
                "WHERE run_id = :r"
            ),
            {"r": first.run_id},
        ).all()
        scopes = conn.execute(sa.text("SELECT project_key, scope FROM project_scopes")).all()
    assert {(s.scope, s.stream) for s in streams} == {
        (sc, st) for sc in ("ALPHA", "BETA") for st in ("items", "changes", "sprints")
    }
    assert all(s.status == "ok" and s.records > 0 and s.requests > 0 for s in streams)
    assert sorted(scopes) == [("P1", "ALPHA"), ("P1", "BETA")]
    newest = max(i["updated"] for i in api.items["ALPHA"])
    assert cursor_of(engine, "ALPHA") == {"updated": newest}

    requests_before = len(api.log)
    second = run(config, api)

    assert second.status == "ok"
    assert second.records == 0
    assert second.skipped > 0 and second.quarantined == 0
    assert dump(engine) == data
    # incremental: the second run asked only for items updated since the stored cursor
    assert api.item_requests("ALPHA")[-1]["updated_since"] == newest
    assert second.requests == len(api.log) - requests_before < first.requests


def test_changed_item_is_rewritten_and_its_removed_link_disappears(
    engine: sa.Engine, warehouse_url: str
) -> None:
    api = FakeApi(scopes=("ALPHA",))
    config = make_config(warehouse_url, ("ALPHA",))
    run(config, api)
    assert api.item("ALPHA", "ALPHA-4")["blocked_by"] == ["ALPHA-3"]

    api.touch("ALPHA", "ALPHA-4", title="renamed", blocked_by=[])
    result = run(config, api)

    assert result.records == 1  # only the changed item; its status changes are unchanged
    with engine.connect() as conn:
        title = conn.execute(
            sa.text("SELECT title FROM work_items WHERE item_key = 'ALPHA-4'")
        ).scalar()
        links = conn.execute(
            sa.text("SELECT count(*) FROM dependencies WHERE blocked_key = 'ALPHA-4'")
        ).scalar()
    assert (title, links) == ("renamed", 0)


def test_raw_payload_hash_is_the_canonical_json_sha256(
    engine: sa.Engine, warehouse_url: str
) -> None:
    api = FakeApi(scopes=("ALPHA",), items=3)
    run(make_config(warehouse_url, ("ALPHA",)), api)
    raw = {k: v for k, v in api.item("ALPHA", "ALPHA-2").items() if k != "changes"}
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "SELECT hash, payload FROM raw_payloads WHERE stream = 'items' AND native_id = :n"
            ),
            {"n": str(raw["id"])},
        ).one()
        text = read_text(conn, stored.payload)
    assert isinstance(stored.payload, bytes) and len(stored.payload) < len(text)  # compressed
    assert json.loads(text) == raw
    assert stored.hash == payload_hash(canonical_json(raw))


# --- interruption and resume ------------------------------------------------------------------


def _page_two_first_key(api: FakeApi, scope: str) -> str:
    ordered = sorted(api.items[scope], key=lambda i: (i["updated"], i["key"]))
    return ordered[12]["key"]  # page size 10: the third record of page 2


def test_crash_in_the_middle_of_a_page_leaves_no_partial_page_and_resumes(
    engine: sa.Engine, warehouse_url: str
) -> None:
    api = FakeApi(scopes=("ALPHA",))
    config = make_config(warehouse_url, ("ALPHA",))
    ordered = sorted(api.items["ALPHA"], key=lambda i: (i["updated"], i["key"]))
    bad = _page_two_first_key(api, "ALPHA")
    api.item("ALPHA", bad)["_explode"] = "runtime"

    crashed = run(config, api)

    assert crashed.status == "failed"
    assert any("simulated crash" in e and "items" in e for e in crashed.errors)
    # page 1 committed, nothing of page 2 (whose first two records mapped fine)
    assert keys(engine, "ALPHA") == {i["key"] for i in ordered[:10]}
    assert cursor_of(engine, "ALPHA") == {"updated": ordered[9]["updated"]}
    with engine.connect() as conn:
        raw_ids = set(
            conn.execute(
                sa.text("SELECT native_id FROM raw_payloads WHERE stream='items'")
            ).scalars()
        )
        streams = dict(
            conn.execute(
                sa.text("SELECT stream, status FROM sync_run_streams WHERE run_id = :r"),
                {"r": crashed.run_id},
            ).all()
        )
    assert raw_ids == {str(i["id"]) for i in ordered[:10]}
    assert streams == {"items": "failed", "changes": "skipped", "sprints": "skipped"}
    assert run_row(engine, crashed.run_id).status == "failed"

    del api.item("ALPHA", bad)["_explode"]
    before = len(api.item_requests("ALPHA"))
    resumed = run(config, api)

    assert resumed.status == "ok"
    # the items stream resumed at the committed cursor, not from the start
    assert api.item_requests("ALPHA")[before]["updated_since"] == ordered[9]["updated"]
    assert keys(engine, "ALPHA") == {i["key"] for i in ordered}
    assert resumed.skipped >= 1  # the overlap at the cursor was recognised as unchanged

    # the warehouse equals what one clean run of the same data produces
    if warehouse_url.startswith("sqlite"):
        other = warehouse_url.replace("warehouse.db", "clean.db")
        db.upgrade(other)
        run(make_config(other, ("ALPHA",)), api)
        clean = db.create_engine(other)
        assert comparable(dump(engine)) == comparable(dump(clean))
        clean.dispose()


def comparable(data: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """Table contents without ``raw_payloads.fetched_at`` (the only wall-clock column)."""
    out = dict(data)
    out["raw_payloads"] = sorted(r[:6] for r in data["raw_payloads"])
    return out


def test_ctrl_c_in_the_middle_of_a_page_is_recorded_and_loses_nothing(
    engine: sa.Engine, warehouse_url: str
) -> None:
    api = FakeApi(scopes=("ALPHA",))
    config = make_config(warehouse_url, ("ALPHA",))
    ordered = sorted(api.items["ALPHA"], key=lambda i: (i["updated"], i["key"]))
    bad = _page_two_first_key(api, "ALPHA")
    api.item("ALPHA", bad)["_explode"] = "interrupt"

    with pytest.raises(KeyboardInterrupt):
        run(config, api)

    assert keys(engine, "ALPHA") == {i["key"] for i in ordered[:10]}
    assert cursor_of(engine, "ALPHA") == {"updated": ordered[9]["updated"]}
    with engine.connect() as conn:
        last = conn.execute(
            sa.text("SELECT status, message FROM sync_runs ORDER BY id DESC")
        ).first()
    assert last is not None and last.status == "failed" and "interrupted" in last.message

    del api.item("ALPHA", bad)["_explode"]
    assert run(config, api).status == "ok"
    assert keys(engine, "ALPHA") == {i["key"] for i in ordered}


def test_network_failure_after_retries_keeps_committed_pages(
    engine: sa.Engine, warehouse_url: str, instant_retries: list[float]
) -> None:
    api = FakeApi(scopes=("ALPHA",))
    config = make_config(warehouse_url, ("ALPHA",))
    ordered = sorted(api.items["ALPHA"], key=lambda i: (i["updated"], i["key"]))
    api.faults.append(Fault("/items", "connect", times=None, query={"page": "3"}))

    failed = run(config, api)

    assert failed.status == "failed"
    assert any("connection failed" in e and "items" in e for e in failed.errors)
    assert len(instant_retries) == 6  # the default retry budget was used, then it gave up
    assert keys(engine, "ALPHA") == {i["key"] for i in ordered[:20]}
    assert cursor_of(engine, "ALPHA") == {"updated": ordered[19]["updated"]}


def test_transient_faults_are_retried_and_the_run_is_ok(
    engine: sa.Engine, warehouse_url: str
) -> None:
    api = FakeApi(scopes=("ALPHA",))
    api.faults += [
        Fault("/items", "drop", query={"page": "2"}),
        Fault("/items", "garbage", query={"page": "3"}),
        Fault("/sprints", "500"),
    ]
    result = run(make_config(warehouse_url, ("ALPHA",)), api)
    assert result.status == "ok"
    assert len(keys(engine, "ALPHA")) == len(api.items["ALPHA"])
    assert api.faults == []


# --- quarantine -----------------------------------------------------------------------------------


def test_malformed_record_is_quarantined_and_the_run_is_partial(
    engine: sa.Engine, warehouse_url: str
) -> None:
    api = FakeApi(scopes=("ALPHA",))
    api.item("ALPHA", "ALPHA-5")["points"] = "lots"
    bad_id = api.item("ALPHA", "ALPHA-5")["id"]

    result = run(make_config(warehouse_url, ("ALPHA",)), api)

    assert result.status == "partial"
    assert result.quarantined == 1
    assert keys(engine, "ALPHA") == {i["key"] for i in api.items["ALPHA"]} - {"ALPHA-5"}
    with engine.connect() as conn:
        q = conn.execute(sa.text("SELECT * FROM quarantine")).one()
        stream_status = conn.execute(
            sa.text("SELECT status FROM sync_run_streams WHERE run_id = :r AND stream='items'"),
            {"r": result.run_id},
        ).scalar()
    assert (q.run_id, q.stream, q.scope, q.native_id) == (
        result.run_id,
        "items",
        "ALPHA",
        str(bad_id),
    )
    assert "points must be a number" in q.error and "lots" in q.error
    assert json.loads(q.payload)["key"] == "ALPHA-5"
    assert stream_status == "partial"
    assert run_row(engine, result.run_id).status == "partial"

    # fixed upstream: the next run picks it up (it was not remembered as "unchanged")
    api.touch("ALPHA", "ALPHA-5", points=3)
    assert run(make_config(warehouse_url, ("ALPHA",)), api).status == "ok"
    assert "ALPHA-5" in keys(engine, "ALPHA")


def test_record_without_readable_id_is_quarantined(engine: sa.Engine, warehouse_url: str) -> None:
    api = FakeApi(scopes=("ALPHA",), items=5)
    del api.item("ALPHA", "ALPHA-2")["id"]
    result = run(make_config(warehouse_url, ("ALPHA",)), api)
    assert result.status == "partial"
    with engine.connect() as conn:
        q = conn.execute(sa.text("SELECT native_id, error FROM quarantine")).all()
    # filed under a stable hash of its payload (the same bad record is recognisably the same)
    assert len(q) == 1 and "cannot read the record id" in q[0].error
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT payload FROM quarantine")).scalar_one()
    assert q[0].native_id == payload_key(json.loads(stored))
    assert q[0].native_id.startswith("sha256:")


# --- scopes, deletions, backfill, schema ---------------------------------------------------------


def test_missing_scope_is_an_error_naming_it_and_other_scopes_sync(
    engine: sa.Engine, warehouse_url: str
) -> None:
    api = FakeApi(scopes=("ALPHA",), items=5)
    config = make_config(warehouse_url, ("ALPHA", "GHOST"))
    result = run(config, api)
    assert result.status == "partial"
    assert len(result.errors) == 1
    assert "GHOST" in result.errors[0] and "404" in result.errors[0]
    assert "Project GHOST Not Found" in result.errors[0]
    assert len(keys(engine, "ALPHA")) == 5
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT scope, stream, status, error FROM sync_run_streams WHERE run_id = :r"),
            {"r": result.run_id},
        ).all()
    assert {(r.scope, r.status) for r in rows} == {("ALPHA", "ok"), ("GHOST", "failed")}
    assert all("GHOST" in r.error for r in rows if r.scope == "GHOST")

    only_ghost = make_config(warehouse_url, ("GHOST",))
    assert run(only_ghost, api).status == "failed"


def test_bad_token_fails_the_source_with_an_auth_error_without_the_token(
    engine: sa.Engine, warehouse_url: str
) -> None:
    api = FakeApi(scopes=("ALPHA",), items=3)
    config = parse_config(
        config_toml(warehouse_url, "http://fake.test/api", ("ALPHA",)),
        environ={"TC_TOKEN": "wrong-token-abcdef"},
    )
    result = run(config, api)
    assert result.status == "failed"
    assert "401" in result.errors[0] and "Bad credentials" in result.errors[0]
    assert "wrong-token-abcdef" not in " ".join(result.errors)
    with engine.connect() as conn:
        stored = " ".join(
            str(v) for row in conn.execute(sa.text("SELECT * FROM sync_runs")) for v in row
        )
    assert "wrong-token-abcdef" not in stored


def test_deleted_items_are_marked_and_come_back(engine: sa.Engine, warehouse_url: str) -> None:
    api = FakeApi(scopes=("ALPHA",), items=5)
    config = make_config(warehouse_url, ("ALPHA",))
    run(config, api)
    gone = api.item("ALPHA", "ALPHA-2")
    api.delete("ALPHA", "ALPHA-2")

    result = run(config, api)

    assert result.deleted == 1
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT item_key, is_deleted FROM work_items")).all())
        deleted_at = conn.execute(
            sa.text("SELECT deleted_at FROM work_items WHERE item_key = 'ALPHA-2'")
        ).scalar()
    assert rows == {f"ALPHA-{i}": i == 2 for i in range(1, 6)}
    assert deleted_at is not None

    api.items["ALPHA"].append(gone)
    run(config, api)
    with engine.connect() as conn:
        back = conn.execute(
            sa.text("SELECT is_deleted, deleted_at FROM work_items WHERE item_key = 'ALPHA-2'")
        ).one()
    assert (bool(back.is_deleted), back.deleted_at) == (False, None)


def test_items_the_token_can_no_longer_see_are_kept_and_reported(
    engine: sa.Engine, warehouse_url: str
) -> None:
    api = FakeApi(scopes=("ALPHA",), items=5)
    config = make_config(warehouse_url, ("ALPHA",))
    run(config, api)
    api.hide("ALPHA", "ALPHA-3")  # still exists (403), not deleted (404)
    api.delete("ALPHA", "ALPHA-4")

    result = run(config, api)

    assert result.deleted == 1
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT item_key, is_deleted FROM work_items")).all())
        message = conn.execute(
            sa.text("SELECT message FROM sync_runs WHERE id = :id"), {"id": result.run_id}
        ).scalar()
    assert {k: bool(v) for k, v in rows.items()} == {f"ALPHA-{i}": i == 4 for i in range(1, 6)}
    assert "can no longer see" in message and "1 item(s)" in message


def test_partial_listing_deletes_nothing(engine: sa.Engine, warehouse_url: str) -> None:
    api = FakeApi(scopes=("ALPHA",), items=5)
    config = make_config(warehouse_url, ("ALPHA",))
    run(config, api)
    api.delete("ALPHA", "ALPHA-2")
    api.complete_listing = False
    assert run(config, api).deleted == 0
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT count(*) FROM work_items WHERE is_deleted")).scalar() == 0
        )


def test_backfill_reads_the_window_and_leaves_cursors_alone(
    engine: sa.Engine, warehouse_url: str
) -> None:
    api = FakeApi(scopes=("ALPHA",))
    config = make_config(warehouse_url, ("ALPHA",))
    ordered = sorted(api.items["ALPHA"], key=lambda i: (i["updated"], i["key"]))
    since = datetime.fromisoformat(ordered[5]["updated"])
    until = datetime.fromisoformat(ordered[8]["updated"])

    result = run(config, api, since=since.replace(tzinfo=None), until=until)

    assert result.status == "ok"
    assert keys(engine, "ALPHA") == {i["key"] for i in ordered[5:8]}
    assert api.item_requests("ALPHA")[0]["updated_since"] == ordered[5]["updated"]
    assert cursor_of(engine, "ALPHA") is None
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT kind FROM sync_runs")).scalar() == "backfill"


def test_full_sync_ignores_the_cursor_but_skips_unchanged(
    engine: sa.Engine, warehouse_url: str
) -> None:
    api = FakeApi(scopes=("ALPHA",), items=5)
    config = make_config(warehouse_url, ("ALPHA",))
    run(config, api)
    result = run(config, api, full=True)
    assert "updated_since" not in api.item_requests("ALPHA")[-1]
    changes = sum(len(i["changes"]) for i in api.items["ALPHA"])
    assert result.records == 0
    assert result.skipped == len(api.items["ALPHA"]) + changes + len(api.sprints["ALPHA"])


def test_one_source_option_and_unknown_source(engine: sa.Engine, warehouse_url: str) -> None:
    from programview.errors import ConfigError

    api = FakeApi(scopes=("ALPHA",), items=2)
    config = make_config(warehouse_url, ("ALPHA",))
    assert run(config, api, source="fake").status == "ok"
    with pytest.raises(ConfigError, match="unknown source 'nope'"):
        run(config, api, source="nope")


def test_unmigrated_warehouse_is_refused_with_the_fix(db_url: str) -> None:
    with pytest.raises(SchemaOutdated, match="programview db upgrade"):
        run(make_config(db_url), FakeApi())


@pytest.mark.postgres
def test_stream_claimed_by_another_process_is_skipped(pg_url: str) -> None:
    """PostgreSQL only: advisory locks are how several daemons share one warehouse."""
    from programview.sync.engine import _lock_key

    db.upgrade(pg_url)
    engine = db.create_engine(pg_url)
    api = FakeApi(scopes=("ALPHA",), items=5)
    key = _lock_key("fake", "ALPHA", "items")
    with engine.connect() as other:  # "another daemon" holding the items stream
        other.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        other.commit()
        result = run(make_config(pg_url, ("ALPHA",)), api)
        other.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        other.commit()
    assert result.status == "ok"
    assert keys(engine, "ALPHA") == set()  # items skipped; changes/sprints still ran
    with engine.connect() as conn:
        rows = dict(
            conn.execute(
                sa.text("SELECT stream, status FROM sync_run_streams WHERE run_id = :r"),
                {"r": result.run_id},
            ).all()
        )
        message = run_row(engine, result.run_id).message
    assert rows == {"items": "skipped", "changes": "ok", "sprints": "ok"}
    assert "another programview process" in message
    # released at the end of the run: the next run takes it
    assert run(make_config(pg_url, ("ALPHA",)), api).status == "ok"
    assert len(keys(engine, "ALPHA")) == 5
    engine.dispose()


def test_cursor_json_and_time_window_are_utc(engine: sa.Engine, warehouse_url: str) -> None:
    api = FakeApi(scopes=("ALPHA",), items=3)
    aware = datetime(2025, 1, 6, 10, 0, tzinfo=UTC) + timedelta(hours=1)
    local = aware.astimezone(__import__("datetime").timezone(timedelta(hours=2)))
    run(make_config(warehouse_url, ("ALPHA",)), api, since=local)
    assert api.item_requests("ALPHA")[0]["updated_since"] == "2025-01-06T11:00:00Z"


# --- progress reporting ------------------------------------------------------------------------


def test_quiet_progress_logs_exactly_one_line_per_run(
    engine: sa.Engine, warehouse_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from programview.progress import QuietProgress

    api = FakeApi(scopes=("ALPHA",), items=15)
    api.faults.append(Fault("/sprints", "500"))  # a retry wait happens, still one line
    caplog.set_level(logging.DEBUG, logger="programview.sync")
    result = run(make_config(warehouse_url, ("ALPHA",)), api, progress=QuietProgress())
    lines = [r.getMessage() for r in caplog.records if r.name == "programview.sync"]
    assert len(lines) == 1
    assert f"sync run {result.run_id} ok: {result.records} records written" in lines[0]


def test_terminal_progress_reports_pages_streams_and_waits(
    engine: sa.Engine, warehouse_url: str
) -> None:
    from programview.progress import TerminalProgress

    api = FakeApi(scopes=("ALPHA",), items=15)
    api.faults.append(Fault("/sprints", "500"))
    out = io.StringIO()
    result = run(make_config(warehouse_url, ("ALPHA",)), api, progress=TerminalProgress(out))
    text = out.getvalue()
    assert "fake ALPHA items: 1 pages, 10 records" in text
    assert "fake ALPHA items: 2 pages, 15 records" in text
    assert "fake ALPHA items: ok, 15 written, 0 unchanged, 2 pages" in text
    assert "fake: waiting" in text and "HTTP 500" in text
    assert text.splitlines()[-1].startswith(f"run {result.run_id} ok in ")
