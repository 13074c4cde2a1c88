"""Runners hand job ids to the job function: Celery (production) or an in-process thread.

Both are called only after the transaction that created the job committed.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from app.settings import Settings
from app.webhook_targets import TargetPolicy
from worker.context import WorkerContext
from worker.execute import run_job
from worker.reaper import ReaperThread
from worker.webhook_dispatch import WebhookDispatcher

log = logging.getLogger(__name__)


class JobRunner(Protocol):
    def enqueue(self, job_id: int) -> None: ...
    def start(self) -> None: ...
    def shutdown(self) -> None: ...


class ThreadRunner:
    """The embedded default: jobs run one at a time on a thread of the API process.

    On start it reaps jobs a previous process left behind; on shutdown the running job is
    put back in the queue and resumes from its last finished stage at the next start.
    """

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tag2mask-job")
        self._stopping = threading.Event()
        self._reaper = ReaperThread(ctx, self.enqueue, ctx.settings.reaper_interval_s)
        self.webhook_dispatcher = WebhookDispatcher(
            ctx.sessionmaker,
            policy=TargetPolicy.from_networks(ctx.settings.webhook_allow_networks),
        )

    def enqueue(self, job_id: int) -> None:
        if self._stopping.is_set():
            return
        self._pool.submit(self._run, job_id)

    def _run(self, job_id: int) -> None:
        try:
            run_job(self.ctx, job_id, worker="embedded", interrupted=self._stopping.is_set)
        except Exception:
            log.exception("job %s crashed the runner", job_id)

    def start(self) -> None:
        self._requeue_orphans()
        self._reaper.start()
        self.webhook_dispatcher.start()

    def _requeue_orphans(self) -> None:
        """Jobs marked running by a process that no longer exists go back to the queue."""
        from sqlalchemy import select

        from app.tables import Job

        try:
            with self.ctx.sessionmaker() as s:
                queued = s.scalars(
                    select(Job.id).where(Job.status == "queued").order_by(Job.id)
                ).all()
        except (
            SQLAlchemyError
        ):  # not migrated or not reachable: /readyz says so; the reaper retries
            log.warning("could not read queued jobs at start-up", exc_info=True)
            return
        for job_id in queued:
            self.enqueue(job_id)

    def shutdown(self) -> None:
        self._stopping.set()
        self._reaper.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.webhook_dispatcher.stop()  # unsent deliveries wait in the table for a next start


class CeleryRunner:
    """Sends job ids to the `gpu` queue on Redis; workers started by `tag2mask worker`."""

    def __init__(self, settings: Settings) -> None:
        from worker.celery_app import TASK_NAME, make_celery

        self.settings = settings
        self._celery = make_celery(settings)
        self._task = TASK_NAME

    def enqueue(self, job_id: int) -> None:
        self._celery.send_task(self._task, args=[job_id], queue=self.settings.job_queue)

    def start(self) -> None:
        """Nothing to start here: the reaper runs inside the workers."""

    def shutdown(self) -> None:
        self._celery.close()


def make_runner(settings: Settings, ctx: WorkerContext) -> JobRunner:
    if settings.job_runner == "celery":
        return CeleryRunner(settings)
    return ThreadRunner(ctx)
