"""The CLI's front door: help, ``config check`` (ok and bad), which config file is used.

``testkind`` is the connector under tests/plugin, installed through its own entry point.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from programview.cli import main

GOOD = """\
[warehouse]
url = "postgresql://pv:${PV_DB_PASSWORD}@db.example:5432/pv"

[[sources]]
name = "tracker"
kind = "testkind"
base_url = "http://127.0.0.1:9/api"
scopes = ["ALPHA", "BETA"]
credentials = { token = "${PV_TEST_TOKEN}" }

[[programs]]
key = "PLAT"
name = "Platform"

[[projects]]
key = "ALPHA"
name = "Alpha team"
program = "PLAT"
scopes = ["tracker:ALPHA"]
"""

BAD = """\
[sync]
schedule = "every hour"

[[sources]]
name = "tracker"
kind = "testkind"
base_url = "http://127.0.0.1:9/api"
scopes = ["ALPHA"]
credentials = { token = "${PV_TEST_TOKEN_UNSET}" }

[[projects]]
key = "ALPHA"
name = "Alpha"
scopes = ["trackr:ALPHA"]
"""

SECRETS = {"PV_DB_PASSWORD": "db-pw-7c1e9a", "PV_TEST_TOKEN": "tok-51f0b2d4"}


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("PROGRAMVIEW_CONFIG", "PROGRAMVIEW_WAREHOUSE_URL", "PV_TEST_TOKEN_UNSET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return CliRunner()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def no_secrets(result: Result) -> None:
    for value in SECRETS.values():
        assert value not in result.output and value not in result.stderr


def test_help_lists_the_commands(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    commands = result.output.split("Commands:")[1].split()
    for command in ("config", "daemon", "db", "sync", "backfill", "connectors"):
        assert command in commands


def test_config_check_ok_prints_a_summary(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path, "pv.toml", GOOD)
    result = runner.invoke(main, ["--config", str(path), "config", "check"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: ok"
    assert "warehouse: postgresql://pv:***@db.example:5432/pv" in lines
    assert "  tracker: testkind at http://127.0.0.1:9/api, 2 scopes (ALPHA, BETA)" in lines
    assert "  PLAT: Platform" in lines
    assert "  ALPHA: Alpha team, program PLAT, 1 scope" in lines
    no_secrets(result)


def test_config_check_bad_lists_every_problem_and_exits_2(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = write(tmp_path, "pv.toml", BAD)
    result = runner.invoke(main, ["--config", str(path), "config", "check"])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {path}: ")
    assert "sync.schedule (line 2): must be a 5-field cron expression" in result.stderr
    assert (
        "sources[0].credentials.token (line 9): environment variable PV_TEST_TOKEN_UNSET "
        "is not set" in result.stderr
    )


def test_config_check_reports_cross_reference_problems(runner: CliRunner, tmp_path: Path) -> None:
    text = BAD.replace('"every hour"', '"0 * * * *"').replace("_UNSET", "")
    path = write(tmp_path, "pv.toml", text)
    result = runner.invoke(main, ["--config", str(path), "config", "check"])
    assert result.exit_code == 2
    assert (
        "projects[0].scopes[0] (line 14): scope 'trackr:ALPHA' points at unknown source "
        "'trackr' (configured sources: tracker)" in result.stderr
    )


def test_missing_config_file(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./programview.toml here
    result = runner.invoke(main, ["config", "check"])
    assert result.exit_code == 2
    assert "error: config file not found: programview.toml" in result.stderr


def test_config_option_wins_over_environment_variable(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = write(tmp_path, "good.toml", GOOD)
    bad = write(tmp_path, "bad.toml", BAD)
    monkeypatch.setenv("PROGRAMVIEW_CONFIG", str(bad))

    from_env = runner.invoke(main, ["config", "check"])
    assert from_env.exit_code == 2 and str(bad) in from_env.stderr

    explicit = runner.invoke(main, ["--config", str(good), "config", "check"])
    assert explicit.exit_code == 0 and explicit.stdout.startswith(f"{good}: ok")


def test_warehouse_url_variable_overrides_the_file(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROGRAMVIEW_WAREHOUSE_URL", "sqlite:////var/lib/programview/pv.db")
    path = write(tmp_path, "pv.toml", GOOD)
    result = runner.invoke(main, ["--config", str(path), "config", "check"])
    assert result.exit_code == 0, result.output
    assert "warehouse: sqlite:////var/lib/programview/pv.db" in result.stdout.splitlines()
