"""Every GraphQL query the GitHub connector sends, in one place.

tests/test_github_queries.py validates each against GitHub's published schema
(``../shared/fixtures/api-examples/github/schema.graphql``), so a query real GitHub would
reject never ships. Costs (GitHub's formula: connection requests / 100, at least 1):

* ``PROJECT``: one project's fields (iteration configuration included), ``updatedAt`` and
  item count — 1 point, once per project and run (the "did anything change" probe).
* ``ISSUE_DETAILS``: up to 100 issues by node id with their status/estimate history
  (timeline) and Projects field values — 1 point per page of changed issues.
* ``ISSUE_TIMELINE``: the rest of one issue's timeline when it has more than 100 events.
* ``BOARD``: a repository's issues with their Projects field values, 100 a page — only when a
  project changed without the issues changing (cards moved on the board), 6 points a page.
"""

from __future__ import annotations

#: Field values of one project item; ``field { name }`` tells which field each value is.
_VALUES = """
fragment ItemValues on ProjectV2Item {
  id
  updatedAt
  project { number owner { ... on Organization { login } ... on User { login } } }
  fieldValues(first: 30) {
    nodes {
      __typename
      ... on ProjectV2ItemFieldNumberValue { number field { ...FieldName } }
      ... on ProjectV2ItemFieldSingleSelectValue { name field { ...FieldName } }
      ... on ProjectV2ItemFieldIterationValue {
        iterationId title startDate duration field { ...FieldName }
      }
      ... on ProjectV2ItemFieldDateValue { date field { ...FieldName } }
    }
  }
}
fragment FieldName on ProjectV2FieldConfiguration {
  ... on ProjectV2FieldCommon { name }
}
"""

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

ISSUE_DETAILS = (
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
    + _VALUES
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

BOARD = (
    """
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
    + _VALUES
)

ALL = {
    "PROJECT": PROJECT,
    "ISSUE_DETAILS": ISSUE_DETAILS,
    "ISSUE_TIMELINE": ISSUE_TIMELINE,
    "BOARD": BOARD,
}
