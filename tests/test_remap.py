"""``programview remap``: a changed mapping option applied to the stored raw payloads, with
no API call, then the transform (issue 11).

End to end through the CLI: a Jira sync against the simulator over real HTTP, then the
config's story-points field and type map change, and ``remap`` rebuilds the rows and the
figures. The simulator's request log proves that not one request was sent (and the remap's
HTTP client refuses every request anyway); a second case runs with the simulator stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from programview.cli import main
from programview.simulator.generator import TOKENS, generate
from programview.simulator.server import Simulator, serve
from programview.warehouse import db

pytestmark = pytest.mark.slow

#: The simulated Cloud site's empty classic "Story Points" field (the used one is 10016).
EMPTY_POINTS_FIELD = "customfield_10026"


@pytest.fixture(autouse=True)
def _quiet_field_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="programview.connectors.jira")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with serve(generate(seed=7, size="small")) as running:
        yield running


def cli(config: Path, *args: str) -> Result:
    return CliRunner().invoke(
        main, ["--config", str(config), *args], env=TOKENS.env(), catch_exceptions=False
    )


def write_config(
    path: Path, sim: Simulator, url: str, options: str = "", kinds: tuple[str, ...] = ("jira",)
) -> None:
    """The simulator's config, with ``options`` (TOML inline-table entries) for sim-jira."""
    text = sim.org.config_toml(sim.base_url, url, "cloud", kinds=list(kinds))
    if options:
        default = 'story_points_field = "auto" }'
        assert default in text
        text = text.replace(default, f"{options} }}", 1)
    path.write_text(text, encoding="utf-8")


def figures(url: str) -> dict[str, float]:
    engine = db.create_engine(url)
    try:
        with engine.connect() as conn:

            def one(sql: str) -> float:
                return float(conn.execute(sa.text(sql)).scalar() or 0)

            return {
                "points": one("SELECT SUM(story_points) FROM work_items"),
                "estimated": one("SELECT COUNT(story_points) FROM work_items"),
                "bugs": one("SELECT COUNT(*) FROM work_items WHERE type_category = 'bug'"),
                "committed": one("SELECT SUM(committed_points) FROM sprint_metrics"),
                "items": one("SELECT COUNT(*) FROM work_items"),
            }
    finally:
        engine.dispose()


def test_remap_applies_changed_options_without_any_request(
    sim: Simulator, warehouse_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "programview.toml"
    write_config(config, sim, warehouse_url)
    synced = cli(config, "sync")
    assert synced.exit_code == 0, synced.output
    before = figures(warehouse_url)
    assert before["points"] > 0 and before["bugs"] > 0 and before["committed"] > 0

    write_config(
        config,
        sim,
        warehouse_url,
        f'story_points_field = "{EMPTY_POINTS_FIELD}", type_map = {{ bug = "story" }}',
    )
    sent = len(sim.requests)
    result = cli(config, "remap", "--source", "sim-jira")

    assert result.exit_code == 0, result.output
    assert len(sim.requests) == sent  # not one API call
    assert "remap sim-jira issues: " in result.output
    assert "running the transform" in result.output
    after = figures(warehouse_url)
    assert after["items"] == before["items"]
    assert after["estimated"] == 0 and after["points"] == 0  # the empty field: unestimated
    assert after["bugs"] == 0  # bugs now count as stories
    assert after["committed"] == 0  # the transform ran on the remapped points

    # back to the defaults: the original figures return, still offline
    write_config(config, sim, warehouse_url)
    assert cli(config, "remap").exit_code == 0
    assert len(sim.requests) == sent
    assert figures(warehouse_url) == before


def test_remap_works_with_the_api_gone(tmp_path: Path, sqlite_url: str) -> None:
    config = tmp_path / "programview.toml"
    db.upgrade(sqlite_url)
    with serve(generate(seed=7, size="small")) as running:
        write_config(config, running, sqlite_url)
        assert cli(config, "sync").exit_code == 0
        write_config(config, running, sqlite_url, 'type_map = { bug = "task" }')
    before = figures(sqlite_url)
    result = cli(config, "remap")  # the simulator is stopped: any request would fail
    assert result.exit_code == 0, result.output
    after = figures(sqlite_url)
    assert before["bugs"] > 0 and after["bugs"] == 0


def test_remap_before_any_sync_says_what_to_do(sim: Simulator, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    db.upgrade(url)
    config = tmp_path / "programview.toml"
    write_config(config, sim, url)
    result = cli(config, "remap")
    assert result.exit_code == 2
    assert "run `programview sync --source sim-jira` once first" in result.output
    assert "Traceback" not in result.output


NORMALIZED = (
    "work_items",
    "status_changes",
    "estimate_changes",
    "sprints",
    "sprint_items",
    "releases",
    "work_item_releases",
    "dependencies",
    "people",
    "worklogs",
)


def dump(url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = db.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: sorted(tuple(r) for r in conn.execute(sa.select(db.table(name))))
                for name in NORMALIZED
            }
    finally:
        engine.dispose()


def test_remap_with_unchanged_options_gives_the_synced_warehouse_row_for_row(
    warehouse_url: str, tmp_path: Path
) -> None:
    """Every connector: deleted items stay deleted and the freshest copy of a row wins (a
    sprint closed since the issues that name it were last fetched), as the syncs left them."""
    org = generate(seed=7, size="small")
    config = tmp_path / "programview.toml"
    with serve(org) as running:
        write_config(config, running, warehouse_url, kinds=("jira", "github", "gitlab"))
        assert cli(config, "sync").exit_code == 0
        org.advance(14)  # sprints close, items change
        gone = next(i for sc in org.scopes_of("jira") for i in org.scope_items(sc))
        gone.deleted = gone.updated  # and one issue is deleted
        assert cli(config, "sync", "--full").exit_code == 0  # --full: the deletion check too
        synced = dump(warehouse_url)
        deleted = db.table("work_items").c.keys().index("is_deleted")
        assert any(row[deleted] for row in synced["work_items"])
        sent = len(running.requests)
        assert cli(config, "remap").exit_code == 0
        assert len(running.requests) == sent
    assert dump(warehouse_url) == synced
