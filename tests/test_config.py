"""Config validation: one clear message per problem, naming the key path and the file line,
and never a secret."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import ClassVar, Literal

import pytest
from pydantic import Field

from programview.config import cron_trigger, load_config, parse_config, resolve_path
from programview.errors import ConfigError
from programview.sync import registry
from programview.sync.connector import Connector, ConnectorOptions, Stream

ROOT = Path(__file__).resolve().parent.parent

# --- a connector kind that exists only in these tests ----------------------------------------


class FakeOptions(ConnectorOptions):
    story_points_field: str | None = None
    page_size: int = Field(100, ge=1)
    type_map: dict[str, Literal["story", "bug"]] = Field(default_factory=dict)


class FakeConnector(Connector):
    kind = "fakekind"
    options_model = FakeOptions
    credential_keys: ClassVar[tuple[str, ...]] = ("token",)

    def streams(self) -> list[Stream]:
        return []


@pytest.fixture
def kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed connectors = ``fakekind`` (valid) and ``brokenkind`` (fails to import)."""
    eps = {
        "fakekind": EntryPoint("fakekind", f"{__name__}:FakeConnector", registry.GROUP),
        "brokenkind": EntryPoint("brokenkind", "no_such_module_xyz:Thing", registry.GROUP),
    }
    monkeypatch.setattr(registry, "connector_entry_points", lambda: dict(eps))


ENV = {"FAKE_TOKEN": "tok-0123456789abcdef"}

SOURCE = """\
[[sources]]
name = "src"
kind = "fakekind"
base_url = "https://tracker.example.com"
scopes = ["PAY", "WEB"]
credentials = { token = "${FAKE_TOKEN}" }
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    """The problems ``text`` has (dedented), asserting that it is rejected."""
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), path="pv.toml", environ=ENV if env is None else env)
    assert str(info.value).startswith("pv.toml: ")
    return info.value.problems


def only(text: str, env: dict[str, str] | None = None) -> str:
    found = problems(text, env)
    assert len(found) == 1, found
    return found[0]


# --- valid input ----------------------------------------------------------------------------


def test_defaults_without_any_key() -> None:
    config = parse_config("", environ={})
    assert config.warehouse.url == "sqlite:///programview.db"
    assert config.sync.schedule == "*/30 * * * *"
    assert config.sources == [] and config.projects == [] and config.programs == []


def test_valid_config_resolves_secrets_and_scopes(kinds: None) -> None:
    config = parse_config(
        SOURCE
        + textwrap.dedent(
            """
            [[programs]]
            key = "PLAT"
            name = "Platform"
            start = 2025-01-01
            end = 2025-12-31

            [[projects]]
            key = "PAY"
            name = "Payments"
            program = "PLAT"
            scopes = ["src:PAY"]
            """
        ),
        environ=ENV,
    )
    assert config.source("src").secret("token") == ENV["FAKE_TOKEN"]
    assert config.project_of_scope("src", "PAY").key == "PAY"  # type: ignore[union-attr]
    assert config.project_of_scope("src", "WEB") is None
    assert config.projects[0].split_scopes() == [("src", "PAY")]


def test_example_config_is_valid() -> None:
    """config.example.toml is what users copy: it must load (with its variables set)."""
    text = (ROOT / "config.example.toml").read_text()
    kinds_used = set(re.findall(r'^kind\s*=\s*"([^"]+)"', text, re.M))
    for kind in sorted(kinds_used):
        registry.load_connector(kind)  # every kind the example uses ships with programview
    env = {
        name: f"https://hooks.example.com/{name}" if "URL" in name else f"value-of-{name}"
        for name in re.findall(r"\$\{(\w+)\}", text)
    }
    config = parse_config(text, path="config.example.toml", environ=env)
    assert {s.kind for s in config.sources} == kinds_used
    assert config.projects and config.programs


def test_example_github_block_is_valid_once_uncommented() -> None:
    """The commented GitHub source of the example works as written when uncommented."""
    text = (ROOT / "config.example.toml").read_text()
    start = text.index("# --- GitHub")
    end = text.index("\n# --- ", start) + 1  # the next section
    block = [line.removeprefix("# ") for line in text[start:end].splitlines()[1:]]
    assert any(line.startswith("kind = ") for line in block)
    text = text[:start] + "\n".join(block) + "\n" + text[end:]
    text = text.replace('scopes = ["jira:WEB"]', 'scopes = ["jira:WEB", "github:acme/web"]')
    env = {
        name: f"https://hooks.example.com/{name}" if "URL" in name else f"value-of-{name}"
        for name in re.findall(r"\$\{(\w+)\}", text)
    }
    config = parse_config(text, path="config.example.toml", environ=env)
    github = config.source("github")
    assert github.kind == "github" and github.scopes == ["acme/web", "acme-mobile"]
    assert github.options["projects"] == ["acme/7"]
    assert config.project_of_scope("github", "acme/web").key == "WEB"  # type: ignore[union-attr]


def test_example_gitlab_block_is_valid_once_uncommented() -> None:
    """The commented GitLab source of the example works as written when uncommented, with
    the issue's keys: a group scope, the token, in_progress_labels."""
    text = (ROOT / "config.example.toml").read_text()
    start = text.index("# --- GitLab")
    end = text.index("\n# --- ", start) + 1
    block = [line.removeprefix("# ") for line in text[start:end].splitlines()[1:]]
    text = text[:start] + "\n".join(block) + "\n" + text[end:]
    text = text.replace('scopes = ["jira:WEB"]', 'scopes = ["jira:WEB", "gitlab:acme/platform"]')
    env = {
        name: f"https://hooks.example.com/{name}" if "URL" in name else f"value-of-{name}"
        for name in re.findall(r"\$\{(\w+)\}", text)
    }
    config = parse_config(text, path="config.example.toml", environ=env)
    gitlab = config.source("gitlab")
    assert gitlab.kind == "gitlab" and gitlab.scopes == ["acme/pay", "acme/platform"]
    assert gitlab.options["in_progress_labels"] == ["workflow::in dev", "workflow::review"]
    assert gitlab.secret("token") == "value-of-GITLAB_TOKEN"
    assert config.project_of_scope("gitlab", "acme/platform").key == "WEB"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="in_progress_label"):
        parse_config(
            text.replace("in_progress_labels =", "in_progress_label ="),
            path="config.example.toml",
            environ=env,
        )


# --- unknown keys -----------------------------------------------------------------------------


def test_unknown_top_level_key() -> None:
    message = only('[warehouse]\nurl = "sqlite:///x.db"\n\n[syncs]\nconcurrency = 2\n')
    assert message == "syncs (line 4): unknown key 'syncs' (did you mean 'sync'?)"


def test_path_is_not_a_key_of_the_file() -> None:
    """``Config.path`` records where the file came from; the file cannot set it."""
    assert only('path = "elsewhere.toml"\n') == "path (line 1): unknown key 'path'"


def test_unknown_key_lists_allowed_keys_when_nothing_is_close(kinds: None) -> None:
    message = only(SOURCE + 'colour = "red"\n')
    assert message == (
        "sources[0].colour (line 7): unknown key 'colour' "
        "(allowed here: base_url, credentials, kind, name, options, scopes)"
    )


def test_unknown_key_in_second_source_suggests_the_close_one(kinds: None) -> None:
    second = SOURCE.replace('name = "src"', 'name = "src2"').replace("scopes =", "scope =")
    message = only(SOURCE + "\n" + second)
    assert message == "sources[1].scope (line 12): unknown key 'scope' (did you mean 'scopes'?)"


def test_unknown_option_of_a_known_kind(kinds: None) -> None:
    text = SOURCE + '[sources.options]\nstory_point_field = "customfield_10016"\n'
    assert only(text) == (
        "sources[0].options.story_point_field (line 8): unknown key 'story_point_field' "
        "(did you mean 'story_points_field'?)"
    )


def test_wrong_type_of_an_option(kinds: None) -> None:
    text = SOURCE + '[sources.options]\npage_size = "many"\n'
    assert only(text) == (
        "sources[0].options.page_size (line 8): wrong type: expected an integer, got string 'many'"
    )


def test_options_are_checked_even_when_another_section_is_wrong(kinds: None) -> None:
    text = SOURCE + '[sources.options]\npage_size = 0\n\n[sync]\nconcurrency = "x"\n'
    assert problems(text) == [
        "sources[0].options.page_size (line 8): input should be greater than or equal to 1",
        "sync.concurrency (line 11): wrong type: expected an integer, got string 'x'",
    ]


def test_five_typos_one_in_the_options_of_a_source_with_its_own_typo_in_one_pass(
    kinds: None,
) -> None:
    """Four typos around the file and a fifth in [sources.options] of a source that is
    itself wrong: all five are listed at once, in file order."""
    text = (
        SOURCE.replace('base_url = "https', 'base_ur = "https')
        + '[sources.options]\nstory_point_field = "customfield_10016"\n\n'
        + "[sync]\nconcurency = 2\nlookback_minute = 5\n\n[metrics]\nvelocity_sprint = 3\n"
    )
    found = problems(text)
    assert [p.split(":", 1)[0] for p in found] == [
        "sources[0] (line 1)",
        "sources[0].base_ur (line 4)",
        "sources[0].options.story_point_field (line 8)",
        "sync.concurency (line 11)",
        "sync.lookback_minute (line 12)",
        "metrics.velocity_sprint (line 15)",
    ]
    assert "did you mean 'story_points_field'?" in found[2]


def test_keys_that_need_quotes_are_quoted_in_messages(kinds: None) -> None:
    text = SOURCE + '[sources.options]\ntype_map = { "Change Request" = "feature" }\n'
    assert only(text) == (
        'sources[0].options.type_map."Change Request" (line 8): input should be '
        "'story' or 'bug', got 'feature'"
    )


def test_choice_errors_show_what_was_given() -> None:
    text = '[alerts.severity]\nblocker_stalled = "urgent"\n'
    assert only(text) == (
        "alerts.severity.blocker_stalled (line 2): input should be 'low', 'medium', 'high' "
        "or 'critical', got 'urgent'"
    )


def test_unknown_source_kind(kinds: None) -> None:
    message = only(SOURCE.replace('kind = "fakekind"', 'kind = "jiira"'))
    assert message.startswith("sources[0].kind (line 3): unknown kind 'jiira'")
    assert "installed connectors: brokenkind, fakekind" in message


def test_connector_that_cannot_be_imported(kinds: None) -> None:
    message = only(SOURCE.replace("fakekind", "brokenkind"))
    assert message.startswith(
        "sources[0].kind (line 3): connector 'brokenkind' (no_such_module_xyz:Thing) "
        "cannot be loaded: ModuleNotFoundError"
    )


def test_credentials_the_kind_does_not_know_and_none_it_needs(kinds: None) -> None:
    text = SOURCE.replace("{ token =", "{ tokn =")
    assert problems(text) == [
        "sources[0].credentials.tokn (line 6): unknown credential 'tokn' for kind "
        "'fakekind' (accepted: token)",
        "sources[0].credentials (line 6): kind 'fakekind' needs credentials: one or more of token",
    ]


# --- wrong types and values -----------------------------------------------------------------


def test_wrong_types_name_expected_and_given() -> None:
    text = """\
    [sync]
    concurrency = "four"
    lookback_minutes = 1.5

    [[programs]]
    key = "P"
    name = "Program"
    start = "next spring"
    """
    assert problems(text) == [
        "sync.concurrency (line 2): wrong type: expected an integer, got string 'four'",
        "sync.lookback_minutes (line 3): wrong type: expected an integer, got float 1.5",
        "programs[0].start (line 8): wrong type: expected a date (YYYY-MM-DD), "
        "got string 'next spring'",
    ]


def test_out_of_range_value() -> None:
    assert only("[sync]\nconcurrency = 0\n") == (
        "sync.concurrency (line 2): input should be greater than or equal to 1"
    )


def test_missing_required_key() -> None:
    assert only('[[programs]]\nname = "No key"\n') == (
        "programs[0] (line 1): missing required key 'key'"
    )


def test_source_name_with_a_colon_is_rejected(kinds: None) -> None:
    assert only(SOURCE.replace('name = "src"', 'name = "jira:prod"')) == (
        "sources[0].name (line 2): may only contain letters, digits, '_', '.' and '-'"
    )


def test_end_before_start() -> None:
    text = '[[programs]]\nkey = "P"\nname = "P"\nstart = 2025-06-01\nend = 2025-01-01\n'
    assert only(text) == "programs[0].end (line 5): end 2025-01-01 is before start 2025-06-01"


# --- environment variables and secrets ----------------------------------------------------------


def test_missing_environment_variable_names_variable_key_and_line(kinds: None) -> None:
    assert only(SOURCE, env={}) == (
        "sources[0].credentials.token (line 6): environment variable FAKE_TOKEN is not set"
    )


def test_missing_variable_in_a_credentials_sub_table(kinds: None) -> None:
    text = SOURCE.replace('credentials = { token = "${FAKE_TOKEN}" }\n', "")
    text += '\n[sources.credentials]\n# the token of the bot user\ntoken = "${BOT_TOKEN}"\n'
    assert only(text) == (
        "sources[0].credentials.token (line 9): environment variable BOT_TOKEN is not set"
    )


def test_commands_that_call_no_api_do_not_need_source_tokens(kinds: None) -> None:
    """transform, report, costs and db run on BI hosts that hold no API tokens."""
    config = parse_config(SOURCE, environ={}, source_secrets=False)
    assert config.sources[0].secret("token") == ""
    # a literal secret is still refused, and a sync (the default) still needs the token
    with pytest.raises(ConfigError):
        parse_config(SOURCE.replace("${FAKE_TOKEN}", "literal"), environ={}, source_secrets=False)
    with pytest.raises(ConfigError, match="FAKE_TOKEN is not set"):
        parse_config(SOURCE, environ={})


def test_empty_environment_variable(kinds: None) -> None:
    assert only(SOURCE, env={"FAKE_TOKEN": ""}) == (
        "sources[0].credentials.token (line 6): environment variable FAKE_TOKEN is empty"
    )


def test_literal_secret_is_rejected_without_echoing_it(kinds: None) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(SOURCE.replace("${FAKE_TOKEN}", "ghp_literal_secret_value"), environ=ENV)
    assert info.value.problems == [
        "sources[0].credentials.token (line 6): secrets must come from the environment: "
        'write an environment variable reference like "${MY_TOKEN}", not the value itself'
    ]
    assert "ghp_literal_secret_value" not in str(info.value)


def test_literal_webhook_url_is_rejected_without_echoing_it() -> None:
    url = "https://hooks.slack.com/services/T000/B000/literalsecret"
    with pytest.raises(ConfigError) as info:
        parse_config(f'[alerts]\nwebhook_url = "{url}"\n', environ={})
    assert info.value.problems[0].startswith(
        "alerts.webhook_url (line 2): secrets must come from the environment"
    )
    assert "literalsecret" not in str(info.value)


def test_webhook_url_that_is_not_a_url_is_not_echoed() -> None:
    env = {"HOOK": "hooks.slack.com/services/T000/B000/notaurl"}
    with pytest.raises(ConfigError) as info:
        parse_config('[alerts]\nwebhook_url = "${HOOK}"\n', environ=env)
    assert info.value.problems == [
        "alerts.webhook_url (line 2): must be an http:// or https:// URL"
    ]


def test_unset_webhook_variable_is_one_problem() -> None:
    assert only('[alerts]\nwebhook_url = "${HOOK}"\n', env={}) == (
        "alerts.webhook_url (line 2): environment variable HOOK is not set"
    )


def test_literal_password_in_warehouse_url_is_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config('[warehouse]\nurl = "postgresql://pv:hunter22@db/pv"\n', environ={})
    assert info.value.problems[0].startswith(
        "warehouse.url (line 2): the URL holds a literal password"
    )
    assert "hunter22" not in str(info.value)


def test_base_url_with_user_and_password_is_rejected_without_echo(kinds: None) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(SOURCE.replace("https://tracker", "https://bot:pa55word@tracker"), environ=ENV)
    assert info.value.problems == [
        "sources[0].base_url (line 4): must not contain a user name or password; use credentials"
    ]
    assert "pa55word" not in str(info.value)


def test_secret_of_the_wrong_type_is_not_shown(kinds: None) -> None:
    text = SOURCE.replace('"${FAKE_TOKEN}"', "1234567890")
    assert only(text) == (
        "sources[0].credentials.token (line 6): wrong type: expected a string, "
        "got integer (value hidden)"
    )


def test_secrets_never_in_repr_errors_or_logs(
    kinds: None, caplog: pytest.LogCaptureFixture
) -> None:
    token, password, hook = "tok-AAAA1111", "pw-BBBB2222", "https://hooks.example/CCCC3333"
    env = {
        "FAKE_TOKEN": token,
        "PGPASS": password,
        "HOOK": hook,
    }
    text = (
        '[warehouse]\nurl = "postgresql://pv:${PGPASS}@db.example/pv"\n\n'
        '[alerts]\nwebhook_url = "${HOOK}"\n\n' + SOURCE
    )
    caplog.set_level(logging.DEBUG)
    config = parse_config(text, environ=env)
    logging.getLogger("programview.test").info("loaded %r / %s", config, config)

    # Sanity: the secrets did arrive where they are needed.
    assert config.warehouse.url == f"postgresql://pv:{password}@db.example/pv"
    assert config.source("src").secret("token") == token
    assert config.alerts.webhook_url is not None
    assert config.alerts.webhook_url.get_secret_value() == hook
    assert config.warehouse.safe_url == "postgresql://pv:***@db.example/pv"

    # A broken version of the same file: the error must not leak them either.
    with pytest.raises(ConfigError) as info:
        parse_config(text + "bogus = 1\n[sync]\nconcurrency = 'x'\n", environ=env)
    assert len(info.value.problems) == 2

    for shown in (repr(config), str(config), caplog.text, str(info.value)):
        for secret in (token, password, hook, "CCCC3333"):
            assert secret not in shown


# --- cross references ------------------------------------------------------------------------


PROJECTS = """
[[programs]]
key = "PLAT"
name = "Platform"

[[projects]]
key = "PAY"
name = "Payments"
program = "PLAT"
scopes = ["src:PAY"]
"""


def test_project_pointing_at_unknown_source(kinds: None) -> None:
    text = SOURCE + PROJECTS.replace('"src:PAY"', '"src:PAY", "gitlab:acme/pay"')
    assert only(text) == (
        "projects[0].scopes[1] (line 16): scope 'gitlab:acme/pay' points at unknown source "
        "'gitlab' (configured sources: src)"
    )


def test_project_scope_the_source_does_not_sync(kinds: None) -> None:
    text = SOURCE + PROJECTS.replace('"src:PAY"', '"src:OPS"')
    assert only(text) == (
        "projects[0].scopes[0] (line 16): scope 'OPS' is not in sources[0].scopes of 'src', "
        "so it is never synced"
    )


def test_project_scope_without_source_name(kinds: None) -> None:
    text = SOURCE + PROJECTS.replace('"src:PAY"', '"PAY"')
    assert only(text) == (
        "projects[0].scopes[0] (line 16): scope 'PAY' must be \"source-name:scope\", "
        'e.g. "jira:PAY" or "github:acme/web"'
    )


def test_project_pointing_at_unknown_program(kinds: None) -> None:
    text = SOURCE + PROJECTS.replace('program = "PLAT"', 'program = "PLATFORM"')
    assert only(text) == (
        "projects[0].program (line 15): unknown program 'PLATFORM' (configured programs: PLAT)"
    )


def test_scope_claimed_by_two_projects(kinds: None) -> None:
    second = '\n[[projects]]\nkey = "PAY2"\nname = "Pay 2"\nscopes = ["src:PAY"]\n'
    text = SOURCE + PROJECTS + second
    assert only(text) == (
        "projects[1].scopes[0] (line 21): scope 'src:PAY' already belongs to project 'PAY' "
        "(a scope belongs to one project)"
    )


def test_duplicate_source_names(kinds: None) -> None:
    assert only(SOURCE + "\n" + SOURCE) == (
        "sources[1].name (line 9): duplicate name 'src' (already used by sources[0], line 2)"
    )


def test_duplicate_project_keys(kinds: None) -> None:
    text = SOURCE + PROJECTS + '\n[[projects]]\nkey = "PAY"\nname = "Payments again"\n'
    assert only(text) == (
        "projects[1].key (line 19): duplicate key 'PAY' (already used by projects[0], line 13)"
    )


def test_duplicate_toml_key_names_key_and_line() -> None:
    assert only('[sync]\nschedule = "0 * * * *"\nconcurrency = 2\nschedule = "5 * * * *"\n') == (
        "line 4: duplicate key 'schedule' (TOML allows each key once per table)"
    )


def test_duplicate_toml_table() -> None:
    assert only("[sync]\nconcurrency = 2\n\n[sync]\nlookback_minutes = 5\n") == (
        "line 4: duplicate table [sync] (TOML allows each table once)"
    )


def test_invalid_toml_syntax_has_line() -> None:
    message = only('[sync]\nschedule = "0 * * * *\n')
    assert message.startswith("line 2: not valid TOML:")


def test_every_problem_at_once_in_file_order(kinds: None) -> None:
    text = SOURCE.replace("scopes =", "scope =") + PROJECTS.replace('"PLAT"\nscopes', '"X"\nscopes')
    text += "[sync]\nschedule = '* * *'\n"
    found = problems(text, env={})
    lines = [int(m.group(1)) for p in found for m in [re.search(r"\(line (\d+)\)", p)] if m]
    assert len(found) == 3  # cross-references are checked once the file parses as a whole
    assert lines == sorted(lines)
    assert found[0].startswith("sources[0].scope (line 5): unknown key 'scope'")
    assert found[1].startswith("sources[0].credentials.token (line 6): environment variable")
    assert found[2].startswith("sync.schedule (line 18): must be a 5-field cron expression")


# --- the schedule ------------------------------------------------------------------------------


def test_cron_with_wrong_field_count() -> None:
    assert only('[sync]\nschedule = "*/5 * * *"\n') == (
        "sync.schedule (line 2): must be a 5-field cron expression (minute hour day month "
        "weekday), got 4 field(s) in '*/5 * * *'"
    )


def test_cron_with_impossible_value() -> None:
    message = only('[sync]\nschedule = "75 * * * *"\n')
    assert message.startswith("sync.schedule (line 2): not a valid cron expression '75 * * * *'")
    assert "59" in message


@pytest.mark.parametrize(
    ("weekday", "expected"),
    [("1", "Monday"), ("0", "Sunday"), ("7", "Sunday"), ("5", "Friday"), ("sat", "Saturday")],
)
def test_cron_weekdays_mean_what_crontab_means(weekday: str, expected: str) -> None:
    """APScheduler counts Monday as 0; crontab(5) counts Sunday as 0 and 7."""
    trigger = cron_trigger(f"0 9 * * {weekday}")
    # 2025-01-01 was a Wednesday.
    fire = trigger.get_next_fire_time(None, datetime(2025, 1, 1, tzinfo=UTC))
    assert fire is not None and fire.strftime("%A %H:%M") == f"{expected} 09:00"


def test_cron_weekday_range_and_step() -> None:
    trigger = cron_trigger("0 9 * * 1-5/2")  # Mon, Wed, Fri
    start = datetime(2025, 1, 5, tzinfo=UTC)  # a Sunday
    days = []
    for _ in range(3):
        start = trigger.get_next_fire_time(None, start)  # type: ignore[assignment]
        days.append(start.strftime("%a"))
        start = start.replace(minute=1)
    assert days == ["Mon", "Wed", "Fri"]


# --- which file -------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_file_not_found_says_how_to_choose_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml", environ={})
    assert str(info.value).startswith(f"config file not found: {tmp_path / 'nope.toml'}")
    assert "--config" in str(info.value) and "PROGRAMVIEW_CONFIG" in str(info.value)


def test_config_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = write(tmp_path / "explicit.toml", "[sync]\nconcurrency = 1\n")
    from_env = write(tmp_path / "env.toml", "[sync]\nconcurrency = 2\n")
    write(tmp_path / "programview.toml", "[sync]\nconcurrency = 3\n")
    monkeypatch.chdir(tmp_path)
    env = {"PROGRAMVIEW_CONFIG": str(from_env)}

    assert resolve_path(explicit, environ=env) == explicit
    assert load_config(explicit, environ=env).sync.concurrency == 1
    assert load_config(None, environ=env).sync.concurrency == 2
    assert load_config(None, environ={}).sync.concurrency == 3
    loaded = load_config(None, environ={})
    assert loaded.path == "programview.toml"

    monkeypatch.setenv("PROGRAMVIEW_CONFIG", str(from_env))
    assert load_config().sync.concurrency == 2


def test_warehouse_url_override(tmp_path: Path) -> None:
    path = write(tmp_path / "pv.toml", '[warehouse]\nurl = "sqlite:///from-file.db"\n')
    assert load_config(path, environ={}).warehouse.url == "sqlite:///from-file.db"
    override = {"PROGRAMVIEW_WAREHOUSE_URL": "postgresql://pv@db.example:5432/pv"}
    assert (
        load_config(path, environ=override).warehouse.url == override["PROGRAMVIEW_WAREHOUSE_URL"]
    )
    # Also without any [warehouse] table in the file.
    bare = write(tmp_path / "bare.toml", "")
    assert load_config(bare, environ=override).warehouse.url.startswith("postgresql://")


def test_warehouse_url_override_may_carry_a_password() -> None:
    """The variable is where a password belongs; only a literal one in the file is refused."""
    env = {"PROGRAMVIEW_WAREHOUSE_URL": "postgresql://pv:s3cr3tpw@db/pv"}
    config = parse_config('[warehouse]\nurl = "sqlite:///x.db"\n', environ=env)
    assert "s3cr3tpw" not in repr(config)
    assert config.warehouse.safe_url == "postgresql://pv:***@db/pv"


def test_source_lookup_error_lists_configured_sources(kinds: None) -> None:
    config = parse_config(SOURCE, path="pv.toml", environ=ENV)
    with pytest.raises(ConfigError, match=r"unknown source 'jira': configured sources are src"):
        config.source("jira")


# --- documentation stays in step with the models -----------------------------------------


def documented_keys() -> set[str]:
    """``section.key`` for every key of every section of the config (one level deep)."""
    from pydantic import BaseModel

    from programview.config import Config, _unwrap_optional

    keys = set()
    for section, field in Config.model_fields.items():
        if field.exclude:
            continue
        model = _unwrap_optional(field.annotation)
        if getattr(model, "__origin__", None) is list:
            model = model.__args__[0]
        assert isinstance(model, type) and issubclass(model, BaseModel)
        keys.update(f"{section}.{name}" for name in model.model_fields)
    return keys


def test_every_key_is_in_the_docs_and_the_example() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text()
    example = (ROOT / "config.example.toml").read_text()
    keys = documented_keys()

    assert sorted(k for k in keys if f"`{k}`" not in docs) == []
    not_in_example = []
    for key in keys:
        section, name = key.split(".")
        pattern = rf"^\s*(#\s*)?({re.escape(name)}\s*=|\[{re.escape(key)}\])"
        if not re.search(pattern, example, re.M):
            not_in_example.append(key)
    assert sorted(not_in_example) == []

    sections = "|".join(sorted({k.split(".")[0] for k in keys}))
    stale = set(re.findall(rf"`((?:{sections})\.\w+)`", docs)) - keys
    assert sorted(stale) == [], "docs/configuration.md names keys that do not exist"


# --- the shipped example and `config init` ------------------------------------------------------


def readme_exports() -> dict[str, str]:
    """The variables the README's quick start exports (``export A=x B=y``)."""
    readme = (ROOT / "README.md").read_text()
    names: dict[str, str] = {}
    for line in re.findall(r"^export (.+?)(?:\s+#.*)?$", readme, re.M):
        for assignment in line.split():
            name, _, _value = assignment.partition("=")
            names[name] = f"value-of-{name}"
    return names


def run_cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess with only ``env`` (plus PATH and HOME) in its environment."""
    base = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    return subprocess.run(
        [sys.executable, "-m", "programview", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def test_config_init_writes_the_example_which_passes_check_with_the_readme_variables(
    tmp_path: Path,
) -> None:
    exports = readme_exports()
    assert set(exports) == {"JIRA_EMAIL", "JIRA_API_TOKEN"}

    init = run_cli(["config", "init"], tmp_path, {})
    assert init.returncode == 0, init.stderr
    written = tmp_path / "programview.toml"
    assert written.read_text() == (ROOT / "config.example.toml").read_text()
    assert f"wrote {written.name}" in init.stdout

    check = run_cli(["config", "check"], tmp_path, exports)
    assert check.returncode == 0, check.stderr
    assert "alerts: webhook not set" in check.stdout
    # Without the README's variables it names them, and only them.
    missing = run_cli(["config", "check"], tmp_path, {})
    assert missing.returncode == 2
    named = set(re.findall(r"environment variable (\w+) is not set", missing.stderr))
    assert named == set(exports)

    again = run_cli(["config", "init"], tmp_path, {})
    assert again.returncode == 2
    assert "already exists" in again.stderr and "--force" in again.stderr
    written.write_text("# mine\n")
    forced = run_cli(["config", "init", "--force"], tmp_path, {})
    assert forced.returncode == 0 and written.read_text().startswith("# programview configuration")


def test_every_built_in_connector_option_is_documented() -> None:
    """Each connector's ``[sources.options]`` keys are in docs/configuration.md under its kind."""
    docs = (ROOT / "docs" / "configuration.md").read_text()
    for kind, cls in registry.installed_connectors().items():
        if cls.__module__.startswith("programview_testconnector"):
            continue
        heading = docs.find(f'(`kind = "{kind}"`)')
        assert heading >= 0, f"docs/configuration.md has no section for kind {kind!r}"
        end = docs.find("\n#### ", heading + 1)
        section = docs[heading : end if end >= 0 else None]
        missing = [k for k in cls.options_model.model_fields if f"`{k}`" not in section]
        assert missing == [], f"{kind}: options not documented: {missing}"
