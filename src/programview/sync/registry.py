"""Finding connectors: the entry-point group ``programview.connectors`` and nothing else.

The core never imports a connector by name, so a third-party package that declares::

    [project.entry-points."programview.connectors"]
    jama = "programview_jama:JamaConnector"

plugs in exactly like the built-in Jira, GitHub and GitLab connectors.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from programview.errors import ConfigError
from programview.sync.connector import Connector

GROUP = "programview.connectors"


def connector_entry_points() -> dict[str, EntryPoint]:
    """Installed connector entry points by kind (name of the entry point)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load_connector(kind: str) -> type[Connector]:
    """The connector class for ``kind``; a clear error lists the installed kinds."""
    eps = connector_entry_points()
    if kind not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise ConfigError(f"unknown source kind {kind!r}: installed connectors are {known}")
    cls = eps[kind].load()
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigError(f"entry point {kind!r} ({eps[kind].value}) is not a Connector class")
    return cls


def installed_connectors() -> dict[str, type[Connector]]:
    """Every installed connector class by kind."""
    return {kind: load_connector(kind) for kind in sorted(connector_entry_points())}
