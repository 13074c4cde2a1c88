"""Many more concurrent requests than database connections and threads: no deadlock."""

from concurrent.futures import ThreadPoolExecutor

from tests.fixtures.build import image_bytes, make_project, upload


def test_requests_beyond_the_pool_all_finish(make_client, admin):
    # 2 connections and 2 threads for 24 concurrent requests: before admission slots,
    # requests holding connections waited for threads held by requests waiting for
    # connections, until the 30 s pool timeout turned them into 500s.
    client = make_client(db_pool_size=1, api_threads=2)
    pid = make_project(client, admin)["id"]
    iid = upload(client, admin, pid, image_bytes(seed=1), tags="cat").json()["id"]

    def one(i: int) -> int:
        if i % 2:
            return client.get(f"/v1/projects/{pid}/images", headers=admin).status_code
        return client.get(f"/v1/images/{iid}", headers=admin).status_code

    with ThreadPoolExecutor(max_workers=24) as pool:
        codes = list(pool.map(one, range(96)))
    assert codes == [200] * 96
