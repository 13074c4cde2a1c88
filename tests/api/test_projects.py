"""Projects and categories: creation, class indices, colours, listing, conflicts."""

from app.imaging import default_color
from tests.fixtures.build import add_category, make_project


class TestCreateProject:
    def test_indices_are_one_to_k_in_order(self, client, admin):
        p = make_project(client, admin, categories=("cat", "dog", "bird", "car"))
        assert [(c["name"], c["index"]) for c in p["categories"]] == [
            ("cat", 1),
            ("dog", 2),
            ("bird", 3),
            ("car", 4),
        ]
        assert isinstance(p["id"], int) and p["name"] == "demo"

    def test_default_colours_are_the_palette_and_distinct(self, client, admin):
        p = make_project(client, admin, categories=("a", "b", "c"))
        colors = [c["color"] for c in p["categories"]]
        assert colors == [default_color(1), default_color(2), default_color(3)]
        assert len(set(colors)) == 3

    def test_explicit_colour_is_kept(self, client, admin):
        r = client.post(
            "/v1/projects",
            json={
                "name": "p",
                "categories": [{"name": "cat", "color": "#12ab9F"}, {"name": "dog"}],
            },
            headers=admin,
        )
        assert r.status_code == 201, r.text
        cats = r.json()["categories"]
        assert cats[0]["color"].lower() == "#12ab9f"
        assert cats[1]["color"] == default_color(2)

    def test_project_without_categories(self, client, admin):
        p = make_project(client, admin, categories=())
        assert p["categories"] == []

    def test_invalid_colour_is_validation_error(self, client, admin):
        r = client.post(
            "/v1/projects",
            json={"name": "p", "categories": [{"name": "cat", "color": "red"}]},
            headers=admin,
        )
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "validation_error"
        assert client.get("/v1/projects", headers=admin).json()["items"] == []

    def test_duplicate_category_in_request_is_validation_error(self, client, admin):
        r = client.post(
            "/v1/projects",
            json={"name": "p", "categories": [{"name": "cat"}, {"name": "cat"}]},
            headers=admin,
        )
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "validation_error"

    def test_missing_name_is_validation_error(self, client, admin):
        r = client.post("/v1/projects", json={"categories": []}, headers=admin)
        assert r.status_code == 422
        err = r.json()["error"]
        assert err["code"] == "validation_error"
        assert any(d["loc"][-1] == "name" for d in err["detail"])

    def test_duplicate_project_name_is_conflict(self, client, admin):
        make_project(client, admin, name="same")
        r = client.post("/v1/projects", json={"name": "same", "categories": []}, headers=admin)
        assert r.status_code == 409
        err = r.json()["error"]
        assert err["code"] == "conflict" and "same" in err["message"]
        assert len(client.get("/v1/projects", headers=admin).json()["items"]) == 1


class TestReadProjects:
    def test_list_returns_every_project_in_id_order(self, client, admin):
        a = make_project(client, admin, name="a")
        b = make_project(client, admin, name="b", categories=("x",))
        r = client.get("/v1/projects", headers=admin)
        assert r.status_code == 200
        items = r.json()["items"]
        assert [p["id"] for p in items] == [a["id"], b["id"]]
        assert items[1]["categories"] == b["categories"]

    def test_get_one(self, client, admin):
        p = make_project(client, admin)
        r = client.get(f"/v1/projects/{p['id']}", headers=admin)
        assert r.status_code == 200
        body = r.json()
        assert body["id"] == p["id"] and body["name"] == "demo"
        assert body["categories"] == p["categories"]
        assert set(body["categories"][0]) >= {"id", "name", "index", "color"}

    def test_unknown_project_is_not_found(self, client, admin):
        r = client.get("/v1/projects/999999", headers=admin)
        assert r.status_code == 404
        err = r.json()["error"]
        assert err["code"] == "not_found" and "999999" in err["message"]


class TestCategories:
    def test_add_category_gets_next_index(self, client, admin):
        p = make_project(client, admin, categories=("cat", "dog"))
        r = add_category(client, admin, p["id"], "bird")
        assert r.status_code == 201, r.text
        c = r.json()
        assert c["name"] == "bird" and c["index"] == 3 and c["color"] == default_color(3)
        again = client.get(f"/v1/projects/{p['id']}", headers=admin).json()
        assert [x["index"] for x in again["categories"]] == [1, 2, 3]

    def test_add_category_with_colour(self, client, admin):
        p = make_project(client, admin, categories=())
        r = add_category(client, admin, p["id"], "only", color="#00ff00")
        assert r.status_code == 201
        assert r.json()["index"] == 1 and r.json()["color"] == "#00ff00"

    def test_add_category_with_invalid_colour(self, client, admin):
        p = make_project(client, admin, categories=("cat",))
        r = add_category(client, admin, p["id"], "dog", color="#zzzzzz")
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "validation_error"
        cats = client.get(f"/v1/projects/{p['id']}", headers=admin).json()["categories"]
        assert [c["name"] for c in cats] == ["cat"]

    def test_duplicate_category_is_conflict(self, client, admin):
        p = make_project(client, admin, categories=("cat", "dog"))
        r = add_category(client, admin, p["id"], "dog")
        assert r.status_code == 409
        err = r.json()["error"]
        assert err["code"] == "conflict" and "dog" in err["message"]
        cats = client.get(f"/v1/projects/{p['id']}", headers=admin).json()["categories"]
        assert [c["name"] for c in cats] == ["cat", "dog"]

    def test_same_category_name_in_two_projects_is_fine(self, client, admin):
        make_project(client, admin, name="a", categories=("cat",))
        b = make_project(client, admin, name="b", categories=())
        r = add_category(client, admin, b["id"], "cat")
        assert r.status_code == 201 and r.json()["index"] == 1

    def test_add_category_to_unknown_project(self, client, admin):
        r = add_category(client, admin, 999999, "cat")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"
