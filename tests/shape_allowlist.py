"""Compare the *shape* of two JSON payloads (keys and value types, recursively).

The simulator must answer with the same keys and value types as the real APIs, so shape
tests compare a simulator response with an official example or a recorded payload::

    from shape_allowlist import assert_same_shape

    assert_same_shape(sim_body, real_body, allow={
        "missing:$.fields.watcher": "made-up field in the hand-written example",
        "type:$.fields.description": "v3 sends ADF JSON; the example shows a string",
    })

Differences, each named by a path such as ``$.issues[].fields.status.name`` (``[]`` is
"any element": the elements of an array are merged into one before comparing, so a
key seen in any element counts):

* ``missing``  the key is in the real payload but not in the simulator's;
* ``extra``    the key is in the simulator's payload but not in the real one;
* ``type``     both have it with different JSON types (``number`` covers int and float).

``null`` matches any type (a sample shows one value of a nullable field), and an empty
array matches any array. Every difference fails unless an ``allow`` entry matches it:
the key is ``"<kind>:<path glob>"`` or just ``"<path glob>"`` (any kind), where ``*`` in
the glob matches any characters (dots and ``[]`` included) and nothing else is special;
the value is the reason, which must not be empty. An allow entry that matches nothing
fails too (pass ``allow_unused=True`` to permit that), so the list cannot go stale.

Loading the samples: ``example("jira", "issue.json")`` and ``devlake_rows("jira",
"_raw_jira_api_issues")`` read ``/work/shared/fixtures`` (or ``PROGRAMVIEW_FIXTURES``);
``merge_samples(rows)`` folds many rows into one representative.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytest

KINDS = ("missing", "extra", "type")
#: The shared fixtures (``PROGRAMVIEW_FIXTURES`` overrides, as in test_jira_mapping.py).
FIXTURES = Path(
    os.environ.get("PROGRAMVIEW_FIXTURES", Path(__file__).resolve().parents[2] / "shared/fixtures")
)


def _need(path: Path) -> Path:
    """Skip locally (fail under CI) when the shared fixtures are not there."""
    if not path.exists():
        message = f"fixture not found: {path} (set PROGRAMVIEW_FIXTURES)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def example(system: str, name: str) -> Any:
    """An official example: ``api-examples/<system>/<name>`` parsed as JSON."""
    return json.loads(_need(FIXTURES / "api-examples" / system / name).read_text("utf-8"))


def devlake_rows(system: str, table: str) -> list[Any]:
    """The JSON ``data`` of every row of a DevLake raw table, e.g.
    ``devlake_rows("jira", "_raw_jira_api_issues")`` (one API element per row)."""
    path = _need(FIXTURES / "devlake" / system / "raw_tables" / f"{table}.csv")
    text = path.read_text("utf-8").lstrip("\n")  # some files start with an empty line
    return [json.loads(row["data"]) for row in csv.DictReader(io.StringIO(text))]


class Difference(NamedTuple):
    kind: str  # missing | extra | type
    path: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path} ({self.detail})"


def json_type(value: Any) -> str:
    """JSON type name: null, boolean, number, string, array, object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def merge_samples(values: Iterable[Any]) -> Any:
    """One representative of several samples of the same thing (array elements, or rows
    of a recorded table): objects are merged key by key, arrays concatenated, and for
    scalars the first non-null value wins."""
    merged: Any = None
    for value in values:
        merged = _merge(merged, value)
    return merged


def _merge(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for key, value in b.items():
            out[key] = _merge(out.get(key), value)
        return out
    if isinstance(a, list) and isinstance(b, list):
        return [*a, *b]
    return a


def shape_differences(sim: Any, real: Any, path: str = "$") -> list[Difference]:
    """Every key/type difference between ``sim`` and ``real`` (see the module doc)."""
    out: list[Difference] = []
    _diff(sim, real, path, out)
    return out


def _diff(sim: Any, real: Any, path: str, out: list[Difference]) -> None:
    st, rt = json_type(sim), json_type(real)
    if "null" in (st, rt):
        return
    if st != rt:
        out.append(Difference("type", path, f"simulator {st}, real {rt}"))
        return
    if st == "object":
        for key in real.keys() - sim.keys():
            out.append(Difference("missing", f"{path}.{key}", f"real {json_type(real[key])}"))
        for key in sim.keys() - real.keys():
            out.append(Difference("extra", f"{path}.{key}", f"simulator {json_type(sim[key])}"))
        for key in sim.keys() & real.keys():
            _diff(sim[key], real[key], f"{path}.{key}", out)
    elif st == "array" and sim and real:
        _diff(merge_samples(sim), merge_samples(real), f"{path}[]", out)


def _compile(pattern: str) -> tuple[str | None, re.Pattern[str]]:
    kind, sep, glob = pattern.partition(":")
    if not sep or kind not in KINDS:
        kind, glob = None, pattern  # type: ignore[assignment]
    regex = ".*".join(re.escape(part) for part in glob.split("*"))
    return kind, re.compile(regex)


def assert_same_shape(
    sim: Any, real: Any, allow: Mapping[str, str] | None = None, allow_unused: bool = False
) -> None:
    """Fail (AssertionError listing them) on every difference no ``allow`` entry covers,
    on an allow entry without a reason, and on one that matched nothing."""
    allow = dict(allow or {})
    blank = [p for p, reason in allow.items() if not str(reason).strip()]
    assert not blank, f"allow-list entries need a reason: {blank}"
    rules = [(p, *_compile(p)) for p in allow]
    used: set[str] = set()
    unexplained = []
    for diff in shape_differences(sim, real):
        hits = [p for p, kind, rx in rules if kind in (None, diff.kind) and rx.fullmatch(diff.path)]
        used.update(hits)
        if not hits:
            unexplained.append(str(diff))
    problems = [f"  {d}" for d in sorted(unexplained)]
    if not allow_unused:
        problems += [f"  allow-list entry matched nothing: {p!r}" for p in allow if p not in used]
    assert not problems, "shape differences:\n" + "\n".join(problems)
