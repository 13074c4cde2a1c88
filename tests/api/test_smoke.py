"""The shortest path through the API: project, upload with mask, fetch the mask back."""

import numpy as np

from tests.fixtures.build import image_bytes, make_project, mask_bytes, stripes_mask, upload


def test_upload_and_fetch_mask(client, admin):
    project = make_project(client, admin)
    mask = stripes_mask(32, 24, (0, 1, 2))
    r = upload(client, admin, project["id"], image_bytes(), tags="cat,dog", mask=mask_bytes(mask))
    assert r.status_code == 201, r.text
    image = r.json()
    assert image["tags"] == ["cat", "dog"] and image["has_human_mask"] is True
    got = client.get(f"/v1/images/{image['id']}/mask", headers=admin)
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    from app.imaging import decode_png_array

    assert np.array_equal(decode_png_array(got.content), mask)
