"""The daemon: one scheduled job (sync, then transform), one log line per run, a clean stop.

The sync itself is replaced by a fake here (the engine has its own tests); what is tested is
what the daemon adds: the schedule, the job settings, the outcome and log line of a run, the
exit codes of ``--once`` and SIGTERM handling. Nothing sleeps: jobs are called directly.
"""

from __future__ import annotations

import io
import logging
import os
import selectors
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

import programview.daemon as daemon
import programview.transform
from programview.config import Config, parse_config
from programview.daemon import build_scheduler, run_cycle, run_daemon
from programview.errors import DatabaseUnavailable, SchemaOutdated
from programview.logging_setup import CHATTY, config_secrets, setup_logging
from programview.warehouse import db


class FakeSync:
    """Stands in for ``programview.sync.engine.sync``; records how it was called."""

    def __init__(self, status: str = "ok", error: BaseException | None = None, **counts: Any):
        self.calls: list[tuple[Config, dict[str, Any]]] = []
        self.status = status
        self.error = error
        self.counts = {"run_id": 1, "records": 0, "skipped": 0, "requests": 0, **counts}
        self.counts.setdefault("quarantined", 0)

    def __call__(self, config: Config, **kwargs: Any) -> Any:
        self.calls.append((config, kwargs))
        if self.error is not None:
            raise self.error
        return SimpleNamespace(status=self.status, errors=[], **self.counts)


@pytest.fixture
def config(sqlite_url: str) -> Config:
    db.upgrade(sqlite_url)
    return parse_config(
        f'[warehouse]\nurl = "{sqlite_url}"\n[sync]\nschedule = "15 3 * * 1"\n', environ={}
    )


@pytest.fixture
def transforms(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Calls of the real transform (it still runs: the warehouse must accept it)."""
    calls: list[Any] = []
    real = programview.transform.run_transform

    def spy(engine: Any, config: Config, as_of: Any = None) -> None:
        calls.append((str(engine.url), config))
        real(engine, config, as_of=as_of)

    monkeypatch.setattr(programview.transform, "run_transform", spy)
    return calls


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """setup_logging() configures the process (handler, levels): undo it for other tests."""
    names = ["", "programview", *CHATTY]
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_programview", False)]:
        root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def daemon_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "programview.daemon"]


def test_a_run_syncs_then_transforms_and_logs_one_line(
    config: Config, transforms: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="programview")
    fake = FakeSync("ok", run_id=42, records=120, skipped=30, requests=7, quarantined=0)
    ticks = iter([100.0, 112.5])

    result = run_cycle(config, sync_fn=fake, clock=lambda: next(ticks))

    assert [c for c, _ in fake.calls] == [config]
    assert "progress" in fake.calls[0][1]
    assert transforms == [(config.warehouse.url, config)]
    assert result.status == "ok" and result.exit_code == 0
    [line] = daemon_lines(caplog)
    assert line.levelno == logging.INFO
    assert line.getMessage() == (
        "run 42 ok in 12.5s: 120 records written, 30 unchanged, 7 requests, 0 quarantined"
    )


def test_partial_run_is_a_warning_with_the_first_error(
    config: Config, transforms: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="programview")

    def sync(config: Config, **kwargs: Any) -> Any:
        return SimpleNamespace(
            run_id=7,
            status="partial",
            skipped=0,
            records=10,
            requests=4,
            quarantined=2,
            errors=["jira PAY issues: 2 payloads quarantined", "github acme/web: timeout"],
        )

    result = run_cycle(config, sync_fn=sync)

    assert (result.status, result.exit_code, result.quarantined) == ("partial", 3, 2)
    assert len(transforms) == 1  # metrics still move on with what was synced
    [line] = daemon_lines(caplog)
    assert line.levelno == logging.WARNING
    assert line.getMessage().startswith("run 7 partial in ")
    assert line.getMessage().endswith(
        "10 records written, 0 unchanged, 4 requests, 2 quarantined; "
        "jira PAY issues: 2 payloads quarantined (and 1 more)"
    )


def test_a_run_that_raises_is_logged_and_does_not_stop_the_daemon(
    config: Config, transforms: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="programview")
    fake = FakeSync(error=DatabaseUnavailable("cannot connect to the warehouse db: refused"))

    result = run_cycle(config, sync_fn=fake)  # must not raise

    assert (result.status, result.exit_code) == ("failed", 1)
    assert transforms == []  # the warehouse is unusable: nothing to transform
    [line] = daemon_lines(caplog)
    assert line.levelno == logging.ERROR
    assert line.getMessage().endswith("; sync: cannot connect to the warehouse db: refused")


def test_an_unexpected_error_keeps_its_traceback(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="programview")
    result = run_cycle(config, sync_fn=FakeSync(error=KeyError("fields")))

    assert result.status == "failed"
    assert result.error == "sync: unexpected KeyError: 'fields'"
    tracebacks = [r for r in daemon_lines(caplog) if r.exc_info]
    assert len(tracebacks) == 1 and tracebacks[0].exc_info[0] is KeyError  # type: ignore[index]


def test_a_failing_transform_fails_the_run_and_says_so(
    config: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="programview")

    def broken(engine: Any, config: Config, as_of: Any = None) -> None:
        raise SchemaOutdated("the warehouse is at revision 0001, this programview needs 0002")

    monkeypatch.setattr(programview.transform, "run_transform", broken)
    result = run_cycle(config, sync_fn=FakeSync("ok", records=5))

    assert (result.status, result.records) == ("failed", 5)
    assert result.error == (
        "transform and alert webhook: the warehouse is at revision 0001, this programview "
        "needs 0002"
    )


def test_scheduler_holds_one_non_overlapping_job_on_the_configured_schedule(
    config: Config, transforms: list[Any]
) -> None:
    fake = FakeSync("ok")
    scheduler = build_scheduler(config, sync_fn=fake)
    [job] = scheduler.get_jobs()

    assert job.max_instances == 1
    assert job.coalesce is True
    # "15 3 * * 1" is Mondays 03:15 UTC in crontab terms (2025-01-01 was a Wednesday).
    fire = job.trigger.get_next_fire_time(None, datetime(2025, 1, 1, tzinfo=UTC))
    assert fire == datetime(2025, 1, 6, 3, 15, tzinfo=UTC)

    # What the scheduler would call at that time: the same run as `--once`.
    job.func(*job.args, **job.kwargs)
    assert len(fake.calls) == 1 and len(transforms) == 1


@pytest.mark.parametrize(("status", "code"), [("ok", 0), ("partial", 3), ("failed", 1)])
def test_once_runs_one_cycle_and_exits_with_its_status(
    config: Config, transforms: list[Any], status: str, code: int
) -> None:
    fake = FakeSync(status)
    assert run_daemon(config, once=True, sync_fn=fake) == code
    assert len(fake.calls) == 1


def test_once_refuses_an_unmigrated_warehouse_unless_asked_to_upgrade(
    tmp_path: Path, transforms: list[Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    config = parse_config(f'[warehouse]\nurl = "{url}"\n', environ={})
    fake = FakeSync("ok")

    with pytest.raises(SchemaOutdated, match="run `programview db upgrade` first"):
        run_daemon(config, once=True, sync_fn=fake)
    assert fake.calls == []

    assert run_daemon(config, once=True, upgrade=True, sync_fn=fake) == 0
    assert len(fake.calls) == 1


def test_cli_daemon_once(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, transforms: list[Any]
) -> None:
    from programview.cli import main

    fake = FakeSync("ok", records=3, requests=2)
    monkeypatch.setattr(daemon, "_engine_sync", fake)
    path = tmp_path / "pv.toml"
    path.write_text(f'[warehouse]\nurl = "{sqlite_url}"\n')

    result = CliRunner().invoke(main, ["--config", str(path), "daemon", "--once", "--upgrade"])

    assert result.exit_code == 0, result.output
    assert "INFO programview.daemon: run 1 ok in " in result.stderr
    assert "3 records written, 0 unchanged, 2 requests, 0 quarantined" in result.stderr
    assert len(fake.calls) == 1


def test_log_lines_never_show_configured_secrets() -> None:
    env = {"TOKEN": "tok-9f8e7d6c5b4a", "PGPW": "pw-s3cret!", "HOOK": "https://hooks.x/T1/B2/zz99"}
    config = parse_config(
        textwrap.dedent(
            """\
            [warehouse]
            url = "postgresql://pv:${PGPW}@db.example/pv"
            [alerts]
            webhook_url = "${HOOK}"
            """
        ),
        environ=env,
    )
    secrets = [*config_secrets(config), env["TOKEN"]]
    out = io.StringIO()
    setup_logging("INFO", secrets=secrets, stream=out)
    log = logging.getLogger("programview.test")
    log.info("connecting to %s", config.warehouse.url)
    try:
        raise RuntimeError(f"server said: bad token {env['TOKEN']} for {env['HOOK']}")
    except RuntimeError:
        log.exception("request failed")

    text = out.getvalue()
    assert "connecting to postgresql://pv:***@db.example/pv" in text
    assert "bad token *** for ***" in text
    for value in env.values():
        assert value not in text


def _readline(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    assert proc.stderr is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        if not sel.select(timeout):
            proc.kill()
            pytest.fail("the daemon printed nothing for a minute")
    return proc.stderr.readline()


def test_sigterm_stops_the_daemon_cleanly(tmp_path: Path, sqlite_url: str) -> None:
    db.upgrade(sqlite_url)
    path = tmp_path / "pv.toml"
    # Once a year: the job never fires during the test.
    path.write_text(f'[warehouse]\nurl = "{sqlite_url}"\n[sync]\nschedule = "0 0 1 1 *"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGRAMVIEW_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from programview.cli import main; main()"]
        + ["--config", str(path), "daemon"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        seen = []
        while not any("daemon started" in line for line in seen):
            line = _readline(proc)
            assert line, f"the daemon exited early: {''.join(seen)}"
            seen.append(line)
        assert "schedule '0 0 1 1 *' (UTC), first run " in seen[-1]

        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert "SIGTERM received: stopping (a running sync stops after the page" in rest
    assert "daemon stopped" in rest
