"""Step objects: a batch in, every loss computed, own optimizers stepped, float losses out.

Batch keys (from the pipeline's loaders): image (N,3,S,S) normalised; mask (N,S,S) human
labels, 255 = none; pseudo (N,S,S) pseudo labels, 255 = ignore; weight (N,S,S) per-pixel
pseudo-label weights; tags (N,K) multi-hot; has_mask (N,) bool; valid (N,S,S) bool (not
padding).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.config import PipelineConfig
from models.discriminator import Discriminator
from models.lnet import LNet
from models.losses import (
    IGNORE,
    cam_mask_loss,
    candidate_set_loss,
    dice_loss,
    discriminator_loss,
    generator_adversarial_loss,
    lse_pool,
    masked_cross_entropy,
    segmentation_tag_loss,
    tag_loss,
    topk_pool,
)
from models.networks import param_groups
from models.pnet import PNet, run_segmenters, same_frozen_prefix
from models.precision import autocast, autocast_dtype
from models.pseudo import allowed_classes, confident_labels, constrain


class AmpOptimizer:
    """AdamW plus a GradScaler (active under float16 autocast only: bfloat16 has float32's
    exponent range and needs no loss scaling): zero, backward, step, update."""

    def __init__(
        self,
        params: Iterable[nn.Parameter] | Iterable[dict[str, Any]],
        *,
        lr: float,
        weight_decay: float,
        device: torch.device,
        precision: str = "auto",
        betas: tuple[float, float] = (0.9, 0.999),
    ) -> None:
        self.optimizer = torch.optim.AdamW(
            list(params), lr=lr, weight_decay=weight_decay, betas=betas
        )
        scaled = autocast_dtype(device, precision) == torch.float16
        self.scaler = torch.amp.GradScaler(device.type, enabled=scaled)
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]

    def scale_lr(self, factor: float) -> None:
        """Set every group's learning rate to ``factor`` times its initial one."""
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor

    def step(self, loss: Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}


def pool_cams(cams: Tensor, cfg: PipelineConfig) -> Tensor:
    """(N, K, h, w) CAMs → (N, K) image-level logits, by top-k mean or log-sum-exp."""
    return topk_pool(cams, cfg.pool_fraction) if cfg.cam_pool == "topk" else lse_pool(cams)


def mask_pairs(mask: Tensor, has_mask: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """(image, class) pairs for every category 1..K with pixels in a human mask."""
    images, classes = [], []
    for i in torch.nonzero(has_mask).flatten().tolist():
        present = torch.unique(mask[i])
        for k in present[(present >= 1) & (present <= num_classes)].tolist():
            images.append(i)
            classes.append(k)
    return (
        torch.tensor(images, dtype=torch.long, device=mask.device),
        torch.tensor(classes, dtype=torch.long, device=mask.device),
    )


class LNetStep:
    """L-Net: tag BCE on every image, the CAMs' BCE against the human masks (cam_mask_loss),
    decoder CE and Dice per (masked image, class) pair.

    The attention is detached, so strong and weak categories' attention maps both come
    from the classification head alone and look alike to the decoder.
    """

    def __init__(self, lnet: LNet, cfg: PipelineConfig, device: torch.device) -> None:
        self.lnet, self.cfg, self.device = lnet, cfg, device
        self.optim = AmpOptimizer(
            param_groups([lnet], cfg),
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            device=device,
            precision=cfg.precision,
        )

    def train(self) -> None:
        self.lnet.train()

    def set_lr_factor(self, factor: float) -> None:
        self.optim.scale_lr(factor)

    def __call__(self, batch: dict[str, Tensor]) -> dict[str, float]:
        images, mask = batch["image"], batch["mask"].long()
        with autocast(self.device, self.cfg.precision):
            features = self.lnet.features(images)
            cams = self.lnet.cams(features)
            loss_cls = tag_loss(pool_cams(cams, self.cfg), batch["tags"])
            image_index, class_index = mask_pairs(mask, batch["has_mask"], self.lnet.num_classes)
            attention = LNet.attention(cams.detach(), image_index, class_index)
            logits = self.lnet.decode(features, image_index, attention, images.shape[-2:])
            picked = mask[image_index]
            target = torch.where(
                picked == IGNORE, IGNORE, (picked == class_index[:, None, None]).long()
            )
            loss_ce = masked_cross_entropy(logits, target)
            loss_dice = dice_loss(logits, target)
            has_mask = batch["has_mask"]
            loss_cam = cam_mask_loss(cams[has_mask], mask[has_mask], self.lnet.num_classes)
            loss = (
                self.cfg.lambda_cls * loss_cls
                + loss_ce
                + self.cfg.lambda_dice * loss_dice
                + self.cfg.lambda_cam_mask * loss_cam
            )
        self.optim.step(loss)
        return {
            "loss": loss.item(),
            "loss_cls": loss_cls.item(),
            "loss_cam_mask": loss_cam.item(),
            "loss_seg": loss_ce.item(),
            "loss_dice": loss_dice.item(),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": {"lnet": self.lnet.state_dict()},
            "optimizer": {"lnet": self.optim.state_dict()},
        }


def _unpainted(batch: dict[str, Tensor]) -> Tensor | None:
    """Pixels of partial human masks left unpainted, where the batch names candidates for
    them (PipelineConfig.partial_masks=candidates or mixed); None when there are none."""
    candidates = batch.get("candidates")
    if candidates is None or not bool(candidates.any()):
        return None
    rows = batch["has_mask"] & candidates.any(1)
    return rows[:, None, None] & (batch["mask"] == IGNORE) & batch["valid"]


def _rows_without_full_masks(has_mask: Tensor, unpainted: Tensor | None) -> Tensor | None:
    """Rows the tag loss teaches: tag-only images and partial masks with unpainted
    candidates; None when the batch has none. A complete human mask already says where
    each tag is, and pulling its top-k pooled probabilities to the tags only spreads small
    objects (MSRC semi, supervised stage on 47 masks: 0.692 val mIoU with the tag loss on
    them, 0.733 without)."""
    rows = ~has_mask
    if unpainted is not None:
        rows = rows | unpainted.flatten(1).any(1)
    return rows if bool(rows.any()) else None


class PNetAdversarialStep:
    """Segmenters S (one for P-Net, S_a and S_b in rounds) and Dsc: Dsc update, then S update.

    S loss = CE(human) + λ_pl·CE(pseudo, weighted) + λ_adv·BCE(Dsc(S(x)), real) on images
    without masks + λ_tag·tag loss on the rows without a complete human mask
    (:func:`_rows_without_full_masks`) + λ_cross·CE(other segmenter's confident argmax) when
    ``cross_thresholds`` (per-class τ, (K+1,)) is given and there are two segmenters.
    """

    def __init__(
        self,
        segmenters: Mapping[str, PNet],
        discriminator: Discriminator,
        cfg: PipelineConfig,
        device: torch.device,
        *,
        has_background: bool,
        cross_thresholds: Tensor | None = None,
    ) -> None:
        self.segmenters, self.disc = dict(segmenters), discriminator
        self.cfg, self.device = cfg, device
        self.has_background = has_background
        self.cross_thresholds = None if cross_thresholds is None else cross_thresholds.to(device)
        self.share_prefix = same_frozen_prefix([s.encoder for s in self.segmenters.values()])
        self.optim_s = AmpOptimizer(
            param_groups(self.segmenters.values(), cfg),
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            device=device,
            precision=cfg.precision,
        )
        self.optim_d = AmpOptimizer(
            discriminator.parameters(),
            lr=cfg.lr_disc,
            weight_decay=0.0,
            device=device,
            precision=cfg.precision,
            betas=(0.5, 0.999),
        )

    def train(self) -> None:
        for s in self.segmenters.values():
            s.train()
        self.disc.train()

    def _segment(self, x: Tensor) -> list[Tensor]:
        """Every segmenter's logits; the fixed trunk prefix runs once when they share it."""
        return run_segmenters(list(self.segmenters.values()), x, self.share_prefix)

    def set_lr_factor(self, factor: float) -> None:
        self.optim_s.scale_lr(factor)
        self.optim_d.scale_lr(factor)

    def __call__(self, batch: dict[str, Tensor]) -> dict[str, float]:
        x, tags, valid = batch["image"], batch["tags"], batch["valid"]
        mask, pseudo = batch["mask"].long(), batch["pseudo"].long()
        has_mask = batch["has_mask"]
        unmasked = ~has_mask
        allowed = allowed_classes(tags, self.has_background)
        unpainted = _unpainted(batch)
        with autocast(self.device, self.cfg.precision):
            logits = self._segment(x)
        probs = [torch.softmax(lg.float(), dim=1) for lg in logits]

        # Dsc only shapes S through its verdict on tag-only images; a batch without any (the
        # supervised stage's, all human masks) skips it: half the step's cost at width 48.
        adversarial = bool(unmasked.any())
        loss_d = self._discriminator_step(x, mask, has_mask, probs, valid) if adversarial else None
        untold = _rows_without_full_masks(has_mask, unpainted)

        terms: dict[str, Tensor] = {}
        cfg = self.cfg
        with autocast(self.device, self.cfg.precision):
            total = x.new_zeros((), dtype=torch.float32)
            for j, (lg, p) in enumerate(zip(logits, probs, strict=True)):
                parts = {
                    "loss_human": masked_cross_entropy(lg[has_mask], mask[has_mask]),
                    "loss_pseudo": masked_cross_entropy(
                        lg[unmasked], pseudo[unmasked], batch["weight"][unmasked]
                    ),
                }
                if untold is not None:
                    parts["loss_tag"] = segmentation_tag_loss(
                        lg[untold], tags[untold], cfg.pool_fraction
                    )
                if unpainted is not None:
                    parts["loss_candidates"] = candidate_set_loss(
                        lg, batch["candidates"], unpainted
                    )
                if adversarial:
                    parts["loss_adv"] = generator_adversarial_loss(
                        self.disc(p[unmasked], x[unmasked]), valid[unmasked]
                    )
                weighted = (
                    parts["loss_human"]
                    + parts.get("loss_candidates", 0.0)
                    + cfg.lambda_pl * parts["loss_pseudo"]
                    + cfg.lambda_adv * parts.get("loss_adv", 0.0)
                    + cfg.lambda_tag * parts.get("loss_tag", 0.0)
                )
                if self.cross_thresholds is not None and len(logits) == 2:
                    other = torch.softmax(constrain(logits[1 - j].detach().float(), allowed), 1)
                    target = confident_labels(
                        other[unmasked], self.cross_thresholds, valid[unmasked]
                    )
                    parts["loss_cross"] = masked_cross_entropy(lg[unmasked], target)
                    weighted = weighted + cfg.lambda_cross * parts["loss_cross"]
                total = total + weighted
                for name, value in parts.items():
                    terms[name] = terms.get(name, 0.0) + value.detach() / len(logits)
        self.optim_s.step(total)
        return {
            "loss": total.item() / len(logits),
            **({} if loss_d is None else {"loss_d": loss_d.item()}),
            **{name: float(value) for name, value in terms.items()},
        }

    def _discriminator_step(
        self, x: Tensor, mask: Tensor, has_mask: Tensor, probs: list[Tensor], valid: Tensor
    ) -> Tensor:
        """One Dsc update: human one-hot masks are real, every segmenter's softmax fake."""
        with autocast(self.device, self.cfg.precision):
            real = (
                F.one_hot(mask[has_mask].clamp(max=probs[0].shape[1] - 1), probs[0].shape[1])
                .permute(0, 3, 1, 2)
                .float()
            )
            unlabelled = (mask[has_mask] == IGNORE)[:, None]
            real = torch.where(unlabelled, probs[0][has_mask].detach(), real)
            fake = torch.cat([p.detach() for p in probs])
            loss_d = discriminator_loss(
                self.disc(real, x[has_mask]),
                self.disc(fake, x.repeat(len(probs), 1, 1, 1)),
                ~unlabelled[:, 0],
                valid.repeat(len(probs), 1, 1),
            )
        self.optim_d.step(loss_d)
        return loss_d

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": {
                **{n: s.state_dict() for n, s in self.segmenters.items()},
                "disc": self.disc.state_dict(),
            },
            "optimizer": {
                "segmenters": self.optim_s.state_dict(),
                "disc": self.optim_d.state_dict(),
            },
        }
