"""Background scores of the CAM baseline and of L-Net, fitted to the project's own masks.

With a background class, both label maps compare each tag's map with a background score:
``cam_threshold`` against the CAM attention, ``bg_bias · (1 - max p_k)`` against the
decoded foreground. Fixed defaults suit datasets whose objects fill the image (MSRC's
0.3); where background covers most pixels and the tagged objects are small, the same
threshold hands nearly every pixel to some tag and the CAM row collapses (background IoU
near 0). The human masks say how much of an image is background, so the two values are
chosen where the label maps agree best with them, on the held-out masks when there are
enough of them (the CAM head and the decoder trained on the others, so they flatter
them), else on all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from models.label_transfer import PairMaps, label_pair_maps, pair_maps
from models.lnet import LNet
from models.metrics import accumulate, class_iou, mean_iou

CAM_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95
BG_BIASES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
MIN_HELD_OUT = 4  # fewer held-out masks than this: bg_bias is fitted on all masks


@dataclass(frozen=True)
class Calibration:
    """Fitted background scores and the mIoU each reached on the masks it was fitted to."""

    cam_threshold: float
    bg_bias: float
    cam_miou: float | None
    lnet_miou: float | None
    images: int

    def knobs(self) -> dict[str, float]:
        return {"cam_threshold": self.cam_threshold, "bg_bias": self.bg_bias}


def _best(
    maps: Sequence[PairMaps],
    masks: Sequence[np.ndarray],
    num_labels: int,
    values: Sequence[float],
    pick: str,
    default: float,
    cam_rule: str,
) -> tuple[float, float | None]:
    """The value of ``values`` whose label maps score the highest mIoU against ``masks``."""
    best, best_score = default, None
    for value in values:
        preds = []
        for m in maps:
            labels = label_pair_maps(
                m,
                has_background=True,
                cam_threshold=value if pick == "cam" else 0.3,
                bg_bias=value if pick == "lnet" else 1.0,
                margin=None,
                cam_rule=cam_rule,
            )
            assert labels is not None  # background is always a candidate
            preds.append(labels[0 if pick == "cam" else 1].cpu().numpy().astype(np.uint8))
        score = mean_iou(class_iou(accumulate(preds, masks, num_labels)))
        if score is not None and (best_score is None or score > best_score + 1e-9):
            best, best_score = value, score
    return best, best_score


@torch.no_grad()
def calibrate_background(
    lnet: LNet,
    images: Tensor,
    masks: Tensor,
    tags: Sequence[frozenset[int]],
    held_out: Sequence[bool],
    *,
    defaults: tuple[float, float],
    batch_size: int,
    device: torch.device,
    cam_rule: str = "zscore",
    valid: Tensor | None = None,
) -> Calibration:
    """Fit ``cam_threshold`` and ``bg_bias`` on masked images of a project with background.

    Args:
        lnet: the trained L-Net.
        images: (M, 3, S, S) normalised masked images.
        masks: (M, S, S) uint8 human masks at training size (255 = not painted / padding).
        tags: each image's tags.
        held_out: per image, whether it is a held-out mask (never trained on).
        defaults: (cam_threshold, bg_bias) kept when nothing can be scored.
        batch_size, device: for the L-Net passes.
        cam_rule: how the CAM map picks a tag (models.label_transfer).
        valid: (M, S, S) bool, the pixels inside each image (default all).
    """
    maps = list(pair_maps(lnet, images, tags, batch_size=batch_size, device=device, valid=valid))
    gts = [m.numpy() for m in masks]
    num_labels = lnet.num_classes + 1
    # Both on the held-out masks when there are enough: the CAM head and the decoder have
    # both trained on the others (losses.cam_mask_loss), which flatters them there.
    held = [i for i, h in enumerate(held_out) if h]
    rows = held if len(held) >= MIN_HELD_OUT else list(range(len(maps)))
    cam, cam_score = _best(
        [maps[i] for i in rows],
        [gts[i] for i in rows],
        num_labels,
        CAM_THRESHOLDS,
        "cam",
        defaults[0],
        cam_rule,
    )
    bias, bias_score = _best(
        [maps[i] for i in rows],
        [gts[i] for i in rows],
        num_labels,
        BG_BIASES,
        "lnet",
        defaults[1],
        cam_rule,
    )
    return Calibration(cam, bias, cam_score, bias_score, len(maps))
