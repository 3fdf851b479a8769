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

    def position(self, source: str, scope: str, stream: str, done: float) -> None:
        """A backfill stream has covered ``done`` (0..1) of its time window."""

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
        requests: int = 0,
        seconds: float = 0.0,
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
        self._pages: dict[tuple[str, str, str], int] = {}
        self._begun: dict[tuple[str, str, str], float] = {}
        self._waited: dict[str, float] = {}
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
        self._begun.setdefault(key, time.monotonic())
        self._totals[key] = self._totals.get(key, 0) + records
        self._pages[key] = self._pages.get(key, 0) + 1
        self._line(self._status(key), transient=True)

    def position(self, source: str, scope: str, stream: str, done: float) -> None:
        """Backfills: how much of the window is read, and when the stream should be done
        (its pages so far took that long for that share of the window)."""
        key = (source, scope, stream)
        elapsed = time.monotonic() - self._begun.get(key, self._started)
        text = f"{self._status(key)}, {done:.0%} of the window"
        if 0 < done < 1:
            text += f", ETA {_duration(elapsed * (1 - done) / done)}"
        self._line(text, transient=True)

    def _status(self, key: tuple[str, str, str]) -> str:
        waited = self._waited.get(key[0], 0.0)
        return (
            f"{' '.join(key)}: {self._pages.get(key, 0)} pages, {self._totals.get(key, 0)} "
            "records" + (f", {_duration(waited)} waited for rate limits" if waited >= 1 else "")
        )

    def wait(self, source: str, seconds: float, reason: str) -> None:
        self._waited[source] = self._waited.get(source, 0.0) + max(seconds, 0.0)
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
        requests: int = 0,
        seconds: float = 0.0,
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


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


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
