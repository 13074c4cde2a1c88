"""Seeded synthetic segmentation data: textured shapes on textured backgrounds, made in code.

Each category has its own shape AND its own texture (the colour is random per object, so
colour alone tells nothing). Used by the models' learning tests and, through
``make_shapes_dataset`` and ``encode_png``, by the worker/API tests to build uploads.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")
GROUND = "ground"  # the all-covering category of datasets without background


def _shape(name: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    if name == "circle":
        return dx**2 + dy**2 < r**2
    if name == "square":
        return (np.abs(dx) < 0.8 * r) & (np.abs(dy) < 0.8 * r)
    if name == "triangle":
        return (dy > -r) & (dy < 0.8 * r) & (np.abs(dx) < 0.6 * (dy + r))
    if name == "cross":
        return ((np.abs(dx) < r / 3) & (np.abs(dy) < r)) | ((np.abs(dy) < r / 3) & (np.abs(dx) < r))
    if name == "ring":
        d = np.sqrt(dx**2 + dy**2)
        return (d < r) & (d > 0.5 * r)
    return np.abs(dx) + np.abs(dy) < 1.1 * r  # diamond


def _texture(k: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Texture of category k in [0, 1]: stripes, checks, dots, diagonals, ..."""
    kind = k % 6
    if kind == 0:
        return (y // 2 % 2).astype(float)
    if kind == 1:
        return ((x // 3 + y // 3) % 2).astype(float)
    if kind == 2:
        return ((x % 4 < 2) & (y % 4 < 2)).astype(float)
    if kind == 3:
        return ((x + y) // 2 % 2).astype(float)
    if kind == 4:
        return (x // 2 % 2).astype(float)
    return ((x - y) // 3 % 2).astype(float)


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(60, 230, size=3)


def _paint(
    image: np.ndarray, region: np.ndarray, texture: np.ndarray, rng: np.random.Generator
) -> None:
    light = _colour(rng)
    dark = light * rng.uniform(0.25, 0.5)
    image[region] = dark + (light - dark) * texture[region][:, None]


def make_shapes_dataset(
    n: int,
    size: int = 48,
    seed: int = 0,
    num_classes: int = 4,
    *,
    background: bool = True,
    max_objects: int = 2,
    vary_size: bool = False,
) -> tuple[list[np.ndarray], list[np.ndarray], list[frozenset[int]]]:
    """``n`` images (HxWx3 uint8), class-index masks (HxW uint8, 0 = background) and tags.

    Args:
        n: number of images.
        size: height (and width unless ``vary_size``).
        seed: everything is drawn from this seed.
        num_classes: K categories (at most 6 shapes; with ``background=False`` category 1
            is a textured ground covering every pixel no object covers, so there is no 0).
        max_objects: objects per image, 1..max_objects, of distinct categories.
        vary_size: widths drawn from [0.75·size, size] to exercise resizing.
    """
    first_object = 1 if background else 2
    if not 1 <= num_classes - first_object + 1 <= len(SHAPES):
        raise ValueError(f"num_classes must leave 1..{len(SHAPES)} object categories")
    rng = np.random.default_rng(seed)
    images, masks, tags = [], [], []
    for _ in range(n):
        h, w = size, int(rng.integers(int(0.75 * size), size + 1)) if vary_size else size
        y, x = np.mgrid[0:h, 0:w]
        ox, oy = rng.integers(0, 6, size=2)
        noise = gaussian_filter(rng.normal(size=(h, w)), sigma=size / 10)
        noise = (noise - noise.min()) / (np.ptp(noise) + 1e-8)
        image = _colour(rng) * 0.5 + noise[..., None] * _colour(rng) * 0.5
        mask = np.zeros((h, w), dtype=np.uint8)
        if not background:
            _paint(image, np.ones((h, w), bool), _texture(5, x + ox, y + oy), rng)
            mask[:] = 1
        count = int(rng.integers(1, max_objects + 1))
        classes = rng.choice(
            np.arange(first_object, num_classes + 1),
            size=min(count, num_classes - first_object + 1),
            replace=False,
        )
        for k in classes:
            r = rng.uniform(0.18, 0.3) * size
            cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
            region = _shape(SHAPES[(k - first_object) % len(SHAPES)], x - cx, y - cy, r)
            _paint(image, region, _texture(int(k) - first_object, x + ox, y + oy), rng)
            mask[region] = k
        image += rng.normal(scale=6, size=image.shape)
        present = {int(k) for k in np.unique(mask) if k > 0 and (mask == k).sum() >= 8}
        images.append(np.clip(image, 0, 255).astype(np.uint8))
        masks.append(mask)
        tags.append(frozenset(present))
    return images, masks, tags


def make_closeups(
    n: int, categories: Sequence[int], size: int = 48, seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray], list[frozenset[int]]]:
    """``n`` close-ups of the ``background=False`` data of make_shapes_dataset: each image
    is one of ``categories`` (2.. for objects, 1 for the ground) filling the whole frame in
    its texture, like a photo of a page of a book or a bed of flowers.

    Returns images (HxWx3 uint8), masks (HxW uint8, the category everywhere) and tags.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    images, masks, tags = [], [], []
    for i in range(n):
        k = int(categories[i % len(categories)])
        ox, oy = rng.integers(0, 6, size=2)
        image = np.zeros((size, size, 3))
        texture = 5 if k == 1 else k - 2  # make_shapes_dataset's textures without background
        _paint(image, np.ones((size, size), bool), _texture(texture, x + ox, y + oy), rng)
        image += rng.normal(scale=6, size=image.shape)
        images.append(np.clip(image, 0, 255).astype(np.uint8))
        masks.append(np.full((size, size), k, dtype=np.uint8))
        tags.append(frozenset({k}))
    return images, masks, tags


def split_strong_weak(
    masks: Sequence[np.ndarray],
    tags: Sequence[frozenset[int]],
    strong: Sequence[int],
    *,
    mask_fraction: float = 0.5,
    seed: int = 0,
) -> list[np.ndarray | None]:
    """Human masks for a transfer setup: only ``strong`` categories are ever painted.

    A ``mask_fraction`` share of the images holding a strong category get a mask in which
    pixels of other categories are 255 (unpainted); every other image gets None. The full
    masks stay with the caller for evaluation.
    """
    rng = np.random.default_rng(seed)
    strong_set = set(strong)
    eligible = [i for i, t in enumerate(tags) if t & strong_set]
    chosen = set(rng.permutation(eligible)[: round(mask_fraction * len(eligible))].tolist())
    out: list[np.ndarray | None] = []
    for i, mask in enumerate(masks):
        if i not in chosen:
            out.append(None)
            continue
        painted = mask.copy()
        weak_pixels = (mask > 0) & ~np.isin(mask, list(strong_set))
        painted[weak_pixels] = 255
        out.append(painted)
    return out


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of an HxWx3 uint8 image or an HxW uint8 class-index mask."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def make_parts_dataset(
    n: int,
    size: int = 64,
    seed: int = 0,
    num_classes: int = 12,
    *,
    parts: tuple[int, int] = (2, 4),
) -> tuple[list[np.ndarray], list[np.ndarray], list[frozenset[int]]]:
    """Images shaped like parsing datasets (and PASCAL VOC): class 0 covers most pixels,
    category 1 (a large "body") is in every image, and 2..4 small "parts" of categories
    2..K sit on or beside it, each a few percent of the image.

    Each category has its own shape/texture pair; the body's texture is shared by no part.
    Returns images (HxWx3 uint8), masks (HxW uint8, 0 = background) and tags.
    """
    if not 3 <= num_classes <= 1 + 5 * len(SHAPES):
        raise ValueError("num_classes must be in [3, 31]")
    rng = np.random.default_rng(seed)
    images, masks, tags = [], [], []
    y, x = np.mgrid[0:size, 0:size]
    for _ in range(n):
        ox, oy = rng.integers(0, 6, size=2)
        noise = gaussian_filter(rng.normal(size=(size, size)), sigma=size / 8)
        noise = (noise - noise.min()) / (np.ptp(noise) + 1e-8)
        image = _colour(rng) * 0.6 + noise[..., None] * _colour(rng) * 0.4
        mask = np.zeros((size, size), dtype=np.uint8)
        bx, by = rng.uniform(0.35, 0.65, size=2) * size
        body = ((x - bx) / (0.16 * size)) ** 2 + ((y - by) / (0.3 * size)) ** 2 < 1
        _paint(image, body, _texture(0, x + ox, y + oy) * 0.5, rng)
        mask[body] = 1
        count = int(rng.integers(parts[0], parts[1] + 1))
        for k in rng.choice(np.arange(2, num_classes + 1), size=count, replace=False):
            r = rng.uniform(0.07, 0.11) * size
            cx = np.clip(bx + rng.normal(scale=0.25 * size), r, size - r)
            cy = np.clip(by + rng.normal(scale=0.3 * size), r, size - r)
            shape = SHAPES[int(k) % len(SHAPES)]
            region = _shape(shape, x - cx, y - cy, r)
            texture = _texture(1 + (int(k) // len(SHAPES)) % 5, x + ox, y + oy)
            _paint(image, region, texture, rng)
            mask[region] = k
        image += rng.normal(scale=6, size=image.shape)
        present = {int(k) for k in np.unique(mask) if k > 0 and (mask == k).sum() >= 6}
        images.append(np.clip(image, 0, 255).astype(np.uint8))
        masks.append(mask)
        tags.append(frozenset(present))
    return images, masks, tags
