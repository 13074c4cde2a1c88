"""Bad input: every case answers its stable error code with a useful message, and leaves
nothing behind (no image or mask row, no blob file)."""

import io
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import uvicorn
from PIL import Image as PILImage

from app.main import create_app
from app.tables import Image, Mask
from tests.fixtures.build import (
    batch_upload,
    blob_files,
    count_rows,
    image_bytes,
    list_all_images,
    make_project,
    mask_bytes,
    png_declaring_size,
    put_mask,
    stripes_mask,
    upload,
    upload_ok,
)

W, H = 32, 24


@pytest.fixture
def project(client, admin):
    return make_project(client, admin)  # cat=1, dog=2, bird=3


class Snapshot:
    """What the API and the blob dir hold before a bad request; `unchanged` checks after."""

    def __init__(self, client, headers, settings, project_id: int) -> None:
        self.client, self.headers, self.settings, self.pid = client, headers, settings, project_id
        self.images = self._images()
        self.rows = (count_rows(settings, Image), count_rows(settings, Mask))
        self.blobs = blob_files(settings)

    def _images(self) -> list[tuple[int, bool, bool, tuple[str, ...]]]:
        return [
            (i["id"], i["has_human_mask"], i["has_pseudo_mask"], tuple(i["tags"]))
            for i in list_all_images(self.client, self.headers, self.pid)
        ]

    def assert_unchanged(self) -> None:
        assert self._images() == self.images
        assert (count_rows(self.settings, Image), count_rows(self.settings, Mask)) == self.rows
        assert blob_files(self.settings) == self.blobs


@pytest.fixture
def snapshot(client, admin, settings, project):
    return lambda: Snapshot(client, admin, settings, project["id"])


def assert_error(r, status: int, code: str, *words: str) -> dict:
    """The contract's JSON error body with `code`, and a message mentioning `words`."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and len(err["message"]) > 10
    for w in words:
        assert w.lower() in err["message"].lower(), (w, err["message"])
    return err


def png(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(arr, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def encoded(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


class TestBadImages:
    def test_not_an_image(self, client, admin, project, snapshot):
        before = snapshot()
        r = upload(client, admin, project["id"], b"this is plain text, not pixels", tags="cat")
        assert_error(r, 422, "invalid_image", "not a readable image")
        before.assert_unchanged()

    def test_empty_file(self, client, admin, project, snapshot):
        before = snapshot()
        assert_error(upload(client, admin, project["id"], b""), 422, "invalid_image")
        before.assert_unchanged()

    @pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
    def test_truncated(self, client, admin, project, snapshot, fmt):
        whole = image_bytes(64, 48, seed=1, fmt=fmt)
        before = snapshot()
        r = upload(client, admin, project["id"], whole[: len(whole) // 2])
        assert_error(r, 422, "invalid_image", "could not be decoded")
        before.assert_unchanged()

    def test_format_not_accepted(self, client, admin, project, snapshot):
        gif = encoded(np.zeros((H, W), np.uint8), "GIF")
        before = snapshot()
        err = assert_error(upload(client, admin, project["id"], gif), 422, "invalid_image", "GIF")
        assert "PNG" in err["detail"]["accepted"]
        before.assert_unchanged()

    def test_decompression_bomb_header(self, client, admin, project, snapshot):
        bomb = png_declaring_size(100_000, 100_000)
        assert len(bomb) < 200
        before = snapshot()
        err = assert_error(
            upload(client, admin, project["id"], bomb), 422, "image_too_large", "limit"
        )
        assert err["detail"]["width"] == 100_000 and err["detail"]["height"] == 100_000
        before.assert_unchanged()

    def test_pixel_limit_from_settings(self, make_client, admin, project, snapshot):
        small = make_client(max_image_pixels=W * H - 1)
        before = snapshot()
        r = upload(small, admin, project["id"], image_bytes(W, H))
        err = assert_error(r, 422, "image_too_large")
        assert err["detail"]["max_pixels"] == W * H - 1
        before.assert_unchanged()
        ok = make_client(max_image_pixels=W * H)
        assert upload(ok, admin, project["id"], image_bytes(W, H)).status_code == 201

    def test_unknown_tag(self, client, admin, project, snapshot):
        before = snapshot()
        r = upload(client, admin, project["id"], image_bytes(), tags="cat,zebra,yak")
        err = assert_error(r, 422, "unknown_tag", "zebra")
        assert err["detail"]["unknown"] == ["yak", "zebra"]
        assert err["detail"]["known"] == ["bird", "cat", "dog"]
        before.assert_unchanged()

    def test_unknown_project(self, client, admin, snapshot):
        before = snapshot()
        r = upload(client, admin, 999999, image_bytes())
        assert_error(r, 404, "not_found", "999999")
        before.assert_unchanged()


def _rgb() -> bytes:
    return png(np.zeros((H, W, 3), np.uint8))


def _rgba() -> bytes:
    return png(np.zeros((H, W, 4), np.uint8))


def _gray16() -> bytes:
    return png(np.ones((H, W), np.uint16))


def _one_bit() -> bytes:
    return png(np.zeros((H, W), bool), mode="1")


BAD_MODE_MASKS = {"rgb": _rgb, "rgba": _rgba, "16-bit": _gray16, "1-bit": _one_bit}


class TestBadMasks:
    """Each bad mask, once on upload with the image and once on PUT /mask."""

    @pytest.fixture
    def image(self, client, admin, project):
        return upload_ok(client, admin, project["id"], image_bytes(W, H, seed=5), tags="cat")

    def _check_both(self, client, admin, project, snapshot, image, mask, code, *words):
        before = snapshot()
        r = upload(client, admin, project["id"], image_bytes(W, H, seed=6), tags="dog", mask=mask)
        err = assert_error(r, 422, code, *words)
        before.assert_unchanged()
        r = put_mask(client, admin, image["id"], mask)
        assert assert_error(r, 422, code, *words) == err
        before.assert_unchanged()
        return err

    def test_size_mismatch(self, client, admin, project, snapshot, image):
        mask = mask_bytes(stripes_mask(W + 1, H, (0, 1)))
        err = self._check_both(
            client, admin, project, snapshot, image, mask, "mask_size_mismatch", "33x24", "32x24"
        )
        assert err["detail"] == {"mask": [W + 1, H], "image": [W, H]}

    @pytest.mark.parametrize("kind", list(BAD_MODE_MASKS))
    def test_not_single_channel_8_bit(self, client, admin, project, snapshot, image, kind):
        mask = BAD_MODE_MASKS[kind]()
        err = self._check_both(
            client, admin, project, snapshot, image, mask, "invalid_mask", "single-channel"
        )
        assert err["detail"]["mode"] not in ("L", "P")

    @pytest.mark.parametrize("fmt", ["JPEG", "BMP", "TIFF"])
    def test_not_png(self, client, admin, project, snapshot, image, fmt):
        mask = encoded(np.zeros((H, W), np.uint8), fmt)
        self._check_both(client, admin, project, snapshot, image, mask, "invalid_mask", "PNG", fmt)

    def test_not_an_image(self, client, admin, project, snapshot, image):
        self._check_both(
            client, admin, project, snapshot, image, b"\x89PNG garbage", "invalid_mask"
        )

    def test_truncated_png(self, client, admin, project, snapshot, image):
        whole = png(np.random.default_rng(0).integers(0, 2, (H, W), dtype=np.uint8))
        self._check_both(
            client, admin, project, snapshot, image, whole[: len(whole) // 2], "invalid_mask"
        )

    def test_mask_bomb(self, client, admin, project, snapshot, image):
        bomb = png_declaring_size(100_000, 100_000)
        self._check_both(client, admin, project, snapshot, image, bomb, "image_too_large")

    def test_unknown_class_index(self, client, admin, project, snapshot, image):
        mask = mask_bytes(stripes_mask(W, H, (0, 1, 4, 200, 255)))
        err = self._check_both(
            client, admin, project, snapshot, image, mask, "unknown_class_index", "4"
        )
        assert err["detail"] == {"unknown": [4, 200], "max_class_index": 3}

    def test_background_ignore_and_top_class_are_accepted(self, client, admin, project, image):
        arr = stripes_mask(W, H, (0, 3, 255))
        r = upload(client, admin, project["id"], image_bytes(W, H, seed=7), mask=mask_bytes(arr))
        assert r.status_code == 201, r.text
        assert put_mask(client, admin, image["id"], mask_bytes(arr)).status_code == 200
        for iid in (r.json()["id"], image["id"]):
            got = client.get(f"/v1/images/{iid}/mask", headers=admin)
            assert np.array_equal(np.array(PILImage.open(io.BytesIO(got.content))), arr)

    def test_put_mask_on_unknown_image(self, client, admin, snapshot):
        before = snapshot()
        r = put_mask(client, admin, 999999, mask_bytes(np.zeros((H, W))))
        assert_error(r, 404, "not_found", "999999")
        before.assert_unchanged()


class TestUploadLimit:
    def test_content_length_over_limit(self, make_client, admin, project, snapshot):
        small = make_client(max_upload_bytes=10_000)
        big = image_bytes(100, 100, seed=1)
        assert len(big) > 10_000
        before = snapshot()
        r = upload(small, admin, project["id"], big)
        err = assert_error(r, 413, "payload_too_large", "10000")
        assert err["detail"] == {"max_bytes": 10_000}
        before.assert_unchanged()
        # the same app still takes a small upload
        assert upload(small, admin, project["id"], image_bytes(8, 8)).status_code == 201

    def test_streamed_body_is_cut_off(self, make_settings, admin, project, snapshot):
        """A chunked body (no Content-Length) gets a 413 long before it has all been sent."""
        import httpx

        limit, chunk, total = 64_000, 64 * 1024, 2_000  # would send ~130 MB
        app = create_app(make_settings(max_upload_bytes=limit))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.01)
            before = snapshot()
            sent = 0

            def body() -> Iterator[bytes]:
                nonlocal sent
                yield (
                    b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; '
                    b'filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
                )
                for _ in range(total):
                    sent += 1
                    yield b"\x00" * chunk
                yield b"\r\n--BOUNDARY--\r\n"

            r = httpx.post(
                f"http://127.0.0.1:{port}/v1/projects/{project['id']}/images",
                content=body(),
                headers={**admin, "Content-Type": "multipart/form-data; boundary=BOUNDARY"},
                timeout=30,
            )
            assert "content-length" not in r.request.headers
            assert r.request.headers["transfer-encoding"] == "chunked"
            err = assert_error(r, 413, "payload_too_large")
            assert err["detail"] == {"max_bytes": limit}
            assert sent < total // 10, f"the server read {sent} of {total} chunks"
            before.assert_unchanged()
        finally:
            server.should_exit = True
            thread.join(timeout=10)


class TestBatchManifest:
    def test_malformed_manifest(self, client, admin, project, snapshot):
        before = snapshot()
        r = batch_upload(client, admin, project["id"], {"a.png": image_bytes()}, "{oops")
        err = assert_error(r, 422, "validation_error", "manifest", "JSON")
        assert err["detail"] == {"field": "manifest"}
        before.assert_unchanged()

    def test_two_files_with_one_name(self, client, admin, project, snapshot):
        before = snapshot()
        r = client.post(
            f"/v1/projects/{project['id']}/images/batch",
            files=[
                ("files", ("a.png", image_bytes(seed=1), "image/png")),
                ("files", ("a.png", image_bytes(seed=2), "image/png")),
            ],
            data={"manifest": '{"a.png": {}}'},
            headers=admin,
        )
        assert_error(r, 422, "validation_error", "a.png")
        before.assert_unchanged()


class TestGenericErrors:
    def test_unknown_image(self, client, admin):
        for path in ("", "/file", "/mask", "/confidence"):
            assert_error(client.get(f"/v1/images/777777{path}", headers=admin), 404, "not_found")

    def test_unknown_route_is_json(self, client, admin):
        r = client.get("/v1/nothing/here", headers=admin)
        assert_error(r, 404, "not_found", "route")

    def test_wrong_method_is_json(self, client, admin):
        r = client.patch("/v1/projects", headers=admin)
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"

    def test_non_integer_id(self, client, admin):
        r = client.get("/v1/images/abc", headers=admin)
        err = assert_error(r, 422, "validation_error")
        assert err["detail"][0]["loc"] == ["path", "image_id"]

    def test_missing_file_field(self, client, admin, project, snapshot):
        before = snapshot()
        r = client.post(f"/v1/projects/{project['id']}/images", data={"tags": "cat"}, headers=admin)
        err = assert_error(r, 422, "validation_error")
        assert ["body", "file"] in [d["loc"] for d in err["detail"]]
        before.assert_unchanged()

    def test_body_not_json(self, client, admin):
        r = client.post(
            "/v1/projects",
            content=b"{name",
            headers={**admin, "Content-Type": "application/json"},
        )
        assert_error(r, 422, "validation_error")

    def test_unknown_field_in_body(self, client, admin):
        r = client.post("/v1/projects", json={"name": "x", "owner": "me"}, headers=admin)
        err = assert_error(r, 422, "validation_error")
        assert any(d["loc"][-1] == "owner" for d in err["detail"])

    def test_unhandled_error_hides_the_traceback(self, client, admin, project, settings):
        """A blob lost from disk under a live row is a server fault: 500, no internals."""
        img = upload_ok(client, admin, project["id"], image_bytes(seed=9))
        for f in blob_files(settings):
            (settings.blob_dir / f).unlink()
        r = client.get(f"/v1/images/{img['id']}/file", headers=admin)
        err = assert_error(r, 500, "internal_error")
        assert len(err["detail"]["request_id"]) == 12
        for leak in ("Traceback", 'File "', "BlobNotFound", "KeyError", str(settings.blob_dir)):
            assert leak not in r.text
