"""Finds jobs the broker or a worker lost, and sends them again.

- queued for longer than `job_queued_timeout_s` (e.g. Redis restarted empty): re-sent.
  A duplicate message is harmless: only one claim can move a job out of `queued`.
- running with a heartbeat older than `job_stale_after_s` (the worker died): back to
  `queued` and re-sent, or `failed` once `job_max_attempts` attempts were used. Attempts
  their worker handed back (`handbacks`: a database outage, a shutdown) do not count.

It runs as a loop thread inside every worker process (`tag2mask worker`) and inside the
embedded server's thread runner; the conditional UPDATEs make concurrent reapers safe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, update

from app.services.webhooks import enqueue_job_finished
from app.tables import Job, JobEvent, utcnow
from worker.context import WorkerContext

log = logging.getLogger(__name__)


def reap_once(ctx: WorkerContext, enqueue: Callable[[int], None]) -> dict[str, list[int]]:
    """One pass; returns the ids it re-sent and failed."""
    s_cfg = ctx.settings
    now = utcnow()
    stale_cutoff = now - timedelta(seconds=s_cfg.job_stale_after_s)
    queued_cutoff = now - timedelta(seconds=s_cfg.job_queued_timeout_s)
    resend: list[int] = []
    failed: list[int] = []
    with ctx.sessionmaker.begin() as s:
        stale = s.execute(
            select(Job.id, Job.attempts, Job.handbacks).where(
                Job.status == "running", Job.heartbeat_at < stale_cutoff
            )
        ).all()
        for job_id, attempts, handbacks in stale:
            guard = (
                (Job.id == job_id)
                & (Job.status == "running")
                & (Job.attempts == attempts)
                & (Job.heartbeat_at < stale_cutoff)
            )
            lost = attempts - handbacks  # this one included
            if lost >= s_cfg.job_max_attempts:
                msg = f"The worker stopped answering {lost} times; giving up."
                res = s.execute(
                    update(Job)
                    .where(guard)
                    .values(
                        status="failed",
                        finished_at=now,
                        error={"code": "worker_lost", "message": msg},
                    )
                )
                if res.rowcount:  # type: ignore[attr-defined]
                    s.add(JobEvent(job_id=job_id, level="error", message=msg))
                    enqueue_job_finished(s, job_id)
                    failed.append(job_id)
            else:
                res = s.execute(update(Job).where(guard).values(status="queued", enqueued_at=now))
                if res.rowcount:  # type: ignore[attr-defined]
                    s.add(
                        JobEvent(
                            job_id=job_id,
                            level="warning",
                            message=f"heartbeat of attempt {attempts} went stale; re-sent",
                        )
                    )
                    resend.append(job_id)
        unsent = s.scalars(
            select(Job.id).where(Job.status == "queued", Job.enqueued_at < queued_cutoff)
        ).all()
        for job_id in unsent:
            res = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "queued", Job.enqueued_at < queued_cutoff)
                .values(enqueued_at=now)
            )
            if res.rowcount:  # type: ignore[attr-defined]
                s.add(
                    JobEvent(
                        job_id=job_id,
                        level="warning",
                        message="queued too long (message lost?); re-sent",
                    )
                )
                resend.append(job_id)
    for job_id in resend:  # after commit: the row says queued before the message exists
        try:
            enqueue(job_id)
        except Exception:
            log.exception("re-sending job %s failed; the next pass tries again", job_id)
    return {"resent": resend, "failed": failed}


class ReaperThread:
    """Calls reap_once every `interval_s` until stopped."""

    def __init__(self, ctx: WorkerContext, enqueue: Callable[[int], None], interval_s: float):
        self.ctx, self.enqueue, self.interval_s = ctx, enqueue, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-reaper", daemon=True)

    def start(self) -> ReaperThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                reap_once(self.ctx, self.enqueue)
            except Exception:
                log.exception("reaper pass failed")
