"""The Label Studio ML backend protocol (/label-studio/{pid}/…) over HTTP, without Label Studio.

Request bodies are the ones Label Studio 1.23 sends (label_studio/ml/api_connector.py and
its webhook serializers); the brush RLE of every prediction is decoded with Label Studio's
own decoder (label-studio-converter). tests/integration/test_label_studio_server.py runs
the same round trip against a real Label Studio server.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from label_studio_converter.brush import decode_rle
from sqlalchemy import func, select

from app.db import make_engine, make_sessionmaker, session_scope
from app.tables import Image, LabelStudioAnnotation, Mask
from tests.fixtures.build import image_bytes, make_project, mask_bytes, stripes_mask, upload_ok
from tests.fixtures.label_studio import saved_run
from tests.fixtures.pseudo import finished_pipeline_job
from worker.export_formats.brush_rle import encode_mask

CATEGORIES = ("cat", "dog", "bird")


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"tag2mask:{key}".encode()).decode()}


@dataclass
class Scene:
    pid: int
    human: dict[str, Any]  # image with a human mask
    pseudo: dict[str, Any]  # image with a pseudo-mask only
    pseudo_job: int
    run: int  # the saved run (networks)
    auth: dict[str, str]  # basic auth, an annotator key of the project
    pseudo_mask: np.ndarray


@pytest.fixture
def scene(client, admin, new_key, settings) -> Scene:
    pid = make_project(client, admin, name="lsb", categories=CATEGORIES)["id"]
    human = upload_ok(
        client, admin, pid, image_bytes(32, 24, seed=1), tags="cat", mask=mask_bytes(stripes_mask())
    )
    pseudo = upload_ok(client, admin, pid, image_bytes(40, 30, seed=2), tags="dog")
    arr = stripes_mask(40, 30, (0, 2, 3))
    job = finished_pipeline_job(settings, pid, [pseudo["id"]], [arr], [0.8])
    run = saved_run(settings, pid, len(CATEGORIES))
    return Scene(pid, human, pseudo, job, run, basic(new_key("annotator", pid)), arr)


def _url(client, image_id: int) -> str:
    signer = client.app.state.signer
    return "http://t2m.example" + signer.image_file(image_id, exp=signer.expiry())


def _decoded(result: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    out = {}
    for region in result:
        h, w = region["original_height"], region["original_width"]
        (label,) = region["value"]["brushlabels"]
        out[label] = decode_rle(region["value"]["rle"]).reshape(h, w, 4)[..., 3] > 0
    return out


def _predict(client, sc: Scene, tasks: list[dict[str, Any]], **kw: Any):
    body = {"tasks": tasks, "project": f"{sc.pid}.1700000000", "label_config": "<View/>", **kw}
    return client.post(f"/label-studio/{sc.pid}/predict", json=body, headers=sc.auth)


def _count(settings, table) -> int:
    engine = make_engine(settings.db_url, pool_size=1)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            return int(s.scalar(select(func.count()).select_from(table)) or 0)
    finally:
        engine.dispose()


# --- health, setup, auth ---------------------------------------------------------------


def test_health_needs_nothing(client):
    r = client.get("/label-studio/1/health")
    assert r.status_code == 200 and r.json()["status"] == "UP"


def test_setup_checks_the_config_and_answers_the_run(client, admin, scene):
    config = client.get(f"/v1/projects/{scene.pid}/label-studio/config", headers=admin).text
    body = {
        "project": f"{scene.pid}.1700000000",
        "schema": config,
        "hostname": "http://ls.example:8080",
        "access_token": "tok",
        "extra_params": None,
    }
    r = client.post(f"/label-studio/{scene.pid}/setup", json=body, headers=scene.auth)
    assert r.status_code == 200, r.text
    assert r.json() == {"model_version": f"tag2mask-job-{scene.run}"}
    bad = config.replace('value="bird"', 'value="zebra"')
    r = client.post(
        f"/label-studio/{scene.pid}/setup", json={**body, "schema": bad}, headers=scene.auth
    )
    assert r.status_code == 422 and "zebra" in r.json()["error"]["message"]
    r = client.post(
        f"/label-studio/{scene.pid}/setup",
        json={**body, "schema": "<View><Image name='x' value='$x'/></View>"},
        headers=scene.auth,
    )
    assert r.status_code == 422 and "BrushLabels" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 401),
        ({"Authorization": "Basic bm9wYXNzd29yZA=="}, 401),  # "nopassword": no colon
        (basic("t2m_not-a-key"), 401),
    ],
)
def test_bad_credentials_are_401_json(client, scene, headers, status):
    r = client.post(f"/label-studio/{scene.pid}/predict", json={"tasks": [{}]}, headers=headers)
    assert r.status_code == status and r.json()["error"]["code"] == "unauthorized"


def test_unknown_or_foreign_project_is_404(client, admin, scene, new_key):
    r = client.post(
        "/label-studio/999/predict", json={"tasks": [{}]}, headers=basic(admin_key(admin))
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    other = make_project(client, admin, name="other")["id"]
    r = client.post(f"/label-studio/{other}/predict", json={"tasks": [{}]}, headers=scene.auth)
    assert r.status_code == 404


def admin_key(headers: dict[str, str]) -> str:
    return headers["Authorization"].split(" ", 1)[1]


def test_bearer_works_too(client, admin, scene):
    tasks = [{"id": 1, "data": {"image": _url(client, scene.human["id"])}}]
    r = client.post(f"/label-studio/{scene.pid}/predict", json={"tasks": tasks}, headers=admin)
    assert r.status_code == 200


# --- predict ---------------------------------------------------------------------------


def test_predict_known_images_answers_their_best_masks(client, scene):
    tasks = [
        {"id": 11, "data": {"image": _url(client, scene.human["id"])}},
        {"id": 12, "data": {"image": _url(client, scene.pseudo["id"])}},
    ]
    r = _predict(client, scene, tasks)
    assert r.status_code == 200, r.text
    human, pseudo = r.json()["results"]
    assert human["model_version"] == "human" and human["score"] == 1.0
    (cat,) = _decoded(human["result"]).values()
    np.testing.assert_array_equal(cat, stripes_mask() == 1)
    assert pseudo["model_version"] == f"tag2mask-job-{scene.pseudo_job}"
    assert pseudo["score"] == pytest.approx(round(0.8 * 255) / 255, abs=1e-6)
    got = _decoded(pseudo["result"])
    assert sorted(got) == ["bird", "dog"]
    np.testing.assert_array_equal(got["dog"], scene.pseudo_mask == 2)
    np.testing.assert_array_equal(got["bird"], scene.pseudo_mask == 3)
    for region in pseudo["result"]:
        assert region["from_name"] == "tag" and region["to_name"] == "image"
        assert region["type"] == "brushlabels" and 0 <= region["score"] <= 1


def test_predict_fetches_from_label_studio_and_matches_by_content(client, scene, file_host):
    file_host.files["/data/upload/1/copy.png"] = image_bytes(40, 30, seed=2)  # = pseudo's bytes
    file_host.files["/data/upload/1/new.png"] = new = image_bytes(48, 36, seed=7)
    setup = {"hostname": file_host.url, "access_token": file_host.token}
    assert client.post(
        f"/label-studio/{scene.pid}/setup", json=setup, headers=scene.auth
    ).is_success
    tasks = [
        {"id": 1, "data": {"image": "/data/upload/1/copy.png"}},
        {"id": 2, "data": {"image": f"{file_host.url}/data/upload/1/new.png"}},
        {"id": 3, "data": {"image": "/data/upload/1/new.png", "tags": ["cat"]}},
    ]
    r = _predict(client, scene, tasks)
    assert r.status_code == 200, r.text
    known, new_pred, tagged = r.json()["results"]
    assert known["model_version"] == f"tag2mask-job-{scene.pseudo_job}"
    for pred in (new_pred, tagged):  # the saved run's networks
        assert pred["model_version"] == f"tag2mask-job-{scene.run}"
        assert 0 <= pred["score"] <= 1
        masks = _decoded(pred["result"])
        assert all(m.shape == (36, 48) for m in masks.values())
        assert set(masks) <= set(CATEGORIES)
    assert set(_decoded(tagged["result"])) <= {"cat"}, "a task's tags constrain"
    assert all(auth == f"Token {file_host.token}" for _, auth in file_host.seen)
    assert _count(client.app.state.settings, Image) == 2, "predict writes nothing"
    assert len(new) > 0


def test_predict_without_a_run_is_409_for_a_new_image(client, admin, new_key, file_host):
    pid = make_project(client, admin, name="no-run")["id"]
    auth = basic(new_key("annotator", pid))
    file_host.files["/x.png"] = image_bytes(16, 16, seed=3)
    client.post(
        f"/label-studio/{pid}/setup",
        json={"hostname": file_host.url, "access_token": file_host.token},
        headers=auth,
    )
    r = client.post(
        f"/label-studio/{pid}/predict",
        json={"tasks": [{"data": {"image": "/x.png"}}]},
        headers=auth,
    )
    assert r.status_code == 409 and "finished labeling run" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "task, code",
    [
        ({"id": 1, "data": {"image": "http://127.0.0.1:9/nothing.png"}}, "task_image_unavailable"),
        ({"id": 1, "data": {"image": "/data/upload/relative.png"}}, "task_image_unavailable"),
        ({"id": 1, "data": {}}, "task_image_unavailable"),
        ({"id": 1, "data": "not an object"}, "task_image_unavailable"),
        ({"id": 1, "data": {"image": "http://[::1/x.png"}}, "task_image_unavailable"),
        ({"id": 1, "data": {"image": "ftp://example.org/x.png"}}, "task_image_unavailable"),
    ],
    ids=[
        "refused-host",
        "relative-without-label-studio",
        "no-image",
        "data-not-object",
        "invalid-url",
        "not-http",
    ],
)
def test_predict_bad_task_is_a_clear_error(client, scene, task, code):
    r = _predict(client, scene, [task])
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


def test_one_bad_task_among_good_ones_is_an_empty_result(client, scene):
    tasks = [
        {"id": 1, "data": {"image": "http://127.0.0.1:9/nothing.png"}},
        {"id": 2, "data": {"image": _url(client, scene.human["id"])}},
    ]
    r = _predict(client, scene, tasks)
    assert r.status_code == 200
    bad, good = r.json()["results"]
    assert bad["result"] == [] and good["result"]


@pytest.mark.parametrize("body", [{"tasks": []}, {"tasks": "x"}, {"tasks": [1, 2]}, {}])
def test_malformed_task_lists_are_422(client, scene, body):
    r = client.post(f"/label-studio/{scene.pid}/predict", json=body, headers=scene.auth)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


# --- webhook ---------------------------------------------------------------------------


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


def test_annotation_becomes_a_correction_exactly_once(client, admin, scene, settings):
    im = scene.pseudo
    drawn = np.zeros((30, 40), bool)
    drawn[5:20, 10:30] = True
    event = _annotation_event(_url(client, im["id"]), {"dog": drawn})
    hook = f"/label-studio/{scene.pid}/webhook"
    r = client.post(hook, json=event, headers=scene.auth)
    assert r.status_code == 200 and r.json()["status"] == "created", r.text
    for _ in range(2):  # Label Studio retries: nothing more is written
        again = client.post(hook, json=event, headers=scene.auth)
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
    (human,) = _human_masks(settings, im["id"])
    assert human.id == r.json()["mask_id"] and human.review_state == "accepted"
    pseudo_id = client.get(f"/v1/images/{im['id']}/mask?source=pseudo", headers=admin).headers[
        "x-mask-id"
    ]
    assert human.corrected_from_id == int(pseudo_id), "linked to the mask it corrected"
    got = client.get(f"/v1/images/{im['id']}/mask", headers=admin)
    from app.imaging import decode_png_array

    np.testing.assert_array_equal(decode_png_array(got.content), np.where(drawn, 2, 0))
    # An update (a new updated_at) replaces it; its own retry again writes nothing.
    upd = _annotation_event(
        _url(client, im["id"]), {"cat": drawn}, updated="t2", action="ANNOTATION_UPDATED"
    )
    assert client.post(hook, json=upd, headers=scene.auth).json()["status"] == "created"
    assert client.post(hook, json=upd, headers=scene.auth).json()["status"] == "duplicate"
    (human,) = _human_masks(settings, im["id"])
    assert _count(settings, LabelStudioAnnotation) == 2


def test_annotation_of_a_new_image_adds_it(client, admin, scene, settings, file_host):
    file_host.files["/data/upload/9/fresh.png"] = data = image_bytes(20, 10, seed=11)
    client.post(
        f"/label-studio/{scene.pid}/setup",
        json={"hostname": file_host.url, "access_token": file_host.token},
        headers=scene.auth,
    )
    drawn = np.zeros((10, 20), bool)
    drawn[:, :5] = True
    event = _annotation_event("/data/upload/9/fresh.png", {"bird": drawn}, ann_id=900)
    r = client.post(f"/label-studio/{scene.pid}/webhook", json=event, headers=scene.auth)
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
def test_bad_annotation_is_a_clear_error_and_writes_nothing(client, scene, settings, mutate, code):
    drawn = np.ones((30, 40), bool)
    event = _annotation_event(_url(client, scene.pseudo["id"]), {"dog": drawn})
    mutate(event)
    r = client.post(f"/label-studio/{scene.pid}/webhook", json=event, headers=scene.auth)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code
    assert _human_masks(settings, scene.pseudo["id"]) == []
    assert _count(settings, LabelStudioAnnotation) == 0


def test_other_events_are_acknowledged_and_ignored(client, scene):
    r = client.post(
        f"/label-studio/{scene.pid}/webhook", json={"action": "PROJECT_UPDATED"}, headers=scene.auth
    )
    assert r.status_code == 200 and r.json()["status"] == "ignored"


def test_webhook_needs_an_annotator(client, scene, new_key):
    viewer = basic(new_key("viewer", scene.pid))
    r = client.post(f"/label-studio/{scene.pid}/webhook", json={"action": "x"}, headers=viewer)
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
