"""Warehouse storage: bytes per work item, and what compressing the raw payloads saves.

Syncs a simulated organisation (every connector, over real HTTP to the simulator on
127.0.0.1) into a fresh SQLite warehouse, or measures an existing one (``--db``, e.g. the
demo's ``programview-demo/programview-demo.db``), and prints:

* the warehouse size (a ``VACUUM INTO`` copy: what the data needs, without free pages) and
  bytes per work item;
* the raw payloads: rows, bytes as stored (zstandard with the stream's preset dictionary) and as
  JSON text (what they were before migration 0011), the compression ratio, stored bytes
  per work item;
* the same for PostgreSQL when ``PROGRAMVIEW_BENCH_PG_URL`` is set (``pg_database_size``,
  ``pg_total_relation_size('raw_payloads')``; a throw-away database is created and dropped).

Prints figures only; nothing is asserted.

    .venv/bin/python benchmarks/storage.py [--size small|medium] [--seed 1] [--db PATH]
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from _scratch import postgres_database

from programview.config import parse_config
from programview.simulator.generator import TOKENS, generate
from programview.simulator.server import serve
from programview.sync.engine import sync
from programview.warehouse import db
from programview.warehouse.payloads import PayloadCodec

MB = 1e6


def raw_figures(url: str) -> dict[str, float]:
    """Work items, raw payload rows, bytes stored and bytes as text."""
    engine = db.create_engine(url)
    codec = PayloadCodec()
    stored = text = rows = 0
    try:
        with engine.connect() as conn:
            items = conn.execute(sa.text("SELECT COUNT(*) FROM work_items")).scalar_one()
            result = conn.execution_options(yield_per=1000).execute(
                sa.text("SELECT payload FROM raw_payloads")
            )
            for part in result.partitions():
                blobs = [r[0] for r in part]
                rows += len(blobs)
                stored += sum(len(b) for b in blobs)
                text += sum(
                    len(t.encode("utf-8", "surrogatepass")) for t in codec.decode(conn, blobs)
                )
    finally:
        engine.dispose()
    return {"items": items, "rows": rows, "stored": stored, "text": text}


def sqlite_size(path: Path) -> int:
    """Bytes the data needs: a vacuumed copy (no free pages, WAL folded in)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.db"
        conn = sqlite3.connect(path)
        try:
            conn.execute("VACUUM INTO ?", (str(copy),))
        finally:
            conn.close()
        return copy.stat().st_size


def report(label: str, total: int, figures: dict[str, float], *, estimate: bool = True) -> None:
    items = figures["items"] or 1
    print(f"\n{label}")
    print(f"  work items                 {figures['items']:>12,.0f}")
    per_item = total / items
    print(
        f"  warehouse                  {total / MB:>12.1f} MB   {per_item:>8,.0f} bytes/work item"
    )
    print(f"  raw payload rows           {figures['rows']:>12,.0f}")
    print(
        f"  raw payloads stored        {figures['stored'] / MB:>12.1f} MB   "
        f"{figures['stored'] / items:>8,.0f} bytes/work item"
    )
    print(
        f"  raw payloads as JSON text  {figures['text'] / MB:>12.1f} MB   "
        f"{figures['text'] / items:>8,.0f} bytes/work item"
    )
    if figures["stored"]:
        print(f"  compression                {figures['text'] / figures['stored']:>12.1f}x")
    if not estimate:  # PostgreSQL compresses large text itself (TOAST): no fair estimate
        return
    uncompressed = total - figures["stored"] + figures["text"]
    print(
        f"  warehouse with text payloads (estimate) {uncompressed / MB:.1f} MB: "
        f"now {total / uncompressed:.0%} of that"
    )


def sync_into(url: str, size: str, seed: int) -> float:
    db.upgrade(url)
    logging.getLogger("programview").setLevel(logging.ERROR)
    with serve(generate(seed=seed, size=size)) as sim:
        config = parse_config(sim.org.config_toml(sim.base_url, url), environ=TOKENS.env())
        start = time.perf_counter()
        result = sync(config)
        took = time.perf_counter() - start
    print(f"sync ({size}, seed {seed}): {result.status}, {result.records:,} records in {took:.1f}s")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", default="small", choices=("small", "medium", "large"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", type=Path, help="measure this SQLite warehouse instead")
    args = parser.parse_args()

    if args.db is not None:
        report(f"SQLite {args.db}", sqlite_size(args.db), raw_figures(f"sqlite:///{args.db}"))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "warehouse.db"
        url = f"sqlite:///{path}"
        sync_into(url, args.size, args.seed)
        report("SQLite", sqlite_size(path), raw_figures(url))
    admin = os.environ.get("PROGRAMVIEW_BENCH_PG_URL")
    if admin:
        with postgres_database(admin) as url:
            sync_into(url, args.size, args.seed)
            engine = db.create_engine(url)
            with engine.connect() as conn:
                total = conn.execute(
                    sa.text("SELECT pg_database_size(current_database())")
                ).scalar_one()
                raw = conn.execute(
                    sa.text("SELECT pg_total_relation_size('raw_payloads')")
                ).scalar_one()
            engine.dispose()
            figures = raw_figures(url)
            report("PostgreSQL", total, figures, estimate=False)
            print(f"  raw_payloads relation      {raw / MB:>12.1f} MB (with TOAST and index)")


if __name__ == "__main__":
    main()
