"""Every GraphQL query the GitHub connector sends, in one place.

tests/test_github_queries.py validates each against GitHub's published schema
(``../shared/fixtures/api-examples/github/schema.graphql``), so a query real GitHub would
reject never ships. Costs (GitHub's formula: connection requests / 100, at least 1):

* ``PROJECT``: one project's fields (iteration configuration included), ``updatedAt`` and
  item count — 1 point, once per project and run (the "did anything change" probe).
* ``ISSUE_DETAILS``: up to 100 issues by node id with their status/estimate history
  (timeline) and Projects field values — 2 points per page of changed issues.
* ``ISSUE_TIMELINE``: the rest of one issue's timeline when it has more than 100 events.
* ``BOARD``: a repository's issues with their Projects field values, 100 a page — only when a
  project changed without the issues changing (cards moved on the board), 1 point a page.
"""

from __future__ import annotations

#: The value types of the Projects fields the mapping reads.
VALUE_TYPES = {
    "points": ("ProjectV2ItemFieldNumberValue", "number"),
    "status": ("ProjectV2ItemFieldSingleSelectValue", "name"),
    "iteration": ("ProjectV2ItemFieldIterationValue", "iterationId title startDate duration"),
    "due": ("ProjectV2ItemFieldDateValue", "date"),
}


def item_values(fields: list[tuple[str, str, str]]) -> str:
    """The ``ItemValues`` fragment: one aliased ``fieldValueByName`` per (alias, kind, field
    name) the configured projects use. ``fieldValueByName`` is no connection, so it costs no
    rate-limit points, where a ``fieldValues`` connection costs a request per item."""
    lines = [
        "fragment ItemValues on ProjectV2Item {",
        "  id",
        "  project { number owner { ... on Organization { login } ... on User { login } } }",
    ]
    for alias, kind, name in fields:
        typename, selection = VALUE_TYPES[kind]
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'  {alias}: fieldValueByName(name: "{quoted}") {{')
        lines.append(f"    ... on {typename} {{ {selection} }}")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


#: What a project with the default field names asks for (used by the tests and as a model).
DEFAULT_VALUES = item_values(
    [
        ("points_0", "points", "Estimate"),
        ("status_0", "status", "Status"),
        ("iteration_0", "iteration", "Iteration"),
        ("due_0", "due", "Target date"),
    ]
)

PROJECT = """
query Project($login: String!, $number: Int!) {
  repositoryOwner(login: $login) {
    __typename
    login
    ... on ProjectV2Owner {
      projectV2(number: $number) {
        id
        title
        number
        updatedAt
        items(first: 1) { totalCount }
        fields(first: 50) {
          nodes {
            __typename
            ... on ProjectV2FieldCommon { id name dataType }
            ... on ProjectV2SingleSelectField { options { id name } }
            ... on ProjectV2IterationField {
              configuration {
                duration
                startDay
                iterations { id title startDate duration }
                completedIterations { id title startDate duration }
              }
            }
          }
        }
      }
    }
  }
  rateLimit { cost remaining resetAt }
}
"""

_TIMELINE_NODES = """
      nodes {
        __typename
        ... on LabeledEvent { createdAt label { name } }
        ... on UnlabeledEvent { createdAt label { name } }
        ... on ClosedEvent { createdAt stateReason }
        ... on ReopenedEvent { createdAt }
      }
"""

_ISSUE_DETAILS = (
    """
query IssueDetails($ids: [ID!]!, $withProjects: Boolean!) {
  nodes(ids: $ids) {
    ... on Issue {
      id
      databaseId
      timelineItems(
        first: 100
        itemTypes: [LABELED_EVENT, UNLABELED_EVENT, CLOSED_EVENT, REOPENED_EVENT]
      ) {
        pageInfo { hasNextPage endCursor }
"""
    + _TIMELINE_NODES
    + """
      }
      projectItems(first: 10) @include(if: $withProjects) {
        nodes { ...ItemValues }
      }
    }
  }
  rateLimit { cost remaining resetAt }
}
"""
)

ISSUE_TIMELINE = (
    """
query IssueTimeline($id: ID!, $cursor: String) {
  node(id: $id) {
    ... on Issue {
      timelineItems(
        first: 100
        after: $cursor
        itemTypes: [LABELED_EVENT, UNLABELED_EVENT, CLOSED_EVENT, REOPENED_EVENT]
      ) {
        pageInfo { hasNextPage endCursor }
"""
    + _TIMELINE_NODES
    + """
      }
    }
  }
  rateLimit { cost remaining resetAt }
}
"""
)

_BOARD = """
query Board($owner: String!, $name: String!, $cursor: String) {
  repository(owner: $owner, name: $name) {
    issues(first: 100, after: $cursor, orderBy: {field: CREATED_AT, direction: ASC}) {
      pageInfo { hasNextPage endCursor }
      nodes {
        databaseId
        projectItems(first: 10) { nodes { ...ItemValues } }
      }
    }
  }
  rateLimit { cost remaining resetAt }
}
"""


def issue_details(values: str) -> str:
    """``ISSUE_DETAILS`` with the ``ItemValues`` fragment of this run's projects."""
    return _ISSUE_DETAILS + values


def board(values: str) -> str:
    """``BOARD`` with the ``ItemValues`` fragment of this run's projects."""
    return _BOARD + values


ALL = {
    "PROJECT": PROJECT,
    "ISSUE_DETAILS": issue_details(DEFAULT_VALUES),
    "ISSUE_TIMELINE": ISSUE_TIMELINE,
    "BOARD": board(DEFAULT_VALUES),
}
