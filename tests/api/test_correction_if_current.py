"""POST /v1/masks/{id}/correction?if_current=true: 409 for a superseded mask (opt-in)."""

from __future__ import annotations

from tests.fixtures.build import image_bytes, make_project, mask_bytes, stripes_mask, upload_ok
from tests.fixtures.pseudo import finished_pipeline_job

W, H = 32, 24


def correct(client, headers, mask_id: int, arr, **params):
    return client.post(
        f"/v1/masks/{mask_id}/correction",
        params=params,
        files={"file": ("m.png", mask_bytes(arr), "image/png")},
        headers=headers,
    )


def test_if_current_refuses_a_superseded_mask_and_changes_nothing(client, admin, settings):
    pid = make_project(client, admin)["id"]
    iid = upload_ok(client, admin, pid, image_bytes(seed=5), tags="cat")["id"]
    finished_pipeline_job(settings, pid, [iid], [stripes_mask(W, H, (0, 1))], [0.3])
    old = int(client.get(f"/v1/images/{iid}/mask", headers=admin).headers["x-mask-id"])
    finished_pipeline_job(settings, pid, [iid], [stripes_mask(W, H, (1, 0))], [0.6])
    fix = stripes_mask(W, H, (2, 1))

    r = correct(client, admin, old, fix, if_current="true")
    assert r.status_code == 409, r.text
    body = r.json()["error"]
    assert body["code"] == "conflict" and body["detail"] == {"mask_id": old}
    assert client.get(f"/v1/images/{iid}/mask?source=human", headers=admin).status_code == 404

    # Without it, the contract stands: the correction replaces, whatever superseded the mask.
    r = correct(client, admin, old, fix)
    assert r.status_code == 201 and r.json()["corrected_from_id"] == old


def test_if_current_accepts_the_current_mask(client, admin, settings):
    pid = make_project(client, admin)["id"]
    iid = upload_ok(client, admin, pid, image_bytes(seed=6), tags="cat")["id"]
    finished_pipeline_job(settings, pid, [iid], [stripes_mask(W, H, (0, 1))], [0.3])
    mid = int(client.get(f"/v1/images/{iid}/mask", headers=admin).headers["x-mask-id"])
    r = correct(client, admin, mid, stripes_mask(W, H, (1, 1)), if_current="true")
    assert r.status_code == 201 and r.json()["corrected_from_id"] == mid
    # A second correction of the same mask: the first one's human mask superseded it.
    again = correct(client, admin, mid, stripes_mask(W, H, (1, 0)), if_current="true")
    assert again.status_code == 409, again.text
