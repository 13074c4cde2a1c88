"""Masks: set the human mask, fetch it as PNG / COCO RLE / overlay, best-mask choice,
confidence maps."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from pycocotools import mask as coco_mask

from app.imaging import decode_png_array, hex_to_rgb
from app.tables import Mask
from tests.fixtures.build import (
    add_pseudo_mask,
    blob_files,
    count_rows,
    image_bytes,
    make_project,
    mask_bytes,
    palette_mask_bytes,
    put_mask,
    upload_ok,
)

W, H = 32, 24
# pycocotools' decode trips a NumPy 2 deprecation inside its own code
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def blocks_mask() -> np.ndarray:
    """Every class of a 3-class project plus background and ignore, in blocks."""
    m = np.zeros((H, W), np.uint8)
    m[:12, 8:16] = 1
    m[12:, 16:24] = 2
    m[4:20, 24:] = 3
    m[:4, :4] = 255
    return m


@pytest.fixture
def project(client, admin):
    return make_project(client, admin)  # cat=1, dog=2, bird=3


@pytest.fixture
def image(client, admin, project):
    return upload_ok(client, admin, project["id"], image_bytes(W, H, seed=3), tags="cat")


class TestPutMask:
    def test_returns_mask_json(self, client, admin, image):
        r = put_mask(client, admin, image["id"], mask_bytes(blocks_mask()))
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) >= {"id", "image_id", "source", "review_state", "created_at"}
        assert body["image_id"] == image["id"] and body["source"] == "human"
        assert body["review_state"] == "accepted"
        meta = client.get(f"/v1/images/{image['id']}", headers=admin).json()
        assert meta["has_human_mask"] is True

    def test_png_round_trips_pixels(self, client, admin, image):
        m = blocks_mask()
        put_mask(client, admin, image["id"], mask_bytes(m))
        r = client.get(f"/v1/images/{image['id']}/mask", headers=admin)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        got = PILImage.open(io.BytesIO(r.content))
        assert got.mode == "L" and got.size == (W, H)
        assert np.array_equal(np.array(got), m)

    def test_palette_png_values_are_indices(self, client, admin, image):
        m = blocks_mask()
        data = palette_mask_bytes(m)
        assert PILImage.open(io.BytesIO(data)).mode == "P"
        r = put_mask(client, admin, image["id"], data)
        assert r.status_code == 200, r.text
        got = client.get(f"/v1/images/{image['id']}/mask", headers=admin)
        assert np.array_equal(decode_png_array(got.content), m)

    def test_put_replaces_previous_human_mask(self, client, admin, image, settings):
        first, second = blocks_mask(), np.zeros((H, W), np.uint8)
        second[5:10, 5:10] = 2
        put_mask(client, admin, image["id"], mask_bytes(first))
        blobs_after_first = set(blob_files(settings))
        m2 = put_mask(client, admin, image["id"], mask_bytes(second)).json()
        got = client.get(f"/v1/images/{image['id']}/mask?source=human", headers=admin)
        assert np.array_equal(decode_png_array(got.content), second)
        assert got.headers["x-mask-id"] == str(m2["id"])
        assert count_rows(settings, Mask) == 1
        blobs_now = set(blob_files(settings))
        # the old mask's blob is gone, the new one is there, the image blob stays
        assert len(blobs_now) == len(blobs_after_first)
        assert blobs_now != blobs_after_first

    def test_put_keeps_old_blob_used_by_another_image(
        self, client, admin, project, image, settings
    ):
        shared = blocks_mask()
        other = upload_ok(client, admin, project["id"], image_bytes(W, H, seed=4))
        put_mask(client, admin, image["id"], mask_bytes(shared))
        put_mask(client, admin, other["id"], mask_bytes(shared))
        n = len(blob_files(settings))
        put_mask(client, admin, image["id"], mask_bytes(np.zeros((H, W), np.uint8)))
        assert len(blob_files(settings)) == n + 1  # new blob added, shared one kept
        r = client.get(f"/v1/images/{other['id']}/mask", headers=admin)
        assert r.status_code == 200 and np.array_equal(decode_png_array(r.content), shared)

    def test_same_mask_twice_keeps_its_blob(self, client, admin, image, settings):
        m = blocks_mask()
        put_mask(client, admin, image["id"], mask_bytes(m))
        put_mask(client, admin, image["id"], mask_bytes(m))
        r = client.get(f"/v1/images/{image['id']}/mask", headers=admin)
        assert r.status_code == 200 and np.array_equal(decode_png_array(r.content), m)
        assert len(blob_files(settings)) == 2

    def test_unknown_image(self, client, admin):
        r = put_mask(client, admin, 99999, mask_bytes(blocks_mask()))
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


class TestRle:
    def test_every_class_decodes_to_the_mask(self, client, admin, image):
        m = blocks_mask()
        put_mask(client, admin, image["id"], mask_bytes(m))
        r = client.get(f"/v1/images/{image['id']}/mask?format=rle", headers=admin)
        assert r.status_code == 200
        body = r.json()
        assert (body["width"], body["height"]) == (W, H)
        by_index = {c["index"]: c for c in body["classes"]}
        assert sorted(by_index) == [0, 1, 2, 3]  # 255 (ignore) is not a class
        names = {0: "background", 1: "cat", 2: "dog", 3: "bird"}
        for idx, c in by_index.items():
            assert c["name"] == names[idx]
            assert isinstance(c["rle"]["counts"], str) and c["rle"]["size"] == [H, W]
            decoded = coco_mask.decode(
                {"size": c["rle"]["size"], "counts": c["rle"]["counts"].encode()}
            )
            assert np.array_equal(decoded, (m == idx).astype(np.uint8)), idx

    def test_etag_and_304(self, client, admin, image):
        put_mask(client, admin, image["id"], mask_bytes(blocks_mask()))
        url = f"/v1/images/{image['id']}/mask?format=rle"
        etag = client.get(url, headers=admin).headers["etag"]
        assert client.get(url, headers={**admin, "If-None-Match": etag}).status_code == 304


class TestOverlay:
    def test_overlay_paints_labelled_pixels(self, client, admin, project, image):
        m = blocks_mask()
        put_mask(client, admin, image["id"], mask_bytes(m))
        r = client.get(f"/v1/images/{image['id']}/mask?format=overlay", headers=admin)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        ov = PILImage.open(io.BytesIO(r.content))
        assert ov.mode == "RGB" and ov.size == (W, H)
        out = np.array(ov).astype(int)
        orig = np.array(PILImage.open(io.BytesIO(image_bytes(W, H, seed=3))).convert("RGB"))
        orig = orig.astype(int)
        painted = (m >= 1) & (m <= 3)
        assert np.all(np.any(out[painted] != orig[painted], axis=-1))
        assert np.array_equal(out[~painted], orig[~painted])  # background and ignore untouched
        # painted pixels move towards their class colour
        colors = {c["index"]: np.array(hex_to_rgb(c["color"])) for c in project["categories"]}
        for idx, color in colors.items():
            sel = m == idx
            before = np.abs(orig[sel] - color).sum()
            after = np.abs(out[sel] - color).sum()
            assert after < before, idx

    def test_overlay_etag_changes_with_colour(self, client, admin, project, image):
        put_mask(client, admin, image["id"], mask_bytes(blocks_mask()))
        url = f"/v1/images/{image['id']}/mask?format=overlay"
        etag = client.get(url, headers=admin).headers["etag"]
        assert client.get(url, headers={**admin, "If-None-Match": etag}).status_code == 304


class TestSources:
    def test_best_returns_human_over_pseudo(self, client, admin, image, settings):
        human = blocks_mask()
        pseudo = np.full((H, W), 2, np.uint8)
        add_pseudo_mask(settings, image["id"], pseudo, review_state="accepted")
        put_mask(client, admin, image["id"], mask_bytes(human))
        r = client.get(f"/v1/images/{image['id']}/mask?source=best", headers=admin)
        assert r.status_code == 200 and r.headers["x-mask-source"] == "human"
        assert np.array_equal(decode_png_array(r.content), human)
        r = client.get(f"/v1/images/{image['id']}/mask?source=pseudo", headers=admin)
        assert r.headers["x-mask-source"] == "pseudo"
        assert np.array_equal(decode_png_array(r.content), pseudo)

    def test_best_prefers_accepted_pseudo_over_later_pending(self, client, admin, image, settings):
        accepted = np.full((H, W), 1, np.uint8)
        later = np.full((H, W), 3, np.uint8)
        acc_id = add_pseudo_mask(settings, image["id"], accepted, review_state="accepted")
        later_id = add_pseudo_mask(settings, image["id"], later, review_state="pending")
        assert later_id > acc_id
        r = client.get(f"/v1/images/{image['id']}/mask", headers=admin)
        assert r.headers["x-mask-id"] == str(acc_id)
        assert np.array_equal(decode_png_array(r.content), accepted)

    def test_best_falls_back_to_latest_pseudo(self, client, admin, image, settings):
        add_pseudo_mask(settings, image["id"], np.full((H, W), 1, np.uint8))
        latest = add_pseudo_mask(settings, image["id"], np.full((H, W), 2, np.uint8))
        r = client.get(f"/v1/images/{image['id']}/mask", headers=admin)
        assert r.status_code == 200 and r.headers["x-mask-id"] == str(latest)
        meta = client.get(f"/v1/images/{image['id']}", headers=admin).json()
        assert meta["has_pseudo_mask"] is True and meta["has_human_mask"] is False

    def test_pseudo_without_pseudo_is_not_found(self, client, admin, image):
        put_mask(client, admin, image["id"], mask_bytes(blocks_mask()))
        r = client.get(f"/v1/images/{image['id']}/mask?source=pseudo", headers=admin)
        assert r.status_code == 404
        err = r.json()["error"]
        assert err["code"] == "not_found" and "no pseudo-mask" in err["message"]

    def test_best_without_any_mask_is_not_found(self, client, admin, image):
        r = client.get(f"/v1/images/{image['id']}/mask", headers=admin)
        assert r.status_code == 404
        err = r.json()["error"]
        assert err["code"] == "not_found" and "no mask" in err["message"]

    def test_human_without_human_is_not_found(self, client, admin, image, settings):
        add_pseudo_mask(settings, image["id"], np.zeros((H, W), np.uint8))
        r = client.get(f"/v1/images/{image['id']}/mask?source=human", headers=admin)
        assert r.status_code == 404
        err = r.json()["error"]
        assert err["code"] == "not_found" and "no human mask" in err["message"]

    @pytest.mark.parametrize("query", ["source=worst", "format=jpeg"])
    def test_bad_query_is_validation_error(self, client, admin, image, query):
        r = client.get(f"/v1/images/{image['id']}/mask?{query}", headers=admin)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


class TestConfidence:
    def test_returns_latest_pseudo_confidence(self, client, admin, image, settings):
        add_pseudo_mask(
            settings, image["id"], np.ones((H, W), np.uint8), np.full((H, W), 5, np.uint8)
        )
        conf = np.tile(np.arange(W, dtype=np.uint8) * 8, (H, 1))
        mid = add_pseudo_mask(settings, image["id"], np.ones((H, W), np.uint8), conf)
        r = client.get(f"/v1/images/{image['id']}/confidence", headers=admin)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.headers["x-mask-id"] == str(mid)
        assert np.array_equal(decode_png_array(r.content), conf)

    def test_no_pseudo_is_not_found(self, client, admin, image):
        put_mask(client, admin, image["id"], mask_bytes(blocks_mask()))
        r = client.get(f"/v1/images/{image['id']}/confidence", headers=admin)
        assert r.status_code == 404
        err = r.json()["error"]
        assert err["code"] == "not_found" and "no pseudo-mask" in err["message"]
