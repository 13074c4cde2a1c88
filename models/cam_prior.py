"""L-Net's standardised CAMs as a prior of the segmenters' predictions (cfg.cam_prior).

The segmenters learn a category from the pixels they are told about, the CAM from every
photo tagged with it. On MSRC transfer their supervised stage scored 0.562 val mIoU and
the z-scored CAM 0.563, yet log p + 3 z scored 0.647 (strong categories 0.669 → 0.814):
where a segmenter hesitates between two of the image's tags, the CAM knows which one the
photo is about (docs/quality-log.md, session 21). Prediction then takes the argmax of

    log p_k(x) + w · z_k(x)   over the allowed classes k,

with z_k the image's raw CAM logit of k standardised over its own pixels (mean 0, std 1,
as in ``cam_rule=zscore``) and 0 for background, which has no CAM.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from models.label_transfer import standardise
from models.lnet import LNet, upsample


@torch.no_grad()
def cam_zscores(lnet: LNet, images: Tensor, valid: Tensor) -> Tensor:
    """(N, K+1, S, S) standardised CAM of every category (column 0, background: zeros).

    Args:
        lnet: trained L-Net (put in eval mode here).
        images: (N, 3, S, S) normalised images, on L-Net's device.
        valid: (N, S, S) bool, the pixels inside each image (the standardisation's).
    """
    lnet.eval()
    n, _, size, _ = images.shape
    raw = upsample(lnet.cams(lnet.features(images)).float(), (size, size))
    k = raw.shape[1]
    z = standardise(raw.flatten(0, 1), valid.repeat_interleave(k, 0)).view(n, k, size, size)
    return F.pad(z, (0, 0, 0, 0, 1, 0))


def prior_weights(
    num_classes: int, weight: float, weak: Sequence[int], weak_scale: float
) -> Tensor:
    """(K+1,) weight of each class's CAM: ``weight``, times ``weak_scale`` for the weak
    categories (cam_prior_weak). The segmenters know a weak category only from pseudo
    labels that came from the CAM in the first place, so the CAM can be trusted more there
    than where human masks taught them."""
    weights = torch.full((num_classes + 1,), float(weight))
    weights[list(weak)] *= weak_scale
    return weights


def applies(weight: float | Tensor) -> bool:
    """Whether a prior of this weight (one, or one per class) changes anything."""
    return bool(torch.as_tensor(weight).max() > 0)


def with_prior(probs: Tensor, prior: Tensor, allowed: Tensor, weight: float | Tensor) -> Tensor:
    """softmax(log probs + weight · prior) over the allowed classes; ``weight`` one number
    or one per class (prior_weights).

    Shape:
        probs, prior (N, C, H, W); allowed (N, C) bool; weight () or (C,) → (N, C, H, W)
    """
    if isinstance(weight, Tensor):
        weight = weight.to(prior.device).view(1, -1, 1, 1)
    logits = probs.float().clamp_min(1e-6).log() + weight * prior.float()
    logits = logits.masked_fill(~allowed.bool()[:, :, None, None], float("-inf"))
    return torch.softmax(logits, dim=1)
