"""GitHub REST (``/github``) and GraphQL (``/github/graphql``) endpoints of the simulator.

Stub with one example endpoint showing the pattern; the GitHub endpoint author extends
it (issues with Link paging and ``since``, milestones, releases, events, sub-issues,
dependencies, Projects v2 GraphQL…).
"""

from __future__ import annotations

from starlette.responses import Response

from programview.simulator.app import GITHUB, Ctx, Router, github_time


def register(router: Router) -> None:
    """Add the GitHub routes to the simulator."""

    @router.get(GITHUB, "/user")
    def user(ctx: Ctx) -> Response:
        person = ctx.user
        org = ctx.org
        body = {
            "login": person.login,
            "id": 1 + person.id,
            "node_id": f"MDQ6VXNlcj{1 + person.id}",
            "type": "User",
            "site_admin": False,
            "name": person.name,
            "email": person.email,
            "url": ctx.url(f"/users/{person.login}"),
            "created_at": github_time(org.now.replace(year=2020)),
            "updated_at": github_time(org.now),
        }
        return ctx.json(body, etag=True)  # conditional requests: If-None-Match -> 304
