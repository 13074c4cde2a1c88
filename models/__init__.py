"""tag2mask models: pure PyTorch networks, losses, training loops and pseudo-label logic.

Arrays and tensors in, tensors, arrays and numbers out; nothing here knows about the
service, its database or its queue. Exports load lazily, so ``models.config`` (used to
validate job params) does not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.config import PipelineConfig
    from models.data import LabelingData
    from models.errors import StopRequested
    from models.pipeline import PipelineResult, predict, run_pipeline

_EXPORTS = {
    "LabelingData": "models.data",
    "PipelineConfig": "models.config",
    "PipelineResult": "models.pipeline",
    "StopRequested": "models.errors",
    "predict": "models.pipeline",
    "run_pipeline": "models.pipeline",
}

__all__ = [
    "LabelingData",
    "PipelineConfig",
    "PipelineResult",
    "StopRequested",
    "predict",
    "run_pipeline",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
