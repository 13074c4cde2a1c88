"""The `pipeline` job end to end over the API: upload, start, poll, fetch masks."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sqlalchemy import func, select

from app.db import make_engine, make_sessionmaker
from app.imaging import decode_png_array
from app.tables import JobCheckpoint, Mask, ModelVersion
from tests.fixtures.build import make_project, upload
from tests.synthetic import encode_png, make_shapes_dataset
from tests.worker.conftest import poll_job

CATEGORIES = ("circle", "square", "triangle", "cross")
FAST = {
    "backbone": "scratch",
    "image_size": 48,
    "epochs": 2,
    "rounds": 1,
    "batch_size": 8,
    "width": 8,
    "min_masks_per_class": 2,
}


def _fill_project(client, headers, n=20, seed=3):
    """Synthetic shapes; every other image gets its human mask."""
    pid = make_project(client, headers, name="shapes", categories=CATEGORIES)["id"]
    images, masks, tags = make_shapes_dataset(n, size=48, seed=seed, num_classes=4)
    ids, tag_names = [], {}
    for i, (img, mask, t) in enumerate(zip(images, masks, tags, strict=True)):
        names = ",".join(CATEGORIES[k - 1] for k in sorted(t))
        r = upload(
            client,
            headers,
            pid,
            encode_png(img),
            tags=names,
            mask=encode_png(mask) if i % 2 == 0 else None,
            filename=f"s{i}.png",
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        tag_names[r.json()["id"]] = set(t)
    return pid, ids, tag_names


def _check_run(client, headers, db_url, pid, ids, tags, job):
    assert job["status"] == "succeeded", job["error"]
    m = job["metrics"]
    assert {"lnet", "pnet", "round_1", "predict"} <= set(m)
    assert m["pseudo_masks_written"] == len(ids) // 2
    assert m["budget"] and {b["image_id"] for b in m["budget"]} <= set(ids[1::2])
    for image_id in ids[1::2]:
        r = client.get(f"/v1/images/{image_id}/mask", params={"source": "pseudo"}, headers=headers)
        assert r.status_code == 200
        mask = decode_png_array(r.content)
        assert mask.shape == (48, 48)
        assert set(np.unique(mask).tolist()) <= tags[image_id] | {0}, "class outside the tags"
        conf = client.get(f"/v1/images/{image_id}/confidence", headers=headers)
        assert conf.status_code == 200 and decode_png_array(conf.content).shape == (48, 48)
    best = client.get(f"/v1/images/{ids[0]}/mask", headers=headers)
    assert best.headers["x-mask-source"] == "human"
    engine = make_engine(db_url, pool_size=1)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        per_job = s.scalar(select(func.count()).select_from(Mask).where(Mask.job_id == job["id"]))
        nets = set(s.scalars(select(ModelVersion.network).where(ModelVersion.job_id == job["id"])))
    # The stage checkpoints go once the job succeeded (right after its status commits).
    deadline = time.monotonic() + 15
    while True:
        with sessions() as s:
            left = s.scalar(
                select(func.count())
                .select_from(JobCheckpoint)
                .where(JobCheckpoint.job_id == job["id"])
            )
        if left == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    engine.dispose()
    assert per_job == len(ids) // 2
    assert {"lnet", "s_a", "s_b", "disc"} <= nets
    assert left == 0, "stage checkpoints outlived the finished job"


def test_pipeline_on_thread_runner(client, admin, db_url):
    pid, ids, tags = _fill_project(client, admin)
    r = client.post(
        f"/v1/projects/{pid}/jobs", json={"kind": "pipeline", "params": FAST}, headers=admin
    )
    assert r.status_code == 202, r.text
    job, seen = poll_job(client, admin, r.json()["id"], {"succeeded", "failed"}, timeout=240)
    _check_run(client, admin, db_url, pid, ids, tags, job)
    stages = [s["stage"] for s in seen]
    assert stages.index("lnet") < stages.index("pnet") < stages.index("write")
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress)


def test_pipeline_rejects_unknown_params(client, admin):
    pid = make_project(client, admin)["id"]
    r = client.post(
        f"/v1/projects/{pid}/jobs",
        json={"kind": "pipeline", "params": {"epochz": 3}},
        headers=admin,
    )
    assert r.status_code == 422 and "epochz" in r.json()["error"]["message"]
    r = client.post(
        f"/v1/projects/{pid}/jobs",
        json={"kind": "pipeline", "params": {"image_size": -5}},
        headers=admin,
    )
    assert r.status_code == 422 and "image_size" in r.json()["error"]["message"]


@pytest.mark.slow
def test_pipeline_on_celery_worker(make_client, settings_env, admin, start_worker, db_url):
    api = make_client(**settings_env)
    pid, ids, tags = _fill_project(api, admin, seed=5)
    start_worker()
    r = api.post(
        f"/v1/projects/{pid}/jobs", json={"kind": "pipeline", "params": FAST}, headers=admin
    )
    job, _ = poll_job(api, admin, r.json()["id"], {"succeeded", "failed"}, timeout=240)
    _check_run(api, admin, db_url, pid, ids, tags, job)
