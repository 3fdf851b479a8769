"""API simulator: a generated organisation served as Jira, GitHub and GitLab over HTTP.

Used by ``programview demo``, the end-to-end tests and the benchmarks, so all of them
run with no network and no real tokens.

* ``generator``  — ``generate(seed, size, now)`` → ``Organisation`` (ground truth).
* ``app``        — the ASGI app, routing for endpoint modules, auth, rate-limit headers,
  paging/time helpers.
* ``faults``     — ``FaultPlan`` and the ``--faults`` grammar.
* ``server``     — ``serve(org, ...)`` (real HTTP on 127.0.0.1) and ``transport(org)``.
* ``jira_api``, ``github_api``, ``gitlab_api`` — the endpoints, one module per API.
"""

from __future__ import annotations

from programview.simulator.faults import FaultPlan, FaultRule
from programview.simulator.generator import TOKENS, Credentials, Organisation, generate
from programview.simulator.server import Simulator, serve, transport

__all__ = [
    "TOKENS",
    "Credentials",
    "FaultPlan",
    "FaultRule",
    "Organisation",
    "Simulator",
    "generate",
    "serve",
    "transport",
]
