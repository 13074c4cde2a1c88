"""GET /v1/projects/{pid}/label-studio/config: the XML Label Studio's own parser reads back."""

from __future__ import annotations

import json

from label_studio_tools.core.label_config import parse_config

from tests.fixtures.app import bearer
from tests.fixtures.build import (
    add_category,
    add_pseudo_mask,
    image_bytes,
    make_project,
    stripes_mask,
    upload_ok,
)
from tests.worker.conftest import poll_job


def test_config_lists_every_category_with_its_colour_in_index_order(client, admin):
    r = client.post(
        "/v1/projects",
        json={"name": "ls", "categories": [{"name": "zebra", "color": "#123456"}, {"name": "a&b"}]},
        headers=admin,
    )
    pid = r.json()["id"]
    add_category(client, admin, pid, "cat")
    cats = client.get(f"/v1/projects/{pid}", headers=admin).json()["categories"]
    r = client.get(f"/v1/projects/{pid}/label-studio/config", headers=admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    parsed = parse_config(r.text)
    (name,) = parsed
    tag = parsed[name]
    assert name == "tag" and tag["type"] == "BrushLabels" and tag["to_name"] == ["image"]
    assert tag["inputs"] == [{"type": "Image", "value": "image"}]
    assert tag["labels"] == [c["name"] for c in sorted(cats, key=lambda c: c["index"])]
    assert [tag["labels_attrs"][c["name"]]["background"] for c in cats] == [
        c["color"] for c in cats
    ]
    assert tag["labels_attrs"]["zebra"]["background"] == "#123456"


def test_config_is_scoped_like_the_project(client, admin, new_key):
    pid = make_project(client, admin, name="one")["id"]
    other = make_project(client, admin, name="two")["id"]
    viewer = bearer(new_key("viewer", other))
    assert client.get(f"/v1/projects/{pid}/label-studio/config", headers=viewer).status_code == 404
    assert client.get(f"/v1/projects/{pid}/label-studio/config").status_code == 401
    r = client.get(f"/v1/projects/{other}/label-studio/config", headers=viewer)
    assert r.status_code == 200


def test_export_names_match_the_config(client, admin):
    pid = make_project(client, admin, name="names")["id"]
    im = upload_ok(client, admin, pid, image_bytes(20, 16, seed=1), tags="cat")
    add_pseudo_mask(client.app.state.settings, im["id"], stripes_mask(20, 16, (0, 1, 2)))
    parsed = parse_config(client.get(f"/v1/projects/{pid}/label-studio/config", headers=admin).text)
    r = client.post(
        f"/v1/projects/{pid}/jobs",
        json={"kind": "export", "params": {"format": "label-studio", "include": "best"}},
        headers=admin,
    )
    job, _ = poll_job(client, admin, r.json()["id"], {"succeeded", "failed"})
    (task,) = json.loads(client.get(f"/v1/jobs/{job['id']}/result", headers=admin).content)
    (pred,) = task["predictions"]
    assert pred["result"]
    for region in pred["result"]:
        assert region["from_name"] in parsed
        assert region["to_name"] in parsed[region["from_name"]]["to_name"]
        assert set(region["value"]["brushlabels"]) <= set(parsed[region["from_name"]]["labels"])
    value_key = parsed["tag"]["inputs"][0]["value"]
    assert value_key in task["data"]
