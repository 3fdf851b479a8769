"""Alert webhook: post each dependency alert to a Slack-compatible incoming webhook once when
it opens and once when it resolves.

Why an outbox: the transform writes one ``alert_events`` row (``open`` or ``resolve``) in the
same transaction that opens or resolves the alert, and this module only *drains* that table.
So an alert is announced exactly when the warehouse says it changed, and a crash between the
two never loses or invents a message.

Delivery guarantees:

* **Once per event, across restarts.** An event is claimed and its ``delivered_at`` is set in
  one transaction that commits only after the webhook answered 2xx. A new call (a restart)
  finds nothing left to send. The one unavoidable gap: if the process dies after the webhook
  accepted the message but before the commit, the event is sent again on the next run
  (at-least-once; Slack webhooks take no idempotency key).
* **Two processes never send the same event.** PostgreSQL: the claim is
  ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED LIMIT 1)``, so a second daemon skips
  rows another one holds. SQLite has a single writer: the claim is the transaction's first
  statement, so a second process waits for the lock and then sees the event delivered.
* **Order per alert.** An event is only claimed when no older event of the same alert is
  still undelivered, so "resolved" never overtakes "opened", even with several daemons.
* **Retries.** Timeouts, connection errors and 5xx are retried with exponential backoff and
  jitter; 429 waits for ``Retry-After``. When the webhook keeps failing (or answers another
  4xx, e.g. a revoked webhook), the run stops, the event stays queued for the next run, and
  the reason is logged. A webhook outage never fails the sync or transform that called us.
* **Disabled** when ``[alerts] webhook_url`` is not set: nothing is sent and events stay queued.

The webhook URL is a secret (whoever has it can post to the channel), so it never appears in
our logs or errors, and it is masked in httpx's own request log while we send.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from programview.errors import ConfigError
from programview.http import parse_retry_after

if TYPE_CHECKING:
    from programview.config import Config

log = logging.getLogger(__name__)

#: Attempts per event before the run gives up (the event stays queued for the next run).
MAX_ATTEMPTS = 5
#: Retries of one event stop before this many seconds have passed: the claim holds a lock
#: meanwhile (SQLite's single writer waits up to 60 s for it, see warehouse.db).
MAX_RETRY_SECONDS = 40.0
#: A 429 asking us to wait longer than this ends the run instead of blocking it.
MAX_RETRY_AFTER_SECONDS = 30.0
#: Seconds to wait for the webhook to answer one post.
TIMEOUT_SECONDS = 10.0

SEVERITY_EMOJI = {
    "critical": ":red_circle:",
    "high": ":large_orange_circle:",
    "medium": ":large_yellow_circle:",
    "low": ":white_circle:",
}

# The outbox and views are the transform's public contract; lightweight table constructs keep
# this module independent of the internal ORM models.
_events = sa.table(
    "alert_events",
    sa.column("id"),
    sa.column("alert_id"),
    sa.column("event"),
    sa.column("created_at"),
    sa.column("delivered_at"),
)
_alerts = sa.table(
    "v_dependency_alerts",
    *(
        sa.column(name)
        for name in (
            "alert_id",
            "program_key",
            "rule",
            "severity",
            "status",
            "blocked_item_key",
            "blocked_project_key",
            "blocking_item_key",
            "blocking_project_key",
            "message",
            "slip_days",
            "first_seen_at",
            "last_seen_at",
            "resolved_at",
            "person",
        )
    ),
)
_items = sa.table("v_work_items", sa.column("item_key"), sa.column("url"), sa.column("title"))


class _RetryableStatus(Exception):
    """A 429 or 5xx answer: worth another try (after ``retry_after`` seconds if given)."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(f"HTTP {status}")


def deliver_alert_events(
    engine: Engine,
    config: Config,
    *,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send every undelivered ``alert_events`` row to the webhook; return how many were sent.

    ``transport`` replaces httpx's network transport (tests, proxies); ``sleep`` is what
    waits between retries (tests pass a recorder so they never actually wait).
    Returns 0 without touching the queue when no webhook URL is configured.
    """
    secret = config.alerts.webhook_url
    url = secret.get_secret_value().strip() if secret is not None else ""
    if not url:
        log.debug("alert webhook disabled: [alerts] webhook_url is not set")
        return 0
    if not url.startswith(("https://", "http://")):
        # Never echo the value: it is a secret even when malformed.
        raise ConfigError("alerts.webhook_url must be an http:// or https:// URL")
    host = httpx.URL(url).host

    sent = 0
    with (
        _mask_in_http_logs(url),
        httpx.Client(transport=transport, timeout=TIMEOUT_SECONDS) as client,
    ):
        while True:
            try:
                with engine.begin() as conn:
                    event = _claim_next(conn)
                    if event is None:
                        break
                    payload = build_message(event["event"], _alert_details(conn, event))
                    _post(client, url, payload, event, sleep)
                    conn.execute(
                        sa.update(_events)
                        .where(_events.c.id == event["id"])
                        .values(delivered_at=_utcnow())
                    )
            except _DeliveryFailed as exc:
                log.warning(
                    "alert webhook (%s): %s; event %s of alert %s stays queued for the next run"
                    " (%d sent in this run)",
                    host,
                    exc,
                    exc.event_name,
                    exc.alert_id,
                    sent,
                )
                break
            sent += 1
            log.debug("alert webhook: sent %s of alert %s", event["event"], event["alert_id"])
    if sent:
        log.info("alert webhook (%s): sent %d alert event(s)", host, sent)
    return sent


class _DeliveryFailed(Exception):
    """The webhook did not take the message; the transaction rolls back the claim."""

    def __init__(self, reason: str, event: Mapping[str, Any]) -> None:
        self.event_name = event["event"]
        self.alert_id = event["alert_id"]
        super().__init__(reason)


def _claim_next(conn: Connection) -> dict[str, Any] | None:
    """Mark the oldest sendable event as delivered (uncommitted) and return it, or None.

    "Sendable": undelivered, and no older undelivered event of the same alert (keeps open
    before resolve when several processes drain the queue).
    """
    earlier = sa.alias(_events, "earlier")
    older_pending = (
        sa.select(sa.literal(1))
        .select_from(earlier)
        .where(
            earlier.c.alert_id == _events.c.alert_id,
            earlier.c.delivered_at.is_(None),
            sa.or_(
                earlier.c.created_at < _events.c.created_at,
                sa.and_(earlier.c.created_at == _events.c.created_at, earlier.c.id < _events.c.id),
            ),
        )
    )
    next_id = (
        sa.select(_events.c.id)
        .where(_events.c.delivered_at.is_(None), ~older_pending.exists())
        .order_by(_events.c.created_at, _events.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite ignores it (single writer)
        .scalar_subquery()
    )
    row = conn.execute(
        sa.update(_events)
        .where(_events.c.id == next_id, _events.c.delivered_at.is_(None))
        .values(delivered_at=_utcnow())
        .returning(_events.c.id, _events.c.alert_id, _events.c.event, _events.c.created_at)
    ).first()
    return dict(row._mapping) if row is not None else None


def _alert_details(conn: Connection, event: Mapping[str, Any]) -> dict[str, Any]:
    """The alert as the views show it, plus links to both items when the view has them."""
    row = conn.execute(sa.select(_alerts).where(_alerts.c.alert_id == event["alert_id"])).first()
    alert: dict[str, Any] = dict(row._mapping) if row is not None else {}
    alert.setdefault("alert_id", event["alert_id"])
    keys = [k for k in (alert.get("blocked_item_key"), alert.get("blocking_item_key")) if k]
    if keys:
        links = conn.execute(
            sa.select(_items.c.item_key, _items.c.url).where(_items.c.item_key.in_(keys))
        ).all()
        alert["urls"] = {key: link for key, link in links if link}
    return alert


def _post(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    event: Mapping[str, Any],
    sleep: Callable[[float], None],
) -> None:
    """POST with retries; return on 2xx, raise ``_DeliveryFailed`` otherwise."""
    retrying = Retrying(
        stop=stop_after_attempt(MAX_ATTEMPTS) | stop_before_delay(MAX_RETRY_SECONDS),
        wait=_wait,
        retry=retry_if_exception(_worth_retrying),
        sleep=sleep,
        reraise=True,
        before_sleep=_log_retry,
    )
    try:
        for attempt in retrying:
            with attempt:
                response = client.post(url, json=body)
                if response.status_code == 429 or response.status_code >= 500:
                    raise _RetryableStatus(response.status_code, _retry_after(response))
    except _RetryableStatus as exc:
        if exc.retry_after is not None and exc.retry_after > MAX_RETRY_AFTER_SECONDS:
            reason = f"HTTP {exc.status}, asked to retry after {exc.retry_after:.0f}s"
        else:
            reason = f"HTTP {exc.status} after {retrying.statistics['attempt_number']} attempts"
        raise _DeliveryFailed(reason, event) from None
    except httpx.TransportError as exc:
        # Class name only: some httpx messages carry the request URL.
        attempts = retrying.statistics["attempt_number"]
        raise _DeliveryFailed(f"{type(exc).__name__} after {attempts} attempts", event) from None
    if not response.is_success:
        # 400 invalid payload, 403/404/410 webhook revoked or channel archived: retrying in this
        # run cannot help, but the event is kept so fixing the config resends it.
        raise _DeliveryFailed(
            f"HTTP {response.status_code} {_short_body(response)} (not retried)", event
        )


def _worth_retrying(exc: BaseException) -> bool:
    if isinstance(exc, _RetryableStatus):
        return exc.retry_after is None or exc.retry_after <= MAX_RETRY_AFTER_SECONDS
    # Timeouts, refused/reset connections, broken responses; not a bad URL scheme.
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


_backoff = wait_exponential_jitter(initial=1, max=30, jitter=1)


def _wait(state: RetryCallState) -> float:
    """``Retry-After`` when the server gave one, else exponential backoff with jitter."""
    exc = state.outcome.exception() if state.outcome is not None else None
    if isinstance(exc, _RetryableStatus) and exc.retry_after is not None:
        return exc.retry_after
    return float(_backoff(state))


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    reason = str(exc) if isinstance(exc, _RetryableStatus) else type(exc).__name__
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    log.info(
        "alert webhook: %s, retrying in %.1fs (attempt %d of %d)",
        reason,
        wait,
        state.attempt_number + 1,
        MAX_ATTEMPTS,
    )


def _retry_after(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"))


def _short_body(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return repr(text[:120]) if text else ""


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# --- the message ---------------------------------------------------------------------------


def build_message(event: str, alert: Mapping[str, Any]) -> dict[str, Any]:
    """The Slack ``{"text", "blocks"}`` body for an ``open`` or ``resolve`` event.

    ``text`` stands alone (notifications, non-Slack receivers such as Mattermost or Teams
    bridges); ``blocks`` lays out rule, severity, both items with links, projects and slip.
    """
    if event not in ("open", "resolve"):
        raise ValueError(f"unknown alert event {event!r} (expected 'open' or 'resolve')")
    resolved = event == "resolve"
    rule = str(alert.get("rule") or "dependency")
    severity = str(alert.get("severity") or "unknown")
    blocked = _item(alert, "blocked")
    blocking = _item(alert, "blocking")
    slip = alert.get("slip_days")
    slip_text = f"{_number(slip)} days" if slip is not None else "n/a"
    program = alert.get("program_key")

    person = alert.get("person")
    # release_at_risk is about a release, not two items: its message starts with it
    release = (
        str(alert.get("message") or "").split(" is at risk")[0].removeprefix("Release ")
        if rule == "release_at_risk"
        else None
    )
    if resolved:
        headline = (
            f"Resolved: {blocked} is no longer blocked by {blocking} ({rule})"
            if blocked and blocking
            else f"Resolved: {person} is no longer stretched ({rule})"
            if person
            else f"Resolved: release {release} is no longer at risk ({rule})"
            if release
            else f"Resolved: dependency alert {alert.get('alert_id')} ({rule})"
        )
        lead = ":white_check_mark: *Dependency alert resolved*"
    else:
        headline = (
            f"{severity.upper()} dependency alert: {blocked} is blocked by {blocking} ({rule})"
            if blocked and blocking
            else f"{severity.upper()} alert: {person} is stretched across projects ({rule})"
            if person
            else f"{severity.upper()} alert: release {release} is at risk ({rule})"
            if release
            else f"{severity.upper()} dependency alert {alert.get('alert_id')} ({rule})"
        )
        lead = f"{SEVERITY_EMOJI.get(severity, ':warning:')} *Dependency alert opened*"
        if slip:
            headline += f", slip {slip_text}"
    text = headline if not program else f"[{program}] {headline}"

    detail = _escape(str(alert.get("message") or headline))
    if resolved:
        detail = f"No longer holds: {detail}"
    fields = [
        ("Rule", f"`{_escape(rule)}`"),
        ("Severity", severity if not resolved else f"{severity} (resolved)"),
        ("Blocked", _item_link(alert, "blocked")),
        ("Blocking", _item_link(alert, "blocking")),
        ("Slip", slip_text),
        ("Program", _escape(str(program)) if program else "n/a"),
    ]
    context = [f"alert {_escape(str(alert.get('alert_id')))}"]
    if alert.get("first_seen_at"):
        context.append(f"first seen {_when(alert['first_seen_at'])}")
    if resolved and alert.get("resolved_at"):
        context.append(f"resolved {_when(alert['resolved_at'])}")
    context.append("programview")
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": _cap(f"{lead}\n{detail}")}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": _cap(f"*{name}*\n{value}", 2000)}
                    for name, value in fields
                ],
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
        ],
    }


def _item(alert: Mapping[str, Any], side: str) -> str:
    key = alert.get(f"{side}_item_key")
    project = alert.get(f"{side}_project_key")
    if not key:
        return ""
    return f"{key} ({project})" if project else str(key)


def _item_link(alert: Mapping[str, Any], side: str) -> str:
    key = alert.get(f"{side}_item_key")
    if not key:
        return "n/a"
    url = (alert.get("urls") or {}).get(key)
    shown = f"<{url}|{_escape(str(key))}>" if url else _escape(str(key))
    project = alert.get(f"{side}_project_key")
    return f"{shown} ({_escape(str(project))})" if project else shown


def _escape(text: str) -> str:
    """Slack mrkdwn control characters (the only three Slack asks to escape)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cap(text: str, limit: int = 3000) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:.1f}"


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


@contextmanager
def _mask_in_http_logs(url: str) -> Iterator[None]:
    """httpx logs every request line at INFO, URL included: mask ours while we send."""
    secrets = {url, str(httpx.URL(url))}
    loggers = [logging.getLogger("httpx"), logging.getLogger("httpcore")]

    def mask(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in secrets):
            for s in secrets:
                message = message.replace(s, "<alert webhook url>")
            record.msg, record.args = message, None
        return True

    for logger in loggers:
        logger.addFilter(mask)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(mask)
