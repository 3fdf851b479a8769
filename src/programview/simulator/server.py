"""Serve the simulator over real HTTP on 127.0.0.1, or in-process for quick tests.

End-to-end tests, the demo and benchmarks need the connectors to talk real HTTP (so
timeouts, keep-alive and dropped connections behave as in production)::

    with serve(generate(seed=1), port=0, faults="github:5xx:count=2") as sim:
        client = httpx.Client(base_url=sim.github_url, headers={"Authorization": ...})
        ...
        assert sim.requests.count(api="github") == 3

Unit-level tests that only need the API shapes can skip the socket::

    client = httpx.AsyncClient(transport=transport(org), base_url="http://sim/github")
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn

from programview.simulator.app import PREFIXES, RequestLog, SimApp
from programview.simulator.faults import FaultPlan
from programview.simulator.generator import Organisation

HOST = "127.0.0.1"


@dataclass
class Simulator:
    """A running simulator: its URLs, organisation, request log and fault plan."""

    app: SimApp
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def jira_url(self) -> str:
        return self.base_url + PREFIXES["jira"]

    @property
    def jira_dc_url(self) -> str:
        return self.base_url + PREFIXES["jira-dc"]

    @property
    def github_url(self) -> str:
        return self.base_url + PREFIXES["github"]

    @property
    def gitlab_url(self) -> str:
        return self.base_url + PREFIXES["gitlab"]

    @property
    def org(self) -> Organisation:
        return self.app.org

    @property
    def requests(self) -> RequestLog:
        return self.app.requests

    @property
    def faults(self) -> FaultPlan:
        return self.app.faults

    @property
    def latency_ms(self) -> float:
        return self.app.latency_ms

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        self.app.latency_ms = value

    def config_toml(
        self,
        db_url: str = "sqlite:///programview.db",
        jira_deployment: str = "cloud",
        kinds: Iterable[str] | None = None,
    ) -> str:
        """A programview config pointing at this running simulator (``kinds``: only sources
        of those kinds, e.g. the connectors installed)."""
        return self.org.config_toml(self.base_url, db_url, jira_deployment, kinds=kinds)


@contextmanager
def serve(
    org: Organisation,
    port: int = 0,
    latency_ms: float = 0.0,
    faults: FaultPlan | str | None = None,
    retry_after_s: float = 1.0,
    enforce_rate_limits: bool = False,
    startup_timeout_s: float = 10.0,
) -> Iterator[Simulator]:
    """Run the simulator with uvicorn in a daemon thread until the block exits.

    ``port=0`` picks a free port (the socket is bound here, so the port is known and
    taken before the thread starts). Returns once the server accepts connections.
    """
    app = SimApp(
        org,
        faults=faults,
        latency_ms=latency_ms,
        retry_after_s=retry_after_s,
        enforce_rate_limits=enforce_rate_limits,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    config = uvicorn.Config(
        app,
        host=HOST,
        port=sock.getsockname()[1],
        log_level="warning",
        lifespan="off",
        access_log=False,
        date_header=False,  # the app sends the simulated clock's Date
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="programview-simulator", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the API simulator did not start")
        time.sleep(0.005)
    try:
        yield Simulator(app=app, port=sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def transport(
    org: Organisation,
    latency_ms: float = 0.0,
    faults: FaultPlan | str | None = None,
    retry_after_s: float = 1.0,
    enforce_rate_limits: bool = False,
) -> httpx.ASGITransport:
    """In-process transport for ``httpx.AsyncClient`` (no socket). The ``SimApp`` is at
    ``transport.app`` (its ``requests`` and ``faults`` as with ``serve``). A dropped
    connection surfaces as ``httpx.RemoteProtocolError``, as over HTTP."""
    app = SimApp(
        org,
        faults=faults,
        latency_ms=latency_ms,
        retry_after_s=retry_after_s,
        enforce_rate_limits=enforce_rate_limits,
    )
    return httpx.ASGITransport(app=app)
