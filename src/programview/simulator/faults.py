"""Fault injection plan for the simulator: what goes wrong, where, and when.

Connectors must survive rate limits, 5xx bursts, broken pages and dropped connections;
tests and benchmarks switch these on per run (``serve(faults=...)``, ``--faults SPEC``)
or at runtime (``sim.faults.add("github:5xx:count=2")``). The app (``app.py``) turns a
firing rule into the real status, headers and body of the API concerned.

Grammar of a ``--faults`` SPEC::

    SPEC  := RULE ( ";" RULE )*
    RULE  := API ":" KIND [ ":" OPT ( "," OPT )* ]
    API   := jira | jira-dc | github | gitlab | *
    KIND  := ratelimit | secondary | 5xx | malformed | drop | latency
    OPT   := at=N          fire from the Nth matching request on (1-based, default 1)
           | count=N       for N matching requests (default 1; 0 = every one from ``at``)
           | path=GLOB     fnmatch glob on the path after the API prefix, no query
                           (default ``*``; e.g. ``/rest/api/3/search/jql``, ``*/issues``)
           | method=GET    only this HTTP method (default any)
           | status=N      5xx: 500|502|503|504 (default 503);
                           ratelimit/secondary on github: 403|429 (default 403)
           | retry_after=S seconds in Retry-After / reset (default: the plan's
                           ``retry_after_s``, 1 s); on 5xx only sent when given
           | ms=N          latency: extra delay in milliseconds
           | variant=V     gitlab ratelimit: ``json`` (default), ``text`` ("Retry later")
                           or ``bare`` ("Retry later" without Retry-After or RateLimit-*
                           headers, as GitLab sometimes answers);
                           jira ratelimit: ``json`` (default) or ``html``

Examples: ``github:ratelimit:at=3`` (the 3rd GitHub request gets the primary limit),
``jira:5xx:count=2,retry_after=1`` (two 503s then OK), ``gitlab:ratelimit:variant=text``,
``*:latency:ms=200,count=0,path=*/issues``, ``jira:drop:path=/rest/api/3/search/jql``.

Kinds: ``ratelimit`` = the API's primary rate limit (Jira 429, GitHub 403/429 with
``x-ratelimit-remaining: 0``, GitLab 429); ``secondary`` = GitHub's secondary limit
(``retry-after`` and its message; other APIs treat it as ``ratelimit``); ``5xx`` =
server error; ``malformed`` = the real page truncated (invalid JSON, consistent
Content-Length); ``drop`` = headers promise the full body, half is sent, then the
connection closes; ``latency`` = added delay.

Counting: every rule counts every request that matches its API, path and method, so
"at=N" means the Nth such request whatever else fired. Latency rules add up; of the
other rules the first firing one in plan order wins.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

APIS = ("jira", "jira-dc", "github", "gitlab", "*")
KINDS = ("ratelimit", "secondary", "5xx", "malformed", "drop", "latency")
#: kinds answered before the endpoint runs / after it produced its body
PRE_KINDS = ("ratelimit", "secondary", "5xx")
POST_KINDS = ("malformed", "drop")


class FaultSpecError(ValueError):
    """A ``--faults`` spec that does not follow the grammar (message names the part)."""


@dataclass
class FaultRule:
    """One fault. ``seen``/``fired`` count matching and faulted requests (for asserts)."""

    api: str
    kind: str
    at: int = 1
    count: int = 1
    path: str = "*"
    method: str = "*"
    status: int | None = None
    retry_after: float | None = None
    ms: float = 0.0
    variant: str | None = None
    seen: int = field(default=0, compare=False)
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.api not in APIS:
            raise FaultSpecError(f"unknown API {self.api!r} (one of {', '.join(APIS)})")
        if self.kind not in KINDS:
            raise FaultSpecError(f"unknown fault kind {self.kind!r} (one of {', '.join(KINDS)})")
        if self.at < 1 or self.count < 0:
            raise FaultSpecError("at must be >= 1 and count >= 0")
        self.method = self.method.upper() if self.method != "*" else "*"

    def matches(self, api: str, method: str, path: str) -> bool:
        return (
            self.api in ("*", api)
            and self.method in ("*", method)
            and fnmatch.fnmatchcase(path, self.path)
        )

    def _take(self) -> bool:
        """Count one matching request; True when it falls in the firing window."""
        self.seen += 1
        if self.seen < self.at:
            return False
        if self.count and self.seen >= self.at + self.count:
            return False
        self.fired += 1
        return True

    def spec(self) -> str:
        """The rule back in ``--faults`` syntax."""
        opts = [f"at={self.at}", f"count={self.count}"]
        for name in ("path", "method"):
            if getattr(self, name) != "*":
                opts.append(f"{name}={getattr(self, name)}")
        for name in ("status", "retry_after", "variant"):
            if getattr(self, name) is not None:
                opts.append(f"{name}={getattr(self, name)}")
        if self.ms:
            opts.append(f"ms={self.ms:g}")
        return f"{self.api}:{self.kind}:{','.join(opts)}"


@dataclass
class FaultDecision:
    """What the app must do for one request."""

    latency_ms: float = 0.0
    pre: FaultRule | None = None  # answer with this fault instead of the endpoint
    post: FaultRule | None = None  # run the endpoint, then break its body


class FaultPlan:
    """A thread-safe, mutable list of FaultRules (tests change it while a server runs)."""

    def __init__(self, rules: Iterable[FaultRule] = (), retry_after_s: float = 1.0) -> None:
        self._rules: list[FaultRule] = list(rules)
        self._lock = threading.Lock()
        #: Default Retry-After / reset distance in seconds: short so tests stay fast.
        self.retry_after_s = retry_after_s

    @classmethod
    def parse(cls, spec: str | None, retry_after_s: float = 1.0) -> FaultPlan:
        """Build a plan from a SPEC string (see module docstring); empty → no faults."""
        return cls([parse_rule(r) for r in (spec or "").split(";") if r.strip()], retry_after_s)

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def add(self, rule: FaultRule | str) -> FaultRule:
        """Add a rule (object or one RULE of the grammar); returns it for later asserts."""
        if isinstance(rule, str):
            rule = parse_rule(rule)
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.remove(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def decide(self, api: str, method: str, path: str) -> FaultDecision:
        """Count the request against every matching rule and say which faults fire."""
        decision = FaultDecision()
        with self._lock:
            for rule in self._rules:
                if not rule.matches(api, method, path) or not rule._take():
                    continue
                if rule.kind == "latency":
                    decision.latency_ms += rule.ms
                elif rule.kind in PRE_KINDS and decision.pre is None and decision.post is None:
                    decision.pre = rule
                elif rule.kind in POST_KINDS and decision.pre is None and decision.post is None:
                    decision.post = rule
        return decision

    def __repr__(self) -> str:
        return f"FaultPlan({';'.join(r.spec() for r in self.rules)!r})"


_INT_OPTS = ("at", "count", "status")
_FLOAT_OPTS = ("retry_after", "ms")
_STR_OPTS = ("path", "method", "variant")


def parse_rule(text: str) -> FaultRule:
    """Parse one RULE (``api:kind[:opt=v,...]``)."""
    parts = text.strip().split(":", 2)
    if len(parts) < 2:
        raise FaultSpecError(f"fault rule {text!r}: expected API:KIND[:OPTIONS]")
    api, kind = parts[0].strip(), parts[1].strip()
    kwargs: dict[str, object] = {}
    if len(parts) == 3 and parts[2].strip():
        for opt in parts[2].split(","):
            name, sep, value = opt.partition("=")
            name, value = name.strip(), value.strip()
            if not sep:
                raise FaultSpecError(f"fault rule {text!r}: option {opt!r} is not name=value")
            try:
                if name in _INT_OPTS:
                    kwargs[name] = int(value)
                elif name in _FLOAT_OPTS:
                    kwargs[name] = float(value)
                elif name in _STR_OPTS:
                    kwargs[name] = value
                else:
                    raise FaultSpecError(f"fault rule {text!r}: unknown option {name!r}")
            except ValueError as exc:
                if isinstance(exc, FaultSpecError):
                    raise
                raise FaultSpecError(f"fault rule {text!r}: bad value for {name}") from exc
    return FaultRule(api=api, kind=kind, **kwargs)  # type: ignore[arg-type]
