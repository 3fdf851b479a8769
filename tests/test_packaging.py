"""The wheel is what users install: build it, install it with its dependencies into a fresh
virtualenv (no system site-packages, nothing from this checkout on the path), and check that
the built-in connectors, the migrations and the CLI work from there.

Why: connectors and migrations live outside ``src/`` and ship under other import names
(``programview_connectors``, ``programview_migrations``); a package missing from
``[tool.setuptools] packages`` works in an editable install and breaks only for users.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import venv
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
#: Where each top-level source folder lands in the wheel.
SHIPPED = {
    ROOT / "src" / "programview": "programview",
    ROOT / "connectors": "programview_connectors",
    ROOT / "migrations": "programview_migrations",
}
NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    ".ci-venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "*.db",
    "*.db-*",
)


def run(
    cmd: Sequence[str | Path], *, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=900,
    )


def clean_env() -> dict[str, str]:
    """The environment without anything that would let this checkout leak in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"} and not k.startswith("PROGRAMVIEW_")
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the checkout (the build writes build/ into its tree)."""
    base = tmp_path_factory.mktemp("wheel")
    tree = base / "src"
    shutil.copytree(ROOT, tree, ignore=NOT_SOURCES)
    result = run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", base / "dist", tree],
        env=clean_env(),
        cwd=base,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [built] = (base / "dist").glob("programview-*.whl")
    return built


@pytest.fixture(scope="module")
def venv_bin(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel and its dependencies installed (by pip, normally)."""
    target = tmp_path_factory.mktemp("venv") / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(target)
    bin_dir = target / "bin"
    result = run(
        [bin_dir / "python", "-m", "pip", "install", "-q", wheel], env=clean_env(), cwd=target
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return bin_dir


def test_wheel_ships_every_module_of_the_package_connectors_and_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "programview_connectors/jira/__init__.py",
        "programview_migrations/env.py",
        "programview_migrations/script.py.mako",
        "programview_migrations/versions/0001_initial_warehouse_schema.py",
    ):
        assert required in names
    missing = []
    for folder, package in SHIPPED.items():
        for path in folder.rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            shipped = f"{package}/{path.relative_to(folder).as_posix()}"
            if shipped not in names:
                missing.append(shipped)
    assert missing == [], (
        "not in the wheel (add the sub-package to [tool.setuptools] packages): "
        + ", ".join(sorted(missing))
    )


def test_installed_wheel_registers_the_jira_connector(venv_bin: Path, tmp_path: Path) -> None:
    code = (
        "import importlib.metadata as m, programview\n"
        "print(programview.__file__)\n"
        "for ep in m.entry_points(group='programview.connectors'):\n"
        "    print(ep.name, ep.value)\n"
    )
    result = run([venv_bin / "python", "-c", code], env=clean_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    where, *entry_points = result.stdout.splitlines()
    # Imported from the fresh venv, not from this checkout.
    assert Path(where).is_relative_to(venv_bin.parent), where
    assert "jira programview_connectors.jira:JiraConnector" in entry_points


def test_installed_cli_lists_connectors(venv_bin: Path, tmp_path: Path) -> None:
    result = run([venv_bin / "programview", "connectors"], env=clean_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert "jira" in kinds


def test_installed_cli_migrates_a_new_warehouse(venv_bin: Path, tmp_path: Path) -> None:
    database = tmp_path / "warehouse.db"
    config = tmp_path / "programview.toml"
    config.write_text(f'[warehouse]\nurl = "sqlite:///{database}"\n')

    result = run(
        [venv_bin / "programview", "--config", config, "db", "upgrade"],
        env=clean_env(),
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "upgraded from an empty database to revision" in result.stdout
    with sqlite3.connect(database) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        [(revision,)] = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert {"work_items", "sync_runs"} <= tables
    assert revision in result.stdout


def test_installed_cli_checks_a_config(venv_bin: Path, tmp_path: Path) -> None:
    config = tmp_path / "programview.toml"
    config.write_text("[sync]\nschedule = '0 * * *'\n")
    result = run(
        [venv_bin / "programview", "--config", config, "config", "check"],
        env=clean_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "sync.schedule (line 2): must be a 5-field cron expression" in result.stderr


def test_installed_cli_writes_the_example_config_the_errors_point_to(
    venv_bin: Path, tmp_path: Path
) -> None:
    """The "config not found" message points at `config init`, which needs the example
    config inside the wheel."""
    missing = run([venv_bin / "programview", "config", "check"], env=clean_env(), cwd=tmp_path)
    assert missing.returncode == 2 and "programview config init" in missing.stderr
    result = run([venv_bin / "programview", "config", "init"], env=clean_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "programview.toml").read_text() == (ROOT / "config.example.toml").read_text()
