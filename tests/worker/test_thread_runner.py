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
