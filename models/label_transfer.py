"""L-Net inference: CAM-baseline masks and coarse transferred masks for tagged images.

Coarse mask: one decoder pass per tag k → p_k; background score = bg_bias · (1 - max p_k);
label = argmax over {background, k ∈ T} after normalising; top-two margin < ``margin`` → 255;
then SLIC majority voting. Without a background class the argmax runs over T only.

CAM mask: background where every tag's attention a_k stays at or below ``cam_threshold``;
elsewhere the tag whose map stands out most there. With ``cam_rule=zscore`` "stands out"
is the raw CAM logit standardised over the image (mean 0, std 1 per tag): a tag learned
from its context (cows from the grass they stand on: MSRC's cow, horse, sheep and aeroplane
maps put 0-1 % of their top-10 % pixels on the object) fires broadly, so it is nowhere far
above its own mean, while a map that is high only on its object wins there. ``peak``
compares a_k = ReLU(CAM) / max itself, which hands such images to the context tag.
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
    zscore: Tensor  # (T, S, S) raw CAM logit standardised over the image's own pixels


@torch.no_grad()
def pair_maps(
    lnet: LNet,
    images: Tensor,
    tags: Sequence[frozenset[int]],
    *,
    batch_size: int,
    device: torch.device,
    valid: Tensor | None = None,
) -> Iterator[PairMaps]:
    """CAM attention, decoded foreground and standardised CAM of every (image, tag) pair,
    image by image (L-Net is put in eval mode here). ``valid`` (N, S, S) bool marks the
    pixels inside each image, the ones the standardisation averages over (default all)."""
    lnet.eval()
    n, _, size, _ = images.shape
    for start in range(0, n, batch_size):
        x = images[start : start + batch_size].to(device)
        inside = (
            valid[start : start + len(x)].to(device)
            if valid is not None
            else torch.ones(len(x), size, size, dtype=torch.bool, device=device)
        )
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
            raw = upsample(cams[image_index, class_index - 1].unsqueeze(1), (size, size))[:, 0]
            zscores = standardise(raw, inside[image_index])
        for i in range(len(x)):
            rows = [j for j, p in enumerate(pairs) if p[0] == i]
            empty = torch.zeros(0, size, size, device=device)
            yield PairMaps(
                [pairs[j][1] for j in rows],
                cam_maps[rows] if rows else empty,
                fg[rows] if rows else empty,
                zscores[rows] if rows else empty,
            )


def standardise(maps: Tensor, inside: Tensor) -> Tensor:
    """Each (S, S) map minus its mean, over its std, both taken over its ``inside`` pixels.

    Shape:
        maps (P, S, S) float, inside (P, S, S) bool → (P, S, S)
    """
    weight = inside.to(maps.dtype)
    count = weight.flatten(1).sum(1).clamp_min(1.0)[:, None, None]
    mean = (maps * weight).flatten(1).sum(1)[:, None, None] / count
    var = (((maps - mean) * weight) ** 2).flatten(1).sum(1)[:, None, None] / count
    return (maps - mean) / var.sqrt().clamp_min(1e-6)


def label_pair_maps(
    maps: PairMaps,
    *,
    has_background: bool,
    cam_threshold: float,
    bg_bias: float,
    margin: float | None,
    cam_rule: str,
) -> tuple[Tensor, Tensor] | None:
    """(cam, coarse) label maps of one image (coarse with 255 at low margin), or None for
    an image with neither tags nor background. ``cam_rule`` (zscore or peak) picks the
    CAM map's tag where it is not background (module docstring)."""
    candidates = ([0] if has_background else []) + maps.classes
    if not candidates:
        return None
    size = maps.cam.shape[-1]
    if not maps.classes:  # background only
        zeros = torch.zeros(size, size, dtype=torch.long, device=maps.cam.device)
        return zeros, zeros.clone()
    cam = _label_map(maps.zscore if cam_rule == "zscore" else maps.cam, maps.classes, None)
    fg_scores = maps.fg
    if has_background:
        cam = torch.where(maps.cam.amax(0) > cam_threshold, cam, torch.zeros_like(cam))
        fg_scores = torch.cat([bg_bias * (1 - maps.fg.amax(0, keepdim=True)), maps.fg])
    return cam, _label_map(fg_scores, candidates, margin)


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
        cfg: uses cam_threshold, cam_rule, bg_bias, margin, vote_agreement, batch_size.
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
    maps = pair_maps(lnet, images, tags, batch_size=cfg.batch_size, device=device, valid=valid)
    for i, image_maps in enumerate(maps):
        labels = label_pair_maps(
            image_maps,
            has_background=has_background,
            cam_threshold=cfg.cam_threshold,
            bg_bias=cfg.bg_bias,
            margin=cfg.margin,
            cam_rule=cfg.cam_rule,
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
