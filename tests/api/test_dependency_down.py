"""When the database or the broker does not answer, clients get 503 with Retry-After (not
500), /readyz names the dependency, and a pooled connection the database dropped (a
restart) costs the lean routes no failed request."""

from __future__ import annotations

import io

import numpy as np
import pytest
import redis
from PIL import Image
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.api.routes.health import broker_ping

DOWN_PG = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
DOWN_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture(params=["postgres"])
def db_url(request):
    """PostgreSQL only: these tests drop its connections."""
    from tests.fixtures.db import truncate_all

    url = request.getfixturevalue("pg_url")
    yield url
    truncate_all(url)


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def drop_connections(db_url: str) -> int:
    """What a database restart does to the app's pooled connections."""
    admin = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        n = c.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": make_url(db_url).database},
        ).scalar()
    admin.dispose()
    return int(n or 0)


def assert_unavailable(r, dependency: str) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "2"
    err = r.json()["error"]
    assert err["code"] == "unavailable" and err["detail"] == {"dependency": dependency}


def test_database_down_answers_503_with_retry_after(make_client):
    client = make_client(database_url=DOWN_PG, job_runner="celery")
    for method, path in (("GET", "/v1/projects"), ("GET", "/v1/images/1/mask")):
        r = client.request(method, path, headers={"Authorization": "Bearer t2m_nope"})
        assert_unavailable(r, "database")
    r = client.get("/readyz")
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    assert r.json()["error"]["detail"] == {"dependency": "database"}


def test_broker_down_readyz_names_it_and_a_job_is_still_accepted(make_client, admin):
    client = make_client(job_runner="celery", redis_url=DOWN_REDIS)
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["error"]["detail"] == {"dependency": "broker"}
    pid = client.post(
        "/v1/projects", json={"name": "p", "categories": [{"name": "a"}]}, headers=admin
    )
    r = client.post(f"/v1/projects/{pid.json()['id']}/jobs", json={"kind": "stats"}, headers=admin)
    # The job is committed; its id goes to the broker after the commit, and the reaper
    # sends it again when it sat queued too long.
    assert r.status_code == 202 and r.json()["status"] == "queued"


def test_readyz_checks_the_broker_with_the_celery_runner(make_client, redis_url):
    broker_ping(redis_url)
    assert make_client(job_runner="celery", redis_url=redis_url).get("/readyz").status_code == 200
    with pytest.raises(redis.exceptions.ConnectionError):
        broker_ping(DOWN_REDIS)


def test_dropped_connections_cost_lean_routes_nothing_and_orm_routes_one_503(client, admin, db_url):
    pid = client.post(
        "/v1/projects", json={"name": "p", "categories": [{"name": "a"}]}, headers=admin
    ).json()["id"]
    url = f"/v1/projects/{pid}/images"
    r = client.post(url, files={"file": ("a.png", png(1), "image/png")}, headers=admin)
    assert r.status_code == 201
    iid = r.json()["id"]
    assert client.get(f"/v1/images/{iid}/file", headers=admin).status_code == 200
    assert client.get(f"/v1/projects/{pid}", headers=admin).status_code == 200

    assert drop_connections(db_url) >= 2
    # lean read and lean upload: the dead pooled connection is replaced and the statement
    # runs again on a new one
    assert client.get(f"/v1/images/{iid}/file", headers=admin).status_code == 200
    r = client.post(url, files={"file": ("b.png", png(2), "image/png")}, headers=admin)
    assert r.status_code == 201
    # the ORM pool: a dropped connection may fail the request that finds it, as a 503
    r = client.get(f"/v1/projects/{pid}", headers=admin)
    if r.status_code != 200:
        assert_unavailable(r, "database")
    assert client.get(f"/v1/projects/{pid}", headers=admin).status_code == 200
