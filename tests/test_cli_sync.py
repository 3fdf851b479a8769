"""The sync, backfill, connectors and db commands, end to end through the CLI.

The test connector's fake API is served over real HTTP on 127.0.0.1, so the CLI runs exactly
as a user would run it: config file, token from the environment, exit codes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from programview_testconnector import TOKEN, FakeApi, config_toml, serve

from programview.cli import main
from programview.warehouse import db


@pytest.fixture(autouse=True)
def transforms(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record transform calls (the transform has its own tests; here only *when* it runs)."""
    import programview.transform

    calls: list[str] = []
    monkeypatch.setattr(
        programview.transform,
        "run_transform",
        lambda engine, config, as_of=None: calls.append(config.path),
    )
    return calls


@pytest.fixture
def api() -> FakeApi:
    return FakeApi(scopes=("ALPHA",), items=12)


@pytest.fixture
def base_url(api: FakeApi) -> Iterator[str]:
    with serve(api) as url:
        yield url


def write_config(tmp_path: Path, warehouse_url: str, base_url: str) -> Path:
    path = tmp_path / "programview.toml"
    path.write_text(config_toml(warehouse_url, base_url, ("ALPHA",)), encoding="utf-8")
    return path


def cli(config: Path, *args: str, token: str = TOKEN, **env: str) -> Result:
    return CliRunner().invoke(
        main,
        ["--config", str(config), *args],
        env={"TC_TOKEN": token, **env},
        catch_exceptions=False,
    )


def test_connectors_lists_the_entry_point_plugin() -> None:
    result = CliRunner().invoke(main, ["connectors"])
    line = next(ln for ln in result.output.splitlines() if ln.startswith("testkind"))
    assert "programview_testconnector:TestConnector" in line
    assert "programview-testconnector 0.1" in line
    assert "cannot load" not in line


def test_db_upgrade_then_current(tmp_path: Path, db_url: str) -> None:
    config = write_config(tmp_path, db_url, "http://127.0.0.1:9/api")

    first = cli(config, "db", "current")
    assert first.exit_code == 0 and "empty" in first.output

    up = cli(config, "db", "upgrade")
    head = db.head_revision()
    assert up.exit_code == 0, up.output
    assert f"upgraded from an empty database to revision {head}" in up.output

    again = cli(config, "db", "upgrade")
    assert again.exit_code == 0 and f"already at revision {head}" in again.output
    current = cli(config, "db", "current")
    assert current.exit_code == 0 and f"revision {head} (head)" in current.output


def test_sync_then_second_sync(
    tmp_path: Path, warehouse_url: str, base_url: str, transforms: list[str]
) -> None:
    config = write_config(tmp_path, warehouse_url, base_url)

    first = cli(config, "sync")
    assert first.exit_code == 0, first.output
    assert ": ok, " in first.output
    assert transforms == [str(config)]  # something was written: metrics are recomputed

    second = cli(config, "sync", "--source", "fake")
    assert second.exit_code == 0, second.output
    assert "ok, 0 records written" in second.output
    # nothing changed, but time-based alerts move with the clock: metrics are recomputed
    assert transforms == [str(config)] * 2

    engine = db.create_engine(warehouse_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM work_items")).scalar() == 12
    engine.dispose()


def test_quarantine_makes_the_exit_code_3(
    tmp_path: Path, warehouse_url: str, base_url: str, api: FakeApi
) -> None:
    api.item("ALPHA", "ALPHA-4")["points"] = "lots"
    result = cli(write_config(tmp_path, warehouse_url, base_url), "sync")
    assert result.exit_code == 3, result.output
    assert "partial" in result.output
    assert "1 record(s) could not be mapped" in result.output


def test_failed_run_exits_1_and_does_not_show_the_token(
    tmp_path: Path, warehouse_url: str, base_url: str
) -> None:
    result = cli(write_config(tmp_path, warehouse_url, base_url), "sync", token="bad-token-xyz1")
    assert result.exit_code == 1
    assert "401" in result.output and "Bad credentials" in result.output
    assert "bad-token-xyz1" not in result.output


def test_backfill_window_and_bad_dates(tmp_path: Path, warehouse_url: str, base_url: str) -> None:
    config = write_config(tmp_path, warehouse_url, base_url)
    ok = cli(config, "backfill", "--since", "2025-01-06", "--until", "2025-01-07")
    assert ok.exit_code == 0, ok.output

    bad = cli(config, "backfill", "--since", "last tuesday")
    assert bad.exit_code == 2 and "--since" in bad.output
    empty = cli(config, "backfill", "--since", "2025-02-01", "--until", "2025-01-01")
    assert empty.exit_code == 2 and "--until" in empty.output


def test_unknown_source_is_a_usage_error(tmp_path: Path, warehouse_url: str, base_url: str) -> None:
    result = cli(write_config(tmp_path, warehouse_url, base_url), "sync", "--source", "nope")
    assert result.exit_code == 2
    assert "unknown source 'nope'" in result.output


def test_unmigrated_warehouse_says_to_run_db_upgrade(tmp_path: Path, db_url: str) -> None:
    result = cli(write_config(tmp_path, db_url, "http://127.0.0.1:9/api"), "sync")
    assert result.exit_code == 1
    assert "run `programview db upgrade` first" in result.output


@pytest.mark.parametrize("command", [("sync",), ("db", "upgrade"), ("db", "current")])
def test_warehouse_down_is_a_clear_message_without_the_password(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    url = "postgresql://postgres:${PV_TEST_PG_PASSWORD}@127.0.0.1:1/x"
    config = write_config(tmp_path, url, "http://127.0.0.1:9/api")
    result = cli(config, *command, PV_TEST_PG_PASSWORD="hunter2-secret")
    assert result.exit_code == 1
    assert "cannot connect to the warehouse" in result.output
    assert "127.0.0.1:1/x" in result.output
    assert "hunter2-secret" not in result.output
    # It says what to check.
    assert "check that the database server is running" in result.output
    assert "on 127.0.0.1 port 1" in result.output
