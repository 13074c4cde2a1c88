"""One run's prepared data: training-size tensors, index sets, superpixels, held-out scoring."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from models.cam_prior import prior_weights
from models.config import PipelineConfig
from models.data import LabelingData, holdout_split
from models.errors import NotEnoughData
from models.metrics import evaluate
from models.partial_masks import PartialMasks, complete_masks, partial_images
from models.regions import padded_superpixels
from models.transforms import (
    denormalise,
    labels_to_original,
    multi_hot,
    prepare_images,
    prepare_masks,
    valid_mask,
)


@dataclass
class PipelineContext:
    """Everything the stages share.

    ``targets`` are the images the stages label: those without a human mask plus the
    held-out masked images (whose masks only score quality); stage label maps are
    (len(targets), S, S) uint8 in that order. ``train_masked`` images train with their masks.
    ``partial`` are the train_masked masks that leave some of their image's tags unpainted;
    once L-Net has labelled their unpainted pixels over those tags, :meth:`use_completed`
    gives the segmenters the completed masks (models/partial_masks.py).
    ``single_tag`` are tag-only images whose one tag is their mask (no background class,
    cfg.single_tag=mask): the supervised stage trains on them beside the human masks.
    """

    data: LabelingData
    cfg: PipelineConfig
    device: torch.device
    images: Tensor  # (N, 3, S, S) normalised
    masks: Tensor  # (N, S, S) uint8, human masks of train_masked only, else 255
    tags: Tensor  # (N, K) multi-hot
    valid: Tensor  # (N, S, S) bool
    shapes: list[tuple[int, int]]  # resized (h, w) inside the SxS square
    has_background: bool
    strong: list[int]
    weak: list[int]
    holdout: list[int]
    train_masked: list[int]
    targets: list[int]
    segments: np.ndarray  # (len(targets), S, S) superpixels of the targets
    partial: PartialMasks
    segmenter_masks: Tensor  # masks, with the partial ones completed once use_completed ran
    single_tag: list[int]

    @classmethod
    def build(
        cls,
        data: LabelingData,
        cfg: PipelineConfig,
        device: torch.device,
        holdout: Sequence[int] | None = None,
    ) -> PipelineContext:
        if len(data) == 0:
            raise NotEnoughData("no images to label")
        size = cfg.image_size
        if holdout is None:
            holdout = holdout_split(data, cfg.holdout_fraction, cfg.seed)
        held = set(holdout)
        if any(not 0 <= i < len(data) or data.masks[i] is None for i in held):
            raise ValueError("held-out images must be indices of images with a human mask")
        train_masked = [i for i in data.masked if i not in held]
        targets = sorted(set(data.unmasked) | held)
        images, shapes = prepare_images(data.images, size)
        training = set(train_masked)
        masks = prepare_masks(
            [m if i in training else None for i, m in enumerate(data.masks)], size
        )
        target_pixels = denormalise(images[targets]) if targets else np.zeros((0, size, size, 3))
        segments = padded_superpixels(
            target_pixels, [shapes[i] for i in targets], cfg.slic_segments, cfg.slic_compactness
        )
        has_background = (
            data.has_background if cfg.background == "auto" else cfg.background == "present"
        )
        partial = partial_images(
            data.masks,
            data.tags,
            [] if cfg.partial_masks == "as_is" else train_masked,
            has_background,
        )
        single_tag = (
            [i for i in data.unmasked if len(data.tags[i]) == 1 and i not in data.no_pseudo]
            if cfg.single_tag == "mask" and not has_background
            else []
        )
        return cls(
            data=data,
            cfg=cfg,
            device=device,
            images=images,
            masks=masks,
            tags=multi_hot(data.tags, data.num_classes),
            valid=valid_mask(shapes, size),
            shapes=shapes,
            has_background=has_background,
            strong=data.strong_classes(cfg.min_masks_per_class),
            weak=data.weak_classes(cfg.min_masks_per_class),
            holdout=sorted(held),
            train_masked=train_masked,
            targets=targets,
            segments=segments,
            partial=partial,
            segmenter_masks=masks,
            single_tag=single_tag,
        )

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def unmasked_positions(self) -> list[int]:
        """Positions in ``targets`` of the images without a human mask."""
        return [p for p, i in enumerate(self.targets) if self.data.masks[i] is None]

    def human_repeats(self, others: int) -> int:
        """How often each human-masked image appears per epoch so that they make up about
        ``cfg.human_share`` of it (few masks among many tag-only images otherwise drown)."""
        share, n = self.cfg.human_share, len(self.train_masked)
        if share <= 0 or n == 0:
            return 1
        return max(1, round(share * others / ((1 - share) * n)))

    def lnet_tensors(self) -> dict[str, Tensor]:
        """L-Net's training set: every image, with the masks of train_masked (repeated)."""
        masked = set(self.train_masked)
        others = [i for i in range(len(self.data)) if i not in masked]
        repeats = self.human_repeats(len(others))
        if repeats == 1:
            has_mask = torch.zeros(len(self.data), dtype=torch.bool)
            has_mask[self.train_masked] = True
            return {
                "image": self.images,
                "mask": self.masks,
                "tags": self.tags,
                "valid": self.valid,
                "has_mask": has_mask,
            }
        order = self.train_masked * repeats + others
        has_mask = torch.zeros(len(order), dtype=torch.bool)
        has_mask[: len(order) - len(others)] = True
        return {
            "image": self.images[order],
            "mask": self.masks[order],
            "tags": self.tags[order],
            "valid": self.valid[order],
            "has_mask": has_mask,
        }

    def segmenter_tensors(self, pseudo: Tensor, weight: Tensor) -> dict[str, Tensor]:
        """Segmenters' training set: train_masked with human masks, the targets without a
        mask with pseudo-masks (held-out images are scored, never trained on).

        Args:
            pseudo: (len(targets), S, S) uint8 pseudo labels, 255 = ignore.
            weight: (len(targets), S, S) float per-pixel weights of the pseudo labels.
        """
        rejected = [p for p, i in enumerate(self.targets) if i in self.data.no_pseudo]
        if rejected:
            pseudo, weight = pseudo.clone(), weight.clone()
            pseudo[rejected] = 255
            weight[rejected] = 0.0
        # The held-out masked images are targets only to be scored: training on their
        # pseudo labels would make the held-out check grade the nets on their own labels
        # (on MSRC full a round lowered val mIoU 0.766 -> 0.748 while the held-out masks,
        # which it had trained on, did not object).
        held = set(self.holdout)
        keep = [p for p, i in enumerate(self.targets) if i not in held]
        targets = [self.targets[p] for p in keep]
        masked = self.train_masked * self.human_repeats(len(targets))
        return self._segmenter_rows(
            self.segmenter_masks, masked, targets, pseudo[keep], weight[keep]
        )

    def supervised_tensors(self) -> dict[str, Tensor]:
        """The human-masked training images (and the ``single_tag`` ones with their tag as
        mask), repeated to about as many samples as :meth:`segmenter_tensors` holds, so a
        supervised epoch takes as many optimizer steps as a P-Net epoch (few masks would
        otherwise get a handful of steps)."""
        rows = self.train_masked + self.single_tag
        samples = len(self.train_masked) + len(self.targets)
        repeats = max(1, round(samples / max(len(rows), 1)))
        none = torch.zeros(0, self.cfg.image_size, self.cfg.image_size)
        return self._segmenter_rows(self._with_single_tags(), rows * repeats, [], none, none)

    def _with_single_tags(self) -> Tensor:
        """The supervised stage's masks with each ``single_tag`` image's tag on all of its
        pixels: the human masks, or under partial_masks=mixed the completed ones (L-Net's
        labels of the entangled categories are what teaches those; ``complete`` keeps its
        completion for P-Net only)."""
        base = self.segmenter_masks if self.cfg.partial_masks == "mixed" else self.masks
        if not self.single_tag:
            return base
        masks = base.clone()
        for i in self.single_tag:
            (tag,) = self.data.tags[i]
            masks[i][self.valid[i]] = tag
        return masks

    def use_completed(self, completion: Tensor) -> None:
        """Train the segmenters on the partial masks with their unpainted pixels labelled.

        Args:
            completion: (len(partial), S, S) uint8 labels over each image's left-out tags
                (255 = leave unpainted), e.g. L-Net's, in ``partial`` order.
        """
        rows = self.partial.indices
        if not rows:
            return
        masks = self.masks.clone()
        masks[rows] = complete_masks(self.masks[rows], completion, self.valid[rows])
        self.segmenter_masks = masks

    def _segmenter_rows(
        self,
        masks: Tensor,
        masked: list[int],
        targets: list[int],
        pseudo: Tensor,
        weight: Tensor,
    ) -> dict[str, Tensor]:
        order, size = masked + targets, self.cfg.image_size
        none = torch.full((len(masked), size, size), 255, dtype=torch.uint8)
        candidates = torch.zeros(len(order), self.num_classes + 1, dtype=torch.bool)
        if self.cfg.partial_masks in ("candidates", "mixed") and self.partial:
            rows = self.partial.candidates(self.num_classes)
            by_image = dict(zip(self.partial.indices, rows, strict=True))
            for row, i in enumerate(masked):
                if i in by_image:
                    candidates[row] = by_image[i]
        return {
            "image": self.images[order],
            "mask": masks[order],
            "tags": self.tags[order],
            "valid": self.valid[order],
            "has_mask": torch.arange(len(order)) < len(masked),
            "pseudo": torch.cat([none, pseudo.to(torch.uint8)]),
            "weight": torch.cat([torch.zeros(len(masked), size, size), weight.float()]),
            # per row, the classes its mask's unpainted pixels may hold (none: not partial)
            "candidates": candidates,
        }

    @property
    def learned_classes(self) -> list[int]:
        """Classes the human masks teach: the strong categories, and background if present."""
        return ([0] if self.has_background else []) + self.strong

    @property
    def taught_classes(self) -> list[int]:
        """``learned_classes`` plus the weak categories some partial mask leaves unpainted
        or a ``single_tag`` image holds: the supervised stage learned those from the
        completed masks or the candidates, and from those images' masks."""
        left_out = set().union(*self.partial.tags)  # no partial masks under as_is
        single = {k for i in self.single_tag for k in self.data.tags[i]}
        return sorted(set(self.learned_classes) | ((left_out | single) & set(self.weak)))

    def prior_weights(self, weight: float) -> Tensor:
        """(K+1,) CAM prior weights for a base ``weight`` (cfg.cam_prior_weak on the weak
        categories: models.cam_prior.prior_weights)."""
        return prior_weights(self.num_classes, weight, self.weak, self.cfg.cam_prior_weak)

    def to_original(self, position: int, labels: Tensor) -> np.ndarray:
        """A target's (S, S) label map at its image's original size (nearest)."""
        index = self.targets[position]
        return labels_to_original(labels, self.shapes[index], self.data.images[index].shape[:2])

    def evaluate(self, labels: Tensor) -> dict[str, object]:
        """Held-out report (per-class IoU, mIoU all/strong/weak) of target label maps."""
        held = set(self.holdout)
        positions = [p for p, i in enumerate(self.targets) if i in held]
        preds = [self.to_original(p, labels[p]) for p in positions]
        gts = [self.data.masks[self.targets[p]] for p in positions]
        return evaluate(preds, gts, self.num_classes + 1, self.strong, self.weak)  # type: ignore[arg-type]
