"""The same bytes uploaded by many clients at once: one row, no 500."""

from concurrent.futures import ThreadPoolExecutor

from tests.fixtures.build import image_bytes, make_project, upload


def test_concurrent_duplicate_uploads_make_one_image(client, admin):
    pid = make_project(client, admin)["id"]
    data = image_bytes(seed=4242)
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: upload(client, admin, pid, data, tags="cat"), range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1 and codes.count(200) == 7, codes
    assert len({r.json()["id"] for r in responses}) == 1
    listed = client.get(f"/v1/projects/{pid}/images", headers=admin).json()["items"]
    assert len(listed) == 1
