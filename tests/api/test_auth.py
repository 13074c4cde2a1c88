"""API keys: authentication (401), roles (403) and project scope (404 outside it)."""

import numpy as np
import pytest

from tests.fixtures.app import bearer
from tests.fixtures.build import (
    add_pseudo_mask,
    image_bytes,
    make_project,
    mask_bytes,
    put_mask,
    stripes_mask,
    upload,
    upload_ok,
)


def assert_error(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] == code and err["message"]
    return err


class TestAuthentication:
    def test_no_header(self, client):
        r = client.get("/v1/projects")
        err = assert_error(r, 401, "unauthorized")
        assert "Authorization" in err["message"]
        assert r.headers["www-authenticate"] == "Bearer"

    @pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "t2m_abc"])
    def test_malformed_header(self, client, value):
        assert_error(
            client.get("/v1/projects", headers={"Authorization": value}), 401, "unauthorized"
        )

    def test_wrong_key(self, client, admin):
        r = client.get("/v1/projects", headers=bearer("t2m_" + "x" * 43))
        err = assert_error(r, 401, "unauthorized")
        assert "not valid" in err["message"]

    def test_valid_key_with_lowercase_scheme(self, client, new_key):
        key = new_key("viewer")
        r = client.get("/v1/projects", headers={"Authorization": f"bearer {key}"})
        assert r.status_code == 200

    def test_unauthenticated_write_leaves_nothing(self, client, admin):
        r = client.post("/v1/projects", json={"name": "p", "categories": []})
        assert_error(r, 401, "unauthorized")
        assert client.get("/v1/projects", headers=admin).json()["items"] == []

    @pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
    def test_probes_need_no_key(self, client, path):
        r = client.get(path)
        assert r.status_code == 200, r.text

    def test_metrics_is_prometheus_text(self, client, admin):
        client.get("/v1/projects", headers=admin)
        r = client.get("/metrics")
        assert r.headers["content-type"].startswith("text/plain")
        assert 'route="/v1/projects"' in r.text
        assert "tag2mask_http_request_duration_seconds" in r.text


@pytest.fixture
def world(client, admin, settings):
    """A project with one image (human mask + pseudo-mask with confidence)."""
    p = make_project(client, admin)
    mask = stripes_mask(32, 24, (0, 1))
    img = upload_ok(client, admin, p["id"], image_bytes(seed=1), tags="cat", mask=mask_bytes(mask))
    add_pseudo_mask(settings, img["id"], mask, confidence=np.full((24, 32), 200, np.uint8))
    return {"project": p, "image": img}


class TestRoles:
    @pytest.mark.parametrize(
        "method,path",
        [
            ("post", "/v1/projects"),
            ("post", "/v1/projects/{pid}/categories"),
            ("post", "/v1/projects/{pid}/images"),
            ("post", "/v1/projects/{pid}/images/batch"),
            ("put", "/v1/images/{iid}/tags"),
            ("put", "/v1/images/{iid}/mask"),
            ("delete", "/v1/images/{iid}"),
        ],
    )
    def test_viewer_cannot_write(self, client, admin, new_key, world, method, path):
        viewer = bearer(new_key("viewer"))
        url = path.format(pid=world["project"]["id"], iid=world["image"]["id"])
        kwargs: dict = {}
        if path.endswith("/images"):
            kwargs["files"] = {"file": ("x.png", image_bytes(seed=9), "image/png")}
        elif path.endswith("/batch"):
            kwargs["files"] = [("files", ("x.png", image_bytes(seed=9), "image/png"))]
            kwargs["data"] = {"manifest": '{"x.png": {"tags": []}}'}
        elif path.endswith("/mask"):
            kwargs["files"] = {"file": ("m.png", mask_bytes(np.zeros((24, 32))), "image/png")}
        elif path.endswith("/tags"):
            kwargs["json"] = {"tags": []}
        elif method == "post":
            kwargs["json"] = {"name": "new"}
        r = client.request(method.upper(), url, headers=viewer, **kwargs)
        err = assert_error(r, 403, "forbidden")
        assert "viewer" in err["message"]
        # nothing changed
        images = client.get(f"/v1/projects/{world['project']['id']}/images", headers=admin).json()
        assert [i["id"] for i in images["items"]] == [world["image"]["id"]]
        assert images["items"][0]["tags"] == ["cat"]
        projects = client.get("/v1/projects", headers=admin).json()["items"]
        assert len(projects) == 1 and len(projects[0]["categories"]) == 3

    def test_viewer_can_read(self, client, new_key, world):
        viewer = bearer(new_key("viewer"))
        iid = world["image"]["id"]
        for path in (
            "/v1/projects",
            f"/v1/projects/{world['project']['id']}",
            f"/v1/projects/{world['project']['id']}/images",
            f"/v1/images/{iid}",
            f"/v1/images/{iid}/file",
            f"/v1/images/{iid}/mask",
            f"/v1/images/{iid}/confidence",
        ):
            assert client.get(path, headers=viewer).status_code == 200, path

    def test_annotator_can_upload_tag_and_mask(self, client, admin, new_key):
        p = make_project(client, admin)
        ann = bearer(new_key("annotator"))
        img = upload_ok(client, ann, p["id"], image_bytes(seed=3), tags="cat")
        r = client.put(f"/v1/images/{img['id']}/tags", json={"tags": ["dog"]}, headers=ann)
        assert r.status_code == 200 and r.json()["tags"] == ["dog"]
        r = put_mask(client, ann, img["id"], mask_bytes(stripes_mask(32, 24, (0, 2))))
        assert r.status_code == 200 and r.json()["source"] == "human"
        assert client.delete(f"/v1/images/{img['id']}", headers=ann).status_code == 204

    def test_annotator_cannot_create_projects(self, client, admin, new_key):
        ann = bearer(new_key("annotator"))
        r = client.post("/v1/projects", json={"name": "p", "categories": []}, headers=ann)
        err = assert_error(r, 403, "forbidden")
        assert "admin" in err["message"]
        assert client.get("/v1/projects", headers=admin).json()["items"] == []

    def test_annotator_cannot_add_categories(self, client, admin, new_key):
        p = make_project(client, admin)
        ann = bearer(new_key("annotator", p["id"]))
        r = client.post(f"/v1/projects/{p['id']}/categories", json={"name": "x"}, headers=ann)
        assert_error(r, 403, "forbidden")

    def test_scoped_admin_cannot_create_projects(self, client, admin, new_key):
        p = make_project(client, admin)
        scoped = bearer(new_key("admin", p["id"]))
        r = client.post("/v1/projects", json={"name": "other", "categories": []}, headers=scoped)
        assert_error(r, 403, "forbidden")
        assert len(client.get("/v1/projects", headers=admin).json()["items"]) == 1


class TestProjectScope:
    @pytest.fixture
    def two(self, client, admin, settings, new_key):
        """Projects A and B, each with a masked image; a key scoped to A."""
        out = {}
        for name, seed in (("a", 1), ("b", 2)):
            p = make_project(client, admin, name=name)
            mask = stripes_mask(32, 24, (0, 1))
            img = upload_ok(
                client, admin, p["id"], image_bytes(seed=seed), tags="cat", mask=mask_bytes(mask)
            )
            add_pseudo_mask(settings, img["id"], mask, confidence=np.full((24, 32), 9, np.uint8))
            out[name] = {"project": p, "image": img}
        out["key"] = bearer(new_key("annotator", out["a"]["project"]["id"]))
        return out

    @pytest.mark.parametrize(
        "path",
        [
            "/v1/projects/{pid}",
            "/v1/projects/{pid}/images",
            "/v1/images/{iid}",
            "/v1/images/{iid}/file",
            "/v1/images/{iid}/mask",
            "/v1/images/{iid}/mask?format=rle",
            "/v1/images/{iid}/mask?source=pseudo",
            "/v1/images/{iid}/confidence",
        ],
    )
    def test_other_projects_resources_are_not_found(self, client, admin, two, path):
        own = path.format(pid=two["a"]["project"]["id"], iid=two["a"]["image"]["id"])
        other = path.format(pid=two["b"]["project"]["id"], iid=two["b"]["image"]["id"])
        assert client.get(own, headers=two["key"]).status_code == 200
        assert client.get(other, headers=admin).status_code == 200  # it exists
        assert_error(client.get(other, headers=two["key"]), 404, "not_found")

    def test_cannot_write_other_projects_image(self, client, admin, two):
        other = two["b"]["image"]["id"]
        r = client.put(f"/v1/images/{other}/tags", json={"tags": []}, headers=two["key"])
        assert_error(r, 404, "not_found")
        r = put_mask(client, two["key"], other, mask_bytes(np.zeros((24, 32))))
        assert_error(r, 404, "not_found")
        assert_error(client.delete(f"/v1/images/{other}", headers=two["key"]), 404, "not_found")
        after = client.get(f"/v1/images/{other}", headers=admin).json()
        assert after["tags"] == ["cat"] and after["has_human_mask"] is True

    def test_cannot_upload_into_other_project(self, client, admin, two):
        pid = two["b"]["project"]["id"]
        r = upload(client, two["key"], pid, image_bytes(seed=50))
        assert_error(r, 404, "not_found")
        assert len(client.get(f"/v1/projects/{pid}/images", headers=admin).json()["items"]) == 1

    def test_listing_projects_shows_only_its_own(self, client, admin, two):
        r = client.get("/v1/projects", headers=two["key"])
        assert r.status_code == 200
        assert [p["id"] for p in r.json()["items"]] == [two["a"]["project"]["id"]]
        assert len(client.get("/v1/projects", headers=admin).json()["items"]) == 2
