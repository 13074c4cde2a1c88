"""No input gives a 5xx: integers outside the database's range (PostgreSQL `integer`, the
type of every id column), booleans where an integer belongs, and out-of-range numbers inside
cursors are 422 `validation_error`; the largest integer in range is answered normally.
Ids start at 1: a path id (or body id) of 0 or below names nothing and is 422 too, as the
OpenAPI declares (`minimum: 1`); `?after=` starts at 0.

Every route is walked from the app itself, so a route added later without the bounded type
fails here.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from annotated_types import Ge, Le
from fastapi.routing import APIRoute, iter_route_contexts

from app.schemas.common import DB_INT_MAX, DB_INT_MIN, ID_MIN
from app.services import cursors
from tests.fixtures.build import make_project

TOO_BIG, TOO_SMALL = DB_INT_MAX + 1, DB_INT_MIN - 1
HUGE = 2**64  # past what the drivers can bind at all


@dataclass
class Route:
    path: str  # with the router's prefix
    methods: set[str]
    api_route: APIRoute


def int_params(route: Route) -> tuple[list[Any], list[Any]]:
    """The route's integer path and query parameters (dependencies included)."""
    path: list[Any] = []
    query: list[Any] = []
    todo = [route.api_route.dependant]
    while todo:
        dependant = todo.pop()
        path += [f for f in dependant.path_params if f.field_info.annotation is int]
        query += [f for f in dependant.query_params if f.field_info.annotation is int]
        todo += dependant.dependencies
    return path, query


def bounds(field: Any) -> tuple[int | None, int | None]:
    lo = [m.ge for m in field.field_info.metadata if isinstance(m, Ge)]
    hi = [m.le for m in field.field_info.metadata if isinstance(m, Le)]
    return (max(lo) if lo else None, min(hi) if hi else None)


def api_routes(client) -> list[Route]:
    """Every route of the app, included routers' too, with its full path."""
    return [
        Route(ctx.path, set(ctx.methods or ()), ctx.original_route)
        for ctx in iter_route_contexts(client.app.routes)
        if isinstance(ctx.original_route, APIRoute)
    ]


def fill(path: str, **values: int) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), 1)), path)


def assert_validation_error(r: Any) -> None:
    assert r.status_code == 422, (r.request.method, r.request.url, r.status_code, r.text)
    assert r.json()["error"]["code"] == "validation_error"


def test_every_integer_parameter_is_bounded_to_the_database_range(client):
    checked = 0
    for route in api_routes(client):
        path, query = int_params(route)
        for field in path + query:
            lo, hi = bounds(field)
            where = f"{route.path} {field.name}"
            assert lo is not None and hi is not None, f"{where} is unbounded"
            assert DB_INT_MIN <= lo <= hi <= DB_INT_MAX, where
            checked += 1
        for field in path:  # every path integer is an id
            assert bounds(field) == (ID_MIN, DB_INT_MAX), f"{route.path} {field.name}"
    assert checked >= 30  # the walk found the routes' ids and numbers


def test_the_openapi_declares_the_path_id_range(client):
    spec = client.get("/openapi.json").json()
    declared = 0
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            for param in op.get("parameters", []):
                if param["in"] == "path" and param["schema"].get("type") == "integer":
                    schema = param["schema"]
                    where = f"{method.upper()} {path} {param['name']}"
                    assert (schema.get("minimum"), schema.get("maximum")) == (
                        ID_MIN,
                        DB_INT_MAX,
                    ), where
                    declared += 1
    assert declared >= 25


def test_out_of_range_path_ids_are_422_on_every_route(client, admin):
    make_project(client, admin)
    for route in api_routes(client):
        path, _query = int_params(route)
        for field in path:
            for method in sorted(route.methods):
                for value in (0, -1, TOO_BIG, TOO_SMALL, HUGE, -HUGE, 10**40):
                    url = fill(route.path, **{field.name: value})
                    assert_validation_error(client.request(method, url, headers=admin))
                url = fill(route.path, **{field.name: DB_INT_MAX})
                edge = client.request(method, url, headers=admin)
                assert edge.status_code < 500, (method, route.path, edge.text)


def test_out_of_range_query_integers_are_422_on_every_route(client, admin):
    make_project(client, admin)
    for route in api_routes(client):
        _path, query = int_params(route)
        for field in query:
            for method in sorted(route.methods):
                for value in (TOO_BIG, TOO_SMALL, HUGE):
                    r = client.request(
                        method, fill(route.path), params={field.name: value}, headers=admin
                    )
                    assert_validation_error(r)


def test_job_events_after_at_the_edges(client, admin):
    pid = make_project(client, admin)["id"]
    r = client.post(f"/v1/projects/{pid}/jobs", json={"kind": "stats"}, headers=admin)
    assert r.status_code == 202, r.text
    jid = r.json()["id"]
    assert_validation_error(client.get(f"/v1/jobs/{jid}/events?after={HUGE}", headers=admin))
    assert_validation_error(client.get(f"/v1/jobs/{jid}/events?after={TOO_BIG}", headers=admin))
    assert_validation_error(client.get(f"/v1/jobs/{jid}/events?after=-1", headers=admin))
    r = client.get(f"/v1/jobs/{jid}/events?after={DB_INT_MAX}", headers=admin)
    assert r.status_code == 200 and r.json()["items"] == []


@pytest.mark.parametrize(
    "mask_id", [0, -1, TOO_BIG, TOO_SMALL, HUGE, -HUGE, False, True, "5", 5.0, None]
)
def test_batch_review_mask_id_must_be_a_database_integer(client, admin, mask_id):
    pid = make_project(client, admin)["id"]
    body = {"items": [{"mask_id": mask_id, "decision": "accept"}]}
    assert_validation_error(client.post(f"/v1/projects/{pid}/reviews", json=body, headers=admin))


def test_batch_review_of_the_largest_id_is_answered_per_item(client, admin):
    pid = make_project(client, admin)["id"]
    body = {"items": [{"mask_id": DB_INT_MAX, "decision": "accept"}]}
    r = client.post(f"/v1/projects/{pid}/reviews", json=body, headers=admin)
    assert r.status_code < 500, r.text


def b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("route", "cursor"),
    [
        ("images", b64(str(TOO_BIG))),
        ("images", b64(str(HUGE))),
        ("review-queue", cursors.encode(0.5, TOO_BIG)),
        ("review-queue", cursors.encode(0.5, TOO_SMALL)),
        ("review-queue", cursors.encode(0.5, HUGE)),
        ("review-queue", b64("[NaN, 1]")),
        ("review-queue", b64("[Infinity, 1]")),
        ("masks", cursors.encode("2026-01-01T00:00:00+00:00", TOO_BIG)),
    ],
)
def test_cursors_with_out_of_range_numbers_are_422(client, admin, route, cursor):
    pid = make_project(client, admin)["id"]
    r = client.get(f"/v1/projects/{pid}/{route}", params={"cursor": cursor}, headers=admin)
    assert_validation_error(r)


@pytest.mark.parametrize("value", ["99999999999999999999", "-99999999999999999999", "1e400"])
def test_huge_updated_since_is_not_a_server_error(client, admin, value):
    pid = make_project(client, admin)["id"]
    r = client.get(f"/v1/projects/{pid}/masks", params={"updated_since": value}, headers=admin)
    assert r.status_code == 422 or r.status_code == 200, r.text


@pytest.mark.parametrize(
    "params",
    [{"lr": 10**400}, {"epochs": 10**400}, {"epochs": 2**64}, {"seed": True}, {"rounds": -(2**70)}],
)
def test_huge_job_params_are_422(client, admin, params):
    pid = make_project(client, admin)["id"]
    body = json.dumps({"kind": "pipeline", "params": params})
    r = client.post(
        f"/v1/projects/{pid}/jobs",
        content=body,
        headers={**admin, "content-type": "application/json"},
    )
    assert_validation_error(r)
