"""`job.finished` webhooks from real jobs: the thread runner (whose own dispatcher thread
sends them) and a real `tag2mask worker` (whose dispatcher runs beside Celery).

The receivers listen on 127.0.0.1, which the API and the worker must be told to allow
(TAG2MASK_WEBHOOK_ALLOW_NETWORKS)."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from sqlalchemy import func, select

from app.tables import WebhookDelivery
from tests.fixtures.build import make_project
from tests.fixtures.webhooks import LOOPBACK_ALLOWED, Receiver, log_of, register_ok, signature_ok
from tests.worker.conftest import poll_job, wait_for


@pytest.fixture
def client(make_client):
    return make_client(webhook_allow_networks=LOOPBACK_ALLOWED)


@pytest.fixture
def settings_env(settings_env, monkeypatch):
    """Also allow loopback in the environment, which `start_worker` copies when it starts."""
    monkeypatch.setenv("TAG2MASK_WEBHOOK_ALLOW_NETWORKS", json.dumps(LOOPBACK_ALLOWED))
    return settings_env


def start(client, headers, pid, kind="sleep", **params):
    r = client.post(
        f"/v1/projects/{pid}/jobs",
        json={"kind": kind, "params": params, "allow_concurrent": True},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    return r.json()["id"]


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_finished_job_is_posted_once_signed_and_naming_the_job(client, admin, receiver):
    rx: Receiver = receiver()
    pid = make_project(client, admin)["id"]
    hook = register_ok(client, admin, pid, rx.url, events=["job.finished"])
    job_id = start(client, admin, pid, steps=1, step_s=0.0)
    job, _ = poll_job(client, admin, job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", job

    # the app's own dispatcher thread (1 s interval) sends it
    [req] = wait_for(rx.received, timeout=15, what="the job.finished POST")
    assert req.headers["x-tag2mask-event"] == "job.finished"
    assert signature_ok(hook["secret"], req)
    body = req.json()
    assert body["event"] == "job.finished"
    data = body["data"]
    assert {k: data[k] for k in ("job_id", "project_id", "kind", "status", "error")} == {
        "job_id": job_id,
        "project_id": pid,
        "kind": "sleep",
        "status": "succeeded",
        "error": None,
    }
    assert _when(data["finished_at"]) == _when(job["finished_at"])
    entry = wait_for(
        lambda: [e for e in log_of(client, admin, hook["id"]) if e["status"] == "delivered"],
        timeout=10,
        what="the delivery to be logged as delivered",
    )[0]
    assert entry["attempts"] == 1 and entry["last_status_code"] == 200
    assert str(entry["id"]) == req.headers["x-tag2mask-delivery"] == str(body["id"])
    # exactly one: a few more dispatcher passes send nothing else
    time.sleep(2.5)
    assert len(rx.received()) == 1
    assert len(log_of(client, admin, hook["id"])) == 1


def test_failed_job_event_carries_the_error(client, admin, receiver):
    rx: Receiver = receiver()
    pid = make_project(client, admin)["id"]
    hook = register_ok(client, admin, pid, rx.url)
    job_id = start(client, admin, pid, kind="fail")
    job, _ = poll_job(client, admin, job_id, {"failed"})
    [req] = wait_for(rx.received, timeout=15, what="the job.finished POST")
    assert signature_ok(hook["secret"], req)
    data = req.json()["data"]
    assert data["job_id"] == job_id and data["status"] == "failed" and data["kind"] == "fail"
    assert data["error"] == job["error"] and data["error"]["code"] == "job_failed"


def test_no_delivery_without_a_subscribed_webhook(client, admin, receiver):
    rx: Receiver = receiver()
    pid = make_project(client, admin)["id"]
    other = make_project(client, admin, name="other")["id"]
    reviews_only = register_ok(client, admin, pid, rx.url, events=["mask.reviewed"])
    register_ok(client, admin, other, rx.url)  # another project's webhook
    job_id = start(client, admin, pid, steps=1, step_s=0.0)
    poll_job(client, admin, job_id, {"succeeded"})
    with client.app.state.sessionmaker() as s:
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    assert log_of(client, admin, reviews_only["id"]) == []
    assert rx.received() == []


@pytest.mark.slow
def test_celery_worker_sends_job_finished(make_client, settings_env, admin, receiver, start_worker):
    # the API in celery mode dispatches nothing itself; the worker reads the environment
    api = make_client(**settings_env, webhook_allow_networks=LOOPBACK_ALLOWED)
    rx: Receiver = receiver()
    pid = make_project(api, admin)["id"]
    hook = register_ok(api, admin, pid, rx.url)
    worker = start_worker()
    job_id = start(api, admin, pid, steps=1, step_s=0.0)
    job, _ = poll_job(api, admin, job_id, {"succeeded", "failed"}, timeout=60)
    assert job["status"] == "succeeded", worker.log()
    [req] = wait_for(rx.received, timeout=20, what="the worker's job.finished POST")
    assert signature_ok(hook["secret"], req)
    assert req.json()["data"]["job_id"] == job_id
