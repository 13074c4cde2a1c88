"""Labeling jobs: start, poll, events, cancel, list."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from app.api.deps import Annotator, CurrentKey, SessionDep, UowDep
from app.api.params import AfterId, JobId, ProjectId
from app.api.responses import errors
from app.errors import ValidationFailed
from app.schemas.job import JobCreate, JobEventOut, JobOut
from app.services import jobs as svc
from app.services.projects import get_project_or_raise
from worker.kinds import InvalidParams, get_kind

router = APIRouter(tags=["jobs"])


@router.post(
    "/v1/projects/{project_id}/jobs", status_code=202, response_model=JobOut, responses=errors(409)
)
def start_job(
    project_id: ProjectId, body: JobCreate, request: Request, uow: UowDep, who: Annotator
) -> JSONResponse:
    project = get_project_or_raise(uow.session, project_id, who)
    try:
        params = get_kind(body.kind).validate(dict(body.params))
    except (InvalidParams, ValueError, TypeError) as e:
        raise ValidationFailed(str(e), {"kind": body.kind}) from e
    job = svc.create_job(
        uow,
        project,
        body.kind,
        params,
        allow_concurrent=body.allow_concurrent,
        enqueue=request.app.state.runner.enqueue,
    )
    return JSONResponse(
        svc.job_out(job).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/jobs/{job.id}"},
    )


@router.get("/v1/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: JobId, session: SessionDep, who: CurrentKey) -> JobOut:
    return svc.job_out(svc.get_job_or_raise(session, job_id, who))


@router.get("/v1/jobs/{job_id}/events", response_model=dict[str, list[JobEventOut]])
def job_events(
    job_id: JobId,
    session: SessionDep,
    who: CurrentKey,
    after: AfterId = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> dict[str, list[JobEventOut]]:
    job = svc.get_job_or_raise(session, job_id, who)
    return {
        "items": [svc.event_out(e) for e in svc.list_events(session, job, after=after, limit=limit)]
    }


@router.post("/v1/jobs/{job_id}/cancel", status_code=202, response_model=JobOut)
def cancel_job(job_id: JobId, session: SessionDep, who: Annotator) -> JobOut:
    job = svc.get_job_or_raise(session, job_id, who)
    return svc.job_out(svc.request_cancel(session, job))


@router.get("/v1/projects/{project_id}/jobs", response_model=dict[str, list[JobOut]])
def list_jobs(
    project_id: ProjectId,
    session: SessionDep,
    who: CurrentKey,
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, list[JobOut]]:
    project = get_project_or_raise(session, project_id, who)
    return {
        "items": [
            svc.job_out(j) for j in svc.list_jobs(session, project, limit=limit, status=status)
        ]
    }
