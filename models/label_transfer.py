"""L-Net inference: CAM-baseline masks and coarse transferred masks for tagged images.

Coarse mask: one decoder pass per tag k → p_k; background score = bg_bias · (1 - max p_k);
label = argmax over {background, k ∈ T} after normalising; top-two margin < ``margin`` → 255;
then SLIC majority voting. Without a background class the argmax runs over T only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from models.config import PipelineConfig
from models.lnet import LNet, upsample
from models.losses import IGNORE
from models.regions import superpixel_vote


def _label_map(scores: Tensor, candidates: Sequence[int], margin: float | None) -> Tensor:
    """Argmax of (C, H, W) scores mapped to class ids; low top-two margin → 255."""
    ids = torch.tensor(candidates, dtype=torch.long, device=scores.device)
    labels = ids[scores.argmax(0)]
    if margin is not None and len(candidates) > 1:
        probs = scores / scores.sum(0, keepdim=True).clamp_min(1e-8)
        top2 = probs.topk(2, dim=0).values
        labels = torch.where(top2[0] - top2[1] < margin, IGNORE, labels)
    return labels


@dataclass
class PairMaps:
    """One image's L-Net maps at training size, one row per tag (in ``classes`` order)."""

    classes: list[int]  # the image's tags, sorted
    cam: Tensor  # (T, S, S) attention a_k in [0, 1]
    fg: Tensor  # (T, S, S) decoder foreground probability


@torch.no_grad()
def pair_maps(
    lnet: LNet,
    images: Tensor,
    tags: Sequence[frozenset[int]],
    *,
    batch_size: int,
    device: torch.device,
) -> Iterator[PairMaps]:
    """CAM attention and decoded foreground of every (image, tag) pair, image by image
    (L-Net is put in eval mode here)."""
    lnet.eval()
    n, _, size, _ = images.shape
    for start in range(0, n, batch_size):
        x = images[start : start + batch_size].to(device)
        features = lnet.features(x)
        cams = lnet.cams(features).float()
        pairs = [(i, k) for i in range(len(x)) for k in sorted(tags[start + i])]
        if pairs:
            image_index = torch.tensor([p[0] for p in pairs], device=device)
            class_index = torch.tensor([p[1] for p in pairs], device=device)
            attention = LNet.attention(cams, image_index, class_index)
            fg = torch.softmax(
                lnet.decode(features, image_index, attention, (size, size)).float(), dim=1
            )[:, 1]
            cam_maps = upsample(attention, (size, size))[:, 0]
        for i in range(len(x)):
            rows = [j for j, p in enumerate(pairs) if p[0] == i]
            empty = torch.zeros(0, size, size, device=device)
            yield PairMaps(
                [pairs[j][1] for j in rows],
                cam_maps[rows] if rows else empty,
                fg[rows] if rows else empty,
            )


def label_pair_maps(
    maps: PairMaps,
    *,
    has_background: bool,
    cam_threshold: float,
    bg_bias: float,
    margin: float | None,
) -> tuple[Tensor, Tensor] | None:
    """(cam, coarse) label maps of one image (coarse with 255 at low margin), or None for
    an image with neither tags nor background."""
    candidates = ([0] if has_background else []) + maps.classes
    if not candidates:
        return None
    size = maps.cam.shape[-1]
    if not maps.classes:  # background only
        zeros = torch.zeros(size, size, dtype=torch.long, device=maps.cam.device)
        return zeros, zeros.clone()
    cam_scores, fg_scores = maps.cam, maps.fg
    if has_background:
        cam_scores = torch.cat([torch.full_like(maps.fg[:1], cam_threshold), cam_scores])
        fg_scores = torch.cat([bg_bias * (1 - maps.fg.amax(0, keepdim=True)), maps.fg])
    return _label_map(cam_scores, candidates, None), _label_map(fg_scores, candidates, margin)


@torch.no_grad()
def transfer_labels(
    lnet: LNet,
    images: Tensor,
    tags: Sequence[frozenset[int]],
    cfg: PipelineConfig,
    *,
    has_background: bool,
    device: torch.device,
    valid: Tensor,
    segments: np.ndarray | None = None,
) -> tuple[Tensor, Tensor]:
    """CAM-baseline and L-Net coarse label maps at training size.

    Args:
        lnet: trained L-Net (put in eval mode here).
        images: (N, 3, S, S) normalised images.
        tags: per image, its categories 1..K.
        cfg: uses cam_threshold, bg_bias, margin, vote_agreement, batch_size.
        has_background: whether class 0 may be predicted.
        device: where to run.
        valid: (N, S, S) bool, False on padding (always 255 in the output).
        segments: optional (N, S, S) superpixels for majority voting.

    Returns:
        cam (N, S, S) uint8 without 255 inside the image, coarse (N, S, S) uint8 with 255.
    """
    n, _, size, _ = images.shape
    cam_out = torch.full((n, size, size), IGNORE, dtype=torch.uint8)
    coarse_out = cam_out.clone()
    maps = pair_maps(lnet, images, tags, batch_size=cfg.batch_size, device=device)
    for i, image_maps in enumerate(maps):
        labels = label_pair_maps(
            image_maps,
            has_background=has_background,
            cam_threshold=cfg.cam_threshold,
            bg_bias=cfg.bg_bias,
            margin=cfg.margin,
        )
        if labels is not None:
            cam_out[i] = labels[0].to("cpu", torch.uint8)
            coarse_out[i] = labels[1].to("cpu", torch.uint8)
    cam_out[~valid] = IGNORE
    coarse_out[~valid] = IGNORE
    if segments is not None:
        for i in range(n):
            voted = superpixel_vote(
                coarse_out[i].numpy(), segments[i], cfg.vote_agreement, lnet.num_classes + 1
            )
            coarse_out[i] = torch.from_numpy(voted)
    return cam_out, coarse_out
