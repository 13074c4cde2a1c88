"""Ensemble prediction (S_a, S_b, flip-averaged, tag-constrained) and predict-only entry points."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.budget import image_signals
from models.cam_prior import applies, cam_zscores, prior_weights, with_prior
from models.config import PipelineConfig
from models.label_transfer import transfer_labels
from models.lnet import LNet
from models.loader import content_box
from models.networks import build_discriminator, build_lnet, build_segmenter
from models.pnet import run_segmenters, same_frozen_prefix
from models.precision import autocast
from models.pseudo import allowed_classes, flip_average
from models.regions import padded_superpixels, region_boxes, region_scores
from models.train import resolve_device
from models.transforms import (
    denormalise,
    labels_to_original,
    multi_hot,
    prepare_images,
    probs_to_original,
    valid_mask,
)


@dataclass
class EnsembleBatch:
    """One batch of ensemble output, on CPU: images ``start``.. ``start + len(probs)``."""

    start: int
    probs: Tensor  # (b, K+1, S, S) mean of the segmenters' flip-averaged softmax
    agree: Tensor  # (b, S, S) bool, S_a and S_b argmax agree
    real: Tensor | None  # (b, S, S) Dsc "real" probability of ``probs``


@dataclass
class Prediction:
    """One image's output at its original size."""

    mask: np.ndarray  # (H, W) uint8 class index, tag-constrained argmax, no 255
    confidence: np.ndarray  # (H, W) uint8, 255 = probability 1.0
    regions: list[dict[str, Any]] = field(default_factory=list)  # {"id", "bbox", "score"}
    signals: dict[str, float] = field(default_factory=dict)  # budget evidence


@torch.no_grad()
def iter_ensemble(
    segmenters: Sequence[nn.Module],
    disc: nn.Module | None,
    images: Tensor,
    allowed: Tensor,
    *,
    batch_size: int,
    device: torch.device,
    shapes: Sequence[tuple[int, int]] | None = None,
    zoom: float = 1.0,
    precision: str = "auto",
    lnet: LNet | None = None,
    cam_prior: float | Tensor = 0.0,
) -> Iterator[EnsembleBatch]:
    """Flip-averaged, tag-constrained mean softmax of the segmenters, batch by batch.

    With ``shapes`` (each image's resized (h, w) on the canvas) the networks see each image
    cropped to its box, as models.loader.Batches trains them (tight batches); outputs
    outside the box are 0 (probs, real) and True (agree). ``zoom`` other than 1 runs the
    segmenters on the box enlarged by that factor (PipelineConfig.inference_zoom);
    ``precision`` is PipelineConfig.precision. With ``lnet`` and a ``cam_prior`` above 0
    (one weight, or one per class: models.cam_prior.prior_weights) the mean is re-weighted
    by L-Net's standardised CAMs (models/cam_prior.py) before the discriminator and the
    argmax see it.
    """
    for module in [*segmenters, *([disc] if disc is not None else [])]:
        module.eval()
    size = images.shape[-2:]
    share = same_frozen_prefix([getattr(s, "encoder", None) for s in segmenters])
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device)
        ok = allowed[start : start + batch_size].to(device)
        n = len(x)
        probs = torch.zeros(n, allowed.shape[1], *size)
        agree = torch.ones(n, *size, dtype=torch.bool)
        real = torch.zeros(n, *size) if disc is not None else None
        rows = _rows_by_box(shapes[start : start + n], size) if shapes else {size: list(range(n))}
        prior = None
        if lnet is not None and applies(cam_prior):
            inside = (
                valid_mask(shapes[start : start + n], size[0]).to(device)
                if shapes
                else torch.ones(n, *size, dtype=torch.bool, device=device)
            )
            prior = cam_zscores(lnet, x, inside)
        for (h, w), index in rows.items():
            xb = x[index, :, :h, :w]
            with autocast(device, precision):
                each = _flip_averaged(segmenters, xb, ok[index], share, zoom)
                mean = torch.stack(each).mean(0)
                if prior is not None:
                    mean = with_prior(mean, prior[index, :, :h, :w], ok[index], cam_prior)
                if real is not None:
                    real[index, :h, :w] = torch.sigmoid(disc(mean, xb).float())[:, 0].cpu()  # type: ignore[misc]
            labels = [p.argmax(1) for p in each]
            agree[index, :h, :w] = torch.stack([lab == labels[0] for lab in labels]).all(0).cpu()
            probs[index, :, :h, :w] = mean.float().cpu()
        yield EnsembleBatch(start, probs, agree, real)


def _flip_averaged(
    segmenters: Sequence[nn.Module], x: Tensor, allowed: Tensor, share: bool, zoom: float = 1.0
) -> list[Tensor]:
    """Each segmenter's flip-averaged constrained softmax of ``x``; with ``zoom`` the box
    is enlarged by that factor (aspect kept, zero-padded to the trunk's stride) and the
    output resized back to the box."""
    size = x.shape[-2:]
    if zoom != 1.0:
        big = [max(1, round(s * zoom)) for s in size]
        x = F.interpolate(x, size=big, mode="bilinear")
        padded = content_box(torch.tensor([big]))
        x = F.pad(x, (0, padded[1] - big[1], 0, padded[0] - big[0]))
    direct = run_segmenters(segmenters, x, share)
    mirrored = run_segmenters(segmenters, x.flip(-1), share)
    out = [flip_average(d, m, allowed) for d, m in zip(direct, mirrored, strict=True)]
    if zoom != 1.0:
        out = [F.interpolate(p[..., : big[0], : big[1]], size=size, mode="bilinear") for p in out]
    return out


def _rows_by_box(
    shapes: Sequence[tuple[int, int]], size: torch.Size
) -> dict[tuple[int, int], list[int]]:
    """Batch rows grouped by their crop box (each image's shape rounded up to the trunk's
    stride, capped at the canvas)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for row, shape in enumerate(shapes):
        h, w = content_box(torch.tensor([shape]))
        groups.setdefault((min(h, size[0]), min(w, size[1])), []).append(row)
    return groups


def label_images(
    segmenters: Sequence[nn.Module],
    disc: nn.Module,
    images: Tensor,
    allowed: Tensor,
    shapes: Sequence[tuple[int, int]],
    originals: Sequence[tuple[int, int]],
    segments: np.ndarray,
    *,
    batch_size: int,
    device: torch.device,
    zoom: float = 1.0,
    precision: str = "auto",
    lnet: LNet | None = None,
    cam_prior: float | Tensor = 0.0,
    on_progress: Callable[[float], None] | None = None,
) -> list[Prediction]:
    """Final masks, confidences, region scores and budget signals at original size."""
    out: list[Prediction] = []
    for batch in iter_ensemble(
        segmenters,
        disc,
        images,
        allowed,
        batch_size=batch_size,
        device=device,
        shapes=shapes,
        zoom=zoom,
        precision=precision,
        lnet=lnet,
        cam_prior=cam_prior,
    ):
        assert batch.real is not None
        for j in range(len(batch.probs)):
            i = batch.start + j
            (h, w), original = shapes[i], tuple(originals[i])
            confidence, mask = probs_to_original(batch.probs[j], (h, w), original).max(0)  # type: ignore[arg-type]
            scores = region_scores(segments[i], batch.real[j].numpy(), batch.agree[j].numpy())
            out.append(
                Prediction(
                    mask=mask.numpy().astype(np.uint8),
                    confidence=(confidence * 255).round().clamp(0, 255).numpy().astype(np.uint8),
                    regions=region_boxes(segments[i], scores, (original[0] / h, original[1] / w)),
                    signals=image_signals(
                        batch.probs[j, :, :h, :w].amax(0).numpy(),
                        batch.agree[j, :h, :w].numpy(),
                        scores,
                    ),
                )
            )
        if on_progress is not None:
            on_progress(len(out) / len(images))
    return out


def _prepare(images: Sequence[np.ndarray], cfg: PipelineConfig) -> tuple[Tensor, list, np.ndarray]:
    tensors, shapes = prepare_images(images, cfg.image_size)
    segments = padded_superpixels(
        denormalise(tensors), shapes, cfg.slic_segments, cfg.slic_compactness
    )
    return tensors, shapes, segments


def _setup(
    model_state: dict[str, Any], cfg: PipelineConfig | None, device: str | torch.device | None
) -> tuple[PipelineConfig, torch.device]:
    cfg = cfg or PipelineConfig.from_params(model_state["config"])
    return cfg, resolve_device(device or cfg.device)


class Predictor:
    """Saved weights (PipelineResult.model_state) built once, to label images call by call.

    ``cfg`` defaults to the config saved with the weights (its width/depth must match).
    Not thread-safe: callers serialise calls (the networks hold no per-call state, but
    concurrent calls would only fight over the same cores).
    """

    def __init__(
        self,
        model_state: dict[str, Any],
        cfg: PipelineConfig | None = None,
        *,
        device: str | torch.device | None = None,
    ) -> None:
        self.cfg, self.device = _setup(model_state, cfg, device)
        self.num_classes = int(model_state["num_classes"])
        self.has_background = bool(model_state["has_background"])
        self.segmenters = [
            build_segmenter(self.num_classes, self.cfg, self.device, model_state[n])
            for n in ("s_a", "s_b")
        ]
        self.disc = build_discriminator(
            self.num_classes, self.cfg, self.device, model_state["disc"]
        )
        # weights saved before the weak categories were recorded: one weight for all
        self.prior = prior_weights(
            self.num_classes,
            self.cfg.cam_prior,
            model_state.get("weak_classes", []),
            self.cfg.cam_prior_weak,
        )
        self.lnet = (
            build_lnet(self.num_classes, self.cfg, self.device, model_state["lnet"])
            if applies(self.prior)
            else None
        )

    def __call__(
        self, images: Sequence[np.ndarray], tags: Sequence[frozenset[int]]
    ) -> list[Prediction]:
        """Masks of RGB ``images``, each limited to its ``tags`` (class indices 1..K) and
        background (pass every class for an image whose tags are unknown)."""
        tensors, shapes, segments = _prepare(images, self.cfg)
        allowed = allowed_classes(multi_hot(tags, self.num_classes), self.has_background)
        return label_images(
            self.segmenters,
            self.disc,
            tensors,
            allowed,
            shapes,
            [im.shape[:2] for im in images],
            segments,
            batch_size=self.cfg.batch_size,
            device=self.device,
            zoom=self.cfg.inference_zoom,
            precision=self.cfg.precision,
            lnet=self.lnet,
            cam_prior=self.prior,
        )


def predict(
    model_state: dict[str, Any],
    images: Sequence[np.ndarray],
    tags: Sequence[frozenset[int]],
    cfg: PipelineConfig | None = None,
    *,
    device: str | torch.device | None = None,
) -> list[Prediction]:
    """Label new images with saved weights (PipelineResult.model_state); no training."""
    return Predictor(model_state, cfg, device=device)(images, tags)


def predict_transfer(
    model_state: dict[str, Any],
    images: Sequence[np.ndarray],
    tags: Sequence[frozenset[int]],
    cfg: PipelineConfig | None = None,
    *,
    device: str | torch.device | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """CAM-baseline and L-Net coarse masks (255 = ignore) of new images at original size."""
    cfg, dev = _setup(model_state, cfg, device)
    calibration = model_state.get("calibration") or {}
    if calibration and cfg.background_calibration == "auto":  # fitted by the run
        cfg = dataclasses.replace(cfg, **calibration)
    lnet = build_lnet(int(model_state["num_classes"]), cfg, dev, model_state["lnet"])
    tensors, shapes, segments = _prepare(images, cfg)
    cam, coarse = transfer_labels(
        lnet,
        tensors,
        tags,
        cfg,
        has_background=bool(model_state["has_background"]),
        device=dev,
        valid=valid_mask(shapes, cfg.image_size),
        segments=segments,
    )
    originals = [im.shape[:2] for im in images]
    return (
        [labels_to_original(cam[i], shapes[i], originals[i]) for i in range(len(images))],
        [labels_to_original(coarse[i], shapes[i], originals[i]) for i in range(len(images))],
    )
