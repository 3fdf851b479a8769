"""Progress reporting: what a sync is doing right now, told to a person or to the logs.

Connectors and the engine report through one small interface so the same run can show live
lines in a terminal (``programview sync``) or exactly one log line per run (the daemon, where a
line per page would drown the logs). The base class does nothing, so callers never check for
``None``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from programview.sync.engine import RunResult

log = logging.getLogger("programview.sync")


class Progress:
    """Receives progress events; the default implementation ignores them all."""

    def page(self, source: str, scope: str, stream: str, records: int) -> None:
        """One page of ``records`` raw records of ``stream`` was committed."""

    def wait(self, source: str, seconds: float, reason: str) -> None:
        """The HTTP layer is about to sleep ``seconds`` (rate limit or retry backoff)."""

    def response(self, source: str, status: int) -> None:
        """An HTTP answer with ``status`` arrived (retries included): for request metrics."""

    def stream_done(
        self,
        source: str,
        scope: str,
        stream: str,
        *,
        status: str,
        records: int,
        skipped: int,
        pages: int,
        error: str | None = None,
    ) -> None:
        """A stream of one scope finished (``status``: ok, partial, failed or skipped)."""

    def run_done(self, summary: RunResult) -> None:
        """The whole run finished (also when it failed)."""


class TerminalProgress(Progress):
    """Live lines on a terminal: pages and records per stream, waits, one line per stream.

    On a TTY the per-page line is rewritten in place; elsewhere every event gets its own line,
    so redirecting stderr to a file still gives a readable record.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.out = stream if stream is not None else sys.stderr
        self.live = bool(getattr(self.out, "isatty", lambda: False)())
        self._totals: dict[tuple[str, str, str], int] = {}
        self._started = time.monotonic()
        self._dirty = False

    def _line(self, text: str, *, transient: bool = False) -> None:
        if self.live:
            self.out.write("\r\x1b[K" + text + ("" if transient else "\n"))
            self._dirty = transient
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def page(self, source: str, scope: str, stream: str, records: int) -> None:
        key = (source, scope, stream)
        self._totals[key] = self._totals.get(key, 0) + records
        self._line(f"{source} {scope} {stream}: {self._totals[key]} records", transient=True)

    def wait(self, source: str, seconds: float, reason: str) -> None:
        self._line(f"{source}: waiting {seconds:.0f}s ({reason})")

    def stream_done(
        self,
        source: str,
        scope: str,
        stream: str,
        *,
        status: str,
        records: int,
        skipped: int,
        pages: int,
        error: str | None = None,
    ) -> None:
        text = (
            f"{source} {scope} {stream}: {status}, {records} written, {skipped} unchanged, "
            f"{pages} pages"
        )
        self._line(text + (f" - {error}" if error else ""))

    def run_done(self, summary: RunResult) -> None:
        elapsed = time.monotonic() - self._started
        if self._dirty:
            self._line("")
        self._line(f"run {summary.run_id} {summary.status} in {elapsed:.1f}s")


class QuietProgress(Progress):
    """For the daemon: exactly one log line per run, nothing per page."""

    def run_done(self, summary: RunResult) -> None:
        level = logging.INFO if summary.status == "ok" else logging.WARNING
        log.log(
            level,
            "sync run %s %s: %d records written, %d unchanged, %d requests, %d quarantined%s",
            summary.run_id,
            summary.status,
            summary.records,
            summary.skipped,
            summary.requests,
            summary.quarantined,
            f"; errors: {'; '.join(summary.errors)}" if summary.errors else "",
        )
