"""The simulated Jira answers with the keys and value types of the real one.

Each Jira endpoint the connector uses is compared, over real HTTP, with the official
example (``/work/shared/fixtures/api-examples/jira``) and, where DevLake recorded it, with
real payloads (``/work/shared/fixtures/devlake/jira/raw_tables``). Every difference must be
listed below with its reason (see ``shape_allowlist``); the examples' known quirks are in
``api-examples/README.md`` ("Known quirks").
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from shape_allowlist import assert_same_shape, devlake_rows, example, merge_samples

from programview.simulator import TOKENS, generate, serve
from programview.simulator.generator import Item, Organisation
from programview.simulator.server import Simulator

CLOUD_AUTH = {
    "Authorization": "Basic "
    + base64.b64encode(f"{TOKENS.jira_email}:{TOKENS.jira_api_token}".encode()).decode()
}
DC_AUTH = {"Authorization": f"Bearer {TOKENS.jira_dc_pat}"}

# --- reasons used more than once --------------------------------------------------------
NOT_SERVED = "not used by the connector, so the simulator does not serve it"
MADE_UP = "made-up field of the hand-written example (README 'Known quirks')"
FEW_FIELDS = (
    "the hand-written example shows a few made-up fields only; the fields served are "
    "checked against recorded payloads in the DevLake tests of this file"
)
SHORT_PROJECT = (
    "the example embeds a full project; issues embed the short project reference, as the "
    "recorded payloads show"
)
EMAIL = (
    "Cloud shows an e-mail only when the user's privacy settings allow it; the simulator "
    "never does (except /myself), so a connector cannot come to rely on it"
)
TRIMMED_USER = "the example trims user objects; recorded payloads carry these keys"
SITE_FIELDS = "custom fields of the recorded site, not of ours"
UPDATED_NUMBER = "the example's `updated` is the number 1; real issues send a timestamp"
WORKLOG_ARRAY = (
    "the example shows a bare array; real issues embed the page object "
    "{startAt,maxResults,total,worklogs} (see the recorded payloads)"
)
LINK_REF = (
    "the example trims the linked issue to status name/iconUrl; the recorded Server "
    "payload shows summary, status, priority and issuetype"
)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with serve(generate(seed=1, size="small")) as running:
        yield running


def get(sim: Simulator, path: str, dc: bool = False, **params: Any) -> Any:
    base, auth = (sim.jira_dc_url, DC_AUTH) if dc else (sim.jira_url, CLOUD_AUTH)
    r = httpx.get(base + path, params=params, headers=auth, timeout=30)
    assert r.status_code < 500, r.text
    return r.json()


def post(sim: Simulator, path: str, body: Any) -> Any:
    r = httpx.post(sim.jira_url + path, json=body, headers=CLOUD_AUTH, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def key_of(org: Organisation) -> str:
    return sorted(s.path for s in org.scopes_of("jira"))[0]


def rich_item(org: Organisation) -> Item:
    """An issue with a parent, worklogs, a fix version, points and a sprint."""
    return next(
        i
        for i in org.scope_items(key_of(org))
        if i.parent_id and i.worklogs and i.release_id and i.points and org.current_sprint(i)
    )


def board_id(sim: Simulator) -> int:
    return get(sim, "/rest/agile/1.0/board")["values"][0]["id"]


def example_issue_allow(prefix: str, platform: bool = True, **extra: str) -> dict[str, str]:
    """Differences every hand-written issue example has (``prefix``: where the issue is;
    the platform examples also have two made-up fields the Agile ones lack)."""
    f = f"{prefix}.fields"
    allow = {
        f"extra:{f}.*": FEW_FIELDS,
        f"missing:{f}.comment": NOT_SERVED,
        f"missing:{f}.project.insight": SHORT_PROJECT,
        f"missing:{f}.project.projectCategory": SHORT_PROJECT,
        f"missing:{f}.project.style": SHORT_PROJECT,
        f"type:{f}.updated": UPDATED_NUMBER,
        f"type:{f}.worklog": WORKLOG_ARRAY,
    }
    if platform:
        allow[f"missing:{f}.watcher"] = MADE_UP + "; the real field is `watches` (served)"
        allow[f"missing:{f}.sub-tasks"] = MADE_UP + "; the real field is `subtasks` (served)"
    allow.update(extra)
    return allow


# --- platform API: session, catalogues, projects, versions ------------------------------


def test_myself(sim: Simulator) -> None:
    assert_same_shape(
        get(sim, "/rest/api/3/myself"),
        example("jira", "myself.json"),
        {
            "missing:$.key": "GDPR-era field, empty in the example; Cloud no longer sends it",
            "missing:$.name": "GDPR-era field, empty in the example; Cloud no longer sends it",
            "extra:$.expand": "real /myself sends expand (groups,applicationRoles)",
            "extra:$.locale": "real /myself sends the user's locale",
        },
    )


def test_field_catalogue(sim: Simulator) -> None:
    fields = get(sim, "/rest/api/3/field")
    assert_same_shape(
        [f for f in fields if not f["custom"]],
        example("jira", "fields.json"),
        {"extra:$[].schema.items": "array fields (labels, fixVersions…) name their item type"},
    )
    dc_custom = [f for f in get(sim, "/rest/api/2/field", dc=True) if f["custom"]]
    assert_same_shape(
        merge_samples(dc_custom),
        merge_samples(devlake_rows("jira", "_raw_jira_api_issue_fields")),
        {"extra:$.schema.items": "the Sprint field is an array; the recorded ones are not"},
    )


def test_statuses(sim: Simulator) -> None:
    assert_same_shape(
        merge_samples(get(sim, "/rest/api/2/status")),
        merge_samples(devlake_rows("jira", "_raw_jira_api_status")),
        {"missing:$.scope": "only team-managed projects' statuses have a scope; ours are global"},
    )


def test_issue_link_types(sim: Simulator) -> None:
    assert_same_shape(get(sim, "/rest/api/3/issueLinkType"), example("jira", "issuelinktypes.json"))


def test_project_search(sim: Simulator) -> None:
    assert_same_shape(
        get(sim, "/rest/api/3/project/search", maxResults=1, expand="insight"),
        example("jira", "project-search.json"),
        {
            "missing:$.values[].projectCategory": "no project categories on the simulated site",
            "extra:$.values[].expand": "real project objects carry expand",
            "extra:$.values[].isPrivate": "real project objects carry isPrivate",
            "extra:$.values[].projectTypeKey": "real project objects carry projectTypeKey",
            "extra:$.values[].properties": "real project objects carry properties",
        },
    )


VERSION_EXTRAS = {
    "extra:*.startDate": "set on our versions; the example's have no start date",
    "extra:*.userStartDate": "comes with startDate",
    "missing:*.issuesStatusForFixVersion": "only with expand=issuesstatus; " + NOT_SERVED,
}


def test_project_versions(sim: Simulator) -> None:
    key = key_of(sim.org)
    assert_same_shape(
        get(sim, f"/rest/api/3/project/{key}/versions"),
        example("jira", "project-versions.json"),
        {
            **VERSION_EXTRAS,
            "type:$[].releaseDate": "README quirk: this example has epoch ms; real (and the "
            "paginated example) is yyyy-MM-dd",
            "missing:$[].releaseDateSet": "only in this hand-written example (not in the "
            "paginated one)",
            "missing:$[].startDateSet": "only in this hand-written example (not in the "
            "paginated one)",
        },
    )
    assert_same_shape(
        get(sim, f"/rest/api/3/project/{key}/version", maxResults=2),
        example("jira", "project-version-paginated.json"),
        VERSION_EXTRAS,
    )


# --- issues ---------------------------------------------------------------------------


def test_enhanced_search(sim: Simulator) -> None:
    page = get(
        sim,
        "/rest/api/3/search/jql",
        jql=f"project = {key_of(sim.org)}",
        fields="*all",
        expand="changelog",
        maxResults=100,
    )
    assert_same_shape(
        page,
        example("jira", "search-jql.json"),
        example_issue_allow(
            "$.issues[]",
            **{
                "type:$.issues[].fields.description": "README quirk: v3 sends ADF JSON; the "
                "example shows a string",
                "extra:$.nextPageToken": "the example is a last page",
                "extra:$.issues[].changelog": "the example was made without expand=changelog",
                "missing:$.issues[].fields.attachment": NOT_SERVED,
            },
        ),
    )


def test_issue(sim: Simulator) -> None:
    item = rich_item(sim.org)
    assert_same_shape(
        get(sim, f"/rest/api/3/issue/{item.key}"),
        example("jira", "issue.json"),
        example_issue_allow(
            "$",
            **{
                "extra:$.expand": "real issues carry expand (see the recorded payloads)",
                "missing:$.fields.attachment": NOT_SERVED,
            },
        ),
    )


def test_dc_search(sim: Simulator) -> None:
    page = get(
        sim,
        "/rest/api/2/search",
        dc=True,
        jql=f"project = {key_of(sim.org)}",
        maxResults=100,
        expand="changelog",
    )
    assert_same_shape(
        page,
        example("jira", "search-legacy-startat.json"),
        example_issue_allow(
            "$.issues[]",
            **{
                "type:$.issues[].fields.description": "DC speaks v2: plain text (the example "
                "is the Cloud v3 operation)",
                "missing:$.issues[].fields.project.simplified": "team-managed projects are "
                "Cloud only; Server/DC projects have no `simplified` (recorded Server payload)",
                "missing:$.issues[].fields.attachment": NOT_SERVED,
                "missing:$.warningMessages": "only sent when the JQL has warnings",
                "extra:$.issues[].changelog": "the example was made without expand=changelog",
            },
        ),
    )


def test_cloud_issues_match_recorded_payloads(sim: Simulator) -> None:
    """DevLake recorded Cloud issues through the Agile API with expand=changelog."""
    page = get(
        sim,
        f"/rest/agile/1.0/board/{board_id(sim)}/issue",
        expand="changelog",
        maxResults=100,
    )
    assert_same_shape(
        merge_samples(page["issues"]),
        merge_samples(devlake_rows("jira", "_raw_jira_api_issues")),
        {
            "missing:$.fields.customfield_*": SITE_FIELDS
            + " (their story points are customfield_10024)",
            "extra:$.fields.customfield_10026": "the classic 'Story Points' field; the "
            "recorded site has it under another id",
            "missing:*.emailAddress": EMAIL,
            "missing:$.fields.attachment": NOT_SERVED,
            "missing:$.fields.comment": NOT_SERVED,
            "missing:$.changelog.histories[].historyMetadata": "set by automation on some "
            "histories; " + NOT_SERVED,
            "missing:$.changelog.histories[].items[].tmp*AccountId": "only on assignee "
            "changes, which the simulator does not log",
        },
    )


def test_dc_issues_match_recorded_server_payloads(sim: Simulator) -> None:
    """DevLake recorded a Jira Server's issues (with issue links) through the Agile API."""
    page = get(
        sim,
        "/rest/api/2/search",
        dc=True,
        jql=f"project = {key_of(sim.org)}",
        maxResults=200,
        expand="changelog",
    )
    assert_same_shape(
        merge_samples(page["issues"]),
        merge_samples(devlake_rows("jira", "_raw_jira_api_issue_relationships")),
        {
            "missing:$.fields.customfield_*": SITE_FIELDS,
            "extra:$.fields.customfield_*": "the recorded Server has no agile fields "
            "configured; ours has Story Points, Sprint and Epic Link",
            "missing:$.fields.attachment": NOT_SERVED,
            "missing:$.fields.comment": NOT_SERVED,
            "missing:$.fields.flagged": "recorded through the Agile API, which adds `flagged`; "
            "the simulator's Agile issue endpoints serve it too",
            "extra:$.changelog.histories[].items[].fieldId": "the recorded changelog holds "
            "only Link entries, which carry no fieldId on any deployment",
            "extra:$.fields.parent": "on DC only sub-tasks have a parent; the recorded "
            "project has no sub-tasks",
            "extra:$.fields.*progress.percent": "sent with a non-zero total; the recorded "
            "issues have no estimates",
            "extra:$.fields.timetracking.*": "the recorded issues have no estimates or "
            "logged time (timetracking is {})",
        },
    )


# --- changelogs -----------------------------------------------------------------------


def test_issue_changelog(sim: Simulator) -> None:
    item = rich_item(sim.org)
    page = get(sim, f"/rest/api/3/issue/{item.key}/changelog", maxResults=2)
    assert_same_shape(
        page,
        example("jira", "issue-changelog.json"),
        {
            "missing:$.values[].author.emailAddress": EMAIL,
            "extra:$.values[].author.accountType": TRIMMED_USER,
        },
    )
    full = get(sim, f"/rest/api/3/issue/{item.key}/changelog")
    assert_same_shape(
        merge_samples(full["values"]),
        merge_samples(devlake_rows("jira", "_raw_jira_api_issue_changelogs")),
        {"missing:$.author.emailAddress": EMAIL},
    )


def test_changelog_bulkfetch(sim: Simulator) -> None:
    ids = [str(i.id) for i in sim.org.scope_items(key_of(sim.org))]
    body = post(sim, "/rest/api/3/changelog/bulkfetch", {"issueIdsOrKeys": ids, "maxResults": 50})
    assert_same_shape(
        body,
        example("jira", "changelog-bulkfetch.json"),
        {
            "type:$.issueChangeLogs[].changeHistories[].created": "README quirk: the "
            "example has epoch seconds; the simulator sends Jira's timestamp string",
            "missing:$.issueChangeLogs[].changeHistories[].author.emailAddress": EMAIL,
            "extra:$.issueChangeLogs[].changeHistories[].author.accountType": TRIMMED_USER,
            "extra:$.issueChangeLogs[].changeHistories[].items[].from": "the example's items "
            "are trimmed; changelog items carry from/to (see /issue/{key}/changelog)",
            "extra:$.issueChangeLogs[].changeHistories[].items[].to": "the example's items "
            "are trimmed; changelog items carry from/to (see /issue/{key}/changelog)",
        },
    )


# --- worklogs -------------------------------------------------------------------------

WORKLOG_USER = {
    **{
        f"extra:*.{who}.{key}": TRIMMED_USER
        for who in ("author", "updateAuthor")
        for key in ("accountType", "avatarUrls", "timeZone")
    },
    "extra:*.created": "real worklogs carry created (see the recorded payloads)",
    "missing:*.visibility": "only restricted worklogs have visibility; ours are public",
}


def test_issue_worklogs(sim: Simulator) -> None:
    item = rich_item(sim.org)
    assert_same_shape(
        get(sim, f"/rest/api/3/issue/{item.key}/worklog"),
        example("jira", "issue-worklog.json"),
        WORKLOG_USER,
    )
    assert_same_shape(
        merge_samples(get(sim, f"/rest/api/2/issue/{item.key}/worklog")["worklogs"]),
        merge_samples(devlake_rows("jira", "_raw_jira_api_worklogs")),
        {"missing:$.author.emailAddress": EMAIL, "missing:$.updateAuthor.emailAddress": EMAIL},
    )


def test_worklog_feeds_and_list(sim: Simulator) -> None:
    updated = get(sim, "/rest/api/3/worklog/updated", since=0)
    assert_same_shape(updated, example("jira", "worklog-updated.json"))
    deleted = get(sim, "/rest/api/3/worklog/deleted", since=0)
    # nothing is deleted yet: compare the page itself
    assert_same_shape(deleted, example("jira", "worklog-deleted.json"))
    ids = [v["worklogId"] for v in updated["values"][:5]]
    assert_same_shape(
        post(sim, "/rest/api/3/worklog/list", {"ids": ids}),
        example("jira", "worklog-list.json"),
        WORKLOG_USER,
    )


# --- agile ----------------------------------------------------------------------------


def test_boards(sim: Simulator) -> None:
    assert_same_shape(
        get(sim, "/rest/agile/1.0/board"),
        example("jira", "agile-boards.json"),
        {"extra:$.values[].location": "project boards carry their location; the example's not"},
    )


def test_sprints(sim: Simulator) -> None:
    page = get(sim, f"/rest/agile/1.0/board/{board_id(sim)}/sprint")
    assert_same_shape(page, example("jira", "agile-board-sprints.json"))
    assert_same_shape(
        merge_samples(page["values"]), merge_samples(devlake_rows("jira", "_raw_jira_api_sprints"))
    )
    one = get(sim, f"/rest/agile/1.0/sprint/{page['values'][0]['id']}")
    assert_same_shape(one, example("jira", "agile-sprint.json"))


AGILE_ISSUE = {
    "extra:$.issues[].changelog": "the example was made without expand=changelog",
    "extra:$.issues[].fields.closedSprints[].originBoardId": "real closed sprints carry "
    "originBoardId (see the recorded payloads)",
    "extra:$.issues[].fields.epic.key": "the real epic object has a key",
}


def test_board_issues(sim: Simulator) -> None:
    page = get(
        sim, f"/rest/agile/1.0/board/{board_id(sim)}/issue", expand="changelog", maxResults=100
    )
    assert_same_shape(
        page,
        example("jira", "agile-board-issues.json"),
        example_issue_allow("$.issues[]", platform=False, **AGILE_ISSUE),
    )


def test_sprint_issues(sim: Simulator) -> None:
    """README quirk: this example is a bare issue, not the {startAt,…,issues} page (the
    page shape is the board-issue one, checked above), so compare one issue with it."""
    org = sim.org
    sprint = org.current_sprint(rich_item(org))
    assert sprint is not None
    page = get(sim, f"/rest/agile/1.0/sprint/{sprint.native_id}/issue", maxResults=100)
    assert set(page) == set(example("jira", "agile-board-issues.json"))
    allow = {k: v for k, v in AGILE_ISSUE.items() if "changelog" not in k}
    assert_same_shape(
        {"issues": page["issues"]},
        {"issues": [example("jira", "agile-sprint-issues.json")]},
        example_issue_allow("$.issues[]", platform=False, **allow),
    )


# --- error bodies ---------------------------------------------------------------------


def test_error_bodies(sim: Simulator) -> None:
    key = key_of(sim.org)
    assert_same_shape(
        get(sim, f"/rest/api/3/issue/{key}-999999"), example("jira", "error-404-issue.json")
    )
    assert_same_shape(
        get(sim, "/rest/api/3/search"), example("jira", "error-410-search-removed.json")
    )
    assert_same_shape(
        get(sim, "/rest/api/3/search/jql", jql="project ="),
        example("jira", "error-400-fields-search.json"),
    )


# --- the checker itself ---------------------------------------------------------------


def test_shape_checker_reports_each_kind_and_rejects_stale_allow_entries() -> None:
    sim = {"a": 1, "b": [{"x": "s"}], "n": None, "extra": True}
    real = {"a": "1", "b": [{"x": "t", "y": 2}, {"z": None}], "n": {"deep": 1}, "gone": []}
    with pytest.raises(AssertionError) as failed:
        assert_same_shape(sim, real)
    text = str(failed.value)
    assert "type: $.a (simulator number, real string)" in text
    assert "missing: $.b[].y (real number)" in text and "missing: $.b[].z" in text
    assert "extra: $.extra (simulator boolean)" in text and "missing: $.gone" in text
    assert "$.n" not in text  # null matches any type
    allow = {
        "type:$.a": "why",
        "missing:$.b[].*": "why",
        "extra:$.extra": "why",
        "missing:$.gone": "why",
    }
    assert_same_shape(sim, real, allow)
    with pytest.raises(AssertionError, match="matched nothing"):
        assert_same_shape(sim, real, {**allow, "type:$.nowhere": "stale"})
    with pytest.raises(AssertionError, match="need a reason"):
        assert_same_shape(sim, real, {**allow, "type:$.a": " "})
    wrong_kind = {k: v for k, v in allow.items() if k != "type:$.a"} | {"extra:$.a": "no"}
    with pytest.raises(AssertionError, match=r"type: \$\.a"):
        assert_same_shape(sim, real, wrong_kind, allow_unused=True)
