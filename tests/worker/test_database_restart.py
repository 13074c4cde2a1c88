"""A job whose database connection drops mid-stage (a PostgreSQL restart) goes back to the
queue and resumes from its last finished stage; it is not failed for it."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from app.tables import Job, JobEvent, Project
from tests.api.test_dependency_down import drop_connections
from worker.context import WorkerContext
from worker.execute import run_job


@pytest.fixture(params=["postgres"])
def db_url(request):
    """PostgreSQL only: the test drops its connections."""
    from tests.fixtures.db import truncate_all

    url = request.getfixturevalue("pg_url")
    yield url
    truncate_all(url)


def test_dropped_connection_requeues_the_job_and_it_resumes(make_settings, db_url):
    # no heartbeat in between: the job's own progress write is what meets the dead connection
    ctx = WorkerContext.from_settings(make_settings(job_heartbeat_s=600))
    try:
        with ctx.sessionmaker.begin() as s:
            project = Project(name="p", settings={})
            s.add(project)
            s.flush()
            job = Job(
                project_id=project.id,
                kind="sleep",
                status="queued",
                params={"steps": 40, "step_s": 0.1},
            )
            s.add(job)
            s.flush()
            job_id = job.id
        outcome: list[str] = []
        t = threading.Thread(target=lambda: outcome.append(run_job(ctx, job_id, worker="t")))
        t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with ctx.sessionmaker() as s:
                if (s.get(Job, job_id).progress or 0) > 0.1:
                    break
            time.sleep(0.05)
        assert drop_connections(db_url) >= 1
        t.join(timeout=60)
        assert outcome == ["requeued"]
        with ctx.sessionmaker() as s:
            assert s.get(Job, job_id).status == "queued"
            messages = s.scalars(select(JobEvent.message).where(JobEvent.job_id == job_id)).all()
        assert any("database connection lost" in m for m in messages)

        assert run_job(ctx, job_id, worker="t") == "succeeded"
        with ctx.sessionmaker() as s:
            j = s.get(Job, job_id)
            assert j.status == "succeeded" and j.attempts == 2 and j.error is None
    finally:
        ctx.dispose()
