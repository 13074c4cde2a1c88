"""The Label Studio ML backend protocol (/label-studio/{pid}/…): health, setup, predict.

Request bodies are the ones Label Studio 1.23 sends (label_studio/ml/api_connector.py);
the brush RLE of every prediction is decoded with Label Studio's own decoder
(label-studio-converter). tests/api/test_label_studio_webhook.py: its webhook;
tests/label_studio/: the same against a real Label Studio server.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.tables import Image
from tests.fixtures.build import count_rows, image_bytes, make_project, stripes_mask
from tests.fixtures.label_studio import CATEGORIES, Scene, basic, decoded, signed_url


def _predict(client, sc: Scene, tasks: list[dict[str, Any]], **kw: Any):
    body = {"tasks": tasks, "project": f"{sc.pid}.1700000000", "label_config": "<View/>", **kw}
    return client.post(f"/label-studio/{sc.pid}/predict", json=body, headers=sc.auth)


# --- health, setup, auth ---------------------------------------------------------------


def test_health_needs_nothing(client):
    r = client.get("/label-studio/1/health")
    assert r.status_code == 200 and r.json()["status"] == "UP"


def test_setup_checks_the_config_and_answers_the_run(client, admin, ls_scene):
    config = client.get(f"/v1/projects/{ls_scene.pid}/label-studio/config", headers=admin).text
    body = {
        "project": f"{ls_scene.pid}.1700000000",
        "schema": config,
        "hostname": "http://ls.example:8080",
        "access_token": "tok",
        "extra_params": None,
    }
    r = client.post(f"/label-studio/{ls_scene.pid}/setup", json=body, headers=ls_scene.auth)
    assert r.status_code == 200, r.text
    assert r.json() == {"model_version": f"tag2mask-job-{ls_scene.run}"}
    bad = config.replace('value="bird"', 'value="zebra"')
    r = client.post(
        f"/label-studio/{ls_scene.pid}/setup", json={**body, "schema": bad}, headers=ls_scene.auth
    )
    assert r.status_code == 422 and "zebra" in r.json()["error"]["message"]
    r = client.post(
        f"/label-studio/{ls_scene.pid}/setup",
        json={**body, "schema": "<View><Image name='x' value='$x'/></View>"},
        headers=ls_scene.auth,
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
def test_bad_credentials_are_401_json(client, ls_scene, headers, status):
    r = client.post(f"/label-studio/{ls_scene.pid}/predict", json={"tasks": [{}]}, headers=headers)
    assert r.status_code == status and r.json()["error"]["code"] == "unauthorized"


def test_unknown_or_foreign_project_is_404(client, admin, ls_scene, new_key):
    r = client.post(
        "/label-studio/999/predict", json={"tasks": [{}]}, headers=basic(admin_key(admin))
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    other = make_project(client, admin, name="other")["id"]
    r = client.post(f"/label-studio/{other}/predict", json={"tasks": [{}]}, headers=ls_scene.auth)
    assert r.status_code == 404


def admin_key(headers: dict[str, str]) -> str:
    return headers["Authorization"].split(" ", 1)[1]


def test_bearer_works_too(client, admin, ls_scene):
    tasks = [{"id": 1, "data": {"image": signed_url(client, ls_scene.human["id"])}}]
    r = client.post(f"/label-studio/{ls_scene.pid}/predict", json={"tasks": tasks}, headers=admin)
    assert r.status_code == 200


# --- predict ---------------------------------------------------------------------------


def test_predict_known_images_answers_their_best_masks(client, ls_scene):
    tasks = [
        {"id": 11, "data": {"image": signed_url(client, ls_scene.human["id"])}},
        {"id": 12, "data": {"image": signed_url(client, ls_scene.pseudo["id"])}},
    ]
    r = _predict(client, ls_scene, tasks)
    assert r.status_code == 200, r.text
    human, pseudo = r.json()["results"]
    assert human["model_version"] == "human" and human["score"] == 1.0
    (cat,) = decoded(human["result"]).values()
    np.testing.assert_array_equal(cat, stripes_mask() == 1)
    assert pseudo["model_version"] == f"tag2mask-job-{ls_scene.pseudo_job}"
    assert pseudo["score"] == pytest.approx(round(0.8 * 255) / 255, abs=1e-6)
    got = decoded(pseudo["result"])
    assert sorted(got) == ["bird", "dog"]
    np.testing.assert_array_equal(got["dog"], ls_scene.pseudo_mask == 2)
    np.testing.assert_array_equal(got["bird"], ls_scene.pseudo_mask == 3)
    for region in pseudo["result"]:
        assert region["from_name"] == "tag" and region["to_name"] == "image"
        assert region["type"] == "brushlabels" and 0 <= region["score"] <= 1


def test_predict_fetches_from_label_studio_and_matches_by_content(client, ls_scene, file_host):
    file_host.files["/data/upload/1/copy.png"] = image_bytes(40, 30, seed=2)  # = pseudo's bytes
    file_host.files["/data/upload/1/new.png"] = new = image_bytes(48, 36, seed=7)
    setup = {"hostname": file_host.url, "access_token": file_host.token}
    assert client.post(
        f"/label-studio/{ls_scene.pid}/setup", json=setup, headers=ls_scene.auth
    ).is_success
    tasks = [
        {"id": 1, "data": {"image": "/data/upload/1/copy.png"}},
        {"id": 2, "data": {"image": f"{file_host.url}/data/upload/1/new.png"}},
        {"id": 3, "data": {"image": "/data/upload/1/new.png", "tags": ["cat"]}},
    ]
    r = _predict(client, ls_scene, tasks)
    assert r.status_code == 200, r.text
    known, new_pred, tagged = r.json()["results"]
    assert known["model_version"] == f"tag2mask-job-{ls_scene.pseudo_job}"
    for pred in (new_pred, tagged):  # the saved run's networks
        assert pred["model_version"] == f"tag2mask-job-{ls_scene.run}"
        assert 0 <= pred["score"] <= 1
        masks = decoded(pred["result"])
        assert all(m.shape == (36, 48) for m in masks.values())
        assert set(masks) <= set(CATEGORIES)
    assert set(decoded(tagged["result"])) <= {"cat"}, "a task's tags constrain"
    assert all(auth == f"Token {file_host.token}" for _, auth in file_host.seen)
    assert count_rows(client.app.state.settings, Image) == 2, "predict writes nothing"
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
def test_predict_bad_task_is_a_clear_error(client, ls_scene, task, code):
    r = _predict(client, ls_scene, [task])
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


def test_one_bad_task_among_good_ones_is_an_empty_result(client, ls_scene):
    tasks = [
        {"id": 1, "data": {"image": "http://127.0.0.1:9/nothing.png"}},
        {"id": 2, "data": {"image": signed_url(client, ls_scene.human["id"])}},
    ]
    r = _predict(client, ls_scene, tasks)
    assert r.status_code == 200
    bad, good = r.json()["results"]
    assert bad["result"] == [] and good["result"]


@pytest.mark.parametrize("body", [{"tasks": []}, {"tasks": "x"}, {"tasks": [1, 2]}, {}])
def test_malformed_task_lists_are_422(client, ls_scene, body):
    r = client.post(f"/label-studio/{ls_scene.pid}/predict", json=body, headers=ls_scene.auth)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
