"""The CAM prior's weight fitted on a run's held-out human masks (cam_prior_fit=holdout).

How much the CAM should move the segmenters depends on the data: on MSRC transfer the
supervised nets scored best at a weight near 3 (0.562 -> 0.647 val mIoU), on the synthetic
shapes of the tests, where the segmenters are far better than the CAM, any weight above 0
loses. The held-out masks, which no network trains on, pick it per run.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.cam_prior import cam_zscores, with_prior
from models.context import PipelineContext
from models.inference import iter_ensemble
from models.lnet import LNet
from models.pseudo import allowed_classes

# Weights the held-out fit tries (cam_prior_fit=holdout): MSRC transfer's supervised nets
# scored best near 3, synthetic shapes (where the segmenters beat the CAM) at 0.
FIT_GRID = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0)


def fit_weight(
    ctx: PipelineContext, segmenters: Sequence[nn.Module], lnet: LNet
) -> tuple[float, dict[str, float]]:
    """The weight of FIT_GRID whose predictions of the held-out human masks score the best
    mIoU over the categories they paint (ties: the smaller weight), and every weight's
    score; (0, {}) without held-out masks. Under transfer the held-out masks paint the
    strong half only, so the weight is chosen on those categories (a weak one predicted
    where they paint a strong one still lowers that one's IoU)."""
    held = set(ctx.holdout)
    positions = [p for p, i in enumerate(ctx.targets) if i in held]
    indices = [ctx.targets[p] for p in positions]
    if not indices:
        return 0.0, {}
    allowed = allowed_classes(ctx.tags[indices], ctx.has_background)
    # target label maps as ctx.evaluate reads them: only the held-out positions are filled
    size = ctx.cfg.image_size
    empty = torch.full((len(ctx.targets), size, size), 255, dtype=torch.uint8)
    labels = {w: empty.clone() for w in FIT_GRID}
    for batch in iter_ensemble(
        segmenters,
        None,
        ctx.images[indices],
        allowed,
        batch_size=ctx.cfg.batch_size,
        device=ctx.device,
        shapes=[ctx.shapes[i] for i in indices],
        zoom=ctx.cfg.inference_zoom,
        precision=ctx.cfg.precision,
    ):
        span = slice(batch.start, batch.start + len(batch.probs))
        rows = indices[span]
        z = cam_zscores(lnet, ctx.images[rows].to(ctx.device), ctx.valid[rows].to(ctx.device))
        for w in FIT_GRID:
            labels[w][positions[span]] = (
                with_prior(batch.probs, z.cpu(), allowed[span], ctx.prior_weights(w))
                .argmax(1)
                .to(torch.uint8)
            )
    # miou_gt: under transfer the held-out masks leave the weak categories unpainted, and
    # "miou" would count each weak category predicted on a painted pixel as an IoU of 0
    scores = {str(w): float(ctx.evaluate(labels[w])["miou_gt"]) for w in FIT_GRID}  # type: ignore[arg-type]
    best = max(FIT_GRID, key=lambda w: (scores[str(w)], -w))
    return best, scores
