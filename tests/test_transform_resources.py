"""Shared people: identities joined across tools (configured aliases, e-mail), each person's
load per project and week (``v_resource_load``), and the ``shared_resource_contention`` rule
through the alert lifecycle and webhook. Hand-built: program DIGITAL has PAY (Jira) and WEB
(GitHub), both with an active sprint; OPS has INFRA (GitLab). Today is Wednesday 2024-03-13,
so the week is Monday 2024-03-11."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from test_transform_support import Scenario, db_id

from programview.alerts_webhook import deliver_alert_events
from programview.config import PersonConfig, parse_config
from programview.errors import ConfigError
from programview.transform.people import People, PersonRow

AS_OF = "2024-03-13 12:00"
HOOK = "https://hooks.example.com/services/T0/B0/xyz"

RULE = "shared_resource_contention"
ADA = '[[people]]\nname = "Ada Okafor"\naliases = ["github:ada-o"]\n'


def config(alerts: str = "", people: str = ADA) -> Any:
    """The scenario's config: the webhook, extra ``[alerts]`` keys, the ``[[people]]``."""
    text = f'[alerts]\nwebhook_url = "${{HOOK}}"\n{alerts}\n{people}'
    return parse_config(text, environ={"HOOK": HOOK})


def person(s: Scenario, pid: str, *, name: str | None, email: str | None = None, login=None):  # type: ignore[no-untyped-def]
    source, native = pid.split(":", 1)
    s._pending["people"].append(
        {
            "id": pid,
            "source_name": source,
            "native_id": native,
            "display_name": name,
            "email": email,
            "login": login,
        }
    )


def assign(s: Scenario, item_id: str, assignee_id: str | None, name: str | None) -> None:
    s.flush()
    s.update("work_items", {"id": item_id}, assignee_id=assignee_id, assignee=name)


def build(engine, web_sprint: str = "active") -> Scenario:  # type: ignore[no-untyped-def]
    s = Scenario(engine, config())
    s.source().source("github", "github").source("gitlab", "gitlab")
    s.program("DIGITAL").program("OPS")
    s.project("PAY", program="DIGITAL")
    s.project("WEB", program="DIGITAL", scopes=[("github", "acme/web")])
    s.project("INFRA", program="OPS", scopes=[("gitlab", "acme/infra")])
    s.sprint("PAY-S", scope="PAY", state="active", start="2024-03-04", end="2024-03-18")
    s.sprint(
        "WEB-S",
        scope="acme/web",
        source="github",
        state=web_sprint,
        start="2024-03-04" if web_sprint == "active" else "2024-03-18",
        end="2024-03-18" if web_sprint == "active" else "2024-04-01",
    )
    person(s, "jira:acc-ada", name="Ada Okafor")
    person(s, "github:583231", name=None, login="ada-o")
    person(s, "jira:JIRAUSER7", name="Ben Berg", email="ben@acme.example", login="bberg")
    person(s, "gitlab:77", name="Ben B.", email="BEN@acme.example", login="ben")
    person(s, "jira:acc-cy", name="Cy Dubois")

    def item(key: str, scope: str, source: str, status: str, points: float | None = None) -> str:
        return s.item(key, scope=scope, source=source, status=status, points=points)

    # Ada: 2 in progress in PAY (one in the sprint), 2 in WEB (one in the sprint, plus a
    # to-do item in the sprint); an in-progress epic and a deleted item do not count.
    pay1 = item("PAY-1", "PAY", "jira", "in_progress", 3)
    pay2 = item("PAY-2", "PAY", "jira", "in_progress", 2)
    web1 = item("acme/web#1", "acme/web", "github", "in_progress", 5)
    web2 = item("acme/web#2", "acme/web", "github", "in_progress")
    web3 = item("acme/web#3", "acme/web", "github", "todo", 2)
    epic = s.item("PAY-9", type="epic", status="in_progress", points=40)
    gone = s.item("PAY-8", status="in_progress", deleted=True)
    s.member("PAY-S", pay1)
    s.member("WEB-S", web1)
    s.member("WEB-S", web3)
    # Ben: one in PAY (Jira DC account), one in INFRA (GitLab) of another program
    pay3 = item("PAY-3", "PAY", "jira", "in_progress", 8)
    infra1 = item("acme/infra#1", "acme/infra", "gitlab", "in_progress", 1)
    # Cy: four in progress, all in PAY: one project, no contention
    cys = [item(f"PAY-{n}", "PAY", "jira", "in_progress") for n in (4, 5, 6, 7)]
    # Dee: a connector that gives only the assignee's name
    web4 = item("acme/web#4", "acme/web", "github", "in_progress")
    for item_id in (pay1, pay2, epic, gone):
        assign(s, item_id, "jira:acc-ada", "Ada Okafor")
    for item_id in (web1, web2, web3):
        assign(s, item_id, "github:583231", "ada-o")
    assign(s, pay3, "jira:JIRAUSER7", "Ben Berg")
    assign(s, infra1, "gitlab:77", "Ben B.")
    for item_id in cys:
        assign(s, item_id, "jira:acc-cy", "Cy Dubois")
    assign(s, web4, None, "Dee")
    return s


def load(s: Scenario) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["person"], r["project_key"]): r for r in s.all("SELECT * FROM v_resource_load")}


def contention(s: Scenario, status: str | None = None) -> list[dict[str, Any]]:
    rows = s.rows("dependency_alerts", rule="shared_resource_contention")
    return [r for r in rows if status is None or r["status"] == status]


def test_load_per_person_project_and_week(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    got = load(s)
    assert set(got) == {
        ("Ada Okafor", "PAY"),
        ("Ada Okafor", "WEB"),
        ("Ben Berg", "PAY"),
        ("Ben Berg", "INFRA"),
        ("Cy Dubois", "PAY"),
        ("Dee", "WEB"),
    }
    ada_pay, ada_web = got[("Ada Okafor", "PAY")], got[("Ada Okafor", "WEB")]
    assert (ada_pay["in_progress_items"], ada_pay["active_sprint_items"]) == (2, 1)
    assert ada_pay["active_sprint_points"] == 3
    # a to-do item in the active sprint is load too; an unestimated one counts 0 points
    assert (ada_web["in_progress_items"], ada_web["active_sprint_items"]) == (2, 2)
    assert ada_web["active_sprint_points"] == 7
    # the GitHub login was joined to the Jira account by the configured alias
    assert ada_pay["person_id"] == ada_web["person_id"] == "Ada Okafor"
    assert ada_pay["matched_by"] == "alias"
    assert ada_pay["program_in_progress_items"] == 4
    assert ada_pay["program_projects_in_progress"] == 2
    assert str(ada_pay["week"])[:10] == "2024-03-11"
    # e-mail joins Ben's Jira Data Center and GitLab accounts (case does not matter)
    ben = got[("Ben Berg", "INFRA")]
    assert ben["person_id"] == "email:ben@acme.example" and ben["matched_by"] == "email"
    assert got[("Ben Berg", "PAY")]["program_in_progress_items"] == 1  # per program
    assert got[("Cy Dubois", "PAY")]["matched_by"] == "account"
    assert got[("Cy Dubois", "PAY")]["person_id"] == "jira:acc-cy"
    assert got[("Dee", "WEB")]["matched_by"] == "name"
    assert got[("Dee", "WEB")]["person_id"] == "github:name:Dee"


def test_a_rerun_in_the_same_week_replaces_the_week(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.run(AS_OF)
    s.update("work_items", {"id": db_id("jira", "PAY-2")}, status_category="done")
    s.run("2024-03-15 09:00")  # Friday, same week
    s.run("2024-03-19 09:00")  # the next week: a row of its own
    rows = s.all(
        "SELECT week, in_progress_items FROM v_resource_load "
        "WHERE person = 'Ada Okafor' AND project_key = 'PAY' ORDER BY week"
    )
    assert [(str(r["week"])[:10], r["in_progress_items"]) for r in rows] == [
        ("2024-03-11", 1),
        ("2024-03-18", 1),
    ]


def test_contention_opens_keeps_its_id_and_resolves(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    first = s.run(AS_OF)
    (alert,) = contention(s)
    assert alert["status"] == "open" and alert["severity"] == "medium"
    assert alert["program_key"] == "DIGITAL" and alert["person"] == "Ada Okafor"
    assert alert["message"] == (
        "Ada Okafor has 4 items in progress across PAY (2) and WEB (2) of DIGITAL, which all "
        "have active sprints: above the WIP limit of 3."
    )
    assert first.alerts_opened == 1
    view = s.one("SELECT * FROM v_dependency_alerts WHERE rule = 'shared_resource_contention'")
    assert view["person"] == "Ada Okafor" and view["blocked_item_key"] is None
    # not a dependency: the projects' dependencies component still scores 100
    assert s.project_metrics("PAY")["dependencies_score"] == 100

    s.run("2024-03-14 12:00")
    (same,) = contention(s)
    assert same["id"] == alert["id"] and same["status"] == "open"

    # one of Ada's WEB items is done: 3 in progress, not above the limit of 3
    s.update("work_items", {"id": db_id("github", "acme/web#2")}, status_category="done")
    result = s.run("2024-03-15 12:00")
    (resolved,) = contention(s)
    assert resolved["id"] == alert["id"] and resolved["status"] == "resolved"
    assert result.alerts_resolved == 1
    events = [(e["alert_id"], e["event"]) for e in s.rows("alert_events")]
    assert events == [(alert["id"], "open"), (alert["id"], "resolve")]

    # stretched again later: a new alert
    s.update("work_items", {"id": db_id("github", "acme/web#2")}, status_category="in_progress")
    s.run("2024-03-16 12:00")
    assert len(contention(s, "open")) == 1 and contention(s, "open")[0]["id"] != alert["id"]


def test_both_projects_need_an_active_sprint(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine, web_sprint="future")
    s.run(AS_OF)
    assert contention(s) == []
    assert load(s)[("Ada Okafor", "WEB")]["project_sprint_active"] in (False, 0)


def test_the_limit_is_per_person_severity_configurable_rule_switchable(engine) -> None:  # type: ignore[no-untyped-def]
    s = build(engine)
    s.config = config(people=ADA + "wip_limit = 4\n")
    s.run(AS_OF)
    assert contention(s) == []  # 4 in progress is not above Ada's own limit of 4
    s.config = config(
        alerts="wip_limit = 2\n[alerts.severity]\nshared_resource_contention = 'high'"
    )
    s.run("2024-03-14 12:00")
    assert [a["severity"] for a in contention(s, "open")] == ["high"]
    s.config = config(alerts=f"disabled_rules = ['{RULE}']")
    s.run("2024-03-15 12:00")
    assert contention(s, "open") == []


def test_webhook_announces_open_and_resolve_once(engine) -> None:  # type: ignore[no-untyped-def]
    posts: list[dict[str, Any]] = []

    def hook(request: httpx.Request) -> httpx.Response:
        posts.append(json.loads(request.content))
        return httpx.Response(200, text="ok")

    transport = httpx.MockTransport(hook)
    s = build(engine)
    s.run(AS_OF)
    assert deliver_alert_events(engine, s.config, transport=transport) == 1
    assert posts[0]["text"] == (
        "[DIGITAL] MEDIUM alert: Ada Okafor is stretched across projects "
        "(shared_resource_contention)"
    )
    assert "4 items in progress across PAY (2) and WEB (2)" in json.dumps(posts[0]["blocks"])
    assert deliver_alert_events(engine, s.config, transport=transport) == 0  # once
    s.update("work_items", {"id": db_id("jira", "PAY-2")}, status_category="done")
    s.run("2024-03-14 12:00")
    assert deliver_alert_events(engine, s.config, transport=transport) == 1
    assert posts[1]["text"].startswith("[DIGITAL] Resolved: Ada Okafor is no longer stretched")


# --- matching identities (pure) ----------------------------------------------------------------


def row(pid: str, name: str | None = None, email: str | None = None, login=None) -> PersonRow:  # type: ignore[no-untyped-def]
    source, native = pid.split(":", 1)
    return PersonRow(pid, source, native, name, email, login)


def test_matching_rules_in_order() -> None:
    entries = [
        PersonConfig(name="Ada Okafor", emails=["ada@acme.example"], aliases=["ada-o"]),
        PersonConfig(name="Sam Lee", aliases=["jira:acc-sam2"], wip_limit=2),
    ]
    people = People(
        [
            row("jira:acc-ada", "A. Okafor", email="ADA@acme.example"),
            row("github:1", login="ada-o"),
            row("gitlab:9", "Ada", login="ada-o"),
            row("jira:acc-sam1", "Sam Lee"),  # the configured name matches the display name
            row("jira:acc-sam2", "Samuel Lee"),
            row("github:2", "Sam Lee"),
            row("jira:acc-x", "Xu", email="xu@acme.example"),
            row("gitlab:3", "Xu Wei", email="Xu@Acme.example"),
            row("jira:acc-y", "Yara"),
        ],
        entries,
    )
    of = {pid: people.of_row(people.rows[pid]) for pid in people.rows}
    assert {of[p].person_id for p in ("jira:acc-ada", "github:1", "gitlab:9")} == {"Ada Okafor"}
    assert of["jira:acc-ada"].email == "ada@acme.example"
    assert of["jira:acc-sam2"].person_id == "Sam Lee" and of["jira:acc-sam2"].wip_limit == 2
    assert of["github:2"].person_id == "Sam Lee"  # display name equals the configured name
    assert of["jira:acc-x"].person_id == of["gitlab:3"].person_id == "email:xu@acme.example"
    assert of["jira:acc-x"].person == of["gitlab:3"].person == "Xu Wei"  # the fullest name
    assert of["jira:acc-y"].person_id == "jira:acc-y" and of["jira:acc-y"].matched_by == "account"
    # an assignee given by name only: the people row of that name in the source, else itself
    assert people.of_assignee("jira", None, "Yara").person_id == "jira:acc-y"
    assert people.of_assignee("github", None, "ada-o").person_id == "Ada Okafor"
    assert people.of_assignee("github", None, "Quinn").person_id == "github:name:Quinn"


def test_two_tool_accounts_with_one_name_stay_two_people() -> None:
    people = People([row("jira:acc-1", "Sam Lee"), row("github:5", "Sam Lee")], [])
    a = people.of_row(people.rows["jira:acc-1"])
    b = people.of_row(people.rows["github:5"])
    assert a.person_id != b.person_id and a.person == b.person == "Sam Lee"


def test_one_identity_may_belong_to_one_person_only() -> None:
    text = """
[[people]]
name = "Ada"
aliases = ["ada-o"]

[[people]]
name = "Bea"
emails = ["bea@acme.example"]
aliases = ["ADA-O"]
"""
    with pytest.raises(ConfigError, match=r"people\[1\] \(line 6\): 'ada-o' already identifies"):
        parse_config(text, environ={})


def test_jira_assignees_carry_their_people_row() -> None:
    """The Jira mapping gives every work item its assignee's people id, and people rows the
    e-mail and login where the payload has them (Data Center), without blanking them where it
    does not (Cloud hides e-mails)."""
    from programview_connectors.jira.mapping import FieldChoice, JiraSettings, map_issue
    from programview_connectors.jira.options import JiraOptions

    settings = JiraSettings.build("jira", "https://j", JiraOptions(), FieldChoice())
    issue: dict[str, Any] = {
        "id": "1",
        "key": "PAY-1",
        "fields": {
            "status": {
                "id": "3",
                "name": "In Progress",
                "statusCategory": {"key": "indeterminate"},
            },
            "issuetype": {"name": "Story"},
            "assignee": {
                "key": "JIRAUSER7",
                "name": "bberg",
                "emailAddress": "ben@acme.example",
                "displayName": "Ben Berg",
            },
            "reporter": {"accountId": "acc-1", "displayName": "Cloud User"},
        },
    }
    out = map_issue(issue, "PAY", settings)
    (item,) = [r.values for r in out if getattr(r, "table", "") == "work_items"]
    assert item["assignee_id"] == "jira:JIRAUSER7" and item["assignee"] == "Ben Berg"
    people = {r.values["id"]: r.values for r in out if getattr(r, "table", "") == "people"}
    assert people["jira:JIRAUSER7"]["email"] == "ben@acme.example"
    assert people["jira:JIRAUSER7"]["login"] == "bberg"
    assert "email" not in people["jira:acc-1"] and "login" not in people["jira:acc-1"]


def test_jira_assignee_ids_agree_with_devlake_issue_assignees() -> None:
    from test_jira_mapping import _board8_issues, _csv, _devlake_id, _records

    mapped = _board8_issues()
    expected = {
        _devlake_id(r["issue_id"]): r["assignee_id"].rsplit(":", 1)[1]
        for r in _csv("snapshot_tables/issue_assignees.csv")
    }
    for native, out in mapped.items():
        (item,) = _records(out, "work_items")
        if native in expected:
            assert item["assignee_id"] == f"jira:{expected[native]}", item["item_key"]
            ids = {p["id"] for p in _records(out, "people")}
            assert item["assignee_id"] in ids  # its people row comes with it
        else:
            assert item["assignee_id"] is None, item["item_key"]
