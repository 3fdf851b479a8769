"""Property-based fuzzing (hypothesis) of every mapper and of the sync engine's write path,
seeded from the real payloads in ../shared/fixtures (issue 11).

A mutation replaces up to four values anywhere in a real payload (an id, a date, a nested
changelog entry, the whole ``fields`` object…) with hostile ones: ``None``, empty or
5,000-character text, NUL bytes, lone surrogates, ``1e20``, huge integers, NaN, booleans,
objects and lists where scalars belong, nesting thousands of levels deep.

* Mappers: a payload either maps to rows the validator accepts, or fails with one of the
  engine's quarantine errors. Nothing else (a crash the engine would not quarantine).
* Write path, on SQLite and PostgreSQL: a page of real payloads plus one mutated payload is
  written without error; the mutated one is loaded exactly when mapping and validation accept
  it (then the database must take it too), quarantined with its error otherwise, and the real
  payloads are always loaded.

Deterministic (``derandomize``) and bounded for CI; ``PROGRAMVIEW_FUZZ_EXAMPLES`` runs more.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from programview_connectors.github import mapping as gh
from programview_connectors.gitlab import mapping as gl
from programview_connectors.jira import mapping as jira
from programview_connectors.jira.options import JiraOptions

from programview.sync.connector import Mapped, Page, Stream
from programview.sync.engine import QUARANTINE_ERRORS, PageWriter, canonical_json, payload_hash
from programview.sync.validate import clean_mapped, is_clean_id
from programview.warehouse import db

FIXTURES = Path(
    os.environ.get("PROGRAMVIEW_FIXTURES", Path(__file__).resolve().parents[2] / "shared/fixtures")
)
EXAMPLES = int(os.environ.get("PROGRAMVIEW_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

Raw = dict[str, Any]


def _need(path: Path) -> Path:
    if not path.exists():
        message = f"fixtures not found at {FIXTURES} (set PROGRAMVIEW_FIXTURES)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _devlake(kind: str, table: str, limit: int) -> list[Raw]:
    path = _need(FIXTURES / "devlake" / kind / "raw_tables" / table)
    with path.open(newline="", encoding="utf-8") as f:
        rows = [json.loads(r["data"]) for r in csv.DictReader(io_lines(f))]
    return rows[:limit]


def io_lines(f: Any) -> Iterator[str]:
    """The CSV's lines without the blank lines some fixtures start with."""
    started = False
    for line in f:
        if not started and not line.strip():
            continue
        started = True
        yield line


def _example(kind: str, name: str) -> Any:
    return json.loads(_need(FIXTURES / "api-examples" / kind / name).read_text())


# --- the mappers, with the settings their streams would pass ---------------------------------

JIRA_SETTINGS = jira.JiraSettings.build(
    "jira",
    "https://example.atlassian.net",
    JiraOptions(),
    jira.FieldChoice(
        story_points="customfield_10024",
        story_points_name="Story Points",
        story_point_candidates=("customfield_10024",),
        sprint="customfield_10020",
        sprint_name="Sprint",
    ),
)
GH_SETTINGS = gh.GitHubSettings(source="github")
GL_SETTINGS = gl.GitLabSettings("gitlab")

Mapper = Callable[[Raw], Mapped]

MAPPERS: dict[str, tuple[Mapper, Callable[[], list[Raw]]]] = {
    "jira_issue": (
        lambda r: jira.map_issue(r, "EE", JIRA_SETTINGS),
        lambda: (
            _devlake("jira", "_raw_jira_api_issues.csv", 6)
            + _example("jira", "search-jql.json")["issues"][:2]
        ),
    ),
    "jira_sprint": (
        lambda r: jira.map_sprint(r, "EE", "jira"),
        lambda: _example("jira", "agile-board-sprints.json")["values"][:3],
    ),
    "jira_version": (
        lambda r: jira.map_version(r, "EE", "jira"),
        lambda: _example("jira", "project-versions.json")[:2],
    ),
    "github_issue": (
        lambda r: gh.map_issue(r, "acme/web", GH_SETTINGS),
        lambda: (
            _devlake("github", "_raw_github_api_issues.csv", 6)
            + _example("github", "issues-list.openapi.json")[:1]
        ),
    ),
    "github_pull_request": (
        lambda r: gh.map_pull_request(r, "acme/web", GH_SETTINGS),
        lambda: _devlake("github", "_raw_github_api_pull_requests.csv", 3),
    ),
    "github_milestone": (
        lambda r: gh.map_milestone(r, "acme/web", "github"),
        lambda: (
            _devlake("github", "_raw_github_api_milestones.csv", 3)
            + _example("github", "milestones-list.openapi.json")[:1]
        ),
    ),
    "github_release": (
        lambda r: gh.map_release(r, "acme/web", "github"),
        lambda: [f["response"] for f in _example("github", "octokit-release-by-tag.fixture.json")],
    ),
    "gitlab_issue": (
        lambda r: gl.map_issue(r, "acme/web", GL_SETTINGS),
        lambda: (
            _devlake("gitlab", "_raw_gitlab_api_issues.csv", 6)
            + _example("gitlab", "issues-list.json")[:1]
        ),
    ),
    "gitlab_milestone": (
        lambda r: gl.map_milestone(r, "acme/web", "gitlab"),
        lambda: _example("gitlab", "milestones-list.json")[:2],
    ),
    "gitlab_iteration": (
        lambda r: gl.map_sprint(r, "acme", "gitlab"),
        lambda: [
            {"iteration": it, "project": "acme/web"}  # what the iterations stream yields
            for it in _example("gitlab", "group-iterations-list.json")[:2]
        ],
    ),
}


def _nested(levels: int) -> Raw:
    doc: Raw = {"text": "deep"}
    for _ in range(levels):
        doc = {"content": [doc]}
    return doc


HOSTILE: list[Any] = [
    None,
    "",
    " ",
    "x" * 5000,
    "nul\x00byte",
    "lone \ud800 surrogate",
    "a,b",
    "None",
    0,
    -1,
    1e20,
    -1e20,
    2**70,
    float("nan"),
    float("inf"),
    True,
    {"x": 1},
    {"name": {"x": 1}},
    [None, {"x": 1}],
    [],
    "2024-02-30T25:61:00Z",
    "99999-01-01",
    "<nested 3000 levels>",
]


def _fresh(value: Any) -> Any:
    """A new copy of a hostile value (containers are mutated later by other draws)."""
    if value == "<nested 3000 levels>":
        return _nested(3000)
    if isinstance(value, dict | list):
        return json.loads(json.dumps(value))
    return value


def _paths(value: Any, prefix: tuple[Any, ...] = (), out: list[tuple[Any, ...]] | None = None):
    """Every path into a payload (dict keys, list indexes), the root excluded, at most 2000."""
    out = [] if out is None else out
    if len(out) >= 2000:
        return out
    items: Any = value.items() if isinstance(value, dict) else enumerate(value)
    if isinstance(value, dict | list):
        for k, v in items:
            out.append((*prefix, k))
            if isinstance(v, dict | list) and len(prefix) < 12:
                _paths(v, (*prefix, k), out)
    return out


def _set(raw: Any, path: tuple[Any, ...], value: Any) -> None:
    target = raw
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


@st.composite
def mutated(draw: st.DrawFn, seeds: list[Raw]) -> tuple[int, Raw]:
    """(index of the seed, a deep copy of it with 1-4 values replaced by hostile ones)."""
    n = draw(st.integers(0, len(seeds) - 1))
    raw = json.loads(json.dumps(seeds[n]))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(raw)
        if not paths:
            break
        # depth first, then a path of that depth: the mapped fields sit 1-3 levels deep,
        # among hundreds of deeper paths (changelogs, avatars) a uniform draw would favour
        depths = sorted({len(p) for p in paths})
        depth = draw(st.sampled_from(depths[:4]))
        path = draw(st.sampled_from([p for p in paths if len(p) == depth]))
        value = draw(
            st.one_of(
                st.sampled_from(HOSTILE).map(_fresh),
                st.text(st.characters(exclude_categories=()), max_size=40),
                st.integers(),
                st.floats(),
            )
        )
        _set(raw, path, value)
    return n, raw


def _verdict(mapper: Mapper, raw: Raw) -> BaseException | None:
    """What the mapping and the validator say of ``raw``: ``None`` when it is good."""
    try:
        clean_mapped(list(mapper(raw)))
    except QUARANTINE_ERRORS as exc:
        return exc
    return None


@pytest.fixture(scope="module")
def seeds() -> dict[str, list[Raw]]:
    out = {}
    for name, (mapper, load) in MAPPERS.items():
        by_id = {str(raw.get("id")): raw for raw in load()}  # DevLake rows repeat some
        good = [raw for raw in by_id.values() if _verdict(mapper, raw) is None]
        assert good, f"{name}: no fixture payload maps cleanly"
        out[name] = good
    return out


@pytest.mark.parametrize("name", list(MAPPERS))
def test_mapper_maps_or_refuses_for_quarantine(name: str, seeds: dict[str, list[Raw]]) -> None:
    mapper = MAPPERS[name][0]

    @FUZZ
    @given(mutated(seeds[name]))
    def check(case: tuple[int, Raw]) -> None:
        _verdict(mapper, case[1])  # anything but a quarantine error propagates and fails

    check()


# --- the write path ----------------------------------------------------------------------------


class _FuzzStream(Stream):
    name = "fuzz"

    def __init__(self, mapper: Mapper, key: str) -> None:
        self.mapper = mapper
        self.primary_key = key  # type: ignore[misc]

    async def pages(self, scope: str, cursor: Any, options: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def map(self, raw: Raw, scope: str) -> Mapped:
        return self.mapper(raw)


#: Write-path fuzzing on one mapper per connector (their issues carry most of the columns).
WRITE_MAPPERS = ("jira_issue", "github_issue", "gitlab_issue")


@pytest.mark.parametrize("name", WRITE_MAPPERS)
def test_write_path_loads_the_good_and_quarantines_the_bad(
    name: str, seeds: dict[str, list[Raw]], engine: sa.Engine
) -> None:
    mapper = MAPPERS[name][0]
    stream = _FuzzStream(mapper, "id")
    writer = PageWriter(engine, source="fuzz", scope="S", stream=stream, store_cursor=False)

    @FUZZ
    @given(mutated(seeds[name]))
    def check(case: tuple[int, Raw]) -> None:
        n, raw = case
        others = [s for i, s in enumerate(seeds[name]) if i != n and s["id"] != raw.get("id")]
        before = _quarantine_count(engine)
        result = writer.write(Page(records=[*others[:2], raw]))  # must not raise
        bad = _engine_verdict(stream, raw)
        assert result.records + result.skipped + result.quarantined == len(others[:2]) + 1
        assert result.quarantined == (0 if bad is None else 1), bad
        assert _quarantine_count(engine) - before == result.quarantined
        expected = {str(s["id"]): payload_hash(canonical_json(s)) for s in others[:2]}
        if bad is None:  # loaded: its payload is the one stored now
            expected[stream.native_id(raw)] = payload_hash(canonical_json(raw))
        assert _stored(engine, list(expected)) == expected

    check()


def _engine_verdict(stream: _FuzzStream, raw: Raw) -> BaseException | None:
    try:
        nid = stream.native_id(raw)
        why = is_clean_id(nid, 200)
        if why:
            return ValueError(why)
        canonical_json(raw)
    except Exception as exc:  # noqa: BLE001 - same as the engine: unreadable is bad
        return exc
    return _verdict(stream.mapper, raw)


def _quarantine_count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT COUNT(*) FROM quarantine")).scalar_one()


def _stored(engine: sa.Engine, ids: list[str]) -> dict[str, str]:
    """Native id -> stored payload hash."""
    where = {"source_name": "fuzz", "stream": "fuzz"}
    with engine.connect() as conn:
        return db.lookup(conn, "raw_payloads", where, "native_id", ids, "hash")
