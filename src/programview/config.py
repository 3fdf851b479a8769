"""Loading and validating the one config file (TOML).

Why a custom layer over pydantic: users get *one clear message per problem*, naming the key
path and the file line (``sources[1].credentials.api_token (line 14): environment variable
JIRA_API_TOKEN is not set``), and secrets referenced as ``${ENV_VAR}`` are resolved into
``SecretStr`` so they never reach ``repr``, logs or error messages.

Which file: ``--config`` on the CLI, else ``$PROGRAMVIEW_CONFIG``, else ``./programview.toml``.
``$PROGRAMVIEW_WAREHOUSE_URL`` overrides ``[warehouse] url``.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from programview.errors import ConfigError
from programview.transform.settings import AlertsConfig, HealthConfig, MetricsConfig

DEFAULT_PATH = "programview.toml"
DEFAULT_WAREHOUSE_URL = "sqlite:///programview.db"
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WarehouseConfig(_Strict):
    #: SQLAlchemy URL. May hold a password, so it is kept out of ``repr``; show ``safe_url``.
    url: str = Field(DEFAULT_WAREHOUSE_URL, repr=False)

    @property
    def safe_url(self) -> str:
        from programview.warehouse.db import redact_url

        return redact_url(self.url)


class SyncConfig(_Strict):
    #: Cron expression (5 fields, UTC) for the daemon.
    schedule: str = "*/30 * * * *"
    #: Incremental cursors re-read this many minutes before the last cursor (clock skew,
    #: minute-precision filters); duplicates are dropped by stable id.
    lookback_minutes: int = Field(10, ge=0)
    #: How many source × scope × stream jobs run at once.
    concurrency: int = Field(4, ge=1, le=64)
    #: Deletion reconcile (cheap key listing) at most this often per scope.
    reconcile_hours: float = Field(24.0, ge=0)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"must be a 5-field cron expression, got {value!r}")
        return value


class SourceConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: str
    base_url: str
    credentials: dict[str, SecretStr] = Field(default_factory=dict)
    scopes: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    def secret(self, key: str) -> str | None:
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
    scopes: list[str] = Field(default_factory=list)
    budget: float | None = Field(None, ge=0)
    start: date | None = None
    end: date | None = None
    hourly_rate: float | None = Field(None, ge=0)

    def split_scopes(self) -> list[tuple[str, str]]:
        """``"source:scope"`` strings as (source, scope) pairs."""
        return [tuple(s.split(":", 1)) for s in self.scopes]  # type: ignore[misc]


class Config(_Strict):
    warehouse: WarehouseConfig = Field(default_factory=WarehouseConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    programs: list[ProgramConfig] = Field(default_factory=list)
    projects: list[ProjectConfig] = Field(default_factory=list)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
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


# --- loading -------------------------------------------------------------------------------


def resolve_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path`` if given, else ``$PROGRAMVIEW_CONFIG``, else ``./programview.toml``."""
    return Path(path or os.environ.get("PROGRAMVIEW_CONFIG") or DEFAULT_PATH)


def load_config(
    path: str | os.PathLike[str] | None = None, *, environ: dict[str, str] | None = None
) -> Config:
    """Read, resolve ``${ENV}`` references, validate; raise ConfigError listing every problem."""
    file = resolve_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found: {file} (pass --config FILE or set PROGRAMVIEW_CONFIG; "
            "config.example.toml shows every key)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
    return parse_config(text, path=str(file), environ=environ)


def parse_config(
    text: str, *, path: str | None = None, environ: dict[str, str] | None = None
) -> Config:
    env = os.environ if environ is None else environ
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The message already carries "(at line N, column M)"; duplicate keys land here too.
        raise ConfigError(f"not valid TOML: {exc}", path) from None

    problems: list[str] = []
    data = _resolve_env(data, (), env, text, problems)
    override = env.get("PROGRAMVIEW_WAREHOUSE_URL")
    if override:
        data.setdefault("warehouse", {})["url"] = override

    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            problems.append(_message(loc, err, text))
        raise ConfigError(problems, path) from None
    config.path = path
    problems.extend(_cross_checks(config, text))
    if problems:
        raise ConfigError(problems, path)
    return config


def _resolve_env(
    value: Any, loc: tuple[str | int, ...], env: Any, text: str, problems: list[str]
) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_env(v, (*loc, k), env, text, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, (*loc, i), env, text, problems) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                problems.append(
                    f"{_where(loc, text)}: environment variable {name} is not set"
                )
                return ""
            return env[name]

        return ENV_REF.sub(sub, value)
    if loc and loc[0] == "sources" and len(loc) == 4 and loc[2] == "credentials":
        # A literal secret in the file would end up in backups and diffs.
        problems.append(
            f"{_where(loc, text)}: credentials must reference an environment variable "
            f'like "${{MY_TOKEN}}", not a literal value'
        )
    return value


def _message(loc: tuple[Any, ...], err: Any, text: str) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{_where(loc, text)}: unknown key"
    if kind == "missing":
        return f"{_where(loc[:-1], text) if len(loc) > 1 else 'top level'}: missing key {loc[-1]!r}"
    msg = err["msg"]
    if kind.endswith("_type") or kind.endswith("_parsing"):
        got = err.get("input")
        shown = "a secret" if loc and "credentials" in loc else repr(got)
        return f"{_where(loc, text)}: wrong type ({msg}; got {shown})"
    return f"{_where(loc, text)}: {msg.removeprefix('Value error, ')}"


def _cross_checks(config: Config, text: str) -> list[str]:
    problems: list[str] = []
    for section, items, attr in (
        ("sources", config.sources, "name"),
        ("programs", config.programs, "key"),
        ("projects", config.projects, "key"),
    ):
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            value = getattr(item, attr)
            if value in seen:
                problems.append(
                    f"{_where((section, i, attr), text)}: duplicate {attr} {value!r} "
                    f"(already used by {section}[{seen[value]}])"
                )
            else:
                seen[value] = i

    from programview.sync.registry import connector_entry_points, load_connector

    kinds = connector_entry_points()
    sources = {s.name: s for s in config.sources}
    for i, src in enumerate(config.sources):
        if src.kind not in kinds:
            known = ", ".join(sorted(kinds)) or "none"
            problems.append(
                f"{_where(('sources', i, 'kind'), text)}: unknown kind {src.kind!r} "
                f"(installed connectors: {known})"
            )
            continue
        cls = load_connector(src.kind)
        try:
            cls.options_model.model_validate(src.options)
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(_message(("sources", i, "options", *err["loc"]), err, text))
        missing = [k for k in cls.credential_keys if k not in src.credentials]
        if cls.credential_keys and len(missing) == len(cls.credential_keys):
            problems.append(
                f"{_where(('sources', i, 'credentials'), text)}: {src.kind} needs one of "
                f"{', '.join(cls.credential_keys)}"
            )
    programs = {p.key for p in config.programs}
    for i, project in enumerate(config.projects):
        if project.program is not None and project.program not in programs:
            problems.append(
                f"{_where(('projects', i, 'program'), text)}: unknown program "
                f"{project.program!r} (configured: {', '.join(sorted(programs)) or 'none'})"
            )
        for j, scope in enumerate(project.scopes):
            name, sep, rest = scope.partition(":")
            if not sep or not rest:
                problems.append(
                    f"{_where(('projects', i, 'scopes', j), text)}: scope {scope!r} must be "
                    '"source-name:scope", e.g. "jira:PAY" or "github:acme/web"'
                )
            elif name not in sources:
                problems.append(
                    f"{_where(('projects', i, 'scopes', j), text)}: scope {scope!r} points at "
                    f"unknown source {name!r} (configured: {', '.join(sources) or 'none'})"
                )
            elif rest not in sources[name].scopes:
                problems.append(
                    f"{_where(('projects', i, 'scopes', j), text)}: scope {rest!r} is not in "
                    f"sources[{list(sources).index(name)}].scopes of {name!r}, so it is never "
                    "synced"
                )
    for i, program in enumerate(config.programs):
        if program.start and program.end and program.end < program.start:
            problems.append(f"{_where(('programs', i, 'end'), text)}: end is before start")
    for i, project in enumerate(config.projects):
        if project.start and project.end and project.end < project.start:
            problems.append(f"{_where(('projects', i, 'end'), text)}: end is before start")
    return problems


# --- locating keys in the file for messages ------------------------------------------------


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _where(loc: tuple[Any, ...], text: str) -> str:
    line = _line_of(loc, text)
    return f"{_dotted(loc)} (line {line})" if line else _dotted(loc)


def _line_of(loc: tuple[Any, ...], text: str) -> int | None:
    """Best-effort line number of ``loc`` in the TOML text (tomllib keeps no positions).

    Finds the table header (``[[sources]]`` n-th occurrence, or ``[health]``), then the first
    line after it that assigns the next key (also inside inline tables), before the next
    header.
    """
    lines = text.splitlines()
    if not loc:
        return None
    start, end = 0, len(lines)
    keys = list(loc)
    head = keys.pop(0)
    if keys and isinstance(keys[0], int):
        index = keys.pop(0)
        hits = [i for i, ln in enumerate(lines) if ln.strip().startswith(f"[[{head}]]")]
        if index >= len(hits):
            return None
        start = hits[index]
    else:
        hits = [i for i, ln in enumerate(lines) if ln.strip().startswith(f"[{head}]")]
        if hits:
            start = hits[0]
        elif not keys:
            keys = [head]
    for i in range(start + 1, len(lines)):
        if lines[i].lstrip().startswith("["):
            end = i
            break
    found = start
    for key in keys:
        if isinstance(key, int):
            continue
        pattern = re.compile(rf"(^|[\s{{,]){re.escape(str(key))}\s*=")
        for i in range(found, end):
            if pattern.search(lines[i]):
                found = i
                break
        else:
            # e.g. [sources.credentials] sub-table header
            for i in range(found, len(lines)):
                if lines[i].strip().rstrip("]").endswith(f".{key}"):
                    found = i
                    break
    return found + 1
