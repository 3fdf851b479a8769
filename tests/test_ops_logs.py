"""``--log-format json`` for log shippers, and a repeated warning said once per run (issue 10,
item 7). Real processes against the API simulator."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from programview.logging_setup import CHATTY, once_per_run, setup_logging
from programview.simulator.generator import Credentials, generate
from programview.simulator.server import Simulator, serve
from programview.warehouse import db

WARNING = "several story-points fields found"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with serve(generate(seed=3, size="small")) as running:
        yield running


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    names = ["", "programview", "programview.sync.streams", *CHATTY]
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_programview", False)]:
        root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def run(tmp_path: Path, sim: Simulator, *args: str) -> subprocess.CompletedProcess[str]:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    if not (tmp_path / "w.db").exists():
        db.upgrade(url)
    path = tmp_path / "pv.toml"
    path.write_text(sim.org.config_toml(sim.base_url, url, kinds=["jira"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGRAMVIEW_")}
    return subprocess.run(
        [sys.executable, "-m", "programview", "--config", str(path), *args],
        env={**env, **Credentials().env()},
        capture_output=True,
        text=True,
        timeout=180,
    )


def parse(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines()]  # every line is one object


def test_daemon_json_logs_one_object_per_line(tmp_path: Path, sim: Simulator) -> None:
    result = run(tmp_path, sim, "daemon", "--once", "--log-format", "json")
    assert result.returncode == 0, result.stderr
    lines = parse(result.stderr)
    [run_line] = [x for x in lines if x["logger"] == "programview.daemon"]
    assert run_line["level"] == "INFO" and run_line["status"] == "ok"
    assert isinstance(run_line["run"], int) and run_line["records"] > 0  # type: ignore[operator]
    assert run_line["requests"] > 0 and run_line["duration"] > 0  # type: ignore[operator]
    assert str(run_line["time"]).endswith("Z")
    streams = [x for x in lines if x["logger"] == "programview.sync.streams"]
    assert len(streams) == 9
    assert {(x["scope"], x["stream"]) for x in streams} >= {("PAY", "issues"), ("CHK", "sprints")}
    for x in streams:
        assert x["run"] == run_line["run"] and x["source"] == "sim-jira"
        assert x["status"] == "ok" and {"records", "requests", "duration"} <= set(x)
    assert sum(x["records"] for x in streams) == run_line["records"]  # type: ignore[misc]
    warnings = [x for x in lines if WARNING in str(x["message"])]
    assert len(warnings) == 1 and warnings[0]["level"] == "WARNING"


def test_text_stays_the_default_and_sync_speaks_json_too(tmp_path: Path, sim: Simulator) -> None:
    text = run(tmp_path, sim, "daemon", "--once")
    assert text.returncode == 0, text.stderr
    assert " INFO programview.daemon: run 1 ok in " in text.stderr
    assert "programview.sync.streams" not in text.stderr  # one line per run
    assert text.stderr.count(WARNING) == 1

    synced = run(tmp_path, sim, "sync", "--log-format", "json")
    assert synced.returncode == 0, synced.stderr
    lines = parse(synced.stderr)
    assert len([x for x in lines if x["logger"] == "programview.sync.streams"]) == 9
    assert synced.stdout.startswith("run 2: ok, ")


def test_a_warning_repeated_in_a_run_is_said_once_per_run() -> None:
    out = io.StringIO()
    setup_logging("INFO", stream=out)
    log = logging.getLogger("programview.connectors.test")
    for _ in range(3):
        log.warning("several story-points fields found: a, b")
    log.warning("something else")
    once_per_run.reset()  # the daemon does this when a run starts
    log.warning("several story-points fields found: a, b")
    lines = out.getvalue().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "several story-points fields found: a, b",
        "something else",
        "several story-points fields found: a, b",
    ]


def test_json_lines_mask_secrets_too() -> None:
    out = io.StringIO()
    setup_logging("INFO", secrets=['tok"en-5f3a9b\\x', "db-pw-7c1e9a"], stream=out, fmt="json")
    logging.getLogger("programview.test").error(
        'failed with tok"en-5f3a9b\\x and db-pw-7c1e9a', extra={"run": 3, "error": "db-pw-7c1e9a"}
    )
    line = json.loads(out.getvalue())
    assert line["message"] == "failed with *** and ***" and line["error"] == "***"
    assert line["run"] == 3 and line["level"] == "ERROR"


def test_sync_in_text_mode_hides_psycopg_echoes_of_a_terminated_connection(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``programview sync`` keeps Python's plain warnings on stderr (no handler), so
    psycopg's multi-line "error ignored terminating" after a terminated connection reached
    stderr beside the one-line error (seen in CI); a programview warning still does."""
    from programview.cli.sync import _json_logs

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # the plain CLI: no handler installed
    monkeypatch.setattr(logging.getLogger("psycopg"), "level", logging.NOTSET)
    _json_logs(None, "text")  # type: ignore[arg-type]  # text mode reads no config
    logging.getLogger("psycopg").warning(
        "error ignored terminating <Pipeline>: server closed the connection\nunexpectedly"
    )
    logging.getLogger("programview.connectors.x").warning("several story-points fields")
    assert capsys.readouterr().err == "several story-points fields\n"
