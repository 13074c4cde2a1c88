"""Jobs as rows: create (enqueued after commit), read, events, cancel.

The database is the source of truth for a job's state; the broker only carries its id.
Every status change is a conditional UPDATE so that concurrent actors cannot clobber it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Conflict, NotFound
from app.metrics import JobStats
from app.schemas.job import JobEventOut, JobOut
from app.services.scope import Principal
from app.services.webhooks import enqueue_job_finished
from app.tables import ACTIVE_STATUSES, Job, JobEvent, Project, utcnow
from app.unit_of_work import UnitOfWork

ETA_MIN_PROGRESS = 0.02


def get_job_or_raise(session: Session, job_id: int, who: Principal) -> Job:
    job = session.get(Job, job_id)
    if job is None or not who.can_see(job.project_id):
        raise NotFound(f"Job {job_id} does not exist.")
    return job


def create_job(
    uow: UnitOfWork,
    project: Project,
    kind: str,
    params: dict[str, Any],
    *,
    allow_concurrent: bool,
    enqueue: Callable[[int], None],
) -> Job:
    """Insert a queued job; its id goes to the runner only once the request commits."""
    session = uow.session
    # Serialise job creation per project so two requests cannot both pass the check.
    session.execute(select(Project.id).where(Project.id == project.id).with_for_update())
    if not allow_concurrent:
        active = session.scalar(
            select(Job.id)
            .where(Job.project_id == project.id, Job.status.in_(ACTIVE_STATUSES))
            .limit(1)
        )
        if active is not None:
            raise Conflict(
                f"Project {project.id} already has an active job ({active}); wait for it, "
                "cancel it, or pass allow_concurrent=true.",
                {"active_job_id": active},
            )
    now = utcnow()
    job = Job(
        project_id=project.id,
        kind=kind,
        status="queued",
        params=params,
        metrics={},
        progress=0.0,
        attempts=0,
        enqueued_at=now,
    )
    session.add(job)
    session.flush()
    session.add(JobEvent(job_id=job.id, level="info", message=f"{kind} job queued", data=None))
    job_id = job.id
    uow.after_commit(lambda: enqueue(job_id))
    return job


def list_jobs(session: Session, project: Project, *, limit: int, status: str | None) -> list[Job]:
    stmt = select(Job).where(Job.project_id == project.id)
    if status is not None:
        stmt = stmt.where(Job.status == status)
    return list(session.scalars(stmt.order_by(Job.id.desc()).limit(limit)))


def list_events(session: Session, job: Job, *, after: int, limit: int) -> list[JobEvent]:
    return list(
        session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job.id, JobEvent.id > after)
            .order_by(JobEvent.id)
            .limit(limit)
        )
    )


def request_cancel(session: Session, job: Job) -> Job:
    """A queued job is cancelled at once; a running one is asked to stop between batches."""
    now = utcnow()
    res = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == "queued")
        .values(status="cancelled", finished_at=now, cancel_requested=True, stage="cancelled")
    )
    if res.rowcount:  # type: ignore[attr-defined]
        session.add(JobEvent(job_id=job.id, level="info", message="cancelled while queued"))
        enqueue_job_finished(session, job.id)
    else:
        res = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == "running")
            .values(cancel_requested=True)
        )
        if res.rowcount:  # type: ignore[attr-defined]
            session.add(JobEvent(job_id=job.id, level="info", message="cancel requested"))
    session.flush()
    session.refresh(job)
    return job


def eta_seconds(job: Job, now: datetime | None = None) -> float | None:
    """Time left at the current attempt's average rate, once there is a rate to go by."""
    if job.status != "running" or job.started_at is None or job.progress < ETA_MIN_PROGRESS:
        return None
    elapsed = ((now or utcnow()) - job.started_at).total_seconds()
    return max(0.0, elapsed * (1.0 - job.progress) / job.progress)


def job_out(job: Job) -> JobOut:
    return JobOut(
        id=job.id,
        project_id=job.project_id,
        kind=job.kind,
        status=job.status,
        stage=job.stage,
        progress=job.progress,
        params=job.params or {},
        metrics=job.metrics or {},
        error=job.error,
        attempts=job.attempts,
        handbacks=job.handbacks,
        cancel_requested=job.cancel_requested,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        heartbeat_at=job.heartbeat_at,
        eta_seconds=eta_seconds(job),
        has_result=job.result_key is not None,
    )


def event_out(e: JobEvent) -> JobEventOut:
    return JobEventOut(id=e.id, ts=e.ts, level=e.level, message=e.message, data=e.data)


RECENT_JOBS = 5000


def read_job_stats(factory: sessionmaker[Session]) -> JobStats:
    """Counts by kind/status, and durations and queue waits of the most recent jobs."""
    with factory() as s:
        counts = [
            (k, st, int(n))
            for k, st, n in s.execute(
                select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)
            )
        ]
        recent = s.execute(
            select(Job.kind, Job.created_at, Job.started_at, Job.finished_at)
            .where(Job.started_at.is_not(None))
            .order_by(Job.id.desc())
            .limit(RECENT_JOBS)
        ).all()
    durations = [(k, (fin - st).total_seconds()) for k, _c, st, fin in recent if fin is not None]
    waits = [(k, max(0.0, (st - c).total_seconds())) for k, c, st, _f in recent]
    return JobStats(counts=counts, durations=durations, queue_waits=waits)
