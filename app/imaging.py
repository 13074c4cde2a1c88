"""Image and mask decoding with limits, class-index PNG I/O, COCO RLE and overlays."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError
from pycocotools import mask as coco_mask

from app.errors import (
    ImageTooLarge,
    InvalidImage,
    InvalidMask,
    MaskSizeMismatch,
    UnknownClassIndex,
)

IGNORE_INDEX = 255
ALLOWED_FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "BMP": "image/bmp",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
}
# Pillow's own bomb check is global state; ours is per call, so switch Pillow's off.
PILImage.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    content_type: str


def _open(
    data: bytes, max_pixels: int, error: type[InvalidImage] | type[InvalidMask]
) -> PILImage.Image:
    """Open and fully decode `data`, refusing bombs before any pixel is decoded."""
    return _load(_open_lazy(data, max_pixels, error), error)


def _open_lazy(
    data: bytes, max_pixels: int, error: type[InvalidImage] | type[InvalidMask]
) -> PILImage.Image:
    """Open `data` (header only), refusing bombs."""
    try:
        img = PILImage.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise error("The file is not a readable image.") from e
    if img.width * img.height > max_pixels:
        raise ImageTooLarge(
            f"The image has {img.width * img.height} pixels, more than the limit of {max_pixels}.",
            {"width": img.width, "height": img.height, "max_pixels": max_pixels},
        )
    return img


def _load(img: PILImage.Image, error: type[InvalidImage] | type[InvalidMask]) -> PILImage.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            img.load()
    except (OSError, ValueError, SyntaxError, Warning) as e:
        raise error(f"The image could not be decoded: {e}") from e
    return img


def probe_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Check that `data` is a whole image of an accepted format within the pixel limit.

    The pixels are not kept, so a JPEG is decoded at 1/8 scale (libjpeg's DCT scaling):
    every scan's entropy-coded data is still read and checked, so a truncated or corrupt
    file fails the same, at about 60 % of the CPU of a full decode.
    """
    img = _open_lazy(data, max_pixels, InvalidImage)
    width, height = img.size
    if img.format == "JPEG":
        img.draft(img.mode, (max(1, width // 8), max(1, height // 8)))
    img = _load(img, InvalidImage)
    if img.format not in ALLOWED_FORMATS:
        raise InvalidImage(
            f"Image format {img.format} is not accepted.",
            {"accepted": sorted(ALLOWED_FORMATS)},
        )
    return ImageInfo(width, height, img.format, ALLOWED_FORMATS[img.format])


def decode_rgb(data: bytes, max_pixels: int) -> np.ndarray:
    """HxWx3 uint8 RGB array of an image."""
    img = _open(data, max_pixels, InvalidImage)
    return np.asarray(img.convert("RGB"))


def decode_mask(
    data: bytes, *, width: int, height: int, num_classes: int, max_pixels: int
) -> np.ndarray:
    """A class-index mask as HxW uint8, checked against its image and the project's classes.

    Values 0 (background) and 255 (unlabeled) are always allowed; 1..num_classes are the
    project's categories.
    """
    img = _open(data, max_pixels, InvalidMask)
    if img.format != "PNG":
        raise InvalidMask(f"A mask must be a PNG, got {img.format}.")
    if img.mode not in ("L", "P"):
        raise InvalidMask(
            f"A mask must be a single-channel 8-bit PNG of class indices, got mode {img.mode}.",
            {"mode": img.mode},
        )
    if (img.width, img.height) != (width, height):
        raise MaskSizeMismatch(
            f"The mask is {img.width}x{img.height} but the image is {width}x{height}.",
            {"mask": [img.width, img.height], "image": [width, height]},
        )
    # A palette PNG's pixel values are already the indices (VOC style); never map colours.
    arr = np.array(img, dtype=np.uint8)
    values = np.unique(arr)
    bad = [int(v) for v in values if v != IGNORE_INDEX and v > num_classes]
    if bad:
        raise UnknownClassIndex(
            f"The mask holds class indices the project does not have: {bad}.",
            {"unknown": bad, "max_class_index": num_classes},
        )
    return arr


def encode_png(arr: np.ndarray) -> bytes:
    """Encode a 2-D uint8 array as a single-channel PNG."""
    buf = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), mode="L").save(
        buf, format="PNG", compress_level=1
    )
    return buf.getvalue()


def decode_png_array(data: bytes) -> np.ndarray:
    """Decode a PNG we wrote ourselves (trusted: no limits)."""
    return np.array(PILImage.open(io.BytesIO(data)), dtype=np.uint8)


def class_rles(mask: np.ndarray) -> tuple[tuple[int, tuple[int, int], str], ...]:
    """Per class index present in `mask` (255 excluded): (index, size, COCO RLE counts)."""
    out = []
    for index in np.unique(mask):
        idx = int(index)
        if idx == IGNORE_INDEX:
            continue
        rle = coco_mask.encode(np.asfortranarray((mask == idx).astype(np.uint8)))
        out.append((idx, (int(rle["size"][0]), int(rle["size"][1])), rle["counts"].decode()))
    return tuple(out)


def rle_of_png(data: bytes) -> tuple[tuple[int, tuple[int, int], str], ...]:
    """class_rles of a stored mask PNG (the API caches them per content-addressed blob)."""
    return class_rles(decode_png_array(data))


def named_rle(
    rles: tuple[tuple[int, tuple[int, int], str], ...], classes: dict[int, str]
) -> list[dict[str, object]]:
    """The contract's `classes` list: index, category name and {size, counts}."""
    return [
        {
            "index": idx,
            "name": classes.get(idx, "background" if idx == 0 else str(idx)),
            "rle": {"size": list(size), "counts": counts},
        }
        for idx, size, counts in rles
    ]


def mask_to_rle(mask: np.ndarray, classes: dict[int, str]) -> list[dict[str, object]]:
    """Per class present in `mask`, its COCO RLE (counts as a string)."""
    return named_rle(class_rles(mask), classes)


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def overlay_png(
    image_rgb: np.ndarray, mask: np.ndarray, colors: dict[int, str], alpha: float = 0.5
) -> bytes:
    """The image blended with each class's colour (background and ignore left as they are)."""
    lut = np.zeros((256, 3), dtype=np.float32)
    painted = np.zeros(256, dtype=bool)
    for idx, color in colors.items():
        lut[idx] = hex_to_rgb(color)
        painted[idx] = True
    base = image_rgb.astype(np.float32)
    sel = painted[mask]
    out = base.copy()
    out[sel] = (1 - alpha) * base[sel] + alpha * lut[mask[sel]]
    buf = io.BytesIO()
    PILImage.fromarray(out.round().astype(np.uint8), mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def voc_rgb(index: int) -> tuple[int, int, int]:
    """PASCAL VOC's bit-interleaved palette colour of a class index (255: 224,224,192)."""
    r = g = b = 0
    c = index
    for j in range(8):
        r |= ((c >> 0) & 1) << (7 - j)
        g |= ((c >> 1) & 1) << (7 - j)
        b |= ((c >> 2) & 1) << (7 - j)
        c >>= 3
    return r, g, b


def default_color(index: int) -> str:
    """A distinct colour per class index (the VOC palette), as #rrggbb."""
    return "#{:02x}{:02x}{:02x}".format(*voc_rgb(index))


def mask_stats(mask: np.ndarray) -> dict[str, object]:
    """Pixel count per class index present in a class-index mask (255 included)."""
    counts = np.bincount(mask.ravel(), minlength=256)
    return {"class_pixels": {str(i): int(counts[i]) for i in np.flatnonzero(counts)}}
