"""Label Studio's ML backend protocol, mounted at /label-studio/{project_id}/.

In Label Studio: project → Settings → Model → Connect model, URL
`http://tag2mask:<api key>@<tag2mask host>/label-studio/<project id>` (see
app/label_studio/protocol.py for what is sent and how it is authenticated).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter, Body, Request

from app.api.deps import in_unit_of_work
from app.api.params import ProjectId
from app.api.responses import errors
from app.errors import ApiError, Conflict, NotFound, ValidationFailed
from app.imaging import probe_image
from app.label_studio import annotations as ann
from app.label_studio.backend import (
    ProjectView,
    find_image,
    predict_task,
    project_view,
    remember_setup,
)
from app.label_studio.protocol import PredictIn, SetupIn, backend_principal, check_schema
from app.label_studio.task_images import image_url_of, resolve_task_image
from app.services import jobs as job_svc
from app.services.projects import get_project_or_raise
from app.services.scope import Principal
from app.unit_of_work import UnitOfWork
from worker.kinds import get_kind

log = logging.getLogger(__name__)
router = APIRouter(prefix="/label-studio/{project_id}", tags=["label-studio ml backend"])
ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


async def _view(request: Request, project_id: int, who: Principal) -> ProjectView:
    settings = request.app.state.settings
    return await in_unit_of_work(request, lambda uow: project_view(uow, project_id, who, settings))


@router.get("/health")
async def health(project_id: ProjectId) -> dict[str, Any]:
    """Label Studio's connection check (1 s timeout): no key, no database."""
    return {"status": "UP", "model_class": "tag2mask"}


@router.post("/setup", responses=errors(401, 403, 404, 422, 503))
async def setup(project_id: ProjectId, body: SetupIn, request: Request) -> dict[str, Any]:
    """Check the labeling config, remember where Label Studio is; answer the model version.

    An annotator's key: the host it names is trusted with Label Studio's token and fetched
    from even on a private address (app/label_studio/task_images.py)."""
    who = await backend_principal(request, project_id, "annotator")
    if body.hostname and not body.hostname.startswith(("http://", "https://")):
        raise ValidationFailed(
            "hostname must be an http(s) URL.", {"hostname": body.hostname[:200]}
        )
    view = await _view(request, project_id, who)
    check_schema(body.schema_, view.categories, project_id)
    said = body.model_dump(include={"hostname", "access_token", "project"})
    await in_unit_of_work(request, lambda uow: remember_setup(uow, project_id, who, said))
    return {"model_version": view.version}


@router.post("/predict", responses=errors(401, 403, 404, 409, 422, 503))
async def predict(project_id: ProjectId, body: PredictIn, request: Request) -> dict[str, Any]:
    """One prediction per task, in order. A task whose prediction cannot be made is logged
    and answered with an empty result; when none can be, the first task's error is the
    answer (so one task from Label Studio's editor gets the reason)."""
    who = await backend_principal(request, project_id, "viewer")
    view = await _view(request, project_id, who)
    results: list[dict[str, Any]] = []
    errors: list[ApiError] = []
    for task in body.tasks:
        try:
            results.append(await predict_task(request, view, who, task))
        except ApiError as e:
            log.warning("label studio predict: task %s skipped: %s", task.get("id"), e.message)
            errors.append(e)
            results.append({"result": [], "score": 0.0, "model_version": view.version})
    if len(errors) == len(body.tasks):
        raise errors[0]
    return {"results": results, "model_version": view.version}


@router.post("/train", responses=errors(401, 403, 404, 503))
async def train(project_id: ProjectId, request: Request) -> dict[str, Any]:
    """Older Label Studio servers' "Start Training": a pipeline job, as START_TRAINING."""
    who = await backend_principal(request, project_id, "annotator")
    return await _start_training(request, project_id, who)


@router.post("/webhook", responses=errors(401, 403, 404, 422, 503))
async def webhook(
    project_id: ProjectId, request: Request, body: dict[str, Any] = Body(...)
) -> dict[str, Any]:
    """Label Studio's events: annotations become human masks; START_TRAINING starts a run;
    everything else is acknowledged and ignored."""
    who = await backend_principal(request, project_id, "annotator")
    action = body.get("action")
    if action in ANNOTATION_EVENTS:
        return await _take_annotation(request, project_id, who, body)
    if action == "START_TRAINING":
        return await _start_training(request, project_id, who)
    return {"status": "ignored", "action": action}


async def _start_training(request: Request, project_id: int, who: Principal) -> dict[str, Any]:
    params = get_kind("pipeline").validate({})
    runner = request.app.state.runner

    def start(uow: UnitOfWork) -> dict[str, Any]:
        project = get_project_or_raise(uow.session, project_id, who)
        try:
            job = job_svc.create_job(
                uow, project, "pipeline", params, allow_concurrent=False, enqueue=runner.enqueue
            )
        except Conflict as e:  # a run is already going: that is the training asked for
            active = (e.detail or {}).get("active_job_id")
            return {"job": str(active), "status": "running"}
        return {"job": str(job.id), "status": "queued"}

    return await in_unit_of_work(request, start)


async def _take_annotation(
    request: Request, project_id: int, who: Principal, body: dict[str, Any]
) -> dict[str, Any]:
    version = ann.parse_annotation(body)
    if (body.get("annotation") or {}).get("was_cancelled"):
        return {"status": "skipped", "reason": "the task was skipped in Label Studio"}
    view = await _view(request, project_id, who)
    taken = await in_unit_of_work(request, lambda uow: ann.already_taken(uow, project_id, version))
    if taken is not None:
        return {"status": "duplicate", "mask_id": taken or None}
    state, settings = request.app.state, request.app.state.settings
    url = image_url_of(body["task"])
    found = await resolve_task_image(
        url,
        state.signer,
        view.link,
        state.webhook_policy,
        max_bytes=settings.max_upload_bytes,
        timeout_s=settings.label_studio_fetch_timeout_s,
    )
    max_pixels = settings.max_image_pixels

    def write(uow: UnitOfWork) -> tuple[int, int] | None:
        image = find_image(uow, view, found)
        new_image = None
        if image is not None:
            width, height = image.width, image.height
        elif found.data is not None:
            info = probe_image(found.data, max_pixels)
            width, height = info.width, info.height
            name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "label-studio"
            new_image = (name, found.data)
        else:  # our signed URL, but the image is no longer in the project
            raise NotFound(
                f"The task's image {found.image_id} is not in project {project_id} (deleted?)."
            )
        mask = ann.annotation_mask(version.result, view.class_of(), width, height)
        project = get_project_or_raise(uow.session, project_id, who)
        return ann.take_in(
            uow,
            project,
            version,
            image=image,
            new_image=new_image,
            mask=mask,
            max_pixels=max_pixels,
        )

    written = await in_unit_of_work(request, write)
    if written is None:
        return {"status": "duplicate"}
    image_id, mask_id = written
    log.info(
        "label studio annotation %s (%s) → image %s mask %s",
        version.annotation_id,
        version.updated_at,
        image_id,
        mask_id,
    )
    return {"status": "created", "image_id": image_id, "mask_id": mask_id}
