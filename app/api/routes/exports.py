"""Job results: download the file a job produced (a dataset export), with a strong ETag."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from app.api.deps import CurrentKey, SessionDep
from app.api.http_cache import CACHE_CONTROL, etag_for, not_modified
from app.api.params import JobId
from app.api.responses import ok_bytes
from app.errors import NotFound
from app.services.jobs import get_job_or_raise
from app.tables import ACTIVE_STATUSES, Job
from worker.export_formats import WRITERS

router = APIRouter(tags=["exports"])


def _no_result(job: Job) -> NotFound:
    detail = {"status": job.status}
    if job.status in ACTIVE_STATUSES:
        return NotFound(f"Job {job.id} is still {job.status}; its result is not ready yet.", detail)
    if job.status == "succeeded":
        return NotFound(f"Job {job.id} ({job.kind}) succeeded but produced no file.", detail)
    return NotFound(f"Job {job.id} {job.status} and produced no file.", detail)


@router.get(
    "/v1/jobs/{job_id}/result",
    response_class=FileResponse,
    responses=ok_bytes(
        *sorted({w.media_type for w in WRITERS.values()} | {"application/octet-stream"}),
        description="The result file (an export: COCO or Label Studio JSON, a VOC zip)",
    ),
)
def job_result(job_id: JobId, request: Request, session: SessionDep, who: CurrentKey) -> Response:
    """The job's result file, e.g. an export; 404 while it runs or when it made none."""
    job = get_job_or_raise(session, job_id, who)
    if job.status != "succeeded" or job.result_key is None:
        raise _no_result(job)
    etag = etag_for(job.result_key)
    hit = not_modified(request, etag)
    if hit is not None:
        return hit
    path = request.app.state.blobs.path(job.result_key)
    if not path.is_file():
        raise NotFound(f"Job {job.id}'s result file is no longer stored.", {"status": job.status})
    writer = WRITERS.get((job.params or {}).get("format", "")) if job.kind == "export" else None
    ext = writer.extension if writer else ""
    media_type = writer.media_type if writer else "application/octet-stream"
    return FileResponse(
        path,
        media_type=media_type,
        filename=f"project-{job.project_id}-{job.kind}-{job.id}{ext}",
        headers={"ETag": etag, "Cache-Control": CACHE_CONTROL},
    )
