"""Jira Cloud (``/jira``) and Data Center (``/jira-dc``) endpoints of the simulator.

Stub with one example endpoint showing the pattern; the Jira endpoint author extends
it (search/jql, field, changelog, worklogs, versions, agile boards and sprints…).
"""

from __future__ import annotations

from typing import Any

from programview.simulator.app import JIRA, JIRA_DC, Ctx, Router


def register(router: Router) -> None:
    """Add the Jira routes to the simulator."""

    @router.get(JIRA, "/rest/api/3/myself")
    @router.get(JIRA_DC, "/rest/api/2/myself")
    def myself(ctx: Ctx) -> dict[str, Any]:
        person = ctx.user
        version = "3" if ctx.api == JIRA else "2"
        body: dict[str, Any] = {
            "self": ctx.url(f"/rest/api/{version}/user", accountId=person.account_id),
            "accountId": person.account_id,
            "accountType": "atlassian",
            "emailAddress": person.email,
            "displayName": person.name,
            "active": True,
            "timeZone": ctx.org.jira_user_timezone,
            "locale": "en_GB",
            "groups": {"size": 1, "items": []},
            "applicationRoles": {"size": 1, "items": []},
        }
        if ctx.api == JIRA_DC:  # DC identifies users by name/key, not accountId
            del body["accountId"], body["accountType"]
            body.update(
                name=person.login,
                key=f"JIRAUSER{10000 + person.id}",
                self=ctx.url("/rest/api/2/user", username=person.login),
            )
        return body
