"""Attempt accounting (issue 16): an attempt its worker handed back (database connection
lost, shutdown) does not count against `job_max_attempts`; one that died or was reaped
does; and the hand-back waits for a restarting database instead of leaving the job to the
reaper as if its worker had died."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.tables import Job, JobEvent, Project, utcnow
from worker import execute
from worker.context import WorkerContext
from worker.execute import _hand_back_when_database_answers, claim
from worker.reaper import reap_once


@pytest.fixture
def ctx(make_settings) -> Iterator[WorkerContext]:
    c = WorkerContext.from_settings(
        make_settings(job_max_attempts=3, job_max_handbacks=2, job_stale_after_s=5.0)
    )
    yield c
    c.dispose()


def add_job(ctx: WorkerContext, **values: Any) -> int:
    with ctx.sessionmaker.begin() as s:
        project = Project(name=f"p{uuid.uuid4().hex[:8]}", settings={})
        s.add(project)
        s.flush()
        job = Job(project_id=project.id, kind="sleep", params={}, **values)
        s.add(job)
        s.flush()
        return job.id


def job(ctx: WorkerContext, job_id: int) -> Job:
    with ctx.sessionmaker() as s:
        j = s.get(Job, job_id)
        assert j is not None
        s.expunge(j)
        return j


def stale(**values: Any) -> dict[str, Any]:
    return {"status": "running", "heartbeat_at": utcnow() - timedelta(seconds=60), **values}


def test_reaper_counts_only_attempts_that_were_not_handed_back(ctx):
    # Killed once, then two database outages (handed back), and now reaped again: 2 lost.
    resent = add_job(ctx, **stale(attempts=4, handbacks=2))
    # Three attempts lost with their workers: that is the limit.
    given_up = add_job(ctx, **stale(attempts=3, handbacks=0))
    sent: list[int] = []
    out = reap_once(ctx, sent.append)
    assert out == {"resent": [resent], "failed": [given_up]} and sent == [resent]
    assert job(ctx, resent).status == "queued"
    failed = job(ctx, given_up)
    assert failed.status == "failed" and failed.error["code"] == "worker_lost"
    assert "3 times" in failed.error["message"]


def test_claim_allows_handed_back_attempts_up_to_their_own_limit(ctx):
    # 3 starts, 2 handed back: 1 counted, so a 4th start is allowed.
    ok = add_job(ctx, status="queued", attempts=3, handbacks=2)
    assert claim(ctx, ok, "w") == 4
    # 3 counted attempts: refused, and failed rather than left queued.
    spent = add_job(ctx, status="queued", attempts=3, handbacks=0)
    assert claim(ctx, spent, "w") is None
    assert job(ctx, spent).error["code"] == "too_many_attempts"
    # max_attempts + max_handbacks starts in all: a job that keeps losing its connection
    # by itself still ends.
    looping = add_job(ctx, status="queued", attempts=5, handbacks=5)
    assert claim(ctx, looping, "w") is None
    assert job(ctx, looping).status == "failed"


def test_hand_back_waits_for_the_database(ctx, monkeypatch):
    job_id = add_job(ctx, status="running", attempts=1, heartbeat_at=utcnow())
    real = execute._requeue
    calls: list[int] = []

    def down_twice(*args: Any) -> bool:
        calls.append(1)
        if len(calls) <= 2:  # a restarting server refuses the first tries
            raise OperationalError("connect", {}, psycopg.OperationalError("refused"))
        return real(*args)

    monkeypatch.setattr(execute, "_requeue", down_twice)
    assert _hand_back_when_database_answers(ctx, job_id, 1, retry_s=0.05) is True
    assert len(calls) == 3
    j = job(ctx, job_id)
    assert (j.status, j.attempts, j.handbacks) == ("queued", 1, 1)
    with ctx.sessionmaker() as s:
        messages = s.scalars(select(JobEvent.message).where(JobEvent.job_id == job_id)).all()
    assert any("database connection lost" in m for m in messages)


def test_hand_back_gives_up_at_the_stale_deadline(make_settings, monkeypatch):
    ctx = WorkerContext.from_settings(make_settings(job_stale_after_s=0.3))
    try:
        job_id = add_job(ctx, status="running", attempts=1, heartbeat_at=utcnow())

        def down(*args: Any) -> bool:
            raise OperationalError("connect", {}, psycopg.OperationalError("refused"))

        monkeypatch.setattr(execute, "_requeue", down)
        t0 = time.monotonic()
        assert _hand_back_when_database_answers(ctx, job_id, 1, retry_s=0.05) is False
        assert time.monotonic() - t0 < 2  # from then on the reaper re-sends it
        assert job(ctx, job_id).status == "running"
    finally:
        ctx.dispose()


def test_hand_back_never_overrides_the_reaper(ctx):
    job_id = add_job(ctx, status="running", attempts=1, heartbeat_at=utcnow())
    # The reaper took the job meanwhile: the hand-back finds it no longer owned.
    with ctx.sessionmaker.begin() as s:
        s.execute(Job.__table__.update().where(Job.id == job_id).values(status="queued"))
    assert _hand_back_when_database_answers(ctx, job_id, 1) is False
    assert job(ctx, job_id).handbacks == 0


@pytest.mark.parametrize(
    ("error", "resent"),
    [
        (OperationalError("claim", {}, psycopg.OperationalError("terminating connection")), True),
        (RuntimeError("a bug"), False),
    ],
)
def test_celery_task_sends_the_job_again_when_its_claim_lost_the_database(
    make_settings, monkeypatch, error, resent
):
    """The claim met a connection the database dropped while the worker sat idle: the
    message is acknowledged anyway, so the task sends the job again instead of leaving it
    to the reaper's queued timeout (10 s in the fault benchmark)."""
    from worker import celery_app

    app = celery_app.make_celery(make_settings(job_runner="celery"))
    sent: list[tuple[Any, ...]] = []

    def run_job(*args: Any, **kwargs: Any) -> str:
        raise error

    monkeypatch.setattr(celery_app, "run_job", run_job)
    monkeypatch.setattr(celery_app, "process_context", lambda settings: None)
    monkeypatch.setattr(app, "send_task", lambda *a, **kw: sent.append((a, kw)))
    task = app.tasks[celery_app.TASK_NAME]
    if resent:
        assert task(7) == "requeued"
        assert sent == [
            (
                (celery_app.TASK_NAME,),
                {"args": [7], "queue": "gpu", "countdown": celery_app.REQUEUE_DELAY_S},
            )
        ]
    else:
        with pytest.raises(RuntimeError):
            task(7)
        assert sent == []
