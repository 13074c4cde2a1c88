"""The registry of job kinds: each validates its params and runs with a JobContext."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker.job_context import JobContext


class InvalidParams(ValueError):
    """The params do not fit the job kind (the API answers 422 validation_error)."""


@dataclass(frozen=True)
class JobKind:
    name: str
    validate: Callable[[dict[str, Any]], dict[str, Any]]
    run: Callable[[JobContext], dict[str, Any]]
    # Drop the stage checkpoints once the job succeeded: a pipeline's are two pretrained
    # segmenters a stage (~26 MB each) that nothing reads after the write-back. An export
    # keeps its one small checkpoint (a re-delivered finished export reuses the file).
    clear_checkpoints: bool = False


def _registry() -> dict[str, JobKind]:
    from worker.kinds import export, pipeline, stats

    kinds = {k.name: k for k in (pipeline.KIND, stats.KIND, export.KIND)}
    if os.environ.get("TAG2MASK_ENABLE_TEST_KINDS") == "1":
        from worker.kinds import testing

        kinds.update({k.name: k for k in testing.KINDS})
    return kinds


def get_kind(name: str) -> JobKind:
    kinds = _registry()
    if name not in kinds:
        raise InvalidParams(f"Unknown job kind {name!r}; known: {', '.join(sorted(kinds))}.")
    return kinds[name]


def known_kinds() -> list[str]:
    return sorted(_registry())
