"""Jobs through Redis and real `celery worker` subprocesses: crashes, lost messages, races."""

from __future__ import annotations

from collections import Counter

import pytest
import redis
from sqlalchemy import func, select

from app.db import make_engine, make_sessionmaker
from app.tables import Job, JobEvent, Mask
from tests.fixtures.build import image_bytes, make_project, upload
from tests.worker.conftest import poll_job, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def api(make_client, settings_env):
    return make_client(**settings_env)


@pytest.fixture
def project(api, admin):
    return make_project(api, admin)


@pytest.fixture
def image_id(api, admin, project):
    r = upload(api, admin, project["id"], image_bytes(seed=1), tags="cat")
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture
def rows(db_url):
    """Read rows straight from the database (to count what workers wrote)."""
    engine = make_engine(db_url, pool_size=1)
    factory = make_sessionmaker(engine)
    yield factory
    engine.dispose()


def start_job(api, admin, pid, kind="sleep", **params):
    r = api.post(
        f"/v1/projects/{pid}/jobs",
        json={"kind": kind, "params": params, "allow_concurrent": True},
        headers=admin,
    )
    assert r.status_code == 202, r.text
    return r.json()["id"]


def events(api, admin, job_id):
    return api.get(f"/v1/jobs/{job_id}/events", headers=admin).json()["items"]


def test_job_succeeds_with_monotone_progress(api, admin, project, start_worker):
    worker = start_worker()
    job_id = start_job(api, admin, project["id"], steps=12, step_s=0.35)
    job, seen = poll_job(api, admin, job_id, {"succeeded", "failed"}, timeout=60)
    assert job["status"] == "succeeded", worker.log()[-3000:]
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress), progress
    assert len({p for p in progress if 0 < p < 1}) >= 3, "progress should be visible mid-run"
    assert job["attempts"] == 1 and job["metrics"]["steps"] == 12
    stages = {s["stage"] for s in seen}
    assert {"first", "second"} <= stages
    messages = [e["message"] for e in events(api, admin, job_id)]
    assert "attempt 1 started" in messages and messages[-1] == "succeeded"


def test_cancel_running_job(api, admin, project, start_worker):
    start_worker()
    job_id = start_job(api, admin, project["id"], steps=200, step_s=0.1)
    poll_job(api, admin, job_id, {"running"}, timeout=30)
    r = api.post(f"/v1/jobs/{job_id}/cancel", headers=admin)
    assert r.status_code == 202 and r.json()["cancel_requested"] is True
    job, _ = poll_job(api, admin, job_id, {"cancelled", "succeeded", "failed"}, timeout=10)
    assert job["status"] == "cancelled" and job["error"] is None
    assert job["progress"] < 0.5


def test_cancel_queued_job_never_runs(api, admin, project, start_worker, rows):
    job_id = start_job(api, admin, project["id"], steps=2, step_s=0.01)
    r = api.post(f"/v1/jobs/{job_id}/cancel", headers=admin)
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    start_worker()
    # A later job on the same queue runs, so the worker did read the cancelled job's message.
    later = start_job(api, admin, project["id"], steps=2, step_s=0.01)
    poll_job(api, admin, later, {"succeeded"}, timeout=60)
    job = api.get(f"/v1/jobs/{job_id}", headers=admin).json()
    assert job["status"] == "cancelled" and job["attempts"] == 0


def test_worker_killed_mid_job_resumes_once(api, admin, project, image_id, start_worker, rows):
    first = start_worker()
    job_id = start_job(api, admin, project["id"], steps=16, step_s=0.25, write_image_id=image_id)
    # Kill it during the second stage, after the first stage's checkpoint exists.
    poll_job(api, admin, job_id, {"running"}, timeout=30)
    wait_for(
        lambda: api.get(f"/v1/jobs/{job_id}", headers=admin).json()["stage"] == "second",
        timeout=30,
        what="second stage",
    )
    first.kill()
    start_worker()
    job, _ = poll_job(api, admin, job_id, {"succeeded", "failed"}, timeout=90)
    assert job["status"] == "succeeded" and job["attempts"] == 2
    messages = [e["message"] for e in events(api, admin, job_id)]
    assert any("went stale" in m for m in messages)
    assert "stage first restored from checkpoint" in messages
    with rows() as s:
        n = s.scalar(select(func.count()).select_from(Mask).where(Mask.job_id == job_id))
    assert n == 1


def test_flushed_broker_job_is_resent(api, admin, project, start_worker, redis_url):
    job_id = start_job(api, admin, project["id"], steps=2, step_s=0.01)
    redis.Redis.from_url(redis_url).flushall()  # the message is gone; the row still says queued
    start_worker()
    job, _ = poll_job(api, admin, job_id, {"succeeded", "failed"}, timeout=60)
    assert job["status"] == "succeeded"
    assert any("re-sent" in e["message"] for e in events(api, admin, job_id))


def test_two_workers_never_run_a_job_twice(api, admin, project, start_worker, rows):
    pid = project["id"]
    image_ids = [
        upload(api, admin, pid, image_bytes(seed=100 + i), tags="dog").json()["id"]
        for i in range(6)
    ]
    start_worker(), start_worker()
    job_ids = [start_job(api, admin, pid, steps=4, step_s=0.1, write_image_id=i) for i in image_ids]
    for j in job_ids:
        job, _ = poll_job(api, admin, j, {"succeeded", "failed"}, timeout=120)
        assert job["status"] == "succeeded" and job["attempts"] == 1
    with rows() as s:
        starts = Counter(
            s.scalars(
                select(JobEvent.job_id).where(
                    JobEvent.job_id.in_(job_ids), JobEvent.message == "attempt 1 started"
                )
            )
        )
        masks = Counter(s.scalars(select(Mask.job_id).where(Mask.job_id.in_(job_ids))))
        workers = set(s.scalars(select(Job.worker).where(Job.id.in_(job_ids))))
    assert starts == Counter(job_ids) and masks == Counter(job_ids)
    assert len(workers) == 2, "both workers should have taken jobs"


def test_failing_job_records_error_and_traceback(api, admin, project, start_worker):
    start_worker()
    job_id = start_job(api, admin, project["id"], kind="fail")
    job, _ = poll_job(api, admin, job_id, {"failed", "succeeded"}, timeout=60)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "job_failed" and "boom" in job["error"]["message"]
    assert "Traceback" not in job["error"]["message"]
    errors = [e for e in events(api, admin, job_id) if e["level"] == "error"]
    assert errors and "Traceback (most recent call last)" in errors[0]["data"]["traceback"]
