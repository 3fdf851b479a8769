"""Alert webhook delivery from the ``alert_events`` outbox (migrated schema, SQLite and
PostgreSQL; the webhook is mocked with respx)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import respx
import sqlalchemy as sa
from pydantic import SecretStr

from programview.alerts_webhook import MAX_ATTEMPTS, _claim_next, deliver_alert_events
from programview.config import Config, parse_config
from programview.errors import ConfigError
from programview.transform.settings import AlertsConfig
from programview.warehouse import db

HOOK = "https://hooks.example.com/services/T000/B000/s3cr3tW3bh00kT0k3n"
SECRET_PART = "s3cr3tW3bh00kT0k3n"


def config(url: str | None = HOOK) -> Any:
    if url is None:
        return parse_config("")
    return parse_config('[alerts]\nwebhook_url = "${HOOK}"\n', environ={"HOOK": url})


class Sleeps(list[float]):
    """Records the waits between retries instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def add_alert(engine: sa.Engine, alert_id: int, *, status: str = "open", **values: Any) -> None:
    row = {
        "id": alert_id,
        "identity": f"id{alert_id}",
        "rule": "blocker_scheduled_later",
        "program_key": "PAYMENTS",
        "severity": "high",
        "status": status,
        "blocked_item_key": "PAY-12",
        "blocked_project_key": "PAY",
        "blocking_item_key": "acme/web#45",
        "blocking_project_key": "WEB",
        "message": "PAY-12 is due 2026-11-10 but its blocker acme/web#45 is planned 2026-11-20",
        "slip_days": 10,
        "first_seen_at": datetime(2026, 11, 1, 6),
        "last_seen_at": datetime(2026, 11, 3, 6),
        "resolved_at": datetime(2026, 11, 4, 6) if status == "resolved" else None,
        **values,
    }
    with engine.begin() as conn:
        conn.execute(db.table("dependency_alerts").insert(), row)


def add_event(engine: sa.Engine, alert_id: int, event: str, at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            db.table("alert_events").insert(),
            {"alert_id": alert_id, "event": event, "created_at": at},
        )


def resolve(engine: sa.Engine, alert_id: int) -> None:
    with engine.begin() as conn:
        alerts = db.table("dependency_alerts")
        conn.execute(
            alerts.update()
            .where(alerts.c.id == alert_id)
            .values(status="resolved", resolved_at=datetime(2026, 11, 4, 6))
        )
    add_event(engine, alert_id, "resolve", datetime(2026, 11, 4, 6))


def undelivered(engine: sa.Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    "SELECT alert_id, event FROM alert_events WHERE delivered_at IS NULL "
                    "ORDER BY id"
                )
            )
        ]


@pytest.fixture
def opened(engine: sa.Engine) -> sa.Engine:
    """One open alert with its 'open' event queued, and the blocking item's URL known."""
    with engine.begin() as conn:
        conn.execute(
            db.table("work_items").insert(),
            {
                "id": "gh:45",
                "source_name": "gh",
                "scope": "acme/web",
                "native_id": "45",
                "item_key": "acme/web#45",
                "url": "https://github.example/acme/web/issues/45",
                "type_category": "story",
                "status_category": "in_progress",
            },
        )
    add_alert(engine, 1)
    add_event(engine, 1, "open", datetime(2026, 11, 1, 6))
    return engine


def test_open_then_resolve_each_sent_once(opened: sa.Engine) -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(HOOK).mock(return_value=httpx.Response(200, text="ok"))

        assert deliver_alert_events(opened, config(), sleep=Sleeps()) == 1
        assert route.call_count == 1
        body = json.loads(route.calls[0].request.content)
        assert undelivered(opened) == []

        # A restart (a new call) finds nothing left to send.
        assert deliver_alert_events(opened, config(), sleep=Sleeps()) == 0
        assert route.call_count == 1

        resolve(opened, 1)
        assert deliver_alert_events(opened, config(), sleep=Sleeps()) == 1
        assert deliver_alert_events(opened, config(), sleep=Sleeps()) == 0
        assert route.call_count == 2
        resolved = json.loads(route.calls[1].request.content)

    # Slack shape: a fallback text plus blocks naming rule, severity, items, projects, slip.
    assert set(body) == {"text", "blocks"}
    assert body["text"] == (
        "[PAYMENTS] HIGH dependency alert: PAY-12 (PAY) is blocked by acme/web#45 (WEB) "
        "(blocker_scheduled_later), slip 10 days"
    )
    shown = json.dumps(body["blocks"])
    for expected in (
        "blocker_scheduled_later",
        "high",
        "PAY-12",
        "(PAY)",
        "(WEB)",
        "10 days",
        "<https://github.example/acme/web/issues/45|acme/web#45>",
    ):
        assert expected in shown, expected
    assert resolved["text"].startswith(
        "[PAYMENTS] Resolved: PAY-12 (PAY) is no longer blocked by acme/web#45 (WEB)"
    )
    assert "resolved" in json.dumps(resolved["blocks"]).lower()


def test_server_error_then_success_sends_once(opened: sa.Engine) -> None:
    sleeps = Sleeps()
    with respx.mock() as mock:
        route = mock.post(HOOK).mock(
            side_effect=[httpx.Response(500), httpx.Response(200, text="ok")]
        )
        assert deliver_alert_events(opened, config(), sleep=sleeps) == 1
        assert deliver_alert_events(opened, config(), sleep=sleeps) == 0
    assert route.call_count == 2  # the 500 and the one successful delivery
    assert len(sleeps) == 1 and sleeps[0] > 0  # backed off before retrying
    assert undelivered(opened) == []


def test_timeout_is_retried(opened: sa.Engine) -> None:
    with respx.mock() as mock:
        route = mock.post(HOOK).mock(side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200)])
        assert deliver_alert_events(opened, config(), sleep=Sleeps()) == 1
    assert route.call_count == 2


def test_rate_limit_waits_for_retry_after(opened: sa.Engine) -> None:
    sleeps = Sleeps()
    with respx.mock() as mock:
        mock.post(HOOK).mock(
            side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200)]
        )
        assert deliver_alert_events(opened, config(), sleep=sleeps) == 1
    assert sleeps == [7.0]


def test_rate_limit_longer_than_cap_leaves_event_queued(opened: sa.Engine) -> None:
    sleeps = Sleeps()
    with respx.mock() as mock:
        route = mock.post(HOOK).mock(
            return_value=httpx.Response(429, headers={"Retry-After": "3600"})
        )
        assert deliver_alert_events(opened, config(), sleep=sleeps) == 0
    assert route.call_count == 1 and sleeps == []  # no hour-long block inside a sync
    assert undelivered(opened) == [(1, "open")]


def test_persistent_failure_keeps_event_for_next_run_and_hides_url(
    opened: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # the daemon's log setup quiets it
    with respx.mock() as mock:
        route = mock.post(HOOK).mock(return_value=httpx.Response(503))
        assert deliver_alert_events(opened, config(), sleep=Sleeps()) == 0
        assert route.call_count == MAX_ATTEMPTS
    assert undelivered(opened) == [(1, "open")]
    assert "HTTP 503" in caplog.text and "stays queued" in caplog.text
    # Neither our log nor httpx's request log shows the webhook URL (it is a credential).
    assert "HTTP Request" in caplog.text
    assert SECRET_PART not in caplog.text

    with respx.mock() as mock:
        mock.post(HOOK).mock(return_value=httpx.Response(200))
        assert deliver_alert_events(opened, config(), sleep=Sleeps()) == 1
    assert undelivered(opened) == []


def test_client_error_is_not_retried(opened: sa.Engine, caplog: pytest.LogCaptureFixture) -> None:
    with respx.mock() as mock:
        route = mock.post(HOOK).mock(return_value=httpx.Response(404, text="no_service"))
        assert deliver_alert_events(opened, config(), sleep=Sleeps()) == 0
    assert route.call_count == 1
    assert "HTTP 404 'no_service' (not retried)" in caplog.text
    assert undelivered(opened) == [(1, "open")]


def test_no_url_sends_nothing_and_keeps_events(opened: sa.Engine) -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(url__regex=r".*").mock(return_value=httpx.Response(200))
        assert deliver_alert_events(opened, config(None)) == 0
    assert not route.called
    assert undelivered(opened) == [(1, "open")]


def test_bad_url_is_a_config_error_that_hides_the_value(opened: sa.Engine) -> None:
    # The config file check refuses it too; this covers a Config built in code.
    built = Config(alerts=AlertsConfig(webhook_url=SecretStr(f"hooks.example.com/{SECRET_PART}")))
    with pytest.raises(ConfigError, match="alerts.webhook_url must be an http") as info:
        deliver_alert_events(opened, built)
    assert SECRET_PART not in str(info.value)


def test_open_is_sent_before_resolve_of_the_same_alert(engine: sa.Engine) -> None:
    add_alert(engine, 1, status="resolved")
    add_alert(engine, 2, blocked_item_key="PAY-13")
    # Same timestamp for open and resolve (one transform run opened and resolved it).
    add_event(engine, 1, "open", datetime(2026, 11, 1, 6))
    add_event(engine, 1, "resolve", datetime(2026, 11, 1, 6))
    add_event(engine, 2, "open", datetime(2026, 11, 2, 6))
    with respx.mock() as mock:
        route = mock.post(HOOK).mock(return_value=httpx.Response(200))
        assert deliver_alert_events(engine, config(), sleep=Sleeps()) == 3
    texts = [json.loads(c.request.content)["text"] for c in route.calls]
    assert [t.split("] ")[1].split(":")[0] for t in texts] == [
        "HIGH dependency alert",
        "Resolved",
        "HIGH dependency alert",
    ]
    assert "PAY-13" in texts[2]


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[sa.Engine]:
    """A migrated PostgreSQL warehouse whose sessions give up on a lock after 5 s, so a
    claim that waits for another process (instead of skipping its rows) fails, not hangs."""
    db.upgrade(pg_url)
    eng = sa.create_engine(pg_url, connect_args={"options": "-c lock_timeout=5000"})
    yield eng
    eng.dispose()


@pytest.mark.postgres
def test_events_claimed_by_another_process_are_skipped(pg_engine: sa.Engine) -> None:
    engine = pg_engine
    add_alert(engine, 1)
    add_alert(engine, 2, blocked_item_key="PAY-13")
    add_event(engine, 1, "open", datetime(2026, 11, 1, 6))
    add_event(engine, 1, "resolve", datetime(2026, 11, 1, 7))
    add_event(engine, 2, "open", datetime(2026, 11, 2, 6))

    # "Process A" holds alert 1's open event, mid-send.
    other = engine.connect()
    claim = other.begin()
    try:
        claimed = _claim_next(other)
        assert claimed is not None and claimed["alert_id"] == 1
        with respx.mock() as mock:
            route = mock.post(HOOK).mock(return_value=httpx.Response(200))
            # "Process B" neither waits for A nor sends A's event, nor alert 1's resolve
            # before A's open went out.
            assert deliver_alert_events(engine, config(), sleep=Sleeps()) == 1
        assert "PAY-13" in json.loads(route.calls[0].request.content)["text"]
    finally:
        claim.rollback()  # A's send failed: its claim is released
        other.close()

    assert undelivered(engine) == [(1, "open"), (1, "resolve")]
    with respx.mock() as mock:
        route = mock.post(HOOK).mock(return_value=httpx.Response(200))
        assert deliver_alert_events(engine, config(), sleep=Sleeps()) == 2
    assert undelivered(engine) == []
