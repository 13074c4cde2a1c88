"""Signed URLs: image and mask bytes without an API key, until they expire; exports use them."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest

from app.imaging import decode_png_array
from app.signing import UrlSigner
from tests.fixtures.build import (
    add_pseudo_mask,
    image_bytes,
    make_project,
    mask_bytes,
    stripes_mask,
    upload_ok,
)
from tests.worker.conftest import poll_job


@pytest.fixture
def image(client, admin):
    pid = make_project(client, admin, name="signed")["id"]
    data = image_bytes(32, 24, seed=3)
    im = upload_ok(client, admin, pid, data, tags="cat", mask=mask_bytes(stripes_mask()))
    return {**im, "bytes": data}


def _local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _signer(client) -> UrlSigner:
    return client.app.state.signer


def test_signed_image_url_needs_no_key(client, image):
    signer = _signer(client)
    url = signer.image_file(image["id"], exp=signer.expiry())
    r = client.get(url)
    assert r.status_code == 200 and r.content == image["bytes"]


def test_signed_mask_url(client, image):
    signer = _signer(client)
    r = client.get(signer.mask_png(image["id"], "best", exp=signer.expiry()))
    assert r.status_code == 200
    np.testing.assert_array_equal(decode_png_array(r.content), stripes_mask())


@pytest.mark.parametrize(
    "tamper",
    [
        lambda q: {**q, "sig": q["sig"][:-2] + ("AA" if q["sig"][-2:] != "AA" else "BB")},
        lambda q: {**q, "exp": str(int(q["exp"]) + 1)},
        lambda q: {**q, "exp": "soon"},
        lambda q: {**q, "source": "pseudo"},  # another resource than the one signed
    ],
    ids=["bad-sig", "moved-expiry", "malformed-expiry", "other-query"],
)
def test_tampered_signature_is_403_json(client, image, tamper):
    signer = _signer(client)
    url = signer.mask_png(image["id"], "best", exp=signer.expiry())
    path, query = url.split("?")
    r = client.get(path, params=tamper(dict(parse_qsl(query))))
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["code"] == "invalid_signature" and err["message"]


def test_signature_of_another_image_is_403(client, admin, image):
    signer = _signer(client)
    other = upload_ok(client, admin, image["project_id"], image_bytes(16, 16, seed=9), tags="dog")
    query = signer.image_file(image["id"], exp=signer.expiry()).split("?")[1]
    r = client.get(f"/v1/images/{other['id']}/file?{query}")
    assert r.status_code == 403 and r.json()["error"]["detail"]["reason"] == "bad_signature"


def test_expired_url_is_403_but_a_key_still_works(client, admin, image):
    signer = _signer(client)
    url = signer.image_file(image["id"], exp=int(time.time()) - 1)
    r = client.get(url)
    assert r.status_code == 403
    assert r.json()["error"]["detail"]["reason"] == "expired"
    assert client.get(url, headers=admin).status_code == 200  # the key wins
    assert client.get(f"/v1/images/{image['id']}/file").status_code == 401  # neither: as before


def test_signing_secret_from_settings_and_from_the_data_dir(make_settings, tmp_path):
    a = UrlSigner.from_settings(make_settings(url_signing_secret="s3cret"))
    b = UrlSigner.from_settings(make_settings(url_signing_secret="other"))
    assert a.image_file(1, exp=100) != b.image_file(1, exp=100)
    # No secret set: one is made once in the data dir and shared by every process using it.
    c = UrlSigner.from_settings(make_settings(data_dir=tmp_path / "d1"))
    d = UrlSigner.from_settings(make_settings(data_dir=tmp_path / "d1"))
    assert c.secret == d.secret and len(c.secret) == 32
    assert (tmp_path / "d1" / "url-signing.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("fmt", ["label-studio", "coco"])
def test_exports_write_absolute_signed_urls(make_client, admin, fmt):
    client = make_client(public_url="https://t2m.example.org/", signed_url_ttl_s=3600)
    pid = make_project(client, admin, name=f"export-{fmt}")["id"]
    data = image_bytes(20, 16, seed=4)
    im = upload_ok(client, admin, pid, data, tags="cat")
    add_pseudo_mask(client.app.state.settings, im["id"], stripes_mask(20, 16, (0, 1)))
    r = client.post(
        f"/v1/projects/{pid}/jobs",
        json={"kind": "export", "params": {"format": fmt, "include": "best"}},
        headers=admin,
    )
    job, _ = poll_job(client, admin, r.json()["id"], {"succeeded", "failed"})
    assert job["status"] == "succeeded", job
    body = json.loads(client.get(f"/v1/jobs/{job['id']}/result", headers=admin).content)
    url = body[0]["data"]["image"] if fmt == "label-studio" else body["images"][0]["coco_url"]
    assert url.startswith(f"https://t2m.example.org/v1/images/{im['id']}/file?exp=")
    exp = int(dict(parse_qsl(urlsplit(url).query))["exp"])
    assert 3500 < exp - time.time() <= 3600
    assert job["metrics"]["urls_absolute"] is True
    assert job["metrics"]["urls_expire_at"].startswith(time.strftime("%Y-", time.gmtime(exp)))
    r = client.get(_local(url))  # what a browser at the public URL gets
    assert r.status_code == 200 and r.content == data
