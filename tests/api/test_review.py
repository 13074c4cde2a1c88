"""Review queue, decisions, corrections, history, sync, region scores and suggestions."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fixtures.app import bearer
from tests.fixtures.build import image_bytes, make_project, mask_bytes, stripes_mask, upload
from tests.fixtures.pseudo import finished_pipeline_job

W, H = 32, 24


@pytest.fixture
def project(client, admin):
    return make_project(client, admin, categories=("cat", "dog", "bird"))


@pytest.fixture
def images(client, admin, project):
    """Four tag-only images (ids in upload order)."""
    return [
        upload(client, admin, project["id"], image_bytes(seed=10 + i), tags="cat,dog").json()["id"]
        for i in range(4)
    ]


@pytest.fixture
def run(settings, project, images):
    """A finished run: pseudo-masks with confidences 0.9, 0.3, 0.6, 0.1."""
    masks = [stripes_mask(W, H, (0, 1, 2)) for _ in images]
    regions = [
        [
            {"id": 0, "bbox": [0, 0, 10, 24], "score": 0.9},
            {"id": 1, "bbox": [10, 0, 20, 24], "score": c / 2},
            {"id": 2, "bbox": [20, 0, 32, 24], "score": 0.5},
        ]
        for c in (0.9, 0.3, 0.6, 0.1)
    ]
    return finished_pipeline_job(
        settings, project["id"], images, masks, [0.9, 0.3, 0.6, 0.1], regions=regions
    )


def queue(client, headers, pid, **params):
    r = client.get(f"/v1/projects/{pid}/review-queue", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


class TestQueue:
    def test_lowest_confidence_first_with_weakest_regions(
        self, client, admin, project, images, run
    ):
        items = queue(client, admin, project["id"])["items"]
        assert [it["image"]["id"] for it in items] == [images[3], images[1], images[2], images[0]]
        first = items[0]
        assert first["mean_confidence"] == pytest.approx(round(0.1 * 255) / 255)
        assert first["image"]["tags"] == ["cat", "dog"] and first["job_id"] == run
        assert [r["id"] for r in first["weakest_regions"]] == [1, 2, 0]

    def test_keyset_pages_cover_the_queue_once(self, client, admin, project, images, run):
        seen, cursor = [], None
        while True:
            page = queue(
                client, admin, project["id"], limit=1, **({"cursor": cursor} if cursor else {})
            )
            seen += [it["mask_id"] for it in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 4

    def test_reviewed_and_superseded_masks_leave_the_queue(
        self, client, admin, settings, project, images, run
    ):
        items = queue(client, admin, project["id"])["items"]
        client.post(
            f"/v1/masks/{items[0]['mask_id']}/review", json={"decision": "accept"}, headers=admin
        )
        finished_pipeline_job(
            settings, project["id"], [images[0]], [stripes_mask(W, H, (1,))], [0.95]
        )
        ids = [it["image"]["id"] for it in queue(client, admin, project["id"])["items"]]
        assert images[3] not in ids  # reviewed
        assert ids.count(images[0]) == 1  # only the newer run's mask of image 0

    def test_bad_cursor_is_422(self, client, admin, project, run):
        r = client.get(f"/v1/projects/{project['id']}/review-queue?cursor=!!!", headers=admin)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


class TestDecisions:
    def test_accept_records_reviewer_time_and_comment(self, client, new_key, project, run):
        key = new_key("annotator")
        mask_id = queue(client, bearer(key), project["id"])["items"][0]["mask_id"]
        r = client.post(
            f"/v1/masks/{mask_id}/review",
            json={"decision": "accept", "comment": "fine"},
            headers=bearer(key),
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["review_state"] == "accepted" and body["review_comment"] == "fine"
        assert body["reviewer"] and body["reviewed_at"]

    def test_accepted_becomes_best_mask(self, client, admin, project, images, run):
        mask_id = queue(client, admin, project["id"])["items"][0]["mask_id"]
        client.post(f"/v1/masks/{mask_id}/review", json={"decision": "accept"}, headers=admin)
        r = client.get(f"/v1/images/{images[3]}/mask", headers=admin)
        assert r.headers["x-mask-id"] == str(mask_id)
        listed = client.get(
            f"/v1/projects/{project['id']}/images?review_state=accepted", headers=admin
        )
        assert [im["id"] for im in listed.json()["items"]] == [images[3]]

    def test_superseded_mask_conflicts(self, client, admin, settings, project, images, run):
        old = queue(client, admin, project["id"])["items"][0]["mask_id"]
        finished_pipeline_job(
            settings, project["id"], [images[3]], [stripes_mask(W, H, (2,))], [0.5]
        )
        r = client.post(f"/v1/masks/{old}/review", json={"decision": "reject"}, headers=admin)
        assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
        assert "superseded" in r.json()["error"]["message"]

    def test_human_mask_cannot_be_reviewed(self, client, admin, project):
        r = upload(
            client,
            admin,
            project["id"],
            image_bytes(seed=77),
            tags="cat",
            mask=mask_bytes(stripes_mask(W, H, (0, 1))),
        )
        history = client.get(f"/v1/images/{r.json()['id']}/masks", headers=admin).json()["items"]
        r = client.post(
            f"/v1/masks/{history[0]['id']}/review", json={"decision": "accept"}, headers=admin
        )
        assert r.status_code == 409

    def test_bad_review_requests(self, client, admin, new_key, project, run):
        mask_id = queue(client, admin, project["id"])["items"][0]["mask_id"]
        r = client.post(f"/v1/masks/{mask_id}/review", json={"decision": "maybe"}, headers=admin)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
        r = client.post("/v1/masks/999999/review", json={"decision": "accept"}, headers=admin)
        assert r.status_code == 404
        viewer = bearer(new_key("viewer"))
        r = client.post(f"/v1/masks/{mask_id}/review", json={"decision": "accept"}, headers=viewer)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        other = make_project(client, admin, name="other")["id"]
        scoped = bearer(new_key("annotator", other))
        r = client.post(f"/v1/masks/{mask_id}/review", json={"decision": "accept"}, headers=scoped)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert client.get(f"/v1/masks/{mask_id}/regions", headers=scoped).status_code == 404

    def test_batch_review_each_item_alone(self, client, admin, settings, project, images, run):
        items = queue(client, admin, project["id"])["items"]
        other_pid = make_project(client, admin, name="p2")["id"]
        img2 = upload(client, admin, other_pid, image_bytes(seed=99), tags="cat").json()["id"]
        finished_pipeline_job(settings, other_pid, [img2], [stripes_mask(W, H, (1,))], [0.5])
        foreign = queue(client, admin, other_pid)["items"][0]["mask_id"]
        body = {
            "items": [
                {"mask_id": items[0]["mask_id"], "decision": "accept"},
                {"mask_id": items[1]["mask_id"], "decision": "reject", "comment": "bad edges"},
                {"mask_id": foreign, "decision": "accept"},
                {"mask_id": 424242, "decision": "accept"},
            ]
        }
        r = client.post(f"/v1/projects/{project['id']}/reviews", json=body, headers=admin)
        assert r.status_code == 200, r.text
        out = r.json()["items"]
        assert [o["status"] for o in out] == ["ok", "ok", "error", "error"]
        assert out[1]["mask"]["review_state"] == "rejected"
        assert out[2]["error"]["code"] == "not_found"
        assert client.get(f"/v1/masks/{foreign}", headers=admin).json()["review_state"] == "pending"


class TestCorrections:
    def test_corrected_mask_becomes_human_with_provenance(
        self, client, admin, project, images, run
    ):
        item = queue(client, admin, project["id"])["items"][0]
        fixed = stripes_mask(W, H, (1, 2))
        r = client.post(
            f"/v1/masks/{item['mask_id']}/correction",
            files={"file": ("m.png", mask_bytes(fixed), "image/png")},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        human = r.json()
        assert human["source"] == "human" and human["corrected_from_id"] == item["mask_id"]
        got = client.get(f"/v1/images/{item['image']['id']}/mask", headers=admin)
        from app.imaging import decode_png_array

        assert np.array_equal(decode_png_array(got.content), fixed)
        history = client.get(f"/v1/images/{item['image']['id']}/masks", headers=admin).json()[
            "items"
        ]
        assert [(m["source"], m["job_id"]) for m in history] == [("human", None), ("pseudo", run)]
        assert history[1]["superseded"] is True
        ids = [it["mask_id"] for it in queue(client, admin, project["id"])["items"]]
        assert item["mask_id"] not in ids

    def test_corrupt_correction_leaves_nothing(self, client, admin, settings, project, run):
        item = queue(client, admin, project["id"])["items"][0]
        before = sorted(p.name for p in settings.blob_dir.rglob("*") if p.is_file())
        r = client.post(
            f"/v1/masks/{item['mask_id']}/correction",
            files={"file": ("m.png", b"\x89PNG\r\n\x1a\nnot really", "image/png")},
            headers=admin,
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_mask"
        wrong_size = client.post(
            f"/v1/masks/{item['mask_id']}/correction",
            files={"file": ("m.png", mask_bytes(np.zeros((5, 5))), "image/png")},
            headers=admin,
        )
        assert wrong_size.json()["error"]["code"] == "mask_size_mismatch"
        after = sorted(p.name for p in settings.blob_dir.rglob("*") if p.is_file())
        assert before == after
        history = client.get(f"/v1/images/{item['image']['id']}/masks", headers=admin).json()[
            "items"
        ]
        assert [m["source"] for m in history] == ["pseudo"]


class TestDelivery:
    def test_sync_pages_by_update_time(self, client, admin, project, images, run):
        pid = project["id"]
        first = client.get(f"/v1/projects/{pid}/masks?limit=3", headers=admin).json()
        assert len(first["items"]) == 3 and first["next_cursor"]
        rest = client.get(
            f"/v1/projects/{pid}/masks",
            params={"limit": 3, "cursor": first["next_cursor"]},
            headers=admin,
        ).json()
        assert len(rest["items"]) == 1 and rest["next_cursor"] is None
        mark = max(m["updated_at"] for m in first["items"] + rest["items"])
        assert (
            client.get(
                f"/v1/projects/{pid}/masks", params={"updated_since": mark}, headers=admin
            ).json()["items"]
            == []
        )
        target = first["items"][0]["id"]
        client.post(f"/v1/masks/{target}/review", json={"decision": "reject"}, headers=admin)
        changed = client.get(
            f"/v1/projects/{pid}/masks", params={"updated_since": mark}, headers=admin
        ).json()["items"]
        assert [m["id"] for m in changed] == [target] and changed[0]["review_state"] == "rejected"
        only = client.get(
            f"/v1/projects/{pid}/masks?review_state=rejected&source=pseudo", headers=admin
        ).json()["items"]
        assert [m["id"] for m in only] == [target]

    def test_three_small_requests_and_etags(self, client, admin, images, run):
        iid = images[1]
        mask = client.get(f"/v1/images/{iid}/mask", headers=admin)
        conf = client.get(f"/v1/images/{iid}/confidence", headers=admin)
        regions = client.get(f"/v1/masks/{mask.headers['x-mask-id']}/regions", headers=admin)
        assert mask.status_code == conf.status_code == regions.status_code == 200
        assert regions.json()["weakest"][0]["id"] == 1
        assert client.get(f"/v1/images/{iid}/regions", headers=admin).json() == regions.json()
        for url, resp in (
            (f"/v1/images/{iid}/mask", mask),
            (f"/v1/images/{iid}/confidence", conf),
            (f"/v1/masks/{mask.headers['x-mask-id']}/regions", regions),
        ):
            etag = resp.headers["etag"]
            assert etag.startswith('"') and resp.headers["cache-control"]
            again = client.get(url, headers={**admin, "If-None-Match": etag})
            assert again.status_code == 304 and again.content == b""

    def test_cors_from_settings(self, make_client, admin):
        c = make_client(cors_origins=["https://label.example"])
        r = c.options(
            "/v1/projects",
            headers={"Origin": "https://label.example", "Access-Control-Request-Method": "GET"},
        )
        assert r.headers["access-control-allow-origin"] == "https://label.example"
        r = c.get("/v1/projects", headers={**admin, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


class TestSuggestions:
    def test_ranking_skips_masked_images_and_reports_categories(
        self, client, admin, settings, project, images
    ):
        ranking = [
            {
                "image_id": images[0],
                "score": 0.9,
                "reasons": {"uncertainty": 0.8, "disagreement": 0.1},
            },
            {
                "image_id": images[1],
                "score": 0.7,
                "reasons": {"uncertainty": 0.1, "disagreement": 0.6},
            },
            {"image_id": images[2], "score": 0.5, "reasons": {"rare_categories": 0.5}},
        ]
        metrics = {
            "budget": ranking,
            "pnet": {"iou": {"1": 0.8, "2": 0.4}},
            "round_1": {"iou": {"1": 0.85, "2": 0.45, "3": 0.1}, "rolled_back": False},
        }
        finished_pipeline_job(
            settings,
            project["id"],
            images[:3],
            [stripes_mask(W, H, (0, 1)) for _ in range(3)],
            [0.5] * 3,
            metrics=metrics,
        )
        client.put(
            f"/v1/images/{images[0]}/mask",
            files={"file": ("m.png", mask_bytes(stripes_mask(W, H, (0, 2))), "image/png")},
            headers=admin,
        )
        r = client.get(f"/v1/projects/{project['id']}/suggestions?budget=2", headers=admin)
        assert r.status_code == 200, r.text
        body = r.json()
        assert [s["image"]["id"] for s in body["items"]] == [images[1], images[2]]
        assert "disagree" in body["items"][0]["reason"]
        assert "few human masks" in body["items"][1]["reason"]
        cats = {c["name"]: c for c in body["categories"]}
        assert cats["dog"]["human_masks"] == 1 and cats["cat"]["human_masks"] == 0
        assert cats["bird"]["heldout_iou"] == pytest.approx(0.1)
        assert body["categories"][0]["name"] == "bird"  # the neediest first

    def test_no_run_yet(self, client, admin, project):
        body = client.get(f"/v1/projects/{project['id']}/suggestions", headers=admin).json()
        assert body["job_id"] is None and body["items"] == [] and len(body["categories"]) == 3
