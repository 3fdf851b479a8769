"""``programview daemon --serve HOST:PORT``: ``/healthz`` and ``/metrics`` for the platform.

Why in the daemon process: the figures worth alerting on (runs by status, requests by HTTP
status, rate-limit waits, quarantined payloads, run durations) happen there; the data age
comes from the warehouse at scrape time, so it is right even for streams another daemon
synced. ``/metrics`` is the official ``prometheus-client`` exposition; ``/healthz`` answers
200 or 503 with the reason as JSON, from the same rules as ``programview status``.

Both are served by a small threaded WSGI server from the standard library on its own
thread, so a slow scrape never delays a sync and a long sync never delays a probe.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from programview.progress import Progress
from programview.status import SyncStatus, collect_status
from programview.warehouse import db

log = logging.getLogger("programview.daemon")

#: run durations from seconds (an idle incremental run) to hours (a first sync of a big site)
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, float("inf"))


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``0.0.0.0:9108``, ``127.0.0.1:0``, ``[::]:9108``); ValueError otherwise."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"must be HOST:PORT, e.g. 0.0.0.0:9108, got {text!r}")
    return host, int(port)


class Metrics:
    """The daemon's Prometheus metrics, in a registry of their own (no global state)."""

    def __init__(self, status: Callable[[], SyncStatus | None]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.runs = Counter(
            "programview_runs", "Sync runs by final status.", ["status"], registry=self.registry
        )
        self.records = Counter(
            "programview_records_written",
            "Raw records written (new or changed).",
            ["source"],
            registry=self.registry,
        )
        self.skipped = Counter(
            "programview_records_skipped",
            "Raw records unchanged since the last run (same hash).",
            ["source"],
            registry=self.registry,
        )
        self.requests = Counter(
            "programview_requests",
            "HTTP answers from the source APIs by status code, retries included.",
            ["source", "status"],
            registry=self.registry,
        )
        self.waits = Counter(
            "programview_rate_limit_wait_seconds",
            "Seconds spent waiting for rate limits and retry backoff.",
            ["source"],
            registry=self.registry,
        )
        self.quarantined = Counter(
            "programview_quarantined_payloads",
            "Payloads that could not be mapped and went to the quarantine table.",
            ["source"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "programview_run_duration_seconds",
            "Duration of a daemon run (sync, transform and alerts).",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_DataAge(status))

    def record_run(
        self, engine_url: str | None, run_id: int | None, status: str, seconds: float
    ) -> None:
        """Count one finished run; per-source figures come from its ``sync_run_streams``."""
        self.runs.labels(status=status).inc()
        self.duration.observe(seconds)
        if engine_url is None or run_id is None:
            return
        engine = db.create_engine(engine_url)
        try:
            t = db.table("sync_run_streams")
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.select(
                        t.c.source_name,
                        sa.func.sum(t.c.records),
                        sa.func.sum(t.c.skipped),
                        sa.func.sum(t.c.quarantined),
                    )
                    .where(t.c.run_id == run_id)
                    .group_by(t.c.source_name)
                ).all()
        except sa.exc.SQLAlchemyError as exc:
            log.warning(
                "metrics: cannot read run %s: %s",
                run_id,
                str(getattr(exc, "orig", None) or exc).split("\n")[0],
            )
            return
        finally:
            engine.dispose()
        for source, records, skipped, quarantined in rows:
            self.records.labels(source=source).inc(int(records or 0))
            self.skipped.labels(source=source).inc(int(skipped or 0))
            self.quarantined.labels(source=source).inc(int(quarantined or 0))

    def progress(self) -> Progress:
        """A silent progress that counts HTTP answers and waits."""
        return _CountingProgress(self)


class _CountingProgress(Progress):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def response(self, source: str, status: int) -> None:
        self.metrics.requests.labels(source=source, status=str(status)).inc()

    def wait(self, source: str, seconds: float, reason: str) -> None:
        self.metrics.waits.labels(source=source).inc(max(seconds, 0.0))


class _DataAge(Collector):
    """``programview_data_age_seconds`` per source, scope and stream, at scrape time."""

    def __init__(self, status: Callable[[], SyncStatus | None]) -> None:
        self.status = status

    def describe(self) -> Iterable[Any]:
        return []  # collected lazily: the warehouse is read at scrape time only

    def collect(self) -> Iterator[GaugeMetricFamily]:
        age = GaugeMetricFamily(
            "programview_data_age_seconds",
            "Seconds since the last successful sync of each stream.",
            labels=["source", "scope", "stream"],
        )
        healthy = GaugeMetricFamily("programview_healthy", "1 when /healthz answers 200, else 0.")
        current = self.status()
        if current is not None:
            for s in current.streams:
                if s.age_seconds is not None:
                    age.add_metric([s.source, s.scope, s.stream], s.age_seconds)
        healthy.add_metric([], 1.0 if current is not None and _verdict(current)[0] else 0.0)
        yield age
        yield healthy


@dataclass
class HealthState:
    """What the daemon knows between runs: the last run's outcome (None before the first)."""

    last_status: str | None = None
    last_error: str | None = None


def _verdict(status: SyncStatus, state: HealthState | None = None) -> tuple[bool, list[str]]:
    reasons = list(status.problems)
    if state is not None and state.last_status in ("failed",):
        reasons.insert(
            0,
            f"last run {state.last_status}" + (f": {state.last_error}" if state.last_error else ""),
        )
    if not status.streams:
        reasons.append("no sync has run yet")
    return (not reasons, reasons)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass  # scrapes every 15 s would drown the one line per run


class OpsServer:
    """``/healthz`` and ``/metrics`` on ``host:port``, served from a background thread."""

    def __init__(self, host: str, port: int, warehouse_url: str, max_age: timedelta | None) -> None:
        self.warehouse_url = warehouse_url
        self.max_age = max_age
        self.state = HealthState()
        self._lock = threading.Lock()
        self._engine: sa.Engine | None = None
        self.metrics = Metrics(self.read_status)
        metrics_app = make_wsgi_app(self.metrics.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/healthz":
                code, body = self.health()
                start_response(
                    "200 OK" if code == 200 else "503 Service Unavailable",
                    [("Content-Type", "application/json")],
                )
                return [json.dumps(body).encode()]
            if path == "/metrics":
                return metrics_app(environ, start_response)
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /healthz or /metrics\n"]

        self._server = make_server(
            host, port, app, server_class=_Server, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="programview-ops", daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()

    def read_status(self) -> SyncStatus | None:
        """The warehouse's view of freshness; None when it cannot be read (then unhealthy)."""
        with self._lock:
            if self._engine is None:
                self._engine = db.create_engine(self.warehouse_url)
            engine = self._engine
        try:
            return collect_status(engine, max_age=self.max_age)
        except sa.exc.SQLAlchemyError as exc:
            log.warning(
                "healthz: cannot read the warehouse: %s",
                str(getattr(exc, "orig", None) or exc).split("\n")[0],
            )
            return None

    def health(self) -> tuple[int, dict[str, Any]]:
        status = self.read_status()
        if status is None:
            return 503, {"healthy": False, "reasons": ["the warehouse cannot be read"]}
        ok, reasons = _verdict(status, self.state)
        body: dict[str, Any] = {
            "healthy": ok,
            "reasons": reasons,
            "last_run_status": self.state.last_status,
            "streams": len(status.streams),
            "max_age_seconds": self.max_age.total_seconds() if self.max_age else None,
        }
        return (200 if ok else 503), body
