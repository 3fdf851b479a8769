"""Secrets never leak: every command, with distinctive tokens, against APIs that work and then
fail (401, 403, 500), scanned everywhere a secret could surface.

The simulator is made to accept distinctive credentials (so a first sync fills the warehouse
with them in use), then the APIs fail: 500 on every request, a 403 rate limit that asks for an
hour, and 401 for other distinctive tokens. Every command runs in each state. Scanned for
every token, its base64 ``email:token`` Basic form and the webhook secret: stdout, stderr,
every log record of every logger at DEBUG (httpx and httpcore included), any exception's
traceback, the whole database (every value of every table, and the file's bytes) and the
HTML, JSON and CSV outputs. Expected: zero occurrences.
"""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from programview import http
from programview.cli import main
from programview.simulator.generator import TOKENS, generate
from programview.simulator.server import Simulator, serve

pytestmark = pytest.mark.slow

GOOD = replace(
    TOKENS,
    jira_api_token="pvSECRETjiraCloud7731",
    jira_dc_pat="pvSECRETjiraDcPat4410",
    github_token="ghp_pvSECRETgithub0000000000000000009183",
    gitlab_token="glpat-pvSECRETgitlab5528",
)
WRONG = {
    "PROGRAMVIEW_SIM_JIRA_TOKEN": "pvSECRETwrongJira0291",
    "PROGRAMVIEW_SIM_JIRA_DC_TOKEN": "pvSECRETwrongDc3384",
    "PROGRAMVIEW_SIM_GITHUB_TOKEN": "ghp_pvSECRETwrongGithub000000000000007",
    "PROGRAMVIEW_SIM_GITLAB_TOKEN": "glpat-pvSECRETwrongGitlab61",
}
APIS = ("jira", "jira-dc", "github", "gitlab")
HOOK_SECRET = "pvSECREThook/T000/B000/xyzzy8841"


def secrets() -> list[str]:
    """Every secret value in play, and the encoded forms an HTTP client would send."""
    values = [GOOD.jira_api_token, GOOD.jira_dc_pat, GOOD.github_token, GOOD.gitlab_token]
    values += [*WRONG.values(), HOOK_SECRET]
    for token in (GOOD.jira_api_token, WRONG["PROGRAMVIEW_SIM_JIRA_TOKEN"]):
        basic = base64.b64encode(f"{GOOD.jira_email}:{token}".encode()).decode()
        values.append(basic)
    # Parts of a value are leaks too (a message cut at some width, a token's tail).
    return values + [v[-12:] for v in values]


@pytest.fixture(autouse=True)
def instant_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_sleep(seconds: float) -> None:
        return None

    monkeypatch.setattr(http, "_sleep", fake_sleep)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    org = generate(seed=7, size="small")
    org.tokens = GOOD
    with serve(org) as running:
        yield running


def write_config(sim: Simulator, path: Path, url: str) -> Path:
    text = sim.org.config_toml(sim.base_url, url, "cloud")
    # One GitLab project keeps it quick; a Jira Data Center source as well.
    text = text.replace(
        'scopes = ["acme/platform/api", "acme/data/etl"]', 'scopes = ["acme/data/etl"]'
    )
    text = "\n\n".join(b for b in text.split("\n\n") if "sim-gitlab:acme/platform/api" not in b)
    dc = sim.org.config_toml(sim.base_url, url, "datacenter", kinds=["jira"])
    block = dc[dc.index("[[sources]]") : dc.index("\n\n", dc.index("[[sources]]"))]
    text = text.replace(
        "[[sources]]", block.replace("sim-jira", "sim-jira-dc") + "\n\n[[sources]]", 1
    )
    text = text.replace(
        "\n[[programs]]", '\n[alerts]\nwebhook_url = "${PV_TEST_WEBHOOK}"\n\n[[programs]]', 1
    )
    path.write_text(text)
    return path


class Scan:
    """Runs commands in-process and keeps everything they said."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        self.env = env
        self.texts: list[str] = []
        self.runner = CliRunner()

    def run(self, *args: str, env: dict[str, str] | None = None) -> int:
        result = self.runner.invoke(
            main,
            ["--config", str(self.config), *args],
            env={**self.env, **(env or {})},
            catch_exceptions=True,
        )
        self.texts += [f"$ {' '.join(args)}", result.stdout, result.stderr]
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            self.texts.append("".join(traceback.format_exception(result.exception)))
        return result.exit_code


def database_text(url: str, path: Path) -> str:
    """Every value of every table (not only the ones a test thinks of) and the raw bytes."""
    engine = sa.create_engine(url)
    out = []
    try:
        with engine.connect() as conn:
            for name in sa.inspect(conn).get_table_names():
                for row in conn.execute(sa.text(f'SELECT * FROM "{name}"')):
                    out.append(" ".join(map(str, row)))
    finally:
        engine.dispose()
    for f in path.parent.glob(path.name + "*"):  # the file, -wal and -journal
        out.append(f.read_bytes().decode("latin-1"))
    return "\n".join(out)


def test_no_command_leaks_a_secret_whatever_the_apis_answer(
    sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    db_path = tmp_path / "warehouse.db"
    url = f"sqlite:///{db_path}"
    config = write_config(sim, tmp_path / "pv.toml", url)
    hook = f"{sim.base_url}/hooks/{HOOK_SECRET}"  # not an endpoint: the webhook fails (404)
    scan = Scan(config, {**GOOD.env(), "PV_TEST_WEBHOOK": hook, "PROGRAMVIEW_LOG_LEVEL": "debug"})
    out = tmp_path / "out"

    def every_command(state: str) -> dict[str, int]:
        return {
            "config check": scan.run("config", "check"),
            "sync": scan.run("sync"),
            # (a full re-read when the APIs work costs time and shows nothing new)
            "sync --full": scan.run("sync", "--full") if state != "working" else 0,
            "backfill": scan.run("backfill", "--since", "2026-10-01"),
            "daemon --once": scan.run("daemon", "--once", "--log-level", "debug"),
            "verify sprints": scan.run("verify", "sprints"),
            "transform": scan.run("transform"),
            "report": scan.run("report"),
            "report json": scan.run("report", "--format", "json"),
            "report html": scan.run("report", "--format", "html", "-o", str(out / f"{state}.html")),
            "export": scan.run("export", "--format", "csv", "-o", str(out / state)),
            "db current": scan.run("db", "current"),
        }

    assert scan.run("db", "upgrade") == 0, scan.texts
    working = every_command("working")
    assert working["sync"] == 0, scan.texts[-10:]
    assert working["report html"] == 0

    # Failing after the first requests of each API: mid-stream, not only at the auth check.
    for api in APIS:
        sim.faults.add(f"{api}:5xx:at=3,count=0,status=500")
    failing_500 = every_command("500")
    sim.faults.clear()
    assert failing_500["sync --full"] != 0

    # GitHub's 403 rate limit and the others' 429, asking for an hour: fatal at once.
    for api in APIS:
        sim.faults.add(f"{api}:ratelimit:at=3,count=0,retry_after=3600")
    failing_403 = every_command("403")
    sim.faults.clear()
    assert failing_403["sync --full"] != 0

    scan.env.update(WRONG)
    failing_401 = every_command("401")
    assert failing_401["sync --full"] != 0
    assert any("401" in t for t in scan.texts)

    haystacks = {
        "output": "\n".join(scan.texts),
        "logs": "\n".join(
            r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
            for r in caplog.records
        ),
        "database": database_text(url, db_path),
        "files": "\n".join(
            f.read_bytes().decode("utf-8", "replace") for f in out.rglob("*") if f.is_file()
        ),
    }
    assert len(haystacks["files"]) > 10_000  # the report and export really were written
    leaks = [
        f"{where}: …{text[max(0, text.find(s) - 60) : text.find(s) + len(s) + 20]!r}…"
        for where, text in haystacks.items()
        for s in secrets()
        if s in text
    ]
    assert not leaks, "\n".join(leaks)
