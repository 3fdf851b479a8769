"""Every GraphQL query the GitHub connector sends validates against GitHub's published schema
(../shared/fixtures/api-examples/github/schema.graphql), so a query real GitHub would reject
never ships; and the simulator executes against that same schema."""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from pathlib import Path

import pytest
from graphql import GraphQLSchema, build_schema, parse, validate
from programview_connectors.github import queries

FIXTURES = Path(
    os.environ.get("PROGRAMVIEW_FIXTURES", Path(__file__).resolve().parents[2] / "shared/fixtures")
)
SCHEMA = FIXTURES / "api-examples" / "github" / "schema.graphql"


@cache
def github_schema() -> GraphQLSchema:
    if not SCHEMA.is_file():
        message = f"GitHub's schema not found at {SCHEMA} (set PROGRAMVIEW_FIXTURES)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    schema = build_schema(SCHEMA.read_text(), assume_valid_sdl=True)
    schema._validation_errors = []  # GitHub's schema breaks two graphql-js SDL rules
    return schema


@pytest.mark.parametrize("name", sorted(queries.ALL))
def test_query_is_valid_against_githubs_schema(name: str) -> None:
    errors = validate(github_schema(), parse(queries.ALL[name]))
    assert errors == [], [e.message for e in errors]


def test_a_wrong_field_would_be_caught() -> None:
    broken = queries.ALL["ISSUE_DETAILS"].replace("databaseId", "databaseIdentifier", 1)
    messages = [e.message for e in validate(github_schema(), parse(broken))]
    assert any("databaseIdentifier" in m for m in messages)


def test_the_simulator_serves_the_same_schema() -> None:
    github_schema()  # skips/fails like the others when the fixtures are missing
    vendored = resources.files("programview.simulator").joinpath("github_schema.graphql")
    lines = [x for x in vendored.read_text().splitlines() if not x.startswith("# ")]
    assert "\n".join(lines).strip() == SCHEMA.read_text().strip()
