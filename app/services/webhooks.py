"""Webhooks: registration, the delivery log, and the outbox that records events.

An event is recorded by `enqueue_event` as one `webhook_deliveries` row per active webhook
of the project that subscribes to it, in the caller's transaction: a delivery exists if
and only if the change that caused it committed. `worker.webhook_dispatch` sends them.
"""

from __future__ import annotations

import json
import secrets
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound, ValidationFailed
from app.schemas.webhook import DeliveryOut, WebhookCreate, WebhookCreated, WebhookOut
from app.services.scope import Principal
from app.tables import WEBHOOK_EVENTS, Job, Project, Webhook, WebhookDelivery, utcnow
from app.webhook_targets import RefusedAddress, TargetPolicy


def generate_secret() -> str:
    return secrets.token_urlsafe(32)


def get_webhook_or_raise(session: Session, webhook_id: int, who: Principal) -> Webhook:
    hook = session.get(Webhook, webhook_id)
    if hook is None or not who.can_see(hook.project_id):
        raise NotFound(f"Webhook {webhook_id} does not exist.")
    return hook


def check_target(policy: TargetPolicy, url: str) -> None:
    """Refuse (422) a URL whose host is or resolves to an address webhooks may not reach."""
    try:
        policy.check_url(url)
    except RefusedAddress as e:
        raise ValidationFailed(
            f"The webhook url is refused: {e}. Webhooks may reach public addresses only, "
            "and the networks listed in TAG2MASK_WEBHOOK_ALLOW_NETWORKS.",
            [{"loc": ["body", "url"], "msg": str(e), "type": "refused_address"}],
        ) from e


def create_webhook(
    session: Session, project: Project, data: WebhookCreate, policy: TargetPolicy
) -> Webhook:
    check_target(policy, data.url)
    hook = Webhook(
        project_id=project.id,
        url=data.url,
        secret=data.secret or generate_secret(),
        events=list(data.events),
        active=True,
    )
    session.add(hook)
    session.flush()
    return hook


def list_webhooks(session: Session, project: Project) -> list[Webhook]:
    return list(
        session.scalars(
            select(Webhook).where(Webhook.project_id == project.id).order_by(Webhook.id)
        )
    )


def delete_webhook(session: Session, hook: Webhook) -> None:
    """The webhook and (by the foreign key's cascade) its delivery log."""
    session.delete(hook)
    session.flush()


def list_deliveries(
    session: Session, hook: Webhook, *, after: int, limit: int
) -> list[WebhookDelivery]:
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == hook.id, WebhookDelivery.id > after)
            .order_by(WebhookDelivery.id)
            .limit(limit)
        )
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def enqueue_event(session: Session, project_id: int, event: str, payload: dict[str, Any]) -> int:
    """Record `event` for every active webhook of the project subscribed to it.

    Adds the rows to the caller's transaction (never commits); returns how many. Datetimes in
    `payload` become ISO 8601 strings.
    """
    if event not in WEBHOOK_EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    hooks = session.execute(
        select(Webhook.id, Webhook.events).where(
            Webhook.project_id == project_id, Webhook.active.is_(True)
        )
    ).all()
    targets = [hook_id for hook_id, events in hooks if event in (events or ())]
    if not targets:
        return 0
    data = json.loads(json.dumps(payload, default=_json_default))
    now = utcnow()
    session.add_all(
        WebhookDelivery(
            webhook_id=hook_id,
            event=event,
            payload=data,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for hook_id in targets
    )
    session.flush()
    return len(targets)


def enqueue_job_finished(session: Session, job_id: int) -> int:
    """The `job.finished` event for a job whose final status this transaction just wrote."""
    row = session.execute(
        select(Job.project_id, Job.kind, Job.status, Job.error, Job.finished_at).where(
            Job.id == job_id
        )
    ).one()
    payload = {
        "job_id": job_id,
        "project_id": row.project_id,
        "kind": row.kind,
        "status": row.status,
        "error": row.error,
        "finished_at": row.finished_at,
    }
    return enqueue_event(session, row.project_id, "job.finished", payload)


def webhook_out(hook: Webhook) -> WebhookOut:
    return WebhookOut(
        id=hook.id,
        project_id=hook.project_id,
        url=hook.url,
        events=list(hook.events or []),
        active=hook.active,
        created_at=hook.created_at,
    )


def webhook_created(hook: Webhook) -> WebhookCreated:
    return WebhookCreated(**webhook_out(hook).model_dump(), secret=hook.secret)


def delivery_out(d: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        webhook_id=d.webhook_id,
        event=d.event,
        status=d.status,
        attempts=d.attempts,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        created_at=d.created_at,
        next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
        delivered_at=d.delivered_at,
        payload=d.payload,
    )
