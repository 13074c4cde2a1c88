"""Resizing to the training size (longer side, padded to a square) and back to original size.

Images resize bilinearly (antialiased) and are normalised; masks resize by nearest
neighbour; padding is 0 in the image (the mean colour) and 255 (ignore) in masks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE = 255
MEAN = torch.tensor([0.485, 0.456, 0.406]) * 255
STD = torch.tensor([0.229, 0.224, 0.225]) * 255


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """Shape with the longer side scaled to ``size``, aspect ratio kept."""
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def prepare_images(images: Sequence[np.ndarray], size: int) -> tuple[Tensor, list[tuple[int, int]]]:
    """Normalised, resized, zero-padded images and each one's resized (h, w).

    Shape:
        HxWx3 uint8 each → (N, 3, size, size) float32
    """
    out = torch.zeros(len(images), 3, size, size)
    shapes = []
    for i, image in enumerate(images):
        h, w = resized_shape(image.shape[0], image.shape[1], size)
        x = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]  # a writable copy
        if (h, w) != image.shape[:2]:
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        out[i, :, :h, :w] = (x[0] - MEAN[:, None, None]) / STD[:, None, None]
        shapes.append((h, w))
    return out, shapes


def prepare_masks(masks: Sequence[np.ndarray | None], size: int) -> Tensor:
    """Nearest-resized, 255-padded masks; a missing mask is all 255.

    Shape:
        HxW uint8 each (or None) → (N, size, size) uint8
    """
    out = torch.full((len(masks), size, size), IGNORE, dtype=torch.uint8)
    for i, mask in enumerate(masks):
        if mask is not None:
            h, w = resized_shape(mask.shape[0], mask.shape[1], size)
            out[i, :h, :w] = resize_labels(torch.from_numpy(mask.astype(np.uint8)), (h, w))
    return out


def resize_labels(labels: Tensor, shape: Sequence[int]) -> Tensor:
    """Nearest-neighbour resize of a (h, w) label map."""
    if tuple(labels.shape) == tuple(shape):
        return labels
    resized = F.interpolate(labels[None, None].float(), size=tuple(shape), mode="nearest-exact")
    return resized[0, 0].to(labels.dtype)


def valid_mask(shapes: Sequence[tuple[int, int]], size: int) -> Tensor:
    """(N, size, size) bool, True inside each image's resized area (not padding)."""
    out = torch.zeros(len(shapes), size, size, dtype=torch.bool)
    for i, (h, w) in enumerate(shapes):
        out[i, :h, :w] = True
    return out


def labels_to_original(
    labels: Tensor, shape: tuple[int, int], original: tuple[int, int]
) -> np.ndarray:
    """Crop a training-size (S, S) label map to its image and resize (nearest) to original."""
    h, w = shape
    return resize_labels(labels[:h, :w], original).numpy().astype(np.uint8)


def probs_to_original(probs: Tensor, shape: tuple[int, int], original: tuple[int, int]) -> Tensor:
    """Crop (C, S, S) class probabilities to the image and resize bilinearly to original."""
    h, w = shape
    crop = probs[None, :, :h, :w].float()
    if (h, w) != tuple(original):
        crop = F.interpolate(crop, size=original, mode="bilinear", align_corners=False)
    return crop[0]


def multi_hot(tags: Sequence[frozenset[int]], num_classes: int) -> Tensor:
    """(N, K) float tags, column k-1 for class k."""
    out = torch.zeros(len(tags), num_classes)
    for i, t in enumerate(tags):
        if t:
            out[i, [k - 1 for k in t]] = 1.0
    return out


def hflip(x: Tensor) -> Tensor:
    """Flip the last (width) dimension."""
    return x.flip(-1)


def denormalise(images: Tensor) -> np.ndarray:
    """(N, 3, S, S) normalised → (N, S, S, 3) uint8, for superpixels."""
    x = images * STD[:, None, None] + MEAN[:, None, None]
    return x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
