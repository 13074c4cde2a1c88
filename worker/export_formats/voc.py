"""PASCAL VOC-style zip: JPEGImages, SegmentationClass palette PNGs, ImageSets lists.

`SegmentationClass/<stem>.png` is a mode "P" PNG whose pixel values are the class indices
(0 background, 1..K categories, 255 void) under the VOC colour map; `labelmap.txt` names
the classes the way CVAT's VOC format does. The zip is written entry by entry; the stems
for the ImageSets lists collect in a scratch file.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
from PIL import Image as PILImage

from app.imaging import IGNORE_INDEX, decode_rgb, voc_rgb
from worker.export_formats.base import ExportItem, ExportWriter

JPEG_QUALITY = 95  # with 4:4:4 chroma: colour edges stay where the mask has them
EXIF_ORIENTATION = 0x0112


def voc_colormap(n: int = 256) -> np.ndarray:
    """PASCAL VOC's bit-interleaved colour map (index 255 is the void colour 224,224,192)."""
    return np.array([voc_rgb(i) for i in range(n)], dtype=np.uint8)


PALETTE = voc_colormap()


def stem(image_id: int) -> str:
    return f"{image_id:08d}"


def palette_png(mask: np.ndarray) -> bytes:
    img = PILImage.frombytes("P", (mask.shape[1], mask.shape[0]), np.ascontiguousarray(mask))
    img.putpalette(PALETTE.ravel().tolist())
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def rgb_jpeg(data: bytes, max_pixels: int) -> bytes:
    """The original as an RGB JPEG: copied when it already is one (no EXIF rotation), else
    re-encoded, so its pixels line up with the mask's."""
    with PILImage.open(io.BytesIO(data)) as img:
        orientation = img.getexif().get(EXIF_ORIENTATION, 1)
        if img.format == "JPEG" and img.mode == "RGB" and orientation == 1:
            return data
    rgb = decode_rgb(data, max_pixels)
    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buf.getvalue()


class VocWriter(ExportWriter):
    extension = ".zip"
    media_type = "application/zip"
    needs_image = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._zip = zipfile.ZipFile(self.out, "w", allowZip64=True)
        self._stems_path = self.workdir / "stems.part"
        self._stems = self.scratch(self._stems_path.name, "w")

    def add(self, item: ExportItem) -> int:
        assert item.image_bytes is not None
        s = stem(item.image.id)
        jpeg = rgb_jpeg(item.image_bytes, self.max_pixels)
        png = palette_png(item.array)
        # Already compressed: stored as they are.
        self._zip.writestr(f"JPEGImages/{s}.jpg", jpeg, compress_type=zipfile.ZIP_STORED)
        self._zip.writestr(f"SegmentationClass/{s}.png", png, compress_type=zipfile.ZIP_STORED)
        self._stems.write(s + "\n")
        return len(item.classes(self.project.categories))

    def _labelmap(self) -> str:
        lines = ["# label:color_rgb:parts:actions"]
        names = {0: "background", **self.project.categories}
        for idx, name in sorted(names.items()):
            r, g, b = (int(v) for v in PALETTE[idx])
            lines.append(f"{name}:{r},{g},{b}::")
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        super().close()
        self._zip.close()

    def finish(self) -> None:
        self._stems.close()
        deflate = zipfile.ZIP_DEFLATED
        for name in ("trainval.txt", "train.txt"):
            self._zip.write(self._stems_path, f"ImageSets/Segmentation/{name}", deflate)
        self._zip.writestr("labelmap.txt", self._labelmap(), compress_type=deflate)
        r, g, b = (int(v) for v in PALETTE[IGNORE_INDEX])
        self._zip.writestr(
            "README.txt",
            "PASCAL VOC-style segmentation export from tag2mask.\n"
            f"Project {self.project.id} ({self.project.name}), include={self.project.include}.\n"
            "SegmentationClass PNGs are palette images: pixel value = class index "
            f"(0 background, 1..K as in labelmap.txt, {IGNORE_INDEX} void/unlabeled, "
            f"colour {r},{g},{b}).\n",
            compress_type=deflate,
        )
        self._zip.close()
