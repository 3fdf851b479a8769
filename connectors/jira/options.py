"""``[sources.options]`` of a ``kind = "jira"`` source, validated at config load.

Every key has a default that works on a stock Jira; the maps are *merged over* the defaults
(a user entry for ``"Story"`` replaces the default for ``"Story"``, everything else stays), so a
config only lists what differs. Names are matched case-insensitively.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from programview.normalize import (
    DEFAULT_LINK_KINDS,
    DEFAULT_TYPE_NAMES,
    LinkKind,
    StatusCategory,
    TypeCategory,
    TypeMapOptions,
    merged_map,
)
from programview.sync.connector import ConnectorOptions

#: Issue type name (lower case) -> type category; see programview.normalize.
DEFAULT_TYPE_MAP: dict[str, TypeCategory] = DEFAULT_TYPE_NAMES

#: Issue link type name (lower case) -> dependency kind (Jira's default link types).
DEFAULT_LINK_TYPES: dict[str, LinkKind] = {
    name: DEFAULT_LINK_KINDS[name] for name in ("blocks", "relates", "duplicate", "cloners")
}

_CUSTOM_FIELD = re.compile(r"^customfield_\d+$")


def _field_choice(value: str, key: str) -> str:
    if value != "auto" and not _CUSTOM_FIELD.match(value):
        raise ValueError(f'{key} must be "auto" or a field id like "customfield_10016"')
    return value


class JiraOptions(ConnectorOptions, TypeMapOptions):
    #: Jira Cloud (REST v3, enhanced JQL search, changelog bulk fetch) or Data Center /
    #: Server (REST v2, ``startAt`` search). Decides endpoints and the credentials needed.
    deployment: Literal["cloud", "datacenter"] = "cloud"
    #: ``"auto"`` finds the field by its type and name ("Story Points", "Story point
    #: estimate"); a ``customfield_NNNNN`` id is used as is.
    story_points_field: str = "auto"
    #: ``"auto"`` finds Jira Software's Sprint field; or a ``customfield_NNNNN`` id.
    sprint_field: str = "auto"
    # type_map (TypeMapOptions): extra issue type names -> category (merged over the defaults).
    #: Per project key: status name -> todo|in_progress|done, overriding the status category
    #: Jira gives the status (e.g. a "Ready for QA" status that Jira files under "done").
    status_overrides: dict[str, dict[str, StatusCategory]] = Field(default_factory=dict)
    #: Extra issue link type names -> blocks|relates|duplicates|clones (merged over defaults).
    link_types: dict[str, LinkKind] = Field(default_factory=dict)
    #: Per project key: the board ids to read sprints from (default: every board of the project).
    boards: dict[str, list[int]] = Field(default_factory=dict)
    #: Pull worklogs (hours logged per issue) for actual-cost metrics.
    worklogs: bool = True
    #: Allow the periodic deletion reconcile (a key-only listing of each project).
    reconcile: bool = True

    @field_validator("story_points_field")
    @classmethod
    def _story_points(cls, value: str) -> str:
        return _field_choice(value, "story_points_field")

    @field_validator("sprint_field")
    @classmethod
    def _sprint(cls, value: str) -> str:
        return _field_choice(value, "sprint_field")

    def link_kinds(self) -> dict[str, LinkKind]:
        return merged_map(DEFAULT_LINK_TYPES, self.link_types)

    def overrides(self) -> dict[str, dict[str, StatusCategory]]:
        """Status overrides by project key, status names lower-cased."""
        return {
            project: {name.strip().lower(): cat for name, cat in names.items()}
            for project, names in self.status_overrides.items()
        }
