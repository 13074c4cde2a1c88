"""The one generic training loop, used by every stage: step objects do the rest."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from models.errors import StopRequested

ProgressFn = Callable[[float, dict[str, float]], None]
StopFn = Callable[[], bool]


class Step(Protocol):
    """One optimisation step: computes every loss, steps its own optimizers."""

    def __call__(self, batch: dict[str, Tensor]) -> dict[str, float]: ...

    def train(self) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...


class SizedBatches(Iterable[dict[str, Tensor]], Sized, Protocol):
    """A loader whose length (batches per epoch) is known up front."""


@dataclass
class FitResult:
    """What fit() hands back: per-epoch mean losses and the final checkpoint."""

    iterations: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: dict[str, Any] = field(default_factory=dict)


def resolve_device(device: str | torch.device) -> torch.device:
    """Map "auto" to CUDA when present, else CPU; "cuda" without CUDA raises ValueError."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    return resolved


def to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """Move a batch; on CUDA, 4-D float tensors go channels_last."""
    out = {}
    for name, t in batch.items():
        t = t.to(device, non_blocking=True)
        if device.type == "cuda" and t.ndim == 4 and t.is_floating_point():
            t = t.contiguous(memory_format=torch.channels_last)
        out[name] = t
    return out


def lr_factor(schedule: str, done: float) -> float:
    """Learning-rate multiplier after ``done`` (0..1) of a fit: "constant" is 1; "cosine"
    warms up linearly over the first 5 % from 0.1 and then decays along a half cosine to
    0.02 — short fine-tuning runs of a pretrained trunk end at a small step instead of
    bouncing at the initial one."""
    if schedule == "constant":
        return 1.0
    warmup = 0.05
    if done < warmup:
        return 0.1 + 0.9 * done / warmup
    t = (done - warmup) / (1 - warmup)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def fit(
    step: Step,
    loader: SizedBatches,
    *,
    epochs: int,
    device: torch.device,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    seed: int | None = None,
    lr_schedule: str = "constant",
) -> FitResult:
    """Run ``epochs`` passes of ``step`` over ``loader``.

    Progress is it / (epochs · len(loader)) with the running mean losses of the epoch.
    should_stop() is asked before every batch; True raises StopRequested. A step with a
    ``set_lr_factor`` method gets :func:`lr_factor` of ``lr_schedule`` before every batch.
    """
    if seed is not None:
        torch.manual_seed(seed)
    total = epochs * len(loader)
    started = time.perf_counter()
    history: list[dict[str, float]] = []
    it = 0
    set_lr = getattr(step, "set_lr_factor", None)
    step.train()
    for _ in range(epochs):
        sums: dict[str, float] = defaultdict(float)
        count = 0
        for batch in loader:
            if should_stop is not None and should_stop():
                raise StopRequested(f"stopped after {it} of {total} iterations")
            if set_lr is not None:
                set_lr(lr_factor(lr_schedule, it / max(total, 1)))
            losses = step(to_device(batch, device))
            it += 1
            count += 1
            for name, value in losses.items():
                sums[name] += value
            if on_progress is not None:
                on_progress(it / total, {k: v / count for k, v in sums.items()})
        history.append({k: v / max(count, 1) for k, v in sums.items()})
    checkpoint = {**step.state_dict(), "step": it}
    return FitResult(
        iterations=it, seconds=time.perf_counter() - started, history=history, checkpoint=checkpoint
    )
