"""Image upload (single and batch), listing, metadata, bytes, tags and deletion."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import anyio.to_thread
import psycopg
from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from pydantic import TypeAdapter

from app.api.deps import (
    Annotator,
    CurrentKey,
    SessionDep,
    SettingsDep,
    UowDep,
    in_unit_of_work,
)
from app.api.http_cache import CACHE_CONTROL, not_modified
from app.api.lean import (
    LeanAnnotator,
    LeanKey,
    LeanKeyOrSigned,
    blob_response,
    lean_first,
    lean_project,
    lean_rows,
)
from app.api.list_cache import ListPageCache, page_etag
from app.api.params import Cursor, ImageId, ProjectId
from app.api.responses import declares_304, errors, ok_bytes
from app.errors import ApiError, ValidationFailed, error_body
from app.imaging import ALLOWED_FORMATS
from app.pg_reads import PgReader
from app.schemas.common import Page
from app.schemas.image import BatchItem, BatchResult, ImageOut, TagsIn
from app.services import image_list as pages
from app.services import images as svc
from app.services.projects import (
    PROJECT_REF,
    get_project_or_raise,
    project_not_found,
    project_ref_of,
)
from app.services.scope import Principal
from app.services.tags import parse_tags, resolve_tags
from app.settings import Settings
from app.tables import utcnow
from app.unit_of_work import Savepoint, UnitOfWork

router = APIRouter(tags=["images"])
_PAGE = TypeAdapter(Page[ImageOut])


@router.post(
    "/v1/projects/{project_id}/images",
    status_code=201,
    response_model=ImageOut,
    responses={
        200: {"model": ImageOut, "description": "The same bytes were there: that image, merged"},
        **errors(409),
    },
)
async def upload_image(
    project_id: ProjectId,
    request: Request,
    who: LeanAnnotator,
    file: Annotated[UploadFile, File()],
    tags: Annotated[str | None, Form()] = None,
    mask: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """201 with the new image, or 200 with the project's image of the same bytes.

    On PostgreSQL an upload without a mask is the lean write path: checks and the blob
    write on one worker thread, then the image and its tags as one statement on an
    autocommit connection (app/services/images.insert_image_with_tags). Uploads with a
    mask, and every upload on SQLite, take the unit-of-work path.
    """
    settings: Settings = request.app.state.settings
    upload = svc.Upload(
        filename=file.filename or "upload",
        data=await file.read(),
        tags=parse_tags(tags),
        mask=await mask.read() if mask is not None else None,
    )
    writer = request.app.state.pg_writer
    if writer is None or upload.mask is not None:
        view, created = await in_unit_of_work(
            request, lambda uow: _upload_in_uow(uow, project_id, who, upload, settings)
        )
    else:
        view, created = await _lean_upload(request, writer, project_id, who, upload, settings)
    return Response(
        view.model_dump_json(), status_code=201 if created else 200, media_type="application/json"
    )


def _upload_in_uow(
    uow: UnitOfWork, project_id: int, who: Principal, upload: svc.Upload, settings: Settings
) -> tuple[ImageOut, bool]:
    # The project's categories without the ORM: uploads are the write path under load.
    rows = uow.session.execute(PROJECT_REF, {"project_id": project_id}).all()
    project = project_ref_of(rows, project_id, who)
    return svc.upload_image(uow, project, upload, max_pixels=settings.max_image_pixels)


async def _lean_upload(
    request: Request,
    writer: PgReader,
    project_id: int,
    who: Principal,
    upload: svc.Upload,
    settings: Settings,
) -> tuple[ImageOut, bool]:
    project = await lean_project(request, project_id, who, upload.tags)
    blobs = request.app.state.blobs

    def check_and_store() -> tuple[svc.CheckedUpload, str, bool]:
        checked = svc.check_upload(project, upload, max_pixels=settings.max_image_pixels)
        return checked, *blobs.put(upload.data)

    checked, key, created = await anyio.to_thread.run_sync(check_and_store)
    now = utcnow()
    values = checked.image_values(project_id, key, now)
    values["category_ids"] = [c.id for c in checked.categories]
    try:
        row = await writer.first(svc.insert_image_with_tags(), values)
    except psycopg.Error as e:
        # The statement failed, so no row holds the key: drop the blob this request wrote,
        # unless a twin upload's row uses it. (A cancelled request keeps its blob: its
        # statement may still commit; an orphan blob costs only space.)
        if created:
            await in_unit_of_work(request, lambda uow: uow.release_blobs_after_commit([key]))
        if isinstance(e, psycopg.errors.ForeignKeyViolation):  # project deleted meanwhile
            raise project_not_found(project_id) from e
        raise
    if row is not None:
        return checked.view(project_id, row.id, now), True
    # These bytes are already in the project (maybe from a concurrent upload): merge.
    view = await in_unit_of_work(
        request,
        lambda uow: svc.merge_existing(
            uow,
            project,
            upload,
            max_pixels=settings.max_image_pixels,
            sha=checked.sha,
            checked=checked,
        ),
    )
    if view is None:
        raise AssertionError("insert skipped for a conflict that is not there")
    return view, False


def _parse_manifest(raw: str) -> dict[str, dict[str, object]]:
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValidationFailed(
            f"manifest is not valid JSON: {e.msg}.", {"field": "manifest"}
        ) from e
    if not isinstance(manifest, dict):
        raise ValidationFailed("manifest must be an object {filename: {tags, mask?}}.")
    for name, entry in manifest.items():
        if not isinstance(entry, dict):
            raise ValidationFailed(f"manifest entry {name!r} must be an object.")
        unknown = set(entry) - {"tags", "mask"}
        if unknown:
            raise ValidationFailed(f"manifest entry {name!r} has unknown fields {sorted(unknown)}.")
        tags = entry.get("tags", [])
        if isinstance(tags, str):
            tags = parse_tags(tags)
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ValidationFailed(f"manifest entry {name!r}: tags must be a list of names.")
        entry["tags"] = tags
        if "mask" in entry and not isinstance(entry["mask"], str):
            raise ValidationFailed(f"manifest entry {name!r}: mask must be a filename.")
    return manifest


@router.post("/v1/projects/{project_id}/images/batch", response_model=BatchResult)
def upload_batch(
    project_id: ProjectId,
    uow: UowDep,
    settings: SettingsDep,
    who: Annotator,
    files: Annotated[list[UploadFile], File()],
    manifest: Annotated[str, Form()],
) -> BatchResult:
    """Each manifest entry is stored whole or not at all; one bad image spoils no other."""
    project = get_project_or_raise(uow.session, project_id, who)
    entries = _parse_manifest(manifest)
    by_name: dict[str, bytes] = {}
    for f in files:
        name = f.filename or ""
        if name in by_name:
            raise ValidationFailed(f"Two files are named {name!r}.")
        by_name[name] = f.file.read()
    items: list[BatchItem] = []
    for name, entry in entries.items():
        try:
            with Savepoint(uow):
                if name not in by_name:
                    raise ValidationFailed(f"{name!r} is in the manifest but was not uploaded.")
                mask_name = entry.get("mask")
                if mask_name is not None and mask_name not in by_name:
                    raise ValidationFailed(f"mask {mask_name!r} of {name!r} was not uploaded.")
                upload = svc.Upload(
                    filename=name,
                    data=by_name[name],
                    tags=list(entry["tags"]),  # type: ignore[arg-type]
                    mask=by_name[mask_name] if mask_name is not None else None,  # type: ignore[index]
                )
                view, created = svc.upload_image(
                    uow, project, upload, max_pixels=settings.max_image_pixels
                )
            items.append(
                BatchItem(filename=name, status="created" if created else "exists", image=view)
            )
        except ApiError as e:
            items.append(
                BatchItem(
                    filename=name,
                    status="error",
                    error=error_body(e.code, e.message, e.detail)["error"],
                )
            )
    return BatchResult(items=items)


@router.get(
    "/v1/projects/{project_id}/images", response_model=Page[ImageOut], responses=declares_304()
)
async def list_images(
    project_id: ProjectId,
    request: Request,
    who: LeanKey,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor | None = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    has_human_mask: bool | None = None,
    has_pseudo_mask: bool | None = None,
    review_state: Literal["pending", "accepted", "rejected"] | None = None,
) -> Response:
    """A lean route (prebuilt Core queries, no ORM; see app/api/lean.py).

    PostgreSQL renders the page (app/services/image_list.page_json_stmt): one statement, no
    per-row Python. Elsewhere the rows are validated and rendered by pydantic-core in one
    call each (models built one by one, then FastAPI's response_model path, cost more than
    the queries).
    """
    flt = pages.ImageFilter(
        tag=tag,
        has_human_mask=has_human_mask,
        has_pseudo_mask=has_pseudo_mask,
        review_state=review_state,
    )
    if not who.can_see(project_id):
        raise project_not_found(project_id)
    params = pages.page_params(project_id, flt, limit=limit, cursor=cursor)
    if not request.app.state.settings.is_sqlite:
        return await _rendered_page(request, flt, params, who)
    project = await lean_project(request, project_id, who, [tag] if tag is not None else [])
    if tag is not None:
        resolve_tags(project, [tag])  # type: ignore[arg-type]  # unknown → unknown_tag
    rows = await lean_rows(request, pages.page_stmt(flt.shape(), False), params)
    rows, next_cursor = pages.page_of(rows, limit)
    tag_rows = None
    if rows:
        tag_rows = await lean_rows(
            request, svc.tags_and_masks_stmt(False), {"ids": [r.id for r in rows]}
        )
    page = {"items": svc.view_dicts(rows, tag_rows), "next_cursor": next_cursor}
    return Response(_PAGE.dump_json(_PAGE.validate_python(page)), media_type="application/json")


async def _rendered_page(
    request: Request, flt: pages.ImageFilter, params: dict[str, Any], who: Principal
) -> Response:
    """The page as PostgreSQL rendered it; the cursor and the envelope are added here.

    A page this process rendered before is served again when the project's list version
    is unchanged (app/api/list_cache.py): an index lookup, shared by the requests waiting
    at the same time, instead of the page's query; a page that must be rendered is
    rendered once for the requests waiting for it at the same time, and a page that was
    changing at its last render is rendered without reading the version first.
    The version is also the page's ETag, so If-None-Match can answer 304 without a body.
    """
    project_id = params["project_id"]
    cache: ListPageCache | None = request.app.state.list_pages
    key = (flt, project_id, params["after"], params["limit"])
    held = cache.get(key) if cache is not None else None
    quiet = held is not None and not held.changing
    if quiet or "if-none-match" in request.headers:
        version = await request.app.state.list_versions.version(project_id)
        if version is None:
            raise project_not_found(project_id)
        etag = page_etag(key, version)
        unchanged = not_modified(request, etag)
        if unchanged is not None:
            return unchanged
        if held is not None and held.version == version:
            cache.count("hit")  # type: ignore[union-attr]
            return _page_response(held.body, etag)
    stmt = pages.page_json_stmt(flt.shape())

    async def render() -> Any:
        if cache is not None:
            cache.rendered()
        return await lean_first(request, stmt, params)

    row = await request.app.state.page_renders.get(key, render)
    if row is None:
        raise project_not_found(project_id)
    if flt.tag is not None and row.tag_category is None:
        project = await lean_project(request, project_id, who, [flt.tag])
        resolve_tags(project, [flt.tag])  # type: ignore[arg-type]  # raises unknown_tag
    cursor = pages.encode_cursor(row.last_id) if row.more else None
    body = b"".join(
        (
            b'{"items":',
            row.page_json.encode(),
            b',"next_cursor":',
            f'"{cursor}"'.encode() if cursor else b"null",
            b"}",
        )
    )
    if cache is not None:
        cache.count(cache.store(key, row.list_version, body, held))
    return _page_response(body, page_etag(key, row.list_version))


def _page_response(body: bytes, etag: str) -> Response:
    return Response(
        body, media_type="application/json", headers={"ETag": etag, "Cache-Control": CACHE_CONTROL}
    )


@router.get("/v1/images/{image_id}", response_model=ImageOut)
def get_image(image_id: ImageId, session: SessionDep, who: CurrentKey) -> ImageOut:
    return svc.image_view(session, svc.get_image_or_raise(session, image_id, who))


@router.get(
    "/v1/images/{image_id}/file",
    response_class=Response,
    responses=ok_bytes(*ALLOWED_FORMATS.values(), description="The image's bytes as uploaded"),
)
async def get_image_file(image_id: ImageId, request: Request, who: LeanKeyOrSigned) -> Response:
    row = await lean_first(request, svc.IMAGE_FILE, {"image_id": image_id})
    image = svc.check_image_file(row, image_id, who)
    return await blob_response(request, image.blob_key, image.content_type)


@router.put("/v1/images/{image_id}/tags", response_model=ImageOut, responses=errors(409))
def put_tags(image_id: ImageId, body: TagsIn, session: SessionDep, who: Annotator) -> ImageOut:
    image = svc.get_image_or_raise(session, image_id, who)
    project = get_project_or_raise(session, image.project_id, who)
    return svc.image_view(session, svc.set_tags(session, image, project, body.tags))


@router.delete("/v1/images/{image_id}", status_code=204)
def delete_image(image_id: ImageId, uow: UowDep, who: Annotator) -> Response:
    svc.delete_image(uow, svc.get_image_or_raise(uow.session, image_id, who))
    return Response(status_code=204)
