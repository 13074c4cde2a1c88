"""Admin key routes: list, create (secret once), revoke (401 at once); never a hash."""

import hashlib

import pytest

from tests.fixtures.app import bearer
from tests.fixtures.build import make_project


def create(client, headers, **body):
    return client.post("/v1/keys", json=body, headers=headers)


class TestKeyRoutes:
    def test_create_list_and_no_hash_anywhere(self, client, admin):
        r = create(client, admin, role="annotator", name="ann")
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["key"].startswith("t2m_") and made["key"].startswith(made["prefix"])
        assert r.headers["location"] == f"/v1/keys/{made['id']}"
        digest = hashlib.sha256(made["key"].encode()).hexdigest()
        listed = client.get("/v1/keys", headers=admin)
        assert listed.status_code == 200
        items = listed.json()["items"]
        assert [k["role"] for k in items] == ["admin", "annotator"]
        for k in items:
            assert set(k) == {
                "id",
                "role",
                "project_id",
                "name",
                "prefix",
                "created_at",
                "revoked_at",
            }
        assert digest not in listed.text and made["key"] not in listed.text
        assert client.get("/v1/projects", headers=bearer(made["key"])).status_code == 200

    def test_revoked_key_is_refused_at_once(self, client, admin):
        secret = create(client, admin, role="viewer").json()
        key = bearer(secret["key"])
        assert client.get("/v1/projects", headers=key).status_code == 200  # now cached
        r = client.post(f"/v1/keys/{secret['id']}/revoke", headers=admin)
        assert r.status_code == 200 and r.json()["revoked_at"] is not None
        for path in ("/v1/projects", "/v1/projects/1/images"):
            got = client.get(path, headers=key)
            assert got.status_code == 401 and got.json()["error"]["code"] == "unauthorized"
        again = client.post(f"/v1/keys/{secret['id']}/revoke", headers=admin)
        assert again.status_code == 200 and again.json() == r.json()
        active = client.get("/v1/keys?include_revoked=false", headers=admin).json()["items"]
        assert secret["id"] not in [k["id"] for k in active]

    def test_a_key_cannot_revoke_itself(self, client, admin):
        own = client.get("/v1/keys", headers=admin).json()["items"][0]
        r = client.post(f"/v1/keys/{own['id']}/revoke", headers=admin)
        assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
        assert client.get("/v1/keys", headers=admin).status_code == 200

    @pytest.mark.parametrize("role", ["annotator", "viewer"])
    def test_admin_only(self, client, admin, new_key, role):
        h = bearer(new_key(role))
        assert client.get("/v1/keys", headers=h).status_code == 403
        assert create(client, h, role="viewer").status_code == 403
        assert client.post("/v1/keys/1/revoke", headers=h).status_code == 403

    def test_unknown_key_and_unknown_project(self, client, admin):
        assert client.post("/v1/keys/999999/revoke", headers=admin).status_code == 404
        r = create(client, admin, role="viewer", project_id=999999)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"

    def test_scoped_admin_manages_only_its_project(self, client, admin, new_key):
        p1 = make_project(client, admin, name="one")["id"]
        p2 = make_project(client, admin, name="two")["id"]
        other = create(client, admin, role="viewer", project_id=p2).json()
        scoped = bearer(new_key("admin", p1))
        mine = create(client, scoped, role="viewer")
        assert mine.status_code == 201 and mine.json()["project_id"] == p1
        assert create(client, scoped, role="viewer", project_id=p2).status_code == 403
        ids = [k["id"] for k in client.get("/v1/keys", headers=scoped).json()["items"]]
        assert other["id"] not in ids and mine.json()["id"] in ids
        assert client.post(f"/v1/keys/{other['id']}/revoke", headers=scoped).status_code == 404
