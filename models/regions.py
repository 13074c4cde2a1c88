"""SLIC superpixels: majority voting, region relevance scores and region filtering (RRN-style).

Everything here is per image, in numpy: segments are (H, W) int arrays with ids 0..n-1 and
-1 on padding, which belongs to no region.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import find_objects
from skimage.segmentation import slic

IGNORE = 255


def superpixels(image: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    """SLIC superpixels of an HxWx3 uint8 image → (H, W) int32 ids 0..n-1."""
    segments = slic(
        image,
        n_segments=max(1, n_segments),
        compactness=compactness,
        start_label=0,
        channel_axis=-1,
    )
    return segments.astype(np.int32)


def padded_superpixels(
    images: np.ndarray, shapes: Sequence[tuple[int, int]], n_segments: int, compactness: float
) -> np.ndarray:
    """Superpixels of each image's valid (h, w) corner; padding gets -1.

    ``n_segments`` is meant for a full square, so smaller images get proportionally fewer.

    Shape:
        images (N, S, S, 3) uint8 → (N, S, S) int32
    """
    n, size = images.shape[:2]
    out = np.full((n, size, size), -1, dtype=np.int32)
    for i, (h, w) in enumerate(shapes):
        count = max(1, round(n_segments * h * w / size**2))
        out[i, :h, :w] = superpixels(images[i, :h, :w], count, compactness)
    return out


def superpixel_vote(
    labels: np.ndarray, segments: np.ndarray, agreement: float, num_labels: int
) -> np.ndarray:
    """A superpixel whose labelled pixels mostly (≥ ``agreement``) agree takes the majority label.

    255 pixels do not vote but are filled when their superpixel wins; other superpixels
    keep their pixels' labels.

    Shape:
        labels (H, W) uint8 with 255, segments (H, W) int → (H, W) uint8
    """
    inside = segments >= 0
    n_seg = int(segments.max()) + 1 if inside.any() else 0
    voting = inside & (labels != IGNORE)
    votes = np.bincount(
        segments[voting].astype(np.int64) * num_labels + labels[voting],
        minlength=n_seg * num_labels,
    ).reshape(n_seg, num_labels)
    total = votes.sum(1)
    majority = votes.argmax(1)
    wins = (total > 0) & (votes.max(1) >= agreement * np.maximum(total, 1))
    out = labels.copy()
    winner = inside.copy()
    winner[inside] = wins[segments[inside]]
    out[winner] = majority[segments[winner]]
    return out


def region_scores(segments: np.ndarray, real_prob: np.ndarray, agree: np.ndarray) -> np.ndarray:
    """Region score = mean Dsc "real" probability x fraction of pixels where S_a and S_b agree.

    Shape:
        segments (H, W) int, real_prob (H, W) float, agree (H, W) bool → (n_regions,) float
    """
    inside = segments >= 0
    if not inside.any():
        return np.zeros(0, dtype=np.float32)
    ids = segments[inside]
    n_seg = int(ids.max()) + 1
    count = np.maximum(np.bincount(ids, minlength=n_seg), 1)
    real = np.bincount(ids, weights=real_prob[inside], minlength=n_seg) / count
    agreed = np.bincount(ids, weights=agree[inside].astype(np.float64), minlength=n_seg) / count
    return (real * agreed).astype(np.float32)


def filter_regions(
    labels: np.ndarray, segments: np.ndarray, scores: np.ndarray, theta_r: float
) -> tuple[np.ndarray, np.ndarray]:
    """Regions scoring under θ_r → 255; pixels of kept regions are weighted by their score.

    Shape:
        labels (H, W) uint8, segments (H, W) int, scores (n_regions,) →
        labels (H, W) uint8, weights (H, W) float32 (0 where dropped or outside regions)
    """
    pixel_score = np.zeros(segments.shape, dtype=np.float32)
    inside = segments >= 0
    pixel_score[inside] = scores[segments[inside]]
    keep = inside & (pixel_score >= theta_r)
    filtered = np.where(keep, labels, IGNORE).astype(np.uint8)
    weights = np.where(keep & (filtered != IGNORE), pixel_score, 0.0).astype(np.float32)
    return filtered, weights


def region_boxes(
    segments: np.ndarray, scores: np.ndarray, scale: tuple[float, float] = (1.0, 1.0)
) -> list[dict[str, object]]:
    """Each region's id, bounding box [x0, y0, x1, y1] (exclusive end, scaled) and score."""
    out: list[dict[str, object]] = []
    sy, sx = scale
    for region, box in enumerate(find_objects(segments + 1, max_label=len(scores))):
        if box is None:
            continue
        ys, xs = box
        bbox = [
            int(xs.start * sx),
            int(ys.start * sy),
            int(np.ceil(xs.stop * sx)),
            int(np.ceil(ys.stop * sy)),
        ]
        out.append({"id": region, "bbox": bbox, "score": round(float(scores[region]), 4)})
    return out
