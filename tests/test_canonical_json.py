"""The content hash's input, ``canonical_json``: orjson's text must be the text
``json.dumps`` wrote before it, or every stored hash would stop matching after an upgrade and
the next sync would rewrite every record instead of skipping it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from shape_allowlist import FIXTURES, devlake_rows, example

from programview.sync.engine import canonical_json


def before(raw: Any) -> str:
    """What ``canonical_json`` wrote up to now."""
    return json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def real_payloads() -> list[Any]:
    out: list[Any] = []
    for system in ("jira", "github", "gitlab"):
        for path in sorted((FIXTURES / "devlake" / system / "raw_tables").glob("*.csv")):
            if path.stem.startswith("_raw_"):  # API rows in ``data`` (not _tool_ tables)
                out += devlake_rows(system, path.stem)
        for path in sorted((FIXTURES / "api-examples" / system).glob("*.json")):
            out.append(example(system, path.name))
    return out


def test_every_real_payload_keeps_its_text() -> None:
    payloads = real_payloads()
    assert len(payloads) > 1000
    assert [canonical_json(p) for p in payloads] == [before(p) for p in payloads]


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f == 0 or abs(f) >= 1e-4)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, derandomize=True)
@given(JSON)
def test_any_json_value_keeps_its_text(raw: Any) -> None:
    assert canonical_json(raw) == before(raw)


def test_what_orjson_cannot_write_still_gets_the_old_text() -> None:
    odd = {
        "big": 2**70,
        "lone": "\ud800",
        "when": datetime(2025, 1, 2, 3, 4, 5),
        "deep": [[[[1]]]],
    }
    assert canonical_json(odd) == before(odd)
    numbered = {1: "a non-text key", 2: "another"}
    assert canonical_json(numbered) == before(numbered)
    # each alone too, so orjson (not the fallback a neighbour triggers) writes what it can
    for value in odd.values():
        assert canonical_json({"v": value}) == before({"v": value})
    nested: Any = 1
    for _ in range(300):  # past orjson's 254 levels, within json's recursion limit
        nested = [nested]
    assert canonical_json(nested) == before(nested)
