"""Profiles of the quality benchmark (bench/quality.py): the pipeline's knobs per machine
and the benchmark's own (transfer halves, budget, subset, split fractions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Profile:
    """Benchmark knobs beside the pipeline's own (``config``)."""

    config: dict[str, Any]
    halves: int = 1  # transfer settings: 1 = one seeded half strong, 2 = also its complement
    budget: int = 32  # extra masks in the budget rows
    budget_repeats: int = 1  # seed pairs of the budget arms (see quality_rows.budget_rows)
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
    # The whole table within 60 minutes on a 2-core CPU (about 45 minutes of compute
    # when the machine is quiet; see CPU_PROFILE_ESTIMATE_S below for the arithmetic).
    "cpu": Profile(
        config=dict(
            image_size=96,
            width=16,
            depth=3,
            batch_size=16,
            epochs_lnet=10,
            epochs_supervised=6,
            epochs_pnet=10,
            epochs_round=3,
            rounds=2,
        ),
        budget=32,
        budget_repeats=2,
        note="96 px, width 16, depth 3 (0.19 M-parameter segmenter), batch 16, L-Net 10 / "
        "supervised 6 / P-Net 10 / 2 rounds x 3 epochs, one seeded half for transfer, "
        "budget 32 masks, two seed pairs",
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

# How the cpu profile fits in 60 minutes (2-core machine, 2 torch threads; MSRC-v2: 473
# train / 118 val images, so 30 batches of 16 per epoch). Per-batch costs at 96 px, width 16,
# best of 5 (bench micro-timings), and a 1-epoch run of the whole profile (--set epochs=1:
# 514 s wall) for the per-stage overheads (targets' superpixels, ensemble passes, predict):
#   L-Net step 0.15 s (all images masked) .. 0.06 s (1/8 masked)  -> 1.5-4.5 s / epoch
#   P-Net / round step (S_a + S_b + Dsc) 0.49 s                     -> 14.7 s / epoch
#   ensemble inference 0.21 s / 16 images, predict at original size 0.37 s / 16 images
# Runs (L-Net 10, supervised 6, P-Net 10, 2 rounds x 3; human masks half of each
# supervised/P-Net/round epoch in semi): measured 2,084 s = 35 minutes in all on a quiet
# machine (full 337 s, semi 468 s, its two budget arms 303 + 301 s, transfer 288 s,
# tags_only 290 s, val predictions and loading the rest; a round that is rolled back ends
# the run early). Two seed pairs of budget arms add two more (~600 s): ~45 minutes. A second
# torch process on the two cores can slow this 2-3x.
CPU_PROFILE_ESTIMATE_S = 2700
