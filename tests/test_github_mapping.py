"""The GitHub mapping on real payloads: Apache DevLake's recorded ``panjf2000/ants`` issues,
pull requests and milestone (compared with DevLake's own normalized snapshot), GitHub's official
OpenAPI examples and octokit's recorded fixtures; then the rules that decide the numbers on
hand-made annotations (Projects values, timelines, observations). No HTTP.

Where we differ from DevLake on purpose (docs/connectors/github.md lists them): an
``enhancement`` label is a story (DevLake: no type), a milestone is a release (DevLake: a
sprint), pull requests are never work items (both agree) but their "blocked by" text counts.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from programview_connectors.github.mapping import (
    GitHubSettings,
    closed_issues,
    due_on_date,
    key_from_url,
    map_issue,
    map_milestone,
    map_release,
    map_sprint,
)
from programview_connectors.github.options import GitHubOptions

from programview.errors import MappingError
from programview.normalize import ANNOTATION
from programview.sync.connector import Record, Replace

FIXTURES = Path(
    os.environ.get("PROGRAMVIEW_FIXTURES", Path(__file__).resolve().parents[2] / "shared/fixtures")
)
DEVLAKE = FIXTURES / "devlake" / "github"
EXAMPLES = FIXTURES / "api-examples" / "github"
SOURCE = "gh"
SETTINGS = GitHubSettings(source=SOURCE)


def _need_fixtures() -> None:
    if not DEVLAKE.is_dir():
        message = f"DevLake fixtures not found at {FIXTURES} (set PROGRAMVIEW_FIXTURES)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def devlake_raw(name: str) -> list[dict[str, Any]]:
    _need_fixtures()
    with (DEVLAKE / "raw_tables" / name).open(newline="", encoding="utf-8") as f:
        return [json.loads(r["data"]) for r in csv.DictReader(f)]


def snapshot(name: str) -> list[dict[str, str]]:
    _need_fixtures()
    with (DEVLAKE / "snapshot_tables" / name).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def example(name: str) -> Any:
    _need_fixtures()
    return json.loads((EXAMPLES / name).read_text())


def records(out: list[Record | Replace], table: str) -> list[dict[str, Any]]:
    return [o.values for o in out if isinstance(o, Record) and o.table == table]


def work_item(out: list[Record | Replace]) -> dict[str, Any]:
    (item,) = records(out, "work_items")
    return item


def devlake_time(text: str) -> datetime | None:
    return datetime.fromisoformat(text).replace(tzinfo=None) if text else None


# --- DevLake's recorded repository -----------------------------------------------------------


def test_devlake_issues_map_like_devlakes_snapshot() -> None:
    raws = devlake_raw("_raw_github_api_issues.csv")
    expected = {int(r["issue_key"]): r for r in snapshot("issues.csv")}
    items = {}
    for raw in raws:
        out = map_issue(raw, "panjf2000/ants", SETTINGS)
        if "pull_request" in raw:
            assert records(out, "work_items") == [], "a pull request is never a work item"
            continue
        items[raw["number"]] = work_item(out)
    assert set(items) == set(expected) and len(items) == 26
    for number, row in expected.items():
        got = items[number]
        assert got["item_key"] == f"panjf2000/ants#{number}"
        assert got["url"] == row["url"]
        assert got["status_category"] == {"DONE": "done", "TODO": "todo"}[row["status"]]
        assert got["resolved_at"] == devlake_time(row["resolution_date"])
        assert got["created_at"] == devlake_time(row["created_date"])
        assert got["updated_at"] == devlake_time(row["updated_date"])
        assert got["reporter"] == row["creator_name"]
        assert got["assignee"] == (row["assignee_name"] or None)
        assert got["story_points"] is None and row["story_point"] == ""
        # DevLake's bug rule is ^(bug|failure|error)$: the same issues are bugs here
        assert (got["type_category"] == "bug") == (row["type"] == "BUG"), number
    labels = {n: i["labels"] for n, i in items.items()}
    assert {"enhancement", "bug", "question"} <= {
        x for v in labels.values() if v for x in v.split(",")
    }
    enhancement = next(i for i in items.values() if i["labels"] == "enhancement")
    assert enhancement["type_category"] == "story"  # DevLake leaves it untyped


def test_devlake_issues_link_to_their_milestone_and_the_milestone_is_a_release() -> None:
    raws = [r for r in devlake_raw("_raw_github_api_issues.csv") if "pull_request" not in r]
    for raw in raws:
        links = records(map_issue(raw, "panjf2000/ants", SETTINGS), "work_item_releases")
        assert links == [
            {"work_item_id": f"{SOURCE}:{raw['id']}", "release_id": f"{SOURCE}:milestone/7856149"}
        ]
    (milestone,) = devlake_raw("_raw_github_api_milestones.csv")
    (row,) = records(map_milestone(milestone, "panjf2000/ants", SOURCE), "releases")
    (expected,) = snapshot("_tool_github_milestones.csv")
    assert row["id"] == f"{SOURCE}:milestone/{expected['milestone_id']}"
    assert (row["name"], row["kind"], row["released"]) == (expected["title"], "milestone", False)
    assert row["due_date"] is None and "released_at" not in row


def test_devlake_pull_requests_state_their_dependencies_only() -> None:
    raws = [r for r in devlake_raw("_raw_github_api_issues.csv") if "pull_request" in r]
    assert len(raws) == 16
    for raw in raws:
        out = map_issue(raw, "panjf2000/ants", SETTINGS)
        assert out[0] == Replace("dependencies", {"found_in": f"{SOURCE}:pull/{raw['id']}"})
        assert all(isinstance(o, Record) and o.table == "dependencies" for o in out[1:])


# --- GitHub's own examples ---------------------------------------------------------------------


def test_official_issue_example() -> None:
    (raw,) = example("issues-list.openapi.json")
    assert "pull_request" in raw  # the official example carries one: it maps as a PR
    assert records(map_issue(raw, "octocat/Hello-World", SETTINGS), "work_items") == []
    issue = {k: v for k, v in raw.items() if k != "pull_request"}
    out = map_issue(issue, "octocat/Hello-World", SETTINGS)
    item = work_item(out)
    assert item["item_key"] == "octocat/hello-world#1347"
    assert (item["type_category"], item["status_category"]) == ("bug", "todo")
    assert item["url"] == raw["html_url"] and item["reporter"] == "octocat"
    assert item["resolved_at"] is None  # open, though the example has a closed_at
    releases = records(out, "work_item_releases")
    assert releases == [
        {"work_item_id": f"{SOURCE}:1", "release_id": f"{SOURCE}:milestone/1002604"}
    ]
    people = {p["display_name"] for p in records(out, "people")}
    assert "octocat" in people


def test_official_milestone_due_on_is_a_pacific_date() -> None:
    raw = example("milestone.openapi.json")
    (row,) = records(map_milestone(raw, "octocat/Hello-World", SOURCE), "releases")
    assert row["due_date"] == date(2012, 10, 9)  # 23:39 UTC is 16:39 in Seattle
    assert row["planned_date"] == row["due_date"] and row["released"] is False
    # GitHub stores a due date as midnight Pacific: T07:00Z in summer, T08:00Z in winter
    assert due_on_date("2025-07-04T07:00:00Z") == date(2025, 7, 4)
    assert due_on_date("2025-02-14T08:00:00Z") == date(2025, 2, 14)
    closed = dict(raw, state="closed")
    (row,) = records(map_milestone(closed, "octocat/Hello-World", SOURCE), "releases")
    assert row["released"] and row["released_at"] == datetime(2013, 2, 12, 13, 22, 1)


def test_octokit_recorded_issues_and_release() -> None:
    pages = example("octokit-paginate-issues.fixture.json")
    issues = [i for p in pages for i in p["response"]]
    assert len(issues) == 13
    for raw in issues:
        item = work_item(map_issue(raw, "octokit-fixture-org/paginate-issues", SETTINGS))
        assert item["item_key"] == f"octokit-fixture-org/paginate-issues#{raw['number']}"
        assert item["story_points"] is None and item["type_category"] == "other"
    (interaction,) = example("octokit-release-by-tag.fixture.json")[:1]
    release = interaction["response"]
    (row,) = records(map_release(release, "octokit-fixture-org/release-assets", SOURCE), "releases")
    assert row["kind"] == "release" and row["name"] == (release["name"] or release["tag_name"])
    assert row["released_at"] == datetime.fromisoformat(release["published_at"].rstrip("Z"))
    matched = dict(release, **{ANNOTATION: {"milestone": 3}})
    assert map_release(matched, "x/y", SOURCE) == [
        Replace("releases", {"id": f"{SOURCE}:release/{release['id']}"})
    ]


# --- the rules that decide the numbers ---------------------------------------------------------


def issue(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 501,
        "node_id": "I_kwDOx",
        "number": 45,
        "repository_url": "https://api.github.com/repos/Acme/Web",
        "html_url": "https://github.com/Acme/Web/issues/45",
        "title": "Refund flow",
        "state": "open",
        "labels": [],
        "created_at": "2025-01-02T10:00:00Z",
        "updated_at": "2025-01-31T13:47:09Z",
        "closed_at": None,
        "user": {"login": "ada", "id": 7},
        "assignees": [],
    }
    base.update(fields)
    return base


def test_type_from_issue_type_then_labels_and_configurable() -> None:
    assert (
        work_item(
            map_issue(issue(type={"name": "Bug"}, labels=[{"name": "story"}]), "a/b", SETTINGS)
        )["type_category"]
        == "bug"
    )
    assert (
        work_item(map_issue(issue(type={"name": "Feature"}), "a/b", SETTINGS))["type_category"]
        == "story"
    )
    assert (
        work_item(
            map_issue(issue(labels=[{"name": "Incident"}, {"name": "bug"}]), "a/b", SETTINGS)
        )["type_category"]
        == "incident"
    )
    options = GitHubOptions(type_map={"defect-ish": "bug", "Feature": "task"})
    custom = GitHubSettings(
        SOURCE, issue_types=options.issue_types(), label_types=options.label_types()
    )
    assert (
        work_item(map_issue(issue(labels=[{"name": "defect-ish"}]), "a/b", custom))["type_category"]
        == "bug"
    )
    assert (
        work_item(map_issue(issue(type={"name": "Feature"}), "a/b", custom))["type_category"]
        == "task"
    )


def test_status_points_and_not_planned() -> None:
    project = {
        "project": "acme/7",
        "points": 5.0,
        "status": "In review",
        "iteration": None,
        "due": "2025-03-01",
    }
    item = work_item(
        map_issue(
            issue(labels=[{"name": "points:3"}], **{ANNOTATION: {"project": project}}),
            "a/b",
            SETTINGS,
        )
    )
    assert (item["status_category"], item["raw_status"]) == ("in_progress", "In review")
    assert item["story_points"] == 5.0  # the Projects field wins over the label
    assert item["due_date"] == date(2025, 3, 1)
    item = work_item(
        map_issue(issue(labels=[{"name": "points:3"}, {"name": "In progress"}]), "a/b", SETTINGS)
    )
    assert (item["status_category"], item["story_points"]) == ("in_progress", 3.0)
    item = work_item(map_issue(issue(labels=[{"name": "sp: 2"}]), "a/b", SETTINGS))
    assert (item["status_category"], item["story_points"]) == ("todo", 2.0)
    assert work_item(map_issue(issue(), "a/b", SETTINGS))["story_points"] is None  # unset, not 0
    closed = issue(state="closed", state_reason="not_planned", closed_at="2025-02-01T09:00:00Z")
    item = work_item(map_issue(closed, "a/b", SETTINGS))
    assert (item["status_category"], item["not_delivered"]) == ("done", True)
    assert item["resolved_at"] == datetime(2025, 2, 1, 9)
    done = work_item(map_issue(dict(closed, state_reason="completed"), "a/b", SETTINGS))
    assert done["not_delivered"] is False


def test_history_from_the_timeline_and_observations() -> None:
    timeline = [
        ["2025-01-02T10:00:00Z", "labeled", "points:3"],  # the estimate it was created with
        ["2025-01-05T08:00:00Z", "labeled", "In progress"],
        ["2025-01-09T12:00:00Z", "unlabeled", "points:3"],
        ["2025-01-09T12:00:00Z", "labeled", "points:5"],  # one re-estimate, not two changes
        ["2025-01-20T17:00:00Z", "closed", "completed"],
        ["2025-01-22T09:00:00Z", "reopened", None],
    ]
    out = map_issue(issue(**{ANNOTATION: {"timeline": timeline}}), "acme/web", SETTINGS)
    assert records(out, "estimate_changes") == [
        {
            "work_item_id": f"{SOURCE}:501",
            "change_id": "label:2025-01-09T12:00:00",
            "changed_at": datetime(2025, 1, 9, 12),
            "from_points": 3.0,
            "to_points": 5.0,
        }
    ]
    moves = [(r["changed_at"], r["to_category"]) for r in records(out, "status_changes")]
    assert moves == [
        (datetime(2025, 1, 5, 8), "in_progress"),
        (datetime(2025, 1, 20, 17), "done"),
        (datetime(2025, 1, 22, 9), "todo"),
    ]
    assert work_item(out)["started_at"] == datetime(2025, 1, 5, 8)
    # no label evidence: the first sync that saw it in progress
    seen = {
        "first_in_progress_at": "2025-01-07T06:00:00",
        "estimates": [["2025-01-08T06:00:00", 2, 3]],
    }
    out = map_issue(issue(**{ANNOTATION: seen}), "acme/web", SETTINGS)
    assert work_item(out)["started_at"] == datetime(2025, 1, 7, 6)
    assert [(r["from_points"], r["to_points"]) for r in records(out, "estimate_changes")] == [
        (2.0, 3.0)
    ]


def test_iteration_membership_becomes_per_repository_sprint_items() -> None:
    notes = {
        "iterations": {
            "cfc16e4d": [None, "2025-01-20T09:00:00"],
            "aa11bb22": ["2025-01-20T09:00:00", None],
        }
    }
    out = map_issue(issue(**{ANNOTATION: notes}), "acme/web", SETTINGS)
    assert out[out.index(Replace("sprint_items", {"work_item_id": f"{SOURCE}:501"})) + 1 :][:2] == [
        Record(
            "sprint_items",
            {
                "sprint_id": f"{SOURCE}:aa11bb22@acme/web",
                "work_item_id": f"{SOURCE}:501",
                "added_at": datetime(2025, 1, 20, 9),
                "removed_at": None,
            },
        ),
        Record(
            "sprint_items",
            {
                "sprint_id": f"{SOURCE}:cfc16e4d@acme/web",
                "work_item_id": f"{SOURCE}:501",
                "added_at": None,
                "removed_at": datetime(2025, 1, 20, 9),
            },
        ),
    ]
    sprint = {
        "id": "cfc16e4d@acme/web",
        "iteration": {
            "id": "cfc16e4d",
            "title": "Iteration 14",
            "startDate": "2025-01-20",
            "duration": 14,
        },
        "repo": "acme/web",
        "project": "acme/7",
        "state": "closed",
    }
    (row,) = records(map_sprint(sprint, "acme/web", SOURCE), "sprints")
    assert (row["start_at"], row["end_at"], row["completed_at"]) == (
        datetime(2025, 1, 20),
        datetime(2025, 2, 3),
        datetime(2025, 2, 3),
    )
    with pytest.raises(MappingError):
        map_sprint(dict(sprint, state="running"), "acme/web", SOURCE)


def test_dependencies_sub_issues_native_and_text_across_tools() -> None:
    raw = issue(
        body="Refunds.\n\nBlocked by PAY-12\nDepends on acme/mobile#3 and #44; blocked by #45",
        parent_issue_url="https://api.github.com/repos/Acme/Web/issues/40",
        **{ANNOTATION: {"blocked_by": ["acme/web#41"]}},
    )
    deps = {
        (d["blocked_key"], d["blocking_key"], d["link_kind"], d["origin"])
        for d in records(map_issue(raw, "Acme/Web", SETTINGS), "dependencies")
    }
    assert deps == {
        ("acme/web#40", "acme/web#45", "parent", "github_sub_issue"),
        ("acme/web#45", "acme/web#41", "blocks", "github_dependency"),
        ("acme/web#45", "PAY-12", "blocks", "text"),
        ("acme/web#45", "acme/mobile#3", "blocks", "text"),
        ("acme/web#45", "acme/web#44", "blocks", "text"),
    }  # "blocked by #45" is the issue itself: not a dependency
    pr = issue(
        id=9,
        number=1001,
        pull_request={"url": "x"},
        body="Fixes #45, closes acme/mobile#3.\nBlocked by LEDG-7",
    )
    deps = {
        (d["blocked_key"], d["blocking_key"])
        for d in records(map_issue(pr, "acme/web", SETTINGS), "dependencies")
    }
    assert deps == {("acme/web#45", "LEDG-7"), ("acme/mobile#3", "LEDG-7")}
    assert closed_issues("resolves https://github.com/a/b/issues/9", "x/y") == ["a/b#9"]
    assert key_from_url("https://ghe.example.com/api/v3/repos/Org/Repo/issues/12") == "org/repo#12"


@pytest.mark.parametrize(
    "broken",
    [
        {"id": None},
        {"number": "x"},
        {ANNOTATION: "oops"},
        {ANNOTATION: {"timeline": [["2025-01-01"]]}},
        {ANNOTATION: {"iterations": {"a": [1]}}},
        {"created_at": "yesterday"},
    ],
)
def test_unreadable_payloads_are_refused_for_quarantine(broken: dict[str, Any]) -> None:
    with pytest.raises((MappingError, TypeError, ValueError, KeyError)):
        map_issue(issue(**broken), "a/b", SETTINGS)


def test_slimmed_payloads_map_exactly_like_the_whole_ones() -> None:
    from programview_connectors.github.streams import slim

    raws = devlake_raw("_raw_github_api_issues.csv") + [
        {k: v for k, v in example("issues-list.openapi.json")[0].items() if k != "pull_request"}
    ]
    for raw in raws:
        small = slim(raw)
        assert len(json.dumps(small)) < len(json.dumps(raw)) / 2
        assert map_issue(small, "panjf2000/ants", SETTINGS) == map_issue(
            raw, "panjf2000/ants", SETTINGS
        )
