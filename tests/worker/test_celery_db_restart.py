"""A real `celery worker` whose database connections drop mid-job (a PostgreSQL restart):
the job goes back to the queue, is sent again at once and resumes; it is not failed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_dependency_down import drop_connections
from tests.fixtures.db import postgres_db_url  # noqa: F401  (db_url: PostgreSQL only)
from tests.worker.conftest import poll_job, wait_for
from tests.worker.test_celery import events, start_job

pytestmark = pytest.mark.slow


@pytest.fixture
def settings_env(settings_env: dict[str, Any]) -> dict[str, Any]:
    # No heartbeat thread in between: the job's own progress write meets the dead connection.
    return {**settings_env, "job_heartbeat_s": 600, "job_stale_after_s": 60}


def test_dropped_connection_requeues_and_resends_the_job(
    make_client, settings_env, admin, start_worker, db_url
):
    api = make_client(**settings_env)
    pid = api.post(
        "/v1/projects", json={"name": "p", "categories": [{"name": "a"}]}, headers=admin
    ).json()["id"]
    worker = start_worker()
    job_id = start_job(api, admin, pid, steps=40, step_s=0.1)
    wait_for(
        lambda: api.get(f"/v1/jobs/{job_id}", headers=admin).json()["progress"] > 0.1,
        timeout=60,
        what="job progress",
    )
    assert drop_connections(db_url) >= 1
    api.get("/readyz")  # the API's own pool meets its dropped connection here (a 503)
    job, _ = poll_job(api, admin, job_id, {"succeeded", "failed"}, timeout=60)
    assert job["status"] == "succeeded" and job["attempts"] == 2, worker.log()[-3000:]
    messages = [e["message"] for e in events(api, admin, job_id)]
    assert any("database connection lost" in m for m in messages), messages
