"""The one job function every runner calls: claim, run the kind, finish.

Claiming is a conditional UPDATE from `queued` that bumps the attempt number, so a
re-delivered message for a job that is running or finished does nothing, and two
workers never run one job at once. Finishing is guarded by the same attempt number.

An attempt whose worker hands the job back (its database connection dropped, or the
worker is shutting down) is counted in `handbacks` as well, and `job_max_attempts`
limits only the others: attempts that died with their worker or were reaped. Without
that, each PostgreSQL restart during a long job used up one of its three attempts
(issue 16: killed once, then two restarts, and the job failed `worker_lost`).
"""

from __future__ import annotations

import logging
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from app.errors import dependency_down
from app.services.webhooks import enqueue_job_finished
from app.tables import Job, JobEvent, utcnow
from worker.checkpoints import StageCheckpoints
from worker.context import WorkerContext
from worker.job_context import JobCancelled, JobContext
from worker.kinds import InvalidParams, get_kind
from worker.progress import ClaimLost, Heartbeat, JobReporter, WorkerShutdown

log = logging.getLogger(__name__)
WORKER_NAME = f"{socket.gethostname()}"


def claim(ctx: WorkerContext, job_id: int, worker: str) -> int | None:
    """Move a queued job to running; returns this attempt's number, or None if not ours."""
    now = utcnow()
    with ctx.sessionmaker.begin() as s:
        attempt = s.scalar(
            update(Job)
            .where(
                Job.id == job_id,
                Job.status == "queued",
                Job.attempts - Job.handbacks < ctx.settings.job_max_attempts,
                Job.attempts < ctx.settings.job_max_attempts + ctx.settings.job_max_handbacks,
            )
            .values(
                status="running",
                attempts=Job.attempts + 1,
                started_at=now,
                heartbeat_at=now,
                worker=worker,
                progress=0.0,
                error=None,
            )
            .returning(Job.attempts)
        )
        if attempt is not None:
            s.add(
                JobEvent(
                    job_id=job_id,
                    level="info",
                    message=f"attempt {attempt} started",
                    data={"attempt": attempt, "worker": worker},
                )
            )
            return int(attempt)
        # Queued but out of attempts: it can never run, so say so instead of leaving it.
        res = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "queued")
            .values(
                status="failed",
                finished_at=now,
                error={
                    "code": "too_many_attempts",
                    "message": "The job was started too many times without finishing.",
                },
            )
        )
        if res.rowcount:  # type: ignore[attr-defined]
            s.add(JobEvent(job_id=job_id, level="error", message="too many attempts"))
            enqueue_job_finished(s, job_id)
    return None


def _finish(
    ctx: WorkerContext,
    job_id: int,
    attempt: int,
    status: str,
    *,
    metrics: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    event: tuple[str, str, dict[str, Any] | None],
) -> bool:
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error}
    if status == "succeeded":
        values["progress"] = 1.0
    with ctx.sessionmaker.begin() as s:
        if metrics is not None:
            current = s.scalar(select(Job.metrics).where(Job.id == job_id)) or {}
            values["metrics"] = {**current, **metrics}
        res = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "running", Job.attempts == attempt)
            .values(**values)
        )
        if not res.rowcount:  # type: ignore[attr-defined]
            return False
        level, message, data = event
        s.add(JobEvent(job_id=job_id, level=level, message=message, data=data))
        enqueue_job_finished(s, job_id)  # webhooks: recorded iff this final status commits
    return True


def _requeue(
    ctx: WorkerContext,
    job_id: int,
    attempt: int,
    message: str = "worker shutting down; the job will resume from its last stage",
) -> bool:
    """Hand attempt `attempt` back to the queue; False if it no longer owned the job.

    The hand-back is counted in `handbacks`, so it does not use up one of the job's
    `job_max_attempts`.
    """
    with ctx.sessionmaker.begin() as s:
        res = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "running", Job.attempts == attempt)
            .values(status="queued", enqueued_at=utcnow(), handbacks=Job.handbacks + 1)
        )
        if not res.rowcount:  # type: ignore[attr-defined]
            return False
        s.add(JobEvent(job_id=job_id, level="warning", message=message, data={"attempt": attempt}))
    return True


def _hand_back_when_database_answers(
    ctx: WorkerContext, job_id: int, attempt: int, *, retry_s: float = 0.5
) -> bool:
    """Hand the job back once the database answers again; False if that took too long.

    A PostgreSQL restart takes seconds; a single try right after the connection dropped
    usually meets the server still down, and the job then stayed `running` until the
    reaper found its heartbeat stale and re-sent it as if the worker had died (an attempt
    used up). So keep trying, until `job_stale_after_s`: from then on the reaper may
    take the job (both UPDATEs are guarded, only one wins) and this worker stops trying.
    """
    deadline = time.monotonic() + ctx.settings.job_stale_after_s
    message = "database connection lost; the job will resume from its last stage"
    while True:
        try:
            return _requeue(ctx, job_id, attempt, message)
        except Exception as e:
            if dependency_down(e) != "database" or time.monotonic() + retry_s > deadline:
                log.warning("job %s: database still down; left to the reaper", job_id)
                return False
        time.sleep(retry_s)


def run_job(
    ctx: WorkerContext,
    job_id: int,
    *,
    worker: str = WORKER_NAME,
    interrupted: Callable[[], bool] = lambda: False,
) -> str:
    """Run job `job_id` if it can be claimed; returns what happened (for logs and tests)."""
    attempt = claim(ctx, job_id, worker)
    if attempt is None:
        log.info("job %s not claimable (already taken, finished or cancelled)", job_id)
        return "skipped"
    with ctx.sessionmaker() as s:
        job = s.get(Job, job_id)
        assert job is not None
        kind_name, project_id, params = job.kind, job.project_id, dict(job.params or {})
    reporter = JobReporter(ctx, job_id, attempt, interrupted=interrupted)
    jc = JobContext(
        ctx=ctx,
        job_id=job_id,
        project_id=project_id,
        params=params,
        attempt=attempt,
        reporter=reporter,
        checkpoints=StageCheckpoints(ctx, job_id),
    )
    try:
        # The heartbeat starts first: importing a kind's modules (torch) can take seconds.
        with Heartbeat(reporter, ctx.settings.job_heartbeat_s):
            kind = get_kind(kind_name)
            jc.params = kind.validate(params)
            metrics = kind.run(jc)
    except JobCancelled:
        _finish(ctx, job_id, attempt, "cancelled", event=("info", "cancelled", None))
        return "cancelled"
    except ClaimLost:
        log.warning("job %s attempt %s lost its claim; stopping without writing", job_id, attempt)
        return "lost"
    except WorkerShutdown:
        _requeue(ctx, job_id, attempt)
        return "requeued"
    except Exception as e:
        if type(e).__name__ == "StopRequested":  # models/ raises its own stop signal
            _finish(ctx, job_id, attempt, "cancelled", event=("info", "cancelled", None))
            return "cancelled"
        if dependency_down(e) == "database":
            # A dropped or refused database connection (a restart) is not the job's fault:
            # the attempt goes back to the queue and resumes from its last finished stage.
            log.warning("job %s attempt %s lost its database connection", job_id, attempt)
            _hand_back_when_database_answers(ctx, job_id, attempt)
            return "requeued"
        code = "invalid_params" if isinstance(e, InvalidParams) else "job_failed"
        log.exception("job %s failed", job_id)
        _finish(
            ctx,
            job_id,
            attempt,
            "failed",
            error={"code": code, "message": f"{type(e).__name__}: {e}"[:1000]},
            event=(
                "error",
                f"failed: {type(e).__name__}: {e}"[:1000],
                {"traceback": traceback.format_exc()[-20000:]},
            ),
        )
        return "failed"
    done = _finish(
        ctx, job_id, attempt, "succeeded", metrics=metrics, event=("info", "succeeded", None)
    )
    if not done:
        return "lost"
    if not kind.clear_checkpoints:
        return "succeeded"
    try:
        jc.checkpoints.clear()
    except Exception:  # the job succeeded; leftover checkpoints only cost space
        log.exception("job %s: could not clear its stage checkpoints", job_id)
    return "succeeded"
