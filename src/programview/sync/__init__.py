"""Syncing sources into the warehouse.

* :mod:`programview.sync.connector` - the interface a connector implements (streams, pages,
  mapping to records).
* :mod:`programview.sync.registry` - finding connectors through the ``programview.connectors``
  entry-point group.
* :mod:`programview.sync.engine` - running them: ``sync()`` / ``run_sync()``, ``RunResult``.

Nothing is re-exported here, so importing the connector interface (as every connector does)
does not pull in the engine, the config and the database layer.
"""
