"""Loading and validating the one config file (TOML).

Why a custom layer over pydantic: users get *one clear message per problem*, naming the key
path and the file line (``sources[1].credentials.api_token (line 14): environment variable
JIRA_API_TOKEN is not set``), every problem of the file at once (sorted by line), and secrets
referenced as ``${ENV_VAR}`` are resolved into ``SecretStr`` so they never reach ``repr``, logs
or error messages.

Which file: ``--config`` on the CLI, else ``$PROGRAMVIEW_CONFIG``, else ``./programview.toml``.
``$PROGRAMVIEW_WAREHOUSE_URL`` overrides ``[warehouse] url``. Every key is documented in
``config.example.toml`` and ``docs/configuration.md``.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import types
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from programview.errors import ConfigError
from programview.transform.settings import (
    AlertsConfig,
    ForecastConfig,
    HealthConfig,
    MetricsConfig,
)

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

DEFAULT_PATH = "programview.toml"
DEFAULT_WAREHOUSE_URL = "sqlite:///programview.db"
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

Loc = tuple[str | int, ...]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WarehouseConfig(_Strict):
    #: SQLAlchemy URL. May hold a password, so it is kept out of ``repr``; show ``safe_url``.
    url: str = Field(DEFAULT_WAREHOUSE_URL, repr=False)

    @property
    def safe_url(self) -> str:
        """The URL with any password replaced by ``***``: for messages and logs."""
        from programview.warehouse.db import redact_url

        return redact_url(self.url)


class SyncConfig(_Strict):
    #: Cron expression (5 fields, UTC, day of week 0-7 with 0 and 7 = Sunday) for the daemon.
    schedule: str = "*/30 * * * *"
    #: Incremental cursors re-read this many minutes before the last cursor (clock skew,
    #: minute-precision filters); duplicates are dropped by stable id.
    lookback_minutes: int = Field(10, ge=0)
    #: How many source × scope × stream jobs run at once.
    concurrency: int = Field(4, ge=1, le=64)
    #: Deletion reconcile (cheap key listing) at most this often per scope.
    reconcile_hours: float = Field(24.0, ge=0)
    #: Data older than this is stale for ``programview status`` and ``/healthz``
    #: (``"2h"``, ``"90m"``, ``"1d12h"``); unset: only failed runs are unhealthy.
    max_age: str | None = None

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        cron_trigger(value)  # raises ValueError with the reason
        return value

    @field_validator("max_age")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)  # raises ValueError with the reason
        return value

    @property
    def max_age_delta(self) -> timedelta | None:
        return parse_duration(self.max_age) if self.max_age else None

    def trigger(self) -> CronTrigger:
        """The schedule as an APScheduler trigger (UTC)."""
        return cron_trigger(self.schedule)


class SourceConfig(_Strict):
    #: Referenced by projects as ``"name:scope"`` and stored with every synced row.
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    #: Connector kind: an entry point of the ``programview.connectors`` group.
    kind: str
    base_url: str
    #: Secrets by name (kind-specific: ``token``, ``email`` + ``api_token``…), each written as
    #: an ``${ENV_VAR}`` reference in the file.
    credentials: dict[str, SecretStr] = Field(default_factory=dict)
    scopes: list[str] = Field(default_factory=list)
    #: Kind-specific options, validated by the connector's ``options_model``.
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        if "@" in urlsplit(value).netloc:
            # Never echo the value: it holds a user name and maybe a password.
            raise ValueError("must not contain a user name or password; use credentials")
        return value.rstrip("/")

    def secret(self, key: str) -> str | None:
        """The plain value of credential ``key`` (only for building request headers)."""
        value = self.credentials.get(key)
        return value.get_secret_value() if value is not None else None


class ProgramConfig(_Strict):
    key: str = Field(min_length=1)
    name: str
    budget: float | None = Field(None, ge=0)
    start: date | None = None
    end: date | None = None


class ProjectConfig(_Strict):
    key: str = Field(min_length=1)
    name: str
    program: str | None = None
    #: ``"source-name:scope"`` strings: which synced scopes make up this project.
    scopes: list[str] = Field(default_factory=list)
    budget: float | None = Field(None, ge=0)
    start: date | None = None
    end: date | None = None
    hourly_rate: float | None = Field(None, ge=0)

    def split_scopes(self) -> list[tuple[str, str]]:
        """``"source:scope"`` strings as (source, scope) pairs."""
        pairs = []
        for text in self.scopes:
            source, _, scope = text.partition(":")
            pairs.append((source, scope))
        return pairs


class BenefitConfig(_Strict):
    """One entry of the benefits register: what a program promised to improve, by when.

    Measurements over time are imported (``programview benefits import``); the transform
    turns them into realisation, on-track and money figures (docs/metrics.md, "Benefits").
    """

    program: str = Field(min_length=1)
    #: Referenced by the measurements file; unique across the register.
    key: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str
    unit: str = ""
    baseline: float
    target: float
    target_date: date
    #: Money realised per unit of improvement towards the target (optional: without it the
    #: benefit has no money value and does not count in the program's ROI).
    value_per_unit: float | None = None

    @model_validator(mode="after")
    def _moves(self) -> BenefitConfig:
        if self.target == self.baseline:
            raise ValueError(
                f"target equals baseline ({self.baseline:g}): nothing to realise, so no "
                "realisation % can be computed"
            )
        return self


class PersonConfig(_Strict):
    """One person as they appear in several tools, so their load adds up across projects.

    People are matched automatically by e-mail where a tool gives one; ``aliases`` name the
    other identities: a login (``ada.okafor``), a display name, or ``source:id`` (a warehouse
    people id such as ``jira:5b10a2844c20165700ede21g``, or ``github:ada-o``).
    """

    name: str = Field(min_length=1)
    emails: list[str] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)
    #: This person's own WIP limit for ``shared_resource_contention`` (part-time people…);
    #: default ``[alerts] wip_limit``.
    wip_limit: int | None = Field(None, ge=1)

    def tokens(self) -> set[str]:
        """Everything that identifies this person, lower-cased."""
        return {t.strip().lower() for t in (self.name, *self.emails, *self.aliases) if t.strip()}


class Config(_Strict):
    warehouse: WarehouseConfig = Field(default_factory=WarehouseConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    programs: list[ProgramConfig] = Field(default_factory=list)
    projects: list[ProjectConfig] = Field(default_factory=list)
    benefits: list[BenefitConfig] = Field(default_factory=list)
    people: list[PersonConfig] = Field(default_factory=list)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    forecast: ForecastConfig = Field(default_factory=ForecastConfig)
    #: Where this config came from (None when built in code).
    path: str | None = Field(None, exclude=True)

    def source(self, name: str) -> SourceConfig:
        for src in self.sources:
            if src.name == name:
                return src
        known = ", ".join(s.name for s in self.sources) or "none"
        raise ConfigError(f"unknown source {name!r}: configured sources are {known}", self.path)

    def project_of_scope(self, source: str, scope: str) -> ProjectConfig | None:
        for project in self.projects:
            if (source, scope) in project.split_scopes():
                return project
        return None


# --- the shipped example ----------------------------------------------------------------------


def example_config() -> str:
    """The commented example config shipped with programview (``config.example.toml``)."""
    from importlib.resources import files

    return files("programview").joinpath("data", "config.example.toml").read_text("utf-8")


def write_example_config(path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write :func:`example_config` to ``path``; refuses to replace a file unless ``force``."""
    target = Path(path)
    if target.exists() and not force:
        raise ConfigError(
            f"{target} already exists: edit it, or pass --force to replace it with the example"
        )
    if target.is_dir():
        raise ConfigError(f"{target} is a directory, not a config file path")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(example_config(), encoding="utf-8")
    return target


# --- durations -----------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``"2h"``, ``"90m"``, ``"1d12h"``, ``"45s"`` as a timedelta; raises ``ValueError``."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(
            f"must be a duration such as '2h', '90m', '1d12h' (units s, m, h, d, w), got {text!r}"
        )
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"must be longer than zero, got {text!r}")
    return timedelta(seconds=seconds)


# --- the schedule --------------------------------------------------------------------------

_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DOW_NUMERIC = re.compile(r"^(\*|\d+)(?:-(\d+))?(?:/(\d+))?$")


def cron_trigger(expression: str) -> CronTrigger:
    """A 5-field crontab expression as an APScheduler ``CronTrigger`` in UTC.

    APScheduler 3 numbers weekdays from Monday = 0, crontab from Sunday = 0 (7 is Sunday too),
    so ``0 9 * * 1`` would silently fire on Tuesdays. Numeric weekdays are translated to names
    first, so the expression means what it means in crontab(5). Raises ``ValueError``.
    """
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"must be a 5-field cron expression (minute hour day month weekday), "
            f"got {len(fields)} field(s) in {expression!r}"
        )
    fields[4] = _crontab_weekdays(fields[4])
    try:
        return CronTrigger.from_crontab(" ".join(fields), timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"not a valid cron expression {expression!r}: {exc}") from None


def _crontab_weekdays(field: str) -> str:
    out: list[str] = []
    for token in field.split(","):
        m = _DOW_NUMERIC.match(token)
        if not m or (token.startswith("*") and not m.group(3)):
            out.append(token)  # names, "*", or something APScheduler will reject itself
            continue
        first, last, step = m.groups()
        lo = 0 if first == "*" else int(first)
        hi = 6 if first == "*" else int(last) if last else (6 if step else lo)
        if lo > 7 or hi > 7:
            raise ValueError(f"day of week {token!r} is out of range 0-7")
        for day in range(lo, hi + 1, int(step or 1)):
            name = _DOW_NAMES[day % 7]
            if name not in out:
                out.append(name)
    return ",".join(out)


# --- loading -------------------------------------------------------------------------------


def resolve_path(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> Path:
    """``path`` if given, else ``$PROGRAMVIEW_CONFIG``, else ``./programview.toml``."""
    env = os.environ if environ is None else environ
    return Path(path or env.get("PROGRAMVIEW_CONFIG") or DEFAULT_PATH)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    source_secrets: bool = True,
) -> Config:
    """Read, resolve ``${ENV}`` references, validate; raise ConfigError listing every problem.

    ``source_secrets=False`` is for commands that never call a source API (transform,
    report, costs import, db): a source credential whose environment variable is not set is
    then left empty instead of being an error, so a BI host needs no API tokens.
    """
    file = resolve_path(path, environ=environ)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found: {file} (pass --config FILE or set PROGRAMVIEW_CONFIG; "
            "`programview config init` writes a starter config with every key explained)"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"config path {file} is a directory, not a TOML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {file} is not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
    return parse_config(text, path=str(file), environ=environ, source_secrets=source_secrets)


def parse_config(
    text: str,
    *,
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    source_secrets: bool = True,
) -> Config:
    """Validate TOML ``text``; ``path`` only labels messages. Raises ConfigError."""
    env = os.environ if environ is None else environ
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_error(exc, text), path) from None

    index = _key_lines(text)
    problems: list[tuple[int | None, str]] = []
    data = _resolve_env(data, (), env, index, problems, source_secrets)
    if "path" in data:  # a Config attribute set by load_config, not a key of the file
        del data["path"]
        problems.append(_at(("path",), index, "unknown key 'path'"))
    override = env.get("PROGRAMVIEW_WAREHOUSE_URL")
    if override:
        warehouse = data.setdefault("warehouse", {})
        if isinstance(warehouse, dict):
            warehouse["url"] = override

    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            problems.append(_problem(tuple(err["loc"]), err, index, Config))
        # Still check every source's connector options (also of a source with a problem of
        # its own): a typo there should not wait for the next round.
        problems.extend(_check_connectors(_raw_sources(data.get("sources")), index))
        raise ConfigError(_sorted(problems), path) from None
    config.path = path
    problems.extend(_cross_checks(config, index))
    if problems:
        raise ConfigError(_sorted(problems), path)
    return config


def _sorted(problems: list[tuple[int | None, str]]) -> list[str]:
    """In file order (problems without a line last), duplicates dropped."""
    ordered = sorted(problems, key=lambda p: (p[0] is None, p[0] or 0))
    return list(dict.fromkeys(message for _, message in ordered))


def _toml_error(exc: tomllib.TOMLDecodeError, text: str) -> str:
    """tomllib's message, with the duplicated key or table named when that is the problem."""
    message = str(exc)
    m = re.search(r"\(at line (\d+), column \d+\)", message)
    if not m:
        return f"not valid TOML: {message}"
    line_no = int(m.group(1))
    lines = text.splitlines()
    line = lines[line_no - 1].strip() if 0 < line_no <= len(lines) else ""
    if message.startswith("Cannot overwrite a value") and "=" in line:
        key = line.split("=", 1)[0].strip()
        return f"line {line_no}: duplicate key {key!r} (TOML allows each key once per table)"
    if message.startswith("Cannot declare") and line.startswith("["):
        return f"line {line_no}: duplicate table {line} (TOML allows each table once)"
    return f"line {line_no}: not valid TOML: {message}"


# --- ${ENV} references and literal secrets ---------------------------------------------------


def _is_secret(loc: Loc) -> bool:
    """Keys whose values are secrets: never shown, and must come from the environment."""
    return (len(loc) == 4 and loc[0] == "sources" and loc[2] == "credentials") or loc == (
        "alerts",
        "webhook_url",
    )


def _resolve_env(
    value: Any,
    loc: Loc,
    env: Mapping[str, str],
    index: dict[Loc, int],
    problems: list[tuple[int | None, str]],
    source_secrets: bool = True,
) -> Any:
    if isinstance(value, dict):
        return {
            k: _resolve_env(v, (*loc, k), env, index, problems, source_secrets)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _resolve_env(v, (*loc, i), env, index, problems, source_secrets)
            for i, v in enumerate(value)
        ]
    if not isinstance(value, str):
        return value
    if _is_secret(loc) and value and not ENV_REF.search(value):
        # A literal secret in the file would end up in backups, diffs and screen shares.
        problems.append(
            _at(
                loc,
                index,
                "secrets must come from the environment: write an environment variable "
                'reference like "${MY_TOKEN}", not the value itself',
            )
        )
    if loc == ("warehouse", "url") and _literal_password(value):
        problems.append(
            _at(
                loc,
                index,
                "the URL holds a literal password: write it as an environment variable "
                'reference ("postgresql://user:${PGPASSWORD}@host/db") or set '
                "PROGRAMVIEW_WAREHOUSE_URL instead",
            )
        )

    optional = (
        not source_secrets
        and len(loc) == 4
        and loc[:1] == ("sources",)
        and (loc[2] == "credentials")
    )

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if optional and not env.get(name):
            return ""
        if name not in env:
            problems.append(_at(loc, index, f"environment variable {name} is not set"))
            return ""
        if not env[name]:
            problems.append(_at(loc, index, f"environment variable {name} is empty"))
        return env[name]

    return ENV_REF.sub(sub, value)


def _literal_password(url: str) -> bool:
    try:
        password = urlsplit(url).password
    except ValueError:
        return False
    return bool(password) and not ENV_REF.fullmatch(password or "")


# --- turning pydantic errors into messages -------------------------------------------------

_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "string": "a string",
    "str": "a string",
    "list": "an array",
    "tuple": "an array",
    "set": "an array",
    "dict": "a table",
    "model": "a table",
    "date": "a date (YYYY-MM-DD)",
    "datetime": "a date and time",
    "url": "a URL",
}


def _toml_type(value: Any) -> str:
    """The TOML name of a parsed value's type, as users wrote it."""
    for py, name in (
        (bool, "boolean"),
        (int, "integer"),
        (float, "float"),
        (str, "string"),
        (list, "array"),
        (dict, "table"),
        (datetime, "date-time"),
        (date, "date"),
        (time, "time"),
    ):
        if isinstance(value, py):
            return name
    return type(value).__name__


def _problem(
    loc: Loc, err: Any, index: dict[Loc, int], root: type[BaseModel], prefix: Loc = ()
) -> tuple[int | None, str]:
    """One pydantic error as one message. ``loc`` is relative to ``root``; ``prefix`` places
    it in the file (connector options are validated on their own)."""
    kind: str = err["type"]
    full = (*prefix, *loc)
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(root, loc[:-1])
        hint = ""
        if allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = (
                f" (did you mean {close[0]!r}?)"
                if close
                else f" (allowed here: {', '.join(sorted(allowed))})"
            )
        return _at(full, index, f"unknown key {key!r}{hint}")
    if kind == "missing":
        return _at(full[:-1], index, f"missing required key {full[-1]!r}")
    secret = _is_secret(full) or "credentials" in full or full[:1] == ("warehouse",)
    got = err.get("input")
    shown = f"{_toml_type(got)} (value hidden)" if secret else f"{_toml_type(got)} {got!r}"
    base = kind.split("_", 1)[0]
    if kind.endswith(("_type", "_parsing")) or kind == "int_from_float":
        expected = _EXPECTED.get(base)
        if expected:
            return _at(full, index, f"wrong type: expected {expected}, got {shown}")
        return _at(full, index, f"wrong type: {err['msg']} (got {shown})")
    if kind == "string_pattern_mismatch" and full[-1] == "name":
        return _at(full, index, "may only contain letters, digits, '_', '.' and '-'")
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind in ("literal_error", "enum") and not secret:
        msg += f", got {got!r}"
    return _at(full, index, msg[:1].lower() + msg[1:])


def _allowed_keys(model: type[BaseModel], loc: Loc) -> list[str] | None:
    """Field names of the model that sits at ``loc`` below ``model`` (None if not a model)."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap_optional(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return None
            annotation = field.annotation
        elif get_origin(annotation) in (list, dict):
            annotation = get_args(annotation)[-1]
        else:
            return None
    annotation = _unwrap_optional(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [name for name, f in annotation.model_fields.items() if not f.exclude]
    return None


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


# --- checks across sections ------------------------------------------------------------------


def _cross_checks(config: Config, index: dict[Loc, int]) -> list[tuple[int | None, str]]:
    problems: list[tuple[int | None, str]] = []
    for section, items, attr in (
        ("sources", config.sources, "name"),
        ("programs", config.programs, "key"),
        ("projects", config.projects, "key"),
    ):
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            value = getattr(item, attr)
            if value in seen:
                first = seen[value]
                line = index.get((section, first, attr))
                where = f"{section}[{first}]" + (f", line {line}" if line else "")
                problems.append(
                    _at(
                        (section, i, attr),
                        index,
                        f"duplicate {attr} {value!r} (already used by {where})",
                    )
                )
            else:
                seen[value] = i

    problems.extend(
        _check_connectors(
            [
                (i, SourcePart(s.kind, s.options, set(s.credentials)))
                for i, s in enumerate(config.sources)
            ],
            index,
        )
    )

    programs = {p.key for p in config.programs}
    sources = {s.name: (i, s) for i, s in enumerate(config.sources)}
    claimed: dict[tuple[str, str], str] = {}
    for i, project in enumerate(config.projects):
        if project.program is not None and project.program not in programs:
            problems.append(
                _at(
                    ("projects", i, "program"),
                    index,
                    f"unknown program {project.program!r} "
                    f"(configured programs: {', '.join(sorted(programs)) or 'none'})",
                )
            )
        for j, scope in enumerate(project.scopes):
            loc = ("projects", i, "scopes", j)
            name, sep, rest = scope.partition(":")
            if not sep or not name or not rest:
                problems.append(
                    _at(
                        loc,
                        index,
                        f'scope {scope!r} must be "source-name:scope", '
                        'e.g. "jira:PAY" or "github:acme/web"',
                    )
                )
            elif name not in sources:
                problems.append(
                    _at(
                        loc,
                        index,
                        f"scope {scope!r} points at unknown source {name!r} "
                        f"(configured sources: {', '.join(sources) or 'none'})",
                    )
                )
            elif not _synced_scope(rest, sources[name][1].scopes):
                problems.append(
                    _at(
                        loc,
                        index,
                        f"scope {rest!r} is not in sources[{sources[name][0]}].scopes of "
                        f"{name!r}, so it is never synced",
                    )
                )
            elif (name, rest) in claimed and claimed[(name, rest)] != project.key:
                problems.append(
                    _at(
                        loc,
                        index,
                        f"scope {scope!r} already belongs to project {claimed[(name, rest)]!r}"
                        " (a scope belongs to one project)",
                    )
                )
            else:
                claimed[(name, rest)] = project.key
    hook = config.alerts.webhook_url
    hook_url = hook.get_secret_value() if hook is not None else ""
    # Empty: not configured (or its variable is unset, which is reported already).
    if hook_url and not hook_url.startswith(("https://", "http://")):
        # Never echo the value: it is a secret even when malformed.
        problems.append(_at(("alerts", "webhook_url"), index, "must be an http:// or https:// URL"))
    dated: tuple[tuple[str, Sequence[ProgramConfig | ProjectConfig]], ...] = (
        ("programs", config.programs),
        ("projects", config.projects),
    )
    for section, entries in dated:
        for i, item in enumerate(entries):
            if item.start and item.end and item.end < item.start:
                problems.append(
                    _at(
                        (section, i, "end"),
                        index,
                        f"end {item.end} is before start {item.start}",
                    )
                )
    problems.extend(_check_register(config, index))
    return problems


def _check_register(config: Config, index: dict[Loc, int]) -> list[tuple[int | None, str]]:
    """Benefits point at known programs with a start before their target date; people
    entries do not claim the same identity twice."""
    problems: list[tuple[int | None, str]] = []
    programs = {p.key: p for p in config.programs}
    seen: dict[str, int] = {}
    for i, benefit in enumerate(config.benefits):
        if benefit.key in seen:
            problems.append(
                _at(
                    ("benefits", i, "key"),
                    index,
                    f"duplicate key {benefit.key!r} "
                    f"(already used by benefits[{seen[benefit.key]}])",
                )
            )
        seen.setdefault(benefit.key, i)
        program = programs.get(benefit.program)
        if program is None:
            problems.append(
                _at(
                    ("benefits", i, "program"),
                    index,
                    f"unknown program {benefit.program!r} "
                    f"(configured programs: {', '.join(sorted(programs)) or 'none'})",
                )
            )
        elif program.start is not None and benefit.target_date <= program.start:
            problems.append(
                _at(
                    ("benefits", i, "target_date"),
                    index,
                    f"target_date {benefit.target_date} is not after the program's start "
                    f"{program.start}",
                )
            )
    owner: dict[str, int] = {}
    for i, person in enumerate(config.people):
        for token in sorted(person.tokens()):
            first = owner.setdefault(token, i)
            if first != i:
                problems.append(
                    _at(
                        ("people", i),
                        index,
                        f"{token!r} already identifies people[{first}] "
                        f"({config.people[first].name!r}); one identity, one person",
                    )
                )
    return problems


def _synced_scope(scope: str, source_scopes: list[str]) -> bool:
    """A project scope is synced when its source lists it, or lists a container it lies in
    (``acme/web`` inside the GitHub organisation ``acme``, a project inside a GitLab group)."""
    return scope in source_scopes or any(
        scope.startswith(container.rstrip("/") + "/") for container in source_scopes
    )


class SourcePart(NamedTuple):
    """What the connector checks need of one ``[[sources]]`` entry."""

    kind: str
    options: dict[str, Any]
    credentials: set[str]


def _raw_sources(raw: Any) -> list[tuple[int, SourcePart]]:
    """Kind, options and credential names of every ``[[sources]]`` entry whose ``kind`` is a
    string, whatever else is wrong with it (that is reported by the whole-file validation),
    so its options are checked in the same pass."""
    out: list[tuple[int, SourcePart]] = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(item, dict) or not isinstance(item.get("kind"), str):
            continue
        options = item.get("options", {})
        credentials = item.get("credentials", {})
        out.append(
            (
                i,
                SourcePart(
                    item["kind"],
                    options if isinstance(options, dict) else {},
                    set(credentials) if isinstance(credentials, dict) else set(),
                ),
            )
        )
    return out


def _check_connectors(
    sources: list[tuple[int, SourcePart]], index: dict[Loc, int]
) -> list[tuple[int | None, str]]:
    """Each source's kind is installed, its options and credentials fit that connector."""
    from programview.sync.registry import connector_entry_points, load_connector

    problems: list[tuple[int | None, str]] = []
    kinds = connector_entry_points()
    for i, src in sources:
        if src.kind not in kinds:
            known = ", ".join(sorted(kinds)) or "none"
            problems.append(
                _at(
                    ("sources", i, "kind"),
                    index,
                    f"unknown kind {src.kind!r} (installed connectors: {known})",
                )
            )
            continue
        try:
            cls = load_connector(src.kind)
        except ConfigError as exc:
            problems.append(_at(("sources", i, "kind"), index, str(exc)))
            continue
        except Exception as exc:  # a broken plugin must not hide the other problems
            problems.append(
                _at(
                    ("sources", i, "kind"),
                    index,
                    f"connector {src.kind!r} ({kinds[src.kind].value}) cannot be loaded: "
                    f"{type(exc).__name__}: {exc}",
                )
            )
            continue
        try:
            cls.options_model.model_validate(src.options)
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(
                    _problem(
                        tuple(err["loc"]),
                        err,
                        index,
                        cls.options_model,
                        prefix=("sources", i, "options"),
                    )
                )
        if cls.credential_keys:
            unknown = sorted(src.credentials - set(cls.credential_keys))
            for key in unknown:
                problems.append(
                    _at(
                        ("sources", i, "credentials", key),
                        index,
                        f"unknown credential {key!r} for kind {src.kind!r} "
                        f"(accepted: {', '.join(cls.credential_keys)})",
                    )
                )
            if not src.credentials & set(cls.credential_keys):
                problems.append(
                    _at(
                        ("sources", i, "credentials"),
                        index,
                        f"kind {src.kind!r} needs credentials: "
                        f"one or more of {', '.join(cls.credential_keys)}",
                    )
                )
    return problems


# --- locating keys in the file for messages ------------------------------------------------


def _dotted(loc: Loc) -> str:
    """``("sources", 0, "options", "type_map", "Change Request")`` as TOML would spell it:
    ``sources[0].options.type_map."Change Request"``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        name = part if re.fullmatch(_BARE, part) else f'"{part}"'
        out += f".{name}" if out else name
    return out


def _at(loc: Loc, index: dict[Loc, int], problem: str) -> tuple[int | None, str]:
    """``(line, "key.path (line N): problem")``; the line of the nearest enclosing key."""
    line = None
    for n in range(len(loc), 0, -1):
        line = index.get(loc[:n])
        if line is not None:
            break
    where = _dotted(loc) or "top level"
    return line, (f"{where} (line {line}): {problem}" if line else f"{where}: {problem}")


_BARE = r"[A-Za-z0-9_-]+"
_KEY = rf"(?:{_BARE}|\"(?:[^\"\\]|\\.)*\"|'[^']*')"
_DOTTED_KEY = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED_KEY})\s*\]")
_ASSIGN = re.compile(rf"^\s*({_DOTTED_KEY})\s*=")
_INLINE_KEY = re.compile(rf"[{{,]\s*({_DOTTED_KEY})\s*=")
_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'")


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip("\"'") for p in re.findall(_KEY, dotted))


def _key_lines(text: str) -> dict[Loc, int]:
    """Line number of every table and key, by key path (``("sources", 1, "kind")``).

    tomllib keeps no positions, so this is a small line scanner that follows tables,
    arrays of tables, dotted keys and one level of inline tables; values spanning lines
    (multi-line strings and arrays) are skipped. Best effort: used only for messages.
    """
    found: dict[Loc, int] = {}
    table: Loc = ()
    arrays: dict[Loc, int] = {}  # path of an array of tables -> index of its last element
    in_string: str | None = None
    depth = 0
    for no, line in enumerate(text.splitlines(), 1):
        if in_string:
            if in_string in line:
                in_string = None
            continue
        if depth > 0:
            depth += _bracket_depth(line)
            continue
        header = _HEADER.match(line)
        if header:
            table = _table_path(_split_key(header.group(2)), header.group(1) == "[[", arrays)
            found.setdefault(table, no)
            continue
        assign = _ASSIGN.match(line)
        if not assign:
            continue
        key = (*table, *_split_key(assign.group(1)))
        found.setdefault(key, no)
        rest = line[assign.end() :]
        for quote in ('"""', "'''"):
            if rest.count(quote) % 2 == 1:
                in_string = quote
        if in_string:
            continue
        if rest.lstrip().startswith("{"):
            for inner in _INLINE_KEY.finditer(_STRING.sub('""', rest)):
                found.setdefault((*key, *_split_key(inner.group(1))), no)
        depth = max(_bracket_depth(rest), 0)
    return found


def _table_path(parts: tuple[str, ...], array: bool, arrays: dict[Loc, int]) -> Loc:
    path: Loc = ()
    for i, part in enumerate(parts):
        path = (*path, part)
        if array and i == len(parts) - 1:
            arrays[path] = arrays.get(path, -1) + 1
            path = (*path, arrays[path])
        elif path in arrays:
            path = (*path, arrays[path])
    return path


def _bracket_depth(text: str) -> int:
    code = _STRING.sub('""', text).split("#", 1)[0]
    return code.count("[") - code.count("]")
