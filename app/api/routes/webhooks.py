"""Webhooks of a project: register, list, delete, and read the delivery log.

Every route needs the admin role: a webhook URL may carry credentials of the receiver, and
the signing secret is shown once, in the answer to the POST that created it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.api.deps import Admin, SessionDep
from app.api.params import AfterId, ProjectId, WebhookId
from app.schemas.webhook import DeliveryOut, WebhookCreate, WebhookCreated, WebhookOut
from app.services import webhooks as svc
from app.services.projects import get_project_or_raise

router = APIRouter(tags=["webhooks"])


@router.post("/v1/projects/{project_id}/webhooks", status_code=201, response_model=WebhookCreated)
def create_webhook(
    project_id: ProjectId, body: WebhookCreate, request: Request, session: SessionDep, who: Admin
) -> WebhookCreated:
    project = get_project_or_raise(session, project_id, who)
    policy = request.app.state.webhook_policy
    return svc.webhook_created(svc.create_webhook(session, project, body, policy))


@router.get("/v1/projects/{project_id}/webhooks", response_model=dict[str, list[WebhookOut]])
def list_webhooks(
    project_id: ProjectId, session: SessionDep, who: Admin
) -> dict[str, list[WebhookOut]]:
    project = get_project_or_raise(session, project_id, who)
    return {"items": [svc.webhook_out(h) for h in svc.list_webhooks(session, project)]}


@router.delete("/v1/webhooks/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: WebhookId, session: SessionDep, who: Admin) -> Response:
    svc.delete_webhook(session, svc.get_webhook_or_raise(session, webhook_id, who))
    return Response(status_code=204)


@router.get("/v1/webhooks/{webhook_id}/deliveries", response_model=dict[str, list[DeliveryOut]])
def list_deliveries(
    webhook_id: WebhookId,
    session: SessionDep,
    who: Admin,
    after: AfterId = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, list[DeliveryOut]]:
    hook = svc.get_webhook_or_raise(session, webhook_id, who)
    items = svc.list_deliveries(session, hook, after=after, limit=limit)
    return {"items": [svc.delivery_out(d) for d in items]}
