"""The Celery app, built from Settings: Redis broker, queue `gpu`, one task at a time.

Late acks with reject-on-worker-lost and prefetch 1: a message is acknowledged only after
its job ran, and a worker holds at most one job it has not started. No result backend:
the database holds every job's state.
"""

from __future__ import annotations

import logging

from celery import Celery, Task

from app.errors import dependency_down
from app.settings import Settings
from worker.context import process_context
from worker.execute import WORKER_NAME, run_job

TASK_NAME = "tag2mask.run_job"
# A job put back in the queue after its database connection dropped runs again this much later.
REQUEUE_DELAY_S = 2
# An unacknowledged message comes back after this long; jobs are safe to run twice, and
# the reaper re-sends lost jobs much sooner through their heartbeat.
VISIBILITY_TIMEOUT_S = 6 * 3600

log = logging.getLogger(__name__)


def make_celery(settings: Settings) -> Celery:
    app = Celery("tag2mask", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.job_queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )

    # shared=False: every app (the API's sender, a worker's) runs its own closure over its
    # own settings; a shared task would run the first app's in a process that makes two.
    @app.task(name=TASK_NAME, ignore_result=True, bind=True, shared=False)
    def run_job_task(self: Task, job_id: int) -> str:
        # Each (forked) worker process builds its own engine on first use.
        worker = self.request.hostname or WORKER_NAME
        try:
            outcome = run_job(process_context(settings), int(job_id), worker=worker)
        except Exception as e:
            if dependency_down(e) != "database":
                raise
            # The claim met a connection the database dropped (a restart while this worker
            # sat idle): the job is still queued, and this message is acknowledged all the
            # same, so send it again (the failed checkout replaced the pool's connections)
            # rather than leave the job to the reaper's queued timeout.
            log.warning("job %s: database connection lost before it started", job_id)
            outcome = "requeued"
        if outcome == "requeued":
            # Put back in the queue (its database connection dropped): send it again now
            # rather than wait for the reaper's queued timeout. Sending may fail too (the
            # broker down as well); the reaper is still there.
            try:
                app.send_task(
                    TASK_NAME, args=[job_id], queue=settings.job_queue, countdown=REQUEUE_DELAY_S
                )
            except Exception:
                log.warning("could not re-send job %s; the reaper will", job_id, exc_info=True)
        return outcome

    return app
