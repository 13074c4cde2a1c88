"""`export` jobs end to end: start over the API, poll, download /result, decode each format
with its own library (pycocotools, zipfile + Pillow, label-studio-converter) and compare the
pixels with the stored masks."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from label_studio_converter.brush import decode_rle, mask2rle
from PIL import Image
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.blobs import LocalBlobStore
from app.db import make_engine, make_sessionmaker, session_scope
from app.imaging import decode_png_array, encode_png
from app.tables import Job, Mask, ModelVersion
from tests.fixtures.build import image_bytes, make_project, mask_bytes, upload_ok
from tests.worker.conftest import poll_job
from worker.export_formats.brush_rle import encode_mask
from worker.export_formats.voc import voc_colormap

CATEGORIES = ("cat", "dog", "bird", "fish")  # fish never appears in a mask
K = len(CATEGORIES)
VOID = 255


def blocky_mask(h: int, w: int, seed: int, values: tuple[int, ...]) -> np.ndarray:
    """Random classes in 4x4 blocks (runs of several lengths), cropped to h x w."""
    rng = np.random.default_rng(seed)
    small = rng.choice(np.array(values, dtype=np.uint8), size=(-(-h // 4), -(-w // 4)))
    return np.kron(small, np.ones((4, 4), dtype=np.uint8))[:h, :w].copy()


@dataclass
class Stored:
    """A mask as the test stored it."""

    array: np.ndarray
    source: str
    review_state: str
    confidence: np.ndarray | None = None
    job_id: int | None = None
    model_version_id: int | None = None
    mask_id: int | None = None


@dataclass
class Scene:
    pid: int
    images: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> API image + bytes
    expected: dict[str, dict[str, Stored]] = field(default_factory=dict)  # include -> name -> mask

    def by_id(self) -> dict[int, str]:
        return {im["id"]: name for name, im in self.images.items()}


@pytest.fixture
def db(settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test database, for rows the API does not write (jobs' outputs)."""
    engine = make_engine(settings.db_url, pool_size=1)
    yield make_sessionmaker(engine)
    engine.dispose()


def _add_job(db: sessionmaker[Session], pid: int, with_model: bool) -> tuple[int, int | None]:
    """A finished labeling job (and its model version) to attribute pseudo-masks to."""
    with session_scope(db) as s:
        job = Job(project_id=pid, kind="pipeline", status="succeeded", params={}, metrics={})
        s.add(job)
        s.flush()
        mv_id = None
        if with_model:
            mv = ModelVersion(project_id=pid, job_id=job.id, network="pnet", blob_key="0" * 64)
            s.add(mv)
            s.flush()
            mv_id = mv.id
        return job.id, mv_id


def _add_pseudo(
    db: sessionmaker[Session], store: LocalBlobStore, pid: int, image_id: int, stored: Stored
) -> Stored:
    """Write a pseudo-mask the way worker/writeback.py does: blobs first, then the row."""
    key, _ = store.put(encode_png(stored.array))
    conf_key = None if stored.confidence is None else store.put(encode_png(stored.confidence))[0]
    with session_scope(db) as s:
        m = Mask(
            project_id=pid,
            image_id=image_id,
            source="pseudo",
            blob_key=key,
            confidence_key=conf_key,
            job_id=stored.job_id,
            model_version_id=stored.model_version_id,
            stats={},
            mean_confidence=(
                None if stored.confidence is None else float(stored.confidence.mean() / 255)
            ),
            review_state=stored.review_state,
        )
        s.add(m)
        s.flush()
        stored.mask_id = m.id
    return stored


@pytest.fixture
def scene(client, admin, settings, db) -> Scene:
    """Images whose masks cover every include rule.

    a: human mask (classes, void) and an older accepted pseudo-mask -> the human one
    b: accepted pseudo-mask (job 1) and a newer pending one (job 2) -> the accepted one
    c: pending pseudo-mask only (with confidence)                  -> best only
    d: rejected pseudo-mask only                                    -> best only
    e: no mask at all                                               -> never
    f: human mask of background and void only                       -> 0 annotations
    g: RGBA PNG, human mask with the bird class                     -> human, accepted, best
    """
    pid = make_project(client, admin, name="export-me", categories=CATEGORIES)["id"]
    sc = Scene(pid)
    store = LocalBlobStore(settings.blob_dir)  # the app's blob store
    job1, mv1 = _add_job(db, pid, with_model=True)
    job2, _ = _add_job(db, pid, with_model=False)
    specs = {  # name: (width, height, format, mode)
        "a": (32, 24, "PNG", "RGB"),
        "b": (40, 30, "JPEG", "RGB"),
        "c": (20, 16, "PNG", "RGB"),
        "d": (24, 20, "JPEG", "RGB"),
        "e": (16, 16, "PNG", "RGB"),
        "f": (28, 12, "PNG", "RGB"),
        "g": (36, 28, "PNG", "RGBA"),
    }
    human: dict[str, np.ndarray] = {
        "a": blocky_mask(24, 32, 1, (0, 1, 2, VOID)),
        "f": blocky_mask(12, 28, 2, (0, VOID)),
        "g": blocky_mask(28, 36, 3, (0, 1, 3, VOID)),
    }
    for seed, (name, (w, h, fmt, mode)) in enumerate(specs.items()):
        data = image_bytes(w, h, seed=100 + seed, fmt=fmt, mode=mode)
        mask = mask_bytes(human[name]) if name in human else None
        ext = "jpg" if fmt == "JPEG" else "png"
        im = upload_ok(client, admin, pid, data, tags="cat", mask=mask, filename=f"{name}.{ext}")
        sc.images[name] = {**im, "bytes": data, "format": fmt}

    def pseudo(name: str, seed: int, state: str, job: int, mv: int | None = None) -> Stored:
        im = sc.images[name]
        arr = blocky_mask(im["height"], im["width"], seed, (0, 1, 2, 3, VOID))
        conf = np.random.default_rng(seed).integers(0, 256, arr.shape, dtype=np.uint8)
        st = Stored(arr, "pseudo", state, conf, job_id=job, model_version_id=mv)
        return _add_pseudo(db, store, pid, im["id"], st)

    pseudo("a", 10, "accepted", job1, mv1)  # loses to a's human mask
    b_accepted = pseudo("b", 11, "accepted", job1, mv1)
    pseudo("b", 12, "pending", job2)  # newer, but not accepted
    c_pending = pseudo("c", 13, "pending", job2)
    d_rejected = pseudo("d", 14, "rejected", job1, mv1)

    humans = {n: Stored(a, "human", "accepted") for n, a in human.items()}
    sc.expected["human"] = dict(humans)
    sc.expected["accepted"] = {**humans, "b": b_accepted}
    # best: like GET /mask?source=best (human, else accepted pseudo, else latest pseudo)
    sc.expected["best"] = {**humans, "b": b_accepted, "c": c_pending, "d": d_rejected}
    return sc


def _start(client, headers, pid: int, **params: Any):
    return client.post(
        f"/v1/projects/{pid}/jobs",
        json={"kind": "export", "params": params, "allow_concurrent": True},
        headers=headers,
    )


def _export(client, headers, pid: int, fmt: str, include: str) -> tuple[dict[str, Any], Any]:
    r = _start(client, headers, pid, format=fmt, include=include)
    assert r.status_code == 202, r.text
    job, _ = poll_job(client, headers, r.json()["id"], {"succeeded", "failed", "cancelled"})
    assert job["status"] == "succeeded", job
    assert job["has_result"] is True
    res = client.get(f"/v1/jobs/{job['id']}/result", headers=headers)
    assert res.status_code == 200, res.text
    return job, res


def _expected_ann_count(masks: dict[str, Stored]) -> int:
    return sum(len(set(np.unique(m.array).tolist()) & set(range(1, K + 1))) for m in masks.values())


# --- COCO ------------------------------------------------------------------------------


def _check_coco(res, sc: Scene, include: str, tmp_path) -> None:
    path = tmp_path / "export.json"
    path.write_bytes(res.content)
    coco = COCO(str(path))  # pycocotools' own loader builds its index
    names = sc.by_id()
    expected = sc.expected[include]
    assert sorted(names[i] for i in coco.getImgIds()) == sorted(expected)
    assert {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())} == {
        i: n for i, n in enumerate(CATEGORIES, start=1)
    }
    for image_id in coco.getImgIds():
        name = names[image_id]
        stored = expected[name]
        img = coco.loadImgs(image_id)[0]
        assert (img["width"], img["height"]) == (
            sc.images[name]["width"],
            sc.images[name]["height"],
        )
        assert img["file_name"] == sc.images[name]["filename"]
        covered = np.zeros(stored.array.shape, dtype=np.uint8)
        for cat in range(1, K + 1):
            ann_ids = coco.getAnnIds(imgIds=[image_id], catIds=[cat])
            want = stored.array == cat
            if not want.any():
                assert ann_ids == [], f"{name}: class {cat} is absent but annotated"
                continue
            assert len(ann_ids) == 1, f"{name}: one RLE per (image, category)"
            ann = coco.loadAnns(ann_ids)[0]
            assert isinstance(ann["segmentation"]["counts"], str)
            assert ann["iscrowd"] == 0 and ann["source"] == stored.source
            np.testing.assert_array_equal(coco.annToMask(ann), want.astype(np.uint8))
            np.testing.assert_array_equal(coco_mask.decode(ann["segmentation"]), want)
            assert ann["area"] == int(want.sum())
            ys, xs = np.nonzero(want)
            assert ann["bbox"] == [
                xs.min(),
                ys.min(),
                xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1,
            ]
            if stored.source == "human":
                assert "score" not in ann
            else:
                assert stored.confidence is not None
                assert ann["score"] == pytest.approx(stored.confidence[want].mean() / 255, abs=1e-5)
            covered += want
        # Every labelled pixel is in exactly one annotation; background and void in none.
        np.testing.assert_array_equal(covered, (stored.array >= 1) & (stored.array <= K))


# --- VOC -------------------------------------------------------------------------------


def _check_voc(res, sc: Scene, include: str) -> None:
    expected = sc.expected[include]
    zf = zipfile.ZipFile(io.BytesIO(res.content))
    assert zf.testzip() is None
    by_stem = {f"{sc.images[n]['id']:08d}": n for n in expected}
    stems = sorted(by_stem)
    names = set(zf.namelist())
    assert {n for n in names if n.startswith("JPEGImages/")} == {
        f"JPEGImages/{s}.jpg" for s in stems
    }
    assert {n for n in names if n.startswith("SegmentationClass/")} == {
        f"SegmentationClass/{s}.png" for s in stems
    }
    for listing in ("trainval.txt", "train.txt"):
        assert zf.read(f"ImageSets/Segmentation/{listing}").decode().split() == stems
    labelmap = zf.read("labelmap.txt").decode().splitlines()
    assert [line.split(":")[0] for line in labelmap[1:]] == ["background", *CATEGORIES]
    cmap = voc_colormap()
    assert tuple(cmap[VOID]) == (224, 224, 192) and tuple(cmap[1]) == (128, 0, 0)
    for stem, name in by_stem.items():
        stored, im = expected[name], sc.images[name]
        seg = Image.open(io.BytesIO(zf.read(f"SegmentationClass/{stem}.png")))
        assert seg.format == "PNG" and seg.mode == "P"
        np.testing.assert_array_equal(np.array(seg), stored.array)  # void stays 255
        assert np.array(seg.getpalette(), dtype=np.uint8).reshape(-1, 3)[:256].tolist() == (
            cmap.tolist()
        )
        raw = zf.read(f"JPEGImages/{stem}.jpg")
        jpg = Image.open(io.BytesIO(raw))
        assert jpg.format == "JPEG" and jpg.mode == "RGB"
        assert jpg.size == (im["width"], im["height"])
        if im["format"] == "JPEG":
            assert raw == im["bytes"], "an RGB JPEG is shipped as uploaded"
        else:  # re-encoded at high quality: close to the original's pixels
            orig = np.asarray(Image.open(io.BytesIO(im["bytes"])).convert("RGB"), dtype=float)
            assert np.abs(np.asarray(jpg, dtype=float) - orig).mean() < 8


# --- Label Studio ----------------------------------------------------------------------


def _label_studio_task_validator(tasks: Any) -> None:
    """The checks of Label Studio's importer (label_studio/tasks/validation.py TaskValidator)
    for a project with `<Image name="image" value="$image"/>`."""
    assert isinstance(tasks, list) and tasks, "data is not a list / data is empty"
    for task in tasks:
        assert isinstance(task, dict) and "data" in task
        assert isinstance(task["data"], dict) and isinstance(task["data"]["image"], str)
        assert isinstance(task.get("predictions", []), list)
        for pred in task["predictions"]:
            assert isinstance(pred, dict) and isinstance(pred["result"], list)
        assert isinstance(task.get("meta", {}), dict)


def _check_label_studio(res, sc: Scene, include: str) -> None:
    expected = sc.expected[include]
    tasks = json.loads(res.content)
    _label_studio_task_validator(tasks)
    names = sc.by_id()
    seen = []
    for task in tasks:
        url = task["data"]["image"]
        image_id = int(url.split("/")[3])
        assert url.startswith(f"/v1/images/{image_id}/file?exp="), "a signed URL"
        name = names[image_id]
        seen.append(name)
        stored, im = expected[name], sc.images[name]
        if stored.source == "human":  # people's masks are annotations, not predictions
            assert task["predictions"] == []
            (pred,) = task["annotations"]
            assert "model_version" not in pred
        else:
            assert "annotations" not in task
            (pred,) = task["predictions"]
            assert stored.confidence is not None
            assert pred["model_version"] == f"tag2mask-job-{stored.job_id}"
            assert pred["score"] == pytest.approx(stored.confidence.mean() / 255)
        labels = {}
        for region in pred["result"]:
            assert region["from_name"] == "tag" and region["to_name"] == "image"
            assert region["type"] == "brushlabels" and region["image_rotation"] == 0
            assert (region["original_width"], region["original_height"]) == (
                im["width"],
                im["height"],
            )
            value = region["value"]
            assert value["format"] == "rle" and all(0 <= b <= 255 for b in value["rle"])
            (label,) = value["brushlabels"]
            # Label Studio's own decoder: H*W*4 RGBA bytes, the mask in every channel.
            rgba = decode_rle(value["rle"]).reshape(im["height"], im["width"], 4)
            labels[label] = rgba
        present = [c for c in range(1, K + 1) if (stored.array == c).any()]
        assert sorted(labels) == sorted(CATEGORIES[c - 1] for c in present)
        for c in present:
            want = np.where(stored.array == c, 255, 0).astype(np.uint8)
            for ch in range(4):
                np.testing.assert_array_equal(labels[CATEGORIES[c - 1]][..., ch], want)
    assert seen == sorted(expected, key=lambda n: sc.images[n]["id"]), "tasks in image id order"


# --- the round trips -------------------------------------------------------------------


@pytest.mark.parametrize("include", ["accepted", "human", "best"])
@pytest.mark.parametrize("fmt", ["coco", "voc", "label-studio"])
def test_export_round_trip(client, admin, scene, fmt, include, tmp_path, monkeypatch, settings):
    import worker.kinds.export as export_kind

    monkeypatch.setattr(export_kind, "CHUNK", 3)  # several keyset chunks over 7 images
    job, res = _export(client, admin, scene.pid, fmt, include)
    expected = scene.expected[include]
    m = job["metrics"]
    assert m["format"] == fmt and m["include"] == include
    assert m["images"] == len(expected)
    assert m["annotations"] == _expected_ann_count(expected)
    assert m["bytes"] == len(res.content)
    ext = ".zip" if fmt == "voc" else ".json"
    assert m["filename"] == f"project-{scene.pid}-export-{job['id']}{ext}"
    assert res.headers["content-type"].startswith(
        "application/zip" if fmt == "voc" else "application/json"
    )
    assert f'filename="{m["filename"]}"' in res.headers["content-disposition"]
    # Strong ETag = the blob key = the sha256 of the bytes.
    assert res.headers["etag"] == f'"{hashlib.sha256(res.content).hexdigest()}"'
    {
        "coco": lambda: _check_coco(res, scene, include, tmp_path),
        "voc": lambda: _check_voc(res, scene, include),
        "label-studio": lambda: _check_label_studio(res, scene, include),
    }[fmt]()
    events = client.get(f"/v1/jobs/{job['id']}/events", headers=admin).json()["items"]
    messages = [e["message"] for e in events]
    assert "stage export started" in messages and "stage store started" in messages
    assert any(msg.startswith("export written:") for msg in messages)
    assert _scratch_files(settings) == [], "scratch files are removed"


def test_best_export_matches_get_mask_best(client, admin, scene):
    """include=best exports, per image, what GET /mask?source=best answers."""
    _, res = _export(client, admin, scene.pid, "voc", "best")
    zf = zipfile.ZipFile(io.BytesIO(res.content))
    for name in scene.expected["best"]:
        image_id = scene.images[name]["id"]
        r = client.get(f"/v1/images/{image_id}/mask", params={"source": "best"}, headers=admin)
        assert r.status_code == 200
        seg = np.array(Image.open(io.BytesIO(zf.read(f"SegmentationClass/{image_id:08d}.png"))))
        np.testing.assert_array_equal(seg, decode_png_array(r.content))


def test_empty_selection_is_a_valid_empty_file(client, admin, tmp_path):
    pid = make_project(client, admin, name="nothing", categories=CATEGORIES)["id"]
    upload_ok(client, admin, pid, image_bytes(seed=1), tags="cat")
    job, res = _export(client, admin, pid, "coco", "human")
    assert job["metrics"]["images"] == 0 and job["metrics"]["annotations"] == 0
    path = tmp_path / "empty.json"
    path.write_bytes(res.content)
    coco = COCO(str(path))
    assert coco.getImgIds() == [] and coco.getAnnIds() == [] and len(coco.getCatIds()) == K
    _, res = _export(client, admin, pid, "label-studio", "best")
    assert json.loads(res.content) == []
    _, res = _export(client, admin, pid, "voc", "accepted")
    zf = zipfile.ZipFile(io.BytesIO(res.content))
    assert zf.read("ImageSets/Segmentation/trainval.txt") == b""


# --- the encoder against Label Studio's ----------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (24, 32), (20, 1000)])
def test_brush_rle_decodes_with_label_studio(shape):
    rng = np.random.default_rng(sum(shape))
    cases = [
        rng.integers(0, 2, shape),
        np.zeros(shape, int),
        np.ones(shape, int),  # (20, 1000): runs longer than one 16-bit chunk holds
        blocky_mask(*shape, seed=5, values=(0, 1)),
    ]
    for binary in cases:
        ours = encode_mask(binary)
        rgba = decode_rle(ours).reshape(*shape, 4)
        want = np.where(binary > 0, 255, 0)
        for ch in range(4):
            np.testing.assert_array_equal(rgba[..., ch], want)
        # Bit for bit what Label Studio's own encoder writes (it may pad one more zero byte).
        theirs = mask2rle(want.astype(np.uint8))
        assert theirs[: len(ours)] == ours and set(theirs[len(ours) :]) <= {0}


# --- errors, access, caching -----------------------------------------------------------


@pytest.mark.parametrize(
    "params, needle",
    [
        ({}, "format"),
        ({"include": "human"}, "format"),
        ({"format": "yolo"}, "yolo"),
        ({"format": "coco", "include": "all"}, "all"),
        ({"format": "coco", "bogus": 1}, "bogus"),
    ],
)
def test_bad_params_are_422(client, admin, params, needle):
    pid = make_project(client, admin)["id"]
    r = _start(client, admin, pid, **params)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "validation_error" and needle in err["message"]


def test_result_of_jobs_without_a_file_is_404(client, admin):
    pid = make_project(client, admin)["id"]

    def start(kind: str, **params: Any) -> int:
        r = client.post(
            f"/v1/projects/{pid}/jobs",
            json={"kind": kind, "params": params, "allow_concurrent": True},
            headers=admin,
        )
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def not_found(job_id: int, word: str) -> None:
        r = client.get(f"/v1/jobs/{job_id}/result", headers=admin)
        assert r.status_code == 404, r.text
        err = r.json()["error"]
        assert err["code"] == "not_found" and word in err["message"], err

    sleeper = start("sleep", steps=400, step_s=0.05)
    poll_job(client, admin, sleeper, {"running"})
    not_found(sleeper, "still running")
    queued = start("export", format="coco")  # the thread runner is busy with the sleeper
    not_found(queued, "still queued")
    for jid in (queued, sleeper):
        client.post(f"/v1/jobs/{jid}/cancel", headers=admin)
    poll_job(client, admin, sleeper, {"cancelled"})
    poll_job(client, admin, queued, {"cancelled"})
    not_found(queued, "cancelled")
    failed = start("fail")
    poll_job(client, admin, failed, {"failed"})
    not_found(failed, "failed and produced no file")
    stats = start("stats")
    poll_job(client, admin, stats, {"succeeded"})
    not_found(stats, "produced no file")
    assert client.get("/v1/jobs/987654/result", headers=admin).status_code == 404


def test_result_access_and_etag(client, admin, new_key):
    pid = make_project(client, admin, name="mine", categories=CATEGORIES)["id"]
    mask = blocky_mask(24, 32, 9, (0, 1, 2, VOID))
    upload_ok(client, admin, pid, image_bytes(seed=4), tags="cat", mask=mask_bytes(mask))
    job, res = _export(client, admin, pid, "coco", "accepted")
    url = f"/v1/jobs/{job['id']}/result"

    other = make_project(client, admin, name="theirs")["id"]
    outsider = {"Authorization": f"Bearer {new_key('admin', other)}"}
    r = client.get(url, headers=outsider)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get(url).status_code == 401

    viewer = {"Authorization": f"Bearer {new_key('viewer', pid)}"}
    r = client.get(url, headers=viewer)
    assert r.status_code == 200 and r.content == res.content

    etag = res.headers["etag"]
    r = client.get(url, headers={**admin, "If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    r = client.get(url, headers={**admin, "If-None-Match": '"something-else"'})
    assert r.status_code == 200 and r.content == res.content
    r = client.get(url, headers={**admin, "Range": "bytes=0-9"})  # resumable downloads
    assert r.status_code == 206 and r.content == res.content[:10]


# --- cancel, vanished blobs, re-delivery -------------------------------------------------


def _scratch_files(settings) -> list[str]:
    root = settings.data_dir / "tmp"
    return sorted(str(p) for p in root.rglob("*")) if root.exists() else []


def test_cancel_between_chunks_leaves_no_result(client, admin, scene, settings, db):
    sleeper = client.post(
        f"/v1/projects/{scene.pid}/jobs",
        json={"kind": "sleep", "params": {"steps": 400, "step_s": 0.05}},
        headers=admin,
    ).json()["id"]
    poll_job(client, admin, sleeper, {"running"})
    export_id = _start(client, admin, scene.pid, format="voc", include="best").json()["id"]
    # Ask the queued export to stop the way a running one is asked: it stops at its first
    # check between chunks, after it started writing.
    with session_scope(db) as s:
        s.execute(update(Job).where(Job.id == export_id).values(cancel_requested=True))
    client.post(f"/v1/jobs/{sleeper}/cancel", headers=admin)
    job, _ = poll_job(client, admin, export_id, {"succeeded", "failed", "cancelled"})
    assert job["status"] == "cancelled" and job["has_result"] is False
    messages = [
        e["message"]
        for e in client.get(f"/v1/jobs/{export_id}/events", headers=admin).json()["items"]
    ]
    assert "stage export started" in messages and "cancelled" in messages
    assert client.get(f"/v1/jobs/{export_id}/result", headers=admin).status_code == 404
    assert _scratch_files(settings) == []


def test_mask_blob_gone_mid_export_skips_the_image(client, admin, scene, settings, db):
    """An image deleted while the export runs loses its blobs: the export goes on without it."""
    with session_scope(db) as s:
        key = s.scalar(select(Mask.blob_key).where(Mask.id == scene.expected["best"]["c"].mask_id))
    LocalBlobStore(settings.blob_dir).delete(key)
    job, res = _export(client, admin, scene.pid, "label-studio", "best")
    assert job["metrics"]["skipped_images"] == 1
    assert job["metrics"]["images"] == len(scene.expected["best"]) - 1
    ids = {int(t["data"]["image"].split("/")[3]) for t in json.loads(res.content)}
    assert scene.images["c"]["id"] not in ids


def test_redelivered_export_reuses_its_stored_file(client, admin, scene, settings, db, make_client):
    job, res = _export(client, admin, scene.pid, "coco", "accepted")
    # The worker died after storing the file: the job is back in the queue, no result set.
    with session_scope(db) as s:
        s.execute(update(Job).where(Job.id == job["id"]).values(status="queued", result_key=None))
    fresh = make_client()  # a new process: its runner picks up the queued job
    again, _ = poll_job(fresh, admin, job["id"], {"succeeded", "failed"})
    assert again["status"] == "succeeded" and again["attempts"] == 2
    assert again["metrics"] == job["metrics"]
    messages = [
        e["message"]
        for e in fresh.get(f"/v1/jobs/{job['id']}/events", headers=admin).json()["items"]
    ]
    assert "export restored from checkpoint" in messages
    r = fresh.get(f"/v1/jobs/{job['id']}/result", headers=admin)
    assert r.status_code == 200 and r.content == res.content
