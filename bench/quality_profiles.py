"""Profiles of the quality benchmark (bench/quality.py): the pipeline's knobs per machine
and the benchmark's own (transfer halves, budget, subset, split fractions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.precision import cpu_has_fast_bf16


@dataclass(frozen=True)
class Profile:
    """Benchmark knobs beside the pipeline's own (``config``)."""

    config: dict[str, Any]
    halves: int = 1  # transfer settings: 1 = one seeded half strong, 2 = also its complement
    budget: int = 32  # extra masks in the budget rows
    budget_repeats: int = 1  # seed pairs of the budget arms (see quality_rows.budget_rows)
    # epochs of the budget arms' supervised and P-Net stages (both arms alike; None: the
    # run's): six arms re-train two pretrained segmenters each
    budget_epochs: dict[str, int] | None = None
    max_images: int | None = None  # seeded random subset of the folder
    val_fraction: float = 0.2
    semi_fraction: float = 1 / 8
    untagged: bool = True  # also predict val without tags (every category allowed)
    note: str = ""


PROFILES: dict[str, Profile] = {
    # Smoke run: minutes on 2 CPU cores, numbers mean nothing.
    "quick": Profile(
        config=dict(
            image_size=32,
            width=8,
            depth=3,
            batch_size=16,
            epochs_lnet=2,
            epochs_pnet=1,
            epochs_round=1,
            rounds=1,
            slic_segments=16,
        ),
        budget=8,
        max_images=240,
        note="smoke run: 240 images at 32 px, 1-2 epochs per stage",
    ),
    # The whole table on a 2-core CPU (see CPU_PROFILE_ESTIMATE_S below for the arithmetic).
    "cpu": Profile(
        config=dict(
            image_size=224,  # supervised alone, 20 epochs: 176 px 0.769 → 224 px 0.800 (MSRC)
            width=48,  # heads 96 channels wide (the segmenters' context module and decoder)
            lr=4e-3,
            batch_size=16,
            # tags only, val CAM by L-Net seed: 4 epochs (120 batches) 0.455 / 0.366 for
            # seeds 0 / 1; 12 epochs 0.456 / 0.469 / 0.400 / 0.494 for seeds 0-3 (mean
            # P-Net 63.9 % of full against 58.9 %)
            epochs_lnet=12,
            epochs_supervised=20,  # full, supervised only: 5 → 12 → 20 gave 0.694 → 0.755 → 0.769
            # each of the relay's two students (pnet_start below); CamVid semi on the same
            # supervised nets: 8 epochs 88.6 %, 12 epochs 90.6 % of full (session 16)
            epochs_pnet=12,
            epochs_round=2,
            rounds=1,
            # MSRC full, supervised nets: ImageNet trunk 0.794 vs L-Net's 0.786; predicting
            # at 1.43 x 224 = 320 px (the photos' own size) 0.794 -> 0.815
            segmenter_init="scratch",
            inference_zoom=1.43,
            # Tuned on MSRC semi (docs/quality-log.md, sessions 11-15) and kept for CamVid
            # unchanged: bfloat16 autocast (where the CPU has AMX/AVX-512 BF16; an
            # AVX2-only CPU emulates it ~7x slower than float32, models/precision.py, and
            # runs float32), students that continue the supervised nets at a quarter of the
            # rate and end midway to them (WiSE-FT), at least 200 batches for stages with
            # few masks, and strong views of the pseudo-labelled photos (cutmix boxes,
            # colour jitter).
            precision="bf16" if cpu_has_fast_bf16() else "fp32",
            continue_lr=0.25,
            student_blend=0.5,
            min_steps=200,
            cutmix=1.0,
            photometric=1.0,
            # a fresh student labels the tag-only photos for the continued one (semi:
            # MSRC +0.006, CamVid +0.007 val over the continued student alone)
            pnet_start="relay",
            # transfer: the supervised nets learn the unpainted categories from the partial
            # masks ("one of the left-out tags") and teach P-Net them (MSRC transfer 74.9 %
            # of full with both against 60.2 % without, session 21); L-Net labels the ones
            # no mask leaves out alone (MSRC's aeroplane, mountain: 0.00 val IoU as
            # candidates; supervised nets 0.678 -> 0.726 val at prior weight 3, session 23)
            partial_masks="mixed",
            weak_source="teacher",
            # the delivered masks add L-Net's z-scored CAMs at the weight the held-out
            # masks pick (MSRC transfer's supervised nets: 3, val 0.562 -> 0.647, session 21)
            cam_prior_fit="holdout",
        ),
        budget=32,
        budget_repeats=3,
        budget_epochs={"epochs_supervised": 3, "epochs_pnet": 2},
        note="224 px (tight batches), predictions at 1.43x (320 px), segmenters from "
        "ImageNet's trunk, heads 96 wide, lr 4e-3, EfficientNet-Lite0 (ImageNet) "
        "trunks, batch 16, bf16 (fp32 on CPUs without native bf16), L-Net 12 / "
        "supervised 20 / P-Net a relay of two students x 12 (continued at 0.25 lr, "
        "blended 0.5; cutmix, photometric; 200 batches at least) "
        "/ 1 round x 2 epochs, one seeded half for transfer, budget 32 masks, three "
        "seed pairs of arms at supervised 3 / P-Net 2; partial masks as candidates (L-Net's "
        "labels for categories never left out alone) taught on by "
        "the supervised nets (transfer); CAM prior weight fitted on the held-out masks",
    ),
    # A lent GPU: full resolution (MSRC's longer side is 320 px), wider, both halves.
    "gpu": Profile(
        config=dict(
            image_size=320,
            width=32,
            depth=4,
            batch_size=16,
            epochs_lnet=40,
            epochs_pnet=40,
            epochs_round=10,
            rounds=3,
            slic_segments=256,
            device="cuda",
        ),
        halves=2,
        budget=64,
        note="320 px, width 32, depth 4, L-Net 40 / P-Net 40 / 3 rounds x 10 epochs, "
        "both seeded halves for transfer",
    ),
}

# How the cpu profile is sized (2-core machine, 2 torch threads; MSRC-v2: 473 train / 118
# val images, 30 batches of 16 per epoch; semi's P-Net epochs hold ~52 batches with the
# human masks repeated to half of each). With the Lite0 trunks at 176 px in tight batches
# (stem..block 4 fixed) and 96-channel heads, a segmenter step (S_a + S_b + Dsc) costs
# ~3.3 s and an L-Net step ~1 s on a quiet machine, so a segmenter epoch is ~100 s (semi's
# P-Net ~3 min; the supervised stage's ~80 s): full ~27 min (measured), semi ~35, transfer
# ~30, tags_only ~12, six budget arms at supervised 3 / P-Net 2 ~50, plus val scoring:
# about two and a half hours, over twice the one-hour target. Since then the discriminator
# is 16 wide and sits out the supervised stage, and S_a/S_b share the fixed trunk prefix:
# a supervised epoch of 256 CamVid masks took 33 s (~50 s for MSRC's 378), which paid for
# the supervised stage's 12 → 20 epochs; the whole table is still about two and a half hours.
# The 128 px, 32-channel heads of the previous profile took ~80 minutes and reached 0.670
# on full against 0.724 here. 224 px instead of 176 (MSRC's photos are 320 px long): the
# supervised stage alone gave 0.800 against 0.769 (0.764 with zoom-in crops at 176), for
# (224/176)² ≈ 1.6x the step cost, so the whole table was about four hours here; the
# relay's two P-Net students of 12 epochs (at least 200 batches each) make semi's P-Net
# about an hour (8 epochs: 43 minutes, MSRC semi 101 minutes on 2 threads): five to six
# hours in all. L-Net's 12 epochs instead of 4 (session 18) add about 12 minutes to each
# setting with masks (a semi L-Net batch is ~1.7 s here) and 4 to tags only.
# The arms are what the budget question costs; fewer than
# three pairs do not separate suggested from random beyond the CPU's run-to-run spread.
CPU_PROFILE_ESTIMATE_S = 22500
