"""Jobs on the embedded thread runner, over the real API and database."""

from __future__ import annotations

import numpy as np

from tests.fixtures.build import image_bytes, make_project, mask_bytes, stripes_mask, upload
from tests.worker.conftest import poll_job


def test_stats_job_counts_tags_and_mask_pixels(client, admin):
    project = make_project(client, admin, categories=("cat", "dog"))
    pid = project["id"]
    for seed in range(3):
        mask = stripes_mask(32, 24, (0, 1)) if seed < 2 else stripes_mask(32, 24, (1, 2))
        r = upload(
            client, admin, pid, image_bytes(seed=seed), tags="cat,dog", mask=mask_bytes(mask)
        )
        assert r.status_code == 201, r.text
    upload(client, admin, pid, image_bytes(seed=9), tags="dog")
    r = client.post(f"/v1/projects/{pid}/jobs", json={"kind": "stats", "params": {}}, headers=admin)
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
    job, seen = poll_job(client, admin, r.json()["id"], {"succeeded", "failed"})
    assert job["status"] == "succeeded", job
    cats = {c["name"]: c for c in job["metrics"]["categories"]}
    assert cats["cat"]["images_tagged"] == 3 and cats["dog"]["images_tagged"] == 4
    assert cats["cat"]["human_masks"] == 3 and cats["dog"]["human_masks"] == 1
    assert cats["cat"]["strong"] is True and cats["dog"]["strong"] is False
    # stripes (0,1) twice and (1,2) once: background is 1/3 of the labelled pixels
    assert np.isclose(job["metrics"]["background_fraction"], 1 / 3)
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress) and job["progress"] == 1.0
    events = client.get(f"/v1/jobs/{job['id']}/events", headers=admin).json()["items"]
    messages = [e["message"] for e in events]
    assert messages[0] == "stats job queued" and "succeeded" in messages
    assert any("stage masks" in m for m in messages)
    later = client.get(
        f"/v1/jobs/{job['id']}/events", params={"after": events[1]["id"]}, headers=admin
    ).json()["items"]
    assert [e["id"] for e in later] == [e["id"] for e in events[2:]]


def _start(client, headers, pid, kind="sleep", allow_concurrent=False, **params):
    return client.post(
        f"/v1/projects/{pid}/jobs",
        json={"kind": kind, "params": params, "allow_concurrent": allow_concurrent},
        headers=headers,
    )


def test_second_active_job_conflicts_unless_allowed(client, admin):
    pid = make_project(client, admin)["id"]
    first = _start(client, admin, pid, steps=100, step_s=0.05)
    assert first.status_code == 202
    second = _start(client, admin, pid, steps=1, step_s=0.0)
    assert second.status_code == 409
    err = second.json()["error"]
    assert err["code"] == "conflict" and err["detail"]["active_job_id"] == first.json()["id"]
    assert _start(client, admin, pid, allow_concurrent=True, steps=1, step_s=0.0).status_code == 202
    client.post(f"/v1/jobs/{first.json()['id']}/cancel", headers=admin)
    poll_job(client, admin, first.json()["id"], {"cancelled"})


def test_cancel_on_thread_runner_ends_within_seconds(client, admin):
    pid = make_project(client, admin)["id"]
    job_id = _start(client, admin, pid, steps=500, step_s=0.05).json()["id"]
    poll_job(client, admin, job_id, {"running"})
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=admin).status_code == 202
    job, _ = poll_job(client, admin, job_id, {"cancelled", "succeeded", "failed"}, timeout=5)
    assert job["status"] == "cancelled" and job["finished_at"] is not None


def test_bad_job_requests(client, admin, new_key):
    pid = make_project(client, admin)["id"]
    r = _start(client, admin, pid, kind="no-such-kind")
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    r = _start(client, admin, pid, kind="stats", bogus=1)
    assert r.status_code == 422 and "bogus" in r.json()["error"]["message"]
    r = _start(client, admin, 99999, kind="stats")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    viewer = {"Authorization": f"Bearer {new_key('viewer')}"}
    r = _start(client, viewer, pid, kind="stats")
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert client.get("/v1/jobs/424242", headers=admin).status_code == 404
    other = make_project(client, admin, name="other")["id"]
    scoped = {"Authorization": f"Bearer {new_key('admin', other)}"}
    job_id = _start(client, admin, pid, kind="stats").json()["id"]
    assert client.get(f"/v1/jobs/{job_id}", headers=scoped).status_code == 404
    assert client.get(f"/v1/jobs/{job_id}/events", headers=scoped).status_code == 404
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=scoped).status_code == 404


def test_job_list_eta_and_metrics(client, admin):
    pid = make_project(client, admin)["id"]
    job_id = _start(client, admin, pid, steps=30, step_s=0.1).json()["id"]
    wait = poll_job(client, admin, job_id, {"succeeded"}, timeout=30)[1]
    assert any(s["eta_seconds"] is not None and s["eta_seconds"] > 0 for s in wait)
    listed = client.get(f"/v1/projects/{pid}/jobs", headers=admin).json()["items"]
    assert [j["id"] for j in listed] == [job_id]
    assert client.get(f"/v1/projects/{pid}/jobs?status=queued", headers=admin).json() == {
        "items": []
    }
    text = client.get("/metrics").text
    assert 'tag2mask_jobs{kind="sleep",status="succeeded"} 1.0' in text
    assert 'tag2mask_job_duration_seconds_count{kind="sleep"} 1.0' in text
    assert "tag2mask_job_queue_wait_seconds_bucket" in text
    assert (
        'tag2mask_http_request_duration_seconds_count{method="GET",route="/v1/jobs/{job_id}"'
        in text
    )


def test_cli_watch_shows_progress_and_events(client, admin):
    from io import StringIO

    from app.cli_jobs import watch

    pid = make_project(client, admin)["id"]
    job_id = _start(client, admin, pid, steps=8, step_s=0.2).json()["id"]
    client.headers.update(admin)
    out = StringIO()
    job = watch(client, job_id, interval=0.2, out=out)
    text = out.getvalue()
    assert job["status"] == "succeeded"
    assert "100%" in text and "stage second started" in text and "ETA" in text
