"""Network arithmetic: which autocast dtype a ``PipelineConfig.precision`` means on a device.

bfloat16 on a CPU pays only where the CPU computes it natively (AVX-512 BF16 or AMX):
oneDNN then runs convolutions in bfloat16 at about twice float32's speed. Elsewhere
(an AVX2-only CPU) every bfloat16 operation is emulated: an L-Net batch of the quality
benchmark's cpu profile took 26 s under ``bf16`` against 3.7 s in float32 on a 2-core
AMD EPYC (Zen 1). A run that asks for ``bf16`` still gets it (its numbers are then
comparable with other bf16 runs), with one log line saying what it costs.
"""

from __future__ import annotations

import functools
import logging

import torch

log = logging.getLogger(__name__)


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (oneDNN's own check)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


@functools.cache
def _warn_emulated_bf16() -> None:
    log.warning(
        "precision=bf16 on a CPU without native bfloat16 (%s): every operation is "
        "emulated, several times slower than precision=fp32",
        torch.backends.cpu.get_cpu_capability(),
    )


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype of ``precision`` (PipelineConfig.precision) on ``device``; None:
    float32 throughout."""
    if precision == "bf16":
        if device.type == "cpu" and not cpu_has_fast_bf16():
            _warn_emulated_bf16()
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda":
        return torch.float16
    return None


def autocast(device: torch.device, precision: str = "auto") -> torch.autocast:
    """Autocast to ``autocast_dtype`` (float16 on CUDA, nothing on CPU by default)."""
    dtype = autocast_dtype(device, precision)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
