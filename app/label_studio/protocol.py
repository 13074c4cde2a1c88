"""Label Studio's side of the wire: credentials, request bodies, its labeling config.

Label Studio's ML backend client (label_studio/ml/api_connector.py, 1.23) sends
`GET /health` (1 s timeout), `POST /setup` {project "<id>.<created ts>", schema (the
labeling config), hostname, access_token, extra_params} (3 s), `POST /predict` {tasks,
project, label_config, params} (100 s), and, once the backend is added, a webhook to
`<backend URL>/webhook` for every project event; "Start Training" POSTs
`{"action": "START_TRAINING", "project": {...}}` there (older servers: `POST /train`).
Credentials: Label Studio's "Basic Authentication" fields, or user:password in the URL
(`http://tag2mask:<key>@host/label-studio/<pid>`), which the webhook it creates keeps
too. The password is a tag2mask API key; a Bearer header (a webhook's custom headers)
works as well.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from typing import Any

from fastapi import Request
from pydantic import BaseModel, Field

from app.api.lean import lean_first
from app.auth import hash_key
from app.errors import Unauthorized, ValidationFailed
from app.services.keys import KEY_BY_HASH, principal_of
from app.services.projects import project_not_found
from app.services.scope import Principal
from worker.export_formats.label_studio import FROM_NAME, TO_NAME

MAX_SCHEMA_CHARS = 1_000_000


class SetupIn(BaseModel):
    project: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    hostname: str | None = None
    access_token: str | None = None
    extra_params: Any = None


class PredictIn(BaseModel):
    tasks: list[dict[str, Any]] = Field(min_length=1, max_length=1000)
    project: str | None = None
    label_config: str | None = None
    params: dict[str, Any] | None = None


def key_of(authorization: str | None) -> str:
    """The API key in `Basic base64(user:key)` or `Bearer key`; 401 otherwise."""
    if not authorization:
        raise Unauthorized(
            "Label Studio sent no credentials: put a tag2mask API key as the password of the "
            "ML backend's basic auth (or in its URL: http://tag2mask:<key>@host/...)."
        )
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            _, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep, password = "", ""
        if sep and password:
            return password
    raise Unauthorized("Authorization must be Basic (password: an API key) or Bearer <key>.")


async def backend_principal(request: Request, project_id: int, role: str) -> Principal:
    """The key Label Studio sent, with `role` and the project in its scope (else 401/403/404)."""
    key = key_of(request.headers.get("authorization"))
    who = principal_of(await lean_first(request, KEY_BY_HASH, {"key_hash": hash_key(key)}))
    if not who.can_see(project_id):
        raise project_not_found(project_id)
    who.require(role)
    return who


def check_schema(schema: str | None, categories: dict[int, str], project_id: int) -> None:
    """422 unless the labeling config has our BrushLabels over our Image, labels ⊆ categories."""
    if not schema:
        return
    hint = f"Use the config of GET /v1/projects/{project_id}/label-studio/config."
    try:
        root = ET.fromstring(schema[:MAX_SCHEMA_CHARS])
    except (ET.ParseError, ValueError) as e:
        raise ValidationFailed(f"The labeling config is not XML ({e}). {hint}") from e
    brush = next(
        (
            el
            for el in root.iter("BrushLabels")
            if el.get("name") == FROM_NAME and el.get("toName") == TO_NAME
        ),
        None,
    )
    if brush is None:
        raise ValidationFailed(
            f'The labeling config has no <BrushLabels name="{FROM_NAME}" toName="{TO_NAME}">. '
            + hint
        )
    labels = [el.get("value") for el in brush.iter("Label")]
    unknown = sorted({str(n) for n in labels if n not in categories.values()})
    if unknown:
        raise ValidationFailed(
            f"Labels that are not categories of project {project_id}: {unknown}. {hint}",
            {"labels": unknown},
        )
