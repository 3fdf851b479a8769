"""The container entrypoint (``docker/entrypoint.sh``), run in this venv as the image runs
it: ``db upgrade`` then the daemon; other commands pass through; replicas starting at once
on one PostgreSQL migrate once. Docker itself cannot be built here: the Dockerfile is only
checked for what the operations guide promises (issue 10, item 8)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from programview.simulator.generator import Credentials, generate
from programview.simulator.server import Simulator, serve
from programview.warehouse import db

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with serve(generate(seed=3, size="small")) as running:
        yield running


def environment(config: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PROGRAMVIEW_")}
    path = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
    return {**base, **Credentials().env(), "PATH": path, "PROGRAMVIEW_CONFIG": str(config), **extra}


def entrypoint(config: Path, *args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["sh", str(ENTRYPOINT), *args],
        env=environment(config, **extra),
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def write_config(tmp_path: Path, sim: Simulator, url: str) -> Path:
    path = tmp_path / "programview.toml"
    path.write_text(sim.org.config_toml(sim.base_url, url, kinds=["jira"]))
    return path


def test_migrates_then_runs_the_daemon_and_passes_commands_through(
    tmp_path: Path, sim: Simulator
) -> None:
    url = f"sqlite:///{tmp_path / 'programview.db'}"
    config = write_config(tmp_path, sim, url)

    proc = entrypoint(config, "--once")
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "upgraded from an empty database to revision" in out
    assert "INFO programview.daemon: run 1 ok in " in err
    engine = db.create_engine(url)
    assert db.current_revision(engine) == db.head_revision()
    engine.dispose()

    again = entrypoint(config, "--once")  # a restart: the schema is current, nothing to do
    out, err = again.communicate(timeout=180)
    assert again.returncode == 0, err
    assert "already at revision" in out and "run 2 ok in " in err

    status = entrypoint(config, "status")  # a programview command instead of the daemon
    out, err = status.communicate(timeout=60)
    assert status.returncode == 0, err
    assert out.splitlines()[-1] == "healthy: 9 stream(s)"

    other = entrypoint(config, "sh", "-c", "echo shell")  # anything else on PATH
    assert other.communicate(timeout=30)[0] == "shell\n"

    skip = entrypoint(config, "--once", PROGRAMVIEW_SKIP_UPGRADE="1")
    out, err = skip.communicate(timeout=180)
    assert skip.returncode == 0, err
    assert "revision" not in out


@pytest.mark.postgres
def test_two_replicas_starting_together_migrate_once(
    tmp_path: Path, sim: Simulator, pg_url: str
) -> None:
    config = write_config(tmp_path, sim, pg_url)
    replicas = [entrypoint(config, "--once") for _ in range(2)]
    results = [p.communicate(timeout=180) for p in replicas]
    for proc, (_out, err) in zip(replicas, results, strict=True):
        assert proc.returncode == 0, err
    firsts = [out.splitlines()[0] for out, _ in results]
    assert sum("upgraded from an empty database" in line for line in firsts) == 1, firsts
    assert sum(f"already at revision {db.head_revision()} (head)" in x for x in firsts) == 1


def test_dockerfile_is_multi_stage_non_root_with_entrypoint_and_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2
    assert "AS build" in text and "COPY --from=build" in text
    assert "\nUSER programview" in text
    assert "docker/entrypoint.sh" in text and 'ENTRYPOINT ["programview-entrypoint"]' in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert "PROGRAMVIEW_SERVE=0.0.0.0:9108" in text
