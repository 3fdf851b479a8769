"""``programview remap``: a changed mapping option applied to the stored raw payloads, with
no API call, then the transform (issue 11).

End to end through the CLI: a Jira sync against the simulator over real HTTP, then the
config's story-points field and type map change, and ``remap`` rebuilds the rows and the
figures. The simulator's request log proves that not one request was sent (and the remap's
HTTP client refuses every request anyway); a second case runs with the simulator stopped.
A Jira status override, GitHub's and GitLab's type map and in-progress names, ``--source``
and the progress lines (a terminal's counts rewritten in place, one line elsewhere) too.
"""

from __future__ import annotations

import logging
import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

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
    path: Path,
    sim: Simulator,
    url: str,
    options: str = "",
    kinds: tuple[str, ...] = ("jira",),
    more: Mapping[str, str] | None = None,
    drop_scopes: tuple[str, ...] = (),
) -> None:
    """The simulator's config, with ``options`` (TOML inline-table entries) for sim-jira and
    ``more`` (source name -> entries) added to the other sources' options; ``drop_scopes``
    leaves those scopes (and the projects naming them) out, for a shorter sync."""
    text = sim.org.config_toml(sim.base_url, url, "cloud", kinds=list(kinds))
    if options:
        default = 'story_points_field = "auto" }'
        assert default in text
        text = text.replace(default, f"{options} }}", 1)
    for source, entries in (more or {}).items():
        text = _add_options(text, source, entries)
    for scope in drop_scopes:
        blocks = text.split("\n\n")
        text = "\n\n".join(b for b in blocks if not re.search(f'"[^"]+:{scope}"', b))
        assert f'"{scope}", ' in text or f', "{scope}"' in text, scope
        text = text.replace(f'"{scope}", ', "").replace(f', "{scope}"', "")
    path.write_text(text, encoding="utf-8")


def _add_options(text: str, source: str, entries: str) -> str:
    """``entries`` appended to the ``options = { ... }`` line of the source ``source``."""
    lines = text.split("\n")
    start = lines.index(f'name = "{source}"')
    at = next(i for i in range(start, len(lines)) if lines[i].startswith("options = {"))
    assert lines[at].endswith(" }"), lines[at]
    lines[at] = f"{lines[at][:-2]}, {entries} }}"
    return "\n".join(lines)


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


def latest_project_metrics(url: str) -> dict[str, dict[str, float]]:
    """Each project's latest ``project_metrics`` row: the figures the status decides."""
    engine = db.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT m.project_key, m.done_points, m.delivered_points, "
                    "m.throughput_per_week, m.open_bugs FROM project_metrics m "
                    "WHERE m.as_of_date = (SELECT MAX(as_of_date) FROM project_metrics n "
                    "WHERE n.project_key = m.project_key)"
                )
            ).all()
    finally:
        engine.dispose()
    return {
        r.project_key: {
            "done_points": float(r.done_points or 0),
            "delivered_points": float(r.delivered_points or 0),
            "throughput": float(r.throughput_per_week or 0),
            "open_bugs": float(r.open_bugs or 0),
        }
        for r in rows
    }


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = db.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def test_remap_applies_a_changed_status_override_to_its_project_only(
    sim: Simulator, warehouse_url: str, tmp_path: Path
) -> None:
    """``status_overrides = { PAY = { Done = "in_progress" } }``: PAY's done issues (and the
    moves into Done in their history) become in progress, so PAY delivers nothing and all its
    bugs are open; RISK, with no override, keeps its figures. No request is sent."""
    config = tmp_path / "programview.toml"
    write_config(config, sim, warehouse_url)
    assert cli(config, "sync").exit_code == 0
    before = latest_project_metrics(warehouse_url)
    assert before["PAY"]["done_points"] > 0 and before["PAY"]["throughput"] > 0

    write_config(
        config,
        sim,
        warehouse_url,
        'story_points_field = "auto", status_overrides = { PAY = { Done = "in_progress" } }',
    )
    sent = len(sim.requests)
    result = cli(config, "remap")
    assert result.exit_code == 0, result.output
    assert len(sim.requests) == sent

    by_status = dict(
        ((scope, status), category)
        for scope, status, category in query(
            warehouse_url,
            "SELECT DISTINCT scope, raw_status, status_category FROM work_items "
            "WHERE raw_status = 'Done'",
        )
    )
    assert by_status == {("PAY", "Done"): "in_progress", ("RISK", "Done"): "done"}
    moves = query(
        warehouse_url,
        "SELECT DISTINCT w.scope, c.to_category FROM status_changes c "
        "JOIN work_items w ON w.id = c.work_item_id WHERE c.to_status = 'Done'",
    )
    assert sorted(moves) == [("PAY", "in_progress"), ("RISK", "done")]

    after = latest_project_metrics(warehouse_url)
    assert after["RISK"] == before["RISK"]
    assert after["PAY"]["done_points"] == 0 and after["PAY"]["delivered_points"] == 0
    assert after["PAY"]["throughput"] == 0
    [(pay_bugs,)] = query(
        warehouse_url,
        "SELECT COUNT(*) FROM work_items "
        "WHERE scope = 'PAY' AND type_category = 'bug' AND NOT is_deleted",
    )
    assert after["PAY"]["open_bugs"] == pay_bugs > before["PAY"]["open_bugs"]


def source_rows(url: str, source: str) -> dict[str, list[tuple[object, ...]]]:
    """A source's work items and status history, row for row."""
    return {
        "work_items": sorted(
            query(url, f"SELECT * FROM work_items WHERE source_name = '{source}'"), key=repr
        ),
        "status_changes": sorted(
            query(
                url,
                "SELECT c.* FROM status_changes c JOIN work_items w ON w.id = c.work_item_id "
                f"WHERE w.source_name = '{source}'",
            ),
            key=repr,
        ),
    }


def status_and_type(url: str, source: str) -> dict[str, int]:
    rows = query(
        url,
        "SELECT "
        "SUM(CASE WHEN type_category = 'bug' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN status_category = 'in_progress' THEN 1 ELSE 0 END), "
        "COUNT(*) "
        f"FROM work_items WHERE source_name = '{source}'",
    )
    bugs, doing, items = rows[0]
    return {"bugs": int(bugs or 0), "in_progress": int(doing or 0), "items": int(items or 0)}


def test_remap_of_one_source_applies_github_and_gitlab_options_and_leaves_the_others(
    sqlite_url: str, tmp_path: Path
) -> None:
    """GitHub and GitLab: ``type_map`` turns their bugs (GitHub's Bug type and ``bug`` label,
    GitLab's ``type::bug`` label) into stories and ``in_progress`` / ``in_progress_labels``
    change which open issues are in progress. ``--source sim-github`` remaps GitHub only,
    GitLab's rows stay as they were until its own remap; the transform follows, no request
    is sent. SQLite only: the PostgreSQL write path of a remap is covered row for row above,
    and one GitLab project keeps the sync short."""
    org = generate(seed=7, size="small")
    config = tmp_path / "programview.toml"
    kinds = ("github", "gitlab")
    drop = tuple(s.path for s in org.scopes_of("gitlab")[1:])
    db.upgrade(sqlite_url)
    with serve(org) as running:
        write_config(config, running, sqlite_url, kinds=kinds, drop_scopes=drop)
        assert cli(config, "sync").exit_code == 0
        github, gitlab = (
            status_and_type(sqlite_url, "sim-github"),
            status_and_type(sqlite_url, "sim-gitlab"),
        )
        assert min(github["bugs"], github["in_progress"], gitlab["bugs"]) > 0
        assert gitlab["in_progress"] > 0
        open_bugs = sum(m["open_bugs"] for m in latest_project_metrics(sqlite_url).values())
        assert open_bugs > 0
        gitlab_rows = source_rows(sqlite_url, "sim-gitlab")

        write_config(
            config,
            running,
            sqlite_url,
            kinds=kinds,
            drop_scopes=drop,
            more={
                "sim-github": 'type_map = { bug = "story" }, in_progress = []',
                "sim-gitlab": 'type_map = { "type::bug" = "story" }',
            },
        )
        # "workflow::in dev" no longer means in progress: those issues are todo
        labels = 'in_progress_labels = ["workflow::in dev", "workflow::in review"]'
        text = config.read_text(encoding="utf-8")
        assert labels in text
        text = text.replace(labels, 'in_progress_labels = ["workflow::in review"]')
        config.write_text(text, encoding="utf-8")
        sent = len(running.requests)
        result = cli(config, "remap", "--source", "sim-github")
        assert result.exit_code == 0, result.output
        assert "remap sim-github issues: " in result.output
        assert "sim-gitlab" not in result.output
        assert status_and_type(sqlite_url, "sim-github") == {
            "bugs": 0,
            "in_progress": 0,
            "items": github["items"],
        }
        assert source_rows(sqlite_url, "sim-gitlab") == gitlab_rows  # not remapped

        result = cli(config, "remap", "--source", "sim-gitlab")
        assert result.exit_code == 0, result.output
        remapped = status_and_type(sqlite_url, "sim-gitlab")
        assert remapped["bugs"] == 0 and remapped["items"] == gitlab["items"]
        [(in_review,)] = query(
            sqlite_url,
            "SELECT COUNT(*) FROM work_items WHERE source_name = 'sim-gitlab' "
            "AND status_category <> 'done' AND labels LIKE '%workflow::in review%'",
        )
        assert remapped["in_progress"] == in_review < gitlab["in_progress"]
        # the transform ran on both: no bug is left to be open
        assert all(m["open_bugs"] == 0 for m in latest_project_metrics(sqlite_url).values())
        assert len(running.requests) == sent


def test_remap_of_an_unknown_source_names_the_configured_ones(
    sim: Simulator, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    db.upgrade(url)
    config = tmp_path / "programview.toml"
    write_config(config, sim, url)
    result = cli(config, "remap", "--source", "sim-jra")
    assert result.exit_code == 2
    assert "unknown source 'sim-jra': configured sources are sim-jira" in result.output
    assert "Traceback" not in result.output and "running the transform" not in result.output
    assert not sim.requests


def remap_lines(text: str) -> list[str]:
    """Every ``remap SOURCE STREAM: done/total`` the output shows, rewritten ones included."""
    return re.findall(r"remap \S+ \S+: [\d,]+/[\d,]+", text)


def test_remap_progress_counts_up_on_a_terminal_and_is_one_line_per_stream_elsewhere(
    sim: Simulator, sqlite_url: str, tmp_path: Path
) -> None:
    """On a terminal (a real pseudo-terminal as stderr of ``python -m programview``) the
    issues count climbs batch by batch, each rewritten in place; piped, each stream says its
    final count once. 620 issues in two projects make several batches (500 a batch)."""
    db.upgrade(sqlite_url)
    config = tmp_path / "programview.toml"
    write_config(config, sim, sqlite_url)
    assert cli(config, "sync").exit_code == 0
    [(issues,)] = query(sqlite_url, "SELECT COUNT(*) FROM raw_payloads WHERE stream = 'issues'")
    total = f"{issues:,}"

    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "programview", "--config", str(config), "remap"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=secondary,
            env={**os.environ, **TOKENS.env()},
            timeout=120,
            check=False,
        )
        os.close(secondary)
        secondary = -1
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    assert proc.returncode == 0, proc.stdout
    terminal = b"".join(chunks).decode()
    counts = [
        int(line.rsplit(": ", 1)[1].split("/")[0].replace(",", ""))
        for line in remap_lines(terminal)
        if line.startswith("remap sim-jira issues: ")
    ]
    assert len(counts) >= 3 and counts == sorted(counts)  # it climbs...
    assert 0 < counts[0] < issues and counts[-1] == issues  # ...to the total
    assert f"\r\x1b[Kremap sim-jira issues: {counts[0]:,}/{total}\r" in terminal  # in place

    piped = CliRunner().invoke(
        main, ["--config", str(config), "remap"], env=TOKENS.env(), catch_exceptions=False
    )
    assert piped.exit_code == 0, piped.output
    lines = remap_lines(piped.stderr)
    assert f"remap sim-jira issues: {total}/{total}" in lines
    assert len(lines) == len({line.split(":")[0] for line in lines})  # one line a stream
    assert all(a == b for a, b in (line.rsplit(" ", 1)[1].split("/") for line in lines))
    assert "\r" not in piped.stderr
