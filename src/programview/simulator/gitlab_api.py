"""GitLab REST v4 (``/gitlab/api/v4``) endpoints of the simulator.

Stub with one example endpoint showing the pattern; the GitLab endpoint author extends
it (groups, projects, issues with ``updated_after`` and x-page/Link paging, milestones,
iterations, releases, links, resource events…).
"""

from __future__ import annotations

from typing import Any

from programview.simulator.app import GITLAB, Ctx, Router, gitlab_time


def register(router: Router) -> None:
    """Add the GitLab routes to the simulator."""

    @router.get(GITLAB, "/api/v4/user")
    def user(ctx: Ctx) -> dict[str, Any]:
        person = ctx.user
        return {
            "id": 1 + person.id,
            "username": person.login,
            "name": person.name,
            "state": "active",
            "email": person.email,
            "web_url": f"{ctx.base_url}/{person.login}",
            "created_at": gitlab_time(ctx.org.now.replace(year=2020)),
        }
