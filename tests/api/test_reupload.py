"""Re-uploads merge their tags and mask (or answer 409), and a mask's painted categories
become tags: single upload, batch upload, PUT mask and the correction route."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from tests.api.test_errors import Snapshot, assert_error
from tests.fixtures.build import (
    add_pseudo_mask,
    batch_upload,
    image_bytes,
    make_project,
    mask_bytes,
    put_mask,
    stripes_mask,
    upload,
    upload_ok,
)

W, H = 32, 24


@pytest.fixture
def project(client, admin):
    return make_project(client, admin)  # cat=1, dog=2, bird=3


def human_mask(client, admin, image_id: int) -> np.ndarray:
    r = client.get(f"/v1/images/{image_id}/mask?source=human", headers=admin)
    assert r.status_code == 200, r.text
    return np.array(PILImage.open(io.BytesIO(r.content)))


def tags_of(client, admin, image_id: int) -> list[str]:
    return client.get(f"/v1/images/{image_id}", headers=admin).json()["tags"]


class TestSingleUpload:
    def test_new_tags_are_merged(self, client, admin, project):
        data = image_bytes(seed=1)
        first = upload_ok(client, admin, project["id"], data, tags="cat")
        again = upload(client, admin, project["id"], data, tags="bird,cat")
        assert again.status_code == 200, again.text
        assert again.json()["id"] == first["id"] and again.json()["tags"] == ["cat", "bird"]
        assert tags_of(client, admin, first["id"]) == ["cat", "bird"]

    def test_same_tags_again_changes_nothing(self, client, admin, project, settings):
        data = image_bytes(seed=1)
        first = upload_ok(client, admin, project["id"], data, tags="cat,dog")
        before = Snapshot(client, admin, settings, project["id"])
        again = upload(client, admin, project["id"], data, tags="dog")
        assert again.status_code == 200 and again.json() == first
        before.assert_unchanged()

    def test_mask_is_added_when_the_image_has_none(self, client, admin, project):
        data = image_bytes(seed=2)
        first = upload_ok(client, admin, project["id"], data, tags="cat")
        arr = stripes_mask(W, H, (0, 1, 255))
        again = upload(client, admin, project["id"], data, mask=mask_bytes(arr))
        assert again.status_code == 200, again.text
        body = again.json()
        assert body["id"] == first["id"] and body["has_human_mask"] is True
        assert np.array_equal(human_mask(client, admin, first["id"]), arr)

    @pytest.mark.parametrize(
        ("mask", "code"),
        [
            (mask_bytes(stripes_mask(16, 16, (0, 1))), "mask_size_mismatch"),
            (mask_bytes(stripes_mask(W, H, (0, 9))), "unknown_class_index"),
            (b"not a png", "invalid_mask"),
        ],
    )
    def test_invalid_mask_is_refused_as_on_a_first_upload(
        self, client, admin, project, settings, mask, code
    ):
        data = image_bytes(seed=3)
        upload_ok(client, admin, project["id"], data, tags="cat")
        before = Snapshot(client, admin, settings, project["id"])
        r = upload(client, admin, project["id"], data, tags="dog", mask=mask)
        assert_error(r, 422, code)
        first = upload(client, admin, project["id"], image_bytes(seed=4), mask=mask)
        assert first.status_code == 422 and first.json()["error"]["code"] == code
        before.assert_unchanged()  # not even the new tag

    def test_a_different_mask_is_a_conflict(self, client, admin, project, settings):
        data = image_bytes(seed=5)
        old = stripes_mask(W, H, (0, 1))
        first = upload_ok(client, admin, project["id"], data, tags="cat", mask=mask_bytes(old))
        before = Snapshot(client, admin, settings, project["id"])
        new = mask_bytes(stripes_mask(W, H, (1, 0)))
        r = upload(client, admin, project["id"], data, tags="dog", mask=new)
        err = assert_error(r, 409, "conflict", "human mask")
        assert err["detail"]["image_id"] == first["id"] and err["detail"]["differs"] == ["mask"]
        assert isinstance(err["detail"]["human_mask_id"], int)
        before.assert_unchanged()
        assert np.array_equal(human_mask(client, admin, first["id"]), old)

    def test_the_same_mask_again_is_fine(self, client, admin, project, settings):
        data = image_bytes(seed=6)
        mask = mask_bytes(stripes_mask(W, H, (0, 2)))
        first = upload_ok(client, admin, project["id"], data, tags="dog", mask=mask)
        before = Snapshot(client, admin, settings, project["id"])
        # The same classes in a palette PNG: other bytes, the same mask.
        pal = PILImage.open(io.BytesIO(mask)).convert("P")
        buf = io.BytesIO()
        pal.save(buf, format="PNG")
        r = upload(client, admin, project["id"], data, tags="dog", mask=buf.getvalue())
        assert r.status_code == 200 and r.json() == first
        before.assert_unchanged()


class TestPaintedCategoriesBecomeTags:
    def test_first_upload(self, client, admin, project):
        arr = stripes_mask(W, H, (0, 2, 3, 255))  # dog, bird
        img = upload_ok(client, admin, project["id"], image_bytes(seed=7), "cat", mask_bytes(arr))
        assert img["tags"] == ["cat", "dog", "bird"]
        assert tags_of(client, admin, img["id"]) == ["cat", "dog", "bird"]

    def test_background_and_unlabeled_add_nothing(self, client, admin, project):
        arr = stripes_mask(W, H, (0, 255))
        img = upload_ok(client, admin, project["id"], image_bytes(seed=8), mask=mask_bytes(arr))
        assert img["tags"] == []

    def test_put_mask(self, client, admin, project):
        img = upload_ok(client, admin, project["id"], image_bytes(seed=9), tags="cat")
        r = put_mask(client, admin, img["id"], mask_bytes(stripes_mask(W, H, (1, 3))))
        assert r.status_code == 200, r.text
        assert tags_of(client, admin, img["id"]) == ["cat", "bird"]

    def test_correction(self, client, admin, project, settings):
        img = upload_ok(client, admin, project["id"], image_bytes(seed=10), tags="dog")
        mid = add_pseudo_mask(settings, img["id"], stripes_mask(W, H, (0, 2)))
        r = client.post(
            f"/v1/masks/{mid}/correction",
            files={"file": ("m.png", mask_bytes(stripes_mask(W, H, (1, 2))), "image/png")},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        assert tags_of(client, admin, img["id"]) == ["cat", "dog"]


class TestBatch:
    def test_reupload_merges_and_conflicts_per_item(self, client, admin, project, settings):
        a, b = image_bytes(seed=11), image_bytes(seed=12)
        ia = upload_ok(client, admin, project["id"], a, tags="cat")
        ib = upload_ok(client, admin, project["id"], b, mask=mask_bytes(stripes_mask(W, H, (0,))))
        files = {
            "a.png": a,
            "b.png": b,
            "a_mask.png": mask_bytes(stripes_mask(W, H, (0, 2))),
            "b_mask.png": mask_bytes(stripes_mask(W, H, (0, 1))),
        }
        manifest = {
            "a.png": {"tags": ["bird"], "mask": "a_mask.png"},
            "b.png": {"tags": ["dog"], "mask": "b_mask.png"},
        }
        r = batch_upload(client, admin, project["id"], files, manifest)
        assert r.status_code == 200, r.text
        items = {i["filename"]: i for i in r.json()["items"]}
        assert items["a.png"]["status"] == "exists"
        assert items["a.png"]["image"]["id"] == ia["id"]
        assert items["a.png"]["image"]["tags"] == ["cat", "dog", "bird"]
        assert items["a.png"]["image"]["has_human_mask"] is True
        assert items["b.png"]["status"] == "error"
        assert items["b.png"]["error"]["code"] == "conflict"
        assert items["b.png"]["error"]["detail"]["differs"] == ["mask"]
        assert tags_of(client, admin, ib["id"]) == []  # the refused item left nothing
