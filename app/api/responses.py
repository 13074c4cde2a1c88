"""OpenAPI `responses` for the contract's errors: every status a route really answers.

Each error status is declared with the one error body (`ErrorBody`); `declare_errors`
adds what follows from a route's dependencies and parameters (401 for a key, 403 for a
role, 404 for an id in the path, 413 for a body, 422 for any parameter), and routes add
what only they answer (409, 503) with `errors(...)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app.schemas.common import ErrorBody

DESCRIPTIONS = {
    304: "Not modified (the `If-None-Match` ETag still holds)",
    401: "Missing, malformed, unknown or revoked API key (`unauthorized`); the Label Studio "
    "routes take it as a basic-auth password too",
    403: "The key's role is too low, or it is scoped to another project (`forbidden`); "
    "a signed URL's signature is wrong or expired (`invalid_signature`)",
    404: "No such resource, or outside the key's project (`not_found`)",
    409: "Conflicts with the resource's current state (`conflict`; Label Studio /predict: "
    "a new image and no finished run yet)",
    413: "The request body is larger than TAG2MASK_MAX_UPLOAD_BYTES (`payload_too_large`)",
    422: "The request is not valid (`validation_error` and the specific codes of the README)",
    503: "Not ready (`not_ready`), or the database or broker does not answer (`unavailable`, "
    "with Retry-After)",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for these error statuses, each with the error body schema."""
    return {s: {"model": ErrorBody, "description": DESCRIPTIONS[s]} for s in statuses}


def declares_304() -> dict[int | str, dict[str, Any]]:
    return {304: {"description": DESCRIPTIONS[304]}}


BINARY = {"schema": {"type": "string", "format": "binary"}}


def ok_bytes(*media_types: str, description: str) -> dict[int | str, dict[str, Any]]:
    """A 200 whose body is bytes of one of `media_types` (and a 304 for its ETag)."""
    content = {m: BINARY for m in media_types}
    return {200: {"description": description, "content": content}, **declares_304()}


def _calls(dependant: Dependant) -> set[str]:
    """Qualified names of every dependency callable under `dependant`."""
    names: set[str] = set()
    for sub in dependant.dependencies:
        call = sub.call
        if call is not None:
            names.add(getattr(call, "__qualname__", repr(call)))
            role = getattr(call, "required_role", None)
            if role is not None:
                names.add(f"role:{role}")
        names |= _calls(sub)
    return names


AUTH = {"current_principal", "lean_principal", "key_or_signature"}


def declare_errors(routes: Iterable[BaseRoute]) -> None:
    """Add the statuses each route answers by construction to its OpenAPI responses.

    Called on each router's own routes before it is included (FastAPI includes routers
    lazily, so the app's route list holds the routers, not their routes).
    """
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        calls = _calls(route.dependant)
        statuses: set[int] = set()
        if calls & AUTH:
            statuses.add(401)
            statuses.add(503)  # every key is checked against the database
        if (
            any(c.startswith("role:") for c in calls)
            or "lean_annotator" in calls
            or "key_or_signature" in calls  # a bad or expired signed URL
        ):
            statuses.add(403)
        if route.dependant.path_params:
            statuses.add(404)
        if route.body_field is not None:
            statuses.add(413)
        has_params = (
            route.dependant.path_params
            or route.dependant.query_params
            or route.dependant.header_params
            or route.body_field is not None
        )
        if has_params:
            statuses.add(422)
        for status, spec in errors(*sorted(statuses)).items():
            route.responses.setdefault(status, spec)
