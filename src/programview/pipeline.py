"""What follows every sync, in one place: recompute the program view, then send the alert
webhooks it queued. ``programview sync``/``backfill``/``transform``, the daemon and the demo
all call :func:`refresh`, so none of them can forget a step."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from programview.config import Config
from programview.warehouse import db


def refresh(
    config: Config,
    *,
    engine: Engine | None = None,
    as_of: datetime | None = None,
    full: bool = False,
) -> int:
    """Run the transform (as of ``as_of``, default now; ``full``: closed sprints and releases
    too, after a remap) and deliver queued alert events.

    Returns the number of webhook messages sent (0 when no webhook URL is configured).
    """
    from programview.alerts_webhook import deliver_alert_events
    from programview.transform import run_transform

    own = engine is None
    eng = engine if engine is not None else db.create_engine(config.warehouse.url)
    try:
        # ``full`` only when asked: callers (and test doubles) of the plain form stay unchanged
        run_transform(eng, config, as_of=as_of, **({"full": True} if full else {}))
        return deliver_alert_events(eng, config)
    finally:
        if own:
            eng.dispose()
