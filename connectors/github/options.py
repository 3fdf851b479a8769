"""``[sources.options]`` of a ``kind = "github"`` source, validated at config load.

Every key has a default that works on a plain repository (no Projects): types come from
issue types or labels, points from ``points:N`` / ``sp:N`` / ``N pts`` labels. Projects v2
(``projects``) add points, status and iterations (sprints) from their fields. Maps are merged
over the defaults of programview.normalize; names match case-insensitively.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from programview.normalize import TypeCategory, TypeMapOptions
from programview.sync.connector import ConnectorOptions

_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*/\d+$")

#: Number fields ``points_field = "auto"`` looks for, in this order.
AUTO_POINTS_FIELDS = ("estimate", "story points", "points", "size")
#: Date fields read as the item's due date, in this order (there is no built-in one).
AUTO_DUE_FIELDS = ("target date", "due date", "due")


class GitHubOptions(ConnectorOptions, TypeMapOptions):
    #: Projects v2 to read fields from, as ``"OWNER/NUMBER"`` (organisation or user owner).
    projects: list[str] = Field(default_factory=list)
    #: The Projects number field with story points: a field name, or ``"auto"`` (the first
    #: of Estimate, Story Points, Points, Size). Without it points come from labels.
    points_field: str = "auto"
    #: The Projects iteration field whose iterations are sprints (``"auto"``: the first one).
    iteration_field: str = "auto"
    #: The Projects single-select field with the board status.
    status_field: str = "Status"
    #: Status values or label names that mean in progress for an open issue.
    in_progress: list[str] = Field(default_factory=lambda: ["In progress", "In review"])
    #: Full scans of a project's items (to see board moves that do not touch the issue) are
    #: skipped while the project reports no change, but happen at least this often.
    project_rescan_hours: float = Field(6.0, ge=0)
    #: And at most this often when it does change (0: every sync that sees a change). A
    #: board pass costs a GraphQL page per 100 issues; on a busy large project, e.g. 60
    #: spreads them out, at the price of seeing card moves (and iteration changes) later.
    board_pass_minutes: float = Field(0.0, ge=0)
    #: Allow the periodic deletion reconcile (a listing of each repository's issue numbers).
    reconcile: bool = True

    @field_validator("projects")
    @classmethod
    def _projects(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _PROJECT.match(value):
                raise ValueError(
                    f'{value!r} must be "OWNER/NUMBER", e.g. "acme/7" (the number is in the '
                    "project's URL: github.com/orgs/acme/projects/7)"
                )
        return values

    # type_map (TypeMapOptions): extra issue type or label names -> category, merged over the
    # defaults (issue types Bug/Feature/Task/Epic/Incident; labels bug, defect, enhancement…).

    def issue_types(self) -> dict[str, TypeCategory]:
        """Issue type name -> category (GitHub's types: Bug, Feature, Task, Epic, Incident)."""
        return self.type_categories()

    def label_types(self) -> dict[str, TypeCategory]:
        return self.label_categories()

    def in_progress_names(self) -> frozenset[str]:
        return frozenset(v.strip().lower() for v in self.in_progress)
