"""``programview sync --source NAME --scope SCOPE``: one task per scope for an external
orchestrator (issue 10, item 5). The test connector's fake API over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from programview_testconnector import TOKEN, FakeApi, config_toml, serve

from programview.cli import main
from programview.warehouse import db


@pytest.fixture
def base_url() -> Iterator[str]:
    with serve(FakeApi(scopes=("ALPHA", "BETA"), items=12)) as url:
        yield url


def cli(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config), *args], env={"TC_TOKEN": TOKEN})


def test_sync_one_scope_of_one_source(tmp_path: Path, warehouse_url: str, base_url: str) -> None:
    config = tmp_path / "programview.toml"
    config.write_text(config_toml(warehouse_url, base_url, ("ALPHA", "BETA")))

    result = cli(config, "sync", "--source", "fake", "--scope", "BETA")
    assert result.exit_code == 0, result.output
    engine = db.create_engine(warehouse_url)
    with engine.connect() as conn:
        scopes = conn.execute(sa.text("SELECT DISTINCT scope FROM sync_run_streams")).scalars()
        items = conn.execute(sa.text("SELECT DISTINCT scope FROM work_items")).scalars()
        assert set(scopes) == {"BETA"} and set(items) == {"BETA"}
    engine.dispose()

    unknown = cli(config, "sync", "--source", "fake", "--scope", "GAMMA")
    assert unknown.exit_code == 2
    assert "source 'fake' has no scope 'GAMMA': its configured scopes are ALPHA, BETA" in (
        unknown.stderr
    )
    alone = cli(config, "sync", "--scope", "BETA")
    assert alone.exit_code == 2 and "--scope needs --source" in alone.stderr
