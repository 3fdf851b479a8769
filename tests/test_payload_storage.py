"""Raw payloads stored compressed (migration 0011), on SQLite and PostgreSQL.

Existing text payloads are converted by the migration (and back by its downgrade) without
changing their hashes, so the sync after an upgrade still skips every unchanged record; any
text (lone surrogates included) round-trips; the stored bytes are far smaller than the text.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import pytest
import sqlalchemy as sa
from programview_testconnector import TOKEN, FakeApi, config_toml

from programview import http
from programview.config import parse_config
from programview.sync.engine import canonical_json, payload_hash, sync
from programview.warehouse import db
from programview.warehouse.payloads import (
    PayloadCodec,
    build_dictionary,
    compress,
    decompress,
    read_text,
)

BEFORE = "0009"  # the revision before 0011 (text payloads)


@pytest.fixture(autouse=True)
def instant_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_sleep(seconds: float) -> None:
        return None

    monkeypatch.setattr(http, "_sleep", fake_sleep)


def run(url: str, api: FakeApi, **kwargs: Any) -> Any:
    config = parse_config(
        config_toml(url, "http://fake.test/api", ("ALPHA", "BETA")), environ={"TC_TOKEN": TOKEN}
    )
    return sync(config, transports={"fake": api.transport()}, **kwargs)


def stored(url: str) -> dict[tuple[str, str], tuple[str, Any]]:
    """(stream, native id) -> (hash, payload as the column holds it)."""
    engine = db.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT stream, native_id, hash, payload FROM raw_payloads")
            ).all()
            return {(r.stream, r.native_id): (r.hash, r.payload) for r in rows}
    finally:
        engine.dispose()


def texts(url: str) -> dict[tuple[str, str], str]:
    engine = db.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT stream, native_id, payload FROM raw_payloads"))
            return {(r.stream, r.native_id): read_text(conn, r.payload) for r in rows}
    finally:
        engine.dispose()


def test_migration_converts_both_ways_and_the_hash_skip_survives(db_url: str) -> None:
    db.upgrade(db_url)
    api = FakeApi(scopes=("ALPHA", "BETA"), items=30)
    api.item("ALPHA", "ALPHA-3")["title"] = "ünïcode, ☃ and 🎉"
    first = run(db_url, api)
    assert first.status == "ok" and first.records > 60
    compressed = texts(db_url)
    hashes = {k: h for k, (h, _) in stored(db_url).items()}
    assert all(payload_hash(t) == hashes[k] for k, t in compressed.items())

    db.downgrade(db_url, BEFORE)  # back to JSON text
    as_text = stored(db_url)
    assert {k: h for k, (h, _) in as_text.items()} == hashes
    for key, (_, payload) in as_text.items():
        assert isinstance(payload, str)
        assert json.loads(payload) == json.loads(compressed[key])
    assert any("☃" in p for _, p in as_text.values())

    db.upgrade(db_url)  # 0011 converts the text rows
    again = stored(db_url)
    assert {k: h for k, (h, _) in again.items()} == hashes
    assert all(isinstance(p, bytes) for _, p in again.values())
    assert sum(len(p) for _, p in again.values()) < sum(len(p) for _, p in as_text.values()) / 2
    converted = texts(db_url)
    assert {k: json.loads(t) for k, t in converted.items()} == {
        k: json.loads(t) for k, t in compressed.items()
    }
    # the next sync still skips every unchanged record by its hash
    unchanged = run(db_url, api, full=True)
    assert unchanged.status == "ok"
    assert unchanged.records == 0 and unchanged.skipped == first.records


def test_a_stream_gets_one_dictionary_and_reads_back_exactly(engine: sa.Engine) -> None:
    payloads = [
        canonical_json({"id": n, "fields": {"summary": f"item {n}", "status": {"name": "Done"}}})
        for n in range(50)
    ]
    codec = PayloadCodec()
    with db.transaction(engine) as conn:
        blobs = codec.encode(conn, "src", "issues", payloads)
        more = codec.encode(conn, "src", "issues", payloads[:3])
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT COUNT(*) FROM payload_dictionaries")).scalar()
        assert PayloadCodec().decode(conn, blobs + more) == payloads + payloads[:3]
    assert count == 1
    assert blobs[0][0] == 0x03 and more[0][:5] == blobs[0][:5]  # same dictionary id


def test_formats_round_trip_any_text() -> None:
    text = canonical_json({"a": "lone \ud800", "b": "nul \x00", "c": "ü" * 100})
    assert decompress(compress(text), {}) == text
    zdict = build_dictionary([text] * 3)
    assert decompress(compress(text, (7, zdict)), {7: zdict}) == text
    assert len(compress(text, (7, zdict))) < len(compress(text))


def test_payloads_written_with_zlib_and_a_dictionary_still_read() -> None:
    """Warehouses written before zstandard hold ``0x02`` (zlib + dictionary) payloads."""
    text = canonical_json({"key": "PAY-1", "fields": {"summary": "ünïcode \ud800", "n": 3}})
    zdict = build_dictionary([text] * 3)
    comp = zlib.compressobj(6, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, zdict)
    old = bytes([0x02]) + (9).to_bytes(4, "big")
    old += comp.compress(text.encode("utf-8", "surrogatepass")) + comp.flush()
    assert decompress(old, {9: zdict}) == text
