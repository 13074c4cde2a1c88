"""L-Net inference: CAM-baseline masks and coarse transferred masks for tagged images.

Coarse mask: one decoder pass per tag k → p_k; background score = bg_bias · (1 - max p_k);
label = argmax over {background, k ∈ T} after normalising; top-two margin < ``margin`` → 255;
then SLIC majority voting. Without a background class the argmax runs over T only.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    lnet.eval()
    n, _, size, _ = images.shape
    cam_out = torch.full((n, size, size), IGNORE, dtype=torch.uint8)
    coarse_out = cam_out.clone()
    background = [0] if has_background else []
    for start in range(0, n, cfg.batch_size):
        x = images[start : start + cfg.batch_size].to(device)
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
            candidates = background + [pairs[j][1] for j in rows]
            if not candidates:
                continue
            if not rows:  # background only
                cam_out[start + i] = coarse_out[start + i] = 0
                continue
            p = fg[rows]
            cam_scores, fg_scores = cam_maps[rows], p
            if has_background:
                cam_scores = torch.cat([torch.full_like(p[:1], cfg.cam_threshold), cam_scores])
                fg_scores = torch.cat([cfg.bg_bias * (1 - p.amax(0, keepdim=True)), p])
            cam_out[start + i] = _label_map(cam_scores, candidates, None).to("cpu", torch.uint8)
            coarse_out[start + i] = _label_map(fg_scores, candidates, cfg.margin).to(
                "cpu", torch.uint8
            )
    cam_out[~valid] = IGNORE
    coarse_out[~valid] = IGNORE
    if segments is not None:
        for i in range(n):
            voted = superpixel_vote(
                coarse_out[i].numpy(), segments[i], cfg.vote_agreement, lnet.num_classes + 1
            )
            coarse_out[i] = torch.from_numpy(voted)
    return cam_out, coarse_out
