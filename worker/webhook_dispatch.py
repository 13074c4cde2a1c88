"""Sends recorded webhook deliveries (the outbox in `webhook_deliveries`) over HTTP.

The request
-----------
`POST <webhook url>` with `Content-Type: application/json` and the body

    {"id": <delivery id>, "event": "job.finished", "created_at": "<ISO 8601>", "data": {...}}

and the headers

    X-Tag2mask-Event:     the event name
    X-Tag2mask-Delivery:  the delivery id (the same on every retry: receivers dedupe on it)
    X-Tag2mask-Timestamp: Unix time in whole seconds when this attempt was sent
    X-Tag2mask-Signature: sha256=<hex HMAC-SHA256(key=secret, msg=f"{timestamp}.{body}")>

where `secret` is the webhook's secret (UTF-8) and `body` the raw request body bytes,
exactly as received. A receiver recomputes the HMAC over the raw bytes, compares it in
constant time and rejects timestamps too far from its clock (replays). A 2xx answer
means delivered; redirects are not followed.

Where it may go
---------------
Each attempt resolves the URL's host again, checks every address against the webhook
policy (app/webhook_targets.py: public addresses, plus the networks in
`TAG2MASK_WEBHOOK_ALLOW_NETWORKS`) and connects to a checked address only
(worker/webhook_transport.py). A refused address is never connected to.

Retries
-------
Any other answer, or a refused address, a network error or timeout, is recorded on the row
and retried after `base * 2**attempts` seconds (capped at one hour by default), less a
random jitter of up to half of that; after `max_attempts` attempts the delivery is
`failed`. Delivery is at least once.

The row keeps the status code and a category of failure in `last_error`, never anything
the receiver sent: `http_status` (a non-2xx answer; see `last_status_code`),
`refused_address`, `unreachable` (every network failure alike: no resolution, refused,
reset, timed out; telling them apart would turn webhooks into a port scanner of the
networks they may reach) and `interrupted` (a dispatcher died during the last attempt).

Claiming
--------
A pass claims due rows with one conditional UPDATE that bumps `attempts` and pushes
`next_attempt_at` out by a lease (on PostgreSQL the candidate rows are picked with
`FOR UPDATE SKIP LOCKED`; on SQLite the UPDATE's own conditions and SQLite's single writer
are enough), commits, and only then makes the HTTP calls: no transaction is open during
one. The result is written back guarded by the claimed attempt number, so concurrent
dispatchers never send one attempt twice, and a dispatcher that died mid-call leaves a row
that is retried when its lease ends.

`WebhookDispatcher` runs `deliver_due` in a loop thread: inside the embedded server's
thread runner and beside every `tag2mask worker`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.tables import Webhook, WebhookDelivery, utcnow
from app.webhook_targets import RefusedAddress, TargetPolicy
from worker.webhook_transport import pinned_client

log = logging.getLogger(__name__)

USER_AGENT = "tag2mask-webhooks/1"
SIGNATURE_PREFIX = "sha256="
# The failure categories `last_error` holds (see "Retries" above).
HTTP_STATUS = "http_status"
REFUSED_ADDRESS = "refused_address"
UNREACHABLE = "unreachable"
INTERRUPTED = "interrupted"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Tag2mask-Signature` value for a body sent at `timestamp` (Unix seconds)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (besides checking the timestamp's age)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def backoff_s(
    attempts: int, base_s: float = 1.0, cap_s: float = 3600.0, rng: random.Random | None = None
) -> float:
    """Delay before the next attempt after `attempts` failed ones: exponential, capped, jittered."""
    delay = min(cap_s, base_s * 2.0 ** min(attempts, 60))
    return delay / 2 + (rng or random).uniform(0, delay / 2)


@dataclass(frozen=True)
class _Claimed:
    id: int
    attempt: int  # the number of this attempt (1 for the first)
    event: str
    payload: dict[str, Any]
    created_at: datetime
    url: str
    secret: str


def _claim(
    factory: sessionmaker[Session], now: datetime, *, limit: int, lease_s: float, max_attempts: int
) -> list[_Claimed]:
    D = WebhookDelivery
    with factory.begin() as s:
        # Rows still pending after their last attempt (a dispatcher died mid-call): give up.
        s.execute(
            update(D)
            .where(D.status == "pending", D.attempts >= max_attempts, D.next_attempt_at <= now)
            .values(
                status="failed",
                last_error=func.coalesce(D.last_error, INTERRUPTED),
            )
            .execution_options(synchronize_session=False)
        )
        due = (
            select(D.id)
            .join(Webhook, Webhook.id == D.webhook_id)
            .where(D.status == "pending", D.next_attempt_at <= now, Webhook.active.is_(True))
            .order_by(D.next_attempt_at, D.id)
            .limit(limit)
            .with_for_update(of=D, skip_locked=True)  # PostgreSQL; SQLite renders nothing
        )
        rows = s.execute(
            update(D)
            # Conditions repeated here: PostgreSQL re-checks them on a row another
            # dispatcher changed meanwhile, so a row is claimed once per attempt.
            .where(D.id.in_(due.scalar_subquery()), D.status == "pending", D.next_attempt_at <= now)
            .values(attempts=D.attempts + 1, next_attempt_at=now + timedelta(seconds=lease_s))
            .returning(D.id, D.attempts, D.event, D.payload, D.created_at, D.webhook_id)
            .execution_options(synchronize_session=False)
        ).all()
        if not rows:
            return []
        hooks = {
            h.id: (h.url, h.secret)
            for h in s.execute(
                select(Webhook.id, Webhook.url, Webhook.secret).where(
                    Webhook.id.in_({r.webhook_id for r in rows})
                )
            )
        }
    return [
        _Claimed(r.id, r.attempts, r.event, r.payload, r.created_at, *hooks[r.webhook_id])
        for r in sorted(rows, key=lambda r: r.id)
        if r.webhook_id in hooks
    ]


def _body(d: _Claimed) -> bytes:
    envelope = {
        "id": d.id,
        "event": d.event,
        "created_at": d.created_at.isoformat(),
        "data": d.payload,
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def _send(client: httpx.Client, d: _Claimed) -> tuple[int | None, str | None]:
    """One POST; (status code or None, failure category or None). The body is never read."""
    body = _body(d)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Tag2mask-Event": d.event,
        "X-Tag2mask-Delivery": str(d.id),
        "X-Tag2mask-Timestamp": timestamp,
        "X-Tag2mask-Signature": sign(d.secret, timestamp, body),
    }
    try:
        with client.stream("POST", d.url, content=body, headers=headers) as r:
            code = r.status_code
    except RefusedAddress:
        return None, REFUSED_ADDRESS
    except Exception:  # network errors, timeouts, and URLs httpx refuses: one category
        return None, UNREACHABLE
    return code, None if 200 <= code < 300 else HTTP_STATUS


def _record(
    factory: sessionmaker[Session],
    d: _Claimed,
    code: int | None,
    error: str | None,
    now: datetime,
    *,
    max_attempts: int,
    backoff_base_s: float,
    backoff_cap_s: float,
) -> str:
    D = WebhookDelivery
    values: dict[str, Any] = {"last_status_code": code, "last_error": error}
    if code is not None and 200 <= code < 300:
        values.update(status="delivered", delivered_at=now)
    elif d.attempt >= max_attempts:
        values.update(status="failed")
    else:
        delay = backoff_s(d.attempt, backoff_base_s, backoff_cap_s)
        values.update(next_attempt_at=now + timedelta(seconds=delay))
    with factory.begin() as s:
        s.execute(
            update(D)
            .where(D.id == d.id, D.status == "pending", D.attempts == d.attempt)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    return str(values.get("status", "pending"))


def _release(factory: sessionmaker[Session], claimed: list[_Claimed], now: datetime) -> None:
    """Give back claims that were never attempted (the dispatcher is stopping)."""
    D = WebhookDelivery
    with factory.begin() as s:
        for d in claimed:
            s.execute(
                update(D)
                .where(D.id == d.id, D.status == "pending", D.attempts == d.attempt)
                .values(attempts=D.attempts - 1, next_attempt_at=now)
                .execution_options(synchronize_session=False)
            )


def deliver_due(
    factory: sessionmaker[Session],
    *,
    now: datetime | None = None,
    timeout_s: float = 5.0,
    max_attempts: int = 8,
    backoff_base_s: float = 1.0,
    backoff_cap_s: float = 3600.0,
    batch_size: int = 100,
    lease_s: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    policy: TargetPolicy | None = None,
) -> int:
    """Claim up to `batch_size` due deliveries and attempt each once; returns how many.

    `now` fixes the clock (for tests): it decides what is due and is the base of the next
    attempt's time. The lease (how long a claimed row waits before another dispatcher may
    retry it) defaults to well over the longest a call can take. `policy` says which
    addresses may be reached (by default: public ones only).
    """
    clock: Callable[[], datetime] = (lambda: now) if now is not None else utcnow
    lease = lease_s if lease_s is not None else 60.0 + 10 * timeout_s
    claimed = _claim(factory, clock(), limit=batch_size, lease_s=lease, max_attempts=max_attempts)
    if not claimed:
        return 0
    attempted = 0
    with pinned_client(policy or TargetPolicy(), timeout_s) as client:
        for i, d in enumerate(claimed):
            if should_stop():
                _release(factory, claimed[i:], clock())
                break
            code, error = _send(client, d)
            outcome = _record(
                factory,
                d,
                code,
                error,
                clock(),
                max_attempts=max_attempts,
                backoff_base_s=backoff_base_s,
                backoff_cap_s=backoff_cap_s,
            )
            attempted += 1
            log.log(
                logging.INFO if outcome == "delivered" else logging.WARNING,
                "webhook delivery %s (%s, attempt %s) to %s: %s%s",
                d.id,
                d.event,
                d.attempt,
                d.url,
                outcome,
                "" if error is None else f" ({error})",
            )
    return attempted


class WebhookDispatcher:
    """Calls deliver_due every `interval_s` (at once again while there is a backlog)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        interval_s: float = 1.0,
        timeout_s: float = 5.0,
        max_attempts: int = 8,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 3600.0,
        batch_size: int = 20,
        policy: TargetPolicy | None = None,
    ) -> None:
        self.factory = factory
        self.interval_s = interval_s
        self.options: dict[str, Any] = {
            "timeout_s": timeout_s,
            "max_attempts": max_attempts,
            "backoff_base_s": backoff_base_s,
            "backoff_cap_s": backoff_cap_s,
            "batch_size": batch_size,
            "policy": policy or TargetPolicy(),
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="webhook-dispatch", daemon=True)

    def start(self) -> WebhookDispatcher:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                while (
                    deliver_due(self.factory, should_stop=self._stop.is_set, **self.options)
                    >= self.options["batch_size"]
                    and not self._stop.is_set()
                ):
                    pass
            except Exception:
                log.exception("webhook dispatch pass failed")
