"""``[sources.options]`` of a ``kind = "gitlab"`` source, validated at config load.

Every key has a default that works on a stock GitLab: types come from ``issue_type``
(incident, task) and labels (``bug``, ``type::bug``, ``feature``…), points from ``weight``.
Status needs no mapping (closed is done); ``in_progress_labels`` say which labels mean an open
issue is in progress. Names match case-insensitively.
"""

from __future__ import annotations

from pydantic import Field

from programview.normalize import TypeCategory, TypeMapOptions
from programview.sync.connector import ConnectorOptions

#: Labels that mean "in progress" unless the config says otherwise: GitLab's usual scoped
#: workflow labels and the plain board-column names.
DEFAULT_IN_PROGRESS_LABELS = (
    "workflow::in dev",
    "workflow::in progress",
    "workflow::in review",
    "workflow::review",
    "in progress",
    "doing",
)

#: ``issue_type`` -> category. ``issue`` has no category of its own: its labels decide.
ISSUE_TYPES: dict[str, TypeCategory] = {
    "incident": "incident",
    "task": "task",
    "test_case": "other",
    "requirement": "other",
}


class GitLabOptions(ConnectorOptions, TypeMapOptions):
    #: Labels (scoped ``workflow::in dev`` style or plain) meaning in_progress for an open
    #: issue; an open issue without one is todo.
    in_progress_labels: list[str] = Field(default_factory=lambda: list(DEFAULT_IN_PROGRESS_LABELS))
    # type_map (TypeMapOptions): extra label names -> category, merged over the defaults
    # (``bug``, ``type::bug``, ``feature``, ``type::story``…). ``issue_type`` incident and task
    # always win: an incident is not a bug.
    #: Allow the periodic deletion reconcile (a listing of each project's issue ids).
    reconcile: bool = True

    def label_types(self) -> dict[str, TypeCategory]:
        return self.label_categories()

    def in_progress(self) -> frozenset[str]:
        return frozenset(v.strip().lower() for v in self.in_progress_labels)
