"""Upload checks: tags, the image and its mask, everything checked before anything is written."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.imaging import ImageInfo, decode_mask, encode_png, mask_stats, probe_image
from app.schemas.image import ImageOut
from app.services.projects import ProjectRef
from app.services.tags import painted_categories, resolve_tags, union_categories
from app.tables import Project

MAX_FILENAME = 500


@dataclass
class Upload:
    filename: str
    data: bytes
    tags: list[str]
    mask: bytes | None = None


@dataclass
class CheckedUpload:
    """An upload that passed every check, with what its rows need."""

    upload: Upload
    sha: str
    filename: str  # clean_filename of the upload's
    categories: list[Any]  # Category or CategoryRef, in class order
    info: ImageInfo
    mask_png: bytes | None = None
    mask_stats: dict[str, object] | None = None

    def image_values(self, project_id: int, blob_key: str, now: datetime) -> dict[str, Any]:
        return {
            "project_id": project_id,
            "sha256": self.sha,
            "width": self.info.width,
            "height": self.info.height,
            "blob_key": blob_key,
            "filename": self.filename,
            "content_type": self.info.content_type,
            "size_bytes": len(self.upload.data),
            "created_at": now,
            "updated_at": now,
        }

    def view(self, project_id: int, image_id: int, now: datetime) -> ImageOut:
        """The new image as the API shows it, from what was written (not read back)."""
        return ImageOut(
            id=image_id,
            project_id=project_id,
            sha256=self.sha,
            width=self.info.width,
            height=self.info.height,
            filename=self.filename,
            tags=[c.name for c in self.categories],  # resolve_tags sorts by class index
            has_human_mask=self.mask_png is not None,
            has_pseudo_mask=False,
            created_at=now,
        )


def content_sha(upload: Upload) -> str:
    return hashlib.sha256(upload.data).hexdigest()


def check_upload(
    project: Project | ProjectRef, upload: Upload, *, max_pixels: int, sha: str | None = None
) -> CheckedUpload:
    """Every check of an upload (tags, the image, the mask against it), nothing written."""
    categories = resolve_tags(project, upload.tags)  # type: ignore[arg-type]
    info = probe_image(upload.data, max_pixels)
    checked = CheckedUpload(
        upload, sha or content_sha(upload), clean_filename(upload.filename), categories, info
    )
    if upload.mask is not None:
        arr = decode_mask(
            upload.mask,
            width=info.width,
            height=info.height,
            num_classes=len(project.categories),
            max_pixels=max_pixels,
        )
        checked.mask_png = encode_png(arr)
        checked.mask_stats = mask_stats(arr)
        checked.categories = union_categories(categories, painted_categories(project, arr))
    return checked


def clean_filename(name: str | None) -> str:
    """Keep only the last path component: a filename is metadata, never a path."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return (base or "upload")[:MAX_FILENAME]
