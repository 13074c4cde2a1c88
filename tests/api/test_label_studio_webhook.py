"""Label Studio's webhook at /label-studio/{pid}/webhook: annotations become human masks
exactly once, START_TRAINING starts a run, bad input writes nothing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from app.db import make_engine, make_sessionmaker, session_scope
from app.imaging import decode_png_array
from app.tables import LabelStudioAnnotation, Mask
from tests.fixtures.build import count_rows, image_bytes, make_project
from tests.fixtures.label_studio import basic, signed_url
from worker.export_formats.brush_rle import encode_mask


def _annotation_event(
    url: str,
    regions: dict[str, np.ndarray],
    *,
    ann_id: int = 501,
    updated: str = "t1",
    action: str = "ANNOTATION_CREATED",
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    result = []
    for label, binary in regions.items():
        h, w = binary.shape
        result.append(
            {
                "id": f"r-{label}",
                "from_name": "tag",
                "to_name": "image",
                "type": "brushlabels",
                "original_width": w,
                "original_height": h,
                "image_rotation": 0,
                "value": {"format": "rle", "rle": encode_mask(binary), "brushlabels": [label]},
            }
        )
    return {
        "action": action,
        "annotation": {
            "id": ann_id,
            "result": result,
            "updated_at": updated,
            "task": 77,
            "was_cancelled": False,
        },
        "task": {"id": 77, "data": {"image": url}, "meta": meta or {}},
        "project": {"id": 5},
    }


def _human_masks(settings, image_id: int) -> list[Mask]:
    engine = make_engine(settings.db_url, pool_size=1)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            rows = s.scalars(
                select(Mask).where(Mask.image_id == image_id, Mask.source == "human")
            ).all()
            s.expunge_all()
            return list(rows)
    finally:
        engine.dispose()


def test_annotation_becomes_a_correction_exactly_once(client, admin, ls_scene, settings):
    im = ls_scene.pseudo
    drawn = np.zeros((30, 40), bool)
    drawn[5:20, 10:30] = True
    event = _annotation_event(signed_url(client, im["id"]), {"dog": drawn})
    hook = f"/label-studio/{ls_scene.pid}/webhook"
    r = client.post(hook, json=event, headers=ls_scene.auth)
    assert r.status_code == 200 and r.json()["status"] == "created", r.text
    for _ in range(2):  # Label Studio retries: nothing more is written
        again = client.post(hook, json=event, headers=ls_scene.auth)
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
    (human,) = _human_masks(settings, im["id"])
    assert human.id == r.json()["mask_id"] and human.review_state == "accepted"
    pseudo_id = client.get(f"/v1/images/{im['id']}/mask?source=pseudo", headers=admin).headers[
        "x-mask-id"
    ]
    assert human.corrected_from_id == int(pseudo_id), "linked to the mask it corrected"
    got = client.get(f"/v1/images/{im['id']}/mask", headers=admin)

    np.testing.assert_array_equal(decode_png_array(got.content), np.where(drawn, 2, 0))
    # An update (a new updated_at) replaces it; its own retry again writes nothing.
    upd = _annotation_event(
        signed_url(client, im["id"]), {"cat": drawn}, updated="t2", action="ANNOTATION_UPDATED"
    )
    assert client.post(hook, json=upd, headers=ls_scene.auth).json()["status"] == "created"
    assert client.post(hook, json=upd, headers=ls_scene.auth).json()["status"] == "duplicate"
    (human,) = _human_masks(settings, im["id"])
    assert count_rows(settings, LabelStudioAnnotation) == 2


def test_annotation_of_a_new_image_adds_it(client, admin, ls_scene, settings, file_host):
    file_host.files["/data/upload/9/fresh.png"] = data = image_bytes(20, 10, seed=11)
    client.post(
        f"/label-studio/{ls_scene.pid}/setup",
        json={"hostname": file_host.url, "access_token": file_host.token},
        headers=ls_scene.auth,
    )
    drawn = np.zeros((10, 20), bool)
    drawn[:, :5] = True
    event = _annotation_event("/data/upload/9/fresh.png", {"bird": drawn}, ann_id=900)
    r = client.post(f"/label-studio/{ls_scene.pid}/webhook", json=event, headers=ls_scene.auth)
    assert r.status_code == 200 and r.json()["status"] == "created", r.text
    image = client.get(f"/v1/images/{r.json()['image_id']}", headers=admin).json()
    assert image["filename"] == "fresh.png" and image["tags"] == ["bird"]
    assert client.get(f"/v1/images/{image['id']}/file", headers=admin).content == data


@pytest.mark.parametrize(
    "mutate, code",
    [
        (
            lambda e: e["annotation"]["result"][0]["value"].update(brushlabels=["zebra"]),
            "unknown_tag",
        ),
        (lambda e: e["annotation"]["result"][0].update(original_width=99), "mask_size_mismatch"),
        (lambda e: e["annotation"]["result"][0]["value"].update(rle=[1, 2, 3]), "validation_error"),
        (lambda e: e.pop("task"), "validation_error"),
        (lambda e: e["annotation"]["result"][0]["value"].update(brushlabels=7), "validation_error"),
        (lambda e: e["annotation"]["result"][0]["value"].update(rle=10**12), "validation_error"),
        (lambda e: e["annotation"]["result"].append("x"), "validation_error"),
        (lambda e: e["annotation"].pop("id"), "validation_error"),
    ],
    ids=[
        "label-not-a-category",
        "other-size",
        "bad-rle",
        "no-task",
        "labels-not-a-list",
        "rle-not-a-list",
        "result-item-not-an-object",
        "no-id",
    ],
)
def test_bad_annotation_is_a_clear_error_and_writes_nothing(
    client, ls_scene, settings, mutate, code
):
    drawn = np.ones((30, 40), bool)
    event = _annotation_event(signed_url(client, ls_scene.pseudo["id"]), {"dog": drawn})
    mutate(event)
    r = client.post(f"/label-studio/{ls_scene.pid}/webhook", json=event, headers=ls_scene.auth)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code
    assert _human_masks(settings, ls_scene.pseudo["id"]) == []
    assert count_rows(settings, LabelStudioAnnotation) == 0


def test_other_events_are_acknowledged_and_ignored(client, ls_scene):
    r = client.post(
        f"/label-studio/{ls_scene.pid}/webhook",
        json={"action": "PROJECT_UPDATED"},
        headers=ls_scene.auth,
    )
    assert r.status_code == 200 and r.json()["status"] == "ignored"


def test_webhook_needs_an_annotator(client, ls_scene, new_key):
    viewer = basic(new_key("viewer", ls_scene.pid))
    r = client.post(f"/label-studio/{ls_scene.pid}/webhook", json={"action": "x"}, headers=viewer)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_start_training_starts_one_pipeline_job(make_client, admin, new_key, redis_url):
    # Celery runner without a worker: the job stays queued, nothing trains in the test.
    client = make_client(job_runner="celery", redis_url=redis_url)
    pid = make_project(client, admin, name="train")["id"]
    auth = basic(new_key("annotator", pid))
    event = {"action": "START_TRAINING", "project": {"id": 3, "title": "x"}}
    r = client.post(f"/label-studio/{pid}/webhook", json=event, headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "queued", r.text
    job = client.get(f"/v1/jobs/{r.json()['job']}", headers=admin).json()
    assert job["kind"] == "pipeline" and job["project_id"] == pid
    again = client.post(f"/label-studio/{pid}/train", json={}, headers=auth)
    assert again.json() == {"job": r.json()["job"], "status": "running"}
    assert len(client.get(f"/v1/projects/{pid}/jobs", headers=admin).json()["items"]) == 1
