"""What every export format works with: the chosen (image, mask) pairs and a writer API."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from app.blobs import BlobStore
from app.imaging import IGNORE_INDEX, decode_png_array
from app.tables import Image, Mask

INCLUDES: tuple[str, ...] = ("accepted", "human", "best")


@dataclass(frozen=True)
class ExportImage:
    id: int
    filename: str
    width: int
    height: int
    blob_key: str
    content_type: str


@dataclass(frozen=True)
class ExportMask:
    id: int
    image_id: int
    source: str
    review_state: str
    blob_key: str
    confidence_key: str | None
    job_id: int | None
    model_version_id: int | None
    mean_confidence: float | None


@dataclass(frozen=True)
class ExportProject:
    id: int
    name: str
    include: str
    categories: dict[int, str]  # class index 1..K → name


@dataclass
class ExportItem:
    """One image and the mask chosen for it, with its pixels loaded before anything is written."""

    image: ExportImage
    mask: ExportMask
    array: np.ndarray  # HxW uint8 class indices
    confidence: np.ndarray | None = None  # HxW uint8, 255 = 1.0 (pseudo-masks only)
    image_bytes: bytes | None = None  # the original file (formats that ship pixels)
    _counts: np.ndarray | None = field(default=None, repr=False)

    def classes(self, categories: dict[int, str]) -> list[int]:
        """The project's class indices present in the mask (no background, no ignore)."""
        if self._counts is None:
            self._counts = np.bincount(self.array.ravel(), minlength=256)
        return [
            int(i)
            for i in np.flatnonzero(self._counts)
            if i != 0 and i != IGNORE_INDEX and int(i) in categories
        ]

    def class_score(self, index: int, binary: np.ndarray) -> float | None:
        """Mean confidence over the class's pixels; else the mask's mean; None for people."""
        if self.mask.source == "human":
            return None
        if self.confidence is not None and self.confidence.shape == binary.shape:
            return round(float(self.confidence[binary].mean()) / 255.0, 6)
        return self.mask.mean_confidence


def load_item(
    blobs: BlobStore,
    image: ExportImage,
    mask: ExportMask,
    *,
    with_confidence: bool,
    with_image: bool,
) -> ExportItem:
    """Read what a writer needs (raises BlobNotFound when a blob vanished meanwhile)."""
    array = decode_png_array(blobs.get(mask.blob_key))
    confidence = None
    if with_confidence and mask.confidence_key is not None:
        confidence = decode_png_array(blobs.get(mask.confidence_key))
    data = blobs.get(image.blob_key) if with_image else None
    return ExportItem(image, mask, array, confidence, data)


class ExportWriter(ABC):
    """Writes one export to `out` item by item; scratch files may go under `workdir`."""

    extension: str = ""
    media_type: str = "application/octet-stream"
    needs_image: bool = False
    needs_confidence: bool = False

    def __init__(
        self,
        out: BinaryIO,
        workdir: Path,
        project: ExportProject,
        *,
        max_pixels: int,
        image_url: Callable[[int], str] = lambda image_id: f"/v1/images/{image_id}/file",
    ) -> None:
        self.out = out
        self.image_url = image_url  # image id → the URL a task/`coco_url` names
        self.workdir = workdir
        self.project = project
        self.max_pixels = max_pixels
        self._scratch: list[IO[Any]] = []

    def scratch(self, name: str, mode: str = "wb") -> IO[Any]:
        """A scratch file under the work dir, closed by close()."""
        f = open(self.workdir / name, mode)  # noqa: SIM115 - closed in close()
        self._scratch.append(f)
        return f

    @abstractmethod
    def add(self, item: ExportItem) -> int:
        """Write one image with its mask; returns how many (image, category) annotations."""

    @abstractmethod
    def finish(self) -> None:
        """Write whatever closes the file."""

    def close(self) -> None:
        """Close the scratch files (after finish, or after a failure or cancel)."""
        for f in self._scratch:
            f.close()


def copy_file(src: Path, dst: BinaryIO, chunk: int = 1 << 20) -> None:
    with open(src, "rb") as f:
        while block := f.read(chunk):
            dst.write(block)


def read_chunks(path: Path, chunk: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while block := f.read(chunk):
            yield block


# --- which mask each image contributes ------------------------------------------------


def pick_mask(masks: list[ExportMask], include: str) -> ExportMask | None:
    """The mask an image contributes under `include` (`masks`: newest first).

    human: its human mask. accepted: the human mask, else its newest accepted pseudo-mask.
    best: as accepted, else its newest pseudo-mask (what GET /mask?source=best answers).
    """
    human = next((m for m in masks if m.source == "human"), None)
    if human is not None or include == "human":
        return human
    accepted = next(
        (m for m in masks if m.source == "pseudo" and m.review_state == "accepted"), None
    )
    if accepted is not None or include == "accepted":
        return accepted
    return next((m for m in masks if m.source == "pseudo"), None)


def _mask_filter(include: str):
    if include == "human":
        return Mask.source == "human"
    if include == "accepted":
        return or_(
            Mask.source == "human", and_(Mask.source == "pseudo", Mask.review_state == "accepted")
        )
    return Mask.source.in_(("human", "pseudo"))


def count_images(session: Session, project_id: int) -> int:
    return int(
        session.scalar(select(func.count(Image.id)).where(Image.project_id == project_id)) or 0
    )


def iter_chosen(
    factory: sessionmaker[Session], project_id: int, include: str, chunk: int = 100
) -> Iterator[tuple[int, list[tuple[ExportImage, ExportMask]]]]:
    """Per chunk of the project's images (id order, keyset): (images scanned, chosen pairs).

    Each chunk reads in a short session of its own; only one chunk's rows are held.
    """
    after = 0
    while True:
        with factory() as s:
            rows = s.execute(
                select(
                    Image.id,
                    Image.filename,
                    Image.width,
                    Image.height,
                    Image.blob_key,
                    Image.content_type,
                )
                .where(Image.project_id == project_id, Image.id > after)
                .order_by(Image.id)
                .limit(chunk)
            ).all()
            if not rows:
                return
            ids = [r.id for r in rows]
            mask_rows = s.execute(
                select(
                    Mask.id,
                    Mask.image_id,
                    Mask.source,
                    Mask.review_state,
                    Mask.blob_key,
                    Mask.confidence_key,
                    Mask.job_id,
                    Mask.model_version_id,
                    Mask.mean_confidence,
                )
                .where(Mask.image_id.in_(ids), _mask_filter(include))
                .order_by(Mask.image_id, Mask.id.desc())
            ).all()
        after = ids[-1]
        by_image: dict[int, list[ExportMask]] = {}
        for m in mask_rows:
            by_image.setdefault(m.image_id, []).append(ExportMask(*m))
        chosen = []
        for r in rows:
            mask = pick_mask(by_image.get(r.id, []), include)
            if mask is not None:
                chosen.append((ExportImage(*r), mask))
        yield len(rows), chosen
