"""Images: upload (dedup by content), listing with keyset pagination and filters, bytes,
tags, deletion with blob clean-up, and batch upload."""

import hashlib

import numpy as np
import pytest

from app.tables import Image, Mask
from tests.fixtures.build import (
    add_pseudo_mask,
    batch_upload,
    blob_files,
    count_rows,
    image_bytes,
    list_all_images,
    make_project,
    mask_bytes,
    stripes_mask,
    upload,
    upload_ok,
)


@pytest.fixture
def project(client, admin):
    return make_project(client, admin)


class TestUpload:
    def test_tags_as_comma_list(self, client, admin, project):
        img = upload_ok(client, admin, project["id"], image_bytes(), tags=" dog , cat,,")
        assert img["tags"] == ["cat", "dog"]  # class-index order, blanks dropped

    def test_tags_as_json_list(self, client, admin, project):
        img = upload_ok(client, admin, project["id"], image_bytes(), tags='["bird", "cat"]')
        assert img["tags"] == ["cat", "bird"]

    def test_no_tags(self, client, admin, project):
        img = upload_ok(client, admin, project["id"], image_bytes())
        assert img["tags"] == [] and img["has_human_mask"] is False

    def test_tags_json_that_is_not_a_list_of_names(self, client, admin, project, settings):
        r = upload(client, admin, project["id"], image_bytes(), tags="[1, 2]")
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
        assert list_all_images(client, admin, project["id"]) == []
        assert blob_files(settings) == []

    def test_same_bytes_twice_returns_existing(self, client, admin, project):
        data = image_bytes(seed=7)
        first = upload(client, admin, project["id"], data, tags="cat")
        second = upload(client, admin, project["id"], data, tags="dog", filename="other.png")
        assert first.status_code == 201 and second.status_code == 200
        assert second.json()["id"] == first.json()["id"]
        assert second.json()["tags"] == ["cat", "dog"]  # merged (tests/api/test_reupload.py)
        assert second.json()["filename"] == "img.png"  # the first upload's name stays
        assert [i["id"] for i in list_all_images(client, admin, project["id"])] == [
            first.json()["id"]
        ]

    def test_different_bytes_are_a_new_image(self, client, admin, project):
        a = upload(client, admin, project["id"], image_bytes(seed=1))
        b = upload(client, admin, project["id"], image_bytes(seed=2))
        assert a.status_code == 201 and b.status_code == 201
        assert a.json()["id"] != b.json()["id"]
        assert len(list_all_images(client, admin, project["id"])) == 2

    def test_same_bytes_in_two_projects_are_two_images_sharing_a_blob(
        self, client, admin, settings
    ):
        a = make_project(client, admin, name="a")
        b = make_project(client, admin, name="b")
        data = image_bytes(seed=4)
        ia = upload_ok(client, admin, a["id"], data)
        ib = upload_ok(client, admin, b["id"], data)
        assert ia["id"] != ib["id"] and ia["sha256"] == ib["sha256"]
        assert len(blob_files(settings)) == 1

    @pytest.mark.parametrize("fmt", ["JPEG", "BMP", "WEBP", "TIFF"])
    def test_other_formats(self, client, admin, project, fmt):
        data = image_bytes(20, 10, fmt=fmt)
        img = upload_ok(client, admin, project["id"], data, filename=f"x.{fmt.lower()}")
        assert (img["width"], img["height"]) == (20, 10)
        r = client.get(f"/v1/images/{img['id']}/file", headers=admin)
        assert r.content == data
        assert r.headers["content-type"] == f"image/{fmt.lower()}"

    def test_filename_is_only_the_last_path_component(self, client, admin, project):
        img = upload_ok(client, admin, project["id"], image_bytes(), filename="../../etc/x.png")
        assert img["filename"] == "x.png"

    def test_category_added_after_an_upload_is_usable_at_once(self, client, admin, project):
        """The upload path caches a project's categories: one added since must not read as
        an unknown tag."""
        assert upload(client, admin, project["id"], image_bytes(seed=1), "cat").status_code == 201
        r = upload(client, admin, project["id"], image_bytes(seed=2), "fox")
        assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_tag"
        r = client.post(
            f"/v1/projects/{project['id']}/categories", json={"name": "fox"}, headers=admin
        )
        assert r.status_code == 201, r.text
        r = upload(client, admin, project["id"], image_bytes(seed=2), "fox,cat")
        assert r.status_code == 201 and r.json()["tags"] == ["cat", "fox"]

    def test_failed_insert_leaves_no_blob_and_no_row(self, client, admin, project, settings):
        """A database error after the blob was written: the blob goes, nothing is stored,
        and the client gets a JSON 500 (PostgreSQL's one-statement path; SQLite's unit of
        work rolls back the same way)."""
        from sqlalchemy import text

        from app.db import make_engine

        if not settings.db_url.startswith("postgresql"):
            pytest.skip("a PostgreSQL trigger makes the insert fail")
        engine = make_engine(settings.db_url, pool_size=1)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_image() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN IF NEW.filename = 'refused.png' THEN "
                    "RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_image BEFORE INSERT ON images "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_image()"
                )
            )
        try:
            before = blob_files(settings)
            r = upload(
                client, admin, project["id"], image_bytes(seed=9), "cat", filename="refused.png"
            )
            assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
            assert blob_files(settings) == before
            assert count_rows(settings, Image) == 0
        finally:
            with engine.begin() as conn:
                conn.execute(text("DROP TRIGGER refuse_image ON images"))
                conn.execute(text("DROP FUNCTION refuse_image()"))
            engine.dispose()
        assert upload(client, admin, project["id"], image_bytes(seed=9), "cat").status_code == 201


class TestMetadata:
    def test_fields_match_the_contract(self, client, admin, project):
        data = image_bytes(40, 30, seed=5)
        mask = mask_bytes(stripes_mask(40, 30, (0, 2)))
        created = upload_ok(client, admin, project["id"], data, tags="dog", mask=mask)
        r = client.get(f"/v1/images/{created['id']}", headers=admin)
        assert r.status_code == 200
        body = r.json()
        assert set(body) >= {
            "id",
            "project_id",
            "sha256",
            "width",
            "height",
            "filename",
            "tags",
            "has_human_mask",
            "has_pseudo_mask",
        }
        assert body["id"] == created["id"] and body["project_id"] == project["id"]
        assert body["sha256"] == hashlib.sha256(data).hexdigest()
        assert (body["width"], body["height"]) == (40, 30)
        assert body["filename"] == "img.png" and body["tags"] == ["dog"]
        assert body["has_human_mask"] is True and body["has_pseudo_mask"] is False

    def test_unknown_image(self, client, admin):
        r = client.get("/v1/images/424242", headers=admin)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


class TestFile:
    def test_returns_original_bytes_with_etag(self, client, admin, project):
        data = image_bytes(seed=11)
        img = upload_ok(client, admin, project["id"], data)
        r = client.get(f"/v1/images/{img['id']}/file", headers=admin)
        assert r.status_code == 200
        assert r.content == data
        assert r.headers["content-type"] == "image/png"
        assert r.headers["etag"].startswith('"') and r.headers["etag"].endswith('"')

    def test_if_none_match_gives_304(self, client, admin, project):
        img = upload_ok(client, admin, project["id"], image_bytes(seed=12))
        etag = client.get(f"/v1/images/{img['id']}/file", headers=admin).headers["etag"]
        r = client.get(f"/v1/images/{img['id']}/file", headers={**admin, "If-None-Match": etag})
        assert r.status_code == 304 and r.content == b""
        assert r.headers["etag"] == etag

    def test_other_etag_gives_bytes(self, client, admin, project):
        data = image_bytes(seed=13)
        img = upload_ok(client, admin, project["id"], data)
        r = client.get(f"/v1/images/{img['id']}/file", headers={**admin, "If-None-Match": '"x"'})
        assert r.status_code == 200 and r.content == data


class TestTags:
    def test_put_replaces_tags(self, client, admin, project):
        img = upload_ok(client, admin, project["id"], image_bytes(), tags="cat,dog")
        r = client.put(f"/v1/images/{img['id']}/tags", json={"tags": ["bird"]}, headers=admin)
        assert r.status_code == 200 and r.json()["tags"] == ["bird"]
        assert client.get(f"/v1/images/{img['id']}", headers=admin).json()["tags"] == ["bird"]

    def test_put_empty_clears_tags(self, client, admin, project):
        img = upload_ok(client, admin, project["id"], image_bytes(), tags="cat")
        r = client.put(f"/v1/images/{img['id']}/tags", json={"tags": []}, headers=admin)
        assert r.status_code == 200 and r.json()["tags"] == []
        assert list_all_images(client, admin, project["id"], tag="cat") == []

    def test_put_cannot_drop_a_tag_the_human_mask_paints(self, client, admin, project):
        """cat is class 1: a mask painting it keeps the tag; other tags still change."""
        arr = np.zeros((24, 32), np.uint8)
        arr[:10, :10] = 1
        img = upload_ok(
            client, admin, project["id"], image_bytes(seed=41), "cat,dog", mask_bytes(arr)
        )
        r = client.put(f"/v1/images/{img['id']}/tags", json={"tags": ["bird"]}, headers=admin)
        assert r.status_code == 409, r.text
        body = r.json()["error"]
        assert body["code"] == "conflict" and body["detail"] == {"painted": ["cat"]}
        assert client.get(f"/v1/images/{img['id']}", headers=admin).json()["tags"] == ["cat", "dog"]
        r = client.put(
            f"/v1/images/{img['id']}/tags", json={"tags": ["cat", "bird"]}, headers=admin
        )
        assert r.status_code == 200 and r.json()["tags"] == ["cat", "bird"]

    def test_put_unknown_tag_changes_nothing(self, client, admin, project):
        img = upload_ok(client, admin, project["id"], image_bytes(), tags="cat")
        r = client.put(
            f"/v1/images/{img['id']}/tags", json={"tags": ["dog", "zebra"]}, headers=admin
        )
        assert r.status_code == 422
        err = r.json()["error"]
        assert err["code"] == "unknown_tag" and err["detail"]["unknown"] == ["zebra"]
        assert client.get(f"/v1/images/{img['id']}", headers=admin).json()["tags"] == ["cat"]


class TestDelete:
    def test_delete_then_not_found_and_blobs_gone(self, client, admin, project, settings):
        mask = mask_bytes(stripes_mask(32, 24, (0, 1)))
        img = upload_ok(client, admin, project["id"], image_bytes(seed=20), mask=mask)
        add_pseudo_mask(
            settings, img["id"], stripes_mask(32, 24, (2, 0)), np.full((24, 32), 7, np.uint8)
        )
        assert len(blob_files(settings)) == 4  # image, human mask, pseudo-mask, confidence
        r = client.delete(f"/v1/images/{img['id']}", headers=admin)
        assert r.status_code == 204 and r.content == b""
        assert client.get(f"/v1/images/{img['id']}", headers=admin).status_code == 404
        assert client.get(f"/v1/images/{img['id']}/file", headers=admin).status_code == 404
        assert client.delete(f"/v1/images/{img['id']}", headers=admin).status_code == 404
        assert list_all_images(client, admin, project["id"]) == []
        assert count_rows(settings, Mask) == 0
        assert blob_files(settings) == []

    def test_blob_kept_when_other_project_has_same_bytes(self, client, admin, settings):
        a = make_project(client, admin, name="a")
        b = make_project(client, admin, name="b")
        data = image_bytes(seed=21)
        ia = upload_ok(client, admin, a["id"], data)
        ib = upload_ok(client, admin, b["id"], data)
        before = blob_files(settings)
        assert client.delete(f"/v1/images/{ia['id']}", headers=admin).status_code == 204
        assert blob_files(settings) == before
        r = client.get(f"/v1/images/{ib['id']}/file", headers=admin)
        assert r.status_code == 200 and r.content == data

    def test_mask_blob_kept_when_other_image_uses_same_mask(self, client, admin, project, settings):
        mask = mask_bytes(stripes_mask(32, 24, (0, 3)))
        i1 = upload_ok(client, admin, project["id"], image_bytes(seed=22), mask=mask)
        i2 = upload_ok(client, admin, project["id"], image_bytes(seed=23), mask=mask)
        assert len(blob_files(settings)) == 3
        assert client.delete(f"/v1/images/{i1['id']}", headers=admin).status_code == 204
        assert len(blob_files(settings)) == 2
        r = client.get(f"/v1/images/{i2['id']}/mask", headers=admin)
        assert r.status_code == 200

    def test_delete_leaves_other_images(self, client, admin, project):
        i1 = upload_ok(client, admin, project["id"], image_bytes(seed=24))
        i2 = upload_ok(client, admin, project["id"], image_bytes(seed=25))
        assert client.delete(f"/v1/images/{i1['id']}", headers=admin).status_code == 204
        assert [i["id"] for i in list_all_images(client, admin, project["id"])] == [i2["id"]]


class TestList:
    def test_keyset_pagination(self, client, admin, project):
        ids = [upload_ok(client, admin, project["id"], image_bytes(seed=s))["id"] for s in range(5)]
        seen: list[int] = []
        pages = 0
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            r = client.get(f"/v1/projects/{project['id']}/images", params=params, headers=admin)
            assert r.status_code == 200
            page = r.json()
            pages += 1
            assert len(page["items"]) <= 2
            seen.extend(i["id"] for i in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert pages < 10
        assert seen == sorted(ids) and pages == 3

    def test_exact_fit_has_no_next_cursor(self, client, admin, project):
        for s in range(3):
            upload_ok(client, admin, project["id"], image_bytes(seed=s))
        r = client.get(f"/v1/projects/{project['id']}/images?limit=3", headers=admin).json()
        assert len(r["items"]) == 3 and r["next_cursor"] is None

    def test_images_of_other_projects_are_not_listed(self, client, admin, project):
        other = make_project(client, admin, name="other")
        upload_ok(client, admin, other["id"], image_bytes(seed=1))
        mine = upload_ok(client, admin, project["id"], image_bytes(seed=2))
        assert [i["id"] for i in list_all_images(client, admin, project["id"])] == [mine["id"]]

    def test_invalid_cursor(self, client, admin, project):
        r = client.get(f"/v1/projects/{project['id']}/images?cursor=%%%", headers=admin)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"

    @pytest.mark.parametrize("limit", [0, 1001])
    def test_limit_out_of_range(self, client, admin, project, limit):
        r = client.get(f"/v1/projects/{project['id']}/images?limit={limit}", headers=admin)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"

    def test_filter_by_tag(self, client, admin, project):
        cat = upload_ok(client, admin, project["id"], image_bytes(seed=1), tags="cat")
        both = upload_ok(client, admin, project["id"], image_bytes(seed=2), tags="cat,dog")
        upload_ok(client, admin, project["id"], image_bytes(seed=3), tags="dog")
        upload_ok(client, admin, project["id"], image_bytes(seed=4))
        got = list_all_images(client, admin, project["id"], tag="cat")
        assert [i["id"] for i in got] == [cat["id"], both["id"]]
        assert list_all_images(client, admin, project["id"], tag="bird") == []

    def test_filter_by_unknown_tag(self, client, admin, project):
        r = client.get(f"/v1/projects/{project['id']}/images?tag=zebra", headers=admin)
        assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_tag"

    def test_filter_has_human_mask(self, client, admin, project):
        mask = mask_bytes(stripes_mask(32, 24, (0, 1)))
        masked = upload_ok(client, admin, project["id"], image_bytes(seed=1), mask=mask)
        plain = upload_ok(client, admin, project["id"], image_bytes(seed=2))
        yes = list_all_images(client, admin, project["id"], has_human_mask="true")
        no = list_all_images(client, admin, project["id"], has_human_mask="false")
        assert [i["id"] for i in yes] == [masked["id"]]
        assert [i["id"] for i in no] == [plain["id"]]

    def test_filter_has_pseudo_mask(self, client, admin, project, settings):
        a = upload_ok(client, admin, project["id"], image_bytes(seed=1))
        b = upload_ok(client, admin, project["id"], image_bytes(seed=2))
        add_pseudo_mask(settings, b["id"], stripes_mask(32, 24, (0, 1)))
        yes = list_all_images(client, admin, project["id"], has_pseudo_mask="true")
        no = list_all_images(client, admin, project["id"], has_pseudo_mask="false")
        assert [i["id"] for i in yes] == [b["id"]] and yes[0]["has_pseudo_mask"] is True
        assert [i["id"] for i in no] == [a["id"]] and no[0]["has_pseudo_mask"] is False

    def test_filters_combine_with_pagination(self, client, admin, project):
        tags = ["cat", "dog", "cat", "cat", "dog", "cat"]
        ids = [
            upload_ok(client, admin, project["id"], image_bytes(seed=s), tags=t)["id"]
            for s, t in enumerate(tags)
        ]
        want = [i for i, t in zip(ids, tags, strict=True) if t == "cat"]
        got = list_all_images(client, admin, project["id"], tag="cat", limit=1)
        assert [i["id"] for i in got] == want

    def test_filter_review_state(self, client, admin, project, settings):
        a = upload_ok(client, admin, project["id"], image_bytes(seed=1))
        b = upload_ok(client, admin, project["id"], image_bytes(seed=2))
        add_pseudo_mask(settings, a["id"], stripes_mask(32, 24, (0, 1)), review_state="accepted")
        add_pseudo_mask(settings, b["id"], stripes_mask(32, 24, (0, 1)), review_state="pending")
        got = list_all_images(client, admin, project["id"], review_state="accepted")
        assert [i["id"] for i in got] == [a["id"]]

    def test_page_items_read_exactly_like_the_image_route(self, client, admin, project, settings):
        """PostgreSQL renders list pages itself (image_list.page_json_stmt): every field,
        escaping and timestamp form must match ImageOut as the single-image route writes it."""
        from datetime import UTC, datetime

        from sqlalchemy import update

        from app.db import make_engine

        pid = project["id"]
        mask = mask_bytes(stripes_mask(32, 24, (0, 1)))
        ims = [
            upload_ok(
                client, admin, pid, image_bytes(seed=1), tags="dog,cat", filename='a "q" é\\.png'
            ),
            upload_ok(client, admin, pid, image_bytes(seed=2), mask=mask, filename="b\n.png"),
            upload_ok(client, admin, pid, image_bytes(seed=3), tags="bird"),
        ]
        add_pseudo_mask(settings, ims[2]["id"], stripes_mask(32, 24, (0, 1)))
        engine = make_engine(settings.db_url, pool_size=1)
        with engine.begin() as conn:  # a whole second: pydantic writes no fraction then
            conn.execute(
                update(Image)
                .where(Image.id == ims[0]["id"])
                .values(created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
            )
        engine.dispose()
        want = [client.get(f"/v1/images/{i['id']}", headers=admin).json() for i in ims]
        assert want[0]["created_at"] == "2026-01-02T03:04:05Z"
        assert want[0]["tags"] == ["cat", "dog"] and want[1]["has_human_mask"] is True
        for limit in (1, 2, 3, 50):
            assert list_all_images(client, admin, pid, limit=limit) == want
        assert list_all_images(client, admin, pid, has_pseudo_mask="true") == want[2:]
        assert list_all_images(client, admin, pid, tag="cat", has_human_mask="false") == want[:1]

    def test_empty_project_and_missing_project(self, client, admin, project):
        r = client.get(f"/v1/projects/{project['id']}/images", headers=admin)
        assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}
        r = client.get("/v1/projects/999999/images?tag=cat", headers=admin)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def _good(seed: int) -> bytes:
    return image_bytes(seed=100 + seed)


class TestBatch:
    def test_per_item_statuses_and_all_or_nothing(self, client, admin, project, settings):
        good_mask = mask_bytes(stripes_mask(32, 24, (0, 1)))
        bad_mask = mask_bytes(stripes_mask(16, 16, (0, 1)))  # wrong size
        files = {
            "a.png": _good(1),
            "b.png": _good(2),
            "c.png": _good(3),
            "bad.png": b"not an image at all",
            "d.png": _good(4),
            "a_mask.png": good_mask,
            "d_mask.png": bad_mask,
        }
        manifest = {
            "a.png": {"tags": ["cat"], "mask": "a_mask.png"},
            "b.png": {"tags": "dog,bird"},
            "bad.png": {"tags": ["cat"]},
            "d.png": {"tags": ["cat"], "mask": "d_mask.png"},
            "c.png": {},
        }
        r = batch_upload(client, admin, project["id"], files, manifest)
        assert r.status_code == 200, r.text
        items = {i["filename"]: i for i in r.json()["items"]}
        assert [i["filename"] for i in r.json()["items"]] == list(manifest)
        assert items["a.png"]["status"] == "created"
        assert items["a.png"]["image"]["has_human_mask"] is True
        assert items["a.png"]["image"]["tags"] == ["cat"]
        assert items["b.png"]["status"] == "created"
        assert items["b.png"]["image"]["tags"] == ["dog", "bird"]
        assert items["c.png"]["status"] == "created" and items["c.png"]["image"]["tags"] == []
        assert items["bad.png"]["status"] == "error" and items["bad.png"]["image"] is None
        assert items["bad.png"]["error"]["code"] == "invalid_image"
        assert items["d.png"]["status"] == "error"
        assert items["d.png"]["error"]["code"] == "mask_size_mismatch"

        stored = list_all_images(client, admin, project["id"])
        assert sorted(i["filename"] for i in stored) == ["a.png", "b.png", "c.png"]
        assert count_rows(settings, Image) == 3 and count_rows(settings, Mask) == 1
        # the three good images and a's mask; nothing of d or bad
        assert len(blob_files(settings)) == 4
        fetched = client.get(f"/v1/images/{items['a.png']['image']['id']}/file", headers=admin)
        assert fetched.content == files["a.png"]

    def test_duplicate_of_existing_image_is_exists(self, client, admin, project):
        first = upload_ok(client, admin, project["id"], _good(1))
        r = batch_upload(
            client,
            admin,
            project["id"],
            {"x.png": _good(1), "y.png": _good(2)},
            {"x.png": {}, "y.png": {}},
        )
        items = r.json()["items"]
        assert items[0]["status"] == "exists" and items[0]["image"]["id"] == first["id"]
        assert items[1]["status"] == "created"
        assert len(list_all_images(client, admin, project["id"])) == 2

    def test_item_with_unknown_tag_is_an_error_item(self, client, admin, project, settings):
        r = batch_upload(
            client,
            admin,
            project["id"],
            {"x.png": _good(1), "y.png": _good(2)},
            {"x.png": {"tags": ["zebra"]}, "y.png": {"tags": ["cat"]}},
        )
        items = r.json()["items"]
        assert items[0]["status"] == "error" and items[0]["error"]["code"] == "unknown_tag"
        assert items[1]["status"] == "created"
        assert [i["filename"] for i in list_all_images(client, admin, project["id"])] == ["y.png"]
        assert len(blob_files(settings)) == 1

    def test_manifest_entry_without_file_is_an_error_item(self, client, admin, project):
        r = batch_upload(
            client, admin, project["id"], {"x.png": _good(1)}, {"x.png": {}, "ghost.png": {}}
        )
        items = {i["filename"]: i for i in r.json()["items"]}
        assert items["x.png"]["status"] == "created"
        assert items["ghost.png"]["status"] == "error"
        assert items["ghost.png"]["error"]["code"] == "validation_error"
        assert "ghost.png" in items["ghost.png"]["error"]["message"]

    @pytest.mark.parametrize(
        "manifest",
        [
            "{not json",
            '["x.png"]',
            '{"x.png": ["cat"]}',
            '{"x.png": {"tags": ["cat"], "colour": "red"}}',
            '{"x.png": {"tags": [1]}}',
            '{"x.png": {"mask": 3}}',
        ],
        ids=["not-json", "not-object", "entry-not-object", "unknown-field", "bad-tags", "bad-mask"],
    )
    def test_malformed_manifest_stores_nothing(self, client, admin, project, settings, manifest):
        files = {"x.png": _good(1), "y.png": _good(2)}
        r = batch_upload(client, admin, project["id"], files, manifest)
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["code"] == "validation_error" and "manifest" in err["message"]
        assert list_all_images(client, admin, project["id"]) == []
        assert count_rows(settings, Image) == 0
        assert blob_files(settings) == []

    def test_missing_manifest_is_validation_error(self, client, admin, project, settings):
        r = client.post(
            f"/v1/projects/{project['id']}/images/batch",
            files=[("files", ("x.png", _good(1), "image/png"))],
            headers=admin,
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
        assert blob_files(settings) == []


class TestMaskFlagsOnUpload:
    def test_upload_with_mask_sets_human_mask(self, client, admin, project):
        arr = stripes_mask(32, 24, (0, 1, 2, 3))
        img = upload_ok(client, admin, project["id"], image_bytes(), mask=mask_bytes(arr))
        assert img["has_human_mask"] is True
        got = client.get(f"/v1/images/{img['id']}/mask?source=human", headers=admin)
        assert got.status_code == 200 and got.headers["x-mask-source"] == "human"
