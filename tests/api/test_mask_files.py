"""A mask's own bytes by id: GET /v1/masks/{id}/file and /v1/masks/{id}/confidence."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.fixtures.app import bearer
from tests.fixtures.build import image_bytes, make_project, mask_bytes, stripes_mask, upload_ok
from tests.fixtures.pseudo import finished_pipeline_job

W, H = 32, 24


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_a_superseded_mask_still_serves_its_own_pixels(client, admin, settings):
    pid = make_project(client, admin)["id"]
    iid = upload_ok(client, admin, pid, image_bytes(seed=1), tags="cat,dog")["id"]
    first, second = stripes_mask(W, H, (0, 1)), stripes_mask(W, H, (2, 0))
    finished_pipeline_job(settings, pid, [iid], [first], [0.2])
    old = client.get(f"/v1/images/{iid}/mask?source=pseudo", headers=admin)
    old_id = int(old.headers["x-mask-id"])
    finished_pipeline_job(settings, pid, [iid], [second], [0.8])

    r = client.get(f"/v1/masks/{old_id}/file", headers=admin)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-mask-id"] == str(old_id) and r.headers["x-image-id"] == str(iid)
    assert r.headers["x-mask-source"] == "pseudo"
    np.testing.assert_array_equal(_png(r.content), first)  # not the newer run's mask
    again = client.get(
        f"/v1/masks/{old_id}/file", headers={**admin, "If-None-Match": r.headers["etag"]}
    )
    assert again.status_code == 304

    conf = client.get(f"/v1/masks/{old_id}/confidence", headers=admin)
    assert conf.status_code == 200, conf.text
    assert (_png(conf.content) == round(0.2 * 255)).all()


def test_a_human_mask_has_no_confidence_and_scope_hides_masks(client, admin, new_key):
    pid = make_project(client, admin)["id"]
    other = make_project(client, admin, name="other")["id"]
    arr = stripes_mask(W, H, (0, 1))
    iid = upload_ok(client, admin, pid, image_bytes(seed=2), tags="cat", mask=mask_bytes(arr))["id"]
    mid = int(client.get(f"/v1/images/{iid}/mask", headers=admin).headers["x-mask-id"])

    r = client.get(f"/v1/masks/{mid}/file", headers=admin)
    assert r.status_code == 200 and r.headers["x-mask-source"] == "human"
    np.testing.assert_array_equal(_png(r.content), arr)
    none = client.get(f"/v1/masks/{mid}/confidence", headers=admin)
    assert none.status_code == 404 and none.json()["error"]["code"] == "not_found"

    outsider = bearer(new_key("viewer", other))
    for tail in ("file", "confidence"):
        hidden = client.get(f"/v1/masks/{mid}/{tail}", headers=outsider)
        assert hidden.status_code == 404, hidden.text
    assert client.get(f"/v1/masks/{mid + 1000}/file", headers=admin).status_code == 404
    assert client.get(f"/v1/masks/{mid}/file").status_code == 401
