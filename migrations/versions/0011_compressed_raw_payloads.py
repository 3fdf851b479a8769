"""raw payloads stored compressed (zlib with a preset dictionary per stream)

``raw_payloads.payload`` becomes bytes: the canonical JSON, zlib-compressed, against a
dictionary sampled from the stream's own payloads (new table ``payload_dictionaries``).
Existing rows are converted here, in batches; hashes are unchanged, so the next sync still
skips every unchanged record. Format: ``programview.warehouse.payloads``. On SQLite the file
keeps its size until ``VACUUM`` (docs/operations.md, "Upgrading programview").

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-02 05:00:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from programview.warehouse.payloads import build_dictionary, compress, decompress

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None

BATCH = 500
#: Rows sampled (per source and stream) for the stream's dictionary.
SAMPLE = 256

dictionaries = sa.Table(  # as this revision creates it (a Table: inserts return the id)
    "payload_dictionaries",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source_name", sa.String(100)),
    sa.Column("stream", sa.String(100)),
    sa.Column("dictionary", sa.LargeBinary),
    sa.Column("created_at", sa.DateTime),
)


def _raw(old: str, new: str) -> sa.TableClause:
    return sa.table(
        "raw_payloads",
        sa.column("source_name", sa.String),
        sa.column("stream", sa.String),
        sa.column("native_id", sa.String),
        sa.column(old),
        sa.column(new),
    )


def _streams(conn: sa.Connection) -> list[tuple[str, str]]:
    t = _raw("payload", "payload")
    return [tuple(r) for r in conn.execute(sa.select(t.c.source_name, t.c.stream).distinct())]


def _convert(conn: sa.Connection, old: str, new: str, change) -> None:  # type: ignore[no-untyped-def]
    """Fill column ``new`` from ``old`` through ``change(source, stream, values)``, by keyset
    batches of the primary key (memory stays flat whatever the table's size)."""
    t = _raw(old, new)
    for source, stream in _streams(conn):
        after = None
        while True:
            query = sa.select(t.c.native_id, t.c[old]).where(
                t.c.source_name == source, t.c.stream == stream
            )
            if after is not None:
                query = query.where(t.c.native_id > after)
            rows = conn.execute(query.order_by(t.c.native_id).limit(BATCH)).all()
            if not rows:
                break
            values = change(source, stream, [r[1] for r in rows])
            conn.execute(
                sa.update(t)
                .where(
                    t.c.source_name == source,
                    t.c.stream == stream,
                    t.c.native_id == sa.bindparam("nid"),
                )
                .values({new: sa.bindparam("value")}),
                [{"nid": r[0], "value": v} for r, v in zip(rows, values, strict=True)],
            )
            after = rows[-1][0]


def upgrade() -> None:
    op.create_table(
        "payload_dictionaries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source_name", sa.String(length=100), nullable=False),
        sa.Column("stream", sa.String(length=100), nullable=False),
        sa.Column("dictionary", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("raw_payloads") as batch:
        batch.add_column(sa.Column("payload_z", sa.LargeBinary(), nullable=True))

    conn = op.get_bind()
    made: dict[tuple[str, str], tuple[int, bytes]] = {}
    t = _raw("payload", "payload_z")

    def pack(source: str, stream: str, texts: list[str]) -> list[bytes]:
        key = (source, stream)
        if key not in made:
            sample = conn.execute(
                sa.select(t.c.payload)
                .where(t.c.source_name == source, t.c.stream == stream)
                .order_by(t.c.native_id)
                .limit(SAMPLE)
            ).scalars()
            zdict = build_dictionary(list(sample))
            ident = conn.execute(
                sa.insert(dictionaries).values(
                    source_name=source,
                    stream=stream,
                    dictionary=zdict,
                    created_at=sa.func.current_timestamp(),
                )
            ).inserted_primary_key[0]
            made[key] = (int(ident), zdict)
        return [compress(text, made[key]) for text in texts]

    _convert(conn, "payload", "payload_z", pack)
    with op.batch_alter_table("raw_payloads") as batch:
        batch.drop_column("payload")
    with op.batch_alter_table("raw_payloads") as batch:
        batch.alter_column(
            "payload_z", new_column_name="payload", existing_type=sa.LargeBinary(), nullable=False
        )


def _text_column(text: str) -> str:
    """JSON a text column takes: a lone surrogate (kept by the bytes) ASCII-escaped."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    return text


def downgrade() -> None:
    with op.batch_alter_table("raw_payloads") as batch:
        batch.add_column(sa.Column("payload_text", sa.Text(), nullable=True))
    conn = op.get_bind()
    known = {
        int(r.id): bytes(r.dictionary)
        for r in conn.execute(sa.select(dictionaries.c.id, dictionaries.c.dictionary))
    }

    def unpack(source: str, stream: str, blobs: list[bytes]) -> list[str]:
        return [_text_column(decompress(b, known)) for b in blobs]

    _convert(conn, "payload", "payload_text", unpack)
    with op.batch_alter_table("raw_payloads") as batch:
        batch.drop_column("payload")
    with op.batch_alter_table("raw_payloads") as batch:
        batch.alter_column(
            "payload_text", new_column_name="payload", existing_type=sa.Text(), nullable=False
        )
    op.drop_table("payload_dictionaries")
