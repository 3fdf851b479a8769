"""The exception hierarchy: every failure a user can act on has its own class and a message
that names the problem (the key, the source, the project) and never a secret.

The CLI maps these to exit codes (see ``programview.cli``): configuration and usage
problems exit 2, everything else that stops a run exits 1.
"""

from __future__ import annotations


class ProgramviewError(Exception):
    """Base class: anything programview raises on purpose."""


class ConfigError(ProgramviewError):
    """The configuration file is wrong. ``problems`` holds one message per problem."""

    def __init__(self, problems: list[str] | str, path: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.path = path
        where = f"{path}: " if path else ""
        if len(self.problems) == 1:
            text = f"{where}{self.problems[0]}"
        else:
            text = f"{where}{len(self.problems)} problems:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(text)


class WarehouseError(ProgramviewError):
    """The warehouse database cannot be used."""


class DatabaseUnavailable(WarehouseError):
    """The database server cannot be reached (down, wrong host, wrong credentials)."""


class SchemaOutdated(WarehouseError):
    """The warehouse schema is older (or newer) than this programview version expects."""


class ConnectorError(ProgramviewError):
    """A connector failed to talk to its API. ``source`` names the configured source."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"[{source}] {message}" if source else message)


class AuthError(ConnectorError):
    """401/403 that is not a rate limit: credentials are missing, wrong, expired or too weak."""


class NotFound(ConnectorError):
    """404: the project, repository or group does not exist or the token cannot see it."""


class ApiError(ConnectorError):
    """Any other unexpected HTTP answer (after retries were exhausted)."""

    def __init__(self, message: str, *, source: str | None = None, status: int | None = None):
        self.status = status
        super().__init__(message, source=source)


class RateLimited(ConnectorError):
    """The API keeps refusing us for rate limits beyond what we are willing to wait."""


class MappingError(ProgramviewError):
    """A raw payload could not be turned into normalized records; it goes to quarantine."""
