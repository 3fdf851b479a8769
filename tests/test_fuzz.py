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

import asyncio
import csv
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from programview_connectors.github import mapping as gh
from programview_connectors.gitlab import mapping as gl
from programview_connectors.jira import mapping as jira
from programview_connectors.jira.options import JiraOptions

from programview import simulator
from programview.normalize import ANNOTATION
from programview.simulator import github_api as sim_github
from programview.sync.connector import Mapped, Page, Stream
from programview.sync.engine import QUARANTINE_ERRORS, PageWriter, canonical_json, payload_hash
from programview.sync.validate import clean_mapped, clean_text, is_clean_id
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
Path_ = tuple[Any, ...]


@dataclass(frozen=True)
class Target:
    """One mapper under fuzz: its seeds, and how its stream names and nests its records."""

    mapper: Mapper
    load: Callable[[], list[Raw]]
    #: The stream's ``primary_key`` (the write path); ``None``: no stream of its own writes
    #: these records (Jira worklogs come inside their issue, fuzzed there too).
    key: str | None = "id"
    #: Subtrees whose values make child rows (changelogs, worklogs, links, the annotation):
    #: half the mutations land in one of them, at any depth, so those rows are fuzzed too.
    focus: tuple[Path_, ...] = ()


def _jira_issues() -> list[Raw]:
    """DevLake's board issues chosen for their child rows (status and Sprint changelogs, fix
    versions, parent/epic links, and EE-14..EE-23 with real embedded worklogs) and the Jira
    Server issues with ``issuelinks``; EE-1 gets the API's issue-worklog response as its
    ``fields.worklog`` (what ``complete_worklogs`` puts there; the API's issue examples have no
    status, so they never map). Each gets the status categories of DevLake's ``/status``
    catalogue, as ``annotate_statuses`` does."""
    board = {r["key"]: r for r in _devlake("jira", "_raw_jira_api_issues.csv", 100)}
    chosen = [board[k] for k in ("EE-1", "EE-14", "EE-15", "EE-17", "EE-23", "EE-26", "K5-2")]
    linked = [
        r
        for r in _devlake("jira", "_raw_jira_api_issue_relationships.csv", 100)
        if r["id"] in ("10806", "10812", "10821")
    ]
    assert [r["id"] for r in linked] == ["10806", "10812", "10821"]
    chosen[0]["fields"]["worklog"] = _example("jira", "issue-worklog.json")
    catalogue = {
        str(s["id"]): s["statusCategory"]["key"]
        for s in _devlake("jira", "_raw_jira_api_status.csv", 100)
    }
    return [jira.attach_status_categories(i, catalogue) for i in [*chosen, *linked]]


def _github_issues() -> list[Raw]:
    """DevLake's issues and GitHub's example, then three issues with the ``programview``
    annotation the issues stream adds (mapping.py's docstring gives its format; no API sends
    it, so there is no fixture of it): ``timeline`` from DevLake's recorded issue events
    (labeled / closed of other issues of the same repository: the two fixtures share no
    issue), ``blocked_by`` naming another fixture issue, and on one of them the Projects
    observations (iteration membership, number-field estimates, first seen in progress) on
    an iteration of the simulator, whose GraphQL output is the only Projects v2 data there is."""
    rows = _devlake("github", "_raw_github_api_issues.csv", 100)
    plain = [r for r in rows if "pull_request" not in r]
    events: dict[Any, list[list[Any]]] = {}
    for ev in _devlake("github", "_raw_github_api_events.csv", 100):
        kind = ev.get("event")
        if kind in ("labeled", "unlabeled", "closed", "reopened"):
            value = (ev.get("label") or {}).get("name") if "labeled" in kind else None
            number = (ev.get("issue") or {}).get("number")
            events.setdefault(number, []).append([ev["created_at"], kind, value])
    timelines = sorted(events.values(), key=len, reverse=True)[:3]
    annotated = []
    fresh = [r for r in plain if r["id"] not in {x["id"] for x in rows[:6]}]
    for n, (issue, timeline) in enumerate(zip(fresh[-3:], timelines, strict=True)):
        blocker = gh.issue_key(gh.repo_of(plain[n], "acme/web"), plain[n]["number"])
        issue = json.loads(json.dumps(issue))
        issue["state"] = "open" if n == 0 else issue["state"]  # one open: in-progress paths
        issue[ANNOTATION] = {"timeline": timeline, "blocked_by": [blocker]}
        annotated.append(issue)
    iteration = _github_sprints()[0]["iteration"]
    annotated[0][ANNOTATION].update(
        {
            "project": {"points": 3, "status": "In Progress", "iteration": iteration},
            "iterations": {iteration["id"]: [iteration["startDate"] + "T09:00:00Z", None]},
            "estimates": [["2024-03-02T10:00:00Z", 2, 3]],
            "first_in_progress_at": "2024-03-01T10:00:00Z",
        }
    )
    return rows[:6] + _example("github", "issues-list.openapi.json")[:1] + annotated


def _github_sprints() -> list[Raw]:
    """No fixture holds a Projects v2 iteration (GitHub publishes no GraphQL responses, only
    the schema): the simulator's iteration nodes (``_iteration_json``, what its
    ``ProjectV2IterationField`` configuration returns), one per state, in the record the
    sprints stream builds from them."""
    org = simulator.generate(seed=1, size="small")
    by_state: dict[str, Any] = {}
    for sprint in org.sprints.values():
        if sprint.system == "github":
            by_state.setdefault(sprint.state, sprint)
    assert set(by_state) == {"closed", "active", "future"}, set(by_state)
    out = []
    for state, sprint in sorted(by_state.items()):
        it = sim_github._iteration_json(sprint)
        out.append(
            {
                "id": f"{it['id']}@acme/web",
                "iteration": it,
                "repo": "acme/web",
                "project": "acme/1",
                "state": state,
            }
        )
    return out


def _gitlab_issues() -> list[Raw]:
    """DevLake's issues, then issues with the ``programview``
    annotation the issues stream compacts from five per-issue lists (``_complete``): GitLab's
    documented state events and issue link on the example issue with its Premium fields (the
    iteration also as an ``add`` event), and on two DevLake issues that carry a ``weight`` its
    weight event and label events of an in-progress label at their own times (no fixture
    has label or weight events)."""
    rows = _devlake("gitlab", "_raw_gitlab_api_issues.csv", 100)
    issue = {**_example("gitlab", "issues-list.json")[0]}
    issue.update(_example("gitlab", "issue-premium-fields.fragment.json"))
    issue["references"] = issue.get("references") or {"full": "example/example#1"}
    link = _example("gitlab", "issue-links-list.json")[0]
    iteration = issue["iteration"]
    issue[ANNOTATION] = {
        "state_events": [
            [e["created_at"], e["state"]]
            for e in _example("gitlab", "issue-resource-state-events.json")
        ],
        "links": [
            [link["issue_link_id"], link["link_type"], link["id"], "example/example#14"],
            [link["issue_link_id"] + 1, "is_blocked_by", link["id"] + 1, "example/example#15"],
        ],
        "iteration_events": [
            [
                iteration["created_at"],
                "add",
                {k: iteration[k] for k in ("id", "start_date", "due_date")},
            ]
        ],
    }
    weighted = [json.loads(json.dumps(r)) for r in rows[6:] if r.get("weight")][:2]
    for r in weighted:
        label = "workflow::in dev"
        r[ANNOTATION] = {
            "weight_events": [[r["updated_at"], r["weight"]]],
            "label_events": [
                [r["created_at"], "add", label],
                [r["updated_at"], "remove", label],
            ],
            "state_events": [[r["closed_at"], "closed"]] if r.get("closed_at") else [],
        }
    return rows[:6] + [issue, *weighted]


def _gitlab_milestones() -> list[Raw]:
    """GitLab's documented milestones with the annotation the milestones stream adds (its
    native id; on a copy seen closed, the release that names it and when it closed)."""
    out = []
    for m in _example("gitlab", "milestones-list.json")[:2]:
        out.append({**m, ANNOTATION: {"native_id": gl.milestone_native_id(m, "acme/web")}})
    shipped = {**out[0], "id": out[0]["id"] + 1000, "state": "closed"}
    shipped[ANNOTATION] = {
        "native_id": gl.milestone_native_id(shipped, "acme/web"),
        "release": {"tag_name": "v1", "released_at": "2024-01-02T10:00:00Z", "upcoming": False},
        "closed_at": "2024-01-03T10:00:00Z",
    }
    return [*out, shipped]


def _gitlab_releases() -> list[Raw]:
    """No fixture holds a GitLab release (DevLake does not collect them, and the docs example
    was not kept): the simulator's ``GET /projects/:id/releases``, in process, annotated as
    the releases stream does. The simulator cuts every release from a milestone (mapped to a
    ``Replace`` only), so a copy of each without ``milestones`` is added: a release of its
    own, the path that makes a ``releases`` row."""

    async def get() -> list[Raw]:
        async with httpx.AsyncClient(
            transport=simulator.transport(simulator.generate(seed=1, size="small")),
            base_url="http://sim/gitlab/api/v4",
            headers={"PRIVATE-TOKEN": simulator.TOKENS.gitlab_token},
        ) as client:
            response = await client.get("/projects/acme%2Fplatform%2Fapi/releases")
            response.raise_for_status()
            return list(response.json())[:2]

    out = []
    for release in asyncio.run(get()):
        native = gl.release_native_id(release, "acme/platform/api")
        out.append({**release, ANNOTATION: {"native_id": native}})
        own = {**release, "tag_name": release["tag_name"] + "-own", "milestones": []}
        own[ANNOTATION] = {"native_id": gl.release_native_id(own, "acme/platform/api")}
        out.append(own)
    return out


def _jira_versions() -> list[Raw]:
    """The API's versions, and one seen released after being seen unreleased (the annotation
    the versions stream adds then)."""
    versions = _example("jira", "project-versions.json")[:2]
    seen = {**versions[0], "id": f"{versions[0]['id']}9", "released": True}
    seen[ANNOTATION] = {"seen_unreleased": True, "first_seen_released_at": "2024-05-01T10:00:00Z"}
    return [*versions, seen]


#: Where each issue mapper's child rows come from (see ``Target.focus``).
JIRA_ISSUE_FOCUS: tuple[Path_, ...] = (
    ("changelog", "histories"),
    ("fields", "worklog", "worklogs"),
    ("fields", "issuelinks"),
    ("fields", "customfield_10020"),  # the Sprint field
    ("fields", "fixVersions"),
    ("fields", "subtasks"),
    ("fields", "parent"),
    (ANNOTATION,),
)
GITHUB_ISSUE_FOCUS: tuple[Path_, ...] = (
    *((ANNOTATION, k) for k in ("timeline", "blocked_by", "project", "iterations", "estimates")),
    (ANNOTATION,),
    ("milestone",),
    ("assignees",),
    ("labels",),
)
GITLAB_ISSUE_FOCUS: tuple[Path_, ...] = (
    *(
        (ANNOTATION, k)
        for k in ("state_events", "label_events", "weight_events", "iteration_events", "links")
    ),
    (ANNOTATION,),
    ("iteration",),
    ("milestone",),
    ("epic",),
    ("labels",),
)

TARGETS: dict[str, Target] = {
    "jira_issue": Target(
        lambda r: jira.map_issue(r, "EE", JIRA_SETTINGS), _jira_issues, focus=JIRA_ISSUE_FOCUS
    ),
    "jira_sprint": Target(
        lambda r: jira.map_sprint(r, "EE", "jira"),
        lambda: (
            _example("jira", "agile-board-sprints.json")["values"][:3]
            + _devlake("jira", "_raw_jira_api_sprints.csv", 2)
        ),
    ),
    "jira_version": Target(lambda r: jira.map_version(r, "EE", "jira"), _jira_versions),
    # Worklogs: the API's issue-worklog and worklog-list examples and DevLake's recorded
    # /issue/{id}/worklog rows (map_issue maps each entry of fields.worklog with it).
    "jira_worklog": Target(
        lambda r: [jira.map_worklog(r, "jira:10002", "jira")],
        lambda: (
            _example("jira", "issue-worklog.json")["worklogs"]
            + _example("jira", "worklog-list.json")
            + _devlake("jira", "_raw_jira_api_worklogs.csv", 4)
        ),
        key=None,
    ),
    "github_issue": Target(
        lambda r: gh.map_issue(r, "acme/web", GH_SETTINGS), _github_issues, focus=GITHUB_ISSUE_FOCUS
    ),
    "github_pull_request": Target(
        lambda r: gh.map_pull_request(r, "acme/web", GH_SETTINGS),
        lambda: _devlake("github", "_raw_github_api_pull_requests.csv", 3),
    ),
    "github_milestone": Target(
        lambda r: gh.map_milestone(r, "acme/web", "github"),
        lambda: (
            _devlake("github", "_raw_github_api_milestones.csv", 3)
            + _example("github", "milestones-list.openapi.json")[:1]
        ),
    ),
    "github_release": Target(
        lambda r: gh.map_release(r, "acme/web", "github"),
        lambda: [f["response"] for f in _example("github", "octokit-release-by-tag.fixture.json")],
    ),
    "github_sprint": Target(lambda r: gh.map_sprint(r, "acme/web", "github"), _github_sprints),
    "gitlab_issue": Target(
        lambda r: gl.map_issue(r, "acme/web", GL_SETTINGS), _gitlab_issues, focus=GITLAB_ISSUE_FOCUS
    ),
    "gitlab_milestone": Target(
        lambda r: gl.map_milestone(r, "acme/web", "gitlab"),
        _gitlab_milestones,
        key=f"{ANNOTATION}.native_id",
    ),
    "gitlab_release": Target(
        lambda r: gl.map_release(r, "acme/platform/api", "gitlab"),
        _gitlab_releases,
        key=f"{ANNOTATION}.native_id",
    ),
    "gitlab_iteration": Target(
        lambda r: gl.map_sprint(r, "acme", "gitlab"),
        lambda: [
            # what the iterations stream yields
            {"id": f"{it['id']}@acme/web", "iteration": it, "project": "acme/web"}
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


def _subtree(raw: Any, prefix: Path_) -> Any:
    """The value at ``prefix`` in ``raw`` (``None`` when it has none)."""
    value = raw
    for part in prefix:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _hostile(draw: st.DrawFn) -> Any:
    return draw(
        st.one_of(
            st.sampled_from(HOSTILE).map(_fresh),
            st.text(st.characters(exclude_categories=()), max_size=40),
            st.integers(),
            st.floats(),
        )
    )


@st.composite
def mutated(draw: st.DrawFn, seeds: list[Raw], focus: tuple[Path_, ...] = ()) -> tuple[int, Raw]:
    """(index of the seed, a deep copy of it with 1-4 values replaced by hostile ones).

    With ``focus`` (the collections child rows are made from), half the examples mutate one
    such collection only: a collection, then a seed that has it, then paths inside it by
    depth (an entry, a field of an entry, …). Drawn over the whole payload, a worklog's
    ``author`` is one path in thousands."""

    def has(seed: Raw, prefix: Path_) -> bool:
        inside = _subtree(seed, prefix)
        return isinstance(inside, dict | list) and bool(inside)

    present = [f for f in focus if any(has(s, f) for s in seeds)]
    prefix: Path_ | None = None
    inside_one: bool = bool(present) and draw(st.booleans())
    if inside_one:
        prefix = draw(st.sampled_from(present))
        having = [i for i, s in enumerate(seeds) if has(s, prefix)]
        n = draw(st.sampled_from(having))
    else:
        n = draw(st.integers(0, len(seeds) - 1))
    raw = json.loads(json.dumps(seeds[n]))
    for _ in range(draw(st.integers(1, 4))):
        if prefix is not None:
            inside = _subtree(raw, prefix)
            paths = _paths(inside, prefix) if isinstance(inside, dict | list) else []
        else:
            paths = _paths(raw)
        if not paths:
            break
        # depth first, then a path of that depth: the mapped fields sit 1-3 levels deep,
        # among hundreds of deeper paths (changelogs, avatars) a uniform draw would favour
        depths = sorted({len(p) for p in paths})
        depth = draw(st.sampled_from(depths[:4]))
        path = draw(st.sampled_from([p for p in paths if len(p) == depth]))
        _set(raw, path, _hostile(draw))
    return n, raw


def _verdict(mapper: Mapper, raw: Raw) -> BaseException | None:
    """What the mapping and the validator say of ``raw``: ``None`` when it is good."""
    try:
        clean_mapped(list(mapper(raw)))
    except QUARANTINE_ERRORS as exc:
        return exc
    return None


def _native(key: str, raw: Raw) -> str | None:
    """The stream's id of ``raw`` (``None`` when it has none the engine would take)."""
    value: Any = raw
    try:
        for part in key.split("."):
            value = value[part]
    except (KeyError, IndexError, TypeError):
        return None
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


@pytest.fixture(scope="module")
def seeds() -> dict[str, list[Raw]]:
    out = {}
    for name, target in TARGETS.items():
        # DevLake rows repeat some payloads: one seed per id
        by_id = {_native(target.key or "id", raw): raw for raw in target.load()}
        good = [raw for raw in by_id.values() if _verdict(target.mapper, raw) is None]
        assert len(good) == len(by_id), f"{name}: a fixture payload does not map cleanly"
        out[name] = good
    return out


def test_seeds_reach_the_child_rows(seeds: dict[str, list[Raw]]) -> None:
    """The seeds make every kind of child row their mapper writes, so the fuzz mutates
    payloads on those paths (a seed without worklogs never fuzzes the worklog mapping)."""
    made: dict[str, set[str]] = {}
    for name, target in TARGETS.items():
        for raw in seeds[name]:
            for item in target.mapper(raw):
                made.setdefault(name, set()).add(item.table)
    children = {"status_changes", "sprint_items", "dependencies", "work_item_releases", "people"}
    assert made["jira_issue"] >= {*children, "sprints", "worklogs", "estimate_changes"}
    assert made["github_issue"] >= {*children, "estimate_changes"}
    assert made["gitlab_issue"] >= {*children, "estimate_changes"}
    assert made["jira_worklog"] == {"worklogs"}
    assert made["github_sprint"] == made["gitlab_iteration"] == {"sprints"}
    for name in ("jira_version", "github_milestone", "github_release", "gitlab_milestone"):
        assert made[name] == {"releases"}, name
    assert made["gitlab_release"] == {"releases"}


@pytest.mark.parametrize("name", list(TARGETS))
def test_mapper_maps_or_refuses_for_quarantine(name: str, seeds: dict[str, list[Raw]]) -> None:
    target = TARGETS[name]
    # twice the draws where half of them go into the child collections
    fuzz = settings(FUZZ, max_examples=EXAMPLES * 2) if target.focus else FUZZ

    @fuzz
    @given(mutated(seeds[name], target.focus))
    def check(case: tuple[int, Raw]) -> None:
        _verdict(target.mapper, case[1])  # anything but a quarantine error propagates and fails

    check()


# --- the write path ----------------------------------------------------------------------------


class _FuzzStream(Stream):
    def __init__(self, name: str, mapper: Mapper, key: str) -> None:
        self.name = name
        self.mapper = mapper
        self.primary_key = key

    async def pages(self, scope: str, cursor: Any, options: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def map(self, raw: Raw, scope: str) -> Mapped:
        return self.mapper(raw)


#: Issues (with every child row; pull requests come through the issues stream too).
WRITE_ISSUES = ("jira_issue", "github_issue", "gitlab_issue")
#: The other record kinds a stream writes, each one flat row: sprints and iterations,
#: versions, milestones and releases, and pull requests' dependency rows. Fuzzed in one test
#: per database (one migrated warehouse, not ten) with fewer draws each.
WRITE_FLAT = tuple(n for n, t in TARGETS.items() if t.key is not None and n not in WRITE_ISSUES)
FLAT = settings(FUZZ, max_examples=max(1, EXAMPLES * 2 // 5))


@pytest.mark.parametrize("name", WRITE_ISSUES)
def test_write_path_loads_the_good_and_quarantines_the_bad(
    name: str, seeds: dict[str, list[Raw]], engine: sa.Engine
) -> None:
    _fuzz_writes(name, seeds[name], engine, FUZZ)


def test_write_path_of_sprints_and_releases(seeds: dict[str, list[Raw]], engine: sa.Engine) -> None:
    """The same property for every other record kind a stream writes through the engine."""
    for name in WRITE_FLAT:
        _fuzz_writes(name, seeds[name], engine, FLAT)


def _fuzz_writes(name: str, seeds: list[Raw], engine: sa.Engine, fuzz: settings) -> None:
    """A page of (up to two) real payloads plus one mutated payload is written without error;
    the mutated one is loaded exactly when mapping and validation accept it, else quarantined
    with its error; the real payloads are always loaded."""
    target = TARGETS[name]
    assert target.key is not None
    key = target.key
    stream = _FuzzStream(name, target.mapper, key)
    writer = PageWriter(engine, source="fuzz", scope="S", stream=stream, store_cursor=False)

    @fuzz
    @given(mutated(seeds, target.focus))
    def check(case: tuple[int, Raw]) -> None:
        n, raw = case
        own = _native(key, raw)
        others = [s for i, s in enumerate(seeds) if i != n and _native(key, s) != own][:2]
        before = _quarantine_count(engine)
        result = writer.write(Page(records=[*others, raw]))  # must not raise
        bad, by_mapping = _engine_verdict(stream, raw)
        assert result.records + result.skipped + result.quarantined == len(others) + 1
        assert result.quarantined == (0 if bad is None else 1), (name, bad)
        assert _quarantine_count(engine) - before == result.quarantined
        if bad is not None:  # quarantined with its error (and its payload, for a remap)
            nid, error, payload = _last_quarantined(engine, name)
            assert error and payload
            if by_mapping:
                assert nid == stream.native_id(raw)
                assert error == clean_text(f"{type(bad).__name__}: {bad}")[:4000]
        expected = {stream.native_id(s): payload_hash(canonical_json(s)) for s in others}
        if bad is None:  # loaded: its payload is the one stored now
            expected[stream.native_id(raw)] = payload_hash(canonical_json(raw))
        assert _stored(engine, name, list(expected)) == expected, name

    check()


def _engine_verdict(stream: _FuzzStream, raw: Raw) -> tuple[BaseException | None, bool]:
    """(why the engine refuses ``raw``, or ``None``; whether the mapping refused it)."""
    try:
        nid = stream.native_id(raw)
        why = is_clean_id(nid, 200)
        if why:
            return ValueError(why), False
        canonical_json(raw)
    except Exception as exc:  # noqa: BLE001 - same as the engine: unreadable is bad
        return exc, False
    bad = _verdict(stream.mapper, raw)
    return bad, bad is not None


def _last_quarantined(engine: sa.Engine, stream: str) -> tuple[str | None, str, str]:
    """(native id, error, payload) of the last quarantined record of ``stream``."""
    q = db.table("quarantine")
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(q.c.native_id, q.c.error, q.c.payload)
            .where(q.c.source_name == "fuzz", q.c.stream == stream)
            .order_by(q.c.id.desc())
            .limit(1)
        ).one()
    return row.native_id, row.error, row.payload


def _quarantine_count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT COUNT(*) FROM quarantine")).scalar_one()


def _stored(engine: sa.Engine, stream: str, ids: list[str]) -> dict[str, str]:
    """Native id -> stored payload hash."""
    where = {"source_name": "fuzz", "stream": stream}
    with engine.connect() as conn:
        return db.lookup(conn, "raw_payloads", where, "native_id", ids, "hash")


# --- the Jira stream's completion helpers (they run before the engine can quarantine) --------


def test_jira_completion_helpers_take_any_payload(seeds: dict[str, list[Raw]]) -> None:
    """Regression: a changelog ``total`` of ``""``, ``fields`` or a history that is not an
    object made these raise in the issues stream, failing the whole stream on every rerun
    instead of quarantining one issue."""
    assert jira.changelog_is_complete({"changelog": {"total": "", "histories": []}})
    assert jira.worklog_is_complete({"fields": "x"})
    assert jira.attach_status_categories({"changelog": {"histories": [3]}}, {}) == {
        "changelog": {"histories": [3]},
        ANNOTATION: {"status_categories": {}},
    }

    @FUZZ
    @given(mutated(seeds["jira_issue"], JIRA_ISSUE_FOCUS))
    def check(case: tuple[int, Raw]) -> None:
        raw = case[1]
        jira.changelog_is_complete(raw)
        jira.worklog_is_complete(raw)
        jira.attach_status_categories(raw, {"1": "new", "3": "indeterminate"})

    check()
