"""Dataset export formats (COCO JSON, VOC-style zip, Label Studio predictions).

Each writer streams one export into a file, image by image; worker/kinds/export.py picks
the masks and drives it.
"""

from __future__ import annotations

from worker.export_formats.base import INCLUDES, ExportWriter
from worker.export_formats.coco import CocoWriter
from worker.export_formats.label_studio import LabelStudioWriter
from worker.export_formats.voc import VocWriter

WRITERS: dict[str, type[ExportWriter]] = {
    "coco": CocoWriter,
    "voc": VocWriter,
    "label-studio": LabelStudioWriter,
}
FORMATS: tuple[str, ...] = tuple(WRITERS)


def export_filename(project_id: int, job_id: int, fmt: str) -> str:
    return f"project-{project_id}-export-{job_id}{WRITERS[fmt].extension}"


__all__ = ["FORMATS", "INCLUDES", "WRITERS", "ExportWriter", "export_filename"]
