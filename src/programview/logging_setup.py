"""Log output for long-running commands (the daemon): one format, UTC times, secrets masked.

Why a masking formatter on top of "never log a secret": a secret can still slip into a log
line through text we do not control (an exception from a driver that quotes a URL, a library
debug line), so every configured secret value is replaced by ``***`` in the final formatted
line, traceback included, as a last line of defence.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO
from urllib.parse import unquote

from sqlalchemy.engine.url import make_url

if TYPE_CHECKING:
    from programview.config import Config

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Shorter strings would blank out ordinary words.
MIN_SECRET_LENGTH = 4
#: Libraries that log every request at INFO: a line per request would drown the one line per
#: run the daemon promises (and request lines may carry tokens in query strings).
CHATTY = ("httpx", "httpcore", "apscheduler.executors.default")
#: Libraries whose warnings repeat an error programview reports itself, in one line (psycopg:
#: "error ignored terminating <Pipeline>" with the server's multi-line text, after a
#: connection the server terminated). Shown with ``--log-level debug``.
QUIET = ("psycopg",)


class RedactingFormatter(logging.Formatter):
    """A UTC ISO-8601 formatter that replaces every known secret with ``***``."""

    converter = time.gmtime  # type: ignore[assignment]  # UTC, as documented

    def __init__(self, secrets: Iterable[str] = (), fmt: str = FORMAT) -> None:
        super().__init__(fmt, datefmt="%Y-%m-%dT%H:%M:%SZ")
        self.secrets = sorted(
            {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


#: ``extra`` fields a JSON line carries when the record has them (run and stream lines)
JSON_FIELDS = (
    "run",
    "source",
    "scope",
    "stream",
    "status",
    "records",
    "skipped",
    "requests",
    "quarantined",
    "duration",
    "error",
)


class JsonFormatter(RedactingFormatter):
    """One JSON object per line for log shippers: time, level, logger, message, and the
    run/stream figures of run and stream lines. Secrets are masked as in text."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, object] = {
            "time": self.formatTime(record, self.datefmt),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in JSON_FIELDS:
            if name in record.__dict__:
                obj[name] = record.__dict__[name]
        if record.exc_info:
            obj["traceback"] = self.formatException(record.exc_info)
        text = json.dumps(obj, default=str, ensure_ascii=False)
        # a secret may appear JSON-escaped (quotes, backslashes) as well as verbatim
        escaped = [json.dumps(s, ensure_ascii=False)[1:-1] for s in self.secrets]
        return redact(text, sorted({*self.secrets, *escaped}, key=len, reverse=True))


class OncePerRun(logging.Filter):
    """A warning said again with the same text in the same run is dropped: the daemon calls
    :meth:`reset` when a run starts, so each run still says it once."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, str]] = set()

    def reset(self) -> None:
        self._seen.clear()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        key = (record.name, record.getMessage())
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


#: the filter of the handler ``setup_logging`` installed (the daemon resets it per run)
once_per_run = OncePerRun()


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (longest first) replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def config_secrets(config: Config) -> list[str]:
    """Every secret value the config holds: credentials, the webhook URL, the DB password."""
    found: list[str] = []
    for source in config.sources:
        found.extend(value.get_secret_value() for value in source.credentials.values())
    if config.alerts.webhook_url is not None:
        found.append(config.alerts.webhook_url.get_secret_value())
    try:
        password = make_url(config.warehouse.url).password
    except Exception:  # an unparsable URL has no password to hide; it is reported elsewhere
        password = None
    if password:
        found.extend({str(password), unquote(str(password))})
    return [s for s in found if s]


def setup_logging(
    level: str | int = "INFO",
    *,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    fmt: str = "text",
) -> logging.Handler:
    """Send ``programview`` logs (and warnings of other libraries) to ``stream`` (stderr).

    ``fmt`` ``json`` writes one JSON object per line, with a line per synced stream too.

    Replaces a handler installed by an earlier call, so calling it twice never doubles lines.
    Returns the handler (tests read what it wrote).
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_programview", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(secrets) if fmt == "json" else RedactingFormatter(secrets))
    handler.addFilter(once_per_run)
    handler._programview = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    logging.getLogger("programview").setLevel(numeric)
    streams = logging.getLogger("programview.sync.streams")
    if fmt == "json" or numeric <= logging.DEBUG:
        streams.setLevel(logging.NOTSET)
    else:
        streams.setLevel(logging.WARNING)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    quiet_libraries(debug=numeric <= logging.DEBUG)
    return handler


def quiet_libraries(*, debug: bool = False) -> None:
    """Hide the ``QUIET`` libraries' warnings (unless ``debug``). Also for commands that keep
    Python's plain stderr warnings: without a handler, psycopg's multi-line "error ignored
    terminating" would reach stderr beside programview's own one-line error."""
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.ERROR)
