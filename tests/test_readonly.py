"""``programview db grant-readonly``: a PostgreSQL role that reads the v_* views and nothing
else, checked by connecting as that role; and the clear refusal on SQLite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine.url import make_url

from programview.cli import main
from programview.errors import ConfigError, WarehouseError
from programview.warehouse import db
from programview.warehouse.readonly import ReadonlyUnsupported, grant_readonly

VIEWS = [
    "v_benefits",
    "v_blocker_checks",
    "v_dependencies",
    "v_dependency_alerts",
    "v_flow_daily",
    "v_health_inputs",
    "v_program_benefits",
    "v_program_health",
    "v_project_forecast",
    "v_project_metrics",
    "v_projects",
    "v_release_forecast",
    "v_releases",
    "v_resource_load",
    "v_sprints",
    "v_sync_runs",
    "v_work_items",
]


@pytest.fixture
def pg_warehouse(pg_url: str) -> str:
    db.upgrade(pg_url)
    return pg_url


@pytest.fixture
def owner(pg_warehouse: str) -> Iterator[sa.Engine]:
    eng = db.create_engine(pg_warehouse)
    yield eng
    eng.dispose()


@pytest.fixture
def role(owner: sa.Engine) -> Iterator[str]:
    """A role name unique to this test; the role is dropped afterwards (roles are cluster-wide,
    the test database is not)."""
    name = f"pv_ro_{uuid.uuid4().hex[:8]}"
    yield name
    with owner.begin() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": name})
        if exists.first():
            conn.execute(sa.text(f'DROP OWNED BY "{name}"'))
            conn.execute(sa.text(f'DROP ROLE "{name}"'))


def as_role(url: str, role: str) -> sa.Engine:
    """An engine connected as ``role`` (the test server trusts local connections)."""
    return db.create_engine(
        make_url(url).set(username=role, password=None).render_as_string(hide_password=False)
    )


def denied(engine: sa.Engine, sql: str) -> bool:
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql))
    except sa.exc.ProgrammingError as exc:
        return "permission denied" in str(exc.orig)
    except sa.exc.InternalError as exc:  # read-only transaction
        return "read-only transaction" in str(exc.orig)
    return False


@pytest.mark.postgres
def test_role_reads_views_and_nothing_else(pg_warehouse: str, owner: sa.Engine, role: str) -> None:
    result = grant_readonly(owner, role)
    assert result.created and result.views == VIEWS and result.schema == "public"

    reader = as_role(pg_warehouse, role)
    try:
        with reader.connect() as conn:
            for view in VIEWS:
                conn.execute(sa.text(f"SELECT * FROM {view}")).all()
        for sql in (
            "SELECT * FROM raw_payloads",
            "SELECT * FROM work_items",
            "SELECT * FROM project_metrics",
            "SELECT * FROM alembic_version",
            "INSERT INTO work_items (id, source_name, scope, native_id, item_key, type_category,"
            " status_category) VALUES ('x', 's', 's', '1', 'X-1', 'story', 'todo')",
            "UPDATE alert_events SET delivered_at = now()",
            "DELETE FROM dependency_alerts",
            "UPDATE v_dependency_alerts SET severity = 'low'",  # an updatable view
            "CREATE TABLE sneaky (id int)",
        ):
            assert denied(reader, sql), sql
        # Nor can it hand out roles itself; the failure is a clear warehouse error.
        with pytest.raises(WarehouseError, match=f"cannot set up read-only role '{role}x'"):
            grant_readonly(reader, f"{role}x")
    finally:
        reader.dispose()


@pytest.mark.postgres
def test_rerun_converges_grants_and_covers_new_views(
    pg_warehouse: str, owner: sa.Engine, role: str
) -> None:
    grant_readonly(owner, role)
    with owner.begin() as conn:
        # What a later migration might do, and a grant someone added by hand.
        conn.execute(sa.text("CREATE VIEW v_later AS SELECT key FROM programs"))
        conn.execute(sa.text(f'GRANT SELECT ON raw_payloads TO "{role}"'))

    reader = as_role(pg_warehouse, role)
    try:
        assert denied(reader, "SELECT * FROM v_later")
        again = grant_readonly(owner, role)
        assert not again.created
        assert "v_later" in again.views
        assert again.revoked_tables == ["raw_payloads"]
        with reader.connect() as conn:
            conn.execute(sa.text("SELECT * FROM v_later")).all()
        assert denied(reader, "SELECT * FROM raw_payloads")
    finally:
        reader.dispose()


@pytest.mark.postgres
def test_password_from_env_is_stored_hashed(
    pg_warehouse: str,
    owner: sa.Engine,
    role: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "programview.toml"
    config.write_text(f'[warehouse]\nurl = "{pg_warehouse}"\n', encoding="utf-8")
    monkeypatch.setenv("PV_RO_PASSWORD", "correct horse battery")
    runner = CliRunner()

    result = runner.invoke(
        main,
        ["--config", str(config), "db", "grant-readonly", role, "--password-env", "PV_RO_PASSWORD"],
    )
    assert result.exit_code == 0, result.output
    assert f"role {role} created" in result.stdout and "v_work_items" in result.stdout
    assert "correct horse" not in result.output
    with owner.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"), {"r": role}
        ).scalar_one()
    assert stored.startswith("SCRAM-SHA-256$") and "correct horse" not in stored

    rerun = runner.invoke(main, ["--config", str(config), "db", "grant-readonly", role])
    assert rerun.exit_code == 0 and f"role {role} updated" in rerun.stdout

    missing = runner.invoke(
        main, ["--config", str(config), "db", "grant-readonly", role, "--password-env", "NOPE_X"]
    )
    assert missing.exit_code == 2 and "NOPE_X is not set" in missing.stderr


@pytest.mark.postgres
def test_refuses_unsafe_role_names(owner: sa.Engine, role: str) -> None:
    for name in ('bi"; DROP TABLE work_items; --', "Reader", "pg_monitor", "postgres"):
        with pytest.raises(ConfigError, match="role name"):
            grant_readonly(owner, name)
    # An existing powerful role is never turned into (or mistaken for) a read-only one.
    with owner.begin() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" SUPERUSER'))
    with pytest.raises(ConfigError, match="superuser"):
        grant_readonly(owner, role)


def test_sqlite_has_no_roles(sqlite_url: str, tmp_path: Path) -> None:
    db.upgrade(sqlite_url)
    engine = db.create_engine(sqlite_url)
    try:
        with pytest.raises(ReadonlyUnsupported, match=r"SQLite has no roles.*mode=ro"):
            grant_readonly(engine, "bi_reader")
    finally:
        engine.dispose()

    config = tmp_path / "programview.toml"
    config.write_text(f'[warehouse]\nurl = "{sqlite_url}"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(config), "db", "grant-readonly", "bi"])
    assert result.exit_code == 2
    assert "SQLite has no roles" in result.stderr and "?mode=ro" in result.stderr
