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


def with_prior(probs: Tensor, prior: Tensor, allowed: Tensor, weight: float) -> Tensor:
    """softmax(log probs + weight · prior) over the allowed classes.

    Shape:
        probs, prior (N, C, H, W); allowed (N, C) bool → (N, C, H, W)
    """
    logits = probs.float().clamp_min(1e-6).log() + weight * prior.float()
    logits = logits.masked_fill(~allowed.bool()[:, :, None, None], float("-inf"))
    return torch.softmax(logits, dim=1)
