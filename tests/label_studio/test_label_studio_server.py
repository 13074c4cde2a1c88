"""The round trip against a real Label Studio 1.23.2 server (tests/fixtures/label_studio_server.py).

tag2mask runs under uvicorn on a 127.0.0.1 port with TAG2MASK_PUBLIC_URL set to it. The
test does through Label Studio's API what a user does in its UI: a project from our
labeling config, our export imported, every task's image loaded from its URL and every
prediction and annotation decoded back to our mask; our ML backend connected with one URL
(the key in it), predictions asked for a task whose image Label Studio hosts; an
annotation posted in Label Studio arriving in tag2mask as a human mask.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from label_studio_converter.brush import decode_rle

from app.imaging import decode_png_array
from app.main import create_app
from tests.fixtures.build import image_bytes, make_project, mask_bytes, stripes_mask, upload_ok
from tests.fixtures.label_studio import saved_run
from tests.fixtures.label_studio_server import START_TIMEOUT_S, LabelStudio
from tests.fixtures.pseudo import finished_pipeline_job
from tests.fixtures.server import ServerThread, bound_socket
from worker.export_formats.brush_rle import encode_mask

# The first test also starts the server: let the fixture's own deadline (START_TIMEOUT_S)
# be the one that fires, not the suite's 300 s (a busy machine took longer; session 23).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(START_TIMEOUT_S + 300)]
CATEGORIES = ("cat", "dog", "bird")


@pytest.fixture
def tag2mask(make_settings, new_key) -> Iterator[tuple[httpx.Client, str, Any]]:
    """tag2mask over HTTP at its public URL, an admin key, and the app."""
    sock = bound_socket()
    public = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(make_settings(public_url=public))
    key = new_key("admin")
    with (
        ServerThread(app, sock),
        httpx.Client(
            base_url=public, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client,
    ):
        yield client, key, app


def _masks(result: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    out = {}
    for region in result:
        assert region["from_name"] == "tag" and region["to_name"] == "image"
        h, w = region["original_height"], region["original_width"]
        (label,) = region["value"]["brushlabels"]
        out[label] = decode_rle(region["value"]["rle"]).reshape(h, w, 4)[..., 3] > 0
    return out


def _export(t2m: httpx.Client, pid: int) -> list[dict[str, Any]]:
    r = t2m.post(
        f"/v1/projects/{pid}/jobs",
        json={"kind": "export", "params": {"format": "label-studio", "include": "best"}},
    )
    assert r.status_code == 202, r.text
    for _ in range(300):
        job = t2m.get(f"/v1/jobs/{r.json()['id']}").json()
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(0.1)
    assert job["status"] == "succeeded", job
    return json.loads(t2m.get(f"/v1/jobs/{job['id']}/result").content)


def _wait_for(check: Any, what: str, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


def test_round_trip_with_a_real_label_studio(label_studio: LabelStudio, tag2mask, settings):
    t2m, key, app = tag2mask
    headers = dict(t2m.headers)
    # tag2mask: a human mask, a pseudo-mask from a run, and a run's saved networks.
    pid = make_project(t2m, headers, name="ls-e2e", categories=CATEGORIES)["id"]
    human_bytes = image_bytes(32, 24, seed=1)
    human = upload_ok(t2m, headers, pid, human_bytes, tags="cat", mask=mask_bytes(stripes_mask()))
    pseudo_bytes = image_bytes(40, 30, seed=2)
    pseudo = upload_ok(t2m, headers, pid, pseudo_bytes, tags="dog")
    pseudo_arr = stripes_mask(40, 30, (0, 2, 3))
    pseudo_job = finished_pipeline_job(settings, pid, [pseudo["id"]], [pseudo_arr], [0.75])
    run = saved_run(settings, pid, len(CATEGORIES))
    tasks = _export(t2m, pid)
    config = t2m.get(f"/v1/projects/{pid}/label-studio/config").text

    with label_studio.client() as ls:
        # 1. A project from our config; our export imported.
        r = ls.post("/api/projects", json={"title": "tag2mask e2e", "label_config": config})
        assert r.status_code == 201, r.text
        lsp = r.json()["id"]
        r = ls.post(f"/api/projects/{lsp}/import", json=tasks)
        assert r.status_code == 201, r.text
        assert r.json()["task_count"] == 2 and r.json()["prediction_count"] == 1
        assert r.json()["annotation_count"] == 1
        by_image: dict[int, dict[str, Any]] = {}
        for task in ls.get("/api/tasks", params={"project": lsp, "fields": "all"}).json()["tasks"]:
            by_image[task["meta"]["image_id"]] = task
        assert set(by_image) == {human["id"], pseudo["id"]}
        # 2. Every task's image loads from its URL as is (a browser: no key).
        for image_id, data in ((human["id"], human_bytes), (pseudo["id"], pseudo_bytes)):
            url = by_image[image_id]["data"]["image"]
            assert url.startswith(str(t2m.base_url).rstrip("/") + f"/v1/images/{image_id}/file?")
            got = httpx.get(url, headers={"Origin": label_studio.url}, timeout=30)
            assert got.status_code == 200 and got.content == data
            # Label Studio loads images with crossOrigin="anonymous".
            assert got.headers["access-control-allow-origin"] == "*"
        # ...and its prediction / annotation decodes to our mask.
        (pred,) = ls.get("/api/predictions", params={"task": by_image[pseudo["id"]]["id"]}).json()
        assert pred["model_version"] == f"tag2mask-job-{pseudo_job}"
        got = _masks(pred["result"])
        assert sorted(got) == ["bird", "dog"]
        np.testing.assert_array_equal(got["dog"], pseudo_arr == 2)
        np.testing.assert_array_equal(got["bird"], pseudo_arr == 3)
        (annotation,) = ls.get(f"/api/tasks/{by_image[human['id']]['id']}/annotations").json()
        np.testing.assert_array_equal(_masks(annotation["result"])["cat"], stripes_mask() == 1)

        # 3. Our ML backend, connected with one URL (the key as basic-auth password in it).
        backend = str(t2m.base_url).replace("http://", f"http://tag2mask:{key}@").rstrip("/")
        r = ls.post(
            "/api/ml",
            json={"project": lsp, "url": f"{backend}/label-studio/{pid}", "title": "tag2mask"},
        )
        assert r.status_code == 201, r.text
        ml = r.json()
        assert ml["state"] == "CO", ml  # connected: health and setup answered
        assert ml["model_version"] == f"tag2mask-job-{run}"
        # Tasks whose images Label Studio hosts (uploaded to it): one new to tag2mask, one
        # with the bytes of our pseudo-masked image (matched by content).
        uploaded = {}
        for name, data in (("new.png", image_bytes(48, 36, seed=5)), ("same.png", pseudo_bytes)):
            r = ls.post(f"/api/projects/{lsp}/import", files={"file": (name, data)})
            assert r.status_code == 201, r.text
        for t in ls.get("/api/tasks", params={"project": lsp, "fields": "all"}).json()["tasks"]:
            if t["data"]["image"].startswith("/data/upload/"):
                uploaded["same" if t["data"]["image"].endswith("same.png") else "new"] = t["id"]
        assert len(uploaded) == 2, uploaded
        r = ls.post(
            "/api/dm/actions",
            params={"id": "retrieve_tasks_predictions", "project": lsp},
            json={"selectedItems": {"all": False, "included": list(uploaded.values())}},
        )
        assert r.status_code == 200, r.text
        (pred,) = ls.get("/api/predictions", params={"task": uploaded["new"]}).json()
        assert pred["model_version"] == f"tag2mask-job-{run}" and 0 <= pred["score"] <= 1
        assert all(m.shape == (36, 48) for m in _masks(pred["result"]).values())
        (pred,) = ls.get("/api/predictions", params={"task": uploaded["same"]}).json()
        assert pred["model_version"] == f"tag2mask-job-{pseudo_job}"
        np.testing.assert_array_equal(_masks(pred["result"])["dog"], pseudo_arr == 2)

        # 4. An annotation made in Label Studio arrives as a human mask (its webhook).
        drawn = np.zeros((30, 40), bool)
        drawn[3:25, 5:35] = True
        region = {
            "from_name": "tag",
            "to_name": "image",
            "type": "brushlabels",
            "original_width": 40,
            "original_height": 30,
            "image_rotation": 0,
            "value": {"format": "rle", "rle": encode_mask(drawn), "brushlabels": ["bird"]},
        }
        task_id = by_image[pseudo["id"]]["id"]
        r = ls.post(f"/api/tasks/{task_id}/annotations", json={"result": [region]})
        assert r.status_code == 201, r.text

        def human_mask() -> Any:
            got = t2m.get(f"/v1/images/{pseudo['id']}/mask", params={"source": "human"})
            return got if got.status_code == 200 else None

        got = _wait_for(human_mask, "the annotation to arrive as a human mask")
        np.testing.assert_array_equal(decode_png_array(got.content), np.where(drawn, 3, 0))
        history = t2m.get(f"/v1/images/{pseudo['id']}/masks").json()["items"]
        (mine,) = [m for m in history if m["source"] == "human"]
        assert mine["corrected_from_id"] == tasks_mask_id(tasks, pseudo["id"])

        # 5. "Start Training" in Label Studio: a pipeline job in tag2mask (recorded here,
        # not run: a real run is minutes of CPU).
        started: list[int] = []
        app.state.runner.enqueue = started.append
        r = ls.post(f"/api/ml/{ml['id']}/train", json={"use_ground_truth": True})
        assert r.status_code == 200, r.text
        (job_id,) = _wait_for(lambda: started, "the training job")
        job = t2m.get(f"/v1/jobs/{job_id}").json()
        assert job["kind"] == "pipeline" and job["project_id"] == pid


def tasks_mask_id(tasks: list[dict[str, Any]], image_id: int) -> int:
    return next(t["meta"]["mask_id"] for t in tasks if t["meta"]["image_id"] == image_id)
